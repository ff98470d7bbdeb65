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
//! - cgroup v2 with the `memory` and `pids` controllers delegated to us:
//!   `memory.max`, `memory.swap.max`, `pids.max`, `memory.events` (oom_kill),
//!   `memory.peak`, `cgroup.kill`;
//! - cgroup v1 (this project's CI machines): `memory.limit_in_bytes`,
//!   `memory.max_usage_in_bytes`, `memory.oom_control` (oom_kill),
//!   `pids.max`, and `cgroup.kill` from a controller-less cgroup2 mount
//!   (`/sys/fs/cgroup/unified`) for the tree kill when there is one;
//! - neither: rlimits only, and the reason is reported (doctor, log, audit).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where worker groups can be made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Backend {
    /// A delegated cgroup v2 subtree.
    V2 { base: PathBuf },
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

/// `dir` if we may create and remove a group inside it.
fn writable_base(mount: &Path, own: &str, name: &str) -> Option<PathBuf> {
    let base = mount.join(own.trim_start_matches('/')).join(name);
    fs::create_dir_all(&base).ok()?;
    let probe = base.join(format!("probe-{}", std::process::id()));
    fs::create_dir(&probe).ok()?;
    fs::remove_dir(&probe).ok()?;
    Some(base)
}

impl Backend {
    /// Finds what this machine and process allow. `name` makes the subtree
    /// unique to one fork server.
    pub fn detect(name: &str) -> Backend {
        let root = Path::new("/sys/fs/cgroup");
        let v2_controllers =
            fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if v2_controllers.split_whitespace().any(|c| c == "memory")
            && v2_controllers.split_whitespace().any(|c| c == "pids")
        {
            let own = own_path("").unwrap_or_default();
            if let Some(base) = writable_base(root, &own, name) {
                let enable = fs::write(base.join("cgroup.subtree_control"), "+memory +pids");
                if enable.is_ok() {
                    return Backend::V2 { base };
                }
                let _ = fs::remove_dir(&base);
            }
            return Backend::None {
                reason: "cgroup v2 is mounted but no subtree with memory and pids is delegated to this user".into(),
            };
        }
        let v1 = |c: &str| {
            let mount = root.join(c);
            mount.join("cgroup.procs").exists().then_some(())?;
            writable_base(&mount, &own_path(c).unwrap_or_default(), name)
        };
        let (memory, pids) = (v1("memory"), v1("pids"));
        let unified = root.join("unified");
        let kill = if unified.join("cgroup.procs").exists() {
            writable_base(&unified, &own_path("").unwrap_or_default(), name).filter(|b| {
                // cgroup.kill exists in child groups only; check one.
                let probe = b.join("probe-kill");
                let ok = fs::create_dir(&probe).is_ok() && probe.join("cgroup.kill").exists();
                let _ = fs::remove_dir(&probe);
                ok
            })
        } else {
            None
        };
        if memory.is_none() && pids.is_none() {
            return Backend::None {
                reason: "no writable memory or pids cgroup (not root, or cgroups not delegated)"
                    .into(),
            };
        }
        Backend::V1 { memory, pids, kill }
    }

    pub fn is_active(&self) -> bool {
        !matches!(self, Backend::None { .. })
    }

    /// One line for doctor and the log.
    pub fn describe(&self) -> String {
        match self {
            Backend::V2 { base } => format!("cgroup v2 at {}", base.display()),
            Backend::V1 { memory, pids, kill } => format!(
                "cgroup v1: memory {}, pids {}, tree kill {}",
                if memory.is_some() { "yes" } else { "no" },
                if pids.is_some() { "yes" } else { "no" },
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
            Backend::V2 { base } => vec![base],
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
    V2,
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
            Backend::V2 { base } => {
                let dir = base.join(name);
                fs::create_dir(&dir)?;
                let group = Group {
                    dirs: vec![dir.clone()],
                    kind: Kind::V2,
                };
                if let Some(m) = limits.memory {
                    write(&dir.join("memory.max"), &m.to_string())?;
                    let _ = write(&dir.join("memory.swap.max"), "0");
                }
                if let Some(p) = limits.pids {
                    write(&dir.join("pids.max"), &p.to_string())?;
                }
                Ok(group)
            }
            Backend::V1 { memory, pids, kill } => {
                let mk = |b: &Option<PathBuf>| -> io::Result<Option<PathBuf>> {
                    b.as_ref()
                        .map(|b| {
                            let d = b.join(name);
                            fs::create_dir(&d).map(|()| d)
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
            Kind::V2 => self.dirs.first().map(|d| d.join("cgroup.kill")),
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
            Kind::V2 => {
                let d = &self.dirs[0];
                Usage {
                    memory_peak: read_u64(&d.join("memory.peak")),
                    oom_killed: read_key(&d.join("memory.events"), "oom_kill")
                        .is_some_and(|n| n > 0),
                    pids_exhausted: read_key(&d.join("pids.events"), "max").is_some_and(|n| n > 0),
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

    #[test]
    fn test_v2_backend_sets_limits_and_kills_the_tree() {
        let backend = Backend::detect(&format!("plugwarden-v2-{}", std::process::id()));
        let Backend::V2 { .. } = backend else {
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
