//! The Rust plugin SDK: `fn main() { plugwarden::plugin::serve(|input| ...) }`.
//!
//! [`serve`] speaks the protocol on stdin/stdout (docs/PROTOCOL.md). After
//! the handshake and before the first job it **locks the process down
//! further** with a second seccomp filter of its own ([`lockdown`]): no
//! `open`/`openat`, no `execve`, no executable memory. The host's filter
//! had to allow what the dynamic loader and start-up need; this one does
//! not, so a worker compromised by a hostile input cannot even reopen its
//! own libraries (sandbox2 calls this step SandboxMeHere). A denied call
//! kills the process (SIGSYS), which the host reports as a violation.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule,
};

use crate::policy::groups::{self, Arch};
use crate::protocol::{self, Frame, FrameDecoder, Kind};

/// Syscalls a Rust plugin needs once started: I/O on the pipes, memory
/// (never executable), threads, time, signals for abort.
const LOCKDOWN: &[&str] = &[
    "read",
    "write",
    "writev",
    "close",
    "exit",
    "exit_group",
    "brk",
    "munmap",
    "mremap",
    "madvise",
    "futex",
    "rt_sigreturn",
    "rt_sigprocmask",
    "rt_sigaction",
    "sigaltstack",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "getrandom",
    "sched_yield",
    "sched_getaffinity",
    "poll",
    "ppoll",
    "getpid",
    "gettid",
    "tgkill",
    "set_robust_list",
    "rseq",
    "membarrier",
    // Allowed here only so that the host's earlier clone3 filter answers
    // ENOSYS (glibc then falls back to clone, checked below) instead of
    // this filter killing a plugin that starts a thread.
    "clone3",
];

/// Builds the lockdown program for this architecture.
pub fn lockdown_program() -> Result<seccompiler::BpfProgram, String> {
    let arch = Arch::native();
    let cond = |i, op, v| Cond::new(i, Len::Qword, op, v).expect("valid condition");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in LOCKDOWN {
        if let Some(nr) = groups::number(arch, name) {
            rules.insert(nr, Vec::new());
        }
    }
    let no_exec = || {
        SeccompRule::new(vec![cond(2, Op::MaskedEq(libc::PROT_EXEC as u64), 0)])
            .expect("one condition")
    };
    for name in ["mmap", "mprotect"] {
        if let Some(nr) = groups::number(arch, name) {
            rules.insert(nr, vec![no_exec()]);
        }
    }
    // Threads, never processes or namespaces.
    if let Some(nr) = groups::number(arch, "clone") {
        let mask = crate::seccomp::CLONE_NAMESPACE_FLAGS | libc::CLONE_THREAD as u64;
        let rule = SeccompRule::new(vec![cond(0, Op::MaskedEq(mask), libc::CLONE_THREAD as u64)])
            .expect("one condition");
        rules.insert(nr, vec![rule]);
    }
    if let Some(nr) = groups::number(arch, "prctl") {
        let rule = SeccompRule::new(vec![cond(0, Op::Eq, libc::PR_SET_NAME as u64)])
            .expect("one condition");
        rules.insert(nr, vec![rule]);
    }
    let target = match arch {
        Arch::X86_64 => seccompiler::TargetArch::x86_64,
        Arch::Aarch64 => seccompiler::TargetArch::aarch64,
    };
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        target,
    )
    .map_err(|e| e.to_string())?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| e.to_string())
}

/// Installs the lockdown filter on this process (all threads must not exist yet).
pub fn lockdown() -> Result<(), String> {
    let prog = lockdown_program()?;
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points into `prog`, alive for the call; NO_NEW_PRIVS is
    // already set by the host, so no prctl is needed (it may be denied).
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) };
    if rc != 0 {
        return Err(format!(
            "cannot install the lockdown filter: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Sends the parts of one job's output.
pub struct Parts<'a> {
    out: &'a mut File,
    id: u64,
    max_frame: usize,
}

impl Parts<'_> {
    /// Sends `bytes` as one or more `part` frames.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        for chunk in bytes.chunks(self.max_frame.max(1)) {
            // Header and payload written apart: no copy of the payload.
            let header = protocol::encode_header(Kind::Part, self.id, chunk.len() as u32);
            self.out
                .write_all(&header)
                .and_then(|()| self.out.write_all(chunk))
                .map_err(|e| format!("cannot write to the host: {e}"))?;
        }
        Ok(())
    }
}

