//! `plugwarden doctor`: what this kernel and this process can do, and what
//! that means for each wall of the sandbox (enforced, weakened, refused).
//!
//! Every answer comes from the probes the sandbox itself uses
//! ([`plugwarden::kernel`], the cgroup backend, the user-namespace probe),
//! after the `PLUGWARDEN_*` simulation switches, so doctor says what a
//! sandbox started the same way would get. The walls are shown for this
//! process (root or not) and, for each Landlock right the ABI lacks, what
//! stands in for it under the shipped policies.
//!
//! `doctor --check` is the health check (the container image's): instead
//! of predicting, it starts a sandboxed child under each shipped policy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caps::{CapSet, Capability};
use clap::Args;
use plugwarden::cgroup::Backend;
use plugwarden::kernel::{self, Feature, Kernel};
use plugwarden::landlock_rules;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::spawn::ForkServer;

use super::{Usage, EXIT_OK, EXIT_VERDICT};

#[derive(Args)]
pub struct DoctorArgs {
    /// Health check: run a sandboxed child under each shipped policy; exit 1 if one cannot run.
    #[arg(long)]
    check: bool,
}

/// What the probes found.
struct Facts {
    kernel: &'static Kernel,
    seccomp_actions: Option<String>,
    cgroup: Cgroups,
    /// What the fork server would use (probed the same way, then removed).
    backend: Backend,
    userns_max: Option<u64>,
    /// Not root: whether children get a user namespace (`Err`: why not).
    userns: Result<(), kernel::UsernsError>,
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

pub fn run(a: DoctorArgs) -> Result<u8, Usage> {
    super::policy::quiet_on_closed_stdout();
    if a.check {
        return check();
    }
    let f = probe();
    print_facts(&f);
    println!();
    print_walls(&f);
    Ok(EXIT_OK)
}

/// Runs this very program (`plugwarden version --json`, as a filter) under
/// each shipped policy: one line per policy, `ok` or why not. Any failure
/// exits 1, a container runtime's "unhealthy" (2 is reserved there).
fn check() -> Result<u8, Usage> {
    let (fs, exe) = match start() {
        Ok(both) => both,
        Err(Usage(why)) => {
            println!("fork server: {why}");
            return Ok(EXIT_VERDICT);
        }
    };
    let mut healthy = true;
    for (name, _) in plugwarden::policy::BUILTIN {
        let line = match run_under(&fs, &exe, name) {
            Ok(0) => "ok: a sandboxed child ran".to_string(),
            Ok(n) => {
                format!("ok: a sandboxed child ran, {n} wall(s) weakened (see `plugwarden doctor`)")
            }
            Err(why) => {
                healthy = false;
                why
            }
        };
        println!("policy {name:<8} {line}");
    }
    Ok(if healthy { EXIT_OK } else { EXIT_VERDICT })
}

fn start() -> Result<(Arc<ForkServer>, PathBuf), Usage> {
    let exe = std::env::current_exe()
        .map_err(|e| Usage(format!("cannot find this program's path: {e}")))?;
    Ok((super::start_fork_server()?, exe))
}

/// The number of weakened walls when the child ran ok.
fn run_under(fs: &Arc<ForkServer>, exe: &Path, policy: &str) -> Result<usize, String> {
    let policy = plugwarden::policy::load(policy).map_err(|e| e.to_string())?;
    let plugin = PluginSpec {
        exe: exe.to_path_buf(),
        args: vec!["version".into(), "--json".into()],
        mode: Mode::Filter,
        env: Vec::new(),
        cwd: None,
    };
    let sandbox = Sandbox::new(fs.clone(), plugin, Arc::new(policy), Enforce::Policy)
        .map_err(|e| e.to_string())?;
    let outcome = super::run::run_one(&sandbox, &Vec::new().into(), Default::default());
    if outcome.verdict.is_ok() && outcome.output.starts_with(b"{\"version\":") {
        Ok(sandbox.weakenings.len())
    } else {
        Err(format!("a sandboxed child got {}", outcome.verdict))
    }
}

fn probe() -> Facts {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let has = |set| caps::has_cap(None, set, Capability::CAP_SYS_RESOURCE).unwrap_or(false);
    Facts {
        kernel: kernel::kernel(),
        seccomp_actions: read("/proc/sys/kernel/seccomp/actions_avail")
            .map(|s| s.trim().to_string()),
        cgroup: cgroups(),
        backend: backend(),
        userns_max: read("/proc/sys/user/max_user_namespaces").and_then(|s| s.trim().parse().ok()),
        userns: kernel::userns_available(),
        root: nix::unistd::geteuid().is_root(),
        sys_resource_effective: has(CapSet::Effective),
        sys_resource_bounding: has(CapSet::Bounding),
    }
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

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn print_facts(f: &Facts) {
    let k = f.kernel;
    println!("this machine and this process:");
    let floor = match k.check() {
        Ok(()) => format!(
            "at or above the floor, Linux {}.{}",
            kernel::FLOOR.0,
            kernel::FLOOR.1
        ),
        Err(e) => format!("REFUSED: {e}"),
    };
    println!("  kernel: {}.{} ({floor})", k.release.0, k.release.1);
    for s in &k.switches {
        println!("  simulated: {s}");
    }
    if k.landlock_abi == 0 {
        println!("  landlock: not available (Linux 5.13+ with landlock in the boot's lsm= list)");
    } else {
        println!(
            "  landlock: ABI {} (the kernel reports {}; plugwarden uses up to {})",
            k.landlock_abi,
            k.landlock_abi_kernel,
            kernel::LANDLOCK_NEWEST
        );
    }
    match &f.seccomp_actions {
        Some(a) => println!("  seccomp actions: {a}"),
        None => println!(
            "  seccomp actions: unknown (/proc/sys/kernel/seccomp/actions_avail is missing)"
        ),
    }
    for feature in Feature::ALL {
        let (major, minor) = feature.since();
        if k.has(feature) {
            println!("  {} (Linux {major}.{minor}): yes", feature.name());
        } else {
            println!(
                "  {} (Linux {major}.{minor}): no: {}",
                feature.name(),
                feature.without()
            );
        }
    }
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
    match (f.userns_max, &f.userns) {
        (None, _) => println!("  user namespaces: not available"),
        (Some(n), Ok(())) => println!("  user namespaces: max {n}, creating one works"),
        (Some(n), Err(why)) => println!("  user namespaces: max {n}, not usable: {why}"),
    }
    println!("  running as root: {}", yes(f.root));
    println!(
        "  CAP_SYS_RESOURCE: effective {}, bounding {}",
        yes(f.sys_resource_effective),
        yes(f.sys_resource_bounding)
    );
}

/// What a wall is on this machine for this process.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Enforced,
    /// Another wall stands in for it.
    Covered,
    Weakened,
    Available,
    Refused,
}

impl State {
    fn word(self) -> &'static str {
        match self {
            State::Enforced => "enforced",
            State::Covered => "covered",
            State::Weakened => "weakened",
            State::Available => "available",
            State::Refused => "refused",
        }
    }
}

