//! The worker pool: N sandboxed workers fed from one bounded queue.
//!
//! Why it is shaped this way:
//! - **Dynamic scheduling.** Every worker slot is a host thread that owns
//!   its plugin process and pulls the next tasks from one central queue when
//!   it is free, so a slow input holds up only its own slot.
//! - **One fork server per slot.** The fork server is serial (it answers a
//!   spawn once the child has exec'd, and reaps one child at a time); slots
//!   sharing one would queue their spawns behind each other. Each slot after
//!   the first starts its own fork server with the same profile, on its own
//!   thread; a slot that cannot falls back to the pool's (slower, not
//!   weaker). A slot's fork server ends with the slot, after its workers.
//! - **Pipelining.** A slot sends its worker a *window* of jobs at once
//!   ([`Worker::run_batch`]): the plugin never waits for the host between
//!   them. The window starts at one job, doubles while jobs take less than
//!   [`FAST_JOB`] (up to [`MAX_WINDOW`]) and falls back to one after a slower
//!   job, so slow inputs keep the one-job-per-slot scheduling. It never
//!   crosses the worker's recycle point, a fresh worker's first job and a
//!   retry run alone, and it is capped so that the worker's measured growth
//!   per job cannot carry it past `recycle_rss` within one window. Jobs sent
//!   behind one that killed the worker were never answered: they are run
//!   again on a fresh worker, not charged with a failure.
//! - **Bounded memory.** The queue holds at most about
//!   `workers × (2 + MAX_WINDOW)` tasks and [`QUEUE_BYTES`] per worker of
//!   inputs (one input always fits), and the results channel is bounded:
//!   the producer (a streaming directory walk) blocks when the workers are
//!   busy, and the workers block when the consumer is slow. Memory is
//!   O(workers), never O(inputs).
//! - **Recycling.** A worker is retired after its batch (with ±10% jitter so
//!   the slots do not all restart together), when its RSS passes
//!   `recycle_rss`, after `max_lifetime`, and after any verdict that may
//!   have corrupted it ([`Verdict::taints_worker`]); the reason goes with
//!   the job's result. A **warm spare** is started on its own thread while
//!   the current worker runs jobs, and the retired worker is shut down on a
//!   reaper thread: recycling costs the queue no fork, exec or wait.
//! - **Retry and quarantine.** A crash, timeout or memory verdict is retried
//!   once on a fresh worker; a second failure keeps its verdict and marks the
//!   input as poison. Violations are never retried.
//! - **Cancellation.** [`Pool::stop`] stops intake; [`Pool::cancel`] also
//!   kills the plugins of the jobs in flight (through duplicates of their
//!   pidfds, so no pid can be reused under us) and their results come back
//!   as `cancelled`. Tasks a slot had taken but its worker never answered
//!   are dropped like queued ones (they have no result).

mod map;
mod recycle;
mod slot;
mod source;

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::input::Input;
use crate::policy::Policy;
use crate::sandbox::Sandbox;
use crate::sink::{OutputSink, Spill};
use crate::verdict::Verdict;
use crate::worker::{JobOutcome, Worker};

pub use map::{PoolError, Results};
#[doc(hidden)]
pub use slot::{jittered, truncate};
use source::Source;

/// How often an idle slot looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);
/// Most jobs a slot sends its worker at once.
pub const MAX_WINDOW: usize = 32;
/// A window takes no more inputs once it holds this many bytes: pipelining
/// big inputs gains nothing and holds memory.
const WINDOW_BYTES: usize = 256 << 10;
/// Jobs faster than this grow a slot's window; a slower one shrinks it to one.
pub const FAST_JOB: Duration = Duration::from_millis(1);
/// Bytes of queued inputs per worker slot before the feeder waits.
pub const QUEUE_BYTES: u64 = 2 << 20;

/// Why a worker was retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecycleReason {
    /// It answered its batch of jobs.
    Batch,
    /// Its resident set passed `recycle_rss`.
    Rss,
    /// It lived past `max_lifetime`.
    Lifetime,
    /// Its last job ended in a verdict that may have corrupted it.
    Tainted,
}

impl RecycleReason {
    /// Every reason, in the order of [`PoolStats::recycles`].
    pub const ALL: [RecycleReason; 4] = [
        RecycleReason::Batch,
        RecycleReason::Rss,
        RecycleReason::Lifetime,
        RecycleReason::Tainted,
    ];

