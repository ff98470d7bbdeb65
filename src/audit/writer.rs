//! Appending to a log: the exclusive lock, the torn tail cut away, one
//! write per record or group, syncing when asked.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{now, scan_log, Link};
use super::{seal, AuditRecord, JobRecord, VerifyError, MAX_LINE, VERDICTS};

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
        /// The log.
        path: PathBuf,
    },
    #[error(
        "audit log {} is in use by another plugwarden process: wait for it to finish or use another --audit file",
        .path.display()
    )]
    /// Another process holds the log.
    Locked {
        /// The log.
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
        /// The log.
        path: PathBuf,
    },
    #[error("audit record for {input} is {len} bytes, over the limit of {MAX_LINE}: shorten its detail or notes")]
    /// A record longer than [`MAX_LINE`].
    RecordTooLarge {
        /// The input the record is for.
        input: String,
        /// The record's size, bytes.
        len: usize,
    },
    #[error("unknown verdict {verdict:?} for {input}: expected one of {}", VERDICTS.join(", "))]
    /// A verdict that is none of [`VERDICTS`].
    UnknownVerdict {
        /// The input the record is for.
        input: String,
        /// The verdict given.
        verdict: String,
    },
}

pub(super) fn log_name(file: &Option<PathBuf>) -> String {
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

    /// Hash of the last record written or found ([`GENESIS`](super::GENESIS) when empty).
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

pub(super) fn lock(file: File, path: &Path) -> Result<Flock<File>, AuditError> {
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

pub(super) fn invalid(path: &Path, e: VerifyError) -> AuditError {
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
