//! Processes: a fork bomb. Every process forks again, for up to 8 rounds
//! (255 processes, each exiting after 5 s: enough to prove the point, not
//! enough to take the machine down if a sandbox ever let it through).
//! Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: getpid has no memory effects.
        let me = unsafe { libc::getpid() };
        let mut made = 0;
        for _ in 0..8 {
            // SAFETY: the process is single-threaded; children only fork, sleep and _exit.
            let pid = unsafe { libc::fork() };
            // SAFETY: as above.
            let original = unsafe { libc::getpid() } == me;
            match pid {
                -1 if original && made == 0 => {
                    return Err(format!("fork: {}", pw_hostile::errno()))
                }
                -1 => break,
                0 => {}
                _ if original => made += 1,
                _ => {}
            }
        }
        // SAFETY: as above.
        if unsafe { libc::getpid() } != me {
            std::thread::sleep(std::time::Duration::from_secs(5));
            // SAFETY: _exit ends a forked child without running the parent's exit handlers.
            unsafe { libc::_exit(0) };
        }
        Ok(format!("forked {made} children, 255 processes in all"))
    })
}
