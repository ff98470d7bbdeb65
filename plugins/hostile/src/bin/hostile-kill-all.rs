//! Processes: kill(-1, SIGKILL), every process the caller may signal.
//! Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: plain syscall with integer arguments.
        let rc = unsafe { libc::kill(-1, libc::SIGKILL) };
        pw_hostile::check("kill(-1, SIGKILL)", rc)?;
        Ok("killed every process it could".into())
    })
}
