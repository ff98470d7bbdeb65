//! A batch split into shards (`run --shard`, `sanitize --shard`), as a
//! Slurm array or a Kubernetes Indexed Job runs it, simulated on this
//! machine: each shard a real `plugwarden run` over the same inputs, then
//! `audit merge` over their logs. What must hold: the shards split the
//! inputs disjointly and completely whatever N and however the inputs are
//! listed, a shard killed with SIGKILL and resumed still merges to exactly
//! once, tampering and mixed jobs are caught, and `--shard auto` reads
//! the schedulers' variables and refuses to guess.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{plugin, plugwarden, repo, scratch};
use serde_json::Value;

/// The variables `--shard auto` reads: cleared in every command, so the
/// environment the tests run in (perhaps a Slurm job) cannot leak in.
const SCHEDULER_VARS: [&str; 7] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "JOB_COMPLETION_INDEX",
    "PLUGWARDEN_SHARDS",
];

fn plugwarden_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(plugwarden());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in SCHEDULER_VARS {
        cmd.env_remove(var);
    }
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run plugwarden")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The probe command for input `i`: mostly echoes, some that crash,
/// violate the policy or are refused by the plugin.
fn command(i: usize) -> String {
    match i % 10 {
        3 => "crash".to_owned(),
        5 => "socket".to_owned(),
        7 => "fail:no".to_owned(),
        _ => format!("echo:{i}"),
    }
}

/// `count` inputs under `dir/in`, a third of them one directory down.
fn write_inputs(dir: &Path, count: usize, command: impl Fn(usize) -> String) -> PathBuf {
    let root = dir.join("in");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    for i in 0..count {
        let name = if i % 3 == 0 {
            format!("sub/in-{i:04}")
        } else {
            format!("in-{i:04}")
        };
        std::fs::write(root.join(name), command(i)).expect("write input");
    }
    root
}

/// `plugwarden run` of the probe under strict on one worker, with `args`
/// (the shard and audit flags) before `inputs`.
fn run_args(args: &[&str], inputs: &[&Path]) -> Command {
    let probe = plugin("pw-probe");
    let mut cmd = plugwarden_cmd(&[
        "run",
        "--plugin",
        s(&probe),
        "--policy",
        "strict",
        "--workers",
        "1",
        "--timeout",
        "5s",
    ]);
    cmd.args(args).args(inputs);
    cmd
}

fn run_shard(shard: &str, audit: &Path, inputs: &[&Path]) -> Output {
    let o = output(&mut run_args(
        &["--shard", shard, "--audit", s(audit)],
        inputs,
    ));
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "shard {shard}: {}",
        text(&o.stderr)
    );
    o
}

fn lines(audit: &Path) -> Vec<Value> {
    std::fs::read_to_string(audit)
        .expect("read audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a record is JSON"))
        .collect()
}

/// The inputs an audit log has records for.
fn recorded(audit: &Path) -> BTreeSet<String> {
    lines(audit)
        .iter()
        .filter_map(|r| r["input"].as_str().map(str::to_owned))
        .collect()
}

