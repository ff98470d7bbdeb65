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
