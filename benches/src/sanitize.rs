//! Sanitize throughput: pages per second of `plugwarden sanitize` end to
//! end (the release CLI on a directory of copies of a 20-page PDF) against
//! hayro rendering the same copies in this process, with no sandbox.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pw_pdf_sanitize::{render_guarded, RenderLimits, DEFAULT_DPI};

/// The sample, relative to the workspace root.
pub const SAMPLE: &str = "samples/bench/bench-20-pages.pdf";

/// Finds the sample from the current directory or from this crate's
/// source directory (benches/..).
pub fn sample_path() -> Option<PathBuf> {
    let from_cwd = PathBuf::from(SAMPLE);
    if from_cwd.is_file() {
        return Some(from_cwd);
    }
    let from_src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SAMPLE);
    from_src.is_file().then_some(from_src)
}

/// A directory holding `copies` copies of the sample, and the sample's bytes.
pub struct Inputs {
    pub dir: tempfile::TempDir,
    pub pdf: Vec<u8>,
    pub copies: usize,
}

impl Inputs {
    pub fn new(sample: &Path, copies: usize) -> Result<Inputs> {
        let pdf = std::fs::read(sample).with_context(|| format!("reading {}", sample.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("pw-bench-sanitize-")
            .tempdir()?;
        for i in 0..copies {
            std::fs::write(dir.path().join(format!("copy-{i:02}.pdf")), &pdf)?;
        }
        Ok(Inputs { dir, pdf, copies })
    }
}

/// Renders one copy as the plugin's main.rs does (150 dpi, default limits),
/// collecting the output the plugin would send: its page count and bytes.
fn render_one(pdf: &[u8]) -> Result<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    render_guarded(pdf, DEFAULT_DPI, &RenderLimits::default(), &mut |bytes| {
        out.extend_from_slice(bytes);
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("in-process render failed: {e}"))?;
    let count = out
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .context("render output has no page count")?;
    Ok((count, out))
}

/// Every copy rendered in this process on `threads` threads (each renders
/// whole copies, one at a time, single-threaded); with `write_pdf`, each
/// copy's pixels also go through the host's validation and PDF writer.
/// Returns pages per second.
pub fn in_process_pages_per_s(inputs: &Inputs, threads: usize, write_pdf: bool) -> Result<f64> {
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    let pages: Vec<Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let next = &next;
                s.spawn(move || -> Result<u64> {
                    let mut pages = 0u64;
                    while next.fetch_add(1, Ordering::Relaxed) < inputs.copies {
                        let (n, out) = render_one(&inputs.pdf)?;
                        if write_pdf {
                            let limits = plugwarden::sanitize::Limits::default();
                            let (pdf, report) =
                                plugwarden::sanitize::pdf_from_plugin_output(&out, &limits)?;
                            if report.rendered() != n || pdf.is_empty() {
                                bail!("in-process PDF writer: {report:?} for {n} pages");
                            }
                        }
                        pages += u64::from(n);
                    }
                    Ok(pages)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("render thread panicked")))
            })
            .collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let mut total = 0;
    for p in pages {
        total += p?;
    }
    Ok(total as f64 / secs)
}

/// Pages in one copy of the sample.
pub fn pages_per_copy(inputs: &Inputs) -> Result<u32> {
    render_one(&inputs.pdf).map(|(n, _)| n)
}

/// One `plugwarden sanitize DIR --out OUT --workers W` run (default
/// `--batch`), timed as a whole: pages per second.
pub fn cli_pages_per_s(
    plugwarden: &Path,
    inputs: &Inputs,
    pages: u32,
    workers: usize,
) -> Result<f64> {
    let out = tempfile::Builder::new()
        .prefix("pw-bench-safe-")
        .tempdir()?;
    let t = Instant::now();
    let run = Command::new(plugwarden)
        .arg("sanitize")
        .arg(inputs.dir.path())
        .arg("--out")
        .arg(out.path())
        .args(["--workers", &workers.to_string()])
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
    let safe = std::fs::read_dir(out.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".safe.pdf"))
        .count();
    if safe != inputs.copies {
        bail!(
            "plugwarden sanitize wrote {safe} safe PDFs for {} inputs",
            inputs.copies
        );
    }
    Ok(f64::from(pages) * inputs.copies as f64 / secs)
}
