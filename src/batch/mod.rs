//! The batch driver: every input of a set of files and directories through
//! a sandbox's pool, one verdict and (optionally) one hash-chained audit
//! record each, the outputs written beside — what `plugwarden run` does,
//! for a host application (docs/BATCH.md describes the behaviour).
//!
//! Four kinds of threads: a feeder walks the inputs as a stream, reads each
//! file and queues it (the queue is bounded, so memory is O(workers)); the
//! pool's worker slots run the jobs; the thread that called [`Batch::run`]
//! takes the results in completion order, stages the outputs and makes the
//! audit records, reporting each as an [`Event`]; a committer puts outputs
//! and records on disk a group at a time (`commit.rs`). Stopping is a flag
//! ([`Batch::stop_flag`]), read between results.
//!
//! ```no_run
//! use plugwarden::batch::{Batch, Event};
//! use plugwarden::Sandbox;
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     plugwarden::bootstrap();
//!     let sandbox = Sandbox::builder("/usr/bin/base64").filter().build()?;
//!     let summary = Batch::new(sandbox, ["inputs/"])
//!         .out_dir("outputs/")
//!         .audit("audit.jsonl")
//!         .resume(true)
//!         .run(|event| {
//!             if let Event::Judged { name, verdict, .. } = event {
//!                 println!("{verdict:<14} {name}");
//!             }
//!         })?;
//!     println!("{} inputs, {:?}", summary.inputs, summary.verdicts);
//!     Ok(())
//! }
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditError;
use crate::pool::PoolError;
use crate::sandbox::Sandbox;
use crate::shard::{LogError, Shard};

pub(crate) mod commit;
mod driver;
pub(crate) mod feed;
mod record;
pub(crate) mod shard;

pub use commit::Durability;
use feed::{Converter, Preparer, Router};

/// Longest `detail` kept in an audit record.
const MAX_DETAIL: usize = 16 << 10;
/// Longest single note, and most notes, in an audit record.
const MAX_NOTE: usize = 1000;
const MAX_NOTES: usize = 64;
/// Poison inputs listed by name in the summary.
const MAX_POISON_LISTED: usize = 1000;
/// How long the driver waits, after killing the jobs in flight (or for a
/// feeder stuck in a read), before it returns without them.
pub const SETTLE: Duration = Duration::from_secs(2);
/// When a group of outputs and records closes by default (jobs, time),
/// chosen by measurement (docs/PERFORMANCE.md).
pub const GROUP_SIZE: u32 = 1000;
/// See [`GROUP_SIZE`].
pub const GROUP_TIME: Duration = Duration::from_millis(100);

/// A batch of inputs over a sandbox (one pool): configure it with the
/// methods below, then [`Batch::run`] it.
pub struct Batch {
    sandboxes: Vec<Arc<Sandbox>>,
    inputs: Vec<PathBuf>,
    router: Box<Router>,
    prepare: Option<Box<Preparer>>,
    convert: Option<Box<Converter>>,
    out: Option<PathBuf>,
    audit: Option<PathBuf>,
    resume: bool,
    durability: Durability,
    group_size: u32,
    group_time: Duration,
    workers: Option<usize>,
    jobs_per_worker: Option<u64>,
    grace: Duration,
    max_input: Option<u64>,
    shard: Option<Shard>,
    stop: Arc<AtomicBool>,
}

impl Batch {
    /// Every regular file among `inputs` (files, or directories walked
    /// recursively without following symlinks) through `sandbox`.
    pub fn new<P: Into<PathBuf>>(
        sandbox: impl Into<Arc<Sandbox>>,
        inputs: impl IntoIterator<Item = P>,
    ) -> Batch {
        Batch::routed(
            vec![sandbox.into()],
            inputs.into_iter().map(Into::into).collect(),
            Box::new(|_, _| Ok(0)),
        )
    }

    /// Several sandboxes (one pool each), `router` choosing each input's.
    pub(crate) fn routed(
        sandboxes: Vec<Arc<Sandbox>>,
        inputs: Vec<PathBuf>,
        router: Box<Router>,
    ) -> Batch {
        Batch {
            sandboxes,
            inputs,
            router,
            prepare: None,
            convert: None,
            out: None,
            audit: None,
            resume: false,
            durability: Durability::Group,
            group_size: GROUP_SIZE,
            group_time: GROUP_TIME,
            workers: None,
            jobs_per_worker: None,
            grace: Duration::from_secs(2),
            max_input: None,
            shard: None,
            stop: Arc::default(),
        }
    }

    /// Each input's bytes prepared before they are queued (sanitize).
    pub(crate) fn prepare(mut self, prepare: Option<Box<Preparer>>) -> Batch {
        self.prepare = prepare;
        self
    }

    /// Each ok output converted before it is written (sanitize).
    pub(crate) fn convert(mut self, convert: Option<Box<Converter>>) -> Batch {
        self.convert = convert;
        self
    }

