//! `plugwarden sanitize`: hostile PDFs, images and Office documents in,
//! pixels-only files out.
//!
//! Each input's type is found from its bytes (and a ZIP's or OLE2 file's
//! directory, [`plugwarden::sanitize::detect_file`]), then it goes to one
//! of three pools: images to `pw-image-sanitize` under the `image`
//! policy, PDFs to `pw-pdf-sanitize` under `pdf`, Office and OpenDocument
//! files to `pw-office-convert` (LibreOffice) under `office`, whose PDF then
//! goes through the pdf plugin like any other ([`stages::OfficeSink`]).
//! Each plugin parses the hostile file in its sandbox and returns raw
//! pixels; the host checks them byte for byte and writes a brand-new PNG or
//! PDF that holds nothing else. A PDF's pages are written as they arrive
//! ([`PdfSink`]), so the host holds a page at a time; a page that could not
//! be rendered makes the input `plugin_error` unless `--allow-partial` lets
//! a labelled blank page take its place. With `--ocr LANG` each page of a
//! PDF output also gets an invisible text layer from Tesseract in the `ocr`
//! sandbox ([`stages::Ocr`]). Everything else about the batch (recycling,
//! quarantine, audit, resume, progress, summary) is `plugwarden run`'s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use plugwarden::input::Input;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::sanitize::{
    self, Compress, FileType, Limits, OfficeFormat, OfficeModule, PdfStream, SanitizeError,
    Sanitizer, OFFICE_MAGIC, PDF_PASSWORD_MAGIC,
};
use plugwarden::sink::{HashedFile, OutputSink, SavedOutput};
use plugwarden::Verdict;

use super::run::{self, Batch, BatchArgs};
use super::stages::{Ocr, OfficeSink, Stage, TESSERACT};
use super::{parse_duration, start_fork_server, Usage};

/// LibreOffice's installation (Debian's libreoffice-*-nogui packages).
const LIBREOFFICE: &str = "/usr/lib/libreoffice";

#[derive(Args)]
pub struct SanitizeArgs {
    /// Where the safe files go: DIR/<name>.safe.png or DIR/<name>.safe.pdf.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Resolution PDF pages are rendered at.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u32).range(18..=600))]
    pub dpi: u32,
    /// Wall-clock limit per input (overrides the policies).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Directory holding pw-image-sanitize, pw-pdf-sanitize and pw-office-convert
    /// (default: next to this program, then ../lib/plugwarden from it).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Accept a PDF some of whose pages could not be rendered: each missing
    /// page becomes a labelled blank page, and the audit record lists them.
    #[arg(long)]
    pub allow_partial: bool,
    /// Password for encrypted PDFs that an empty password does not open:
    /// the first line of FILE (never on the command line).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Make every PDF output searchable: OCR each page with Tesseract (in
    /// its own sandbox) in LANG (eng, deu, eng+deu, ...) and add the words
    /// as an invisible text layer.
    #[arg(long, value_name = "LANG")]
    pub ocr: Option<String>,
    /// How the safe PDFs' page images are compressed: `fast` (zlib level 1)
    /// or `small` (zlib level 9: about half the size, many times the CPU;
    /// docs/SANITIZE.md has the measured trade-off).
    #[arg(long, value_enum, default_value_t = CompressArg::Fast)]
    pub compress: CompressArg,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub grants: super::GrantArgs,
}

/// `--compress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressArg {
    Fast,
    Small,
}

impl From<CompressArg> for Compress {
    fn from(c: CompressArg) -> Compress {
        match c {
            CompressArg::Fast => Compress::Fast,
            CompressArg::Small => Compress::Small,
        }
    }
}

/// Where the sanitize plugins are looked for: `--plugins DIR`, or beside
/// this program (`cargo install`, target/release) and then in
/// `../lib/plugwarden` from it (the Debian package's /usr/lib/plugwarden).
fn plugin_dirs(given: Option<&Path>) -> Result<Vec<PathBuf>, Usage> {
    if let Some(d) = given {
        return Ok(vec![d.to_path_buf()]);
    }
    let exe = std::env::current_exe().map_err(|e| {
        Usage(format!(
            "cannot find this program's path ({e}); pass --plugins DIR"
        ))
    })?;
    let bin = exe.parent().unwrap_or(Path::new("/"));
    let prefix = bin.parent().unwrap_or(bin);
    Ok(vec![bin.to_path_buf(), prefix.join("lib/plugwarden")])
}

