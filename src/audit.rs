//! The audit log: one JSON line per input, hash-chained, and its verifier.
//!
//! This module owns the on-disk format (the field names are a contract with
//! scripts and jq), the chain, appending, verification, and the set of inputs
//! that `--resume` skips.
//!
//! Why it is shaped this way:
//! - **Tamper evidence.** Each record carries `prev` (the hash of the record
//!   before it, 64 zeros for the first) and `hash` = sha256(prev || canonical
//!   record), where the canonical record is the record serialized with `hash`
//!   set to "". A line must also be byte for byte the serialization of what it
//!   parses to, so any edit, deletion, insertion or reordering breaks a hash,
//!   a byte comparison or the chain, and [`verify`] names the first bad line.
//!   The chain has no secret key: someone who rewrites the whole tail from the
//!   edit onwards is caught only by comparing [`VerifySummary::last_hash`]
//!   with a copy kept elsewhere (the run summary prints it).
//! - **Crash safety.** A record is committed when its newline is in the file.
//!   Each record, or each group of records ([`AuditWriter::append_all`]), is
//!   one write(2) of complete lines under an exclusive flock, with no
//!   userspace buffer, so a host killed at any instant leaves a valid prefix
//!   plus at most one torn line, which [`AuditWriter::open`] cuts away (it
//!   was never a complete record) and [`verify`] reports. Nothing here syncs
//!   unless asked ([`AuditWriter::set_sync`], [`AuditWriter::sync`]): `run`
//!   syncs once per group, after the outputs the group's records vouch for.
//! - **Bounded.** Lines longer than [`MAX_LINE`] are refused on both sides, and
//!   the verifier streams, so a hostile or huge file costs at most one line of
//!   memory.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev` of the first record: the chain starts here.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest line (without its newline) the writer produces and the verifier
/// reads; anything longer is an error, never an allocation.
pub const MAX_LINE: usize = 1 << 20;

/// The one-word verdicts a record may carry ([`crate::Verdict::word`]).
pub use crate::verdict::WORDS as VERDICTS;

/// How much of a parser message a [`VerifyError::Malformed`] keeps: the
/// message may quote hostile bytes.
const MAX_REASON: usize = 200;

/// One line of the audit log. Field order is the serialization order, and so
/// part of the canonical form: never reorder, rename or insert fields without
/// a format version.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// The record's `seq`.
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-30T03:04:05.123Z`.
    pub time: String,
    /// The input's path: exactly, when it is UTF-8; else escaped for reading
    /// (`escape`), and exact in `input_bytes`.
    pub input: String,
    /// The exact path in lowercase hex, only when it is not UTF-8 (absent
    /// otherwise, so older logs keep their bytes and verify unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_bytes: Option<String>,
    /// None when the input could not be read (verdict `input_error`).
    pub input_sha256: Option<String>,
    /// The plugin's path.
    pub plugin: String,
    /// The sha256 of the plugin's executable.
    pub plugin_sha256: String,
    /// The policy's name or path.
    pub policy: String,
    /// The sha256 of the policy's sources.
    pub policy_sha256: String,
    /// The plugin's pid, when one ran.
    pub worker_pid: Option<u32>,
    /// Serial number of the worker process in its pool.
    pub generation: Option<u64>,
    /// One of [`VERDICTS`].
    pub verdict: String,
    /// The verdict's detail ([`crate::Verdict::detail`]).
    pub detail: String,
    /// 1, or 2 for a retry.
    pub attempt: u32,
    /// Wall-clock time, ms.
    pub wall_ms: u64,
    /// CPU time, ms.
    pub cpu_ms: u64,
    /// Peak resident set, KiB.
    pub max_rss_kib: u64,
    /// Why the worker was retired after this job, if it was ([`crate::pool::RecycleReason::word`]).
    pub recycle_reason: Option<String>,
    /// Where the output was written, if it was.
    pub output: Option<String>,
    /// Like `input_bytes`, for `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<String>,
    /// The output's sha256, if there was one.
    pub output_sha256: Option<String>,
    /// Free-form remarks, e.g. sandbox features this kernel could not apply.
    pub notes: Vec<String>,
    /// The previous record's `hash` ([`GENESIS`] for the first).
    pub prev: String,
    /// The sha256 of this record's canonical form with `hash` empty.
    pub hash: String,
}

/// A path as the record's (name, bytes) fields: the name itself when it is
/// UTF-8, else its escaped form and its exact bytes in hex.
pub fn name_fields(path: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(path) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (crate::escape::escape(path), Some(hex::encode(path))),
    }
}

/// The exact path a (name, bytes) pair stands for; `None` when the pair
/// is not one [`name_fields`] makes.
pub fn name_of(name: &str, bytes: Option<&str>) -> Option<Vec<u8>> {
    let Some(hex_bytes) = bytes else {
        return Some(name.as_bytes().to_vec());
    };
    let exact = hex::decode(hex_bytes).ok()?;
    (name_fields(&exact) == (name.to_owned(), Some(hex_bytes.to_owned()))).then_some(exact)
}

impl AuditRecord {
    /// Sets `input` and `input_bytes` from the exact path.
    pub fn set_input(&mut self, path: &[u8]) {
        (self.input, self.input_bytes) = name_fields(path);
    }

    /// Sets `output` and `output_bytes` from the exact path.
    pub fn set_output(&mut self, path: &[u8]) {
        let (name, bytes) = name_fields(path);
        self.output = Some(name);
        self.output_bytes = bytes;
    }

    /// The input's exact path (what `--resume` keys on).
    pub fn input_path(&self) -> Option<Vec<u8>> {
        name_of(&self.input, self.input_bytes.as_deref())
    }
}

/// The events a [`JobRecord`] may carry.
pub const EVENTS: [&str; 3] = [SHARD_START, SHARD_END, MERGE];
/// The first record of a shard's log (`run --shard`).
pub const SHARD_START: &str = "shard_start";
/// Appended when a shard's run ended with every input it found judged.
pub const SHARD_END: &str = "shard_end";
/// The first record of a merged log (`audit merge`).
pub const MERGE: &str = "merge";

/// A record about the batch rather than one input, in the same chain: a
/// shard's start and end, and the head of a merged log. Its third field is
/// `event`, where an input's record has `input`; old logs hold none. Field
/// order is part of the canonical form, as for [`AuditRecord`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobRecord {
    /// The record's `seq`.
    pub seq: u64,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    /// One of [`EVENTS`].
    pub event: String,
    /// The batch this log belongs to.
    pub job: Job,
    /// `shard_start`, `shard_end`: this log's shard, 0 to `job.shards` − 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// `shard_end`: the inputs this shard's walk found in the run that
    /// ended (its share of the batch). `merge`: the inputs in the merged log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<u64>,
    /// `merge`: the shard logs merged, in shard order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<MergedSource>,
    /// The previous record's `hash` ([`GENESIS`] for the first).
    pub prev: String,
    /// The sha256 of this record's canonical form with `hash` empty.
    pub hash: String,
}

/// What makes two shards parts of one batch.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// N: how many shards the inputs are split into.
    pub shards: u32,
    /// The INPUT arguments, in order, as given.
    pub roots: Vec<Root>,
    /// The plugin and policy of each route (one for `run`, two for `sanitize`).
    pub routes: Vec<Route>,
}

/// An INPUT argument: its name as in [`AuditRecord::input`] (exact bytes
/// in `path_bytes` when it is not UTF-8).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// The log.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The exact path in lowercase hex, only when it is not UTF-8.
    pub path_bytes: Option<String>,
}

