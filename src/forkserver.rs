//! The fork server: a small single-threaded helper that forks sandboxed
//! children on the host's behalf and is their subreaper.
//!
//! The host may have many threads; forking it would be slow (its whole
//! address space) and unsafe (only raw syscalls after fork). So at start-up
//! the host re-executes the plugwarden binary in a hidden mode
//! ([`SERVE_ARG`]) with one end of a `SOCK_SEQPACKET` socketpair. Over it
//! the host sends JSON requests (trusted: both ends are plugwarden) and
//! file descriptors (`SCM_RIGHTS`): the plugin's stdio pipe ends in, and
//! its pidfds and seccomp listener back. The fork server prepares each
//! profile once (Landlock ruleset, BPF programs, exec strings), then every
//! spawn clones a road runner ([`crate::child::enter`]): the sandbox's init
//! (with a PID namespace), or a launcher.
//!
//! It reaps every child and orphan outside the sandboxes (it is a
//! subreaper; inside, each init reaps) and keeps the exit status of each
//! sandbox's plugin until the host asks. When the host goes away, the
//! socket reads EOF: the fork server kills every sandbox and exits, and the
//! road runners' parent-death signal does the same for any it missed.

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::child::{self, Stage};
use crate::landlock_rules::{self, Grants};

/// argv[1] that turns the plugwarden binary into a fork server.
pub const SERVE_ARG: &str = "__plugwarden-fork-server";
/// The fd on which the fork server finds its socket.
const SERVE_FD: RawFd = 3;
/// Largest request or reply.
const MAX_MSG: usize = 1 << 20;

/// Everything needed to spawn children of one kind, sent once.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileSpec {
    /// Absolute path of the executable.
    pub exe: PathBuf,
    /// Exec through an fd opened now (ELF binaries) rather than by path (scripts).
    pub exec_by_fd: bool,
    /// Move the exec fd to this number before exec (see
    /// `child::Plan::exe_slot`), or -1.
    pub exe_slot: i32,
    pub argv: Vec<String>,
    /// `KEY=VALUE` strings.
    pub env: Vec<String>,
    /// (resource, soft, hard).
    pub rlimits: Vec<(u32, u64, u64)>,
    pub grants: Grants,
    /// (uid, gid) to drop to; only honoured when the fork server is root.
    pub identity: Option<(u32, u32)>,
    pub new_session: bool,
    /// The BPF program as (code, jt, jf, k).
    pub filter: Vec<(u16, u8, u8, u32)>,
    /// Limits of each worker's cgroup, where the fork server can make one.
    pub cgroup: crate::cgroup::Limits,
    /// Namespaces to enter: `CLONE_NEWNET` joins the fork server's shared
    /// empty network namespace; `CLONE_NEWIPC`/`CLONE_NEWUTS` are unshared.
    pub namespaces: u64,
    /// The policy's `limits.processes` (0: seccomp allows no new process).
    pub processes: u64,
    /// Size of the private writable /tmp (0: /tmp is not writable).
    pub tmp: u64,
    /// The plugin's working directory (`None`: `/`).
    pub cwd: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Prepare {
        spec: Box<ProfileSpec>,
    },
    /// Carries three fds: the child's stdin, stdout, stderr (and the arena).
    Spawn {
        profile: u64,
        /// The spawn ends within this many milliseconds: a running plugin,
        /// or a setup failure naming the stage.
        timeout_ms: u64,
    },
    Wait {
        pid: i32,
    },
    Release {
        profile: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Prepared {
        profile: u64,
        walls: Walls,
    },
    /// Carries the leader's pidfd, the seccomp listener and the plugin's
    /// pidfd.
    Spawned {
        pid: i32,
        leader: i32,
    },
    SetupFailed {
        stage: u32,
        errno: i32,
    },
    Exited(ExitInfo),
    Error {
        message: String,
    },
}

/// Which optional walls the fork server could raise for a profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Walls {
    /// The cgroup backend, described ("none (...)" when absent).
    pub cgroups: String,
    pub cgroups_active: bool,
    /// Namespaces the children will enter (CLONE_* flags).
    pub namespaces: u64,
    /// The children see only the minimal root (`CLONE_NEWNS` alone may be
    /// just the private mount namespace of the sandbox's own /proc).
    pub minimal_root: bool,
    /// The Landlock ABI of the ruleset (0: none).
    pub landlock_abi: u8,
    /// What was asked for and cannot be had here.
    pub missing: Vec<String>,
}

/// How a child ended, with its resource usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Raw wait status.
    pub status: i32,
    pub utime_us: u64,
    pub stime_us: u64,
    pub maxrss_kib: u64,
    /// From the worker's cgroup, when it had one.
    #[serde(default)]
    pub cgroup: Option<crate::cgroup::Usage>,
}

impl ExitInfo {
    pub fn signal(&self) -> Option<i32> {
        libc::WIFSIGNALED(self.status).then(|| libc::WTERMSIG(self.status))
    }
    /// Killed by a signal that dumped core.
    pub fn core_dumped(&self) -> bool {
        libc::WIFSIGNALED(self.status) && libc::WCOREDUMP(self.status)
    }
    pub fn code(&self) -> Option<i32> {
        libc::WIFEXITED(self.status).then(|| libc::WEXITSTATUS(self.status))
    }
    pub fn cpu_ms(&self) -> u64 {
        (self.utime_us + self.stime_us) / 1000
    }
}

/// A sandbox the fork server started.
#[derive(Debug)]
pub struct Spawned {
    /// The plugin's pid (in the host's PID namespace): its /proc files.
    pub pid: i32,
    /// What the fork server reaps and [`ForkServer::wait`] takes: the
    /// sandbox's init, or the plugin itself without a PID namespace.
    pub leader: i32,
    /// The leader's pidfd: readable once the sandbox has ended; SIGKILL
    /// through it ends the whole sandbox.
    pub pidfd: OwnedFd,
    pub listener: OwnedFd,
    /// The plugin's own pidfd: a SIGKILL through it stops the plugin at
    /// once (killing an init ends its namespace a moment later).
    pub plugin_pidfd: OwnedFd,
}

