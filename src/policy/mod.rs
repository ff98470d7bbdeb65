//! Policies: what a plugin may do, read from TOML (docs/POLICY.md).
//!
//! A policy file is parsed into [`PolicyFile`] (every table denies unknown
//! keys, every syscall name keeps its position in the file so errors can
//! name the line), then resolved along its `extends` chain into a
//! [`Policy`] with concrete values. The shipped policies in `policies/` are
//! embedded in the binary and found by name.

pub(crate) mod check;
pub(crate) mod grants;
pub use plugwarden_seccomp::groups;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The shipped policies, embedded at build time: (name, TOML text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("strict", include_str!("../../policies/strict.toml")),
    ("default", include_str!("../../policies/default.toml")),
    ("image", include_str!("../../policies/image.toml")),
    ("pdf", include_str!("../../policies/pdf.toml")),
    ("office", include_str!("../../policies/office.toml")),
    ("ocr", include_str!("../../policies/ocr.toml")),
];

/// How the supervisor answers a denied syscall.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnViolation {
    /// Kill the plugin; the job's verdict is `violation`.
    #[default]
    Kill,
    /// The syscall fails with EPERM and the job goes on; the denial is reported.
    Errno,
}

/// A size in bytes written as `"256MiB"`, `"1 GB"` or a plain integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Text(s) => parse_size(&s).map(Size).map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"256MiB"`, `"64 KiB"`, `"1GB"`, `"4096"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("invalid size {s:?} ({e}); write e.g. \"256MiB\" or \"64KiB\""))
}

/// A duration written as `"10s"`, `"500ms"`, `"2m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `"10s"`, `"1m 30s"`, `"250ms"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. \"10s\" or \"500ms\""))
}

/// A policy file as written: everything optional so `extends` can fill gaps.
#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// One line saying what the policy is for.
    pub description: Option<String>,
    /// A built-in policy name or a path (relative to this file) to start from.
    pub extends: Option<Spanned<String>>,
    /// Weaken instead of refusing when this kernel lacks a feature.
    pub best_effort: Option<bool>,
    #[serde(default)]
    pub syscalls: SyscallsFile,
    #[serde(default)]
    pub filesystem: FilesystemFile,
    #[serde(default)]
    pub network: NetworkFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub identity: IdentityFile,
    #[serde(default)]
    pub worker: WorkerFile,
    #[serde(default)]
    pub namespaces: NamespacesFile,
    #[serde(default)]
    pub environment: EnvironmentFile,
    #[serde(default)]
    pub landlock: LandlockFile,
}

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockFile {
    /// The lowest Landlock ABI (1 to 7) this policy runs with; below it the
    /// sandbox is refused whatever `best_effort` says.
    pub min_abi: Option<u8>,
}

/// `[environment]` as written in a policy or a plugin manifest.
#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentFile {
    /// Variables set to these values: `set = { TZ = "UTC" }`.
    #[serde(default)]
    pub set: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Variables passed from the host's environment (when set there).
    #[serde(default)]
    pub pass: Vec<Spanned<String>>,
}

impl EnvironmentFile {
    /// The first bad key or value: its span and what is wrong.
    pub fn problem(&self) -> Option<(std::ops::Range<usize>, String)> {
        for (key, value) in &self.set {
            if let Some(why) = env_key_problem(key.get_ref()) {
                return Some((key.span(), format!("environment.set: {why}")));
            }
            if value.get_ref().contains('\0') {
                return Some((
                    value.span(),
                    format!(
                        "environment.set: the value of {} contains a NUL byte",
                        key.get_ref()
                    ),
                ));
            }
        }
        self.pass.iter().find_map(|key| {
            env_key_problem(key.get_ref())
                .map(|why| (key.span(), format!("environment.pass: {why}")))
        })
    }

    /// The variables it sets and passes, the passed ones read from this
    /// process's environment (those unset here are left out).
    pub fn resolve(&self) -> Vec<(String, String)> {
        let set = self
            .set
            .iter()
            .map(|(k, v)| (k.get_ref().clone(), v.get_ref().clone()));
        let passed = self.pass.iter().filter_map(|k| {
            let key = k.get_ref();
            std::env::var(key).ok().map(|v| (key.clone(), v))
        });
        set.chain(passed).collect()
    }
}

