//! The pdf-sanitize worker: one untrusted PDF per job in, every page as RGB
//! pixels out (format in lib.rs), many jobs per process through the SDK.
//!
//! Usage: `pw-pdf-sanitize [--dpi N]` (default 150).

use clap::Parser;
use pw_pdf_sanitize::{install_panic_hook, render_guarded, RenderLimits, DEFAULT_DPI};

/// Renders untrusted PDFs to pixels inside the plugwarden sandbox.
#[derive(Parser)]
struct Args {
    /// Resolution to render at, in dots per inch.
    #[arg(long, default_value_t = DEFAULT_DPI, value_parser = clap::value_parser!(u32).range(18..=1200))]
    dpi: u32,
}

fn main() {
    let args = Args::parse();
    // std seeds HashMap keys with getrandom on first use; do it now, before
    // the SDK's lockdown, so no job ever needs that syscall.
    let _ = std::collections::hash_map::RandomState::new();
    install_panic_hook();
    let limits = RenderLimits::default();
    plugwarden_sdk::serve_parts(|input, parts| {
        render_guarded(
            input,
            args.dpi,
            &limits,
            &mut |bytes| Ok(parts.send(bytes)?),
        )
    });
}
