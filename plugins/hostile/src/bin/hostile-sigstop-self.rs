//! Processes: stops itself with SIGSTOP mid-job, hoping the host waits for
//! an exit that never comes. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: raise sends a signal to the calling thread.
        let rc = unsafe { libc::raise(libc::SIGSTOP) };
        pw_hostile::check("raise(SIGSTOP)", rc)?;
        Ok("stopped itself and was resumed".into())
    })
}
