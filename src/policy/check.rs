//! `policy check`: everything a reviewer should hear about a policy file
//! before it runs, located by file, line and column.
//!
//! Parsing and resolving (unknown keys, names, groups, `extends`) already
//! fail with a located [`PolicyError`]; this module adds the checks that
//! need the whole picture: impossible limits, contradictions between
//! grants, duplicates, `deny` entries that remove nothing, and risky grants
//! ([`groups::RISKY`]) with the reason. Errors make the policy unusable;
//! warnings are printed and the policy is accepted.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

mod resolved;

use super::{
    groups, line_col, parse, resolve, IoctlName, Origin, PolicyError, PolicyFile, BUILTIN,
};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The policy must not be used: `policy check` exits with status 2.
    Error,
    /// Worth a reviewer's attention; the policy is accepted.
    Warning,
}

/// One problem, located in its file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The file (or `<builtin NAME>`) the problem is in.
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {word}: {}",
            self.origin, self.line, self.column, self.message
        )
    }
}

/// ioctl requests that are dangerous to grant, with the reason.
const RISKY_IOCTLS: &[(&str, &str)] = &[
    (
        "TIOCSTI",
        "pushes characters into a terminal's input queue, typing commands into the user's shell",
    ),
    (
        "TIOCLINUX",
        "can copy and paste the contents of a Linux console",
    ),
];

/// Smallest memory limit a program can be loaded in.
const MIN_MEMORY: u64 = 16 << 20;

/// Checks a built-in policy name or a policy file.
pub fn check_name_or_path(name_or_path: &str) -> Vec<Finding> {
    if !Path::new(name_or_path).exists() {
        if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return check(Origin::Builtin(name), text);
        }
    }
    check_path(Path::new(name_or_path))
}

/// Checks the policy file at `path`.
pub fn check_path(path: &Path) -> Vec<Finding> {
    match std::fs::read_to_string(path) {
        Ok(text) => check(Origin::File(path.to_path_buf()), &text),
        Err(e) => vec![Finding {
            severity: Severity::Error,
            origin: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!("cannot read the policy: {e}"),
        }],
    }
}

/// Every finding for one policy text, errors first, each group in file order.
pub fn check(origin: Origin, text: &str) -> Vec<Finding> {
    let file = match parse(&origin, text) {
        Ok(f) => f,
        Err(e) => return vec![from_error(&origin, e)],
    };
    let mut c = Checker {
        origin: &origin,
        label: origin.label(),
        text,
        findings: Vec::new(),
    };
    c.limits(&file);
    c.identity(&file);
    c.duplicates(&file);
    c.paths(&file);
    c.widening(&file);
    c.allow_and_deny(&file);
    c.ioctls(&file);
    c.namespaces(&file);
    match resolve(origin.clone(), text) {
        Ok(policy) => c.resolved(&file, &policy),
        Err(e) => {
            let f = from_error(&origin, e);
            // Resolving reports limit problems at 1:1; when this file's own
            // value was already reported with its real line, skip the echo.
            let key = |m: &str| m.split(' ').next().unwrap_or("").to_string();
            let restated = f.origin == c.label
                && (f.line, f.column) == (1, 1)
                && c.findings
                    .iter()
                    .any(|l| l.severity == Severity::Error && key(&l.message) == key(&f.message));
            if !restated {
                c.findings.push(f);
            }
        }
    }
    let mut findings = c.findings;
    findings.sort_by_key(|f| (f.severity, f.line, f.column));
    findings.dedup();
    findings
}

fn from_error(origin: &Origin, e: PolicyError) -> Finding {
    match e {
        PolicyError::Invalid {
            origin,
            line,
            column,
            message,
        } => Finding {
            severity: Severity::Error,
            origin,
            line,
            column,
            message,
        },
        other => Finding {
            severity: Severity::Error,
            origin: origin.label(),
            line: 1,
            column: 1,
            message: other.to_string(),
        },
    }
}

