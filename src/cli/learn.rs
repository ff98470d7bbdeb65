//! `plugwarden learn`: run a plugin on sample inputs while observing, and
//! print the smallest policy under which those inputs pass.
//!
//! How it observes: the child gets the normal road (Landlock, identity,
//! rlimits, seccomp) with an observation policy whose allowlist starts as
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
//! The inputs run in rounds: each round allows what earlier rounds saw, so
//! the supervisor's bounded list of denials fills only with new calls, and
//! the round that sees nothing new has run every input under the learned
//! allowlist.
//!
//! Landlock grants read access to `/` and no write; the minimal root
//! (mount namespace) is off while observing, so that read grant means
//! what it says. Paths are not yet
//! observed (openat is in `@startup`, so it never reaches the supervisor),
//! so the learned policy grants no path and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use plugwarden::policy::{self, groups, Filesystem, Policy};
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};

use super::{ModeArg, Usage, EXIT_INTERNAL, EXIT_OK, EXIT_VERDICT};

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
    #[command(flatten)]
    env: super::EnvArgs,
    /// Wall-clock limit per input while learning, e.g. 30s.
    #[arg(long, value_parser = super::parse_duration)]
    timeout: Option<Duration>,
    /// Sample inputs: files, or directories walked recursively.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

/// Rounds of observation at most: each round allows what the previous ones
/// saw, so the supervisor's bounded list of denials (256 distinct calls per
/// job) fills only with what is new, and the last round, which sees nothing
/// new, is a run under the learned allowlist.
const MAX_ROUNDS: usize = 8;

/// Processes a learned policy allows when the plugin created any.
const LEARNED_PROCESSES: u64 = 16;

/// The policy the plugin runs under while it is observed: the base groups
/// plus what earlier rounds saw, read access to `/`, no write.
fn observation_policy(timeout: Option<Duration>, seen: &Observed) -> Result<Policy, Usage> {
    let mut p = policy::load("default")?;
    p.name = "learn (observation)".into();
    p.description = "observation policy of plugwarden learn".into();
    p.sources.clear();
    p.syscalls.allow = expanded(BASE_GROUPS)
        .into_iter()
        .map(str::to_string)
        .collect();
    p.syscalls.allow.extend(seen.allow_singles());
    p.syscalls.ioctl = seen.ioctls.clone();
    p.syscalls.socket_families = seen.families.clone();
    p.limits.processes = if seen.forks { LEARNED_PROCESSES } else { 0 };
    p.filesystem = Filesystem {
        read: vec![PathBuf::from("/")],
        write: Vec::new(),
        exec: Vec::new(),
        tmp: 0,
    };
    p.network = Default::default();
    // A minimal root would hide what the broad read grant is for (and
    // cannot bind `/` onto itself); Landlock alone confines the reads.
    p.namespaces.mount = false;
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
        let Some((name, rest)) = call.split_once('(') else {
            return;
        };
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
                // clone's flags come by name (`CLONE_VM|CLONE_THREAD|...`).
                let thread = args
                    .first()
                    .is_some_and(|f| f.split('|').any(|flag| flag == "CLONE_THREAD"));
                if name != "clone" || !thread {
                    self.forks = true;
                }
            }
            _ => {}
        }
        self.syscalls
            .entry(name.to_string())
            .or_insert_with(|| call.to_string());
    }

    /// How much has been seen; it only grows, so equal means nothing new.
    fn size(&self) -> (usize, usize, usize, usize, bool) {
        (
            self.syscalls.len(),
            self.ioctls.len(),
            self.families.len(),
            self.unnamed_families.len(),
            self.forks,
        )
    }

    /// Single syscalls a policy must list, beyond the base groups.
    fn allow_singles(&self) -> BTreeSet<String> {
        let base: BTreeSet<&str> = expanded(BASE_GROUPS).into_iter().collect();
        let mut singles: BTreeSet<String> = self
            .syscalls
            .keys()
            .filter(|n| !base.contains(n.as_str()))
            .cloned()
            .collect();
        // seccomp is always allowed for installing a further filter (flags
        // 0); any other use stays denied even when listed.
        singles.remove("seccomp");
        // socket without a family rule would allow every family.
        if self.families.is_empty() {
            singles.remove("socket");
            singles.remove("socketpair");
        }
        singles
    }
}

fn ioctl_request(text: &str) -> Option<u32> {
    if let Some(nr) = policy::ioctl_number(text) {
        return Some(nr);
    }
    // The kernel compares the low 32 bits; so does the policy.
    u64::from_str_radix(text.strip_prefix("0x")?, 16)
        .ok()
        .map(|n| n as u32)
}

