//! The fork server: a small single-threaded helper that forks sandboxed
//! children on the host's behalf and is their subreaper.
//!
//! The host may have many threads; forking it would be slow (its whole
//! address space) and unsafe (only raw syscalls after fork). So at start-up
//! the host re-executes the plugwarden binary in a hidden mode
//! ([`SERVE_ARG`]) with one end of a `SOCK_SEQPACKET` socketpair. Over it
//! the host sends JSON requests (trusted: both ends are plugwarden) and
//! file descriptors (`SCM_RIGHTS`): the plugin's stdio pipe ends in, and
//! its pidfds and seccomp listener back. The fork server prepares each
//! profile once (Landlock ruleset, BPF programs, exec strings), then every
//! spawn clones a road runner ([`crate::child::enter`]): the sandbox's init
//! (with a PID namespace), or a launcher.
//!
//! It reaps every child and orphan outside the sandboxes (it is a
//! subreaper; inside, each init reaps) and keeps the exit status of each
//! sandbox's plugin until the host asks. When the host goes away, the
//! socket reads EOF: the fork server kills every sandbox and exits, and the
//! road runners' parent-death signal does the same for any it missed.
//!
//! The rooms: `wire.rs` (requests and replies), `client.rs` (the host's
//! [`ForkServer`]), `server.rs` (the loop, reaping, shutdown), `prepare.rs`
//! (a profile, made once), `clone.rs` (one spawn: clone, cgroup, go,
//! report), `root.rs` (the minimal root's layout and template),
//! `probes.rs` (the shared empty network namespace), `zygote.rs` (warm
//! inits that start one input after another). The types they share
//! live here.

mod client;
mod clone;
mod prepare;
mod probes;
mod root;
mod server;
mod wire;
mod zygote;

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::child::{self, Stage};
use crate::confine;
use crate::landlock_rules::{self, Grants};

pub use client::ForkServer;
use clone::*;
use probes::*;
use root::*;
pub use server::serve_if_requested;
use server::*;
use wire::*;
pub use wire::{ProfileSpec, SERVE_ARG};
use zygote::*;

/// Which optional walls the fork server could raise for a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Walls {
    /// The cgroup backend, described ("none (...)" when absent).
    pub cgroups: String,
    /// Each sandbox gets a cgroup of its own.
    pub cgroups_active: bool,
    /// Namespaces the children will enter (CLONE_* flags).
    pub namespaces: u64,
    /// The children see only the minimal root (`CLONE_NEWNS` alone may be
    /// just the private mount namespace of the sandbox's own /proc).
    pub minimal_root: bool,
    /// The Landlock ABI of the ruleset (0: none).
    pub landlock_abi: u8,
    /// What was asked for and cannot be had here.
    pub missing: Vec<String>,
}

/// How a child ended, with its resource usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Raw wait status.
    pub status: i32,
    /// User CPU time, µs.
    pub utime_us: u64,
    /// System CPU time, µs.
    pub stime_us: u64,
    /// Peak resident set, KiB.
    pub maxrss_kib: u64,
    /// From the worker's cgroup, when it had one.
    #[serde(default)]
    pub cgroup: Option<crate::cgroup::Usage>,
}

impl ExitInfo {
    /// The signal that killed it, if one did.
    pub fn signal(&self) -> Option<i32> {
        libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status))
    }
    /// Killed by a signal that dumped core.
    pub fn core_dumped(&self) -> bool {
        libc::WIFSIGNALED(self.status) && libc::WCOREDUMP(self.status)
    }
    /// Its exit status, if it exited.
    pub fn code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }
    /// User and system CPU time, ms.
    pub fn cpu_ms(&self) -> u64 {
        (self.utime_us + self.stime_us) / 1000
    }
}

