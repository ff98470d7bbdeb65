//! The production [`Sys`]: every step of the road as raw syscalls (no
//! allocation, no locks, no panics: the launcher runs in the fork
//! server's memory).

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::road::{Failure, Step, Sys};
use super::{check, errno, root, OwnRuleset, Plan, RootPlan, Stage, UsernsPlan};

/// The kernel, through libc.
pub struct Libc;

impl Sys for Libc {
    fn new_session(&self) -> Step {
        // SAFETY: setsid has no memory effects.
        check(Stage::Session, unsafe { libc::setsid() } as libc::c_long)
    }
    fn reset_signals(&self, ignored: &[i32]) -> Step {
        reset_signals(ignored)
    }
    fn dup_stdio(&self, fd: RawFd, target: RawFd) -> Step {
        // SAFETY: dup2 on fds the plan owns; no memory is touched.
        check(Stage::Stdio, unsafe { libc::dup2(fd, target) }
            as libc::c_long)
    }
    fn close_others(&self, from: u32, limit: RawFd, keep: [RawFd; 5], sorted: &[RawFd]) -> Step {
        close_others(from, limit, keep, sorted)
    }
    fn cloexec_from(&self, first: u32, limit: RawFd) -> Step {
        if limit < 0 {
            // SAFETY: only flags entries of our own fd table.
            let rc =
                unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
            return check(Stage::Fds, rc as libc::c_long);
        }
        for fd in first as RawFd..limit {
            // SAFETY: flags an entry of our own fd table; EBADF (a gap) is fine.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Ok(())
    }
    fn map_ids(&self, u: &UsernsPlan) -> Step {
        write_file(u.setgroups_path, c"deny")?;
        write_file(u.uid_map_path, &u.uid_map)?;
        write_file(u.gid_map_path, &u.gid_map)
    }
    fn join_netns(&self, fd: RawFd) -> Step {
        // SAFETY: setns on an fd the plan owns; no memory is passed.
        let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
        check(Stage::Namespaces, rc as libc::c_long)
    }
    fn unshare(&self, flags: i32) -> Step {
        // SAFETY: unshare takes flags only.
        check(Stage::Namespaces, unsafe { libc::unshare(flags) }
            as libc::c_long)
    }
    fn set_hostname(&self, name: &CStr) -> Step {
        let bytes = name.to_bytes();
        // SAFETY: reads `bytes` from memory the plan owns.
        let rc = unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) };
        check(Stage::Hostname, rc as libc::c_long)
    }
    fn enter_root(&self, r: &RootPlan) -> Step {
        root::enter_root(r)
    }
    fn mount_own_proc(&self) -> Step {
        mount_own_proc()
    }
    fn chdir(&self, dir: &CStr) -> Step {
        // SAFETY: dir is NUL-terminated.
        check(Stage::Cwd, unsafe { libc::chdir(dir.as_ptr()) }
            as libc::c_long)
    }
    fn own_ruleset(&self, own: &OwnRuleset) -> Result<RawFd, Failure> {
        own_ruleset(own)
    }
    fn move_exe_fd(&self, fd: RawFd, slot: RawFd) -> Step {
        move_exe_fd(fd, slot)
    }
    fn set_rlimit(&self, resource: u32, soft: u64, hard: u64) -> Step {
        let lim = libc::rlimit64 {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: prlimit64 on ourselves reads one stack struct.
        let rc = unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) };
        check(Stage::Rlimit, rc as libc::c_long)
    }
    fn no_new_privs(&self) -> Step {
        // SAFETY: integer-only prctl.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        check(Stage::NoNewPrivs, rc as libc::c_long)
    }
    fn drop_identity(&self, uid: u32, gid: u32, last_cap: u32) -> Step {
        drop_identity(uid, gid, last_cap)
    }
    fn drop_caps(&self, last_cap: u32) -> Step {
        drop_bounding(last_cap)?;
        clear_caps()
    }
    fn parent_death(&self, parent: libc::pid_t) -> Step {
        parent_death(parent)
    }
    fn not_dumpable(&self) -> Step {
        // SAFETY: integer-only prctl.
        let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        check(Stage::Dumpable, rc as libc::c_long)
    }
    fn landlock_restrict(&self, ruleset: RawFd) -> Step {
        // SAFETY: landlock_restrict_self takes an fd and flags.
        let rc = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
        check(Stage::Landlock, rc)
    }
    fn install_filter(&self, prog: &[seccompiler::sock_filter]) -> Result<RawFd, Failure> {
        install_filter(prog, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)
            .map_err(|e| (Stage::Seccomp, e))
    }
    fn exec(&self, plan: &Plan) -> Failure {
        exec(plan)
    }
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

/// Closes every fd from `from` up except those in `keep` and `sorted`
/// (-1 entries ignored; `sorted` ascending), without allocating: close the
/// gaps between the kept fds, taken in order from both lists (with
/// close_range, or one by one below `limit` where it is missing).
pub(super) fn close_others(
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
pub(crate) struct KernelSigaction {
    pub(crate) handler: usize,
    pub(crate) flags: u64,
    pub(crate) restorer: usize,
    pub(crate) mask: u64,
}

pub(crate) fn rt_sigaction(
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
pub(super) fn install_filter(
    prog: &[seccompiler::sock_filter],
    flags: libc::c_ulong,
) -> Result<i32, i32> {
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

/// Execs the plugin (by fd when there is one); returns only on failure.
fn exec(plan: &Plan) -> Failure {
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
    (Stage::Exec, errno())
}
