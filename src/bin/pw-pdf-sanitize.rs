//! The pdf-sanitize worker: one untrusted PDF per job in, every page as RGB
//! pixels out (format in lib.rs), many jobs per process through the SDK.
//!
//! Usage: `pw-pdf-sanitize [--dpi N]` (default 150).

use clap::Parser;
use plugwarden_sdk::Parts;
use pw_pdf_sanitize::{install_panic_hook, render_guarded_to, PageSink, RenderLimits, DEFAULT_DPI};

/// Renders untrusted PDFs to pixels inside the plugwarden sandbox.
#[derive(Parser)]
struct Args {
    /// Resolution to render at, in dots per inch.
    #[arg(long, default_value_t = DEFAULT_DPI, value_parser = clap::value_parser!(u32).range(18..=1200))]
    dpi: u32,
}

/// The job's output parts: a page's pixels are composited straight into
/// the host's shared-memory arena when it offered room (no copy), else
/// gathered and sent through the pipe.
struct ToHost<'p, 'a>(&'p mut Parts<'a>);

impl PageSink for ToHost<'_, '_> {
    fn part(&mut self, bytes: &[u8]) -> Result<(), String> {
        Ok(self.0.send(bytes)?)
    }

    fn page(
        &mut self,
        head: &[u8],
        pixels: usize,
        scratch: &mut Vec<u8>,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), String> {
        self.0.send(head)?;
        Ok(self.0.send_with(pixels, scratch, fill)?)
    }
}

fn main() {
    let args = Args::parse();
    // std seeds HashMap keys with getrandom on first use; do it now, before
    // the SDK's lockdown, so no job ever needs that syscall.
    let _ = std::collections::hash_map::RandomState::new();
    install_panic_hook();
    let limits = RenderLimits::default();
    plugwarden_sdk::serve_parts(|input, parts| {
        render_guarded_to(input, args.dpi, &limits, &mut ToHost(parts))
    });
}
