//! Starting the plugin process once the road is walked, handing its
//! listener to the fork server and (init) reaping until it exits.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use super::raw::{close_others, install_filter, Libc};
use super::road::plugin_steps;
use super::{check, errno, send, zygote, Plan, Report, Stage, EXITED, STARTED};

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
pub(super) fn launch(
    plan: &Plan,
    ruleset: RawFd,
) -> Result<std::convert::Infallible, (Stage, i32)> {
    // The fork server says go once we are in the sandbox's cgroup (the
    // plugin process inherits it).
    let mut go = [0u8; 1];
    // SAFETY: reads one byte into a stack buffer.
    if unsafe { libc::read(plan.report, go.as_mut_ptr().cast(), 1) } != 1 {
        return Err((Stage::Go, libc::EPIPE));
    }
    // A zygote's ruleset must outlive the stdio of each input (fds 0-3).
    let ruleset = if plan.zygote {
        zygote::above_stdio(ruleset)?
    } else {
        ruleset
    };
    let (pid, listener, pidfd) = start_plugin(plan, ruleset)?;
    if !plan.init {
        send_started(plan.report, listener, pidfd)?;
        // SAFETY: _exit does not return; the plugin is the fork server's child.
        unsafe { libc::_exit(0) }
    }
    init(plan, pid, listener, pidfd, ruleset)
}

/// Clones the plugin process, which restricts itself, installs the
/// policy's filter and execs while we wait (`CLONE_VFORK`); returns its
/// pid, its listener and its pidfd.
fn start_plugin(plan: &Plan, ruleset: RawFd) -> Result<(libc::pid_t, RawFd, RawFd), (Stage, i32)> {
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
        let (stage, errno) = plugin_steps(&Libc, args.plan, args.ruleset, |listener| {
            args.launch.listener.store(listener, Ordering::SeqCst)
        });
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
    Ok((pid, args.launch.listener.load(Ordering::SeqCst), pidfd))
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
/// every process of the namespace and report the plugin's exit. A zygote
/// (`plan.zygote`) then ends whatever the input left and, when nothing of
/// it is left, starts the plugin process of the next input the fork
/// server sends (docs/decisions/zygote.md).
fn init(
    plan: &Plan,
    mut plugin: libc::pid_t,
    mut listener: RawFd,
    mut pidfd: RawFd,
    ruleset: RawFd,
) -> Result<std::convert::Infallible, (Stage, i32)> {
    // What every plugin process of a zygote needs: the exec fd, the ruleset.
    let exe = if plan.exe_slot >= 0 && plan.exe_fd >= 0 {
        plan.exe_slot
    } else {
        plan.exe_fd
    };
    // Without close_range, one by one up to the highest fd we can hold:
    // the fork server's, or one the road made (the exec slot, the
    // sandbox's own ruleset, the listener, the pidfd).
    let limit = if plan.fd_limit < 0 {
        -1
    } else {
        [plan.fd_limit - 1, plan.exe_slot, ruleset, listener, pidfd]
            .into_iter()
            .max()
            .unwrap_or(0)
            + 1
    };
    let (exe, kept_ruleset) = if plan.zygote {
        (exe, ruleset)
    } else {
        (-1, -1)
    };
    loop {
        // Nothing but the report socket and what it is about to hand over
        // (and a zygote's exec fd and ruleset): the stdio pipes must reach
        // EOF when the plugin closes them.
        close_others(
            0,
            limit,
            [plan.report, listener, pidfd, exe, kept_ruleset],
            &[],
        )?;
        // The fork server is waiting for this; our own filter can follow
        // (the plugin cannot reach us meanwhile: we are not dumpable and
        // outside its Landlock domain). A zygote has none: each plugin
        // process it starts would inherit it.
        send_started(plan.report, listener, pidfd)?;
        if !plan.zygote {
            if let Err(e) = install_filter(plan.init_filter, 0) {
                // SAFETY: kill takes integers; the plugin must not run unsupervised.
                unsafe { libc::kill(plugin, libc::SIGKILL) };
                return Err((Stage::InitFilter, e));
            }
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
        let (status, ru) = reap_until(plugin);
        // A zygote ends what the input left before it answers: the fork
        // server hands it the next input only once it said it is clean.
        let clean = plan.zygote && zygote::end_input();
        report_exit(plan.report, status, &ru, clean);
        // Our exit ends the namespace: the kernel kills what is left.
        if !clean || !zygote::next_input(plan.report)? {
            // SAFETY: _exit does not return.
            unsafe { libc::_exit(0) }
        }
        (plugin, listener, pidfd) = start_plugin(plan, ruleset)?;
    }
}

/// Sends EXITED: the plugin's wait status and rusage, and (a zygote)
/// whether nothing of the input is left.
fn report_exit(report: RawFd, status: i32, ru: &libc::rusage, clean: bool) {
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    send(
        report,
        &Report {
            tag: EXITED,
            value: i32::from(clean),
            status,
            _pad: 0,
            utime_us: us(ru.ru_utime),
            stime_us: us(ru.ru_stime),
            maxrss_kib: ru.ru_maxrss as u64,
        },
    );
}

/// Reaps every process of the namespace until the plugin; returns its
/// wait status and rusage.
fn reap_until(plugin: libc::pid_t) -> (i32, libc::rusage) {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data, filled by the kernel.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes two out-parameters on our stack.
        let pid = unsafe { libc::wait4(-1, &mut status, libc::__WALL, &mut ru) };
        if pid == plugin {
            return (status, ru);
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
