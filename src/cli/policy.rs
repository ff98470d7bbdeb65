//! `plugwarden policy list|check|explain`: policies a reviewer can read.
//!
//! `explain` does not paraphrase the TOML: it resolves the policy, expands
//! its groups, compiles the very BPF programs a child would get and runs
//! sample syscalls through them in user space (`seccomp::evaluate`), so
//! what it prints is what the kernel would do.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use plugwarden::policy::check::{self, Severity};
use plugwarden::policy::groups::{self, Arch};
use plugwarden::policy::{self, OnViolation, Origin, Policy, BUILTIN};
use plugwarden::seccomp;

use super::{Usage, EXIT_OK, EXIT_USAGE};

#[derive(Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// The built-in policies and the files in ./policies/, with their descriptions.
    List,
    /// Parse, resolve and check policy files: errors exit with status 2, warnings are printed.
    Check {
        /// Policy files (or built-in names).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
    },
    /// Say in plain words what a policy lets a plugin do, and test its compiled filter.
    Explain {
        /// A built-in policy name or a policy file.
        #[arg(value_name = "NAME|FILE")]
        policy: String,
    },
}

pub fn run(a: PolicyArgs) -> Result<u8, Usage> {
    quiet_on_closed_stdout();
    match a.command {
        PolicyCommand::List => list(),
        PolicyCommand::Check { files } => Ok(check_files(&files)),
        PolicyCommand::Explain { policy } => explain(&policy),
    }
}

/// `policy explain | head` should end quietly, like any Unix text tool,
/// not panic in `println!`. Only for commands that start no plugin: the
/// host must keep ignoring SIGPIPE while it writes to a plugin's pipes.
pub fn quiet_on_closed_stdout() {
    // SAFETY: sets the disposition of one signal to its default; no
    // handler runs and no memory is passed.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn description_of(origin: Origin, text: &str) -> String {
    match policy::parse(&origin, text) {
        Ok(f) => f.description.unwrap_or_else(|| "(no description)".into()),
        Err(e) => format!("(invalid: {e})"),
    }
}

fn list() -> Result<u8, Usage> {
    println!("built-in policies:");
    let width = BUILTIN.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, text) in BUILTIN {
        println!(
            "  {name:<width$}  {}",
            description_of(Origin::Builtin(name), text)
        );
    }
    let dir = Path::new("policies");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    if files.is_empty() {
        println!("no policy files in ./policies/");
        return Ok(EXIT_OK);
    }
    println!("files in ./policies/:");
    let width = files
        .iter()
        .map(|p| p.display().to_string().len())
        .max()
        .unwrap_or(0);
    for path in files {
        let shown = path.display().to_string();
        let description = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let stale = BUILTIN.iter().any(|(n, t)| *n == stem && *t != text);
                let note = if stale {
                    format!(" (differs from the built-in {stem:?}: rebuild to embed it)")
                } else {
                    String::new()
                };
                format!(
                    "{}{note}",
                    description_of(Origin::File(path.clone()), &text)
                )
            }
            Err(e) => format!("(unreadable: {e})"),
        };
        println!("  {shown:<width$}  {description}");
    }
    Ok(EXIT_OK)
}

