//! The host's own inputs: walking what the user named, opening each file
//! safely, and reading it within its limit.
//!
//! The inputs of a batch come from wherever the user points the host (a
//! mail archive, an upload directory, an unpacked archive), so they are
//! hostile like the plugin. Why this module is shaped the way it is:
//! - **Only regular files.** A FIFO would block the open for ever, a
//!   socket cannot be read, `/dev/zero` never ends and a terminal would
//!   steal keystrokes. Every input is opened with `O_NONBLOCK` (an open
//!   that never waits) and judged by `fstat` on the opened fd, so what is
//!   read is what was checked; a non-regular file gets `input_error`.
//!   Walked entries are looked at with `lstat` first, so no device is ever
//!   opened in the ordinary case.
//! - **Symlinks.** A symlink named on the command line is followed, one
//!   level: the user named it. Inside a walked directory nothing is
//!   followed, not a symlinked file and not a symlinked directory in the
//!   path: an entry is opened relative to its root with `openat2` and
//!   `RESOLVE_NO_SYMLINKS`, so swapping a directory for a symlink while
//!   the walk runs leads nowhere (`O_NOFOLLOW` on the last component where
//!   `openat2` is missing).
//! - **Limits.** The size from `fstat` is checked against the limit before
//!   a byte is read (a 20 GiB sparse file costs nothing), and reading
//!   stops at the limit (a file that grows while read).
//! - **Bounded memory.** A small input is read whole ([`INLINE`] bytes at
//!   most); a bigger one stays an open file ([`Source`]) that the worker
//!   reads in bounded chunks as it sends it, so the host never holds a
//!   big input whole.
//! - **Exact names.** Paths are kept as bytes from walk to audit record;
//!   the `escape` module is only for showing them.
//!
//! Group commit and sharding build on [`walk`] and [`open`]: the walk is a
//! stream in a stable order, and opening and reading are separate from it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::escape;

/// Inputs up to this size are read whole when queued; bigger ones are read
/// in chunks as they are sent.
pub const INLINE: u64 = 1 << 20;

/// What [`Source::head`] holds at most: enough for any content sniffing
/// (`%PDF-` may sit anywhere in the first 1024 bytes).
pub const HEAD: usize = 64 << 10;

/// Why an input cannot be run. Its `Display` is the `input_error` detail,
/// with the name escaped.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{}: {what}, not a regular file: only regular files are inputs", escape::name(.path))]
    /// Not a regular file (a directory, a device, a FIFO, …).
    NotRegular {
        /** The input. */
        path: PathBuf,
        /** What it is instead. */
        what: &'static str,
    },
    #[error("{}: a symbolic link inside a walked directory: not followed (name its target instead)", escape::name(.path))]
    /// A symbolic link found by a walk (not followed).
    Symlink {
        /** The link. */
        path: PathBuf,
    },
    #[error("input too large ({len} bytes, limit {limit})")]
    /// Larger than the input limit.
    TooLarge {
        /** Its size. */
        len: u64,
        /** The limit. */
        limit: u64,
    },
    #[error("input too large (more than {limit} bytes, the limit)")]
    /// A stream (stdin) longer than the input limit.
    StreamTooLarge {
        /** The limit. */
        limit: u64,
    },
    #[error("{}: changed while it was read ({expected} bytes when opened, {now} now)", escape::name(.path))]
    /// The file changed size while it was read.
    Changed {
        /// The input.
        path: PathBuf,
        /// Its size when opened.
        expected: u64,
        /// Its size now.
        now: u64,
    },
    #[error("cannot {op} {}: {source}", escape::name(.path))]
    /// A system call on the input failed.
    Io {
        /// What was being done (`read`, `open`, `list`).
        op: &'static str,
        /// The input.
        path: PathBuf,
        #[source]
        /// Why.
        source: io::Error,
    },
}

