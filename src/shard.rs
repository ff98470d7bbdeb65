//! Sharding a batch over N independent processes (a Slurm array, a
//! Kubernetes Indexed Job, N shells on N machines): which inputs are this
//! process's, and which shard this process is.
//!
//! Why it is shaped this way:
//! - **No coordinator.** Every shard walks the same INPUT arguments and
//!   keeps the inputs whose key hashes to its index, so N processes started
//!   anywhere split the batch disjointly and completely without talking to
//!   each other or to a queue.
//! - **A key that does not depend on where or how.** The key is the input's
//!   path below the INPUT argument it was found under, as exact bytes (the
//!   file's name for a file named on the command line): the same on every
//!   machine that mounts the inputs, whatever the walk order, and whichever
//!   other shards exist. `shard = u64::from_be_bytes(sha256(key)[..8]) % N`,
//!   written down in docs/BATCH.md so that any tool can recompute it.
//! - **Refuse to guess.** `--shard auto` reads the scheduler's variables and
//!   stops with a message when they are missing or disagree: a wrong guess
//!   would run inputs twice or never, and only the merge would notice.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::audit::{self, AuditError, AuditWriter, Job, JobRecord, Line};
use crate::input::{Entry, InputError};

/// The variable a Kubernetes manifest (or anyone) sets to N for `--shard auto`.
pub const SHARDS_ENV: &str = "PLUGWARDEN_SHARDS";

/// One shard of N: `index` is 0-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// What `--shard` names: a fixed shard or the scheduler's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardSpec {
    Fixed(Shard),
    Auto,
}

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0:?} is neither I/N (e.g. 0/4: shard 0 of 4) nor auto")]
    Syntax(String),
    #[error(
        "shard {index}/{count} does not exist: shards are numbered 0 to N-1 and N is at least 1"
    )]
    OutOfRange { index: u32, count: u32 },
    #[error("--shard auto: neither SLURM_ARRAY_TASK_ID (a Slurm array task) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; pass --shard I/N")]
    NoScheduler,
    #[error("--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set, so it is unclear which scheduler started this process; pass --shard I/N")]
    TwoSchedulers,
    #[error("--shard auto: {var}={value:?} is not a whole number")]
    NotANumber { var: &'static str, value: String },
    #[error("--shard auto: --shards {flag} and {SHARDS_ENV}={env} disagree; give one")]
    CountsDisagree { flag: u32, env: u32 },
    #[error("--shard auto: a Slurm array task, but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN and _MAX say how many tasks there are; pass --shards N")]
    SlurmNoCount,
    #[error("--shard auto: the Slurm array is not one contiguous range ({detail}); submit it as --array=0-{last} or pass --shards N")]
    SlurmNotContiguous { detail: String, last: u64 },
    #[error("--shard auto: SLURM_ARRAY_TASK_{var}={id} is not a shard of {count} (with --shards N, array task ids are the shard indexes 0 to N-1: submit --array=0-{last} or a part of it)")]
    SlurmBeyondCount {
        var: &'static str,
        id: u64,
        count: u32,
        last: u32,
    },
    #[error("--shard auto: an array of {count} tasks; at most 4294967295 shards")]
    TooMany { count: u64 },
    #[error("--shard auto: JOB_COMPLETION_INDEX is set but not the number of shards; pass --shards N or set {SHARDS_ENV} to the Job's completions")]
    KubernetesNoCount,
    #[error("--shard auto: JOB_COMPLETION_INDEX={index} is not below the {count} shards (--shards or {SHARDS_ENV}); they must equal the Job's completions")]
    KubernetesBeyondCount { index: u64, count: u32 },
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if index >= count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Whether the input at `path`, found under one of `roots`, is this shard's.
    pub fn owns(&self, roots: &[PathBuf], path: &Path) -> bool {
        shard_of(&digest(key(roots, path).1), self.count) == self.index
    }

    /// [`Shard::owns`] for what the walk yields: an entry, or an entry that
    /// could not be listed (an error without a path goes to shard 0).
    pub fn owns_walked(&self, roots: &[PathBuf], entry: &Result<Entry, InputError>) -> bool {
        match entry {
            Ok(e) => self.owns(roots, &e.path),
            Err(InputError::Io { path, .. }) => self.owns(roots, path),
            Err(_) => self.index == 0,
        }
    }
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<ShardSpec, ShardError> {
        if s == "auto" {
            return Ok(ShardSpec::Auto);
        }
        let syntax = || ShardError::Syntax(s.to_owned());
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let number = |t: &str| {
            // u32's parser takes a leading '+'; an index is digits only.
            t.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| t.parse::<u32>().ok())
                .flatten()
                .ok_or_else(syntax)
        };
        Shard::new(number(i)?, number(n)?).map(ShardSpec::Fixed)
    }
}

