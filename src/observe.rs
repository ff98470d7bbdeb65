//! What `plugwarden learn` sees of a plugin's files, and how it folds
//! that into the smallest set of grants.
//!
//! While learning, the file syscalls ([`PATH_SYSCALLS`]) are left out of
//! the allowlist, so each one reaches the supervisor as a seccomp user
//! notification; the supervisor reads the path it names from the child's
//! memory (`/proc/PID/mem`, at most `PATH_MAX` bytes), resolves it
//! against the child's working directory or directory fd, and lets the
//! call run (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`). The child may rewrite
//! the path between our read and the kernel's (the TOCTOU of
//! `seccomp_unotify(2)`): what learn records is what a cooperating
//! program asked for, a proposal a person reviews, never a decision the
//! sandbox makes. Landlock's audit records (ABI 7) were the alternative:
//! they name only the accesses Landlock *denies*, so the observed program
//! would fail at its first file (docs/POLICY.md, "Learn → log → enforce").
//!
//! [`fold`] then turns the observed paths into grants: what loading the
//! executable needs and what is granted already is left out, a path under
//! a system tree (`/usr/share/poppler/cMap/...`) becomes that tree's
//! directory (`/usr/share/poppler`), a directory several files of which
//! were used becomes the directory, paths that did not exist are dropped
//! (probes), `/tmp` becomes the private `/tmp`, `/proc` the sandbox's own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How a file was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Its metadata only (stat, access, readlink): it must exist.
    Stat,
    /// Opened for reading, or listed.
    Read,
    /// Created, written, removed or renamed.
    Write,
    /// Executed.
    Exec,
}

/// One observed use of a path (absolute, as the program named it).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathUse {
    pub path: PathBuf,
    pub access: Access,
}

/// Where a syscall's path arguments are, and what it does with them.
struct PathCall {
    name: &'static str,
    /// (directory fd argument or none, path argument) of each path.
    paths: &'static [(Option<u8>, u8)],
    how: How,
}

enum How {
    Fixed(Access),
    /// open-style: the access comes from the flags in this argument.
    OpenFlags(u8),
    /// openat2: the flags are the first field of `struct open_how`.
    Openat2,
    /// A directory listing through an fd (getdents).
    ListFd,
}

const fn call(name: &'static str, paths: &'static [(Option<u8>, u8)], how: How) -> PathCall {
    PathCall { name, paths, how }
}

use Access::{Exec, Stat, Write};

/// The syscalls whose paths learn records (names missing on an
/// architecture never occur there).
const CALLS: &[PathCall] = &[
    call("open", &[(None, 0)], How::OpenFlags(1)),
    call("openat", &[(Some(0), 1)], How::OpenFlags(2)),
    call("openat2", &[(Some(0), 1)], How::Openat2),
    call("creat", &[(None, 0)], How::Fixed(Write)),
    call("stat", &[(None, 0)], How::Fixed(Stat)),
    call("lstat", &[(None, 0)], How::Fixed(Stat)),
    call("newfstatat", &[(Some(0), 1)], How::Fixed(Stat)),
    call("statx", &[(Some(0), 1)], How::Fixed(Stat)),
    call("access", &[(None, 0)], How::Fixed(Stat)),
    call("faccessat", &[(Some(0), 1)], How::Fixed(Stat)),
    call("faccessat2", &[(Some(0), 1)], How::Fixed(Stat)),
    call("readlink", &[(None, 0)], How::Fixed(Stat)),
    call("readlinkat", &[(Some(0), 1)], How::Fixed(Stat)),
    call("statfs", &[(None, 0)], How::Fixed(Stat)),
    call("getxattr", &[(None, 0)], How::Fixed(Stat)),
    call("lgetxattr", &[(None, 0)], How::Fixed(Stat)),
    call("listxattr", &[(None, 0)], How::Fixed(Stat)),
    call("llistxattr", &[(None, 0)], How::Fixed(Stat)),
    call("chdir", &[(None, 0)], How::Fixed(Stat)),
    call("inotify_add_watch", &[(None, 1)], How::Fixed(Stat)),
    call("execve", &[(None, 0)], How::Fixed(Exec)),
    call("execveat", &[(Some(0), 1)], How::Fixed(Exec)),
    call("getdents", &[], How::ListFd),
    call("getdents64", &[], How::ListFd),
    call("mkdir", &[(None, 0)], How::Fixed(Write)),
    call("mkdirat", &[(Some(0), 1)], How::Fixed(Write)),
    call("mknod", &[(None, 0)], How::Fixed(Write)),
    call("mknodat", &[(Some(0), 1)], How::Fixed(Write)),
    call("unlink", &[(None, 0)], How::Fixed(Write)),
    call("unlinkat", &[(Some(0), 1)], How::Fixed(Write)),
    call("rmdir", &[(None, 0)], How::Fixed(Write)),
    call("rename", &[(None, 0), (None, 1)], How::Fixed(Write)),
    call("renameat", &[(Some(0), 1), (Some(2), 3)], How::Fixed(Write)),
    call(
        "renameat2",
        &[(Some(0), 1), (Some(2), 3)],
        How::Fixed(Write),
    ),
    call("link", &[(None, 0), (None, 1)], How::Fixed(Write)),
    call("linkat", &[(Some(0), 1), (Some(2), 3)], How::Fixed(Write)),
    call("symlink", &[(None, 1)], How::Fixed(Write)),
    call("symlinkat", &[(Some(1), 2)], How::Fixed(Write)),
    call("truncate", &[(None, 0)], How::Fixed(Write)),
    call("chmod", &[(None, 0)], How::Fixed(Write)),
    call("fchmodat", &[(Some(0), 1)], How::Fixed(Write)),
    call("utimensat", &[(Some(0), 1)], How::Fixed(Write)),
];

