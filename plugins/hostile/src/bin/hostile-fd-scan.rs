//! Processes: looks for descriptors leaked by the host beyond 0-2 (a
//! socket to the fork server, a pidfd, a file) and reads what it finds.
//! Input: none.

fn main() {
    pw_hostile::attack(|_| {
        let mut found = Vec::new();
        for fd in 3..4096 {
            // SAFETY: F_GETFD only queries the descriptor table.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                continue;
            }
            // The shared-memory arena (a sealed memfd) is handed over on purpose.
            // SAFETY: F_GET_SEALS only queries the descriptor.
            let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
            if seals > 0 && seals & libc::F_SEAL_SEAL != 0 {
                continue;
            }
            let mut buf = [0u8; 256];
            // SAFETY: reads into a stack buffer of the given length.
            let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            let got = if n > 0 {
                String::from_utf8_lossy(&buf[..n as usize]).into_owned()
            } else {
                String::new()
            };
            found.push(format!("fd {fd}: {got}"));
        }
        if found.is_empty() {
            return Err("no descriptor open beyond 0-2".into());
        }
        Ok(found.join("; "))
    })
}
