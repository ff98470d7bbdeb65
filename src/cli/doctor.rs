//! `plugwarden doctor`: what this kernel and this process can do, and what
//! that means for each wall of the sandbox (enforced, weakened, refused).
//!
//! Every answer comes from a probe, not from a version number: the Landlock
//! ABI the kernel reports, the seccomp actions it lists, a cgroup created
//! and removed again, a user namespace created in a throwaway child.

use std::path::Path;

use caps::{CapSet, Capability};
use plugwarden::cgroup::Backend;
use plugwarden::landlock_rules;

use super::{Usage, EXIT_OK};

/// The pinned Landlock ABI as a number (landlock_rules::ABI_PINNED).
const LANDLOCK_PINNED: i64 = 7;

/// What the probes found.
struct Facts {
    landlock_abi: i64,
    seccomp_actions: Option<String>,
    kernel: (u32, u32),
    cgroup: Cgroups,
    /// What the fork server would use (probed the same way, then removed).
    backend: Backend,
    userns_max: Option<u64>,
    userns_ok: bool,
    root: bool,
    sys_resource_effective: bool,
    sys_resource_bounding: bool,
}

struct Cgroups {
    /// Controllers of the v2 hierarchy (pure v2 or the hybrid `unified` mount).
    v2: Option<(String, Vec<String>)>,
    /// Mounted v1 controllers.
    v1: Vec<String>,
    /// Directories where we created and removed a group.
    writable: Vec<String>,
    /// Directories where that failed, with the reason.
    refused: Vec<String>,
}

pub fn run() -> Result<u8, Usage> {
    super::policy::quiet_on_closed_stdout();
    let f = probe();
    print_facts(&f);
    println!();
    print_walls(&f);
    Ok(EXIT_OK)
}

fn probe() -> Facts {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let has = |set| caps::has_cap(None, set, Capability::CAP_SYS_RESOURCE).unwrap_or(false);
    Facts {
        landlock_abi: landlock_rules::kernel_abi(),
        seccomp_actions: read("/proc/sys/kernel/seccomp/actions_avail")
            .map(|s| s.trim().to_string()),
        kernel: kernel_version(),
        cgroup: cgroups(),
        backend: backend(),
        userns_max: read("/proc/sys/user/max_user_namespaces").and_then(|s| s.trim().parse().ok()),
        userns_ok: try_user_namespace(),
        root: nix::unistd::geteuid().is_root(),
        sys_resource_effective: has(CapSet::Effective),
        sys_resource_bounding: has(CapSet::Bounding),
    }
}

fn kernel_version() -> (u32, u32) {
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// The cgroup backend a fork server would pick, detected the same way and
/// its probe subtree removed again.
fn backend() -> Backend {
    let b = Backend::detect(&format!("plugwarden-doctor-{}", std::process::id()));
    b.cleanup();
    b
}

/// Creates and removes a group under `dir`: the only sure test of permission.
fn try_cgroup(dir: &Path) -> Result<(), std::io::Error> {
    let probe = dir.join(format!("plugwarden-doctor-{}", std::process::id()));
    std::fs::create_dir(&probe)?;
    std::fs::remove_dir(&probe)
}

fn cgroups() -> Cgroups {
    let root = Path::new("/sys/fs/cgroup");
    let controllers = |dir: &Path| {
        std::fs::read_to_string(dir.join("cgroup.controllers"))
            .ok()
            .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    };
    let mut v2 = None;
    let mut v1 = Vec::new();
    let mut candidates = Vec::new();
    if let Some(c) = controllers(root) {
        v2 = Some((root.display().to_string(), c));
        candidates.push(root.to_path_buf());
    } else {
        let unified = root.join("unified");
        if let Some(c) = controllers(&unified) {
            v2 = Some((unified.display().to_string(), c));
            candidates.push(unified);
        }
        if let Ok(entries) = std::fs::read_dir(root) {
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "unified" && n != "systemd")
                .collect();
            names.sort();
            v1 = names;
        }
        for name in ["pids", "memory"] {
            if v1.iter().any(|n| n == name) {
                candidates.push(root.join(name));
            }
        }
    }
    let mut writable = Vec::new();
    let mut refused = Vec::new();
    for dir in candidates {
        match try_cgroup(&dir) {
            Ok(()) => writable.push(dir.display().to_string()),
            Err(e) => refused.push(format!("{} ({e})", dir.display())),
        }
    }
    Cgroups {
        v2,
        v1,
        writable,
        refused,
    }
}

