//! A directory through the batch driver, as `plugwarden run` does it: the
//! outputs written beside, one hash-chained audit record per input, a run
//! that resumes where the last one stopped, and Ctrl-C as a clean stop.
//!
//! ```text
//! cargo run --example batch -- IN_DIR OUT_DIR [AUDIT_LOG] [PLUGIN]
//! ```
//!
//! Run it twice: the second run skips every input the log already holds.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use plugwarden::batch::{Batch, Event};
use plugwarden::Sandbox;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    plugwarden::bootstrap();
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let usage = "usage: batch IN_DIR OUT_DIR [AUDIT_LOG] [PLUGIN]";
    let inputs = args.next().ok_or(usage)?;
    let out = args.next().ok_or(usage)?;
    let log = args.next().unwrap_or_else(|| "audit.jsonl".into());
    let plugin = args.next().unwrap_or_else(|| sibling("pw-echo"));

    let sandbox = Sandbox::builder(&plugin)
        .policy("strict")
        .allow_weaker()
        .build()?;
    let batch = Batch::new(sandbox, [inputs])
        .out_dir(out)
        .audit(&log)
        .resume(true)
        .workers(2);
    // Anything may stop the batch through its flag: a signal handler, a
    // deadline, a user's button. Here: one more input after 1,000 stops it.
    let stop = batch.stop_flag();
    let summary = batch.run(|event| match event {
        Event::Judged {
            name,
            verdict,
            done,
            ..
        } => {
            println!("{verdict}: {name}");
            if done > 1000 {
                stop.store(true, Ordering::SeqCst);
            }
        }
        Event::Failed { error } => eprintln!("stopping: {error}"),
        _ => {}
    })?;
    println!(
        "{} judged, {} skipped as already recorded: {:?}{}",
        summary.inputs,
        summary.skipped,
        summary.verdicts,
        if summary.interrupted {
            " (stopped: run again to finish)"
        } else {
            ""
        }
    );
    let verified = plugwarden::audit::verify(&log)?;
    println!("audit log {} verified: {verified:?}", log.display());
    Ok(())
}

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(name))
        .expect("a target directory")
}
