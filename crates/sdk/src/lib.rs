//! The Rust plugin SDK: `fn main() { plugwarden_sdk::serve(|input| ...) }`.
//!
//! A plugin links this crate alone: the wire protocol ([`protocol`], the
//! `plugwarden-proto` crate), the shared-memory [`arena`] and the lockdown,
//! none of the host's dependencies.
//!
//! ```no_run
//! // A plugin's main: answers every input in upper case; an `Err`
//! // becomes the job's error message.
//! plugwarden_sdk::serve(|input| {
//!     if input.is_empty() {
//!         return Err("empty input".to_string());
//!     }
//!     Ok(input.to_ascii_uppercase())
//! })
//! ```
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

#![deny(missing_docs)]

pub mod arena;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

pub use plugwarden_proto as protocol;
use plugwarden_seccomp::groups::{self, Arch};
use plugwarden_seccomp::{self as seccomp, ArgCheck, Leaf, Width, RET_ALLOW, RET_KILL_PROCESS};

use crate::arena::Arena;
use crate::protocol::{ArenaSliceError, Frame, FrameDecoder, FrameError, Kind};

/// What stops [`serve`] (the plugin then exits with status 2, the message
/// on stderr), fails [`lockdown`], or fails to send a job's output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The lockdown program exceeds the kernel's length limit.
    #[error("the lockdown program has {0} instructions, too many")]
    LockdownTooLong(usize),
    /// The kernel refused the lockdown filter.
    #[error("cannot install the lockdown filter: {0}")]
    Lockdown(#[source] io::Error),
    /// Writing to the host (stdout) failed.
    #[error("cannot write to the host: {0}")]
    Write(#[source] io::Error),
    /// Reading from the host (stdin) failed.
    #[error("cannot read from the host: {0}")]
    Read(#[source] io::Error),
    /// The host closed stdin before its hello.
    #[error("the host closed the pipe before hello")]
    NoHello,
    /// The host's first frame is not a valid hello.
    #[error("the host did not start with a hello frame")]
    BadHello,
    /// The host speaks another protocol version.
    #[error("host speaks protocol {host}, this plugin speaks {plugin}")]
    Version {
        /// The host's version.
        host: u32,
        /// This SDK's version.
        plugin: u32,
    },
    /// The host sent a frame of a kind it never sends to a plugin.
    #[error("unexpected {0} frame from the host")]
    UnexpectedFrame(Kind),
    /// The host started a job before finishing the current one.
    #[error("the host sent job {got} before finishing job {current}")]
    JobOrder {
        /// The job the host sent.
        got: u64,
        /// The job still open.
        current: u64,
    },
    /// The host closed stdin inside a frame.
    #[error("the host closed the pipe mid-frame")]
    ClosedMidFrame,
    /// The host's bytes are not a valid frame.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A job names the arena, which this plugin did not map.
    #[error("the host sent a job in an arena this plugin does not have")]
    NoArena,
    /// An arena job's payload is not a slice.
    #[error("arena job without a 16-byte slice")]
    ArenaSliceLength,
    /// An arena job's slice lies outside the input region.
    #[error("the host's job: {0}")]
    ArenaSlice(#[source] ArenaSliceError),
    /// An arena job's slice lies outside the mapping.
    #[error("arena job out of bounds")]
    ArenaBounds,
}

/// A handler's error is the message the host records for the job, so an
/// SDK error inside a handler (`parts.send(..)?`) becomes its text.
impl From<Error> for String {
    fn from(e: Error) -> String {
        e.to_string()
    }
}

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

/// The lockdown's allowlist on `arch`: [`LOCKDOWN`] whatever the
/// arguments, `mmap`/`mprotect` without `PROT_EXEC`, `clone` for threads
/// only, `prctl(PR_SET_NAME)` only (all compared over the full 64 bits, as
/// the seccompiler-built filter did).
fn lockdown_rules(arch: Arch) -> BTreeMap<u32, Leaf> {
    let mut map = BTreeMap::new();
    let mut put = |name: &str, leaf: Leaf| {
        if let Some(nr) = groups::number(arch, name).and_then(|n| u32::try_from(n).ok()) {
            map.insert(nr, leaf);
        }
    };
    let check = |arg, mask, value| {
        Leaf::Rules(vec![vec![ArgCheck {
            arg,
            width: Width::Qword,
            mask,
            value,
        }]])
    };
    for name in LOCKDOWN {
        put(name, Leaf::Ret(RET_ALLOW));
    }
    for name in ["mmap", "mprotect"] {
        put(name, check(2, libc::PROT_EXEC as u64, 0));
    }
    // Threads, never processes or namespaces.
    let thread = libc::CLONE_THREAD as u64;
    put(
        "clone",
        check(0, seccomp::CLONE_NAMESPACE_FLAGS | thread, thread),
    );
    put("prctl", check(0, u64::MAX, libc::PR_SET_NAME as u64));
    map
}

/// Builds the lockdown program for `arch`: our emitter's binary search
/// (the kernel converts and caches it faster than a linear chain), killing
/// the process on anything not allowed.
fn lockdown_program_for(arch: Arch) -> Result<seccompiler::BpfProgram, Error> {
    seccomp::emit(
        &lockdown_rules(arch),
        seccomp::audit_arch(arch),
        RET_KILL_PROCESS,
    )
    .map_err(Error::LockdownTooLong)
}

/// Builds the lockdown program for this architecture.
pub fn lockdown_program() -> Result<seccompiler::BpfProgram, Error> {
    lockdown_program_for(Arch::native())
}

/// Installs the lockdown filter on this process (all threads must not exist yet).
pub fn lockdown() -> Result<(), Error> {
    let prog = lockdown_program()?;
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points into `prog`, alive for the call; NO_NEW_PRIVS is
    // already set by the host, so no prctl is needed (it may be denied).
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) };
    if rc != 0 {
        return Err(Error::Lockdown(io::Error::last_os_error()));
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

impl<'a> Parts<'a> {
    /// Sends `bytes`: copied into the arena's output region when the host
    /// offered it, the part is large and it still fits; otherwise as one or
    /// more `part` frames through the pipe.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.send_in_arena(bytes)? {
            return Ok(());
        }
        for chunk in bytes.chunks(self.max_frame.max(1)) {
            // Header and payload written apart: no copy of the payload.
            let header = protocol::encode_header(Kind::Part, self.id, chunk.len() as u32);
            self.out
                .write_all(&header)
                .and_then(|()| self.out.write_all(chunk))
                .map_err(Error::Write)?;
        }
        Ok(())
    }

    /// Sends a part of `len` bytes that `fill` writes in place: straight
    /// into the arena's output region when the host offered it, the part
    /// is large and it fits (no copy of the part at all), otherwise into
    /// `scratch` (cleared, kept by the caller from part to part) and then
    /// as [`Parts::send`] does. `fill` gets exactly `len` bytes, whose
    /// contents it must not rely on.
    pub fn send_with(
        &mut self,
        len: usize,
        scratch: &mut Vec<u8>,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), Error> {
        if let Some((arena, offset)) = self.arena_room(len) {
            // SAFETY: the range is in the output region, after every part
            // this job has sent (which the host may still be reading), and
            // the host reads it only once the frame below is sent.
            if let Some(dst) = unsafe { arena.output_mut(offset, len) } {
                fill(dst);
                return self.announce_in_arena(offset, len);
            }
        }
        scratch.clear();
        scratch.resize(len, 0);
        fill(scratch);
        self.send(scratch)
    }

    /// Where the next part of `len` bytes would go in the arena's output
    /// region, when the host offered it, the part is large and it fits.
    fn arena_room(&self, len: usize) -> Option<(&'a Arena, usize)> {
        let arena = self.arena?;
        let fits = self
            .arena_used
            .checked_add(len)
            .is_some_and(|end| end <= arena.region());
        (len >= arena::THRESHOLD && fits).then(|| (arena, arena.region() + self.arena_used))
    }

    /// One `part` frame naming `bytes` copied into the output region;
    /// false when this part goes through the pipe instead. Parts never
    /// overlap within a job, so the host may copy each whenever it reads it.
    fn send_in_arena(&mut self, bytes: &[u8]) -> Result<bool, Error> {
        let Some((arena, offset)) = self.arena_room(bytes.len()) else {
            return Ok(false);
        };
        if !arena.write(offset, bytes) {
            return Ok(false);
        }
        self.announce_in_arena(offset, bytes.len())?;
        Ok(true)
    }

    /// The `part` frame for `len` bytes just written at `offset` of the
    /// output region.
    fn announce_in_arena(&mut self, offset: usize, len: usize) -> Result<(), Error> {
        self.arena_used += len;
        let slice = protocol::ArenaSlice {
            offset: offset as u64,
            len: len as u64,
        };
        let mut frame = [0u8; protocol::HEADER_LEN + protocol::ARENA_SLICE_LEN];
        frame[..protocol::HEADER_LEN].copy_from_slice(&protocol::encode_header_flags(
            Kind::Part,
            protocol::FLAG_ARENA,
            self.id,
            protocol::ARENA_SLICE_LEN as u32,
        ));
        frame[protocol::HEADER_LEN..].copy_from_slice(&slice.encode());
        self.out.write_all(&frame).map_err(Error::Write)
    }
}

/// Serves jobs: each input maps to an output or an error message.
pub fn serve<F>(mut handler: F) -> !
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, String>,
{
    serve_parts(move |input, parts| {
        let out = handler(input)?;
        Ok(parts.send(&out)?)
    })
}

/// Serves jobs whose output is sent in parts (e.g. one page at a time).
/// An input that arrives in several frames is put together first.
pub fn serve_parts<F>(handler: F) -> !
where
    F: FnMut(&[u8], &mut Parts) -> Result<(), String>,
{
    finish(run(&mut whole(handler), true))
}

/// Serves jobs as their input arrives: `handler` is called once per input
/// frame, with `last` on the job's final one, and may send output parts at
/// any time. An input larger than one frame then never has to fit in the
/// plugin's memory (`plugins/echo` answers each part as it comes).
pub fn serve_stream<F>(mut handler: F) -> !
where
    F: FnMut(&[u8], bool, &mut Parts) -> Result<(), String>,
{
    finish(run(&mut handler, true))
}

/// A whole-input handler as a streaming one: parts are kept until the last.
fn whole<F>(mut handler: F) -> impl FnMut(&[u8], bool, &mut Parts) -> Result<(), String>
where
    F: FnMut(&[u8], &mut Parts) -> Result<(), String>,
{
    let mut pending = Vec::new();
    move |chunk, last, parts| {
        if !last {
            pending.extend_from_slice(chunk);
            return Ok(());
        }
        if pending.is_empty() {
            return handler(chunk, parts);
        }
        pending.extend_from_slice(chunk);
        let input = std::mem::take(&mut pending);
        handler(&input, parts)
    }
}

/// Like [`serve`], but without the lockdown filter: for test probes that
/// must meet the host's own walls, and for plugins whose start-up cannot
/// finish before the first job. Prefer [`serve`].
pub fn serve_without_lockdown<F>(mut handler: F) -> !
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, String>,
{
    finish(run(
        &mut whole(|input: &[u8], parts: &mut Parts| Ok(parts.send(&handler(input)?)?)),
        false,
    ))
}

fn finish(result: Result<(), Error>) -> ! {
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("plugin: {e}");
            std::process::exit(2)
        }
    }
}

