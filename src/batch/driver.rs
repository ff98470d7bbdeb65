//! [`Batch::run`]: the feeder thread, the pools, and the calling thread
//! recording results until every slot has ended.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::commit::{Durability, GroupCommit, Limits};
use super::feed::{feed, FeedState, Item, Routing};
use super::record::{record_base, Latencies, RecordBase, Recorder};
use super::shard::Sharding;
use super::{error_chain, Batch, BatchError, Event, Summary, SETTLE};
use crate::audit::AuditWriter;
use crate::pool::{Pool, PoolConfig, PoolStats};
use crate::sink::{Spill, SPILL_OVER};
use crate::verdict::Verdict;

/// Runs a batch: feeder thread, pools, and this thread recording results.
pub(super) fn run<'a>(
    b: Batch,
    report: Box<dyn FnMut(Event<'_>) + 'a>,
) -> Result<Summary, BatchError> {
    let mut audit = match &b.audit {
        Some(path) => Some(AuditWriter::open(path)?),
        None => None,
    };
    let recorded = match (&b.audit, b.resume) {
        (Some(path), true) => crate::audit::recorded_inputs(path)?,
        _ => HashSet::new(),
    };
    if let Some(w) = &mut audit {
        w.set_sync(false);
    }
    let bases = match &audit {
        Some(_) => b
            .sandboxes
            .iter()
            .map(|s| record_base(s))
            .collect::<Result<Vec<_>, _>>()?,
        None => b.sandboxes.iter().map(|_| RecordBase::default()).collect(),
    };
    let routes = bases.iter().map(RecordBase::route).collect();
    let log = audit.as_mut().zip(b.audit.as_deref());
    let sharding = Arc::new(Sharding::start(b.shard, &b.inputs, routes, log)?);
    let mut workers = 0;
    let started = Instant::now();
    let mut pools = Vec::new();
    let mut feeders = Vec::new();
    for sandbox in &b.sandboxes {
        let mut config = PoolConfig::from_policy(&sandbox.policy);
        if let Some(n) = b.workers {
            config.workers = n;
        }
        if let Some(n) = b.jobs_per_worker {
            config.batch = n;
        }
        // A big output goes to a file in the output directory (renamed
        // into place), or only into its hash; a converter needs the bytes.
        if b.convert.is_none() {
            config.spill = Some(Spill {
                over: SPILL_OVER,
                dir: b.out.clone(),
            });
        }
        workers = workers.max(config.workers);
        let (pool, feeder) = Pool::<Item>::start(sandbox.clone(), config)?;
        pools.push(pool);
        feeders.push(feeder);
    }
    let state = Arc::new(FeedState::default());
    let routing = Routing {
        router: b.router,
        prepare: b.prepare,
        limits: b
            .sandboxes
            .iter()
            .map(|s| b.max_input.unwrap_or(s.policy.limits.input))
            .collect(),
    };
    let feed_thread = {
        let state = state.clone();
        let inputs = b.inputs.clone();
        let sharding = sharding.clone();
        std::thread::Builder::new()
            .name("pw-feeder".into())
            .spawn(move || feed(&inputs, &sharding, &feeders, &routing, &recorded, &state))
            .map_err(|error| BatchError::Thread {
                which: "feeder",
                error,
            })?
    };
    let limits = Limits {
        size: b.group_size as usize,
        time: b.group_time,
    };
    let audited = audit.is_some();
    let commit =
        GroupCommit::start(b.out.as_deref(), audit, b.durability, limits).map_err(|error| {
            BatchError::Thread {
                which: "committer",
                error,
            }
        })?;
    let mut rec = Recorder {
        out: b.out.clone(),
        commit,
        audited,
        audit: None,
        bases,
        convert: b.convert,
        report,
        counts: BTreeMap::new(),
        latencies: Latencies::default(),
        poison: Vec::new(),
        poison_count: 0,
        done: 0,
        fatal: None,
    };
    let stop = &*b.stop;
    let settled = consume(&pools, &mut rec, stop, &state, b.grace);
    let interrupted = stop.load(Ordering::SeqCst);
    let mut stats = PoolStats::default();
    if settled {
        for pool in pools {
            let s = pool.join();
            for (total, n) in stats.recycles.iter_mut().zip(s.recycles) {
                *total += n;
            }
            stats.workers_started += s.workers_started;
        }
    } else {
        // Dropping a pool kills what is left of its jobs.
        (rec.report)(Event::Abandoned);
        drop(pools);
    }
    // The feeder may be in a read that does not end (a hung network
    // filesystem): it is not waited for past a moment, and is left behind.
    let waited = Instant::now();
    while !feed_thread.is_finished() && waited.elapsed() < SETTLE {
        std::thread::sleep(Duration::from_millis(10));
    }
    if feed_thread.is_finished() {
        let _ = feed_thread.join();
    }
    rec.finish_commit();
    let elapsed = started.elapsed();
    let skipped = state.skipped.load(Ordering::SeqCst);
    let all_judged = !interrupted
        && rec.fatal.is_none()
        && state.walk_done.load(Ordering::SeqCst)
        && !rec.counts.contains_key(Verdict::Cancelled.word());
    let found = state.submitted.load(Ordering::SeqCst) + skipped;
    if let Err(e) = sharding.finish(rec.audit.as_mut(), all_judged, found) {
        rec.fail(error_chain(&e));
    }
    if let (Some(audit), true) = (&mut rec.audit, b.durability != Durability::None) {
        if let Err(e) = audit.sync() {
            rec.fail(error_chain(&e));
        }
    }
    let lat = |p| rec.latencies.percentile_ms(p);
    Ok(Summary {
        inputs: rec.done,
        skipped,
        latency_ms: [lat(50.0), lat(95.0), lat(99.0)],
        verdicts: std::mem::take(&mut rec.counts),
        poison: std::mem::take(&mut rec.poison),
        poison_count: rec.poison_count,
        recycles: stats
            .recycles_by_reason()
            .map(|(r, n)| (r.word(), n))
            .collect(),
        workers,
        workers_started: stats.workers_started,
        elapsed,
        interrupted,
        error: rec.fatal.take(),
        audit_last_hash: rec.audit.as_ref().map(|a| a.last_hash().to_string()),
    })
}