/// Every file under `root`, as `run` names them.
fn all_inputs(root: &Path) -> BTreeSet<String> {
    walk(root)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

fn merge(logs: &[PathBuf], inputs: Option<&Path>, out: &Path) -> Output {
    let mut cmd = plugwarden_cmd(&["audit", "merge"]);
    cmd.args(logs);
    if let Some(root) = inputs {
        cmd.arg("--inputs").arg(root);
    }
    output(cmd.arg("--out").arg(out))
}

fn verify(log: &Path) -> Output {
    output(&mut plugwarden_cmd(&["audit", "verify", s(log)]))
}

fn shard_logs(dir: &Path, n: u32) -> Vec<PathBuf> {
    (0..n)
        .map(|i| dir.join(format!("shard-{i}-of-{n}.jsonl")))
        .collect()
}

/// For N = 1, 3 and 7, the N shards' records cover every input once, the
/// merge proves it, and the merged log verifies.
#[test]
fn test_shards_1_3_7_split_inputs_disjointly_and_completely_and_merge() {
    const INPUTS: usize = 40;
    let dir = scratch();
    let root = write_inputs(dir.path(), INPUTS, command);
    let expected = all_inputs(&root);

    for n in [1u32, 3, 7] {
        let logs = shard_logs(dir.path(), n);
        let mut seen: Vec<BTreeSet<String>> = Vec::new();
        for (i, log) in logs.iter().enumerate() {
            run_shard(&format!("{i}/{n}"), log, &[&root]);
            seen.push(recorded(log));
        }
        let out = dir.path().join(format!("merged-{n}.jsonl"));
        let merged = merge(&logs, Some(&root), &out);

        let union: BTreeSet<String> = seen.iter().flatten().cloned().collect();
        assert_eq!(union, expected, "N = {n}: the union of the shards");
        let total: usize = seen.iter().map(BTreeSet::len).sum();
        assert_eq!(total, INPUTS, "N = {n}: an input in two shards");
        assert!(
            merged.status.success(),
            "N = {n}: {}{}",
            text(&merged.stdout),
            text(&merged.stderr)
        );
        let v = verify(&out);
        assert!(v.status.success(), "N = {n}: {}", text(&v.stderr));
        assert!(
            text(&v.stdout).starts_with(&format!("OK: {} records", INPUTS + 1)),
            "{}",
            text(&v.stdout)
        );
        assert_eq!(recorded(&out), expected, "N = {n}: the merged log");
    }
}

/// Inputs named one by one on the command line, in two orders: each shard
/// gets the same inputs. The two runs are different jobs (their INPUT
/// arguments differ), so their logs do not merge together.
#[test]
fn test_shard_partition_is_the_same_when_inputs_are_listed_in_another_order() {
    const N: u32 = 3;
    let dir = scratch();
    let root = write_inputs(dir.path(), 30, |i| format!("echo:{i}"));
    let mut files = walk(&root);
    files.sort();
    let forward: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let backward: Vec<&Path> = forward.iter().rev().copied().collect();

    let mut partitions = Vec::new();
    for (name, order) in [("forward", &forward), ("backward", &backward)] {
        let logs: Vec<PathBuf> = (0..N)
            .map(|i| dir.path().join(format!("{name}-{i}.jsonl")))
            .collect();
        for (i, log) in logs.iter().enumerate() {
            run_shard(&format!("{i}/{N}"), log, order);
        }
        partitions.push(logs.iter().map(|l| recorded(l)).collect::<Vec<_>>());
    }
    let mixed = merge(
        &[
            dir.path().join("forward-0.jsonl"),
            dir.path().join("backward-1.jsonl"),
            dir.path().join("forward-2.jsonl"),
        ],
        None,
        &dir.path().join("mixed.jsonl"),
    );

    assert_eq!(partitions[0], partitions[1]);
    assert!(partitions[0].iter().all(|p| !p.is_empty()));
    assert_eq!(mixed.status.code(), Some(1));
    assert!(
        text(&mixed.stderr).contains("is from another job"),
        "{}",
        text(&mixed.stderr)
    );
    assert!(!dir.path().join("mixed.jsonl").exists());
}

/// Shard 1 of 2 killed with SIGKILL mid-way: the merge names what it did
/// not judge and writes nothing; `audit status` shows it behind; resumed,
/// it finishes and the merge proves every input judged exactly once.
#[test]
fn test_shard_killed_with_sigkill_then_resumed_merges_exactly_once() {
    const INPUTS: usize = 240;
    let dir = scratch();
    let root = write_inputs(dir.path(), INPUTS, |_| "nap:10".to_owned());
    let logs = shard_logs(dir.path(), 2);
    run_shard("0/2", &logs[0], &[&root]);
    let args = ["--shard", "1/2", "--audit", s(&logs[1]), "--resume"];
    let mut child = run_args(&args, &[&root]).spawn().expect("spawn shard 1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&logs[1]).map_or(0, |t| t.lines().count()) < 20
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9 shard 1");
    child.wait().expect("reap shard 1");
    let out = dir.path().join("merged.jsonl");

    let early = merge(&logs, Some(&root), &out);
    let status = output(
        plugwarden_cmd(&["audit", "status", "--json"])
            .args(&logs)
            .arg("--inputs")
            .arg(&root),
    );
    let resumed = output(&mut run_args(&args, &[&root]));
    let merged = merge(&logs, Some(&root), &out);

    assert_eq!(early.status.code(), Some(1), "{}", text(&early.stderr));
    let missing = text(&early.stdout)
        .lines()
        .filter(|l| l.starts_with("missing\t1\t"))
        .count();
    assert!(missing > 0, "{}", text(&early.stdout));
    assert!(
        text(&early.stderr).contains("run it again with --resume"),
        "{}",
        text(&early.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["shards"][0]["remaining"], 0);
    assert_eq!(status["shards"][1]["remaining"], missing as u64);
    assert_eq!(status["remaining"], missing as u64);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert!(merged.status.success(), "{}", text(&merged.stderr));
    let records = lines(&out);
    let inputs: BTreeSet<&str> = records.iter().filter_map(|r| r["input"].as_str()).collect();
    assert_eq!((records.len(), inputs.len()), (INPUTS + 1, INPUTS));
}

/// An edited byte, a removed line, the last lines cut off, a log of another
/// job (another policy), a shard given twice, a shard run twice without
/// `--resume`: each is refused with the file and the reason, and nothing
/// is written.
#[test]
fn test_merge_catches_tampering_mixed_jobs_and_duplicates() {
    let dir = scratch();
    let root = write_inputs(dir.path(), 30, command);
    let logs = shard_logs(dir.path(), 2);
    for (i, log) in logs.iter().enumerate() {
        run_shard(&format!("{i}/2"), log, &[&root]);
    }
    let copy = |name: &str, from: &Path| {
        let p = dir.path().join(name);
        std::fs::copy(from, &p).expect("copy log");
        p
    };
    let edited = copy("edited.jsonl", &logs[1]);
    let t = std::fs::read_to_string(&edited).expect("read");
    std::fs::write(&edited, t.replacen("\"attempt\":1", "\"attempt\":2", 1)).expect("edit");
    let cut = copy("cut.jsonl", &logs[1]);
    let t = std::fs::read_to_string(&cut).expect("read");
    let kept: Vec<&str> = t
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 2)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&cut, kept.join("\n") + "\n").expect("cut");
    let tail_cut = copy("tail-cut.jsonl", &logs[1]);
    let t = std::fs::read_to_string(&tail_cut).expect("read");
    let kept: Vec<&str> = t.lines().collect();
    std::fs::write(&tail_cut, kept[..kept.len() - 2].join("\n") + "\n").expect("cut");
    let other = dir.path().join("other-job.jsonl");
    let probe = plugin("pw-probe");
    let o = output(
        plugwarden_cmd(&["run", "--plugin", s(&probe), "--policy", "default"])
            .args(["--shard", "1/2", "--audit", s(&other)])
            .arg(&root),
    );
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "{}",
        text(&o.stderr)
    );
    let twice = copy("twice.jsonl", &logs[1]);
    run_shard("1/2", &twice, &[&root]);

    let cases: [(&str, Vec<PathBuf>, &str); 6] = [
        (
            "edited",
            vec![logs[0].clone(), edited],
            "edited.jsonl: record",
        ),
        ("cut", vec![logs[0].clone(), cut], "cut.jsonl: record"),
        (
            "tail cut",
            vec![logs[0].clone(), tail_cut],
            "tail-cut.jsonl): 1 of its",
        ),
        (
            "other job",
            vec![logs[0].clone(), other],
            "is from another job",
        ),
        (
            "shard twice",
            vec![
                logs[0].clone(),
                logs[1].clone(),
                copy("again.jsonl", &logs[1]),
            ],
            "both claim shard 1",
        ),
        (
            "run twice",
            vec![logs[0].clone(), twice],
            "judged more than once",
        ),
    ];
    for (case, given, reason) in cases {
        let out = dir.path().join(format!("{case}.merged"));
        let o = merge(&given, Some(&root), &out);
        assert_eq!(o.status.code(), Some(1), "{case}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(reason),
            "{case}: {}",
            text(&o.stderr)
        );
        assert!(!out.exists(), "{case}: a merged log was written");
    }
}