fn run<F>(handler: &mut F, lock: bool) -> Result<(), Error>
where
    F: FnMut(&[u8], bool, &mut Parts) -> Result<(), String>,
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
    let hello = next_frame(&mut stdin, &mut decoder)?.ok_or(Error::NoHello)?;
    let host = match protocol::HostHello::parse(&hello.payload) {
        Ok(h) if hello.kind == Kind::Hello => h,
        _ => return Err(Error::BadHello),
    };
    if host.version != protocol::VERSION {
        return Err(Error::Version {
            host: host.version,
            plugin: protocol::VERSION,
        });
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
    let flags = protocol::FLAG_INPUT_PARTS
        | if arena.is_some() {
            protocol::FLAG_ARENA
        } else {
            0
        };
    protocol::encode_frame_flags(&mut frame, Kind::Hello, flags, 0, &reply);
    stdout.write_all(&frame).map_err(Error::Write)?;
    if lock {
        lockdown()?;
    }
    // A job is zero or more input parts, then its job frame; once the
    // handler failed, the rest of that job's input is skipped.
    let mut current: Option<(u64, Result<(), String>, usize)> = None;
    while let Some(job) = next_frame(&mut stdin, &mut decoder)? {
        let last = match job.kind {
            Kind::Job => true,
            Kind::Part if job.flags == 0 => false,
            kind => return Err(Error::UnexpectedFrame(kind)),
        };
        let (id, mut result, arena_used) = current.take().unwrap_or((job.id, Ok(()), 0));
        if id != job.id {
            return Err(Error::JobOrder {
                got: job.id,
                current: id,
            });
        }
        let input = job_input(&job, arena.as_ref())?;
        let mut parts = Parts {
            out: &mut stdout,
            id: job.id,
            max_frame: max_frame as usize,
            arena: arena
                .as_ref()
                .filter(|_| job.flags & protocol::FLAG_REPLY_IN_ARENA != 0),
            arena_used,
        };
        if result.is_ok() {
            result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handler(input, last, &mut parts)
            }))
            .unwrap_or_else(|p| {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(format!("plugin panicked: {msg}"))
            });
        }
        if !last {
            current = Some((id, result, parts.arena_used));
            continue;
        }
        frame.clear();
        match result {
            Ok(()) => protocol::encode_frame(&mut frame, Kind::Done, job.id, &[]),
            Err(msg) => {
                let msg = &msg.as_bytes()[..msg.len().min(max_frame as usize)];
                protocol::encode_frame(&mut frame, Kind::Error, job.id, msg)
            }
        }
        stdout.write_all(&frame).map_err(Error::Write)?;
    }
    Ok(())
}

