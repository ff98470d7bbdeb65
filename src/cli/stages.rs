//! `sanitize`'s later stages: what happens to an input after its first
//! plugin answered.
//!
//! - An Office or OpenDocument input's first plugin is LibreOffice (the
//!   `office` sandbox); its answer is a PDF, as untrusted as any. An
//!   [`OfficeSink`] takes that PDF as it arrives (into an unnamed scratch
//!   file in the output directory) and, once the converter exited, runs it
//!   through the pdf plugin in its own sandbox, exactly as a PDF input
//!   goes, into the same pixels-only writer. Each stage's verdict goes to
//!   the audit record's notes; the input's verdict is the first that is
//!   not `ok`.
//! - With `--ocr LANG`, each rendered page goes, in grey, to Tesseract in
//!   the `ocr` sandbox (one process per page), and its words become the
//!   page's invisible text layer ([`Ocr::recognise`]). A page OCR cannot
//!   read keeps its pixels and no text; the audit record says which.
//!
//! Both stages run inside the first job's sink, on the pool slot's thread:
//! the slot is busy until the input is done, its cancel flag reaches them.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use plugwarden::input::{self, Input};
use plugwarden::sandbox::Sandbox;
use plugwarden::sanitize::{self, ocr, FileType, PdfStream};
use plugwarden::sink::{HashedFile, OutputSink, SavedOutput};
use plugwarden::worker::{run_filter_input, Attach, JobOutcome, Worker};
use plugwarden::Verdict;

/// A sandbox of a later stage and what the audit record says about it.
pub struct Stage {
    pub sandbox: Arc<Sandbox>,
    /// `pw-pdf-sanitize (sha256 …) under pdf (sha256 …)`, made when a
    /// record first needs it: hashing the pdf plugin (50 MB) at start cost
    /// every `sanitize` run about 30 ms, with or without an Office file.
    identity: OnceLock<String>,
}

impl Stage {
    pub fn new(sandbox: Arc<Sandbox>) -> Stage {
        Stage {
            sandbox,
            identity: OnceLock::new(),
        }
    }

    /// The plugin and the policy, with their hashes.
    pub fn identity(&self) -> &str {
        self.identity.get_or_init(|| {
            let exe = &self.sandbox.plugin.exe;
            let plugin_sha =
                super::run::sha256_file(exe).unwrap_or_else(|e| format!("unreadable: {e}"));
            let policy = &self.sandbox.policy;
            let policy_sha = super::run::sha256_hex(policy.sources.concat().as_bytes());
            format!(
                "{} (sha256 {plugin_sha}) under {} (sha256 {policy_sha})",
                exe.display(),
                policy.name
            )
        })
    }
}

/// `ok in 850 ms (cpu 700 ms, peak 120 MiB)`.
fn measured(o: &JobOutcome) -> String {
    format!(
        "{} in {} ms (cpu {} ms, peak {} MiB)",
        o.verdict,
        o.wall.as_millis(),
        o.cpu_ms,
        o.max_rss_kib / 1024
    )
}

/// A later stage's verdict as the input's: its detail says which stage.
fn in_stage(v: Verdict, stage: &str) -> Verdict {
    let say = |s: String| format!("{stage}: {s}");
    match v {
        Verdict::PluginError(s) => Verdict::PluginError(say(s)),
        Verdict::Memory(s) => Verdict::Memory(say(s)),
        Verdict::Violation(v) => Verdict::Violation(v.prefixed(stage)),
        Verdict::ProtocolError(s) => Verdict::ProtocolError(say(s)),
        Verdict::SetupError(s) => Verdict::SetupError(say(s)),
        Verdict::InputError(s) => Verdict::InputError(say(s)),
        Verdict::Unsupported(s) => Verdict::Unsupported(say(s)),
        Verdict::Crashed { signal, detail } => Verdict::Crashed {
            signal,
            detail: say(detail),
        },
        v => v,
    }
}

