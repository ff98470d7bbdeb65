//! `run --out --audit` group commit (docs/BATCH.md, "Durability"): a host
//! killed with SIGKILL anywhere in a group, then `--resume`d, ends with
//! exactly one record per input and every recorded output on disk with the
//! recorded hash; a full disk or an unwritable output directory cancels the
//! jobs concerned with the error in their record, stops the batch, and
//! leaves nothing partial under a final name. Real sandboxed pw-echo
//! workers throughout.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{is_root, plugin, plugwarden, scratch};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `n` inputs `in/in-NNNN`, each with different bytes (about 1 KiB).
fn write_inputs(dir: &Path, n: usize) -> PathBuf {
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).expect("mkdir in");
    for i in 0..n {
        let body = format!("input {i}\n").repeat(100);
        std::fs::write(inputs.join(format!("in-{i:04}")), body).expect("write input");
    }
    inputs
}

fn run_cmd(inputs: &Path, out: &Path, audit: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(plugwarden());
    cmd.arg("run")
        .arg("--plugin")
        .arg(plugin("pw-echo"))
        .args(["--policy", "strict", "--workers", "2", "--json", "--out"])
        .arg(out)
        .arg("--audit")
        .arg(audit)
        .args(extra)
        .arg(inputs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The complete records of a log (a torn last line, which the next run
/// cuts away, is not a record).
fn records(audit: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    text.split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| serde_json::from_str(l).expect("a complete record is JSON"))
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

fn sha256_file(path: &Path) -> Option<String> {
    std::fs::read(path)
        .ok()
        .map(|b| hex::encode(Sha256::digest(b)))
}

/// The promise after any crash: at most one record per input, and every
/// output a record names is on disk with the hash the record gives.
/// Returns the inputs recorded.
fn check_records(audit: &Path) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for rec in records(audit) {
        let input = rec["input"].as_str().expect("input").to_string();
        assert!(seen.insert(input.clone()), "{input} has two records");
        assert_eq!(rec["verdict"], "ok", "{rec}");
        let output = PathBuf::from(rec["output"].as_str().expect("output of an ok record"));
        assert_eq!(
            sha256_file(&output).as_deref(),
            rec["output_sha256"].as_str(),
            "the output {} of {input} is not on disk as recorded",
            output.display()
        );
    }
    seen
}

/// A small xorshift generator: the kill points differ from run to run,
/// and the seed is printed so that a failure can be replayed.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let seed = std::env::var("PW_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        println!("PW_TEST_SEED={seed}");
        Random(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Waits until `audit` holds at least `lines` complete records, the child
/// exits, or 20 s pass.
fn wait_for_records(child: &mut Child, audit: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while records(audit).len() < lines
        && Instant::now() < deadline
        && child.try_wait().ok().flatten().is_none()
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn test_run_killed_at_random_points_of_groups_then_resumed_records_each_input_once_with_its_output()
{
    const N: usize = 400;
    const KILLS: usize = 15;
    let dir = scratch();
    let inputs = write_inputs(dir.path(), N);
    let (out, audit) = (dir.path().join("out"), dir.path().join("a.jsonl"));
    // Small groups: most kills land while one is open or being committed.
    let flags = ["--resume", "--group-size", "7", "--group-time", "3ms"];
    let mut random = Random::new();
    let mut kills = 0;
    for _ in 0..KILLS {
        let before = records(&audit).len();
        if before == N {
            break;
        }
        let mut child = run_cmd(&inputs, &out, &audit, &flags)
            .spawn()
            .expect("spawn plugwarden");
        // Somewhere after a random number of new records, a random
        // fraction of a millisecond to a few later.
        wait_for_records(&mut child, &audit, before + random.below(30) as usize);
        std::thread::sleep(Duration::from_micros(random.below(4000)));
        if child.try_wait().expect("poll the host").is_none() {
            kills += 1;
        }
        child.kill().expect("kill -9 the host");
        child.wait().expect("reap the host");
        check_records(&audit);
    }

    let o = run_cmd(&inputs, &out, &audit, &flags)
        .output()
        .expect("run plugwarden --resume");

    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // How many runs a kill caught before they ended depends on the
    // machine's load (a busy CI machine finishes some first): reported, not
    // asserted; the checks below hold either way.
    println!("{kills} of {KILLS} runs were killed before they ended");
    let recorded = check_records(&audit);
    assert_eq!(recorded.len(), N);
    let finals: BTreeSet<String> = std::fs::read_dir(&out)
        .expect("read out")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".plugwarden-"))
        .collect();
    assert_eq!(finals.len(), N, "a final name that no record names");
    let v = Command::new(plugwarden())
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .expect("audit verify");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn test_run_each_and_none_durability_write_what_group_writes() {
    let dir = scratch();
    let inputs = write_inputs(dir.path(), 40);
    let mut outputs = Vec::new();
    for mode in ["group", "each", "none"] {
        let (out, audit) = (
            dir.path().join(format!("out-{mode}")),
            dir.path().join(format!("{mode}.jsonl")),
        );

        let o = run_cmd(&inputs, &out, &audit, &["--durability", mode])
            .output()
            .expect("run plugwarden");

        assert_eq!(
            o.status.code(),
            Some(0),
            "{mode}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(check_records(&audit).len(), 40, "{mode}");
        let files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&out)
            .expect("read out")
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).expect("read"),
                )
            })
            .collect();
        outputs.push(files);
    }
    assert_eq!(outputs[0].len(), 40);
    assert_eq!(
        outputs[0]["in-0007"],
        std::fs::read(inputs.join("in-0007")).expect("input")
    );
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs with `options` at `dir`, or says why it cannot.
    fn tmpfs(dir: &Path, options: &str) -> Result<Mount, String> {
        if !is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        std::fs::create_dir_all(dir).expect("mkdir mount point");
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(Mount(dir.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// After a stop for an output error: exit 2, some jobs cancelled with
/// `cause` in their record, fewer records than inputs (the batch
/// stopped), and under `out` exactly the outputs of the ok records, each
/// whole.
fn assert_stopped_for_output_error(o: &Output, audit: &Path, n: usize, cause: &str) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let error = summary(o)["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains(cause), "summary error: {error}");
    let recs = records(audit);
    assert!(
        recs.len() < n,
        "the batch did not stop: {} records",
        recs.len()
    );
    let cancelled: Vec<&Value> = recs
        .iter()
        .filter(|r| r["verdict"] == "cancelled")
        .collect();
    assert!(!cancelled.is_empty(), "no job was cancelled");
    for rec in &cancelled {
        let detail = rec["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("cannot write the output")
                && detail.contains(cause)
                && detail.contains("--resume"),
            "detail: {detail}"
        );
        assert_eq!(rec["output"], Value::Null);
    }
    for rec in recs.iter().filter(|r| r["verdict"] == "ok") {
        let output = PathBuf::from(rec["output"].as_str().expect("output"));
        let input = std::fs::read(rec["input"].as_str().expect("input")).expect("read input");
        assert_eq!(
            std::fs::read(&output).ok(),
            Some(input),
            "{}",
            output.display()
        );
    }
}

/// Every file under `dir` (recursively), as paths.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.insert(path);
        }
    }
    found
}

