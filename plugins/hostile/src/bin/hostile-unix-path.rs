//! Network: connects to a unix socket bound at a path (mode 0777).
//! Input: the socket's path.

fn main() {
    pw_hostile::attack(|path| {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        pw_hostile::check("socket(AF_UNIX)", fd)?;
        // SAFETY: sockaddr_un is plain data.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in path.bytes().take(107).enumerate() {
            addr.sun_path[i] = b as libc::c_char;
        }
        // SAFETY: addr is a valid, NUL-terminated sockaddr_un.
        let rc = unsafe {
            libc::connect(
                fd,
                (&addr as *const libc::sockaddr_un).cast(),
                std::mem::size_of_val(&addr) as u32,
            )
        };
        pw_hostile::check(&format!("connect({path})"), rc)?;
        // SAFETY: writes a static buffer to the connected socket.
        unsafe { libc::write(fd, b"pwned".as_ptr().cast(), 5) };
        Ok(format!("connected to {path}"))
    })
}
