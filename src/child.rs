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

use std::ffi::{c_char, CStr, CString};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

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
    let err = match road(plan).and_then(|ruleset| launch(plan, ruleset)) {
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

/// Raises every wall but Landlock and seccomp; returns the Landlock
/// ruleset fd the plugin process restricts itself with.
fn road(plan: &Plan) -> Result<RawFd, (Stage, i32)> {
    // 1. Session and signals: no controlling terminal (TIOCSTI needs one),
    // default dispositions, nothing blocked.
    if plan.new_session {
        // SAFETY: setsid has no memory effects.
        check(Stage::Session, unsafe { libc::setsid() } as libc::c_long)?;
    }
    reset_signals(plan.ignored_signals)?;

    // 2. Only the intended fds: stdio from the plan, everything else
    // close-on-exec. Every source fd is above 3 (the fork server's own fds
    // 0-3 are never handed out), so no dup2 here overwrites a later source.
    for (target, &fd) in plan.stdio.iter().enumerate() {
        if fd >= 0 && fd != target as RawFd {
            // SAFETY: dup2 on fds the plan owns; no memory is touched.
            check(Stage::Stdio, unsafe { libc::dup2(fd, target as RawFd) }
                as libc::c_long)?;
        }
    }
    // Close every other fd the fork server had (its socket, other workers'
    // pidfds, ...): nothing may leak into the plugin, and the listener must
    // get a low number under RLIMIT_NOFILE. What the road still needs stays
    // open, close-on-exec.
    let first = if plan.stdio[3] >= 0 { 4 } else { 3 };
    let (ruleset, paths): (RawFd, &[RawFd]) = match plan.landlock {
        Landlock::Profile(fd) => (fd, &[]),
        Landlock::Own(own) => (-1, &own.keep),
    };
    close_others(
        first,
        plan.fd_limit,
        [
            plan.report,
            plan.exe_fd,
            plan.netns,
            ruleset,
            plan.root.map_or(-1, |r| r.template),
        ],
        paths,
    )?;
    if plan.fd_limit < 0 {
        // SAFETY: only flags entries of our own fd table.
        let rc = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
        check(Stage::Fds, rc as libc::c_long)?;
    } else {
        for fd in first as RawFd..plan.fd_limit {
            // SAFETY: flags an entry of our own fd table; EBADF (a gap) is fine.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }

    // 3. Namespaces: as an ordinary user, first map our uid inside the user
    // namespace the fork server cloned us into; then the shared empty
    // network namespace, fresh IPC and UTS (named `plugwarden`), the
    // minimal root or at least our own /proc.
    if let Some(u) = plan.userns {
        write_file(u.setgroups_path, c"deny")?;
        write_file(u.uid_map_path, &u.uid_map)?;
        write_file(u.gid_map_path, &u.gid_map)?;
    }
    if plan.netns >= 0 {
        // SAFETY: setns on an fd the plan owns; no memory is passed.
        let rc = unsafe { libc::setns(plan.netns, libc::CLONE_NEWNET) };
        check(Stage::Namespaces, rc as libc::c_long)?;
    }
    if plan.unshare != 0 {
        // SAFETY: unshare takes flags only.
        check(Stage::Namespaces, unsafe { libc::unshare(plan.unshare) }
            as libc::c_long)?;
    }
    if let Some(name) = plan.hostname {
        let bytes = name.to_bytes();
        // SAFETY: reads `bytes` from memory the plan owns.
        let rc = unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) };
        check(Stage::Hostname, rc as libc::c_long)?;
    }
    if let Some(root) = plan.root {
        enter_root(root)?;
    } else if plan.own_proc {
        mount_own_proc()?;
    }
    if let Some(dir) = plan.cwd {
        // SAFETY: dir is NUL-terminated.
        check(Stage::Cwd, unsafe { libc::chdir(dir.as_ptr()) }
            as libc::c_long)?;
    }

    // 4. The sandbox's own Landlock ruleset, now that its mounts exist.
    let ruleset = match plan.landlock {
        Landlock::Own(own) => own_ruleset(own)?,
        Landlock::Profile(fd) => fd,
    };

    // 5. The exec fd to its slot, then the rlimits (which put the slot out
    // of the plugin's reach).
    if plan.exe_slot >= 0 && plan.exe_fd >= 0 {
        move_exe_fd(plan.exe_fd, plan.exe_slot)?;
    }
    for &(resource, soft, hard) in plan.rlimits {
        let lim = libc::rlimit64 {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: prlimit64 on ourselves reads one stack struct.
        let rc = unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) };
        check(Stage::Rlimit, rc as libc::c_long)?;
    }

    // 6. no_new_privs, identity (root only), then the parent-death signal,
    // which a credential change would have cleared.
    no_new_privs()?;
    if let Some((uid, gid)) = plan.identity {
        drop_identity(uid, gid, plan.last_cap)?;
    } else if plan.userns.is_some() {
        // Capabilities held inside our own user namespace go too.
        drop_bounding(plan.last_cap)?;
        clear_caps()?;
    }
    parent_death(plan.parent)?;
    no_new_privs()?;
    if plan.init {
        // Nobody may read or trace the init's memory (a copy of the fork
        // server's), not even a plugin of the same uid. (The launcher shares
        // the fork server's memory, so this flag would be the fork
        // server's; the plugin cannot trace the launcher anyway: it is
        // outside the plugin's Landlock domain.)
        // SAFETY: integer-only prctl.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        check(Stage::Dumpable, rc as libc::c_long)?;
    }
    Ok(ruleset)
}

