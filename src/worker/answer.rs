//! One job's answer: matching its frames to the job, taking its parts
//! (from the pipe or the arena), its outcome, and shutting down.

use std::time::{Duration, Instant};

use super::{JobOutcome, Life, Stop, Window, Worker};
use crate::protocol::{self, Frame, FrameDecoder, Kind};
use crate::sink::{OutputSink, SavedOutput};
use crate::spawn::ExitInfo;
use crate::verdict::Verdict;

impl Worker {
    /// Reads the answer to `id` into `sink`, a part at a time, within the
    /// output limit over the whole job; with `last`, nothing may follow it.
    /// `cpu` is (CPU clock at the start, budget in ms since then).
    pub(super) fn await_answer(
        &mut self,
        w: &mut Window,
        id: u64,
        started: Instant,
        cpu: (u64, u64),
        last: bool,
        sink: &mut dyn OutputSink,
    ) -> Result<(), Verdict> {
        let mut started = started;
        if self.life == Life::Fresh {
            self.handshake()?;
            // Start-up is not the job's time.
            started = Instant::now();
        }
        let deadline = started + self.wall_limit;
        let budget = Some(cpu);
        // Bytes of this job's output so far.
        let mut written = 0u64;
        loop {
            let stop = self.conn.pump(deadline, budget, |c| !c.frames.is_empty());
            if stop != Stop::Ready {
                return Err(self.conn.verdict_for(stop, self.cpu_limit));
            }
            let frame = self.conn.frames.pop_front().expect("ready");
            if frame.id != id {
                self.conn.proc.kill();
                if frame.id < id {
                    w.late_frame_for = Some(frame.id);
                }
                return Err(Verdict::ProtocolError(format!(
                    "the plugin answered job {} which was never sent (expected {id})",
                    frame.id
                )));
            }
            match frame.kind {
                Kind::Part | Kind::Done => {
                    let done = frame.kind == Kind::Done;
                    if let Err(v) = self.take_part(w, id, frame, &mut written, sink) {
                        // It may still be sending.
                        self.conn.proc.kill();
                        return Err(v);
                    }
                    if done {
                        break;
                    }
                }
                Kind::Error => {
                    // Escaped, not quoted: the plugin's own words for its
                    // refusal, kept on one line that cannot pass for another.
                    let msg = &frame.payload[..frame.payload.len().min(4096)];
                    return Err(Verdict::PluginError(crate::escape::escape(msg)));
                }
                kind => {
                    self.conn.proc.kill();
                    return Err(Verdict::ProtocolError(format!(
                        "unexpected {kind} frame from the plugin"
                    )));
                }
            }
        }
        // Nothing may follow the last answer: no job is in flight then.
        if last
            && (!self.conn.frames.is_empty()
                || !self
                    .conn
                    .decoder
                    .as_ref()
                    .is_some_and(FrameDecoder::is_idle))
        {
            self.conn.proc.kill();
            return Err(Verdict::ProtocolError(
                "the plugin sent bytes after its answer".into(),
            ));
        }
        sink.end()
    }

    /// Hands one part of job `id`'s output to `sink`, `written` bytes
    /// having gone before it: a pipe part as it is, an arena part after
    /// its slice is checked against the region (the sink copies it out).
    pub(super) fn take_part(
        &mut self,
        w: &Window,
        id: u64,
        frame: Frame,
        written: &mut u64,
        sink: &mut dyn OutputSink,
    ) -> Result<(), Verdict> {
        let in_arena = frame.flags & protocol::FLAG_ARENA != 0;
        let (offset, len) = if in_arena {
            self.arena_slice(w, id, &frame.payload)?
        } else {
            (0, frame.payload.len())
        };
        *written += len as u64;
        if *written > self.output_limit {
            return Err(Verdict::OutputLimit(self.output_limit));
        }
        if !in_arena {
            return sink.write_owned(frame.payload);
        }
        let arena = self.conn.proc.arena().expect("checked by arena_slice");
        if !sink.write_arena(arena, offset, len)? {
            return Err(Verdict::ProtocolError("arena answer out of bounds".into()));
        }
        self.arena_parts += 1;
        Ok(())
    }

    /// The offset and length of an answer of job `id` left in the arena's
    /// output region, checked against the region.
    pub(super) fn arena_slice(
        &self,
        w: &Window,
        id: u64,
        payload: &[u8],
    ) -> Result<(usize, usize), Verdict> {
        let violation = |what: String| Verdict::ProtocolError(what);
        let arena = match self.conn.proc.arena() {
            Some(arena) if w.reply_offered == Some(id) => arena,
            _ => {
                return Err(violation(format!(
                    "the plugin answered job {id} in the arena, which the host did not offer"
                )))
            }
        };
        let slice = protocol::ArenaSlice::parse(payload)
            .ok_or_else(|| violation("arena answer without a 16-byte slice".into()))?;
        let region = arena.region() as u64;
        slice
            .within(region, region)
            .map_err(|e| violation(format!("the plugin's answer: {e}")))
    }

    pub(super) fn outcome(
        &mut self,
        verdict: Verdict,
        output: Vec<u8>,
        saved: Option<SavedOutput>,
        started: Instant,
        cpu_start: u64,
    ) -> JobOutcome {
        let (cpu_ms, max_rss_kib) = match self.conn.proc.has_exited() {
            true => {
                let info = self.conn.proc.wait().unwrap_or_default();
                let peak = info
                    .cgroup
                    .and_then(|c| c.memory_peak)
                    .map_or(info.maxrss_kib, |p| p / 1024);
                (info.cpu_ms().saturating_sub(cpu_start), peak)
            }
            false => {
                // The worker's peak as seen at job ends (the cgroup's peak
                // replaces it once the process has exited).
                self.peak_rss_kib = self.peak_rss_kib.max(self.conn.proc.rss_kib().unwrap_or(0));
                let now = self.conn.proc.cpu_ms().unwrap_or(cpu_start);
                self.last_cpu = Some(now);
                (now.saturating_sub(cpu_start), self.peak_rss_kib)
            }
        };
        self.conn.end_stderr();
        JobOutcome {
            verdict,
            output,
            saved,
            wall: started.elapsed(),
            cpu_ms,
            max_rss_kib,
            pid: self.conn.proc.pid,
            denied: std::mem::take(&mut self.conn.denied),
            paths: std::mem::take(&mut self.conn.paths),
            stderr_tail: self.conn.stderr_text(),
            notes: Vec::new(),
        }
    }

    /// Current resident set size in bytes (for recycling decisions).
    pub fn rss_bytes(&self) -> Option<u64> {
        self.conn.proc.rss_kib().map(|rss| rss * 1024)
    }

    /// Ends the worker: closes stdin, gives it a moment to exit, then kills and reaps it.
    pub fn shutdown(mut self) -> Option<ExitInfo> {
        self.conn.proc.stdin = None;
        self.conn.read_stderr();
        self.conn.proc.exits_within(Duration::from_millis(200));
        self.conn.proc.terminate()
    }
}