#[test]
fn test_run_full_disk_cancels_the_jobs_concerned_and_stops_with_nothing_partial() {
    const N: usize = 300;
    let dir = scratch();
    let inputs = write_inputs(dir.path(), N);
    let (out, audit) = (dir.path().join("out"), dir.path().join("a.jsonl"));
    // Room for about 60 of the 300 outputs (each takes a 4 KiB page).
    let mount = match Mount::tmpfs(&out, "size=256k") {
        Ok(m) => m,
        Err(why) => {
            println!("not applicable: {why}");
            return;
        }
    };

    let o = run_cmd(&inputs, &out, &audit, &[])
        .output()
        .expect("run plugwarden");

    assert_stopped_for_output_error(&o, &audit, N, "No space left on device");
    let recorded: BTreeSet<PathBuf> = records(&audit)
        .iter()
        .filter_map(|r| r["output"].as_str().map(PathBuf::from))
        .collect();
    assert_eq!(
        files_under(&out),
        recorded,
        "a file under a final name without its record"
    );
    drop(mount);
}

#[test]
fn test_run_unwritable_output_directory_cancels_its_jobs_and_stops() {
    // More inputs under b/ than the pool can hold in flight, so the stop
    // shows; a/ comes first in the walk.
    let dir = scratch();
    let root = dir.path().join("tree");
    write_inputs(&root.join("a"), 20);
    write_inputs(&root.join("b"), 200);
    let (out, audit) = (dir.path().join("out"), dir.path().join("a.jsonl"));
    // out/b/in exists but takes no file, even from root.
    let mount = match Mount::tmpfs(&out.join("b").join("in"), "ro,size=64k") {
        Ok(m) => m,
        Err(why) => {
            println!("not applicable: {why}");
            return;
        }
    };

    let o = run_cmd(&root, &out, &audit, &[])
        .output()
        .expect("run plugwarden");

    assert_stopped_for_output_error(&o, &audit, 220, "Read-only file system");
    assert!(files_under(&out.join("b")).is_empty());
    drop(mount);
}
