//! The embedding API of a sandbox: [`Sandbox::builder`], [`Sandbox::run`]
//! and the read-only view of what a sandbox was built from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::policy::{Policy, PolicyError};
use crate::sandbox::{Enforce, Mode, PluginSpec, Sandbox, SandboxError};
use crate::spawn::{ForkServer, ForkServerError, Walls};
use crate::worker::{JobOutcome, Worker};
use crate::Verdict;

/// Why [`SandboxBuilder::build`] gave no sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The policy could not be found or read.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// No fork server (see [`crate::bootstrap`]).
    #[error(transparent)]
    ForkServer(#[from] ForkServerError),
    /// The sandbox could not be made.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The sandbox would be weaker than the policy asks on this machine
    /// (each entry names a wall that is missing, e.g. no identity change
    /// when not root); [`SandboxBuilder::allow_weaker`] accepts that.
    #[error("the sandbox would be weaker than its policy asks: {}; call allow_weaker() to accept", .0.join("; "))]
    Weaker(Vec<String>),
}

/// The worker [`Sandbox::run`] keeps between calls.
#[derive(Default)]
pub(crate) struct Runner(std::sync::Mutex<Option<Worker>>);

impl Runner {
    /// Shuts the kept worker down, if there is one.
    pub(crate) fn shutdown(&self) {
        let worker = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(worker) = worker {
            worker.shutdown();
        }
    }
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

/// Where the policy comes from.
#[derive(Debug)]
enum PolicySource {
    Named(String),
    Given(Box<Policy>),
}

/// Builds a [`Sandbox`]; from [`Sandbox::builder`].
///
/// ```no_run
/// # fn main() -> Result<(), plugwarden::BuildError> {
/// plugwarden::bootstrap();
/// let sandbox = plugwarden::Sandbox::builder("/opt/plugins/thumbnailer")
///     .policy("strict")
///     .timeout(std::time::Duration::from_secs(5))
///     .memory(256 << 20)
///     .arg("--quality=80")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until build()"]
pub struct SandboxBuilder {
    plugin: PluginSpec,
    policy: PolicySource,
    timeout: Option<Duration>,
    memory: Option<u64>,
    enforce: Enforce,
    fork_server: Option<Arc<ForkServer>>,
    allow_weaker: bool,
}

impl Sandbox {
    /// A builder for a sandbox of the plugin at `exe` (an absolute path),
    /// in worker mode under the `default` policy until told otherwise.
    pub fn builder(exe: impl Into<PathBuf>) -> SandboxBuilder {
        SandboxBuilder {
            plugin: PluginSpec {
                exe: exe.into(),
                args: Vec::new(),
                mode: Mode::Worker,
                env: Vec::new(),
                cwd: None,
            },
            policy: PolicySource::Named("default".into()),
            timeout: None,
            memory: None,
            enforce: Enforce::Policy,
            fork_server: None,
            allow_weaker: false,
        }
    }

    /// Runs one input and gives its outcome, whatever the mode: a filter
    /// runs a fresh process for it; a worker's process is kept for the
    /// next call (one call at a time: concurrent calls wait; use a
    /// [`crate::Pool`] for parallel work) and replaced after any verdict
    /// that may have corrupted it. Never panics: every failure is a
    /// verdict (`setup_error` when no process could be started).
    pub fn run(&self, input: &[u8]) -> JobOutcome {
        match self.plugin.mode {
            Mode::Filter => crate::worker::run_filter(self, input),
            Mode::Worker => {
                let mut runner = self.runner.0.lock().unwrap_or_else(|p| p.into_inner());
                let worker = match runner.take() {
                    Some(w) if w.is_alive() => w,
                    _ => match Worker::start(self) {
                        Ok(w) => w,
                        Err(e) => return JobOutcome::failed(Verdict::SetupError(e.to_string())),
                    },
                };
                let mut worker = worker;
                let outcome = worker.run_job(input);
                if worker.is_alive() && !outcome.verdict.taints_worker() {
                    *runner = Some(worker);
                }
                outcome
            }
        }
    }

    /// [`SandboxError::WrongMode`] unless the sandbox is of `mode`.
    pub(crate) fn expect_mode(&self, mode: Mode, what: &'static str) -> Result<(), SandboxError> {
        if self.plugin.mode == mode {
            return Ok(());
        }
        Err(SandboxError::WrongMode {
            path: self.plugin.exe.clone(),
            mode: self.plugin.mode,
            what,
        })
    }

    /// The plugin it runs.
    pub fn plugin(&self) -> &PluginSpec {
        &self.plugin
    }

    /// Worker or filter.
    pub fn mode(&self) -> Mode {
        self.plugin.mode
    }

    /// The policy it was compiled from.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// What to do with a denied syscall beyond the policy's choice.
    pub fn enforce(&self) -> Enforce {
        self.enforce
    }

