//! A sandbox: one plugin under one policy, ready to spawn children.
//!
//! [`Sandbox::new`] turns a plugin and a resolved policy into a fork-server
//! profile: it finds what loading the executable needs (ELF interpreter,
//! libraries, script interpreters) for Landlock, compiles the seccomp
//! programs, fixes the rlimits and the identity. [`Sandbox::spawn`] then
//! starts a [`Process`] with fresh pipes and, for a worker, a shared-memory
//! arena as its fd 3 (the bulk path, [`crate::arena`]). A `Process` is
//! reaped when it is dropped, so there are no zombies by construction.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nix::fcntl::OFlag;

use crate::arena::{self, Arena};
use crate::landlock_rules::Grants;
use crate::policy::{groups::Arch, Policy};
use crate::spawn::{ExitInfo, ForkServer, ForkServerError, ProfileSpec};

/// How the host talks to the plugin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Speaks the plugwarden protocol; handles many jobs until recycled.
    #[default]
    Worker,
    /// Any program: input on stdin, output on stdout, one process per job.
    Filter,
}

/// What to do with a denied syscall, beyond the policy's own choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Enforce {
    /// As the policy says (`on_violation`).
    #[default]
    Policy,
    /// Report what would have been denied and let it proceed.
    Log,
    /// As `Log`, and read the paths the file syscalls name from the child
    /// (`plugwarden learn`, `observe`).
    Observe,
}

/// The plugin to run.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    /// Absolute path of the executable.
    pub exe: PathBuf,
    /// Its arguments (after its name).
    pub args: Vec<String>,
    /// Worker or filter.
    pub mode: Mode,
    /// Variables over the default environment and the policy's (from the
    /// manifest and the command line; later entries win).
    pub env: Vec<(String, String)>,
    /// The working directory the plugin starts in (absolute, visible in the
    /// sandbox); `None`: `/`.
    pub cwd: Option<PathBuf>,
}