#[derive(Debug, thiserror::Error)]
pub enum ForkServerError {
    #[error("cannot start the fork server {exe}: {source}")]
    Start {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("fork server connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("fork server protocol error: {0}")]
    Protocol(String),
    #[error("sandbox setup failed at {}: {}", .stage.name(), errno_name(*.errno))]
    Setup { stage: Stage, errno: i32 },
    #[error("{0}")]
    Remote(String),
}

fn send(fd: BorrowedFd, msg: &impl Serialize, fds: &[RawFd]) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let iov = [IoSlice::new(&bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one message and up to 4 fds; `Ok(None)` at EOF.
fn recv<T: for<'de> Deserialize<'de>>(
    fd: BorrowedFd,
    buf: &mut [u8],
) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let (n, fds) = loop {
        let mut iov = [IoSliceMut::new(buf)];
        match recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these fds for us.
                        fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let msg = serde_json::from_slice(&buf[..n]).map_err(io::Error::other)?;
    Ok(Some((msg, fds)))
}

/// The host's handle on its fork server. Cheap to share between threads:
/// one request at a time goes over the socket.
#[derive(Debug)]
pub struct ForkServer {
    conn: Mutex<Conn>,
    process: Mutex<std::process::Child>,
    exe: PathBuf,
    /// The fork server's soft `RLIMIT_NOFILE` (ours when we started it):
    /// every fd it holds is below it.
    fd_ceiling: u64,
}

#[derive(Debug)]
struct Conn {
    sock: OwnedFd,
    buf: Vec<u8>,
}

impl ForkServer {
    /// Starts `exe` (the plugwarden binary, or any program that calls
    /// [`serve_if_requested`] first thing in `main`) as the fork server.
    pub fn start(exe: &Path) -> Result<ForkServer, ForkServerError> {
        let start_err = |source| ForkServerError::Start {
            exe: exe.to_path_buf(),
            source,
        };
        let (host, server) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| start_err(e.into()))?;
        let server_raw = server.as_raw_fd();
        let mut cmd = Command::new(exe);
        // Its own process group: a Ctrl-C at the terminal is the host's to
        // handle; the fork server ends when the host's socket closes.
        cmd.arg(SERVE_ARG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .env_clear()
            .process_group(0);
        let switches = crate::kernel::Kernel::switch_names();
        for key in std::iter::once("RUST_LOG").chain(switches) {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        // SAFETY: the closure only calls dup2, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(server_raw, SERVE_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = cmd.spawn().map_err(start_err)?;
        drop(server);
        Ok(ForkServer {
            conn: Mutex::new(Conn {
                sock: host,
                buf: vec![0; MAX_MSG],
            }),
            process: Mutex::new(process),
            exe: exe.to_path_buf(),
            fd_ceiling: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(1024, |(soft, _)| soft),
        })
    }

    /// Every fd of the fork server is below this number (its soft
    /// `RLIMIT_NOFILE`, which it never changes).
    pub fn fd_ceiling(&self) -> u64 {
        self.fd_ceiling
    }

    /// Starts another fork server from the same executable (a pool gives
    /// each slot its own, so that slots spawn in parallel).
    pub fn start_another(&self) -> Result<ForkServer, ForkServerError> {
        ForkServer::start(&self.exe)
    }

    fn call(&self, req: &Request, fds: &[RawFd]) -> Result<(Reply, Vec<OwnedFd>), ForkServerError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let Conn { sock, buf } = &mut *conn;
        send(sock.as_fd(), req, fds)?;
        match recv::<Reply>(sock.as_fd(), buf)? {
            Some((Reply::Error { message }, _)) => Err(ForkServerError::Remote(message)),
            Some(r) => Ok(r),
            None => Err(ForkServerError::Protocol("the fork server exited".into())),
        }
    }

    /// Prepares a profile; returns its id for [`ForkServer::spawn`] and
    /// the walls this machine allows for it.
    pub fn prepare(&self, spec: &ProfileSpec) -> Result<(u64, Walls), ForkServerError> {
        match self.call(
            &Request::Prepare {
                spec: Box::new(spec.clone()),
            },
            &[],
        )? {
            (Reply::Prepared { profile, walls }, _) => Ok((profile, walls)),
            (r, _) => Err(ForkServerError::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// Starts one sandbox of `profile` with the given stdio and, when
    /// given, `arena` as its fd 3; it is running or has failed within
    /// `timeout`.
    pub fn spawn(
        &self,
        profile: u64,
        stdio: [BorrowedFd; 3],
        arena: Option<BorrowedFd>,
        timeout: Duration,
    ) -> Result<Spawned, ForkServerError> {
        let raw: Vec<RawFd> = stdio
            .iter()
            .chain(arena.as_ref())
            .map(|f| f.as_raw_fd())
            .collect();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        match self.call(
            &Request::Spawn {
                profile,
                timeout_ms,
            },
            &raw,
        )? {
            (Reply::Spawned { pid, leader }, fds) => {
                let mut fds = fds.into_iter();
                match (fds.next(), fds.next(), fds.next()) {
                    (Some(pidfd), Some(listener), Some(plugin_pidfd)) => Ok(Spawned {
                        pid,
                        leader,
                        pidfd,
                        listener,
                        plugin_pidfd,
                    }),
                    _ => Err(ForkServerError::Protocol("spawn reply without fds".into())),
                }
            }
            (Reply::SetupFailed { stage, errno }, _) => Err(ForkServerError::Setup {
                stage: Stage::from_u32(stage).unwrap_or(Stage::Exec),
                errno,
            }),
            (r, _) => Err(ForkServerError::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// Reaps the sandbox led by `pid` (call once its pidfd is readable)
    /// and returns how its plugin ended.
    pub fn wait(&self, pid: i32) -> Result<ExitInfo, ForkServerError> {
        match self.call(&Request::Wait { pid }, &[])? {
            (Reply::Exited(info), _) => Ok(info),
            (r, _) => Err(ForkServerError::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    pub fn release(&self, profile: u64) {
        let _ = self.call(&Request::Release { profile }, &[]);
    }

    /// The fork server's pid.
    pub fn pid(&self) -> u32 {
        self.process.lock().unwrap_or_else(|p| p.into_inner()).id()
    }
}

impl Drop for ForkServer {
    fn drop(&mut self) {
        // Closing our end makes the server kill its children and exit.
        let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = nix::sys::socket::shutdown(conn.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        let process = self.process.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = process.wait();
    }
}

/// Call first thing in `main` of a program used as its own fork server:
/// if this process was started as one, serve and exit.
pub fn serve_if_requested() {
    if std::env::args_os().nth(1).is_some_and(|a| a == SERVE_ARG) {
        // A Ctrl-C is the host's to handle (it ends the jobs and then us,
        // through the socket): the host need not ignore SIGINT while it
        // starts us, and its own handler can be in place from the start.
        // Each road runner puts the disposition back (it is in
        // `ignored_signals`).
        use nix::sys::signal::{signal, SigHandler, Signal};
        // SAFETY: SIG_IGN installs no handler code; we are single-threaded.
        let _ = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) };
        // SAFETY: fd 3 was set up by ForkServer::start; nothing else owns it.
        let sock = unsafe { OwnedFd::from_raw_fd(SERVE_FD) };
        let code = match Server::new(sock).and_then(|mut s| s.run()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("plugwarden fork server: {e}");
                3
            }
        };
        std::process::exit(code);
    }
}

/// A profile ready to fork: everything the child needs, allocated now.
struct Prepared {
    landlock: ProfileLandlock,
    filter: Vec<seccompiler::sock_filter>,
    exe_fd: Option<OwnedFd>,
    exe_slot: i32,
    path: CString,
    _strings: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    rlimits: Vec<(u32, u64, u64)>,
    identity: Option<(u32, u32)>,
    new_session: bool,
    cgroup: crate::cgroup::Limits,
    unshare: u64,
    join_net: bool,
    pidns: bool,
    /// No minimal root, but a PID namespace: the sandbox's own /proc.
    own_proc: bool,
    root: Option<child::RootPlan>,
    /// Owns the fd in `root.template`.
    _root_template: Option<OwnedFd>,
    userns: Option<child::UsernsPlan>,
    cwd: Option<CString>,
    walls: Walls,
}

/// The Landlock rules of a profile.
enum ProfileLandlock {
    /// One ruleset every sandbox restricts itself with; `None` without
    /// Landlock (a named weakening, see `landlock_rules::gaps`).
    Shared(Option<OwnedFd>),
    /// The raw rules (and the fds they hold) each sandbox builds its own
    /// ruleset from, adding its own /proc (see `child::Landlock::Own`).
    Own {
        rules: child::OwnRuleset,
        /// Owns the fds in `rules`.
        _fds: Vec<OwnedFd>,
    },
}

/// A sandbox the fork server started and has not reaped yet.
struct Live {
    /// The pidfd of what we reap: the init, or the plugin without a PID
    /// namespace (the final kill goes through it).
    pidfd: OwnedFd,
    group: Option<crate::cgroup::Group>,
    /// With an init: its report socket (the plugin's exit status comes
    /// over it) and the plugin's pidfd (the kernel's own record of that
    /// status, Linux 6.15+).
    init: Option<(OwnedFd, OwnedFd)>,
}

/// How a spawn request ended.
enum SpawnEnd {
    Started(Spawned),
    Failed(Stage, i32),
    /// The host closed its socket meanwhile: shut down.
    HostGone,
}

struct Server {
    sock: OwnedFd,
    sigchld: nix::sys::signalfd::SignalFd,
    profiles: HashMap<u64, Prepared>,
    next_profile: u64,
    /// Live sandboxes by leader pid.
    live: HashMap<i32, Live>,
    cgroups: crate::cgroup::Backend,
    /// An empty network namespace shared by every worker (lo down).
    netns: Option<OwnedFd>,
    /// An empty directory each child mounts its minimal root on.
    root_dir: Option<PathBuf>,
    /// Not root: whether children can get their walls from a user
    /// namespace instead (`Err` says why not).
    userns: Result<(), String>,
    spawned: u64,
    /// Groups made ahead, while idle, for the next spawn of each limits.
    ready_groups: Vec<(crate::cgroup::Limits, crate::cgroup::Group)>,
    /// Whether to make groups ahead (off after a failure, until a spawn
    /// makes one).
    make_ahead: bool,
    /// The stack each road runner runs on (a launcher in our memory, an
    /// init in its own copy of it).
    child_stack: ChildStack,
    /// The stack each plugin process runs on until its exec (in the road
    /// runner's memory).
    plugin_stack: ChildStack,
    /// The init's own seccomp program.
    init_filter: Vec<seccompiler::sock_filter>,
    /// The host closed its socket during a spawn.
    host_gone: bool,
    /// See `child::Plan::last_cap`.
    last_cap: u32,
    /// Dispositions each child resets (see `child::Plan::ignored_signals`).
    ignored_signals: Vec<i32>,
    /// Groups of reaped workers, removed while idle.
    dead_groups: Vec<crate::cgroup::Group>,
    /// Workers reaped before the host asked.
    exited: HashMap<i32, ExitInfo>,
    is_root: bool,
    me: libc::pid_t,
}

impl Server {
    fn new(sock: OwnedFd) -> io::Result<Server> {
        use nix::sys::signal::{SigSet, Signal};
        nix::sys::prctl::set_child_subreaper(true)?;
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block()?;
        let sigchld = nix::sys::signalfd::SignalFd::with_flags(
            &mask,
            nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
        )?;
        let me = std::process::id() as libc::pid_t;
        let cgroups = crate::cgroup::Backend::detect(&format!("plugwarden-{me}"));
        let is_root = nix::unistd::geteuid().is_root();
        let netns = if is_root { empty_netns() } else { None };
        let userns = if is_root {
            Err("running as root".to_string())
        } else {
            crate::kernel::userns_available()
        };
        let root_dir = if is_root || userns.is_ok() {
            let dir = std::env::temp_dir().join(format!("plugwarden-root-{me}"));
            std::fs::create_dir_all(&dir).ok().map(|()| dir)
        } else {
            None
        };
        Ok(Server {
            child_stack: ChildStack::new(256 << 10)?,
            plugin_stack: ChildStack::new(64 << 10)?,
            init_filter: init_filter()?,
            host_gone: false,
            ignored_signals: ignored_signals(),
            last_cap: crate::kernel::last_cap(),
            make_ahead: cgroups.is_active(),
            sock,
            sigchld,
            profiles: HashMap::new(),
            next_profile: 1,
            live: HashMap::new(),
            exited: HashMap::new(),
            is_root,
            me,
            cgroups,
            netns,
            root_dir,
            userns,
            spawned: 0,
            ready_groups: Vec::new(),
            dead_groups: Vec::new(),
        })
    }

    /// Serves until the host goes away (or its socket fails), then kills
    /// every sandbox and removes every cgroup, whatever ended the loop.
    fn run(&mut self) -> io::Result<()> {
        let result = self.serve();
        self.shutdown();
        result
    }

    fn serve(&mut self) -> io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut buf = vec![0u8; MAX_MSG];
        loop {
            let (sock_ready, sig_ready) = {
                let mut fds = [
                    PollFd::new(self.sock.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.sigchld.as_fd(), PollFlags::POLLIN),
                ];
                // Cgroup housekeeping waits until no request does.
                let chore = self.chore();
                let timeout = if chore.is_some() {
                    PollTimeout::ZERO
                } else {
                    PollTimeout::NONE
                };
                match poll(&mut fds, timeout) {
                    Ok(0) => {
                        if let Some(chore) = chore {
                            self.do_chore(chore);
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), ready(&fds[1]))
            };
            if sig_ready {
                while let Ok(Some(_)) = self.sigchld.read_signal() {}
                self.reap_all();
            }
            if !sock_ready {
                continue;
            }
            let Some((req, fds)) = recv::<Request>(self.sock.as_fd(), &mut buf)? else {
                return Ok(());
            };
            let (reply, out_fds) = self.handle(req, fds);
            if self.host_gone {
                return Ok(());
            }
            let raw: Vec<RawFd> = out_fds.iter().map(|f| f.as_raw_fd()).collect();
            if let Err(e) = send(self.sock.as_fd(), &reply, &raw) {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e);
            }
        }
    }

    fn handle(&mut self, req: Request, fds: Vec<OwnedFd>) -> (Reply, Vec<OwnedFd>) {
        let error = |message: String| (Reply::Error { message }, Vec::new());
        match req {
            Request::Prepare { spec } => match self.prepare(&spec) {
                Ok(p) => {
                    let id = self.next_profile;
                    self.next_profile += 1;
                    let walls = p.walls.clone();
                    self.profiles.insert(id, p);
                    (Reply::Prepared { profile: id, walls }, Vec::new())
                }
                Err(e) => error(e),
            },
            Request::Spawn {
                profile,
                timeout_ms,
            } => {
                if !(3..=4).contains(&fds.len()) {
                    return error("spawn needs three fds (stdio) and an optional arena".into());
                }
                match self.spawn(profile, fds, Duration::from_millis(timeout_ms)) {
                    Ok(SpawnEnd::Started(s)) => (
                        Reply::Spawned {
                            pid: s.pid,
                            leader: s.leader,
                        },
                        vec![s.pidfd, s.listener, s.plugin_pidfd],
                    ),
                    Ok(SpawnEnd::Failed(stage, errno)) => (
                        Reply::SetupFailed {
                            stage: stage as u32,
                            errno,
                        },
                        Vec::new(),
                    ),
                    Ok(SpawnEnd::HostGone) => {
                        self.host_gone = true;
                        error("the host went away".into())
                    }
                    Err(e) => error(e),
                }
            }
            Request::Wait { pid } => match self.wait(pid) {
                Some(info) => (Reply::Exited(info), Vec::new()),
                None => error(format!("process {pid} is not a child of this fork server")),
            },
            Request::Release { profile } => {
                self.profiles.remove(&profile);
                (
                    Reply::Prepared {
                        profile,
                        walls: Walls::default(),
                    },
                    Vec::new(),
                )
            }
        }
    }

    fn prepare(&self, spec: &ProfileSpec) -> Result<Prepared, String> {
        let kernel = crate::kernel::kernel();
        let exe_fd = if spec.exec_by_fd {
            let fd = nix::fcntl::open(
                &spec.exe,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| format!("cannot open {}: {e}", spec.exe.display()))?;
            Some(fd)
        } else {
            None
        };
        let cstr = |s: &[u8]| {
            CString::new(s).map_err(|_| "argument or environment contains a NUL byte".to_string())
        };
        let path = cstr(spec.exe.as_os_str().as_bytes())?;
        let argv_s: Vec<CString> = spec
            .argv
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let env_s: Vec<CString> = spec
            .env
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain([std::ptr::null()])
                .collect::<Vec<_>>()
        };
        let (argv, envp) = (ptrs(&argv_s), ptrs(&env_s));
        let mut walls = Walls {
            cgroups: self.cgroups.describe(),
            cgroups_active: self.cgroups.is_active(),
            landlock_abi: kernel.landlock_abi,
            ..Walls::default()
        };
        let mut rlimits = spec.rlimits.clone();
        if !self.cgroups.has_memory() {
            walls.missing.push(format!(
                "memory: no memory cgroup ({}): RLIMIT_AS bounds the address space, and the verdict is memory only when the plugin reports the failed allocation",
                self.cgroups.describe()
            ));
        } else if let Some(mem) = spec.cgroup.memory {
            // The memory cgroup is the real limit and names an OOM kill; the
            // address-space and data rlimits stay as a looser backstop
            // (still hard = soft).
            for r in &mut rlimits {
                if r.0 == libc::RLIMIT_AS || r.0 == libc::RLIMIT_DATA {
                    let mut lim = libc::rlimit64 {
                        rlim_cur: u64::MAX,
                        rlim_max: u64::MAX,
                    };
                    // SAFETY: getrlimit64 writes one struct on our stack.
                    unsafe { libc::getrlimit64(r.0 as _, &mut lim) };
                    let loose = mem
                        .saturating_mul(2)
                        .max(mem.saturating_add(1 << 30))
                        .min(lim.rlim_max)
                        .max(r.1);
                    *r = (r.0, loose, loose);
                }
            }
        }
        let wanted_ns = spec.namespaces;
        let mut unshare = 0;
        let mut join_net = false;
        let userns = !self.is_root && self.userns.is_ok() && wanted_ns != 0;
        if self.is_root {
            unshare = wanted_ns & (libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) as u64;
            join_net = wanted_ns & libc::CLONE_NEWNET as u64 != 0 && self.netns.is_some();
        } else if userns {
            // No shared namespace to join without privilege: a fresh one each.
            unshare =
                wanted_ns & (libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWNET) as u64;
        } else if let Err(why) = &self.userns {
            walls.missing.push(format!(
                "user namespaces unavailable ({why}): no namespaces and no minimal root; \
                 no_new_privs, Landlock, seccomp and rlimits still apply"
            ));
        }
        let pidns = (self.is_root || userns) && wanted_ns & libc::CLONE_NEWPID as u64 != 0;
        let mut cgroup = spec.cgroup;
        if pidns {
            // The init counts as a task of the sandbox too.
            cgroup.pids = cgroup.pids.map(|n| n.saturating_add(1));
        }
        self.process_limit(spec, userns, cgroup.pids, &mut rlimits, &mut walls.missing);
        if !self.cgroups.is_active() && !pidns && spec.processes > 0 {
            walls.missing.push(
                "tree kill: no cgroup and no PID namespace: a process that left the worker's session may outlive it".into(),
            );
        }
        let minimal_root = wanted_ns & libc::CLONE_NEWNS as u64 != 0 && self.root_dir.is_some();
        // With a PID namespace the sandbox always has its own /proc (in the
        // minimal root, or in a private mount namespace without one): a
        // grant under /proc is a grant on that procfs, never on the host's.
        let own_proc = pidns && !minimal_root;
        // Without its own PID namespace a procfs would show the host's
        // processes: grants under /proc are then withheld.
        let granted_proc = landlock_rules::proc_access(&spec.grants, kernel.landlock());
        let proc_access = if pidns { granted_proc } else { 0 };
        if granted_proc != 0 && !pidns && wanted_ns & libc::CLONE_NEWPID as u64 != 0 {
            walls.missing.push(
                "pid namespace: the policy's grant of /proc is withheld (without a PID \
                 namespace of its own the plugin's /proc would show the host's processes)"
                    .into(),
            );
        }
        // The private /tmp exists only in a minimal root, and is writable
        // only through a rule each sandbox adds for its own tmpfs.
        let tmp_access = if spec.tmp > 0 && minimal_root {
            landlock_rules::tmp_access(kernel.landlock())
        } else {
            0
        };
        if spec.tmp > 0 && !minimal_root {
            walls.missing.push(
                "private /tmp: no minimal root (mount namespace), so no /tmp of its own: the plugin cannot write /tmp".into(),
            );
        }
        let mut grants = spec.grants.clone();
        for list in [&mut grants.read, &mut grants.write, &mut grants.exec] {
            list.retain(|p| !p.starts_with("/proc"));
        }
        // Built (and its hard requirements checked) even when each sandbox
        // builds its own from the raw rules.
        let ruleset = match landlock_rules::build(&grants, kernel.landlock())
            .map_err(|e| e.to_string())?
        {
            Some(rs) => Some(
                Option::<OwnedFd>::from(rs).ok_or("landlock ruleset has no fd on this kernel")?,
            ),
            None => None,
        };
        // Both are 0 without Landlock (then there is no raw form).
        let raw = (proc_access != 0 || tmp_access != 0)
            .then(|| landlock_rules::raw(&grants, kernel.landlock()))
            .flatten();
        let landlock = if let Some(raw) = raw {
            let mut keep: Vec<RawFd> = raw.paths.iter().map(|(fd, _)| fd.as_raw_fd()).collect();
            keep.sort_unstable();
            let own = child::OwnRuleset {
                attr: raw.attr,
                paths: raw
                    .paths
                    .iter()
                    .map(|(fd, a)| (fd.as_raw_fd(), *a))
                    .collect(),
                ports: raw.ports,
                proc_access,
                tmp_access,
                keep,
            };
            ProfileLandlock::Own {
                rules: own,
                _fds: raw.paths.into_iter().map(|(fd, _)| fd).collect(),
            }
        } else {
            ProfileLandlock::Shared(ruleset)
        };
        let mut root = match (&self.root_dir, minimal_root) {
            (Some(dir), true) => Some(root_plan(dir, &grants, pidns, spec.tmp)?),
            _ => None,
        };
        // As root, every child of the profile joins a copy of one prepared
        // root (a child in its own user namespace could not join it).
        let template = root
            .as_ref()
            .filter(|_| self.is_root)
            .and_then(|r| root_template(r, &grants));
        if let (Some(r), Some(t)) = (&mut root, &template) {
            r.template = t.as_raw_fd();
        }
        walls.minimal_root = root.is_some();
        walls.namespaces = unshare
            | if join_net {
                libc::CLONE_NEWNET as u64
            } else {
                0
            }
            | if pidns { libc::CLONE_NEWPID as u64 } else { 0 }
            | if root.is_some() || own_proc {
                libc::CLONE_NEWNS as u64
            } else {
                0
            }
            | if userns {
                libc::CLONE_NEWUSER as u64
            } else {
                0
            };
        let filter = spec
            .filter
            .iter()
            .map(|&(code, jt, jf, k)| seccompiler::sock_filter { code, jt, jf, k })
            .collect();
        let exe_slot = if exe_fd.is_some() { spec.exe_slot } else { -1 };
        Ok(Prepared {
            landlock,
            filter,
            exe_fd,
            exe_slot,
            path,
            _strings: argv_s.into_iter().chain(env_s).collect(),
            argv,
            envp,
            rlimits,
            identity: if self.is_root { spec.identity } else { None },
            new_session: spec.new_session,
            cgroup,
            unshare,
            join_net,
            pidns,
            own_proc,
            root,
            _root_template: template,
            userns: userns.then(crate::kernel::userns_plan),
            cwd: spec
                .cwd
                .as_ref()
                .map(|d| cstr(d.as_os_str().as_bytes()))
                .transpose()?,
            walls,
        })
    }

    /// Holds `limits.processes` for a profile: the pids cgroup, else (not
    /// root, in the plugin's own user namespace, Linux 5.14+) RLIMIT_NPROC,
    /// which the kernel counts per user in each user namespace, so that it
    /// counts only the worker's own tasks. As root the plugin's uid is
    /// shared with other workers: no such rlimit. `tasks` is the sandbox's
    /// pids limit, the init included (the init is a task of the plugin's
    /// uid in that user namespace too).
    fn process_limit(
        &self,
        spec: &ProfileSpec,
        userns: bool,
        tasks: Option<u64>,
        rlimits: &mut Vec<(u32, u64, u64)>,
        missing: &mut Vec<String>,
    ) {
        use crate::kernel::Feature;
        if self.cgroups.has_pids() {
            return;
        }
        let tasks = tasks.unwrap_or(u64::MAX);
        if userns && crate::kernel::kernel().has(Feature::NprocPerUserns) {
            let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
                .map_or(u64::MAX, |(_, h)| h);
            let n = tasks.min(hard);
            rlimits.push((libc::RLIMIT_NPROC, n, n));
            return;
        }
        if spec.processes > 0 {
            let why = if userns {
                Feature::NprocPerUserns.without()
            } else {
                "no user namespace to count the plugin's processes in"
            };
            missing.push(format!(
                "process count: no pids cgroup ({}); {why}: limits.processes = {} is not enforced",
                self.cgroups.describe(),
                spec.processes
            ));
        }
    }

    /// Starts one sandbox: clones its road runner (the init with a PID
    /// namespace, else a launcher), moves it into its cgroup, says go and
    /// waits for its report, never past `timeout` and never past the
    /// host's going away.
    fn spawn(
        &mut self,
        profile: u64,
        stdio: Vec<OwnedFd>,
        timeout: Duration,
    ) -> Result<SpawnEnd, String> {
        let deadline = Instant::now() + timeout;
        if !self.profiles.contains_key(&profile) {
            return Err(format!("unknown profile {profile}"));
        }
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("socketpair: {e}"))?;
        let limits = self.profiles[&profile].cgroup;
        let group = if self.cgroups.is_active() {
            let ready = self.ready_groups.iter().position(|(l, _)| *l == limits);
            Some(match ready {
                Some(i) => self.ready_groups.swap_remove(i).1,
                None => {
                    let g = self.new_group(limits).map_err(|e| format!("cgroup: {e}"))?;
                    self.make_ahead = true;
                    g
                }
            })
        } else {
            None
        };
        let p = &self.profiles[&profile];
        let netns = if p.join_net {
            self.netns.as_ref().map_or(-1, |f| f.as_raw_fd())
        } else {
            -1
        };
        let init = p.pidns;
        let plan = child::Plan {
            netns,
            unshare: p.unshare as i32,
            hostname: (p.unshare & libc::CLONE_NEWUTS as u64 != 0).then_some(c"plugwarden"),
            root: p.root.as_ref(),
            own_proc: p.own_proc,
            cwd: p.cwd.as_deref(),
            userns: p.userns.as_ref(),
            stdio: [0, 1, 2, 3].map(|i| stdio.get(i).map_or(-1, |f| f.as_raw_fd())),
            report: theirs.as_raw_fd(),
            fd_limit: if crate::kernel::kernel().has(crate::kernel::Feature::CloseRange) {
                -1
            } else {
                highest_fd() + 1
            },
            new_session: p.new_session,
            rlimits: &p.rlimits,
            landlock: match &p.landlock {
                ProfileLandlock::Shared(fd) => {
                    child::Landlock::Profile(fd.as_ref().map_or(-1, |f| f.as_raw_fd()))
                }
                ProfileLandlock::Own { rules, .. } => child::Landlock::Own(rules),
            },
            identity: p.identity,
            // Outside the new PID namespace the parent reads as pid 0.
            parent: if init { 0 } else { self.me },
            fork_server: self.me,
            ignored_signals: &self.ignored_signals,
            last_cap: self.last_cap,
            filter: &p.filter,
            init_filter: &self.init_filter,
            exe_fd: p.exe_fd.as_ref().map_or(-1, |f| f.as_raw_fd()),
            exe_slot: p.exe_slot,
            path: &p.path,
            argv: &p.argv,
            envp: &p.envp,
            init,
            plugin_stack: self.plugin_stack.top(),
        };
        // The init gets its own memory (a fork-style clone: it outlives the
        // spawn, and a process inside the sandbox must never share the fork
        // server's memory) and a new PID namespace, of which it is PID 1.
        // A launcher shares our memory, as posix_spawn does (no page tables
        // to copy): it runs only our code and is gone before we return.
        let flags = libc::SIGCHLD
            | libc::CLONE_PIDFD
            | if init {
                libc::CLONE_NEWPID
            } else {
                libc::CLONE_VM
            }
            | if p.userns.is_some() {
                libc::CLONE_NEWUSER
            } else {
                0
            };
        extern "C" fn child_main(plan: *mut libc::c_void) -> libc::c_int {
            // SAFETY: `plan` is the Plan on the fork server's stack below:
            // the init's own copy of it, or (a launcher) the original, alive
            // and untouched until the launcher has exited.
            child::enter(unsafe { &*plan.cast::<child::Plan>() })
        }
        let mut pidfd: libc::c_int = -1;
        // SAFETY: the road runner runs only child::enter on `child_stack`
        // (a launcher in our memory: one at a time, we wait below until it
        // has exited), makes raw syscalls, writes nothing of ours but that
        // stack, `plugin_stack` and errno, and never returns. `plan` and
        // everything it points to outlive that. The fd table is its own copy;
        // the pidfd lands in `pidfd` (CLONE_PIDFD).
        let leader = unsafe {
            libc::clone(
                child_main,
                self.child_stack.top(),
                flags,
                (&plan as *const child::Plan as *mut child::Plan).cast(),
                &mut pidfd as *mut libc::c_int,
            )
        };
        if leader == -1 {
            return Err(format!("clone: {}", io::Error::last_os_error()));
        }
        drop((theirs, stdio));
        // SAFETY: CLONE_PIDFD stored a new fd that we now own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        // Into the cgroup before the plugin process exists: the road runner
        // waits for our go.
        if let Some(g) = &group {
            if let Err(e) = g.add(leader) {
                self.abort_spawn(leader, init, group);
                return Err(format!("cannot move the sandbox into its cgroup: {e}"));
            }
        }
        let _ = nix::unistd::write(&ours, b"g");
        let (listener, plugin_pidfd) = match self.await_start(&ours, deadline) {
            Ok(Started::Yes(listener, plugin_pidfd)) => (listener, plugin_pidfd),
            Ok(Started::Failed(stage, errno)) => {
                self.abort_spawn(leader, init, group);
                return Ok(SpawnEnd::Failed(stage, errno));
            }
            Ok(Started::Deadline) => {
                self.abort_spawn(leader, init, group);
                return Ok(SpawnEnd::Failed(Stage::Deadline, libc::ETIMEDOUT));
            }
            Ok(Started::HostGone) => {
                self.abort_spawn(leader, init, group);
                return Ok(SpawnEnd::HostGone);
            }
            Err(e) => {
                self.abort_spawn(leader, init, group);
                return Err(e);
            }
        };
        let pid = pidfd_pid(plugin_pidfd.as_fd());
        // The init reaps nothing until we have read the pid (see child::init).
        let _ = nix::unistd::write(&ours, b"a");
        let Some(pid) = pid else {
            self.abort_spawn(leader, init, group);
            return Err("cannot read the plugin's pid from its pidfd".into());
        };
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup pidfd: {e}"));
        let host_plugin_pidfd = match dup(&plugin_pidfd) {
            Ok(fd) => fd,
            Err(e) => {
                self.abort_spawn(leader, init, group);
                return Err(e);
            }
        };
        if init {
            let host_pidfd = dup(&pidfd);
            self.live.insert(
                leader,
                Live {
                    pidfd,
                    group,
                    init: Some((ours, plugin_pidfd)),
                },
            );
            let host_pidfd = match host_pidfd {
                Ok(fd) => fd,
                Err(e) => {
                    self.kill_and_reap(leader);
                    return Err(e);
                }
            };
            return Ok(SpawnEnd::Started(Spawned {
                pid,
                leader,
                pidfd: host_pidfd,
                listener,
                plugin_pidfd: host_plugin_pidfd,
            }));
        }
        // The launcher exits right after its report; only then is our
        // memory ours again. The plugin is our own child (CLONE_PARENT).
        let _ = wait4(leader, libc::__WALL);
        let host_pidfd = dup(&plugin_pidfd);
        self.live.insert(
            pid,
            Live {
                pidfd: plugin_pidfd,
                group,
                init: None,
            },
        );
        let host_pidfd = match host_pidfd {
            Ok(fd) => fd,
            Err(e) => {
                self.kill_and_reap(pid);
                return Err(e);
            }
        };
        Ok(SpawnEnd::Started(Spawned {
            pid,
            leader: pid,
            pidfd: host_pidfd,
            listener,
            plugin_pidfd: host_plugin_pidfd,
        }))
    }

    /// Waits for the road runner's report: STARTED with the listener and
    /// the plugin's pidfd, or a failure. Watches the host's socket too.
    fn await_start(&self, report: &OwnedFd, deadline: Instant) -> Result<Started, String> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut watch_host = true;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Started::Deadline);
            }
            let (report_ready, host_ready) = {
                let mut fds = vec![PollFd::new(report.as_fd(), PollFlags::POLLIN)];
                if watch_host {
                    fds.push(PollFd::new(self.sock.as_fd(), PollFlags::POLLIN));
                }
                let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
                match poll(
                    &mut fds,
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
                ) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(format!("poll: {e}")),
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), fds.get(1).is_some_and(ready))
            };
            if host_ready {
                // The host waits for our reply; the only thing it can send
                // meanwhile is its end of the connection.
                let mut b = [0u8; 1];
                match nix::sys::socket::recv(
                    self.sock.as_raw_fd(),
                    &mut b,
                    MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(0) | Err(nix::errno::Errno::ECONNRESET) => return Ok(Started::HostGone),
                    _ => watch_host = false,
                }
            }
            if !report_ready {
                continue;
            }
            let mut buf = [0u8; child::Report::LEN];
            let mut cmsg = nix::cmsg_space!([RawFd; 2]);
            let mut iov = [IoSliceMut::new(&mut buf)];
            let (n, mut fds) = match recvmsg::<()>(
                report.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for c in msg.cmsgs().map_err(|e| format!("report: {e}"))? {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            // SAFETY: the kernel just installed these fds for us.
                            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                        }
                    }
                    (msg.bytes, fds)
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(e) => return Err(format!("report: {e}")),
            };
            if n == 0 {
                return Err("the sandbox's first process died during setup without a word".into());
            }
            let r = child::Report::parse(&buf[..n]).ok_or("malformed setup report")?;
            if r.tag == child::STARTED && fds.len() == 2 {
                let pidfd = fds.pop().expect("two fds");
                let listener = fds.pop().expect("two fds");
                return Ok(Started::Yes(listener, pidfd));
            }
            let stage = Stage::from_u32(r.tag).unwrap_or(Stage::Exec);
            return Ok(Started::Failed(stage, r.value));
        }
    }

    /// Ends a spawn that did not start: kills the road runner and whatever
    /// it started, reaps them, and gives the cgroup back. A launcher runs
    /// in our memory, and so may its plugin process before its exec: both
    /// are dead and reaped before this returns (they share the process
    /// group the launcher made).
    fn abort_spawn(&mut self, leader: i32, init: bool, group: Option<crate::cgroup::Group>) {
        if let Some(g) = &group {
            g.kill_all();
        }
        // SAFETY: kill takes integers; the targets are our unreaped children.
        unsafe {
            libc::kill(leader, libc::SIGKILL);
            if !init {
                libc::kill(-leader, libc::SIGKILL);
            }
        }
        self.live.remove(&leader);
        let _ = wait4(leader, libc::__WALL);
        if !init {
            while wait4(-leader, libc::__WALL).is_some() {}
        }
        if let Some(g) = group {
            self.dead_groups.push(g);
        }
    }

    fn kill_and_reap(&mut self, pid: i32) {
        if let Some(live) = self.live.get(&pid) {
            kill_pidfd(live.pidfd.as_fd());
        }
        let _ = self.wait(pid);
    }

    /// Reaps `pid` if needed and forgets it.
    fn wait(&mut self, pid: i32) -> Option<ExitInfo> {
        if let Some(info) = self.exited.remove(&pid) {
            return Some(info);
        }
        self.live.get(&pid)?;
        loop {
            match wait4(pid, libc::__WALL) {
                Some((p, info)) if p == pid => {
                    return Some(self.finish(pid, info));
                }
                Some(_) => continue,
                None if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
                None => {
                    self.live.remove(&pid);
                    return None;
                }
            }
        }
    }

    /// Reaps every exited child and orphan without blocking.
    fn reap_all(&mut self) {
        while let Some((pid, info)) = wait4(-1, libc::WNOHANG | libc::__WALL) {
            if pid <= 0 {
                break;
            }
            if self.live.contains_key(&pid) {
                let info = self.finish(pid, info);
                self.exited.insert(pid, info);
            }
        }
    }

    /// A sandbox's leader was reaped: the plugin's exit (from its init's
    /// report, checked against the kernel's record where there is one),
    /// then kill what is left of its tree and read its cgroup, which is
    /// removed later, while idle.
    fn finish(&mut self, pid: i32, mut info: ExitInfo) -> ExitInfo {
        let Some(live) = self.live.remove(&pid) else {
            return info;
        };
        if let Some((report, plugin)) = &live.init {
            info = plugin_exit(info, report.as_fd(), plugin.as_fd());
        }
        if let Some(group) = live.group {
            group.kill_all();
            info.cgroup = Some(group.usage());
            self.dead_groups.push(group);
        }
        info
    }

    fn new_group(&mut self, limits: crate::cgroup::Limits) -> io::Result<crate::cgroup::Group> {
        self.spawned += 1;
        crate::cgroup::Group::create(&self.cgroups, &format!("w{}", self.spawned), limits)
    }

    /// Work kept off the spawn and wait paths: remove a dead group, or
    /// make a group ahead for a prepared profile that has none ready.
    fn chore(&self) -> Option<Chore> {
        if !self.dead_groups.is_empty() {
            return Some(Chore::RemoveGroup);
        }
        if !self.make_ahead {
            return None;
        }
        self.profiles
            .values()
            .map(|p| p.cgroup)
            .find(|l| !self.ready_groups.iter().any(|(r, _)| r == l))
            .map(Chore::MakeGroup)
    }

    fn do_chore(&mut self, chore: Chore) {
        match chore {
            Chore::RemoveGroup => {
                if let Some(g) = self.dead_groups.pop() {
                    g.remove();
                }
            }
            Chore::MakeGroup(limits) => match self.new_group(limits) {
                Ok(g) => self.ready_groups.push((limits, g)),
                // The next spawn makes its own and reports the error; until
                // one succeeds, make none ahead.
                Err(_) => self.make_ahead = false,
            },
        }
    }

    fn shutdown(&mut self) {
        for live in self.live.values() {
            if let Some(g) = &live.group {
                g.kill_all();
            }
            kill_pidfd(live.pidfd.as_fd());
        }
        let pids: Vec<i32> = self.live.keys().copied().collect();
        for pid in pids {
            let _ = self.wait(pid);
        }
        self.reap_all();
        for g in self.dead_groups.drain(..) {
            g.remove();
        }
        for (_, g) in self.ready_groups.drain(..) {
            g.remove();
        }
        self.cgroups.cleanup();
        if let Some(d) = &self.root_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A stack for the child's road (which needs a few KiB), with a guard
/// page below it.
struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

impl ChildStack {
    fn new(len: usize) -> io::Result<ChildStack> {
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping made above becomes the guard.
        if unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The (16-byte aligned) top: stacks grow down.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of our own mapping, never dereferenced here.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in new().
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// What the road runner reported.
enum Started {
    /// The plugin has exec'd: its listener and pidfd.
    Yes(OwnedFd, OwnedFd),
    Failed(Stage, i32),
    Deadline,
    HostGone,
}

/// The init's own seccomp program: the few calls it makes once the plugin
/// runs (`child::INIT_SYSCALLS`); anything else kills it, and with it the
/// whole sandbox.
fn init_filter() -> io::Result<Vec<seccompiler::sock_filter>> {
    use crate::policy::groups::{self, Arch};
    use crate::seccomp::{self, Leaf};
    let arch = Arch::native();
    let map = child::INIT_SYSCALLS
        .iter()
        .filter_map(|name| groups::number(arch, name))
        .map(|nr| (nr as u32, Leaf::Ret(seccomp::RET_ALLOW)))
        .collect();
    seccomp::emit(&map, seccomp::audit_arch(arch), seccomp::RET_KILL_PROCESS)
        .map_err(|n| io::Error::other(format!("the init's filter has {n} instructions")))
}

/// The pid (in our PID namespace) of the process behind `pidfd`: from
/// `PIDFD_GET_INFO` (Linux 6.13+), else from its fdinfo (`Pid:`).
fn pidfd_pid(pidfd: BorrowedFd) -> Option<i32> {
    use crate::kernel::{kernel, pidfd_info, Feature, PIDFD_INFO_PID};
    if kernel().has(Feature::PidfdInfo) {
        if let Some(info) = pidfd_info(pidfd.as_raw_fd(), PIDFD_INFO_PID) {
            return i32::try_from(info.pid).ok().filter(|&p| p > 0);
        }
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .filter(|&pid: &i32| pid > 0)
}

/// The wait status the kernel recorded for the process behind `pidfd`
/// (`PIDFD_INFO_EXIT`, Linux 6.15+), once it has exited and been reaped;
/// `None` on an older kernel (or with `PLUGWARDEN_NO_PIDFD_INFO=1`).
fn pidfd_exit_status(pidfd: BorrowedFd) -> Option<i32> {
    use crate::kernel::{kernel, pidfd_info, Feature, PIDFD_INFO_EXIT};
    if !kernel().has(Feature::PidfdInfo) {
        return None;
    }
    pidfd_info(pidfd.as_raw_fd(), PIDFD_INFO_EXIT).map(|i| i.exit_code)
}

/// How the plugin of a reaped init ended: the init's EXITED report (wait
/// status and rusage), its status checked against the kernel's own record
/// where the kernel keeps one. Without a report (the init was killed, which
/// kills its namespace), the kernel's record, or the init's own status; the
/// init's rusage then includes the processes it reaped.
fn plugin_exit(init: ExitInfo, report: BorrowedFd, plugin: BorrowedFd) -> ExitInfo {
    let mut reported = None;
    let mut buf = [0u8; child::Report::LEN];
    while let Ok(n) = nix::sys::socket::recv(report.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
        match child::Report::parse(&buf[..n]) {
            Some(r) if r.tag == child::EXITED => reported = Some(r),
            Some(_) => {}
            None => break,
        }
    }
    let kernel = pidfd_exit_status(plugin);
    let mut info = init;
    if let Some(r) = reported {
        info.status = r.status;
        info.utime_us = r.utime_us;
        info.stime_us = r.stime_us;
        info.maxrss_kib = r.maxrss_kib;
    }
    if let Some(status) = kernel {
        if reported.is_some_and(|r| r.status != status) {
            tracing::warn!(
                reported = reported.map(|r| r.status),
                kernel = status,
                "the sandbox's init misreported its plugin's exit; the kernel's record wins"
            );
        }
        info.status = status;
    }
    info
}

/// Idle-time work of the fork server.
enum Chore {
    RemoveGroup,
    MakeGroup(crate::cgroup::Limits),
}

/// Lays out the minimal root of a profile (see [`child::RootPlan`]): /usr
/// read-only with the top-level symlinks of a merged-/usr system, every
/// granted path at its own place (read-only unless granted for writing),
/// /etc/ld.so.cache, a minimal /dev, /proc when the plugin has its own PID
/// namespace, and a bounded private /tmp.
fn root_plan(
    dir: &Path,
    grants: &Grants,
    pidns: bool,
    tmp: u64,
) -> Result<child::RootPlan, String> {
    use std::collections::BTreeSet;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| format!("path {} contains NUL", p.display()))
    };
    // Destinations relative to the new root (the child stands in it).
    let inside = |p: &Path| match p.strip_prefix("/").unwrap_or(p) {
        r if r.as_os_str().is_empty() => PathBuf::from("."),
        r => r.to_path_buf(),
    };
    // The private /tmp: writable, of the policy's size (Landlock grants it
    // through each sandbox's own ruleset); else a small one nobody may
    // write even where Landlock is missing.
    let tmp_opts = if tmp > 0 {
        format!("size={tmp},mode=1777")
    } else {
        "size=64k,mode=0555".to_string()
    };
    let tmp_opts = c(Path::new(&tmp_opts))?;
    let mut ops = Vec::new();
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    let mut mkdirs = |p: &Path, ops: &mut Vec<child::RootOp>| -> Result<(), String> {
        let mut acc = PathBuf::from("/");
        for part in p.components().skip(1) {
            acc.push(part);
            if made.insert(acc.clone()) {
                ops.push(child::RootOp::Mkdir(c(&inside(&acc))?));
            }
        }
        Ok(())
    };
    // A grant of `/` itself: the host's whole tree, read-only, with the
    // sandbox's own /tmp and /proc over the host's.
    let root_granted = |list: &[PathBuf]| list.iter().any(|p| p == Path::new("/"));
    let writable_root = root_granted(&grants.write);
    if writable_root || root_granted(&grants.read) || root_granted(&grants.exec) {
        ops.push(child::RootOp::Tmpfs {
            dst: c(Path::new("tmp"))?,
            opts: tmp_opts,
        });
        // The write grants, writable over the read-only tree, and every
        // grant below /tmp, on the private /tmp.
        let extra = grants
            .read
            .iter()
            .chain(&grants.exec)
            .map(|p| (p, false))
            .chain(grants.write.iter().map(|p| (p, true)))
            .filter_map(|(p, w)| std::fs::canonicalize(p).ok().map(|p| (p, w)))
            .filter(|(p, w)| *w || p.starts_with("/tmp"));
        for (p, writable) in extra {
            if p == Path::new("/") || p.starts_with("/proc") {
                continue;
            }
            if p.starts_with("/tmp") {
                if p.is_dir() {
                    mkdirs(&p, &mut ops)?;
                } else if let Some(parent) = p.parent() {
                    mkdirs(parent, &mut ops)?;
                    ops.push(child::RootOp::Touch(c(&inside(&p))?));
                }
            }
            ops.push(child::RootOp::Bind {
                src: c(&p)?,
                dst: c(&inside(&p))?,
                flags: bind_flags(&p, writable),
            });
        }
        // The sandbox's own procfs; without a PID namespace an empty
        // tmpfs (a procfs would show the host's processes).
        ops.push(if pidns {
            child::RootOp::Proc(c(Path::new("proc"))?)
        } else {
            child::RootOp::Tmpfs {
                dst: c(Path::new("proc"))?,
                opts: c(Path::new("size=4k,mode=0555"))?,
            }
        });
        return Ok(child::RootPlan {
            mountpoint: c(dir)?,
            opts: c(Path::new("size=1m,mode=0755"))?,
            host_root: Some(writable_root),
            ops,
            template: -1,
        });
    }
    // Binds, shortest first, skipping anything under a path already bound.
    let mut binds: Vec<(PathBuf, bool)> = vec![(PathBuf::from("/usr"), false)];
    for (p, w) in grants
        .exec
        .iter()
        .chain(&grants.read)
        .map(|p| (p, false))
        .chain(grants.write.iter().map(|p| (p, true)))
    {
        // Never the host's /proc: the sandbox mounts its own.
        match std::fs::canonicalize(p) {
            Ok(real) if !real.starts_with("/proc") => binds.push((real, w)),
            _ => {}
        }
    }
    for dev in ["/dev/null", "/dev/zero", "/dev/urandom"] {
        binds.push((PathBuf::from(dev), true));
    }
    // The private /tmp first, so that a granted path below /tmp is bound
    // on top of it rather than hidden under it.
    mkdirs(Path::new("/tmp"), &mut ops)?;
    ops.push(child::RootOp::Tmpfs {
        dst: c(&inside(Path::new("/tmp")))?,
        opts: tmp_opts,
    });
    binds.sort_by_key(|(p, _)| p.components().count());
    // A path under one already bound is skipped, unless it is writable
    // and that one is not (`--ro /data --rw /data/out`).
    let mut bound: Vec<(PathBuf, bool)> = Vec::new();
    for (p, writable) in binds {
        if bound
            .iter()
            .any(|(b, w)| p.starts_with(b) && (*w || !writable))
        {
            continue;
        }
        let dst = inside(&p);
        if p.is_dir() {
            mkdirs(&p, &mut ops)?;
        } else {
            if let Some(parent) = p.parent() {
                mkdirs(parent, &mut ops)?;
            }
            ops.push(child::RootOp::Touch(c(&dst)?));
        }
        let flags = bind_flags(&p, writable);
        ops.push(child::RootOp::Bind {
            src: c(&p)?,
            dst: c(&dst)?,
            flags,
        });
        bound.push((p, writable));
    }
    // Top-level symlinks (lib -> usr/lib on merged /usr), so ELF
    // interpreter paths like /lib64/ld-linux-x86-64.so.2 resolve.
    for e in std::fs::read_dir("/")
        .map_err(|e| format!("/: {e}"))?
        .flatten()
    {
        let path = e.path();
        // Granted paths are canonical, so none of them runs through these.
        if let Ok(target) = std::fs::read_link(&path) {
            ops.push(child::RootOp::Symlink {
                target: c(&target)?,
                link: c(&inside(&path))?,
            });
        }
    }
    // The procfs of the sandbox's own PID namespace (a grant of /proc is
    // a grant on it: each sandbox adds that rule to its own ruleset).
    if pidns {
        mkdirs(Path::new("/proc"), &mut ops)?;
        ops.push(child::RootOp::Proc(c(&inside(Path::new("/proc")))?));
    }
    Ok(child::RootPlan {
        mountpoint: c(dir)?,
        opts: c(Path::new("size=1m,mode=0755"))?,
        host_root: None,
        ops,
        template: -1,
    })
}

/// The remount flags of a bind of `p`: read-only unless `writable`,
/// nosuid, nodev but for device nodes, and the source mount's own flags
/// (inside a user namespace they are locked, and dropping one fails).
fn bind_flags(p: &Path, writable: bool) -> libc::c_ulong {
    use std::os::unix::fs::FileTypeExt;
    let keep = nix::sys::statvfs::statvfs(p).map_or(0, |st| {
        use nix::sys::statvfs::FsFlags;
        let f = st.flags();
        let mut keep = 0;
        for (fs_flag, ms_flag) in [
            (FsFlags::ST_NOEXEC, libc::MS_NOEXEC),
            (FsFlags::ST_NOSUID, libc::MS_NOSUID),
            (FsFlags::ST_NODEV, libc::MS_NODEV),
            (FsFlags::ST_RDONLY, libc::MS_RDONLY),
            (FsFlags::ST_NOATIME, libc::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, libc::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if f.contains(fs_flag) {
                keep |= ms_flag;
            }
        }
        keep
    });
    let device = std::fs::metadata(p)
        .is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_block_device());
    let mut flags = keep | libc::MS_NOSUID;
    if !device {
        flags |= libc::MS_NODEV;
    }
    if writable {
        flags & !libc::MS_RDONLY
    } else {
        flags | libc::MS_RDONLY
    }
}

/// Builds `root` once in a throwaway child and keeps its mount namespace
/// as the profile's template (see [`child::RootPlan::template`]). `None`
/// when the root cannot be a template (a bind under /tmp would be hidden
/// by each child's own /tmp) or building it failed: children then build
/// the root themselves, as they do without root privileges.
fn root_template(root: &child::RootPlan, grants: &Grants) -> Option<OwnedFd> {
    let under_tmp = grants
        .exec
        .iter()
        .chain(&grants.read)
        .chain(&grants.write)
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .any(|p| p == Path::new("/") || p.starts_with("/tmp"));
    if under_tmp {
        return None;
    }
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    // SAFETY: the fork server is single-threaded; the child builds the root
    // with raw syscalls, reports one byte and waits to be killed.
    let pid = match unsafe { libc::fork() } {
        0 => {
            let ok = child::build_root(root, false).is_ok();
            let byte = [u8::from(ok)];
            // SAFETY: writes one byte from the stack, then waits for SIGKILL.
            unsafe {
                libc::write(ready_w.as_raw_fd(), byte.as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        -1 => return None,
        pid => pid,
    };
    drop(ready_w);
    let mut byte = [0u8; 1];
    let built = read_full(ready_r.as_fd(), &mut byte) == 1 && byte[0] == 1;
    let ns = built
        .then(|| std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok())
        .flatten();
    // SAFETY: kill + reap our own child; no memory involved.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = wait4(pid, 0);
    ns.map(OwnedFd::from)
}

/// Opens a fresh, empty network namespace (only a downed loopback) that
/// every worker joins with `setns`: creating one per spawn would double the
/// spawn time, and an empty namespace holds nothing to share.
fn empty_netns() -> Option<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    // SAFETY: single-threaded fork server; the child only makes raw syscalls.
    match unsafe { nix::unistd::fork() }.ok()? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: unshare/read/_exit are raw syscalls on our own state.
            unsafe {
                let ok = libc::unshare(libc::CLONE_NEWNET) == 0;
                drop(w);
                let mut b = [0u8; 1];
                libc::read(r.as_raw_fd(), b.as_mut_ptr().cast(), if ok { 1 } else { 0 });
                libc::_exit(if ok { 0 } else { 1 })
            }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(r);
            // Give the child a moment to unshare; then open its namespace.
            let path = format!("/proc/{}/ns/net", child.as_raw());
            let mine = std::fs::read_link("/proc/self/ns/net").ok();
            let mut fd = None;
            for _ in 0..1000 {
                if std::fs::read_link(&path)
                    .ok()
                    .is_some_and(|l| Some(&l) != mine.as_ref())
                {
                    fd = nix::fcntl::open(
                        path.as_str(),
                        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                        nix::sys::stat::Mode::empty(),
                    )
                    .ok();
                    break;
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            drop(w);
            let _ = wait4(child.as_raw(), 0);
            fd
        }
    }
}

fn wait4(pid: i32, flags: i32) -> Option<(i32, ExitInfo)> {
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes to the two out-pointers, both valid.
    let r = unsafe { libc::wait4(pid, &mut status, flags, &mut ru) };
    if r <= 0 {
        return None;
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Some((
        r,
        ExitInfo {
            status,
            utime_us: us(ru.ru_utime),
            stime_us: us(ru.ru_stime),
            maxrss_kib: ru.ru_maxrss as u64,
            cgroup: None,
        },
    ))
}

/// The highest fd this process holds (for a child's close loop where
/// close_range is missing).
fn highest_fd() -> RawFd {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .max()
                .unwrap_or(1024)
        })
        .unwrap_or(1024)
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(fd: BorrowedFd, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match nix::unistd::read(fd, &mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    n
}

/// SIGKILL through a pidfd: no pid-reuse race. Errors (already dead) are
/// of no interest.
pub fn kill_pidfd(pidfd: BorrowedFd) {
    // SAFETY: pidfd_send_signal takes an fd and integers; no memory is passed.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            0usize,
            0u32,
        )
    };
}

/// Where the fork server binary is: `PLUGWARDEN_EXE`, else this executable.
pub fn default_exe() -> io::Result<PathBuf> {
    match std::env::var_os("PLUGWARDEN_EXE") {
        Some(p) => Ok(PathBuf::from(p)),
        None => std::env::current_exe(),
    }
}

/// `EACCES` for 13.
pub fn errno_name(e: i32) -> String {
    let errno = nix::errno::Errno::from_raw(e);
    if errno == nix::errno::Errno::UnknownErrno {
        format!("errno {e}")
    } else {
        format!("{errno:?}")
    }
}

/// The signals this process ignores (see `child::Plan::ignored_signals`).
fn ignored_signals() -> Vec<i32> {
    (1..=64)
        .filter(|&sig| {
            let mut old = child::KernelSigaction {
                handler: 0,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            child::rt_sigaction(sig, None, Some(&mut old)) && old.handler == libc::SIG_IGN
        })
        .collect()
}
