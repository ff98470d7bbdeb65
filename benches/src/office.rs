//! Office throughput: pages per second of `plugwarden sanitize` on copies
//! of a 10-page docx, end to end (LibreOffice in the office sandbox, the
//! pdf plugin, the safe PDF written), the share of each stage (from the
//! audit records' stage notes), the same with `--ocr eng`, and what a warm
//! LibreOffice would save: LibreOffice outside any sandbox converting each
//! copy in a fresh process with a fresh profile (what the sandbox does per
//! document) against one process converting them all with one profile
//! (a warm converter, whose documents share a process and a profile).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The sample, relative to the workspace root.
pub const SAMPLE: &str = "samples/bench/bench-10-pages.docx";
/// Its pages once converted.
pub const PAGES: u32 = 10;
const SOFFICE: &str = "/usr/lib/libreoffice/program/soffice.bin";

pub fn sample_path() -> Option<PathBuf> {
    let from_src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SAMPLE);
    [PathBuf::from(SAMPLE), from_src]
        .into_iter()
        .find(|p| p.is_file())
}

/// Why the section cannot run here, if it cannot.
pub fn missing() -> Option<String> {
    if !Path::new(SOFFICE).exists() {
        return Some(
            "LibreOffice is not installed (apt-get install libreoffice-writer-nogui)".into(),
        );
    }
    None
}

pub fn tesseract_missing() -> bool {
    !Path::new("/usr/share/tesseract-ocr/5/tessdata/eng.traineddata").exists()
}

/// A directory holding `copies` copies of the sample.
pub fn inputs(sample: &Path, copies: usize) -> Result<tempfile::TempDir> {
    let docx = std::fs::read(sample).with_context(|| format!("reading {}", sample.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("pw-bench-office-")
        .tempdir()?;
    for i in 0..copies {
        std::fs::write(dir.path().join(format!("copy-{i:02}.docx")), &docx)?;
    }
    Ok(dir)
}

/// One timed `plugwarden sanitize` run and where its time went, summed
/// over the documents (milliseconds).
pub struct Run {
    pub pages_per_s: f64,
    /// LibreOffice in its sandbox: the job's wall less its later stages.
    pub convert_ms: f64,
    /// The pdf plugin rendering the converted PDF and the host writing
    /// the safe one (they overlap: pages are written as they come).
    pub render_write_ms: f64,
    pub ocr_ms: f64,
}

/// The number after `key` in `note` (`... ok in 850 ms ...`).
fn ms_after(note: &str, key: &str) -> Option<f64> {
    let rest = &note[note.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

pub fn cli_run(
    plugwarden: &Path,
    input: &Path,
    copies: usize,
    workers: usize,
    ocr: bool,
) -> Result<Run> {
    let out = tempfile::Builder::new()
        .prefix("pw-bench-office-safe-")
        .tempdir()?;
    let audit = out.path().join("audit.jsonl");
    let mut cmd = Command::new(plugwarden);
    cmd.arg("sanitize")
        .arg(input)
        .arg("--out")
        .arg(out.path())
        .arg("--audit")
        .arg(&audit)
        .args(["--workers", &workers.to_string()]);
    if ocr {
        cmd.args(["--ocr", "eng"]);
    }
    let t = Instant::now();
    let run = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !run.status.success() {
        bail!(
            "plugwarden sanitize failed ({}): {}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let (mut convert_ms, mut render_write_ms, mut ocr_ms) = (0.0, 0.0, 0.0);
    let mut records = 0;
    for line in std::fs::read_to_string(&audit)?.lines() {
        let r: serde_json::Value = serde_json::from_str(line)?;
        if r.get("verdict").and_then(|v| v.as_str()) != Some("ok") {
            continue;
        }
        records += 1;
        let notes: Vec<&str> = r["notes"]
            .as_array()
            .map(|n| n.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let stage2 = notes
            .iter()
            .find_map(|n| n.strip_prefix("stage 2 of 2, pdf: ok in "))
            .and_then(|n| n.split_whitespace().next()?.parse::<f64>().ok())
            .context("no stage 2 note")?;
        let ocr = notes
            .iter()
            .find_map(|n| ms_after(n, " rendered pages read in "))
            .unwrap_or(0.0);
        let wall = r["wall_ms"].as_f64().context("no wall_ms")?;
        convert_ms += wall - stage2;
        render_write_ms += stage2 - ocr;
        ocr_ms += ocr;
    }
    if records != copies {
        bail!("plugwarden sanitize gave {records} ok records for {copies} documents");
    }
    Ok(Run {
        pages_per_s: f64::from(PAGES) * copies as f64 / secs,
        convert_ms,
        render_write_ms,
        ocr_ms,
    })
}

/// How LibreOffice gets a document, for [`libreoffice_s_per_doc`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A fresh process and a fresh profile per document (the sandbox's
    /// way: the profile's first start asks for a restart, exit 81).
    Fresh,
    /// A fresh process per document on a copy of a profile made once
    /// beforehand (no restart; the same isolation, if the copy is made
    /// from a profile no document ever touched).
    ReadyProfile,
    /// One process and one profile for every document: a warm converter,
    /// whose documents share a process.
    Warm,
}

/// LibreOffice outside any sandbox: seconds per document, converting
/// every .docx of `input` the `start` way.
pub fn libreoffice_s_per_doc(input: &Path, copies: usize, start: Start) -> Result<f64> {
    let work = tempfile::Builder::new().prefix("pw-bench-lo-").tempdir()?;
    let docs: Vec<PathBuf> = (0..copies)
        .map(|i| input.join(format!("copy-{i:02}.docx")))
        .collect();
    let run = |profile: &Path, docs: &[PathBuf]| -> Result<std::process::ExitStatus> {
        Ok(Command::new(SOFFICE)
            .arg(format!(
                "-env:UserInstallation=file://{}",
                profile.display()
            ))
            .args([
                "--headless",
                "--norestore",
                "--nologo",
                "--nodefault",
                "--nolockcheck",
            ])
            .args(["--convert-to", "pdf", "--outdir"])
            .arg(work.path().join("out"))
            .args(docs)
            .env("HOME", work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?)
    };
    // A profile past its first start, made before the clock starts.
    let ready = work.path().join("ready-profile");
    if start != Start::Fresh {
        run(&ready, &docs[..1])?;
        run(&ready, &docs[..1])?;
    }
    let t = Instant::now();
    match start {
        Start::Warm => {
            run(&ready, &docs)?;
        }
        Start::ReadyProfile | Start::Fresh => {
            for (i, doc) in docs.iter().enumerate() {
                let profile = work.path().join(format!("profile-{i}"));
                if start == Start::ReadyProfile {
                    let copied = Command::new("cp")
                        .arg("-a")
                        .arg(&ready)
                        .arg(&profile)
                        .status()?;
                    if !copied.success() {
                        bail!("cp -a {} failed", ready.display());
                    }
                }
                if run(&profile, std::slice::from_ref(doc))?.code() == Some(81) {
                    run(&profile, std::slice::from_ref(doc))?;
                }
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let written = std::fs::read_dir(work.path().join("out"))?.count();
    if written != copies {
        bail!("LibreOffice wrote {written} PDFs for {copies} documents");
    }
    Ok(secs / copies as f64)
}
