//! One spawn: clone the road runner on its own stack, move it into its
//! cgroup, say go and read its report.

use super::*;

impl Server {
    /// Starts one sandbox: clones its road runner (the init with a PID
    /// namespace, else a launcher), moves it into its cgroup, says go and
    /// waits for its report, never past `timeout` and never past the
    /// host's going away.
    pub(super) fn spawn(
        &mut self,
        profile: u64,
        stdio: Vec<OwnedFd>,
        timeout: Duration,
    ) -> Result<SpawnEnd, ServerError> {
        let deadline = Instant::now() + timeout;
        let Some(p) = self.profiles.get(&profile) else {
            return Err(ServerError::UnknownProfile(profile));
        };
        let zygote = p.zygote.then_some(ZygoteRun { profile, inputs: 1 });
        if let Some(z) = self.zygotes.remove(&profile) {
            if let Some(end) = self.spawn_in_zygote(profile, z, &stdio, deadline)? {
                return Ok(end);
            }
        }
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|source| ServerError::Sys {
            what: "socketpair",
            source,
        })?;
        let group = self.take_group(self.profiles[&profile].cgroup)?;
        let p = &self.profiles[&profile];
        let init = p.pidns;
        let plan = self.plan(p, &stdio, theirs.as_raw_fd());
        let (leader, pidfd) = clone_road_runner(&plan, self.child_stack.top())?;
        drop((theirs, stdio));
        // Into the cgroup before the plugin process exists: the road runner
        // waits for our go.
        if let Some(g) = &group {
            if let Err(e) = g.add(leader) {
                self.abort_spawn(leader, init, group);
                return Err(ServerError::Io {
                    what: "cannot move the sandbox into its cgroup",
                    source: e,
                });
            }
        }
        let _ = nix::unistd::write(&ours, b"g");
        let started = match self.await_start(&ours, deadline) {
            Ok(Started::Yes(listener, plugin_pidfd)) => (listener, plugin_pidfd),
            Ok(Started::Failed(stage, errno)) => {
                self.abort_spawn(leader, init, group);
                return Ok(SpawnEnd::Failed(stage, errno));
            }
            Ok(Started::Deadline) => {
                self.abort_spawn(leader, init, group);
                return Ok(SpawnEnd::Failed(Stage::Deadline, libc::ETIMEDOUT));
            }
            Ok(Started::HostGone) => {
                self.abort_spawn(leader, init, group);
                return Ok(SpawnEnd::HostGone);
            }
            Err(e) => {
                self.abort_spawn(leader, init, group);
                return Err(e);
            }
        };
        self.register(leader, init, group, ours, pidfd, started, zygote)
    }

    /// A cgroup for the next sandbox: one made ahead, or a new one.
    pub(super) fn take_group(
        &mut self,
        limits: crate::cgroup::Limits,
    ) -> Result<Option<crate::cgroup::Group>, ServerError> {
        if !self.cgroups.is_active() {
            return Ok(None);
        }
        let ready = self.ready_groups.iter().position(|(l, _)| *l == limits);
        Ok(Some(match ready {
            Some(i) => self.ready_groups.swap_remove(i).1,
            None => {
                let g = self.new_group(limits).map_err(|source| ServerError::Io {
                    what: "cgroup",
                    source,
                })?;
                self.make_ahead = true;
                g
            }
        }))
    }

    /// The road runner's plan for one sandbox of profile `p`.
    fn plan<'a>(&'a self, p: &'a Prepared, stdio: &[OwnedFd], report: RawFd) -> child::Plan<'a> {
        let init = p.pidns;
        let netns = if p.join_net {
            self.netns.as_ref().map_or(-1, |f| f.as_raw_fd())
        } else {
            -1
        };
        child::Plan {
            netns,
            unshare: p.unshare as i32,
            hostname: (p.unshare & libc::CLONE_NEWUTS as u64 != 0).then_some(c"plugwarden"),
            root: p.root.as_ref(),
            own_proc: p.own_proc,
            cwd: p.cwd.as_deref(),
            userns: p.userns.as_ref(),
            stdio: [0, 1, 2, 3].map(|i| stdio.get(i).map_or(-1, |f| f.as_raw_fd())),
            report,
            fd_limit: if crate::kernel::kernel().has(crate::kernel::Feature::CloseRange) {
                -1
            } else {
                highest_fd() + 1
            },
            new_session: p.new_session,
            rlimits: &p.rlimits,
            landlock: match &p.landlock {
                ProfileLandlock::Shared(fd) => {
                    child::Landlock::Profile(fd.as_ref().map_or(-1, |f| f.as_raw_fd()))
                }
                ProfileLandlock::Own { rules, .. } => child::Landlock::Own(rules),
            },
            identity: p.identity,
            // Outside the new PID namespace the parent reads as pid 0.
            parent: if init { 0 } else { self.me },
            fork_server: self.me,
            ignored_signals: &self.ignored_signals,
            last_cap: self.last_cap,
            filter: &p.filter,
            init_filter: &self.init_filter,
            exe_fd: p.exe_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            exe_slot: p.exe_slot,
            path: &p.path,
            argv: &p.argv,
            envp: &p.envp,
            init,
            zygote: p.zygote,
            plugin_stack: self.plugin_stack.top(),
        }
    }

    /// Registers a started sandbox (its leader, cgroup and report socket,
    /// and what its init serves as a zygote) and hands the host its fds;
    /// for a launcher, first waits for it to exit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn register(
        &mut self,
        leader: i32,
        init: bool,
        group: Option<crate::cgroup::Group>,
        ours: OwnedFd,
        pidfd: OwnedFd,
        (listener, plugin_pidfd): (OwnedFd, OwnedFd),
        zygote: Option<ZygoteRun>,
    ) -> Result<SpawnEnd, ServerError> {
        let pid = pidfd_pid(plugin_pidfd.as_fd());
        // The init reaps nothing until we have read the pid (see child::init).
        let _ = nix::unistd::write(&ours, b"a");
        let Some(pid) = pid else {
            self.abort_spawn(leader, init, group);
            return Err(ServerError::Broken(
                "cannot read the plugin's pid from its pidfd",
            ));
        };
        let host_plugin_pidfd = match dup_pidfd(&plugin_pidfd) {
            Ok(fd) => fd,
            Err(e) => {
                self.abort_spawn(leader, init, group);
                return Err(e);
            }
        };
        let (leader, live) = if init {
            let live = Live {
                pidfd,
                group,
                init: Some((ours, plugin_pidfd)),
                zygote,
            };
            (leader, live)
        } else {
            // The launcher exits right after its report; only then is our
            // memory ours again. The plugin is our own child (CLONE_PARENT)
            // and the sandbox's leader.
            let _ = wait4(leader, libc::__WALL);
            let live = Live {
                pidfd: plugin_pidfd,
                group,
                init: None,
                zygote: None,
            };
            (pid, live)
        };
        let host_pidfd = dup_pidfd(&live.pidfd);
        self.live.insert(leader, live);
        let host_pidfd = match host_pidfd {
            Ok(fd) => fd,
            Err(e) => {
                self.kill_and_reap(leader);
                return Err(e);
            }
        };
        Ok(SpawnEnd::Started(Spawned {
            pid,
            leader,
            pidfd: host_pidfd,
            listener,
            plugin_pidfd: host_plugin_pidfd,
        }))
    }

    /// Waits for the road runner's report: STARTED with the listener and
    /// the plugin's pidfd, or a failure. Watches the host's socket too.
    pub(super) fn await_start(
        &self,
        report: &OwnedFd,
        deadline: Instant,
    ) -> Result<Started, ServerError> {
        let mut watch_host = true;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Started::Deadline);
            }
            let (report_ready, host_ready) = self.poll_report(report, watch_host, left)?;
            if host_ready {
                // The host waits for our reply; the only thing it can send
                // meanwhile is its end of the connection.
                let mut b = [0u8; 1];
                match nix::sys::socket::recv(
                    self.sock.as_raw_fd(),
                    &mut b,
                    MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(0) | Err(nix::errno::Errno::ECONNRESET) => return Ok(Started::HostGone),
                    _ => watch_host = false,
                }
            }
            if report_ready {
                if let Some(started) = read_report(report)? {
                    return Ok(started);
                }
            }
        }
    }

    /// Polls the report socket (and the host's, when `watch_host`) for at
    /// most `left`; returns which is ready.
    fn poll_report(
        &self,
        report: &OwnedFd,
        watch_host: bool,
        left: Duration,
    ) -> Result<(bool, bool), ServerError> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = vec![PollFd::new(report.as_fd(), PollFlags::POLLIN)];
        if watch_host {
            fds.push(PollFd::new(self.sock.as_fd(), PollFlags::POLLIN));
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(source) => {
                return Err(ServerError::Sys {
                    what: "poll",
                    source,
                })
            }
        }
        let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
        Ok((ready(&fds[0]), fds.get(1).is_some_and(ready)))
    }

    /// Ends a spawn that did not start: kills the road runner and whatever
    /// it started, reaps them, and gives the cgroup back. A launcher runs
    /// in our memory, and so may its plugin process before its exec: both
    /// are dead and reaped before this returns (they share the process
    /// group the launcher made).
    pub(super) fn abort_spawn(
        &mut self,
        leader: i32,
        init: bool,
        group: Option<crate::cgroup::Group>,
    ) {
        if let Some(g) = &group {
            g.kill_all();
        }
        // SAFETY: kill takes integers; the targets are our unreaped children.
        unsafe {
            libc::kill(leader, libc::SIGKILL);
            if !init {
                libc::kill(-leader, libc::SIGKILL);
            }
        }
        self.live.remove(&leader);
        let _ = wait4(leader, libc::__WALL);
        if !init {
            while wait4(-leader, libc::__WALL).is_some() {}
        }
        if let Some(g) = group {
            self.dead_groups.push(g);
        }
    }
}

