//! The child's road from fork to exec (DESIGN.md), in order.
//!
//! Everything here runs in the forked child, so it makes raw syscalls only:
//! no allocation, no locks, no logging, no panics. Every input was prepared
//! by the fork server before `fork` ([`Plan`]). A failing step is reported
//! to the fork server as a `(stage, errno)` pair of integers on the report
//! pipe, then the child `_exit`s. On success the report pipe (close-on-exec)
//! simply reaches EOF at `execve`.

use std::ffi::{c_char, CStr, CString};
use std::os::fd::RawFd;

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
    Mount => "minimal root (mount namespace)",
    Rlimit => "rlimit",
    Landlock => "landlock",
    Groups => "setgroups",
    CapBounding => "capability bounding set",
    Setresgid => "setresgid",
    Setresuid => "setresuid",
    Capabilities => "capabilities",
    Pdeathsig => "parent-death signal",
    ParentGone => "parent-death check (the fork server exited)",
    NoNewPrivs => "no_new_privs",
    Seccomp => "seccomp",
    Listener => "seccomp listener",
    Exec => "exec",
}

/// Report tag meaning "the seccomp listener is fd N, take it and say go".
pub const LISTENER_READY: u32 = 0xffff;

/// Everything the child needs, prepared before fork.
pub struct Plan<'a> {
    /// Become fd 0, 1, 2 and, when not -1, fd 3 (the shared-memory arena
    /// of the bulk path).
    pub stdio: [RawFd; 4],
    /// Write end of the report pipe (close-on-exec).
    pub report: RawFd,
    /// Read end of the go pipe: one byte once the listener has been taken.
    pub go: RawFd,
    /// -1 where close_range works (Linux 5.9+, 5.11+ for its CLOEXEC flag);
    /// else one past the fork server's highest fd, and fds are closed one
    /// by one below it.
    pub fd_limit: RawFd,
    pub new_session: bool,
    /// A network namespace to join (-1: stay).
    pub netns: RawFd,
    /// CLONE_* flags to unshare (IPC, UTS).
    pub unshare: i32,
    /// Build a minimal root and pivot into it.
    pub root: Option<&'a RootPlan>,
    /// Set when the fork server cloned us into a new user namespace.
    pub userns: Option<&'a UsernsPlan>,
    /// (resource, soft, hard).
    pub rlimits: &'a [(u32, u64, u64)],
    /// The Landlock ruleset fd (built fully enforceable), or -1.
    pub landlock: RawFd,
    /// (uid, gid) to drop to; `None` when the host is not root.
    pub identity: Option<(u32, u32)>,
    /// The fork server's pid as the child sees it (0 from inside a new PID
    /// namespace), for the parent-death race check. If the fork server dies
    /// later still, the child also sees EOF on the go pipe and stops.
    pub parent: libc::pid_t,
    /// Signals the fork server ignores (inherited from the host, or Rust's
    /// SIGPIPE): an ignored disposition survives exec, so these go back to
    /// the default. Handlers need nothing: exec resets them.
    pub ignored_signals: &'a [i32],
    /// The highest capability number of this kernel: the road drops
    /// 0..=last_cap from the bounding set (no failing probe past the end:
    /// the child shares the fork server's memory, errno included).
    pub last_cap: u32,
    /// The seccomp program; installing it makes the user-notification
    /// listener.
    pub filter: &'a [seccompiler::sock_filter],
    /// O_PATH fd of the executable (exec by fd, immune to path swaps), or -1
    /// to exec `path` (scripts: the interpreter needs a path).
    pub exe_fd: RawFd,
    pub path: &'a CStr,
    /// NULL-terminated pointer arrays into strings the fork server owns.
    pub argv: &'a [*const c_char],
    pub envp: &'a [*const c_char],
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn report(fd: RawFd, tag: u32, value: i32) {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&tag.to_ne_bytes());
    msg[4..].copy_from_slice(&value.to_ne_bytes());
    // SAFETY: writes 8 bytes from a stack buffer; a failure leaves nothing to do.
    unsafe { libc::write(fd, msg.as_ptr().cast(), msg.len()) };
}

