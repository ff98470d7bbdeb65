//! cgroups: one group per worker for memory and process limits, an
//! out-of-memory kill the host can attribute, and a whole-tree kill.
//!
//! rlimits cannot tell an OOM kill from any other SIGKILL, cannot bound a
//! fork bomb when workers share a uid, and cannot reach a grandchild that
//! called `setsid`. A cgroup can. The fork server creates each worker's
//! group before forking it, puts the child in it right after `fork`
//! (before the child may exec), and after the worker is reaped kills
//! whatever is left in the group and removes it.
//!
//! Backends, chosen once by [`Backend::detect`]:
//! - a cgroup v2 subtree this process may write: root's, or one delegated
//!   to this user (systemd `Delegate=yes`, a user scope, a pod with a
//!   writable cgroupfs, a Slurm job). Used exactly as root's, with what it
//!   offers of `memory` (`memory.max`, `memory.swap.max`, `memory.events`,
//!   `memory.peak`), `pids` (`pids.max`) and `cgroup.kill`;
//! - cgroup v1 (this project's CI machines): `memory.limit_in_bytes`,
//!   `memory.max_usage_in_bytes`, `memory.oom_control` (oom_kill),
//!   `pids.max`, and `cgroup.kill` from a controller-less cgroup2 mount
//!   (`/sys/fs/cgroup/unified`) for the tree kill when there is one;
//! - neither: rlimits only, and the reason is reported (doctor, log, audit).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where worker groups can be made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// A cgroup v2 subtree we may write, and which of the memory and pids
    /// controllers and `cgroup.kill` it offers.
    V2 {
        base: PathBuf,
        memory: bool,
        pids: bool,
        kill: bool,
    },
    /// cgroup v1 hierarchies (each optional) plus a cgroup2 mount for kill.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        kill: Option<PathBuf>,
    },
    /// No usable cgroup; why.
    None { reason: String },
}

/// Limits of one worker's group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
}

/// What a finished group reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Peak memory of the group in bytes.
    pub memory_peak: Option<u64>,
    /// The kernel's OOM killer killed a process of the group.
    pub oom_killed: bool,
    /// The process limit refused a fork at least once.
    pub pids_exhausted: bool,
}

/// The cgroup path of this process in hierarchy `controller` ("" = v2).
fn own_path(controller: &str) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        hit.then(|| path.to_string())
    })
}

/// Creates the group directory `dir`. One already there is a leftover of
/// a dead process whose PID this one reuses (the base is named after the
/// fork server's PID, and a SIGKILLed one cannot clean up): it is removed
/// first, which the kernel allows only when no process is left in it.
fn create_fresh(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_dir(dir)?;
            fs::create_dir(dir)
        }
        other => other,
    }
}

