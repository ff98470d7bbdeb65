//! Files: reads the raw block device under the root filesystem (and, failing
//! that, /dev/mem or the kernel log), which bypasses every file permission.
//! Input: the device paths to try, one per line.

fn main() {
    pw_hostile::attack(|input| {
        let mut errors = Vec::new();
        for dev in input.lines().map(str::trim).filter(|d| !d.is_empty()) {
            let c = pw_hostile::cstr(dev);
            // SAFETY: c is a valid path.
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
                )
            };
            if fd < 0 {
                errors.push(format!("open {dev}: {}", pw_hostile::errno()));
                continue;
            }
            let mut buf = [0u8; 512];
            // SAFETY: reads into a stack buffer of the given length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                return Ok(format!("read {n} bytes of {dev}"));
            }
            errors.push(format!("read {dev}: {}", pw_hostile::errno()));
        }
        Err(errors.join("; "))
    })
}
