//! Network: a raw ICMP socket (packet forging, sniffing), then an echo
//! request to 127.0.0.1. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
        pw_hostile::check("socket(AF_INET, SOCK_RAW)", fd)?;
        // ICMP echo request, id 0x5057 ("PW"), sequence 1, checksum computed below.
        let mut pkt = [8u8, 0, 0, 0, 0x50, 0x57, 0, 1];
        let sum: u32 = pkt
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        pkt[2..4].copy_from_slice(&sum.to_be_bytes());
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: the packet and addr are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                fd,
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&addr as *const libc::sockaddr_in).cast(),
                16,
            )
        };
        pw_hostile::check("sendto(raw ICMP)", n)?;
        Ok(format!("raw ICMP socket fd {fd}, echo request sent"))
    })
}
