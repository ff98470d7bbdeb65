//! Network: a UDP datagram to a socket on 127.0.0.1. Input: the port.

fn main() {
    pw_hostile::attack(|port| {
        let port: u16 = port.parse().map_err(|_| "bad port")?;
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        pw_hostile::check("socket(AF_INET, SOCK_DGRAM)", fd)?;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the buffer and addr are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                fd,
                b"pwned".as_ptr().cast(),
                5,
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of_val(&addr) as u32,
            )
        };
        pw_hostile::check("sendto", n)?;
        Ok(format!("sent a datagram to 127.0.0.1:{port}"))
    })
}
