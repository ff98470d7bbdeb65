//! Job outputs that do not stay whole in host memory.
//!
//! A worker hands each part of a job's output to an [`OutputSink`] as it
//! comes off the pipe or out of the arena, and the host holds one part at
//! a time. Unless the caller brings its own sink, the worker uses an
//! `OutputBuf`: the bytes in memory (bounded by the policy's
//! `limits.output`) and, when a [`Spill`] is attached, past
//! [`Spill::over`] a [`HashedFile`] instead, so `run` and `call` never hold
//! a big output whole. A pool task can bring its own sink: `plugwarden
//! sanitize` gets 6 MB of pixels per page of a PDF and appends each page
//! to the safe PDF as it arrives, so one long document cannot exhaust the
//! host, outside every wall the sandbox puts around the plugin. Either way
//! an output that ended on disk comes back as a [`SavedOutput`]
//! (`JobOutcome::saved`).

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::arena::Arena;
use crate::verdict::Verdict;

/// Outputs up to this size stay in memory when a spill is attached.
pub const SPILL_OVER: u64 = 8 << 20;
/// Bytes copied out of the arena at a time for a sink that does not hold
/// the output.
const ARENA_CHUNK: usize = 256 << 10;

/// Takes a job's output as it arrives.
pub trait OutputSink: Send {
    /// The next bytes of the output, in order; where one part ends means
    /// nothing. An error ends the job with that verdict, and the worker is
    /// killed (it is still sending).
    fn write(&mut self, bytes: &[u8]) -> Result<(), Verdict>;

    /// A part's payload, owned: a sink that keeps the bytes may keep these
    /// without a copy.
    fn write_owned(&mut self, bytes: Vec<u8>) -> Result<(), Verdict> {
        self.write(&bytes)
    }

    /// A part the plugin left in the arena (`len` bytes at `offset`,
    /// already checked to lie in its output region); false when out of
    /// bounds. By default copied out a chunk at a time, each chunk's pages
    /// released from the host's view: a snapshot the plugin can no longer
    /// change, never parsed in the shared mapping.
    fn write_arena(&mut self, arena: &Arena, offset: usize, len: usize) -> Result<bool, Verdict> {
        copy_from_arena(self, arena, offset, len)
    }

    /// The plugin has answered `done`: check the whole and finish it, or
    /// give the job's verdict.
    fn end(&mut self) -> Result<(), Verdict>;

    /// Forget everything written: the job runs again from the start.
    fn restart(&mut self);

    /// After a successful [`OutputSink::end`]: the output, when it went to
    /// a file (or only into its hash) instead of memory.
    fn take_saved(&mut self) -> Option<SavedOutput>;

    /// The job's cancel flag, given before the first byte: a sink that
    /// runs jobs of its own in [`OutputSink::end`] (a later stage of a
    /// pipeline) passes it on, so an interrupted run ends them too.
    fn set_cancel(&mut self, _cancel: Arc<AtomicBool>) {}

    /// After [`OutputSink::end`], whatever it returned: what the audit
    /// record should also say about the job (the stages the sink ran).
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}

fn copy_from_arena<S: OutputSink + ?Sized>(
    sink: &mut S,
    arena: &Arena,
    offset: usize,
    len: usize,
) -> Result<bool, Verdict> {
    let end = offset.saturating_add(len);
    let mut chunk = Vec::with_capacity(ARENA_CHUNK.min(len));
    for at in (offset..end).step_by(ARENA_CHUNK) {
        let n = ARENA_CHUNK.min(end - at);
        chunk.clear();
        if !arena.read_into(at, n, &mut chunk) {
            return Ok(false);
        }
        arena.release(at, n);
        sink.write(&chunk)?;
    }
    Ok(true)
}

/// A finished output the host did not hold, not yet in its place.
#[derive(Debug)]
pub struct SavedOutput {
    /// The complete file, flushed but not synced, under a temporary name in
    /// its directory (the output directory when it is to be renamed into
    /// place); `None` when there was nowhere to keep it and only its hash
    /// was taken.
    pub file: Option<tempfile::NamedTempFile>,
    /// Its size, bytes.
    pub len: u64,
    /// Its sha256, lowercase hex.
    pub sha256: String,
    /// Where it goes, relative to the output directory, when the sink
    /// names it (else under the input's name).
    pub name: Option<PathBuf>,
    /// For the verdict line and the audit record's `detail` ("" if nothing
    /// needs saying).
    pub detail: String,
    /// For the audit record's `notes`.
    pub notes: Vec<String>,
}

/// A temporary file that hashes what is written to it (the output's
/// sha256 without reading it back), or with no directory only the hash.
pub struct HashedFile {
    file: Option<BufWriter<tempfile::NamedTempFile>>,
    hasher: Sha256,
    len: u64,
}

impl HashedFile {
    /// A new temporary file in `dir` (named `.plugwarden-*`, so a crash
    /// leaves it recognisable); with `None`, nothing but the hash is kept.
    pub fn create(dir: Option<&Path>) -> io::Result<HashedFile> {
        let file = match dir {
            Some(dir) => Some(BufWriter::with_capacity(
                256 << 10,
                tempfile::Builder::new()
                    .prefix(".plugwarden-")
                    .tempfile_in(dir)?,
            )),
            None => None,
        };
        Ok(HashedFile {
            file,
            hasher: Sha256::new(),
            len: 0,
        })
    }