/// The namespaces a child of this process gets (with the shipped
/// policies, which keep them all on).
fn namespaces(f: &Facts) -> bool {
    f.root || f.userns.is_ok()
}

fn print_walls(f: &Facts) {
    let who = if f.root {
        "as root".to_string()
    } else {
        format!("without root (uid {})", nix::unistd::geteuid())
    };
    println!("walls on this machine, {who}:");
    let wall =
        |name: &str, state: State, why: &str| println!("  {name:<36} {:<9} {why}", state.word());
    let k = f.kernel;
    if let Err(e) = k.check() {
        wall("every wall", State::Refused, &e.to_string());
        return;
    }
    seccomp_walls(k, &wall);
    landlock_walls(f, &wall);
    let userns = match &f.userns {
        Ok(()) => String::new(),
        Err(why) => why.to_string(),
    };
    match (f.root, namespaces(f)) {
        (true, _) => wall(
            "identity drop",
            State::Enforced,
            "children drop to the policy's uid/gid and lose every capability",
        ),
        (false, true) => wall(
            "identity drop",
            State::Weakened,
            "the plugin keeps this user's uid (65534 inside its own user namespace, with no capability there); Landlock, seccomp and the namespaces keep it from this user's other processes and files",
        ),
        (false, false) => wall(
            "identity drop",
            State::Weakened,
            "the plugin keeps this user's uid and no user namespace separates it (Landlock and seccomp still apply)",
        ),
    }
    if f.sys_resource_effective {
        wall(
            "rlimits",
            State::Enforced,
            "CPU, open files, file size, address space and data, each with hard = soft (the plugin cannot raise one); may exceed this process's own limits",
        );
    } else {
        wall("rlimits", State::Enforced, "CPU, open files, file size, address space and data, each with hard = soft (the plugin cannot raise one); capped at this process's own hard limits (no CAP_SYS_RESOURCE)");
    }
    cgroup_walls(f, &wall);
    // What the fork server decides: as an ordinary user the walls come
    // from a user namespace of the plugin's own, unless the kernel refuses
    // one or PLUGWARDEN_NO_USERNS=1 (then `userns` says which).
    let walls = "ipc, uts (hostname plugwarden), an empty network, pid (an init as PID 1, the plugin its child, its own /proc) and mount (a minimal root), unless the policy turns one off";
    match (f.root, namespaces(f)) {
        (true, _) => wall("namespaces", State::Enforced, walls),
        (false, true) => wall(
            "namespaces",
            State::Enforced,
            &format!("from a user namespace of the plugin's own: {walls}"),
        ),
        (false, false) => wall(
            "namespaces",
            State::Weakened,
            &format!("none ({userns}): no init, no minimal root, grants of /proc withheld; no_new_privs, Landlock, seccomp and rlimits still apply"),
        ),
    }
    if k.has(Feature::MfdNoexecSeal) {
        wall(
            "arena seal",
            State::Enforced,
            "the shared-memory arena can never be made executable (MFD_NOEXEC_SEAL)",
        );
    } else {
        wall(
            "arena seal",
            State::Covered,
            Feature::MfdNoexecSeal.without(),
        );
    }
}

