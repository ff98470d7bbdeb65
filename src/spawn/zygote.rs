//! Warm zygotes (docs/decisions/zygote.md): the init of a sandbox whose
//! plugin has exited, kept by the fork server to start the next input's
//! plugin process in the same namespaces, root, rlimits and identity. One
//! per prepared profile; each fork server (a pool slot) has its own.

use super::*;

/// The most inputs one zygote serves before it is retired: its own CPU
/// time counts against the rlimit it shares with its plugins.
const MAX_INPUTS: u32 = 1000;

/// A zygote waiting for its next input.
pub(super) struct Zygote {
    pub(super) pid: i32,
    pub(super) pidfd: OwnedFd,
    /// Our end of its report socket (requests go the same way).
    pub(super) report: OwnedFd,
    /// The group of its last input, which it is still in.
    pub(super) group: Option<crate::cgroup::Group>,
    pub(super) inputs: u32,
}

/// The zygote behind a running input (in its `Live` entry).
#[derive(Clone, Copy, Debug)]
pub(super) struct ZygoteRun {
    pub(super) profile: u64,
    /// How many inputs it has started, this one included.
    pub(super) inputs: u32,
}

impl Server {
    /// Starts the next input of `profile` in its idle zygote: a fresh
    /// cgroup (the zygote moves in, so the plugin process is born there),
    /// the input's stdio, the report. `None` when the zygote is gone (it
    /// is then reaped, and the caller starts a fresh sandbox).
    pub(super) fn spawn_in_zygote(
        &mut self,
        profile: u64,
        mut z: Zygote,
        stdio: &[OwnedFd],
        deadline: Instant,
    ) -> Result<Option<SpawnEnd>, ServerError> {
        let group = match self.take_group(self.profiles[&profile].cgroup) {
            Ok(g) => g,
            Err(e) => {
                self.retire(z);
                return Err(e);
            }
        };
        if let Some(g) = &group {
            if g.add(z.pid).is_err() {
                self.retire(z);
                self.dead_groups.push(group.expect("checked"));
                return Ok(None);
            }
        }
        // Every process of the last input was reaped before the zygote said
        // it was clean, and the zygote has left: its group is empty.
        if let Some(old) = z.group.take() {
            self.dead_groups.push(old);
        }
        let raw: Vec<RawFd> = stdio.iter().map(|f| f.as_raw_fd()).collect();
        let sent = sendmsg::<()>(
            z.report.as_raw_fd(),
            &[IoSlice::new(b"n")],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        );
        if sent.is_err() {
            z.group = group;
            self.retire(z);
            return Ok(None);
        }
        let started = self.await_start(&z.report, deadline);
        let run = ZygoteRun {
            profile,
            inputs: z.inputs + 1,
        };
        let end = match started {
            Ok(Started::Yes(listener, plugin_pidfd)) => {
                return self
                    .register(
                        z.pid,
                        true,
                        group,
                        z.report,
                        z.pidfd,
                        (listener, plugin_pidfd),
                        Some(run),
                    )
                    .map(Some)
            }
            Ok(Started::Failed(stage, errno)) => Some(SpawnEnd::Failed(stage, errno)),
            Ok(Started::Deadline) => Some(SpawnEnd::Failed(Stage::Deadline, libc::ETIMEDOUT)),
            Ok(Started::HostGone) => Some(SpawnEnd::HostGone),
            // It died before a word: start a fresh sandbox instead.
            Err(_) => None,
        };
        self.abort_spawn(z.pid, true, group);
        Ok(end)
    }

