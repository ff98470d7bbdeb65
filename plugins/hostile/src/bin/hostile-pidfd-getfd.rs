//! Processes: steals an fd from another process with pidfd_getfd (the fork
//! server's socket would let it spawn anything), then reads from it.
//! Input: the target's pid, the fd number.

fn main() {
    pw_hostile::attack(|input| {
        let pid: i32 = pw_hostile::param(input, 0)?
            .parse()
            .map_err(|_| "bad pid")?;
        let target: i32 = pw_hostile::param(input, 1)?.parse().map_err(|_| "bad fd")?;
        // SAFETY: plain syscall with integer arguments.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        pw_hostile::check(&format!("pidfd_open({pid})"), pidfd)?;
        // SAFETY: plain syscall with integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, target, 0) };
        pw_hostile::check(&format!("pidfd_getfd({pid}, {target})"), fd)?;
        let mut buf = [0u8; 256];
        // SAFETY: reads into a stack buffer of the given length.
        let n = unsafe { libc::pread(fd as i32, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let got = if n > 0 {
            String::from_utf8_lossy(&buf[..n as usize]).into_owned()
        } else {
            String::new()
        };
        Ok(format!("stole fd {target} of {pid}: {got}"))
    })
}