/// The outcome of one round over every input.
struct Round {
    inputs: usize,
    failed: usize,
}

fn observe_round(
    sandbox: &Sandbox,
    inputs: &[PathBuf],
    seen: &mut Observed,
    round: usize,
) -> Result<Round, Usage> {
    let mut r = Round {
        inputs: 0,
        failed: 0,
    };
    for entry in plugwarden::input::walk(inputs) {
        let entry = entry?;
        let path = plugwarden::escape::name(&entry.path);
        let input = plugwarden::input::open(&entry, sandbox.policy.limits.input)
            .and_then(plugwarden::input::Input::from_source)?;
        let outcome = super::run::run_one(sandbox, &input, Default::default());
        r.inputs += 1;
        for call in &outcome.denied {
            seen.record(call);
        }
        eprintln!(
            "learn: round {round}: {path}: {} ({} call(s) outside the allowlist, let through)",
            outcome.verdict,
            outcome.denied.len()
        );
        if !outcome.verdict.is_ok() {
            r.failed += 1;
        }
    }
    if r.inputs == 0 {
        return Err(Usage(
            "no input files found: learn needs sample inputs".into(),
        ));
    }
    Ok(r)
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
    let mut env = located.env;
    env.extend(a.env.resolve()?);
    let plugin = PluginSpec {
        exe: located.exe.clone(),
        args,
        mode,
        env,
        cwd: None,
    };
    let fs = super::start_fork_server()?;
    let mut seen = Observed::default();
    let mut last = Round {
        inputs: 0,
        failed: 0,
    };
    let mut converged = false;
    for round in 1..=MAX_ROUNDS {
        let observation = observation_policy(a.timeout, &seen)?;
        let sandbox = Sandbox::new(
            fs.clone(),
            plugin.clone(),
            Arc::new(observation),
            Enforce::Log,
        )?;
        let before = seen.size();
        last = observe_round(&sandbox, &a.inputs, &mut seen, round)?;
        if seen.size() == before {
            converged = true;
            break;
        }
    }
    let limits = observation_policy(a.timeout, &seen)?.limits;
    let exe_name = located
        .exe
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let summary = Summary {
        exe: &exe_name,
        mode,
        inputs: last.inputs,
        failed: last.failed,
        converged,
    };
    let text = render(&seen, &summary, &limits);
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("plugwarden: cannot write the policy: {e}");
        return Ok(EXIT_INTERNAL);
    }
    if !converged {
        eprintln!(
            "learn: still seeing new calls after {MAX_ROUNDS} rounds; the policy may be incomplete"
        );
    }
    if last.failed > 0 {
        eprintln!(
            "learn: {} of {} inputs did not pass even while observed; the policy only covers what ran",
            last.failed, last.inputs
        );
        return Ok(EXIT_VERDICT);
    }
    Ok(EXIT_OK)
}

/// What the header of a learned policy says about the runs.
struct Summary<'a> {
    exe: &'a str,
    mode: Mode,
    inputs: usize,
    failed: usize,
    converged: bool,
}

fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn size_text(b: u64) -> String {
    if b % (1 << 20) == 0 {
        format!("{}MiB", b >> 20)
    } else {
        format!("{}KiB", b / 1024)
    }
}

