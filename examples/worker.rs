//! One input through a worker plugin.
//!
//! A worker links `plugwarden-sdk` and serves many jobs; `Sandbox::run`
//! starts it on the first call and keeps it for the next.
//!
//! ```text
//! cargo run --example worker -- [PLUGIN] [TEXT]
//! ```
//! PLUGIN defaults to the workspace's `pw-echo` (built next to this example).

use plugwarden::{Sandbox, Verdict};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // First thing: in the fork server (this program run again) it serves
    // and never returns.
    plugwarden::bootstrap();

    let mut args = std::env::args().skip(1);
    let plugin = args.next().map_or_else(|| sibling("pw-echo"), Into::into);
    let text = args.next().unwrap_or_else(|| "hello from the host".into());

    let sandbox = Sandbox::builder(plugin)
        .policy("strict")
        .timeout(std::time::Duration::from_secs(10))
        // Not root, or an older kernel: run with the walls this machine
        // has, and say which are missing.
        .allow_weaker()
        .build()?;
    for w in sandbox.weakenings() {
        eprintln!("weaker here: {w}");
    }

    for _ in 0..2 {
        let outcome = sandbox.run(text.as_bytes());
        match outcome.verdict {
            Verdict::Ok => println!(
                "ok: {:?} in {} µs (worker pid {})",
                String::from_utf8_lossy(&outcome.output),
                outcome.wall.as_micros(),
                outcome.pid
            ),
            other => return Err(format!("unexpected verdict: {other}").into()),
        }
    }
    Ok(())
}

/// A binary built next to this example (`target/debug/NAME`).
fn sibling(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("own path");
    // target/debug/examples/worker -> target/debug/NAME
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(name))
        .expect("a target directory")
}
