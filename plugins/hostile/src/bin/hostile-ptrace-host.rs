//! Processes: ptrace-attaches to the host (then it could rewrite its code).
//! Input: the host's pid.

fn main() {
    pw_hostile::attack(|pid| {
        let pid: i32 = pid.parse().map_err(|_| "bad pid")?;
        // SAFETY: plain syscall with integer arguments.
        let rc = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
        pw_hostile::check(&format!("ptrace(PTRACE_ATTACH, {pid})"), rc)?;
        let mut status = 0;
        // SAFETY: waitpid writes the status into an i32 we own.
        unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        // SAFETY: plain syscall with integer arguments.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
        Ok(format!("attached to {pid}"))
    })
}