/// A dup of a pidfd for the host.
fn dup_pidfd(fd: &OwnedFd) -> Result<OwnedFd, ServerError> {
    fd.try_clone().map_err(|source| ServerError::Io {
        what: "dup pidfd",
        source,
    })
}

/// Reads one message of the road runner's report socket: STARTED with the
/// listener and the plugin's pidfd, or a failure; `None` when there was
/// nothing to read after all.
fn read_report(report: &OwnedFd) -> Result<Option<Started>, ServerError> {
    let mut buf = [0u8; child::Report::LEN];
    let mut cmsg = nix::cmsg_space!([RawFd; 2]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let (n, mut fds) = match recvmsg::<()>(
        report.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(msg) => {
            let mut fds = Vec::new();
            for c in msg.cmsgs().map_err(|source| ServerError::Sys {
                what: "report",
                source,
            })? {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel just installed these fds for us.
                    fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                }
            }
            (msg.bytes, fds)
        }
        Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => return Ok(None),
        Err(source) => {
            return Err(ServerError::Sys {
                what: "report",
                source,
            })
        }
    };
    if n == 0 {
        return Err(ServerError::Broken(
            "the sandbox's first process died during setup without a word",
        ));
    }
    let r = child::Report::parse(&buf[..n]).ok_or(ServerError::Broken("malformed setup report"))?;
    if r.tag == child::STARTED && fds.len() == 2 {
        let pidfd = fds.pop().expect("two fds");
        let listener = fds.pop().expect("two fds");
        return Ok(Some(Started::Yes(listener, pidfd)));
    }
    let stage = Stage::from_u32(r.tag).unwrap_or(Stage::Exec);
    Ok(Some(Started::Failed(stage, r.value)))
}

