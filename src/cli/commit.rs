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
//! 2. each file renamed to its final name;
//! 3. each directory that got an entry synced once;
//! 4. the group's records appended with one write(2), the log synced once.
//!
//! A crash at any point leaves outputs without records (`--resume` runs
//! their inputs again) and `.plugwarden-*` temporary files, never a record
//! without its output, nor a partial file under a final name. A step that
//! fails turns the records of the outputs it concerns into `cancelled`
//! with the error (so `--resume` runs them again) and stops the batch.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use plugwarden::audit::{AuditRecord, AuditWriter};
use plugwarden::escape;
use plugwarden::verdict::Verdict;
use tempfile::{NamedTempFile, TempPath};

use super::run::error_chain;

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

/// An ok output written under a temporary name beside its final name.
pub struct Staged {
    tmp: TempPath,
    target: PathBuf,
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
}

impl Stager {
    /// The directory `rel` goes in (created on first sight) and the one
    /// for its temporary file; the directories whose entries changed go
    /// into `dirs`.
    fn parent(&mut self, rel: &Path, dirs: &mut BTreeSet<PathBuf>) -> io::Result<(PathBuf, PathBuf)> {
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
    fn bytes(&mut self, rel: &Path, data: &[u8], dirs: &mut BTreeSet<PathBuf>) -> io::Result<Staged> {
        let (target, dir) = self.parent(rel, dirs)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".plugwarden-")
            .tempfile_in(dir)?;
        tmp.write_all(data)?;
        self.finish(tmp, target)
    }

    /// A file a sink wrote as the output arrived (a temporary file in the
    /// output directory), to be named `rel`.
    fn file(&mut self, rel: &Path, tmp: NamedTempFile, dirs: &mut BTreeSet<PathBuf>) -> io::Result<Staged> {
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
        // Closed here: a group holds names, not descriptors.
        Ok(Staged {
            tmp: tmp.into_temp_path(),
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
    /// Directories that got (or will get) a new entry.
    dirs: BTreeSet<PathBuf>,
}

/// The recorder's side: stages outputs, gathers jobs into groups and hands
/// each closed group to the committer thread.
pub struct GroupCommit {
    stager: Option<Stager>,
    limits: Limits,
    open: Group,
    opened: Option<Instant>,
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
        Ok(GroupCommit {
            stager,
            limits,
            open: Group::default(),
            opened: None,
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
        match output {
            Output::Bytes(data) => stager.bytes(rel, data, &mut self.open.dirs),
            Output::File(tmp) => stager.file(rel, tmp, &mut self.open.dirs),
        }
    }

    /// Adds a job to the open group; closes the group when it is full.
    pub fn add(&mut self, job: Job) {
        if job.record.is_none() && job.output.is_none() {
            return;
        }
        self.opened.get_or_insert_with(Instant::now);
        self.open.jobs.push(job);
        if self.open.jobs.len() >= self.limits.size {
            self.close();
        }
    }

    /// How long until the open group must close (`None`: no open group).
    pub fn due_in(&self) -> Option<Duration> {
        self.opened
            .map(|t| (t + self.limits.time).saturating_duration_since(Instant::now()))
    }

    /// Closes the open group if its time is up.
    pub fn tick(&mut self) {
        if self.due_in() == Some(Duration::ZERO) {
            self.close();
        }
    }

    /// What the committer has reported since the last call.
    pub fn reports(&self) -> impl Iterator<Item = Report> + '_ {
        self.reports.try_iter()
    }

    fn close(&mut self) {
        self.opened = None;
        let group = std::mem::take(&mut self.open);
        if let Some(tx) = &self.tx {
            // The committer ends only when `tx` is dropped.
            let _ = tx.send(group);
        }
    }

    /// Commits the open group, waits for the committer, and gives the
    /// audit log back with what was reported last. Nothing is committed
    /// after this.
    pub fn finish(&mut self) -> (Option<AuditWriter>, Vec<Report>) {
        self.close();
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
        let Group { mut jobs, dirs } = group;
        let durable = self.durability != Durability::None;
        let dirs: Vec<(PathBuf, io::Result<File>)> = match durable {
            true => dirs.into_iter().map(|d| { let f = File::open(&d); (d, f) }).collect(),
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
            let Some(Staged { tmp, target }) = output else {
                placed.push(None);
                continue;
            };
            match tmp.persist(&target) {
                Ok(()) => placed.push(Some(target)),
                Err(e) => {
                    let detail = format!(
                        "cannot move the output into place at {}: {}",
                        escape::name(&target),
                        e.error
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
            let detail = format!("cannot sync the output directory {}: {e}", escape::name(dir));
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
