//! Files: appends to an existing world-writable file (mode 0666) outside
//! the allowed paths. Input: the file's path.

fn main() {
    pw_hostile::attack(|path| {
        let c = pw_hostile::cstr(path);
        // SAFETY: c is a valid path; the flags are plain integers.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
            )
        };
        pw_hostile::check(&format!("open(O_WRONLY) {path}"), fd)?;
        // SAFETY: writes a static buffer to the fd opened above.
        let n = unsafe { libc::write(fd, b"pwned".as_ptr().cast(), 5) };
        pw_hostile::check("write", n)?;
        Ok(format!("appended to {path}"))
    })
}
