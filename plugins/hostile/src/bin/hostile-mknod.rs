//! Files: creates a character device node for /dev/mem (1, 1), which would
//! give raw access to physical memory to whoever opens it. Input: the
//! node's path (in a world-writable directory).

fn main() {
    pw_hostile::attack(|path| {
        let c = pw_hostile::cstr(path);
        // SAFETY: c is a valid path; mode and device are plain integers.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 1)) };
        pw_hostile::check(&format!("mknod {path}"), rc)?;
        Ok(format!("created the device node {path}"))
    })
}