/// The syscalls learn observes paths of: an observation policy leaves
/// them out of its allowlist, so that each reaches the supervisor.
pub fn path_syscalls() -> impl Iterator<Item = &'static str> {
    CALLS.iter().map(|c| c.name)
}

/// Most bytes of one path read from the child (PATH_MAX).
const PATH_MAX: usize = 4096;

/// The paths syscall `name` of process `pid` names, with how it uses
/// them (empty for any other syscall, or when they cannot be read).
pub fn paths_of(pid: u32, name: &str, args: &[u64; 6]) -> Vec<PathUse> {
    let Some(c) = CALLS.iter().find(|c| c.name == name) else {
        return Vec::new();
    };
    let access = match c.how {
        How::Fixed(a) => a,
        How::OpenFlags(i) => open_access(args[usize::from(i)]),
        How::Openat2 => {
            let mut flags = [0u8; 8];
            match read_memory(pid, args[2], &mut flags) {
                Some(8) => open_access(u64::from_ne_bytes(flags)),
                _ => Access::Read,
            }
        }
        How::ListFd => {
            // The directory an fd names (a listing grants its reads).
            let fd = args[0] as i32;
            return fd_path(pid, fd)
                .map(|path| PathUse {
                    path,
                    access: Access::Read,
                })
                .into_iter()
                .collect();
        }
    };
    c.paths
        .iter()
        .filter_map(|&(dirfd, arg)| {
            let raw = read_string(pid, args[usize::from(arg)])?;
            let dirfd = dirfd.map_or(libc::AT_FDCWD, |i| args[usize::from(i)] as i32);
            let path = resolve(pid, dirfd, &raw)?;
            Some(PathUse { path, access })
        })
        .collect()
}

fn open_access(flags: u64) -> Access {
    let flags = flags as i32;
    let writes =
        flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_CREAT | libc::O_TRUNC) != 0;
    if writes {
        Access::Write
    } else {
        Access::Read
    }
}

/// Reads up to `buf.len()` bytes of the child's memory at `addr`.
fn read_memory(pid: u32, addr: u64, buf: &mut [u8]) -> Option<usize> {
    let mem = File::open(format!("/proc/{pid}/mem")).ok()?;
    mem.read_at(buf, addr).ok()
}

/// The NUL-terminated string at `addr` in the child, at most
/// [`PATH_MAX`] bytes, read page by page (the string may end just before
/// an unmapped page); `None` for NULL, an empty string or no NUL.
fn read_string(pid: u32, addr: u64) -> Option<Vec<u8>> {
    if addr == 0 {
        return None;
    }
    let mem = File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < PATH_MAX {
        let to_page_end = 4096 - (at % 4096) as usize;
        let mut chunk = vec![0u8; to_page_end.min(PATH_MAX - out.len())];
        let n = mem.read_at(&mut chunk, at).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return (!out.is_empty()).then_some(out);
        }
        out.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    None
}