struct Checker<'a> {
    origin: &'a Origin,
    label: String,
    text: &'a str,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    fn at(&mut self, severity: Severity, (line, column): (usize, usize), message: String) {
        self.findings.push(Finding {
            severity,
            origin: self.label.clone(),
            line,
            column,
            message,
        });
    }

    fn at_span(&mut self, severity: Severity, span: Range<usize>, message: String) {
        let pos = line_col(self.text, span.start);
        self.at(severity, pos, message);
    }

    fn limits(&mut self, f: &PolicyFile) {
        let l = &f.limits;
        let w = &f.worker;
        let mut errors: Vec<(&str, &str, String)> = Vec::new();
        let zero_dur = |d: Option<super::Dur>| d.is_some_and(|d| d.0.is_zero());
        if zero_dur(l.wall) {
            errors.push((
                "limits",
                "wall",
                "limits.wall = 0 ends every job at once; use e.g. \"10s\"".into(),
            ));
        }
        if zero_dur(l.cpu) {
            errors.push((
                "limits",
                "cpu",
                "limits.cpu = 0 ends every job at once; use e.g. \"10s\"".into(),
            ));
        }
        if let Some(m) = l.memory.filter(|m| m.0 < MIN_MEMORY) {
            errors.push((
                "limits",
                "memory",
                format!("limits.memory of {} bytes is too small to load a program; use at least \"16MiB\"", m.0),
            ));
        }
        if l.open_files.is_some_and(|n| n < 4) {
            errors.push((
                "limits",
                "open_files",
                "limits.open_files must be at least 4 (stdin, stdout, stderr and one more)".into(),
            ));
        }
        if l.output.is_some_and(|s| s.0 == 0) {
            errors.push((
                "limits",
                "output",
                "limits.output = 0 turns every answer into output_limit; use e.g. \"64MiB\"".into(),
            ));
        }
        if l.max_frame.is_some_and(|s| s.0 < 4096) {
            errors.push((
                "limits",
                "max_frame",
                "limits.max_frame must be at least \"4KiB\"".into(),
            ));
        }
        if w.batch == Some(0) {
            errors.push((
                "worker",
                "batch",
                "worker.batch = 0 would recycle before any job; use at least 1".into(),
            ));
        }
        if w.recycle_rss.is_some_and(|s| s.0 == 0) {
            errors.push((
                "worker",
                "recycle_rss",
                "worker.recycle_rss = 0 recycles after every job; use e.g. \"256MiB\"".into(),
            ));
        }
        if zero_dur(w.max_lifetime) {
            errors.push((
                "worker",
                "max_lifetime",
                "worker.max_lifetime = 0 recycles before any job; use e.g. \"10m\"".into(),
            ));
        }
        for (table, key, message) in errors {
            let pos = key_position(self.text, table, key);
            self.at(Severity::Error, pos, message);
        }
    }

    fn identity(&mut self, f: &PolicyFile) {
        for (key, value) in [("uid", f.identity.uid), ("gid", f.identity.gid)] {
            if value == Some(0) {
                let pos = key_position(self.text, "identity", key);
                self.at(
                    Severity::Error,
                    pos,
                    format!("identity.{key} = 0 runs the plugin as root; use an unprivileged id such as 65534"),
                );
            }
        }
    }

    fn duplicates(&mut self, f: &PolicyFile) {
        let s = &f.syscalls;
        let fs = &f.filesystem;
        let lists: [(&str, &[Spanned<String>]); 5] = [
            ("syscalls.allow", &s.allow),
            ("syscalls.deny", &s.deny),
            ("filesystem.read", &fs.read),
            ("filesystem.write", &fs.write),
            ("filesystem.exec", &fs.exec),
        ];
        for (list, items) in lists {
            for (i, item) in items.iter().enumerate() {
                if items[..i]
                    .iter()
                    .any(|earlier| earlier.get_ref() == item.get_ref())
                {
                    self.at_span(
                        Severity::Warning,
                        item.span(),
                        format!("{:?} is listed twice in {list}; remove one", item.get_ref()),
                    );
                }
            }
        }
        if let Some(families) = &s.socket_families {
            for (i, item) in families.iter().enumerate() {
                if families[..i].iter().any(|e| e.get_ref() == item.get_ref()) {
                    let m = format!(
                        "{:?} is listed twice in syscalls.socket_families; remove one",
                        item.get_ref()
                    );
                    self.at_span(Severity::Warning, item.span(), m);
                }
            }
        }
        // A syscall named on its own that a group in the same list already grants.
        for item in &s.allow {
            let name = item.get_ref().as_str();
            if name.starts_with('@') {
                continue;
            }
            let group = s.allow.iter().find(|g| {
                g.get_ref().starts_with('@')
                    && groups::expand(&[g.get_ref().as_str()])
                        .is_ok_and(|members| members.contains(&name))
            });
            if let Some(g) = group {
                let m = format!(
                    "{name:?} is already granted by {} in the same list; remove it",
                    g.get_ref()
                );
                self.at_span(Severity::Warning, item.span(), m);
            }
        }
    }

    fn paths(&mut self, f: &PolicyFile) {
        let fs = &f.filesystem;
        for (list, items) in [("read", &fs.read), ("write", &fs.write), ("exec", &fs.exec)] {
            for item in items
                .iter()
                .filter(|i| Path::new(i.get_ref()) == Path::new("/"))
            {
                self.at_span(
                    Severity::Warning,
                    item.span(),
                    format!("filesystem.{list} grants \"/\", the whole filesystem; grant the directories the plugin needs"),
                );
            }
        }
        for exec in &fs.exec {
            let path = PathBuf::from(exec.get_ref());
            if path.is_absolute() && !path.exists() {
                self.at_span(
                    Severity::Error,
                    exec.span(),
                    format!(
                        "filesystem.exec grants {:?}, which does not exist on this machine; Landlock would grant nothing (remove it or fix the path)",
                        exec.get_ref()
                    ),
                );
            }
            if let Some(w) = fs.write.iter().find(|w| path.starts_with(w.get_ref())) {
                self.at_span(
                    Severity::Warning,
                    exec.span(),
                    format!(
                        "{:?} is both executable and writable (filesystem.write grants {:?}): a plugin could write a program and run it; keep exec paths read-only",
                        exec.get_ref(),
                        w.get_ref()
                    ),
                );
            }
        }
        for read in &fs.read {
            let path = Path::new(read.get_ref());
            if let Some(w) = fs.write.iter().find(|w| path.starts_with(w.get_ref())) {
                self.at_span(
                    Severity::Warning,
                    read.span(),
                    format!(
                        "{:?} is in filesystem.read but filesystem.write already grants {:?} (write includes read); remove one",
                        read.get_ref(),
                        w.get_ref()
                    ),
                );
            }
        }
    }

    /// Grants that give more than their path says: through a symlink,
    /// over filesystems mounted below them, onto what every process of the
    /// machine shares, or onto a /proc that is not the plugin's own.
    fn widening(&mut self, f: &PolicyFile) {
        let fs = &f.filesystem;
        let pid_off = f.namespaces.pid == Some(false);
        let mounts = mount_points();
        for (list, items) in [("read", &fs.read), ("write", &fs.write), ("exec", &fs.exec)] {
            for item in items {
                let path = Path::new(item.get_ref());
                if let Some(m) = widening_of(path, list, pid_off, &mounts) {
                    self.at_span(Severity::Warning, item.span(), m);
                }
            }
        }
    }

    fn allow_and_deny(&mut self, f: &PolicyFile) {
        let s = &f.syscalls;
        for d in &s.deny {
            if s.allow.iter().any(|a| a.get_ref() == d.get_ref()) {
                self.at_span(
                    Severity::Error,
                    d.span(),
                    format!(
                        "{:?} is both allowed and denied in this file; remove one of the two",
                        d.get_ref()
                    ),
                );
            }
        }
    }

    fn namespaces(&mut self, f: &PolicyFile) {
        let ns = &f.namespaces;
        let off: [(&str, Option<bool>, &str); 3] = [
            ("mount", ns.mount, "the plugin sees the host's whole filesystem tree instead of a minimal root (Landlock still confines its opens)"),
            ("pid", ns.pid, "the plugin shares the host's PID namespace: no init reaps its orphans, it can probe every host pid, and its grants of /proc are withheld"),
            ("net", ns.net, "the plugin shares the host's network namespace: if sockets are allowed, the host's interfaces are reachable"),
        ];
        for (key, value, why) in off {
            if value == Some(false) {
                let pos = key_position(self.text, "namespaces", key);
                self.at(
                    Severity::Warning,
                    pos,
                    format!("namespaces.{key} = false: {why}"),
                );
            }
        }
    }

    fn ioctls(&mut self, f: &PolicyFile) {
        let Some(list) = &f.syscalls.ioctl else {
            return;
        };
        for item in list {
            let name = match item.get_ref() {
                IoctlName::Name(n) => Some(n.as_str()),
                IoctlName::Number(nr) => {
                    super::IOCTLS.iter().find(|(_, v)| v == nr).map(|(n, _)| *n)
                }
            };
            if let Some((n, why)) = RISKY_IOCTLS.iter().find(|(n, _)| Some(*n) == name) {
                self.at_span(
                    Severity::Warning,
                    item.span(),
                    format!("risky grant: ioctl {n} {why}"),
                );
            }
        }
    }
}

