//! Resources: closes stdout the instant it takes the job, right behind its
//! hello, so the host reads the hello and the end of stdout together; then
//! carries on working. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: closes our own fd 1; nothing else uses it afterwards.
        unsafe { libc::close(1) };
        pw_hostile::hang()
    })
}
