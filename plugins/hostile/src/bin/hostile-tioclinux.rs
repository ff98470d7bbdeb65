//! Privilege: TIOCLINUX on fds 0-2: paste the console selection into the
//! input queue (subcode 3), the virtual-console cousin of TIOCSTI. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        let mut errors = Vec::new();
        for fd in 0..3 {
            let subcode: u8 = 3; // TIOCL_PASTESEL
                                 // SAFETY: TIOCLINUX reads the subcode byte from our stack.
            let rc = unsafe { libc::ioctl(fd, libc::TIOCLINUX, &subcode) };
            if rc >= 0 {
                return Ok(format!("pasted the selection through fd {fd}"));
            }
            errors.push(format!("fd {fd}: {}", pw_hostile::errno()));
        }
        Err(format!("ioctl(TIOCLINUX): {}", errors.join("; ")))
    })
}
