//! Privilege: raises its own hard limits (address space, CPU, file size) to
//! unlimited, to lift the host's memory, CPU and file-size caps. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        for (name, res) in [
            ("RLIMIT_AS", libc::RLIMIT_AS),
            ("RLIMIT_CPU", libc::RLIMIT_CPU),
            ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ] {
            let lim = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: setrlimit reads one struct from our stack.
            let rc = unsafe { libc::setrlimit(res, &lim) };
            pw_hostile::check(&format!("setrlimit({name}, unlimited)"), rc)?;
        }
        Ok("address space, CPU and file size now unlimited".into())
    })
}
