//! Resources: closes stdout mid-job (a moment after taking the job) and
//! carries on working, hoping the host waits for an answer that cannot
//! come. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        std::thread::sleep(std::time::Duration::from_millis(200));
        // SAFETY: closes our own fd 1; nothing else uses it afterwards.
        unsafe { libc::close(1) };
        pw_hostile::hang()
    })
}
