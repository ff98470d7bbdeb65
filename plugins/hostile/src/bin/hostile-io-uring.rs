//! Privilege: io_uring, whose operations bypass seccomp once a ring exists.
//! Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // struct io_uring_params is 120 bytes; zero asks for the defaults.
        let mut params = [0u8; 120];
        // SAFETY: io_uring_setup reads and writes the 120-byte params on our stack.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 8, params.as_mut_ptr()) };
        pw_hostile::check("io_uring_setup", fd)?;
        Ok(format!("io_uring fd {fd}"))
    })
}
