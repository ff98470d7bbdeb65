//! `plugwarden run`: every input through the plugin, one verdict and one
//! audit record each, on a pool of workers (docs/BATCH.md). The batch
//! driver is the library's ([`plugwarden::batch`]); here are its flags,
//! the lines and the progress bar it reports through, the summary, and the
//! signals that stop it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use plugwarden::batch::{self as lib, Durability, Event};
use plugwarden::input::Input;
use plugwarden::pool::truncate;
use plugwarden::sandbox::{Mode, Sandbox};
use plugwarden::verdict::Verdict;
use plugwarden::worker::{run_filter_input, Attach, JobOutcome, Worker};

use super::shard::ShardArgs;
use super::{parse_duration, parse_size, SandboxArgs, Usage, EXIT_OK, EXIT_USAGE, EXIT_VERDICT};
pub(crate) use crate::batch::error_chain;
pub(super) use crate::batch::feed::{sha256_file, sha256_hex};
pub use crate::batch::feed::{Converter, Preparer, Router};

mod signals;
mod summary;

pub use signals::Signals;
use summary::{print_summary, progress_bar, show_total};

/// When a group of outputs and records closes (`--group-size`,
/// `--group-time`), chosen by measurement (docs/PERFORMANCE.md).
const GROUP_SIZE: u32 = lib::GROUP_SIZE;
const GROUP_TIME: &str = "100ms";

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

/// Runs a batch through the library's driver: the lines and the progress
/// bar as it reports, SIGINT/SIGTERM as its stop flag, the summary.
pub fn drive(b: Batch) -> Result<u8, Usage> {
    let shard = b.args.shard.resolve()?;
    let signals = Signals::register()?;
    let a = &b.args;
    let mut batch = lib::Batch::routed(b.sandboxes, a.inputs.clone(), b.router)
        .prepare(b.prepare)
        .convert(b.convert)
        .resume(a.resume)
        .durability(a.durability)
        .group(a.group_size, a.group_time)
        .grace(a.grace)
        .shard(shard)
        .stop_on(signals.any());
    if let Some(out) = b.out {
        batch = batch.out_dir(out);
    }
    if let Some(audit) = &a.audit {
        batch = batch.audit(audit);
    }
    if let Some(n) = a.workers {
        batch = batch.workers(usize::from(n));
    }
    if let Some(n) = a.batch {
        batch = batch.jobs_per_worker(n);
    }
    if let Some(n) = a.max_input {
        batch = batch.max_input(n);
    }
    let json = a.json;
    let progress = progress_bar();
    let started = Instant::now();
    let print = |line: &str| match &progress {
        Some(pb) => pb.suspend(|| print_line(line)),
        None => print_line(line),
    };
    let summary = batch
        .run(|event| match event {
            Event::Judged {
                name,
                verdict,
                wall,
                attempt,
                poison,
                detail,
                done,
                counts,
            } => {
                if !json {
                    let mut line = format!("{verdict:<14} {name} ({} ms)", wall.as_millis());
                    if attempt > 1 {
                        line.push_str(&format!(
                            " [attempt {attempt}{}]",
                            if poison { ", poison" } else { "" }
                        ));
                    }
                    if !detail.is_empty() {
                        line.push_str(": ");
                        line.push_str(&truncate(detail, 300));
                    }
                    print(&line);
                }
                if let Some(pb) = &progress {
                    pb.set_position(done);
                    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-3);
                    pb.set_message(format!("{rate:.1}/s · {}", summary::counts_text(counts)));
                }
            }
            Event::Withdrawn { name, detail } => {
                if !json {
                    print(&format!("{:<14} {name}: {detail}", Verdict::Cancelled.word()));
                }
            }
            Event::Failed { error } => {
                eprintln!("plugwarden: {error}; stopping (finished jobs are recorded)");
            }
            Event::Walked { total } => {
                if let Some(pb) = &progress {
                    show_total(pb, total);
                }
            }
            Event::Stopping { grace } => eprintln!(
                "plugwarden: stopping: no new inputs; jobs in flight have {} to finish (a second signal exits at once)",
                humantime::format_duration(grace)
            ),
            Event::Abandoned => eprintln!(
                "plugwarden: jobs still running {} after they were killed; exiting without them",
                humantime::format_duration(lib::SETTLE)
            ),
        })
        .map_err(|e| match e {
            lib::BatchError::Pool(e) => Usage(e.to_string()),
            e => Usage(error_chain(&e)),
        })?;
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    let interrupted = summary
        .interrupted
        .then(|| signals.received().unwrap_or(130));
    print_summary(&summary, json, interrupted.is_some());
    Ok(match (interrupted, &summary.error) {
        (Some(code), _) => code,
        (None, Some(_)) => EXIT_USAGE,
        (None, None) if summary.all_ok() => EXIT_OK,
        (None, None) => EXIT_VERDICT,
    })
}
