//! Command-line parsing and the commands. Exit status (README.md): 0 every
//! input ok; 1 some input got another verdict; 2 usage or configuration
//! error; 3 internal error; 130/143 interrupted.

mod audit;
mod call;
mod commit;
mod doctor;
mod generate;
mod learn;
mod policy;
mod run;
mod sanitize;
mod shard;
mod stages;
mod version;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::spawn::ForkServer;

pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_VERDICT: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_INTERNAL: u8 = 3;

#[derive(Parser)]
#[command(
    name = "plugwarden",
    version,
    about = "Run untrusted plugins safely on Linux",
    after_long_help = "Exit status: 0 every input ok; 1 some input got another verdict; 2 usage or configuration error; 3 internal error.\n\nDocumentation: README.md, SECURITY.md and docs/ in the source, /usr/share/doc/plugwarden in the Debian package."
)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one input (stdin) through a plugin; output on stdout when ok, the verdict on stderr.
    Call(call::CallArgs),
    /// Run every INPUT (files, or directories walked recursively) through a plugin.
    Run(run::RunArgs),
    /// Audit logs: `verify` checks a hash chain; `merge` and `status` for the logs of a sharded job.
    Audit(audit::AuditArgs),
    /// Policies: list the built-in ones, check files, explain what one allows.
    Policy(policy::PolicyArgs),
    /// What this kernel and this process can enforce, wall by wall.
    Doctor(doctor::DoctorArgs),
    /// Run a plugin on sample inputs while observing; print the smallest policy they pass under.
    Learn(learn::LearnArgs),
    /// Sanitize hostile PDFs and images: pixels-only safe files out.
    Sanitize(sanitize::SanitizeArgs),
    /// The version, git commit, target, and the Landlock and seccomp features this build uses.
    Version(version::VersionArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(generate::CompletionsArgs),
    /// Print the manual page (roff), or write a page per command into a directory.
    Man(generate::ManArgs),
}

/// Flags shared by every command that starts a sandbox.
#[derive(Args, Clone, Debug)]
pub(crate) struct SandboxArgs {
    /// The plugin: an executable, or a directory with plugin.toml.
    #[arg(long, value_name = "EXE|DIR")]
    pub plugin: PathBuf,
    /// worker (speaks the plugwarden protocol) or filter (stdin → stdout, one process per input).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// A built-in policy name (strict, default, image, pdf, office, ocr) or a policy file.
    #[arg(long, value_name = "NAME|FILE")]
    pub policy: Option<String>,
    /// Wall-clock limit per input, e.g. 10s or 500ms (overrides the policy).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Memory limit, e.g. 256MiB (overrides the policy).
    #[arg(long, value_parser = parse_size)]
    pub memory: Option<u64>,
    /// An argument for the plugin (repeat for several).
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// Jobs per worker (set by `run --batch`; sizes the worker's lifetime CPU limit).
    #[arg(skip)]
    pub batch: Option<u64>,
    /// `log` reports what the policy would deny instead of enforcing it.
    #[arg(long, value_enum, default_value = "policy")]
    pub enforce: EnforceArg,
    #[command(flatten)]
    pub env: EnvArgs,
    #[command(flatten)]
    pub grants: GrantArgs,
}

/// Grants beyond the policy on the command line (over the policy's and the
/// manifest's; see docs/POLICY.md, "Grants").
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct GrantArgs {
    /// Let the plugin read PATH (a directory: everything beneath it).
    #[arg(long = "ro", value_name = "PATH")]
    pub read: Vec<PathBuf>,
    /// Let the plugin read and write PATH (create, remove, rename beneath it).
    #[arg(long = "rw", value_name = "PATH")]
    pub write: Vec<PathBuf>,
    /// Let the plugin read and execute PATH (a program brings its ELF interpreter and libraries).
    #[arg(long = "exec", value_name = "PATH")]
    pub exec: Vec<PathBuf>,
    /// A private writable /tmp of SIZE, e.g. 64MiB (0: none), charged to the memory limit.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub tmp: Option<u64>,
    /// The plugin's working directory (a granted directory, or /tmp).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Add a syscall or @group to the policy's allowlist (repeat for several).
    #[arg(long = "allow", value_name = "NAME")]
    pub allow: Vec<String>,
}

impl GrantArgs {
    /// Applies these grants (after `manifest`'s) to `policy`: the working
    /// directory, and a note on stderr for each overlap or risky grant.
    pub fn apply(
        &self,
        manifest: &plugwarden::policy::grants::Extra,
        policy: &mut plugwarden::policy::Policy,
    ) -> Result<Option<PathBuf>, Usage> {
        let (cwd, notes) = self.applied(manifest, policy)?;
        for n in notes {
            eprintln!("plugwarden: note: {n}");
        }
        Ok(cwd)
    }

