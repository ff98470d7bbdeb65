//! The audit logs of a sharded batch as one: `plugwarden audit merge`
//! proves from the shard logs alone that every input was judged exactly
//! once by the same plugin under the same policy, and writes them as one
//! chain; `plugwarden audit status` shows a running job's progress.
//!
//! Why it is shaped this way:
//! - **The logs are hostile files.** Each is read through the verifier
//!   ([`crate::audit`]: bounded lines, stops at the first bad one), and
//!   every record must fit the job its log's `shard_start` record names: its
//!   input lies under the job's INPUT arguments, hashes to this shard
//!   ([`crate::shard`]), and was judged by one of the job's plugins under
//!   its policy. Per input only 16 bytes of its key's digest are kept, so
//!   memory grows with the number of inputs by a small constant, never
//!   with a line's length.
//! - **Two passes.** The merged log's first record cites each shard log's
//!   record count and final hash, known only at its end. The first pass
//!   verifies each log; the second copies its input records into the new
//!   chain without parsing them again, following the old chain's hashes
//!   line by line to the final hash the first pass found, so what is
//!   copied is exactly what was checked.
//! - **A merged log means a proof.** It is written only when every shard is
//!   there, no input was judged twice, and none is missing (per the listing
//!   of `--inputs`, or else per each shard's `shard_end` record); otherwise
//!   the report says what to re-run and nothing is written.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::audit::{
    self, is_final, AuditRecord, ChainWriter, Job, JobRecord, Line, MergedSource, VerifyError,
    VerifySummary, MAX_LINE,
};
use crate::escape;
use crate::shard;

/// Names of missing or twice-judged inputs kept for the report.
pub const MAX_LISTED: usize = 1000;

/// Where a log's bytes come from: a file, or memory (tests, fuzzing).
#[derive(Clone, Copy, Debug)]
pub enum Origin<'a> {
    File(&'a Path),
    Bytes(&'a Path, &'a [u8]),
}

impl Origin<'_> {
    pub fn name(&self) -> &Path {
        match self {
            Origin::File(p) | Origin::Bytes(p, _) => p,
        }
    }

    fn reader(&self) -> Result<Box<dyn BufRead + '_>, MergeError> {
        match self {
            Origin::File(p) => File::open(p)
                .map(|f| Box::new(BufReader::with_capacity(256 << 10, f)) as Box<dyn BufRead>)
                .map_err(|source| MergeError::Read {
                    file: p.to_path_buf(),
                    source,
                }),
            Origin::Bytes(_, data) => Ok(Box::new(*data)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot read {}", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("{}: it is empty or its first record is not a shard's start: it was not written by `run --shard` (or it is a merged log)", .file.display())]
    NotAShardLog { file: PathBuf },
    #[error("{}: claims shard {shard} of {shards}: shards are numbered 0 to N-1", .file.display())]
    IndexOutOfRange {
        file: PathBuf,
        shard: u32,
        shards: u32,
    },
    #[error("{}: line {line} is a record about the batch that does not belong after the shard's start (only its shard_end records do)", .file.display())]
    StrayJobRecord { file: PathBuf, line: u64 },
    #[error("{}: line {line} records {input}, which is not under the job's INPUT arguments: the log was edited or written by another job", .file.display())]
    OutsideRoots {
        file: PathBuf,
        line: u64,
        input: String,
    },
    #[error("{}: line {line} records {input}, which belongs to shard {owner}, not {shard}: the log was written with another partition, or edited", .file.display())]
    WrongShard {
        file: PathBuf,
        line: u64,
        input: String,
        owner: u32,
        shard: u32,
    },
    #[error("{}: line {line} records {input} judged by a plugin or policy that is not the job's (their sha256 differ)", .file.display())]
    ForeignRoute {
        file: PathBuf,
        line: u64,
        input: String,
    },
    #[error("{} is from another job than {}: {what}; merge only the logs of one job", .file.display(), .first.display())]
    OtherJob {
        file: PathBuf,
        first: PathBuf,
        what: String,
    },
    #[error("{} and {} both claim shard {shard}: give each shard's log once", .first.display(), .file.display())]
    SameShard {
        file: PathBuf,
        first: PathBuf,
        shard: u32,
    },
    #[error("--inputs names {given} roots, the job ran over {job} ({}): name them in the same order", .roots.join(", "))]
    RootsCount {
        given: usize,
        job: usize,
        roots: Vec<String>,
    },
    #[error("no logs given")]
    NoLogs,
    #[error("{}: changed while it was merged (it ended with another hash on the second reading): merge again once the shard has stopped", .file.display())]
    Changed { file: PathBuf },
    #[error("{} already exists: give --out a new file name", .path.display())]
    Exists { path: PathBuf },
    #[error("cannot write the merged log {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What merge keeps of one input: its judgements.
#[derive(Clone, Copy, Debug, Default)]
struct InputState {
    /// Final verdicts with the input read (its sha256 recorded).
    judged: u32,
    /// The last record's verdict is final (not `cancelled`).
    settled: bool,
    ok: bool,
    /// Found by the walk of `--inputs`.
    listed: bool,
}

/// An input's identity across logs: 16 bytes of its key's digest (the 8
/// that follow the 8 that place it), XOR the index of its root.
type InputId = u128;

fn input_id(root: usize, digest: &[u8; 32]) -> InputId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[8..24]);
    u128::from_be_bytes(id) ^ root as u128
}