/// Why `key` cannot name an environment variable, if it cannot.
pub fn env_key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        Some("an environment variable needs a name".into())
    } else if key.contains('=') {
        Some(format!(
            "{key:?} is not a variable name: it contains '=' (a name cannot; the value goes after it)"
        ))
    } else if key.contains('\0') {
        Some(format!("{key:?} contains a NUL byte"))
    } else {
        None
    }
}

/// The environment every plugin starts with, before the policy's, the
/// manifest's and the command line's: a search path and a UTF-8 locale,
/// nothing else.
pub const DEFAULT_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("LANG", "C.UTF-8"),
];

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacesFile {
    /// An empty network namespace (no interface but a downed loopback).
    pub net: Option<bool>,
    /// A private System V IPC / POSIX message queue namespace.
    pub ipc: Option<bool>,
    /// A private hostname.
    pub uts: Option<bool>,
    /// Its own PID namespace: the plugin is PID 1 there and sees nothing else.
    pub pid: Option<bool>,
    /// A minimal root: a tmpfs with read-only binds of what is granted.
    pub mount: Option<bool>,
}

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallsFile {
    /// Syscall names and `@group` names added to the allowlist.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Names removed again (after `extends` and `allow`).
    #[serde(default)]
    pub deny: Vec<Spanned<String>>,
    pub on_violation: Option<OnViolation>,
    /// ioctl request numbers (names such as `"TCGETS"` or integers) the
    /// plugin may use; compared on the low 32 bits like the kernel does.
    pub ioctl: Option<Vec<Spanned<IoctlName>>>,
    /// Socket families `socket()` may create, e.g. `["AF_UNIX"]`.
    pub socket_families: Option<Vec<Spanned<String>>>,
    /// What a syscall (or a group's) returns instead of a violation when
    /// the allowlist does not admit it: `{ personality = "ENOSYS" }`.
    pub errno: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

/// An ioctl request, by name or number.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum IoctlName {
    /// A request number.
    Number(u32),
    /// A request name from [`IOCTLS`].
    Name(String),
}

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemFile {
    #[serde(default)]
    pub read: Vec<Spanned<String>>,
    #[serde(default)]
    pub write: Vec<Spanned<String>>,
    #[serde(default)]
    pub exec: Vec<Spanned<String>>,
    /// A private writable /tmp of this size (0: /tmp stays read-only).
    pub tmp: Option<Size>,
}

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    #[serde(default)]
    pub connect_tcp: Vec<u16>,
    #[serde(default)]
    pub bind_tcp: Vec<u16>,
}

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub wall: Option<Dur>,
    pub cpu: Option<Dur>,
    pub memory: Option<Size>,
    pub processes: Option<u64>,
    pub open_files: Option<u64>,
    pub file_size: Option<Size>,
    pub output: Option<Size>,
    pub max_frame: Option<Size>,
    pub input: Option<Size>,
}

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityFile {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[doc(hidden)]
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerFile {
    pub batch: Option<u64>,
    pub recycle_rss: Option<Size>,
    pub max_lifetime: Option<Dur>,
}

/// A resolved policy with concrete values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Name (built-in) or path it was loaded from.
    pub name: String,
    /// What the policy is for.
    pub description: String,
    /// The TOML sources of the chain, outermost first (for hashing).
    pub sources: Vec<String>,
    /// Run with the walls this machine has when some are missing, instead of refusing.
    pub best_effort: bool,
    /// `[syscalls]`.
    pub syscalls: Syscalls,
    /// `[filesystem]`: the Landlock grants.
    pub filesystem: Filesystem,
    /// `[network]`: the TCP ports granted.
    pub network: Network,
    /// `[limits]`.
    pub limits: Limits,
    /// `[identity]`: who the plugin runs as.
    pub identity: Identity,
    /// `[worker]`: when a worker is recycled.
    pub worker: Worker,
    /// `[namespaces]`.
    pub namespaces: Namespaces,
    /// `[landlock] min_abi`: 0 when the policy states no floor.
    pub landlock_min_abi: u8,
    /// Variables added to [`DEFAULT_ENV`] (the `pass`ed ones as read when
    /// the sandbox is made).
    pub environment: Environment,
}

/// A policy's `[environment]`, the chain applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    /// Variables set to a value.
    pub set: BTreeMap<String, String>,
    /// Variables passed from the host's environment.
    pub pass: BTreeSet<String>,
}