/// The plugin's executable from the first directory that has it, checked
/// like any `--plugin` (executable, replaceable by no other user).
fn find_plugin(s: Sanitizer, dirs: &[PathBuf]) -> Result<PathBuf, Usage> {
    let name = s.plugin_name();
    match dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        Some(exe) => Ok(plugwarden::manifest::locate(&exe)?.exe),
        None => Err(Usage(format!(
            "the sanitize plugin {name} is missing (looked in {}): install plugwarden with its default features (`cargo install --path .` from a checkout), build it with `cargo build --release --workspace`, or pass --plugins DIR",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn sandbox_for(
    s: Sanitizer,
    dirs: &[PathBuf],
    a: &SanitizeArgs,
    fs: &Arc<plugwarden::spawn::ForkServer>,
) -> Result<Arc<Sandbox>, Usage> {
    let (args, mode) = match s {
        Sanitizer::Pdf => (vec!["--dpi".to_string(), a.dpi.to_string()], Mode::Worker),
        Sanitizer::Image => (Vec::new(), Mode::Worker),
        // LibreOffice: one process per document.
        Sanitizer::Office => (Vec::new(), Mode::Filter),
    };
    let plugin = PluginSpec {
        exe: find_plugin(s, dirs)?,
        args,
        mode,
        env: Vec::new(),
        cwd: None,
    };
    build_sandbox(plugin, s.policy_name(), a, fs, s == Sanitizer::Image)
}

/// `plugin` under the shipped `policy`, with the command line's timeout,
/// batch and grants (the same grants for every sandbox of the run; their
/// notes said once, with the first).
fn build_sandbox(
    mut plugin: PluginSpec,
    policy: &str,
    a: &SanitizeArgs,
    fs: &Arc<plugwarden::spawn::ForkServer>,
    say_notes: bool,
) -> Result<Arc<Sandbox>, Usage> {
    let mut policy = plugwarden::policy::load(policy)?;
    if let Some(t) = a.timeout {
        policy.limits.wall = t;
    }
    if let Some(b) = a.batch.batch {
        policy.worker.batch = b;
    }
    let (cwd, notes) = a.grants.applied(&Default::default(), &mut policy)?;
    if say_notes {
        for n in notes {
            eprintln!("plugwarden: note: {n}");
        }
    }
    plugin.cwd = cwd;
    Ok(Arc::new(Sandbox::new(
        fs.clone(),
        plugin,
        Arc::new(policy),
        Enforce::Policy,
    )?))
}

/// Tesseract in the `ocr` sandbox, one process per page.
fn ocr_for(
    lang: &str,
    a: &SanitizeArgs,
    fs: &Arc<plugwarden::spawn::ForkServer>,
) -> Result<Arc<Ocr>, Usage> {
    Ocr::check_lang(lang).map_err(Usage)?;
    let exe = plugwarden::manifest::locate(Path::new(TESSERACT))?.exe;
    let plugin = PluginSpec {
        exe,
        args: Ocr::args(lang, a.dpi),
        mode: Mode::Filter,
        // One thread: the pool already runs a document per core.
        env: vec![("OMP_THREAD_LIMIT".into(), "1".into())],
        cwd: None,
    };
    let sandbox = build_sandbox(plugin, "ocr", a, fs, false)?;
    Ok(Arc::new(Ocr {
        stage: stage_of(sandbox)?,
        lang: lang.to_string(),
    }))
}

fn stage_of(sandbox: Arc<Sandbox>) -> Result<Stage, Usage> {
    let exe = &sandbox.plugin.exe;
    // Readable now (its hash is taken when a record first names it).
    std::fs::File::open(exe)
        .map_err(|e| Usage(format!("cannot read the plugin {}: {e}", exe.display())))?;
    Ok(Stage::new(sandbox))
}

/// Which LibreOffice modules are installed: a format whose module is
/// missing is `unsupported`, with the package that brings it.
struct OfficeSupport {
    modules: Vec<OfficeModule>,
}

impl OfficeSupport {
    /// `PLUGWARDEN_NO_LIBREOFFICE=1` simulates a machine without it.
    fn probe() -> OfficeSupport {
        let root = Path::new(LIBREOFFICE);
        let simulated_absent =
            std::env::var_os("PLUGWARDEN_NO_LIBREOFFICE").is_some_and(|v| v == "1");
        let modules = if root.join("program/soffice.bin").exists() && !simulated_absent {
            [
                OfficeModule::Writer,
                OfficeModule::Calc,
                OfficeModule::Impress,
                OfficeModule::Draw,
            ]
            .into_iter()
            .filter(|m| root.join("share/registry").join(m.registry_file()).exists())
            .collect()
        } else {
            Vec::new()
        };
        OfficeSupport { modules }
    }

    fn check(&self, f: OfficeFormat) -> Result<(), Verdict> {
        let module = f.module();
        if self.modules.contains(&module) {
            return Ok(());
        }
        Err(Verdict::Unsupported(format!(
            "{}: LibreOffice{} is not installed: apt-get install {}",
            f.describe(),
            if self.modules.is_empty() {
                ""
            } else {
                "'s module for it"
            },
            module.debian_package()
        )))
    }
}

/// The office converter's job header: the format LibreOffice must read
/// the document as (none only if the file changed since it was routed:
/// the converter then refuses the job, plugin_error).
fn office_header(format: Option<OfficeFormat>) -> Vec<u8> {
    let name = format.map_or("", OfficeFormat::extension).as_bytes();
    let mut header = OFFICE_MAGIC.to_vec();
    header.extend_from_slice(&(name.len() as u32).to_le_bytes());
    header.extend_from_slice(name);
    header
}

/// The Office format of a routed input (the router found it a moment
/// ago, from the same bytes).
fn office_format(input: &Input) -> Option<OfficeFormat> {
    match sanitize::detect_file(&input.head().ok()?, input) {
        Ok(FileType::Office(f)) => Some(f),
        _ => None,
    }
}

/// `photo.jpg` → `photo.jpg.safe.png`: the original name stays visible,
/// the extension says what the file now is.
fn safe_name(rel: &Path, ext: &str) -> PathBuf {
    let mut name = rel
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".safe.{ext}"));
    rel.with_file_name(name)
}

/// Longest password file read.
const MAX_PASSWORD_FILE: u64 = 64 << 10;

/// The job prefix that carries the password of `--password-file` to the
/// pdf plugin: its first line, without the line ending.
fn password_prefix(path: &Path) -> Result<Vec<u8>, Usage> {
    let cannot = |e: std::io::Error| {
        Usage(format!(
            "cannot read the password file {}: {e}",
            path.display()
        ))
    };
    let mut text = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PASSWORD_FILE).read_to_end(&mut text))
        .map_err(cannot)?;
    let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if std::str::from_utf8(line).is_err() {
        return Err(Usage(format!(
            "the password file {} is not UTF-8 text",
            path.display()
        )));
    }
    let mut prefix = PDF_PASSWORD_MAGIC.to_vec();
    prefix.extend_from_slice(&(line.len() as u32).to_le_bytes());
    prefix.extend_from_slice(line);
    Ok(prefix)
}