fn no_new_privs() -> Result<(), (Stage, i32)> {
    // SAFETY: integer-only prctl.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(Stage::NoNewPrivs, rc as libc::c_long)
}

/// `PR_SET_PDEATHSIG` and the check that `parent` is still our parent.
fn parent_death(parent: libc::pid_t) -> Result<(), (Stage, i32)> {
    // SAFETY: integer-only prctl.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    check(Stage::Pdeathsig, rc as libc::c_long)?;
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != parent {
        return Err((Stage::ParentGone, libc::ESRCH));
    }
    Ok(())
}

/// Moves the exec fd to `slot`, a number at or above the plugin's
/// `RLIMIT_NOFILE` (set right after) and above every fd of the fork server.
fn move_exe_fd(fd: RawFd, slot: RawFd) -> Result<(), (Stage, i32)> {
    // dup3 cannot reach a number at or above our soft limit: raise it
    // (the rlimits step lowers soft and hard again).
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit64 on ourselves writes one stack struct.
    let rc = unsafe { libc::prlimit64(0, libc::RLIMIT_NOFILE, std::ptr::null(), &mut lim) };
    check(Stage::ExecFd, rc as libc::c_long)?;
    let want = slot as u64 + 1;
    if lim.rlim_cur < want {
        lim.rlim_cur = want.min(lim.rlim_max);
        // SAFETY: as above, reading one stack struct.
        let rc = unsafe { libc::prlimit64(0, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
        check(Stage::ExecFd, rc as libc::c_long)?;
    }
    // Only the fds the road keeps are open now; the slot is above every fd
    // of the fork server's but its very last one, so this never fires
    // unless that one is kept (then fail rather than replace it).
    // SAFETY: F_GETFD only reads our fd table.
    if unsafe { libc::fcntl(slot, libc::F_GETFD) } >= 0 {
        return Err((Stage::ExecFd, libc::EBUSY));
    }
    // SAFETY: dup3 from an fd the plan owns into a free number.
    let rc = unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) };
    check(Stage::ExecFd, rc as libc::c_long)
}

/// What the plugin process hands back to the road runner through their
/// shared memory: no syscall is needed for it (it runs under the filter).
struct Launch {
    /// The stage that failed (0 = none; stage + 1 otherwise).
    failed: AtomicU32,
    errno: AtomicI32,
    listener: AtomicI32,
}

/// What the plugin process reads: the plan, the ruleset, the handback.
struct PluginArgs<'a> {
    plan: &'a Plan<'a>,
    ruleset: RawFd,
    launch: Launch,
}

