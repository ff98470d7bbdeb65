//! `plugwarden run`: every input through the plugin, one verdict and one
//! audit record each, on a pool of workers (docs/BATCH.md).
//!
//! Four kinds of threads: a feeder walks the inputs as a stream, reads
//! each file and queues it (the queue is bounded, so memory is O(workers));
//! the pool's worker slots run the jobs; this thread takes the results in
//! completion order, writes the outputs, makes the audit records and prints
//! the progress bar and the summary; a committer puts outputs and records
//! on disk a group at a time (src/cli/commit.rs). Signals only set flags,
//! read here between results.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use plugwarden::audit::AuditWriter;
use plugwarden::input::Input;
use plugwarden::pool::{Pool, PoolConfig, PoolStats};
use plugwarden::sandbox::{Mode, Sandbox};
use plugwarden::sink::{Spill, SPILL_OVER};
use plugwarden::verdict::Verdict;
use plugwarden::worker::{run_filter_input, Attach, JobOutcome, Worker};

use super::commit::{Durability, GroupCommit, Limits};
use super::shard::{ShardArgs, Sharding};
use super::{parse_duration, parse_size, SandboxArgs, Usage, EXIT_OK, EXIT_USAGE, EXIT_VERDICT};

mod feed;
mod record;
mod signals;
mod summary;

use feed::{feed, FeedState, Routing};
pub(super) use feed::{sha256_file, sha256_hex};
pub use feed::{Converter, Item, Preparer, Router};
use record::{record_base, Latencies, RecordBase, Recorder};
pub use signals::{ignore_sigint_for_children, Signals};
use summary::{print_summary, progress_bar, show_total};

/// Longest `detail` kept in an audit record.
const MAX_DETAIL: usize = 16 << 10;
/// Longest single note, and most notes, in an audit record.
const MAX_NOTE: usize = 1000;
const MAX_NOTES: usize = 64;
/// How long the host waits, after killing the jobs in flight (or for a
/// feeder stuck in a read), before it exits without them.
const SETTLE: Duration = Duration::from_secs(2);
/// When a group of outputs and records closes (`--group-size`,
/// `--group-time`), chosen by measurement (docs/PERFORMANCE.md).
const GROUP_SIZE: u32 = 1000;
const GROUP_TIME: &str = "100ms";
/// Poison inputs listed by name in the summary.
const MAX_POISON_LISTED: usize = 1000;

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Write each ok output to DIR (same relative name as the input).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub batch: BatchArgs,
}

