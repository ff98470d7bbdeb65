//! Network: connects to an abstract unix socket (no file, so no path rule
//! can see it). Input: the abstract name (without the leading NUL).

fn main() {
    pw_hostile::attack(|name| {
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        pw_hostile::check("socket(AF_UNIX)", fd)?;
        // SAFETY: sockaddr_un is plain data.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (i, b) in name.bytes().take(100).enumerate() {
            addr.sun_path[i + 1] = b as libc::c_char;
        }
        let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len().min(100)) as u32;
        // SAFETY: addr is valid for `len` bytes.
        let rc = unsafe { libc::connect(fd, (&addr as *const libc::sockaddr_un).cast(), len) };
        pw_hostile::check("connect(@abstract)", rc)?;
        // SAFETY: writes a static buffer to the connected socket.
        unsafe { libc::write(fd, b"pwned".as_ptr().cast(), 5) };
        Ok(format!("connected to @{name}"))
    })
}
