//! A window of jobs in flight on one worker (a single job is a window of
//! one): sending them, reading each answer in order (a late or double
//! answer ends the worker), and sharing out the CPU they used.

use std::time::{Duration, Instant};

use super::{Job, JobOutcome, Life, Payload, Window, Worker, CHUNK};
use crate::input::InputError;
use crate::protocol::{self, Kind};
use crate::sink::{OutputBuf, OutputSink};
use crate::verdict::Verdict;

impl Worker {
    /// Runs `jobs` as one window: every input is queued at once and the
    /// answers are read as they come. Returns one outcome per job in
    /// order, stopping after the first job that retires the worker (the
    /// rest get none: a pool resends them to a fresh worker); a job whose
    /// input cannot be sent ends the window with an `input_error` of its
    /// own. An input that is a file must be the window's last. A job
    /// alone ([`Worker::run_input`]) may answer in the arena whichever way
    /// its input went; in a pipelined window ([`Worker::run_batch`]) only
    /// the job whose input is in the arena may.
    pub(super) fn run_window(&mut self, mut jobs: Vec<Job>, pipelined: bool) -> Vec<JobOutcome> {
        if self.life == Life::Dead {
            return Vec::new();
        }
        let mut started = Instant::now();
        // The CPU clock as the previous job left it: one /proc read per window.
        let cpu_start = self
            .last_cpu
            .unwrap_or_else(|| self.conn.proc.cpu_ms().unwrap_or(0));
        match self.greet_first(&jobs) {
            Ok(true) => started = Instant::now(), // start-up is not the job's time
            Ok(false) => {}
            Err(v) => {
                self.jobs += 1;
                return vec![self.outcome(v, Vec::new(), None, started, cpu_start)];
            }
        }
        let (mut window, refused) = self.send_window(&jobs, pipelined);
        let sent = (window.end - window.first) as usize;
        if sent == 0 {
            return refused.map(JobOutcome::failed).into_iter().collect();
        }
        self.conn.denied.clear();
        self.conn.paths.clear();
        self.conn.path_calls.clear();
        let (mut out, measured) =
            self.await_window(&mut window, &mut jobs[..sent], started, cpu_start);
        self.share_cpu(&mut out, &measured, cpu_start);
        if let Some(v) = refused.filter(|_| self.is_alive()) {
            out.push(JobOutcome::failed(v));
        }
        out
    }

    /// With an arena, the plugin's hello says whether it maps it, and for
    /// an input larger than one frame whether it takes parts: read it
    /// before the first job is sent (one round trip, once per worker).
    /// True when it was read now.
    fn greet_first(&mut self, jobs: &[Job]) -> Result<bool, Verdict> {
        let one_frame = |j: &Job| j.input.len() <= u64::from(self.max_frame);
        let must = self.conn.proc.arena().is_some() || !jobs.iter().all(one_frame);
        if self.life != Life::Fresh || !must {
            return Ok(false);
        }
        self.handshake().map(|()| true)
    }

    /// Queues the window's inputs; stops at the first that cannot be sent
    /// (its verdict is returned with the window of those sent).
    fn send_window(&mut self, jobs: &[Job], pipelined: bool) -> (Window, Option<Verdict>) {
        let mut window = Window {
            first: self.next_id,
            end: self.next_id,
            reply_offered: None,
            late_frame_for: None,
        };
        for (k, job) in jobs.iter().enumerate() {
            debug_assert!(
                k + 1 == jobs.len() || matches!(job.input, Payload::Bytes(_)),
                "only the last input of a window is streamed"
            );
            if let Err(v) = self.send(job.input, &mut window, !pipelined) {
                return (window, Some(v));
            }
        }
        (window, None)
    }