/// One plugin under its policy.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The plugin's path.
    pub plugin: String,
    /// The sha256 of the plugin's executable.
    pub plugin_sha256: String,
    /// The policy's name or path.
    pub policy: String,
    /// The sha256 of the policy's sources.
    pub policy_sha256: String,
}

/// A shard log as a merged log cites it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MergedSource {
    /// The file merged (for reading; escaped if not UTF-8).
    pub file: String,
    /// Its shard number.
    pub shard: u32,
    /// What `audit verify` prints for that file: its record count and
    /// final hash, so the shard log can be checked against this citation.
    pub records: u64,
    /// Its last record's hash.
    pub last_hash: String,
    /// How many of its input records follow in the merged log.
    pub copied: u64,
}

impl Root {
    /// The root `path` as the record names it (exact bytes kept when not UTF-8).
    pub fn new(path: &[u8]) -> Root {
        let (path, path_bytes) = name_fields(path);
        Root { path, path_bytes }
    }

    /// The exact path; `None` when the pair is not one [`Root::new`] makes.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        name_of(&self.path, self.path_bytes.as_deref())
    }
}

impl Job {
    /// How `other` is not the same batch as `self`, in a few words; `None`
    /// when it is. Names (plugin paths, policy names) may differ between
    /// machines: the hashes, N and the INPUT arguments may not.
    pub fn differs(&self, other: &Job) -> Option<String> {
        if self.shards != other.shards {
            return Some(format!("{} shards, not {}", other.shards, self.shards));
        }
        let roots = |j: &Job| j.roots.iter().map(|r| r.path.clone()).collect::<Vec<_>>();
        if self.roots != other.roots {
            return Some(format!(
                "INPUT arguments {:?}, not {:?}",
                roots(other),
                roots(self)
            ));
        }
        let hashes = |j: &Job| {
            j.routes
                .iter()
                .map(|r| (r.plugin_sha256.clone(), r.policy_sha256.clone()))
                .collect::<Vec<_>>()
        };
        if hashes(self) != hashes(other) {
            return Some("another plugin or policy (their sha256 differ)".to_owned());
        }
        None
    }
}

/// One line of a log.
// Nearly every line is an input's record: boxing it would cost an
// allocation per line to save space on the rare job record.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Line {
    /// An input's record.
    Input(AuditRecord),
    /// A job record (a shard's start or end, a merge).
    Job(JobRecord),
}

/// A record in the chain: what [`seal`] and the verifier need of it.
trait Link: Serialize {
    fn seq(&self) -> u64;
    fn prev(&self) -> &str;
    fn hash(&self) -> &str;
    fn hash_mut(&mut self) -> &mut String;
    fn set_position(&mut self, seq: u64, prev: &str);
}

macro_rules! link {
    ($t:ty) => {
        impl Link for $t {
            fn seq(&self) -> u64 {
                self.seq
            }
            fn prev(&self) -> &str {
                &self.prev
            }
            fn hash(&self) -> &str {
                &self.hash
            }
            fn hash_mut(&mut self) -> &mut String {
                &mut self.hash
            }
            fn set_position(&mut self, seq: u64, prev: &str) {
                self.seq = seq;
                prev.clone_into(&mut self.prev);
            }
        }
    };
}
link!(AuditRecord);
link!(JobRecord);

/// What a successful verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifySummary {
    /// Records in the log.
    pub records: u64,
    /// Hash of the last record ([`GENESIS`] for an empty log): keep it
    /// elsewhere to detect a rewrite of the whole tail.
    pub last_hash: String,
}

/// The first problem found in an audit log. `line` is 1-based; `seq` is what
/// the offending record claims.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read {}", log_name(.file))]
    /// The log cannot be read.
    Io {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        #[source]
        /// Why.
        source: io::Error,
    },
    #[error(
        "{}: line {line} is not an audit record ({reason}): the log was corrupted or edited; lines before it are intact",
        log_name(.file)
    )]
    /// A line that is not an audit record.
    Malformed {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        /// 1-based line.
        line: u64,
        /// What the parser said (cut short).
        reason: String,
    },
    #[error(
        "{}: record {seq} (line {line}) was edited: its hash does not match its contents; records before it are intact",
        log_name(.file)
    )]
    /// A record whose hash does not match its contents.
    HashMismatch {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        /// 1-based line.
        line: u64,
        /// The record's `seq`.
        seq: u64,
    },
    #[error(
        "{}: record {seq} (line {line}) was edited: it is not byte for byte what plugwarden wrote; records before it are intact",
        log_name(.file)
    )]
    /// A record that is not byte for byte what plugwarden writes.
    NotCanonical {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        /// 1-based line.
        line: u64,
        /// The record's `seq`.
        seq: u64,
    },
    #[error(
        "{}: record {seq} (line {line}) does not chain to the line before it: a record was removed, inserted or reordered just before it; records before it are intact",
        log_name(.file)
    )]
    /// A record that does not chain to the one before it.
    ChainBroken {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        /// 1-based line.
        line: u64,
        /// The record's `seq`.
        seq: u64,
    },
    #[error(
        "{}: record {seq} (line {line}) should be numbered {expected}: records were renumbered; records before it are intact",
        log_name(.file)
    )]
    /// A record numbered out of sequence.
    SeqGap {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        /// 1-based line.
        line: u64,
        /// The record's `seq`.
        seq: u64,
        /// What was expected.
        expected: u64,
    },
    #[error(
        "{}: line {line} is incomplete (no newline at the end of the file): the host was stopped while writing it; `plugwarden run --resume` drops it, or delete that line",
        log_name(.file)
    )]
    /// The last line has no newline (the writer was stopped).
    TornLine {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        /// 1-based line.
        line: u64,
        /// Byte offset where the torn line starts: the length of the valid prefix.
        offset: u64,
    },
    #[error(
        "{}: its merge record promises {expected} records and it holds {found}: records were removed from its end, or added; merge the shard logs again",
        log_name(.file)
    )]
    /// A merged log holding more or fewer records than its merge record says.
    Incomplete {
        /// The log (`None`: bytes given in memory).
        file: Option<PathBuf>,
        /// What was expected.
        expected: u64,
        /// What the log holds.
        found: u64,
    },
}

impl VerifyError {
    /// The 1-based line the problem is on (None for a read error).
    pub fn line(&self) -> Option<u64> {
        match self {
            VerifyError::Io { .. } | VerifyError::Incomplete { .. } => None,
            VerifyError::Malformed { line, .. }
            | VerifyError::HashMismatch { line, .. }
            | VerifyError::NotCanonical { line, .. }
            | VerifyError::ChainBroken { line, .. }
            | VerifyError::SeqGap { line, .. }
            | VerifyError::TornLine { line, .. } => Some(*line),
        }
    }
}

