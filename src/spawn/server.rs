//! The fork server's loop: one request at a time, reaping between them.

use super::*;

/// Call first thing in `main` of a program used as its own fork server:
/// if this process was started as one, serve and exit.
pub fn serve_if_requested() {
    if std::env::args_os().nth(1).is_some_and(|a| a == SERVE_ARG) {
        // A Ctrl-C is the host's to handle (it ends the jobs and then us,
        // through the socket): the host need not ignore SIGINT while it
        // starts us, and its own handler can be in place from the start.
        // Each road runner puts the disposition back (it is in
        // `ignored_signals`).
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: SIG_IGN installs no handler code; we are single-threaded.
        let _ = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) };
        // SAFETY: fd 3 was set up by ForkServer::start; nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(SERVE_FD) };
        let code = match Server::new(sock).and_then(|mut s| s.run()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("plugwarden fork server: {e}");
                3
            }
        };
        std::process::exit(code);
    }
}

impl Server {
    pub(super) fn new(sock: OwnedFd) -> io::Result<Server> {
        use nix::sys::signal::{SigSet, Signal};
        nix::sys::prctl::set_child_subreaper(true)?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()?;
        let sigchld = nix::sys::signalfd::SignalFd::with_flags(
            &mask,
            nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
        )?;
        let me = std::process::id() as libc::pid_t;
        let cgroups = crate::cgroup::Backend::detect(&format!("plugwarden-{me}"));
        let is_root = nix::unistd::geteuid().is_root();
        let netns = if is_root { empty_netns() } else { None };
        let userns = if is_root {
            Err("running as root".to_string())
        } else {
            crate::kernel::userns_available()
        };
        let root_dir = if is_root || userns.is_ok() {
            let dir = std::env::temp_dir().join(format!("plugwarden-root-{me}"));
            std::fs::create_dir_all(&dir).ok().map(|()| dir)
        } else {
            None
        };
        Ok(Server {
            child_stack: ChildStack::new(256 << 10)?,
            plugin_stack: ChildStack::new(64 << 10)?,
            init_filter: init_filter()?,
            host_gone: false,
            ignored_signals: ignored_signals(),
            last_cap: crate::kernel::last_cap(),
            make_ahead: cgroups.is_active(),
            sock,
            sigchld,
            profiles: HashMap::new(),
            next_profile: 1,
            live: HashMap::new(),
            exited: HashMap::new(),
            is_root,
            me,
            cgroups,
            netns,
            root_dir,
            userns,
            spawned: 0,
            ready_groups: Vec::new(),
            dead_groups: Vec::new(),
            zygotes: HashMap::new(),
            zygote_enabled: std::env::var_os("PLUGWARDEN_NO_ZYGOTE").is_none_or(|v| v != "1"),
        })
    }

    /// Serves until the host goes away (or its socket fails), then kills
    /// every sandbox and removes every cgroup, whatever ended the loop.
    pub(super) fn run(&mut self) -> io::Result<()> {
        let result = self.serve();
        self.shutdown();
        result
    }

