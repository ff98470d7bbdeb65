//! Starting a worker, its handshake, and the ways to run jobs on it: one
//! job is a window of one (`run_window`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Attach, Conn, Job, JobOutcome, Life, Payload, Stop, Worker, HELLO_TIMEOUT};
use crate::input::Input;
use crate::policy::Policy;
use crate::protocol::{self, Kind};
use crate::sandbox::{Enforce, Mode, Process, Sandbox, SandboxError};
use crate::sink::OutputSink;
use crate::verdict::Verdict;

impl Worker {
    /// Spawns a worker and queues the hello; the reply is checked with the first job.
    /// A filter sandbox is [`SandboxError::WrongMode`].
    pub fn start(sandbox: &Sandbox) -> Result<Worker, SandboxError> {
        sandbox.expect_mode(Mode::Worker, "Worker::start")?;
        let proc = sandbox.spawn()?;
        Ok(Worker::with_process(proc, &sandbox.policy, sandbox.enforce))
    }

    /// A worker on a process already running (a sandbox's, or a unit
    /// test's stand-in for a plugin), with the host's hello queued.
    pub(crate) fn with_process(proc: Process, policy: &Arc<Policy>, enforce: Enforce) -> Worker {
        let limits = &policy.limits;
        let mut conn = Conn::new(proc, policy, enforce, true);
        let mut hello = Vec::new();
        match conn.proc.arena() {
            Some(arena) => {
                let payload = protocol::host_hello_arena(limits.max_frame, arena.region() as u64);
                protocol::encode_frame(&mut hello, Kind::Hello, 0, &payload);
            }
            None => {
                let payload = protocol::host_hello(limits.max_frame);
                protocol::encode_frame(&mut hello, Kind::Hello, 0, &payload);
            }
        }
        conn.queue(&hello);
        Worker {
            conn,
            next_id: 1,
            jobs: 0,
            arena_inputs: 0,
            arena_parts: 0,
            cpu_limit: limits.cpu,
            wall_limit: limits.wall,
            output_limit: limits.output,
            max_frame: limits.max_frame,
            life: Life::Fresh,
            peak_rss_kib: 0,
            last_cpu: None,
        }
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
        self.life != Life::Dead
    }

    /// The running process.
    pub fn process(&self) -> &Process {
        &self.conn.proc
    }

    /// Waits for the plugin's hello (at most 10 s): `Fresh` becomes
    /// `Greeted`, or `Dead` with the verdict.
    pub(super) fn handshake(&mut self) -> Result<(), Verdict> {
        debug_assert_eq!(self.life, Life::Fresh);
        match self.read_hello() {
            Ok(life) => {
                self.life = life;
                Ok(())
            }
            Err(v) => {
                self.life = Life::Dead;
                Err(v)
            }
        }
    }

    fn read_hello(&mut self) -> Result<Life, Verdict> {
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
            Ok(h) if h.version == protocol::VERSION => Ok(Life::Greeted {
                // A plugin that claims the arena without having one is
                // simply not offered any.
                arena: frame.flags & protocol::FLAG_ARENA != 0 && self.conn.proc.arena().is_some(),
                parts: frame.flags & protocol::FLAG_INPUT_PARTS != 0,
            }),
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
        self.run_one(Payload::Bytes(input), None)
    }

    /// Runs one job whose input may be a file, sent in bounded chunks
    /// (through the arena when it fits, else through the pipe). With a
    /// `sink`, the output goes to it part by part as it arrives (the
    /// outcome's `output` stays empty; its `saved` is what the sink saved).
    pub fn run_input(&mut self, input: &Input, sink: Option<&mut dyn OutputSink>) -> JobOutcome {
        self.run_one(input.into(), sink)
    }

    /// Runs several jobs pipelined: every input is written at once and the
    /// answers are read as they come, so the plugin never waits for the
    /// host between jobs. Each job has the full wall budget, counted from
    /// the previous answer, and one CPU budget (`run_window`).
    /// Returns one outcome per input in order, stopping after the first
    /// job that retires the worker; the caller runs the rest on a fresh
    /// worker. The arena has one input and one output region, which only
    /// one job in flight can own: the first input of at least
    /// [`crate::arena::THRESHOLD`] bytes gets it, every other job goes
    /// through the pipes.
    pub fn run_batch(&mut self, inputs: &[&[u8]]) -> Vec<JobOutcome> {
        let jobs = inputs
            .iter()
            .map(|i| Job {
                input: Payload::Bytes(i),
                sink: None,
            })
            .collect();
        self.run_window(jobs, true)
    }

    /// A window of one.
    fn run_one(&mut self, input: Payload, sink: Option<&mut dyn OutputSink>) -> JobOutcome {
        self.run_window(vec![Job { input, sink }], false)
            .pop()
            .unwrap_or_else(|| {
                JobOutcome::failed(Verdict::ProtocolError(
                    "the worker is no longer running".into(),
                ))
            })
    }
}