fn render(o: &Observed, s: &Summary, l: &policy::Limits) -> String {
    let mode = match s.mode {
        Mode::Worker => "worker",
        Mode::Filter => "filter",
    };
    let (exe, inputs) = (s.exe, s.inputs);
    let mut t: Vec<String> = Vec::new();
    t.push(format!(
        "# Learned by `plugwarden learn` from {inputs} input(s) of {exe} ({mode} mode)."
    ));
    if s.failed > 0 {
        t.push(format!(
            "# {} input(s) failed while observed: this policy covers only what ran.",
            s.failed
        ));
    }
    if !s.converged {
        t.push(format!(
            "# New calls kept appearing after {MAX_ROUNDS} rounds: this policy may be incomplete."
        ));
    }
    if o.syscalls.is_empty() {
        t.push("# Observed beyond @default and @startup: nothing.".into());
    } else {
        t.push("# Observed beyond @default and @startup (the first call of each):".into());
        t.extend(o.syscalls.values().map(|call| format!("#   {call}")));
    }
    for f in &o.unnamed_families {
        t.push(format!("# socket family {f} was used but cannot be named in a policy: those calls stay denied."));
    }
    t.push(
        "# Files: learn does not observe paths yet, so this policy grants none; Landlock".into(),
    );
    t.push("# grants the executable, its ELF interpreter and its libraries by itself.".into());
    t.push("# Add [filesystem] read = [...] if the plugin needs other files.".into());
    t.push(format!(
        "description = \"learned from {inputs} input(s) of {exe}\""
    ));
    t.push(String::new());
    t.push("[syscalls]".into());
    let singles = o.allow_singles();
    let allow: Vec<String> = BASE_GROUPS
        .iter()
        .map(|g| g.to_string())
        .chain(singles)
        .collect();
    t.push(format!("allow = {}", toml_list(&allow)));
    if allow.iter().any(|n| n == "ioctl") {
        let reqs: Vec<String> = o
            .ioctls
            .iter()
            .map(|n| {
                policy::IOCTLS
                    .iter()
                    .find(|(_, v)| v == n)
                    .map_or_else(|| n.to_string(), |(s, _)| format!("{s:?}"))
            })
            .collect();
        t.push(format!("ioctl = [{}]", reqs.join(", ")));
    }
    if !o.families.is_empty() {
        let names: Vec<String> = o
            .families
            .iter()
            .filter_map(|f| policy::family_name(u64::from(*f)))
            .map(str::to_string)
            .collect();
        t.push(format!("socket_families = {}", toml_list(&names)));
    }
    t.push("on_violation = \"kill\"".into());
    t.push(String::new());
    t.push("[limits]".into());
    let dur = |d: Duration| humantime::format_duration(d).to_string();
    t.push(format!("wall = \"{}\"", dur(l.wall)));
    t.push(format!("cpu = \"{}\"", dur(l.cpu)));
    t.push(format!("memory = \"{}\"", size_text(l.memory)));
    if o.forks {
        t.push(
            "# the plugin created processes while observed (the number is not capped yet)".into(),
        );
    }
    t.push(format!(
        "processes = {}",
        if o.forks { LEARNED_PROCESSES } else { 0 }
    ));
    t.push(format!("open_files = {}", l.open_files));
    t.push("file_size = 0".into());
    t.push(format!("output = \"{}\"", size_text(l.output)));
    let mut text = t.join("\n");
    text.push('\n');
    text
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
        // As the host describes them (flags by name).
        let arch = groups::Arch::native();
        let nr = groups::number(arch, "clone").unwrap() as i32;
        let audit = plugwarden::seccomp::audit_arch(arch);
        let clone = |flags| plugwarden::describe::describe(audit, nr, [flags, 0, 0, 0, 0, 0]);
        let mut o = Observed::default();
        o.record(&clone(0x3d0f00));
        assert!(!o.forks);
        o.record(&clone(0x1200011));
        assert!(o.forks);
    }

    #[test]
    fn test_allow_singles_socket_of_unnamed_family_not_listed() {
        let mut o = Observed::default();
        o.record("socket(17, SOCK_RAW, 0)");
        o.record("futex(0x7f00, 0x81, 0x1)");
        assert_eq!(o.allow_singles(), BTreeSet::from(["futex".to_string()]));
        assert_eq!(o.unnamed_families, BTreeSet::from(["17".to_string()]));
    }

    #[test]
    fn test_render_learned_policy_resolves_without_extends() {
        let mut o = Observed::default();
        o.record("ioctl(1, TCGETS)");
        o.record("socket(AF_UNIX, SOCK_STREAM, 0)");
        o.record("write(0x1, 0x7f00, 0x5)");
        let s = Summary {
            exe: "x",
            mode: Mode::Worker,
            inputs: 1,
            failed: 0,
            converged: true,
        };
        let text = render(&o, &s, &plugwarden::policy::Limits::default());
        let p = policy::resolve(policy::Origin::File("learned.toml".into()), &text).unwrap();
        assert_eq!(p.syscalls.ioctl, BTreeSet::from([0x5401]));
        assert_eq!(
            p.syscalls.socket_families,
            BTreeSet::from([libc::AF_UNIX as u32])
        );
        assert!(p.syscalls.allow.contains("socket") && p.syscalls.allow.contains("write"));
        assert!(!text.contains("extends"), "{text}");
    }

    #[test]
    fn test_observed_unknown_syscall_ignored() {
        let mut o = Observed::default();
        o.record("syscall 9999 (unknown to this build)");
        assert!(o.syscalls.is_empty());
    }
}
