//! What learn prints: the plugin's use in plain words on stderr, the
//! policy and manifest it writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use plugwarden::observe::Learned;
use plugwarden::policy::{self, Policy};
use plugwarden::sandbox::Mode;

use super::{Observed, BASE_GROUPS, LEARNED_PROCESSES, LEARNED_TMP, MAX_ROUNDS};

/// What the plugin used, in plain words, for stderr.
pub(super) fn plain_words(exe: &str, l: &Learned) -> String {
    let mut t = format!("learn: what {exe} used, beyond loading itself:\n");
    let line = |t: &mut String, s: &str| {
        t.push_str("  ");
        t.push_str(s);
        t.push('\n');
    };
    for s in &l.summary {
        line(&mut t, s);
    }
    for d in &l.devices {
        line(
            &mut t,
            &format!(
                "opens {}, which no sandbox offers (not granted)",
                d.display()
            ),
        );
    }
    for w in &l.refused_writes {
        line(
            &mut t,
            &format!(
                "tried to write {} (not granted: learn with --rw DIR if it must)",
                w.display()
            ),
        );
    }
    for d in &l.looked_at {
        line(
            &mut t,
            &format!("looked at {} (its metadata only; not granted)", d.display()),
        );
    }
    if l.missing > 0 {
        line(
            &mut t,
            &format!(
                "looked for {} missing path{} (not granted)",
                l.missing,
                if l.missing == 1 { "" } else { "s" }
            ),
        );
    }
    if l.summary.is_empty() && l.devices.is_empty() && l.refused_writes.is_empty() {
        line(&mut t, "no file");
    }
    t
}

/// The `[filesystem]` of a learned policy: what was observed, plus the
/// command line's grants.
pub(super) struct Files {
    pub(super) read: Vec<PathBuf>,
    pub(super) write: Vec<PathBuf>,
    pub(super) exec: Vec<PathBuf>,
    pub(super) tmp: u64,
    pub(super) summary: Vec<String>,
}

impl Files {
    pub(super) fn new(l: &Learned, user: &Policy) -> Files {
        let u = &user.filesystem;
        let null = Path::new("/dev/null");
        let mut read: Vec<PathBuf> = u.read.iter().chain(&l.read).cloned().collect();
        read.extend(l.dev.iter().filter(|d| *d != null).cloned());
        if l.proc {
            read.push(PathBuf::from("/proc"));
        }
        let mut write = u.write.clone();
        // Writing to /dev/null loses nothing.
        write.extend(l.dev.iter().filter(|d| *d == null).cloned());
        Files {
            read,
            write,
            exec: u.exec.iter().chain(&l.exec).cloned().collect(),
            tmp: if l.tmp { u.tmp.max(LEARNED_TMP) } else { u.tmp },
            summary: l.summary.clone(),
        }
    }
}

/// What the header of a learned policy says about the runs.
pub(super) struct Summary<'a> {
    pub(super) exe: &'a str,
    pub(super) mode: Mode,
    pub(super) inputs: usize,
    pub(super) failed: usize,
    pub(super) converged: bool,
}

pub(super) fn toml_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

pub(super) fn size_text(b: u64) -> String {
    if b % (1 << 20) == 0 {
        format!("{}MiB", b >> 20)
    } else {
        format!("{}KiB", b / 1024)
    }
}

pub(super) fn render(
    o: &Observed,
    s: &Summary,
    l: &policy::Limits,
    files: &Files,
    env: &[(String, String)],
) -> String {
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
    // The file syscalls of the base groups reach the supervisor too (it
    // reads their paths): not news.
    let singles = o.allow_singles();
    let beyond: Vec<&String> = o
        .syscalls
        .iter()
        .filter(|(name, _)| singles.contains(*name))
        .map(|(_, call)| call)
        .collect();
    if beyond.is_empty() {
        t.push("# Observed beyond @default and @startup: nothing.".into());
    } else {
        t.push("# Observed beyond @default and @startup (the first call of each):".into());
        t.extend(beyond.iter().map(|call| format!("#   {call}")));
    }
    for f in &o.unnamed_families {
        t.push(format!("# socket family {f} was used but cannot be named in a policy: those calls stay denied."));
    }
    t.push("# Files it used beyond loading itself (Landlock grants the executable, its".into());
    t.push("# ELF interpreter and its libraries by itself):".into());
    if files.summary.is_empty() {
        t.push("#   none".into());
    }
    t.extend(files.summary.iter().map(|line| format!("#   {line}")));
    t.push(format!(
        "description = \"learned from {inputs} input(s) of {exe}\""
    ));
    t.push(String::new());
    t.push("[syscalls]".into());
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
    if !o.soft.is_empty() {
        let answers: Vec<String> = o
            .soft
            .iter()
            .map(|(k, e)| format!("{k:?} = {e:?}"))
            .collect();
        t.push("# answered with an errno while observed, as the plugin expects of a probe:".into());
        t.push(format!("errno = {{ {} }}", answers.join(", ")));
    }
    t.push(String::new());
    t.push("[filesystem]".into());
    let paths = |list: &[PathBuf]| {
        list.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    };
    for (key, list) in [
        ("read", &files.read),
        ("write", &files.write),
        ("exec", &files.exec),
    ] {
        if !list.is_empty() {
            t.push(format!("{key} = {}", toml_list(&paths(list))));
        }
    }
    if files.tmp > 0 {
        t.push(format!("tmp = \"{}\"", size_text(files.tmp)));
    }
    if !env.is_empty() {
        t.push(String::new());
        t.push("[environment]".into());
        let set: Vec<String> = env.iter().map(|(k, v)| format!("{k:?} = {v:?}")).collect();
        t.push(format!("set = {{ {} }}", set.join(", ")));
    }
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
    let writes = files.tmp > 0 || files.write.iter().any(|w| w != Path::new("/dev/null"));
    t.push(if writes {
        format!("file_size = \"{}\"", size_text(l.file_size))
    } else {
        "file_size = 0".into()
    });
    t.push(format!("output = \"{}\"", size_text(l.output)));
    let mut text = t.join("\n");
    text.push('\n');
    text
}