/// Starts the plugin process and waits for its exec; then hands its
/// listener to the fork server and (init) reaps until it exits.
fn launch(plan: &Plan, ruleset: RawFd) -> Result<std::convert::Infallible, (Stage, i32)> {
    // The fork server says go once we are in the sandbox's cgroup (the
    // plugin process inherits it).
    let mut go = [0u8; 1];
    // SAFETY: reads one byte into a stack buffer.
    if unsafe { libc::read(plan.report, go.as_mut_ptr().cast(), 1) } != 1 {
        return Err((Stage::Go, libc::EPIPE));
    }
    let mut args = PluginArgs {
        plan,
        ruleset,
        launch: Launch {
            failed: AtomicU32::new(0),
            errno: AtomicI32::new(0),
            listener: AtomicI32::new(-1),
        },
    };
    extern "C" fn plugin_main(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the PluginArgs on the road runner's stack, which
        // is suspended (CLONE_VFORK) until this process has exec'd or exited.
        let args = unsafe { &*arg.cast::<PluginArgs>() };
        let (stage, errno) = match plugin_process(args) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        args.launch.errno.store(errno, Ordering::SeqCst);
        args.launch.failed.store(stage as u32 + 1, Ordering::SeqCst);
        // SAFETY: _exit does not return.
        unsafe { libc::_exit(127) }
    }
    let mut pidfd: libc::c_int = -1;
    // A launcher is not PID 1, so its plugin can be the fork server's own
    // child (which then waits for it and gets the kernel's own status).
    let parent = if plan.init { 0 } else { libc::CLONE_PARENT };
    let flags = libc::CLONE_VM
        | libc::CLONE_VFORK
        | libc::CLONE_FILES
        | libc::CLONE_PIDFD
        | libc::SIGCHLD
        | parent;
    // SAFETY: the plugin process runs plugin_main on its own stack in our
    // memory while we are suspended (CLONE_VFORK), writes only that stack
    // and the atomics of `args`, and execs or exits; `args` outlives that.
    let pid = unsafe {
        libc::clone(
            plugin_main,
            plan.plugin_stack,
            flags,
            (&mut args as *mut PluginArgs).cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    if pid < 0 {
        return Err((Stage::Spawn, errno()));
    }
    let failed = args.launch.failed.load(Ordering::SeqCst);
    if failed != 0 {
        let stage = Stage::from_u32(failed - 1).unwrap_or(Stage::Exec);
        return Err((stage, args.launch.errno.load(Ordering::SeqCst)));
    }
    let listener = args.launch.listener.load(Ordering::SeqCst);
    if !plan.init {
        send_started(plan.report, listener, pidfd)?;
        // SAFETY: _exit does not return; the plugin is the fork server's child.
        unsafe { libc::_exit(0) }
    }
    init(plan, pid, listener, pidfd, ruleset)
}

/// The plugin process between clone and exec: Landlock, seccomp, exec.
/// After the filter is installed the only syscalls are the exec (allowed
/// by a rule only this call can meet) and `exit_group` if it fails.
fn plugin_process(args: &PluginArgs) -> Result<std::convert::Infallible, (Stage, i32)> {
    let plan = args.plan;
    if !plan.init {
        // Our parent is the fork server (CLONE_PARENT): die with it.
        parent_death(plan.fork_server)?;
    }
    // -1 only without Landlock (ABI 0, a weakening the host named); a bad
    // fd fails the spawn at this stage. The ruleset was built with every
    // right of the kernel's ABI as a hard requirement, so it is fully
    // enforced once this succeeds.
    if args.ruleset >= 0 {
        // SAFETY: landlock_restrict_self takes an fd and flags.
        let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, args.ruleset, 0u32) };
        check(Stage::Landlock, rc)?;
    }
    let listener = install_filter(plan.filter, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)
        .map_err(|e| (Stage::Seccomp, e))?;
    // Close-on-exec in the fd table we share with the road runner: after
    // the exec only the road runner holds it.
    args.launch.listener.store(listener, Ordering::SeqCst);
    exec(plan);
    Err((Stage::Exec, errno()))
}

fn exec(plan: &Plan) {
    let fd = if plan.exe_slot >= 0 {
        plan.exe_slot
    } else {
        plan.exe_fd
    };
    if fd >= 0 {
        // SAFETY: argv/envp are NULL-terminated arrays of pointers to
        // NUL-terminated strings that outlive this call.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                fd,
                c"".as_ptr(),
                plan.argv.as_ptr(),
                plan.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
    } else {
        // SAFETY: as above.
        unsafe { libc::execve(plan.path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr()) };
    }
}