/// The mount points of this machine (`/proc/self/mountinfo`).
fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .collect()
}

/// Why granting `path` (in filesystem.`list`) gives more than it looks
/// like, if it does.
fn widening_of(path: &Path, list: &str, pid_off: bool, mounts: &[PathBuf]) -> Option<String> {
    let shown = path.display();
    if path.starts_with("/proc") {
        if pid_off {
            return Some(format!(
                "filesystem.{list} grants {shown:?} but namespaces.pid = false: the grant is withheld (without a PID namespace of its own the plugin's /proc would show the host's processes)"
            ));
        }
        if path != Path::new("/proc") {
            return Some(format!(
                "filesystem.{list} grants {shown:?}, which grants the plugin's whole /proc: each sandbox mounts its own procfs and Landlock can grant it only as a whole; write \"/proc\""
            ));
        }
        return None;
    }
    if path == Path::new("/") {
        return None; // `paths` already warns about the whole filesystem
    }
    // A directory reached through a symlink: the grant is the target's
    // whole tree, wherever it is (a symlink to one file grants that file).
    if let Ok(real) = std::fs::canonicalize(path) {
        if real != path && real.is_dir() {
            return Some(format!(
                "filesystem.{list} grants {shown:?}, which resolves to {:?} (a symlink on the way): Landlock grants everything below {:?}",
                real.display().to_string(),
                real.display().to_string()
            ));
        }
    }
    if ["/tmp", "/var/tmp", "/dev/shm", "/run/shm"]
        .iter()
        .any(|shared| path == Path::new(shared))
    {
        return Some(format!(
            "filesystem.{list} grants {shown:?}, which every process of the machine shares (namespaces do not cover it; the sandbox has a private /tmp of its own): grant a directory of the plugin's own"
        ));
    }
    let below: Vec<String> = mounts
        .iter()
        .filter(|m| m.starts_with(path) && m.as_path() != path)
        .take(4)
        .map(|m| m.display().to_string())
        .collect();
    if !below.is_empty() {
        return Some(format!(
            "filesystem.{list} grants {shown:?}, which also grants the filesystems mounted below it on this machine ({}{})",
            below.join(", "),
            if below.len() == 4 { ", ..." } else { "" }
        ));
    }
    None
}

/// 1-based line and column of `key = ...` inside `[table]` (`""` for the
/// top level); 1:1 when the key is not written in this file.
fn key_position(text: &str, table: &str, key: &str) -> (usize, usize) {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim().to_string();
            continue;
        }
        if current != table {
            continue;
        }
        if let Some(after) = trimmed.strip_prefix(key) {
            if after.trim_start().starts_with('=') {
                return (i + 1, line.len() - trimmed.len() + 1);
            }
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests;
