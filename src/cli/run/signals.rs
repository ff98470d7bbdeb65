//! SIGINT and SIGTERM: flags read between results; a second one exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cli::Usage;

/// Flags set by SIGINT and SIGTERM; a second signal exits at once.
pub struct Signals {
    pub(super) int: Arc<AtomicBool>,
    pub(super) term: Arc<AtomicBool>,
    pub(super) any: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> Result<Signals, Usage> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let any = Arc::new(AtomicBool::new(false));
        let int = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        for (sig, code, own) in [(SIGINT, 130, &int), (SIGTERM, 143, &term)] {
            // Registered first, so it sees `any` as the previous signal left it.
            flag::register_conditional_shutdown(sig, code, any.clone())?;
            flag::register(sig, own.clone())?;
            flag::register(sig, any.clone())?;
        }
        Ok(Signals { int, term, any })
    }

    /// Set by either signal: a job's cancel flag.
    pub fn any(&self) -> Arc<AtomicBool> {
        self.any.clone()
    }

    /// The exit status for the signal received, if any.
    pub fn received(&self) -> Option<u8> {
        if self.int.load(Ordering::SeqCst) {
            Some(130)
        } else if self.term.load(Ordering::SeqCst) {
            Some(143)
        } else {
            None
        }
    }
}
