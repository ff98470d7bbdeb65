//! Host side of a running plugin: feed it jobs, read its answers, watch
//! its deadlines and its syscalls, and turn everything into a [`Verdict`].
//!
//! One poll loop ([`Conn::pump`]) serves both plugin kinds. It writes the
//! pending input without blocking, drains stdout into a bounded frame
//! decoder (worker) or the job's output sink (filter), drains stderr into a
//! bounded tail and the log (a chatty plugin can never block on a full
//! pipe), answers seccomp notifications, and notices the exit through the
//! pidfd. Every byte from the plugin is hostile; every way it can misbehave
//! ends in a verdict for the job at hand. Each part of an output goes to an
//! [`OutputSink`] as it arrives ([`crate::sink`]).

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::input::{Input, InputError, Source};
use crate::observe::PathUse;
use crate::policy::OnViolation;
use crate::protocol::{self, Frame, FrameDecoder, Kind};
use crate::sandbox::{Enforce, Mode, Process, Sandbox, SandboxError};
use crate::sink::{OutputBuf, OutputSink, SavedOutput, Spill};
use crate::spawn::ExitInfo;
use crate::verdict::{stderr_detail, TimeoutKind, Verdict};

/// Longest stderr tail kept for a verdict's detail.
const STDERR_TAIL: usize = 4096;
/// Bytes read per `read` call.
const CHUNK: usize = 256 << 10;
/// Reads of one pipe per wake-up of the poll loop (16 × 256 KiB).
const READS_PER_WAKE: usize = 16;
/// How long a worker may take to say hello after exec.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of one job's stderr relayed ([`StderrRelay`]) or logged at debug
/// level, by default; the rest is counted and dropped.
pub const STDERR_LIMIT: u64 = 1 << 20;
/// Most distinct paths observe mode keeps per job.
const MAX_PATHS: usize = 1 << 16;

/// `call`'s live view of a plugin's stderr: written to `out` as it comes,
/// at most `limit` bytes per job, then one note saying how much was
/// dropped. Unless `raw`, control characters other than newline and tab
/// are escaped ([`crate::escape::escape_lines`]).
pub struct StderrRelay {
    pub out: Box<dyn std::io::Write + Send>,
    pub limit: u64,
    pub raw: bool,
}

/// What a caller attaches to the jobs of one process besides their inputs.
#[derive(Default)]
pub struct Attach {
    /// Once set, the job in flight is killed and ends `cancelled`.
    pub cancel: Option<Arc<AtomicBool>>,
    pub relay: Option<StderrRelay>,
    /// Where outputs too big to hold go.
    pub spill: Option<Spill>,
}

/// One job's share of the stderr bounds.
#[derive(Default)]
struct StderrBudget {
    relayed: u64,
    logged: u64,
    relay_dropped: u64,
    log_dropped: u64,
    /// The start of a UTF-8 character split across two reads.
    carry: Vec<u8>,
    /// The relay's last line has no newline yet.
    line_open: bool,
}

/// The result of one job.
#[derive(Debug)]
pub struct JobOutcome {
    pub verdict: Verdict,
    /// The output; empty unless the verdict is `ok`, and empty when it
    /// went to a sink or a spill file instead.
    pub output: Vec<u8>,
    /// An ok output the host did not hold: past the spill threshold
    /// ([`Attach::spill`]), or what the job's own sink saved.
    pub saved: Option<SavedOutput>,
    pub wall: Duration,
    pub cpu_ms: u64,
    pub max_rss_kib: u64,
    pub pid: i32,
    /// Syscalls denied with EPERM (`on_violation = "errno"`) or, in log
    /// mode, that would have been denied.
    pub denied: Vec<String>,
    /// The end of the plugin's stderr.
    pub stderr_tail: String,
    /// The paths its file syscalls named (observe mode only).
    pub paths: BTreeSet<PathUse>,
}

impl JobOutcome {
    /// The outcome of a job that never produced anything.
    pub fn failed(verdict: Verdict) -> JobOutcome {
        JobOutcome {
            verdict,
            output: Vec::new(),
            saved: None,
            wall: Duration::ZERO,
            cpu_ms: 0,
            max_rss_kib: 0,
            pid: 0,
            denied: Vec::new(),
            stderr_tail: String::new(),
            paths: BTreeSet::new(),
        }
    }
}

/// Why [`Conn::pump`] returned.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// The caller's condition holds.
    Ready,
    Exited,
    Timeout(TimeoutKind),
    Protocol(String),
    OutputLimit,
    StdoutClosed,
    /// The file input failed while it was sent.
    Input(String),
    /// The caller's cancel flag was set; the plugin was killed.
    Cancelled,
    /// The host could not go on with the job (its verdict).
    Failed(Verdict),
}

/// A job's input as the send path sees it, borrowed: bytes, or a file read
/// in chunks.
#[derive(Clone, Copy)]
enum Payload<'a> {
    Bytes(&'a [u8]),
    File(&'a Source),
}

impl Payload<'_> {
    fn len(self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::File(s) => s.len(),
        }
    }
}

impl<'a> From<&'a Input> for Payload<'a> {
    fn from(input: &'a Input) -> Payload<'a> {
        match input {
            Input::Bytes(b) => Payload::Bytes(b),
            Input::File(s) => Payload::File(s),
        }
    }
}

/// A file input still being sent: read into `pending` one chunk at a time,
/// so the host never holds it whole.
struct Stream {
    src: Source,
    offset: u64,
    /// In parts of job `id`: each chunk is a frame of its own.
    parts_of: Option<u64>,
}

/// The pipes and supervision state of one process; `'s` is the life of
/// a filter's output sink.
struct Conn<'s> {
    proc: Process,
    pending: Vec<u8>,
    pending_pos: usize,
    /// Comes after `pending` on stdin.
    stream: Option<Stream>,
    /// The file input could not be read to its end.
    input_failed: Option<InputError>,
    attach: Attach,
    budget: StderrBudget,
    decoder: Option<FrameDecoder>,
    frames: VecDeque<Frame>,
    /// Filter mode: where raw stdout goes, and how much went there.
    raw: Option<&'s mut dyn OutputSink>,
    raw_len: u64,
    raw_limit: u64,
    stderr_tail: Vec<u8>,
    violation: Option<String>,
    denied: Vec<String>,
    /// Observe mode: the paths seen, and the path syscalls already listed
    /// in `denied` (once each: their calls differ by pointer only).
    paths: BTreeSet<PathUse>,
    path_calls: BTreeSet<&'static str>,
    on_violation: OnViolation,
    /// For its errno answers (soft denials), by syscall name.
    policy: Arc<crate::policy::Policy>,
    enforce: Enforce,
    killed_for: Option<TimeoutKind>,
    buf: Vec<u8>,
    last_cpu_check: Instant,
    /// The last read of stdout stopped at its budget, not at EAGAIN.
    stdout_pending: bool,
}

fn readable(f: &PollFd) -> bool {
    f.revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Adds `fd` to the poll set; returns its index.
fn slot<'a>(fds: &mut Vec<PollFd<'a>>, fd: Option<&'a OwnedFd>, flags: PollFlags) -> Option<usize> {
    fd.map(|f| {
        fds.push(PollFd::new(f.as_fd(), flags));
        fds.len() - 1
    })
}