/// The flags of every batch command (`run`, `sanitize`).
#[derive(Args, Clone)]
pub struct BatchArgs {
    /// Worker processes per plugin running at once (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: Option<u16>,
    /// Jobs per worker before it is recycled (overrides the policy's worker.batch; 1 = a fresh process per input).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Append one hash-chained JSON record per input to FILE.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
    /// Skip inputs already recorded in the --audit file with the same sha256.
    #[arg(long, requires = "audit")]
    pub resume: bool,
    /// What a finished job promises after a power cut: group (outputs and records synced a group at a time), each (synced one job at a time), none (not synced).
    #[arg(long, value_enum, default_value_t = Durability::Group)]
    pub durability: Durability,
    /// A group of outputs and records is synced at N jobs ...
    #[arg(long, value_name = "N", default_value_t = GROUP_SIZE, value_parser = clap::value_parser!(u32).range(1..))]
    pub group_size: u32,
    /// ... or this long after its first job, whichever comes first.
    #[arg(long, value_parser = parse_duration, default_value = GROUP_TIME)]
    pub group_time: Duration,
    /// Print the summary as JSON on stdout instead of one line per input.
    #[arg(long)]
    pub json: bool,
    /// On SIGINT/SIGTERM, how long jobs in flight may run before they are killed.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub grace: Duration,
    /// Largest input, e.g. 4GiB (overrides the policy's limits.input); bigger inputs get input_error unread.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_input: Option<u64>,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Files, or directories walked recursively (symlinks inside them are not followed).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// Runs one input in a fresh process (worker or filter).
pub fn run_one(sandbox: &Sandbox, input: &Input, attach: Attach) -> JobOutcome {
    match sandbox.plugin.mode {
        Mode::Filter => run_filter_input(sandbox, input, attach, None),
        Mode::Worker => match Worker::start(sandbox) {
            Ok(mut w) => {
                w.attach(attach);
                let outcome = w.run_input(input, None);
                w.shutdown();
                outcome
            }
            Err(e) => JobOutcome::failed(Verdict::SetupError(e.to_string())),
        },
    }
}

/// A line on stdout; a closed stdout (`| head`) must not stop the batch.
fn print_line(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// The error and its causes, one sentence.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

pub fn check_out_dir(out: &Path) -> Result<(), Usage> {
    std::fs::create_dir_all(out).map_err(|e| {
        Usage(format!(
            "cannot create the output directory {}: {e}",
            out.display()
        ))
    })?;
    tempfile::Builder::new()
        .prefix(".plugwarden-check-")
        .tempfile_in(out)
        .map(drop)
        .map_err(|e| {
            Usage(format!(
                "the output directory {} is not writable: {e}",
                out.display()
            ))
        })
}

pub fn run(a: RunArgs) -> Result<u8, Usage> {
    check_inputs(&a.batch.inputs)?;
    if let Some(out) = &a.out {
        check_out_dir(out)?;
    }
    ignore_sigint_for_children();
    let mut sandbox_args = a.sandbox.clone();
    sandbox_args.batch = a.batch.batch;
    let sandbox = Arc::new(sandbox_args.build()?);
    drive(Batch {
        sandboxes: vec![sandbox],
        router: Box::new(|_, _| Ok(0)),
        prepare: None,
        convert: None,
        out: a.out,
        args: a.batch,
    })
}

pub fn check_inputs(inputs: &[PathBuf]) -> Result<(), Usage> {
    for input in inputs {
        if !input.exists() {
            return Err(Usage(format!("input {} does not exist", input.display())));
        }
    }
    Ok(())
}

/// A batch of inputs over one or more sandboxes (one pool each).
pub struct Batch {
    /// One per route.
    pub sandboxes: Vec<Arc<Sandbox>>,
    pub router: Box<Router>,
    pub prepare: Option<Box<Preparer>>,
    pub convert: Option<Box<Converter>>,
    pub out: Option<PathBuf>,
    pub args: BatchArgs,
}

/// Runs a batch: feeder thread, pools, and this thread recording results.
pub fn drive(b: Batch) -> Result<u8, Usage> {
    let shard = b.args.shard.resolve()?;
    let signals = Signals::register()?;
    let mut audit = match &b.args.audit {
        Some(path) => Some(AuditWriter::open(path).map_err(|e| Usage(error_chain(&e)))?),
        None => None,
    };
    let recorded = match (&b.args.audit, b.args.resume) {
        (Some(path), true) => {
            plugwarden::audit::recorded_inputs(path).map_err(|e| Usage(error_chain(&e)))?
        }
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
    let log = audit.as_mut().zip(b.args.audit.as_deref());
    let sharding = Arc::new(Sharding::start(shard, &b.args.inputs, routes, log)?);
    let mut workers = 0;
    let started = Instant::now();
    let mut pools = Vec::new();
    let mut feeders = Vec::new();
    for sandbox in &b.sandboxes {
        let mut config = PoolConfig::from_policy(&sandbox.policy);
        if let Some(n) = b.args.workers {
            config.workers = usize::from(n);
        }
        if let Some(n) = b.args.batch {
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
        let (pool, feeder) =
            Pool::<Item>::start(sandbox.clone(), config).map_err(|e| Usage(e.to_string()))?;
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
            .map(|s| b.args.max_input.unwrap_or(s.policy.limits.input))
            .collect(),
    };
    let feed_thread = {
        let state = state.clone();
        let inputs = b.args.inputs.clone();
        let sharding = sharding.clone();
        std::thread::Builder::new()
            .name("pw-feeder".into())
            .spawn(move || feed(&inputs, &sharding, &feeders, &routing, &recorded, &state))
            .map_err(|e| Usage(format!("cannot start the feeder thread: {e}")))?
    };
    let limits = Limits {
        size: b.args.group_size as usize,
        time: b.args.group_time,
    };
    let audited = audit.is_some();
    let commit = GroupCommit::start(b.out.as_deref(), audit, b.args.durability, limits)
        .map_err(|e| Usage(format!("cannot start the committer thread: {e}")))?;
    let mut rec = Recorder {
        out: b.out.clone(),
        commit,
        audited,
        audit: None,
        bases,
        convert: b.convert,
        json: b.args.json,
        progress: progress_bar(),
        counts: BTreeMap::new(),
        latencies: Latencies::default(),
        poison: Vec::new(),
        poison_count: 0,
        done: 0,
        started,
        fatal: None,
    };
    let (interrupted, settled) = consume(&pools, &mut rec, &signals, &state, b.args.grace);
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
        // Exiting closes every fork server's socket: each kills what is left.
        eprintln!(
            "plugwarden: jobs still running {} after they were killed; exiting without them",
            humantime::format_duration(SETTLE)
        );
        drop(pools);
    }
    // The feeder may be in a read that does not end (a hung network
    // filesystem): it is not waited for past a moment, and dies with us.
    let waited = Instant::now();
    while !feed_thread.is_finished() && waited.elapsed() < SETTLE {
        std::thread::sleep(Duration::from_millis(10));
    }
    if feed_thread.is_finished() {
        let _ = feed_thread.join();
    }
    rec.finish_commit();
    if let Some(pb) = &rec.progress {
        pb.finish_and_clear();
    }
    let elapsed = started.elapsed();
    let skipped = state.skipped.load(Ordering::SeqCst);
    let all_judged = interrupted.is_none()
        && rec.fatal.is_none()
        && state.walk_done.load(Ordering::SeqCst)
        && !rec.counts.contains_key(Verdict::Cancelled.word());
    let found = state.submitted.load(Ordering::SeqCst) + skipped;
    if let Err(e) = sharding.finish(rec.audit.as_mut(), all_judged, found) {
        rec.fail(e);
    }
    if let (Some(audit), true) = (&mut rec.audit, b.args.durability != Durability::None) {
        if let Err(e) = audit.sync() {
            rec.fail(error_chain(&e));
        }
    }
    print_summary(&rec, &stats, skipped, elapsed, workers, interrupted);
    Ok(match (interrupted, &rec.fatal) {
        (Some(code), _) => code,
        (None, Some(_)) => EXIT_USAGE,
        (None, None) if rec.counts.keys().all(|w| *w == "ok") => EXIT_OK,
        (None, None) => EXIT_VERDICT,
    })
}

/// Takes results until every slot has exited; handles signals and fatal
/// errors. Returns the signal's exit status, if one stopped the run, and
/// whether every slot ended (false when, [`SETTLE`] after the jobs in
/// flight were killed, some slot still has not: the host exits anyway).
fn consume(
    pools: &[Pool<Item>],
    rec: &mut Recorder,
    signals: &Signals,
    state: &FeedState,
    grace: Duration,
) -> (Option<u8>, bool) {
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut stopped_for_fatal = false;
    let mut total_shown = false;
    loop {
        if let (Some(_), None) = (signals.received(), kill_at) {
            eprintln!(
                "plugwarden: stopping: no new inputs; jobs in flight have {} to finish (a second signal exits at once)",
                humantime::format_duration(grace)
            );
            pools.iter().for_each(Pool::stop);
            kill_at = Some(Instant::now() + grace);
        }
        if kill_at.is_some_and(|t| Instant::now() >= t) && !killed {
            pools.iter().for_each(Pool::cancel);
            killed = true;
        }
        if kill_at.is_some_and(|t| Instant::now() >= t + SETTLE) {
            return (signals.received(), false);
        }
        if rec.fatal.is_some() && !stopped_for_fatal {
            pools.iter().for_each(Pool::stop);
            stopped_for_fatal = true;
        }
        if let (Some(pb), false) = (&rec.progress, total_shown) {
            if state.walk_done.load(Ordering::SeqCst) {
                show_total(pb, state.submitted.load(Ordering::SeqCst));
                total_shown = true;
            }
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
    (signals.received(), true)
}

#[cfg(test)]
mod tests;
