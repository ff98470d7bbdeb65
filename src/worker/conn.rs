//! One process's pipes: queueing input, the poll loop (`pump`), reading
//! stdout and stderr.

use std::collections::{BTreeSet, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::stderr::{log_stderr, relay};
use super::{
    Attach, Conn, Payload, StderrBudget, Stop, Stream, CHUNK, READS_PER_WAKE, STDERR_LIMIT,
    STDERR_TAIL,
};
use crate::input::Source;
use crate::policy::Policy;
use crate::protocol::{self, FrameDecoder, Kind};
use crate::sandbox::{Enforce, Process};
use crate::verdict::TimeoutKind;

/// What one poll of a process found.
struct Events {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    listener: PollFlags,
    exited: bool,
}

pub(super) fn readable(f: &PollFd) -> bool {
    f.revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Adds `fd` to the poll set; returns its index.
pub(super) fn slot<'a>(
    fds: &mut Vec<PollFd<'a>>,
    fd: Option<&'a OwnedFd>,
    flags: PollFlags,
) -> Option<usize> {
    fd.map(|f| {
        fds.push(PollFd::new(f.as_fd(), flags));
        fds.len() - 1
    })
}

impl<'s> Conn<'s> {
    pub(super) fn new(
        proc: Process,
        policy: &Arc<Policy>,
        enforce: Enforce,
        framed: bool,
    ) -> Conn<'s> {
        let limits = &policy.limits;
        Conn {
            proc,
            pending: Vec::new(),
            pending_pos: 0,
            stream: None,
            input_failed: None,
            attach: Attach::default(),
            budget: StderrBudget::default(),
            decoder: framed.then(|| FrameDecoder::new(limits.max_frame)),
            frames: VecDeque::new(),
            raw: None,
            raw_len: 0,
            raw_limit: limits.output,
            stderr_tail: Vec::new(),
            violation: None,
            denied: Vec::new(),
            paths: BTreeSet::new(),
            path_calls: BTreeSet::new(),
            on_violation: policy.syscalls.on_violation,
            policy: policy.clone(),
            enforce,
            killed_for: None,
            buf: vec![0; CHUNK],
            last_cpu_check: Instant::now(),
            stdout_pending: false,
        }
    }

    pub(super) fn queue(&mut self, bytes: &[u8]) {
        debug_assert!(self.stream.is_none(), "nothing is queued behind a stream");
        if self.pending_pos == self.pending.len() {
            self.pending.clear();
            self.pending_pos = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Queues an input: its bytes, or its file to be read as it is sent.
    pub(super) fn queue_input(&mut self, input: Payload) {
        match input {
            Payload::Bytes(b) => self.queue(b),
            Payload::File(src) => self.stream(src, None),
        }
    }

    /// Sends `src` after whatever is pending, a chunk at a time (each in a
    /// frame of its own when `parts_of` names the job).
    pub(super) fn stream(&mut self, src: &Source, parts_of: Option<u64>) {
        self.stream = Some(Stream {
            src: src.clone(),
            offset: 0,
            parts_of,
        });
    }

    /// Queues an input in parts of job `id`: `part` frames of at most
    /// [`CHUNK`] bytes, then the `job` frame with the last one (docs/PROTOCOL.md).
    pub(super) fn queue_parts(&mut self, id: u64, input: Payload) {
        match input {
            Payload::Bytes(b) => {
                let mut chunks = b.chunks(CHUNK).peekable();
                while let Some(chunk) = chunks.next() {
                    let kind = if chunks.peek().is_some() {
                        Kind::Part
                    } else {
                        Kind::Job
                    };
                    self.queue(&protocol::encode_header(kind, id, chunk.len() as u32));
                    self.queue(chunk);
                }
            }
            Payload::File(src) => self.stream(src, Some(id)),
        }
    }

    pub(super) fn cancelled(&self) -> bool {
        self.attach
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::SeqCst))
    }

    /// Everything queued has been written.
    pub(super) fn all_sent(&self) -> bool {
        self.pending_pos == self.pending.len() && self.stream.is_none()
    }

    /// Refills the drained `pending` with the stream's next chunk; false
    /// when there is nothing more (or the file failed: `input_failed`).
    pub(super) fn refill(&mut self) -> bool {
        let Some(s) = &mut self.stream else {
            return false;
        };
        let left = s.src.len() - s.offset;
        if left == 0 {
            self.input_failed = s.src.check_unchanged().err();
            self.stream = None;
            return false;
        }
        let n = left.min(CHUNK as u64) as usize;
        let header = match s.parts_of {
            Some(id) if n as u64 == left => {
                protocol::encode_header(Kind::Job, id, n as u32).to_vec()
            }
            Some(id) => protocol::encode_header(Kind::Part, id, n as u32).to_vec(),
            None => Vec::new(),
        };
        self.pending.clear();
        self.pending.extend_from_slice(&header);
        self.pending.resize(header.len() + n, 0);
        self.pending_pos = 0;
        if let Err(e) = s.src.read_at(s.offset, &mut self.pending[header.len()..]) {
            self.input_failed = Some(e);
            self.stream = None;
            self.pending.clear();
            return false;
        }
        s.offset += n as u64;
        true
    }

    pub(super) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr_tail)
            .trim()
            .to_string()
    }

    /// Runs the loop until `ready` holds or something ends the job.
    pub(super) fn pump(
        &mut self,
        deadline: Instant,
        cpu_budget: Option<(u64, u64)>,
        mut ready: impl FnMut(&mut Conn<'s>) -> bool,
    ) -> Stop {
        loop {
            if ready(self) {
                return Stop::Ready;
            }
            if self.cancelled() {
                self.proc.kill();
                return Stop::Cancelled;
            }
            // A framed conversation is over once stdout is closed (it may have
            // closed in the same read that completed an earlier frame).
            if self.decoder.is_some() && self.proc.stdout.is_none() {
                return Stop::StdoutClosed;
            }
            let now = Instant::now();
            if now >= deadline {
                self.killed_for = Some(TimeoutKind::Wall);
                self.proc.kill();
                return Stop::Timeout(TimeoutKind::Wall);
            }
            if let Some(stop) = self.check_cpu(cpu_budget, &mut ready) {
                return stop;
            }
            let watched = cpu_budget.is_some() || self.attach.cancel.is_some();
            let wait =
                (deadline - now).min(Duration::from_millis(if watched { 100 } else { 1000 }));
            let events = match self.poll_once(wait) {
                Ok(events) => events,
                Err(stop) => return stop,
            };
            if let Some(stop) = self.on_events(events, &mut ready) {
                return stop;
            }
        }
    }

    /// Kills the plugin once it has used more than its CPU budget
    /// (`(clock at the start, budget)`, in ms). Reading /proc costs more
    /// than a whole echo job: the clock is looked at every 100 ms at most.
    fn check_cpu(
        &mut self,
        cpu_budget: Option<(u64, u64)>,
        ready: &mut impl FnMut(&mut Conn<'s>) -> bool,
    ) -> Option<Stop> {
        let (start, budget) = cpu_budget?;
        if self.last_cpu_check.elapsed() < Duration::from_millis(100) {
            return None;
        }
        self.last_cpu_check = Instant::now();
        let over = self
            .proc
            .cpu_ms()
            .is_some_and(|c| c.saturating_sub(start) > budget);
        if !over {
            return None;
        }
        // An answer already waiting in the pipe was given in time: the
        // CPU since may be the next job's.
        if self.proc.stdout.is_some() {
            let early = self.read_stdout();
            if ready(self) {
                return Some(Stop::Ready);
            }
            if early.is_some() {
                return early;
            }
        }
        self.killed_for = Some(TimeoutKind::Cpu);
        self.proc.kill();
        Some(Stop::Timeout(TimeoutKind::Cpu))
    }

    /// Waits at most `wait` for the process's pipes, listener or exit.
    fn poll_once(&self, wait: Duration) -> Result<Events, Stop> {
        let none = PollFlags::empty();
        let p = &self.proc;
        let want_write = !self.all_sent() && p.stdin.is_some();
        let mut fds = Vec::with_capacity(5);
        let i_in = slot(
            &mut fds,
            p.stdin.as_ref().filter(|_| want_write),
            PollFlags::POLLOUT,
        );
        let i_out = slot(&mut fds, p.stdout.as_ref(), PollFlags::POLLIN);
        let i_err = slot(&mut fds, p.stderr.as_ref(), PollFlags::POLLIN);
        let i_lis = slot(&mut fds, p.listener(), PollFlags::POLLIN);
        let i_pid = slot(&mut fds, Some(p.plugin_pidfd()), PollFlags::POLLIN);
        let timeout =
            PollTimeout::try_from(wait.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Stop::Protocol(format!("poll failed: {e}"))),
        }
        let get = |i: Option<usize>| i.is_some_and(|i| fds[i].revents().is_some_and(|r| r != none));
        let get_r = |i: Option<usize>| i.is_some_and(|i| readable(&fds[i]));
        Ok(Events {
            stdin: get(i_in),
            stdout: get_r(i_out),
            stderr: get_r(i_err),
            listener: i_lis.and_then(|i| fds[i].revents()).unwrap_or(none),
            exited: get_r(i_pid),
        })
    }

    /// Serves what one poll found; `Some` ends the loop.
    fn on_events(
        &mut self,
        ev: Events,
        ready: &mut impl FnMut(&mut Conn<'s>) -> bool,
    ) -> Option<Stop> {
        if ev.listener.contains(PollFlags::POLLIN) {
            self.handle_notification();
        } else if ev
            .listener
            .intersects(PollFlags::POLLHUP | PollFlags::POLLERR)
        {
            // No task runs under the filter any more (the plugin has
            // exited; its init may still be ending): nothing will ever
            // come, and a hung-up listener would keep poll spinning.
            self.proc.close_listener();
        }
        if ev.stdin {
            self.write_pending();
            if let Some(e) = self.input_failed.take() {
                self.proc.kill();
                return Some(Stop::Input(e.to_string()));
            }
        }
        if ev.stderr {
            self.read_stderr();
        }
        if ev.stdout {
            if let Some(stop) = self.read_stdout() {
                if stop == Stop::StdoutClosed && ready(self) {
                    return Some(Stop::Ready);
                }
                return Some(stop);
            }
        }
        if !ev.exited {
            return None;
        }
        // Take whatever it wrote before dying (a descendant may still hold
        // the pipe: bounded), then decide.
        for _ in 0..1024 {
            match self.read_stdout() {
                Some(Stop::StdoutClosed) => break,
                Some(stop) => return Some(stop),
                None if !self.stdout_pending => break,
                None => {}
            }
        }
        self.read_stderr();
        Some(if ready(self) {
            Stop::Ready
        } else {
            Stop::Exited
        })
    }

    pub(super) fn write_pending(&mut self) {
        loop {
            if self.pending_pos == self.pending.len() && !self.refill() {
                return;
            }
            let Some(stdin) = &self.proc.stdin else {
                return;
            };
            match nix::unistd::write(stdin, &self.pending[self.pending_pos..]) {
                Ok(n) => self.pending_pos += n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    // EPIPE: the plugin closed stdin; what it did instead shows elsewhere.
                    self.proc.stdin = None;
                    return;
                }
            }
        }
    }

    /// Reads what is available on stdout; `Some` ends the job.
    pub(super) fn read_stdout(&mut self) -> Option<Stop> {
        // Bounded per call: a plugin that floods must not keep the loop from
        // its deadline checks.
        for _ in 0..READS_PER_WAKE {
            let Some(out) = &self.proc.stdout else {
                return Some(Stop::StdoutClosed);
            };
            let n = match nix::unistd::read(out, &mut self.buf) {
                Ok(0) => {
                    self.proc.stdout = None;
                    return Some(Stop::StdoutClosed);
                }
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    self.stdout_pending = false;
                    return None; // EAGAIN: all read
                }
            };
            if let Some(decoder) = &mut self.decoder {
                let mut data = &self.buf[..n];
                while !data.is_empty() {
                    match decoder.push(data) {
                        Ok((used, frame)) => {
                            data = &data[used..];
                            self.frames.extend(frame);
                        }
                        Err(e) => return Some(Stop::Protocol(e.to_string())),
                    }
                }
            } else {
                self.raw_len += n as u64;
                if self.raw_len > self.raw_limit {
                    return Some(Stop::OutputLimit);
                }
                if let Some(Err(v)) = self.raw.as_mut().map(|out| out.write(&self.buf[..n])) {
                    return Some(Stop::Failed(v));
                }
            }
        }
        self.stdout_pending = true;
        None
    }

    pub(super) fn read_stderr(&mut self) {
        for _ in 0..READS_PER_WAKE {
            let Some(err) = &self.proc.stderr else { return };
            match nix::unistd::read(err, &mut self.buf) {
                Ok(0) => {
                    self.proc.stderr = None;
                    return;
                }
                Ok(n) => {
                    let chunk = &self.buf[..n];
                    relay(&mut self.attach.relay, &mut self.budget, chunk);
                    log_stderr(&mut self.budget, self.proc.pid, chunk);
                    self.stderr_tail.extend_from_slice(chunk);
                    if self.stderr_tail.len() > STDERR_TAIL {
                        let cut = self.stderr_tail.len() - STDERR_TAIL;
                        self.stderr_tail.drain(..cut);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
        }
    }

    /// Ends the job's share of the stderr bounds: notes what was dropped
    /// (in the relay and in the log) and starts the next job's share.
    pub(super) fn end_stderr(&mut self) {
        let b = std::mem::take(&mut self.budget);
        if let Some(r) = &mut self.attach.relay {
            // What follows (the verdict) starts on a line of its own.
            let mut note = crate::escape::escape_lines(&b.carry);
            if b.line_open || !b.carry.is_empty() {
                note.push('\n');
            }
            if b.relay_dropped > 0 {
                note.push_str(&format!(
                    "plugwarden: the plugin's stderr was cut after {} bytes: {} more bytes dropped\n",
                    r.limit, b.relay_dropped
                ));
            }
            let _ = r
                .out
                .write_all(note.as_bytes())
                .and_then(|()| r.out.flush());
        }
        if b.log_dropped > 0 {
            tracing::debug!(
                target: "plugwarden::plugin",
                pid = self.proc.pid,
                "{} more bytes of stderr not logged (at most {STDERR_LIMIT} per job)",
                b.log_dropped
            );
        }
    }
}