    /// Flushes the file (not synced: whoever puts it in place makes it
    /// durable, a group of outputs at a time); the output as saved (no name,
    /// detail or notes yet).
    pub fn finish(self) -> io::Result<SavedOutput> {
        let file = match self.file {
            Some(w) => Some(w.into_inner().map_err(|e| e.into_error())?),
            None => None,
        };
        Ok(SavedOutput {
            file,
            len: self.len,
            sha256: hex::encode(self.hasher.finalize()),
            name: None,
            detail: String::new(),
            notes: Vec::new(),
        })
    }
}

impl Write for HashedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.file {
            Some(f) => f.write(buf)?,
            None => buf.len(),
        };
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// Where an output goes once it passes `over` bytes, so the host never
/// holds a big output whole: a temporary file in `dir` (`run --out`: the
/// output directory, so the output is renamed into place; `call`: the temp
/// directory), or, without `dir`, nowhere but its sha256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spill {
    /// Outputs larger than this many bytes spill.
    pub over: u64,
    /// Where to; `None`: only the hash is kept.
    pub dir: Option<PathBuf>,
}

/// The sink a worker uses when the caller brings none: the output in
/// memory, and past the spill's threshold in a [`HashedFile`] instead.
pub(crate) struct OutputBuf {
    bytes: Vec<u8>,
    spill: Option<Spill>,
    /// Past the threshold: everything so far, and the rest as it comes.
    file: Option<HashedFile>,
    saved: Option<SavedOutput>,
}

impl OutputBuf {
    pub(crate) fn new(spill: Option<Spill>) -> OutputBuf {
        OutputBuf {
            bytes: Vec::new(),
            spill,
            file: None,
            saved: None,
        }
    }

    /// The output held in memory (empty when it went to a file).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Whether `more` bytes still fit in memory.
    fn holds(&self, more: usize) -> bool {
        self.file.is_none()
            && self
                .spill
                .as_ref()
                .is_none_or(|s| self.bytes.len().saturating_add(more) as u64 <= s.over)
    }

    /// Writes `bytes` to the spill file, created on first use with what
    /// was held so far.
    fn spill(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        if self.file.is_none() {
            let dir = self.spill.as_ref().and_then(|s| s.dir.as_deref());
            let mut file = HashedFile::create(dir).map_err(|e| self.failed(&e))?;
            let held = std::mem::take(&mut self.bytes);
            file.write_all(&held).map_err(|e| self.failed(&e))?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("created above");
        let written = file.write_all(bytes);
        written.map_err(|e| self.failed(&e))
    }

    fn failed(&self, e: &io::Error) -> Verdict {
        let dir = self.spill.as_ref().and_then(|s| s.dir.as_deref());
        Verdict::SetupError(format!(
            "cannot keep the output in {}: {e}",
            crate::escape::name(dir.unwrap_or(Path::new("")))
        ))
    }
}

impl OutputSink for OutputBuf {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        if self.holds(bytes.len()) {
            self.bytes.extend_from_slice(bytes);
            return Ok(());
        }
        self.spill(bytes)
    }

    fn write_owned(&mut self, bytes: Vec<u8>) -> Result<(), Verdict> {
        if self.bytes.is_empty() && self.holds(bytes.len()) {
            self.bytes = bytes;
            return Ok(());
        }
        self.write(&bytes)
    }

    fn write_arena(&mut self, arena: &Arena, offset: usize, len: usize) -> Result<bool, Verdict> {
        if self.holds(len) {
            // One copy, straight into the output.
            return Ok(arena.read_into(offset, len, &mut self.bytes));
        }
        copy_from_arena(self, arena, offset, len)
    }

    fn end(&mut self) -> Result<(), Verdict> {
        if let Some(file) = self.file.take() {
            self.saved = Some(file.finish().map_err(|e| self.failed(&e))?);
        }
        Ok(())
    }

    fn restart(&mut self) {
        *self = OutputBuf::new(self.spill.take());
    }

    fn take_saved(&mut self) -> Option<SavedOutput> {
        self.saved.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spill(dir: Option<&Path>) -> Option<Spill> {
        Some(Spill {
            over: 4,
            dir: dir.map(Path::to_path_buf),
        })
    }

    #[test]
    fn test_output_buf_within_threshold_stays_in_memory() {
        let mut out = OutputBuf::new(spill(None));
        out.write_owned(b"ab".to_vec()).unwrap();
        out.write(b"cd").unwrap();
        out.end().unwrap();
        assert!(out.take_saved().is_none());
        assert_eq!(out.into_bytes(), b"abcd");
    }

    #[test]
    fn test_output_buf_past_threshold_goes_to_a_hashed_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = OutputBuf::new(spill(Some(dir.path())));
        out.write(b"abc").unwrap();
        out.write_owned(b"defg".to_vec()).unwrap();
        out.end().unwrap();
        let saved = out.take_saved().unwrap();
        let file = saved.file.unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), b"abcdefg");
        assert_eq!(saved.len, 7);
        assert_eq!(saved.sha256, hex::encode(Sha256::digest(b"abcdefg")));
        assert!(out.into_bytes().is_empty());
    }

    #[test]
    fn test_output_buf_without_a_spill_directory_keeps_only_the_hash() {
        let mut out = OutputBuf::new(spill(None));
        out.write(b"abcdefg").unwrap();
        out.end().unwrap();
        let saved = out.take_saved().unwrap();
        assert!(saved.file.is_none());
        assert_eq!(saved.sha256, hex::encode(Sha256::digest(b"abcdefg")));
    }
}