/// Sends STARTED with the listener and the plugin's pidfd.
fn send_started(report: RawFd, listener: RawFd, pidfd: RawFd) -> Result<(), (Stage, i32)> {
    let r = Report {
        tag: STARTED,
        ..Report::default()
    };
    let bytes = r.bytes();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // Room for one cmsghdr carrying two fds, 8-byte aligned.
    let mut control = [0u64; 8];
    let fds = [listener, pidfd];
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
    let (space, len) = unsafe {
        (
            libc::CMSG_SPACE(std::mem::size_of_val(&fds) as u32) as usize,
            libc::CMSG_LEN(std::mem::size_of_val(&fds) as u32) as usize,
        )
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `control` holds `space` bytes (64 >= CMSG_SPACE(8)); the
    // first header and its data lie inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = len;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), 2);
    }
    // SAFETY: every pointer in `msg` points to live stack memory.
    let rc = unsafe { libc::sendmsg(report, &msg, libc::MSG_NOSIGNAL) };
    check(Stage::Listener, rc as libc::c_long)
}

/// PID 1 of the sandbox: confine itself, hand over the listener, reap
/// every process of the namespace and report the plugin's exit.
fn init(
    plan: &Plan,
    plugin: libc::pid_t,
    listener: RawFd,
    pidfd: RawFd,
    ruleset: RawFd,
) -> Result<std::convert::Infallible, (Stage, i32)> {
    // Nothing but the report socket and what it is about to hand over: the
    // stdio pipes must reach EOF when the plugin closes them. Without
    // close_range, one by one up to the highest fd we can hold: the fork
    // server's, or one the road made (the exec slot, the sandbox's own
    // ruleset, the listener, the pidfd).
    let limit = if plan.fd_limit < 0 {
        -1
    } else {
        [plan.fd_limit - 1, plan.exe_slot, ruleset, listener, pidfd]
            .into_iter()
            .max()
            .unwrap_or(0)
            + 1
    };
    close_others(0, limit, [plan.report, listener, pidfd, -1, -1], &[])?;
    // The fork server is waiting for this; our own filter can follow (the
    // plugin cannot reach us meanwhile: we are not dumpable and outside
    // its Landlock domain).
    send_started(plan.report, listener, pidfd)?;
    if let Err(e) = install_filter(plan.init_filter, 0) {
        // SAFETY: kill takes integers; the plugin must not run unsupervised.
        unsafe { libc::kill(plugin, libc::SIGKILL) };
        return Err((Stage::InitFilter, e));
    }
    // The fork server reads the plugin's pid from its pidfd, which works
    // only until we reap it: wait for its word (EOF will do too).
    let mut ack = [0u8; 1];
    // SAFETY: reads one byte into a stack buffer; closes fds we own (the
    // fork server has its copies).
    unsafe {
        libc::read(plan.report, ack.as_mut_ptr().cast(), 1);
        libc::close(listener);
        libc::close(pidfd);
    }
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data, filled by the kernel.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes two out-parameters on our stack.
        let pid = unsafe { libc::wait4(-1, &mut status, libc::__WALL, &mut ru) };
        if pid == plugin {
            let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
            send(
                plan.report,
                &Report {
                    tag: EXITED,
                    value: 0,
                    status,
                    _pad: 0,
                    utime_us: us(ru.ru_utime),
                    stime_us: us(ru.ru_stime),
                    maxrss_kib: ru.ru_maxrss as u64,
                },
            );
            // Our exit ends the namespace: the kernel kills what is left.
            // SAFETY: _exit does not return.
            unsafe { libc::_exit(0) }
        }
        if pid < 0 && errno() == libc::ECHILD {
            // SAFETY: as above (unreachable while the plugin lives).
            unsafe { libc::_exit(0) }
        }
    }
}

/// The syscalls the init makes once its own filter is on.
pub const INIT_SYSCALLS: &[&str] = &[
    "wait4",
    "sendmsg",
    "write",
    "read",
    "close",
    "exit",
    "exit_group",
];

