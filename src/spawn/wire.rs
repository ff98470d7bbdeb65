//! What host and fork server say to each other: requests and replies as
//! JSON over a `SOCK_SEQPACKET` socket, fds by `SCM_RIGHTS`.

use super::*;

/// argv[1] that turns the plugwarden binary into a fork server.
pub const SERVE_ARG: &str = "__plugwarden-fork-server";
/// The fd on which the fork server finds its socket.
pub(super) const SERVE_FD: RawFd = 3;
/// Largest request or reply.
pub(super) const MAX_MSG: usize = 1 << 20;

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
    /// The host lets no call the filter notifies run (enforce = policy),
    /// so the profile may be served by a warm zygote (see
    /// `confine::zygote`).
    #[serde(default)]
    pub zygote: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Request {
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
pub(super) enum Reply {
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

pub(super) fn send(fd: BorrowedFd, msg: &impl Serialize, fds: &[RawFd]) -> io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let iov = [IoSlice::new(&bytes)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receives one message and up to 4 fds; `Ok(None)` at EOF.
pub(super) fn recv<T: for<'de> Deserialize<'de>>(
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