impl<'s> Conn<'s> {
    fn new(proc: Process, sandbox: &Sandbox, framed: bool) -> Conn<'s> {
        let limits = &sandbox.policy.limits;
        Conn {
            proc,
            pending: Vec::new(),
            pending_pos: 0,
            stream: None,
            input_failed: None,
            attach: Attach::default(),
            budget: StderrBudget::default(),
            decoder: framed.then(|| FrameDecoder::new(limits.max_frame)),
            frames: VecDeque::new(),
            raw: None,
            raw_len: 0,
            raw_limit: limits.output,
            stderr_tail: Vec::new(),
            violation: None,
            denied: Vec::new(),
            paths: BTreeSet::new(),
            path_calls: BTreeSet::new(),
            on_violation: sandbox.policy.syscalls.on_violation,
            policy: sandbox.policy.clone(),
            enforce: sandbox.enforce,
            killed_for: None,
            buf: vec![0; CHUNK],
            last_cpu_check: Instant::now(),
            stdout_pending: false,
        }
    }

    fn queue(&mut self, bytes: &[u8]) {
        debug_assert!(self.stream.is_none(), "nothing is queued behind a stream");
        if self.pending_pos == self.pending.len() {
            self.pending.clear();
            self.pending_pos = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Queues an input: its bytes, or its file to be read as it is sent.
    fn queue_input(&mut self, input: Payload) {
        match input {
            Payload::Bytes(b) => self.queue(b),
            Payload::File(src) => self.stream(src, None),
        }
    }

    /// Sends `src` after whatever is pending, a chunk at a time (each in a
    /// frame of its own when `parts_of` names the job).
    fn stream(&mut self, src: &Source, parts_of: Option<u64>) {
        self.stream = Some(Stream {
            src: src.clone(),
            offset: 0,
            parts_of,
        });
    }

    /// Queues an input in parts of job `id`: `part` frames of at most
    /// [`CHUNK`] bytes, then the `job` frame with the last one (docs/PROTOCOL.md).
    fn queue_parts(&mut self, id: u64, input: Payload) {
        match input {
            Payload::Bytes(b) => {
                let mut chunks = b.chunks(CHUNK).peekable();
                while let Some(chunk) = chunks.next() {
                    let kind = if chunks.peek().is_some() {
                        Kind::Part
                    } else {
                        Kind::Job
                    };
                    self.queue(&protocol::encode_header(kind, id, chunk.len() as u32));
                    self.queue(chunk);
                }
            }
            Payload::File(src) => self.stream(src, Some(id)),
        }
    }

    fn cancelled(&self) -> bool {
        self.attach
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Everything queued has been written.
    fn all_sent(&self) -> bool {
        self.pending_pos == self.pending.len() && self.stream.is_none()
    }

    /// Refills the drained `pending` with the stream's next chunk; false
    /// when there is nothing more (or the file failed: `input_failed`).
    fn refill(&mut self) -> bool {
        let Some(s) = &mut self.stream else {
            return false;
        };
        let left = s.src.len() - s.offset;
        if left == 0 {
            self.input_failed = s.src.check_unchanged().err();
            self.stream = None;
            return false;
        }
        let n = left.min(CHUNK as u64) as usize;
        let header = match s.parts_of {
            Some(id) if n as u64 == left => {
                protocol::encode_header(Kind::Job, id, n as u32).to_vec()
            }
            Some(id) => protocol::encode_header(Kind::Part, id, n as u32).to_vec(),
            None => Vec::new(),
        };
        self.pending.clear();
        self.pending.extend_from_slice(&header);
        self.pending.resize(header.len() + n, 0);
        self.pending_pos = 0;
        if let Err(e) = s.src.read_at(s.offset, &mut self.pending[header.len()..]) {
            self.input_failed = Some(e);
            self.stream = None;
            self.pending.clear();
            return false;
        }
        s.offset += n as u64;
        true
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr_tail)
            .trim()
            .to_string()
    }

    /// Runs the loop until `ready` holds or something ends the job.
    fn pump(
        &mut self,
        deadline: Instant,
        cpu_budget: Option<(u64, u64)>,
        mut ready: impl FnMut(&mut Conn<'s>) -> bool,
    ) -> Stop {
        loop {
            if ready(self) {
                return Stop::Ready;
            }
            if self.cancelled() {
                self.proc.kill();
                return Stop::Cancelled;
            }
            // A framed conversation is over once stdout is closed (it may have
            // closed in the same read that completed an earlier frame).
            if self.decoder.is_some() && self.proc.stdout.is_none() {
                return Stop::StdoutClosed;
            }
            let now = Instant::now();
            if now >= deadline {
                self.killed_for = Some(TimeoutKind::Wall);
                self.proc.kill();
                return Stop::Timeout(TimeoutKind::Wall);
            }
            // Reading /proc costs more than a whole echo job: look at the CPU
            // clock at most every 100 ms of a job.
            let check_cpu = self.last_cpu_check.elapsed() >= Duration::from_millis(100);
            if let Some((start, budget)) = cpu_budget.filter(|_| check_cpu) {
                self.last_cpu_check = Instant::now();
                if self
                    .proc
                    .cpu_ms()
                    .is_some_and(|c| c.saturating_sub(start) > budget)
                {
                    // An answer already waiting in the pipe was given in
                    // time: the CPU since may be the next job's.
                    if self.proc.stdout.is_some() {
                        let early = self.read_stdout();
                        if ready(self) {
                            return Stop::Ready;
                        }
                        if let Some(stop) = early {
                            return stop;
                        }
                    }
                    self.killed_for = Some(TimeoutKind::Cpu);
                    self.proc.kill();
                    return Stop::Timeout(TimeoutKind::Cpu);
                }
            }
            let watched = cpu_budget.is_some() || self.attach.cancel.is_some();
            let wait =
                (deadline - now).min(Duration::from_millis(if watched { 100 } else { 1000 }));
            let want_write = !self.all_sent() && self.proc.stdin.is_some();
            let (stdin_r, stdout_r, stderr_r, listener_r, exited) = {
                let none = PollFlags::empty();
                let p = &self.proc;
                let mut fds = Vec::with_capacity(5);
                let i_in = slot(
                    &mut fds,
                    p.stdin.as_ref().filter(|_| want_write),
                    PollFlags::POLLOUT,
                );
                let i_out = slot(&mut fds, p.stdout.as_ref(), PollFlags::POLLIN);
                let i_err = slot(&mut fds, p.stderr.as_ref(), PollFlags::POLLIN);
                let i_lis = slot(&mut fds, p.listener(), PollFlags::POLLIN);
                let i_pid = slot(&mut fds, Some(p.plugin_pidfd()), PollFlags::POLLIN);
                let timeout = PollTimeout::try_from(wait.as_millis().max(1) as i32)
                    .unwrap_or(PollTimeout::MAX);
                match poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Stop::Protocol(format!("poll failed: {e}")),
                }
                let get = |i: Option<usize>| {
                    i.is_some_and(|i| fds[i].revents().is_some_and(|r| r != none))
                };
                let get_r = |i: Option<usize>| i.is_some_and(|i| readable(&fds[i]));
                (
                    get(i_in),
                    get_r(i_out),
                    get_r(i_err),
                    i_lis.and_then(|i| fds[i].revents()).unwrap_or(none),
                    get_r(i_pid),
                )
            };
            if listener_r.contains(PollFlags::POLLIN) {
                self.handle_notification();
            } else if listener_r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                // No task runs under the filter any more (the plugin has
                // exited; its init may still be ending): nothing will ever
                // come, and a hung-up listener would keep poll spinning.
                self.proc.close_listener();
            }
            if stdin_r {
                self.write_pending();
                if let Some(e) = self.input_failed.take() {
                    self.proc.kill();
                    return Stop::Input(e.to_string());
                }
            }
            if stderr_r {
                self.read_stderr();
            }
            if stdout_r {
                if let Some(stop) = self.read_stdout() {
                    if stop == Stop::StdoutClosed && ready(self) {
                        return Stop::Ready;
                    }
                    return stop;
                }
            }
            if exited {
                // Take whatever it wrote before dying (a descendant may still
                // hold the pipe: bounded), then decide.
                for _ in 0..1024 {
                    match self.read_stdout() {
                        Some(Stop::StdoutClosed) => break,
                        Some(stop) => return stop,
                        None if !self.stdout_pending => break,
                        None => {}
                    }
                }
                self.read_stderr();
                return if ready(self) {
                    Stop::Ready
                } else {
                    Stop::Exited
                };
            }
        }
    }

    fn write_pending(&mut self) {
        loop {
            if self.pending_pos == self.pending.len() && !self.refill() {
                return;
            }
            let Some(stdin) = &self.proc.stdin else {
                return;
            };
            match nix::unistd::write(stdin, &self.pending[self.pending_pos..]) {
                Ok(n) => self.pending_pos += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    // EPIPE: the plugin closed stdin; what it did instead shows elsewhere.
                    self.proc.stdin = None;
                    return;
                }
            }
        }
    }

    /// Reads what is available on stdout; `Some` ends the job.
    fn read_stdout(&mut self) -> Option<Stop> {
        // Bounded per call: a plugin that floods must not keep the loop from
        // its deadline checks.
        for _ in 0..READS_PER_WAKE {
            let Some(out) = &self.proc.stdout else {
                return Some(Stop::StdoutClosed);
            };
            let n = match nix::unistd::read(out, &mut self.buf) {
                Ok(0) => {
                    self.proc.stdout = None;
                    return Some(Stop::StdoutClosed);
                }
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    self.stdout_pending = false;
                    return None; // EAGAIN: all read
                }
            };
            if let Some(decoder) = &mut self.decoder {
                let mut data = &self.buf[..n];
                while !data.is_empty() {
                    match decoder.push(data) {
                        Ok((used, frame)) => {
                            data = &data[used..];
                            self.frames.extend(frame);
                        }
                        Err(e) => return Some(Stop::Protocol(e.to_string())),
                    }
                }
            } else {
                self.raw_len += n as u64;
                if self.raw_len > self.raw_limit {
                    return Some(Stop::OutputLimit);
                }
                if let Some(Err(v)) = self.raw.as_mut().map(|out| out.write(&self.buf[..n])) {
                    return Some(Stop::Failed(v));
                }
            }
        }
        self.stdout_pending = true;
        None
    }

    fn read_stderr(&mut self) {
        for _ in 0..READS_PER_WAKE {
            let Some(err) = &self.proc.stderr else { return };
            match nix::unistd::read(err, &mut self.buf) {
                Ok(0) => {
                    self.proc.stderr = None;
                    return;
                }
                Ok(n) => {
                    let chunk = &self.buf[..n];
                    relay(&mut self.attach.relay, &mut self.budget, chunk);
                    log_stderr(&mut self.budget, self.proc.pid, chunk);
                    self.stderr_tail.extend_from_slice(chunk);
                    if self.stderr_tail.len() > STDERR_TAIL {
                        let cut = self.stderr_tail.len() - STDERR_TAIL;
                        self.stderr_tail.drain(..cut);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Ends the job's share of the stderr bounds: notes what was dropped
    /// (in the relay and in the log) and starts the next job's share.
    fn end_stderr(&mut self) {
        let b = std::mem::take(&mut self.budget);
        if let Some(r) = &mut self.attach.relay {
            // What follows (the verdict) starts on a line of its own.
            let mut note = crate::escape::escape_lines(&b.carry);
            if b.line_open || !b.carry.is_empty() {
                note.push('\n');
            }
            if b.relay_dropped > 0 {
                note.push_str(&format!(
                    "plugwarden: the plugin's stderr was cut after {} bytes: {} more bytes dropped\n",
                    r.limit, b.relay_dropped
                ));
            }
            let _ = r
                .out
                .write_all(note.as_bytes())
                .and_then(|()| r.out.flush());
        }
        if b.log_dropped > 0 {
            tracing::debug!(
                target: "plugwarden::plugin",
                pid = self.proc.pid,
                "{} more bytes of stderr not logged (at most {STDERR_LIMIT} per job)",
                b.log_dropped
            );
        }
    }

    /// Answers one seccomp user notification: the syscall is outside the
    /// allowlist. Kill (violation), fail it with EPERM, or let it run (log).
    fn handle_notification(&mut self) {
        let Some(listener) = self.proc.listener().map(|l| l.as_raw_fd()) else {
            return;
        };
        // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV writes one seccomp_notif into `req`.
        let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if rc < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                return; // the caller died meanwhile
            }
            // The listener is gone (every filtered process exited).
            self.proc.close_listener();
            return;
        }
        let d = req.data;
        let what = crate::seccomp::describe(d.arch, d.nr, d.args);
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: -libc::EPERM,
            flags: 0,
        };
        // A soft denial: the policy answers this call with an errno, in
        // every mode (log mode shows what enforcing does), and records it.
        if self.enforce == Enforce::Observe && self.observe(req.pid, d.arch, d.nr, &d.args, &what) {
            resp.error = 0;
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
        } else if let Some(errno) = self.soft_errno(d.arch, d.nr, &d.args) {
            resp.error = -i32::from(errno);
            self.note_denied(format!(
                "{what} → {}",
                crate::spawn::errno_name(i32::from(errno))
            ));
        } else {
            self.answer(what, &mut resp);
        }
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from our stack.
        unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }

    /// The errno the policy answers syscall `nr` of `arch` with, if any.
    fn soft_errno(&self, arch: u32, nr: i32, args: &[u64; 6]) -> Option<u16> {
        let native = crate::policy::groups::Arch::native();
        if arch != crate::seccomp::audit_arch(native) {
            return None;
        }
        let name = crate::policy::groups::name_of(native, i64::from(nr))?;
        crate::policy::errno_answer(&self.policy.syscalls.errno, name, args)
    }

    /// Records the paths a file syscall names (learn); false for any
    /// other call. The first call of each such syscall is listed among
    /// the denied ones, with its path in place of the pointer.
    fn observe(&mut self, pid: u32, arch: u32, nr: i32, args: &[u64; 6], what: &str) -> bool {
        let native = crate::policy::groups::Arch::native();
        let Some(name) = (arch == crate::seccomp::audit_arch(native))
            .then(|| crate::policy::groups::name_of(native, i64::from(nr)))
            .flatten()
            .filter(|n| crate::observe::path_syscalls().any(|p| p == *n))
        else {
            return false;
        };
        let uses = crate::observe::paths_of(pid, name, args);
        if self.path_calls.insert(name) {
            let named = uses.first().map_or_else(
                || what.to_string(),
                |u| format!("{name}({:?}, ...)", u.path),
            );
            self.note_denied(named);
        }
        if self.paths.len() < MAX_PATHS {
            self.paths.extend(uses);
        }
        true
    }

    /// A call outside the allowlist: kill, EPERM, or (log) let it run.
    fn answer(&mut self, what: String, resp: &mut libc::seccomp_notif_resp) {
        match (self.enforce, self.on_violation) {
            (Enforce::Log | Enforce::Observe, _) => {
                resp.error = 0;
                resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
                self.note_denied(what);
            }
            (Enforce::Policy, OnViolation::Errno) => self.note_denied(what),
            (Enforce::Policy, OnViolation::Kill) => {
                tracing::info!(pid = self.proc.pid, syscall = %what, "seccomp violation, killing the plugin");
                if self.violation.is_none() {
                    self.violation = Some(what);
                }
                self.proc.kill();
            }
        }
    }

    fn note_denied(&mut self, what: String) {
        if self.denied.len() < 256 && !self.denied.contains(&what) {
            self.denied.push(what);
        }
    }

    /// The verdict for a job that ended with `stop` instead of an answer.
    fn verdict_for(&mut self, stop: Stop, cpu_limit: Duration) -> Verdict {
        match stop {
            Stop::Ready => Verdict::Ok,
            Stop::Timeout(kind) => Verdict::Timeout(kind),
            Stop::OutputLimit => Verdict::OutputLimit(self.raw_limit),
            Stop::Protocol(msg) => Verdict::ProtocolError(msg),
            Stop::Input(msg) => Verdict::InputError(msg),
            Stop::Cancelled => Verdict::Cancelled,
            Stop::Failed(v) => {
                self.proc.kill();
                v
            }
            Stop::StdoutClosed | Stop::Exited => {
                // The plugin closed stdout on its own (not because we killed it).
                let ours = self.violation.is_some() || self.killed_for.is_some();
                // A dying process closes stdout a moment before its pidfd
                // says it exited: give it that moment before blaming it.
                if stop == Stop::StdoutClosed
                    && !ours
                    && !self.proc.exits_within(Duration::from_millis(100))
                {
                    self.proc.kill();
                    let _ = self.proc.wait();
                    return Verdict::ProtocolError(
                        "the plugin closed stdout before answering".into(),
                    );
                }
                match self.proc.wait() {
                    Ok(info) => self.exit_verdict(info, cpu_limit),
                    Err(e) => Verdict::ProtocolError(format!("cannot reap the plugin: {e}")),
                }
            }
        }
    }

    fn exit_verdict(&self, info: ExitInfo, cpu_limit: Duration) -> Verdict {
        if let Some(v) = &self.violation {
            return Verdict::Violation(v.clone());
        }
        if let Some(kind) = self.killed_for {
            return Verdict::Timeout(kind);
        }
        let stderr = self.stderr_text();
        if let Some(cg) = info.cgroup.filter(|c| c.oom_killed) {
            let peak = cg
                .memory_peak
                .map_or(String::new(), |p| format!(", peak {} MiB", p >> 20));
            return Verdict::Memory(format!("memory limit reached (cgroup OOM kill{peak})"));
        }
        match (info.signal(), info.code()) {
            // The host's own filter never kills (it hands every miss, a
            // foreign ABI included, to the host, which names it): SIGSYS
            // comes from a filter the plugin installed itself.
            (Some(libc::SIGSYS), _) => Verdict::Violation(
                "killed by SIGSYS: a seccomp filter the plugin installed itself (the SDK's lockdown) denied a syscall, or it raised SIGSYS"
                    .into(),
            ),
            (Some(libc::SIGXCPU), _) => Verdict::Timeout(TimeoutKind::Cpu),
            (Some(libc::SIGKILL), _) if info.cpu_ms() >= cpu_limit.as_millis() as u64 => {
                Verdict::Timeout(TimeoutKind::Cpu)
            }
            (Some(sig), _) if looks_like_oom(&stderr) => {
                Verdict::Memory(format!("address-space limit reached (the plugin died by {})", crate::verdict::signal_name(sig)))
            }
            (Some(signal), _) => {
                // The kernel's own account: whether a core was dumped
                // (RLIMIT_CORE is 0, but a piped core_pattern ignores it).
                let line = stderr_detail(&self.stderr_tail);
                let detail = match (info.core_dumped(), line) {
                    (true, None) => "core dumped".to_string(),
                    (true, Some(line)) => format!("core dumped; {line}"),
                    (false, line) => line.unwrap_or_default(),
                };
                Verdict::Crashed { signal, detail }
            }
            (None, Some(code)) if looks_like_oom(&stderr) => {
                Verdict::Memory(format!("address-space limit reached (exit status {code})"))
            }
            (None, Some(code)) => Verdict::ProtocolError(format!(
                "the plugin exited with status {code} before answering{}",
                suffix(&self.stderr_tail)
            )),
            _ => Verdict::ProtocolError("the plugin ended in an unknown way".into()),
        }
    }
}

fn looks_like_oom(stderr: &str) -> bool {
    [
        "memory allocation of",
        "MemoryError",
        "Cannot allocate memory",
        "out of memory",
        "std::bad_alloc",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// Writes what the relay's budget allows of `chunk` to the relay. The
/// budget counts bytes written (escaped, a control byte takes four), so
/// the limit bounds what reaches the terminal whatever the plugin writes.
fn relay(relay: &mut Option<StderrRelay>, b: &mut StderrBudget, chunk: &[u8]) {
    let Some(r) = relay else { return };
    if b.relay_dropped > 0 {
        // Cut once: nothing after the first byte dropped is shown.
        b.relay_dropped += chunk.len() as u64;
        return;
    }
    let mut data = std::mem::take(&mut b.carry);
    data.extend_from_slice(chunk);
    if !r.raw {
        let whole = data.len() - incomplete_tail(&data);
        b.carry = data.split_off(whole);
    }
    let mut rest = &data[..];
    while !rest.is_empty() {
        let piece = &rest[..char_boundary(rest, 4096)];
        let text = if r.raw {
            piece.to_vec()
        } else {
            crate::escape::escape_lines(piece).into_bytes()
        };
        if b.relayed + text.len() as u64 > r.limit {
            break;
        }
        // A closed stderr is the caller's business, not the job's.
        let _ = r.out.write_all(&text);
        b.relayed += text.len() as u64;
        b.line_open = text.last().is_some_and(|&c| c != b'\n');
        rest = &rest[piece.len()..];
    }
    if !rest.is_empty() {
        b.relay_dropped += (rest.len() + b.carry.len()) as u64;
        b.carry.clear();
    }
    let _ = r.out.flush();
}

/// The largest end `<= max` of a prefix of `data` that does not split a
/// UTF-8 character (`data.len()` when shorter).
fn char_boundary(data: &[u8], max: usize) -> usize {
    if data.len() <= max {
        return data.len();
    }
    let mut end = max;
    while end > max.saturating_sub(3) && data[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    end
}

/// Length of a UTF-8 character cut short at the end of `data` (0 to 3).
fn incomplete_tail(data: &[u8]) -> usize {
    for back in 1..=data.len().min(3) {
        let b = data[data.len() - back];
        if b & 0xc0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match b {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

/// Logs `chunk` line by line at debug level, escaped, within the job's
/// log budget.
fn log_stderr(b: &mut StderrBudget, pid: i32, chunk: &[u8]) {
    if !tracing::enabled!(target: "plugwarden::plugin", tracing::Level::DEBUG) {
        return;
    }
    let take = chunk
        .len()
        .min(STDERR_LIMIT.saturating_sub(b.logged) as usize);
    b.logged += take as u64;
    b.log_dropped += (chunk.len() - take) as u64;
    for line in chunk[..take]
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
    {
        // A line without end costs the log 4 KiB, not its length.
        let shown = &line[..char_boundary(line, 4096)];
        let more = if shown.len() < line.len() { " …" } else { "" };
        let line = crate::escape::escape(shown);
        tracing::debug!(target: "plugwarden::plugin", pid, "{line}{more}");
    }
}

/// `: stderr "…"` (see [`stderr_detail`]), or nothing.
fn suffix(tail: &[u8]) -> String {
    stderr_detail(tail).map_or_else(String::new, |d| format!(": {d}"))
}

/// A persistent worker speaking the plugwarden protocol.
pub struct Worker {
    conn: Conn<'static>,
    next_id: u64,
    /// Jobs answered so far.
    pub jobs: u64,
    /// Jobs whose input went through the shared-memory arena.
    pub arena_inputs: u64,
    /// Answer parts taken from the arena's output region.
    pub arena_parts: u64,
    cpu_limit: Duration,
    wall_limit: Duration,
    output_limit: u64,
    max_frame: u32,
    dead: bool,
    greeted: bool,
    peak_rss_kib: u64,
    /// CPU clock (ms) at the end of the previous job.
    last_cpu: Option<u64>,
    /// The plugin has an arena and said in its hello that it maps it.
    arena_on: bool,
    /// The plugin's hello said it takes a job's input in parts.
    parts_on: bool,
    /// The one job in flight that was sent with `FLAG_REPLY_IN_ARENA`.
    reply_offered: Option<u64>,
    /// Set when a frame arrived for a job already answered: that job sent
    /// bytes after its answer (the fault is its, not the awaited job's).
    late_frame_for: Option<u64>,
}

impl Worker {
    /// Spawns a worker and queues the hello; the reply is checked with the first job.
    pub fn start(sandbox: &Sandbox) -> Result<Worker, SandboxError> {
        let proc = sandbox.spawn()?;
        let limits = &sandbox.policy.limits;
        let mut conn = Conn::new(proc, sandbox, true);
        let mut hello = Vec::new();
        match conn.proc.arena() {
            Some(arena) => protocol::encode_frame(
                &mut hello,
                Kind::Hello,
                0,
                &protocol::host_hello_arena(limits.max_frame, arena.region() as u64),
            ),
            None => protocol::encode_frame(
                &mut hello,
                Kind::Hello,
                0,
                &protocol::host_hello(limits.max_frame),
            ),
        }
        conn.queue(&hello);
        Ok(Worker {
            conn,
            next_id: 1,
            jobs: 0,
            arena_inputs: 0,
            arena_parts: 0,
            cpu_limit: limits.cpu,
            wall_limit: limits.wall,
            output_limit: limits.output,
            max_frame: limits.max_frame,
            dead: false,
            greeted: false,
            peak_rss_kib: 0,
            last_cpu: None,
            arena_on: false,
            parts_on: false,
            reply_offered: None,
            late_frame_for: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.conn.proc.pid
    }

    /// Attaches a cancel flag and a stderr relay to this worker's jobs.
    pub fn attach(&mut self, attach: Attach) {
        self.conn.attach = attach;
    }

    /// False once a job killed or lost the worker.
    pub fn is_alive(&self) -> bool {
        !self.dead
    }

    pub fn process(&self) -> &Process {
        &self.conn.proc
    }

    /// Waits for the plugin's hello (at most 10 s).
    fn handshake(&mut self) -> Result<(), Verdict> {
        let deadline =
            Instant::now() + HELLO_TIMEOUT.min(self.wall_limit.max(Duration::from_secs(1)));
        let stop = self.conn.pump(deadline, None, |c| !c.frames.is_empty());
        if stop != Stop::Ready {
            return Err(match self.conn.verdict_for(stop, self.cpu_limit) {
                Verdict::Timeout(_) => Verdict::ProtocolError("the plugin never said hello".into()),
                v => v,
            });
        }
        let frame = self.conn.frames.pop_front().expect("ready");
        if frame.kind != Kind::Hello {
            return Err(Verdict::ProtocolError(format!(
                "expected hello, the plugin sent a {} frame",
                frame.kind
            )));
        }
        match protocol::PluginHello::parse(&frame.payload) {
            Ok(h) if h.version == protocol::VERSION => {
                // A plugin that claims the arena without having one is
                // simply not offered any.
                self.arena_on =
                    frame.flags & protocol::FLAG_ARENA != 0 && self.conn.proc.arena().is_some();
                self.parts_on = frame.flags & protocol::FLAG_INPUT_PARTS != 0;
                Ok(())
            }
            Ok(h) => Err(Verdict::ProtocolError(format!(
                "the plugin speaks protocol version {}, this host speaks {}",
                h.version,
                protocol::VERSION
            ))),
            Err(e) => Err(Verdict::ProtocolError(e.to_string())),
        }
    }

    /// Runs one job to its verdict.
    pub fn run_job(&mut self, input: &[u8]) -> JobOutcome {
        self.job(Payload::Bytes(input), None)
    }

    /// Runs one job whose input may be a file, sent in bounded chunks
    /// (through the arena when it fits, else through the pipe). With a
    /// `sink`, the output goes to it part by part as it arrives (the
    /// outcome's `output` stays empty; its `saved` is what the sink saved).
    pub fn run_input(&mut self, input: &Input, sink: Option<&mut dyn OutputSink>) -> JobOutcome {
        self.job(input.into(), sink)
    }

    fn job(&mut self, input: Payload, sink: Option<&mut dyn OutputSink>) -> JobOutcome {
        let mut started = Instant::now();
        if self.dead {
            return JobOutcome::failed(Verdict::ProtocolError(
                "the worker is no longer running".into(),
            ));
        }
        // The CPU clock as the previous job left it: one /proc read per job.
        let cpu_start = self
            .last_cpu
            .unwrap_or_else(|| self.conn.proc.cpu_ms().unwrap_or(0));
        // With an arena, the plugin's hello says whether it maps it, and
        // for an input larger than one frame whether it takes parts: wait
        // for it before the first job (one round trip, once per worker).
        let one_frame = input.len() <= u64::from(self.max_frame);
        if !self.greeted && (self.conn.proc.arena().is_some() || !one_frame) {
            self.greeted = true;
            if let Err(v) = self.handshake() {
                self.dead = true;
                self.jobs += 1;
                return self.outcome(v, Vec::new(), None, started, cpu_start);
            }
            // Start-up is not the job's time.
            started = Instant::now();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.reply_offered = self.arena_on.then_some(id);
        let in_arena = match self.send_in_arena(id, input) {
            Ok(sent) => sent,
            Err(e) => return JobOutcome::failed(Verdict::InputError(e.to_string())),
        };
        match u32::try_from(input.len()) {
            _ if in_arena => {}
            Ok(len) if len <= self.max_frame => {
                let flags = if self.arena_on {
                    protocol::FLAG_REPLY_IN_ARENA
                } else {
                    0
                };
                self.conn
                    .queue(&protocol::encode_header_flags(Kind::Job, flags, id, len));
                self.conn.queue_input(input);
            }
            _ if self.parts_on => {
                // Through the pipe, a part at a time: no reply in the arena.
                self.reply_offered = None;
                self.conn.queue_parts(id, input);
            }
            _ => {
                return JobOutcome::failed(Verdict::InputError(format!(
                    "input too large for one frame ({} bytes, limit {}), and the plugin does not take inputs in parts",
                    input.len(),
                    self.max_frame
                )))
            }
        }
        self.conn.denied.clear();
        self.conn.paths.clear();
        self.conn.path_calls.clear();
        let budget = self.cpu_limit.as_millis() as u64;
        let mut held = OutputBuf::new(self.conn.attach.spill.clone());
        let sink = sink.unwrap_or(&mut held);
        let (verdict, saved) = match self.await_answer(id, started, (cpu_start, budget), true, sink)
        {
            Ok(()) => (Verdict::Ok, sink.take_saved()),
            Err(v) => {
                self.dead = !matches!(v, Verdict::PluginError(_));
                (v, None)
            }
        };
        let output = if verdict.is_ok() {
            held.into_bytes()
        } else {
            Vec::new()
        };
        self.jobs += 1;
        self.outcome(verdict, output, saved, started, cpu_start)
    }

    /// Writes a bulk input straight into the arena's input region (a file
    /// in bounded chunks) and queues the job frame naming it; false when
    /// the plugin has no arena, the input is small (the pipes are as fast)
    /// or larger than the region.
    fn send_in_arena(&mut self, id: u64, input: Payload) -> Result<bool, InputError> {
        let Some(arena) = self.conn.proc.arena().filter(|_| self.arena_on) else {
            return Ok(false);
        };
        let len = input.len();
        if len < crate::arena::THRESHOLD as u64 || len > arena.region() as u64 {
            return Ok(false);
        }
        match input {
            Payload::Bytes(b) => {
                if !arena.write(0, b) {
                    return Ok(false);
                }
            }
            Payload::File(src) => {
                let mut buf = vec![0u8; CHUNK];
                let mut offset = 0;
                while offset < len {
                    let n = (len - offset).min(CHUNK as u64) as usize;
                    src.read_at(offset, &mut buf[..n])?;
                    arena.write(offset as usize, &buf[..n]);
                    // The plugin reads it from its own mapping.
                    arena.release(offset as usize, n);
                    offset += n as u64;
                }
                src.check_unchanged()?;
            }
        }
        let slice = protocol::ArenaSlice { offset: 0, len };
        let mut frame = Vec::with_capacity(protocol::HEADER_LEN + protocol::ARENA_SLICE_LEN);
        protocol::encode_frame_flags(
            &mut frame,
            Kind::Job,
            protocol::FLAG_ARENA | protocol::FLAG_REPLY_IN_ARENA,
            id,
            &slice.encode(),
        );
        self.conn.queue(&frame);
        self.arena_inputs += 1;
        Ok(true)
    }

    /// Runs several jobs pipelined: every input is written at once and the
    /// answers are read as they come, so the plugin never waits for the
    /// host between jobs. Each job has the full wall budget, counted from
    /// the previous answer, and one CPU budget (see the loop below). Returns one outcome per input in
    /// order, stopping after the first job that retires the worker; the
    /// caller runs the rest on a fresh worker. The arena has one input and
    /// one output region, which only one job in flight can own: the first
    /// input of at least [`crate::arena::THRESHOLD`] bytes gets it, every
    /// other job goes through the pipes.
    pub fn run_batch(&mut self, inputs: &[&[u8]]) -> Vec<JobOutcome> {
        let mut out = Vec::with_capacity(inputs.len());
        if self.dead {
            return out;
        }
        self.reply_offered = None;
        // As in run_job: with an arena, learn from the hello whether the
        // plugin maps it before any job is sent.
        if !self.greeted && self.conn.proc.arena().is_some() {
            self.greeted = true;
            if let Err(v) = self.handshake() {
                self.dead = true;
                self.jobs += 1;
                let cpu_start = self.last_cpu.unwrap_or(0);
                out.push(self.outcome(v, Vec::new(), None, Instant::now(), cpu_start));
                return out;
            }
        }
        let first_id = self.next_id;
        for input in inputs {
            let Ok(len) = u32::try_from(input.len()) else {
                break;
            };
            let id = self.next_id;
            let arena_free = self.arena_on && self.reply_offered.is_none();
            if arena_free && matches!(self.send_in_arena(id, Payload::Bytes(input)), Ok(true)) {
                self.reply_offered = Some(id);
            } else {
                self.conn
                    .queue(&protocol::encode_header(Kind::Job, id, len));
                self.conn.queue(input);
            }
            self.next_id += 1;
        }
        let sent = (self.next_id - first_id) as usize;
        self.conn.denied.clear();
        self.conn.paths.clear();
        self.conn.path_calls.clear();
        self.late_frame_for = None;
        // Each job has one CPU budget, counted from the CPU clock's last
        // reading (`mark`). The clock is read after an answer that took 1 ms
        // or more; the jobs answered faster in between used at most their
        // wall time per thread, and what they used counts against the next
        // slow job's budget (stricter, never looser). A fast window thus
        // costs no /proc read per job, and a slow job late in a window gets
        // no more than its own budget.
        let cpu_start = self
            .last_cpu
            .unwrap_or_else(|| self.conn.proc.cpu_ms().unwrap_or(0));
        let budget = self.cpu_limit.as_millis() as u64;
        let mut mark = cpu_start;
        let mut measured: Vec<Option<u64>> = Vec::with_capacity(sent);
        for (k, id) in (first_id..first_id + sent as u64).enumerate() {
            let started = Instant::now();
            let last = k + 1 == sent;
            let mut held = OutputBuf::new(self.conn.attach.spill.clone());
            let result = self.await_answer(id, started, (mark, budget), last, &mut held);
            let cpu = if started.elapsed() >= Duration::from_millis(1) {
                self.conn.proc.cpu_ms().map(|now| {
                    let used = now.saturating_sub(mark);
                    mark = now;
                    used
                })
            } else {
                None
            };
            let (verdict, saved, output) = match result {
                Ok(()) => (Verdict::Ok, held.take_saved(), held.into_bytes()),
                Err(v) => {
                    self.dead = !matches!(v, Verdict::PluginError(_));
                    // A second answer to an earlier job of this window: that
                    // job broke the protocol; this one and the rest were not
                    // run by an honest worker and get no outcome (a pool
                    // resends them to a fresh worker).
                    if let Some(late) = self.late_frame_for.take() {
                        if let Some(o) = late
                            .checked_sub(first_id)
                            .and_then(|i| out.get_mut(i as usize))
                        {
                            o.verdict = Verdict::ProtocolError(
                                "the plugin sent bytes after its answer".into(),
                            );
                            o.output.clear();
                            o.saved = None;
                            break;
                        }
                    }
                    (v, None, Vec::new())
                }
            };
            self.jobs += 1;
            measured.push(cpu);
            out.push(JobOutcome {
                verdict,
                output,
                saved,
                wall: started.elapsed(),
                cpu_ms: 0,
                max_rss_kib: 0,
                pid: self.conn.proc.pid,
                denied: std::mem::take(&mut self.conn.denied),
                paths: std::mem::take(&mut self.conn.paths),
                stderr_tail: String::new(),
            });
            if self.dead {
                break;
            }
        }
        // Jobs whose CPU was measured keep it; the rest share what is left.
        let last = self.outcome(Verdict::Ok, Vec::new(), None, Instant::now(), cpu_start);
        let known: u64 = measured.iter().flatten().sum();
        let unknown = measured.iter().filter(|m| m.is_none()).count().max(1) as u64;
        let share = last.cpu_ms.saturating_sub(known) / unknown;
        for (i, o) in out.iter_mut().enumerate() {
            o.cpu_ms = measured.get(i).copied().flatten().unwrap_or(share);
            o.max_rss_kib = last.max_rss_kib;
        }
        if let Some(o) = out.last_mut() {
            o.stderr_tail = last.stderr_tail;
        }
        if sent < inputs.len() && !self.dead {
            out.push(JobOutcome::failed(Verdict::InputError(
                "input larger than 4 GiB".into(),
            )));
        }
        out
    }

    /// Reads the answer to `id` into `sink`, a part at a time, within the
    /// output limit over the whole job; with `last`, nothing may follow it.
    /// `cpu` is (CPU clock at the start, budget in ms since then).
    fn await_answer(
        &mut self,
        id: u64,
        started: Instant,
        cpu: (u64, u64),
        last: bool,
        sink: &mut dyn OutputSink,
    ) -> Result<(), Verdict> {
        let mut started = started;
        if self.jobs == 0 && !self.greeted {
            self.greeted = true;
            self.handshake()?;
            // Start-up is not the job's time.
            started = Instant::now();
        }
        let deadline = started + self.wall_limit;
        let budget = Some(cpu);
        // Bytes of this job's output so far.
        let mut written = 0u64;
        loop {
            let stop = self.conn.pump(deadline, budget, |c| !c.frames.is_empty());
            if stop != Stop::Ready {
                return Err(self.conn.verdict_for(stop, self.cpu_limit));
            }
            let frame = self.conn.frames.pop_front().expect("ready");
            if frame.id != id {
                self.conn.proc.kill();
                if frame.id < id {
                    self.late_frame_for = Some(frame.id);
                }
                return Err(Verdict::ProtocolError(format!(
                    "the plugin answered job {} which was never sent (expected {id})",
                    frame.id
                )));
            }
            match frame.kind {
                Kind::Part | Kind::Done => {
                    let done = frame.kind == Kind::Done;
                    if let Err(v) = self.take_part(id, frame, &mut written, sink) {
                        // It may still be sending.
                        self.conn.proc.kill();
                        return Err(v);
                    }
                    if done {
                        break;
                    }
                }
                Kind::Error => {
                    // Escaped, not quoted: the plugin's own words for its
                    // refusal, kept on one line that cannot pass for another.
                    let msg = &frame.payload[..frame.payload.len().min(4096)];
                    return Err(Verdict::PluginError(crate::escape::escape(msg)));
                }
                kind => {
                    self.conn.proc.kill();
                    return Err(Verdict::ProtocolError(format!(
                        "unexpected {kind} frame from the plugin"
                    )));
                }
            }
        }
        // Nothing may follow the last answer: no job is in flight then.
        if last
            && (!self.conn.frames.is_empty()
                || !self
                    .conn
                    .decoder
                    .as_ref()
                    .is_some_and(FrameDecoder::is_idle))
        {
            self.conn.proc.kill();
            return Err(Verdict::ProtocolError(
                "the plugin sent bytes after its answer".into(),
            ));
        }
        sink.end()
    }

    /// Hands one part of job `id`'s output to `sink`, `written` bytes
    /// having gone before it: a pipe part as it is, an arena part after
    /// its slice is checked against the region (the sink copies it out).
    fn take_part(
        &mut self,
        id: u64,
        frame: Frame,
        written: &mut u64,
        sink: &mut dyn OutputSink,
    ) -> Result<(), Verdict> {
        let in_arena = frame.flags & protocol::FLAG_ARENA != 0;
        let (offset, len) = if in_arena {
            self.arena_slice(id, &frame.payload)?
        } else {
            (0, frame.payload.len())
        };
        *written += len as u64;
        if *written > self.output_limit {
            return Err(Verdict::OutputLimit(self.output_limit));
        }
        if !in_arena {
            return sink.write_owned(frame.payload);
        }
        let arena = self.conn.proc.arena().expect("checked by arena_slice");
        if !sink.write_arena(arena, offset, len)? {
            return Err(Verdict::ProtocolError("arena answer out of bounds".into()));
        }
        self.arena_parts += 1;
        Ok(())
    }

    /// The offset and length of an answer of job `id` left in the arena's
    /// output region, checked against the region.
    fn arena_slice(&self, id: u64, payload: &[u8]) -> Result<(usize, usize), Verdict> {
        let violation = |what: String| Verdict::ProtocolError(what);
        let arena = match self.conn.proc.arena() {
            Some(arena) if self.reply_offered == Some(id) => arena,
            _ => {
                return Err(violation(format!(
                    "the plugin answered job {id} in the arena, which the host did not offer"
                )))
            }
        };
        let slice = protocol::ArenaSlice::parse(payload)
            .ok_or_else(|| violation("arena answer without a 16-byte slice".into()))?;
        let region = arena.region() as u64;
        slice
            .within(region, region)
            .map_err(|e| violation(format!("the plugin's answer: {e}")))
    }

    fn outcome(
        &mut self,
        verdict: Verdict,
        output: Vec<u8>,
        saved: Option<SavedOutput>,
        started: Instant,
        cpu_start: u64,
    ) -> JobOutcome {
        let (cpu_ms, max_rss_kib) = match self.conn.proc.has_exited() {
            true => {
                let info = self.conn.proc.wait().unwrap_or_default();
                let peak = info
                    .cgroup
                    .and_then(|c| c.memory_peak)
                    .map_or(info.maxrss_kib, |p| p / 1024);
                (info.cpu_ms().saturating_sub(cpu_start), peak)
            }
            false => {
                // The worker's peak as seen at job ends (the cgroup's peak
                // replaces it once the process has exited).
                self.peak_rss_kib = self.peak_rss_kib.max(self.conn.proc.rss_kib().unwrap_or(0));
                let now = self.conn.proc.cpu_ms().unwrap_or(cpu_start);
                self.last_cpu = Some(now);
                (now.saturating_sub(cpu_start), self.peak_rss_kib)
            }
        };
        self.conn.end_stderr();
        JobOutcome {
            verdict,
            output,
            saved,
            wall: started.elapsed(),
            cpu_ms,
            max_rss_kib,
            pid: self.conn.proc.pid,
            denied: std::mem::take(&mut self.conn.denied),
            paths: std::mem::take(&mut self.conn.paths),
            stderr_tail: self.conn.stderr_text(),
        }
    }

    /// Current resident set size in bytes (for recycling decisions).
    pub fn rss_bytes(&self) -> Option<u64> {
        self.conn.proc.rss_kib().map(|rss| rss * 1024)
    }

    /// Ends the worker: closes stdin, gives it a moment to exit, then kills and reaps it.
    pub fn shutdown(mut self) -> Option<ExitInfo> {
        self.conn.proc.stdin = None;
        self.conn.read_stderr();
        self.conn.proc.exits_within(Duration::from_millis(200));
        self.conn.proc.terminate()
    }
}

/// Runs one job through a filter: a fresh process, input on stdin, output
/// from stdout, exit status 0 = ok.
pub fn run_filter(sandbox: &Sandbox, input: &[u8]) -> JobOutcome {
    filter_job(sandbox, Payload::Bytes(input), Attach::default(), None)
}

/// [`run_filter`] for an input that may be a file, streamed to the
/// filter's stdin in bounded chunks, with what the caller attaches; with
/// a `sink`, stdout goes to it as it is read (see [`Worker::run_input`]).
pub fn run_filter_input(
    sandbox: &Sandbox,
    input: &Input,
    attach: Attach,
    sink: Option<&mut dyn OutputSink>,
) -> JobOutcome {
    filter_job(sandbox, input.into(), attach, sink)
}

fn filter_job(
    sandbox: &Sandbox,
    input: Payload,
    attach: Attach,
    sink: Option<&mut dyn OutputSink>,
) -> JobOutcome {
    let started = Instant::now();
    let proc = match sandbox.spawn() {
        Ok(p) => p,
        Err(e) => return JobOutcome::failed(Verdict::SetupError(e.to_string())),
    };
    debug_assert_eq!(sandbox.plugin.mode, Mode::Filter);
    let limits = sandbox.policy.limits.clone();
    let mut held = OutputBuf::new(attach.spill.clone());
    let mut conn = Conn::new(proc, sandbox, false);
    conn.raw = Some(sink.unwrap_or(&mut held));
    conn.attach = attach;
    conn.queue_input(input);
    let deadline = started + limits.wall;
    // Write everything, then close stdin so the filter sees EOF.
    let stop = conn.pump(deadline, None, |c| {
        if c.all_sent() {
            c.proc.stdin = None;
        }
        c.proc.stdin.is_none() && c.proc.stdout.is_none() && c.proc.has_exited()
    });
    let verdict = match stop {
        Stop::Ready | Stop::Exited | Stop::StdoutClosed => {
            // stdout is at EOF; wait for the exit within the deadline.
            let stop = if conn.proc.has_exited() {
                Stop::Ready
            } else {
                conn.pump(deadline, None, |c| c.proc.has_exited())
            };
            match stop {
                Stop::Ready | Stop::Exited => match conn.proc.wait() {
                    Ok(info) if info.code() == Some(0) && conn.violation.is_none() => Verdict::Ok,
                    Ok(info) if info.code().is_some() && conn.violation.is_none() => {
                        let code = info.code().unwrap_or(-1);
                        let stderr = conn.stderr_text();
                        if looks_like_oom(&stderr) {
                            Verdict::Memory(format!(
                                "address-space limit reached (exit status {code})"
                            ))
                        } else {
                            Verdict::PluginError(format!(
                                "exit status {code}{}",
                                suffix(&conn.stderr_tail)
                            ))
                        }
                    }
                    Ok(info) => conn.exit_verdict(info, limits.cpu),
                    Err(e) => Verdict::ProtocolError(format!("cannot reap the plugin: {e}")),
                },
                other => conn.verdict_for(other, limits.cpu),
            }
        }
        other => conn.verdict_for(other, limits.cpu),
    };
    let info = conn.proc.terminate().unwrap_or_default();
    conn.end_stderr();
    let sink = conn.raw.take().expect("set above");
    let (verdict, saved) = match verdict {
        Verdict::Ok => match sink.end() {
            Ok(()) => (Verdict::Ok, sink.take_saved()),
            Err(v) => (v, None),
        },
        v => (v, None),
    };
    let mut outcome = JobOutcome {
        verdict,
        output: Vec::new(),
        saved,
        wall: started.elapsed(),
        cpu_ms: info.cpu_ms(),
        max_rss_kib: info.maxrss_kib,
        pid: conn.proc.pid,
        denied: std::mem::take(&mut conn.denied),
        paths: std::mem::take(&mut conn.paths),
        stderr_tail: conn.stderr_text(),
    };
    drop(conn);
    if outcome.verdict.is_ok() {
        outcome.output = held.into_bytes();
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn relayed(raw: bool, limit: u64, chunks: &[&[u8]]) -> (String, StderrBudget) {
        let out = Shared::default();
        let mut r = Some(StderrRelay {
            out: Box::new(out.clone()),
            limit,
            raw,
        });
        let mut b = StderrBudget::default();
        for c in chunks {
            relay(&mut r, &mut b, c);
        }
        let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
        (text, b)
    }

    #[test]
    fn test_relay_escapes_control_characters_but_keeps_lines() {
        let (text, b) = relayed(false, 1 << 20, &[b"warn:\tx\n\x1b]0;pwned\x07\x1b[2J\n"]);
        assert_eq!(text, "warn:\tx\n\\x1b]0;pwned\\x07\\x1b[2J\n");
        assert!(!b.line_open);
    }

    #[test]
    fn test_relay_utf8_split_across_reads_stays_one_character() {
        let e = "é".as_bytes();
        let (text, b) = relayed(false, 1 << 20, &[&[b'a', e[0]], &[e[1], b'!']]);
        assert_eq!(text, "aé!");
        assert!(b.carry.is_empty() && b.line_open);
    }

    #[test]
    fn test_relay_past_the_limit_counts_what_it_drops() {
        let (text, b) = relayed(true, 4, &[b"abc", b"defg", b"\x1b"]);
        assert_eq!(text, "abc");
        assert_eq!((b.relayed, b.relay_dropped), (3, 5));
    }

    #[test]
    fn test_relay_limit_counts_escaped_bytes() {
        let flood = vec![0x1bu8; 64 << 10];
        let (text, b) = relayed(false, 16 << 10, &[&flood]);
        assert_eq!(text.len(), 16 << 10);
        assert_eq!(b.relay_dropped, (60 << 10) as u64);
    }
}
