//! `plugwarden run` on a pool: one audit record per input, recycling,
//! retries and quarantine, resume after kill -9, signals, dynamic scheduling.
//! Each test drives the real binary with inputs written to a scratch dir;
//! plugins get a unique `--arg` marker so leftover processes can be found.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{plugin, plugwarden, policy, scratch};
use serde_json::Value;

/// A marker no other test's plugin carries.
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pw-batch-marker-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Processes whose command line carries `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|a| a == marker.as_bytes()) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Waits up to 3 s for the processes carrying `marker` to be gone.
fn leftovers_after_exit(marker: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let found = processes_with(marker);
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_inputs(dir: &Path, inputs: &[(String, String)]) {
    std::fs::create_dir_all(dir).expect("mkdir inputs");
    for (name, content) in inputs {
        std::fs::write(dir.join(name), content).expect("write input");
    }
}

fn run_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(plugwarden());
    cmd.arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(args: &[&str]) -> Output {
    run_cmd(args).output().expect("run plugwarden")
}

fn records(audit: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(audit).expect("read audit log");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("an audit record is JSON"))
        .collect()
}

fn summary(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "--json summary: {e}; stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn verify(audit: &Path) -> Output {
    Command::new(plugwarden())
        .args(["audit", "verify"])
        .arg(audit)
        .output()
        .expect("run audit verify")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn counts_by(recs: &[Value], field: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for r in recs {
        *counts
            .entry(r[field].as_str().unwrap_or("null").to_string())
            .or_default() += 1;
    }
    counts
}

/// The probe command for input `i` of the mixed batch, and its verdict.
fn mixed(i: usize) -> (String, &'static str) {
    match i {
        _ if i % 2000 == 7 => ("sleep".into(), "timeout"),
        _ if i % 500 == 9 => ("alloc:100000".into(), "memory"),
        _ if i % 50 == 3 => ("crash".into(), "crashed"),
        _ if i % 50 == 5 => ("exit".into(), "protocol_error"),
        _ if i % 10 == 1 => ("fail:x".into(), "plugin_error"),
        _ => (format!("echo:{i}"), "ok"),
    }
}

/// Runs `n` mixed inputs through pw-probe on 2 workers: the output, the
/// audit records, the expected verdict counts, the leftover processes. The
/// deadline is 1 s, not less: on a loaded machine a fresh worker's start-up
/// counts against its first job's deadline.
fn run_mixed(n: usize) -> (Output, Vec<Value>, BTreeMap<String, u64>, Vec<String>) {
    let dir = scratch();
    let inputs: Vec<(String, String)> =
        (0..n).map(|i| (format!("in-{i:05}"), mixed(i).0)).collect();
    write_inputs(&dir.path().join("in"), &inputs);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..n {
        *expected.entry(mixed(i).1.to_string()).or_default() += 1;
    }
    let audit = dir.path().join("a.jsonl");
    let mark = marker();
    let probe = plugin("pw-probe");
    let o = run(&[
        "--plugin",
        path_str(&probe),
        "--policy",
        "strict",
        "--timeout",
        "1s",
        "--workers",
        "2",
        "--arg",
        &mark,
        "--audit",
        path_str(&audit),
        "--json",
        path_str(&dir.path().join("in")),
    ]);
    let v = verify(&audit);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    (o, records(&audit), expected, leftovers_after_exit(&mark))
}

/// 10,000 jobs that answer, refuse, crash, hang past the deadline, exit
/// early or run out of memory, through 2 workers; a 1,000-job run first, to
/// show that the host's memory does not grow with the number of inputs.
#[test]
fn test_run_10000_mixed_inputs_record_each_once_with_flat_host_rss() {
    const N: usize = 10_000;
    let (small, _, _, _) = run_mixed(1000);

    let (o, recs, _, leftovers) = run_mixed(N);

    assert_eq!(
        o.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(recs.len(), N);
    let inputs_seen: BTreeSet<&str> = recs
        .iter()
        .map(|r| r["input"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(inputs_seen.len(), N);
    let (wrong, raced) = judge_mixed(&recs);
    assert_eq!(wrong, Vec::<String>::new());
    let deaths = (0..N)
        .filter(|i| ["crashed", "memory", "protocol_error"].contains(&mixed(*i).1))
        .count();
    assert!(
        raced * 4 <= deaths,
        "{raced} of {deaths} deaths reported as `closed stdout before answering`"
    );
    let s = summary(&o);
    let poison = recs
        .iter()
        .filter(|r| r["attempt"] == 2 && is_retryable(&r["verdict"]))
        .count();
    assert_eq!(s["poison_count"], poison as u64);
    let tainted: u64 = recs
        .iter()
        .map(|r| r["attempt"].as_u64().unwrap_or(0) - 1 + u64::from(taints(&r["verdict"])))
        .sum();
    assert_eq!(s["recycles"]["tainted"], tainted);
    assert_eq!(leftovers, Vec::<String>::new());
    let rss_small = summary(&small)["host_max_rss_kib"].as_u64().unwrap_or(0);
    let rss_big = s["host_max_rss_kib"].as_u64().unwrap_or(u64::MAX);
    assert!(
        rss_big < rss_small + (4 << 10),
        "host RSS {rss_small} KiB at 1,000 jobs, {rss_big} KiB at 10,000"
    );
}

fn is_retryable(verdict: &Value) -> bool {
    ["crashed", "timeout", "memory"]
        .iter()
        .any(|v| verdict == v)
}

fn taints(verdict: &Value) -> bool {
    is_retryable(verdict) || verdict == "protocol_error"
}

/// Records of the mixed batch whose verdict or attempt is not what the
/// input asks for, and how many deaths (crash, abort, exit) came back as
/// `protocol_error: the plugin closed stdout before answering`. That is a
/// known race in the worker (stdout reaches EOF during exit teardown, just
/// before the pidfd says the process exited), tolerated here, but only in
/// small numbers and only for inputs that make the plugin die.
fn judge_mixed(recs: &[Value]) -> (Vec<String>, usize) {
    let mut wrong = Vec::new();
    let mut raced = 0;
    for r in recs {
        let name = r["input"].as_str().unwrap_or("");
        let index: usize = name
            .rsplit("in-")
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        let expected = mixed(index).1;
        let attempt_ok = r["attempt"]
            == if is_retryable(&Value::from(expected)) {
                2
            } else {
                1
            };
        if r["verdict"] == expected && attempt_ok {
            continue;
        }
        let is_race = r["verdict"] == "protocol_error"
            && r["detail"] == "the plugin closed stdout before answering"
            && ["crashed", "memory", "protocol_error"].contains(&expected);
        if is_race {
            raced += 1;
        } else {
            wrong.push(format!(
                "{name}: expected {expected}, got {} (attempt {})",
                r["verdict"], r["attempt"]
            ));
        }
    }
    (wrong, raced)
}

/// Runs single-input batches of `command` on one worker; the one record.
fn run_single(command: &str, extra: &[&str]) -> (Output, Value, PathBuf, tempfile::TempDir) {
    let dir = scratch();
    write_inputs(&dir.path().join("in"), &[("x".into(), command.into())]);
    let audit = dir.path().join("a.jsonl");
    let probe = plugin("pw-probe");
    let mut args = vec![
        "--plugin",
        path_str(&probe),
        "--policy",
        "strict",
        "--workers",
        "1",
    ];
    args.extend_from_slice(extra);
    let in_dir = dir.path().join("in");
    args.extend_from_slice(&["--audit", path_str(&audit), "--json", path_str(&in_dir)]);
    let o = run(&args);
    let recs = records(&audit);
    assert_eq!(recs.len(), 1);
    (o, recs[0].clone(), in_dir.join("x"), dir)
}

/// A hang is retried once on a fresh worker, then quarantined.
#[test]
fn test_run_retried_timeout_records_attempt_2_and_poison() {
    let (o, rec, input, _dir) = run_single("sleep", &["--timeout", "200ms"]);

    assert_eq!(rec["attempt"], 2);
    assert_eq!(rec["verdict"], "timeout");
    assert_eq!(rec["recycle_reason"], "tainted");
    assert_eq!(summary(&o)["poison"][0], path_str(&input));
    assert_eq!(summary(&o)["recycles"]["tainted"], 2);
}

#[test]
fn test_run_violation_is_not_retried() {
    let (o, rec, _input, _dir) = run_single("socket", &[]);

    assert_eq!(rec["verdict"], "violation");
    assert_eq!(rec["attempt"], 1);
    assert_eq!(summary(&o)["poison_count"], 0);
}

#[test]
fn test_run_killed_with_sigkill_then_resumed_records_each_input_once() {
    const N: usize = 300;
    let dir = scratch();
    let inputs: Vec<(String, String)> = (0..N)
        .map(|i| (format!("in-{i:04}"), "nap:10".to_string()))
        .collect();
    write_inputs(&dir.path().join("in"), &inputs);
    let audit = dir.path().join("a.jsonl");
    let mark = marker();
    let probe = plugin("pw-probe");
    let in_dir = dir.path().join("in");
    let args = [
        "--plugin",
        path_str(&probe),
        "--policy",
        "strict",
        "--workers",
        "2",
        "--arg",
        &mark,
        "--audit",
        path_str(&audit),
        "--json",
        path_str(&in_dir),
    ];
    let mut child = run_cmd(&args).spawn().expect("spawn plugwarden");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&audit).map_or(0, |t| t.lines().count()) < 50
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9 the host");
    child.wait().expect("reap the host");
    let before = records(&audit).len();
    assert!(before < N, "the first run finished before it was killed");
    assert_eq!(leftovers_after_exit(&mark), Vec::<String>::new());

    let o = run_cmd(&args)
        .arg("--resume")
        .output()
        .expect("run plugwarden --resume");

    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let recs = records(&audit);
    let inputs_seen: BTreeSet<&str> = recs
        .iter()
        .map(|r| r["input"].as_str().unwrap_or(""))
        .collect();
    assert_eq!((recs.len(), inputs_seen.len()), (N, N));
    assert_eq!(summary(&o)["skipped"].as_u64(), Some(before as u64));
    let v = verify(&audit);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

/// A log of 5 ok records, for tampering.
fn small_log(dir: &Path) -> PathBuf {
    let inputs: Vec<(String, String)> = (0..5)
        .map(|i| (format!("in-{i}"), format!("echo:{i}")))
        .collect();
    write_inputs(&dir.join("in"), &inputs);
    let audit = dir.join("a.jsonl");
    let o = run(&[
        "--plugin",
        path_str(&plugin("pw-probe")),
        "--policy",
        "strict",
        "--workers",
        "1",
        "--audit",
        path_str(&audit),
        path_str(&dir.join("in")),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    audit
}

fn edit_lines(path: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let mut lines: Vec<String> = std::fs::read_to_string(path)
        .expect("read log")
        .lines()
        .map(String::from)
        .collect();
    edit(&mut lines);
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .expect("write log");
}

#[test]
fn test_audit_verify_intact_log_prints_ok_with_count() {
    let dir = scratch();
    let audit = small_log(dir.path());

    let o = verify(&audit);

    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("OK: 5 records"));
}

#[test]
fn test_audit_verify_flipped_byte_fails_naming_line_3() {
    let dir = scratch();
    let audit = small_log(dir.path());
    edit_lines(&audit, |l| {
        l[2] = l[2].replacen("\"wall_ms\":", "\"wall_ms\":9", 1)
    });

    let o = verify(&audit);

    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 3"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn test_audit_verify_deleted_line_fails_naming_line_3() {
    let dir = scratch();
    let audit = small_log(dir.path());
    edit_lines(&audit, |l| {
        l.remove(2);
    });

    let o = verify(&audit);

    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("record 4 (line 3)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn test_audit_verify_swapped_lines_fails_naming_line_2() {
    let dir = scratch();
    let audit = small_log(dir.path());
    edit_lines(&audit, |l| l.swap(1, 2));

    let o = verify(&audit);

    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn test_run_resume_with_tampered_log_exits_2_before_any_job() {
    let dir = scratch();
    let audit = small_log(dir.path());
    edit_lines(&audit, |l| l.swap(1, 2));
    let out = dir.path().join("out");

    let o = run(&[
        "--plugin",
        path_str(&plugin("pw-probe")),
        "--policy",
        "strict",
        "--audit",
        path_str(&audit),
        "--resume",
        "--out",
        path_str(&out),
        path_str(&dir.path().join("in")),
    ]);

    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0), 0);
}

#[test]
fn test_run_audit_path_is_a_directory_exits_2_before_any_job() {
    let dir = scratch();
    write_inputs(&dir.path().join("in"), &[("a".into(), "echo:a".into())]);
    let out = dir.path().join("out");

    let o = run(&[
        "--plugin",
        path_str(&plugin("pw-probe")),
        "--policy",
        "strict",
        "--audit",
        path_str(dir.path()),
        "--out",
        path_str(&out),
        path_str(&dir.path().join("in")),
    ]);

    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0), 0);
}

fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read output dir")
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read output"),
            )
        })
        .collect()
}

#[test]
fn test_run_batch_1_and_batch_100_write_the_same_outputs() {
    let dir = scratch();
    let inputs: Vec<(String, String)> = (0..30)
        .map(|i| (format!("in-{i:02}"), format!("echo:{i}")))
        .collect();
    write_inputs(&dir.path().join("in"), &inputs);
    let probe = plugin("pw-probe");
    let run_with = |batch: &str, out: &str| {
        run(&[
            "--plugin",
            path_str(&probe),
            "--policy",
            "strict",
            "--workers",
            "2",
            "--batch",
            batch,
            "--json",
            "--out",
            path_str(&dir.path().join(out)),
            path_str(&dir.path().join("in")),
        ])
    };

    let one = run_with("1", "out1");
    let hundred = run_with("100", "out100");

    assert_eq!(summary(&one)["recycles"]["batch"], 30);
    assert_eq!(summary(&hundred)["recycles"]["batch"], 0);
    let first = outputs(&dir.path().join("out1"));
    assert_eq!(first.len(), 30);
    assert_eq!(first["in-07"], b"7");
    assert_eq!(first, outputs(&dir.path().join("out100")));
}

/// With 2 workers and [500 ms, 50 ms ×9], one slot takes the long job and
/// the other drains the nine short ones meanwhile: the long one finishes
/// last (or next to last on a loaded machine). A static split would finish
/// four short jobs after it.
#[test]
fn test_run_long_job_does_not_delay_short_jobs() {
    let dir = scratch();
    let mut inputs = vec![("a-long".to_string(), "nap:500".to_string())];
    inputs.extend((1..=9).map(|i| (format!("b-{i}"), "nap:50".to_string())));
    write_inputs(&dir.path().join("in"), &inputs);
    let audit = dir.path().join("a.jsonl");

    let o = run(&[
        "--plugin",
        path_str(&plugin("pw-probe")),
        "--policy",
        "strict",
        "--workers",
        "2",
        "--audit",
        path_str(&audit),
        path_str(&dir.path().join("in")),
    ]);

    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let order: Vec<String> = records(&audit)
        .iter()
        .map(|r| r["input"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(order.len(), 10);
    let after_long = order
        .iter()
        .rev()
        .take_while(|n| !n.ends_with("a-long"))
        .count();
    // A static split would leave four short jobs behind the long one; a
    // loaded machine may push the last short one past it.
    assert!(after_long <= 1, "completion order: {order:?}");
}

/// pw-leaky keeps 8 MiB more per job; with recycle_rss = 64 MiB its workers
/// are retired for rss and no plugin ever grows far past the threshold.
#[test]
fn test_run_leaky_plugin_is_recycled_for_rss_and_stays_bounded() {
    let dir = scratch();
    let inputs: Vec<(String, String)> = (0..40)
        .map(|i| (format!("in-{i:02}"), format!("x{i}")))
        .collect();
    write_inputs(&dir.path().join("in"), &inputs);
    let p = policy(
        dir.path(),
        "leaky.toml",
        "description = \"strict, recycled at 64 MiB\"\nextends = \"strict\"\n[worker]\nbatch = 1000\nrecycle_rss = \"64MiB\"\n",
    );
    let audit = dir.path().join("a.jsonl");

    let o = run(&[
        "--plugin",
        path_str(&plugin("pw-leaky")),
        "--policy",
        path_str(&p),
        "--workers",
        "2",
        "--audit",
        path_str(&audit),
        "--json",
        path_str(&dir.path().join("in")),
    ]);

    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary(&o);
    assert!(
        s["recycles"]["rss"].as_u64().unwrap_or(0) >= 4,
        "recycles: {}",
        s["recycles"]
    );
    let recs = records(&audit);
    assert_eq!(
        counts_by(&recs, "verdict"),
        BTreeMap::from([("ok".to_string(), 40)])
    );
    let peak = recs
        .iter()
        .filter_map(|r| r["max_rss_kib"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(peak < 80 << 10, "a plugin reached {peak} KiB");
    assert!(
        s["host_max_rss_kib"].as_u64().unwrap_or(u64::MAX) < 128 << 10,
        "host RSS {}",
        s["host_max_rss_kib"]
    );
}

/// SIGTERM with two jobs that never end: intake stops, the grace period
/// runs out, the jobs are killed and recorded as cancelled, exit 143.
#[test]
fn test_run_sigterm_cancels_jobs_in_flight_and_exits_143() {
    let dir = scratch();
    let mut inputs = vec![
        ("a".to_string(), "sleep".to_string()),
        ("b".to_string(), "sleep".to_string()),
    ];
    inputs.extend((0..20).map(|i| (format!("c-{i:02}"), "echo:c".to_string())));
    write_inputs(&dir.path().join("in"), &inputs);
    let audit = dir.path().join("a.jsonl");
    let mark = marker();
    let mut child = run_cmd(&[
        "--plugin",
        path_str(&plugin("pw-probe")),
        "--policy",
        "strict",
        "--timeout",
        "60s",
        "--workers",
        "2",
        "--grace",
        "500ms",
        "--arg",
        &mark,
        "--audit",
        path_str(&audit),
        path_str(&dir.path().join("in")),
    ])
    .spawn()
    .expect("spawn plugwarden");
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&mark).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("send SIGTERM");
    let status = child.wait().expect("wait");

    assert_eq!(status.code(), Some(143));
    let recs = records(&audit);
    assert_eq!(
        counts_by(&recs, "verdict"),
        BTreeMap::from([("cancelled".to_string(), 2)])
    );
    assert_eq!(leftovers_after_exit(&mark), Vec::<String>::new());
}

/// An input that cannot be read (here a dangling symlink) gets its own
/// `input_error` record; the other inputs go on.
#[test]
fn test_run_unreadable_input_gets_input_error_and_others_go_on() {
    let dir = scratch();
    let in_dir = dir.path().join("in");
    write_inputs(
        &in_dir,
        &[("a".into(), "echo:a".into()), ("c".into(), "echo:c".into())],
    );
    std::os::unix::fs::symlink(dir.path().join("gone"), in_dir.join("b")).expect("symlink");
    let audit = dir.path().join("a.jsonl");

    let o = run(&[
        "--plugin",
        path_str(&plugin("pw-probe")),
        "--policy",
        "strict",
        "--audit",
        path_str(&audit),
        path_str(&in_dir),
    ]);

    assert_eq!(o.status.code(), Some(1));
    let recs = records(&audit);
    let verdicts: BTreeSet<(&str, &str)> = recs
        .iter()
        .map(|r| {
            (
                r["input"].as_str().unwrap_or(""),
                r["verdict"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let name = |n: &str| in_dir.join(n).to_string_lossy().into_owned();
    let (a, b, c) = (name("a"), name("b"), name("c"));
    let expected = BTreeSet::from([
        (a.as_str(), "ok"),
        (b.as_str(), "input_error"),
        (c.as_str(), "ok"),
    ]);
    assert_eq!(verdicts, expected);
    let unread = recs
        .iter()
        .find(|r| r["verdict"] == "input_error")
        .expect("the input_error record");
    assert_eq!(unread["input_sha256"], Value::Null);
}

// The pool as a library: per-slot fork servers and pipelined windows.

use plugwarden::pool::{Finished, Pool, PoolConfig, PoolStats, RecycleReason, Task};
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::ForkServer;
use std::sync::Arc;

fn probe_sandbox() -> Arc<Sandbox> {
    let fs = Arc::new(ForkServer::start(&plugwarden()).expect("fork server"));
    let policy = Arc::new(plugwarden::policy::load("strict").expect("strict policy"));
    let spec = PluginSpec {
        exe: plugin("pw-probe"),
        args: Vec::new(),
        mode: Mode::Worker,
        env: Vec::new(),
        cwd: None,
    };
    Arc::new(Sandbox::new(fs, spec, policy, Enforce::Policy).expect("sandbox"))
}

fn pool_config(workers: usize, batch: u64) -> PoolConfig {
    PoolConfig {
        workers,
        batch,
        recycle_rss: u64::MAX,
        max_lifetime: Duration::from_secs(3600),
        retry: true,
        spill: None,
    }
}

/// Runs probe commands through a pool (tag = index); `on_result` sees each
/// result as it arrives, while its worker may still be alive.
fn pool_run(
    sandbox: Arc<Sandbox>,
    config: PoolConfig,
    commands: Vec<String>,
    mut on_result: impl FnMut(&Finished<usize>),
) -> (Vec<Finished<usize>>, PoolStats) {
    let (pool, feeder) = Pool::start(sandbox, config).expect("pool");
    let producer = std::thread::spawn(move || {
        for (tag, cmd) in commands.into_iter().enumerate() {
            let task = Task {
                tag,
                input: Ok(cmd.into_bytes().into()),
                sink: None,
            };
            if feeder.submit(task).is_err() {
                break;
            }
        }
    });
    let mut results = Vec::new();
    for f in pool.results().iter() {
        on_result(&f);
        results.push(f);
    }
    producer.join().expect("producer thread");
    (results, pool.join())
}

/// The parent pid of `pid`, from /proc (None once it is gone).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The fork server that started the plugin `pid`: its parent, or its
/// parent's parent when the parent is the sandbox's init (PID 1 of the
/// plugin's namespace).
fn fork_server_of(pid: i32) -> Option<i32> {
    let parent = parent_of(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{parent}/status")).ok()?;
    let is_init = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            ids.len() > 1 && ids.last() == Some(&"1")
        });
    if is_init {
        parent_of(parent)
    } else {
        Some(parent)
    }
}

/// True while `pid` exists and is not a zombie.
fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Two slots fork from two fork servers (so they spawn in parallel), and
/// the extra one is gone once the pool is joined.
#[test]
fn test_pool_two_slots_spawn_from_two_fork_servers_and_leave_none() {
    let sandbox = probe_sandbox();
    let own = sandbox.fork_server().pid() as i32;
    let mut parents = BTreeSet::new();

    let (results, _) = pool_run(
        sandbox.clone(),
        pool_config(2, 100),
        vec!["nap:40".to_string(); 16],
        |f| parents.extend(fork_server_of(f.outcome.pid)),
    );

    assert_eq!(results.len(), 16);
    assert!(results.iter().all(|f| f.outcome.verdict.is_ok()));
    assert_eq!(parents.len(), 2, "parents of the workers: {parents:?}");
    assert!(
        parents.contains(&own),
        "parents {parents:?}, pool's fork server {own}"
    );
    let others: Vec<i32> = parents.into_iter().filter(|p| *p != own).collect();
    assert_eq!(others.iter().filter(|p| is_running(**p)).count(), 0);
}

/// A job that crashes its worker in the middle of a pipelined window: it
/// is retried and quarantined; the jobs sent behind it are run again on a
/// fresh worker and answer ok at their first attempt.
#[test]
fn test_pool_crash_in_pipelined_window_does_not_fail_neighbours() {
    let commands: Vec<String> = (0..2000)
        .map(|i| match i % 100 {
            60 => "crash".to_string(),
            70 => "fail:no".to_string(),
            _ => format!("echo:{i}"),
        })
        .collect();

    let (results, stats) = pool_run(probe_sandbox(), pool_config(1, 10_000), commands, |_| {});

    assert_eq!(results.len(), 2000);
    let tags: BTreeSet<usize> = results.iter().map(|f| f.tag).collect();
    assert_eq!(tags.len(), 2000);
    let mut wrong = Vec::new();
    for f in &results {
        let (verdict, attempt) = (f.outcome.verdict.word(), f.attempt);
        let right = match f.tag % 100 {
            // A dying plugin may be seen closing stdout first (see judge_mixed).
            60 => (verdict, attempt) == ("crashed", 2) || verdict == "protocol_error",
            70 => (verdict, attempt) == ("plugin_error", 1),
            _ => {
                (verdict, attempt) == ("ok", 1)
                    && f.outcome.output == format!("{}", f.tag).as_bytes()
            }
        };
        if !right {
            wrong.push(format!("{}: {verdict} (attempt {attempt})", f.tag));
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
    assert!(stats.pipelined > 0, "no window of more than one job formed");
    assert!(stats.resent > 0, "no job was ever sent behind a crash");
}

/// With pipelining, a worker still answers exactly its jittered batch
/// (40 ± 4 jobs) and the last of them carries the `batch` recycle reason.
#[test]
fn test_pool_pipelined_worker_recycles_after_its_jittered_batch() {
    let commands: Vec<String> = (0..600).map(|i| format!("echo:{i}")).collect();

    let (results, stats) = pool_run(probe_sandbox(), pool_config(1, 40), commands, |_| {});

    assert_eq!(results.len(), 600);
    let mut by_generation: BTreeMap<u64, Vec<Option<RecycleReason>>> = BTreeMap::new();
    for f in &results {
        let generation = f.generation.expect("a worker ran it");
        by_generation
            .entry(generation)
            .or_default()
            .push(f.recycle_reason);
    }
    let last = *by_generation.keys().last().expect("a generation");
    for (generation, reasons) in &by_generation {
        if *generation == last {
            continue;
        }
        assert!(
            (36..=44).contains(&reasons.len()),
            "generation {generation} ran {} jobs",
            reasons.len()
        );
        let (end, before) = reasons.split_last().expect("jobs");
        assert_eq!(*end, Some(RecycleReason::Batch), "generation {generation}");
        assert!(
            before.iter().all(Option::is_none),
            "generation {generation}"
        );
    }
    let batch_recycles = stats
        .recycles_by_reason()
        .find_map(|(r, n)| (r == RecycleReason::Batch).then_some(n));
    let generations = by_generation.len() as u64;
    // The last worker is retired by the end of the run, with a reason only
    // if its batch happened to end with the last input.
    assert!(
        batch_recycles == Some(generations - 1) || batch_recycles == Some(generations),
        "{batch_recycles:?} batch recycles for {generations} workers"
    );
    assert!(stats.pipelined > 0, "no window of more than one job formed");
}

/// A host killed with SIGKILL while two slots run: each slot's fork server
/// sees its socket close, kills its workers and exits; nothing is left.
#[test]
fn test_run_killed_host_leaves_no_fork_server_or_worker_of_either_slot() {
    let dir = scratch();
    let inputs: Vec<(String, String)> = (0..4)
        .map(|i| (format!("in-{i}"), "sleep".to_string()))
        .collect();
    write_inputs(&dir.path().join("in"), &inputs);
    let mark = marker();
    let mut host = run_cmd(&[
        "--plugin",
        path_str(&plugin("pw-probe")),
        "--policy",
        "strict",
        "--timeout",
        "60s",
        "--workers",
        "2",
        "--arg",
        &mark,
        path_str(&dir.path().join("in")),
    ])
    .spawn()
    .expect("spawn plugwarden");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut parents = BTreeSet::new();
    while parents.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        // The host carries the marker too (in its own arguments).
        parents = processes_with(&mark)
            .iter()
            .filter_map(|pid| pid.parse().ok())
            .filter(|pid| *pid != host.id() as i32)
            .filter_map(fork_server_of)
            .collect();
    }

    host.kill().expect("kill -9 the host");
    host.wait().expect("wait");

    assert_eq!(parents.len(), 2, "fork servers seen: {parents:?}");
    assert_eq!(leftovers_after_exit(&mark), Vec::<String>::new());
    let gone_by = Instant::now() + Duration::from_secs(3);
    while parents.iter().any(|p| is_running(*p)) && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<i32> = parents.into_iter().filter(|p| is_running(*p)).collect();
    assert_eq!(left, Vec::<i32>::new());
}
