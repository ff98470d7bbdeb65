//! Verifying a log: the chain walked line by line, the summary, the
//! inputs `--resume` skips.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::chain::encode;
use super::writer::log_name;
use super::{
    hash_of_line, invalid, name_of, AuditError, AuditRecord, JobRecord, Line, Link, GENESIS,
    MAX_LINE, MAX_REASON, MERGE,
};

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

/// Whether a verdict settles an input for good. A cancelled input was never
/// judged, so `--resume` runs it again (its new record follows the old one).
pub fn is_final(verdict: &str) -> bool {
    verdict != "cancelled"
}

/// Inputs already recorded with a final verdict, as (exact path, input_sha256):
/// what `--resume` skips. The log is verified first and refused with
/// [`AuditError::Invalid`] if it fails, except for a torn last line, which is
/// ignored here and cut away by [`AuditWriter::open`](super::AuditWriter::open). A missing file is an
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

/// What a pass over a log found, a torn last line included.
pub(crate) struct Scan {
    pub(crate) records: u64,
    pub(crate) last_hash: String,
    /// Bytes of complete lines.
    pub(super) len: u64,
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
pub(super) fn parse_line(bytes: &[u8]) -> Result<Line, String> {
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
pub(super) struct Chain<'a> {
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
pub(super) fn input_names_exact(rec: &AuditRecord) -> bool {
    let output = rec.output.as_deref().unwrap_or("");
    rec.input_path().is_some()
        && name_of(output, rec.output_bytes.as_deref()).is_some()
        && (rec.output.is_some() || rec.output_bytes.is_none())
}

pub(super) fn job_names_exact(rec: &JobRecord) -> bool {
    rec.job.roots.iter().all(|r| r.bytes().is_some())
}

/// Shortens a parser message: drops serde's list of expected field names
/// and caps what is left, since it may quote hostile bytes.
pub(super) fn shorten_reason(mut s: String) -> String {
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