    /// Writes each ok output to `dir`, under the input's name relative to
    /// the input argument it was found under (created if missing).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Batch {
        self.out = Some(dir.into());
        self
    }

    /// Appends one hash-chained JSON record per input to `path` (`plugwarden
    /// audit verify` checks it).
    pub fn audit(mut self, path: impl Into<PathBuf>) -> Batch {
        self.audit = Some(path.into());
        self
    }

    /// Skips the inputs already recorded in the audit log with the same
    /// sha256 (needs [`Batch::audit`]).
    pub fn resume(mut self, resume: bool) -> Batch {
        self.resume = resume;
        self
    }

    /// What a finished job promises after a power cut (default
    /// [`Durability::Group`]).
    pub fn durability(mut self, durability: Durability) -> Batch {
        self.durability = durability;
        self
    }

    /// A group of outputs and records is synced at `size` jobs or `time`
    /// after its first job, whichever comes first (default [`GROUP_SIZE`],
    /// [`GROUP_TIME`]).
    pub fn group(mut self, size: u32, time: Duration) -> Batch {
        self.group_size = size.max(1);
        self.group_time = time;
        self
    }

    /// Worker processes per sandbox (default: the policy's, else the CPUs).
    pub fn workers(mut self, n: usize) -> Batch {
        self.workers = Some(n.max(1));
        self
    }

    /// Jobs per worker before it is recycled (default: the policy's
    /// `worker.batch`).
    pub fn jobs_per_worker(mut self, n: u64) -> Batch {
        self.jobs_per_worker = Some(n.max(1));
        self
    }

    /// Once stopped, how long jobs in flight may run before they are
    /// killed (default 2 s).
    pub fn grace(mut self, grace: Duration) -> Batch {
        self.grace = grace;
        self
    }

    /// Largest input in bytes (default: the policy's `limits.input`);
    /// bigger inputs get `input_error` unread.
    pub fn max_input(mut self, bytes: u64) -> Batch {
        self.max_input = Some(bytes);
        self
    }

    /// Runs only this shard's share of the inputs, with its shard records
    /// in the audit log (docs/BATCH.md, "Shards").
    #[doc(hidden)]
    pub fn shard(mut self, shard: Option<Shard>) -> Batch {
        self.shard = shard;
        self
    }

    /// Stops the batch when `flag` becomes true (e.g. set by a signal
    /// handler): no new inputs, jobs in flight get [`Batch::grace`], then
    /// are killed (`cancelled`); [`Summary::interrupted`] says so.
    pub fn stop_on(mut self, flag: Arc<AtomicBool>) -> Batch {
        self.stop = flag;
        self
    }

    /// The flag that stops this batch (see [`Batch::stop_on`]): set it
    /// from another thread.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Runs the batch on this thread until every input is judged or the
    /// batch is stopped, reporting what happens to `on_event`.
    pub fn run(self, on_event: impl FnMut(Event<'_>)) -> Result<Summary, BatchError> {
        driver::run(self, Box::new(on_event))
    }
}

/// What happens during a run, as it happens.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// One input judged (in completion order).
    Judged {
        /// The input's path, escaped for a terminal or a log line.
        name: &'a str,
        /// The verdict's word (`ok`, `timeout`, ...).
        verdict: &'static str,
        /// How long its job ran.
        wall: Duration,
        /// Which attempt judged it (2 after a retry).
        attempt: u32,
        /// Failed twice: quarantined.
        poison: bool,
        /// The verdict's detail (empty when there is none).
        detail: &'a str,
        /// Inputs judged so far.
        done: u64,
        /// Verdicts so far, by word.
        counts: &'a BTreeMap<&'static str, u64>,
    },
    /// An output reported ok could not be put on disk: that input is
    /// `cancelled` after all (and the batch stops, [`Event::Failed`]).
    Withdrawn {
        /// The input, escaped.
        name: &'a str,
        /// Why.
        detail: &'a str,
    },
    /// A failure that stops the batch (audit or output not writable);
    /// finished jobs stay recorded.
    Failed {
        /// What failed.
        error: &'a str,
    },
    /// The walk is over: the number of inputs queued.
    Walked {
        /// Inputs found (and not skipped).
        total: u64,
    },
    /// The stop flag was seen: no new inputs, jobs in flight have `grace`.
    Stopping {
        /// How long they have before they are killed.
        grace: Duration,
    },
    /// Jobs still ran [`SETTLE`] after they were killed: the run returns
    /// without them (dropping the pools kills what is left).
    Abandoned,
}

/// How a batch went.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Summary {
    /// Inputs judged.
    pub inputs: u64,
    /// Inputs skipped as already recorded ([`Batch::resume`]).
    pub skipped: u64,
    /// Verdicts by word.
    pub verdicts: BTreeMap<&'static str, u64>,
    /// Poison inputs (failed twice, quarantined), the first 1,000 by name.
    pub poison: Vec<String>,
    /// Poison inputs in all.
    pub poison_count: u64,
    /// Worker recycles by reason.
    pub recycles: BTreeMap<&'static str, u64>,
    /// Worker slots (of the largest pool).
    pub workers: usize,
    /// Worker processes started (spares included).
    pub workers_started: u64,
    /// Job latency percentiles in milliseconds: p50, p95, p99.
    pub latency_ms: [f64; 3],
    /// How long the batch took.
    pub elapsed: Duration,
    /// Stopped by the stop flag before every input was judged.
    pub interrupted: bool,
    /// The failure that stopped the batch, if one did.
    pub error: Option<String>,
    /// The audit log's last hash, when there is a log.
    pub audit_last_hash: Option<String>,
}

impl Summary {
    /// Every input judged `ok`, nothing failed, not interrupted.
    pub fn all_ok(&self) -> bool {
        !self.interrupted && self.error.is_none() && self.verdicts.keys().all(|w| *w == "ok")
    }
}

/// Why a batch could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The audit log cannot be opened, or (with `resume`) read.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The audit log cannot take this shard's records.
    #[error(transparent)]
    Shard(#[from] LogError),
    /// A plugin's executable cannot be read (to hash it for the records).
    #[error("cannot read the plugin {}: {error}", .path.display())]
    Plugin {
        /// The executable.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A pool could not start.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The feeder or the committer thread could not start.
    #[error("cannot start the {which} thread: {error}")]
    Thread {
        /// `feeder` or `committer`.
        which: &'static str,
        /// Why.
        error: std::io::Error,
    },
}

/// The error and its causes, one sentence.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