/// One file the walk found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path as walked (the root joined with the names below it).
    pub path: PathBuf,
    /// Its name relative to the directory it was found in (for outputs).
    pub rel: PathBuf,
    /// Found under a directory, not named on the command line.
    pub walked: bool,
    /// The path from the named directory down (empty for a named file).
    below_root: PathBuf,
    root: PathBuf,
}

impl Entry {
    /// The file at `path`, named directly (not found by a walk).
    pub fn named(path: PathBuf) -> Entry {
        let rel = path.file_name().map(PathBuf::from).unwrap_or_default();
        Entry {
            rel,
            walked: false,
            below_root: PathBuf::new(),
            root: path.clone(),
            path,
        }
    }
}

/// Every file under `roots`, in a stable order (each root in turn, names
/// sorted byte-wise); an entry that cannot be listed is an error in its
/// place. Directories named on the command line are followed even when
/// they are symlinks; nothing below them is.
pub fn walk(roots: &[PathBuf]) -> impl Iterator<Item = Result<Entry, InputError>> + '_ {
    roots.iter().flat_map(|root| {
        let is_dir = std::fs::metadata(root).is_ok_and(|m| m.is_dir());
        let base = if is_dir {
            root.clone()
        } else {
            root.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_map(move |entry| match entry {
                Ok(e) if e.file_type().is_dir() => None,
                Ok(e) => {
                    let rel = e.path().strip_prefix(&base).unwrap_or(e.path());
                    let below_root = e.path().strip_prefix(root).unwrap_or(Path::new(""));
                    Some(Ok(Entry {
                        rel: rel.to_path_buf(),
                        walked: e.depth() > 0,
                        below_root: below_root.to_path_buf(),
                        root: root.clone(),
                        path: e.into_path(),
                    }))
                }
                Err(e) => {
                    let path = e.path().unwrap_or(root).to_path_buf();
                    let source = e
                        .into_io_error()
                        .unwrap_or_else(|| io::Error::other("a directory loop"));
                    Some(Err(InputError::Io {
                        op: "list",
                        path,
                        source,
                    }))
                }
            })
    })
}

/// An input opened and checked: a regular file of `len` bytes, at most
/// the limit. Cheap to clone (the file is shared), read with positioned
/// reads only, so clones never disturb each other.
#[derive(Clone, Debug)]
pub struct Source {
    file: Arc<File>,
    /// Bytes sent before the file's ([`Input::prefixed`]).
    prefix: Arc<[u8]>,
    /// The file's size checked at open.
    len: u64,
    path: PathBuf,
}

impl Source {
    /// Exactly the bytes that will be sent: the prefix and the size
    /// checked at open.
    pub fn len(&self) -> u64 {
        self.prefix.len() as u64 + self.len
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fills `buf` from `offset` (of the prefix, then the file); the file
    /// must still have those bytes.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), InputError> {
        let (mut buf, mut offset) = (buf, offset);
        let prefix_len = self.prefix.len() as u64;
        if offset < prefix_len {
            let from = &self.prefix[offset as usize..];
            let n = buf.len().min(from.len());
            buf[..n].copy_from_slice(&from[..n]);
            (buf, offset) = (&mut buf[n..], prefix_len);
        }
        if buf.is_empty() {
            return Ok(());
        }
        let in_file = offset - prefix_len;
        self.file.read_exact_at(buf, in_file).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.changed()
            } else {
                self.io("read", e)
            }
        })
    }

    /// After the last byte was sent: the file has not grown meanwhile (a
    /// file still being written is not the input that was checked).
    pub fn check_unchanged(&self) -> Result<(), InputError> {
        let mut probe = [0u8; 1];
        match self.file.read_at(&mut probe, self.len) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.changed()),
            Err(e) => Err(self.io("read", e)),
        }
    }

    /// The first [`HEAD`] bytes (or all of a shorter file).
    pub fn head(&self) -> Result<Vec<u8>, InputError> {
        let mut head = vec![0; self.len().min(HEAD as u64) as usize];
        self.read_at(0, &mut head)?;
        Ok(head)
    }

    /// The whole file, for inputs of at most [`INLINE`] bytes (or whatever
    /// the caller can afford): exactly the size checked at open, never
    /// more (a file that changed meanwhile is an error).
    pub fn read_all(&self) -> Result<Vec<u8>, InputError> {
        let mut data = vec![0; self.len() as usize];
        self.read_at(0, &mut data)?;
        self.check_unchanged()?;
        Ok(data)
    }

    /// Hashes the whole file in bounded chunks (for `--resume` of a big
    /// input, before it is run).
    pub fn sha256(&self) -> Result<String, InputError> {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        let mut offset = 0;
        while offset < self.len() {
            let n = (self.len() - offset).min(buf.len() as u64) as usize;
            self.read_at(offset, &mut buf[..n])?;
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        self.check_unchanged()?;
        Ok(hex::encode(hasher.finalize()))
    }

    fn changed(&self) -> InputError {
        let now = self.file.metadata().map_or(0, |m| m.len());
        InputError::Changed {
            path: self.path.clone(),
            expected: self.len,
            now,
        }
    }

    fn io(&self, op: &'static str, source: io::Error) -> InputError {
        InputError::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }
}