    pub(super) fn serve(&mut self) -> io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut buf = vec![0u8; MAX_MSG];
        loop {
            let (sock_ready, sig_ready) = {
                let mut fds = [
                    PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.sigchld.as_fd(), PollFlags::POLLIN),
                ];
                // Cgroup housekeeping waits until no request does.
                let chore = self.chore();
                let timeout = if chore.is_some() {
                    PollTimeout::ZERO
                } else {
                    PollTimeout::NONE
                };
                match poll(&mut fds, timeout) {
                    Ok(0) => {
                        if let Some(chore) = chore {
                            self.do_chore(chore);
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            };
            if sig_ready {
                while let Ok(Some(_)) = self.sigchld.read_signal() {}
                self.reap_all();
            }
            if !sock_ready {
                continue;
            }
            let Some((req, fds)) = recv::<Request>(self.sock.as_fd(), &mut buf)? else {
                return Ok(());
            };
            let (reply, out_fds) = self.handle(req, fds);
            if self.host_gone {
                return Ok(());
            }
            let raw: Vec<RawFd> = out_fds.iter().map(|f| f.as_raw_fd()).collect();
            if let Err(e) = send(self.sock.as_fd(), &reply, &raw) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e);
            }
        }
    }

    pub(super) fn handle(&mut self, req: Request, fds: Vec<OwnedFd>) -> (Reply, Vec<OwnedFd>) {
        let error = |message: String| (Reply::Error { message }, Vec::new());
        match req {
            Request::Prepare { spec } => match self.prepare(&spec) {
                Ok(p) => {
                    let id = self.next_profile;
                    self.next_profile += 1;
                    let walls = p.walls.clone();
                    self.profiles.insert(id, p);
                    (Reply::Prepared { profile: id, walls }, Vec::new())
                }
                Err(e) => error(e.to_string()),
            },
            Request::Spawn {
                profile,
                timeout_ms,
            } => {
                if !(3..=4).contains(&fds.len()) {
                    return error("spawn needs three fds (stdio) and an optional arena".into());
                }
                match self.spawn(profile, fds, Duration::from_millis(timeout_ms)) {
                    Ok(SpawnEnd::Started(s)) => (
                        Reply::Spawned {
                            pid: s.pid,
                            leader: s.leader,
                        },
                        vec![s.pidfd, s.listener, s.plugin_pidfd],
                    ),
                    Ok(SpawnEnd::Failed(stage, errno)) => (
                        Reply::SetupFailed {
                            stage: stage as u32,
                            errno,
                        },
                        Vec::new(),
                    ),
                    Ok(SpawnEnd::HostGone) => {
                        self.host_gone = true;
                        error("the host went away".into())
                    }
                    Err(e) => error(e.to_string()),
                }
            }
            Request::Wait { pid } => match self.wait(pid) {
                Some(info) => (Reply::Exited(info), Vec::new()),
                None => error(format!("process {pid} is not a child of this fork server")),
            },
            Request::Release { profile } => {
                self.profiles.remove(&profile);
                self.retire_zygote_of(profile);
                (
                    Reply::Prepared {
                        profile,
                        walls: Walls::default(),
                    },
                    Vec::new(),
                )
            }
        }
    }

    pub(super) fn kill_and_reap(&mut self, pid: i32) {
        if let Some(live) = self.live.get(&pid) {
            kill_pidfd(live.pidfd.as_fd());
        }
        let _ = self.wait(pid);
    }

    /// Reaps `pid` if needed and forgets it.
    pub(super) fn wait(&mut self, pid: i32) -> Option<ExitInfo> {
        if let Some(info) = self.exited.remove(&pid) {
            return Some(info);
        }
        if self.live.get(&pid)?.zygote.is_some() {
            return self.zygote_wait(pid);
        }
        loop {
            match wait4(pid, libc::__WALL) {
                Some((p, info)) if p == pid => {
                    return Some(self.finish(pid, info));
                }
                Some(_) => continue,
                None if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
                None => {
                    self.live.remove(&pid);
                    return None;
                }
            }
        }
    }

    /// Reaps every exited child and orphan without blocking.
    pub(super) fn reap_all(&mut self) {
        while let Some((pid, info)) = wait4(-1, libc::WNOHANG | libc::__WALL) {
            if pid <= 0 {
                break;
            }
            if self.live.contains_key(&pid) {
                let info = self.finish(pid, info);
                self.exited.insert(pid, info);
            } else {
                self.forget_zygote(pid);
            }
        }
    }

    /// A sandbox's leader was reaped: the plugin's exit (from its init's
    /// report, checked against the kernel's record where there is one),
    /// then kill what is left of its tree and read its cgroup, which is
    /// removed later, while idle.
    pub(super) fn finish(&mut self, pid: i32, mut info: ExitInfo) -> ExitInfo {
        let Some(live) = self.live.remove(&pid) else {
            return info;
        };
        if let Some((report, plugin)) = &live.init {
            info = plugin_exit(info, report.as_fd(), plugin.as_fd());
        }
        if let Some(group) = live.group {
            group.kill_all();
            info.cgroup = Some(group.usage());
            self.dead_groups.push(group);
        }
        info
    }

    pub(super) fn new_group(
        &mut self,
        limits: crate::cgroup::Limits,
    ) -> io::Result<crate::cgroup::Group> {
        self.spawned += 1;
        crate::cgroup::Group::create(&self.cgroups, &format!("w{}", self.spawned), limits)
    }

    /// Work kept off the spawn and wait paths: remove a dead group, or
    /// make a group ahead for a prepared profile that has none ready.
    pub(super) fn chore(&self) -> Option<Chore> {
        if !self.dead_groups.is_empty() {
            return Some(Chore::RemoveGroup);
        }
        if !self.make_ahead {
            return None;
        }
        self.profiles
            .values()
            .map(|p| p.cgroup)
            .find(|l| !self.ready_groups.iter().any(|(r, _)| r == l))
            .map(Chore::MakeGroup)
    }

    pub(super) fn do_chore(&mut self, chore: Chore) {
        match chore {
            Chore::RemoveGroup => {
                if let Some(g) = self.dead_groups.pop() {
                    g.remove();
                }
            }
            Chore::MakeGroup(limits) => match self.new_group(limits) {
                Ok(g) => self.ready_groups.push((limits, g)),
                // The next spawn makes its own and reports the error; until
                // one succeeds, make none ahead.
                Err(_) => self.make_ahead = false,
            },
        }
    }

    pub(super) fn shutdown(&mut self) {
        for live in self.live.values() {
            if let Some(g) = &live.group {
                g.kill_all();
            }
            kill_pidfd(live.pidfd.as_fd());
        }
        let pids: Vec<i32> = self.live.keys().copied().collect();
        for pid in pids {
            let _ = self.wait(pid);
        }
        self.retire_all_zygotes();
        self.reap_all();
        for g in self.dead_groups.drain(..) {
            g.remove();
        }
        for (_, g) in self.ready_groups.drain(..) {
            g.remove();
        }
        self.cgroups.cleanup();
        if let Some(d) = &self.root_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

pub(super) fn wait4(pid: i32, flags: i32) -> Option<(i32, ExitInfo)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes to the two out-pointers, both valid.
    let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
    if r <= 0 {
        return None;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Some((
        r,
        ExitInfo {
            status,
            utime_us: us(ru.ru_utime),
            stime_us: us(ru.ru_stime),
            maxrss_kib: ru.ru_maxrss as u64,
            cgroup: None,
        },
    ))
}

/// The highest fd this process holds (for a child's close loop where
/// close_range is missing).
pub(super) fn highest_fd() -> RawFd {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .max()
                .unwrap_or(1024)
        })
        .unwrap_or(1024)
}

/// Reads until `buf` is full or EOF; returns the bytes read.
pub(super) fn read_full(fd: BorrowedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match nix::unistd::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    n
}

/// The signals this process ignores (see `child::Plan::ignored_signals`).
pub(super) fn ignored_signals() -> Vec<i32> {
    (1..=64)
        .filter(|&sig| {
            let mut old = child::KernelSigaction {
                handler: 0,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            child::rt_sigaction(sig, None, Some(&mut old)) && old.handler == libc::SIG_IGN
        })
        .collect()
}
