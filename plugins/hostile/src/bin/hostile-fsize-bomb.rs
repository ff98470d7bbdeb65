//! Resources: fills the disk: looks for any writable directory among the
//! candidates and writes a file of the size asked for into it (a smaller
//! file, stopped by a full filesystem, does not count).
//! Input: the size in MiB, then candidate directories, one per line.

fn main() {
    pw_hostile::attack(|input| {
        let mib: usize = pw_hostile::param(input, 0)?
            .parse()
            .map_err(|_| "bad size")?;
        let chunk = vec![0x5au8; 1 << 20];
        let mut errors = Vec::new();
        // SAFETY: getpid has no memory effects.
        let pid = unsafe { libc::getpid() };
        for dir in input
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            let path = format!("{dir}/hostile-bomb-{pid}");
            let c = pw_hostile::cstr(&path);
            // SAFETY: c is a valid path.
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                )
            };
            if fd < 0 {
                errors.push(format!("open {path}: {}", pw_hostile::errno()));
                continue;
            }
            let mut written = 0usize;
            for _ in 0..mib {
                // SAFETY: writes from a buffer we own.
                let n = unsafe { libc::write(fd, chunk.as_ptr().cast(), chunk.len()) };
                if n <= 0 {
                    errors.push(format!("write {path}: {}", pw_hostile::errno()));
                    break;
                }
                written += n as usize;
            }
            if written == mib << 20 {
                return Ok(format!("wrote {mib} MiB to {path}"));
            }
            if written > 0 {
                errors.push(format!("only {} MiB fit in {path}", written >> 20));
            }
        }
        Err(errors.join("; "))
    })
}
