//! Processes: reads the host's memory through /proc/<pid>/mem.
//! Input: the host's pid, the address (hex), the length.

fn main() {
    pw_hostile::attack(|input| {
        let pid = pw_hostile::param(input, 0)?;
        let addr = i64::from_str_radix(pw_hostile::param(input, 1)?.trim_start_matches("0x"), 16)
            .map_err(|_| "bad address")?;
        let len: usize = pw_hostile::param(input, 2)?
            .parse()
            .map_err(|_| "bad length")?;
        let path = format!("/proc/{pid}/mem");
        let c = pw_hostile::cstr(&path);
        // SAFETY: c is a valid path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        pw_hostile::check(&format!("open {path}"), fd)?;
        let mut buf = vec![0u8; len];
        // SAFETY: reads at most `len` bytes into our buffer.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), len, addr) };
        pw_hostile::check("pread", n)?;
        Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
    })
}
