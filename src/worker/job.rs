//! Starting a worker and running one job on it (the handshake, the
//! arena offer, the answer).

use super::*;

impl Worker {
    /// Spawns a worker and queues the hello; the reply is checked with the first job.
    /// A filter sandbox is [`SandboxError::WrongMode`].
    pub fn start(sandbox: &Sandbox) -> Result<Worker, SandboxError> {
        sandbox.expect_mode(Mode::Worker, "Worker::start")?;
        let proc = sandbox.spawn()?;
        let limits = &sandbox.policy.limits;
        let mut conn = Conn::new(proc, sandbox, true);
        let mut hello = Vec::new();
        match conn.proc.arena() {
            Some(arena) => protocol::encode_frame(
                &mut hello,
                Kind::Hello,
                0,
                &protocol::host_hello_arena(limits.max_frame, arena.region() as u64),
            ),
            None => protocol::encode_frame(
                &mut hello,
                Kind::Hello,
                0,
                &protocol::host_hello(limits.max_frame),
            ),
        }
        conn.queue(&hello);
        Ok(Worker {
            conn,
            next_id: 1,
            jobs: 0,
            arena_inputs: 0,
            arena_parts: 0,
            cpu_limit: limits.cpu,
            wall_limit: limits.wall,
            output_limit: limits.output,
            max_frame: limits.max_frame,
            dead: false,
            greeted: false,
            peak_rss_kib: 0,
            last_cpu: None,
            arena_on: false,
            parts_on: false,
            reply_offered: None,
            late_frame_for: None,
        })
    }

    /// The plugin's pid.
    pub fn pid(&self) -> i32 {
        self.conn.proc.pid
    }

    /// Attaches a cancel flag and a stderr relay to this worker's jobs.
    pub fn attach(&mut self, attach: Attach) {
        self.conn.attach = attach;
    }

    /// False once a job killed or lost the worker.
    pub fn is_alive(&self) -> bool {
        !self.dead
    }

    /// The running process.
    pub fn process(&self) -> &Process {
        &self.conn.proc
    }

    /// Waits for the plugin's hello (at most 10 s).
    pub(super) fn handshake(&mut self) -> Result<(), Verdict> {
        let deadline =
            Instant::now() + HELLO_TIMEOUT.min(self.wall_limit.max(Duration::from_secs(1)));
        let stop = self.conn.pump(deadline, None, |c| !c.frames.is_empty());
        if stop != Stop::Ready {
            return Err(match self.conn.verdict_for(stop, self.cpu_limit) {
                Verdict::Timeout(_) => Verdict::ProtocolError("the plugin never said hello".into()),
                v => v,
            });
        }
        let frame = self.conn.frames.pop_front().expect("ready");
        if frame.kind != Kind::Hello {
            return Err(Verdict::ProtocolError(format!(
                "expected hello, the plugin sent a {} frame",
                frame.kind
            )));
        }
        match protocol::PluginHello::parse(&frame.payload) {
            Ok(h) if h.version == protocol::VERSION => {
                // A plugin that claims the arena without having one is
                // simply not offered any.
                self.arena_on =
                    frame.flags & protocol::FLAG_ARENA != 0 && self.conn.proc.arena().is_some();
                self.parts_on = frame.flags & protocol::FLAG_INPUT_PARTS != 0;
                Ok(())
            }
            Ok(h) => Err(Verdict::ProtocolError(format!(
                "the plugin speaks protocol version {}, this host speaks {}",
                h.version,
                protocol::VERSION
            ))),
            Err(e) => Err(Verdict::ProtocolError(e.to_string())),
        }
    }

    /// Runs one job to its verdict.
    pub fn run_job(&mut self, input: &[u8]) -> JobOutcome {
        self.job(Payload::Bytes(input), None)
    }

    /// Runs one job whose input may be a file, sent in bounded chunks
    /// (through the arena when it fits, else through the pipe). With a
    /// `sink`, the output goes to it part by part as it arrives (the
    /// outcome's `output` stays empty; its `saved` is what the sink saved).
    pub fn run_input(&mut self, input: &Input, sink: Option<&mut dyn OutputSink>) -> JobOutcome {
        self.job(input.into(), sink)
    }

    pub(super) fn job(&mut self, input: Payload, sink: Option<&mut dyn OutputSink>) -> JobOutcome {
        let mut started = Instant::now();
        if self.dead {
            return JobOutcome::failed(Verdict::ProtocolError(
                "the worker is no longer running".into(),
            ));
        }
        // The CPU clock as the previous job left it: one /proc read per job.
        let cpu_start = self
            .last_cpu
            .unwrap_or_else(|| self.conn.proc.cpu_ms().unwrap_or(0));
        // With an arena, the plugin's hello says whether it maps it, and
        // for an input larger than one frame whether it takes parts: wait
        // for it before the first job (one round trip, once per worker).
        let one_frame = input.len() <= u64::from(self.max_frame);
        if !self.greeted && (self.conn.proc.arena().is_some() || !one_frame) {
            self.greeted = true;
            if let Err(v) = self.handshake() {
                self.dead = true;
                self.jobs += 1;
                return self.outcome(v, Vec::new(), None, started, cpu_start);
            }
            // Start-up is not the job's time.
            started = Instant::now();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.reply_offered = self.arena_on.then_some(id);
        let in_arena = match self.send_in_arena(id, input) {
            Ok(sent) => sent,
            Err(e) => return JobOutcome::failed(Verdict::InputError(e.to_string())),
        };
        match u32::try_from(input.len()) {
            _ if in_arena => {}
            Ok(len) if len <= self.max_frame => {
                let flags = if self.arena_on {
                    protocol::FLAG_REPLY_IN_ARENA
                } else {
                    0
                };
                self.conn
                    .queue(&protocol::encode_header_flags(Kind::Job, flags, id, len));
                self.conn.queue_input(input);
            }
            _ if self.parts_on => {
                // Through the pipe, a part at a time: no reply in the arena.
                self.reply_offered = None;
                self.conn.queue_parts(id, input);
            }
            _ => {
                return JobOutcome::failed(Verdict::InputError(format!(
                    "input too large for one frame ({} bytes, limit {}), and the plugin does not take inputs in parts",
                    input.len(),
                    self.max_frame
                )))
            }
        }
        self.conn.denied.clear();
        self.conn.paths.clear();
        self.conn.path_calls.clear();
        let budget = self.cpu_limit.as_millis() as u64;
        let mut held = OutputBuf::new(self.conn.attach.spill.clone());
        let sink = sink.unwrap_or(&mut held);
        if let Some(cancel) = &self.conn.attach.cancel {
            sink.set_cancel(cancel.clone());
        }
        let (verdict, saved) = match self.await_answer(id, started, (cpu_start, budget), true, sink)
        {
            Ok(()) => (Verdict::Ok, sink.take_saved()),
            Err(v) => {
                self.dead = !matches!(v, Verdict::PluginError(_));
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
        JobOutcome {
            notes,
            ..self.outcome(verdict, output, saved, started, cpu_start)
        }
    }

    /// Writes a bulk input straight into the arena's input region (a file
    /// in bounded chunks) and queues the job frame naming it; false when
    /// the plugin has no arena, the input is small (the pipes are as fast)
    /// or larger than the region.
    pub(super) fn send_in_arena(&mut self, id: u64, input: Payload) -> Result<bool, InputError> {
        let Some(arena) = self.conn.proc.arena().filter(|_| self.arena_on) else {
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
}
