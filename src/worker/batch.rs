//! A window of jobs in flight on one worker: sending them, matching
//! each answer to its job (a late or double answer ends the worker), and
//! shutting down.

use super::*;

impl Worker {
    /// Runs several jobs pipelined: every input is written at once and the
    /// answers are read as they come, so the plugin never waits for the
    /// host between jobs. Each job has the full wall budget, counted from
    /// the previous answer, and one CPU budget (see the loop below). Returns one outcome per input in
    /// order, stopping after the first job that retires the worker; the
    /// caller runs the rest on a fresh worker. The arena has one input and
    /// one output region, which only one job in flight can own: the first
    /// input of at least [`crate::arena::THRESHOLD`] bytes gets it, every
    /// other job goes through the pipes.
    pub fn run_batch(&mut self, inputs: &[&[u8]]) -> Vec<JobOutcome> {
        let mut out = Vec::with_capacity(inputs.len());
        if self.dead {
            return out;
        }
        self.reply_offered = None;
        // As in run_job: with an arena, learn from the hello whether the
        // plugin maps it before any job is sent.
        if !self.greeted && self.conn.proc.arena().is_some() {
            self.greeted = true;
            if let Err(v) = self.handshake() {
                self.dead = true;
                self.jobs += 1;
                let cpu_start = self.last_cpu.unwrap_or(0);
                out.push(self.outcome(v, Vec::new(), None, Instant::now(), cpu_start));
                return out;
            }
        }
        let first_id = self.next_id;
        for input in inputs {
            let Ok(len) = u32::try_from(input.len()) else {
                break;
            };
            let id = self.next_id;
            let arena_free = self.arena_on && self.reply_offered.is_none();
            if arena_free && matches!(self.send_in_arena(id, Payload::Bytes(input)), Ok(true)) {
                self.reply_offered = Some(id);
            } else {
                self.conn
                    .queue(&protocol::encode_header(Kind::Job, id, len));
                self.conn.queue(input);
            }
            self.next_id += 1;
        }
        let sent = (self.next_id - first_id) as usize;
        self.conn.denied.clear();
        self.conn.paths.clear();
        self.conn.path_calls.clear();
        self.late_frame_for = None;
        // Each job has one CPU budget, counted from the CPU clock's last
        // reading (`mark`). The clock is read after an answer that took 1 ms
        // or more; the jobs answered faster in between used at most their
        // wall time per thread, and what they used counts against the next
        // slow job's budget (stricter, never looser). A fast window thus
        // costs no /proc read per job, and a slow job late in a window gets
        // no more than its own budget.
        let cpu_start = self
            .last_cpu
            .unwrap_or_else(|| self.conn.proc.cpu_ms().unwrap_or(0));
        let budget = self.cpu_limit.as_millis() as u64;
        let mut mark = cpu_start;
        let mut measured: Vec<Option<u64>> = Vec::with_capacity(sent);
        for (k, id) in (first_id..first_id + sent as u64).enumerate() {
            let started = Instant::now();
            let last = k + 1 == sent;
            let mut held = OutputBuf::new(self.conn.attach.spill.clone());
            let result = self.await_answer(id, started, (mark, budget), last, &mut held);
            let cpu = if started.elapsed() >= Duration::from_millis(1) {
                self.conn.proc.cpu_ms().map(|now| {
                    let used = now.saturating_sub(mark);
                    mark = now;
                    used
                })
            } else {
                None
            };
            let (verdict, saved, output) = match result {
                Ok(()) => (Verdict::Ok, held.take_saved(), held.into_bytes()),
                Err(v) => {
                    self.dead = !matches!(v, Verdict::PluginError(_));
                    // A second answer to an earlier job of this window: that
                    // job broke the protocol; this one and the rest were not
                    // run by an honest worker and get no outcome (a pool
                    // resends them to a fresh worker).
                    if let Some(late) = self.late_frame_for.take() {
                        if let Some(o) = late
                            .checked_sub(first_id)
                            .and_then(|i| out.get_mut(i as usize))
                        {
                            o.verdict = Verdict::ProtocolError(
                                "the plugin sent bytes after its answer".into(),
                            );
                            o.output.clear();
                            o.saved = None;
                            break;
                        }
                    }
                    (v, None, Vec::new())
                }
            };
            self.jobs += 1;
            measured.push(cpu);
            out.push(JobOutcome {
                verdict,
                output,
                saved,
                wall: started.elapsed(),
                cpu_ms: 0,
                max_rss_kib: 0,
                pid: self.conn.proc.pid,
                denied: std::mem::take(&mut self.conn.denied),
                paths: std::mem::take(&mut self.conn.paths),
                stderr_tail: String::new(),
                notes: Vec::new(),
            });
            if self.dead {
                break;
            }
        }
        // Jobs whose CPU was measured keep it; the rest share what is left.
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
        if sent < inputs.len() && !self.dead {
            out.push(JobOutcome::failed(Verdict::InputError(
                "input larger than 4 GiB".into(),
            )));
        }
        out
    }

    /// Reads the answer to `id` into `sink`, a part at a time, within the
    /// output limit over the whole job; with `last`, nothing may follow it.
    /// `cpu` is (CPU clock at the start, budget in ms since then).
    pub(super) fn await_answer(
        &mut self,
        id: u64,
        started: Instant,
        cpu: (u64, u64),
        last: bool,
        sink: &mut dyn OutputSink,
    ) -> Result<(), Verdict> {
        let mut started = started;
        if self.jobs == 0 && !self.greeted {
            self.greeted = true;
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
                    self.late_frame_for = Some(frame.id);
                }
                return Err(Verdict::ProtocolError(format!(
                    "the plugin answered job {} which was never sent (expected {id})",
                    frame.id
                )));
            }
            match frame.kind {
                Kind::Part | Kind::Done => {
                    let done = frame.kind == Kind::Done;
                    if let Err(v) = self.take_part(id, frame, &mut written, sink) {
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
        id: u64,
        frame: Frame,
        written: &mut u64,
        sink: &mut dyn OutputSink,
    ) -> Result<(), Verdict> {
        let in_arena = frame.flags & protocol::FLAG_ARENA != 0;
        let (offset, len) = if in_arena {
            self.arena_slice(id, &frame.payload)?
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
    pub(super) fn arena_slice(&self, id: u64, payload: &[u8]) -> Result<(usize, usize), Verdict> {
        let violation = |what: String| Verdict::ProtocolError(what);
        let arena = match self.conn.proc.arena() {
            Some(arena) if self.reply_offered == Some(id) => arena,
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