/// One shard log, read and checked.
#[derive(Debug)]
pub struct ShardLog {
    pub file: PathBuf,
    pub shard: u32,
    pub job: Job,
    /// What `audit verify` prints: all records and the final hash.
    pub records: u64,
    pub last_hash: String,
    pub input_records: u64,
    /// The log ends with a `shard_end` record: the inputs its walk found.
    pub finished: Option<u64>,
    /// Inputs whose last record is a final verdict; of those, not ok.
    pub done: u64,
    pub failed: u64,
    /// Inputs judged more than once, and the first few of their names.
    pub duplicates: u64,
    pub duplicate_names: Vec<String>,
    /// The time of the last record.
    pub last_time: String,
    /// A last line without its newline: the shard is writing, or was killed.
    pub torn: bool,
    inputs: HashMap<InputId, InputState>,
    /// The lines that are records about the batch, not inputs.
    job_lines: Vec<u64>,
}

/// Reads and checks one shard log. `tolerant` (status) accepts a torn
/// last line; merge refuses it.
fn read_shard(origin: Origin<'_>, tolerant: bool) -> Result<ShardLog, MergeError> {
    let file = origin.name().to_path_buf();
    let mut reader = origin.reader()?;
    let mut reading = Reading {
        file: &file,
        log: None,
        roots: Vec::new(),
        routes: Vec::new(),
        line: 0,
        error: None,
    };
    let scan = audit::scan_log(&mut reader, Some(&file), |line| reading.take(line))?;
    if let Some(e) = reading.error {
        return Err(e);
    }
    let mut log = reading
        .log
        .ok_or_else(|| MergeError::NotAShardLog { file: file.clone() })?;
    if let (Some((line, offset)), false) = (scan.torn, tolerant) {
        return Err(VerifyError::TornLine {
            file: Some(file),
            line,
            offset,
        }
        .into());
    }
    log.torn = scan.torn.is_some();
    log.records = scan.records;
    log.last_hash = scan.last_hash;
    log.done = log.inputs.values().filter(|s| s.settled).count() as u64;
    log.failed = log.inputs.values().filter(|s| s.settled && !s.ok).count() as u64;
    Ok(log)
}

/// The state of reading one log, fed line by line by the verifier.
struct Reading<'a> {
    file: &'a Path,
    log: Option<ShardLog>,
    roots: Vec<PathBuf>,
    /// (plugin_sha256, policy_sha256) of each route.
    routes: Vec<(String, String)>,
    line: u64,
    /// The first problem; later lines are only verified.
    error: Option<MergeError>,
}

impl Reading<'_> {
    fn take(&mut self, line: Line) {
        self.line += 1;
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.check(line) {
            self.error = Some(e);
        }
    }

    fn check(&mut self, line: Line) -> Result<(), MergeError> {
        let (file, line_no) = (self.file, self.line);
        let Some(log) = self.log.as_mut() else {
            return match line {
                Line::Job(head) if head.event == audit::SHARD_START => self.start(head),
                _ => Err(MergeError::NotAShardLog {
                    file: file.to_path_buf(),
                }),
            };
        };
        let rec = match line {
            Line::Input(rec) => rec,
            // A run that judged every input it found says so; a resumed
            // run elsewhere may name the plugin by another path.
            Line::Job(end)
                if end.event == audit::SHARD_END
                    && end.shard == Some(log.shard)
                    && log.job.differs(&end.job).is_none() =>
            {
                log.job_lines.push(line_no);
                log.finished = end.inputs;
                log.last_time = end.time;
                return Ok(());
            }
            Line::Job(_) => {
                return Err(MergeError::StrayJobRecord {
                    file: file.to_path_buf(),
                    line: line_no,
                })
            }
        };
        let exact = rec.input_path().unwrap_or_default();
        let path = Path::new(OsStr::from_bytes(&exact));
        // Only a report shows the names: making them per record would cost.
        let at = || (file.to_path_buf(), line_no, escape::name(path));
        let (root, key) = shard::key(&self.roots, path);
        let Some(root) = root else {
            let (file, line, input) = at();
            return Err(MergeError::OutsideRoots { file, line, input });
        };
        let digest = shard::digest(key);
        let owner = shard::shard_of(&digest, log.job.shards);
        if owner != log.shard {
            let (file, line, input) = at();
            let shard = log.shard;
            return Err(MergeError::WrongShard {
                file,
                line,
                input,
                owner,
                shard,
            });
        }
        let route = |(plugin, policy): &(String, String)| {
            *plugin == rec.plugin_sha256 && *policy == rec.policy_sha256
        };
        if !self.routes.iter().any(route) {
            let (file, line, input) = at();
            return Err(MergeError::ForeignRoute { file, line, input });
        }
        note_input(log, input_id(root, &digest), &rec, || escape::name(path));
        Ok(())
    }

    fn start(&mut self, head: JobRecord) -> Result<(), MergeError> {
        let file = self.file.to_path_buf();
        let shard = head.shard.unwrap_or(u32::MAX);
        if shard >= head.job.shards {
            return Err(MergeError::IndexOutOfRange {
                file,
                shard,
                shards: head.job.shards,
            });
        }
        self.roots = head
            .job
            .roots
            .iter()
            .map(|r| PathBuf::from(OsStr::from_bytes(&r.bytes().unwrap_or_default())))
            .collect();
        self.routes = head
            .job
            .routes
            .iter()
            .map(|r| (r.plugin_sha256.clone(), r.policy_sha256.clone()))
            .collect();
        self.log = Some(ShardLog {
            file,
            shard,
            job: head.job,
            records: 0,
            last_hash: String::new(),
            input_records: 0,
            finished: None,
            done: 0,
            failed: 0,
            duplicates: 0,
            duplicate_names: Vec::new(),
            last_time: head.time,
            torn: false,
            inputs: HashMap::new(),
            job_lines: vec![1],
        });
        Ok(())
    }
}