/// A sandbox the fork server started.
#[derive(Debug)]
pub struct Spawned {
    /// The plugin's pid (in the host's PID namespace): its /proc files.
    pub pid: i32,
    /// What the fork server reaps and [`ForkServer::wait`] takes: the
    /// sandbox's init, or the plugin itself without a PID namespace.
    pub leader: i32,
    /// The leader's pidfd: readable once the sandbox has ended; SIGKILL
    /// through it ends the whole sandbox.
    pub pidfd: OwnedFd,
    pub listener: OwnedFd,
    /// The plugin's own pidfd: a SIGKILL through it stops the plugin at
    /// once (killing an init ends its namespace a moment later).
    pub plugin_pidfd: OwnedFd,
}

/// Why the fork server could not prepare a profile or start a sandbox
/// (the host reads its text: `Reply::Error`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServerError {
    #[error("unknown profile {0}")]
    UnknownProfile(u64),
    /// A syscall of the fork server's own failed.
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("path {} contains NUL", .0.display())]
    Nul(PathBuf),
    #[error(transparent)]
    Landlock(#[from] landlock_rules::LandlockError),
    /// What cannot go wrong but did (the message says what).
    #[error("{0}")]
    Broken(&'static str),
}

/// Why the fork server could not be started or could not do what it was
/// asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForkServerError {
    /// The helper program could not be started.
    #[error("cannot start the fork server {exe}: {source}")]
    Start {
        /// The helper.
        exe: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The socket to the fork server failed.
    #[error("fork server connection failed: {0}")]
    Io(#[from] io::Error),
    /// The fork server answered what it should not have (or went away).
    #[error("fork server protocol error: {0}")]
    Protocol(String),
    /// The child failed on its way to the plugin: the step and the errno.
    #[error("sandbox setup failed at {}: {}", .stage.name(), errno_name(*.errno))]
    Setup {
        /// The step of the confinement road that failed.
        stage: Stage,
        /// Its errno.
        errno: i32,
    },
    /// The fork server's own error, as its text.
    #[error("{0}")]
    Remote(String),
    /// This process is a fork server: it may not start another.
    #[error("this process is a plugwarden fork server and may not start another: call plugwarden::bootstrap() first thing in main, before anything that builds a sandbox")]
    Recursion,
    /// [`crate::ForkServer::start_self`] before [`crate::bootstrap`].
    #[error("this program cannot be its own fork server: plugwarden::bootstrap() was not called first thing in main (or use ForkServer::with_helper with the installed plugwarden binary)")]
    NotBootstrapped,
    /// The helper given to [`crate::ForkServer::with_helper`] is no file.
    #[error("fork server helper {} not found (the installed `plugwarden` binary is the usual one)", .0.display())]
    NoHelper(PathBuf),
}

/// A profile ready to fork: everything the child needs, allocated now.
struct Prepared {
    landlock: ProfileLandlock,
    filter: Vec<seccompiler::sock_filter>,
    exe_fd: Option<OwnedFd>,
    exe_slot: i32,
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    rlimits: Vec<(u32, u64, u64)>,
    identity: Option<(u32, u32)>,
    new_session: bool,
    cgroup: crate::cgroup::Limits,
    unshare: u64,
    join_net: bool,
    pidns: bool,
    /// No minimal root, but a PID namespace: the sandbox's own /proc.
    own_proc: bool,
    root: Option<child::RootPlan>,
    /// Owns the fd in `root.template`.
    _root_template: Option<OwnedFd>,
    userns: Option<child::UsernsPlan>,
    cwd: Option<CString>,
    walls: Walls,
    /// Served by a warm zygote (see `confine::zygote`).
    zygote: bool,
}

/// The Landlock rules of a profile.
enum ProfileLandlock {
    /// One ruleset every sandbox restricts itself with; `None` without
    /// Landlock (a named weakening, see `landlock_rules::gaps`).
    Shared(Option<OwnedFd>),
    /// The raw rules (and the fds they hold) each sandbox builds its own
    /// ruleset from, adding its own /proc (see `child::Landlock::Own`).
    Own {
        rules: child::OwnRuleset,
        /// Owns the fds in `rules`.
        _fds: Vec<OwnedFd>,
    },
}

/// A sandbox the fork server started and has not reaped yet.
struct Live {
    /// The pidfd of what we reap: the init, or the plugin without a PID
    /// namespace (the final kill goes through it).
    pidfd: OwnedFd,
    group: Option<crate::cgroup::Group>,
    /// With an init: its report socket (the plugin's exit status comes
    /// over it) and the plugin's pidfd (the kernel's own record of that
    /// status, Linux 6.15+).
    init: Option<(OwnedFd, OwnedFd)>,
    /// The init is a zygote: what it serves (see `zygote.rs`).
    zygote: Option<ZygoteRun>,
}

/// How a spawn request ended.
enum SpawnEnd {
    Started(Spawned),
    Failed(Stage, i32),
    /// The host closed its socket meanwhile: shut down.
    HostGone,
}

struct Server {
    sock: OwnedFd,
    sigchld: nix::sys::signalfd::SignalFd,
    profiles: HashMap<u64, Prepared>,
    next_profile: u64,
    /// Live sandboxes by leader pid.
    live: HashMap<i32, Live>,
    cgroups: crate::cgroup::Backend,
    /// An empty network namespace shared by every worker (lo down).
    netns: Option<OwnedFd>,
    /// An empty directory each child mounts its minimal root on.
    root_dir: Option<PathBuf>,
    /// Not root: whether children can get their walls from a user
    /// namespace instead (`Err` says why not).
    userns: Result<(), String>,
    spawned: u64,
    /// Groups made ahead, while idle, for the next spawn of each limits.
    ready_groups: Vec<(crate::cgroup::Limits, crate::cgroup::Group)>,
    /// Whether to make groups ahead (off after a failure, until a spawn
    /// makes one).
    make_ahead: bool,
    /// The stack each road runner runs on (a launcher in our memory, an
    /// init in its own copy of it).
    child_stack: ChildStack,
    /// The stack each plugin process runs on until its exec (in the road
    /// runner's memory).
    plugin_stack: ChildStack,
    /// The init's own seccomp program.
    init_filter: Vec<seccompiler::sock_filter>,
    /// The host closed its socket during a spawn.
    host_gone: bool,
    /// See `child::Plan::last_cap`.
    last_cap: u32,
    /// Dispositions each child resets (see `child::Plan::ignored_signals`).
    ignored_signals: Vec<i32>,
    /// Groups of reaped workers, removed while idle.
    dead_groups: Vec<crate::cgroup::Group>,
    /// Workers reaped before the host asked.
    exited: HashMap<i32, ExitInfo>,
    is_root: bool,
    me: libc::pid_t,
    /// Idle zygotes by profile.
    zygotes: HashMap<u64, Zygote>,
    /// `PLUGWARDEN_NO_ZYGOTE` is unset.
    zygote_enabled: bool,
}

/// Idle-time work of the fork server.
enum Chore {
    RemoveGroup,
    MakeGroup(crate::cgroup::Limits),
}

/// SIGKILL through a pidfd: no pid-reuse race. Errors (already dead) are
/// of no interest.
pub fn kill_pidfd(pidfd: BorrowedFd) {
    // SAFETY: pidfd_send_signal takes an fd and integers; no memory is passed.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            0usize,
            0u32,
        )
    };
}

/// Where the fork server binary is: `PLUGWARDEN_EXE`, else this executable.
pub fn default_exe() -> io::Result<PathBuf> {
    match std::env::var_os("PLUGWARDEN_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe(),
    }
}

/// `EACCES` for 13.
pub fn errno_name(e: i32) -> String {
    let errno = nix::errno::Errno::from_raw(e);
    if errno == nix::errno::Errno::UnknownErrno {
        format!("errno {e}")
    } else {
        format!("{errno:?}")
    }
}
