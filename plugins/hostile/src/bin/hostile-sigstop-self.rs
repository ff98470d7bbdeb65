//! Processes: stops itself with SIGSTOP mid-job, hoping the host waits for
//! an exit that never comes (the host's wall deadline ends it). If it runs
//! on, the stop never happened and it says so. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: raise sends a signal to the calling thread.
        let rc = unsafe { libc::raise(libc::SIGSTOP) };
        pw_hostile::check("raise(SIGSTOP)", rc)?;
        Err("raise(SIGSTOP) returned: the process never stopped, or was resumed".into())
    })
}
