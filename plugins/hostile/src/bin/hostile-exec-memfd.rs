//! Exec: code that no exec rule grants, run from an anonymous memory file:
//! copies its own executable into a memfd and `execveat(memfd, "",
//! AT_EMPTY_PATH)`s it. The payload (argv[1] = `--payload`) then answers
//! the job itself with `ESCAPED`. Input: none.

use plugwarden_sdk::protocol::Kind;

fn payload() -> ! {
    // SAFETY: getuid has no memory effects.
    let uid = unsafe { libc::getuid() };
    let msg = format!("ESCAPED: code ran from a memfd (uid {uid})");
    pw_hostile::raw_stdout(&pw_hostile::frame(
        Kind::Done,
        pw_hostile::FIRST_JOB,
        msg.as_bytes(),
    ));
    std::process::exit(0)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--payload") {
        payload();
    }
    pw_hostile::attack(|_| {
        let image = pw_hostile::read_file("/proc/self/exe")?;
        // A file-size limit would kill the writer; ignored, it shows as EFBIG.
        // SAFETY: sets SIGXFSZ to ignored; no handler runs.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        let name = pw_hostile::cstr("payload");
        // SAFETY: name is a valid C string; the flags are plain integers.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        pw_hostile::check("memfd_create", fd)?;
        // SAFETY: writes the image from a buffer we own.
        let n = unsafe { libc::write(fd, image.as_ptr().cast(), image.len()) };
        pw_hostile::check("write memfd", n)?;
        let args = [
            pw_hostile::cstr("hostile-exec-memfd"),
            pw_hostile::cstr("--payload"),
        ];
        let argv = [args[0].as_ptr(), args[1].as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let empty = pw_hostile::cstr("");
        // SAFETY: argv and envp are NULL-terminated arrays of valid C strings.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                fd,
                empty.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        Err(format!("execveat(memfd): {}", pw_hostile::errno()))
    })
}