/// A private mount namespace with the sandbox's own procfs over /proc (no
/// minimal root).
fn mount_own_proc() -> Result<(), (Stage, i32)> {
    let null = std::ptr::null();
    // SAFETY: unshare takes flags only.
    check(Stage::Proc, unsafe { libc::unshare(libc::CLONE_NEWNS) }
        as libc::c_long)?;
    // SAFETY: every pointer is NULL or a NUL-terminated literal.
    let rc = unsafe {
        libc::mount(
            null,
            c"/".as_ptr(),
            null,
            libc::MS_REC | libc::MS_PRIVATE,
            null.cast(),
        )
    };
    check(Stage::Proc, rc as libc::c_long)?;
    // SAFETY: as above.
    let rc = unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            null.cast(),
        )
    };
    check(Stage::Proc, rc as libc::c_long)
}

/// `struct landlock_path_beneath_attr` (packed in the uapi header).
#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

/// `struct landlock_net_port_attr`.
#[repr(C)]
struct NetPort {
    allowed_access: u64,
    port: u64,
}

const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;
const LANDLOCK_RULE_NET_PORT: u32 = 2;

/// Builds the sandbox's own ruleset: the profile's rules, then rules on
/// our own /proc and private /tmp. Returns its fd (close-on-exec).
fn own_ruleset(own: &OwnRuleset) -> Result<RawFd, (Stage, i32)> {
    // SAFETY: the attr is three u64 on the plan, read by the kernel.
    let rs = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            own.attr.as_ptr(),
            std::mem::size_of_val(&own.attr),
            0u32,
        )
    };
    check(Stage::Landlock, rs)?;
    let rs = rs as RawFd;
    let add_path = |fd: RawFd, access: u64| {
        let attr = PathBeneath {
            allowed_access: access,
            parent_fd: fd,
        };
        // SAFETY: the kernel reads one attr struct from our stack.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                rs,
                LANDLOCK_RULE_PATH_BENEATH,
                &attr as *const PathBeneath,
                0u32,
            )
        };
        check(Stage::Landlock, rc)
    };
    for &(fd, access) in &own.paths {
        add_path(fd, access)?;
    }
    for &(access, port) in &own.ports {
        let attr = NetPort {
            allowed_access: access,
            port,
        };
        // SAFETY: the kernel reads one attr struct from our stack.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                rs,
                LANDLOCK_RULE_NET_PORT,
                &attr as *const NetPort,
                0u32,
            )
        };
        check(Stage::Landlock, rc)?;
    }
    for (dir, access) in [(c"/proc", own.proc_access), (c"/tmp", own.tmp_access)] {
        if access == 0 {
            continue;
        }
        // SAFETY: a literal path; the fd is closed below.
        let fd = unsafe {
            libc::open(
                dir.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        check(Stage::Landlock, fd as libc::c_long)?;
        let added = add_path(fd, access);
        // SAFETY: closing the fd opened above.
        unsafe { libc::close(fd) };
        added?;
    }
    Ok(rs)
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

impl UsernsPlan {
    pub fn new(uid: u32, gid: u32) -> UsernsPlan {
        let map = |id: u32| CString::new(format!("65534 {id} 1\n")).expect("no NUL");
        UsernsPlan {
            uid_map: map(uid),
            gid_map: map(gid),
            setgroups_path: c"/proc/self/setgroups",
            uid_map_path: c"/proc/self/uid_map",
            gid_map_path: c"/proc/self/gid_map",
        }
    }
}

fn write_file(path: &CStr, data: &CStr) -> Result<(), (Stage, i32)> {
    // SAFETY: path is NUL-terminated; the fd is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    check(Stage::Namespaces, fd as libc::c_long)?;
    let bytes = data.to_bytes();
    // SAFETY: writes `bytes` from memory we own.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    let e = errno();
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    if n != bytes.len() as isize {
        return Err((Stage::Namespaces, e));
    }
    Ok(())
}

/// One step of building the minimal root. Destinations are relative to
/// the new root (the child stands in it when they run); bind sources are
/// host paths.
pub enum RootOp {
    Mkdir(CString),
    /// Creates an empty file to bind a file onto.
    Touch(CString),
    /// Read-only (or read-write) recursive bind mount.
    /// `flags` are the remount flags: MS_RDONLY unless writable, MS_NOSUID,
    /// MS_NODEV except for device nodes, plus the source mount's own flags
    /// (inside a user namespace they are locked and dropping one fails).
    Bind {
        src: CString,
        dst: CString,
        flags: libc::c_ulong,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    /// Per child: a fresh, bounded, noexec tmpfs (the private /tmp).
    Tmpfs {
        dst: CString,
        opts: CString,
    },
    /// Per child: a /proc of the child's PID namespace.
    Proc(CString),
}

impl RootOp {
    /// Whether every child needs its own (not part of a template).
    pub fn per_child(&self) -> bool {
        matches!(self, RootOp::Tmpfs { .. } | RootOp::Proc(_))
    }
}

/// A minimal root: a fresh tmpfs with read-only binds of what the policy
/// grants and what loading the executable needs, a bounded private /tmp, a
/// /proc of the plugin's PID namespace and a minimal /dev.
pub struct RootPlan {
    /// An empty host directory the tmpfs is mounted on (in the child's
    /// own mount namespace only).
    pub mountpoint: CString,
    pub opts: CString,
    /// The policy grants `/`: the root is the host's whole tree bound
    /// (every mount below it read-only, unless `/` is granted for writing:
    /// `Some(true)`) instead of a tmpfs; the ops then only mount the private
    /// /tmp and /proc over the host's.
    pub host_root: Option<bool>,
    pub ops: Vec<RootOp>,
    /// A mount namespace holding this root already built (everything but
    /// the per-child ops), or -1. The child joins a copy of it instead of
    /// building the root: a handful of syscalls instead of dozens.
    pub template: RawFd,
}

fn mount(
    src: *const c_char,
    dst: &CStr,
    fstype: *const c_char,
    flags: libc::c_ulong,
    data: *const c_char,
) -> Result<(), (Stage, i32)> {
    // SAFETY: every pointer is NULL or a NUL-terminated string that outlives the call.
    let rc = unsafe { libc::mount(src, dst.as_ptr(), fstype, flags, data.cast()) };
    check(Stage::Mount, rc as libc::c_long)
}

fn chdir(path: &CStr) -> Result<(), (Stage, i32)> {
    // SAFETY: path is NUL-terminated.
    check(Stage::Mount, unsafe { libc::chdir(path.as_ptr()) }
        as libc::c_long)
}

fn enter_root(r: &RootPlan) -> Result<(), (Stage, i32)> {
    if r.template >= 0 {
        // A private copy of the template (its mounts are private already),
        // then what is each child's own.
        // SAFETY: setns takes an fd and flags.
        let rc = unsafe { libc::setns(r.template, libc::CLONE_NEWNS) };
        check(Stage::Mount, rc as libc::c_long)?;
        // SAFETY: unshare takes flags only.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNS) };
        check(Stage::Mount, rc as libc::c_long)?;
        chdir(c"/")?;
        for op in r.ops.iter().filter(|op| op.per_child()) {
            apply(op)?;
        }
        return Ok(());
    }
    build_root(r, true)
}

/// Builds the root in a new mount namespace and pivots into it; with
/// `per_child` false, leaves out the per-child ops (a template).
pub fn build_root(r: &RootPlan, per_child: bool) -> Result<(), (Stage, i32)> {
    let null = std::ptr::null();
    // SAFETY: unshare takes flags only.
    check(Stage::Mount, unsafe { libc::unshare(libc::CLONE_NEWNS) }
        as libc::c_long)?;
    // Nothing we mount may propagate back to the host.
    mount(null, c"/", null, libc::MS_REC | libc::MS_PRIVATE, null)?;
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    if let Some(writable) = r.host_root {
        bind_tree(c"/", &r.mountpoint, writable)?;
        chdir(&r.mountpoint)?;
    } else {
        mount(
            c"tmpfs".as_ptr(),
            &r.mountpoint,
            c"tmpfs".as_ptr(),
            nosuid,
            r.opts.as_ptr(),
        )?;
        chdir(&r.mountpoint)?;
    }
    for op in r.ops.iter().filter(|op| per_child || !op.per_child()) {
        apply(op)?;
    }
    if r.host_root.is_none() {
        // The root itself becomes read-only, then we move into it and
        // detach the old root (pivot_root(".", ".") as runc does).
        mount(
            null,
            &r.mountpoint,
            null,
            libc::MS_REMOUNT | libc::MS_RDONLY | nosuid,
            null,
        )?;
    }
    // SAFETY: pivot_root/umount2 take NUL-terminated paths.
    unsafe {
        check(
            Stage::Mount,
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
        )?;
        check(
            Stage::Mount,
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as libc::c_long,
        )?;
    }
    chdir(c"/")
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Binds `src` and every mount below it on `dst`, all nosuid and, unless
/// `writable`, read-only (one `mount_setattr` for the whole tree).
fn bind_tree(src: &CStr, dst: &CStr, writable: bool) -> Result<(), (Stage, i32)> {
    let null = std::ptr::null();
    mount(src.as_ptr(), dst, null, libc::MS_BIND | libc::MS_REC, null)?;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_NOSUID | if writable { 0 } else { MOUNT_ATTR_RDONLY },
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the kernel reads one mount_attr from our stack and a
    // NUL-terminated path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            dst.as_ptr(),
            0x8000u32, // AT_RECURSIVE
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(Stage::Mount, rc)
}

fn apply(op: &RootOp) -> Result<(), (Stage, i32)> {
    let null = std::ptr::null();
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    match op {
        RootOp::Mkdir(p) => {
            // SAFETY: p is a NUL-terminated path.
            if unsafe { libc::mkdir(p.as_ptr(), 0o755) } != 0 && errno() != libc::EEXIST {
                return Err((Stage::Mount, errno()));
            }
        }
        RootOp::Touch(p) => {
            // SAFETY: p is a NUL-terminated path; the fd is closed at once.
            let fd = unsafe {
                libc::open(
                    p.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644,
                )
            };
            check(Stage::Mount, fd as libc::c_long)?;
            // SAFETY: closing the fd just opened.
            unsafe { libc::close(fd) };
        }
        RootOp::Bind { src, dst, flags } => {
            mount(src.as_ptr(), dst, null, libc::MS_BIND | libc::MS_REC, null)?;
            mount(
                null,
                dst,
                null,
                libc::MS_BIND | libc::MS_REMOUNT | flags,
                null,
            )?;
        }
        RootOp::Symlink { target, link } => {
            // SAFETY: both are NUL-terminated paths.
            let rc = unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) };
            check(Stage::Mount, rc as libc::c_long)?;
        }
        RootOp::Tmpfs { dst, opts } => {
            // Nothing written there is ever executed or mapped executable.
            mount(
                c"tmpfs".as_ptr(),
                dst,
                c"tmpfs".as_ptr(),
                nosuid | libc::MS_NOEXEC,
                opts.as_ptr(),
            )?;
        }
        RootOp::Proc(dst) => {
            mount(
                c"proc".as_ptr(),
                dst,
                c"proc".as_ptr(),
                nosuid | libc::MS_NOEXEC,
                null,
            )?;
        }
    }
    Ok(())
}

/// Closes every fd from `from` up except those in `keep` and `sorted`
/// (-1 entries ignored; `sorted` ascending), without allocating: close the
/// gaps between the kept fds, taken in order from both lists (with
/// close_range, or one by one below `limit` where it is missing).
fn close_others(
    mut from: u32,
    limit: RawFd,
    mut keep: [RawFd; 5],
    sorted: &[RawFd],
) -> Result<(), (Stage, i32)> {
    keep.sort_unstable();
    let (mut i, mut j) = (0, 0);
    loop {
        let a = keep.get(i).copied();
        let b = sorted.get(j).copied();
        let fd = match (a, b) {
            (None, None) => break,
            (Some(a), Some(b)) if a <= b => {
                i += 1;
                a
            }
            (Some(a), None) => {
                i += 1;
                a
            }
            (_, Some(b)) => {
                j += 1;
                b
            }
        };
        if fd < from as RawFd {
            continue;
        }
        if fd as u32 > from {
            close_fds(from, fd as u32 - 1, limit)?;
        }
        from = fd as u32 + 1;
    }
    close_fds(from, u32::MAX, limit)
}

/// Closes fds `first..=last`: with close_range, or one by one below `limit`.
fn close_fds(first: u32, last: u32, limit: RawFd) -> Result<(), (Stage, i32)> {
    if limit < 0 {
        // SAFETY: closes a range of our own fd table.
        let rc = unsafe { libc::close_range(first, last, 0) };
        return check(Stage::Fds, rc as libc::c_long);
    }
    for fd in first..last.saturating_add(1).min(limit as u32) {
        // SAFETY: closes an entry of our own fd table; EBADF (a gap) is fine.
        unsafe { libc::close(fd as RawFd) };
    }
    Ok(())
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 share its layout).
/// Raw, because glibc refuses to touch the signals it reserves (32, 33),
/// which a host may still have ignored.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

fn rt_sigaction(
    sig: i32,
    new: Option<&KernelSigaction>,
    old: Option<&mut KernelSigaction>,
) -> bool {
    let new = new.map_or(std::ptr::null(), |n| n as *const KernelSigaction);
    let old = old.map_or(std::ptr::null_mut(), |o| o as *mut KernelSigaction);
    // SAFETY: both pointers are null or point to a KernelSigaction on the
    // caller's stack; the kernel reads or writes exactly one.
    let rc = unsafe { libc::syscall(libc::SYS_rt_sigaction, sig, new, old, 8usize) };
    rc == 0
}

fn reset_signals(ignored: &[i32]) -> Result<(), (Stage, i32)> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: set points to a valid sigset_t on our stack.
    unsafe { libc::sigemptyset(&mut set) };
    // SAFETY: installs an empty mask from a stack sigset_t.
    let rc = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    check(Stage::Signals, rc as libc::c_long)?;
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for &sig in ignored {
        if !rt_sigaction(sig, Some(&default), None) {
            return Err((Stage::Signals, errno()));
        }
    }
    Ok(())
}

/// The signals this process ignores (see [`Plan::ignored_signals`]).
pub fn ignored_signals() -> Vec<i32> {
    (1..=64)
        .filter(|&sig| {
            let mut old = KernelSigaction {
                handler: 0,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            rt_sigaction(sig, None, Some(&mut old)) && old.handler == libc::SIG_IGN
        })
        .collect()
}

fn drop_identity(uid: u32, gid: u32, last_cap: u32) -> Result<(), (Stage, i32)> {
    // SAFETY: an empty group list; no pointer is read.
    let rc = unsafe { libc::setgroups(0, std::ptr::null()) };
    check(Stage::Groups, rc as libc::c_long)?;
    drop_bounding(last_cap)?;
    // SAFETY: plain id syscalls; the child is single-threaded.
    check(Stage::Setresgid, unsafe { libc::setresgid(gid, gid, gid) }
        as libc::c_long)?;
    // SAFETY: as above.
    check(Stage::Setresuid, unsafe { libc::setresuid(uid, uid, uid) }
        as libc::c_long)?;
    // setresuid cleared permitted, effective and ambient; inheritable stays
    // until cleared here, ambient once more for good measure.
    clear_caps()
}

fn drop_bounding(last_cap: u32) -> Result<(), (Stage, i32)> {
    for cap in 0..=last_cap {
        // SAFETY: integer-only prctl.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        check(Stage::CapBounding, rc as libc::c_long)?;
    }
    Ok(())
}

/// The highest capability this kernel knows
/// (`/proc/sys/kernel/cap_last_cap`), read once by the fork server.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40) // CAP_CHECKPOINT_RESTORE, the last one since Linux 5.9
}

/// Empties the effective, permitted, inheritable and ambient sets.
fn clear_caps() -> Result<(), (Stage, i32)> {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    }; // _LINUX_CAPABILITY_VERSION_3
    let data = [CapData::default(); 2];
    // SAFETY: capset reads a header and two data structs from our stack.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    check(Stage::Capabilities, rc)?;
    // SAFETY: integer-only prctl.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    check(Stage::Capabilities, rc as libc::c_long)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Installs a BPF program with `flags` (with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`: returns the listener's fd); the
/// error is an errno.
fn install_filter(prog: &[seccompiler::sock_filter], flags: libc::c_ulong) -> Result<i32, i32> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: fprog points to `prog`, which outlives the call; seccompiler's
    // sock_filter has the kernel's layout.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog,
        )
    };
    if rc < 0 {
        return Err(errno());
    }
    Ok(rc as i32)
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