/// Errors of writing the log or of reading it for `--resume`.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {}", .path.display())]
    /// The log cannot be opened.
    Open {
        /// The log.
        path: PathBuf,
        #[source]
        /// Why.
        source: io::Error,
    },
    #[error("audit log {} is not a regular file: give --audit a file path", .path.display())]
    /// The log is not a regular file.
    NotAFile {
        /** The log. */
        path: PathBuf,
    },
    #[error(
        "audit log {} is in use by another plugwarden process: wait for it to finish or use another --audit file",
        .path.display()
    )]
    /// Another process holds the log.
    Locked {
        /** The log. */
        path: PathBuf,
    },
    #[error("cannot read audit log {}", .path.display())]
    /// The log cannot be read.
    Read {
        /// The log.
        path: PathBuf,
        #[source]
        /// Why.
        source: io::Error,
    },
    #[error(
        "refusing to use audit log {}: it fails verification at line {line}; keep it as evidence and move it aside (e.g. to {}.bad) to start a new log",
        .path.display(),
        .path.display()
    )]
    /// The log fails verification.
    Invalid {
        /// The log.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        #[source]
        /// Why.
        source: VerifyError,
    },
    #[error("cannot cut the torn last line off audit log {}", .path.display())]
    /// A torn last line cannot be cut off.
    Repair {
        /// The log.
        path: PathBuf,
        #[source]
        /// Why.
        source: io::Error,
    },
    #[error(
        "cannot write record {seq} to audit log {}; records before it are intact",
        .path.display()
    )]
    /// A record cannot be written.
    Write {
        /// The log.
        path: PathBuf,
        /// The record's `seq`.
        seq: u64,
        #[source]
        /// Why.
        source: io::Error,
    },
    #[error(
        "cannot sync audit log {} after record {seq}: the record is written but may not survive a power loss",
        .path.display()
    )]
    /// A record cannot be synced.
    Sync {
        /// The log.
        path: PathBuf,
        /// The record's `seq`.
        seq: u64,
        #[source]
        /// Why.
        source: io::Error,
    },
    #[error(
        "audit log {} has a partial record at its end that could not be removed: stop and run again with --resume",
        .path.display()
    )]
    /// A partial record is left at the end.
    Broken {
        /** The log. */
        path: PathBuf,
    },
    #[error("audit record for {input} is {len} bytes, over the limit of {MAX_LINE}: shorten its detail or notes")]
    /// A record longer than [`MAX_LINE`].
    RecordTooLarge {
        /** The input the record is for. */
        input: String,
        /** The record's size, bytes. */
        len: usize,
    },
    #[error("unknown verdict {verdict:?} for {input}: expected one of {}", VERDICTS.join(", "))]
    /// A verdict that is none of [`VERDICTS`].
    UnknownVerdict {
        /** The input the record is for. */
        input: String,
        /** The verdict given. */
        verdict: String,
    },
}

fn log_name(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => format!("audit log {}", path.display()),
        None => "audit log".to_owned(),
    }
}

/// Appends records to one audit log, holding an exclusive flock on it for
/// its whole life so that two hosts cannot interleave their chains.
#[derive(Debug)]
pub struct AuditWriter {
    file: Flock<File>,
    path: PathBuf,
    next_seq: u64,
    last_hash: String,
    /// Length of the committed prefix: where the next line starts.
    len: u64,
    sync: bool,
    /// False while the directory entry of a file we created may not be durable.
    dir_synced: bool,
    /// A failed write left bytes we could not remove: appending more would
    /// merge them into a record.
    broken: bool,
}

impl AuditWriter {
    /// Opens `path` for appending, creating it if needed. An existing log is
    /// verified first and refused with [`AuditError::Invalid`] if it fails; a
    /// torn last line (the host was killed mid-write) is cut away with a
    /// warning, since it was never a complete record.
    pub fn open(path: &Path) -> Result<AuditWriter, AuditError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|source| AuditError::Open {
                path: path.to_owned(),
                source,
            })?;
        let file = lock(file, path)?;
        let scan = scan_log(
            BufReader::with_capacity(64 << 10, &*file),
            Some(path),
            |_| {},
        )
        .map_err(|e| invalid(path, e))?;
        if let Some((line, offset)) = scan.torn {
            tracing::warn!(
                "audit log {}: line {line} is a partial record left by an interrupted run; removing it",
                path.display()
            );
            file.set_len(offset).map_err(|source| AuditError::Repair {
                path: path.to_owned(),
                source,
            })?;
        }
        Ok(AuditWriter {
            file,
            path: path.to_owned(),
            next_seq: scan.records + 1,
            last_hash: scan.last_hash,
            len: scan.len,
            sync: false,
            dir_synced: scan.len > 0,
            broken: false,
        })
    }

    /// With `sync`, every append waits until the record is on disk
    /// (fdatasync), and a newly created log's directory entry too.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Fills `seq`, `time` (if empty), `prev` and `hash`, writes the record as
    /// one line with a single write(2), and returns it as written. On a write
    /// error the partial line is removed, so the log stays valid.
    pub fn append(&mut self, mut rec: AuditRecord) -> Result<AuditRecord, AuditError> {
        self.append_all(std::slice::from_mut(&mut rec))?;
        Ok(rec)
    }

    /// [`AuditWriter::append`] for several records at once, in order: all
    /// their lines go out in a single write(2), and on any error none of
    /// them stays in the log (the group commit of `run`).
    pub fn append_all(&mut self, recs: &mut [AuditRecord]) -> Result<(), AuditError> {
        for rec in recs.iter_mut() {
            if !VERDICTS.contains(&rec.verdict.as_str()) {
                return Err(AuditError::UnknownVerdict {
                    input: rec.input.clone(),
                    verdict: rec.verdict.clone(),
                });
            }
            if rec.time.is_empty() {
                rec.time = now();
            }
        }
        self.commit(recs, |rec| rec.input.clone())
    }

    /// [`AuditWriter::append`] for a record about the batch.
    pub fn append_job(&mut self, mut rec: JobRecord) -> Result<JobRecord, AuditError> {
        if rec.time.is_empty() {
            rec.time = now();
        }
        self.commit(std::slice::from_mut(&mut rec), |rec| {
            format!("the {} record", rec.event)
        })?;
        Ok(rec)
    }

    fn commit<T: Link>(
        &mut self,
        recs: &mut [T],
        name: impl Fn(&T) -> String,
    ) -> Result<(), AuditError> {
        if self.broken {
            return Err(AuditError::Broken {
                path: self.path.clone(),
            });
        }
        let mut lines = Vec::new();
        let mut prev = self.last_hash.clone();
        for (seq, rec) in (self.next_seq..).zip(recs.iter_mut()) {
            rec.set_position(seq, &prev);
            let line = seal(rec);
            if line.len() > MAX_LINE {
                return Err(AuditError::RecordTooLarge {
                    input: name(rec),
                    len: line.len(),
                });
            }
            lines.extend_from_slice(&line);
            lines.push(b'\n');
            rec.hash().clone_into(&mut prev);
        }
        if recs.is_empty() {
            return Ok(());
        }
        let last = self.next_seq + recs.len() as u64 - 1;
        self.write_line(&lines, self.next_seq)?;
        self.len += lines.len() as u64;
        self.next_seq = last + 1;
        self.last_hash = prev;
        if self.sync {
            self.sync_to_disk(last)?;
        }
        Ok(())
    }

    /// Makes every record written so far durable: fdatasync, and a newly
    /// created log's directory entry too.
    pub fn sync(&mut self) -> Result<(), AuditError> {
        self.sync_to_disk(self.next_seq.saturating_sub(1))
    }

    /// The `seq` the next appended record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Hash of the last record written or found ([`GENESIS`] when empty).
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Writes one or more complete lines; `seq` is the first one's.
    fn write_line(&mut self, line: &[u8], seq: u64) -> Result<(), AuditError> {
        // O_APPEND and the flock make this one contiguous write; write_all
        // issues a single write(2) unless the kernel takes only part of it.
        let Err(source) = (&*self.file).write_all(line) else {
            return Ok(());
        };
        if self.file.set_len(self.len).is_err() {
            self.broken = true;
        }
        Err(AuditError::Write {
            path: self.path.clone(),
            seq,
            source,
        })
    }

    fn sync_to_disk(&mut self, seq: u64) -> Result<(), AuditError> {
        let sync_error = |source| AuditError::Sync {
            path: self.path.clone(),
            seq,
            source,
        };
        self.file.sync_data().map_err(sync_error)?;
        if !self.dir_synced {
            let dir = match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(sync_error)?;
            self.dir_synced = true;
        }
        Ok(())
    }
}

