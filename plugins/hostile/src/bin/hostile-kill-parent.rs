//! Processes: SIGKILL to its parent (the fork server). Input: the parent's
//! pid, or nothing to use getppid().

fn main() {
    pw_hostile::attack(|input| {
        let pid = match input.parse::<i32>() {
            Ok(p) => p,
            // SAFETY: getppid has no memory effects.
            Err(_) => unsafe { libc::getppid() },
        };
        // SAFETY: plain syscall with integer arguments.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        pw_hostile::check(&format!("kill({pid}, SIGKILL)"), rc)?;
        Ok(format!("killed its parent {pid}"))
    })
}
