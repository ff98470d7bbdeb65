//! Supervision while a job runs: answering the seccomp notifications,
//! and the verdict a job or an exit earns.

use std::os::fd::AsRawFd;
use std::time::Duration;

use super::stderr::suffix;
use super::{Conn, Stop, MAX_PATHS};
use crate::policy::OnViolation;
use crate::sandbox::Enforce;
use crate::spawn::ExitInfo;
use crate::verdict::{stderr_detail, TimeoutKind, Verdict};

impl<'s> Conn<'s> {
    /// Answers one seccomp user notification: the syscall is outside the
    /// allowlist. Kill (violation), fail it with EPERM, or let it run (log).
    pub(super) fn handle_notification(&mut self) {
        let Some(listener) = self.proc.listener().map(|l| l.as_raw_fd()) else {
            return;
        };
        // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: NOTIF_RECV writes one seccomp_notif into `req`.
        let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if rc < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                return; // the caller died meanwhile
            }
            // The listener is gone (every filtered process exited).
            self.proc.close_listener();
            return;
        }
        let d = req.data;
        let what = crate::seccomp::describe(d.arch, d.nr, d.args);
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: -libc::EPERM,
            flags: 0,
        };
        // A soft denial: the policy answers this call with an errno, in
        // every mode (log mode shows what enforcing does), and records it.
        if self.enforce == Enforce::Observe && self.observe(req.pid, d.arch, d.nr, &d.args, &what) {
            resp.error = 0;
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
        } else if let Some(errno) = self.soft_errno(d.arch, d.nr, &d.args) {
            resp.error = -i32::from(errno);
            self.note_denied(format!(
                "{what} → {}",
                crate::spawn::errno_name(i32::from(errno))
            ));
        } else {
            self.answer(
                crate::verdict::Violation::caught(d.arch, d.nr, what),
                &mut resp,
            );
        }
        // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from our stack.
        unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }

    /// The errno the policy answers syscall `nr` of `arch` with, if any.
    pub(super) fn soft_errno(&self, arch: u32, nr: i32, args: &[u64; 6]) -> Option<u16> {
        let native = crate::policy::groups::Arch::native();
        if arch != crate::seccomp::audit_arch(native) {
            return None;
        }
        let name = crate::policy::groups::name_of(native, i64::from(nr))?;
        crate::policy::errno_answer(&self.policy.syscalls.errno, name, args)
    }

    /// Records the paths a file syscall names (learn); false for any
    /// other call. The first call of each such syscall is listed among
    /// the denied ones, with its path in place of the pointer.
    pub(super) fn observe(
        &mut self,
        pid: u32,
        arch: u32,
        nr: i32,
        args: &[u64; 6],
        what: &str,
    ) -> bool {
        let native = crate::policy::groups::Arch::native();
        let Some(name) = (arch == crate::seccomp::audit_arch(native))
            .then(|| crate::policy::groups::name_of(native, i64::from(nr)))
            .flatten()
            .filter(|n| crate::observe::path_syscalls().any(|p| p == *n))
        else {
            return false;
        };
        let uses = crate::observe::paths_of(pid, name, args);
        if self.path_calls.insert(name) {
            let named = uses.first().map_or_else(
                || what.to_string(),
                |u| format!("{name}({:?}, ...)", u.path),
            );
            self.note_denied(named);
        }
        if self.paths.len() < MAX_PATHS {
            self.paths.extend(uses);
        }
        true
    }

    /// A call outside the allowlist: kill, EPERM, or (log) let it run.
    pub(super) fn answer(
        &mut self,
        what: crate::verdict::Violation,
        resp: &mut libc::seccomp_notif_resp,
    ) {
        match (self.enforce, self.on_violation) {
            (Enforce::Log | Enforce::Observe, _) => {
                resp.error = 0;
                resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
                self.note_denied(what.to_string());
            }
            (Enforce::Policy, OnViolation::Errno) => self.note_denied(what.to_string()),
            (Enforce::Policy, OnViolation::Kill) => {
                tracing::info!(pid = self.proc.pid, syscall = %what, "seccomp violation, killing the plugin");
                if self.violation.is_none() {
                    self.violation = Some(what);
                }
                self.proc.kill();
            }
        }
    }

    pub(super) fn note_denied(&mut self, what: String) {
        if self.denied.len() < 256 && !self.denied.contains(&what) {
            self.denied.push(what);
        }
    }

    /// The verdict for a job that ended with `stop` instead of an answer.
    pub(super) fn verdict_for(&mut self, stop: Stop, cpu_limit: Duration) -> Verdict {
        match stop {
            Stop::Ready => Verdict::Ok,
            Stop::Timeout(kind) => Verdict::Timeout(kind),
            Stop::OutputLimit => Verdict::OutputLimit(self.raw_limit),
            Stop::Protocol(msg) => Verdict::ProtocolError(msg),
            Stop::Input(msg) => Verdict::InputError(msg),
            Stop::Cancelled => Verdict::Cancelled,
            Stop::Failed(v) => {
                self.proc.kill();
                v
            }
            Stop::StdoutClosed | Stop::Exited => {
                // The plugin closed stdout on its own (not because we killed it).
                let ours = self.violation.is_some() || self.killed_for.is_some();
                // A dying process closes stdout a moment before its pidfd
                // says it exited: give it that moment before blaming it.
                if stop == Stop::StdoutClosed
                    && !ours
                    && !self.proc.exits_within(Duration::from_millis(100))
                {
                    self.proc.kill();
                    let _ = self.proc.wait();
                    return Verdict::ProtocolError(
                        "the plugin closed stdout before answering".into(),
                    );
                }
                match self.proc.wait() {
                    Ok(info) => self.exit_verdict(info, cpu_limit),
                    Err(e) => Verdict::ProtocolError(format!("cannot reap the plugin: {e}")),
                }
            }
        }
    }

    pub(super) fn exit_verdict(&self, info: ExitInfo, cpu_limit: Duration) -> Verdict {
        if let Some(v) = &self.violation {
            return Verdict::Violation(v.clone());
        }
        if let Some(kind) = self.killed_for {
            return Verdict::Timeout(kind);
        }
        let stderr = self.stderr_text();
        if let Some(cg) = info.cgroup.filter(|c| c.oom_killed) {
            let peak = cg
                .memory_peak
                .map_or(String::new(), |p| format!(", peak {} MiB", p >> 20));
            return Verdict::Memory(format!("memory limit reached (cgroup OOM kill{peak})"));
        }
        match (info.signal(), info.code()) {
            // The host's own filter never kills (it hands every miss, a
            // foreign ABI included, to the host, which names it): SIGSYS
            // comes from a filter the plugin installed itself.
            (Some(libc::SIGSYS), _) => Verdict::Violation(
                "killed by SIGSYS: a seccomp filter the plugin installed itself (the SDK's lockdown) denied a syscall, or it raised SIGSYS"
                    .into(),
            ),
            (Some(libc::SIGXCPU), _) => Verdict::Timeout(TimeoutKind::Cpu),
            (Some(libc::SIGKILL), _) if info.cpu_ms() >= cpu_limit.as_millis() as u64 => {
                Verdict::Timeout(TimeoutKind::Cpu)
            }
            (Some(sig), _) if looks_like_oom(&stderr) => {
                Verdict::Memory(format!("address-space limit reached (the plugin died by {})", crate::verdict::signal_name(sig)))
            }
            (Some(signal), _) => {
                // The kernel's own account: whether a core was dumped
                // (RLIMIT_CORE is 0, but a piped core_pattern ignores it).
                let line = stderr_detail(&self.stderr_tail);
                let detail = match (info.core_dumped(), line) {
                    (true, None) => "core dumped".to_string(),
                    (true, Some(line)) => format!("core dumped; {line}"),
                    (false, line) => line.unwrap_or_default(),
                };
                Verdict::Crashed {
                    signal: crate::verdict::Signal::from_raw(signal),
                    detail,
                }
            }
            (None, Some(code)) if looks_like_oom(&stderr) => {
                Verdict::Memory(format!("address-space limit reached (exit status {code})"))
            }
            (None, Some(code)) => Verdict::ProtocolError(format!(
                "the plugin exited with status {code} before answering{}",
                suffix(&self.stderr_tail)
            )),
            _ => Verdict::ProtocolError("the plugin ended in an unknown way".into()),
        }
    }
}

pub(super) fn looks_like_oom(stderr: &str) -> bool {
    [
        "memory allocation of",
        "MemoryError",
        "Cannot allocate memory",
        "out of memory",
        "std::bad_alloc",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}
