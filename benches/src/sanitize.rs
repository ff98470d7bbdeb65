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

/// What the in-process baseline does with each copy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum InProcess {
    /// Render only, the output collected in memory.
    Render,
    /// Render the whole copy, then validate it and write the PDF.
    RenderThenWrite,
    /// Each page validated and written as soon as it is rendered, on the
    /// same thread (what the plugin and the host do in two processes).
    Streamed,
}

/// Every copy rendered in this process on `threads` threads (each renders
/// whole copies, one at a time, single-threaded), and written as `mode`
/// says. Returns pages per second.
pub fn in_process_pages_per_s(inputs: &Inputs, threads: usize, mode: InProcess) -> Result<f64> {
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    let pages: Vec<Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let next = &next;
                s.spawn(move || -> Result<u64> {
                    let mut pages = 0u64;
                    while next.fetch_add(1, Ordering::Relaxed) < inputs.copies {
                        if mode == InProcess::Streamed {
                            pages += u64::from(render_streamed(&inputs.pdf)?);
                            continue;
                        }
                        let (n, out) = render_one(&inputs.pdf)?;
                        if mode == InProcess::RenderThenWrite {
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

/// Renders one copy and hands each page to the host's PDF writer as it
/// comes; returns the pages written.
fn render_streamed(pdf: &[u8]) -> Result<u32> {
    let limits = plugwarden::sanitize::Limits::default();
    let mut stream = plugwarden::sanitize::PdfStream::new(Vec::new(), limits)?;
    render_guarded(pdf, DEFAULT_DPI, &RenderLimits::default(), &mut |bytes| {
        stream.write(bytes).map_err(|e| e.to_string())
    })
    .map_err(|e| anyhow::anyhow!("in-process render failed: {e}"))?;
    let (out, report) = stream.finish()?;
    if out.is_empty() || !report.failed.is_empty() {
        bail!("in-process streamed writer: {report:?}");
    }
    Ok(report.rendered())
}

/// Pages in one copy of the sample.
pub fn pages_per_copy(inputs: &Inputs) -> Result<u32> {
    render_one(&inputs.pdf).map(|(n, _)| n)
}

/// One `plugwarden sanitize DIR --out OUT --workers W [extra]` run
/// (default `--batch`), timed as a whole: pages per second, and the bytes
/// of the safe PDFs it wrote.
pub fn cli_pages_per_s(
    plugwarden: &Path,
    inputs: &Inputs,
    pages: u32,
    workers: usize,
    extra: &[&str],
) -> Result<(f64, u64)> {
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
        .args(extra)
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
    let safe: Vec<u64> = std::fs::read_dir(out.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".safe.pdf"))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .collect();
    let safe_bytes = safe.iter().sum();
    let safe = safe.len();
    if safe != inputs.copies {
        bail!(
            "plugwarden sanitize wrote {safe} safe PDFs for {} inputs",
            inputs.copies
        );
    }
    Ok((f64::from(pages) * inputs.copies as f64 / secs, safe_bytes))
}

/// The host's PDF writer alone on one copy's rendered pages (rendered
/// once, outside the timing), with `compress`: MB of RGB per second on
/// one thread, the safe PDF's bytes and the plugin output's.
pub fn writer_mb_s(
    inputs: &Inputs,
    compress: plugwarden::sanitize::Compress,
) -> Result<(f64, u64, u64)> {
    let (_, out) = render_one(&inputs.pdf)?;
    let limits = plugwarden::sanitize::Limits::default();
    let t = Instant::now();
    let mut stream = plugwarden::sanitize::PdfStream::new(Vec::new(), limits)?;
    stream.set_compress(compress);
    stream.write(&out)?;
    let (pdf, _) = stream.finish()?;
    let secs = t.elapsed().as_secs_f64();
    Ok((
        out.len() as f64 / 1e6 / secs,
        pdf.len() as u64,
        out.len() as u64,
    ))
}

/// A PDF of `pages` US-letter pages of text and vector art (the samples'
/// kind of page), written here so that every length needs no file.
pub fn long_pdf(pages: usize) -> Vec<u8> {
    let font = "<< /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>";
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} >>",
            (0..pages)
                .map(|i| format!("{} 0 R", 3 + 2 * i))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    ];
    for i in 0..pages {
        let mut content = format!(
            "0.95 0.95 1 rg 36 36 540 720 re f 0 0 0 rg BT /F1 24 Tf 72 700 Td (page {} of {pages}) Tj ET\nBT /F1 11 Tf 72 660 Td 14 TL\n",
            i + 1
        );
        for line in 0..30 {
            content.push_str(&format!(
                "(Line {line}: the quick brown fox jumps over the lazy dog 0123456789) '\n"
            ));
        }
        content.push_str(&format!(
            "ET {} 0.3 0.6 rg 306 150 m 386 150 l 386 230 l 306 230 l f\n",
            (i % 10) as f64 / 10.0
        ));
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources {font} /Contents {} 0 R >>",
            4 + 2 * i
        ));
        objects.push(format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len() + 1
        ));
    }
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (n, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", n + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// The host's peak RSS (MiB, from the `--json` summary) while
/// `plugwarden sanitize --workers 1` turns a `pages`-page PDF into a safe
/// one at 150 dpi, and the pages of that safe PDF it declared.
pub fn host_rss_mib(plugwarden: &Path, pages: usize) -> Result<f64> {
    let dir = tempfile::Builder::new().prefix("pw-bench-rss-").tempdir()?;
    let input = dir.path().join(format!("long-{pages}.pdf"));
    std::fs::write(&input, long_pdf(pages))?;
    let run = Command::new(plugwarden)
        .arg("sanitize")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("safe"))
        .args(["--workers", "1", "--json"])
        .stdin(Stdio::null())
        .output()?;
    if !run.status.success() {
        bail!(
            "plugwarden sanitize of {pages} pages failed ({}): {}{}",
            run.status,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    let kib = summary["host_max_rss_kib"]
        .as_f64()
        .context("no host_max_rss_kib in the summary")?;
    Ok(kib / 1024.0)
}