impl Environment {
    /// The variables it sets and passes (see [`EnvironmentFile::resolve`]).
    pub fn resolve(&self) -> Vec<(String, String)> {
        let passed = self
            .pass
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)));
        self.set.clone().into_iter().chain(passed).collect()
    }
}

/// Namespaces the plugin gets, each on unless the policy turns it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Namespaces {
    /// A network namespace of its own (no network but loopback).
    pub net: bool,
    /// An IPC namespace of its own.
    pub ipc: bool,
    /// A UTS namespace of its own.
    pub uts: bool,
    /// A PID namespace of its own, with an init.
    pub pid: bool,
    /// A mount namespace with a minimal root.
    pub mount: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            net: true,
            ipc: true,
            uts: true,
            pid: true,
            mount: true,
        }
    }
}

impl Namespaces {
    /// The CLONE_* flags.
    pub fn flags(&self) -> u64 {
        let mut f = 0;
        if self.net {
            f |= libc::CLONE_NEWNET as u64;
        }
        if self.ipc {
            f |= libc::CLONE_NEWIPC as u64;
        }
        if self.uts {
            f |= libc::CLONE_NEWUTS as u64;
        }
        if self.pid {
            f |= libc::CLONE_NEWPID as u64;
        }
        if self.mount {
            f |= libc::CLONE_NEWNS as u64;
        }
        f
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// A policy's `[syscalls]`, resolved.
pub struct Syscalls {
    /// Syscall names after group expansion and `deny`, sorted.
    pub allow: BTreeSet<String>,
    /// Names a `deny` removed (and no later `allow` gave back).
    pub denied: BTreeSet<String>,
    /// What a syscall the allowlist does not admit returns instead of a
    /// violation (`errno = { personality = "ENOSYS" }`).
    pub errno: BTreeMap<String, u16>,
    /// What a call outside the allowlist gets: the plugin killed, or EPERM.
    pub on_violation: OnViolation,
    /// Allowed ioctl requests; empty with `ioctl` allowed means none pass.
    pub ioctl: BTreeSet<u32>,
    /// Allowed socket families (AF_* numbers).
    pub socket_families: BTreeSet<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// A policy's `[filesystem]`: what Landlock grants.
pub struct Filesystem {
    /// Readable paths.
    pub read: Vec<PathBuf>,
    /// Writable paths.
    pub write: Vec<PathBuf>,
    /// Executable paths.
    pub exec: Vec<PathBuf>,
    /// Size of the sandbox's private writable /tmp, a tmpfs charged to the
    /// worker's memory cgroup; 0: /tmp is there but not writable.
    pub tmp: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
/// A policy's `[network]`: the TCP ports Landlock grants.
pub struct Network {
    /// Ports the plugin may connect to.
    pub connect_tcp: Vec<u16>,
    /// Ports the plugin may bind.
    pub bind_tcp: Vec<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// A policy's `[limits]`.
pub struct Limits {
    /// Wall-clock time of one job.
    pub wall: Duration,
    /// CPU time of one job.
    pub cpu: Duration,
    /// Address space and data, bytes (and the cgroup's memory limit).
    pub memory: u64,
    /// 0 = no new processes (enforced by seccomp: no fork/clone of processes).
    pub processes: u64,
    /// Open file descriptors.
    pub open_files: u64,
    /// Largest file the plugin may write, bytes.
    pub file_size: u64,
    /// Largest output of one job, bytes (`output_limit` beyond).
    pub output: u64,
    /// Largest protocol frame, bytes.
    pub max_frame: u32,
    /// Largest input the host reads for one job (`input_error` beyond).
    pub input: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            cpu: Duration::from_secs(10),
            memory: 512 << 20,
            processes: 0,
            open_files: 64,
            file_size: 0,
            output: 64 << 20,
            max_frame: crate::protocol::DEFAULT_MAX_FRAME,
            input: 1 << 30,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// A policy's `[identity]`: the uid and gid the plugin runs as (when the host is root).
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            uid: 65534,
            gid: 65534,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// A policy's `[worker]`: when a worker process is recycled.
pub struct Worker {
    /// Jobs per worker.
    pub batch: u64,
    /// Resident set, bytes, above which a worker is recycled.
    pub recycle_rss: u64,
    /// Age after which a worker is recycled.
    pub max_lifetime: Duration,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            batch: 100,
            recycle_rss: 256 << 20,
            max_lifetime: Duration::from_secs(600),
        }
    }
}

/// A policy problem, located in its file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "unknown policy {name:?}: use one of {} or a path to a .toml file",
        builtin_names()
    )]
    /// No built-in policy of that name, and no such file.
    UnknownName {
        /** The name given. */
        name: String,
    },
    #[error("cannot read policy {path}: {source}")]
    /// The policy file cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        /// Why.
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    /// The policy is not valid: where and why.
    Invalid {
        /// The file or built-in name.
        origin: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    #[error("policy {origin}: `extends` chain is longer than 8 or loops back to itself")]
    /// `extends` loops, or is longer than 8.
    ExtendsLoop {
        /** The policy. */
        origin: String,
    },
}

fn builtin_names() -> String {
    BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a policy's text came from, for messages and for relative `extends`.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A built-in policy, by name.
    Builtin(&'static str),
    /// A file.
    File(PathBuf),
}

impl Origin {
    fn label(&self) -> String {
        match self {
            Origin::Builtin(n) => format!("<builtin {n}>"),
            Origin::File(p) => p.display().to_string(),
        }
    }
}

/// 1-based line and column of byte offset `pos` in `text`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

fn invalid(
    origin: &Origin,
    text: &str,
    span: std::ops::Range<usize>,
    message: String,
) -> PolicyError {
    let (line, column) = line_col(text, span.start);
    PolicyError::Invalid {
        origin: origin.label(),
        line,
        column,
        message,
    }
}

/// Loads a policy by built-in name or file path.
pub fn load(name_or_path: &str) -> Result<Policy, PolicyError> {
    if let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
        return resolve(Origin::Builtin(name), text);
    }
    let path = Path::new(name_or_path);
    let looks_like_path = name_or_path.contains('/') || name_or_path.ends_with(".toml");
    if !looks_like_path && !path.exists() {
        return Err(PolicyError::UnknownName {
            name: name_or_path.to_string(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    resolve(Origin::File(path.to_path_buf()), &text)
}

/// Parses one file without resolving `extends`.
#[doc(hidden)]
pub fn parse(origin: &Origin, text: &str) -> Result<PolicyFile, PolicyError> {
    toml::from_str::<PolicyFile>(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        invalid(origin, text, span, e.message().to_string())
    })
}

/// Parses `text` and everything it extends into a resolved [`Policy`].
pub fn resolve(origin: Origin, text: &str) -> Result<Policy, PolicyError> {
    // Collect the chain, innermost (the file itself) first.
    let mut chain: Vec<(Origin, String, PolicyFile)> = Vec::new();
    let mut current = (origin.clone(), text.to_string());
    loop {
        if chain.len() >= 8 {
            return Err(PolicyError::ExtendsLoop {
                origin: origin.label(),
            });
        }
        let file = parse(&current.0, &current.1)?;
        let parent = file.extends.clone();
        chain.push((current.0.clone(), current.1.clone(), file));
        let Some(parent) = parent else { break };
        let parent_name = parent.get_ref().as_str();
        current = if let Some((n, t)) = BUILTIN.iter().find(|(n, _)| *n == parent_name) {
            (Origin::Builtin(n), t.to_string())
        } else {
            let base = match &current.0 {
                Origin::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
                Origin::Builtin(_) => PathBuf::new(),
            };
            let path = base.join(parent_name);
            match std::fs::read_to_string(&path) {
                Ok(t) => (Origin::File(path), t),
                Err(e) => {
                    let (o, t) = (&current.0, &current.1);
                    return Err(invalid(
                        o,
                        t,
                        parent.span(),
                        format!(
                            "cannot extend {parent_name:?}: not a built-in policy ({}) and {} is unreadable ({e})",
                            builtin_names(),
                            path.display()
                        ),
                    ));
                }
            }
        };
    }

    let mut policy = Policy {
        name: match &origin {
            Origin::Builtin(n) => n.to_string(),
            Origin::File(p) => p.display().to_string(),
        },
        description: String::new(),
        sources: chain.iter().rev().map(|(_, t, _)| t.clone()).collect(),
        best_effort: false,
        syscalls: Syscalls::default(),
        filesystem: Filesystem::default(),
        network: Network::default(),
        limits: Limits::default(),
        identity: Identity::default(),
        worker: Worker::default(),
        namespaces: Namespaces::default(),
        landlock_min_abi: 0,
        environment: Environment::default(),
    };
    // Apply outermost first so the file itself wins.
    for (origin, text, file) in chain.iter().rev() {
        apply(&mut policy, origin, text, file)?;
    }
    validate(&policy, &origin, text)?;
    Ok(policy)
}

fn apply(p: &mut Policy, origin: &Origin, text: &str, f: &PolicyFile) -> Result<(), PolicyError> {
    if let Some(d) = &f.description {
        p.description = d.clone();
    }
    if let Some(b) = f.best_effort {
        p.best_effort = b;
    }
    let s = &f.syscalls;
    for name in &s.allow {
        for syscall in expand_name(origin, text, name)? {
            p.syscalls.denied.remove(&syscall);
            p.syscalls.allow.insert(syscall);
        }
    }
    for name in &s.deny {
        for syscall in expand_name(origin, text, name)? {
            if UNDENIABLE.contains(&syscall.as_str()) {
                return Err(invalid(
                    origin,
                    text,
                    name.span(),
                    format!(
                        "{syscall} cannot be denied: every process ends through it (exit and exit_group are always allowed); remove {:?} from deny",
                        name.get_ref()
                    ),
                ));
            }
            p.syscalls.allow.remove(&syscall);
            p.syscalls.denied.insert(syscall);
        }
    }
    if let Some(table) = &s.errno {
        for (name, errno) in table {
            let number = errno_number(errno.get_ref()).ok_or_else(|| {
                invalid(
                    origin,
                    text,
                    errno.span(),
                    format!(
                        "unknown errno {:?}: write its name, e.g. \"EPERM\", \"ENOSYS\", \"EACCES\"",
                        errno.get_ref()
                    ),
                )
            })?;
            if let Some(key) = family_key(name.get_ref()) {
                let key = key.map_err(|m| invalid(origin, text, name.span(), m))?;
                p.syscalls.errno.insert(key, number);
                continue;
            }
            for syscall in expand_name(origin, text, name)? {
                if UNDENIABLE.contains(&syscall.as_str()) {
                    return Err(invalid(
                        origin,
                        text,
                        name.span(),
                        format!(
                            "{syscall} cannot be given an errno: every process ends through it"
                        ),
                    ));
                }
                p.syscalls.errno.insert(syscall, number);
            }
        }
    }
    if let Some(v) = s.on_violation {
        p.syscalls.on_violation = v;
    }
    if let Some(list) = &s.ioctl {
        p.syscalls.ioctl.clear();
        for item in list {
            let nr = match item.get_ref() {
                IoctlName::Number(n) => *n,
                IoctlName::Name(name) => ioctl_number(name).ok_or_else(|| {
                    invalid(
                        origin,
                        text,
                        item.span(),
                        format!(
                            "unknown ioctl {name:?}: use one of {} or its number",
                            IOCTLS
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?,
            };
            p.syscalls.ioctl.insert(nr);
        }
    }
    if let Some(list) = &s.socket_families {
        p.syscalls.socket_families.clear();
        for item in list {
            let fam = socket_family(item.get_ref()).ok_or_else(|| {
                invalid(
                    origin,
                    text,
                    item.span(),
                    format!(
                        "unknown socket family {:?}: use one of {}",
                        item.get_ref(),
                        FAMILIES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            p.syscalls.socket_families.insert(fam);
        }
    }
    let fs = &f.filesystem;
    for (dst, src) in [
        (&mut p.filesystem.read, &fs.read),
        (&mut p.filesystem.write, &fs.write),
        (&mut p.filesystem.exec, &fs.exec),
    ] {
        for path in src {
            let pb = PathBuf::from(path.get_ref());
            if !pb.is_absolute() {
                return Err(invalid(
                    origin,
                    text,
                    path.span(),
                    format!("path {:?} must be absolute", path.get_ref()),
                ));
            }
            if !dst.contains(&pb) {
                dst.push(pb);
            }
        }
    }
    if let Some(root) = fs
        .write
        .iter()
        .find(|p| Path::new(p.get_ref()) == Path::new("/"))
    {
        return Err(invalid(origin, text, root.span(), WRITABLE_ROOT.into()));
    }
    set(&mut p.filesystem.tmp, fs.tmp.map(|s| s.0));
    p.network.connect_tcp.extend(&f.network.connect_tcp);
    p.network.bind_tcp.extend(&f.network.bind_tcp);
    let l = &f.limits;
    let lim = &mut p.limits;
    set(&mut lim.wall, l.wall.map(|d| d.0));
    set(&mut lim.cpu, l.cpu.map(|d| d.0));
    set(&mut lim.memory, l.memory.map(|s| s.0));
    set(&mut lim.processes, l.processes);
    set(&mut lim.open_files, l.open_files);
    set(&mut lim.file_size, l.file_size.map(|s| s.0));
    set(&mut lim.output, l.output.map(|s| s.0));
    set(&mut lim.input, l.input.map(|s| s.0));
    if let Some(m) = l.max_frame {
        lim.max_frame = u32::try_from(m.0).map_err(|_| {
            invalid(
                origin,
                text,
                0..0,
                "limits.max_frame must be below 4GiB".into(),
            )
        })?;
    }
    set(&mut p.identity.uid, f.identity.uid);
    set(&mut p.identity.gid, f.identity.gid);
    set(&mut p.worker.batch, f.worker.batch);
    set(&mut p.worker.recycle_rss, f.worker.recycle_rss.map(|s| s.0));
    set(
        &mut p.worker.max_lifetime,
        f.worker.max_lifetime.map(|d| d.0),
    );
    set(&mut p.namespaces.net, f.namespaces.net);
    set(&mut p.namespaces.ipc, f.namespaces.ipc);
    set(&mut p.namespaces.uts, f.namespaces.uts);
    set(&mut p.namespaces.pid, f.namespaces.pid);
    set(&mut p.namespaces.mount, f.namespaces.mount);
    if let Some(abi) = f.landlock.min_abi {
        let newest = crate::kernel::LANDLOCK_NEWEST;
        if !(1..=newest).contains(&abi) {
            return Err(invalid(
                origin,
                text,
                0..0,
                format!("landlock.min_abi = {abi}: give an ABI from 1 to {newest}"),
            ));
        }
        p.landlock_min_abi = abi;
    }
    let env = &f.environment;
    if let Some((span, message)) = env.problem() {
        return Err(invalid(origin, text, span, message));
    }
    for (k, v) in &env.set {
        p.environment
            .set
            .insert(k.get_ref().clone(), v.get_ref().clone());
    }
    p.environment
        .pass
        .extend(env.pass.iter().map(|k| k.get_ref().clone()));
    Ok(())
}

fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}

fn expand_name(
    origin: &Origin,
    text: &str,
    name: &Spanned<String>,
) -> Result<Vec<String>, PolicyError> {
    expand(name.get_ref()).map_err(|message| invalid(origin, text, name.span(), message))
}

/// The syscalls a name in an allow or deny list stands for: a group's
/// members, or the syscall itself; why not, when it names neither.
pub fn expand(name: &str) -> Result<Vec<String>, String> {
    if name.starts_with('@') {
        let unknown = |n: &str| {
            format!(
                "unknown syscall group {n:?}: known groups are {}",
                groups::GROUPS
                    .iter()
                    .map(|g| g.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if groups::find(name).is_none() {
            return Err(unknown(name));
        }
        let expanded = groups::expand(&[name]).map_err(|bad| bad.to_string())?;
        return Ok(expanded.into_iter().map(str::to_string).collect());
    }
    if groups::number(groups::Arch::X86_64, name).is_none()
        && groups::number(groups::Arch::Aarch64, name).is_none()
    {
        return Err(format!(
            "unknown syscall {name:?}: not a Linux syscall on x86_64 or aarch64 (check the spelling; \
             groups start with '@', see `plugwarden policy explain`)"
        ));
    }
    Ok(vec![name.to_string()])
}

fn validate(p: &Policy, origin: &Origin, text: &str) -> Result<(), PolicyError> {
    let fail = |m: String| Err(invalid(origin, text, 0..0, m));
    if p.limits.wall.is_zero() {
        return fail("limits.wall must be greater than 0".into());
    }
    if p.limits.cpu.is_zero() {
        return fail("limits.cpu must be greater than 0".into());
    }
    if p.limits.memory < (16 << 20) {
        return fail(format!(
            "limits.memory of {} bytes is too small to load a program; use at least \"16MiB\"",
            p.limits.memory
        ));
    }
    if p.limits.open_files < 4 {
        return fail(
            "limits.open_files must be at least 4 (stdin, stdout, stderr and one more)".into(),
        );
    }
    if p.limits.max_frame < 4096 {
        return fail("limits.max_frame must be at least \"4KiB\"".into());
    }
    if p.worker.batch == 0 {
        return fail("worker.batch must be at least 1".into());
    }
    // Each request costs one or two BPF instructions in the search over
    // requests; the cap keeps policies far from the kernel's 4096 (which
    // `seccomp::compile` also reports), as fuzz/policy_parser once found.
    if p.syscalls.ioctl.len() > MAX_IOCTLS {
        return fail(format!(
            "syscalls.ioctl lists {} requests; at most {MAX_IOCTLS} fit in a seccomp program",
            p.syscalls.ioctl.len()
        ));
    }
    Ok(())
}

/// An errno table key for one socket family, `"socket(AF_UNIX)"`: `None`
/// when `key` is not of that form, else the key as stored or why it is
/// wrong.
fn family_key(key: &str) -> Option<Result<String, String>> {
    let (name, rest) = key.split_once('(')?;
    let family = rest.strip_suffix(')')?;
    if !matches!(name, "socket" | "socketpair") {
        return Some(Err(format!(
            "{key:?}: only socket and socketpair take an argument here (a family: \"socket(AF_UNIX)\")"
        )));
    }
    Some(match socket_family(family) {
        Some(_) => Ok(key.to_string()),
        None => Err(format!(
            "{key:?}: unknown socket family {family:?}: use one of {}",
            FAMILIES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    })
}

/// The errno `errno` table answers syscall `name` with, called with
/// `args`: a family's own entry (`socket(AF_UNIX)`) first, then the
/// syscall's.
pub fn errno_answer(errno: &BTreeMap<String, u16>, name: &str, args: &[u64; 6]) -> Option<u16> {
    if matches!(name, "socket" | "socketpair") {
        if let Some(family) = family_name(args[0] & 0xffff_ffff) {
            if let Some(&e) = errno.get(&format!("{name}({family})")) {
                return Some(e);
            }
        }
    }
    errno.get(name).copied()
}

/// The number of an errno name (`"ENOSYS"` → 38), as this build's libc
/// names them.
pub fn errno_number(name: &str) -> Option<u16> {
    (1..4096)
        .find(|&n| {
            let e = nix::errno::Errno::from_raw(n);
            e != nix::errno::Errno::UnknownErrno && format!("{e:?}") == name
        })
        .and_then(|n| u16::try_from(n).ok())
}

/// Why `write = ["/"]` (or `--rw /`) is refused.
pub const WRITABLE_ROOT: &str = "the host's whole filesystem (/) is never granted for writing: \
     grant the directories the plugin writes, and a private /tmp (tmp = \"64MiB\", --tmp) for scratch files";

/// Syscalls no policy can deny (see `seccomp::ALWAYS`).
pub const UNDENIABLE: &[&str] = &["exit", "exit_group"];

/// Most ioctl requests one policy may allow.
pub const MAX_IOCTLS: usize = 256;

/// ioctl requests a policy may name (x86_64 and aarch64 share these numbers).
pub const IOCTLS: &[(&str, u32)] = &[
    ("TCGETS", 0x5401),
    ("TCSETS", 0x5402),
    ("TIOCGWINSZ", 0x5413),
    ("TIOCGPGRP", 0x540F),
    ("FIONREAD", 0x541B),
    ("FIONBIO", 0x5421),
    ("FIONCLEX", 0x5450),
    ("FIOCLEX", 0x5451),
    ("FIOASYNC", 0x5452),
    ("TIOCSTI", 0x5412),
    ("TIOCLINUX", 0x541C),
];

/// The number of the ioctl request `name` from [`IOCTLS`].
pub fn ioctl_number(name: &str) -> Option<u32> {
    IOCTLS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Socket families a policy may name.
pub const FAMILIES: &[(&str, u32)] = &[
    ("AF_UNIX", libc::AF_UNIX as u32),
    ("AF_INET", libc::AF_INET as u32),
    ("AF_INET6", libc::AF_INET6 as u32),
    ("AF_NETLINK", libc::AF_NETLINK as u32),
    ("AF_PACKET", libc::AF_PACKET as u32),
];

/// The number of the socket family `name` (`AF_INET`).
pub fn socket_family(name: &str) -> Option<u32> {
    FAMILIES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of socket family number `nr`.
pub fn family_name(nr: u64) -> Option<&'static str> {
    FAMILIES
        .iter()
        .find(|(_, v)| u64::from(*v) == nr)
        .map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_builtin_policies_all_resolve() {
        for (name, _) in BUILTIN {
            let p = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(p.syscalls.allow.contains("read"), "{name}");
            assert!(!p.description.is_empty(), "{name}");
        }
    }

    #[test]
    fn test_unknown_syscall_names_line_and_column() {
        let text = "description = \"x\"\n[syscalls]\nallow = [\"read\", \"raed\"]\n";
        let err = resolve(Origin::File("p.toml".into()), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.toml:3:18: unknown syscall \"raed\""),
            "{err}"
        );
    }

    #[test]
    fn test_unknown_key_is_error_with_line() {
        let text = "[limits]\nwal = \"1s\"\n";
        let err = resolve(Origin::File("p.toml".into()), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("p.toml:2:1: unknown field `wal`"), "{err}");
    }

    #[test]
    fn test_unknown_group_is_error() {
        let text = "[syscalls]\nallow = [\"@nope\"]\n";
        let err = resolve(Origin::File("p.toml".into()), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown syscall group \"@nope\""), "{err}");
    }

    #[test]
    fn test_extends_adds_and_overrides() {
        let text =
            "extends = \"strict\"\n[syscalls]\nallow = [\"socket\"]\n[limits]\nwall = \"3s\"\n";
        let p = resolve(Origin::File("p.toml".into()), text).unwrap();
        assert!(p.syscalls.allow.contains("socket"));
        assert!(p.syscalls.allow.contains("read"));
        assert_eq!(p.limits.wall, Duration::from_secs(3));
        assert_eq!(p.sources.len(), 2);
    }

    #[test]
    fn test_unknown_policy_name_is_error() {
        assert!(matches!(
            load("nosuch"),
            Err(PolicyError::UnknownName { .. })
        ));
    }

    #[test]
    fn test_errno_table_resolves_names_and_groups() {
        let text = "extends = \"strict\"\n[syscalls]\nerrno = { personality = \"ENOSYS\", \"@keyring\" = \"EPERM\" }\n";
        let p = resolve(Origin::File("p.toml".into()), text).unwrap();
        assert_eq!(
            p.syscalls.errno.get("personality"),
            Some(&(libc::ENOSYS as u16))
        );
        assert_eq!(p.syscalls.errno.get("keyctl"), Some(&(libc::EPERM as u16)));
    }

    #[test]
    fn test_errno_table_bad_names_are_located() {
        let err = |t: &str| {
            resolve(Origin::File("p.toml".into()), t)
                .unwrap_err()
                .to_string()
        };
        let e = err("[syscalls]\nerrno = { personality = \"ENOSUCH\" }\n");
        assert!(
            e.starts_with("p.toml:2:25: unknown errno \"ENOSUCH\""),
            "{e}"
        );
        let e = err("[syscalls]\nerrno = { personalty = \"ENOSYS\" }\n");
        assert!(
            e.starts_with("p.toml:2:11: unknown syscall \"personalty\""),
            "{e}"
        );
        let e = err("[syscalls]\nerrno = { exit = \"EPERM\" }\n");
        assert!(
            e.starts_with("p.toml:2:11: exit cannot be given an errno"),
            "{e}"
        );
    }

    #[test]
    fn test_environment_keys_with_equals_are_located() {
        let text = "[environment]\nset = { \"A=B\" = \"x\" }\n";
        let e = resolve(Origin::File("p.toml".into()), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "p.toml:2:9: environment.set: \"A=B\" is not a variable name: it contains '='"
            ),
            "{e}"
        );
        let text = "[environment]\npass = [\"HOME\", \"X=\"]\n";
        let e = resolve(Origin::File("p.toml".into()), text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("p.toml:2:17: environment.pass: \"X=\" is not a variable name"),
            "{e}"
        );
        let text =
            "extends = \"strict\"\n[environment]\nset = { TZ = \"UTC\" }\npass = [\"TERM\"]\n";
        let p = resolve(Origin::File("p.toml".into()), text).unwrap();
        assert_eq!(p.environment.set.get("TZ").map(String::as_str), Some("UTC"));
        assert!(p.environment.pass.contains("TERM"));
    }

    #[test]
    fn test_parse_size_accepts_units() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
    }
}
