//! Shared plumbing of the hostile plugins: each binary in `src/bin/` is one
//! attack. It serves jobs with [`attack`] (no SDK lockdown, so it meets the
//! host's own walls), reads its parameters from the job's input, and answers
//! `ESCAPED: <what it got>` when the attack worked, or an error naming the
//! step that failed and its errno (`open /tmp/x: EACCES (Permission denied)`).
//! The tests judge by observable effect, never by this word alone.

use std::ffi::CString;

/// Serves jobs: `run(input)` returns what it obtained (the answer becomes
/// `ESCAPED: ...`) or what stopped it.
pub fn attack(mut run: impl FnMut(&str) -> Result<String, String>) -> ! {
    plugwarden_sdk::serve_without_lockdown(move |input| {
        let text = String::from_utf8_lossy(input);
        run(text.trim()).map(|got| format!("ESCAPED: {got}").into_bytes())
    })
}

/// `EACCES (Permission denied)` for the last OS error.
pub fn errno() -> String {
    let e = std::io::Error::last_os_error();
    let code = e.raw_os_error().unwrap_or(0);
    let name = errno_name(code);
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{name} ({text})")
}

/// `EACCES` for 13 (`errno 4095` for a number libc does not name).
pub fn errno_name(code: i32) -> String {
    match nix::errno::Errno::from_raw(code) {
        nix::errno::Errno::UnknownErrno => format!("errno {code}"),
        errno => format!("{errno:?}"),
    }
}

/// A syscall's return value (`int`, `long` or `ssize_t`).
pub trait Ret: Copy {
    fn value(self) -> i64;
}

impl Ret for i32 {
    fn value(self) -> i64 {
        i64::from(self)
    }
}

impl Ret for i64 {
    fn value(self) -> i64 {
        self
    }
}

impl Ret for isize {
    fn value(self) -> i64 {
        self as i64
    }
}

/// `Err("<what>: <errno>")` when `rc` is negative, else `Ok(rc)`.
pub fn check(what: &str, rc: impl Ret) -> Result<i64, String> {
    if rc.value() < 0 {
        Err(format!("{what}: {}", errno()))
    } else {
        Ok(rc.value())
    }
}

/// A C string from a parameter (parameters never contain NUL bytes).
pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// The `i`th line of the input (parameters are one per line).
pub fn param(input: &str, i: usize) -> Result<&str, String> {
    input
        .lines()
        .nth(i)
        .map(str::trim)
        .ok_or_else(|| format!("parameter {i} missing from the input"))
}

/// Writes raw bytes to fd 1 (the host's frame decoder), bypassing the SDK.
pub fn raw_stdout(bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: writes from a buffer we own to fd 1.
        let n = unsafe { libc::write(1, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

/// One whole frame as the SDK would write it.
pub fn frame(kind: plugwarden_sdk::protocol::Kind, id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    plugwarden_sdk::protocol::encode_frame(&mut out, kind, id, payload);
    out
}

/// The id of the first job a fresh worker gets (the tests use one job per worker).
pub const FIRST_JOB: u64 = 1;

/// Sleeps for good (until the host's deadline kills the process).
pub fn hang() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Reads a whole file through raw `open`/`read`, so the errno is the kernel's.
pub fn read_file(path: &str) -> Result<Vec<u8>, String> {
    let c = cstr(path);
    // SAFETY: c is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    check(&format!("open {path}"), fd)?;
    let out = read_fd(fd);
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(fd) };
    out.map_err(|e| format!("read {path}: {e}"))
}

/// Reads an fd to its end.
pub fn read_fd(fd: i32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: reads into a stack buffer of the given length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            0 => return Ok(out),
            n if n < 0 => return Err(errno()),
            n => out.extend_from_slice(&buf[..n as usize]),
        }
    }
}
