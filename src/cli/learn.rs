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
//! Files: the root is the host's whole tree, read-only (a grant of `/`
//! for reading and executing), with the sandbox's own /proc and a private
//! writable /tmp, plus the command line's grants. The file syscalls stay
//! out of the allowlist, so the supervisor sees each and reads the path
//! it names ([`Enforce::Observe`], `plugwarden::observe`); the paths fold
//! into the smallest set of grants, printed in plain words on stderr and
//! written into the policy. A plugin that never succeeds gets no policy.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use plugwarden::observe::{self, Known, PathUse};
use plugwarden::policy::{self, groups, Filesystem, Policy};
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};

use super::{ModeArg, Usage, EXIT_INTERNAL, EXIT_OK, EXIT_VERDICT};

mod render;

use render::{plain_words, render, Files, Summary};

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
    #[command(flatten)]
    grants: super::GrantArgs,
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

/// The private /tmp of a learned policy whose plugin used /tmp (and of
/// the observation policy).
const LEARNED_TMP: u64 = 64 << 20;

/// The policy the plugin runs under while it is observed: the base groups
/// (but the file syscalls, which the supervisor observes) plus what
/// earlier rounds saw and the command line allows; the host's tree to read
/// and run, read-only, a private /tmp, and the command line's grants.
fn observation_policy(
    timeout: Option<Duration>,
    seen: &Observed,
    user: &Policy,
) -> Result<Policy, Usage> {
    let mut p = policy::load("default")?;
    p.name = "learn (observation)".into();
    p.description = "observation policy of plugwarden learn".into();
    p.sources.clear();
    let observed: BTreeSet<&str> = observe::path_syscalls().collect();
    p.syscalls.allow = expanded(BASE_GROUPS)
        .into_iter()
        .map(str::to_string)
        .chain(seen.allow_singles())
        .chain(user.syscalls.allow.iter().cloned())
        .filter(|n| !observed.contains(n.as_str()))
        .collect();
    p.syscalls.ioctl = seen.ioctls.clone();
    p.syscalls.socket_families = seen.families.clone();
    p.limits.processes = if seen.forks { LEARNED_PROCESSES } else { 0 };
    let mut write = p.filesystem.write.clone(); // default's: /dev/null
    write.extend(user.filesystem.write.iter().cloned());
    // What the command line grants stays granted (below /tmp it must be
    // bound over the private /tmp).
    p.filesystem = Filesystem {
        read: user.filesystem.read.clone(),
        write,
        exec: std::iter::once(PathBuf::from("/"))
            .chain(user.filesystem.exec.iter().cloned())
            .collect(),
        tmp: user.filesystem.tmp.max(LEARNED_TMP),
    };
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
    /// Calls the policy answered with an errno: errno table key → errno.
    soft: BTreeMap<String, String>,
    /// The paths the file syscalls named.
    paths: BTreeSet<PathUse>,
}

impl Observed {
    fn record(&mut self, call: &str) {
        // A soft denial, `socket(AF_UNIX, ...) → EACCES`: the learned
        // policy answers it the same way.
        if let Some((call, errno)) = call.rsplit_once(" → ") {
            if let Some((name, rest)) = call.split_once('(') {
                let family = rest.split(", ").next().unwrap_or("");
                let key = match name {
                    "socket" | "socketpair" if policy::socket_family(family).is_some() => {
                        format!("{name}({family})")
                    }
                    _ => name.to_string(),
                };
                self.soft.insert(key, errno.to_string());
            }
            return;
        }
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
    fn size(&self) -> [usize; 7] {
        [
            self.syscalls.len(),
            self.ioctls.len(),
            self.families.len(),
            self.unnamed_families.len(),
            usize::from(self.forks),
            self.soft.len(),
            self.paths.len(),
        ]
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
        seen.paths.extend(outcome.paths);
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
    // The manifest's and the command line's grants, on a policy of its own.
    let mut user = policy::resolve(policy::Origin::File("learn".into()), "")?;
    let cwd = a.grants.apply(&located.grants, &mut user)?;
    let mut args = located.args;
    args.extend(a.args.iter().cloned());
    let flag_env = a.env.resolve()?;
    let mut env = located.env;
    env.extend(flag_env.iter().cloned());
    let plugin = PluginSpec {
        exe: located.exe.clone(),
        args,
        mode,
        env,
        cwd,
    };
    let fs = super::start_fork_server()?;
    let mut seen = Observed::default();
    let mut last = Round {
        inputs: 0,
        failed: 0,
    };
    let mut converged = false;
    for round in 1..=MAX_ROUNDS {
        let observation = observation_policy(a.timeout, &seen, &user)?;
        let sandbox = Sandbox::new(
            fs.clone(),
            plugin.clone(),
            Arc::new(observation),
            Enforce::Observe,
        )?;
        let before = seen.size();
        last = observe_round(&sandbox, &a.inputs, &mut seen, round)?;
        if seen.size() == before {
            converged = true;
            break;
        }
    }
    let exe_name = located
        .exe
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    if last.failed == last.inputs {
        eprintln!(
            "learn: {exe_name} did not succeed on any input while observed (see each verdict above), \
             so there is nothing to learn from: no policy written. Check its arguments and inputs, \
             or grant what it reports missing (--ro, --rw, --exec, --tmp)"
        );
        return Ok(EXIT_VERDICT);
    }
    let known =
        Known::for_plugin(&located.exe, &user.filesystem).map_err(|e| Usage(e.to_string()))?;
    let learned = observe::fold(&seen.paths, &known);
    eprint!("{}", plain_words(&exe_name, &learned));
    let limits = observation_policy(a.timeout, &seen, &user)?.limits;
    let summary = Summary {
        exe: &exe_name,
        mode,
        inputs: last.inputs,
        failed: last.failed,
        converged,
    };
    let text = render(
        &seen,
        &summary,
        &limits,
        &Files::new(&learned, &user),
        &flag_env,
    );
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

#[cfg(test)]
mod tests;