fn lock(file: File, path: &Path) -> Result<Flock<File>, AuditError> {
    // A FIFO or a terminal would block the verifying read forever.
    let is_file = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !is_file {
        return Err(AuditError::NotAFile {
            path: path.to_owned(),
        });
    }
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => AuditError::Locked {
            path: path.to_owned(),
        },
        errno => AuditError::Open {
            path: path.to_owned(),
            source: errno.into(),
        },
    })
}

fn invalid(path: &Path, e: VerifyError) -> AuditError {
    match e {
        VerifyError::Io { source, .. } => AuditError::Read {
            path: path.to_owned(),
            source,
        },
        e => AuditError::Invalid {
            path: path.to_owned(),
            line: e.line().unwrap_or(0),
            source: e,
        },
    }
}

/// Whether a verdict settles an input for good. A cancelled input was never
/// judged, so `--resume` runs it again (its new record follows the old one).
pub fn is_final(verdict: &str) -> bool {
    verdict != "cancelled"
}

/// Inputs already recorded with a final verdict, as (exact path, input_sha256):
/// what `--resume` skips. The log is verified first and refused with
/// [`AuditError::Invalid`] if it fails, except for a torn last line, which is
/// ignored here and cut away by [`AuditWriter::open`]. A missing file is an
/// empty log. Inputs recorded without a sha256 (unreadable) are run again.
pub fn recorded_inputs(path: &Path) -> Result<HashSet<(Vec<u8>, String)>, AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(source) => {
            return Err(AuditError::Open {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mut inputs = HashSet::new();
    let reader = BufReader::with_capacity(64 << 10, file);
    scan_log(reader, Some(path), |line| {
        let Line::Input(rec) = line else {
            return;
        };
        if let (Some(sha), true, Some(name)) = (
            rec.input_sha256.clone(),
            is_final(&rec.verdict),
            rec.input_path(),
        ) {
            inputs.insert((name, sha));
        }
    })
    .map_err(|e| invalid(path, e))?;
    Ok(inputs)
}

/// Verifies the audit log at `path`: OK, or the first bad line.
pub fn verify(path: &Path) -> Result<VerifySummary, VerifyError> {
    let file = File::open(path).map_err(|source| VerifyError::Io {
        file: Some(path.to_owned()),
        source,
    })?;
    let reader = BufReader::with_capacity(64 << 10, file);
    scan_log(reader, Some(path), |_| {})?.into_summary(Some(path))
}

/// Verifies an audit log held in memory. Pure and bounded: never panics, and
/// allocates at most one line of [`MAX_LINE`] beyond the input.
pub fn verify_bytes(data: &[u8]) -> Result<VerifySummary, VerifyError> {
    verify_bytes_with(data, |_| {})
}

/// [`verify_bytes`], handing each record it accepts to `on_record`.
pub fn verify_bytes_with(
    data: &[u8],
    mut on_record: impl FnMut(&AuditRecord),
) -> Result<VerifySummary, VerifyError> {
    scan_log(data, None, |line| {
        if let Line::Input(rec) = &line {
            on_record(rec);
        }
    })?
    .into_summary(None)
}

/// The first record of the log at `path`, checked as the start of a
/// chain; `None` for an empty log (or one whose only line is torn).
pub fn first_record(path: &Path) -> Result<Option<Line>, AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Open {
        path: path.to_owned(),
        source,
    })?;
    let mut buf = Vec::new();
    BufReader::new(file)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .map_err(|source| AuditError::Read {
            path: path.to_owned(),
            source,
        })?;
    let Some(content) = buf.strip_suffix(b"\n") else {
        return Ok(None);
    };
    Chain::new(Some(path))
        .check(content)
        .map(Some)
        .map_err(|e| invalid(path, e))
}

/// The current time as records carry it.
pub(crate) fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Sets the record's hash from its `prev` and the rest of it, and returns
/// its line (without the newline). One serialization: the record is hashed
/// with `hash` empty, ending `"hash":""}`, and its line is that with the
/// 64 hex digits between the last two quotes.
fn seal<T: Link>(rec: &mut T) -> Vec<u8> {
    rec.hash_mut().clear();
    let mut line = encode(rec);
    let hash = chain_hash(rec.prev(), &[&line]);
    let end = line.len() - 2;
    line.splice(end..end, hash.bytes());
    *rec.hash_mut() = hash;
    line
}

/// The bytes after `"prev":"` in a canonical record: `<prev>","hash":"<hash>"}`.
const TAIL: usize = 64 + r#"","hash":""#.len() + 64 + r#""}"#.len();

/// Checks again a line of a chain verified before, without parsing it:
/// its `prev` is `prev` and its hash covers it. Returns its hash; `None`
/// when it is not so (it changed since, or is not a canonical record).
/// Walking a whole log this way and ending at the hash the verifier found
/// proves the bytes are the ones it verified.
pub(crate) fn relink<'l>(line: &'l [u8], prev: &str) -> Option<&'l str> {
    let body = line.len().checked_sub(TAIL)?;
    let (their_prev, rest) = line[body..].split_at(64);
    let hash = rest.get(r#"","hash":""#.len()..rest.len() - 2)?;
    let hash = std::str::from_utf8(hash).ok()?;
    let linked = their_prev == prev.as_bytes() && rest.starts_with(br#"","hash":""#);
    (linked && hash_of_line(prev, line, hash).as_deref() == Some(hash)).then_some(hash)
}

/// What the hash of a canonical `line` holding a hex `hash` must be: the
/// line with its hash cut out is the record as it was hashed ([`seal`]).
fn hash_of_line(prev: &str, line: &[u8], hash: &str) -> Option<String> {
    let cut = line.len().checked_sub(hash.len() + 2)?;
    let hex = hash.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| chain_hash(prev, &[&line[..cut], b"\"}"]))
}

fn chain_hash(prev: &str, canonical: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    for part in canonical {
        hasher.update(part);
    }
    let mut hex = [0u8; 64];
    // 32 bytes always fill 64 hex digits, which are ASCII.
    hex::encode_to_slice(hasher.finalize(), &mut hex).expect("64 digits for 32 bytes");
    String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
}

fn encode<T: Serialize>(rec: &T) -> Vec<u8> {
    // Serializing strings, integers, options and vectors of them into a Vec
    // has no failure path; a Result here would be untestable noise.
    serde_json::to_vec(rec).expect("a record always serializes")
}

/// Writes a new chain to any writer, e.g. a merged log through a
/// `BufWriter`: no lock, no repair, no sync (the caller owns the file).
pub(crate) struct ChainWriter<W: Write> {
    out: W,
    next_seq: u64,
    last_hash: String,
}

