//! The minimal root of a profile: its layout and the mount namespace
//! template every sandbox of the profile copies.

use super::*;

/// Lays out the minimal root of a profile (see [`child::RootPlan`]): /usr
/// read-only with the top-level symlinks of a merged-/usr system, every
/// granted path at its own place (read-only unless granted for writing),
/// /etc/ld.so.cache, a minimal /dev, /proc when the plugin has its own PID
/// namespace, and a bounded private /tmp.
pub(super) fn root_plan(
    dir: &Path,
    grants: &Grants,
    pidns: bool,
    tmp: u64,
) -> Result<child::RootPlan, ServerError> {
    // The private /tmp: writable, of the policy's size (Landlock grants it
    // through each sandbox's own ruleset); else a small one nobody may
    // write even where Landlock is missing.
    let tmp_opts = if tmp > 0 {
        format!("size={tmp},mode=1777")
    } else {
        "size=64k,mode=0555".to_string()
    };
    let tmp_opts = c(Path::new(&tmp_opts))?;
    // A grant of `/` itself: the host's whole tree, read-only, with the
    // sandbox's own /tmp and /proc over the host's.
    let root_granted = |list: &[PathBuf]| list.iter().any(|p| p == Path::new("/"));
    let writable_root = root_granted(&grants.write);
    let mut layout = Layout::default();
    let host_root = if writable_root || root_granted(&grants.read) || root_granted(&grants.exec) {
        layout.host_tree(grants, pidns, tmp_opts)?;
        Some(writable_root)
    } else {
        layout.minimal(grants, pidns, tmp_opts)?;
        None
    };
    Ok(child::RootPlan {
        mountpoint: c(dir)?,
        opts: c(Path::new("size=1m,mode=0755"))?,
        host_root,
        ops: layout.ops,
        template: -1,
    })
}

/// A C string of a path, refused when it holds a NUL byte.
fn c(p: &Path) -> Result<CString, ServerError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| ServerError::Nul(p.to_path_buf()))
}

/// A destination relative to the new root (the child stands in it).
fn inside(p: &Path) -> PathBuf {
    match p.strip_prefix("/").unwrap_or(p) {
        r if r.as_os_str().is_empty() => PathBuf::from("."),
        r => r.to_path_buf(),
    }
}

/// The operations of a root being laid out, and the directories they
/// have made so far.
#[derive(Default)]
struct Layout {
    ops: Vec<child::RootOp>,
    made: std::collections::BTreeSet<PathBuf>,
}

impl Layout {
    /// Makes `p` and each of its parents not made yet.
    fn mkdirs(&mut self, p: &Path) -> Result<(), ServerError> {
        let mut acc = PathBuf::from("/");
        for part in p.components().skip(1) {
            acc.push(part);
            if self.made.insert(acc.clone()) {
                self.ops.push(child::RootOp::Mkdir(c(&inside(&acc))?));
            }
        }
        Ok(())
    }

    /// Binds `p` at its own place: a directory onto a directory, anything
    /// else onto an empty file.
    fn bind(&mut self, p: &Path, writable: bool) -> Result<(), ServerError> {
        let dst = inside(p);
        if p.is_dir() {
            self.mkdirs(p)?;
        } else {
            if let Some(parent) = p.parent() {
                self.mkdirs(parent)?;
            }
            self.ops.push(child::RootOp::Touch(c(&dst)?));
        }
        self.ops.push(child::RootOp::Bind {
            src: c(p)?,
            dst: c(&dst)?,
            flags: bind_flags(p, writable),
        });
        Ok(())
    }

    /// A grant of `/`: the host's tree (bound by the child), the private
    /// /tmp over the host's, the write grants writable over the read-only
    /// tree and every grant below /tmp on the private /tmp, and the
    /// sandbox's own procfs (without a PID namespace an empty tmpfs: a
    /// procfs would show the host's processes).
    fn host_tree(
        &mut self,
        grants: &Grants,
        pidns: bool,
        tmp_opts: CString,
    ) -> Result<(), ServerError> {
        self.ops.push(child::RootOp::Tmpfs {
            dst: c(Path::new("tmp"))?,
            opts: tmp_opts,
        });
        let extra = grants
            .read
            .iter()
            .chain(&grants.exec)
            .map(|p| (p, false))
            .chain(grants.write.iter().map(|p| (p, true)))
            .filter_map(|(p, w)| std::fs::canonicalize(p).ok().map(|p| (p, w)))
            .filter(|(p, w)| *w || p.starts_with("/tmp"));
        for (p, writable) in extra {
            if p == Path::new("/") || p.starts_with("/proc") {
                continue;
            }
            if p.starts_with("/tmp") {
                if p.is_dir() {
                    self.mkdirs(&p)?;
                } else if let Some(parent) = p.parent() {
                    self.mkdirs(parent)?;
                    self.ops.push(child::RootOp::Touch(c(&inside(&p))?));
                }
            }
            self.ops.push(child::RootOp::Bind {
                src: c(&p)?,
                dst: c(&inside(&p))?,
                flags: bind_flags(&p, writable),
            });
        }
        self.ops.push(if pidns {
            child::RootOp::Proc(c(Path::new("proc"))?)
        } else {
            child::RootOp::Tmpfs {
                dst: c(Path::new("proc"))?,
                opts: c(Path::new("size=4k,mode=0555"))?,
            }
        });
        Ok(())
    }

