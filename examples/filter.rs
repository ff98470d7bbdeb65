//! A filter: any program, input on stdin, output on stdout, one process
//! per input. Here `base64` under the `default` policy.
//!
//! ```text
//! cargo run --example filter -- [PROGRAM]
//! ```

use plugwarden::{Sandbox, Verdict};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    plugwarden::bootstrap();
    let program = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/usr/bin/base64".into());

    let sandbox = Sandbox::builder(program)
        .filter()
        .policy("default")
        .timeout(std::time::Duration::from_secs(10))
        .allow_weaker()
        .build()?;

    let outcome = sandbox.run(b"plugwarden");
    match &outcome.verdict {
        Verdict::Ok => print!("{}", String::from_utf8_lossy(&outcome.output)),
        // A filter that exits non-zero says no: `plugin_error`.
        other => return Err(format!("the filter said: {other}").into()),
    }
    // A worker-mode call on a filter sandbox is a clear error, not a hang.
    let err = plugwarden::Worker::start(&sandbox).err().expect("refused");
    println!("as expected: {err}");
    Ok(())
}