fn note_input(log: &mut ShardLog, id: InputId, rec: &AuditRecord, name: impl Fn() -> String) {
    log.input_records += 1;
    log.finished = None;
    rec.time.clone_into(&mut log.last_time);
    let state = log.inputs.entry(id).or_default();
    state.settled = is_final(&rec.verdict);
    state.ok = rec.verdict == "ok";
    if state.settled && rec.input_sha256.is_some() {
        state.judged = state.judged.saturating_add(1);
        if state.judged == 2 {
            log.duplicates += 1;
            if log.duplicate_names.len() < MAX_LISTED {
                log.duplicate_names.push(name());
            }
        }
    }
}

/// Reads every log, several at a time.
fn read_all(origins: &[Origin<'_>], tolerant: bool) -> Vec<Result<ShardLog, MergeError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(origins.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<ShardLog, MergeError>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(origin) = origins.get(i) else {
                            return mine;
                        };
                        mine.push((i, read_shard(*origin, tolerant)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// What the inputs listed with `--inputs` say about the job.
#[derive(Debug, Default)]
pub struct Listing {
    /// Per shard: the inputs found, and those of them with no final
    /// verdict in the shard's log.
    pub shards: BTreeMap<u32, Listed>,
    /// The first few missing inputs: (shard, name).
    pub missing: Vec<(u32, String)>,
    /// Inputs with a final verdict that the walk did not find (removed
    /// since, or listed under other INPUT arguments).
    pub unlisted: u64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Listed {
    pub found: u64,
    pub missing: u64,
}

impl Listing {
    pub fn missing_count(&self) -> u64 {
        self.shards.values().map(|l| l.missing).sum()
    }
}

/// The merge's findings about a whole job.
#[derive(Debug)]
pub struct Report {
    pub job: Job,
    /// The logs, in shard order.
    pub shards: Vec<ShardLog>,
    /// Shards with no log: how many, and the first few indexes.
    pub absent: u64,
    pub absent_listed: Vec<u32>,
    /// Given `--inputs`.
    pub listing: Option<Listing>,
}

impl Report {
    pub fn duplicates(&self) -> u64 {
        self.shards.iter().map(|s| s.duplicates).sum()
    }

    /// Shards whose log does not end with its `shard_end` record.
    pub fn unfinished(&self) -> Vec<u32> {
        let unfinished = self.shards.iter().filter(|s| s.finished.is_none());
        unfinished.map(|s| s.shard).collect()
    }

    /// Every input of the job judged exactly once: all shards there, no
    /// input twice, none missing per the listing (or, without one, every
    /// shard's run ended with its inputs judged).
    pub fn proves_exactly_once(&self) -> bool {
        let complete = match &self.listing {
            Some(l) => l.missing_count() == 0,
            None => self.unfinished().is_empty(),
        };
        self.absent == 0 && self.duplicates() == 0 && complete
    }

    /// Inputs with a final verdict, across shards.
    pub fn done(&self) -> u64 {
        self.shards.iter().map(|s| s.done).sum()
    }
}

/// Reads and cross-checks the logs of one job; with `inputs`, walks them
/// to find what is missing. Fails on the first log that is not a valid
/// shard log of the same job as the first, or a second log of one shard.
pub fn check(origins: &[Origin<'_>], inputs: Option<&[PathBuf]>) -> Result<Report, MergeError> {
    let logs = read_all(origins, false)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let report = assemble(logs)?;
    with_listing(report, inputs)
}

/// Orders the logs by shard; refuses other jobs and a shard given twice.
fn assemble(mut logs: Vec<ShardLog>) -> Result<Report, MergeError> {
    let Some(first) = logs.first() else {
        return Err(MergeError::NoLogs);
    };
    let (job, first_file) = (first.job.clone(), first.file.clone());
    for log in &logs {
        if let Some(what) = job.differs(&log.job) {
            return Err(MergeError::OtherJob {
                file: log.file.clone(),
                first: first_file,
                what,
            });
        }
    }
    logs.sort_by_key(|l| l.shard);
    for pair in logs.windows(2) {
        if pair[0].shard == pair[1].shard {
            return Err(MergeError::SameShard {
                file: pair[1].file.clone(),
                first: pair[0].file.clone(),
                shard: pair[0].shard,
            });
        }
    }
    let absent = u64::from(job.shards) - logs.len() as u64;
    let mut absent_listed = Vec::new();
    let mut expected = 0u32;
    for shard in logs.iter().map(|l| l.shard).chain([job.shards]) {
        absent_listed.extend((expected..shard).take(MAX_LISTED - absent_listed.len()));
        expected = shard + 1;
    }
    Ok(Report {
        job,
        shards: logs,
        absent,
        absent_listed,
        listing: None,
    })
}

/// Walks `inputs` (the job's INPUT arguments, as seen from here) and
/// matches every input found against its shard's log.
fn with_listing(mut report: Report, inputs: Option<&[PathBuf]>) -> Result<Report, MergeError> {
    let Some(roots) = inputs else {
        return Ok(report);
    };
    if roots.len() != report.job.roots.len() {
        return Err(MergeError::RootsCount {
            given: roots.len(),
            job: report.job.roots.len(),
            roots: report.job.roots.iter().map(|r| r.path.clone()).collect(),
        });
    }
    let n = report.job.shards;
    let mut listing = Listing::default();
    let by_shard: HashMap<u32, usize> = report
        .shards
        .iter()
        .enumerate()
        .map(|(i, l)| (l.shard, i))
        .collect();
    for entry in crate::input::walk(roots) {
        let path = match &entry {
            Ok(e) => e.path.clone(),
            Err(crate::input::InputError::Io { path, .. }) => path.clone(),
            Err(_) => continue,
        };
        let (root, key) = shard::key(roots, &path);
        let digest = shard::digest(key);
        let owner = shard::shard_of(&digest, n);
        let id = input_id(root.unwrap_or(0), &digest);
        let state = by_shard
            .get(&owner)
            .and_then(|&i| report.shards[i].inputs.get_mut(&id));
        let listed = listing.shards.entry(owner).or_default();
        listed.found += 1;
        match state {
            Some(s) if s.settled => s.listed = true,
            _ => {
                listed.missing += 1;
                if listing.missing.len() < MAX_LISTED {
                    listing.missing.push((owner, escape::name(&path)));
                }
            }
        }
    }
    listing.unlisted = report
        .shards
        .iter()
        .flat_map(|l| l.inputs.values())
        .filter(|s| s.settled && !s.listed)
        .count() as u64;
    report.listing = Some(listing);
    Ok(report)
}

/// Checks the logs and, when they prove every input judged exactly once,
/// writes them as one chain to `out`: a `merge` record citing each shard
/// log, then each log's input records in shard order. Returns the report
/// and, if it wrote, what `audit verify` says of the merged log.
pub fn merge(
    origins: &[Origin<'_>],
    inputs: Option<&[PathBuf]>,
    out: &Path,
) -> Result<(Report, Option<VerifySummary>), MergeError> {
    let write_error = |source| MergeError::Write {
        path: out.to_owned(),
        source,
    };
    if out.symlink_metadata().is_ok() {
        return Err(MergeError::Exists {
            path: out.to_owned(),
        });
    }
    let report = check(origins, inputs)?;
    if !report.proves_exactly_once() {
        return Ok((report, None));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".plugwarden-merge-")
        .tempfile_in(dir)
        .map_err(write_error)?;
    let writer = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
    let (writer, summary) = write_merged(origins, &report, writer)?;
    writer
        .into_inner()
        .map_err(|e| write_error(e.into_error()))?;
    tmp.as_file().sync_all().map_err(write_error)?;
    tmp.persist_noclobber(out)
        .map_err(|e| match e.error.kind() {
            io::ErrorKind::AlreadyExists => MergeError::Exists {
                path: out.to_owned(),
            },
            _ => write_error(e.error),
        })?;
    Ok((report, Some(summary)))
}

/// The merged chain: the `merge` record, then every input record of each
/// log in shard order, each log verified again as it is copied. Returns
/// the writer and what `audit verify` will say of the chain.
pub fn write_merged<W: Write>(
    origins: &[Origin<'_>],
    report: &Report,
    out: W,
) -> Result<(W, VerifySummary), MergeError> {
    let mut chain = ChainWriter::new(out);
    let sources = report
        .shards
        .iter()
        .map(|s| MergedSource {
            file: escape::name(&s.file),
            shard: s.shard,
            records: s.records,
            last_hash: s.last_hash.clone(),
            copied: s.input_records,
        })
        .collect();
    let mut head = Line::Job(JobRecord {
        time: audit::now(),
        event: audit::MERGE.to_owned(),
        job: report.job.clone(),
        inputs: Some(report.done()),
        sources,
        ..JobRecord::default()
    });
    let out_error = |source| MergeError::Write {
        path: PathBuf::from("the merged log"),
        source,
    };
    chain.push(&mut head).map_err(out_error)?;
    for log in &report.shards {
        let origin = origins
            .iter()
            .find(|o| o.name() == log.file)
            .ok_or_else(|| MergeError::Changed {
                file: log.file.clone(),
            })?;
        copy_inputs(origin, log, &mut chain)?;
    }
    Ok(chain.finish())
}

/// Appends the input records of `log` to `chain`, from the bytes the first
/// pass verified: they must chain to the same final hash. A reader thread
/// follows the old chain while this one seals the new one, so the two
/// hashes of each record are computed on two cores.
fn copy_inputs<W: Write>(
    origin: &Origin<'_>,
    log: &ShardLog,
    chain: &mut ChainWriter<W>,
) -> Result<(), MergeError> {
    let changed = || MergeError::Changed {
        file: log.file.clone(),
    };
    let (lines, batches) = std::sync::mpsc::sync_channel(16);
    std::thread::scope(|s| {
        let reader = s.spawn(|| relinked_inputs(origin, log, lines));
        let written = batches.into_iter().flatten().try_for_each(|line: Vec<u8>| {
            chain
                .push_verified(&line)
                .ok_or_else(changed)?
                .map_err(|source| MergeError::Write {
                    path: PathBuf::from("the merged log"),
                    source,
                })
        });
        let read = reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        read.and(written)
    })
}

/// Reads `log` again, checks each line still chains as the first pass
/// found it, and sends its input records in batches; fails when the file
/// does not end at the same hash. Stops early if the receiver is gone.
fn relinked_inputs(
    origin: &Origin<'_>,
    log: &ShardLog,
    lines: std::sync::mpsc::SyncSender<Vec<Vec<u8>>>,
) -> Result<(), MergeError> {
    const BATCH: usize = 256;
    let changed = || MergeError::Changed {
        file: log.file.clone(),
    };
    let mut reader = origin.reader()?;
    let mut jobs = log.job_lines.iter().peekable();
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut line = 0u64;
    let mut last_hash = audit::GENESIS.to_owned();
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| MergeError::Read {
                file: log.file.clone(),
                source,
            })?;
        if n == 0 {
            break;
        }
        line += 1;
        let content = buf.strip_suffix(b"\n").ok_or_else(changed)?;
        let hash = audit::relink(content, &last_hash).ok_or_else(changed)?;
        hash.clone_into(&mut last_hash);
        if jobs.next_if_eq(&&line).is_some() {
            continue;
        }
        batch.push(content.to_vec());
        if batch.len() == BATCH && lines.send(std::mem::take(&mut batch)).is_err() {
            return Ok(());
        }
    }
    if line != log.records || last_hash != log.last_hash {
        return Err(changed());
    }
    let _ = lines.send(batch);
    Ok(())
}

/// One shard's row of `audit status`.
#[derive(Debug)]
pub struct StatusRow {
    pub shard: u32,
    pub file: Option<PathBuf>,
    pub done: u64,
    pub failed: u64,
    /// Known from `--inputs` or from the shard's `shard_end` record.
    pub total: Option<u64>,
    pub finished: bool,
    pub torn: bool,
    pub last_time: String,
}

impl StatusRow {
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.done))
    }
}

/// A job's progress, from its shard logs.
#[derive(Debug)]
pub struct Status {
    /// N.
    pub shards: u32,
    /// One per shard (those with no log given too, the first
    /// [`MAX_LISTED`] of them), in order.
    pub rows: Vec<StatusRow>,
    /// The logs that could not be read, each with why.
    pub errors: Vec<MergeError>,
}

/// Progress of a job from its shard logs, some possibly still being
/// written (a torn last line is not an error here).
pub fn status(origins: &[Origin<'_>], inputs: Option<&[PathBuf]>) -> Result<Status, MergeError> {
    let mut logs = Vec::new();
    let mut errors = Vec::new();
    for result in read_all(origins, true) {
        match result {
            Ok(log) => logs.push(log),
            Err(e) => errors.push(e),
        }
    }
    if logs.is_empty() {
        return Err(errors.into_iter().next().unwrap_or(MergeError::NoLogs));
    }
    let report = with_listing(assemble(logs)?, inputs)?;
    let mut rows: Vec<StatusRow> = report
        .shards
        .iter()
        .map(|l| StatusRow {
            shard: l.shard,
            file: Some(l.file.clone()),
            done: l.done,
            failed: l.failed,
            total: l.finished,
            finished: l.finished.is_some(),
            torn: l.torn,
            last_time: l.last_time.clone(),
        })
        .collect();
    rows.extend(report.absent_listed.iter().map(|&shard| StatusRow {
        shard,
        file: None,
        done: 0,
        failed: 0,
        total: None,
        finished: false,
        torn: false,
        last_time: String::new(),
    }));
    rows.sort_by_key(|r| r.shard);
    if let Some(listing) = &report.listing {
        for row in &mut rows {
            row.total = Some(listing.shards.get(&row.shard).map_or(0, |l| l.found));
        }
    }
    Ok(Status {
        shards: report.job.shards,
        rows,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditWriter, Root, Route};
    use crate::shard::Shard;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// Inputs `in/f0` … under `dir`, written to disk, and the job over them.
    struct Batch {
        dir: tempfile::TempDir,
        root: PathBuf,
        inputs: Vec<PathBuf>,
    }

    impl Batch {
        fn new(count: usize) -> Batch {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("in");
            std::fs::create_dir(&root).unwrap();
            let inputs = (0..count)
                .map(|i| {
                    let p = root.join(format!("f{i}"));
                    std::fs::write(&p, format!("{i}")).unwrap();
                    p
                })
                .collect();
            Batch { dir, root, inputs }
        }

        fn job(&self, shards: u32) -> Job {
            Job {
                shards,
                roots: vec![Root::new(self.root.as_os_str().as_bytes())],
                routes: vec![Route {
                    plugin: "pw-probe".to_owned(),
                    plugin_sha256: "ab".repeat(32),
                    policy: "strict".to_owned(),
                    policy_sha256: "cd".repeat(32),
                }],
            }
        }

        fn record(&self, input: &Path) -> AuditRecord {
            let mut rec = AuditRecord {
                input_sha256: Some(SHA_A.to_owned()),
                plugin: "pw-probe".to_owned(),
                plugin_sha256: "ab".repeat(32),
                policy: "strict".to_owned(),
                policy_sha256: "cd".repeat(32),
                verdict: "ok".to_owned(),
                attempt: 1,
                ..AuditRecord::default()
            };
            rec.set_input(input.as_os_str().as_bytes());
            rec
        }

        /// Shard `index` of `n`'s log as a run writes it: its start, a
        /// record per input it owns, its end.
        fn shard_log(&self, index: u32, n: u32) -> PathBuf {
            let path = self.dir.path().join(format!("shard-{index}-of-{n}.jsonl"));
            let shard = Shard::new(index, n).unwrap();
            let job = self.job(n);
            let mut log = AuditWriter::open(&path).unwrap();
            shard::begin_log(&mut log, &path, Some(shard), &job).unwrap();
            let roots = [self.root.clone()];
            let mine: Vec<_> = self
                .inputs
                .iter()
                .filter(|p| shard.owns(&roots, p))
                .collect();
            for p in &mine {
                log.append(self.record(p)).unwrap();
            }
            shard::end_log(&mut log, shard, &job, mine.len() as u64).unwrap();
            path
        }

        /// The first input that shard `index` of `n` owns.
        fn owned_by(&self, index: u32, n: u32) -> &Path {
            let roots = [self.root.clone()];
            let shard = Shard::new(index, n).unwrap();
            self.inputs.iter().find(|p| shard.owns(&roots, p)).unwrap()
        }

        fn logs(&self, n: u32) -> Vec<PathBuf> {
            (0..n).map(|i| self.shard_log(i, n)).collect()
        }
    }

    fn origins(paths: &[PathBuf]) -> Vec<Origin<'_>> {
        paths.iter().map(|p| Origin::File(p)).collect()
    }

    fn merged_bytes(paths: &[PathBuf], inputs: Option<&[PathBuf]>) -> (Report, Vec<u8>) {
        let report = check(&origins(paths), inputs).unwrap();
        let (bytes, _) = write_merged(&origins(paths), &report, Vec::new()).unwrap();
        (report, bytes)
    }

    /// Appends `line` (as bytes, newline added) to the log at `path`.
    fn append_raw(path: &Path, line: &[u8]) {
        let mut data = std::fs::read(path).unwrap();
        data.extend_from_slice(line);
        std::fs::write(path, data).unwrap();
    }

    #[test]
    fn test_merge_three_shards_proves_exactly_once_and_verifies() {
        let b = Batch::new(60);
        let logs = b.logs(3);
        let roots = [b.root.clone()];

        let (report, bytes) = merged_bytes(&logs, Some(&roots));

        assert!(report.proves_exactly_once(), "{report:?}");
        assert_eq!(report.done(), 60);
        let summary = audit::verify_bytes(&bytes).unwrap();
        assert_eq!(summary.records, 61);
        let head: JobRecord =
            serde_json::from_slice(bytes.split(|&c| c == b'\n').next().unwrap()).unwrap();
        for (source, log) in head.sources.iter().zip(&logs) {
            let verified = audit::verify(log).unwrap();
            assert_eq!(
                (source.records, &source.last_hash),
                (verified.records, &verified.last_hash)
            );
        }
    }

    #[test]
    fn test_merge_shard_resumed_elsewhere_with_plugin_at_another_path_is_finished() {
        let b = Batch::new(10);
        let logs = b.logs(1);
        let mut elsewhere = b.job(1);
        elsewhere.routes[0].plugin = "/opt/other/pw-probe".to_owned();
        let mut log = AuditWriter::open(&logs[0]).unwrap();
        shard::end_log(&mut log, Shard::new(0, 1).unwrap(), &elsewhere, 10).unwrap();
        drop(log);

        let report = check(&origins(&logs), None).unwrap();

        assert!(report.proves_exactly_once(), "{report:?}");
    }

    #[test]
    fn test_merge_absent_shard_is_reported_and_proves_nothing() {
        let b = Batch::new(30);
        let mut logs = b.logs(3);
        logs.remove(1);

        let report = check(&origins(&logs), Some(std::slice::from_ref(&b.root))).unwrap();

        assert!(!report.proves_exactly_once());
        assert_eq!((report.absent, report.absent_listed.clone()), (1, vec![1]));
        let listing = report.listing.as_ref().unwrap();
        assert_eq!(listing.missing_count(), listing.shards[&1].found);
        assert!(listing.missing.iter().all(|(s, _)| *s == 1));
    }

    #[test]
    fn test_merge_log_without_shard_end_is_unfinished() {
        let b = Batch::new(20);
        let logs = b.logs(2);
        let mut lines: Vec<&str> = Vec::new();
        let text = std::fs::read_to_string(&logs[0]).unwrap();
        lines.extend(text.lines());
        lines.pop();
        std::fs::write(
            &logs[0],
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        )
        .unwrap();

        let report = check(&origins(&logs), None).unwrap();

        assert_eq!(report.unfinished(), vec![0]);
        assert!(!report.proves_exactly_once());
    }

    #[test]
    fn test_merge_input_judged_twice_is_a_duplicate() {
        let b = Batch::new(20);
        let logs = b.logs(2);
        let again = b.owned_by(1, 2);
        let mut log = AuditWriter::open(&logs[1]).unwrap();
        log.append(b.record(again)).unwrap();
        drop(log);

        let report = check(&origins(&logs), None).unwrap();

        assert_eq!(report.duplicates(), 1);
        assert_eq!(report.shards[1].duplicate_names, vec![escape::name(again)]);
        assert!(!report.proves_exactly_once());
    }

    #[test]
    fn test_merge_edited_byte_is_refused_naming_the_file() {
        let b = Batch::new(20);
        let logs = b.logs(2);
        let text = std::fs::read_to_string(&logs[1]).unwrap();
        std::fs::write(
            &logs[1],
            text.replacen("\"verdict\":\"ok\"", "\"verdict\":\"no\"", 1),
        )
        .unwrap();

        let err = check(&origins(&logs), None).unwrap_err();

        assert!(
            matches!(
                err,
                MergeError::Verify(VerifyError::HashMismatch { line: 2, .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("shard-1-of-2"), "{err}");
    }

    #[test]
    fn test_merge_logs_of_two_jobs_are_refused() {
        let b = Batch::new(20);
        let mut logs = b.logs(2);
        logs[1] = b.shard_log(1, 3);

        let err = check(&origins(&logs), None).unwrap_err();

        assert!(matches!(err, MergeError::OtherJob { .. }), "{err:?}");
        assert!(err.to_string().contains("3 shards, not 2"), "{err}");
    }

    #[test]
    fn test_merge_other_plugin_is_another_job() {
        let b = Batch::new(10);
        let logs = b.logs(2);
        let other = b.dir.path().join("other.jsonl");
        let mut job = b.job(2);
        job.routes[0].plugin_sha256 = "ef".repeat(32);
        let mut log = AuditWriter::open(&other).unwrap();
        shard::begin_log(&mut log, &other, Some(Shard::new(1, 2).unwrap()), &job).unwrap();
        drop(log);

        let err = check(&origins(&[logs[0].clone(), other]), None).unwrap_err();

        assert!(matches!(err, MergeError::OtherJob { .. }), "{err:?}");
    }

    #[test]
    fn test_merge_two_logs_of_one_shard_are_refused() {
        let b = Batch::new(10);
        let logs = b.logs(2);
        let copy = b.dir.path().join("copy.jsonl");
        std::fs::copy(&logs[0], &copy).unwrap();

        let err = check(&origins(&[logs[0].clone(), logs[1].clone(), copy]), None).unwrap_err();

        assert!(
            matches!(err, MergeError::SameShard { shard: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn test_merge_index_beyond_count_is_refused() {
        let b = Batch::new(4);
        let path = b.dir.path().join("forged.jsonl");
        let mut log = AuditWriter::open(&path).unwrap();
        log.append_job(JobRecord {
            event: audit::SHARD_START.to_owned(),
            job: b.job(4),
            shard: Some(4),
            ..JobRecord::default()
        })
        .unwrap();
        drop(log);

        let err = check(&origins(&[path]), None).unwrap_err();

        assert!(
            matches!(
                err,
                MergeError::IndexOutOfRange {
                    shard: 4,
                    shards: 4,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_merge_record_of_another_shard_is_refused() {
        let b = Batch::new(20);
        let logs = b.logs(2);
        let theirs = b.owned_by(1, 2);
        let mut log = AuditWriter::open(&logs[0]).unwrap();
        log.append(b.record(theirs)).unwrap();
        drop(log);

        let err = check(&origins(&logs), None).unwrap_err();

        assert!(
            matches!(
                err,
                MergeError::WrongShard {
                    owner: 1,
                    shard: 0,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_merge_record_of_another_plugin_is_refused() {
        let b = Batch::new(20);
        let logs = b.logs(1);
        let mut rec = b.record(&b.inputs[0]);
        rec.plugin_sha256 = "ef".repeat(32);
        let mut log = AuditWriter::open(&logs[0]).unwrap();
        log.append(rec).unwrap();
        drop(log);

        let err = check(&origins(&logs), None).unwrap_err();

        assert!(matches!(err, MergeError::ForeignRoute { .. }), "{err:?}");
    }

    #[test]
    fn test_merge_refuses_torn_line_that_status_accepts() {
        let b = Batch::new(10);
        let logs = b.logs(1);
        append_raw(&logs[0], b"{\"seq\":99,\"ti");

        let err = check(&origins(&logs), None).unwrap_err();
        let status = status(&origins(&logs), None).unwrap();

        assert!(
            matches!(err, MergeError::Verify(VerifyError::TornLine { .. })),
            "{err:?}"
        );
        assert!(status.rows[0].torn);
        assert_eq!(status.rows[0].done, 10);
    }

    #[test]
    fn test_merged_log_with_last_record_removed_fails_verify() {
        let b = Batch::new(10);
        let (_, bytes) = merged_bytes(&b.logs(2), None);
        let cut = &bytes[..bytes[..bytes.len() - 1]
            .iter()
            .rposition(|&c| c == b'\n')
            .unwrap()
            + 1];

        let err = audit::verify_bytes(cut).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::Incomplete {
                    expected: 11,
                    found: 10,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_merge_log_changed_after_checking_is_refused() {
        let b = Batch::new(10);
        let logs = b.logs(2);
        let report = check(&origins(&logs), None).unwrap();
        let text = std::fs::read_to_string(&logs[1]).unwrap();
        std::fs::write(&logs[1], text.replacen("\"attempt\":1", "\"attempt\":2", 1)).unwrap();

        let err = write_merged(&origins(&logs), &report, Vec::new()).unwrap_err();

        assert!(matches!(err, MergeError::Changed { .. }), "{err:?}");
    }

    #[test]
    fn test_merged_log_is_not_a_shard_log() {
        let b = Batch::new(10);
        let (_, bytes) = merged_bytes(&b.logs(2), None);
        let name = PathBuf::from("merged.jsonl");

        let err = check(&[Origin::Bytes(&name, &bytes)], None).unwrap_err();

        assert!(matches!(err, MergeError::NotAShardLog { .. }), "{err:?}");
    }

    #[test]
    fn test_merge_writes_file_once_and_refuses_to_overwrite() {
        let b = Batch::new(10);
        let logs = b.logs(2);
        let out = b.dir.path().join("merged.jsonl");

        let (_, wrote) = merge(&origins(&logs), None, &out).unwrap();
        let wrote = wrote.unwrap();
        let again = merge(&origins(&logs), None, &out).unwrap_err();

        assert_eq!(audit::verify(&out).unwrap(), wrote);
        assert_eq!(wrote.records, 11);
        assert!(matches!(again, MergeError::Exists { .. }), "{again:?}");
    }

    #[test]
    fn test_status_counts_remaining_from_listing() {
        let b = Batch::new(30);
        let logs = b.logs(3);
        let mut lines: Vec<String> = std::fs::read_to_string(&logs[2])
            .unwrap()
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
        let owned = lines.len() as u64 - 2;
        lines.truncate(2);
        std::fs::write(&logs[2], lines.concat()).unwrap();

        let status = status(&origins(&logs), Some(std::slice::from_ref(&b.root))).unwrap();

        let row = &status.rows[2];
        assert_eq!(
            (row.done, row.remaining(), row.finished),
            (1, Some(owned - 1), false)
        );
        assert!(status.rows[..2]
            .iter()
            .all(|r| r.finished && r.remaining() == Some(0)));
    }
}
