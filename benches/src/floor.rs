//! The floors and the peers: the C probes (`c/spawn_bench.c`, `c/pipe_bw.c`,
//! compiled with gcc into a temporary directory at run time), Python's
//! process pool (`pool_baseline.py`), and bubblewrap / firejail when
//! installed. Their sources are embedded, so the binary needs no checkout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

const SPAWN_BENCH_C: &str = include_str!("../c/spawn_bench.c");
const PIPE_BW_C: &str = include_str!("../c/pipe_bw.c");
const POOL_BASELINE_PY: &str = include_str!("../pool_baseline.py");

/// The compiled probes, in a directory removed on drop.
pub struct Floors {
    _dir: tempfile::TempDir,
    spawn_bench: PathBuf,
    pipe_bw: PathBuf,
    pool_py: PathBuf,
    python: Option<PathBuf>,
}

fn compile(dir: &Path, name: &str, source: &str) -> Result<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source)?;
    let out = dir.join(name);
    let status = Command::new("gcc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .with_context(|| format!("cannot run gcc to build {name} (install gcc)"))?;
    if !status.success() {
        bail!("gcc failed to build {name}");
    }
    Ok(out)
}

/// The first `python3` on PATH, if any.
fn find_python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Runs `cmd` and returns the number on its `RESULT <x>` line.
fn result_line(cmd: &mut Command) -> Result<f64> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.lines()
        .find_map(|l| {
            l.strip_prefix("RESULT ")
                .and_then(|v| v.trim().parse().ok())
        })
        .with_context(|| format!("{cmd:?} printed no RESULT line: {text}"))
}

impl Floors {
    pub fn build() -> Result<Floors> {
        let dir = tempfile::Builder::new().prefix("pw-bench-").tempdir()?;
        let spawn_bench = compile(dir.path(), "spawn_bench", SPAWN_BENCH_C)?;
        let pipe_bw = compile(dir.path(), "pipe_bw", PIPE_BW_C)?;
        let pool_py = dir.path().join("pool_baseline.py");
        std::fs::write(&pool_py, POOL_BASELINE_PY)?;
        Ok(Floors {
            spawn_bench,
            pipe_bw,
            pool_py,
            python: find_python(),
            _dir: dir,
        })
    }

    /// One round of spawn_bench: `n` launches of /bin/true per variant;
    /// returns µs per launch for each variant.
    pub fn spawn_round(&self, n: usize, variants: &[&str]) -> Result<HashMap<String, f64>> {
        let out = Command::new(&self.spawn_bench)
            .args(["-n", &n.to_string(), "-r", "1"])
            .args(variants)
            .output()
            .context("cannot run spawn_bench")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut got = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(us)) = (words.next(), words.next()) {
                if line.contains("FAILED") {
                    bail!("spawn_bench: {line}");
                }
                if let Ok(us) = us.parse::<f64>() {
                    got.insert(name.to_string(), us);
                }
            }
        }
        for v in variants {
            if !got.contains_key(*v) {
                bail!("spawn_bench printed no result for {v}: {text}");
            }
        }
        Ok(got)
    }

    /// Raw pipe-pair ping-pong of `msg` bytes between two processes: µs per round trip.
    pub fn pipe_round_trip_us(&self, msg: usize, iters: usize) -> Result<f64> {
        result_line(Command::new(&self.pipe_bw).args([
            "-o",
            "rt",
            "-m",
            &msg.to_string(),
            "-k",
            &iters.to_string(),
            "-r",
            "1",
        ]))
    }

    /// Raw pipe (64 KiB buffer) throughput moving `mib` MiB in `chunk`-byte writes: GB/s.
    pub fn pipe_throughput_gbs(&self, mib: usize, chunk: usize) -> Result<f64> {
        result_line(Command::new(&self.pipe_bw).args([
            "-o",
            "bw",
            "-c",
            &chunk.to_string(),
            "-s",
            &mib.to_string(),
            "-r",
            "1",
        ]))
    }

    pub fn has_python(&self) -> bool {
        self.python.is_some()
    }

    /// python3 and the peer script (`pool_baseline.py`), when python3 is installed.
    pub fn python_script(&self) -> Option<(&Path, &Path)> {
        self.python
            .as_deref()
            .map(|py| (py, self.pool_py.as_path()))
    }

    /// multiprocessing.Pool(2, maxtasksperchild=k) on `tasks` 4 KiB echo tasks: tasks/s.
    pub fn python_pool(&self, k: u64, tasks: usize) -> Result<f64> {
        let py = self.python.as_ref().context("python3 is not installed")?;
        result_line(Command::new(py).arg("-B").arg(&self.pool_py).args([
            "--only",
            &k.to_string(),
            "--tasks",
            &tasks.to_string(),
        ]))
    }
}

/// A peer sandbox on PATH, or why it is skipped.
pub fn peer(name: &str) -> std::result::Result<PathBuf, String> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
        _ => Err(format!("skipped: {name} not installed")),
    }
}

/// `n` launches of a peer command line, one at a time: µs per launch.
pub fn peer_round(argv: &[String], n: usize) -> Result<f64> {
    let t = Instant::now();
    for _ in 0..n {
        let st = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if !st.success() {
            bail!("{} failed: {st}", argv.join(" "));
        }
    }
    Ok(t.elapsed().as_secs_f64() * 1e6 / n as f64)
}
