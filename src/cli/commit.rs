//! Group commit: the outputs and audit records of a window of jobs made
//! durable together (docs/BATCH.md, "Durability").
//!
//! Why it is shaped this way: an fdatasync per output and per record costs
//! a disk round trip each, and a batch of small files used to spend most of
//! its time waiting for them. Here the recorder (the thread taking results)
//! only writes each ok output under a temporary name beside its final one
//! and queues the job's record. A **group** closes at `size` jobs or `time`
//! after its first job, whichever comes first, and the committer thread,
//! while the recorder fills the next group, puts it on disk in an order that
//! keeps the promise "a record exists only for an output that is on disk":
//!
//! 1. the temporary files' data: one syncfs per filesystem (`group`; `each`
//!    synced every file as it was staged, `none` syncs nothing);
//! 2. each file given its final name (a link, or a rename);
//! 3. each directory that got an entry synced once;
//! 4. the group's records appended with one write(2), the log synced once.
//!
//! While the committer is busy, the open group keeps growing (up to
//! [`BACKLOG`] times its size), so a slow disk makes groups bigger instead
//! of stalling the pool. A crash at any point leaves outputs without
//! records (`--resume` runs their inputs again), never a record without
//! its output, nor a partial file under a final name. A step that
//! fails turns the records of the outputs it concerns into `cancelled`
//! with the error (so `--resume` runs them again) and stops the batch.

use std::collections::{BTreeSet, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use plugwarden::audit::{AuditRecord, AuditWriter};
use plugwarden::escape;
use plugwarden::verdict::Verdict;
use tempfile::{NamedTempFile, TempPath};

use super::run::error_chain;

/// While the committer is busy, a group grows to this many times the group
/// size before the recorder waits for it (`group` and `none`).
const BACKLOG: usize = 4;
/// How often a group that is due is offered again to a busy committer.
const RETRY: Duration = Duration::from_millis(2);

/// What a finished job's output and record promise after a power cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Outputs and records reach the disk a group at a time; a record is never on disk before its output.
    Group,
    /// Each output and its record reach the disk before the next job's (slow: three syncs per job).
    Each,
    /// Nothing is synced: the kernel writes back when it likes; after a power cut records and outputs may disagree.
    None,
}

/// When a group closes: at `size` jobs or `time` after its first job.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub size: usize,
    pub time: Duration,
}

/// An ok output written, not yet under its final name.
pub struct Staged {
    temp: Temp,
    target: PathBuf,
}

/// Where a staged output waits.
enum Temp {
    /// An unnamed file (O_TMPFILE) in the final name's directory: naming
    /// it is one link, and a crash leaves nothing behind.
    Unnamed(File),
    /// A `.plugwarden-*` file: where O_TMPFILE is missing, and for outputs
    /// a sink wrote as they arrived.
    Named(TempPath),
}

impl Temp {
    /// Puts the file at `target`, replacing what is there.
    fn place(self, target: &Path) -> io::Result<()> {
        match self {
            Temp::Named(tmp) => tmp.persist(target).map_err(|e| e.error),
            Temp::Unnamed(file) => match link_unnamed(&file, target) {
                // Linked under a free name first, then renamed over.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let dir = target.parent().unwrap_or(Path::new("."));
                    tempfile::Builder::new()
                        .prefix(".plugwarden-")
                        .make_in(dir, |name| link_unnamed(&file, name))?
                        .persist(target)
                        .map(drop)
                        .map_err(|e| e.error)
                }
                other => other,
            },
        }
    }
}

