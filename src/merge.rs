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
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::audit::{Job, VerifyError};
use crate::escape;
use crate::shard;

mod read;
mod status;
mod write;

use read::input_id;
use read::read_all;
pub use read::ShardLog;
pub use status::{status, Status, StatusRow};
pub use write::{merge, write_merged};

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