/// Takes LibreOffice's PDF and sends it through the pdf plugin into
/// `next`, the sink that writes the safe file.
pub struct OfficeSink {
    pdf: Arc<Stage>,
    next: Box<dyn OutputSink>,
    /// Where the converted PDF waits (an unnamed file: nothing is left if
    /// we die).
    dir: PathBuf,
    /// Largest converted PDF the pdf stage takes (its policy's input).
    limit: u64,
    /// The format the host detected, for the notes.
    format: &'static str,
    converted: Option<File>,
    len: u64,
    cancel: Option<Arc<AtomicBool>>,
    notes: Vec<String>,
    /// What `next` saved (the pdf stage's job took it from `next`).
    saved: Option<SavedOutput>,
}

impl OfficeSink {
    pub fn new(
        pdf: Arc<Stage>,
        next: Box<dyn OutputSink>,
        dir: &Path,
        format: &'static str,
    ) -> Self {
        OfficeSink {
            limit: pdf.sandbox.policy.limits.input,
            pdf,
            next,
            dir: dir.to_path_buf(),
            format,
            converted: None,
            len: 0,
            cancel: None,
            notes: Vec::new(),
            saved: None,
        }
    }

    /// The converted PDF as the pdf stage's input.
    fn converted_input(&mut self) -> Result<Input, Verdict> {
        let file = self
            .converted
            .take()
            .ok_or_else(|| Verdict::ProtocolError("the office converter wrote no PDF".into()))?;
        let name = PathBuf::from(format!("(LibreOffice's PDF of the {})", self.format));
        let cannot = |e: input::InputError| Verdict::InputError(format!("the converted PDF: {e}"));
        let input = Input::from_source(input::from_file(file, name, self.limit).map_err(cannot)?)
            .map_err(cannot)?;
        if sanitize::detect(&input.head().map_err(cannot)?) != FileType::Pdf {
            return Err(Verdict::ProtocolError(
                "the office converter's output is not a PDF".into(),
            ));
        }
        Ok(input)
    }
}

impl OutputSink for OfficeSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        let cannot = |e: std::io::Error| {
            Verdict::InputError(format!(
                "cannot keep the converted PDF in {}: {e}",
                self.dir.display()
            ))
        };
        let file = match &mut self.converted {
            Some(f) => f,
            None => self
                .converted
                .insert(tempfile::tempfile_in(&self.dir).map_err(cannot)?),
        };
        file.write_all(bytes).map_err(cannot)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn end(&mut self) -> Result<(), Verdict> {
        self.notes.push(format!(
            "stage 1 of 2, office: LibreOffice converted the {} to a PDF of {} bytes",
            self.format, self.len
        ));
        let input = self.converted_input()?;
        let attach = Attach {
            cancel: self.cancel.clone(),
            ..Attach::default()
        };
        let mut outcome = match Worker::start(&self.pdf.sandbox) {
            Ok(mut w) => {
                w.attach(attach);
                let mut outcome = w.run_input(&input, Some(self.next.as_mut()));
                // The worker's peak once it has exited: its cgroup's, or
                // its own.
                if let Some(info) = w.shutdown() {
                    let peak = info.cgroup.and_then(|c| c.memory_peak).map(|p| p / 1024);
                    outcome.max_rss_kib = peak.unwrap_or(info.maxrss_kib).max(outcome.max_rss_kib);
                }
                outcome
            }
            Err(e) => JobOutcome::failed(Verdict::SetupError(e.to_string())),
        };
        self.saved = outcome.saved.take();
        self.notes.push(format!(
            "stage 2 of 2, pdf: {}: {}",
            measured(&outcome),
            self.pdf.identity()
        ));
        self.notes.extend(outcome.notes);
        self.notes.extend(
            outcome
                .denied
                .iter()
                .map(|d| format!("stage 2, denied: {d}")),
        );
        match outcome.verdict {
            Verdict::Ok => Ok(()),
            v => {
                if !outcome.stderr_tail.is_empty() {
                    self.notes
                        .push(format!("stage 2, stderr: {}", outcome.stderr_tail));
                }
                Err(in_stage(v, "the converted PDF"))
            }
        }
    }

    fn restart(&mut self) {
        self.converted = None;
        self.len = 0;
        self.notes.clear();
        self.saved = None;
        self.next.restart();
    }

    fn take_saved(&mut self) -> Option<SavedOutput> {
        self.saved.take()
    }

    fn set_cancel(&mut self, cancel: Arc<AtomicBool>) {
        self.cancel = Some(cancel);
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}