impl ShardSpec {
    /// The shard this process is: the fixed one, or the scheduler's from
    /// the environment (`env` looks a variable up; `shards` is `--shards`).
    pub fn resolve(
        self,
        shards: Option<u32>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard, ShardError> {
        match self {
            ShardSpec::Fixed(shard) => Ok(shard),
            ShardSpec::Auto => from_env(shards, env),
        }
    }
}

fn from_env(flag: Option<u32>, env: impl Fn(&str) -> Option<String>) -> Result<Shard, ShardError> {
    let number = |var: &'static str| -> Result<Option<u64>, ShardError> {
        let Some(value) = env(var) else {
            return Ok(None);
        };
        let trimmed = value.trim();
        match trimmed.bytes().all(|b| b.is_ascii_digit()) {
            true => trimmed.parse().map(Some).ok(),
            false => None,
        }
        .ok_or(ShardError::NotANumber { var, value })
    };
    let from_env_count = match number(SHARDS_ENV)? {
        Some(n) => Some(u32::try_from(n).map_err(|_| ShardError::NotANumber {
            var: SHARDS_ENV,
            value: n.to_string(),
        })?),
        None => None,
    };
    let count = match (flag, from_env_count) {
        (Some(flag), Some(env)) if flag != env => {
            return Err(ShardError::CountsDisagree { flag, env })
        }
        (flag, env) => flag.or(env),
    };
    if count == Some(0) {
        return Err(ShardError::OutOfRange { index: 0, count: 0 });
    }
    let slurm = number("SLURM_ARRAY_TASK_ID")?;
    let kubernetes = number("JOB_COMPLETION_INDEX")?;
    match (slurm, kubernetes) {
        (Some(_), Some(_)) => Err(ShardError::TwoSchedulers),
        (None, None) => Err(ShardError::NoScheduler),
        (Some(id), None) => slurm_shard(id, count, number),
        (None, Some(index)) => {
            let count = count.ok_or(ShardError::KubernetesNoCount)?;
            match u32::try_from(index) {
                Ok(i) if i < count => Shard::new(i, count),
                _ => Err(ShardError::KubernetesBeyondCount { index, count }),
            }
        }
    }
}

/// A Slurm array task's shard. With N given, task ids are shard indexes
/// (so `--array=2` re-runs shard 2 alone); otherwise the array itself, a
/// contiguous range MIN..=MAX, says both.
fn slurm_shard(
    id: u64,
    count: Option<u32>,
    number: impl Fn(&'static str) -> Result<Option<u64>, ShardError>,
) -> Result<Shard, ShardError> {
    let (min, max) = (
        number("SLURM_ARRAY_TASK_MIN")?,
        number("SLURM_ARRAY_TASK_MAX")?,
    );
    let (tasks, step) = (
        number("SLURM_ARRAY_TASK_COUNT")?,
        number("SLURM_ARRAY_TASK_STEP")?,
    );
    if let Some(count) = count {
        let beyond = |var, id| ShardError::SlurmBeyondCount {
            var,
            id,
            count,
            last: count - 1,
        };
        if let Some(max) = max.filter(|&m| m >= u64::from(count)) {
            return Err(beyond("MAX", max));
        }
        return match u32::try_from(id) {
            Ok(i) if i < count => Shard::new(i, count),
            _ => Err(beyond("ID", id)),
        };
    }
    let (index, count) = match (min, max, tasks) {
        (Some(min), Some(max), tasks) if min <= id && id <= max => {
            let span = (max - min).saturating_add(1);
            let not_contiguous = |detail| ShardError::SlurmNotContiguous {
                detail,
                last: tasks.unwrap_or(span).saturating_sub(1),
            };
            if let Some(step) = step.filter(|&s| s != 1) {
                return Err(not_contiguous(format!("step {step}")));
            }
            if let Some(tasks) = tasks.filter(|&t| t != span) {
                return Err(not_contiguous(format!(
                    "{tasks} tasks between {min} and {max}"
                )));
            }
            (id - min, span)
        }
        (Some(min), Some(max), _) => {
            return Err(ShardError::SlurmNotContiguous {
                detail: format!("task {id} outside {min}-{max}"),
                last: max.saturating_sub(min),
            })
        }
        (_, _, Some(tasks)) if id < tasks => (id, tasks),
        (_, _, Some(tasks)) => {
            return Err(ShardError::SlurmNotContiguous {
                detail: format!("task {id} of {tasks}, no SLURM_ARRAY_TASK_MIN"),
                last: tasks.saturating_sub(1),
            })
        }
        _ => return Err(ShardError::SlurmNoCount),
    };
    match (u32::try_from(index), u32::try_from(count)) {
        (Ok(index), Ok(count)) => Shard::new(index, count),
        _ => Err(ShardError::TooMany { count }),
    }
}

/// The partition key of the input at `path`: the index of the first root
/// it lies under and its path below that root, exact bytes (the file's
/// name when the root is the file itself). A path under no root (never
/// walked) is its own key, with no root.
pub fn key<'p>(roots: &[PathBuf], path: &'p Path) -> (Option<usize>, &'p [u8]) {
    for (i, root) in roots.iter().enumerate() {
        if path == root {
            let name = path.file_name().unwrap_or(path.as_os_str());
            return (Some(i), name.as_bytes());
        }
        if let Ok(rel) = path.strip_prefix(root) {
            return (Some(i), rel.as_os_str().as_bytes());
        }
    }
    (None, path.as_os_str().as_bytes())
}

