//! Reading shard logs: each verified, its inputs and their verdicts
//! gathered.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::audit::{self, is_final, AuditRecord, Job, JobRecord, Line, VerifyError};
use crate::escape;
use crate::shard;

use super::{MergeError, Origin, MAX_LISTED};

/// What merge keeps of one input: its judgements.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct InputState {
    /// Final verdicts with the input read (its sha256 recorded).
    pub(super) judged: u32,
    /// The last record's verdict is final (not `cancelled`).
    pub(super) settled: bool,
    pub(super) ok: bool,
    /// Found by the walk of `--inputs`.
    pub(super) listed: bool,
}

/// An input's identity across logs: 16 bytes of its key's digest (the 8
/// that follow the 8 that place it), XOR the index of its root.
pub(super) type InputId = u128;

pub(super) fn input_id(root: usize, digest: &[u8; 32]) -> InputId {
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
    pub(super) inputs: HashMap<InputId, InputState>,
    /// The lines that are records about the batch, not inputs.
    pub(super) job_lines: Vec<u64>,
}

/// Reads and checks one shard log. `tolerant` (status) accepts a torn
/// last line; merge refuses it.
pub(super) fn read_shard(origin: Origin<'_>, tolerant: bool) -> Result<ShardLog, MergeError> {
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
pub(super) struct Reading<'a> {
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

pub(super) fn note_input(
    log: &mut ShardLog,
    id: InputId,
    rec: &AuditRecord,
    name: impl Fn() -> String,
) {
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
pub(super) fn read_all(
    origins: &[Origin<'_>],
    tolerant: bool,
) -> Vec<Result<ShardLog, MergeError>> {
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