/// Tesseract in its sandbox, for the text layer of `--ocr LANG`.
pub struct Ocr {
    pub stage: Stage,
    pub lang: String,
}

/// Where Debian's Tesseract 5 keeps its language models.
pub const TESSDATA: &str = "/usr/share/tesseract-ocr/5/tessdata";
/// Tesseract's program.
pub const TESSERACT: &str = "/usr/bin/tesseract";

impl Ocr {
    /// Tesseract's arguments: the page (PGM) on stdin, its TSV report on
    /// stdout, the language and the resolution pages are rendered at.
    /// Sauvola's local thresholding: with the default global one, dark
    /// text on a coloured box (a slide's) comes out as one black block.
    pub fn args(lang: &str, dpi: u32) -> Vec<String> {
        let dpi = dpi.to_string();
        [
            "stdin",
            "stdout",
            "-l",
            lang,
            "--dpi",
            &dpi,
            "-c",
            "thresholding_method=2",
            "tsv",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Checks `--ocr LANG` against what is installed: a Tesseract language
    /// name or several joined by `+`, each with its model.
    pub fn check_lang(lang: &str) -> Result<(), String> {
        if !Path::new(TESSERACT).exists() {
            return Err(format!(
                "--ocr needs Tesseract, which is not installed: apt-get install tesseract-ocr tesseract-ocr-{}",
                lang.split('+').next().unwrap_or("eng")
            ));
        }
        for one in lang.split('+') {
            let valid = !one.is_empty()
                && one.len() <= 32
                && one.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!(
                    "--ocr {lang:?}: a language is a Tesseract model name such as eng or deu, several joined by + (eng+deu)"
                ));
            }
            if !Path::new(TESSDATA)
                .join(format!("{one}.traineddata"))
                .exists()
            {
                let package = one.replace('_', "-").to_lowercase();
                return Err(format!(
                    "--ocr {lang}: no Tesseract model for {one} in {TESSDATA}: apt-get install tesseract-ocr-{package}"
                ));
            }
        }
        Ok(())
    }

    /// OCRs every page `stream` kept and writes each one's text layer;
    /// returns the notes for the audit record. A page whose OCR failed
    /// keeps no text (and a note says why); an interrupted run stops.
    pub fn recognise(
        &self,
        stream: &mut PdfStream<HashedFile>,
        cancel: Option<&Arc<AtomicBool>>,
    ) -> Result<Vec<String>, Verdict> {
        let started = std::time::Instant::now();
        let pages = stream.ocr_pages();
        let mut words = 0;
        let mut failed = Vec::new();
        for page in &pages {
            if cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                return Err(Verdict::Cancelled);
            }
            let grey = stream.page_grey(page).map_err(|e| {
                Verdict::InputError(format!(
                    "cannot read page {} back for OCR: {e}",
                    page.number
                ))
            })?;
            let input = Input::Bytes(ocr::pgm(page.width, page.height, &grey));
            let attach = Attach {
                cancel: cancel.cloned(),
                ..Attach::default()
            };
            let outcome = run_filter_input(&self.stage.sandbox, &input, attach, None);
            if !outcome.verdict.is_ok() {
                failed.push(format!("page {}: {}", page.number, outcome.verdict));
                continue;
            }
            let found = ocr::parse_tsv(&outcome.output, page.width, page.height);
            words += found.len();
            stream
                .set_text(page.number, &found)
                .map_err(|e| Verdict::InputError(format!("cannot write the safe file: {e}")))?;
        }
        let mut notes = vec![format!(
            "ocr ({}): {} of {} rendered pages read in {} ms, {words} words in the text layer: {}",
            self.lang,
            pages.len() - failed.len(),
            pages.len(),
            started.elapsed().as_millis(),
            self.stage.identity()
        )];
        notes.extend(
            failed
                .iter()
                .map(|f| format!("ocr failed on {f} (the page has no text layer)")),
        );
        Ok(notes)
    }
}