/// An input ready for a job: its bytes, or its file, read in bounded
/// chunks as it is sent.
#[derive(Debug)]
pub enum Input {
    /// Held in memory.
    Bytes(Vec<u8>),
    /// An open file, read in bounded chunks as it is sent.
    File(Source),
}

impl Input {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Input::Bytes(b) => b.len() as u64,
            Input::File(s) => s.len(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first [`HEAD`] bytes (or all of a shorter input).
    pub fn head(&self) -> Result<Vec<u8>, InputError> {
        match self {
            Input::Bytes(b) => Ok(b[..b.len().min(HEAD)].to_vec()),
            Input::File(src) => src.head(),
        }
    }

    /// Its bytes, when it is held in memory.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Input::Bytes(b) => Some(b),
            Input::File(_) => None,
        }
    }

    /// `prefix`, then this input: for a job that carries something of the
    /// host's before the file (sanitize's password record). A file stays a
    /// file, read in chunks as it is sent.
    pub fn prefixed(self, prefix: &[u8]) -> Input {
        match self {
            Input::Bytes(b) => Input::Bytes([prefix, &b].concat()),
            Input::File(src) => Input::File(Source {
                prefix: [prefix, &src.prefix].concat().into(),
                ..src
            }),
        }
    }

    /// Reads an opened file whole when it is small ([`INLINE`]), else
    /// keeps it open to be streamed.
    pub fn from_source(src: Source) -> Result<Input, InputError> {
        if src.len() <= INLINE {
            src.read_all().map(Input::Bytes)
        } else {
            Ok(Input::File(src))
        }
    }
}

impl From<Vec<u8>> for Input {
    fn from(bytes: Vec<u8>) -> Input {
        Input::Bytes(bytes)
    }
}

/// Opens `entry` for reading, refusing anything but a regular file of at
/// most `limit` bytes (see the module docs for symlinks). Never blocks on
/// a FIFO or a device, and reads nothing.
pub fn open(entry: &Entry, limit: u64) -> Result<Source, InputError> {
    let path = &entry.path;
    let io = |op, source| InputError::Io {
        op,
        path: path.clone(),
        source,
    };
    // lstat first: a device or FIFO is refused without being opened.
    let meta = std::fs::symlink_metadata(path).map_err(|e| io("read", e))?;
    if meta.file_type().is_symlink() && entry.walked {
        return Err(InputError::Symlink { path: path.clone() });
    }
    if !meta.file_type().is_symlink() {
        refuse_special(path, &meta)?;
    }
    let fd = if entry.walked {
        open_beneath(&entry.root, &entry.below_root).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => InputError::Symlink { path: path.clone() },
            _ => io("open", e),
        })?
    } else {
        open_named(path).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => InputError::NotRegular {
                path: path.clone(),
                what: "a symbolic link to a symbolic link",
            },
            _ => io("open", e),
        })?
    };
    from_file(File::from(fd), path.clone(), limit)
}