    /// What this machine could not enforce, each named (empty: the full
    /// policy). A builder refuses a weakened sandbox unless
    /// [`SandboxBuilder::allow_weaker`].
    pub fn weakenings(&self) -> &[String] {
        &self.weakenings
    }

    /// The optional walls in force (cgroups, namespaces, Landlock ABI).
    pub fn walls(&self) -> &Walls {
        &self.walls
    }
}

impl SandboxBuilder {
    /// A built-in policy by name (`strict`, `default`, `image`, `pdf`,
    /// `office`, `ocr`) or a policy file by path.
    pub fn policy(mut self, name_or_path: impl Into<String>) -> Self {
        self.policy = PolicySource::Named(name_or_path.into());
        self
    }

    /// A policy resolved by the caller ([`crate::policy::load`],
    /// [`crate::policy::resolve`]).
    pub fn policy_value(mut self, policy: Policy) -> Self {
        self.policy = PolicySource::Given(Box::new(policy));
        self
    }

    /// The plugin speaks the plugwarden protocol and serves many jobs (the
    /// default).
    pub fn worker(mut self) -> Self {
        self.plugin.mode = Mode::Worker;
        self
    }

    /// The plugin is any program: input on stdin, output on stdout, one
    /// process per input.
    pub fn filter(mut self) -> Self {
        self.plugin.mode = Mode::Filter;
        self
    }

    /// Worker or filter.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.plugin.mode = mode;
        self
    }

    /// One more argument for the plugin.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.plugin.args.push(arg.into());
        self
    }

    /// More arguments for the plugin.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.plugin.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// A variable of the plugin's environment (over the policy's).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.plugin.env.push((key.into(), value.into()));
        self
    }

    /// The directory the plugin starts in (absolute, visible in the
    /// sandbox); `/` unless set.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.plugin.cwd = Some(dir.into());
        self
    }

    /// The wall-clock limit of one input, over the policy's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The memory limit in bytes, over the policy's.
    pub fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// Log (or observe) denied syscalls instead of enforcing them.
    pub fn enforce(mut self, enforce: Enforce) -> Self {
        self.enforce = enforce;
        self
    }

    /// The fork server to use (a `ForkServer` or an `Arc` of one); without
    /// it, [`ForkServer::shared`].
    pub fn fork_server(mut self, fs: impl Into<Arc<ForkServer>>) -> Self {
        self.fork_server = Some(fs.into());
        self
    }

    /// Accepts a sandbox weaker than the policy asks on this machine (the
    /// missing walls are in [`Sandbox::weakenings`]); without it,
    /// [`SandboxBuilder::build`] fails with [`BuildError::Weaker`].
    pub fn allow_weaker(mut self) -> Self {
        self.allow_weaker = true;
        self
    }

    /// Resolves the policy, compiles the profile in the fork server and
    /// checks the walls.
    pub fn build(self) -> Result<Sandbox, BuildError> {
        let mut policy = match self.policy {
            PolicySource::Named(name) => crate::policy::load(&name)?,
            PolicySource::Given(policy) => *policy,
        };
        if let Some(t) = self.timeout {
            policy.limits.wall = t;
        }
        if let Some(m) = self.memory {
            policy.limits.memory = m;
        }
        // Missing walls are weakenings the caller sees (and refuses
        // below unless it allowed them), not a refusal inside.
        policy.best_effort = true;
        let fs = match self.fork_server {
            Some(fs) => fs,
            None => ForkServer::shared()?,
        };
        let sandbox = Sandbox::new(fs, self.plugin, policy, self.enforce)?;
        if !self.allow_weaker && !sandbox.weakenings.is_empty() {
            return Err(BuildError::Weaker(sandbox.weakenings.clone()));
        }
        Ok(sandbox)
    }
}

impl Mode {
    /// `worker` or `filter`.
    pub fn word(self) -> &'static str {
        match self {
            Mode::Worker => "worker",
            Mode::Filter => "filter",
        }
    }

    pub(crate) fn other(self) -> Mode {
        match self {
            Mode::Worker => Mode::Filter,
            Mode::Filter => Mode::Worker,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn test_handles_are_send_and_sync() {
        send_sync::<Sandbox>();
        send_sync::<ForkServer>();
        send_sync::<crate::Verdict>();
        // One owner reads a pool's results; it may move between threads.
        send::<crate::Pool<u64>>();
        send::<crate::pool::Results<u64>>();
    }

    #[test]
    fn test_start_self_without_bootstrap_is_refused() {
        // The unit-test harness never called bootstrap().
        let err = ForkServer::start_self().unwrap_err();
        assert!(matches!(err, ForkServerError::NotBootstrapped), "{err}");
        assert!(err.to_string().contains("plugwarden::bootstrap()"));
    }
}