/// Gives the unnamed file `file` the name `name` (fails if it exists).
fn link_unnamed(file: &File, name: &Path) -> io::Result<()> {
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = CString::new(name.as_os_str().as_bytes())?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the
    // result is checked.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A new unnamed file in `dir`, readable by its owner only (like a named
/// temporary file).
fn open_unnamed(dir: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
}

/// Whether unnamed files can be made and named in `dir` (O_TMPFILE on this
/// filesystem, /proc mounted): tried once per batch.
fn unnamed_files_work(dir: &Path) -> bool {
    let Ok(file) = open_unnamed(dir) else {
        return false;
    };
    let linked = tempfile::Builder::new()
        .prefix(".plugwarden-check-")
        .make_in(dir, |name| link_unnamed(&file, name));
    linked.is_ok()
}

impl Staged {
    /// The final name, as the audit record gives it.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

/// What the committer has to put on disk for one job.
pub struct Job {
    /// The input's name, for messages.
    pub name: String,
    /// With `--audit`.
    pub record: Option<AuditRecord>,
    /// With `--out`, for an ok job.
    pub output: Option<Staged>,
}

/// What the committer tells the recorder.
pub enum Report {
    /// A job reported ok whose output could not be put in place: its
    /// record says `cancelled` with `detail`.
    Cancelled { name: String, detail: String },
    /// The audit log could not be written or synced.
    Fatal(String),
}

/// The outputs' directory: writes each output under a temporary name in
/// the directory of its final name, and creates each directory once per
/// batch.
struct Stager {
    /// As given: the final names the records carry.
    root: PathBuf,
    /// Absolute, so that naming a temporary file needs no getcwd.
    abs: PathBuf,
    /// Relative directories known to exist.
    made: HashSet<PathBuf>,
    durability: Durability,
    /// Outputs held in memory are staged as unnamed files.
    unnamed: bool,
}

impl Stager {
    /// The directory `rel` goes in (created on first sight) and the one
    /// for its temporary file; the directories whose entries changed go
    /// into `dirs`.
    fn parent(
        &mut self,
        rel: &Path,
        dirs: &mut BTreeSet<PathBuf>,
    ) -> io::Result<(PathBuf, PathBuf)> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let (shown, abs) = (self.root.join(parent), self.abs.join(parent));
        if !self.made.contains(parent) {
            let missing: Vec<&Path> = parent
                .ancestors()
                .filter(|a| !a.as_os_str().is_empty() && !self.abs.join(a).is_dir())
                .collect();
            std::fs::create_dir_all(&abs)?;
            for dir in missing {
                dirs.insert(self.root.join(dir.parent().unwrap_or(Path::new(""))));
            }
            self.made.insert(parent.to_path_buf());
        }
        dirs.insert(shown);
        Ok((self.root.join(rel), abs))
    }

    /// `data` as the output named `rel`.
    fn bytes(
        &mut self,
        rel: &Path,
        data: &[u8],
        dirs: &mut BTreeSet<PathBuf>,
    ) -> io::Result<Staged> {
        let (target, dir) = self.parent(rel, dirs)?;
        if !self.unnamed {
            let mut tmp = tempfile::Builder::new()
                .prefix(".plugwarden-")
                .tempfile_in(dir)?;
            tmp.write_all(data)?;
            return self.finish(tmp, target);
        }
        let mut file = open_unnamed(&dir)?;
        file.write_all(data)?;
        if self.durability == Durability::Each {
            file.sync_data()?;
        }
        Ok(Staged {
            temp: Temp::Unnamed(file),
            target,
        })
    }

    /// A file a sink wrote as the output arrived (a temporary file in the
    /// output directory), to be named `rel`.
    fn file(
        &mut self,
        rel: &Path,
        tmp: NamedTempFile,
        dirs: &mut BTreeSet<PathBuf>,
    ) -> io::Result<Staged> {
        let (target, _) = self.parent(rel, dirs)?;
        if let Some(dir) = tmp.path().parent() {
            dirs.insert(dir.to_path_buf());
        }
        self.finish(tmp, target)
    }

    fn finish(&self, tmp: NamedTempFile, target: PathBuf) -> io::Result<Staged> {
        if self.durability == Durability::Each {
            tmp.as_file().sync_data()?;
        }
        // Closed here: a named file needs no descriptor until it is placed.
        Ok(Staged {
            temp: Temp::Named(tmp.into_temp_path()),
            target,
        })
    }
}

/// An output as a job left it.
pub enum Output<'a> {
    Bytes(&'a [u8]),
    File(NamedTempFile),
}

/// Jobs waiting to be committed together.
#[derive(Default)]
struct Group {
    jobs: Vec<Job>,
    /// Unnamed files held open.
    open_files: usize,
    /// Directories that got (or will get) a new entry.
    dirs: BTreeSet<PathBuf>,
}

/// The recorder's side: stages outputs, gathers jobs into groups and hands
/// each closed group to the committer thread.
pub struct GroupCommit {
    stager: Option<Stager>,
    limits: Limits,
    /// Most unnamed files a group holds open: a quarter of RLIMIT_NOFILE
    /// (the group being committed holds as many).
    open_files: usize,
    open: Group,
    /// While the committer is busy, the open group grows to this many
    /// times the group size before the recorder waits.
    backlog: usize,
    /// When the open group closes (`None`: no open group).
    due: Option<Instant>,
    /// At most one closed group waits while another is committed.
    tx: Option<SyncSender<Group>>,
    reports: Receiver<Report>,
    thread: Option<JoinHandle<Option<AuditWriter>>>,
}

impl GroupCommit {
    /// Starts the committer thread, which owns `audit` until
    /// [`GroupCommit::finish`]. With `Durability::Each` a group is one job.
    pub fn start(
        out: Option<&Path>,
        audit: Option<AuditWriter>,
        durability: Durability,
        limits: Limits,
    ) -> io::Result<GroupCommit> {
        let stager = match out {
            Some(root) => Some(Stager {
                root: root.to_path_buf(),
                abs: std::path::absolute(root)?,
                made: HashSet::new(),
                durability,
                unnamed: unnamed_files_work(root),
            }),
            None => None,
        };
        let limits = match durability {
            Durability::Each => Limits {
                size: 1,
                time: Duration::ZERO,
            },
            _ => limits,
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let (report_tx, reports) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pw-commit".into())
            .spawn(move || {
                let mut committer = Committer {
                    audit,
                    durability,
                    reports: report_tx,
                };
                for group in rx {
                    committer.commit(group);
                }
                committer.audit
            })?;
        let open_files = usize::try_from(raise_open_files_limit() / 4)
            .unwrap_or(usize::MAX)
            .max(16);
        Ok(GroupCommit {
            stager,
            limits,
            open_files,
            open: Group::default(),
            due: None,
            backlog: if durability == Durability::Each {
                1
            } else {
                BACKLOG
            },
            tx: Some(tx),
            reports,
            thread: Some(thread),
        })
    }

    /// Writes an ok output named `rel` under a temporary name, to be put in
    /// place with the group of the job it is added with.
    pub fn stage(&mut self, rel: &Path, output: Output) -> io::Result<Staged> {
        let Some(stager) = &mut self.stager else {
            return Err(io::Error::other("no output directory"));
        };
        let staged = match output {
            Output::Bytes(data) => stager.bytes(rel, data, &mut self.open.dirs),
            Output::File(tmp) => stager.file(rel, tmp, &mut self.open.dirs),
        }?;
        if let Temp::Unnamed(_) = staged.temp {
            self.open.open_files += 1;
        }
        Ok(staged)
    }

    /// Adds a job to the open group; closes the group when it is full.
    pub fn add(&mut self, job: Job) {
        if job.record.is_none() && job.output.is_none() {
            return;
        }
        self.due
            .get_or_insert_with(|| Instant::now() + self.limits.time);
        self.open.jobs.push(job);
        if self.open.open_files >= self.open_files {
            self.close(true);
        } else if self.open.jobs.len() >= self.limits.size {
            self.close(self.open.jobs.len() >= self.limits.size * self.backlog);
        }
    }

    /// How long until the open group is to close (`None`: no open group).
    pub fn due_in(&self) -> Option<Duration> {
        self.due
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Closes the open group if its time is up.
    pub fn tick(&mut self) {
        if self.due_in() == Some(Duration::ZERO) {
            self.close(false);
        }
    }

    /// What the committer has reported since the last call.
    pub fn reports(&self) -> impl Iterator<Item = Report> + '_ {
        self.reports.try_iter()
    }

    /// Hands the open group to the committer. While the committer is still
    /// busy with the group before, the open one keeps growing instead
    /// (a slow disk makes groups bigger, not the pool wait), unless `wait`.
    fn close(&mut self, wait: bool) {
        let Some(tx) = &self.tx else {
            return;
        };
        let group = std::mem::take(&mut self.open);
        // The committer ends only when `tx` is dropped: send fails only if
        // it panicked, and then nothing more can be committed anyway.
        let sent = match wait {
            true => tx.send(group).map_err(|e| TrySendError::Disconnected(e.0)),
            false => tx.try_send(group),
        };
        match sent {
            Err(TrySendError::Full(group)) => {
                self.open = group;
                self.due = Some(Instant::now() + RETRY);
            }
            _ => self.due = None,
        }
    }

    /// Commits the open group, waits for the committer, and gives the
    /// audit log back with what was reported last. Nothing is committed
    /// after this.
    pub fn finish(&mut self) -> (Option<AuditWriter>, Vec<Report>) {
        self.close(true);
        self.tx = None;
        let audit = self.thread.take().and_then(|t| t.join().ok()).flatten();
        (audit, self.reports.try_iter().collect())
    }
}

/// The committer thread: puts closed groups on disk, one at a time.
struct Committer {
    audit: Option<AuditWriter>,
    durability: Durability,
    reports: Sender<Report>,
}

impl Committer {
    fn commit(&mut self, group: Group) {
        let Group { mut jobs, dirs, .. } = group;
        let durable = self.durability != Durability::None;
        let dirs: Vec<(PathBuf, io::Result<File>)> = match durable {
            true => dirs
                .into_iter()
                .map(|d| {
                    let f = File::open(&d);
                    (d, f)
                })
                .collect(),
            false => Vec::new(),
        };
        let mut outputs: Vec<Option<Staged>> = jobs.iter_mut().map(|j| j.output.take()).collect();
        if self.durability == Durability::Group && outputs.iter().any(Option::is_some) {
            if let Err(e) = sync_filesystems(&dirs) {
                let detail = format!("cannot make the outputs durable: {e}");
                for (job, output) in jobs.iter_mut().zip(&mut outputs) {
                    if output.take().is_some() {
                        self.cancel(job, &detail);
                    }
                }
            }
        }
        // Each job's final name once its output is in place.
        let mut placed = Vec::with_capacity(jobs.len());
        for (job, output) in jobs.iter_mut().zip(outputs) {
            let Some(Staged { temp, target }) = output else {
                placed.push(None);
                continue;
            };
            match temp.place(&target) {
                Ok(()) => placed.push(Some(target)),
                Err(e) => {
                    let detail = format!(
                        "cannot move the output into place at {}: {e}",
                        escape::name(&target)
                    );
                    self.cancel(job, &detail);
                    placed.push(None);
                }
            }
        }
        for (dir, file) in &dirs {
            let Err(e) = file.as_ref().map_err(clone_error).and_then(File::sync_all) else {
                continue;
            };
            let detail = format!(
                "cannot sync the output directory {}: {e}",
                escape::name(dir)
            );
            for (job, target) in jobs.iter_mut().zip(&mut placed) {
                if target.as_ref().is_some_and(|t| t.starts_with(dir)) {
                    *target = None;
                    self.cancel(job, &detail);
                }
            }
        }
        let Some(audit) = &mut self.audit else {
            return;
        };
        let mut records: Vec<AuditRecord> = jobs.into_iter().filter_map(|j| j.record).collect();
        let appended = audit.append_all(&mut records);
        if let Err(e) = appended.and_then(|()| if durable { audit.sync() } else { Ok(()) }) {
            let _ = self.reports.send(Report::Fatal(error_chain(&e)));
        }
    }

    /// Turns the record of a job reported ok into `cancelled` with
    /// `detail` (its output is not, or may not be, on disk), and reports it.
    fn cancel(&self, job: &mut Job, detail: &str) {
        if let Some(rec) = &mut job.record {
            rec.verdict = Verdict::Cancelled.word().to_string();
            rec.detail = format!("{detail}; run again with --resume once fixed");
            rec.output = None;
            rec.output_bytes = None;
            rec.output_sha256 = None;
        }
        let _ = self.reports.send(Report::Cancelled {
            name: job.name.clone(),
            detail: detail.to_string(),
        });
    }
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (groups hold
/// their unnamed files open; the plugins get their policy's limit whatever
/// the host's) and returns the soft limit now in force.
fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// One syncfs per filesystem among `dirs`: every file written there so far
/// reaches the disk (the kernel reports a writeback error on any of them).
fn sync_filesystems(dirs: &[(PathBuf, io::Result<File>)]) -> io::Result<()> {
    let mut synced = HashSet::new();
    for (_, dir) in dirs {
        let dir = dir.as_ref().map_err(clone_error)?;
        if synced.insert(dir.metadata()?.dev()) {
            nix::unistd::syncfs(dir).map_err(io::Error::from)?;
        }
    }
    Ok(())
}

fn clone_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

#[cfg(test)]
mod tests;