/// SHA-256 of a key: its first 8 bytes place it ([`shard_of`]).
pub fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// The shard a key's digest belongs to, of `count`.
pub fn shard_of(digest: &[u8; 32], count: u32) -> u32 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // The remainder is below `count`, a u32.
    (u64::from_be_bytes(head) % u64::from(count.max(1))) as u32
}

/// Why a run cannot use the audit log it was given.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("audit log {} belongs to shard {shard} of a sharded job: run it with --shard {shard}, or give this run another --audit file", .path.display())]
    ShardLog { path: PathBuf, shard: String },
    #[error("audit log {} is a merged log (`audit merge`): runs append to their own logs; give another --audit file", .path.display())]
    MergedLog { path: PathBuf },
    #[error("audit log {} was written by a run without --shard: give each shard its own new --audit file", .path.display())]
    NotAShardLog { path: PathBuf },
    #[error("audit log {} belongs to shard {theirs}, not {ours}: give each shard its own --audit file (shard-I.jsonl)", .path.display())]
    OtherShard {
        path: PathBuf,
        theirs: String,
        ours: Shard,
    },
    #[error("audit log {} belongs to another job ({what}): give this job new --audit files, or run it as that job was run", .path.display())]
    OtherJob { path: PathBuf, what: String },
}

/// Checks that the audit log at `path` (opened as `log`) may take this
/// run's records, and starts a new shard log with its `shard_start`
/// record. A shard log is this shard's of this job; a log without a shard
/// is never continued by a sharded run, nor the other way round.
pub fn begin_log(
    log: &mut AuditWriter,
    path: &Path,
    shard: Option<Shard>,
    job: &Job,
) -> Result<(), LogError> {
    let first = match log.next_seq() {
        1 => None,
        _ => audit::first_record(path)?,
    };
    let path = path.to_owned();
    let start = match (first, shard) {
        (None, None) | (Some(Line::Input(_)), None) => return Ok(()),
        (None, Some(shard)) => {
            log.append_job(shard_record(audit::SHARD_START, shard, job, None))?;
            return Ok(());
        }
        (Some(Line::Input(_)), Some(_)) => return Err(LogError::NotAShardLog { path }),
        (Some(Line::Job(j)), _) if j.event != audit::SHARD_START => {
            return Err(LogError::MergedLog { path })
        }
        (Some(Line::Job(j)), None) => {
            let shard = format!("{}/{}", j.shard.unwrap_or(0), j.job.shards);
            return Err(LogError::ShardLog { path, shard });
        }
        (Some(Line::Job(j)), Some(ours)) => (j, ours),
    };
    let (theirs, ours) = start;
    if let Some(what) = theirs.job.differs(job) {
        return Err(LogError::OtherJob { path, what });
    }
    if theirs.shard != Some(ours.index) {
        let theirs = format!("{}/{}", theirs.shard.unwrap_or(0), theirs.job.shards);
        return Err(LogError::OtherShard { path, theirs, ours });
    }
    Ok(())
}

/// Appends the `shard_end` record: the run ended with each of the
/// `inputs` this shard's walk found judged.
pub fn end_log(
    log: &mut AuditWriter,
    shard: Shard,
    job: &Job,
    inputs: u64,
) -> Result<(), AuditError> {
    log.append_job(shard_record(audit::SHARD_END, shard, job, Some(inputs)))
        .map(drop)
}

fn shard_record(event: &str, shard: Shard, job: &Job, inputs: Option<u64>) -> JobRecord {
    JobRecord {
        event: event.to_owned(),
        job: job.clone(),
        shard: Some(shard.index),
        inputs,
        ..JobRecord::default()
    }
}

#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod tests;