fn check_files(files: &[String]) -> u8 {
    let mut failed = false;
    for file in files {
        let findings = check::check_name_or_path(file);
        for f in &findings {
            eprintln!("{f}");
        }
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let warnings = findings.len() - errors;
        failed |= errors > 0;
        match (errors, warnings) {
            (0, 0) => println!("{file}: ok"),
            (0, w) => println!("{file}: ok, {w} warning{}", plural(w)),
            (e, w) => println!("{file}: {e} error{}, {w} warning{}", plural(e), plural(w)),
        }
    }
    if failed {
        EXIT_USAGE
    } else {
        EXIT_OK
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn explain(name: &str) -> Result<u8, Usage> {
    let p = policy::load(name)?;
    let allowed = |s: &str| p.syscalls.allow.contains(s);
    println!("policy {}: {}", p.name, p.description);
    println!();
    files(&p);
    println!();
    network(&p, &allowed);
    println!();
    processes(&p, &allowed);
    println!();
    namespaces(&p);
    println!();
    limits(&p);
    println!();
    syscalls(&p);
    println!();
    samples(&p)?;
    Ok(EXIT_OK)
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn files(p: &Policy) {
    let fs = &p.filesystem;
    println!("files:");
    if fs.read.is_empty() && fs.write.is_empty() && fs.exec.is_empty() {
        println!("  the plugin cannot open any file except what loading its own executable needs (the executable, its ELF interpreter and libraries);");
    } else {
        println!("  the plugin can open only the paths below and what loading its own executable needs (the executable, its ELF interpreter and libraries);");
    }
    println!("  Landlock confines those opens (seccomp allows openat but cannot see paths).");
    let loading = "what loading the executable needs";
    if fs.read.is_empty() {
        println!("  read:    nothing beyond {loading}");
    } else {
        println!(
            "  read:    {} (files, and directory listings beneath), plus {loading}",
            list_paths(&fs.read)
        );
    }
    if fs.write.is_empty() {
        println!("  write:   nothing: no file can be created, changed or removed");
    } else {
        println!(
            "  write:   {} (create, change and remove beneath)",
            list_paths(&fs.write)
        );
    }
    if fs.exec.is_empty() {
        println!(
            "  execute: nothing beyond its own executable and its ELF (or script) interpreter"
        );
    } else {
        println!(
            "  execute: {}, plus its own executable and its ELF (or script) interpreter",
            list_paths(&fs.exec)
        );
    }
}

fn families(p: &Policy) -> String {
    p.syscalls
        .socket_families
        .iter()
        .map(|f| policy::family_name(u64::from(*f)).map_or_else(|| f.to_string(), str::to_string))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ports(ports: &[u16]) -> String {
    if ports.is_empty() {
        "no port".into()
    } else {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn network(p: &Policy, allowed: &dyn Fn(&str) -> bool) {
    println!("network:");
    if !allowed("socket") && !allowed("socketpair") {
        println!("  the plugin cannot open sockets: seccomp denies socket and socketpair.");
    } else if p.syscalls.socket_families.is_empty() {
        println!(
            "  the plugin may create sockets of every address family (no socket_families rule)."
        );
    } else {
        println!(
            "  the plugin may create sockets of these families only: {}.",
            families(p)
        );
    }
    println!(
        "  TCP connect: {}; TCP bind: {} (Landlock denies every other TCP port).",
        ports(&p.network.connect_tcp),
        ports(&p.network.bind_tcp)
    );
}

fn processes(p: &Policy, allowed: &dyn Fn(&str) -> bool) {
    println!("processes:");
    if p.limits.processes == 0 {
        println!("  the plugin cannot create processes: seccomp denies fork, vfork and clone without CLONE_THREAD;");
        println!("  clone3 answers ENOSYS (its flags are out of the filter's sight), so libc falls back to clone.");
    } else {
        println!(
            "  the plugin may create processes (clone without namespace flags, and fork, vfork if listed);"
        );
        println!(
            "  a pids cgroup (without root and without one: RLIMIT_NPROC in the plugin's own user namespace) caps its tasks at {}, plus one for the sandbox's init (see `plugwarden doctor`).",
            p.limits.processes + 1
        );
    }
    if allowed("clone") {
        println!("  threads: allowed (clone with CLONE_THREAD); namespaces: never (clone with CLONE_NEW* is denied).");
    } else {
        println!("  threads: not allowed (clone is not in the allowlist).");
    }
    match (allowed("execve"), allowed("execveat")) {
        (true, true) => println!("  exec: execve and execveat allowed (Landlock limits what may run); a plugin built with the Rust SDK denies them (and openat) after start-up."),
        (false, false) => println!("  exec: only the host's own start of the plugin (execveat on an fd the plugin can never hold); every exec of the plugin's is a violation."),
        (true, false) => println!("  exec: execve allowed; execveat only as the host's own start of the plugin."),
        (false, true) => println!("  exec: execveat allowed; execve denied (a script plugin needs it: the kernel starts scripts through it)."),
    }
}

fn namespaces(p: &Policy) {
    let ns = &p.namespaces;
    println!("namespaces (as root, or from a user namespace as an ordinary user; `plugwarden doctor` says what this machine does):");
    let line = |on: bool, name: &str, yes: &str, no: &str| {
        println!("  {name}: {}", if on { yes } else { no });
    };
    line(
        ns.mount,
        "mount",
        "a minimal root: a tmpfs with read-only binds of /usr and the granted paths, a minimal /dev, a private /tmp",
        "off: the plugin sees the host's filesystem tree (Landlock still confines its opens)",
    );
    line(
        ns.pid,
        "pid",
        "its own PID namespace and /proc: an init is PID 1 (it reaps orphans and reports the plugin's exit), the plugin is its child and sees no other process",
        "off: the plugin shares the host's PID namespace; no init, and grants of /proc are withheld",
    );
    line(
        ns.net,
        "net",
        "an empty network namespace: no interface but a downed loopback",
        "off: the plugin shares the host's network namespace",
    );
    line(
        ns.ipc,
        "ipc",
        "private System V IPC and POSIX message queues",
        "off: shares the host's IPC objects",
    );
    line(
        ns.uts,
        "uts",
        "a private hostname (plugwarden)",
        "off: shares the host's hostname",
    );
}

fn limits(p: &Policy) {
    let l = &p.limits;
    let size = |b: u64| bytesize::ByteSize(b).to_string();
    let dur = |d: std::time::Duration| humantime::format_duration(d).to_string();
    println!("limits:");
    println!(
        "  wall time per input: {}; CPU time per input: {}",
        dur(l.wall),
        dur(l.cpu)
    );
    println!(
        "  memory (address space and data; hard = soft for every limit): {}; open files: {}",
        size(l.memory),
        l.open_files
    );
    if l.file_size == 0 {
        println!("  file size: 0 (no byte can be written to a file)");
    } else {
        println!("  file size: {}", size(l.file_size));
    }
    println!(
        "  input: {}; output per input: {}; largest frame: {}",
        size(l.input),
        size(l.output),
        size(u64::from(l.max_frame))
    );
    println!(
        "  identity: uid {}, gid {} (when plugwarden runs as root)",
        p.identity.uid, p.identity.gid
    );
    let w = &p.worker;
    println!(
        "  worker: recycled after {} jobs, above {} resident, or after {}",
        w.batch,
        size(w.recycle_rss),
        dur(w.max_lifetime)
    );
    match p.syscalls.on_violation {
        OnViolation::Kill => println!("  on violation: kill the plugin; the verdict names the syscall, e.g. `violation: socket(AF_INET, SOCK_STREAM, 0)`"),
        OnViolation::Errno => println!("  on violation: the syscall fails with EPERM and the job goes on; the denial is reported"),
    }
}

fn syscalls(p: &Policy) {
    let allow = &p.syscalls.allow;
    println!(
        "syscalls allowed after group expansion ({}; every other syscall is a violation):",
        allow.len()
    );
    // Groups the policy holds whole, each syscall under the first of them;
    // what no whole group covers is listed on its own.
    let mut shown = std::collections::BTreeSet::new();
    for group in groups::GROUPS {
        let members = groups::expand(&[group.name]).unwrap_or_default();
        if !members.iter().all(|m| allow.contains(*m)) {
            continue;
        }
        let here: Vec<&str> = members
            .into_iter()
            .filter(|m| !shown.contains(*m))
            .collect();
        if here.is_empty() {
            continue;
        }
        shown.extend(here.iter().copied());
        println!("  {}: {}", group.name, here.join(" "));
    }
    let rest: Vec<&str> = allow
        .iter()
        .map(String::as_str)
        .filter(|s| !shown.contains(s))
        .collect();
    if !rest.is_empty() {
        println!("  not as a whole group: {}", rest.join(" "));
    }
    if p.limits.processes == 0 && (allow.contains("fork") || allow.contains("vfork")) {
        println!("  fork, vfork: listed, but denied because limits.processes = 0");
    }
    if allow.contains("clone3") {
        println!("  clone3: listed, but always answers ENOSYS (libc falls back to clone, whose flags the filter checks)");
    }
    println!("  always, whatever the policy says: exit and exit_group (every process ends through them; a policy cannot deny them),");
    println!("    and the host's own start of the plugin (execveat on an fd number the plugin can never hold).");
    if !p.syscalls.denied.contains("seccomp") {
        println!("  seccomp(SECCOMP_SET_MODE_FILTER, 0), so a plugin can restrict itself further (unless the policy denies seccomp).");
    }
    if allow.contains("prlimit64") && !allow.contains("setrlimit") {
        println!("  prlimit64: only to read limits (new limit NULL); changing one needs setrlimit (@resources), and never above the hard limit, which equals the soft one.");
    }
    if !p.syscalls.errno.is_empty() {
        let answers: Vec<String> = p
            .syscalls
            .errno
            .iter()
            .map(|(name, &e)| {
                let effect =
                    if allow.contains(name) && !seccomp::ARGUMENT_RULED.contains(&name.as_str()) {
                        " (allowed: no effect)"
                    } else {
                        ""
                    };
                format!(
                    "{name} → {:?}{effect}",
                    nix::errno::Errno::from_raw(i32::from(e))
                )
            })
            .collect();
        println!(
            "  errno answers (instead of a violation, for calls the allowlist does not admit):"
        );
        println!("    {}", answers.join(", "));
    }
    if allow.contains("ioctl") {
        let names: Vec<String> = p
            .syscalls
            .ioctl
            .iter()
            .map(|n| {
                policy::IOCTLS
                    .iter()
                    .find(|(_, v)| v == n)
                    .map_or_else(|| format!("{n:#x}"), |(s, _)| s.to_string())
            })
            .collect();
        if names.is_empty() {
            println!("  ioctl: no request passes (syscalls.ioctl is empty)");
        } else {
            println!(
                "  ioctl: only {} (compared on the low 32 bits, as the kernel does)",
                names.join(", ")
            );
        }
    }
    if (allow.contains("socket") || allow.contains("socketpair"))
        && !p.syscalls.socket_families.is_empty()
    {
        println!("  socket, socketpair: only {}", families(p));
    }
}

/// A sample syscall for the BPF table.
struct Sample {
    label: &'static str,
    name: &'static str,
    args: [u64; 6],
}

fn samples_list() -> Vec<Sample> {
    let fork = (libc::SIGCHLD | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64;
    let thread = seccomp::PTHREAD_CLONE_FLAGS;
    let userns = fork | libc::CLONE_NEWUSER as u64;
    let af = |f: i32| f as u64;
    let stream = libc::SOCK_STREAM as u64;
    let tiocsti = 0x5412u64;
    let s = |label, name, args| Sample { label, name, args };
    vec![
        s("read", "read", [0; 6]),
        s("write", "write", [1, 0, 0, 0, 0, 0]),
        s(
            "openat",
            "openat",
            [libc::AT_FDCWD as u64, 0, libc::O_RDONLY as u64, 0, 0, 0],
        ),
        s(
            "socket(AF_INET)",
            "socket",
            [af(libc::AF_INET), stream, 0, 0, 0, 0],
        ),
        s(
            "socket(AF_UNIX)",
            "socket",
            [af(libc::AF_UNIX), stream, 0, 0, 0, 0],
        ),
        s("execve", "execve", [0; 6]),
        s("clone (fork flags)", "clone", [fork, 0, 0, 0, 0, 0]),
        s("clone (thread flags)", "clone", [thread, 0, 0, 0, 0, 0]),
        s("clone (CLONE_NEWUSER)", "clone", [userns, 0, 0, 0, 0, 0]),
        s("clone3", "clone3", [0; 6]),
        s(
            "ptrace",
            "ptrace",
            [libc::PTRACE_ATTACH as u64, 1, 0, 0, 0, 0],
        ),
        s("ioctl(TIOCSTI)", "ioctl", [0, tiocsti, 0, 0, 0, 0]),
        s(
            "ioctl(TIOCSTI | 0x100000000)",
            "ioctl",
            [0, tiocsti | 0x1_0000_0000, 0, 0, 0, 0],
        ),
        s("ioctl(TCGETS)", "ioctl", [0, 0x5401, 0, 0, 0, 0]),
        s("mount", "mount", [0; 6]),
        s("bpf", "bpf", [0; 6]),
    ]
}

/// The kernel's rule when several filters are installed: the action with
/// the lowest value (as a signed 32-bit number) wins, so KILL_PROCESS
/// beats ERRNO, which beats USER_NOTIF, which beats ALLOW.
fn strictest(results: &[u32]) -> u32 {
    *results
        .iter()
        .min_by_key(|r| (**r & 0xffff_0000) as i32)
        .expect("at least one filter")
}

fn action_word(ret: u32, on_violation: OnViolation) -> String {
    match ret & 0xffff_0000 {
        seccomp::RET_ALLOW => "allow".into(),
        seccomp::RET_USER_NOTIF => match on_violation {
            OnViolation::Kill => "deny (violation)".into(),
            OnViolation::Errno => "deny (EPERM)".into(),
        },
        seccomp::RET_ERRNO => format!(
            "deny ({:?})",
            nix::errno::Errno::from_raw((ret & 0xffff) as i32)
        ),
        seccomp::RET_KILL_PROCESS | 0 => "deny (killed)".into(),
        other => format!("action {other:#x}"),
    }
}

fn samples(p: &Policy) -> Result<(), Usage> {
    let arch = Arch::native();
    let audit = seccomp::audit_arch(arch);
    let host = seccomp::compile(&p.syscalls, p.limits.processes, arch, None)?;
    let lockdown = plugwarden_sdk::lockdown_program()?;
    println!("sample syscalls run through the compiled BPF programs ({arch:?}, evaluated in user space):");
    println!(
        "  {:<30} {:<20} after start-up with the Rust SDK's lockdown",
        "syscall", "start-up"
    );
    let on_violation = p.syscalls.on_violation;
    for s in samples_list() {
        let Some(nr) = groups::number(arch, s.name) else {
            println!("  {:<30} {:<20} not a syscall on {arch:?}", s.label, "-");
            continue;
        };
        let nr = nr as i32;
        let start = seccomp::evaluate(&host, audit, nr, s.args);
        let c = seccomp::evaluate(&lockdown, audit, nr, s.args);
        let before = action_word(start, on_violation);
        let after = action_word(strictest(&[start, c]), on_violation);
        println!("  {:<30} {:<20} {after}", s.label, before);
    }
    println!("  start-up: the host's filter (clone3 → ENOSYS, then the allowlist), from exec until the plugin's first job.");
    println!("  after start-up: plugwarden_sdk::serve adds its lockdown filter (no openat, no execve, no executable");
    println!("  memory, threads only); plugins without the Rust SDK stay at the start-up column.");
    Ok(())
}
