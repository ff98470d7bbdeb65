//! `plugwarden run --out` over files, as a user runs it (the release CLI,
//! pw-echo under `strict`, `--audit`), against Python's process pool
//! writing the same files; and how a job's cost grows with the workers and
//! with the input's size. Every run is timed from its start to its exit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// Inputs of one size in a fresh directory, and room for the outputs.
pub struct Corpus {
    dir: tempfile::TempDir,
    pub inputs: PathBuf,
    pub count: usize,
    runs: usize,
}

impl Corpus {
    /// `count` files of `size` bytes, each different.
    pub fn new(count: usize, size: usize) -> Result<Corpus> {
        let dir = tempfile::Builder::new()
            .prefix("pw-bench-files-")
            .tempdir()?;
        let inputs = dir.path().join("in");
        std::fs::create_dir(&inputs)?;
        let mut body: Vec<u8> = (0..size).map(|i| (i * 131 % 251) as u8).collect();
        for i in 0..count {
            body[..8.min(size)].copy_from_slice(&i.to_le_bytes()[..8.min(size)]);
            std::fs::write(inputs.join(format!("in-{i:06}")), &body)?;
        }
        // On disk before any run: a run's syncfs would otherwise write the
        // inputs back too.
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        Ok(Corpus {
            dir,
            inputs,
            count,
            runs: 0,
        })
    }

    /// A new output directory and audit log name for one run. Outputs are
    /// kept until the corpus is dropped (the bench keeps every corpus to
    /// the end of the section): ext4 creates files more slowly for some
    /// seconds after thousands were deleted, which would charge one run
    /// for the previous one's clean-up.
    fn fresh(&mut self) -> (PathBuf, PathBuf) {
        self.runs += 1;
        let n = self.runs;
        (
            self.dir.path().join(format!("out-{n}")),
            self.dir.path().join(format!("audit-{n}.jsonl")),
        )
    }

    /// Files per second of `plugwarden run --audit` with `--out` (when
    /// `out`) and `flags` (e.g. `--durability none`), from start to exit;
    /// every input must be judged ok.
    pub fn plugwarden(
        &mut self,
        pw: &Path,
        echo: &Path,
        policy: &str,
        out: bool,
        flags: &[&str],
    ) -> Result<f64> {
        let (out_dir, audit) = self.fresh();
        let t = Instant::now();
        let mut cmd = Command::new(pw);
        cmd.args(["run", "--plugin"])
            .arg(echo)
            .args(["--policy", policy, "--json", "--audit"])
            .arg(&audit);
        if out {
            cmd.arg("--out").arg(&out_dir);
        }
        let o = cmd
            .args(flags)
            .arg(&self.inputs)
            .stdin(Stdio::null())
            .output()
            .context("running plugwarden run")?;
        let secs = t.elapsed().as_secs_f64();
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout)
            .with_context(|| format!("run: {}", String::from_utf8_lossy(&o.stderr)))?;
        if summary["verdicts"]["ok"].as_u64() != Some(self.count as u64) {
            bail!("run {flags:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(self.count as f64 / secs)
    }

    /// Files per second of the Python peer (`pool_baseline.py --files`),
    /// from start to exit.
    pub fn python(&mut self, python: &Path, script: &Path) -> Result<f64> {
        let (out, _) = self.fresh();
        let t = Instant::now();
        let o = Command::new(python)
            .arg("-B")
            .arg(script)
            .arg("--files")
            .arg(&self.inputs)
            .arg(&out)
            .args(["--only", "100"])
            .stdin(Stdio::null())
            .output()
            .context("running the Python peer")?;
        let secs = t.elapsed().as_secs_f64();
        if !o.status.success() {
            bail!("Python peer: {}", String::from_utf8_lossy(&o.stderr));
        }
        Ok(self.count as f64 / secs)
    }
}

/// A policy file beside the corpora: `strict` with room for 16 MiB inputs
/// and outputs (and a minute per job on a loaded machine).
pub fn big_policy(dir: &Path) -> Result<String> {
    let path = dir.join("files.toml");
    std::fs::write(
        &path,
        "extends = \"strict\"\n[limits]\ninput = \"64MiB\"\noutput = \"64MiB\"\nwall = \"1m\"\ncpu = \"1m\"\n",
    )?;
    Ok(path.display().to_string())
}
