//! Host side of a running plugin: feed it jobs, read its answers, watch
//! its deadlines and its syscalls, and turn everything into a [`Verdict`].
//!
//! One poll loop ([`Conn::pump`]) serves both plugin kinds. It writes the
//! pending input without blocking, drains stdout into a bounded frame
//! decoder (worker) or a bounded buffer (filter), drains stderr into a
//! bounded tail and the log (a chatty plugin can never block on a full
//! pipe), answers seccomp notifications, and notices the exit through the
//! pidfd. Every byte from the plugin is hostile; every way it can misbehave
//! ends in a verdict for the job at hand.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::forkserver::ExitInfo;
use crate::policy::OnViolation;
use crate::protocol::{self, Frame, FrameDecoder, Kind};
use crate::sandbox::{Enforce, Mode, Process, Sandbox, SandboxError};
use crate::verdict::{TimeoutKind, Verdict};

/// Longest stderr tail kept for a verdict's detail.
const STDERR_TAIL: usize = 4096;
/// Bytes read per `read` call.
const CHUNK: usize = 256 << 10;
/// Reads of one pipe per wake-up of the poll loop (16 × 256 KiB).
const READS_PER_WAKE: usize = 16;
/// How long a worker may take to say hello after exec.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The result of one job.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    pub verdict: Verdict,
    /// The output; empty unless the verdict is `ok`.
    pub output: Vec<u8>,
    pub wall: Duration,
    pub cpu_ms: u64,
    pub max_rss_kib: u64,
    pub pid: i32,
    /// Syscalls denied with EPERM (`on_violation = "errno"`) or, in log
    /// mode, that would have been denied.
    pub denied: Vec<String>,
    /// The end of the plugin's stderr.
    pub stderr_tail: String,
}

