//! Exec: runs a setuid-root binary (the test makes a mode 4755 copy of
//! `id`), hoping to come back with euid 0. Input: the binary's path.

fn main() {
    pw_hostile::attack(|path| {
        let c = pw_hostile::cstr(path);
        let args = [pw_hostile::cstr("id"), pw_hostile::cstr("-u")];
        let argv = [args[0].as_ptr(), args[1].as_ptr(), std::ptr::null()];
        // SAFETY: argv is a NULL-terminated array of valid C strings.
        unsafe { libc::execv(c.as_ptr(), argv.as_ptr()) };
        Err(format!("execve {path}: {}", pw_hostile::errno()))
    })
}