fn seccomp_walls(k: &Kernel, wall: &dyn Fn(&str, State, &str)) {
    // check() passed: user notification and the pidfd calls are there.
    wall(
        "seccomp allowlist",
        State::Enforced,
        "violations are named by the supervisor (user notification)",
    );
    if k.has(Feature::NotifContinue) {
        wall(
            "log-only mode",
            State::Available,
            "denied syscalls continue and are reported (--enforce log, learn)",
        );
    } else {
        wall(
            "log-only mode",
            State::Refused,
            "needs the seccomp notification CONTINUE flag (Linux 5.5+)",
        );
    }
}

fn landlock_walls(f: &Facts, wall: &dyn Fn(&str, State, &str)) {
    let abi = f.kernel.landlock_abi;
    if abi > 0 {
        wall(
            "landlock files",
            State::Enforced,
            &format!("read/write/exec limited to the policy's paths (ABI {abi})"),
        );
    }
    if abi >= 4 {
        wall(
            "landlock TCP ports",
            State::Enforced,
            "connect/bind limited to the policy's ports",
        );
    }
    if abi >= 6 {
        wall(
            "landlock scopes",
            State::Enforced,
            "no signals or abstract unix sockets outside the sandbox",
        );
    }
    let ns = namespaces(f);
    let shipped = landlock_rules::Cover {
        net_ns: ns,
        pid_ns: ns,
        minimal_root: ns,
        ..Default::default()
    };
    for gap in landlock_rules::gaps(abi, &shipped) {
        let (major, minor) = kernel::landlock_since(gap.abi);
        let name = format!("landlock {}", gap.right);
        let head = format!("needs ABI {} (Linux {major}.{minor})", gap.abi);
        match gap.cover {
            Ok(by) => wall(&name, State::Covered, &format!("{head}; covered by {by}")),
            Err(loss) => wall(
                &name,
                State::Weakened,
                &format!("{head}; {loss} (best_effort = false refuses)"),
            ),
        }
    }
}

fn cgroup_walls(f: &Facts, wall: &dyn Fn(&str, State, &str)) {
    let b = &f.backend;
    let pidns = namespaces(f);
    if b.has_memory() {
        wall(
            "memory",
            State::Enforced,
            "a memory cgroup per worker: an out-of-memory kill is attributed (verdict memory)",
        );
    } else {
        wall(
            "memory",
            State::Weakened,
            "RLIMIT_AS only: an allocation failure the plugin reports on stderr (Rust's \"memory allocation of N bytes failed\", MemoryError, std::bad_alloc, ENOMEM's message) is the verdict memory; a kernel OOM kill is the verdict crashed",
        );
    }
    let nproc = !f.root && pidns && f.kernel.has(Feature::NprocPerUserns);
    if b.has_pids() {
        wall(
            "process count",
            State::Enforced,
            "a pids cgroup per worker (limits.processes + 1 tasks, one more for the sandbox's init; 64 threads when 0)",
        );
    } else if nproc {
        wall(
            "process count",
            State::Enforced,
            "RLIMIT_NPROC in the plugin's own user namespace, which counts only its sandbox's tasks (limits.processes + 1, one more for the sandbox's init; 64 threads when 0)",
        );
    } else {
        wall(
            "process count",
            State::Weakened,
            "no pids cgroup and no per-user-namespace RLIMIT_NPROC: only seccomp's rule for limits.processes = 0 holds",
        );
    }
    if b.has_kill() {
        wall(
            "tree kill",
            State::Enforced,
            "cgroup.kill ends every process of a worker, even one that called setsid",
        );
    } else if pidns {
        wall(
            "tree kill",
            State::Enforced,
            "the PID namespace: when the plugin exits, its init (PID 1) exits and the kernel kills every process in it",
        );
    } else if b.is_active() {
        wall(
            "tree kill",
            State::Weakened,
            "by pid from the cgroup's list (no cgroup.kill)",
        );
    } else {
        wall(
            "tree kill",
            State::Weakened,
            "no cgroup and no PID namespace: a grandchild that escaped the session may outlive its worker",
        );
    }
}
