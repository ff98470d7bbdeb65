//! The road from clone to exec, in order (docs/ARCHITECTURE.md).
//!
//! The fork server clones the *road runner*: with a PID namespace it is
//! the sandbox's init (PID 1, its own copy of the fork server's memory),
//! without one a short-lived launcher (sharing the fork server's memory,
//! as `posix_spawn` does). The road runner raises every wall but Landlock
//! and seccomp, then starts the *plugin process* with
//! `clone(CLONE_VM | CLONE_VFORK | CLONE_FILES)`: that process restricts
//! itself with Landlock, installs the policy's seccomp program and execs,
//! while the road runner waits, as `posix_spawn` does. Because the plugin
//! process shares the road runner's fd table, the seccomp listener it
//! creates (close-on-exec) is still in the road runner's table after the
//! exec; the road runner hands it to the fork server with `SCM_RIGHTS`.
//! So the only syscall made under the policy's filter is the exec itself
//! (and `exit_group` if it fails): no policy can stop setup half-way.
//!
//! The init then closes everything but its report socket, installs a tiny
//! filter of its own, reaps every process of its namespace and reports
//! the plugin's exact wait status and rusage; when the plugin exits, the
//! init exits and the kernel kills whatever was left in the namespace.
//!
//! Everything here makes raw syscalls only: no allocation, no locks, no
//! logging, no panics (the launcher runs in the fork server's memory).
//! Every input was prepared by the fork server before the clone ([`Plan`]).
//! A failing step is reported as a `(stage, errno)` pair on the report
//! socket, then the road runner exits.
//!
//! The rooms: `road.rs` is the order of the steps (one flat list against
//! the `Sys` trait, unit-tested with a recorder); `raw.rs` is each step's
//! syscalls; `root.rs` builds the minimal root; `launch.rs` starts the
//! plugin process and is the init. What the host prepares for a [`Plan`]
//! (and may allocate for) lives with the host: `kernel::userns_plan`,
//! `kernel::last_cap`, the fork server's `ignored_signals`.

mod launch;
mod raw;
mod road;
mod root;
mod zygote;

use std::ffi::{c_char, CStr, CString};
use std::os::fd::RawFd;

pub use launch::INIT_SYSCALLS;
pub(crate) use raw::{rt_sigaction, KernelSigaction};
pub use root::{build_root, RootOp, RootPlan};

use launch::launch;
use raw::Libc;
use road::road;

/// Declares [`Stage`] once: each step with the name users read.
macro_rules! stages {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        /// A step of the road; `name()` is what users read in
        /// `sandbox setup failed at landlock: EACCES`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u32)]
        pub enum Stage {
            $($variant),+
        }

        impl Stage {
            const ALL: &'static [Stage] = &[$(Stage::$variant),+];

            pub fn from_u32(v: u32) -> Option<Stage> {
                Stage::ALL.iter().copied().find(|s| *s as u32 == v)
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Stage::$variant => $name),+
                }
            }
        }
    };
}

stages! {
    Session => "session",
    Signals => "signals",
    Stdio => "stdio",
    Fds => "fds",
    Namespaces => "namespaces",
    Hostname => "hostname",
    Mount => "minimal root (mount namespace)",
    Proc => "the sandbox's own /proc",
    Cwd => "the working directory",
    Rlimit => "rlimit",
    ExecFd => "exec fd",
    Landlock => "landlock",
    Groups => "setgroups",
    CapBounding => "capability bounding set",
    Setresgid => "setresgid",
    Setresuid => "setresuid",
    Capabilities => "capabilities",
    Pdeathsig => "parent-death signal",
    ParentGone => "parent-death check (the fork server exited)",
    NoNewPrivs => "no_new_privs",
    Dumpable => "non-dumpable init",
    Go => "cgroup (waiting for the fork server)",
    Spawn => "starting the plugin process",
    Seccomp => "seccomp",
    Listener => "seccomp listener handover",
    InitFilter => "the init's own seccomp filter",
    Exec => "exec",
    Deadline => "the deadline (setup did not finish in time)",
}

/// Report tag: the plugin process has exec'd; the message carries its
/// listener and pidfd.
pub const STARTED: u32 = 0xffff;
/// Report tag (init only): the plugin exited; the message carries its
/// wait status and rusage.
pub const EXITED: u32 = 0xfffe;

