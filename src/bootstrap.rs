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
    let serving = std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == crate::spawn::SERVE_ARG);
    if serving && threads() > 1 {
        // Forking a multi-threaded process is unsafe: refuse to serve
        // (the host sees the fork server go away, with this on stderr).
        eprintln!(
            "plugwarden fork server: this process already runs {} threads: call plugwarden::bootstrap() before any thread starts (#[tokio::main] starts its runtime before the first line of main: build the runtime after bootstrap, or use ForkServer::with_helper)",
            threads()
        );
        std::process::exit(3);
    }
    crate::spawn::serve_if_requested();
    BOOTSTRAPPED.store(true, Ordering::SeqCst);
}

/// Threads of this process (`/proc/self/status`); 1 when unknown.
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_threads_counts_a_thread_started_meanwhile() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv());
        assert!(threads() >= 2);
        drop(tx);
        let _ = t.join();
    }
}