/// Runs the road and execs; never returns. On failure reports the stage.
pub fn enter(plan: &mut Plan) -> ! {
    let err = match road(plan) {
        Ok(()) => (Stage::Exec, errno()),
        Err(e) => e,
    };
    report(plan.report, err.0 as u32, err.1);
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

fn road(plan: &mut Plan) -> Result<(), (Stage, i32)> {
    // 1. Session and signals: no controlling terminal (TIOCSTI needs one),
    // default dispositions, nothing blocked.
    if plan.new_session {
        // SAFETY: setsid has no memory effects.
        check(Stage::Session, unsafe { libc::setsid() } as libc::c_long)?;
    }
    reset_signals(plan.ignored_signals)?;

    // 2. Only the intended fds: stdio from the plan, everything else close-on-exec.
    // Every source fd is above 3 (the fork server's own fds 0-3 are never
    // handed out), so no dup2 here overwrites a later source.
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
    close_others(
        first,
        plan.fd_limit,
        [
            plan.report,
            plan.go,
            plan.exe_fd,
            plan.netns,
            plan.landlock,
            plan.root.map_or(-1, |r| r.template),
        ],
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
    // network namespace, fresh IPC and UTS, the minimal root.
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
    if let Some(root) = plan.root {
        enter_root(root)?;
    }

    // 4. rlimits.
    for &(resource, soft, hard) in plan.rlimits {
        let lim = libc::rlimit64 {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: prlimit64 on ourselves reads one stack struct.
        let rc = unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) };
        check(Stage::Rlimit, rc as libc::c_long)?;
    }

    // 5. Landlock. The ruleset was built with every right of the kernel's
    // ABI as a hard requirement, so it is fully enforced once this succeeds
    // (-1: no Landlock, a weakening the host named).
    // no_new_privs first: an unprivileged restrict needs it.
    // SAFETY: integer-only prctl.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(Stage::NoNewPrivs, rc as libc::c_long)?;
    if plan.landlock >= 0 {
        // SAFETY: landlock_restrict_self takes an fd and flags.
        let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, plan.landlock, 0u32) };
        check(Stage::Landlock, rc)?;
    }

    // 6. Identity (root only), then the parent-death signal, which a
    // credential change would have cleared.
    if let Some((uid, gid)) = plan.identity {
        drop_identity(uid, gid, plan.last_cap)?;
    } else if plan.userns.is_some() {
        // Capabilities held inside our own user namespace go too.
        drop_bounding(plan.last_cap)?;
        clear_caps()?;
    }
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
    if unsafe { libc::getppid() } != plan.parent {
        return Err((Stage::ParentGone, libc::ESRCH));
    }
    // SAFETY: integer-only prctl.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    check(Stage::NoNewPrivs, rc as libc::c_long)?;

    // 7. seccomp last; its listener goes to the fork server.
    let listener = install_filter(plan.filter)?;
    report(plan.report, LISTENER_READY, listener);
    let mut go = [0u8; 1];
    // SAFETY: reads one byte into a stack buffer.
    if unsafe { libc::read(plan.go, go.as_mut_ptr().cast(), 1) } != 1 {
        return Err((Stage::Listener, libc::EPIPE));
    }
    // SAFETY: closing our copy: the plugin must never hold the listener.
    unsafe { libc::close(listener) };

    // 8. exec.
    if plan.exe_fd >= 0 {
        // SAFETY: argv/envp are NULL-terminated arrays of pointers to
        // NUL-terminated strings that outlive this call.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                plan.exe_fd,
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
    Err((Stage::Exec, errno()))
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
    /// Per child: a fresh, bounded tmpfs (the private /tmp).
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
    mount(
        c"tmpfs".as_ptr(),
        &r.mountpoint,
        c"tmpfs".as_ptr(),
        nosuid,
        r.opts.as_ptr(),
    )?;
    chdir(&r.mountpoint)?;
    for op in r.ops.iter().filter(|op| per_child || !op.per_child()) {
        apply(op)?;
    }
    // The root itself becomes read-only, then we move into it and detach
    // the old root (pivot_root(".", ".") as runc does).
    mount(
        null,
        &r.mountpoint,
        null,
        libc::MS_REMOUNT | libc::MS_RDONLY | nosuid,
        null,
    )?;
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
            mount(
                c"tmpfs".as_ptr(),
                dst,
                c"tmpfs".as_ptr(),
                nosuid,
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

/// Closes every fd from `from` up except those in `keep` (-1 entries
/// ignored), without allocating: sort them, close the gaps between them.
fn close_others(mut from: u32, limit: RawFd, mut keep: [RawFd; 6]) -> Result<(), (Stage, i32)> {
    keep.sort_unstable();
    for fd in keep {
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

/// Installs the BPF program with a user-notification listener; returns
/// the listener's fd.
fn install_filter(prog: &[seccompiler::sock_filter]) -> Result<i32, (Stage, i32)> {
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
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog,
        )
    };
    if rc < 0 {
        return Err((Stage::Seccomp, errno()));
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
        assert_eq!(Stage::from_u32(LISTENER_READY), None);
        assert_eq!(Stage::Landlock.name(), "landlock");
    }
}
