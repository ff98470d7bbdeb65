//! The host's side: [`ForkServer`] starts the fork server and asks it to
//! prepare profiles, spawn sandboxes and reap them.

use super::*;

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
    /// [`crate::bootstrap`] first thing in `main`) as the fork server; as
    /// [`ForkServer::with_helper`] without its checks.
    pub fn start(exe: &Path) -> Result<ForkServer, ForkServerError> {
        crate::bootstrap::check_level()?;
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
            .env(crate::bootstrap::LEVEL_VAR, "1")
            .process_group(0);
        let switches = crate::kernel::Kernel::switch_names();
        for key in ["RUST_LOG", "PLUGWARDEN_NO_ZYGOTE"]
            .into_iter()
            .chain(switches)
        {
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
    pub(crate) fn fd_ceiling(&self) -> u64 {
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
    pub(crate) fn prepare(&self, spec: &ProfileSpec) -> Result<(u64, Walls), ForkServerError> {
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
    pub(crate) fn spawn(
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
    pub(crate) fn wait(&self, pid: i32) -> Result<ExitInfo, ForkServerError> {
        match self.call(&Request::Wait { pid }, &[])? {
            (Reply::Exited(info), _) => Ok(info),
            (r, _) => Err(ForkServerError::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// Forgets a profile (public for the bench's round-trip measure).
    #[doc(hidden)]
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