/// One run of `--shard auto`: its name, the variables set, more flags, and
/// the shard it must find (index, count) or why it must refuse.
type AutoCase<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [&'a str],
    Result<(u64, u64), &'a str>,
);

/// `--shard auto` under a Slurm array task and a Kubernetes Indexed Job
/// (their variables set in this test), and what it refuses.
#[test]
fn test_shard_auto_reads_slurm_and_kubernetes_variables() {
    let dir = scratch();
    let root = write_inputs(dir.path(), 12, |i| format!("echo:{i}"));
    let slurm = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "2"),
        ("SLURM_ARRAY_TASK_MAX", "4"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
    ];
    let kubernetes = [("JOB_COMPLETION_INDEX", "2"), ("PLUGWARDEN_SHARDS", "3")];
    let list = [
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let both = [("SLURM_ARRAY_TASK_ID", "0"), ("JOB_COMPLETION_INDEX", "0")];
    let cases: [AutoCase; 6] = [
        ("slurm", &slurm, &[], Ok((1, 3))),
        ("kubernetes", &kubernetes, &[], Ok((2, 3))),
        (
            "kubernetes --shards",
            &kubernetes[..1],
            &["--shards", "3"],
            Ok((2, 3)),
        ),
        ("no scheduler", &[], &[], Err("neither SLURM_ARRAY_TASK_ID")),
        ("slurm list", &list, &[], Err("not one contiguous range")),
        (
            "both",
            &both,
            &["--shards", "2"],
            Err("both SLURM_ARRAY_TASK_ID"),
        ),
    ];
    for (case, vars, extra, expected) in cases {
        let audit = dir.path().join(format!("{case}.jsonl"));
        let mut args = vec!["--shard", "auto", "--audit", s(&audit)];
        args.extend_from_slice(extra);
        let mut cmd = run_args(&args, &[&root]);
        cmd.envs(vars.iter().copied());

        let o = output(&mut cmd);

        match expected {
            Ok((index, count)) => {
                assert!(
                    matches!(o.status.code(), Some(0)),
                    "{case}: {}",
                    text(&o.stderr)
                );
                let head = &lines(&audit)[0];
                assert_eq!(head["event"], "shard_start", "{case}");
                assert_eq!(
                    (&head["shard"], &head["job"]["shards"]),
                    (&index.into(), &count.into()),
                    "{case}"
                );
            }
            Err(reason) => {
                assert_eq!(o.status.code(), Some(2), "{case}: {}", text(&o.stderr));
                assert!(
                    text(&o.stderr).contains(reason),
                    "{case}: {}",
                    text(&o.stderr)
                );
                assert!(!audit.exists(), "{case}: the run started");
            }
        }
    }
}