    /// The word the audit log and the summary use.
    pub fn word(self) -> &'static str {
        match self {
            RecycleReason::Batch => "batch",
            RecycleReason::Rss => "rss",
            RecycleReason::Lifetime => "lifetime",
            RecycleReason::Tainted => "tainted",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the pool needs to know beyond the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Worker slots (threads, each with one plugin process and one warm spare).
    pub workers: usize,
    /// Jobs per worker before it is recycled (jittered by ±10%).
    pub batch: u64,
    /// RSS in bytes above which a worker is recycled (checked between jobs).
    pub recycle_rss: u64,
    /// Age after which a worker is recycled (checked between jobs).
    pub max_lifetime: Duration,
    /// Retry crash, timeout and memory once on a fresh worker.
    pub retry: bool,
    /// Where outputs too big to hold go (none: every output in memory).
    pub spill: Option<Spill>,
}

impl PoolConfig {
    /// The policy's `[worker]` values, with the number of CPUs as workers.
    pub fn from_policy(policy: &Policy) -> PoolConfig {
        PoolConfig {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch: policy.worker.batch.max(1),
            recycle_rss: policy.worker.recycle_rss,
            max_lifetime: policy.worker.max_lifetime,
            retry: true,
            spill: None,
        }
    }

    /// Capacity of the task queue (tasks; [`QUEUE_BYTES`] bounds its bytes)
    /// and of the results channel: room for each slot's next window.
    pub fn queue_capacity(&self) -> usize {
        self.workers.max(1) * (2 + MAX_WINDOW)
    }
}

/// One input for the pool. `tag` is the caller's and comes back with the
/// result; an `Err` input (it could not be read) is passed through as the
/// result without running, so every input has one result on one channel.
/// With a `sink`, the job's output goes to it as it arrives (a job of its
/// own, never pipelined with others), and what it saved comes back in the
/// outcome's `saved`.
pub struct Task<T> {
    /// The caller's, given back with the result.
    pub tag: T,
    /// The input, or the verdict it already has (it could not be read).
    pub input: Result<Input, Verdict>,
    /// Where its output goes as it arrives; `None`: into the outcome.
    pub sink: Option<Box<dyn OutputSink>>,
}

impl<T> Task<T> {
    /// A task of `input` (bytes: `Vec<u8>`, or an [`Input`]).
    pub fn new(tag: T, input: impl Into<Input>) -> Task<T> {
        Task {
            tag,
            input: Ok(input.into()),
            sink: None,
        }
    }

    /// A task of the file at `path`, of at most `limit` bytes: read now
    /// when small, else streamed to the plugin when it runs. A file that
    /// cannot be read is the task's `input_error` verdict.
    pub fn file(tag: T, path: impl Into<std::path::PathBuf>, limit: u64) -> Task<T> {
        let path = path.into();
        let entry = crate::input::Entry::named(path);
        let input = crate::input::open(&entry, limit)
            .and_then(Input::from_source)
            .map_err(|e| Verdict::InputError(e.to_string()));
        Task {
            tag,
            input,
            sink: None,
        }
    }

    /// What the task weighs in the queue: the bytes it holds; a file to be
    /// streamed holds an fd, not bytes, and weighs as much as the largest
    /// input read whole, so only a few wait per worker.
    fn len(&self) -> u64 {
        match &self.input {
            Ok(Input::Bytes(b)) => b.len() as u64,
            Ok(Input::File(_)) => crate::input::INLINE,
            Err(_) => 0,
        }
    }
}

/// The result of one input, after any retry.
pub struct Finished<T> {
    /// The task's tag.
    pub tag: T,
    /// Its outcome: the verdict, the output, what it cost.
    pub outcome: JobOutcome,
    /// 1, or 2 when the first attempt was retried.
    pub attempt: u32,
    /// Serial number of the worker process in this pool (1 for the first
    /// started); None for filters and inputs that never ran.
    pub generation: Option<u64>,
    /// Why the worker that ran the last attempt was retired after it.
    pub recycle_reason: Option<RecycleReason>,
    /// Retried and failed again: quarantined.
    pub poison: bool,
    /// What happened to earlier attempts.
    pub notes: Vec<String>,
}

/// The producer's end of the task queue.
pub struct Feeder<T> {
    tx: SyncSender<Task<T>>,
    shared: Arc<Shared>,
}

impl<T> Feeder<T> {
    /// Queues a task, blocking while the queue is full (in tasks or in
    /// bytes; one input always fits). Gives the task back once the pool
    /// stops taking work.
    pub fn submit(&self, task: Task<T>) -> Result<(), Task<T>> {
        let len = task.len();
        if !self.shared.gate.admit(len, &self.shared.stop) {
            return Err(task);
        }
        self.tx.send(task).map_err(|e| {
            self.shared.gate.release(len);
            e.0
        })
    }

    /// True once the pool takes no more tasks.
    pub fn is_stopped(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }
}

/// Counters the pool keeps for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Recycles by reason, in [`RecycleReason::ALL`] order.
    pub recycles: [u64; 4],
    /// Worker processes started (including spares).
    pub workers_started: u64,
    /// Jobs answered in a window of more than one job.
    pub pipelined: u64,
    /// Jobs sent to a worker that died before answering them (behind the
    /// job that killed it), and so run again on a fresh worker.
    pub resent: u64,
}