/// An already open file (`call`'s stdin) as a [`Source`] named `name`:
/// refused unless it is a regular file of at most `limit` bytes. Read from
/// its start.
pub fn from_file(file: File, name: PathBuf, limit: u64) -> Result<Source, InputError> {
    let meta = file.metadata().map_err(|source| InputError::Io {
        op: "read",
        path: name.clone(),
        source,
    })?;
    refuse_special(&name, &meta)?;
    if meta.len() > limit {
        return Err(InputError::TooLarge {
            len: meta.len(),
            limit,
        });
    }
    Ok(Source {
        file: Arc::new(file),
        prefix: Arc::from([]),
        len: meta.len(),
        path: name,
    })
}

/// `input_error` unless `meta` is a regular file.
fn refuse_special(path: &Path, meta: &std::fs::Metadata) -> Result<(), InputError> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_dir() {
        "a directory"
    } else {
        "a special file"
    };
    Err(InputError::NotRegular {
        path: path.to_path_buf(),
        what,
    })
}

const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NOFOLLOW;

/// A path named on the command line: a symlink is followed one level (its
/// target is opened with `O_NOFOLLOW`).
fn open_named(path: &Path) -> io::Result<OwnedFd> {
    match open_nofollow(libc::AT_FDCWD, path) {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let target = std::fs::read_link(path)?;
            let target = match path.parent() {
                Some(dir) if target.is_relative() => dir.join(target),
                _ => target,
            };
            open_nofollow(libc::AT_FDCWD, &target)
        }
        other => other,
    }
}

fn open_nofollow(dir: libc::c_int, path: &Path) -> io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: `c` is NUL-terminated and outlives the call; flags are integers.
    let fd = unsafe { libc::openat(dir, c.as_ptr(), OPEN_FLAGS) };
    own(fd)
}

/// `below` under `root`, with no symlink anywhere below `root` (openat2's
/// `RESOLVE_NO_SYMLINKS`); where openat2 is missing, the last component
/// only is checked (`O_NOFOLLOW`).
fn open_beneath(root: &Path, below: &Path) -> io::Result<OwnedFd> {
    let root_fd = File::open(root)?;
    let c = cstring(below)?;
    // SAFETY: open_how is plain integers; all-zero is its empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = OPEN_FLAGS as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_BENEATH;
    // SAFETY: openat2 reads `how` (its size passed) and the NUL-terminated
    // `c`, both alive for the call; the result is checked.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root_fd.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    match own(fd as libc::c_int) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            open_nofollow(root_fd.as_raw_fd(), below)
        }
        other => other,
    }
}

fn cstring(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn own(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd from open, owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads a stream that is not a file (`call`'s stdin from a pipe) up to
/// `limit` bytes: whole when small ([`INLINE`]), else into an unnamed
/// temporary file that is then streamed like any file input, so a big
/// piped input is not held in memory either; beyond `limit`,
/// [`InputError::StreamTooLarge`].
pub fn read_stream(mut r: impl Read, limit: u64) -> io::Result<Result<Input, InputError>> {
    let too_large = || Ok(Err(InputError::StreamTooLarge { limit }));
    let mut head = Vec::new();
    (&mut r)
        .take(INLINE.min(limit) + 1)
        .read_to_end(&mut head)?;
    let held = head.len() as u64;
    if held > limit {
        return too_large();
    }
    if held <= INLINE {
        return Ok(Ok(Input::Bytes(head)));
    }
    let mut spool = tempfile::tempfile()?;
    spool.write_all(&head)?;
    let copied = io::copy(&mut r.take(limit + 1 - held), &mut spool)?;
    if held + copied > limit {
        return too_large();
    }
    Ok(from_file(spool, PathBuf::from("stdin"), limit).map(Input::File))
}

#[cfg(test)]
mod tests;
