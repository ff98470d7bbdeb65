//! `plugwarden learn`: run a plugin on sample inputs while observing, and
//! print the smallest policy under which those inputs pass.
//!
//! How it observes: the child gets the normal road (Landlock, identity,
//! rlimits, seccomp) with an observation policy whose allowlist is only
//! `@default` and `@startup`, run in log-only mode ([`Enforce::Log`]).
//! Every other syscall reaches the supervisor as a seccomp user
//! notification, is recorded with its decoded arguments in
//! `JobOutcome::denied` (`socket(AF_INET, SOCK_STREAM, 0)`) and answered
//! with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`, so the plugin runs as if
//! nothing was denied. User notification was chosen over ptrace (a second
//! supervisor that the child must not already have) and SECCOMP_RET_LOG
//! (the record lands in the kernel's audit log, out of our reach, and
//! without arguments).
//!
//! Landlock grants read access to `/` and no write. Paths are not yet
//! observed (openat is in `@startup`, so it never reaches the supervisor),
//! so the learned policy grants no path and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use plugwarden::policy::{self, groups, Filesystem, Policy};
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};

use super::{ModeArg, Usage, EXIT_OK, EXIT_VERDICT};

/// The groups every learned policy starts from (and the observation policy allows).
const BASE_GROUPS: &[&str] = &["@default", "@startup"];

#[derive(Args)]
pub struct LearnArgs {
    /// The plugin: an executable, or a directory with plugin.toml.
    #[arg(long, value_name = "EXE|DIR")]
    plugin: PathBuf,
    /// worker (speaks the plugwarden protocol) or filter (stdin → stdout, one process per input).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// An argument for the plugin (repeat for several).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    args: Vec<String>,
    /// Wall-clock limit per input while learning, e.g. 30s.
    #[arg(long, value_parser = super::parse_duration)]
    timeout: Option<Duration>,
    /// Sample inputs: files, or directories walked recursively.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// The policy the plugin runs under while it is observed.
fn observation_policy(timeout: Option<Duration>) -> Result<Policy, Usage> {
    let mut p = policy::load("default")?;
    p.name = "learn (observation)".into();
    p.description = "observation policy of plugwarden learn".into();
    p.sources.clear();
    p.syscalls.allow = expanded(BASE_GROUPS).into_iter().map(str::to_string).collect();
    p.syscalls.ioctl.clear();
    p.syscalls.socket_families.clear();
    p.filesystem = Filesystem { read: vec![PathBuf::from("/")], write: Vec::new(), exec: Vec::new() };
    p.network = Default::default();
    if let Some(t) = timeout {
        p.limits.wall = t;
        p.limits.cpu = t;
    }
    Ok(p)
}

fn expanded(names: &[&str]) -> Vec<&'static str> {
    groups::expand(names).expect("built-in group names")
}

/// What the observed runs needed beyond the base groups.
#[derive(Debug, Default)]
struct Observed {
    /// Syscall name → the first call seen, as the supervisor described it.
    syscalls: BTreeMap<String, String>,
    ioctls: BTreeSet<u32>,
    families: BTreeSet<u32>,
    /// Socket families seen that a policy cannot name.
    unnamed_families: BTreeSet<String>,
    /// clone without CLONE_THREAD (a new process) was seen.
    forks: bool,
}

impl Observed {
    fn record(&mut self, call: &str) {
        let Some((name, rest)) = call.split_once('(') else { return };
        if groups::number(groups::Arch::native(), name).is_none() {
            return; // "syscall 1234 (unknown to this build)" and the like
        }
        let args: Vec<&str> = rest.trim_end_matches(')').split(", ").collect();
        match name {
            "ioctl" => {
                if let Some(req) = args.get(1).and_then(|r| ioctl_request(r)) {
                    self.ioctls.insert(req);
                }
            }
            "socket" | "socketpair" => match args.first().map(|f| (f, policy::socket_family(f))) {
                Some((_, Some(nr))) => {
                    self.families.insert(nr);
                }
                Some((f, None)) => {
                    self.unnamed_families.insert((*f).to_string());
                }
                None => {}
            },
            "clone" | "fork" | "vfork" => {
                let flags = args.first().and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), 16).ok());
                if name != "clone" || flags.is_some_and(|f| f & libc::CLONE_THREAD as u64 == 0) {
                    self.forks = true;
                }
            }
            _ => {}
        }
        self.syscalls.entry(name.to_string()).or_insert_with(|| call.to_string());
    }
}

