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

use serde::{Deserialize, Serialize};

mod chain;
mod verify;
mod writer;

use chain::{hash_of_line, seal};
pub(crate) use chain::{now, relink, ChainWriter};
pub(crate) use verify::scan_log;
pub use verify::{
    first_record, is_final, recorded_inputs, verify, verify_bytes, verify_bytes_with, VerifyError,
    VerifySummary,
};
use writer::invalid;
pub use writer::{AuditError, AuditWriter};

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

#[cfg(test)]
mod tests;
