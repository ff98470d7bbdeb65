//! The worker pool: N sandboxed workers fed from one bounded queue.
//!
//! Why it is shaped this way:
//! - **Dynamic scheduling.** Every worker slot is a host thread that owns
//!   its plugin process and pulls the next task from one central queue when
//!   it is free, so a slow input holds up only its own slot.
//! - **Bounded memory.** The queue is a `sync_channel` of about twice the
//!   number of workers, and so is the results channel: the producer (a
//!   streaming directory walk) blocks when the workers are busy, and the
//!   workers block when the consumer is slow. Memory is O(workers), never
//!   O(inputs).
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
//!   as `cancelled`.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::policy::Policy;
use crate::sandbox::{Mode, Sandbox};
use crate::verdict::Verdict;
use crate::worker::{run_filter, JobOutcome, Worker};

/// How often an idle slot looks at the stop flag.
const TICK: Duration = Duration::from_millis(50);

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
        }
    }

    /// Capacity of the task and result queues.
    pub fn queue_capacity(&self) -> usize {
        self.workers.max(1) * 2
    }
}

/// One input for the pool. `tag` is the caller's and comes back with the
/// result; an `Err` input (it could not be read) is passed through as the
/// result without running, so every input has one result on one channel.
pub struct Task<T> {
    pub tag: T,
    pub input: Result<Vec<u8>, Verdict>,
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
    /// Queues a task, blocking while the queue is full. Gives the task back
    /// once the pool stops taking work.
    pub fn submit(&self, task: Task<T>) -> Result<(), Task<T>> {
        if self.shared.stop.load(Ordering::SeqCst) {
            return Err(task);
        }
        self.tx.send(task).map_err(|e| e.0)
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
}

impl PoolStats {
    pub fn recycles_by_reason(&self) -> impl Iterator<Item = (RecycleReason, u64)> + '_ {
        RecycleReason::ALL.into_iter().zip(self.recycles)
    }
}

struct Shared {
    /// No slot takes a new task.
    stop: AtomicBool,
    /// In-flight jobs were killed: their results are `cancelled`.
    cancel: AtomicBool,
    /// Per slot: a duplicate of the pidfd of the plugin running a job.
    inflight: Mutex<Vec<Option<OwnedFd>>>,
    recycles: [AtomicU64; 4],
    generation: AtomicU64,
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
    /// dropped and the queue is empty, or when the pool is stopped.
    pub fn start(sandbox: Arc<Sandbox>, config: PoolConfig) -> (Pool<T>, Feeder<T>) {
        let workers = config.workers.max(1);
        let (task_tx, task_rx) = mpsc::sync_channel::<Task<T>>(config.queue_capacity());
        let (result_tx, results) = mpsc::sync_channel::<Finished<T>>(config.queue_capacity());
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            cancel: AtomicBool::new(false),
            inflight: Mutex::new((0..workers).map(|_| None).collect()),
            recycles: Default::default(),
            generation: AtomicU64::new(0),
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
            crate::forkserver::kill_pidfd(pidfd.as_fd());
        }
    }

    /// Waits for every slot (and its reaper) to finish; every plugin
    /// process of the pool has been reaped when this returns.
    pub fn join(self) -> PoolStats {
        drop(self.results);
        for slot in self.slots {
            let _ = slot.join();
        }
        PoolStats {
            recycles: std::array::from_fn(|i| self.shared.recycles[i].load(Ordering::SeqCst)),
            workers_started: self.shared.generation.load(Ordering::SeqCst),
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
}

/// One worker slot: a thread, its worker, its warm spare, its reaper.
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
}