fn ioctl_request(text: &str) -> Option<u32> {
    if let Some(nr) = policy::ioctl_number(text) {
        return Some(nr);
    }
    // The kernel compares the low 32 bits; so does the policy.
    u64::from_str_radix(text.strip_prefix("0x")?, 16).ok().map(|n| n as u32)
}

pub fn run(a: LearnArgs) -> Result<u8, Usage> {
    let located = plugwarden::manifest::locate(&a.plugin)?;
    let mode = match a.mode {
        Some(ModeArg::Worker) => Mode::Worker,
        Some(ModeArg::Filter) => Mode::Filter,
        None => located.mode.unwrap_or_default(),
    };
    let mut args = located.args;
    args.extend(a.args.iter().cloned());
    let observation = observation_policy(a.timeout)?;
    let limits = observation.limits.clone();
    let fs = super::start_fork_server()?;
    let plugin = PluginSpec { exe: located.exe.clone(), args, mode };
    let sandbox = Sandbox::new(fs, plugin, Arc::new(observation), Enforce::Log)?;

    let mut observed = Observed::default();
    let (mut inputs, mut failed) = (0usize, 0usize);
    for item in super::run::walk(&a.inputs) {
        let (path, _) = item.map_err(Usage)?;
        let input = std::fs::read(&path).map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
        let outcome = super::run::run_one(&sandbox, &input);
        inputs += 1;
        for call in &outcome.denied {
            observed.record(call);
        }
        eprintln!(
            "learn: {}: {} ({} calls outside @default and @startup)",
            path.display(),
            outcome.verdict,
            outcome.denied.len()
        );
        if !outcome.verdict.is_ok() {
            failed += 1;
        }
    }
    if inputs == 0 {
        return Err(Usage("no input files found: learn needs sample inputs".into()));
    }
    let exe_name = located.exe.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    print!("{}", render(&observed, &exe_name, mode, inputs, failed, &limits));
    if failed > 0 {
        eprintln!("learn: {failed} of {inputs} inputs did not pass even while observed; the policy only covers what ran");
        return Ok(EXIT_VERDICT);
    }
    Ok(EXIT_OK)
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn render(o: &Observed, exe: &str, mode: Mode, inputs: usize, failed: usize, l: &policy::Limits) -> String {
    let mode = match mode {
        Mode::Worker => "worker",
        Mode::Filter => "filter",
    };
    let mut t = String::new();
    let _ = writeln!(t, "# Learned by `plugwarden learn` from {inputs} input(s) of {exe} ({mode} mode).");
    if failed > 0 {
        let _ = writeln!(t, "# {failed} input(s) failed while observed: this policy covers only what ran.");
    }
    if o.syscalls.is_empty() {
        let _ = writeln!(t, "# Observed beyond @default and @startup: nothing.");
    } else {
        let _ = writeln!(t, "# Observed beyond @default and @startup (the first call of each):");
        for call in o.syscalls.values() {
            let _ = writeln!(t, "#   {call}");
        }
    }
    let _ = writeln!(t, "# write is listed although never observed: the host always allows it (the pipes).");
    let _ = writeln!(t, "# Files: learn does not observe paths yet, so this policy grants none; Landlock");
    let _ = writeln!(t, "# grants the executable, its ELF interpreter and its libraries by itself.");
    let _ = writeln!(t, "# Add [filesystem] read = [...] if the plugin needs other files.");
    let _ = writeln!(t, "description = \"learned from {inputs} input(s) of {exe}\"");
    let _ = writeln!(t);
    let _ = writeln!(t, "[syscalls]");
    let base: BTreeSet<&str> = expanded(BASE_GROUPS).into_iter().collect();
    let mut allow: Vec<String> = BASE_GROUPS.iter().map(|g| g.to_string()).collect();
    let mut singles: BTreeSet<String> = o.syscalls.keys().filter(|n| !base.contains(n.as_str())).cloned().collect();
    singles.insert("write".into());
    // seccomp is always allowed for installing a further filter (flags 0);
    // a call outside that rule stays denied even when listed.
    singles.remove("seccomp");
    if !o.forks {
        singles.remove("fork");
        singles.remove("vfork");
    }
    allow.extend(singles);
    let _ = writeln!(t, "allow = {}", toml_list(&allow));
    if o.syscalls.contains_key("ioctl") {
        let reqs: Vec<String> = o
            .ioctls
            .iter()
            .map(|n| policy::IOCTLS.iter().find(|(_, v)| v == n).map_or_else(|| n.to_string(), |(s, _)| format!("{s:?}")))
            .collect();
        let _ = writeln!(t, "ioctl = [{}]", reqs.join(", "));
    }
    if !o.families.is_empty() {
        let names: Vec<String> =
            o.families.iter().filter_map(|f| policy::family_name(u64::from(*f))).map(str::to_string).collect();
        let _ = writeln!(t, "socket_families = {}", toml_list(&names));
    }
    for f in &o.unnamed_families {
        let _ = writeln!(t, "# socket family {f} was used but cannot be named in a policy: those calls stay denied");
    }
    let _ = writeln!(t, "on_violation = \"kill\"");
    let _ = writeln!(t);
    let _ = writeln!(t, "[limits]");
    let dur = |d: Duration| humantime::format_duration(d).to_string();
    let size = |b: u64| if b % (1 << 20) == 0 { format!("{}MiB", b >> 20) } else { format!("{}KiB", b / 1024) };
    let _ = writeln!(t, "wall = \"{}\"", dur(l.wall));
    let _ = writeln!(t, "cpu = \"{}\"", dur(l.cpu));
    let _ = writeln!(t, "memory = \"{}\"", size(l.memory));
    if o.forks {
        let _ = writeln!(t, "# the plugin created processes while observed");
        let _ = writeln!(t, "processes = 16");
    } else {
        let _ = writeln!(t, "processes = 0");
    }
    let _ = writeln!(t, "open_files = {}", l.open_files);
    let _ = writeln!(t, "file_size = 0");
    let _ = writeln!(t, "output = \"{}\"", size(l.output));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_observed_socket_records_family_and_name() {
        let mut o = Observed::default();
        o.record("socket(AF_INET, SOCK_STREAM, 0)");
        assert_eq!(o.families, BTreeSet::from([libc::AF_INET as u32]));
        assert_eq!(o.syscalls.keys().collect::<Vec<_>>(), vec!["socket"]);
    }

    #[test]
    fn test_observed_ioctl_hex_request_low_32_bits() {
        let mut o = Observed::default();
        o.record("ioctl(0, TCGETS)");
        o.record("ioctl(1, 0x100005413)");
        assert_eq!(o.ioctls, BTreeSet::from([0x5401, 0x5413]));
    }

    #[test]
    fn test_observed_clone_thread_is_not_a_fork() {
        let mut o = Observed::default();
        o.record("clone(0x3d0f00, ...)");
        assert!(!o.forks);
        o.record("clone(0x1200011, ...)");
        assert!(o.forks);
    }

    #[test]
    fn test_observed_unknown_syscall_ignored() {
        let mut o = Observed::default();
        o.record("syscall 9999 (unknown to this build)");
        assert!(o.syscalls.is_empty());
    }
}