/// Forks a child that tries `unshare(CLONE_NEWUSER)` and reports by exit status.
fn try_user_namespace() -> bool {
    // SAFETY: doctor is single-threaded here; the child calls only the
    // async-signal-safe unshare and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: unshare takes an integer; the child exits right after.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
        // SAFETY: _exit never returns and runs no destructors.
        unsafe { libc::_exit(if rc == 0 { 0 } else { 1 }) };
    }
    if pid < 0 {
        return false;
    }
    let mut status = 0;
    // SAFETY: waits for the child we just forked; `status` is ours.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    rc == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn print_facts(f: &Facts) {
    println!("this machine and this process:");
    println!("  kernel: {}.{}", f.kernel.0, f.kernel.1);
    if f.landlock_abi == 0 {
        println!("  landlock: not available (disabled or kernel too old)");
    } else {
        println!(
            "  landlock: ABI {} (plugwarden pins ABI {LANDLOCK_PINNED})",
            f.landlock_abi
        );
    }
    match &f.seccomp_actions {
        Some(a) => println!("  seccomp actions: {a}"),
        None => println!(
            "  seccomp actions: unknown (/proc/sys/kernel/seccomp/actions_avail is missing)"
        ),
    }
    println!("  seccomp user notification: {}", yes(user_notif(f)));
    println!(
        "  seccomp notification CONTINUE (log-only mode): {}",
        yes(user_notif(f) && f.kernel >= (5, 5))
    );
    let c = &f.cgroup;
    match &c.v2 {
        Some((dir, ctl)) if ctl.is_empty() => {
            println!("  cgroup v2: {dir} (no controllers enabled)")
        }
        Some((dir, ctl)) => println!("  cgroup v2: {dir} ({})", ctl.join(" ")),
        None => println!("  cgroup v2: not mounted"),
    }
    if c.v1.is_empty() {
        println!("  cgroup v1: none");
    } else {
        println!("  cgroup v1 controllers: {}", c.v1.join(" "));
    }
    for dir in &c.writable {
        println!("  may create cgroups under {dir}: yes");
    }
    for why in &c.refused {
        println!("  may create cgroups under {why}: no");
    }
    println!("  cgroup backend for workers: {}", f.backend.describe());
    match f.userns_max {
        Some(n) => println!(
            "  user namespaces: max {n}, creating one {}",
            if f.userns_ok { "works" } else { "fails" }
        ),
        None => println!("  user namespaces: not available"),
    }
    println!("  running as root: {}", yes(f.root));
    println!(
        "  CAP_SYS_RESOURCE: effective {}, bounding {}",
        yes(f.sys_resource_effective),
        yes(f.sys_resource_bounding)
    );
}

fn user_notif(f: &Facts) -> bool {
    f.seccomp_actions
        .as_deref()
        .is_some_and(|a| a.split_whitespace().any(|w| w == "user_notif"))
}

