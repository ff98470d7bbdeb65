//! Privilege: lowers another process's limits with prlimit64 (a host with
//! RLIMIT_CORE or RLIMIT_NOFILE changed under it). Input: the target's pid.

fn main() {
    pw_hostile::attack(|pid| {
        let pid: i32 = pid.parse().map_err(|_| "bad pid")?;
        let lim = libc::rlimit64 {
            rlim_cur: 4242,
            rlim_max: 4242,
        };
        // SAFETY: prlimit64 reads one struct from our stack.
        let rc = unsafe { libc::prlimit64(pid, libc::RLIMIT_CORE, &lim, std::ptr::null_mut()) };
        pw_hostile::check(&format!("prlimit64({pid}, RLIMIT_CORE)"), rc)?;
        Ok(format!("set RLIMIT_CORE of {pid} to 4242"))
    })
}
