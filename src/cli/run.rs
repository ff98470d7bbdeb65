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
use std::io::{IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use plugwarden::audit::{AuditRecord, AuditWriter, Route};
use plugwarden::escape;
use plugwarden::input::{self, Entry, Input, InputError};
use plugwarden::pool::{truncate, Feeder, Finished, Pool, PoolConfig, PoolStats, Task};
use plugwarden::sandbox::{Mode, Sandbox};
use plugwarden::sink::{OutputSink, Spill, SPILL_OVER};
use plugwarden::verdict::{Verdict, WORDS};
use plugwarden::worker::{run_filter_input, Attach, JobOutcome, Worker};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::commit::{Durability, GroupCommit, Job, Limits, Output, Report};
use super::shard::{ShardArgs, Sharding};
use super::{parse_duration, parse_size, SandboxArgs, Usage, EXIT_OK, EXIT_USAGE, EXIT_VERDICT};

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

/// What travels with an input through the pool.
pub struct Item {
    /// The input's path as walked, exact (the audit `input`).
    path: PathBuf,
    rel: PathBuf,
    sha256: Option<String>,
    /// Which pool (and plugin) the input went to.
    route: usize,
}

/// Picks the pool for an input from its first bytes (at least
/// [`plugwarden::input::HEAD`], or all of a shorter input) and, when they
/// are not enough (a container's directory), the input itself; or gives
/// its verdict without running it (e.g. `unsupported`).
pub type Router = dyn Fn(&[u8], &Input) -> Result<usize, Verdict> + Send + Sync;

/// Turns an ok output of route `r` into the bytes and the relative name to
/// write; an error becomes the input's verdict.
pub type Converter = dyn Fn(usize, &Path, Vec<u8>) -> Result<(Vec<u8>, PathBuf), Verdict>;

/// Gives a routed input of route `r` (named `rel`) its final form and,
/// when its output should be written as it arrives, a sink for it.
pub type Preparer =
    dyn Fn(usize, &Path, Input) -> (Input, Option<Box<dyn OutputSink>>) + Send + Sync;

pub(super) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(super) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Counts the feeder shares with the consumer.
#[derive(Default)]
struct FeedState {
    submitted: AtomicU64,
    skipped: AtomicU64,
    walk_done: AtomicBool,
}

/// Walks, opens and queues every input; skips those already recorded.
fn feed(
    inputs: &[PathBuf],
    sharding: &Sharding,
    feeders: &[Feeder<Item>],
    routing: &Routing,
    recorded: &HashSet<(Vec<u8>, String)>,
    state: &FeedState,
) {
    for entry in input::walk(inputs).filter(|e| sharding.owns(inputs, e)) {
        if feeders.iter().any(Feeder::is_stopped) {
            return;
        }
        let Some(task) = task_for(entry, routing, recorded) else {
            state.skipped.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        let route = task.tag.route.min(feeders.len() - 1);
        if feeders[route].submit(task).is_err() {
            return;
        }
        state.submitted.fetch_add(1, Ordering::SeqCst);
    }
    state.walk_done.store(true, Ordering::SeqCst);
}

/// How the feeder turns an input into a task for one of the pools.
struct Routing {
    router: Box<Router>,
    prepare: Option<Box<Preparer>>,
    /// The largest input each route takes.
    limits: Vec<u64>,
}

/// One walked entry as a task: opened within the largest route's limit,
/// hashed, routed by its first bytes, checked against its route's limit
/// and prepared for it; `None` when `--resume` skips it.
fn task_for(
    entry: Result<Entry, InputError>,
    routing: &Routing,
    recorded: &HashSet<(Vec<u8>, String)>,
) -> Option<Task<Item>> {
    let limits = &routing.limits;
    let (path, rel) = match &entry {
        Ok(e) => (e.path.clone(), e.rel.clone()),
        Err(InputError::Io { path, .. }) => (path.clone(), PathBuf::new()),
        Err(_) => (PathBuf::new(), PathBuf::new()),
    };
    let mut tag = Item {
        path,
        rel,
        sha256: None,
        route: 0,
    };
    let largest = limits.iter().copied().max().unwrap_or(0);
    let (input, sha, head) = match entry.and_then(|e| read_input(&e, largest)) {
        Ok(read) => read,
        Err(e) => {
            let input = Err(Verdict::InputError(e.to_string()));
            return Some(Task {
                tag,
                input,
                sink: None,
            });
        }
    };
    let key = (tag.path.as_os_str().as_bytes().to_vec(), sha);
    if recorded.contains(&key) {
        return None;
    }
    tag.sha256 = Some(key.1);
    let input = (routing.router)(&head, &input).and_then(|route| {
        tag.route = route;
        let limit = limits.get(route).copied().unwrap_or(largest);
        if input.len() > limit {
            let too_large = InputError::TooLarge {
                len: input.len(),
                limit,
            };
            return Err(Verdict::InputError(too_large.to_string()));
        }
        Ok(input)
    });
    let (input, sink) = match (input, &routing.prepare) {
        (Ok(input), Some(prepare)) => {
            let (input, sink) = prepare(tag.route, &tag.rel, input);
            (Ok(input), sink)
        }
        (input, _) => (input, None),
    };
    Some(Task { tag, input, sink })
}

/// Opens one input within `limit`: the input (read whole when small), its
/// sha256 and its first bytes for the router.
fn read_input(entry: &Entry, limit: u64) -> Result<(Input, String, Vec<u8>), InputError> {
    let src = input::open(entry, limit)?;
    match Input::from_source(src)? {
        Input::Bytes(b) => {
            let sha = sha256_hex(&b);
            let head = b[..b.len().min(input::HEAD)].to_vec();
            Ok((Input::Bytes(b), sha, head))
        }
        Input::File(src) => {
            let sha = src.sha256()?;
            let head = src.head()?;
            Ok((Input::File(src), sha, head))
        }
    }
}

/// Job latencies in log-spaced buckets (about 1.5% wide): percentiles in
/// constant memory however many inputs there are.
#[derive(Default)]
struct Latencies {
    buckets: BTreeMap<u32, u64>,
    count: u64,
}

impl Latencies {
    fn bucket(us: u64) -> u32 {
        if us < 64 {
            return us as u32;
        }
        let shift = 63 - us.leading_zeros() - 5;
        shift * 32 + (us >> shift) as u32
    }

    fn lower_bound(bucket: u32) -> u64 {
        if bucket < 64 {
            return u64::from(bucket);
        }
        let shift = bucket / 32 - 1;
        u64::from(bucket - shift * 32) << shift
    }

    fn add(&mut self, d: Duration) {
        *self
            .buckets
            .entry(Self::bucket(d.as_micros() as u64))
            .or_default() += 1;
        self.count += 1;
    }

    /// The `p`-th percentile (0..=100) in milliseconds.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Self::lower_bound(*bucket) as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// What stays the same in every record of one route.
#[derive(Clone, Default)]
struct RecordBase {
    plugin: String,
    plugin_sha256: String,
    policy: String,
    policy_sha256: String,
    weakenings: Vec<String>,
}

/// The consumer: outputs, audit, progress, counts.
struct Recorder {
    /// With `--out`.
    out: Option<PathBuf>,
    /// Puts outputs and records on disk a group at a time.
    commit: GroupCommit,
    /// With `--audit`: records are made.
    audited: bool,
    /// The audit log, back from the committer once the batch is over.
    audit: Option<AuditWriter>,
    /// One per route.
    bases: Vec<RecordBase>,
    convert: Option<Box<Converter>>,
    json: bool,
    progress: Option<ProgressBar>,
    counts: BTreeMap<&'static str, u64>,
    latencies: Latencies,
    poison: Vec<String>,
    poison_count: u64,
    done: u64,
    started: Instant,
    /// A failure that stops the run (audit or output not writable).
    fatal: Option<String>,
}

impl Recorder {
    fn take(&mut self, f: Finished<Item>) {
        let Finished {
            tag: item,
            mut outcome,
            attempt,
            generation,
            recycle_reason,
            poison,
            notes,
        } = f;
        let mut rel = item.rel.clone();
        // An output saved while it arrived is final; one held is converted.
        let mut saved = outcome.saved.take();
        if let (true, None, Some(convert)) = (outcome.verdict.is_ok(), &saved, &self.convert) {
            match convert(item.route, &item.rel, std::mem::take(&mut outcome.output)) {
                Ok((bytes, new_rel)) => {
                    outcome.output = bytes;
                    rel = new_rel;
                }
                Err(v) => outcome.verdict = v,
            }
        }
        let name = escape::name(&item.path);
        let mut verdict_word = outcome.verdict.word();
        let mut detail = outcome.verdict.detail();
        let mut staged = None;
        let mut output_sha = None;
        let mut saved_notes = Vec::new();
        if outcome.verdict.is_ok() {
            output_sha = Some(match &mut saved {
                Some(s) => {
                    detail = std::mem::take(&mut s.detail);
                    saved_notes = std::mem::take(&mut s.notes);
                    rel = s.name.take().unwrap_or(rel);
                    s.sha256.clone()
                }
                None => sha256_hex(&outcome.output),
            });
            if let Some(out) = self.out.clone() {
                let output = match saved.and_then(|s| s.file) {
                    Some(file) => Output::File(file),
                    None => Output::Bytes(&outcome.output),
                };
                match self.commit.stage(&rel, output) {
                    Ok(s) => staged = Some(s),
                    Err(e) => {
                        // Never judged for good: `--resume` runs it again.
                        verdict_word = Verdict::Cancelled.word();
                        detail = format!(
                            "cannot write the output {}: {e}; run again with --resume once fixed",
                            escape::name(out.join(&rel))
                        );
                        output_sha = None;
                        self.fail(format!("cannot write the output for {name}: {e}"));
                    }
                }
            }
        }
        *self.counts.entry(verdict_word).or_default() += 1;
        self.done += 1;
        self.latencies.add(outcome.wall);
        if poison {
            self.poison_count += 1;
            if self.poison.len() < MAX_POISON_LISTED {
                self.poison.push(name.clone());
            }
        }
        let record = self.audited.then(|| {
            let base = &self.bases[item.route.min(self.bases.len() - 1)];
            let mut all_notes: Vec<String> = base.weakenings.clone();
            all_notes.extend(notes);
            all_notes.extend(std::mem::take(&mut outcome.notes));
            all_notes.extend(saved_notes);
            all_notes.extend(outcome.denied.iter().map(|d| format!("denied: {d}")));
            if !outcome.verdict.is_ok() && !outcome.stderr_tail.is_empty() {
                all_notes.push(format!("stderr: {}", outcome.stderr_tail));
            }
            all_notes.truncate(MAX_NOTES);
            let mut rec = AuditRecord {
                input_sha256: item.sha256.clone(),
                plugin: base.plugin.clone(),
                plugin_sha256: base.plugin_sha256.clone(),
                policy: base.policy.clone(),
                policy_sha256: base.policy_sha256.clone(),
                worker_pid: u32::try_from(outcome.pid).ok().filter(|p| *p > 0),
                generation,
                verdict: verdict_word.to_string(),
                detail: truncate(&detail, MAX_DETAIL),
                attempt,
                wall_ms: outcome.wall.as_millis() as u64,
                cpu_ms: outcome.cpu_ms,
                max_rss_kib: outcome.max_rss_kib,
                recycle_reason: recycle_reason.map(|r| r.word().to_string()),
                output_sha256: output_sha,
                notes: all_notes.iter().map(|n| truncate(n, MAX_NOTE)).collect(),
                ..AuditRecord::default()
            };
            rec.set_input(item.path.as_os_str().as_bytes());
            if let Some(s) = &staged {
                rec.set_output(s.target().as_os_str().as_bytes());
            }
            rec
        });
        if !self.json {
            let mut line = format!(
                "{verdict_word:<14} {name} ({} ms)",
                outcome.wall.as_millis()
            );
            if attempt > 1 {
                line.push_str(&format!(
                    " [attempt {attempt}{}]",
                    if poison { ", poison" } else { "" }
                ));
            }
            if !detail.is_empty() {
                line.push_str(": ");
                line.push_str(&truncate(&detail, 300));
            }
            self.print(&line);
        }
        self.commit.add(Job {
            name,
            record,
            output: staged,
        });
        if let Some(pb) = &self.progress {
            pb.set_position(self.done);
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
            pb.set_message(format!("{rate:.1}/s · {}", self.counts_text()));
        }
    }

    /// What the committer reported: an output reported ok that could not
    /// be put on disk is `cancelled` after all, and stops the batch.
    fn note(&mut self, report: Report) {
        match report {
            Report::Cancelled { name, detail } => {
                if let Some(n) = self.counts.get_mut(Verdict::Ok.word()) {
                    *n -= 1;
                }
                *self.counts.entry(Verdict::Cancelled.word()).or_default() += 1;
                if !self.json {
                    self.print(&format!(
                        "{:<14} {name}: {detail}",
                        Verdict::Cancelled.word()
                    ));
                }
                self.fail(format!("{detail} (for {name})"));
            }
            Report::Fatal(msg) => self.fail(msg),
        }
    }

    /// Commits the last group and takes the audit log back.
    fn finish_commit(&mut self) {
        let (audit, reports) = self.commit.finish();
        self.audit = audit;
        for report in reports {
            self.note(report);
        }
    }

    fn print(&self, line: &str) {
        match &self.progress {
            Some(pb) => pb.suspend(|| print_line(line)),
            None => print_line(line),
        }
    }

    fn fail(&mut self, msg: String) {
        if self.fatal.is_none() {
            eprintln!("plugwarden: {msg}; stopping (finished jobs are recorded)");
            self.fatal = Some(msg);
        }
    }

    fn counts_text(&self) -> String {
        let parts: Vec<String> = WORDS
            .iter()
            .filter_map(|w| self.counts.get(w).map(|n| format!("{w} {n}")))
            .collect();
        parts.join(" · ")
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

/// Flags set by SIGINT and SIGTERM; a second signal exits at once.
pub struct Signals {
    int: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    any: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> Result<Signals, Usage> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let any = Arc::new(AtomicBool::new(false));
        let int = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        for (sig, code, own) in [(SIGINT, 130, &int), (SIGTERM, 143, &term)] {
            // Registered first, so it sees `any` as the previous signal left it.
            flag::register_conditional_shutdown(sig, code, any.clone())?;
            flag::register(sig, own.clone())?;
            flag::register(sig, any.clone())?;
        }
        Ok(Signals { int, term, any })
    }

    /// Set by either signal: a job's cancel flag.
    pub fn any(&self) -> Arc<AtomicBool> {
        self.any.clone()
    }

    /// The exit status for the signal received, if any.
    pub fn received(&self) -> Option<u8> {
        if self.int.load(Ordering::SeqCst) {
            Some(130)
        } else if self.term.load(Ordering::SeqCst) {
            Some(143)
        } else {
            None
        }
    }
}

/// The fork server shares our process group: a Ctrl-C on the terminal
/// would kill it with the jobs in flight. An ignored disposition survives
/// exec, so it is ignored while the fork server starts; our own handler is
/// installed afterwards.
pub fn ignore_sigint_for_children() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no handler code; nothing else has a handler yet.
    let _ = unsafe { sigaction(Signal::SIGINT, &ignore) };
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

impl RecordBase {
    fn route(&self) -> Route {
        Route {
            plugin: self.plugin.clone(),
            plugin_sha256: self.plugin_sha256.clone(),
            policy: self.policy.clone(),
            policy_sha256: self.policy_sha256.clone(),
        }
    }
}

fn record_base(sandbox: &Sandbox) -> Result<RecordBase, Usage> {
    let exe = &sandbox.plugin.exe;
    let plugin_sha256 = sha256_file(exe)
        .map_err(|e| Usage(format!("cannot read the plugin {}: {e}", exe.display())))?;
    Ok(RecordBase {
        plugin: exe.display().to_string(),
        plugin_sha256,
        policy: sandbox.policy.name.clone(),
        policy_sha256: sha256_hex(sandbox.policy.sources.concat().as_bytes()),
        weakenings: sandbox
            .weakenings
            .iter()
            .map(|w| format!("weakened: {w}"))
            .collect(),
    })
}

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new_spinner();
    let style = ProgressStyle::with_template("{spinner} {pos} done [{elapsed}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    pb.set_style(style);
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}

/// Once the walk is over the total is known: a real bar with an ETA.
fn show_total(pb: &ProgressBar, total: u64) {
    pb.set_length(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} [{elapsed}, eta {eta}] {msg}")
    {
        pb.set_style(style);
    }
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

fn print_summary(
    rec: &Recorder,
    stats: &PoolStats,
    skipped: u64,
    elapsed: Duration,
    workers: usize,
    interrupted: Option<u8>,
) {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        rec.done as f64 / secs
    } else {
        0.0
    };
    let lat = |p| rec.latencies.percentile_ms(p);
    let recycles: BTreeMap<&str, u64> = stats
        .recycles_by_reason()
        .map(|(r, n)| (r.word(), n))
        .collect();
    let last_hash = rec.audit.as_ref().map(|a| a.last_hash().to_string());
    if rec.json {
        let summary = json!({
            "inputs": rec.done,
            "skipped": skipped,
            "verdicts": rec.counts,
            "poison": rec.poison,
            "poison_count": rec.poison_count,
            "recycles": recycles,
            "workers": workers,
            "workers_started": stats.workers_started,
            "latency_ms": { "p50": lat(50.0), "p95": lat(95.0), "p99": lat(99.0) },
            "elapsed_s": secs,
            "jobs_per_s": rate,
            "interrupted": interrupted.is_some(),
            "error": rec.fatal,
            "audit_last_hash": last_hash,
            "host_max_rss_kib": host_max_rss_kib(),
        });
        print_line(&summary.to_string());
        return;
    }
    let parts: Vec<String> = WORDS
        .iter()
        .filter_map(|w| rec.counts.get(w).map(|n| format!("{n} {w}")))
        .collect();
    eprintln!(
        "{} inputs in {secs:.2}s ({rate:.1} jobs/s, {workers} workers){}: {}",
        rec.done,
        if skipped > 0 {
            format!(", {skipped} skipped (already recorded)")
        } else {
            String::new()
        },
        if parts.is_empty() {
            "nothing to do".into()
        } else {
            parts.join(", ")
        }
    );
    eprintln!(
        "latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        lat(50.0),
        lat(95.0),
        lat(99.0)
    );
    let recycled: Vec<String> = recycles
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    if !recycled.is_empty() {
        eprintln!("recycled workers: {}", recycled.join(", "));
    }
    if rec.poison_count > 0 {
        eprintln!("poison (failed twice, quarantined): {}", rec.poison_count);
        for p in &rec.poison {
            eprintln!("  {p}");
        }
    }
    if let Some(hash) = last_hash {
        eprintln!("audit log ends with hash {hash}");
    }
    if interrupted.is_some() {
        eprintln!("interrupted: run again with --resume to finish");
    }
}

/// Peak RSS of this host process (not its plugins): `VmHWM`, the peak of
/// this program's own memory. `ru_maxrss` would also count the parent's
/// memory at the fork before our exec (the kernel carries it across exec).
fn host_max_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    hwm.unwrap_or_else(|| {
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
            .map_or(0, |u| u.max_rss() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_latencies_percentiles_of_1_to_100_ms_are_within_two_percent() {
        let mut l = Latencies::default();
        for ms in 1..=100 {
            l.add(Duration::from_millis(ms));
        }
        let p95 = l.percentile_ms(95.0);
        assert!((93.0..=95.0).contains(&p95), "p95 {p95}");
        let p50 = l.percentile_ms(50.0);
        assert!((49.0..=50.0).contains(&p50), "p50 {p50}");
    }

    #[test]
    fn test_latencies_empty_is_zero() {
        assert_eq!(Latencies::default().percentile_ms(99.0), 0.0);
    }

    #[test]
    fn test_latencies_bucket_lower_bound_roundtrips() {
        for us in [0u64, 63, 64, 100, 1000, 123_456, 10_000_000] {
            let lb = Latencies::lower_bound(Latencies::bucket(us));
            assert!(lb <= us && us - lb <= us / 32, "{us} -> {lb}");
        }
    }
}