/// `dir` if we may create and remove a group inside it.
fn writable_base(mount: &Path, own: &str, name: &str) -> Option<PathBuf> {
    let base = mount.join(own.trim_start_matches('/')).join(name);
    fs::create_dir_all(&base).ok()?;
    let probe = base.join(format!("probe-{}", std::process::id()));
    fs::create_dir(&probe).ok()?;
    fs::remove_dir(&probe).ok()?;
    Some(base)
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// The best subtree of the cgroup v2 mount `mount` for worker groups:
/// under this process's own cgroup or the nearest ancestor we may write
/// (a cgroup holding processes cannot hand memory and pids to children, so
/// a delegated scope's parent often offers them where the scope does not).
/// A worker moves from our cgroup into its group, which needs write access
/// to the common ancestor's `cgroup.procs`; that is checked too.
fn v2_backend(mount: &Path, name: &str) -> Option<Backend> {
    if !mount.join("cgroup.procs").exists() {
        return None;
    }
    let own = PathBuf::from(own_path("")?);
    let mut best: Option<Backend> = None;
    for dir in own.ancestors() {
        let Some(b) = v2_base(mount, dir, name) else {
            continue;
        };
        let score = |b: &Backend| u8::from(b.has_memory()) + u8::from(b.has_pids());
        match &best {
            Some(old) if score(old) >= score(&b) => b.cleanup(),
            _ => {
                if let Some(old) = best.replace(b) {
                    old.cleanup();
                }
            }
        }
        if best
            .as_ref()
            .is_some_and(|b| b.has_memory() && b.has_pids())
        {
            break;
        }
    }
    best
}

/// `mount/dir/name` as a V2 backend, if we may make groups there and move
/// our children into them.
fn v2_base(mount: &Path, dir: &Path, name: &str) -> Option<Backend> {
    let parent = mount.join(dir.strip_prefix("/").unwrap_or(dir));
    let procs = CString::new(parent.join("cgroup.procs").as_os_str().as_bytes()).ok()?;
    // SAFETY: access reads a NUL-terminated path.
    if unsafe { libc::access(procs.as_ptr(), libc::W_OK) } != 0 {
        return None;
    }
    let base = writable_base(mount, &dir.to_string_lossy(), name)?;
    let offered = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
    let enabled = |c: &str| {
        offered.split_whitespace().any(|o| o == c)
            && fs::write(base.join("cgroup.subtree_control"), format!("+{c}")).is_ok()
    };
    let (memory, pids) = (enabled("memory"), enabled("pids"));
    // cgroup.kill exists in child groups only; check one.
    let probe = base.join("probe-kill");
    let kill = crate::kernel::kernel().has(crate::kernel::Feature::CgroupKill)
        && fs::create_dir(&probe).is_ok()
        && probe.join("cgroup.kill").exists();
    let _ = fs::remove_dir(&probe);
    Some(Backend::V2 {
        base,
        memory,
        pids,
        kill,
    })
}

impl Backend {
    /// Finds what this machine and process allow. `name` makes the subtree
    /// unique to one fork server.
    pub fn detect(name: &str) -> Backend {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            return v2_backend(root, name).unwrap_or_else(|| Backend::None {
                reason: "cgroup v2 is mounted but no cgroup above this process may be written by this user (none delegated)".into(),
            });
        }
        let v1 = |c: &str| {
            let mount = root.join(c);
            mount.join("cgroup.procs").exists().then_some(())?;
            writable_base(&mount, &own_path(c).unwrap_or_default(), name)
        };
        let (memory, pids) = (v1("memory"), v1("pids"));
        let unified = v2_backend(&root.join("unified"), name);
        if memory.is_none() && pids.is_none() {
            return unified.unwrap_or_else(|| Backend::None {
                reason: "no writable memory or pids cgroup and no writable cgroup v2 subtree (not root, and none delegated)".into(),
            });
        }
        let kill = match unified {
            Some(Backend::V2 {
                base, kill: true, ..
            }) => Some(base),
            Some(other) => {
                other.cleanup();
                None
            }
            None => None,
        };
        Backend::V1 { memory, pids, kill }
    }

    pub fn is_active(&self) -> bool {
        !matches!(self, Backend::None { .. })
    }

    /// A memory limit per worker, and OOM kills attributed.
    pub fn has_memory(&self) -> bool {
        match self {
            Backend::V2 { memory, .. } => *memory,
            Backend::V1 { memory, .. } => memory.is_some(),
            Backend::None { .. } => false,
        }
    }

    /// A process limit per worker.
    pub fn has_pids(&self) -> bool {
        match self {
            Backend::V2 { pids, .. } => *pids,
            Backend::V1 { pids, .. } => pids.is_some(),
            Backend::None { .. } => false,
        }
    }

    /// `cgroup.kill` for the tree kill (else by pid from the group's list).
    pub fn has_kill(&self) -> bool {
        match self {
            Backend::V2 { kill, .. } => *kill,
            Backend::V1 { kill, .. } => kill.is_some(),
            Backend::None { .. } => false,
        }
    }

    /// One line for doctor and the log.
    pub fn describe(&self) -> String {
        match self {
            Backend::V2 {
                base,
                memory,
                pids,
                kill,
            } => format!(
                "cgroup v2 at {}{}: memory {}, pids {}, tree kill {}",
                base.display(),
                if nix::unistd::geteuid().is_root() {
                    ""
                } else {
                    " (delegated to this user)"
                },
                yes(*memory),
                yes(*pids),
                if *kill { "cgroup.kill" } else { "by pid" }
            ),
            Backend::V1 { memory, pids, kill } => format!(
                "cgroup v1: memory {}, pids {}, tree kill {}",
                yes(memory.is_some()),
                yes(pids.is_some()),
                if kill.is_some() {
                    "cgroup.kill"
                } else {
                    "by pid"
                }
            ),
            Backend::None { reason } => format!("none ({reason}); rlimits only"),
        }
    }

    /// Removes the (empty) subtree created by `detect`.
    pub fn cleanup(&self) {
        let bases: Vec<&PathBuf> = match self {
            Backend::V2 { base, .. } => vec![base],
            Backend::V1 { memory, pids, kill } => memory.iter().chain(pids).chain(kill).collect(),
            Backend::None { .. } => Vec::new(),
        };
        for b in bases {
            let _ = fs::remove_dir(b);
        }
    }
}

