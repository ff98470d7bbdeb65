//! Host side of a running plugin: feed it jobs, read its answers, watch
//! its deadlines and its syscalls, and turn everything into a [`Verdict`].
//!
//! One poll loop (`Conn::pump`) serves both plugin kinds. It writes the
//! pending input without blocking, drains stdout into a bounded frame
//! decoder (worker) or the job's output sink (filter), drains stderr into a
//! bounded tail and the log (a chatty plugin can never block on a full
//! pipe), answers seccomp notifications, and notices the exit through the
//! pidfd. Every byte from the plugin is hostile; every way it can misbehave
//! ends in a verdict for the job at hand. Each part of an output goes to an
//! [`OutputSink`] as it arrives ([`crate::sink`]).

mod answer;
mod conn;
mod filter;
mod job;
mod stderr;
mod supervise;
mod window;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::input::{Input, InputError, Source};
use crate::observe::PathUse;
use crate::policy::OnViolation;
use crate::protocol::{Frame, FrameDecoder};
use crate::sandbox::{Enforce, Process};
use crate::sink::{OutputSink, SavedOutput, Spill};
use crate::verdict::{TimeoutKind, Verdict};

pub(crate) use filter::{run_filter, run_filter_input};

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
/// are escaped (`escape_lines`).
pub struct StderrRelay {
    /// Where the stderr goes.
    pub out: Box<dyn std::io::Write + Send>,
    /// Bytes per job relayed at most.
    pub limit: u64,
    /// Pass control characters through unescaped.
    pub raw: bool,
}

/// What a caller attaches to the jobs of one process besides their inputs.
#[derive(Default)]
pub struct Attach {
    /// Once set, the job in flight is killed and ends `cancelled`.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Where the plugin's stderr goes as it comes.
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
    /// The one verdict of the job.
    pub verdict: Verdict,
    /// The output; empty unless the verdict is `ok`, and empty when it
    /// went to a sink or a spill file instead.
    pub output: Vec<u8>,
    /// An ok output the host did not hold: past the spill threshold
    /// ([`Attach::spill`]), or what the job's own sink saved.
    pub saved: Option<SavedOutput>,
    /// Wall-clock time of the job.
    pub wall: Duration,
    /// CPU time of the job, ms.
    pub cpu_ms: u64,
    /// Peak resident set of the plugin, KiB.
    pub max_rss_kib: u64,
    /// The plugin's pid (0 when none was started).
    pub pid: i32,
    /// Syscalls denied with EPERM (`on_violation = "errno"`) or, in log
    /// mode, that would have been denied.
    pub denied: Vec<String>,
    /// The end of the plugin's stderr.
    pub stderr_tail: String,
    /// The paths its file syscalls named (observe mode only).
    pub paths: BTreeSet<PathUse>,
    /// What the job's sink adds to its audit record
    /// ([`OutputSink::take_notes`]).
    pub notes: Vec<String>,
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
            notes: Vec::new(),
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
    violation: Option<crate::verdict::Violation>,
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

/// Where a worker is in its life. A worker is spawned with the host's
/// hello queued ([`Life::Fresh`]); the plugin's hello is read before the
/// first job that needs to know what the plugin takes (an arena, an input
/// in parts), else together with the first answer ([`Life::Greeted`]).
/// A job that kills or loses the plugin ends it ([`Life::Dead`]); nothing
/// leaves `Dead`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    /// The plugin's hello has not been read yet.
    Fresh,
    /// The plugin said hello: what it takes.
    Greeted {
        /// It has an arena and maps it.
        arena: bool,
        /// It takes a job's input in parts.
        parts: bool,
    },
    /// A job killed or lost the plugin.
    Dead,
}

/// One job of a window: its input and where its output goes (held in
/// memory, or spilled, without a sink).
struct Job<'i, 's> {
    input: Payload<'i>,
    sink: Option<&'s mut dyn OutputSink>,
}

/// The jobs in flight: ids `first..end`. The arena has one output region,
/// which one job of a window at most may answer in (`reply_offered`).
struct Window {
    first: u64,
    end: u64,
    reply_offered: Option<u64>,
    /// A frame arrived for a job of this window already answered: that
    /// job sent bytes after its answer (the fault is its, not the awaited
    /// job's).
    late_frame_for: Option<u64>,
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
    life: Life,
    peak_rss_kib: u64,
    /// CPU clock (ms) at the end of the previous job.
    last_cpu: Option<u64>,
}

impl Worker {
    /// The plugin has an arena and said in its hello that it maps it.
    fn arena_on(&self) -> bool {
        matches!(self.life, Life::Greeted { arena: true, .. })
    }

    /// The plugin's hello said it takes a job's input in parts.
    fn parts_on(&self) -> bool {
        matches!(self.life, Life::Greeted { parts: true, .. })
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod window_tests;
