//! The office converter: one Office or OpenDocument file in on stdin, its
//! PDF out on stdout, by LibreOffice headless — run inside plugwarden's
//! `office` sandbox as a filter (one process per document).
//!
//! LibreOffice reads files, not pipes, and wants a home, a profile and
//! scratch space. So this writes the document into the sandbox's private
//! `/tmp` (a tmpfs that vanishes with the sandbox, [`WORKDIR`]), makes a
//! fresh profile there whose settings never run a macro, never update a
//! link and never load from the network ([`REGISTRY`]), runs `soffice.bin`
//! once (twice when a fresh profile asks for its restart, exit status 81)
//! with the import filter of the format the host detected, and copies the
//! PDF it wrote to stdout. LibreOffice's own stdout goes to stderr, so
//! nothing but the PDF reaches the host's output, which the host treats
//! as untrusted anyway (it renders it to pixels in the pdf sandbox).
//!
//! The job's input starts with a header naming the format (the host's
//! detection; [`MAGIC`]), so a polyglot is read as what it was routed as.
//! Failures: exit status 1 with a sentence on stderr; [`EXIT_TMP_FULL`]
//! when the private `/tmp` filled up; when LibreOffice dies from a signal
//! this process dies from the same one (the host's verdict is then
//! `crashed`, naming it).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// Job header: this magic, u32 LE length (at most [`MAX_FORMAT_NAME`]), the
/// format's name (one of [`FORMATS`]), then the document.
pub const MAGIC: &[u8; 8] = b"PWOFFC1\0";
/// Longest format name in the header.
pub const MAX_FORMAT_NAME: u32 = 16;
/// Exit status when the private /tmp is full.
pub const EXIT_TMP_FULL: i32 = 3;
/// LibreOffice's program, the one the `office` policy lets run.
pub const SOFFICE: &str = "/usr/lib/libreoffice/program/soffice.bin";
/// The private /tmp's directory this works in.
pub const WORKDIR: &str = "/tmp/pw-office";
/// LibreOffice's exit status after it set up a fresh profile: run again.
const EXIT_RESTART: i32 = 81;
/// Below this many free bytes after a failure, the /tmp counts as full.
const FULL_MARGIN: u64 = 1 << 20;

/// Format name → LibreOffice's import filter for it.
pub const FORMATS: [(&str, &str); 11] = [
    ("docx", "MS Word 2007 XML"),
    ("doc", "MS Word 97"),
    ("xlsx", "Calc MS Excel 2007 XML"),
    ("xls", "MS Excel 97"),
    ("pptx", "Impress MS PowerPoint 2007 XML"),
    ("ppt", "MS PowerPoint 97"),
    ("odt", "writer8"),
    ("ods", "calc8"),
    ("odp", "impress8"),
    ("odg", "draw8"),
    ("rtf", "Rich Text Format"),
];

/// The fresh profile's settings (`user/registrymodifications.xcu`):
/// macros never run (the highest security level with no trusted location,
/// and macro execution switched off), links are never updated when a
/// document loads (Writer: 2, Calc: 1 mean never), formulas are not
/// recalculated on load (WEBSERVICE and friends stay their cached value),
/// nothing is fetched for a document that is not trusted
/// (BlockUntrustedRefererLinks: no linked picture or template), no lock
/// files. The sandbox has no network and no processes to start anyway;
/// these make LibreOffice not try.
pub const REGISTRY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="MacroSecurityLevel" oor:op="fuse"><value>3</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="DisableMacrosExecution" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Security/Scripting"><prop oor:name="BlockUntrustedRefererLinks" oor:op="fuse"><value>true</value></prop></item>
<item oor:path="/org.openoffice.Office.Writer/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>2</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Content/Update"><prop oor:name="Link" oor:op="fuse"><value>1</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>1</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>1</value></prop></item>
<item oor:path="/org.openoffice.Office.Common/Misc"><prop oor:name="UseLocking" oor:op="fuse"><value>false</value></prop></item>
</oor:items>
"#;

/// Why a conversion failed.
#[derive(Debug)]
pub enum Failure {
    /// The job's header is not one this converter writes.
    Header(String),
    /// The private /tmp filled up while `what`.
    TmpFull {
        what: &'static str,
    },
    Io {
        what: String,
        source: io::Error,
    },
    /// LibreOffice ran but left no PDF.
    NoPdf {
        status: ExitStatus,
    },
    /// LibreOffice died from this signal.
    Killed(i32),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Header(why) => write!(f, "bad job header: {why}"),
            Failure::TmpFull { what } => {
                write!(f, "the private /tmp is full ({what}): the document needs more scratch space than the office policy's tmp")
            }
            Failure::Io { what, source } => write!(f, "cannot {what}: {source}"),
            Failure::NoPdf { status } => write!(
                f,
                "LibreOffice could not load or convert the document (it wrote no PDF; {status})"
            ),
            Failure::Killed(sig) => write!(f, "LibreOffice was killed by signal {sig}"),
        }
    }
}

impl Failure {
    /// The exit status that tells the host what happened.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::TmpFull { .. } => EXIT_TMP_FULL,
            _ => 1,
        }
    }
}