impl Slot {
    fn run<T>(mut self, rx: &Mutex<Receiver<Task<T>>>, tx: &SyncSender<Finished<T>>) {
        if self.sandbox.plugin.mode == Mode::Worker {
            self.spares = Some(Spares::start(
                self.index,
                &self.sandbox,
                &self.config,
                &self.shared,
            ));
        }
        while let Some(task) = self.next_task(rx) {
            let finished = match task.input {
                Err(verdict) => Finished {
                    tag: task.tag,
                    outcome: JobOutcome::failed(verdict),
                    attempt: 1,
                    generation: None,
                    recycle_reason: None,
                    poison: false,
                    notes: Vec::new(),
                },
                Ok(input) => self.process(task.tag, &input),
            };
            if tx.send(finished).is_err() {
                break;
            }
        }
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

    /// Runs one input to its final verdict, retrying once if allowed.
    fn process<T>(&mut self, tag: T, input: &[u8]) -> Finished<T> {
        let mut notes = Vec::new();
        let mut attempt = 1;
        loop {
            let (mut outcome, generation, recycle_reason) = self.run_once(input);
            if self.shared.cancel.load(Ordering::SeqCst) && !outcome.verdict.is_ok() {
                notes.push(format!(
                    "killed at shutdown; the plugin's verdict was: {}",
                    outcome.verdict
                ));
                outcome.verdict = Verdict::Cancelled;
            }
            let retry = self.config.retry
                && attempt == 1
                && outcome.verdict.is_retryable()
                && !self.shared.stop.load(Ordering::SeqCst);
            if retry {
                notes.push(format!(
                    "attempt 1 (worker pid {}, generation {}): {}; retried on a fresh worker",
                    outcome.pid,
                    generation.map_or_else(|| "-".to_string(), |g| g.to_string()),
                    truncate(&outcome.verdict.to_string(), 1000),
                ));
                attempt = 2;
                continue;
            }
            let poison = attempt > 1 && outcome.verdict.is_retryable();
            return Finished {
                tag,
                outcome,
                attempt,
                generation,
                recycle_reason,
                poison,
                notes,
            };
        }
    }

    /// One attempt on the current worker (or a fresh filter process).
    fn run_once(&mut self, input: &[u8]) -> (JobOutcome, Option<u64>, Option<RecycleReason>) {
        if self.sandbox.plugin.mode == Mode::Filter {
            return (run_filter(&self.sandbox, input), None, None);
        }
        let taken = match (self.current.take(), &self.spares) {
            (Some(live), _) => Ok(live),
            (None, Some(spares)) => spares.take(),
            (None, None) => start_worker(&self.sandbox, &self.config, &self.shared),
        };
        let mut live = match taken {
            Ok(live) => live,
            Err(verdict) => return (JobOutcome::failed(verdict), None, None),
        };
        self.publish(live.worker.process().pidfd().try_clone().ok());
        let outcome = live.worker.run_job(input);
        self.publish(None);
        let generation = live.generation;
        let reason = self.recycle_reason(&live, &outcome.verdict);
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
            None => self.current = Some(live),
        }
        (outcome, Some(generation), reason)
    }

    fn recycle_reason(&self, live: &Live, verdict: &Verdict) -> Option<RecycleReason> {
        if verdict.taints_worker() || !live.worker.is_alive() {
            Some(RecycleReason::Tainted)
        } else if live.worker.jobs >= live.limit {
            Some(RecycleReason::Batch)
        } else if live
            .worker
            .rss_bytes()
            .is_some_and(|rss| rss > self.config.recycle_rss)
        {
            Some(RecycleReason::Rss)
        } else if live.born.elapsed() >= self.config.max_lifetime {
            Some(RecycleReason::Lifetime)
        } else {
            None
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
                crate::forkserver::kill_pidfd(fd.as_fd());
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

fn start_worker(sandbox: &Sandbox, config: &PoolConfig, shared: &Shared) -> Result<Live, Verdict> {
    let worker = Worker::start(sandbox).map_err(|e| Verdict::SetupError(e.to_string()))?;
    let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
    Ok(Live {
        worker,
        generation,
        limit: jittered(config.batch, random()),
        born: Instant::now(),
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
    fn test_recycle_reason_words_are_the_audit_words() {
        let words: Vec<_> = RecycleReason::ALL.iter().map(|r| r.word()).collect();
        assert_eq!(words, ["batch", "rss", "lifetime", "tainted"]);
    }
}
