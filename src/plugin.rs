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
//!
//! When the host hands over a shared-memory arena (fd 3, announced in its
//! hello), [`serve`] and [`serve_parts`] map it before the lockdown and say
//! so in their hello; a bulk input then arrives as a slice of the mapping
//! (no copy) and large parts are written into its output region instead
//! of the pipe (docs/PROTOCOL.md, "The arena").

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule,
};

use crate::arena::Arena;
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
    /// The arena, when the host offered its output region for this job.
    arena: Option<&'a Arena>,
    /// Bytes of the output region already used by this job's parts.
    arena_used: usize,
}

impl Parts<'_> {
    /// Sends `bytes`: copied into the arena's output region when the host
    /// offered it, the part is large and it still fits; otherwise as one or
    /// more `part` frames through the pipe.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.send_in_arena(bytes)? {
            return Ok(());
        }
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

    /// One `part` frame naming `bytes` copied into the output region;
    /// false when this part goes through the pipe instead. Parts never
    /// overlap within a job, so the host may copy each whenever it reads it.
    fn send_in_arena(&mut self, bytes: &[u8]) -> Result<bool, String> {
        let Some(arena) = self.arena else {
            return Ok(false);
        };
        let region = arena.region();
        let fits = self
            .arena_used
            .checked_add(bytes.len())
            .is_some_and(|end| end <= region);
        if bytes.len() < crate::arena::THRESHOLD || !fits {
            return Ok(false);
        }
        let offset = region + self.arena_used;
        if !arena.write(offset, bytes) {
            return Ok(false);
        }
        self.arena_used += bytes.len();
        let slice = protocol::ArenaSlice {
            offset: offset as u64,
            len: bytes.len() as u64,
        };
        let mut frame = [0u8; protocol::HEADER_LEN + protocol::ARENA_SLICE_LEN];
        frame[..protocol::HEADER_LEN].copy_from_slice(&protocol::encode_header_flags(
            Kind::Part,
            protocol::FLAG_ARENA,
            self.id,
            protocol::ARENA_SLICE_LEN as u32,
        ));
        frame[protocol::HEADER_LEN..].copy_from_slice(&slice.encode());
        self.out
            .write_all(&frame)
            .map_err(|e| format!("cannot write to the host: {e}"))?;
        Ok(true)
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
    let host = match protocol::HostHello::parse(&hello.payload) {
        Ok(h) if hello.kind == Kind::Hello => h,
        _ => return Err("the host did not start with a hello frame".into()),
    };
    if host.version != protocol::VERSION {
        return Err(format!(
            "host speaks protocol {}, this plugin speaks {}",
            host.version,
            protocol::VERSION
        ));
    }
    let max_frame = host.max_frame;
    decoder = FrameDecoder::new(max_frame);
    // The arena is for the locked-down SDK only: serve_without_lockdown
    // serves test probes that must see exactly what the host gave them.
    let arena = host.arena_region.filter(|_| lock).and_then(map_arena);
    let name = std::env::args().next().unwrap_or_default();
    let mut reply = protocol::VERSION.to_le_bytes().to_vec();
    reply.extend_from_slice(name.as_bytes());
    let mut frame = Vec::new();
    let flags = if arena.is_some() {
        protocol::FLAG_ARENA
    } else {
        0
    };
    protocol::encode_frame_flags(&mut frame, Kind::Hello, flags, 0, &reply);
    stdout.write_all(&frame).map_err(|e| e.to_string())?;
    if lock {
        lockdown()?;
    }
    while let Some(job) = next_frame(&mut stdin, &mut decoder)? {
        if job.kind != Kind::Job {
            return Err(format!("unexpected {} frame from the host", job.kind));
        }
        let input = job_input(&job, arena.as_ref())?;
        let mut parts = Parts {
            out: &mut stdout,
            id: job.id,
            max_frame: max_frame as usize,
            arena: arena
                .as_ref()
                .filter(|_| job.flags & protocol::FLAG_REPLY_IN_ARENA != 0),
            arena_used: 0,
        };
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(input, &mut parts)))
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

/// Maps the arena the host handed over as fd 3; `None` (the pipes are used)
/// when it is not what the hello announced or cannot be mapped.
fn map_arena(region: u64) -> Option<Arena> {
    let region = usize::try_from(region).ok()?;
    // SAFETY: fd 3 is the arena the host handed over (docs/PROTOCOL.md);
    // nothing else in this process uses it.
    unsafe { Arena::attach(crate::arena::PLUGIN_FD, region) }
        .inspect_err(|e| eprintln!("plugin: no arena, using the pipes: {e}"))
        .ok()
}

/// The input of `job`: its payload, or the slice of the arena's input
/// region it names.
fn job_input<'a>(job: &'a Frame, arena: Option<&'a Arena>) -> Result<&'a [u8], String> {
    if job.flags & protocol::FLAG_ARENA == 0 {
        return Ok(&job.payload);
    }
    let arena = arena.ok_or("the host sent a job in an arena this plugin does not have")?;
    let region = arena.region() as u64;
    let (offset, len) = protocol::ArenaSlice::parse(&job.payload)
        .ok_or("arena job without a 16-byte slice")?
        .within(0, region)
        .map_err(|e| format!("the host's job: {e}"))?;
    // SAFETY: the host writes the input region only before sending a job
    // and not again until this job is answered; the slice lives for this
    // job's handler only.
    unsafe { arena.input(offset, len) }.ok_or_else(|| "arena job out of bounds".into())
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