/// Reads the job header; returns the format's name and import filter.
pub fn read_header(input: &mut impl Read) -> Result<(&'static str, &'static str), Failure> {
    let mut head = [0u8; 12];
    input
        .read_exact(&mut head)
        .map_err(|_| Failure::Header("shorter than its 12 bytes".into()))?;
    if &head[..8] != MAGIC {
        return Err(Failure::Header("it does not start with PWOFFC1".into()));
    }
    let len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if len > MAX_FORMAT_NAME {
        return Err(Failure::Header(format!("a format name of {len} bytes")));
    }
    let mut name = vec![0u8; len as usize];
    input
        .read_exact(&mut name)
        .map_err(|_| Failure::Header("cut short in the format name".into()))?;
    FORMATS
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|(n, filter)| (*n, *filter))
        .ok_or_else(|| {
            Failure::Header(format!(
                "unknown format {:?}",
                String::from_utf8_lossy(&name)
            ))
        })
}

/// The working directories under [`WORKDIR`].
struct Work {
    root: PathBuf,
}

impl Work {
    fn create(root: &Path) -> Result<Work, Failure> {
        let work = Work {
            root: root.to_path_buf(),
        };
        for dir in ["profile/user", "home", "tmp", "in", "out"] {
            let path = work.root.join(dir);
            fs::create_dir_all(&path).map_err(|e| {
                io_failure(
                    format!("create {}", path.display()),
                    e,
                    "making the work directories",
                )
            })?;
        }
        Ok(work)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// An I/O error, or [`Failure::TmpFull`] when it is the disk being full.
fn io_failure(what: String, source: io::Error, doing: &'static str) -> Failure {
    if is_full(&source) {
        return Failure::TmpFull { what: doing };
    }
    Failure::Io { what, source }
}

fn is_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
    )
}

/// Converts the document on `input` (header included) and writes its PDF
/// to `output`, running `soffice` in `workdir`.
pub fn convert(
    mut input: impl Read,
    mut output: impl Write,
    soffice: &Path,
    workdir: &Path,
) -> Result<(), Failure> {
    let (format, filter) = read_header(&mut input)?;
    let work = Work::create(workdir)?;
    let document = work.path(&format!("in/document.{format}"));
    copy_to_file(&mut input, &document)?;
    let registry = work.path("profile/user/registrymodifications.xcu");
    fs::write(&registry, REGISTRY).map_err(|e| {
        io_failure(
            format!("write {}", registry.display()),
            e,
            "writing the profile",
        )
    })?;
    let mut status = run_soffice(soffice, &work, filter, &document)?;
    if status.code() == Some(EXIT_RESTART) {
        status = run_soffice(soffice, &work, filter, &document)?;
    }
    if let Some(sig) = status.signal() {
        return Err(Failure::Killed(sig));
    }
    let pdf = work.path("out/document.pdf");
    let mut file = match File::open(&pdf) {
        Ok(f) => f,
        Err(_) if free_bytes(workdir).is_some_and(|free| free < FULL_MARGIN) => {
            return Err(Failure::TmpFull {
                what: "LibreOffice's scratch files",
            })
        }
        Err(_) => return Err(Failure::NoPdf { status }),
    };
    io::copy(&mut file, &mut output).map_err(|e| Failure::Io {
        what: "write the PDF to stdout".into(),
        source: e,
    })?;
    output.flush().map_err(|e| Failure::Io {
        what: "write the PDF to stdout".into(),
        source: e,
    })
}

fn copy_to_file(input: &mut impl Read, path: &Path) -> Result<(), Failure> {
    let mut file = File::create(path).map_err(|e| {
        io_failure(
            format!("create {}", path.display()),
            e,
            "storing the document",
        )
    })?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure::Io {
                    what: "read the document from stdin".into(),
                    source: e,
                })
            }
        };
        file.write_all(&buf[..n]).map_err(|e| {
            io_failure(
                format!("write {}", path.display()),
                e,
                "storing the document",
            )
        })?;
    }
    Ok(())
}

/// One run of LibreOffice: headless, the fresh profile, the forced import
/// filter, the PDF into `out/`. Its stdout goes to our stderr, its stdin
/// is /dev/null; its environment is only what it needs (`svp`: no display).
fn run_soffice(
    soffice: &Path,
    work: &Work,
    filter: &str,
    document: &Path,
) -> Result<ExitStatus, Failure> {
    let profile = format!(
        "-env:UserInstallation=file://{}",
        work.path("profile").display()
    );
    Command::new(soffice)
        .arg(profile)
        .args([
            "--headless",
            "--invisible",
            "--nocrashreport",
            "--nodefault",
            "--nolockcheck",
            "--nologo",
            "--norestore",
        ])
        .arg(format!("--infilter={filter}"))
        .args(["--convert-to", "pdf", "--outdir"])
        .arg(work.path("out"))
        .arg(document)
        .env_clear()
        .env("HOME", work.path("home"))
        .env("TMPDIR", work.path("tmp"))
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("SAL_USE_VCLPLUGIN", "svp")
        // LibreOffice's thread pool sizes itself by the CPUs; the pool
        // already runs a document per CPU, and the office policy counts
        // threads with processes.
        .env("MAX_CONCURRENCY", "1")
        .stdin(Stdio::null())
        .stdout(io::stderr())
        .status()
        .map_err(|e| Failure::Io {
            what: format!("run {}", soffice.display()),
            source: e,
        })
}

/// Free bytes of the filesystem holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` is writable memory of
    // the right type; statvfs writes nothing else.
    if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Ends this process by `sig`, as LibreOffice ended: default disposition,
/// then the signal raised (exit status 128 + sig if it does not kill).
pub fn die_by(sig: i32) -> ! {
    // SAFETY: resetting a disposition to SIG_DFL installs no handler code,
    // and raise only sends a signal to this thread.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    std::process::exit(128 + sig)
}

#[cfg(test)]
mod tests;