impl PoolStats {
    /// Recycles, with their reasons.
    pub fn recycles_by_reason(&self) -> impl Iterator<Item = (RecycleReason, u64)> + '_ {
        RecycleReason::ALL.into_iter().zip(self.recycles)
    }
}

/// Bytes of inputs in the task queue: a window's worth of small inputs may
/// queue up, big ones only a few at a time.
struct Gate {
    bytes: Mutex<u64>,
    room: Condvar,
    limit: u64,
}

impl Gate {
    /// Waits until `len` more bytes fit; false once `stop` is set.
    fn admit(&self, len: u64, stop: &AtomicBool) -> bool {
        let mut queued = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        while *queued > 0 && queued.saturating_add(len) > self.limit {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            queued = self
                .room
                .wait_timeout(queued, TICK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        *queued += len;
        true
    }

    /// `len` bytes left the queue.
    fn release(&self, len: u64) {
        let mut queued = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        *queued = queued.saturating_sub(len);
        self.room.notify_all();
    }
}

struct Shared {
    /// No slot takes a new task.
    stop: AtomicBool,
    /// In-flight jobs were killed: their results are `cancelled`. Also
    /// each job's cancel flag, so a filter (which publishes no pidfd)
    /// ends at once too.
    cancel: Arc<AtomicBool>,
    /// Per slot: a duplicate of the pidfd of the plugin running a job.
    inflight: Mutex<Vec<Option<OwnedFd>>>,
    recycles: [AtomicU64; 4],
    generation: AtomicU64,
    pipelined: AtomicU64,
    resent: AtomicU64,
    gate: Gate,
}

impl Shared {
    /// Nothing run yet: `slots` slots, a queue of at most `queue_bytes`.
    fn new(slots: usize, queue_bytes: u64) -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            cancel: Arc::new(AtomicBool::new(false)),
            inflight: Mutex::new((0..slots).map(|_| None).collect()),
            recycles: Default::default(),
            generation: AtomicU64::new(0),
            pipelined: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            gate: Gate {
                bytes: Mutex::new(0),
                room: Condvar::new(),
                limit: queue_bytes,
            },
        }
    }
}

/// A running pool.
///
/// The simple way is [`Pool::map`]: tasks in, results out, in any order
/// the caller reads them, with no way to deadlock. The lower-level way is
/// [`Pool::start`]: the caller feeds a [`Feeder`] and reads
/// [`Pool::results`] until the channel closes (every slot has exited),
/// then calls [`Pool::join`].
///
/// **Backpressure.** The task queue and the results channel are bounded
/// ([`PoolConfig::queue_capacity`] tasks, [`QUEUE_BYTES`] per worker of
/// inputs): [`Feeder::submit`] blocks while the queue is full, and the
/// workers block while nobody reads the results. So with [`Pool::start`],
/// submit from one thread and read results on another; submitting
/// everything first and reading afterwards stops once both are full.
/// [`Pool::map`] does exactly that for you (its feeding thread blocks, the
/// caller's iterator reads).
///
/// **Dropping** a pool that has not been joined cancels it: the jobs in
/// flight are killed and end `cancelled`, queued tasks are dropped, and
/// the count of results nobody read is logged (a warning).
pub struct Pool<T> {
    results: Receiver<Finished<T>>,
    shared: Arc<Shared>,
    slots: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> Pool<T> {
    /// Starts the worker slots. The slots exit when the [`Feeder`] is
    /// dropped and the queue is empty, or when the pool is stopped. Each
    /// slot after the first starts its own fork server (see the module
    /// docs); `sandbox`'s own serves the first. A thread that cannot be
    /// started is [`PoolError::Thread`] (the slots already started are
    /// stopped and joined).
    pub fn start(
        sandbox: impl Into<Arc<Sandbox>>,
        config: PoolConfig,
    ) -> Result<(Pool<T>, Feeder<T>), PoolError> {
        Pool::start_from(Source::Sandbox(sandbox.into()), config)
    }

    fn start_from(source: Source, config: PoolConfig) -> Result<(Pool<T>, Feeder<T>), PoolError> {
        let workers = config.workers.max(1);
        let (task_tx, task_rx) = mpsc::sync_channel::<Task<T>>(config.queue_capacity());
        let (result_tx, results) = mpsc::sync_channel::<Finished<T>>(config.queue_capacity());
        let shared = Arc::new(Shared::new(
            workers,
            QUEUE_BYTES.saturating_mul(workers as u64),
        ));
        let task_rx = Arc::new(Mutex::new(task_rx));
        let mut slots = Vec::with_capacity(workers);
        for index in 0..workers {
            let started = {
                let slot = Slot {
                    index,
                    source: source.clone(),
                    config: config.clone(),
                    shared: shared.clone(),
                    current: None,
                    spares: None,
                    retire: None,
                    window: 1,
                };
                let rx = task_rx.clone();
                let tx = result_tx.clone();
                std::thread::Builder::new()
                    .name(format!("pw-worker-{index}"))
                    .spawn(move || slot.run(&rx, &tx))
            };
            match started {
                Ok(handle) => slots.push(handle),
                Err(e) => {
                    shared.stop.store(true, Ordering::SeqCst);
                    drop((task_tx, result_tx, results));
                    for slot in slots {
                        let _ = slot.join();
                    }
                    return Err(PoolError::Thread(e));
                }
            }
        }
        let feeder = Feeder {
            tx: task_tx,
            shared: shared.clone(),
        };
        Ok((
            Pool {
                results,
                shared,
                slots,
            },
            feeder,
        ))
    }
}

impl<T> Pool<T> {
    /// Results in completion order.
    pub fn results(&self) -> &Receiver<Finished<T>> {
        &self.results
    }