/// `sanitize --shard` over the samples in 2 shards: merged, every input
/// once, under the sanitize plugins (the job's routes: image, pdf, and
/// office where LibreOffice is installed).
#[test]
fn test_sanitize_shards_merge_with_both_routes() {
    let dir = scratch();
    let root = dir.path().join("samples");
    std::fs::create_dir(&root).expect("mkdir");
    for name in [
        "benign.png",
        "benign.pdf",
        "hostile-bomb.png",
        "hostile-launch.pdf",
        "unsupported-notes.txt",
    ] {
        std::fs::copy(repo().join("samples").join(name), root.join(name)).expect("copy sample");
    }
    let logs = shard_logs(dir.path(), 2);
    for (i, log) in logs.iter().enumerate() {
        let o = output(
            plugwarden_cmd(&["sanitize", "--shard", &format!("{i}/2"), "--audit", s(log)])
                .arg("--out")
                .arg(dir.path().join("safe"))
                .arg(&root),
        );
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "{}",
            text(&o.stderr)
        );
    }
    let out = dir.path().join("merged.jsonl");

    let merged = merge(&logs, Some(&root), &out);

    assert!(merged.status.success(), "{}", text(&merged.stderr));
    assert_eq!(recorded(&out), all_inputs(&root));
    // Office documents have a route of their own where LibreOffice is.
    let office = std::path::Path::new("/usr/lib/libreoffice/program/soffice.bin").exists();
    assert_eq!(
        lines(&out)[0]["job"]["routes"].as_array().map(Vec::len),
        Some(if office { 3 } else { 2 })
    );
}
