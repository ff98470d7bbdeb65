//! Starting the fork server safely.
//!
//! The fork server is a program run again in a hidden mode: either the
//! application itself ([`ForkServer::start_self`], after [`bootstrap`] in
//! its `main`) or the installed `plugwarden` binary
//! ([`ForkServer::with_helper`]). Two guards make the first way safe:
//!
//! - [`ForkServer::start_self`] refuses unless [`bootstrap`] ran in this
//!   process ([`ForkServerError::NotBootstrapped`]): a program that would
//!   not serve when run as the helper is never started as one (it would
//!   run its whole `main` again, and start a helper of its own, without
//!   end).
//! - The helper runs with [`LEVEL_VAR`] set; any attempt to start a fork
//!   server from a process that has it is refused
//!   ([`ForkServerError::Recursion`]): there is never a second level.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::spawn::{ForkServer, ForkServerError};

/// Set in the fork server's environment (and nowhere else: the plugins get
/// an environment of their own): a process that has it is a fork server.
pub(crate) const LEVEL_VAR: &str = "PLUGWARDEN_FORK_SERVER_LEVEL";

/// [`bootstrap`] ran in this process.
static BOOTSTRAPPED: AtomicBool = AtomicBool::new(false);

/// The fork server [`crate::SandboxBuilder`] uses when given none.
static SHARED: Mutex<Option<Arc<ForkServer>>> = Mutex::new(None);

/// Call first thing in `main` of a program that embeds plugwarden.
///
/// When this process was started as the fork server (by
/// [`ForkServer::start_self`]), it serves and exits: the call never
/// returns. Otherwise it returns at once, and from then on this program
/// may be its own fork server.
///
/// It must run before any thread is started (an async runtime included:
/// build a tokio runtime after it, not with `#[tokio::main]`, or use
/// [`ForkServer::with_helper`]): the fork server forks, which is only safe
/// in a single-threaded process.
///
/// ```no_run
/// fn main() {
///     plugwarden::bootstrap();
///     // … the application, which may now build sandboxes
/// }
/// ```
pub fn bootstrap() {
    crate::spawn::serve_if_requested();
    BOOTSTRAPPED.store(true, Ordering::SeqCst);
}

/// Refuses a fork server started from within one.
pub(crate) fn check_level() -> Result<(), ForkServerError> {
    match std::env::var_os(LEVEL_VAR) {
        Some(_) => Err(ForkServerError::Recursion),
        None => Ok(()),
    }
}

impl ForkServer {
    /// Starts this program as its own fork server. [`bootstrap`] must have
    /// run first thing in `main`; otherwise this is
    /// [`ForkServerError::NotBootstrapped`] (and nothing is started).
    pub fn start_self() -> Result<ForkServer, ForkServerError> {
        if !BOOTSTRAPPED.load(Ordering::SeqCst) {
            return Err(ForkServerError::NotBootstrapped);
        }
        let exe = std::env::current_exe().map_err(ForkServerError::Io)?;
        ForkServer::start(&exe)
    }

    /// Starts `helper` as the fork server: the installed `plugwarden`
    /// binary (or any program whose `main` starts with [`bootstrap`]).
    /// The application itself then needs no [`bootstrap`], and may start
    /// it from any thread, an async runtime's included.
    pub fn with_helper(helper: impl AsRef<Path>) -> Result<ForkServer, ForkServerError> {
        let helper = helper.as_ref();
        if !helper.is_file() {
            return Err(ForkServerError::NoHelper(helper.to_path_buf()));
        }
        ForkServer::start(helper)
    }

    /// The fork server sandboxes share when their builder is given none:
    /// `PLUGWARDEN_EXE` as the helper when set (the installed
    /// `plugwarden`), else this program ([`ForkServer::start_self`]).
    /// Started on first use; a failure is returned and tried again next
    /// time.
    pub fn shared() -> Result<Arc<ForkServer>, ForkServerError> {
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fs) = shared.as_ref() {
            return Ok(fs.clone());
        }
        let fs = Arc::new(match std::env::var_os("PLUGWARDEN_EXE") {
            Some(helper) => ForkServer::with_helper(helper)?,
            None => ForkServer::start_self()?,
        });
        *shared = Some(fs.clone());
        Ok(fs)
    }
}
