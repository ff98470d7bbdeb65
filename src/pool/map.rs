//! [`Pool::map`]: tasks in, results out, no deadlock whatever the caller
//! does; and what happens to a pool dropped before it was joined.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Finished, Pool, PoolConfig, PoolStats, Shared, Task};
use crate::sandbox::Sandbox;
use crate::verdict::Verdict;

/// Why a pool could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A thread (a worker slot, or the feeding thread of [`Pool::map`])
    /// could not be started.
    #[error("cannot start a pool thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// The results of [`Pool::map`], in completion order; the iterator ends
/// once every task has its result. Then [`Results::join`] gives the
/// pool's counters. Dropping it early cancels what is left (see [`Pool`]).
pub struct Results<T> {
    pool: Pool<T>,
    feeding: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Pool<T> {
    /// Runs every task of `tasks` on a pool of `config.workers` workers
    /// and gives the results as an iterator, in completion order (each
    /// task's `tag` comes back with its result).
    ///
    /// A thread of the pool's own pulls `tasks` and feeds the queue; it
    /// blocks while the queue is full (backpressure: at most
    /// [`PoolConfig::queue_capacity`] tasks and [`QUEUE_BYTES`](super::QUEUE_BYTES) per worker
    /// of inputs wait), so `tasks` may be endless or lazy (a directory
    /// walk), and memory stays bounded by the workers, not the inputs.
    /// The caller reads at its own pace; nothing it does or fails to do
    /// can deadlock the pool.
    ///
    /// ```no_run
    /// use plugwarden::pool::{Pool, PoolConfig, Task};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// plugwarden::bootstrap();
    /// let sandbox = plugwarden::Sandbox::builder("/opt/plugins/pw-echo")
    ///     .policy("strict")
    ///     .build()?;
    /// let config = PoolConfig::from_policy(sandbox.policy());
    /// let tasks = (0..1000u32).map(|i| Task::new(i, i.to_string().into_bytes()));
    /// let mut results = Pool::map(sandbox, config, tasks)?;
    /// for done in results.by_ref() {
    ///     println!("{}: {}", done.tag, done.outcome.verdict);
    /// }
    /// let stats = results.join();
    /// println!("{} workers started", stats.workers_started);
    /// # Ok(()) }
    /// ```
    pub fn map<I>(
        sandbox: impl Into<Arc<Sandbox>>,
        config: PoolConfig,
        tasks: I,
    ) -> Result<Results<T>, PoolError>
    where
        I: IntoIterator<Item = Task<T>>,
        I::IntoIter: Send + 'static,
    {
        let (pool, feeder) = Pool::start(sandbox, config)?;
        let tasks = tasks.into_iter();
        let feeding = std::thread::Builder::new()
            .name("pw-pool-feeder".into())
            .spawn(move || {
                for task in tasks {
                    if feeder.submit(task).is_err() {
                        break; // the pool was stopped
                    }
                }
            })
            .map_err(PoolError::Thread)?;
        Ok(Results {
            pool,
            feeding: Some(feeding),
        })
    }
}

impl<T> Results<T> {
    /// Stops intake: tasks not yet queued are not run, jobs in flight
    /// finish.
    pub fn stop(&self) {
        self.pool.stop();
    }

    /// Stops intake and kills the jobs in flight: they end `cancelled`.
    pub fn cancel(&self) {
        self.pool.cancel();
    }

    /// Waits for the pool to end (call after the iterator ended, or after
    /// [`Results::stop`]) and gives its counters. Results not read are
    /// dropped.
    pub fn join(mut self) -> PoolStats {
        self.pool.stop();
        let pool = std::mem::replace(&mut self.pool, Pool::finished());
        let stats = pool.join();
        if let Some(feeding) = self.feeding.take() {
            let _ = feeding.join();
        }
        stats
    }
}

impl<T> Iterator for Results<T> {
    type Item = Finished<T>;

    fn next(&mut self) -> Option<Finished<T>> {
        self.pool.results.recv().ok()
    }
}

impl<T> Drop for Results<T> {
    fn drop(&mut self) {
        if !self.pool.slots.is_empty() {
            self.pool.cancel();
        }
        // The pool's own drop reports what was cut short; the feeding
        // thread sees the stop and ends.
        let pool = std::mem::replace(&mut self.pool, Pool::finished());
        drop(pool);
        if let Some(feeding) = self.feeding.take() {
            let _ = feeding.join();
        }
    }
}

impl<T> Pool<T> {
    /// A pool with nothing running (what is left once one was taken).
    fn finished() -> Pool<T> {
        Pool {
            results: mpsc::sync_channel(0).1,
            shared: {
                let shared = Shared::new(0, 0);
                shared.stop.store(true, Ordering::SeqCst);
                Arc::new(shared)
            },
            slots: Vec::new(),
        }
    }
}

impl<T> Drop for Pool<T> {
    /// A pool dropped before [`Pool::join`]: cancelled, its jobs in flight
    /// end `cancelled`, and the results nobody read are counted in a
    /// warning; every plugin process is reaped before this returns.
    fn drop(&mut self) {
        if self.slots.is_empty() {
            return;
        }
        self.cancel();
        let (mut unread, mut cancelled) = (0u64, 0u64);
        // Ends once every slot has exited and dropped its sender.
        while let Ok(done) = self.results.recv() {
            unread += 1;
            cancelled += u64::from(done.outcome.verdict == Verdict::Cancelled);
        }
        for slot in std::mem::take(&mut self.slots) {
            let _ = slot.join();
        }
        if unread > 0 {
            tracing::warn!(
                unread,
                cancelled,
                "pool dropped before it was joined: its jobs were cancelled and {unread} results \
                 ({cancelled} of them cancelled) were never read"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_finished_pool_drops_and_joins_at_once() {
        let pool = Pool::<u32>::finished();
        assert_eq!(pool.join(), PoolStats::default());
        drop(Pool::<u32>::finished());
    }
}
