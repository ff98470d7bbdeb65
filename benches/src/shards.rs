//! A batch in shards: N `plugwarden run --shard i/N --workers 1` processes
//! at once against one `plugwarden run --workers N` over the same inputs
//! (the release CLI, pw-echo, audit on), and `plugwarden audit merge` of
//! shard logs holding a million records in all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use plugwarden::audit::{AuditRecord, AuditWriter, Job, Root, Route};
use plugwarden::shard::{self, Shard};

/// `count` inputs of 4 KiB in a fresh directory `in`.
pub fn inputs(count: usize) -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new()
        .prefix("pw-bench-shards-")
        .tempdir()?;
    let root = dir.path().join("in");
    std::fs::create_dir(&root)?;
    let body = vec![b'x'; 4096];
    for i in 0..count {
        std::fs::write(root.join(format!("in-{i:06}")), &body)?;
    }
    Ok((dir, root))
}

fn start_run(plugwarden: &Path, echo: &Path, args: &[String], root: &Path) -> Result<Child> {
    Command::new(plugwarden)
        .args(["run", "--plugin"])
        .arg(echo)
        .args(["--policy", "strict", "--json"])
        .args(args)
        .arg(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting plugwarden run")
}

/// Jobs per second of `runs` (each its flags) started at once over `root`,
/// from the first start to the last exit: together they must judge all
/// `count` inputs ok. Each run's audit log is left beside `root`.
fn jobs_per_s(
    plugwarden: &Path,
    echo: &Path,
    root: &Path,
    count: usize,
    runs: &[Vec<String>],
) -> Result<f64> {
    let t = Instant::now();
    let children = runs
        .iter()
        .map(|args| start_run(plugwarden, echo, args, root))
        .collect::<Result<Vec<_>>>()?;
    let mut judged = 0;
    for child in children {
        let o = child.wait_with_output()?;
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout)
            .with_context(|| format!("run: {}", String::from_utf8_lossy(&o.stderr)))?;
        if !o.status.success() {
            bail!("run failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        judged += summary["verdicts"]["ok"].as_u64().unwrap_or(0);
    }
    if judged != count as u64 {
        bail!("{} runs judged {judged} of {count} inputs ok", runs.len());
    }
    Ok(count as f64 / t.elapsed().as_secs_f64())
}

/// The flags of a run writing the audit log `name`.jsonl beside `root`.
fn run_flags(root: &Path, name: &str, workers: usize, shard: Option<String>) -> Vec<String> {
    let audit = root.with_file_name(format!("{name}.jsonl"));
    let _ = std::fs::remove_file(&audit);
    let mut flags = vec![
        "--workers".to_string(),
        workers.to_string(),
        "--audit".to_string(),
        audit.display().to_string(),
    ];
    flags.extend(
        shard
            .map(|s| ["--shard".to_string(), s])
            .into_iter()
            .flatten(),
    );
    flags
}

/// Jobs per second of one run with `n` workers over `root` (`count` inputs).
pub fn one_run_jobs_per_s(
    plugwarden: &Path,
    echo: &Path,
    root: &Path,
    count: usize,
    n: usize,
) -> Result<f64> {
    let runs = [run_flags(root, "one", n, None)];
    jobs_per_s(plugwarden, echo, root, count, &runs)
}

/// Jobs per second of `n` shards started at once, one worker each.
pub fn shards_jobs_per_s(
    plugwarden: &Path,
    echo: &Path,
    root: &Path,
    count: usize,
    n: usize,
) -> Result<f64> {
    let runs: Vec<_> = (0..n)
        .map(|i| run_flags(root, &format!("shard-{i}"), 1, Some(format!("{i}/{n}"))))
        .collect();
    jobs_per_s(plugwarden, echo, root, count, &runs)
}

/// `shards` shard logs under `dir` holding `records` input records in all,
/// as `run --shard` writes them (start, records, end), of inputs that need
/// not exist: the merge reads only the logs.
pub fn synthetic_logs(dir: &Path, records: usize, shards: u32) -> Result<Vec<PathBuf>> {
    let root = dir.join("in");
    let job = Job {
        shards,
        roots: vec![Root::new(root.as_os_str().as_encoded_bytes())],
        routes: vec![Route {
            plugin: "/usr/lib/plugwarden/pw-pdf-sanitize".into(),
            plugin_sha256: "ab".repeat(32),
            policy: "pdf".into(),
            policy_sha256: "cd".repeat(32),
        }],
    };
    let paths: Vec<PathBuf> = (0..shards)
        .map(|i| dir.join(format!("synthetic-{i}.jsonl")))
        .collect();
    let mut logs = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let _ = std::fs::remove_file(path);
        let mut log = AuditWriter::open(path)?;
        shard::begin_log(&mut log, path, Some(Shard::new(i as u32, shards)?), &job)?;
        logs.push((log, 0u64));
    }
    let roots = [root.clone()];
    for n in 0..records {
        let input = root.join(format!("archive/{:03}/scan-{n:08}.pdf", n % 1000));
        let owner = (0..shards)
            .find(|&i| {
                Shard {
                    index: i,
                    count: shards,
                }
                .owns(&roots, &input)
            })
            .unwrap_or(0);
        let mut rec = AuditRecord {
            time: "2026-11-30T03:04:05.123Z".into(),
            input_sha256: Some(format!("{n:064x}")),
            plugin: job.routes[0].plugin.clone(),
            plugin_sha256: job.routes[0].plugin_sha256.clone(),
            policy: "pdf".into(),
            policy_sha256: job.routes[0].policy_sha256.clone(),
            worker_pid: Some(40_000 + (n % 1000) as u32),
            generation: Some(1),
            verdict: "ok".into(),
            attempt: 1,
            wall_ms: 210,
            cpu_ms: 190,
            max_rss_kib: 48_000,
            output_sha256: Some(format!("{:064x}", n + 1)),
            ..AuditRecord::default()
        };
        rec.set_input(input.as_os_str().as_encoded_bytes());
        let out = dir.join(format!(
            "out/archive/{:03}/scan-{n:08}.pdf.safe.pdf",
            n % 1000
        ));
        rec.set_output(out.as_os_str().as_encoded_bytes());
        let (log, count) = &mut logs[owner as usize];
        log.append(rec)?;
        *count += 1;
    }
    for (i, (mut log, count)) in logs.into_iter().enumerate() {
        shard::end_log(&mut log, Shard::new(i as u32, shards)?, &job, count)?;
    }
    Ok(paths)
}

/// Seconds of `plugwarden audit merge` over `logs`.
pub fn merge_secs(plugwarden: &Path, logs: &[PathBuf], out: &Path) -> Result<f64> {
    let _ = std::fs::remove_file(out);
    let t = Instant::now();
    let o = Command::new(plugwarden)
        .args(["audit", "merge"])
        .args(logs)
        .arg("--out")
        .arg(out)
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !o.status.success() {
        bail!("audit merge: {}", String::from_utf8_lossy(&o.stderr));
    }
    Ok(secs)
}
