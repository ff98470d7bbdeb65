//! Exec: replaces itself with /bin/sh, which announces itself on stderr and
//! writes a marker file. Input: the marker's path.

fn main() {
    pw_hostile::attack(|marker| {
        let sh = pw_hostile::cstr("/bin/sh");
        let args = [
            pw_hostile::cstr("sh"),
            pw_hostile::cstr("-c"),
            pw_hostile::cstr(&format!("echo ESCAPED-sh >&2; echo pwned > '{marker}'")),
        ];
        let argv = [
            args[0].as_ptr(),
            args[1].as_ptr(),
            args[2].as_ptr(),
            std::ptr::null(),
        ];
        // SAFETY: argv is a NULL-terminated array of valid C strings.
        unsafe { libc::execv(sh.as_ptr(), argv.as_ptr()) };
        Err(format!("execve /bin/sh: {}", pw_hostile::errno()))
    })
}
