//! `plugwarden run`: every input through the plugin, one verdict each.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use plugwarden::sandbox::{Mode, Sandbox};
use plugwarden::verdict::{Verdict, WORDS};
use plugwarden::worker::{run_filter, JobOutcome, Worker};

use super::{SandboxArgs, Usage, EXIT_OK, EXIT_VERDICT};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Write each ok output to DIR (same relative name as the input).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Files, or directories walked recursively.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// Runs one input in a fresh process (worker or filter).
pub fn run_one(sandbox: &Sandbox, input: &[u8]) -> JobOutcome {
    match sandbox.plugin.mode {
        Mode::Filter => run_filter(sandbox, input),
        Mode::Worker => match Worker::start(sandbox) {
            Ok(mut w) => {
                let outcome = w.run_job(input);
                w.shutdown();
                outcome
            }
            Err(e) => failed(Verdict::SetupError(e.to_string())),
        },
    }
}

fn failed(verdict: Verdict) -> JobOutcome {
    JobOutcome {
        verdict,
        output: Vec::new(),
        wall: Default::default(),
        cpu_ms: 0,
        max_rss_kib: 0,
        pid: 0,
        denied: Vec::new(),
        stderr_tail: String::new(),
    }
}

/// Every file under the inputs, in a stable order, with its name relative
/// to the directory it was found in (for the output path).
pub fn walk(inputs: &[PathBuf]) -> impl Iterator<Item = Result<(PathBuf, PathBuf), String>> + '_ {
    inputs.iter().flat_map(|root| {
        let base = if root.is_dir() { root.clone() } else { root.parent().map(Path::to_path_buf).unwrap_or_default() };
        walkdir::WalkDir::new(root).sort_by_file_name().into_iter().filter_map(move |entry| match entry {
            Ok(e) if e.file_type().is_dir() => None,
            Ok(e) => {
                let rel = e.path().strip_prefix(&base).unwrap_or(e.path()).to_path_buf();
                Some(Ok((e.into_path(), rel)))
            }
            Err(e) => Some(Err(format!("{}: {e}", e.path().map_or_else(|| root.display().to_string(), |p| p.display().to_string())))),
        })
    })
}

/// Writes `data` to `dir/rel` atomically (temporary file + rename).
pub fn write_output(dir: &Path, rel: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    let target = dir.join(rel);
    let parent = target.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent)?;
    let mut tmp = tempfile::Builder::new().prefix(".plugwarden-").tempfile_in(parent)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_data()?;
    tmp.persist(&target).map_err(|e| e.error)?;
    Ok(target)
}

pub fn run(a: RunArgs) -> Result<u8, Usage> {
    for input in &a.inputs {
        if !input.exists() {
            return Err(Usage(format!("input {} does not exist", input.display())));
        }
    }
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out)
            .map_err(|e| Usage(format!("cannot create the output directory {}: {e}", out.display())))?;
    }
    let sandbox = a.sandbox.build()?;
    let started = Instant::now();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut worker: Option<Worker> = None;
    let batch = sandbox.policy.worker.batch;
    for item in walk(&a.inputs) {
        let (path, rel) = match item {
            Ok(x) => x,
            Err(e) => {
                report(&mut counts, &e, &Verdict::InputError(e.clone()), None);
                continue;
            }
        };
        let outcome = match std::fs::read(&path) {
            Err(e) => failed(Verdict::InputError(format!("cannot read {}: {e}", path.display()))),
            Ok(input) => match sandbox.plugin.mode {
                Mode::Filter => run_filter(&sandbox, &input),
                Mode::Worker => {
                    if worker.as_ref().is_some_and(|w| !w.is_alive() || w.jobs >= batch) {
                        worker.take().map(Worker::shutdown);
                    }
                    if worker.is_none() {
                        match Worker::start(&sandbox) {
                            Ok(w) => worker = Some(w),
                            Err(e) => {
                                let v = Verdict::SetupError(e.to_string());
                                report(&mut counts, &path.display().to_string(), &v, None);
                                continue;
                            }
                        }
                    }
                    worker.as_mut().expect("started").run_job(&input)
                }
            },
        };
        let mut verdict = outcome.verdict.clone();
        if verdict.is_ok() {
            if let Some(out) = &a.out {
                if let Err(e) = write_output(out, &rel, &outcome.output) {
                    verdict = Verdict::InputError(format!("cannot write the output: {e}"));
                }
            }
        }
        report(&mut counts, &path.display().to_string(), &verdict, Some(&outcome));
    }
    if let Some(w) = worker {
        w.shutdown();
    }
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = WORDS.iter().filter_map(|w| counts.get(w).map(|n| format!("{n} {w}"))).collect();
    eprintln!(
        "{total} inputs in {:.2}s: {}",
        started.elapsed().as_secs_f64(),
        if parts.is_empty() { "nothing to do".into() } else { parts.join(", ") }
    );
    let all_ok = counts.keys().all(|w| *w == "ok");
    Ok(if all_ok { EXIT_OK } else { EXIT_VERDICT })
}

fn report(counts: &mut BTreeMap<&'static str, u64>, input: &str, v: &Verdict, o: Option<&JobOutcome>) {
    *counts.entry(v.word()).or_default() += 1;
    let ms = o.map_or(0, |o| o.wall.as_millis());
    println!("{:<14} {input} ({ms} ms){}", v.word(), if v.detail().is_empty() { String::new() } else { format!(": {}", v.detail()) });
}
