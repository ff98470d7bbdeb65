//! Files: `..` traversal from a directory handle: an O_PATH descriptor of
//! /usr/lib (O_PATH opens are not access checks), then `openat(dir,
//! "../../<secret>")`. Input: the secret's absolute path.

fn main() {
    pw_hostile::attack(|path| {
        let dir = pw_hostile::cstr("/usr/lib");
        // SAFETY: dir is a valid path; the flags are plain integers.
        let dirfd = unsafe {
            libc::open(
                dir.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        pw_hostile::check("open(O_PATH) /usr/lib", dirfd)?;
        let rel = format!("../..{path}");
        let c = pw_hostile::cstr(&rel);
        // SAFETY: dirfd is open and c is a valid relative path.
        let fd = unsafe { libc::openat(dirfd, c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        pw_hostile::check(&format!("openat(/usr/lib, {rel})"), fd)?;
        let bytes = pw_hostile::read_fd(fd)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    })
}