/// What the child's fd `fd` names (`/proc/PID/fd/FD`).
fn fd_path(pid: u32, fd: i32) -> Option<PathBuf> {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
    target.is_absolute().then_some(target)
}

/// `raw` made absolute: against the child's working directory
/// (`AT_FDCWD`) or directory fd.
fn resolve(pid: u32, dirfd: i32, raw: &[u8]) -> Option<PathBuf> {
    let path = Path::new(std::ffi::OsStr::from_bytes(raw));
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    let base = if dirfd == libc::AT_FDCWD {
        std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?
    } else {
        fd_path(pid, dirfd)?
    };
    Some(base.join(path))
}

/// What the plugin may use without a learned grant: what loading it
/// needs, and what the command line granted.
#[derive(Debug, Default)]
pub struct Known {
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
}

impl Known {
    /// What learn leaves out of a plugin's grants: what loading `exe` needs
    /// (its interpreter and libraries, which the sandbox grants by itself)
    /// and what `fs` grants already.
    pub fn for_plugin(
        exe: &Path,
        fs: &crate::policy::Filesystem,
    ) -> Result<Known, crate::elf::ElfError> {
        let deps = crate::elf::exec_dependencies(exe)?;
        Ok(Known {
            read: deps.read.iter().chain(&fs.read).cloned().collect(),
            write: fs.write.clone(),
            exec: deps.exec.iter().chain(&fs.exec).cloned().collect(),
        })
    }

    fn covers(&self, path: &Path, access: Access) -> bool {
        let under = |list: &[PathBuf]| list.iter().any(|g| path.starts_with(g));
        match access {
            Access::Stat | Access::Read => {
                under(&self.read) || under(&self.write) || under(&self.exec)
            }
            Access::Write => under(&self.write),
            Access::Exec => under(&self.exec),
        }
    }
}

/// Directories whose subdirectories are each one package's files: a
/// path below one of them is granted as the subdirectory
/// (`/usr/share/poppler/cMap/x` → `/usr/share/poppler`).
const TREES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/usr/lib64",
    "/usr/share",
    "/usr/local/lib",
    "/usr/local/share",
    "/etc",
    "/var/lib",
    "/var/cache",
    "/opt",
];

/// Directories never granted whole for the files in them (nor are
/// [`TREES`]): `/etc/passwd` and `/etc/group` stay two files.
const TOPS: &[&str] = &[
    "/",
    "/usr",
    "/usr/local",
    "/var",
    "/home",
    "/root",
    "/srv",
    "/mnt",
    "/media",
    "/run",
    "/sys",
    "/opt",
];

/// Files of one directory (outside [`TREES`]) from which on the
/// directory is granted instead of each file.
const DIR_THRESHOLD: usize = 3;

/// The grants observed paths fold into, and what they say in plain words.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Learned {
    /// Read grants (files and directories), sorted.
    pub read: Vec<PathBuf>,
    /// Programs it ran (their loading needs come with them).
    pub exec: Vec<PathBuf>,
    /// It wrote in /tmp: a private writable /tmp.
    pub tmp: bool,
    /// It read /proc (the sandbox's own).
    pub proc: bool,
    /// Writes outside /tmp and the granted directories (they failed).
    pub refused_writes: Vec<PathBuf>,
    /// Device files the sandbox does not offer.
    pub devices: Vec<PathBuf>,
    /// The minimal root's devices it opened (`/dev/null`, ...).
    pub dev: Vec<PathBuf>,
    /// Directories only looked at (their metadata), not granted.
    pub looked_at: Vec<PathBuf>,
    /// Paths it looked for that do not exist (not granted).
    pub missing: usize,
    /// One line per grant: `reads /usr/share/poppler (142 files)`.
    pub summary: Vec<String>,
}

/// Devices in every minimal root.
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/urandom"];

