//! One worker slot's loop: take tasks, size the window, run it.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

use super::{
    Finished, Live, Pending, Slot, Spares, Task, FAST_JOB, MAX_WINDOW, TICK, WINDOW_BYTES,
};
use crate::sink::OutputSink;
use crate::verdict::Verdict;
use crate::worker::{run_filter_input, Attach, JobOutcome};

impl Slot {
    pub(super) fn run<T>(mut self, rx: &Mutex<Receiver<Task<T>>>, tx: &SyncSender<Finished<T>>) {
        self.source = self.source.for_slot(self.index);
        if self.source.filter().is_none() {
            self.spares = Spares::start(self.index, &self.source, &self.config, &self.shared);
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
    pub(super) fn fill<T>(
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

    pub(super) fn next_task<T>(&self, rx: &Mutex<Receiver<Task<T>>>) -> Option<Task<T>> {
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
    pub(super) fn admit<T>(
        &self,
        task: Task<T>,
        backlog: &mut VecDeque<Pending<T>>,
    ) -> Option<Finished<T>> {
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
    pub(super) fn deliver<T>(&self, tx: &SyncSender<Finished<T>>, finished: Finished<T>) -> bool {
        if tx.send(finished).is_err() {
            self.shared.stop.store(true, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// How many of `backlog`'s tasks the next window may send.
    pub(super) fn window_size<T>(&self, backlog: &VecDeque<Pending<T>>) -> usize {
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
        let max_frame = u64::from(self.source.max_frame());
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
    pub(super) fn rss_room(&self, live: &Live) -> usize {
        rss_room(self.config.recycle_rss, live.rss_kib, live.growth_kib)
    }

    /// Runs the next window of `backlog` and delivers what is final. Tasks
    /// to run again (a retry, jobs never answered) go back to its front.
    pub(super) fn run_window<T>(
        &mut self,
        backlog: &mut VecDeque<Pending<T>>,
        tx: &SyncSender<Finished<T>>,
    ) -> bool {
        let n = self.window_size(backlog).clamp(1, backlog.len().max(1));
        let mut window: Vec<Pending<T>> = backlog.drain(..n.min(backlog.len())).collect();
        if let Some(sandbox) = self.source.filter() {
            // One process per input: the window is one job.
            return window.into_iter().all(|mut p| {
                let sink = p.sink.as_deref_mut().map(|s| s as &mut dyn OutputSink);
                let outcome = run_filter_input(sandbox, &p.input, self.attach(), sink);
                self.settle_into(p, outcome, None, None, backlog, tx)
            });
        }
        let mut live = match self.take_worker() {
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

    /// The current worker, else a warm spare, else a fresh one.
    fn take_worker(&mut self) -> Result<Live, Verdict> {
        match (self.current.take(), &self.spares) {
            (Some(live), _) => Ok(live),
            (None, Some(spares)) => spares.take(),
            (None, None) => self.source.start_worker(&self.config, &self.shared),
        }
    }

    /// What every job of this slot gets besides its input.
    pub(super) fn attach(&self) -> Attach {
        Attach {
            spill: self.config.spill.clone(),
            cancel: Some(self.shared.cancel.clone()),
            ..Attach::default()
        }
    }

    /// Grows the window while jobs are fast; one slow job shrinks it to one.
    pub(super) fn adapt_window(&mut self, outcomes: &[JobOutcome]) {
        let slow = outcomes.is_empty() || outcomes.iter().any(|o| o.wall >= FAST_JOB);
        self.window = if slow {
            1
        } else {
            (self.window * 2).min(MAX_WINDOW)
        };
    }
}

/// `run_batch` times each job from the previous answer, and answers read
/// together then show next to no time. A job's latency is the time from
/// its window's write to its answer (the jobs ahead of it included): the
/// running sum.
pub(super) fn latencies(mut outcomes: Vec<JobOutcome>) -> Vec<JobOutcome> {
    let mut since_sent = Duration::ZERO;
    for o in &mut outcomes {
        since_sent += o.wall;
        o.wall = since_sent;
    }
    outcomes
}

/// Jobs a worker at `rss_kib`, growing `growth_kib` per job, may run
/// before it passes `recycle_rss` bytes; 2 while its growth is unknown.
pub(super) fn rss_room(recycle_rss: u64, rss_kib: Option<u64>, growth_kib: Option<u64>) -> usize {
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

/// `batch` moved by up to ±10% according to `r`, never below 1.
pub fn jittered(batch: u64, r: u64) -> u64 {
    let span = batch / 10;
    if span == 0 {
        return batch.max(1);
    }
    (batch - span + r % (2 * span + 1)).max(1)
}

/// A random number good enough for jitter (std seeds RandomState per process).
pub(super) fn random() -> u64 {
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
