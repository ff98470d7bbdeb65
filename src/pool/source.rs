//! Where a slot's workers come from: its sandbox's fork server, or, in
//! the pool's unit tests, stand-ins for plugin processes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::slot::random;
use super::{jittered, Live, PoolConfig, Shared};
use crate::sandbox::{Mode, Sandbox, SandboxError};
use crate::verdict::Verdict;
use crate::worker::Worker;

/// A slot's source of workers (and, for filters, of jobs).
#[derive(Clone)]
pub(super) enum Source {
    /// The sandbox's fork server (each slot after the first starts its own,
    /// [`Source::for_slot`]).
    Sandbox(Arc<Sandbox>),
    /// Stand-ins for plugin processes (worker mode only), and the largest
    /// input one frame takes.
    #[cfg(test)]
    Fake(Arc<dyn Fn() -> Worker + Send + Sync>, u32),
}

impl Source {
    /// What slot `index` spawns from: its own fork server with the same
    /// profile, so that slots spawn and reap in parallel (slot 0 keeps the
    /// pool's). If one cannot be started the slot shares the pool's, which
    /// is slower but no weaker, and says so in the log.
    pub(super) fn for_slot(&self, index: usize) -> Source {
        match self {
            Source::Sandbox(pool) => Source::Sandbox(own_sandbox(index, pool)),
            #[cfg(test)]
            fake => fake.clone(),
        }
    }

    /// The sandbox to run each job in a fresh process of, for a filter.
    pub(super) fn filter(&self) -> Option<&Sandbox> {
        match self {
            Source::Sandbox(s) if s.plugin.mode == Mode::Filter => Some(s),
            _ => None,
        }
    }

    /// The largest input one frame takes.
    pub(super) fn max_frame(&self) -> u32 {
        match self {
            Source::Sandbox(s) => s.policy.limits.max_frame,
            #[cfg(test)]
            Source::Fake(_, max_frame) => *max_frame,
        }
    }

    fn worker(&self) -> Result<Worker, SandboxError> {
        match self {
            Source::Sandbox(s) => Worker::start(s),
            #[cfg(test)]
            Source::Fake(start, _) => Ok(start()),
        }
    }

    /// A fresh worker with its bookkeeping.
    pub(super) fn start_worker(
        &self,
        config: &PoolConfig,
        shared: &Shared,
    ) -> Result<Live, Verdict> {
        let worker = self
            .worker()
            .map_err(|e| Verdict::SetupError(e.to_string()))?;
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
}

/// The sandbox slot `index` spawns from ([`Source::for_slot`]).
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