fn print_walls(f: &Facts) {
    println!("walls on this machine:");
    let wall = |name: &str, state: &str, why: &str| println!("  {name:<20} {state:<10} {why}");
    if user_notif(f) {
        wall(
            "seccomp allowlist",
            "enforced",
            "violations are named by the supervisor (user notification)",
        );
    } else {
        wall(
            "seccomp allowlist",
            "refused",
            "this kernel has no seccomp user notification (Linux 5.0+)",
        );
    }
    if user_notif(f) && f.kernel >= (5, 5) {
        wall(
            "log-only mode",
            "available",
            "denied syscalls continue and are reported (--enforce log, learn)",
        );
    } else {
        wall(
            "log-only mode",
            "refused",
            "needs SECCOMP_USER_NOTIF_FLAG_CONTINUE (Linux 5.5+)",
        );
    }
    if f.landlock_abi >= LANDLOCK_PINNED {
        wall(
            "landlock files",
            "enforced",
            "read/write/exec limited to the policy's paths",
        );
        wall(
            "landlock TCP ports",
            "enforced",
            "connect/bind limited to the policy's ports",
        );
        wall(
            "landlock scopes",
            "enforced",
            "no signals or abstract unix sockets outside the sandbox",
        );
    } else {
        let why = format!(
            "the kernel offers Landlock ABI {}, plugwarden requires {LANDLOCK_PINNED}: sandboxes are refused at start",
            f.landlock_abi
        );
        wall("landlock", "refused", &why);
    }
    if f.root {
        wall(
            "identity drop",
            "enforced",
            "children drop to the policy's uid/gid and lose every capability",
        );
    } else {
        wall(
            "identity drop",
            "weakened",
            "not root: the plugin keeps this user's uid (Landlock and seccomp still apply)",
        );
    }
    if f.sys_resource_effective {
        wall(
            "rlimits",
            "enforced",
            "CPU, open files, file size, address space; may exceed this process's own limits",
        );
    } else {
        wall("rlimits", "enforced", "CPU, open files, file size, address space; capped at this process's own hard limits (no CAP_SYS_RESOURCE)");
    }
    cgroup_walls(&f.backend, &wall);
    // What the fork server decides (forkserver::userns_available): as an
    // ordinary user the walls come from a user namespace of the plugin's
    // own, unless the kernel refuses one or PLUGWARDEN_NO_USERNS=1.
    let no_userns = std::env::var_os("PLUGWARDEN_NO_USERNS").is_some_and(|v| v == "1");
    let walls = "ipc, uts (hostname plugwarden), an empty network, pid (an init as PID 1, the plugin its child, its own /proc) and mount (a minimal root), unless the policy turns one off";
    if f.root {
        wall("namespaces", "enforced", walls);
    } else if f.userns_ok && !no_userns {
        wall(
            "namespaces",
            "enforced",
            &format!("from a user namespace of the plugin's own: {walls}"),
        );
    } else {
        let why = if no_userns {
            "PLUGWARDEN_NO_USERNS=1"
        } else {
            "this kernel refuses unprivileged user namespaces"
        };
        wall(
            "namespaces",
            "weakened",
            &format!("none ({why}): no init, no minimal root, grants of /proc withheld; no_new_privs, Landlock, seccomp and rlimits still apply"),
        );
    }
}

fn cgroup_walls(backend: &Backend, wall: &dyn Fn(&str, &str, &str)) {
    let (memory, pids, kill) = match backend {
        Backend::V2 { .. } => (true, true, true),
        Backend::V1 { memory, pids, kill } => (memory.is_some(), pids.is_some(), kill.is_some()),
        Backend::None { .. } => (false, false, false),
    };
    if memory {
        wall(
            "memory",
            "enforced",
            "a memory cgroup per worker: an out-of-memory kill is attributed (verdict memory)",
        );
    } else {
        wall(
            "memory",
            "weakened",
            "RLIMIT_AS only: a memory verdict cannot be told from another SIGKILL",
        );
    }
    if pids {
        wall(
            "process count",
            "enforced",
            "a pids cgroup per worker (limits.processes + 1 tasks; 64 threads when 0)",
        );
    } else {
        wall(
            "process count",
            "weakened",
            "no pids cgroup: only seccomp's rule for limits.processes = 0 holds",
        );
    }
    if kill {
        wall(
            "tree kill",
            "enforced",
            "cgroup.kill ends every process of a worker, even one that called setsid",
        );
    } else if memory || pids {
        wall(
            "tree kill",
            "weakened",
            "by pid from the cgroup's list (no cgroup.kill)",
        );
    } else {
        wall(
            "tree kill",
            "weakened",
            "no cgroup: a grandchild that escaped the session may outlive its worker",
        );
    }
}
