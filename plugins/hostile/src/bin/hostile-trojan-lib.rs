//! Files: opens a shared library that the host and every plugin load (libc)
//! for writing, the first step of planting code in the next process that
//! loads it. It never writes a byte, so even success harms nothing.
//! Input: the library's path.

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
        // SAFETY: closes the fd opened above.
        unsafe { libc::close(fd) };
        Ok(format!("{path} is open for writing"))
    })
}
