//! Privilege: userfaultfd, which lets an exploit pause the kernel in the
//! middle of a copy from user memory (race widening). Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // SAFETY: plain syscall with an integer argument.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC) };
        pw_hostile::check("userfaultfd", fd)?;
        Ok(format!("userfaultfd {fd}"))
    })
}