    /// Queues one job: its input in the arena when it fits there and the
    /// arena is free, else in one frame, else in parts. The arena's output
    /// region goes to the job whose input is in the arena, or, with
    /// `alone`, to the job whichever way its input went.
    fn send(&mut self, input: Payload, w: &mut Window, alone: bool) -> Result<(), Verdict> {
        let id = self.next_id;
        self.next_id += 1;
        let arena_free = self.arena_on() && w.reply_offered.is_none();
        if arena_free {
            match self.send_in_arena(id, input) {
                Ok(true) => {
                    w.reply_offered = Some(id);
                    w.end = id + 1;
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => return Err(Verdict::InputError(e.to_string())),
            }
        }
        match u32::try_from(input.len()) {
            Ok(len) if len <= self.max_frame => {
                let offer = arena_free && alone;
                let flags = if offer {
                    w.reply_offered = Some(id);
                    protocol::FLAG_REPLY_IN_ARENA
                } else {
                    0
                };
                self.conn
                    .queue(&protocol::encode_header_flags(Kind::Job, flags, id, len));
                self.conn.queue_input(input);
            }
            // Through the pipe, a part at a time: no reply in the arena.
            _ if self.parts_on() => self.conn.queue_parts(id, input),
            _ => {
                return Err(Verdict::InputError(format!(
                    "input too large for one frame ({} bytes, limit {}), and the plugin does not take inputs in parts",
                    input.len(),
                    self.max_frame
                )))
            }
        }
        w.end = id + 1;
        Ok(())
    }

    /// Writes a bulk input straight into the arena's input region (a file
    /// in bounded chunks) and queues the job frame naming it; false when
    /// the plugin has no arena, the input is small (the pipes are as fast)
    /// or larger than the region.
    pub(super) fn send_in_arena(&mut self, id: u64, input: Payload) -> Result<bool, InputError> {
        let Some(arena) = self.conn.proc.arena().filter(|_| self.arena_on()) else {
            return Ok(false);
        };
        let len = input.len();
        if len < crate::arena::THRESHOLD as u64 || len > arena.region() as u64 {
            return Ok(false);
        }
        match input {
            Payload::Bytes(b) => {
                if !arena.write(0, b) {
                    return Ok(false);
                }
            }
            Payload::File(src) => {
                let mut buf = vec![0u8; CHUNK];
                let mut offset = 0;
                while offset < len {
                    let n = (len - offset).min(CHUNK as u64) as usize;
                    src.read_at(offset, &mut buf[..n])?;
                    arena.write(offset as usize, &buf[..n]);
                    // The plugin reads it from its own mapping.
                    arena.release(offset as usize, n);
                    offset += n as u64;
                }
                src.check_unchanged()?;
            }
        }
        let slice = protocol::ArenaSlice { offset: 0, len };
        let mut frame = Vec::with_capacity(protocol::HEADER_LEN + protocol::ARENA_SLICE_LEN);
        protocol::encode_frame_flags(
            &mut frame,
            Kind::Job,
            protocol::FLAG_ARENA | protocol::FLAG_REPLY_IN_ARENA,
            id,
            &slice.encode(),
        );
        self.conn.queue(&frame);
        self.arena_inputs += 1;
        Ok(true)
    }

    /// Reads the answers of the window's jobs in order. Each job has the
    /// full wall budget, counted from the previous answer (the first from
    /// `started`), and one CPU budget, counted from the CPU clock's last
    /// reading (`mark`). The clock is read after an answer that took 1 ms
    /// or more; the jobs answered faster in between used at most their
    /// wall time per thread, and what they used counts against the next
    /// slow job's budget (stricter, never looser). A fast window thus
    /// costs no /proc read per job, and a slow job late in a window gets
    /// no more than its own budget. Returns the outcomes and the CPU
    /// measured for each.
    fn await_window(
        &mut self,
        w: &mut Window,
        jobs: &mut [Job],
        started: Instant,
        cpu_start: u64,
    ) -> (Vec<JobOutcome>, Vec<Option<u64>>) {
        let sent = jobs.len();
        let budget = self.cpu_limit.as_millis() as u64;
        let mut mark = cpu_start;
        let mut out: Vec<JobOutcome> = Vec::with_capacity(sent);
        let mut measured = Vec::with_capacity(sent);
        for (k, job) in jobs.iter_mut().enumerate() {
            let id = w.first + k as u64;
            let started = if k == 0 { started } else { Instant::now() };
            let mut held = OutputBuf::new(self.conn.attach.spill.clone());
            let sink: &mut dyn OutputSink = match job.sink.as_deref_mut() {
                Some(s) => s,
                None => &mut held,
            };
            if let Some(cancel) = &self.conn.attach.cancel {
                sink.set_cancel(cancel.clone());
            }
            let result = self.await_answer(w, id, started, (mark, budget), k + 1 == sent, sink);
            // A job alone is measured once, at the window's end.
            let cpu = (sent > 1 && started.elapsed() >= Duration::from_millis(1))
                .then(|| self.conn.proc.cpu_ms())
                .flatten()
                .map(|now| now.saturating_sub(std::mem::replace(&mut mark, now)));
            let (verdict, saved) = match result {
                Ok(()) => (Verdict::Ok, sink.take_saved()),
                Err(v) => {
                    if !matches!(v, Verdict::PluginError(_)) {
                        self.life = Life::Dead;
                    }
                    if blame_late(w, &mut out) {
                        break;
                    }
                    (v, None)
                }
            };
            let notes = sink.take_notes();
            let output = if verdict.is_ok() {
                held.into_bytes()
            } else {
                Vec::new()
            };
            self.jobs += 1;
            measured.push(cpu);
            out.push(JobOutcome {
                verdict,
                output,
                saved,
                wall: started.elapsed(),
                pid: self.conn.proc.pid,
                denied: std::mem::take(&mut self.conn.denied),
                paths: std::mem::take(&mut self.conn.paths),
                notes,
                ..JobOutcome::failed(Verdict::Ok)
            });
            if self.life == Life::Dead {
                break;
            }
        }
        (out, measured)
    }

    /// Jobs whose CPU was measured keep it; the rest share what is left.
    /// Every job gets the worker's peak RSS, the last its stderr tail.
    fn share_cpu(&mut self, out: &mut [JobOutcome], measured: &[Option<u64>], cpu_start: u64) {
        let last = self.outcome(Verdict::Ok, Vec::new(), None, Instant::now(), cpu_start);
        let known: u64 = measured.iter().flatten().sum();
        let unknown = measured.iter().filter(|m| m.is_none()).count().max(1) as u64;
        let share = last.cpu_ms.saturating_sub(known) / unknown;
        for (i, o) in out.iter_mut().enumerate() {
            o.cpu_ms = measured.get(i).copied().flatten().unwrap_or(share);
            o.max_rss_kib = last.max_rss_kib;
        }
        if let Some(o) = out.last_mut() {
            o.stderr_tail = last.stderr_tail;
        }
    }
}

/// A second answer to an earlier job of this window: that job broke the
/// protocol; the awaited one and the rest were not run by an honest
/// worker and get no outcome (a pool resends them to a fresh worker).
/// True when an earlier outcome was blamed.
fn blame_late(w: &mut Window, out: &mut [JobOutcome]) -> bool {
    let Some(late) = w.late_frame_for.take() else {
        return false;
    };
    let Some(o) = late
        .checked_sub(w.first)
        .and_then(|i| out.get_mut(i as usize))
    else {
        return false;
    };
    o.verdict = Verdict::ProtocolError("the plugin sent bytes after its answer".into());
    o.output.clear();
    o.saved = None;
    true
}