/// Why a sandbox could not be made, or a child of it started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The plugin's executable cannot be read or loaded.
    #[error("plugin {path}: {source}")]
    Elf {
        /// The executable.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::elf::ElfError,
    },
    /// The policy's syscalls do not compile to a seccomp program.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// The fork server failed.
    #[error(transparent)]
    ForkServer(#[from] ForkServerError),
    /// A system call of the host's failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The policy needs walls this machine cannot raise (and is not
    /// `best_effort`).
    #[error("policy {policy} needs walls this machine cannot raise: {missing}; run where they are available (as root, on a newer kernel: see `plugwarden doctor`), or set best_effort = true in the policy to run weakened")]
    Refused {
        /// The policy's name.
        policy: String,
        /// The walls missing, described.
        missing: String,
    },
    /// The kernel is too old for plugwarden.
    #[error(transparent)]
    Kernel(#[from] crate::kernel::KernelError),
    /// The policy's `[landlock] min_abi` is above the kernel's.
    #[error("policy {policy} needs Landlock ABI {wanted} (Linux {}.{}) by its [landlock] min_abi; this kernel offers ABI {offered}: run on a newer kernel or lower min_abi", crate::kernel::landlock_since(*.wanted).0, crate::kernel::landlock_since(*.wanted).1)]
    LandlockFloor {
        /// The policy's name.
        policy: String,
        /// Its `min_abi`.
        wanted: u8,
        /// The kernel's ABI.
        offered: u8,
    },
    /// Log or observe mode needs a newer kernel.
    #[error("log-only mode needs {} (Linux 5.5+), which this kernel lacks: run with the policy's own enforcement", crate::kernel::Feature::NotifContinue.name())]
    NoLogOnly,
    /// A script plugin under a policy that does not allow `execve`.
    #[error("plugin {path} is a script, which the kernel starts through execve, and policy {policy} does not allow execve: allow it (or run the interpreter as the plugin)")]
    ScriptNeedsExecve {
        /// The script.
        path: PathBuf,
        /// The policy's name.
        policy: String,
    },
    /// A worker-mode call on a filter sandbox, or the other way round.
    #[error("sandbox of {} is a {} sandbox: {what} needs a {} one", .path.display(), .mode.word(), .mode.other().word())]
    WrongMode {
        /// The plugin.
        path: PathBuf,
        /// The sandbox's mode.
        mode: Mode,
        /// What was asked.
        what: &'static str,
    },
}

/// Size asked for the plugin's stdin and stdout pipes.
const PIPE_SIZE: i32 = 1 << 20;
/// Arena regions are whole pages of at most this size.
const PAGE: usize = 4096;

/// One plugin under one policy, compiled into a profile of a fork server:
/// ready to start sandboxed children. Build one with [`Sandbox::builder`];
/// run an input with [`Sandbox::run`], many with a [`crate::Pool`].
///
/// `Send + Sync`: share it between threads by reference (or in an `Arc`);
/// what it was built from is read-only ([`Sandbox::plugin`],
/// [`Sandbox::policy`], [`Sandbox::weakenings`], [`Sandbox::walls`]).
#[derive(Debug)]
pub struct Sandbox {
    /// The worker [`Sandbox::run`] reuses (worker mode); dropped first.
    pub(crate) runner: crate::builder::Runner,
    fs: Arc<ForkServer>,
    profile: u64,
    pub(crate) plugin: PluginSpec,
    pub(crate) policy: Arc<Policy>,
    pub(crate) enforce: Enforce,
    /// What this host could not enforce (e.g. no identity change when not root).
    pub(crate) weakenings: Vec<String>,
    /// The optional walls in force (cgroups, namespaces).
    pub(crate) walls: crate::spawn::Walls,
    /// What was prepared, to prepare it again on another fork server.
    spec: ProfileSpec,
}

impl Sandbox {
    /// Compiles `plugin` under `policy` into a profile of `fs`. The
    /// lower-level constructor: [`Sandbox::builder`] resolves the policy,
    /// shares a fork server and refuses a weakened sandbox unless told.
    pub fn new(
        fs: impl Into<Arc<ForkServer>>,
        plugin: PluginSpec,
        policy: impl Into<Arc<Policy>>,
        enforce: Enforce,
    ) -> Result<Sandbox, SandboxError> {
        let fs: Arc<ForkServer> = fs.into();
        let policy: Arc<Policy> = policy.into();
        let kernel = crate::kernel::kernel();
        kernel.check()?;
        if policy.landlock_min_abi > kernel.landlock_abi {
            return Err(SandboxError::LandlockFloor {
                policy: policy.name.clone(),
                wanted: policy.landlock_min_abi,
                offered: kernel.landlock_abi,
            });
        }
        if enforce != Enforce::Policy && !kernel.has(crate::kernel::Feature::NotifContinue) {
            return Err(SandboxError::NoLogOnly);
        }
        let deps =
            crate::elf::exec_dependencies(&plugin.exe).map_err(|source| SandboxError::Elf {
                path: plugin.exe.clone(),
                source,
            })?;
        let fsys = &policy.filesystem;
        let mut grants = Grants {
            exec: deps.exec.iter().chain(&fsys.exec).cloned().collect(),
            read: deps.read.iter().chain(&fsys.read).cloned().collect(),
            write: fsys.write.clone(),
            connect_tcp: policy.network.connect_tcp.clone(),
            bind_tcp: policy.network.bind_tcp.clone(),
        };
        // A program granted for exec brings what loading it needs, as the
        // plugin does (a file that is no program brings nothing).
        for extra in fsys.exec.iter().filter(|p| p.is_file()) {
            if let Ok(d) = crate::elf::exec_dependencies(extra) {
                grants.exec.extend(d.exec);
                grants.read.extend(d.read);
            }
        }
        for list in [&mut grants.exec, &mut grants.read] {
            let mut seen = std::collections::HashSet::new();
            list.retain(|p| seen.insert(p.clone()));
        }
        if deps.is_script && !policy.syscalls.allow.contains("execve") {
            return Err(SandboxError::ScriptNeedsExecve {
                path: plugin.exe.clone(),
                policy: policy.name.clone(),
            });
        }
        let rlimits = rlimits(&policy, plugin.mode);
        let exe_slot = (!deps.is_script && !policy.syscalls.allow.contains("execveat"))
            .then(|| exe_slot(fs.fd_ceiling(), &rlimits));
        let filter = crate::seccomp::compile(
            &policy.syscalls,
            policy.limits.processes,
            Arch::native(),
            exe_slot,
        )?;
        let pack =
            |p: &[seccompiler::sock_filter]| p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
        let is_root = nix::unistd::geteuid().is_root();
        let mut weakenings = Vec::new();
        if !is_root {
            weakenings.push("identity: not root, the plugin keeps the host's uid".to_string());
        }
        let name = plugin
            .exe
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let argv = std::iter::once(name)
            .chain(plugin.args.iter().cloned())
            .collect();
        let spec = ProfileSpec {
            exe: plugin.exe.clone(),
            exec_by_fd: !deps.is_script,
            exe_slot: exe_slot.map_or(-1, |s| s as i32),
            argv,
            env: environment(&policy, &plugin),
            rlimits,
            grants,
            identity: Some((policy.identity.uid, policy.identity.gid)),
            new_session: true,
            filter: pack(&filter),
            cgroup: crate::cgroup::Limits {
                memory: Some(policy.limits.memory),
                // Threads count as tasks too: with no processes allowed
                // (seccomp enforces that), leave room for a thread pool.
                pids: Some(if policy.limits.processes == 0 {
                    64
                } else {
                    policy.limits.processes + 1
                }),
            },
            namespaces: policy.namespaces.flags(),
            processes: policy.limits.processes,
            tmp: policy.filesystem.tmp,
            cwd: plugin.cwd.clone(),
            zygote: enforce == Enforce::Policy,
        };
        let (profile, mut walls) = fs.prepare(&spec)?;
        for gap in crate::landlock_rules::gaps(walls.landlock_abi, &cover(&policy, &walls)) {
            match gap.cover {
                Ok(_) => tracing::debug!("{}", gap.describe()),
                Err(_) => walls.missing.push(gap.describe()),
            }
        }
        if !policy.best_effort && !walls.missing.is_empty() {
            fs.release(profile);
            return Err(SandboxError::Refused {
                policy: policy.name.clone(),
                missing: walls.missing.join("; "),
            });
        }
        for m in &walls.missing {
            tracing::warn!(plugin = %plugin.exe.display(), "weaker sandbox: {m}");
        }
        weakenings.extend(walls.missing.iter().cloned());
        Ok(Sandbox {
            runner: Default::default(),
            fs,
            profile,
            plugin,
            policy,
            enforce,
            weakenings,
            walls,
            spec,
        })
    }

    /// The same sandbox on `fs`: the profile prepared there once more. The
    /// walls come from the same machine, so they are the same.
    pub fn replicate(&self, fs: impl Into<Arc<ForkServer>>) -> Result<Sandbox, SandboxError> {
        let fs: Arc<ForkServer> = fs.into();
        let (profile, walls) = fs.prepare(&self.spec)?;
        Ok(Sandbox {
            runner: Default::default(),
            fs,
            profile,
            plugin: self.plugin.clone(),
            policy: self.policy.clone(),
            enforce: self.enforce,
            weakenings: self.weakenings.clone(),
            walls,
            spec: self.spec.clone(),
        })
    }

    /// Starts one sandboxed child with fresh pipes, within the policy's
    /// wall limit.
    pub fn spawn(&self) -> Result<Process, SandboxError> {
        self.spawn_within(self.policy.limits.wall)
    }

    /// Starts one sandboxed child with fresh pipes: it is running, or the
    /// spawn has failed naming the stage, within `timeout`.
    pub fn spawn_within(&self, timeout: std::time::Duration) -> Result<Process, SandboxError> {
        let flags = OFlag::O_CLOEXEC;
        let (in_r, in_w) = nix::unistd::pipe2(flags).map_err(std::io::Error::from)?;
        let (out_r, out_w) = nix::unistd::pipe2(flags).map_err(std::io::Error::from)?;
        let (err_r, err_w) = nix::unistd::pipe2(flags).map_err(std::io::Error::from)?;
        let arena = self.new_arena();
        let spawned = self.fs.spawn(
            self.profile,
            [in_r.as_fd(), out_w.as_fd(), err_w.as_fd()],
            arena.as_ref().map(Arena::fd),
            timeout,
        )?;
        drop((in_r, out_w, err_w));
        for fd in [&in_w, &out_r, &err_r] {
            set_nonblocking(fd)?;
        }
        // 1 MiB pipes: a 64 KiB pipe makes bulk transfers across CPUs crawl
        // (a wake-up per 64 KiB). Best effort: the kernel may refuse (per-user
        // pipe limits), and then the default size still works.
        for fd in [&in_w, &out_r] {
            let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        }
        Ok(Process {
            pid: spawned.pid,
            leader: spawned.leader,
            pidfd: spawned.pidfd,
            plugin_pidfd: spawned.plugin_pidfd,
            listener: Some(spawned.listener),
            stdin: Some(in_w),
            stdout: Some(out_r),
            stderr: Some(err_r),
            exit: None,
            reaper: Reaper::ForkServer(self.fs.clone()),
            started: Instant::now(),
            stat_file: Default::default(),
            statm_file: Default::default(),
            arena,
        })
    }

    /// Size of each region of a worker's arena: the frame limit, at most a
    /// quarter of the memory limit (the SDK maps both regions, 2 × region,
    /// inside the plugin's address-space limit), whole pages; `None` for
    /// filters and when that is below [`arena::THRESHOLD`].
    pub fn arena_region(&self) -> Option<usize> {
        if self.plugin.mode != Mode::Worker {
            return None;
        }
        let limits = &self.policy.limits;
        let region = u64::from(limits.max_frame).min(limits.memory / 4);
        let region = usize::try_from(region).ok()? & !(PAGE - 1);
        (region >= arena::THRESHOLD).then_some(region)
    }

    /// A fresh arena for a worker; without one (filters, a tiny frame
    /// limit, or memfd refused) every job goes through the pipes.
    fn new_arena(&self) -> Option<Arena> {
        let region = self.arena_region()?;
        let seal = crate::kernel::kernel().has(crate::kernel::Feature::MfdNoexecSeal);
        Arena::create(region, seal)
            .inspect_err(|e| tracing::warn!("no shared-memory arena, bulk jobs use the pipes: {e}"))
            .ok()
    }

    /// The fork server its children come from.
    pub fn fork_server(&self) -> &Arc<ForkServer> {
        &self.fs
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The worker `run` kept ends before its profile does.
        self.runner.shutdown();
        self.fs.release(self.profile);
    }
}

/// The walls in force that can stand in for a Landlock right.
fn cover(policy: &Policy, walls: &crate::spawn::Walls) -> crate::landlock_rules::Cover {
    let ns = |flag: i32| walls.namespaces & flag as u64 != 0;
    let sys = &policy.syscalls;
    let socket = |families: &[u32]| {
        sys.allow.contains("socket")
            && (sys.socket_families.is_empty()
                || families.iter().any(|f| sys.socket_families.contains(f)))
    };
    crate::landlock_rules::Cover {
        net_ns: ns(libc::CLONE_NEWNET),
        pid_ns: ns(libc::CLONE_NEWPID),
        minimal_root: walls.minimal_root,
        tcp_grants: !policy.network.connect_tcp.is_empty() || !policy.network.bind_tcp.is_empty(),
        inet_sockets: socket(&[libc::AF_INET as u32, libc::AF_INET6 as u32]),
        unix_sockets: socket(&[libc::AF_UNIX as u32]),
    }
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// The plugin's environment: [`crate::policy::DEFAULT_ENV`], then the
/// policy's, then the plugin's own (manifest, command line), as
/// `KEY=VALUE` strings; nothing of the host's unless passed.
fn environment(policy: &Policy, plugin: &PluginSpec) -> Vec<String> {
    let mut env: std::collections::BTreeMap<String, String> = crate::policy::DEFAULT_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(policy.environment.resolve());
    env.extend(plugin.env.iter().cloned());
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The fd number the plugin is exec'd through when the policy does not
/// allow `execveat` (see `seccomp::rules`): at or above the plugin's
/// `RLIMIT_NOFILE`, so the plugin can never hold it, and at or above the
/// fork server's soft limit, so no fd of the fork server is there; below
/// the hard limit, so the road can reach it.
fn exe_slot(fd_ceiling: u64, rlimits: &[(u32, u64, u64)]) -> u32 {
    let host_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1 << 20, |(_, h)| h);
    let nofile = rlimits
        .iter()
        .find(|r| r.0 == libc::RLIMIT_NOFILE)
        .map_or(0, |r| r.2);
    let slot = fd_ceiling.max(nofile).min(host_hard.saturating_sub(1));
    u32::try_from(slot)
        .unwrap_or(i32::MAX as u32)
        .min(i32::MAX as u32)
}

/// The rlimits of a profile: hard = soft for each, so the plugin can only
/// lower them, and never above what this process may grant. The policy
/// sets address space and data (`limits.memory`), CPU, open files, file
/// size, core (0) and locked memory (0); every other limit but
/// `RLIMIT_NPROC` is pinned at this process's soft value.
fn rlimits(policy: &Policy, mode: Mode) -> Vec<(u32, u64, u64)> {
    let l = &policy.limits;
    let cpu = l.cpu.as_secs().max(1);
    // A worker lives for many jobs: the per-job CPU budget is checked by the
    // host; the rlimit is the backstop for the worker's whole life.
    let cpu_total = match mode {
        Mode::Filter => cpu,
        Mode::Worker => cpu
            .saturating_mul(policy.worker.batch.max(1))
            .saturating_add(1),
    };
    let current = |res: u32| {
        let mut lim = libc::rlimit64 {
            rlim_cur: u64::MAX,
            rlim_max: u64::MAX,
        };
        // SAFETY: getrlimit64 writes one struct on our stack.
        unsafe { libc::getrlimit64(res as _, &mut lim) };
        (lim.rlim_cur, lim.rlim_max)
    };
    let set = [
        (libc::RLIMIT_AS, l.memory),
        (libc::RLIMIT_DATA, l.memory),
        (libc::RLIMIT_CPU, cpu_total),
        // One below the hard limit at most: the road needs a number at or
        // above the plugin's limit to exec through (`exe_slot`).
        (
            libc::RLIMIT_NOFILE,
            l.open_files
                .min(current(libc::RLIMIT_NOFILE).1.saturating_sub(1)),
        ),
        (libc::RLIMIT_FSIZE, l.file_size),
        (libc::RLIMIT_CORE, 0),
        (libc::RLIMIT_MEMLOCK, 0),
    ];
    let pinned = [
        libc::RLIMIT_STACK,
        libc::RLIMIT_RSS,
        libc::RLIMIT_LOCKS,
        libc::RLIMIT_SIGPENDING,
        libc::RLIMIT_MSGQUEUE,
        libc::RLIMIT_NICE,
        libc::RLIMIT_RTPRIO,
        libc::RLIMIT_RTTIME,
    ]
    .map(|res| (res, current(res).0));
    set.into_iter()
        .chain(pinned)
        .map(|(res, value)| {
            let v = value.min(current(res).1);
            (res, v, v)
        })
        .collect()
}

/// A running sandbox. Dropping it kills and reaps it.
#[derive(Debug)]
pub struct Process {
    /// The plugin's pid (its /proc files).
    pub pid: i32,
    /// What the fork server reaps: the sandbox's init, or the plugin.
    leader: i32,
    /// The leader's pidfd: SIGKILL through it ends the whole sandbox.
    pidfd: OwnedFd,
    /// The plugin's own pidfd (the same process as `pidfd` without an
    /// init): the host watches it for the plugin's exit, so that its `Wait`
    /// overlaps the init's report and exit.
    plugin_pidfd: OwnedFd,
    listener: Option<OwnedFd>,
    /// The plugin's stdin (the host's end; non-blocking).
    pub stdin: Option<OwnedFd>,
    /// The plugin's stdout (the host's end; non-blocking).
    pub stdout: Option<OwnedFd>,
    /// The plugin's stderr (the host's end; non-blocking).
    pub stderr: Option<OwnedFd>,
    exit: Option<ExitInfo>,
    reaper: Reaper,
    /// When it was started.
    pub started: Instant,
    stat_file: std::cell::OnceCell<Option<std::fs::File>>,
    statm_file: std::cell::OnceCell<Option<std::fs::File>>,
    /// The shared-memory arena (workers only), the plugin's fd 3; unmapped
    /// when the process is dropped, after it was killed and reaped.
    arena: Option<Arena>,
}

/// Who reaps a process once its pidfd is readable.
#[derive(Debug)]
enum Reaper {
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
            Reaper::Host => fake::reap(self.leader),
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

#[cfg(test)]
pub(crate) mod fake;
