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

mod file;
mod names;
mod resolve;

pub use file::{
    env_key_problem, EnvironmentFile, FilesystemFile, IdentityFile, IoctlName, LandlockFile,
    LimitsFile, NamespacesFile, NetworkFile, PolicyFile, SyscallsFile, WorkerFile, DEFAULT_ENV,
};
pub use names::{
    errno_answer, errno_number, family_name, ioctl_number, socket_family, FAMILIES, IOCTLS,
    MAX_IOCTLS, UNDENIABLE, WRITABLE_ROOT,
};
pub use resolve::{expand, resolve, NameError};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

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

/// A size or a duration as written that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid size {text:?} ({reason}); write e.g. \"256MiB\" or \"64KiB\"")]
    /// A size that does not parse.
    Size {
        /// The text as written.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
    #[error("invalid duration {text:?} ({reason}); write e.g. \"10s\" or \"500ms\"")]
    /// A duration that does not parse.
    Duration {
        /// The text as written.
        text: String,
        /// Why it does not parse.
        reason: String,
    },
}

/// Parses `"256MiB"`, `"64 KiB"`, `"1GB"`, `"4096"`.
pub fn parse_size(s: &str) -> Result<u64, ValueError> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| ValueError::Size {
            text: s.to_string(),
            reason: e.to_string(),
        })
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
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    humantime::parse_duration(s.trim()).map_err(|e| ValueError::Duration {
        text: s.to_string(),
        reason: e.to_string(),
    })
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
    #[error("policy file {path} could be replaced by another user: {why}; plugwarden uses only policy files that no one but root and the user running it can change (chmod go-w the file and its directories, or move it where that holds)")]
    /// Another user could change the policy file (or one it extends) or
    /// replace it, and so loosen the sandbox.
    Replaceable {
        /// The policy file.
        path: PathBuf,
        /// Who could, and through which file or directory.
        why: String,
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
    check_trusted(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    resolve(Origin::File(path.to_path_buf()), &text)
}

/// Fails when another user could change or replace the policy file at
/// `path` (a policy names the walls: whoever can edit it can remove them).
fn check_trusted(path: &Path) -> Result<(), PolicyError> {
    let read = |source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    };
    match crate::trust::replaceable_by_others(path).map_err(read)? {
        Some(why) => Err(PolicyError::Replaceable {
            path: path.to_path_buf(),
            why,
        }),
        None => Ok(()),
    }
}

/// Parses one file without resolving `extends`.
#[doc(hidden)]
pub fn parse(origin: &Origin, text: &str) -> Result<PolicyFile, PolicyError> {
    toml::from_str::<PolicyFile>(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        invalid(origin, text, span, e.message().to_string())
    })
}

#[cfg(test)]
mod tests;
