//! Outputs too large to hold: a job's output handed over part by part as
//! it arrives, and written to a file as it goes.
//!
//! By default a worker gathers a job's output in memory
//! ([`crate::worker::JobOutcome::output`]), bounded by the policy's
//! `limits.output`. Some outputs grow with the input — `plugwarden
//! sanitize` gets 6 MB of pixels per page of a PDF — and gathering them
//! would let one long document exhaust the host, outside every wall the
//! sandbox puts around the plugin. A task can carry an [`OutputSink`]
//! instead: the worker hands it each part as it comes off the pipe or out
//! of the arena, the sink checks and writes it, and the host holds one
//! part at a time.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::verdict::Verdict;

/// Takes a job's output as it arrives, instead of the worker gathering it.
pub trait OutputSink: Send {
    /// The next bytes of the output, in order; where one part ends means
    /// nothing. An error ends the job with that verdict, and the worker is
    /// killed (it is still sending).
    fn write(&mut self, bytes: &[u8]) -> Result<(), Verdict>;
    /// The plugin has answered `done`: check the whole and finish it, or
    /// give the job's verdict.
    fn end(&mut self) -> Result<(), Verdict>;
    /// Forget everything written: the job runs again from the start.
    fn restart(&mut self);
    /// After a successful [`OutputSink::end`]: the finished file.
    fn into_saved(self: Box<Self>) -> Option<SavedOutput>;
}

/// A finished output on disk, not yet in its place.
#[derive(Debug)]
pub struct SavedOutput {
    /// The complete file, flushed and synced, under a temporary name in
    /// the output directory.
    pub file: tempfile::NamedTempFile,
    /// Where it goes, relative to the output directory.
    pub name: PathBuf,
    pub sha256: String,
    /// For the verdict line and the audit record's `detail` ("" if nothing
    /// needs saying).
    pub detail: String,
    /// For the audit record's `notes`.
    pub notes: Vec<String>,
}

/// A temporary file in the output directory that hashes what is written
/// to it: the output's sha256 without reading it back.
pub struct HashedFile {
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
}

impl HashedFile {
    pub fn create(dir: &Path) -> io::Result<HashedFile> {
        let file = tempfile::Builder::new()
            .prefix(".plugwarden-")
            .tempfile_in(dir)?;
        Ok(HashedFile {
            file: BufWriter::with_capacity(256 << 10, file),
            hasher: Sha256::new(),
        })
    }

    /// Flushes and syncs the file; returns it and the hex sha256 of its bytes.
    pub fn finish(self) -> io::Result<(tempfile::NamedTempFile, String)> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.as_file().sync_data()?;
        Ok((file, hex::encode(self.hasher.finalize())))
    }
}

impl Write for HashedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