/// Writes the pdf plugin's pages into the safe PDF as they arrive (a
/// temporary file in the output directory until the input is recorded)
/// and decides from the page report whether the input is `ok`; with OCR,
/// gives each page its text layer once all are in.
struct PdfSink {
    dir: PathBuf,
    name: PathBuf,
    limits: Limits,
    compress: Compress,
    allow_partial: bool,
    ocr: Option<Arc<Ocr>>,
    cancel: Option<Arc<AtomicBool>>,
    /// Created with the first part.
    stream: Option<PdfStream<HashedFile>>,
    saved: Option<SavedOutput>,
}

impl PdfSink {
    fn verdict(e: SanitizeError) -> Verdict {
        if e.is_protocol_error() {
            return Verdict::ProtocolError(e.to_string());
        }
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        Verdict::InputError(format!("cannot write the safe file: {e}{cause}"))
    }
}

impl OutputSink for PdfSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Verdict> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let file = HashedFile::create(Some(&self.dir))
                    .map_err(|e| Self::verdict(SanitizeError::Write(e)))?;
                let mut stream = PdfStream::new(file, self.limits).map_err(Self::verdict)?;
                stream.set_compress(self.compress);
                if self.ocr.is_some() {
                    let spill = tempfile::tempfile_in(&self.dir)
                        .map_err(|e| Self::verdict(SanitizeError::Write(e)))?;
                    stream.keep_pages_for_ocr(spill);
                }
                self.stream.insert(stream)
            }
        };
        stream.write(bytes).map_err(Self::verdict)
    }

    fn end(&mut self) -> Result<(), Verdict> {
        let mut stream = self
            .stream
            .take()
            .ok_or_else(|| Verdict::ProtocolError("the plugin answered with no output".into()))?;
        let ocr_notes = match &self.ocr {
            Some(ocr) => ocr.recognise(&mut stream, self.cancel.as_ref())?,
            None => Vec::new(),
        };
        let (file, report) = stream.finish().map_err(Self::verdict)?;
        let shortfall = report.shortfall();
        if let (Some(shortfall), false) = (&shortfall, self.allow_partial) {
            return Err(Verdict::PluginError(shortfall.clone()));
        }
        let saved = file
            .finish()
            .map_err(|e| Self::verdict(SanitizeError::Write(e)))?;
        self.saved = Some(SavedOutput {
            name: Some(self.name.clone()),
            detail: shortfall
                .map(|s| format!("{s} (--allow-partial: a labelled blank page in place of each)"))
                .unwrap_or_default(),
            notes: [report.notes(), ocr_notes].concat(),
            ..saved
        });
        Ok(())
    }

    fn restart(&mut self) {
        self.stream = None;
        self.saved = None;
    }

    fn take_saved(&mut self) -> Option<SavedOutput> {
        self.saved.take()
    }

    fn set_cancel(&mut self, cancel: Arc<AtomicBool>) {
        self.cancel = Some(cancel);
    }
}