    /// [`GrantArgs::apply`], with the notes returned instead of printed.
    pub fn applied(
        &self,
        manifest: &plugwarden::policy::grants::Extra,
        policy: &mut plugwarden::policy::Policy,
    ) -> Result<(Option<PathBuf>, Vec<String>), Usage> {
        let flags = plugwarden::policy::grants::Extra {
            origin: plugwarden::policy::grants::Origin::Flags,
            base: std::env::current_dir()
                .map_err(|e| Usage(format!("cannot read the current directory: {e}")))?,
            read: self.read.clone(),
            write: self.write.clone(),
            exec: self.exec.clone(),
            tmp: self.tmp,
            cwd: self.cwd.clone(),
            allow: self.allow.clone(),
        };
        let mut cwd: Option<PathBuf> = None;
        let mut all_notes = Vec::new();
        for extra in [manifest, &flags] {
            let (dir, notes) = extra.apply(policy)?;
            all_notes.extend(notes);
            if let (Some(old), Some(new)) = (&cwd, &dir) {
                if old != new {
                    all_notes.push(format!(
                        "--cwd {} wins over the manifest's cwd {}",
                        new.display(),
                        old.display()
                    ));
                }
            }
            cwd = dir.or(cwd);
        }
        Ok((cwd, all_notes))
    }
}

/// The plugin's environment on the command line (over the default, the
/// policy's and the manifest's; see docs/POLICY.md, "[environment]").
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct EnvArgs {
    /// Set a variable in the plugin's environment (repeat for several).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Pass a variable of this environment to the plugin, when set here.
    #[arg(long = "env-pass", value_name = "KEY")]
    pub pass: Vec<String>,
}

impl EnvArgs {
    /// The variables, in order (`--env-pass` ones first, `--env` last).
    pub fn resolve(&self) -> Result<Vec<(String, String)>, Usage> {
        let bad = |flag: &str, arg: &str, why: String| Usage(format!("{flag} {arg}: {why}"));
        let mut out = Vec::new();
        for key in &self.pass {
            if let Some(why) = plugwarden::policy::env_key_problem(key) {
                return Err(bad("--env-pass", key, why));
            }
            if let Ok(v) = std::env::var(key) {
                out.push((key.clone(), v));
            }
        }
        for kv in &self.set {
            let Some((key, value)) = kv.split_once('=') else {
                return Err(bad(
                    "--env",
                    kv,
                    "write KEY=VALUE (or --env-pass KEY to pass this environment's)".into(),
                ));
            };
            if let Some(why) = plugwarden::policy::env_key_problem(key) {
                return Err(bad("--env", kv, why));
            }
            out.push((key.to_string(), value.to_string()));
        }
        Ok(out)
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum ModeArg {
    Worker,
    Filter,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum EnforceArg {
    Policy,
    Log,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    plugwarden::policy::parse_duration(s).map_err(|e| e.to_string())
}

fn parse_size(s: &str) -> Result<u64, String> {
    plugwarden::policy::parse_size(s).map_err(|e| e.to_string())
}

/// A configuration problem: exit status 2 with one sentence.
#[derive(Debug)]
pub(crate) struct Usage(pub String);

impl<E: std::fmt::Display> From<E> for Usage {
    fn from(e: E) -> Self {
        Usage(e.to_string())
    }
}

impl SandboxArgs {
    /// Locates the plugin, loads the policy with the flags' overrides, starts
    /// the fork server and prepares the sandbox.
    pub fn build(&self) -> Result<Sandbox, Usage> {
        let located = plugwarden::manifest::locate(&self.plugin)?;
        let mode = match self.mode {
            Some(ModeArg::Worker) => Mode::Worker,
            Some(ModeArg::Filter) => Mode::Filter,
            None => located.mode.unwrap_or_default(),
        };
        let policy_name = self
            .policy
            .clone()
            .or(located.policy)
            .unwrap_or_else(|| "default".into());
        let mut policy = plugwarden::policy::load(&policy_name)?;
        if let Some(t) = self.timeout {
            policy.limits.wall = t;
        }
        if let Some(m) = self.memory {
            policy.limits.memory = m;
        }
        if let Some(b) = self.batch {
            policy.worker.batch = b;
        }
        let cwd = self.grants.apply(&located.grants, &mut policy)?;
        let mut args = located.args;
        args.extend(self.args.iter().cloned());
        let fs = start_fork_server()?;
        let enforce = match self.enforce {
            EnforceArg::Policy => Enforce::Policy,
            EnforceArg::Log => Enforce::Log,
        };
        let mut env = located.env;
        env.extend(self.env.resolve()?);
        let plugin = PluginSpec {
            exe: located.exe,
            args,
            mode,
            env,
            cwd,
        };
        Ok(Sandbox::new(fs, plugin, Arc::new(policy), enforce)?)
    }
}

pub(crate) fn start_fork_server() -> Result<Arc<ForkServer>, Usage> {
    let exe = plugwarden::spawn::default_exe()?;
    Ok(Arc::new(ForkServer::start(&exe)?))
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .init();
}

/// Colour only on a terminal, and never when `NO_COLOR` is set to
/// anything but the empty string (no-color.org).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The clap command with the build information as `--version`; the parser,
/// the completions and the manual pages all start from it.
pub(crate) fn command() -> clap::Command {
    Cli::command().long_version(version::long_version())
}

/// The `plugwarden` command, arguments from the process: parses them,
/// runs the command and gives the exit status. It is its own fork server
/// ([`crate::bootstrap`] is its first step).
pub fn main() -> ExitCode {
    crate::bootstrap();
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Call(a) => call::call(a),
        Command::Run(a) => run::run(a),
        Command::Sanitize(a) => sanitize::sanitize(a),
        Command::Audit(a) => audit::audit(a),
        Command::Policy(a) => policy::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Learn(a) => learn::run(a),
        Command::Version(a) => version::run(a),
        Command::Completions(a) => generate::completions(a),
        Command::Man(a) => generate::man(a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Usage(msg)) => {
            eprintln!("plugwarden: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