/// One message on the report socket. Failures are `{tag: stage, value:
/// errno}`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub tag: u32,
    pub value: i32,
    /// Raw wait status (EXITED).
    pub status: i32,
    pub _pad: i32,
    pub utime_us: u64,
    pub stime_us: u64,
    pub maxrss_kib: u64,
}

impl Report {
    pub const LEN: usize = std::mem::size_of::<Report>();

    fn failure(stage: Stage, errno: i32) -> Report {
        Report {
            tag: stage as u32,
            value: errno,
            ..Report::default()
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: Report is repr(C) plain data without padding bytes
        // (explicit `_pad`), so every byte is initialised.
        unsafe { std::slice::from_raw_parts((self as *const Report).cast(), Report::LEN) }
    }

    /// Parses a message read from the report socket.
    pub fn parse(bytes: &[u8]) -> Option<Report> {
        if bytes.len() != Report::LEN {
            return None;
        }
        let u32_at = |i: usize| u32::from_ne_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_ne_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        Some(Report {
            tag: u32_at(0),
            value: u32_at(4) as i32,
            status: u32_at(8) as i32,
            _pad: 0,
            utime_us: u64_at(16),
            stime_us: u64_at(24),
            maxrss_kib: u64_at(32),
        })
    }
}

/// Everything the road runner needs, prepared before the clone.
pub struct Plan<'a> {
    /// Become fd 0, 1, 2 and, when not -1, fd 3 (the shared-memory arena
    /// of the bulk path).
    pub stdio: [RawFd; 4],
    /// Our end of the report socket (`SOCK_SEQPACKET`, close-on-exec).
    pub report: RawFd,
    /// -1 where close_range works (Linux 5.9+, 5.11+ for its CLOEXEC flag);
    /// else one past the fork server's highest fd, and fds are closed one
    /// by one below it.
    pub fd_limit: RawFd,
    pub new_session: bool,
    /// A network namespace to join (-1: stay).
    pub netns: RawFd,
    /// CLONE_* flags to unshare (IPC, UTS, and NET when not joined).
    pub unshare: i32,
    /// Set in a new UTS namespace.
    pub hostname: Option<&'a CStr>,
    /// Build a minimal root and pivot into it.
    pub root: Option<&'a RootPlan>,
    /// Without a minimal root but with a PID namespace: a private mount
    /// namespace with the sandbox's own procfs over /proc.
    pub own_proc: bool,
    /// Set when the fork server cloned us into a new user namespace.
    pub userns: Option<&'a UsernsPlan>,
    /// The plugin's working directory, entered once the root is in place
    /// (`None`: stay at `/`, or where the fork server is without a root).
    pub cwd: Option<&'a CStr>,
    /// (resource, soft, hard).
    pub rlimits: &'a [(u32, u64, u64)],
    pub landlock: Landlock<'a>,
    /// (uid, gid) to drop to; `None` when the host is not root.
    pub identity: Option<(u32, u32)>,
    /// The fork server's pid as the road runner sees it (0 from inside a
    /// new PID namespace), for the parent-death race check; the plugin
    /// process of a launcher checks it too (it is the fork server's child).
    pub parent: libc::pid_t,
    /// The fork server's pid: the plugin process of a launcher is its child.
    pub fork_server: libc::pid_t,
    /// Signals the fork server ignores (inherited from the host, or Rust's
    /// SIGPIPE): an ignored disposition survives exec, so these go back to
    /// the default. Handlers need nothing: exec resets them.
    pub ignored_signals: &'a [i32],
    /// The highest capability number of this kernel: the road drops
    /// 0..=last_cap from the bounding set (no failing probe past the end:
    /// the launcher shares the fork server's memory, errno included).
    pub last_cap: u32,
    /// The policy's seccomp program; installing it makes the listener.
    pub filter: &'a [seccompiler::sock_filter],
    /// The init's own program (kills on anything but what it needs).
    pub init_filter: &'a [seccompiler::sock_filter],
    /// O_PATH fd of the executable (exec by fd, immune to path swaps), or -1
    /// to exec `path` (scripts: the interpreter needs a path).
    pub exe_fd: RawFd,
    /// Where the exec fd is moved before exec: a number at or above the
    /// plugin's `RLIMIT_NOFILE`, which the plugin can never hold, so the
    /// filter can allow `execveat` on that fd alone (-1: leave it).
    pub exe_slot: RawFd,
    pub path: &'a CStr,
    /// NULL-terminated pointer arrays into strings the fork server owns.
    pub argv: &'a [*const c_char],
    pub envp: &'a [*const c_char],
    /// PID 1 of a new PID namespace: stay, reap and report. Otherwise a
    /// launcher: exit once the plugin has exec'd (the plugin is then the
    /// fork server's own child through `CLONE_PARENT`).
    pub init: bool,
    /// (init only) A warm zygote: once the plugin has exited, end what it
    /// left and, if nothing is left, start the plugin process of the next
    /// input the fork server sends (docs/decisions/zygote.md). Its own
    /// seccomp program is then not installed (each plugin process would
    /// inherit it).
    pub zygote: bool,
    /// Top of the stack the plugin process runs on until its exec.
    pub plugin_stack: *mut libc::c_void,
}

