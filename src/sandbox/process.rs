//! A running sandbox: the host's side of one sandboxed child (its pidfds,
//! pipes, seccomp listener and arena), killed and reaped when dropped.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use crate::arena::Arena;
use crate::spawn::{ExitInfo, ForkServer, ForkServerError};

/// A running sandbox. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct Process {
    /// The plugin's pid (its /proc files).
    pub pid: i32,
    /// What the fork server reaps: the sandbox's init, or the plugin.
    pub(super) leader: i32,
    /// The leader's pidfd: SIGKILL through it ends the whole sandbox.
    pub(super) pidfd: OwnedFd,
    /// The plugin's own pidfd (the same process as `pidfd` without an
    /// init): the host watches it for the plugin's exit, so that its `Wait`
    /// overlaps the init's report and exit.
    pub(super) plugin_pidfd: OwnedFd,
    pub(super) listener: Option<OwnedFd>,
    /// The plugin's stdin (the host's end; non-blocking).
    pub stdin: Option<OwnedFd>,
    /// The plugin's stdout (the host's end; non-blocking).
    pub stdout: Option<OwnedFd>,
    /// The plugin's stderr (the host's end; non-blocking).
    pub stderr: Option<OwnedFd>,
    pub(super) exit: Option<ExitInfo>,
    pub(super) reaper: Reaper,
    /// When it was started.
    pub started: Instant,
    pub(super) stat_file: std::cell::OnceCell<Option<std::fs::File>>,
    pub(super) statm_file: std::cell::OnceCell<Option<std::fs::File>>,
    /// The shared-memory arena (workers only), the plugin's fd 3; unmapped
    /// when the process is dropped, after it was killed and reaped.
    pub(super) arena: Option<Arena>,
}

/// Who reaps a process once its pidfd is readable.
#[derive(Debug)]
pub(super) enum Reaper {
    /// The fork server that spawned it.
    ForkServer(Arc<ForkServer>),
    /// This process: a unit test's stand-in for a plugin is its own child.
    #[cfg(test)]
    Host,
}

impl Process {
    /// The shared-memory arena handed to this worker as fd 3, if any.
    pub(crate) fn arena(&self) -> Option<&Arena> {
        self.arena.as_ref()
    }

    /// The plugin's pidfd: readable once the plugin has exited (its init
    /// follows at once; [`Process::wait`] returns after both).
    pub fn plugin_pidfd(&self) -> &OwnedFd {
        &self.plugin_pidfd
    }

    /// The seccomp user-notification listener, until it is closed.
    pub fn listener(&self) -> Option<&OwnedFd> {
        self.listener.as_ref()
    }

    /// Closes the seccomp listener (every filtered process has exited).
    pub fn close_listener(&mut self) {
        self.listener = None;
    }

    /// SIGKILL through the pidfds (no pid-reuse race): the plugin first,
    /// so that it stops before its current syscall returns, then, unless
    /// the plugin had already exited, its init, which ends everything else
    /// in the sandbox. (Once the plugin has exited, its init ends the rest
    /// by itself: a zygote then stays for the next input.)
    pub fn kill(&self) {
        if self.exit.is_none() {
            let gone = self.has_exited();
            crate::spawn::kill_pidfd(self.plugin_pidfd.as_fd());
            if !gone {
                crate::spawn::kill_pidfd(self.pidfd.as_fd());
            }
        }
    }

    /// Waits up to `timeout` for the exit; true if it happened.
    pub fn exits_within(&self, timeout: std::time::Duration) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if self.exit.is_some() {
            return true;
        }
        let mut fds = [PollFd::new(self.plugin_pidfd.as_fd(), PollFlags::POLLIN)];
        let t = PollTimeout::try_from(timeout.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        matches!(poll(&mut fds, t), Ok(n) if n > 0)
    }

    /// True once the process has exited (its pidfd is readable).
    pub fn has_exited(&self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if self.exit.is_some() {
            return true;
        }
        let mut fds = [PollFd::new(self.plugin_pidfd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Waits for the exit (blocking) and returns status and rusage.
    pub fn wait(&mut self) -> Result<ExitInfo, ForkServerError> {
        if let Some(e) = self.exit {
            return Ok(e);
        }
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        loop {
            let mut fds = [PollFd::new(self.plugin_pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ForkServerError::Io(e.into())),
            }
        }
        let info = match &self.reaper {
            Reaper::ForkServer(fs) => fs.wait(self.leader)?,
            #[cfg(test)]
            Reaper::Host => super::fake::reap(self.leader),
        };
        self.exit = Some(info);
        Ok(info)
    }

    /// Kills and reaps.
    pub fn terminate(&mut self) -> Option<ExitInfo> {
        self.kill();
        self.wait().ok()
    }

    /// Reads `/proc/<pid>/<name>` through an fd kept open for the life of
    /// the process: a job's bookkeeping must cost microseconds, and the
    /// path walk of a fresh open is most of a /proc read.
    fn proc_read<'b>(
        &self,
        cell: &std::cell::OnceCell<Option<std::fs::File>>,
        name: &str,
        buf: &'b mut [u8],
    ) -> Option<&'b str> {
        use std::os::unix::fs::FileExt;
        let file = cell
            .get_or_init(|| std::fs::File::open(format!("/proc/{}/{name}", self.pid)).ok())
            .as_ref()?;
        let n = file.read_at(buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()
    }

    /// CPU time (user + system) in milliseconds, from `/proc/<pid>/stat`.
    pub fn cpu_ms(&self) -> Option<u64> {
        let mut buf = [0u8; 1024];
        let stat = self.proc_read(&self.stat_file, "stat", &mut buf)?;
        let rest = &stat[stat.rfind(')')? + 2..];
        // Fields 14 and 15 of stat(5); `rest` starts at field 3.
        let mut fields = rest.split(' ').skip(11);
        let ticks: u64 =
            fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no memory effects.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Some(ticks * 1000 / hz)
    }

    /// Resident anonymous memory in KiB: `/proc/<pid>/statm`'s resident
    /// minus its shared pages. Mapped files and the shared-memory arena
    /// are not the plugin's own growth (a worker that once moved 64 MiB
    /// through its arena keeps those pages mapped until it is recycled),
    /// so they must not count towards `recycle_rss`.
    pub fn rss_kib(&self) -> Option<u64> {
        let mut buf = [0u8; 256];
        let statm = self.proc_read(&self.statm_file, "statm", &mut buf)?;
        let mut fields = statm.split(' ').skip(1);
        let resident: u64 = fields.next()?.trim().parse().ok()?;
        let shared: u64 = fields.next()?.trim().parse().ok()?;
        let pages = resident.saturating_sub(shared);
        // SAFETY: sysconf has no memory effects.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        Some(pages * page / 1024)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exit.is_none() {
            self.terminate();
        }
    }
}