impl JobOutcome {
    /// The outcome of a job that never produced anything.
    pub fn failed(verdict: Verdict) -> JobOutcome {
        JobOutcome {
            verdict,
            output: Vec::new(),
            wall: Duration::ZERO,
            cpu_ms: 0,
            max_rss_kib: 0,
            pid: 0,
            denied: Vec::new(),
            stderr_tail: String::new(),
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
}

/// The pipes and supervision state of one process.
struct Conn {
    proc: Process,
    pending: Vec<u8>,
    pending_pos: usize,
    decoder: Option<FrameDecoder>,
    frames: VecDeque<Frame>,
    /// Filter mode: raw stdout.
    raw: Vec<u8>,
    raw_limit: u64,
    stderr_tail: Vec<u8>,
    violation: Option<String>,
    denied: Vec<String>,
    on_violation: OnViolation,
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

impl Conn {
    fn new(proc: Process, sandbox: &Sandbox, framed: bool) -> Conn {
        let limits = &sandbox.policy.limits;
        Conn {
            proc,
            pending: Vec::new(),
            pending_pos: 0,
            decoder: framed.then(|| FrameDecoder::new(limits.max_frame)),
            frames: VecDeque::new(),
            raw: Vec::new(),
            raw_limit: limits.output,
            stderr_tail: Vec::new(),
            violation: None,
            denied: Vec::new(),
            on_violation: sandbox.policy.syscalls.on_violation,
            enforce: sandbox.enforce,
            killed_for: None,
            buf: vec![0; CHUNK],
            last_cpu_check: Instant::now(),
            stdout_pending: false,
        }
    }

    fn queue(&mut self, bytes: &[u8]) {
        if self.pending_pos == self.pending.len() {
            self.pending.clear();
            self.pending_pos = 0;
        }
        self.pending.extend_from_slice(bytes);
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
        mut ready: impl FnMut(&mut Conn) -> bool,
    ) -> Stop {
        loop {
            if ready(self) {
                return Stop::Ready;
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
            let wait = (deadline - now).min(Duration::from_millis(if cpu_budget.is_some() {
                100
            } else {
                1000
            }));
            let want_write = self.pending_pos < self.pending.len() && self.proc.stdin.is_some();
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
        let Some(stdin) = &self.proc.stdin else {
            return;
        };
        while self.pending_pos < self.pending.len() {
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
                if self.raw.len() as u64 + n as u64 > self.raw_limit {
                    return Some(Stop::OutputLimit);
                }
                self.raw.extend_from_slice(&self.buf[..n]);
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
                    for line in String::from_utf8_lossy(chunk).lines().take(16) {
                        tracing::debug!(target: "plugwarden::plugin", pid = self.proc.pid, "{line}");
                    }
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
        match (self.enforce, self.on_violation) {
            (Enforce::Log, _) => {
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
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from our stack.
        unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
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
            (Some(libc::SIGSYS), _) => Verdict::Violation(
                "killed by seccomp (SIGSYS): a syscall its own lockdown filter denies, or a foreign syscall ABI"
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
                let line = last_line(&stderr);
                let detail = match (info.core_dumped(), line.is_empty()) {
                    (true, true) => "core dumped".to_string(),
                    (true, false) => format!("core dumped; {line}"),
                    (false, _) => line,
                };
                Verdict::Crashed { signal, detail }
            }
            (None, Some(code)) if looks_like_oom(&stderr) => {
                Verdict::Memory(format!("address-space limit reached (exit status {code})"))
            }
            (None, Some(code)) => Verdict::ProtocolError(format!(
                "the plugin exited with status {code} before answering{}",
                suffix(&stderr)
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

fn last_line(s: &str) -> String {
    let line = s.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(300).collect()
}

fn suffix(stderr: &str) -> String {
    let l = last_line(stderr);
    if l.is_empty() {
        String::new()
    } else {
        format!(": {l}")
    }
}

/// A persistent worker speaking the plugwarden protocol.
pub struct Worker {
    conn: Conn,
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
    dead: bool,
    greeted: bool,
    peak_rss_kib: u64,
    /// CPU clock (ms) at the end of the previous job.
    last_cpu: Option<u64>,
    /// The plugin has an arena and said in its hello that it maps it.
    arena_on: bool,
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
            dead: false,
            greeted: false,
            peak_rss_kib: 0,
            last_cpu: None,
            arena_on: false,
            reply_offered: None,
            late_frame_for: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.conn.proc.pid
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
        // With an arena, the plugin's hello says whether it maps it: wait
        // for it before the first job (one round trip, once per worker).
        if !self.greeted && self.conn.proc.arena().is_some() {
            self.greeted = true;
            if let Err(v) = self.handshake() {
                self.dead = true;
                self.jobs += 1;
                return self.outcome(v, Vec::new(), started, cpu_start);
            }
            // Start-up is not the job's time.
            started = Instant::now();
        }
        let id = self.next_id;
        self.next_id += 1;
        let Ok(len) = u32::try_from(input.len()) else {
            return JobOutcome::failed(Verdict::InputError("input larger than 4 GiB".into()));
        };
        self.reply_offered = self.arena_on.then_some(id);
        if !self.arena_on || !self.send_in_arena(id, input) {
            let flags = if self.arena_on {
                protocol::FLAG_REPLY_IN_ARENA
            } else {
                0
            };
            self.conn
                .queue(&protocol::encode_header_flags(Kind::Job, flags, id, len));
            self.conn.queue(input);
        }
        self.conn.denied.clear();
        let result = self.await_answer(id, started, cpu_start);
        let (verdict, output) = match result {
            Ok(out) => (Verdict::Ok, out),
            Err(v) => {
                self.dead = true;
                (v, Vec::new())
            }
        };
        if matches!(verdict, Verdict::PluginError(_)) {
            self.dead = false;
        }
        self.jobs += 1;
        self.outcome(verdict, output, started, cpu_start)
    }

    /// Writes a bulk input straight into the arena's input region and
    /// queues the job frame naming it; false when the input is small (the
    /// pipes are as fast) or larger than the region.
    fn send_in_arena(&mut self, id: u64, input: &[u8]) -> bool {
        let Some(arena) = self.conn.proc.arena() else {
            return false;
        };
        if input.len() < crate::arena::THRESHOLD || input.len() > arena.region() {
            return false;
        }
        if !arena.write(0, input) {
            return false;
        }
        let slice = protocol::ArenaSlice {
            offset: 0,
            len: input.len() as u64,
        };
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
        true
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
                out.push(self.outcome(v, Vec::new(), Instant::now(), cpu_start));
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
            if arena_free && self.send_in_arena(id, input) {
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
            let result = self.await_answer_pipelined(id, started, (mark, budget), last);
            let cpu = if started.elapsed() >= Duration::from_millis(1) {
                self.conn.proc.cpu_ms().map(|now| {
                    let used = now.saturating_sub(mark);
                    mark = now;
                    used
                })
            } else {
                None
            };
            let (verdict, output) = match result {
                Ok(o) => (Verdict::Ok, o),
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
                            break;
                        }
                    }
                    (v, Vec::new())
                }
            };
            self.jobs += 1;
            measured.push(cpu);
            out.push(JobOutcome {
                verdict,
                output,
                wall: started.elapsed(),
                cpu_ms: 0,
                max_rss_kib: 0,
                pid: self.conn.proc.pid,
                denied: std::mem::take(&mut self.conn.denied),
                stderr_tail: String::new(),
            });
            if self.dead {
                break;
            }
        }
        // Jobs whose CPU was measured keep it; the rest share what is left.
        let last = self.outcome(Verdict::Ok, Vec::new(), Instant::now(), cpu_start);
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

    fn await_answer(
        &mut self,
        id: u64,
        started: Instant,
        cpu_start: u64,
    ) -> Result<Vec<u8>, Verdict> {
        let budget = self.cpu_limit.as_millis() as u64;
        self.await_answer_pipelined(id, started, (cpu_start, budget), true)
    }

    /// Reads the answer to `id`; with `last`, nothing may follow it.
    /// `cpu` is (CPU clock at the start, budget in ms since then).
    fn await_answer_pipelined(
        &mut self,
        id: u64,
        started: Instant,
        cpu: (u64, u64),
        last: bool,
    ) -> Result<Vec<u8>, Verdict> {
        let mut started = started;
        if self.jobs == 0 && !self.greeted {
            self.greeted = true;
            self.handshake()?;
            // Start-up is not the job's time.
            started = Instant::now();
        }
        let deadline = started + self.wall_limit;
        let budget = Some(cpu);
        let mut output = Vec::new();
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
                Kind::Part | Kind::Done if frame.flags & protocol::FLAG_ARENA != 0 => {
                    if let Err(v) = self.take_from_arena(id, &frame.payload, &mut output) {
                        self.conn.proc.kill();
                        return Err(v);
                    }
                    if frame.kind == Kind::Done {
                        break;
                    }
                }
                Kind::Part | Kind::Done => {
                    if output.len() as u64 + frame.payload.len() as u64 > self.output_limit {
                        self.conn.proc.kill();
                        return Err(Verdict::OutputLimit(self.output_limit));
                    }
                    if output.is_empty() {
                        output = frame.payload;
                    } else {
                        output.extend_from_slice(&frame.payload);
                    }
                    if frame.kind == Kind::Done {
                        break;
                    }
                }
                Kind::Error => {
                    let msg =
                        String::from_utf8_lossy(&frame.payload[..frame.payload.len().min(4096)])
                            .into_owned();
                    return Err(Verdict::PluginError(msg));
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
        Ok(output)
    }

    /// Appends a part the plugin left in the arena's output region to
    /// `output`: the slice is checked against the region and the output
    /// limit, then copied once (a snapshot the plugin can no longer change;
    /// nothing is ever parsed in place).
    fn take_from_arena(
        &mut self,
        id: u64,
        payload: &[u8],
        output: &mut Vec<u8>,
    ) -> Result<(), Verdict> {
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
        let (offset, len) = slice
            .within(region, region)
            .map_err(|e| violation(format!("the plugin's answer: {e}")))?;
        if output.len() as u64 + len as u64 > self.output_limit {
            return Err(Verdict::OutputLimit(self.output_limit));
        }
        if !arena.read_into(offset, len, output) {
            return Err(violation("arena answer out of bounds".into()));
        }
        self.arena_parts += 1;
        Ok(())
    }

    fn outcome(
        &mut self,
        verdict: Verdict,
        output: Vec<u8>,
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
        JobOutcome {
            verdict,
            output,
            wall: started.elapsed(),
            cpu_ms,
            max_rss_kib,
            pid: self.conn.proc.pid,
            denied: std::mem::take(&mut self.conn.denied),
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
    let started = Instant::now();
    let proc = match sandbox.spawn() {
        Ok(p) => p,
        Err(e) => return JobOutcome::failed(Verdict::SetupError(e.to_string())),
    };
    debug_assert_eq!(sandbox.plugin.mode, Mode::Filter);
    let limits = sandbox.policy.limits.clone();
    let mut conn = Conn::new(proc, sandbox, false);
    conn.queue(input);
    let deadline = started + limits.wall;
    // Write everything, then close stdin so the filter sees EOF.
    let stop = conn.pump(deadline, None, |c| {
        if c.pending_pos == c.pending.len() {
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
                            Verdict::PluginError(format!("exit status {code}{}", suffix(&stderr)))
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
    let output = if verdict.is_ok() {
        std::mem::take(&mut conn.raw)
    } else {
        Vec::new()
    };
    JobOutcome {
        verdict,
        output,
        wall: started.elapsed(),
        cpu_ms: info.cpu_ms(),
        max_rss_kib: info.maxrss_kib,
        pid: conn.proc.pid,
        denied: std::mem::take(&mut conn.denied),
        stderr_tail: conn.stderr_text(),
    }
}
