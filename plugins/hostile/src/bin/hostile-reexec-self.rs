//! Exec: re-executes itself through /proc/self/exe hoping a fresh image
//! sheds the sandbox (a new seccomp state, dropped Landlock domain, regained
//! privileges). The new image (argv[1] = `--again`) tries to read the secret
//! and answers the job itself. Input: the secret's path.

use plugwarden_sdk::protocol::Kind;

fn again(secret: &str) -> ! {
    // SAFETY: integer-only prctl queries.
    let (nnp, mode) = unsafe {
        (
            libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0),
            libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0),
        )
    };
    let frame = match pw_hostile::read_file(secret) {
        Ok(bytes) => {
            let msg = format!(
                "ESCAPED: after re-exec read {}",
                String::from_utf8_lossy(&bytes)
            );
            pw_hostile::frame(Kind::Done, pw_hostile::FIRST_JOB, msg.as_bytes())
        }
        Err(e) => {
            let msg = format!("after re-exec (no_new_privs {nnp}, seccomp mode {mode}): {e}");
            pw_hostile::frame(Kind::Error, pw_hostile::FIRST_JOB, msg.as_bytes())
        }
    };
    pw_hostile::raw_stdout(&frame);
    std::process::exit(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--again") {
        again(args.get(2).map_or("", String::as_str));
    }
    pw_hostile::attack(|secret| {
        let exe = pw_hostile::cstr("/proc/self/exe");
        let args = [
            pw_hostile::cstr("hostile-reexec-self"),
            pw_hostile::cstr("--again"),
            pw_hostile::cstr(secret),
        ];
        let argv = [
            args[0].as_ptr(),
            args[1].as_ptr(),
            args[2].as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: argv is a NULL-terminated array of valid C strings.
        unsafe { libc::execv(exe.as_ptr(), argv.as_ptr()) };
        Err(format!("execve /proc/self/exe: {}", pw_hostile::errno()))
    })
}
