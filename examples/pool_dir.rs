//! A pool over a directory, with a tamper-evident audit log.
//!
//! Every file under DIR goes through the worker plugin on several workers;
//! each result is one record of the audit log (hash-chained, checked with
//! `plugwarden audit verify` or `plugwarden::audit::verify`).
//!
//! ```text
//! cargo run --example pool_dir -- DIR [AUDIT_LOG] [PLUGIN]
//! ```

use std::path::PathBuf;

use plugwarden::audit::{AuditRecord, AuditWriter};
use plugwarden::pool::{Pool, PoolConfig, Task};
use plugwarden::Sandbox;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    plugwarden::bootstrap();
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let dir = args
        .next()
        .ok_or("usage: pool_dir DIR [AUDIT_LOG] [PLUGIN]")?;
    let log = args.next().unwrap_or_else(|| "audit.jsonl".into());
    let plugin = args.next().unwrap_or_else(|| sibling("pw-echo"));

    let sandbox = Sandbox::builder(&plugin)
        .policy("strict")
        .allow_weaker()
        .build()?;
    let limit = sandbox.policy().limits.input;
    let mut config = PoolConfig::from_policy(sandbox.policy());
    config.workers = 2;

    // The paths are listed now; each file is opened and read only when the
    // pool's feeding thread pulls its task, as the queue has room, so a
    // directory of a million files holds a few inputs in memory at a time.
    let roots = vec![dir];
    let files: Vec<PathBuf> = plugwarden::input::walk(&roots)
        .filter_map(Result::ok)
        .map(|e| e.path)
        .collect();
    let tasks = files
        .into_iter()
        .map(move |p| Task::file(p.clone(), p, limit));

    let mut audit = AuditWriter::open(std::path::Path::new(&log))?;
    let mut results = Pool::map(sandbox, config, tasks)?;
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for done in results.by_ref() {
        let verdict = &done.outcome.verdict;
        *counts.entry(verdict.word()).or_default() += 1;
        let mut record = AuditRecord {
            plugin: plugin.display().to_string(),
            policy: "strict".into(),
            verdict: verdict.word().into(),
            detail: verdict.detail(),
            attempt: done.attempt,
            wall_ms: done.outcome.wall.as_millis() as u64,
            cpu_ms: done.outcome.cpu_ms,
            max_rss_kib: done.outcome.max_rss_kib,
            generation: done.generation,
            ..AuditRecord::default()
        };
        record.set_input(done.tag.as_os_str().as_encoded_bytes());
        audit.append(record)?;
        println!("{}: {verdict}", done.tag.display());
    }
    let stats = results.join();
    audit.sync()?;
    let summary = plugwarden::audit::verify(std::path::Path::new(&log))?;
    println!(
        "{counts:?}; {} workers started; audit log {} verified ({summary:?})",
        stats.workers_started,
        log.display()
    );
    Ok(())
}

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent()
        .and_then(|d| d.parent())
        .map(|d| d.join(name))
        .expect("a target directory")
}