    /// The exit of a zygote's input: its EXITED report (the plugin's wait
    /// status, checked against the kernel's record, and rusage), the
    /// input's cgroup usage. A zygote that reported itself clean is kept
    /// for the next input of its profile; otherwise (or when it died) it
    /// is retired.
    pub(super) fn zygote_wait(&mut self, pid: i32) -> Option<ExitInfo> {
        let mut live = self.live.remove(&pid)?;
        let run = live.zygote?;
        let (report, plugin) = live.init.take()?;
        let Some(r) = recv_exited(report.as_fd()) else {
            // The zygote died (its namespace with it): as for an init.
            let info = wait4(pid, libc::__WALL).map_or_else(
                || ExitInfo {
                    status: libc::SIGKILL,
                    ..ExitInfo::default()
                },
                |(_, i)| i,
            );
            let mut info = plugin_exit(info, report.as_fd(), plugin.as_fd());
            if let Some(group) = live.group {
                group.kill_all();
                info.cgroup = Some(group.usage());
                self.dead_groups.push(group);
            }
            return Some(info);
        };
        let mut info = ExitInfo {
            status: r.status,
            utime_us: r.utime_us,
            stime_us: r.stime_us,
            maxrss_kib: r.maxrss_kib,
            cgroup: None,
        };
        if let Some(status) = pidfd_exit_status(plugin.as_fd()) {
            if status != r.status {
                tracing::warn!(
                    reported = r.status,
                    kernel = status,
                    "the sandbox's zygote misreported its plugin's exit; the kernel's record wins"
                );
            }
            info.status = status;
        }
        info.cgroup = live.group.as_ref().map(|g| g.usage());
        let z = Zygote {
            pid,
            pidfd: live.pidfd,
            report,
            group: live.group,
            inputs: run.inputs,
        };
        let keep = r.value == 1
            && run.inputs < MAX_INPUTS
            && self.profiles.contains_key(&run.profile)
            && !self.zygotes.contains_key(&run.profile);
        if keep {
            self.zygotes.insert(run.profile, z);
        } else {
            self.retire(z);
        }
        Some(info)
    }

    /// Ends a zygote: killed, reaped, its group emptied and given back.
    pub(super) fn retire(&mut self, z: Zygote) {
        kill_pidfd(z.pidfd.as_fd());
        let _ = wait4(z.pid, libc::__WALL);
        if let Some(g) = z.group {
            g.kill_all();
            self.dead_groups.push(g);
        }
    }

    /// An idle zygote of ours has been reaped (it died): forget it.
    pub(super) fn forget_zygote(&mut self, pid: i32) {
        let profile = self
            .zygotes
            .iter()
            .find(|(_, z)| z.pid == pid)
            .map(|(p, _)| *p);
        if let Some(z) = profile.and_then(|p| self.zygotes.remove(&p)) {
            if let Some(g) = z.group {
                g.kill_all();
                self.dead_groups.push(g);
            }
        }
    }

    /// Retires the idle zygote of `profile`, if any.
    pub(super) fn retire_zygote_of(&mut self, profile: u64) {
        if let Some(z) = self.zygotes.remove(&profile) {
            self.retire(z);
        }
    }

    /// Retires every idle zygote (shutdown).
    pub(super) fn retire_all_zygotes(&mut self) {
        let profiles: Vec<u64> = self.zygotes.keys().copied().collect();
        for p in profiles {
            self.retire_zygote_of(p);
        }
    }
}

/// Reads a zygote's report socket until its EXITED report (blocking: the
/// host asks once the plugin has exited); `None` at EOF, when the zygote
/// died.
fn recv_exited(report: BorrowedFd) -> Option<child::Report> {
    let mut buf = [0u8; child::Report::LEN];
    loop {
        match nix::sys::socket::recv(report.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return None,
            Ok(n) => match child::Report::parse(&buf[..n]) {
                Some(r) if r.tag == child::EXITED => return Some(r),
                Some(_) => {}
                None => return None,
            },
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// Whether a profile's sandboxes may be served by a zygote: the
/// decision (`confine::zygote`) on what its seccomp program allows.
pub(super) fn zygote_allowed(
    enabled: bool,
    ns: &confine::Namespaces,
    grants: &Grants,
    filter: &[seccompiler::sock_filter],
) -> bool {
    use crate::policy::groups::{self, Arch};
    let arch = Arch::native();
    let allows = |name: &str| {
        groups::number(arch, name).is_some_and(|nr| {
            [[0u64; 6], [u64::MAX; 6]].iter().any(|args| {
                let ret = crate::seccomp::evaluate(
                    filter,
                    crate::seccomp::audit_arch(arch),
                    nr as i32,
                    *args,
                );
                // ALLOW, LOG or TRACE: the call may run.
                (0x7ff0_0000..0x8000_0000).contains(&(ret & 0xffff_0000))
            })
        })
    };
    confine::zygote(enabled, ns, grant_in_tmp(grants), allows)
}