    /// Stops intake: queued tasks are dropped, jobs in flight finish.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Stops intake and kills the plugins of the jobs in flight; their
    /// results come back as `cancelled`.
    pub fn cancel(&self) {
        self.stop();
        self.shared.cancel.store(true, Ordering::SeqCst);
        let inflight = self
            .shared
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for pidfd in inflight.iter().flatten() {
            crate::spawn::kill_pidfd(pidfd.as_fd());
        }
    }

    /// Waits for every slot (and its reaper and fork server) to finish;
    /// every plugin process of the pool has been reaped when this returns.
    pub fn join(mut self) -> PoolStats {
        // The slots must not block on a full results channel: a closed one.
        drop(std::mem::replace(
            &mut self.results,
            mpsc::sync_channel(0).1,
        ));
        for slot in std::mem::take(&mut self.slots) {
            let _ = slot.join();
        }
        let load = |c: &AtomicU64| c.load(Ordering::SeqCst);
        PoolStats {
            recycles: std::array::from_fn(|i| load(&self.shared.recycles[i])),
            workers_started: load(&self.shared.generation),
            pipelined: load(&self.shared.pipelined),
            resent: load(&self.shared.resent),
        }
    }
}

/// A worker process with its bookkeeping.
struct Live {
    worker: Worker,
    generation: u64,
    /// Jobs it may run before it is recycled (the jittered batch).
    limit: u64,
    born: Instant,
    /// Its RSS peak (KiB) as of its last window, and the growth per job
    /// measured over that window (None until two windows have run).
    rss_kib: Option<u64>,
    growth_kib: Option<u64>,
}

impl Live {
    /// Records the RSS peak after `jobs` more jobs.
    fn note_rss(&mut self, peak_kib: u64, jobs: u64) {
        if let Some(before) = self.rss_kib {
            self.growth_kib = Some(peak_kib.saturating_sub(before).div_ceil(jobs.max(1)));
        }
        self.rss_kib = Some(peak_kib);
    }
}

/// A task a slot has taken from the queue, until its result is final.
struct Pending<T> {
    tag: T,
    input: Input,
    sink: Option<Box<dyn OutputSink>>,
    attempt: u32,
    /// What happened to earlier attempts.
    notes: Vec<String>,
}

/// One worker slot: a thread, its fork server, its worker, its warm spare,
/// its reaper.
struct Slot {
    index: usize,
    source: Source,
    config: PoolConfig,
    shared: Arc<Shared>,
    current: Option<Live>,
    /// Worker mode: fresh workers, started ahead of need.
    spares: Option<Spares>,
    /// Retired workers go to a reaper thread that shuts them down.
    /// A rendezvous: a slot never has more than one worker waiting to be
    /// retired, so its processes (and the fork server's fds) stay bounded
    /// even when retiring is slower than running jobs (`--batch 1`).
    retire: Option<(SyncSender<Worker>, JoinHandle<()>)>,
    /// Jobs the next window may hold, before the worker's own caps.
    window: usize,
}

/// Warm spares: a thread that starts the slot's next worker while the
/// current one runs jobs. It hands the worker over through a rendezvous
/// channel and at once starts the next, so one spare is ready (forked,
/// exec'd, loading) whenever a recycle needs it, and the fork server's
/// round trip and the plugin's exec never sit on the queue's path.
struct Spares {
    rx: Receiver<Result<Live, Verdict>>,
    thread: JoinHandle<()>,
}

#[cfg(test)]
mod schedule_tests;
#[cfg(test)]
mod tests;
