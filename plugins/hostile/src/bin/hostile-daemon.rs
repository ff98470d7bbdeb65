//! Processes: a double-fork daemon with setsid that tries to outlive the
//! job (and its worker). The daemon writes its pid into a shared page and
//! the job answers with it, so the test can look for it. Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: a fresh anonymous shared mapping of one page.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(format!("mmap: {}", pw_hostile::errno()));
        }
        let slot = page.cast::<i32>();
        // SAFETY: single-threaded process; the children make raw calls only.
        let first = unsafe { libc::fork() };
        pw_hostile::check("fork", first)?;
        if first == 0 {
            // SAFETY: raw calls in the forked child; `slot` is shared and 4-byte aligned.
            unsafe {
                libc::setsid();
                if libc::fork() == 0 {
                    std::ptr::write_volatile(slot, libc::getpid());
                    libc::close(0);
                    libc::close(1);
                    libc::close(2);
                    loop {
                        libc::sleep(600);
                    }
                }
                libc::_exit(0);
            }
        }
        for _ in 0..100 {
            // SAFETY: the page stays mapped; the daemon writes the slot once.
            let pid = unsafe { std::ptr::read_volatile(slot) };
            if pid != 0 {
                return Ok(format!("daemon pid {pid}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Err("the daemon never reported its pid".into())
    })
}