    /// The minimal root: the private /tmp, /usr, the granted paths and
    /// /dev's three devices, the top-level symlinks, the own procfs.
    fn minimal(
        &mut self,
        grants: &Grants,
        pidns: bool,
        tmp_opts: CString,
    ) -> Result<(), ServerError> {
        // The private /tmp first, so that a granted path below /tmp is
        // bound on top of it rather than hidden under it.
        self.mkdirs(Path::new("/tmp"))?;
        self.ops.push(child::RootOp::Tmpfs {
            dst: c(&inside(Path::new("/tmp")))?,
            opts: tmp_opts,
        });
        // A path under one already bound is skipped, unless it is writable
        // and that one is not (`--ro /data --rw /data/out`).
        let mut bound: Vec<(PathBuf, bool)> = Vec::new();
        for (p, writable) in binds(grants) {
            if bound
                .iter()
                .any(|(b, w)| p.starts_with(b) && (*w || !writable))
            {
                continue;
            }
            self.bind(&p, writable)?;
            bound.push((p, writable));
        }
        // Top-level symlinks (lib -> usr/lib on merged /usr), so ELF
        // interpreter paths like /lib64/ld-linux-x86-64.so.2 resolve.
        for e in std::fs::read_dir("/")
            .map_err(|source| ServerError::Io { what: "/", source })?
            .flatten()
        {
            let path = e.path();
            // Granted paths are canonical, so none of them runs through these.
            if let Ok(target) = std::fs::read_link(&path) {
                self.ops.push(child::RootOp::Symlink {
                    target: c(&target)?,
                    link: c(&inside(&path))?,
                });
            }
        }
        // The procfs of the sandbox's own PID namespace (a grant of /proc
        // is a grant on it: each sandbox adds that rule to its own ruleset).
        if pidns {
            self.mkdirs(Path::new("/proc"))?;
            self.ops
                .push(child::RootOp::Proc(c(&inside(Path::new("/proc")))?));
        }
        Ok(())
    }
}

/// What a minimal root binds, shortest path first: /usr, every grant
/// (canonical, never under the host's /proc: the sandbox mounts its own)
/// and /dev/{null,zero,urandom}; each with whether it is writable.
fn binds(grants: &Grants) -> Vec<(PathBuf, bool)> {
    let mut binds: Vec<(PathBuf, bool)> = vec![(PathBuf::from("/usr"), false)];
    for (p, w) in grants
        .exec
        .iter()
        .chain(&grants.read)
        .map(|p| (p, false))
        .chain(grants.write.iter().map(|p| (p, true)))
    {
        match std::fs::canonicalize(p) {
            Ok(real) if !real.starts_with("/proc") => binds.push((real, w)),
            _ => {}
        }
    }
    for dev in ["/dev/null", "/dev/zero", "/dev/urandom"] {
        binds.push((PathBuf::from(dev), true));
    }
    binds.sort_by_key(|(p, _)| p.components().count());
    binds
}

/// The remount flags of a bind of `p`: read-only unless `writable`,
/// nosuid, nodev but for device nodes, and the source mount's own flags
/// (inside a user namespace they are locked, and dropping one fails).
pub(super) fn bind_flags(p: &Path, writable: bool) -> libc::c_ulong {
    use std::os::unix::fs::FileTypeExt;
    let keep = nix::sys::statvfs::statvfs(p).map_or(0, |st| {
        use nix::sys::statvfs::FsFlags;
        let f = st.flags();
        let mut keep = 0;
        for (fs_flag, ms_flag) in [
            (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
            (FsFlags::ST_NOSUID, libc::MS_NOSUID),
            (FsFlags::ST_NODEV, libc::MS_NODEV),
            (FsFlags::ST_RDONLY, libc::MS_RDONLY),
            (FsFlags::ST_NOATIME, libc::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if f.contains(fs_flag) {
                keep |= ms_flag;
            }
        }
        keep
    });
    let device = std::fs::metadata(p)
        .is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_block_device());
    let mut flags = keep | libc::MS_NOSUID;
    if !device {
        flags |= libc::MS_NODEV;
    }
    if writable {
        flags & !libc::MS_RDONLY
    } else {
        flags | libc::MS_RDONLY
    }
}

/// Whether a grant is `/` or lies below `/tmp`: the sandbox's private
/// /tmp then holds more than what the plugin writes (the binds of those
/// grants, or the host's tree under it).
pub(super) fn grant_in_tmp(grants: &Grants) -> bool {
    grants
        .exec
        .iter()
        .chain(&grants.read)
        .chain(&grants.write)
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .any(|p| p == Path::new("/") || p.starts_with("/tmp"))
}

/// Builds `root` once in a throwaway child and keeps its mount namespace
/// as the profile's template (see [`child::RootPlan::template`]). `None`
/// when the root cannot be a template (a bind under /tmp would be hidden
/// by each child's own /tmp) or building it failed: children then build
/// the root themselves, as they do without root privileges.
pub(super) fn root_template(root: &child::RootPlan, grants: &Grants) -> Option<OwnedFd> {
    if grant_in_tmp(grants) {
        return None;
    }
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    // SAFETY: the fork server is single-threaded; the child builds the root
    // with raw syscalls, reports one byte and waits to be killed.
    let pid = match unsafe { libc::fork() } {
        0 => {
            let ok = child::build_root(root, false).is_ok();
            let byte = [u8::from(ok)];
            // SAFETY: writes one byte from the stack, then waits for SIGKILL.
            unsafe {
                libc::write(ready_w.as_raw_fd(), byte.as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        -1 => return None,
        pid => pid,
    };
    drop(ready_w);
    let mut byte = [0u8; 1];
    let built = read_full(ready_r.as_fd(), &mut byte) == 1 && byte[0] == 1;
    let ns = built
        .then(|| std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok())
        .flatten();
    // SAFETY: kill + reap our own child; no memory involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = wait4(pid, 0);
    ns.map(OwnedFd::from)
}