/// Maps the arena the host handed over as fd 3; `None` (the pipes are used)
/// when it is not what the hello announced or cannot be mapped.
fn map_arena(region: u64) -> Option<Arena> {
    let region = usize::try_from(region).ok()?;
    // SAFETY: fd 3 is the arena the host handed over (docs/PROTOCOL.md);
    // nothing else in this process uses it.
    unsafe { Arena::attach(arena::PLUGIN_FD, region) }
        .inspect_err(|e| eprintln!("plugin: no arena, using the pipes: {e}"))
        .ok()
}

/// The input of `job`: its payload, or the slice of the arena's input
/// region it names.
fn job_input<'a>(job: &'a Frame, arena: Option<&'a Arena>) -> Result<&'a [u8], Error> {
    if job.flags & protocol::FLAG_ARENA == 0 {
        return Ok(&job.payload);
    }
    let arena = arena.ok_or(Error::NoArena)?;
    let region = arena.region() as u64;
    let (offset, len) = protocol::ArenaSlice::parse(&job.payload)
        .ok_or(Error::ArenaSliceLength)?
        .within(0, region)
        .map_err(Error::ArenaSlice)?;
    // SAFETY: the host writes the input region only before sending a job
    // and not again until this job is answered; the slice lives for this
    // job's handler only.
    unsafe { arena.input(offset, len) }.ok_or(Error::ArenaBounds)
}

/// Reads the next frame; `None` at a clean EOF between frames. Consumes
/// only the bytes of that frame, so pipelined jobs stay buffered.
fn next_frame(
    input: &mut impl BufRead,
    decoder: &mut FrameDecoder,
) -> Result<Option<Frame>, Error> {
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        if buf.is_empty() {
            return if decoder.is_idle() {
                Ok(None)
            } else {
                Err(Error::ClosedMidFrame)
            };
        }
        let (used, frame) = decoder.push(buf)?;
        input.consume(used);
        if let Some(f) = frame {
            return Ok(Some(f));
        }
    }
}

#[cfg(test)]
mod tests;