/// Folds the observed `uses` into grants beyond `known`.
pub fn fold(uses: &BTreeSet<PathUse>, known: &Known) -> Learned {
    let mut l = Learned::default();
    // Grant → the distinct files it stands for.
    let mut reads: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut tmp_files = BTreeSet::new();
    let mut execs = BTreeSet::new();
    let mut proc_files = BTreeSet::new();
    let mut others: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for u in uses {
        let p = &u.path;
        if known.covers(p, u.access) {
            continue;
        }
        if p.starts_with("/tmp") {
            if u.access == Access::Write || p != Path::new("/tmp") {
                tmp_files.insert(p.clone());
            }
            continue;
        }
        if p.starts_with("/proc") {
            proc_files.insert(p.clone());
            continue;
        }
        if p.starts_with("/dev") {
            let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            if DEVICES.iter().any(|d| real == Path::new(d)) {
                l.dev.push(real);
            } else if real.exists() && !real.is_dir() {
                l.devices.push(real);
            }
            continue;
        }
        let Ok(real) = std::fs::canonicalize(p) else {
            if u.access == Access::Write {
                l.refused_writes.push(p.clone());
            } else {
                missing.insert(p.clone());
            }
            continue;
        };
        match u.access {
            Access::Write if !known.covers(&real, Access::Write) => {
                l.refused_writes.push(p.clone());
                continue;
            }
            Access::Write => continue,
            Access::Exec => {
                execs.insert(real);
                continue;
            }
            Access::Stat if real.is_dir() => {
                // Metadata of a directory: /usr and every ancestor of a
                // grant exist anyway; a whole directory is not granted
                // for a look at it.
                if !real.starts_with("/usr") {
                    l.looked_at.push(real);
                }
                continue;
            }
            Access::Stat if real.starts_with("/usr") => continue, // /usr is always there
            Access::Stat | Access::Read => {}
        }
        if known.covers(&real, Access::Read) {
            continue;
        }
        // A symlink must be there too (its directory's grant holds it),
        // and so must its target.
        let link = p
            .parent()
            .and_then(|d| std::fs::canonicalize(d).ok())
            .zip(p.file_name())
            .map(|(d, n)| d.join(n));
        for path in link.into_iter().chain([real]) {
            match tree_grant(&path) {
                Some(g) => {
                    reads.entry(g).or_default().insert(path);
                }
                None => {
                    let dir = if path.is_dir() {
                        path.clone()
                    } else {
                        path.parent()
                            .map_or_else(|| path.clone(), Path::to_path_buf)
                    };
                    others.entry(dir).or_default().insert(path);
                }
            }
        }
    }
    for (dir, files) in others {
        let whole = !TOPS.iter().chain(TREES).any(|t| dir == Path::new(t));
        if whole && (files.len() >= DIR_THRESHOLD || files.contains(&dir)) {
            reads.entry(dir).or_default().extend(files);
        } else {
            for f in files {
                reads.entry(f.clone()).or_default().insert(f);
            }
        }
    }
    // Drop what another grant covers, and what loading the program covers.
    let grants: Vec<PathBuf> = reads.keys().cloned().collect();
    reads.retain(|g, _| {
        !grants.iter().any(|o| o != g && g.starts_with(o)) && !known.covers(g, Access::Read)
    });
    for (g, files) in &reads {
        let n = files.len();
        l.summary.push(if g.is_dir() {
            format!(
                "reads {} ({n} file{})",
                g.display(),
                if n == 1 { "" } else { "s" }
            )
        } else {
            format!("reads {}", g.display())
        });
    }
    l.read = reads.into_keys().collect();
    l.exec = execs.into_iter().collect();
    for e in &l.exec {
        l.summary.push(format!("runs {}", e.display()));
    }
    l.tmp = !tmp_files.is_empty();
    if l.tmp {
        l.summary.push(format!(
            "uses its private /tmp ({} path{})",
            tmp_files.len(),
            if tmp_files.len() == 1 { "" } else { "s" }
        ));
    }
    l.proc = !proc_files.is_empty();
    if l.proc {
        l.summary.push("reads its own /proc".into());
    }
    l.looked_at.sort();
    l.looked_at.dedup();
    l.looked_at
        .retain(|d| !l.read.iter().any(|g| g.starts_with(d) || d.starts_with(g)));
    l.refused_writes.sort();
    l.refused_writes.dedup();
    for list in [&mut l.devices, &mut l.dev] {
        list.sort();
        list.dedup();
    }
    l.missing = missing.len();
    l
}

/// The grant a path under one of [`TREES`] folds into: the tree's
/// subdirectory it is in (`None` outside them, or for a file directly
/// in a tree, which stays a file).
fn tree_grant(path: &Path) -> Option<PathBuf> {
    let tree = TREES.iter().map(Path::new).find(|t| path.starts_with(t))?;
    let rest = path.strip_prefix(tree).ok()?;
    let mut parts = rest.components();
    let first = parts.next()?;
    parts.next()?;
    Some(tree.join(first))
}

#[cfg(test)]
mod tests;
