//! Files: creates a new file outside the allowed paths, in a directory
//! everyone may write (mode 0777). Input: the new file's path.

fn main() {
    pw_hostile::attack(|path| {
        let c = pw_hostile::cstr(path);
        // SAFETY: c is a valid path; the flags and mode are plain integers.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                0o666,
            )
        };
        pw_hostile::check(&format!("open(O_CREAT) {path}"), fd)?;
        // SAFETY: writes a static buffer to the fd opened above.
        unsafe { libc::write(fd, b"pwned".as_ptr().cast(), 5) };
        Ok(format!("created {path}"))
    })
}
