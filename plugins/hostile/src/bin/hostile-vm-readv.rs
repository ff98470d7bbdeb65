//! Processes: reads the host's memory with process_vm_readv.
//! Input: the host's pid, the address (hex), the length.

fn main() {
    pw_hostile::attack(|input| {
        let pid: i32 = pw_hostile::param(input, 0)?
            .parse()
            .map_err(|_| "bad pid")?;
        let addr = usize::from_str_radix(pw_hostile::param(input, 1)?.trim_start_matches("0x"), 16)
            .map_err(|_| "bad address")?;
        let len: usize = pw_hostile::param(input, 2)?
            .parse()
            .map_err(|_| "bad length")?;
        let mut buf = vec![0u8; len];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: local describes our own buffer of `len` bytes; the remote
        // side is only read by the kernel, with its own checks.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        pw_hostile::check(&format!("process_vm_readv({pid})"), n)?;
        Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
    })
}