impl<W: Write> ChainWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        ChainWriter {
            out,
            next_seq: 1,
            last_hash: GENESIS.to_owned(),
        }
    }

    /// Gives `line` the next place in the chain and writes it.
    pub(crate) fn push(&mut self, line: &mut Line) -> io::Result<()> {
        let bytes = match line {
            Line::Input(rec) => self.place(rec),
            Line::Job(rec) => self.place(rec),
        };
        self.out.write_all(&bytes)?;
        self.out.write_all(b"\n")
    }

    /// Writes `line`, a record already verified in a chain of its own, at
    /// the next place of this one without parsing it. A canonical record
    /// is `{"seq":N,` … `,"prev":"<64 hex>","hash":"<64 hex>"}`, so only
    /// the number, `prev` and the hash change: the bytes are those [`seal`]
    /// gives (a unit test holds them equal). `None` when `line` is not
    /// shaped so.
    pub(crate) fn push_verified(&mut self, line: &[u8]) -> Option<io::Result<()>> {
        let rest = line.strip_prefix(br#"{"seq":"#)?;
        let digits = rest.iter().position(|&b| b == b',')?;
        let body = rest.get(digits..rest.len().checked_sub(TAIL)?)?;
        let is_seq = digits > 0 && rest[..digits].iter().all(u8::is_ascii_digit);
        if !is_seq || !body.ends_with(br#","prev":""#) {
            return None;
        }
        let mut out = Vec::with_capacity(line.len() + 24);
        out.extend_from_slice(br#"{"seq":"#);
        out.extend_from_slice(self.next_seq.to_string().as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(self.last_hash.as_bytes());
        out.extend_from_slice(br#"","hash":""}"#);
        let hash = chain_hash(&self.last_hash, &[&out]);
        let end = out.len() - 2;
        out.splice(end..end, hash.bytes());
        out.push(b'\n');
        self.next_seq += 1;
        self.last_hash = hash;
        Some(self.out.write_all(&out))
    }

    fn place<T: Link>(&mut self, rec: &mut T) -> Vec<u8> {
        rec.set_position(self.next_seq, &self.last_hash);
        let line = seal(rec);
        self.next_seq += 1;
        rec.hash().clone_into(&mut self.last_hash);
        line
    }

    /// The writer, and what `verify` will say of what was written.
    pub(crate) fn finish(self) -> (W, VerifySummary) {
        let summary = VerifySummary {
            records: self.next_seq - 1,
            last_hash: self.last_hash,
        };
        (self.out, summary)
    }
}

/// What a pass over a log found, a torn last line included.
pub(crate) struct Scan {
    pub(crate) records: u64,
    pub(crate) last_hash: String,
    /// Bytes of complete lines.
    len: u64,
    /// (line, offset) of a last line without its newline.
    pub(crate) torn: Option<(u64, u64)>,
    /// What a merge record at line 1 says the log holds.
    promised: Option<u64>,
}

impl Scan {
    pub(crate) fn into_summary(self, file: Option<&Path>) -> Result<VerifySummary, VerifyError> {
        let file = file.map(Path::to_owned);
        if let Some((line, offset)) = self.torn {
            return Err(VerifyError::TornLine { file, line, offset });
        }
        if let Some(expected) = self.promised.filter(|&n| n != self.records) {
            return Err(VerifyError::Incomplete {
                file,
                expected,
                found: self.records,
            });
        }
        Ok(VerifySummary {
            records: self.records,
            last_hash: self.last_hash,
        })
    }
}

/// Reads a log line by line, checking each record against the chain and
/// handing it to `on_line`. Stops at the first bad line; a torn last line
/// is reported in the result, not as an error, so the caller decides.
pub(crate) fn scan_log<R: BufRead>(
    mut reader: R,
    file: Option<&Path>,
    mut on_line: impl FnMut(Line),
) -> Result<Scan, VerifyError> {
    let mut chain = Chain::new(file);
    let mut len = 0u64;
    let mut buf = Vec::new();
    let mut promised = None;
    let mut torn = None;
    loop {
        buf.clear();
        let line_no = chain.line + 1;
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|source| VerifyError::Io {
                file: file.map(Path::to_owned),
                source,
            })?;
        if n == 0 {
            break;
        }
        let Some(content) = buf.strip_suffix(b"\n") else {
            if buf.len() > MAX_LINE {
                return Err(chain.malformed(line_no, "longer than 1 MiB".to_owned()));
            }
            // Fewer than MAX_LINE + 1 bytes and no newline: the end of the file.
            torn = Some((line_no, len));
            break;
        };
        let line = chain.check(content)?;
        if let (1, Line::Job(head)) = (line_no, &line) {
            promised = head.promised_records();
        }
        on_line(line);
        len += n as u64;
    }
    Ok(Scan {
        records: chain.records,
        last_hash: chain.last_hash,
        len,
        torn,
        promised,
    })
}

impl JobRecord {
    /// For a merge record: the records of the whole merged log, itself included.
    fn promised_records(&self) -> Option<u64> {
        (self.event == MERGE).then(|| {
            self.sources
                .iter()
                .fold(1u64, |n, s| n.saturating_add(s.copied))
        })
    }
}

/// Parses one line: an input's record, or else a record about the batch.
fn parse_line(bytes: &[u8]) -> Result<Line, String> {
    let input_error = match serde_json::from_slice::<AuditRecord>(bytes) {
        Ok(rec) => return Ok(Line::Input(rec)),
        Err(e) => e.to_string(),
    };
    match serde_json::from_slice::<JobRecord>(bytes) {
        Ok(rec) => Ok(Line::Job(rec)),
        // Name the problem of the kind of record the line is meant to be.
        Err(e) if input_error.starts_with("unknown field `event`") => Err(e.to_string()),
        Err(_) => Err(input_error),
    }
}

/// The verifier's state between lines.
struct Chain<'a> {
    file: Option<&'a Path>,
    /// Lines checked so far.
    line: u64,
    /// Records accepted so far: also the seq of the last one.
    records: u64,
    last_hash: String,
}

impl<'a> Chain<'a> {
    fn new(file: Option<&'a Path>) -> Self {
        Chain {
            file,
            line: 0,
            records: 0,
            last_hash: GENESIS.to_owned(),
        }
    }

    /// Checks one line (without its newline) and advances the chain.
    fn check(&mut self, bytes: &[u8]) -> Result<Line, VerifyError> {
        let line = self.line + 1;
        let parsed = parse_line(bytes).map_err(|e| self.malformed(line, shorten_reason(e)))?;
        let (seq, names_exact) = match &parsed {
            Line::Input(rec) => {
                self.check_link(rec, bytes, line)?;
                (rec.seq, input_names_exact(rec))
            }
            Line::Job(rec) => {
                self.check_link(rec, bytes, line)?;
                (rec.seq, job_names_exact(rec))
            }
        };
        if !names_exact {
            return Err(self.malformed(line, "a bytes field does not match its name".to_owned()));
        }
        let expected = self.records + 1;
        if seq != expected {
            return Err(VerifyError::SeqGap {
                file: self.file.map(Path::to_owned),
                line,
                seq,
                expected,
            });
        }
        self.line = line;
        self.records = seq;
        let hash = match &parsed {
            Line::Input(rec) => &rec.hash,
            Line::Job(rec) => &rec.hash,
        };
        self.last_hash.clone_from(hash);
        Ok(parsed)
    }

    /// The bytes, the hash and the link to the line before.
    fn check_link<T: Link>(&self, rec: &T, bytes: &[u8], line: u64) -> Result<(), VerifyError> {
        let (file, seq) = (self.file.map(Path::to_owned), rec.seq());
        // The bytes are exactly the record's serialization (whitespace,
        // escapes, key order: no edit at all goes unnoticed), so the hash
        // can be checked over them; it covers the meaning.
        if encode(rec) != bytes {
            return Err(VerifyError::NotCanonical { file, line, seq });
        }
        if hash_of_line(rec.prev(), bytes, rec.hash()).as_deref() != Some(rec.hash()) {
            return Err(VerifyError::HashMismatch { file, line, seq });
        }
        if rec.prev() != self.last_hash {
            return Err(VerifyError::ChainBroken { file, line, seq });
        }
        Ok(())
    }

    fn malformed(&self, line: u64, reason: String) -> VerifyError {
        VerifyError::Malformed {
            file: self.file.map(Path::to_owned),
            line,
            reason,
        }
    }
}

/// A bytes field stands for exactly one name: lowercase hex of a path that
/// is not UTF-8, next to that path escaped.
fn input_names_exact(rec: &AuditRecord) -> bool {
    let output = rec.output.as_deref().unwrap_or("");
    rec.input_path().is_some()
        && name_of(output, rec.output_bytes.as_deref()).is_some()
        && (rec.output.is_some() || rec.output_bytes.is_none())
}

fn job_names_exact(rec: &JobRecord) -> bool {
    rec.job.roots.iter().all(|r| r.bytes().is_some())
}

/// Shortens a parser message: drops serde's list of expected field names
/// and caps what is left, since it may quote hostile bytes.
fn shorten_reason(mut s: String) -> String {
    if let Some(at) = s.find(", expected one of") {
        let position = s.rfind(" at line ").filter(|&p| p > at);
        let tail = position.map(|p| s[p..].to_owned()).unwrap_or_default();
        s.truncate(at);
        s.push_str(&tail);
    }
    if s.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, verdict: &str) -> AuditRecord {
        AuditRecord {
            input: format!("in/{n}.png"),
            input_sha256: Some(format!("{n:064x}")),
            plugin: "plugins/echo".to_owned(),
            plugin_sha256: "ab".repeat(32),
            policy: "strict".to_owned(),
            policy_sha256: "cd".repeat(32),
            worker_pid: Some(1000 + n as u32),
            generation: Some(1),
            verdict: verdict.to_owned(),
            detail: format!("job {n}"),
            attempt: 1,
            wall_ms: 12,
            cpu_ms: 10,
            max_rss_kib: 2048,
            ..AuditRecord::default()
        }
    }

    /// A log of `n` "ok" records in a fresh directory.
    fn write_log(n: u64) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut writer = AuditWriter::open(&path).unwrap();
        for i in 1..=n {
            writer.append(record(i, "ok")).unwrap();
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<Vec<u8>> {
        let data = std::fs::read(path).unwrap();
        data.split_inclusive(|&b| b == b'\n')
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn log_bytes(n: u64) -> Vec<u8> {
        let (_dir, path) = write_log(n);
        std::fs::read(path).unwrap()
    }

    #[test]
    fn test_verify_five_records_ok() {
        let (_dir, path) = write_log(5);

        let summary = verify(&path).unwrap();

        assert_eq!(summary.records, 5);
        assert_eq!(summary.last_hash.len(), 64);
        assert_ne!(summary.last_hash, GENESIS);
    }

    #[test]
    fn test_verify_empty_log_ok_at_genesis() {
        let summary = verify_bytes(b"").unwrap();

        assert_eq!(
            summary,
            VerifySummary {
                records: 0,
                last_hash: GENESIS.to_owned()
            }
        );
    }

    #[test]
    fn test_append_new_log_fills_seq_time_prev_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = AuditWriter::open(&dir.path().join("a.jsonl")).unwrap();

        let first = writer.append(record(1, "ok")).unwrap();
        let second = writer.append(record(2, "crashed")).unwrap();

        assert_eq!((first.seq, second.seq, writer.next_seq()), (1, 2, 3));
        assert_eq!(first.prev, GENESIS);
        assert_eq!(second.prev, first.hash);
        assert_eq!(writer.last_hash(), second.hash);
        assert_eq!(first.time.len(), "2026-11-30T03:04:05.123Z".len());
        assert!(first.time.ends_with('Z'), "{}", first.time);
    }

    #[test]
    fn test_open_existing_log_continues_chain() {
        let (_dir, path) = write_log(2);

        let rec = AuditWriter::open(&path)
            .unwrap()
            .append(record(3, "ok"))
            .unwrap();

        assert_eq!(rec.seq, 3);
        assert_eq!(verify(&path).unwrap().records, 3);
    }

    #[test]
    fn test_verify_byte_flipped_in_record_3_names_record_3() {
        let (_dir, path) = write_log(5);
        let mut data = std::fs::read(&path).unwrap();
        let at = find(&data, b"job 3");
        data[at] = b'J';
        std::fs::write(&path, &data).unwrap();

        let err = verify(&path).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::HashMismatch {
                    line: 3,
                    seq: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains("a.jsonl: record 3 (line 3) was edited"),
            "{message}"
        );
    }

    #[test]
    fn test_verify_hash_field_edited_reports_hash_mismatch() {
        let mut data = log_bytes(3);
        let at = find(&data, b"\"hash\":\"") + 8;
        data[at] = if data[at] == b'0' { b'1' } else { b'0' };

        let err = verify_bytes(&data).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::HashMismatch {
                    line: 1,
                    seq: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_verify_line_3_deleted_reports_chain_broken_at_record_4() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        lines.remove(2);
        std::fs::write(&path, lines.concat()).unwrap();

        let err = verify(&path).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::ChainBroken {
                    line: 3,
                    seq: 4,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("record 4 (line 3)"), "{err}");
    }

    #[test]
    fn test_verify_last_line_deleted_is_undetectable_without_anchor() {
        // Truncating the tail leaves a valid prefix: only a last_hash kept
        // elsewhere catches it. This pins the documented limit.
        let (_dir, path) = write_log(5);
        let full = verify(&path).unwrap();
        let mut lines = lines(&path);
        lines.pop();
        std::fs::write(&path, lines.concat()).unwrap();

        let cut = verify(&path).unwrap();

        assert_eq!(cut.records, 4);
        assert_ne!(cut.last_hash, full.last_hash);
    }

    #[test]
    fn test_verify_lines_2_and_3_swapped_reports_chain_broken_at_line_2() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        lines.swap(1, 2);
        std::fs::write(&path, lines.concat()).unwrap();

        let err = verify(&path).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::ChainBroken {
                    line: 2,
                    seq: 3,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_verify_copied_line_inserted_reports_chain_broken() {
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        let copy = lines[1].clone();
        lines.insert(2, copy);
        std::fs::write(&path, lines.concat()).unwrap();

        let err = verify(&path).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::ChainBroken {
                    line: 3,
                    seq: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_verify_well_forged_line_inserted_reports_chain_broken_after_it() {
        // The forger chains a new record 3 to record 2 with a correct hash;
        // the original record 3 then no longer chains.
        let (_dir, path) = write_log(5);
        let mut lines = lines(&path);
        let mut forged: AuditRecord = serde_json::from_slice(&lines[1]).unwrap();
        forged.prev = forged.hash.clone();
        forged.seq = 3;
        forged.detail = "forged".to_owned();
        let mut forged_line = seal(&mut forged);
        forged_line.push(b'\n');
        lines.insert(2, forged_line);
        std::fs::write(&path, lines.concat()).unwrap();

        let err = verify(&path).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::ChainBroken {
                    line: 4,
                    seq: 3,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_verify_whitespace_added_reports_not_canonical() {
        let mut data = log_bytes(3);
        let second_line = find(&data, b"\n{\"seq\":2") + 1;
        data.insert(second_line + 1, b' ');

        let err = verify_bytes(&data).unwrap_err();

        assert!(
            matches!(
                err,
                VerifyError::NotCanonical {
                    line: 2,
                    seq: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn test_verify_unknown_field_reports_malformed() {
        let data = log_bytes(2);
        let data = String::from_utf8(data)
            .unwrap()
            .replacen("\"notes\"", "\"nopes\"", 1);

        let err = verify_bytes(data.as_bytes()).unwrap_err();

        assert!(
            matches!(err, VerifyError::Malformed { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn test_verify_torn_last_line_reports_torn_line() {
        let mut data = log_bytes(3);
        let len = data.len() as u64;
        data.extend_from_slice(b"{\"seq\":4,\"ti");

        let err = verify_bytes(&data).unwrap_err();

        assert!(
            matches!(err, VerifyError::TornLine { line: 4, offset, .. } if offset == len),
            "{err:?}"
        );
    }

    #[test]
    fn test_open_torn_last_line_truncates_and_appends() {
        let (_dir, path) = write_log(3);
        let mut data = std::fs::read(&path).unwrap();
        data.extend_from_slice(b"{\"seq\":4,\"ti");
        std::fs::write(&path, &data).unwrap();

        let mut writer = AuditWriter::open(&path).unwrap();
        let rec = writer.append(record(4, "ok")).unwrap();
        drop(writer);

        assert_eq!(rec.seq, 4);
        assert_eq!(verify(&path).unwrap().records, 4);
    }

    #[test]
    fn test_open_edited_log_is_refused_as_invalid() {
        let (_dir, path) = write_log(3);
        let mut lines = lines(&path);
        lines.swap(0, 1);
        std::fs::write(&path, lines.concat()).unwrap();

        let err = AuditWriter::open(&path).unwrap_err();

        assert!(
            matches!(err, AuditError::Invalid { line: 1, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("move it aside"), "{err}");
    }

    #[test]
    fn test_open_log_held_by_another_writer_is_locked() {
        let (_dir, path) = write_log(1);
        let _first = AuditWriter::open(&path).unwrap();

        let err = AuditWriter::open(&path).unwrap_err();

        assert!(matches!(err, AuditError::Locked { .. }), "{err:?}");
    }

    #[test]
    fn test_open_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();

        let err = AuditWriter::open(dir.path()).unwrap_err();

        assert!(
            matches!(err, AuditError::Open { .. } | AuditError::NotAFile { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn test_append_unknown_verdict_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = AuditWriter::open(&dir.path().join("a.jsonl")).unwrap();

        let err = writer.append(record(1, "Crashed")).unwrap_err();

        assert!(matches!(err, AuditError::UnknownVerdict { .. }), "{err:?}");
        assert_eq!(writer.next_seq(), 1);
    }

    #[test]
    fn test_append_all_three_records_chain_like_three_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut writer = AuditWriter::open(&path).unwrap();
        let mut recs: Vec<AuditRecord> = (1..=3).map(|i| record(i, "ok")).collect();

        writer.append_all(&mut recs).unwrap();

        assert_eq!(recs[2].seq, 3);
        assert_eq!(recs[1].prev, recs[0].hash);
        assert_eq!(writer.last_hash(), recs[2].hash);
        assert_eq!(writer.next_seq(), 4);
        assert_eq!(verify(&path).unwrap().records, 3);
    }

    #[test]
    fn test_append_all_with_one_oversized_record_writes_none_of_them() {
        let (_dir, path) = write_log(1);
        let mut writer = AuditWriter::open(&path).unwrap();
        let mut big = record(3, "plugin_error");
        big.detail = "x".repeat(MAX_LINE);
        let mut recs = vec![record(2, "ok"), big];

        let err = writer.append_all(&mut recs).unwrap_err();

        assert!(matches!(err, AuditError::RecordTooLarge { .. }), "{err:?}");
        assert_eq!(writer.next_seq(), 2);
        writer.append(record(2, "ok")).unwrap();
        assert_eq!(verify(&path).unwrap().records, 2);
    }

    #[test]
    fn test_append_all_empty_writes_nothing() {
        let (_dir, path) = write_log(2);
        let before = std::fs::read(&path).unwrap();
        let mut writer = AuditWriter::open(&path).unwrap();

        writer.append_all(&mut []).unwrap();
        writer.sync().unwrap();

        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(writer.next_seq(), 3);
    }

    #[test]
    fn test_append_oversized_record_is_refused_and_log_stays_valid() {
        let (_dir, path) = write_log(1);
        let mut writer = AuditWriter::open(&path).unwrap();
        let mut big = record(2, "plugin_error");
        big.detail = "x".repeat(MAX_LINE);

        let err = writer.append(big).unwrap_err();
        let next = writer.append(record(2, "ok")).unwrap();
        drop(writer);

        assert!(matches!(err, AuditError::RecordTooLarge { .. }), "{err:?}");
        assert_eq!(next.seq, 2);
        assert_eq!(verify(&path).unwrap().records, 2);
    }

    #[test]
    fn test_append_with_sync_writes_durable_valid_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut writer = AuditWriter::open(&path).unwrap();
        writer.set_sync(true);

        writer.append(record(1, "ok")).unwrap();
        writer.append(record(2, "ok")).unwrap();
        drop(writer);

        assert_eq!(verify(&path).unwrap().records, 2);
    }

    #[test]
    fn test_recorded_inputs_mixed_verdicts_returns_final_inputs_with_sha() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut writer = AuditWriter::open(&path).unwrap();
        writer.append(record(1, "ok")).unwrap();
        writer.append(record(2, "cancelled")).unwrap();
        writer.append(record(3, "violation")).unwrap();
        let mut unreadable = record(4, "input_error");
        unreadable.input_sha256 = None;
        writer.append(unreadable).unwrap();
        drop(writer);

        let inputs = recorded_inputs(&path).unwrap();

        let expected: HashSet<_> = [1u64, 3]
            .iter()
            .map(|n| (format!("in/{n}.png").into_bytes(), format!("{n:064x}")))
            .collect();
        assert_eq!(inputs, expected);
    }

    #[test]
    fn test_names_differing_only_in_invalid_utf8_get_distinct_exact_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut writer = AuditWriter::open(&path).unwrap();
        for (n, name) in [
            (1, &b"in/bad\xff\xfename.txt"[..]),
            (2, b"in/bad\xff\xfdname.txt"),
        ] {
            let mut rec = record(n, "ok");
            rec.set_input(name);
            rec.set_output(&[b"out/".as_slice(), &name[3..]].concat());
            let written = writer.append(rec).unwrap();
            assert_eq!(
                written.input,
                format!("in/bad\\xff\\xf{}name.txt", ["e", "d"][n as usize - 1])
            );
        }
        writer.append(record(3, "ok")).unwrap();
        drop(writer);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(r#""input_bytes":"696e2f626164fffe6e616d652e747874""#),
            "{text}"
        );
        assert_eq!(
            text.matches("input_bytes").count(),
            2,
            "UTF-8 names have none"
        );
        assert_eq!(verify(&path).unwrap().records, 3);
        let inputs = recorded_inputs(&path).unwrap();
        assert!(inputs.contains(&(b"in/bad\xff\xfename.txt".to_vec(), format!("{:064x}", 1))));
        assert!(inputs.contains(&(b"in/bad\xff\xfdname.txt".to_vec(), format!("{:064x}", 2))));
        assert!(inputs.contains(&(b"in/3.png".to_vec(), format!("{:064x}", 3))));
    }

    #[test]
    fn test_verify_bytes_field_that_does_not_match_its_name_is_malformed() {
        for (input, bytes) in [
            ("in/x", "696e2f78"),              // UTF-8: no bytes field
            ("in/bad\\xff", "696e2f626164fe"), // another name
            ("in/bad\\xff", "696E2F626164FF"), // not lowercase
            ("in/bad\\xff", "zz"),
        ] {
            let mut rec = record(1, "ok");
            rec.input = input.to_owned();
            rec.input_bytes = Some(bytes.to_owned());
            rec.prev = GENESIS.to_owned();
            let mut line = seal(&mut rec);
            line.push(b'\n');
            let err = verify_bytes(&line).unwrap_err();
            assert!(
                matches!(err, VerifyError::Malformed { .. }),
                "{input} {bytes}: {err}"
            );
        }
    }

    #[test]
    fn test_recorded_inputs_torn_last_line_ignores_it() {
        let (_dir, path) = write_log(2);
        let mut data = std::fs::read(&path).unwrap();
        data.extend_from_slice(b"{\"seq\":3");
        std::fs::write(&path, &data).unwrap();

        let inputs = recorded_inputs(&path).unwrap();

        assert_eq!(inputs.len(), 2);
    }

    #[test]
    fn test_recorded_inputs_missing_file_returns_empty() {
        let dir = tempfile::tempdir().unwrap();

        let inputs = recorded_inputs(&dir.path().join("none.jsonl")).unwrap();

        assert!(inputs.is_empty());
    }

    #[test]
    fn test_recorded_inputs_edited_log_is_refused() {
        let (_dir, path) = write_log(3);
        let mut lines = lines(&path);
        lines.remove(0);
        std::fs::write(&path, lines.concat()).unwrap();

        let err = recorded_inputs(&path).unwrap_err();

        assert!(
            matches!(err, AuditError::Invalid { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn test_verify_bytes_garbage_is_malformed() {
        let garbage: [&[u8]; 6] = [
            b"\n",
            b"{}\n",
            b"null\n",
            b"\xff\xfe\x00garbage\n",
            b"{\"seq\":1}\n",
            b"[1,2,3]\nmore\n",
        ];

        let results: Vec<_> = garbage.iter().map(|g| verify_bytes(g)).collect();

        for (g, result) in garbage.iter().zip(results) {
            assert!(
                matches!(result, Err(VerifyError::Malformed { line: 1, .. })),
                "{g:?}: {result:?}"
            );
        }
    }

    #[test]
    fn test_verify_bytes_huge_line_is_malformed_not_torn() {
        let mut data = vec![b'a'; 3 * MAX_LINE];

        let unterminated = verify_bytes(&data).unwrap_err();
        data.push(b'\n');
        let terminated = verify_bytes(&data).unwrap_err();

        assert!(
            matches!(unterminated, VerifyError::Malformed { line: 1, .. }),
            "{unterminated:?}"
        );
        assert!(
            matches!(terminated, VerifyError::Malformed { line: 1, .. }),
            "{terminated:?}"
        );
    }

    #[test]
    fn test_verify_bytes_long_unknown_key_keeps_reason_short() {
        let data = format!("{{\"{}\":1}}\n", "k".repeat(10_000));

        let err = verify_bytes(data.as_bytes()).unwrap_err();

        assert!(err.to_string().len() < 2 * MAX_REASON + 200, "{err}");
    }

    /// Every single-byte change of a valid log is detected: the verifier
    /// compares bytes as well as hashes, so not even whitespace slips by.
    #[test]
    fn test_verify_bytes_random_single_byte_mutations_all_detected() {
        let original = log_bytes(4);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // Knuth's MMIX LCG: deterministic, no crate needed.
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let mut undetected = Vec::new();
        for _ in 0..3000 {
            let at = next() as usize % original.len();
            let byte = next() as u8;
            if byte == original[at] {
                continue;
            }
            let mut data = original.clone();
            data[at] = byte;
            if verify_bytes(&data).is_ok() {
                undetected.push((at, byte));
            }
        }
        assert!(
            undetected.is_empty(),
            "undetected mutations: {undetected:?}"
        );
    }

    fn shard_start() -> JobRecord {
        JobRecord {
            event: SHARD_START.to_owned(),
            job: Job {
                shards: 2,
                roots: vec![Root::new(b"in/bad\xff")],
                routes: Vec::new(),
            },
            shard: Some(1),
            ..JobRecord::default()
        }
    }

    #[test]
    fn test_job_records_chain_with_input_records_and_resume_skips_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut writer = AuditWriter::open(&path).unwrap();
        writer.append_job(shard_start()).unwrap();
        writer.append(record(2, "ok")).unwrap();
        drop(writer);

        let first = first_record(&path).unwrap();

        assert_eq!(verify(&path).unwrap().records, 2);
        assert_eq!(recorded_inputs(&path).unwrap().len(), 1);
        let Some(Line::Job(head)) = first else {
            panic!("{first:?}");
        };
        assert_eq!(head.job.roots[0].bytes().unwrap(), b"in/bad\xff");
        assert_eq!(head.job.roots[0].path, "in/bad\\xff");
    }

    #[test]
    fn test_verify_malformed_job_record_names_its_own_problem() {
        let mut rec = shard_start();
        rec.prev = GENESIS.to_owned();
        let line = String::from_utf8(seal(&mut rec)).unwrap();
        let line = line.replacen("\"shards\"", "\"shardz\"", 1) + "\n";

        let err = verify_bytes(line.as_bytes()).unwrap_err();

        assert!(err.to_string().contains("shardz"), "{err}");
    }

    #[test]
    fn test_push_verified_gives_the_bytes_of_seal() {
        let mut rec = record(7, "ok");
        rec.set_input(b"in/bad\xff\"name\\");
        rec.set_output(b"out/x");
        rec.notes = vec!["weakened: \"quotes\",\"prev\":".to_owned()];
        rec.set_position(41, &"9".repeat(64));
        let original = seal(&mut rec);
        assert_eq!(relink(&original, &"9".repeat(64)), Some(rec.hash.as_str()));
        assert_eq!(relink(&original, &"8".repeat(64)), None);
        let mut by_parse = ChainWriter::new(Vec::new());
        let mut by_bytes = ChainWriter::new(Vec::new());
        by_parse.push(&mut Line::Input(record(1, "ok"))).unwrap();
        by_bytes.push(&mut Line::Input(record(1, "ok"))).unwrap();

        by_parse.push(&mut Line::Input(rec)).unwrap();
        by_bytes.push_verified(&original).unwrap().unwrap();

        let (parsed, summary) = by_parse.finish();
        let (bytes, same) = by_bytes.finish();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&parsed)
        );
        assert_eq!(
            (summary.clone(), verify_bytes(&bytes).unwrap()),
            (same, summary)
        );
    }

    #[test]
    fn test_push_verified_refuses_lines_not_shaped_as_records() {
        let mut chain = ChainWriter::new(Vec::new());
        for line in [
            &b""[..],
            b"{}",
            b"{\"seq\":,\"prev\":\"",
            b"{\"seq\":1x,",
            &[b'{'; 200],
        ] {
            assert!(chain.push_verified(line).is_none(), "{line:?}");
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    }
}
