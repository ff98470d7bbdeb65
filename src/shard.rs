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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn auto(shards: Option<u32>, vars: &[(&str, &str)]) -> Result<Shard, ShardError> {
        ShardSpec::Auto.resolve(shards, env(vars))
    }

    #[test]
    fn test_parse_fixed_shard() {
        assert_eq!(
            "2/7".parse::<ShardSpec>().unwrap(),
            ShardSpec::Fixed(Shard { index: 2, count: 7 })
        );
        assert_eq!("auto".parse::<ShardSpec>().unwrap(), ShardSpec::Auto);
    }

    #[test]
    fn test_parse_bad_shards_are_refused() {
        for bad in [
            "", "3", "7/7", "8/7", "0/0", "-1/3", "+1/3", "1/ 3", "a/b", "1/3/5",
        ] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn test_auto_slurm_min_max_count_gives_offset_index() {
        let vars = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ];
        assert_eq!(auto(None, &vars).unwrap(), Shard { index: 2, count: 4 });
    }

    #[test]
    fn test_auto_slurm_count_only_gives_id() {
        let vars = [
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        assert_eq!(auto(None, &vars).unwrap(), Shard { index: 0, count: 3 });
    }

    #[test]
    fn test_auto_slurm_list_or_step_is_refused() {
        let list = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "7"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        let step = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "6"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ];
        assert!(matches!(
            auto(None, &list),
            Err(ShardError::SlurmNotContiguous { .. })
        ));
        assert!(matches!(
            auto(None, &step),
            Err(ShardError::SlurmNotContiguous { .. })
        ));
    }

    #[test]
    fn test_auto_slurm_without_count_is_refused() {
        let vars = [("SLURM_ARRAY_TASK_ID", "1")];
        assert!(matches!(auto(None, &vars), Err(ShardError::SlurmNoCount)));
    }

    #[test]
    fn test_auto_slurm_with_shards_uses_task_id_for_a_rerun() {
        let rerun = [
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "2"),
            ("SLURM_ARRAY_TASK_MAX", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "1"),
        ];
        let one_based = [
            ("SLURM_ARRAY_TASK_ID", "1"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_MAX", "4"),
        ];
        assert_eq!(auto(Some(4), &rerun).unwrap(), Shard { index: 2, count: 4 });
        assert!(matches!(
            auto(Some(4), &one_based),
            Err(ShardError::SlurmBeyondCount { var: "MAX", .. })
        ));
    }

    #[test]
    fn test_auto_kubernetes_needs_count_from_flag_or_env() {
        let index = [("JOB_COMPLETION_INDEX", "5")];
        let with_env = [("JOB_COMPLETION_INDEX", "5"), (SHARDS_ENV, "8")];
        assert!(matches!(
            auto(None, &index),
            Err(ShardError::KubernetesNoCount)
        ));
        assert_eq!(auto(Some(8), &index).unwrap(), Shard { index: 5, count: 8 });
        assert_eq!(auto(None, &with_env).unwrap(), Shard { index: 5, count: 8 });
        assert!(matches!(
            auto(Some(5), &index),
            Err(ShardError::KubernetesBeyondCount { .. })
        ));
        assert!(matches!(
            auto(Some(9), &with_env),
            Err(ShardError::CountsDisagree { flag: 9, env: 8 })
        ));
    }

    #[test]
    fn test_auto_without_or_with_both_schedulers_is_refused() {
        let both = [("JOB_COMPLETION_INDEX", "0"), ("SLURM_ARRAY_TASK_ID", "0")];
        let garbage = [("JOB_COMPLETION_INDEX", "one")];
        let huge = [
            ("SLURM_ARRAY_TASK_ID", "0"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_MAX", "18446744073709551615"),
        ];
        assert!(matches!(auto(Some(2), &[]), Err(ShardError::NoScheduler)));
        assert!(matches!(
            auto(Some(2), &both),
            Err(ShardError::TwoSchedulers)
        ));
        assert!(matches!(
            auto(Some(2), &garbage),
            Err(ShardError::NotANumber { .. })
        ));
        assert!(matches!(auto(None, &huge), Err(ShardError::TooMany { .. })));
    }

    #[test]
    fn test_key_is_path_below_its_root_or_a_named_file_name() {
        let roots = [PathBuf::from("/data/in/"), PathBuf::from("extra/x.pdf")];
        assert_eq!(
            key(&roots, Path::new("/data/in/a/b.pdf")),
            (Some(0), &b"a/b.pdf"[..])
        );
        assert_eq!(
            key(&roots, Path::new("extra/x.pdf")),
            (Some(1), &b"x.pdf"[..])
        );
        assert_eq!(key(&roots, Path::new("/else")), (None, &b"/else"[..]));
    }

    #[test]
    fn test_shard_of_is_the_documented_formula() {
        // printf 'a/b.pdf' | sha256sum: e06332908d7e55f0…; 0xe06332908d7e55f0 % 7 = 5.
        let d = digest(b"a/b.pdf");

        assert_eq!(d[..8], [0xe0, 0x63, 0x32, 0x90, 0x8d, 0x7e, 0x55, 0xf0]);
        assert_eq!(shard_of(&d, 7), 5);
        assert_eq!(shard_of(&d, 4), 0);
        assert_eq!(shard_of(&d, 1), 0);
    }

    #[test]
    fn test_every_key_has_exactly_one_owner() {
        let roots = [PathBuf::from("in")];
        for n in [1u32, 3, 7] {
            for i in 0..200 {
                let path = PathBuf::from(format!("in/f{i}"));
                let owners = (0..n)
                    .filter(|&s| Shard::new(s, n).unwrap().owns(&roots, &path))
                    .count();
                assert_eq!(owners, 1, "{} of {n}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod log_tests {
    use super::*;
    use crate::audit::{AuditRecord, Root};

    fn job(shards: u32) -> Job {
        Job {
            shards,
            roots: vec![Root::new(b"in")],
            routes: Vec::new(),
        }
    }

    fn begin(path: &Path, shard: Option<Shard>, job: &Job) -> Result<(), LogError> {
        let mut log = AuditWriter::open(path).unwrap();
        begin_log(&mut log, path, shard, job)
    }

    #[test]
    fn test_begin_log_new_shard_log_starts_with_its_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        let shard = Shard::new(1, 3).ok();

        begin(&path, shard, &job(3)).unwrap();
        begin(&path, shard, &job(3)).unwrap();

        let Some(Line::Job(first)) = audit::first_record(&path).unwrap() else {
            panic!("no shard_start record");
        };
        assert_eq!(
            (first.event.as_str(), first.shard),
            (audit::SHARD_START, Some(1))
        );
        assert_eq!(audit::verify(&path).unwrap().records, 1);
    }

    #[test]
    fn test_begin_log_refuses_other_shard_other_job_and_unsharded_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.jsonl");
        begin(&path, Shard::new(1, 3).ok(), &job(3)).unwrap();

        let other_shard = begin(&path, Shard::new(2, 3).ok(), &job(3)).unwrap_err();
        let other_job = begin(&path, Shard::new(1, 4).ok(), &job(4)).unwrap_err();
        let unsharded = begin(&path, None, &job(1)).unwrap_err();

        assert!(
            matches!(other_shard, LogError::OtherShard { .. }),
            "{other_shard}"
        );
        assert!(
            matches!(other_job, LogError::OtherJob { .. }),
            "{other_job}"
        );
        assert!(
            matches!(unsharded, LogError::ShardLog { .. }),
            "{unsharded}"
        );
        assert!(unsharded.to_string().contains("--shard 1/3"), "{unsharded}");
    }

    #[test]
    fn test_begin_log_sharded_run_refuses_unsharded_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut log = AuditWriter::open(&path).unwrap();
        let mut rec = AuditRecord {
            verdict: "ok".to_owned(),
            ..AuditRecord::default()
        };
        rec.set_input(b"in/x");
        log.append(rec).unwrap();
        drop(log);

        let err = begin(&path, Shard::new(0, 2).ok(), &job(2)).unwrap_err();

        assert!(matches!(err, LogError::NotAShardLog { .. }), "{err}");
    }
}
