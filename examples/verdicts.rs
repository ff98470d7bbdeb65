//! Handling every verdict: one match with an arm for each.
//!
//! A shell as a filter plugin, told to do something different for each
//! input: answer, refuse, crash, spin, make a forbidden system call.
//!
//! ```text
//! cargo run --example verdicts
//! ```

use std::time::Duration;

use plugwarden::{Sandbox, TimeoutKind, Verdict};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    plugwarden::bootstrap();
    let scripts = [
        ("answers", "read -r line; echo \"got $line\""),
        ("refuses", "echo 'not an image' >&2; exit 3"),
        ("crashes", "kill -SEGV $$"),
        ("spins", "while :; do :; done"),
        ("forks", "/bin/true"),
    ];
    for (what, script) in scripts {
        let sandbox = Sandbox::builder("/bin/sh")
            .filter()
            .args(["-c", script])
            .policy("default")
            .timeout(Duration::from_secs(2))
            .allow_weaker()
            .build()?;
        let outcome = sandbox.run(b"an input\n");
        println!("{what:>8}: {}", describe(&outcome.verdict));
    }
    Ok(())
}

/// What an application does with each verdict: every variant has its arm,
/// so a new one is a compile error here, not a surprise in production.
fn describe(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Ok => "ok: use the output".into(),
        Verdict::PluginError(msg) => format!("the plugin refused the input: {msg}"),
        Verdict::Crashed { signal, detail } => format!(
            "crashed by {signal} (number {}, {detail:?}): retry once on a fresh process",
            signal.number()
        ),
        Verdict::Timeout(TimeoutKind::Wall) => "ran out of wall-clock time".into(),
        Verdict::Timeout(TimeoutKind::Cpu) => "ran out of CPU time".into(),
        Verdict::Memory(detail) => format!("hit its memory limit: {detail}"),
        Verdict::Violation(v) => match v.syscall() {
            Some(call) => format!(
                "made a forbidden system call: {} (number {}): {v}; quarantine the input",
                call,
                call.number()
            ),
            None => format!("killed by its own seccomp filter: {v}"),
        },
        Verdict::ProtocolError(msg) => format!("broke the protocol: {msg}"),
        Verdict::OutputLimit(limit) => format!("wrote more than {limit} bytes"),
        Verdict::SetupError(msg) => format!("no sandbox could be started: {msg}"),
        Verdict::InputError(msg) => format!("the input could not be read: {msg}"),
        Verdict::Cancelled => "cancelled before it finished".into(),
        Verdict::Unsupported(what) => format!("not a kind of input this handles: {what}"),
    }
}