/// Takes results until every slot has exited; handles the stop flag and
/// fatal errors. Returns whether every slot ended (false when, [`SETTLE`]
/// after the jobs in flight were killed, some slot still has not).
fn consume(
    pools: &[Pool<Item>],
    rec: &mut Recorder,
    stop: &std::sync::atomic::AtomicBool,
    state: &FeedState,
    grace: Duration,
) -> bool {
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut stopped_for_fatal = false;
    let mut total_shown = false;
    loop {
        if stop.load(Ordering::SeqCst) && kill_at.is_none() {
            (rec.report)(Event::Stopping { grace });
            pools.iter().for_each(Pool::stop);
            kill_at = Some(Instant::now() + grace);
        }
        if kill_at.is_some_and(|t| Instant::now() >= t) && !killed {
            pools.iter().for_each(Pool::cancel);
            killed = true;
        }
        if kill_at.is_some_and(|t| Instant::now() >= t + SETTLE) {
            return false;
        }
        if rec.fatal.is_some() && !stopped_for_fatal {
            pools.iter().for_each(Pool::stop);
            stopped_for_fatal = true;
        }
        if !total_shown && state.walk_done.load(Ordering::SeqCst) {
            let total = state.submitted.load(Ordering::SeqCst);
            (rec.report)(Event::Walked { total });
            total_shown = true;
        }
        rec.commit.tick();
        for report in rec.commit.reports().collect::<Vec<_>>() {
            rec.note(report);
        }
        // One pool waits on its channel; several are polled in turn; an
        // open group closes on time.
        let wait = Duration::from_millis(if pools.len() == 1 { 100 } else { 5 });
        let wait = rec.commit.due_in().map_or(wait, |due| due.min(wait));
        let mut open = 0;
        for pool in pools {
            match pool
                .results()
                .recv_timeout(if open == 0 { wait } else { Duration::ZERO })
            {
                Ok(f) => {
                    rec.take(f);
                    open += 1;
                }
                Err(RecvTimeoutError::Timeout) => open += 1,
                Err(RecvTimeoutError::Disconnected) => {}
            }
        }
        if open == 0 {
            break;
        }
    }
    true
}