/// A stack for the child's road (which needs a few KiB), with a guard
/// page below it.
pub(super) struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    pub(super) fn new(len: usize) -> io::Result<ChildStack> {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping made above becomes the guard.
        if unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The (16-byte aligned) top: stacks grow down.
    pub(super) fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our own mapping, never dereferenced here.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in new().
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// What the road runner reported.
pub(super) enum Started {
    /// The plugin has exec'd: its listener and pidfd.
    Yes(OwnedFd, OwnedFd),
    Failed(Stage, i32),
    Deadline,
    HostGone,
}

/// The init's own seccomp program: the few calls it makes once the plugin
/// runs (`child::INIT_SYSCALLS`); anything else kills it, and with it the
/// whole sandbox.
pub(super) fn init_filter() -> io::Result<Vec<seccompiler::sock_filter>> {
    use crate::policy::groups::{self, Arch};
    use crate::seccomp::{self, Leaf};
    let arch = Arch::native();
    let map = child::INIT_SYSCALLS
        .iter()
        .filter_map(|name| groups::number(arch, name))
        .map(|nr| (nr as u32, Leaf::Ret(seccomp::RET_ALLOW)))
        .collect();
    seccomp::emit(&map, seccomp::audit_arch(arch), seccomp::RET_KILL_PROCESS)
        .map_err(|n| io::Error::other(format!("the init's filter has {n} instructions")))
}

/// The pid (in our PID namespace) of the process behind `pidfd`: from
/// `PIDFD_GET_INFO` (Linux 6.13+), else from its fdinfo (`Pid:`).
pub(super) fn pidfd_pid(pidfd: BorrowedFd) -> Option<i32> {
    use crate::kernel::{kernel, pidfd_info, Feature, PIDFD_INFO_PID};
    if kernel().has(Feature::PidfdInfo) {
        if let Some(info) = pidfd_info(pidfd.as_raw_fd(), PIDFD_INFO_PID) {
            return i32::try_from(info.pid).ok().filter(|&p| p > 0);
        }
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&pid: &i32| pid > 0)
}

/// The wait status the kernel recorded for the process behind `pidfd`
/// (`PIDFD_INFO_EXIT`, Linux 6.15+), once it has exited and been reaped;
/// `None` on an older kernel (or with `PLUGWARDEN_NO_PIDFD_INFO=1`).
pub(super) fn pidfd_exit_status(pidfd: BorrowedFd) -> Option<i32> {
    use crate::kernel::{kernel, pidfd_info, Feature, PIDFD_INFO_EXIT};
    if !kernel().has(Feature::PidfdInfo) {
        return None;
    }
    pidfd_info(pidfd.as_raw_fd(), PIDFD_INFO_EXIT).map(|i| i.exit_code)
}

/// How the plugin of a reaped init ended: the init's EXITED report (wait
/// status and rusage), its status checked against the kernel's own record
/// where the kernel keeps one. Without a report (the init was killed, which
/// kills its namespace), the kernel's record, or the init's own status; the
/// init's rusage then includes the processes it reaped.
pub(super) fn plugin_exit(init: ExitInfo, report: BorrowedFd, plugin: BorrowedFd) -> ExitInfo {
    let mut reported = None;
    let mut buf = [0u8; child::Report::LEN];
    while let Ok(n) = nix::sys::socket::recv(report.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
        match child::Report::parse(&buf[..n]) {
            Some(r) if r.tag == child::EXITED => reported = Some(r),
            Some(_) => {}
            None => break,
        }
    }
    let kernel = pidfd_exit_status(plugin);
    let mut info = init;
    if let Some(r) = reported {
        info.status = r.status;
        info.utime_us = r.utime_us;
        info.stime_us = r.stime_us;
        info.maxrss_kib = r.maxrss_kib;
    }
    if let Some(status) = kernel {
        if reported.is_some_and(|r| r.status != status) {
            tracing::warn!(
                reported = reported.map(|r| r.status),
                kernel = status,
                "the sandbox's init misreported its plugin's exit; the kernel's record wins"
            );
        }
        info.status = status;
    }
    info
}

/// Clones the road runner of `plan` on `stack`; returns its pid and pidfd.
fn clone_road_runner(
    plan: &child::Plan,
    stack: *mut libc::c_void,
) -> Result<(i32, OwnedFd), ServerError> {
    let init = plan.init;
    // The init gets its own memory (a fork-style clone: it outlives the
    // spawn, and a process inside the sandbox must never share the fork
    // server's memory) and a new PID namespace, of which it is PID 1.
    // A launcher shares our memory, as posix_spawn does (no page tables
    // to copy): it runs only our code and is gone before we return.
    let flags = libc::SIGCHLD
        | libc::CLONE_PIDFD
        | if init {
            libc::CLONE_NEWPID
        } else {
            libc::CLONE_VM
        }
        | if plan.userns.is_some() {
            libc::CLONE_NEWUSER
        } else {
            0
        };
    extern "C" fn child_main(plan: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `plan` is the Plan on the fork server's stack below:
        // the init's own copy of it, or (a launcher) the original, alive
        // and untouched until the launcher has exited.
        child::enter(unsafe { &*plan.cast::<child::Plan>() })
    }
    let mut pidfd: libc::c_int = -1;
    // SAFETY: the road runner runs only child::enter on `child_stack`
    // (a launcher in our memory: one at a time, we wait below until it
    // has exited), makes raw syscalls, writes nothing of ours but that
    // stack, `plugin_stack` and errno, and never returns. `plan` and
    // everything it points to outlive that. The fd table is its own copy;
    // the pidfd lands in `pidfd` (CLONE_PIDFD).
    let leader = unsafe {
        libc::clone(
            child_main,
            stack,
            flags,
            (plan as *const child::Plan as *mut child::Plan).cast(),
            &mut pidfd as *mut libc::c_int,
        )
    };
    if leader == -1 {
        return Err(ServerError::Io {
            what: "clone",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: CLONE_PIDFD stored a new fd that we now own.
    Ok((leader, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}