pub fn sanitize(a: SanitizeArgs) -> Result<u8, Usage> {
    run::check_inputs(&a.batch.inputs)?;
    run::check_out_dir(&a.out)?;
    let dirs = plugin_dirs(a.plugins.as_deref())?;
    let fs = start_fork_server()?;
    // Office documents get a pool only where LibreOffice is installed;
    // elsewhere they are `unsupported`, naming the package.
    let office = OfficeSupport::probe();
    let mut routes = vec![Sanitizer::Image, Sanitizer::Pdf];
    if !office.modules.is_empty() {
        routes.push(Sanitizer::Office);
    }
    let sandboxes = routes
        .iter()
        .map(|s| sandbox_for(*s, &dirs, &a, &fs))
        .collect::<Result<Vec<_>, _>>()?;
    // An Office document's second stage: the pdf route's sandbox.
    let pdf_route = routes
        .iter()
        .position(|r| *r == Sanitizer::Pdf)
        .unwrap_or(1);
    let pdf_stage = Arc::new(stage_of(sandboxes[pdf_route].clone())?);
    let ocr = a
        .ocr
        .as_deref()
        .map(|lang| ocr_for(lang, &a, &fs))
        .transpose()?;
    let limits = Limits {
        dpi: a.dpi,
        ..Limits::default()
    };
    let password = a
        .password_file
        .as_deref()
        .map(password_prefix)
        .transpose()?;
    let router = {
        let routes = routes.clone();
        move |head: &[u8], input: &Input| {
            let kind = sanitize::detect_file(head, input)
                .map_err(|e| Verdict::Unsupported(e.to_string()))?;
            if let FileType::Office(f) = kind {
                office.check(f)?;
            }
            kind.sanitizer()
                .and_then(|s| routes.iter().position(|r| *r == s))
                .ok_or_else(|| Verdict::Unsupported(kind.describe().to_string()))
        }
    };
    let (out, allow_partial, compress) = (a.out.clone(), a.allow_partial, a.compress.into());
    let pdf_sink = move |rel: &Path| PdfSink {
        dir: out.clone(),
        name: safe_name(rel, Sanitizer::Pdf.output_extension()),
        limits,
        compress,
        allow_partial,
        ocr: ocr.clone(),
        cancel: None,
        stream: None,
        saved: None,
    };
    let (out, prepare_routes) = (a.out.clone(), routes.clone());
    let prepare = move |route: usize, rel: &Path, input: Input| match prepare_routes.get(route) {
        Some(Sanitizer::Pdf) => {
            let input = match &password {
                Some(prefix) => input.prefixed(prefix),
                None => input,
            };
            (input, Some(Box::new(pdf_sink(rel)) as Box<dyn OutputSink>))
        }
        Some(Sanitizer::Office) => {
            let format = office_format(&input);
            let header = office_header(format);
            let name = format.map_or("document", OfficeFormat::extension);
            let next = Box::new(pdf_sink(rel));
            let sink = OfficeSink::new(pdf_stage.clone(), next, &out, name);
            (
                input.prefixed(&header),
                Some(Box::new(sink) as Box<dyn OutputSink>),
            )
        }
        _ => (input, None),
    };
    // Images only: a PDF's output goes to its sink.
    let convert = move |route: usize, rel: &Path, pixels: Vec<u8>| {
        if routes.get(route) != Some(&Sanitizer::Image) {
            return Err(Verdict::SetupError(format!(
                "no converter for route {route}"
            )));
        }
        match sanitize::png_from_plugin_output(&pixels, &limits) {
            Ok((png, _, _)) => Ok((png, safe_name(rel, Sanitizer::Image.output_extension()))),
            Err(e) if e.is_protocol_error() => Err(Verdict::ProtocolError(e.to_string())),
            Err(e) => Err(Verdict::InputError(format!(
                "cannot write the safe file: {e}"
            ))),
        }
    };
    run::drive(Batch {
        sandboxes,
        router: Box::new(router),
        prepare: Some(Box::new(prepare)),
        convert: Some(Box::new(convert)),
        out: Some(a.out),
        args: a.batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_safe_name_keeps_name_and_adds_kind() {
        assert_eq!(
            safe_name(Path::new("a/photo.jpg"), "png"),
            PathBuf::from("a/photo.jpg.safe.png")
        );
    }
}