/// The Landlock ruleset the plugin process restricts itself with.
#[derive(Clone, Copy)]
pub enum Landlock<'a> {
    /// The profile's ruleset, built once by the fork server.
    Profile(RawFd),
    /// A ruleset of the sandbox's own, built on the road: the profile's
    /// rules plus rules for the sandbox's own mounts, whose inodes exist
    /// only inside it (a rule on a mount point does not cover what is
    /// mounted on it: Landlock's walk skips covered mount points).
    Own(&'a OwnRuleset),
}

/// The raw form of a profile's ruleset (`landlock_rules::raw`), from which
/// each sandbox builds its own.
pub struct OwnRuleset {
    /// `struct landlock_ruleset_attr`: handled fs, handled net, scoped.
    pub attr: [u64; 3],
    /// (O_PATH fd kept by the fork server, allowed access).
    pub paths: Vec<(RawFd, u64)>,
    /// (allowed access, TCP port).
    pub ports: Vec<(u64, u64)>,
    /// Access granted on the sandbox's own /proc (0: none).
    pub proc_access: u64,
    /// Access granted on the sandbox's private /tmp (0: none).
    pub tmp_access: u64,
    /// Every fd in `paths`, sorted (kept open on the road).
    pub keep: Vec<RawFd>,
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn send(fd: RawFd, r: &Report) {
    let b = r.bytes();
    // SAFETY: writes a buffer we own; a failure leaves nothing to do.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// Runs the road, starts the plugin, and (init) reaps; never returns. On
/// failure reports the stage.
pub fn enter(plan: &Plan) -> ! {
    let err = match road(&Libc, plan).and_then(|ruleset| launch(plan, ruleset)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    send(plan.report, &Report::failure(err.0, err.1));
    // SAFETY: _exit is async-signal-safe and does not return.
    unsafe { libc::_exit(127) }
}

fn check(stage: Stage, rc: libc::c_long) -> Result<(), (Stage, i32)> {
    if rc < 0 {
        Err((stage, errno()))
    } else {
        Ok(())
    }
}

/// The uid and gid maps written from inside a new user namespace: the
/// host's (unprivileged) ids appear as 65534 inside.
pub struct UsernsPlan {
    pub uid_map: CString,
    pub gid_map: CString,
    pub setgroups_path: &'static CStr,
    pub uid_map_path: &'static CStr,
    pub gid_map_path: &'static CStr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_stage_round_trips_through_its_number() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_u32(*s as u32), Some(*s));
        }
        assert_eq!(Stage::from_u32(STARTED), None);
        assert_eq!(Stage::from_u32(EXITED), None);
        assert_eq!(Stage::Landlock.name(), "landlock");
    }

    #[test]
    fn test_report_round_trips_through_its_bytes() {
        let r = Report {
            tag: EXITED,
            value: -3,
            status: 0x86,
            _pad: 0,
            utime_us: 1,
            stime_us: 1 << 40,
            maxrss_kib: 7,
        };
        assert_eq!(Report::parse(r.bytes()), Some(r));
        assert_eq!(Report::parse(&r.bytes()[1..]), None);
    }
}