/// One worker's group (one directory per hierarchy).
#[derive(Debug)]
pub struct Group {
    dirs: Vec<PathBuf>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    V2 {
        memory: bool,
        pids: bool,
        kill: bool,
    },
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        kill: Option<PathBuf>,
    },
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.events, memory.oom_control, pids.events).
fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
}

impl Group {
    /// Creates group `name` with `limits`.
    pub fn create(backend: &Backend, name: &str, limits: Limits) -> io::Result<Group> {
        match backend {
            Backend::None { reason } => {
                Err(io::Error::new(io::ErrorKind::Unsupported, reason.clone()))
            }
            Backend::V2 {
                base,
                memory,
                pids,
                kill,
            } => {
                let dir = base.join(name);
                create_fresh(&dir)?;
                let group = Group {
                    dirs: vec![dir.clone()],
                    kind: Kind::V2 {
                        memory: *memory,
                        pids: *pids,
                        kill: *kill,
                    },
                };
                if let (true, Some(m)) = (memory, limits.memory) {
                    write(&dir.join("memory.max"), &m.to_string())?;
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
                if let (true, Some(p)) = (pids, limits.pids) {
                    write(&dir.join("pids.max"), &p.to_string())?;
                }
                Ok(group)
            }
            Backend::V1 { memory, pids, kill } => {
                let mk = |b: &Option<PathBuf>| -> io::Result<Option<PathBuf>> {
                    b.as_ref()
                        .map(|b| {
                            let d = b.join(name);
                            create_fresh(&d).map(|()| d)
                        })
                        .transpose()
                };
                let (m, p, k) = (mk(memory)?, mk(pids)?, mk(kill)?);
                let dirs = m.iter().chain(&p).chain(&k).cloned().collect();
                let group = Group {
                    dirs,
                    kind: Kind::V1 {
                        memory: m.clone(),
                        pids: p.clone(),
                        kill: k,
                    },
                };
                if let (Some(d), Some(limit)) = (&m, limits.memory) {
                    write(&d.join("memory.limit_in_bytes"), &limit.to_string())?;
                    // No swap: memsw limit equal to the memory limit, where it exists.
                    let _ = write(&d.join("memory.memsw.limit_in_bytes"), &limit.to_string());
                }
                if let (Some(d), Some(limit)) = (&p, limits.pids) {
                    write(&d.join("pids.max"), &limit.to_string())?;
                }
                Ok(group)
            }
        }
    }

    /// Moves `pid` into every hierarchy of the group.
    pub fn add(&self, pid: i32) -> io::Result<()> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Pids currently in the group.
    pub fn pids(&self) -> Vec<i32> {
        let Some(d) = self.dirs.first() else {
            return Vec::new();
        };
        fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process in the group, even ones that called `setsid`.
    pub fn kill_all(&self) {
        let kill_file = match &self.kind {
            Kind::V2 { kill, .. } => self
                .dirs
                .first()
                .filter(|_| *kill)
                .map(|d| d.join("cgroup.kill")),
            Kind::V1 { kill, .. } => kill.as_ref().map(|d| d.join("cgroup.kill")),
        };
        if let Some(f) = kill_file {
            if fs::write(&f, "1").is_ok() {
                return;
            }
        }
        // No cgroup.kill: SIGKILL by pid until the group is empty. The
        // processes cannot leave the group, and a fork races at most a few
        // rounds before pids.max or the kills catch up.
        for _ in 0..100 {
            let pids = self.pids();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                // SAFETY: kill with integer arguments; pids come from our own group.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    pub fn usage(&self) -> Usage {
        match &self.kind {
            Kind::V2 { memory, pids, .. } => {
                let d = &self.dirs[0];
                let memory = memory.then_some(d);
                Usage {
                    memory_peak: memory.and_then(|d| read_u64(&d.join("memory.peak"))),
                    oom_killed: memory
                        .and_then(|d| read_key(&d.join("memory.events"), "oom_kill"))
                        .is_some_and(|n| n > 0),
                    pids_exhausted: pids
                        .then(|| read_key(&d.join("pids.events"), "max"))
                        .flatten()
                        .is_some_and(|n| n > 0),
                }
            }
            Kind::V1 { memory, pids, .. } => Usage {
                memory_peak: memory
                    .as_ref()
                    .and_then(|d| read_u64(&d.join("memory.max_usage_in_bytes"))),
                oom_killed: memory
                    .as_ref()
                    .and_then(|d| read_key(&d.join("memory.oom_control"), "oom_kill"))
                    .is_some_and(|n| n > 0),
                pids_exhausted: pids
                    .as_ref()
                    .and_then(|d| read_key(&d.join("pids.events"), "max"))
                    .is_some_and(|n| n > 0),
            },
        }
    }

    /// Kills what is left and removes the directories.
    pub fn remove(self) {
        self.kill_all();
        for d in &self.dirs {
            for _ in 0..200 {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_group_limits_and_kill_on_this_machine() {
        let backend = Backend::detect(&format!("plugwarden-unit-{}", std::process::id()));
        if !backend.is_active() {
            println!("not applicable: {}", backend.describe());
            return;
        }
        let g = Group::create(
            &backend,
            "g1",
            Limits {
                memory: Some(64 << 20),
                pids: Some(8),
            },
        )
        .unwrap();
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        g.add(child.id() as i32).unwrap();
        assert_eq!(g.pids(), vec![child.id() as i32]);
        g.remove();
        let status = child.wait().unwrap();
        assert!(!status.success());
        backend.cleanup();
    }

    /// A fork server whose PID was a SIGKILLed one's finds that one's empty
    /// groups under the same base: it makes them afresh (was EEXIST).
    #[test]
    fn test_a_dead_process_leftover_group_is_replaced() {
        let backend = Backend::detect(&format!("plugwarden-stale-{}", std::process::id()));
        if !backend.is_active() {
            println!("not applicable: {}", backend.describe());
            return;
        }
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(8),
        };
        let first = Group::create(&backend, "w1", limits).unwrap();
        std::mem::forget(first); // as a SIGKILLed fork server leaves it
        let again = Group::create(&backend, "w1", limits).unwrap();
        again.remove();
        backend.cleanup();
    }

    #[test]
    fn test_v2_backend_sets_limits_and_kills_the_tree() {
        let backend = Backend::detect(&format!("plugwarden-v2-{}", std::process::id()));
        let Backend::V2 {
            memory: true,
            pids: true,
            ..
        } = backend
        else {
            println!(
                "not applicable: cgroup v2 with the memory and pids controllers delegated is not available here ({}); the v1 path runs instead",
                backend.describe()
            );
            backend.cleanup();
            return;
        };
        let g = Group::create(
            &backend,
            "g1",
            Limits {
                memory: Some(64 << 20),
                pids: Some(8),
            },
        )
        .unwrap();
        assert_eq!(
            fs::read_to_string(g.dirs[0].join("memory.max"))
                .unwrap()
                .trim(),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            fs::read_to_string(g.dirs[0].join("pids.max"))
                .unwrap()
                .trim(),
            "8"
        );
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        g.add(child.id() as i32).unwrap();
        assert!(!g.usage().oom_killed);
        g.remove();
        assert!(!child.wait().unwrap().success());
        backend.cleanup();
    }
}
