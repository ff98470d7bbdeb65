//! A policy file as written: every table, every value optional so that
//! `extends` can fill the gaps.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{Dur, OnViolation, Size};

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
    /// A request name from [`IOCTLS`](super::names::IOCTLS).
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
    /// Ports the plugin may connect to.
    pub connect_tcp: Vec<u16>,
    #[serde(default)]
    /// Ports the plugin may bind.
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