/// Serves jobs: each input maps to an output or an error message.
pub fn serve<F>(mut handler: F) -> !
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, String>,
{
    serve_parts(move |input, parts| {
        let out = handler(input)?;
        parts.send(&out)
    })
}

/// Serves jobs whose output is sent in parts (e.g. one page at a time).
pub fn serve_parts<F>(mut handler: F) -> !
where
    F: FnMut(&[u8], &mut Parts) -> Result<(), String>,
{
    finish(run(&mut handler, true))
}

/// Like [`serve`], but without the lockdown filter: for test probes that
/// must meet the host's own walls, and for plugins whose start-up cannot
/// finish before the first job. Prefer [`serve`].
pub fn serve_without_lockdown<F>(mut handler: F) -> !
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, String>,
{
    finish(run(
        &mut |input: &[u8], parts: &mut Parts| parts.send(&handler(input)?),
        false,
    ))
}

fn finish(result: Result<(), String>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("plugin: {e}");
            std::process::exit(2)
        }
    }
}

fn run<F>(handler: &mut F, lock: bool) -> Result<(), String>
where
    F: FnMut(&[u8], &mut Parts) -> Result<(), String>,
{
    // SAFETY: fds 0 and 1 are the protocol pipes, open for the whole life of
    // the process; ManuallyDrop keeps them from being closed here.
    let mut stdin = BufReader::with_capacity(
        1 << 20,
        ManuallyDrop::into_inner(ManuallyDrop::new(unsafe { File::from_raw_fd(0) })),
    );
    // SAFETY: as above.
    let mut stdout = ManuallyDrop::new(unsafe { File::from_raw_fd(1) });
    let mut decoder = FrameDecoder::new(protocol::DEFAULT_MAX_FRAME);
    let hello =
        next_frame(&mut stdin, &mut decoder)?.ok_or("the host closed the pipe before hello")?;
    if hello.kind != Kind::Hello || hello.payload.len() < 8 {
        return Err("the host did not start with a hello frame".into());
    }
    let version = u32::from_le_bytes(hello.payload[..4].try_into().expect("4 bytes"));
    if version != protocol::VERSION {
        return Err(format!(
            "host speaks protocol {version}, this plugin speaks {}",
            protocol::VERSION
        ));
    }
    let max_frame = u32::from_le_bytes(hello.payload[4..8].try_into().expect("4 bytes"));
    decoder = FrameDecoder::new(max_frame);
    let name = std::env::args().next().unwrap_or_default();
    let mut reply = protocol::VERSION.to_le_bytes().to_vec();
    reply.extend_from_slice(name.as_bytes());
    let mut frame = Vec::new();
    protocol::encode_frame(&mut frame, Kind::Hello, 0, &reply);
    stdout.write_all(&frame).map_err(|e| e.to_string())?;
    if lock {
        lockdown()?;
    }
    while let Some(job) = next_frame(&mut stdin, &mut decoder)? {
        if job.kind != Kind::Job {
            return Err(format!("unexpected {} frame from the host", job.kind));
        }
        let mut parts = Parts {
            out: &mut stdout,
            id: job.id,
            max_frame: max_frame as usize,
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler(&job.payload, &mut parts)
        }))
        .unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("plugin panicked: {msg}"))
        });
        frame.clear();
        match result {
            Ok(()) => protocol::encode_frame(&mut frame, Kind::Done, job.id, &[]),
            Err(msg) => {
                let msg = &msg.as_bytes()[..msg.len().min(max_frame as usize)];
                protocol::encode_frame(&mut frame, Kind::Error, job.id, msg)
            }
        }
        stdout
            .write_all(&frame)
            .map_err(|e| format!("cannot write to the host: {e}"))?;
    }
    Ok(())
}

/// Reads the next frame; `None` at a clean EOF between frames. Consumes
/// only the bytes of that frame, so pipelined jobs stay buffered.
fn next_frame(
    input: &mut impl BufRead,
    decoder: &mut FrameDecoder,
) -> Result<Option<Frame>, String> {
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        if buf.is_empty() {
            return if decoder.is_idle() {
                Ok(None)
            } else {
                Err("the host closed the pipe mid-frame".into())
            };
        }
        let (used, frame) = decoder.push(buf).map_err(|e| e.to_string())?;
        input.consume(used);
        if let Some(f) = frame {
            return Ok(Some(f));
        }
    }
}
