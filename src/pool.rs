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

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::input::Input;
use crate::policy::Policy;
use crate::sandbox::{Mode, Sandbox, SandboxError};
use crate::sink::{OutputSink, Spill};
use crate::verdict::Verdict;
use crate::worker::{run_filter_input, Attach, JobOutcome, Worker};

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
    pub tag: T,
    pub input: Result<Input, Verdict>,
    pub sink: Option<Box<dyn OutputSink>>,
}

impl<T> Task<T> {
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
    pub tag: T,
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

/// A running pool. Read results from [`Pool::results`] until it reports
/// the channel closed (every slot has exited), then call [`Pool::join`].
pub struct Pool<T> {
    results: Receiver<Finished<T>>,
    shared: Arc<Shared>,
    slots: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static> Pool<T> {
    /// Starts the worker slots. The slots exit when the [`Feeder`] is
    /// dropped and the queue is empty, or when the pool is stopped. Each
    /// slot after the first starts its own fork server (see the module
    /// docs); `sandbox`'s own serves the first.
    pub fn start(sandbox: Arc<Sandbox>, config: PoolConfig) -> (Pool<T>, Feeder<T>) {
        let workers = config.workers.max(1);
        let (task_tx, task_rx) = mpsc::sync_channel::<Task<T>>(config.queue_capacity());
        let (result_tx, results) = mpsc::sync_channel::<Finished<T>>(config.queue_capacity());
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            cancel: Arc::new(AtomicBool::new(false)),
            inflight: Mutex::new((0..workers).map(|_| None).collect()),
            recycles: Default::default(),
            generation: AtomicU64::new(0),
            pipelined: AtomicU64::new(0),
            resent: AtomicU64::new(0),
            gate: Gate {
                bytes: Mutex::new(0),
                room: Condvar::new(),
                limit: QUEUE_BYTES.saturating_mul(workers as u64),
            },
        });
        let task_rx = Arc::new(Mutex::new(task_rx));
        let slots = (0..workers)
            .map(|index| {
                let slot = Slot {
                    index,
                    sandbox: sandbox.clone(),
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
                    .expect("spawn a worker thread")
            })
            .collect();
        let feeder = Feeder {
            tx: task_tx,
            shared: shared.clone(),
        };
        (
            Pool {
                results,
                shared,
                slots,
            },
            feeder,
        )
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
    pub fn join(self) -> PoolStats {
        drop(self.results);
        for slot in self.slots {
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
    sandbox: Arc<Sandbox>,
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

impl Slot {
    fn run<T>(mut self, rx: &Mutex<Receiver<Task<T>>>, tx: &SyncSender<Finished<T>>) {
        self.sandbox = own_sandbox(self.index, &self.sandbox);
        if self.sandbox.plugin.mode == Mode::Worker {
            self.spares = Some(Spares::start(
                self.index,
                &self.sandbox,
                &self.config,
                &self.shared,
            ));
        }
        let mut backlog = VecDeque::new();
        while self.fill(rx, tx, &mut backlog) {
            if !self.run_window(&mut backlog, tx) {
                break;
            }
        }
        self.abandon(backlog, tx);
        // Retire what is left; the reaper is joined so that nothing outlives the pool.
        if let Some(live) = self.current.take() {
            self.retire(live.worker);
        }
        if let Some(spares) = self.spares.take() {
            spares.finish();
        }
        if let Some((tx, reaper)) = self.retire.take() {
            drop(tx);
            let _ = reaper.join();
        }
        // Dropping `self` drops the slot's sandbox and with it its own fork
        // server, now that every process it forked has been reaped.
    }

    /// Tops `backlog` up to the next window from the queue (waiting only
    /// for its first task); false when there is nothing more to run.
    fn fill<T>(
        &self,
        rx: &Mutex<Receiver<Task<T>>>,
        tx: &SyncSender<Finished<T>>,
        backlog: &mut VecDeque<Pending<T>>,
    ) -> bool {
        while backlog.is_empty() {
            let Some(task) = self.next_task(rx) else {
                return false;
            };
            if let Some(unread) = self.admit(task, backlog) {
                if !self.deliver(tx, unread) {
                    return false;
                }
            }
        }
        if self.shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        let want = self.window_size(backlog);
        let mut bytes: usize = backlog.iter().map(|p| p.input.len() as usize).sum();
        let mut unread = Vec::new();
        if backlog.len() < want && bytes < WINDOW_BYTES {
            // Another slot holding the queue is waiting for work: it is empty.
            let rx = match rx.try_lock() {
                Ok(rx) => Some(rx),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            };
            if let Some(rx) = rx {
                while backlog.len() < want && bytes < WINDOW_BYTES {
                    let Ok(task) = rx.try_recv() else { break };
                    bytes += task.input.as_ref().map_or(0, |i| i.len() as usize);
                    unread.extend(self.admit(task, backlog));
                }
            }
        }
        unread.into_iter().all(|f| self.deliver(tx, f))
    }

    fn next_task<T>(&self, rx: &Mutex<Receiver<Task<T>>>) -> Option<Task<T>> {
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return None;
            }
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            if self.shared.stop.load(Ordering::SeqCst) {
                return None;
            }
            match rx.recv_timeout(TICK) {
                Ok(task) => return Some(task),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Takes a task off the queue into `backlog`; an input that could not
    /// be read is its own result at once.
    fn admit<T>(&self, task: Task<T>, backlog: &mut VecDeque<Pending<T>>) -> Option<Finished<T>> {
        self.shared.gate.release(task.len());
        match task.input {
            Ok(input) => {
                backlog.push_back(Pending {
                    tag: task.tag,
                    input,
                    sink: task.sink,
                    attempt: 1,
                    notes: Vec::new(),
                });
                None
            }
            Err(verdict) => Some(Finished {
                tag: task.tag,
                outcome: JobOutcome::failed(verdict),
                attempt: 1,
                generation: None,
                recycle_reason: None,
                poison: false,
                notes: Vec::new(),
            }),
        }
    }

    /// Sends a result; once nobody reads results, the pool stops.
    fn deliver<T>(&self, tx: &SyncSender<Finished<T>>, finished: Finished<T>) -> bool {
        if tx.send(finished).is_err() {
            self.shared.stop.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// How many of `backlog`'s tasks the next window may send.
    fn window_size<T>(&self, backlog: &VecDeque<Pending<T>>) -> usize {
        // Filters, a fresh worker's first job (it waits for the hello) and
        // a retry run alone.
        let Some(live) = &self.current else { return 1 };
        if backlog.front().is_some_and(|p| p.attempt > 1) {
            return 1;
        }
        let left = live.limit.saturating_sub(live.worker.jobs);
        let left = usize::try_from(left).unwrap_or(usize::MAX);
        // A file input (streamed, never held), one larger than a frame
        // (sent in parts) or one with a sink (its output streamed) runs
        // alone, and ends the window before it.
        let max_frame = u64::from(self.sandbox.policy.limits.max_frame);
        let alone = backlog
            .iter()
            .position(|p| {
                p.input.bytes().is_none() || p.input.len() > max_frame || p.sink.is_some()
            })
            .unwrap_or(usize::MAX);
        self.window
            .min(left)
            .min(self.rss_room(live))
            .min(alone)
            .max(1)
    }

    /// Jobs the worker may run before its RSS, growing as measured, would
    /// pass `recycle_rss` (checked after each window).
    fn rss_room(&self, live: &Live) -> usize {
        rss_room(self.config.recycle_rss, live.rss_kib, live.growth_kib)
    }

    /// Runs the next window of `backlog` and delivers what is final. Tasks
    /// to run again (a retry, jobs never answered) go back to its front.
    fn run_window<T>(
        &mut self,
        backlog: &mut VecDeque<Pending<T>>,
        tx: &SyncSender<Finished<T>>,
    ) -> bool {
        let n = self.window_size(backlog).clamp(1, backlog.len().max(1));
        let mut window: Vec<Pending<T>> = backlog.drain(..n.min(backlog.len())).collect();
        if self.sandbox.plugin.mode == Mode::Filter {
            // One process per input: the window is one job.
            return window.into_iter().all(|mut p| {
                let sink = p.sink.as_deref_mut().map(|s| s as &mut dyn OutputSink);
                let outcome = run_filter_input(&self.sandbox, &p.input, self.attach(), sink);
                self.settle_into(p, outcome, None, None, backlog, tx)
            });
        }
        let taken = match (self.current.take(), &self.spares) {
            (Some(live), _) => Ok(live),
            (None, Some(spares)) => spares.take(),
            (None, None) => start_worker(&self.sandbox, &self.config, &self.shared),
        };
        let mut live = match taken {
            Ok(live) => live,
            // No worker means a window of one (see window_size).
            Err(verdict) => {
                return window.into_iter().all(|p| {
                    let outcome = JobOutcome::failed(verdict.clone());
                    self.settle_into(p, outcome, None, None, backlog, tx)
                })
            }
        };
        let fresh = live.worker.jobs == 0;
        live.worker.attach(self.attach());
        self.publish(live.worker.process().plugin_pidfd().try_clone().ok());
        let outcomes = if let [one] = window.as_mut_slice() {
            let sink = one.sink.as_deref_mut().map(|s| s as &mut dyn OutputSink);
            vec![live.worker.run_input(&one.input, sink)]
        } else {
            // Only inputs held in memory share a window (see window_size).
            let inputs: Vec<&[u8]> = window.iter().filter_map(|p| p.input.bytes()).collect();
            live.worker.run_batch(&inputs)
        };
        self.publish(None);
        let answered = outcomes.len().min(window.len());
        if window.len() > 1 {
            self.shared
                .pipelined
                .fetch_add(answered as u64, Ordering::SeqCst);
        }
        self.shared
            .resent
            .fetch_add((window.len() - answered) as u64, Ordering::SeqCst);
        if !fresh {
            self.adapt_window(&outcomes);
        }
        let outcomes = latencies(outcomes);
        let generation = live.generation;
        let last = answered.checked_sub(1).and_then(|i| outcomes.get(i));
        let reason = self.recycle(live, last, answered);
        let mut window = window.into_iter();
        let mut retries = Vec::new();
        // `outcomes` first: zip must not take a task it has no outcome for.
        for (i, (outcome, p)) in outcomes.into_iter().zip(window.by_ref()).enumerate() {
            let reason = if i + 1 == answered { reason } else { None };
            match self.settle(p, outcome, Some(generation), reason) {
                Ok(finished) => {
                    if !self.deliver(tx, finished) {
                        return false;
                    }
                }
                Err(retry) => retries.push(retry),
            }
        }
        // Never answered: an earlier job of the window retired the worker.
        for p in window.rev() {
            backlog.push_front(p);
        }
        for p in retries.into_iter().rev() {
            backlog.push_front(p);
        }
        true
    }

    /// What every job of this slot gets besides its input.
    fn attach(&self) -> Attach {
        Attach {
            spill: self.config.spill.clone(),
            cancel: Some(self.shared.cancel.clone()),
            ..Attach::default()
        }
    }

    /// Grows the window while jobs are fast; one slow job shrinks it to one.
    fn adapt_window(&mut self, outcomes: &[JobOutcome]) {
        let slow = outcomes.is_empty() || outcomes.iter().any(|o| o.wall >= FAST_JOB);
        self.window = if slow {
            1
        } else {
            (self.window * 2).min(MAX_WINDOW)
        };
    }

    /// Decides whether `live` is retired after its window (whose last
    /// answer is `last`) and retires it or keeps it as the current worker.
    fn recycle(
        &mut self,
        mut live: Live,
        last: Option<&JobOutcome>,
        answered: usize,
    ) -> Option<RecycleReason> {
        let reason = match last {
            Some(outcome) => self.recycle_reason(&live, outcome),
            None => Some(RecycleReason::Tainted),
        };
        match reason {
            Some(r) => {
                self.shared.recycles[r.index()].fetch_add(1, Ordering::SeqCst);
                tracing::debug!(
                    slot = self.index,
                    pid = live.worker.pid(),
                    reason = r.word(),
                    "recycling a worker"
                );
                // The next job takes a spare that is already running.
                self.retire(live.worker);
            }
            None => {
                if let Some(outcome) = last {
                    live.note_rss(outcome.max_rss_kib, answered as u64);
                }
                self.current = Some(live);
            }
        }
        reason
    }

    /// `last` is the last answer of the worker's window. Its `max_rss_kib`
    /// is the worker's peak over the RSS read at each window's end (no
    /// extra `/proc` read here): it passes `recycle_rss` exactly when the
    /// current RSS does, since the worker is retired the first time it does.
    fn recycle_reason(&self, live: &Live, last: &JobOutcome) -> Option<RecycleReason> {
        if last.verdict.taints_worker() || !live.worker.is_alive() {
            Some(RecycleReason::Tainted)
        } else if live.worker.jobs >= live.limit {
            Some(RecycleReason::Batch)
        } else if last.max_rss_kib.saturating_mul(1024) > self.config.recycle_rss {
            Some(RecycleReason::Rss)
        } else if live.born.elapsed() >= self.config.max_lifetime {
            Some(RecycleReason::Lifetime)
        } else {
            None
        }
    }

    /// The final result of `p`'s attempt, or `p` again if it is retried.
    fn settle<T>(
        &self,
        mut p: Pending<T>,
        mut outcome: JobOutcome,
        generation: Option<u64>,
        recycle_reason: Option<RecycleReason>,
    ) -> Result<Finished<T>, Pending<T>> {
        if self.shared.cancel.load(Ordering::SeqCst) && !outcome.verdict.is_ok() {
            p.notes.push(format!(
                "killed at shutdown; the plugin's verdict was: {}",
                outcome.verdict
            ));
            outcome.verdict = Verdict::Cancelled;
        }
        let retry = self.config.retry
            && p.attempt == 1
            && outcome.verdict.is_retryable()
            && !self.shared.stop.load(Ordering::SeqCst);
        if retry {
            p.notes.push(format!(
                "attempt 1 (worker pid {}, generation {}): {}; retried on a fresh worker",
                outcome.pid,
                generation.map_or_else(|| "-".to_string(), |g| g.to_string()),
                truncate(&outcome.verdict.to_string(), 1000),
            ));
            p.attempt = 2;
            if let Some(sink) = &mut p.sink {
                sink.restart();
            }
            return Err(p);
        }
        let poison = p.attempt > 1 && outcome.verdict.is_retryable();
        Ok(Finished {
            tag: p.tag,
            outcome,
            attempt: p.attempt,
            generation,
            recycle_reason,
            poison,
            notes: p.notes,
        })
    }

    /// [`Slot::settle`], delivering the result or queueing the retry first.
    fn settle_into<T>(
        &self,
        p: Pending<T>,
        outcome: JobOutcome,
        generation: Option<u64>,
        recycle_reason: Option<RecycleReason>,
        backlog: &mut VecDeque<Pending<T>>,
        tx: &SyncSender<Finished<T>>,
    ) -> bool {
        match self.settle(p, outcome, generation, recycle_reason) {
            Ok(finished) => self.deliver(tx, finished),
            Err(retry) => {
                backlog.push_front(retry);
                true
            }
        }
    }

    /// The pool stopped with `backlog` not run: tasks never answered are
    /// dropped like queued ones; a retry due is recorded as cancelled.
    fn abandon<T>(&self, backlog: VecDeque<Pending<T>>, tx: &SyncSender<Finished<T>>) {
        for mut p in backlog.into_iter().filter(|p| p.attempt > 1) {
            p.notes
                .push("the retry did not run: the pool stopped first".to_string());
            let finished = Finished {
                tag: p.tag,
                outcome: JobOutcome::failed(Verdict::Cancelled),
                attempt: p.attempt,
                generation: None,
                recycle_reason: None,
                poison: false,
                notes: p.notes,
            };
            if !self.deliver(tx, finished) {
                return;
            }
        }
    }

    fn publish(&self, pidfd: Option<OwnedFd>) {
        let mut inflight = self
            .shared
            .inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        inflight[self.index] = pidfd;
        // A cancel that came before the job was published must still reach it.
        if self.shared.cancel.load(Ordering::SeqCst) {
            if let Some(fd) = &inflight[self.index] {
                crate::spawn::kill_pidfd(fd.as_fd());
            }
        }
    }

    fn retire(&mut self, worker: Worker) {
        if self.retire.is_none() {
            let (tx, rx) = mpsc::sync_channel::<Worker>(0);
            let reaper = std::thread::Builder::new()
                .name(format!("pw-reaper-{}", self.index))
                .spawn(move || {
                    for w in rx {
                        w.shutdown();
                    }
                })
                .expect("spawn a reaper thread");
            self.retire = Some((tx, reaper));
        }
        if let Some((tx, _)) = &self.retire {
            if let Err(mpsc::SendError(w)) = tx.send(worker) {
                w.shutdown();
            }
        }
    }
}

/// The sandbox slot `index` spawns from: its own fork server with the same
/// profile, so that slots spawn and reap in parallel (slot 0 keeps the
/// pool's). If one cannot be started the slot shares the pool's, which is
/// slower but no weaker, and says so in the log.
fn own_sandbox(index: usize, pool: &Arc<Sandbox>) -> Arc<Sandbox> {
    if index == 0 {
        return pool.clone();
    }
    let own = pool
        .fork_server()
        .start_another()
        .map_err(SandboxError::from)
        .and_then(|fs| pool.replicate(Arc::new(fs)));
    match own {
        Ok(sandbox) => Arc::new(sandbox),
        Err(e) => {
            tracing::warn!(
                slot = index,
                "cannot start a fork server for this worker slot; it shares the pool's, so its spawns queue behind the others': {e}"
            );
            pool.clone()
        }
    }
}

/// `run_batch` times each job from the previous answer, and answers read
/// together then show next to no time. A job's latency is the time from
/// its window's write to its answer (the jobs ahead of it included): the
/// running sum.
fn latencies(mut outcomes: Vec<JobOutcome>) -> Vec<JobOutcome> {
    let mut since_sent = Duration::ZERO;
    for o in &mut outcomes {
        since_sent += o.wall;
        o.wall = since_sent;
    }
    outcomes
}

/// Jobs a worker at `rss_kib`, growing `growth_kib` per job, may run
/// before it passes `recycle_rss` bytes; 2 while its growth is unknown.
fn rss_room(recycle_rss: u64, rss_kib: Option<u64>, growth_kib: Option<u64>) -> usize {
    if recycle_rss == u64::MAX {
        return usize::MAX;
    }
    match (rss_kib, growth_kib) {
        (Some(_), Some(0)) => usize::MAX,
        (Some(rss), Some(growth)) => {
            let room = (recycle_rss / 1024).saturating_sub(rss) / growth;
            usize::try_from(room).unwrap_or(usize::MAX)
        }
        // Not measured yet: a small window measures it.
        _ => 2,
    }
}

fn start_worker(sandbox: &Sandbox, config: &PoolConfig, shared: &Shared) -> Result<Live, Verdict> {
    let worker = Worker::start(sandbox).map_err(|e| Verdict::SetupError(e.to_string()))?;
    let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(Live {
        worker,
        generation,
        limit: jittered(config.batch, random()),
        born: Instant::now(),
        rss_kib: None,
        growth_kib: None,
    })
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

impl Spares {
    fn start(
        index: usize,
        sandbox: &Arc<Sandbox>,
        config: &PoolConfig,
        shared: &Arc<Shared>,
    ) -> Spares {
        let (tx, rx) = mpsc::sync_channel(0);
        let (sandbox, config, shared) = (sandbox.clone(), config.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("pw-spares-{index}"))
            .spawn(move || {
                while !shared.stop.load(Ordering::SeqCst) {
                    // A spare nobody takes is dropped here: its process is killed and reaped.
                    if tx.send(start_worker(&sandbox, &config, &shared)).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn a spare-worker thread");
        Spares { rx, thread }
    }

    /// The next fresh worker (waits if it is still being started).
    fn take(&self) -> Result<Live, Verdict> {
        // Closed only once the pool stops: the job never started.
        self.rx.recv().unwrap_or(Err(Verdict::Cancelled))
    }

    /// Stops the thread and reaps the spare it held.
    fn finish(self) {
        drop(self.rx);
        let _ = self.thread.join();
    }
}

/// `batch` moved by up to ±10% according to `r`, never below 1.
pub fn jittered(batch: u64, r: u64) -> u64 {
    let span = batch / 10;
    if span == 0 {
        return batch.max(1);
    }
    (batch - span + r % (2 * span + 1)).max(1)
}

/// A random number good enough for jitter (std seeds RandomState per process).
fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

/// At most `max` bytes of `s`, cut on a character boundary, with `…` if cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_jittered_batch_of_100_stays_within_ten_percent() {
        let limits: Vec<u64> = (0..1000).map(|r| jittered(100, r)).collect();
        assert_eq!(limits.iter().min(), Some(&90));
        assert_eq!(limits.iter().max(), Some(&110));
    }

    #[test]
    fn test_jittered_batch_of_1_is_1() {
        assert_eq!(jittered(1, 12345), 1);
    }

    #[test]
    fn test_truncate_multibyte_cuts_on_char_boundary() {
        assert_eq!(truncate("ééé", 3), "é…");
    }

    #[test]
    fn test_rss_room_leak_of_8_mib_per_job_stops_at_the_limit() {
        assert_eq!(rss_room(64 << 20, Some(27 << 10), Some(8 << 10)), 4);
    }

    #[test]
    fn test_rss_room_unmeasured_growth_is_two_jobs() {
        assert_eq!(rss_room(64 << 20, Some(27 << 10), None), 2);
    }

    #[test]
    fn test_rss_room_flat_worker_is_unbounded() {
        assert_eq!(rss_room(64 << 20, Some(27 << 10), Some(0)), usize::MAX);
    }

    #[test]
    fn test_rss_room_at_the_limit_is_zero() {
        assert_eq!(rss_room(64 << 20, Some(70 << 10), Some(8 << 10)), 0);
    }

    #[test]
    fn test_latencies_of_a_window_are_times_since_it_was_sent() {
        let job = |us| JobOutcome {
            wall: Duration::from_micros(us),
            ..JobOutcome::failed(Verdict::Ok)
        };

        let walls: Vec<u64> = latencies(vec![job(30), job(0), job(5)])
            .iter()
            .map(|o| o.wall.as_micros() as u64)
            .collect();

        assert_eq!(walls, [30, 30, 35]);
    }

    #[test]
    fn test_recycle_reason_words_are_the_audit_words() {
        let words: Vec<_> = RecycleReason::ALL.iter().map(|r| r.word()).collect();
        assert_eq!(words, ["batch", "rss", "lifetime", "tainted"]);
    }
}
