//! Settling a window's results (retry, then quarantine), recycling and
//! retiring workers, and the warm spares.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;

use super::source::Source;
use super::{truncate, Finished, Live, Pending, PoolConfig, RecycleReason, Shared, Slot, Spares};
use crate::verdict::Verdict;
use crate::worker::{JobOutcome, Worker};

impl Slot {
    /// Decides whether `live` is retired after its window (whose last
    /// answer is `last`) and retires it or keeps it as the current worker.
    pub(super) fn recycle(
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
    pub(super) fn recycle_reason(&self, live: &Live, last: &JobOutcome) -> Option<RecycleReason> {
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
    pub(super) fn settle<T>(
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
    pub(super) fn settle_into<T>(
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
    pub(super) fn abandon<T>(&self, backlog: VecDeque<Pending<T>>, tx: &SyncSender<Finished<T>>) {
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

    pub(super) fn publish(&self, pidfd: Option<OwnedFd>) {
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

    pub(super) fn retire(&mut self, worker: Worker) {
        if self.retire.is_none() {
            let (tx, rx) = mpsc::sync_channel::<Worker>(0);
            let reaper = std::thread::Builder::new()
                .name(format!("pw-reaper-{}", self.index))
                .spawn(move || {
                    for w in rx {
                        w.shutdown();
                    }
                });
            match reaper {
                Ok(reaper) => self.retire = Some((tx, reaper)),
                // No thread to spare: this slot shuts the worker down itself.
                Err(e) => {
                    tracing::warn!("cannot start a reaper thread, retiring inline: {e}");
                    worker.shutdown();
                    return;
                }
            }
        }
        if let Some((tx, _)) = &self.retire {
            if let Err(mpsc::SendError(w)) = tx.send(worker) {
                w.shutdown();
            }
        }
    }
}

impl Spares {
    pub(super) fn start(
        index: usize,
        source: &Source,
        config: &PoolConfig,
        shared: &Arc<Shared>,
    ) -> Option<Spares> {
        let (tx, rx) = mpsc::sync_channel(0);
        let (source, config, shared) = (source.clone(), config.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("pw-spares-{index}"))
            .spawn(move || {
                while !shared.stop.load(Ordering::SeqCst) {
                    // A spare nobody takes is dropped here: its process is killed and reaped.
                    if tx.send(source.start_worker(&config, &shared)).is_err() {
                        break;
                    }
                }
            })
            // No thread to spare: the slot starts each worker itself.
            .inspect_err(|e| tracing::warn!("cannot start a spare-worker thread: {e}"))
            .ok()?;
        Some(Spares { rx, thread })
    }

    /// The next fresh worker (waits if it is still being started).
    pub(super) fn take(&self) -> Result<Live, Verdict> {
        // Closed only once the pool stops: the job never started.
        self.rx.recv().unwrap_or(Err(Verdict::Cancelled))
    }

    /// Stops the thread and reaps the spare it held.
    pub(super) fn finish(self) {
        drop(self.rx);
        let _ = self.thread.join();
    }
}
