//! Privilege: installs its own seccomp filter with a user-notification
//! listener (a second supervisor inside the sandbox, or a way to confuse
//! the host's). Input: none.

fn main() {
    pw_hostile::attack(|_| {
        // One instruction: return SECCOMP_RET_ALLOW.
        let prog = [libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: 0x7fff_0000,
        }];
        let fprog = libc::sock_fprog {
            len: 1,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: integer-only prctl (the kernel asks for it before a filter).
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        // SAFETY: fprog points to `prog`, alive for the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &fprog,
            )
        };
        pw_hostile::check("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)", fd)?;
        Ok(format!("seccomp listener fd {fd}"))
    })
}
