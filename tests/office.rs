//! Office and OpenDocument files through `plugwarden sanitize`: LibreOffice
//! in the `office` sandbox, its PDF through the pdf plugin, `--ocr` through
//! Tesseract in the `ocr` sandbox. Every test needs LibreOffice (Debian's
//! libreoffice-*-nogui, which .ci/run installs when missing) and says it is
//! not applicable without it; the OCR checks need tesseract-ocr-eng.
//!
//! LibreOffice takes a second or two a document: the samples share one
//! batch, and the tests that look for leftover LibreOffice processes run
//! alone ([`LIBREOFFICE`]).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use common::*;

/// Tests that count LibreOffice processes take it for writing; the others
/// for reading.
static LIBREOFFICE: RwLock<()> = RwLock::new(());

const SOFFICE: &str = "/usr/lib/libreoffice/program/soffice.bin";
/// Where the hostile samples try to fetch from (samples/office/make_office.py).
const REMOTE: &str = "127.0.0.1:47913";

/// Why the LibreOffice tests cannot run here, if they cannot.
fn libreoffice_missing() -> Option<String> {
    let modules = ["writer", "calc", "impress", "draw"];
    let root = Path::new("/usr/lib/libreoffice");
    let missing = !Path::new(SOFFICE).exists()
        || modules
            .iter()
            .any(|m| !root.join(format!("share/registry/{m}.xcd")).exists());
    missing.then(|| {
        "not applicable: LibreOffice is not installed (apt-get install libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui libreoffice-draw-nogui)".to_string()
    })
}

fn tesseract_missing() -> Option<String> {
    let model = Path::new("/usr/share/tesseract-ocr/5/tessdata/eng.traineddata");
    (!Path::new("/usr/bin/tesseract").exists() || !model.exists())
        .then(|| "not applicable: Tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)".to_string())
}

/// Copies `names` (relative to samples/, or to the checkout when they
/// start with tests/) into a fresh input directory.
fn inputs(dir: &Path, names: &[&str]) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    for name in names {
        let src = match name.starts_with("tests/") {
            true => repo().join(name),
            false => repo().join("samples").join(name),
        };
        let file = Path::new(name).file_name().unwrap();
        std::fs::copy(&src, input.join(file)).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    }
    input
}

/// `plugwarden sanitize IN --out DIR/safe --audit DIR/audit.jsonl ARGS`;
/// returns the run and its audit records by input file name.
fn sanitize(
    cmd: Command,
    dir: &Path,
    input: &Path,
    args: &[&str],
) -> (Output, BTreeMap<String, serde_json::Value>) {
    let mut cmd = cmd;
    let (out, audit) = (dir.join("safe"), dir.join("audit.jsonl"));
    let o = cmd
        .args(["sanitize", "--out"])
        .arg(&out)
        .arg("--audit")
        .arg(&audit)
        .args(args)
        .arg(input)
        .output()
        .unwrap();
    let records = std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|r| {
            let name = Path::new(r["input"].as_str()?)
                .file_name()?
                .to_string_lossy()
                .into_owned();
            Some((name, r))
        })
        .collect();
    (o, records)
}

fn notes(record: &serde_json::Value) -> Vec<String> {
    record["notes"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Counts connections to the address the hostile samples fetch from,
/// until dropped; `None` when the port is taken (that check is skipped).
struct Listener {
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start() -> Option<Listener> {
        let socket = TcpListener::bind(REMOTE).ok()?;
        socket.set_nonblocking(true).unwrap();
        let (hits, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let thread = {
            let (hits, stop) = (hits.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match socket.accept() {
                        Ok(_) => {
                            hits.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Some(Listener {
            hits,
            stop,
            thread: Some(thread),
        })
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An RGB image.
struct Rgb {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Rgb {
    /// How far `other` is: the mean absolute difference per channel
    /// (0-255), and the share of pixels that differ by more than half the
    /// range in some channel (ink in one, none in the other: what a
    /// different font or a moved line gives, unlike anti-aliasing); `None`
    /// when the sizes differ by more than a pixel (rounding of the page
    /// size).
    fn distance(&self, other: &Rgb) -> Option<(f64, f64)> {
        if self.width.abs_diff(other.width) > 1 || self.height.abs_diff(other.height) > 1 {
            return None;
        }
        let (w, h) = (self.width.min(other.width), self.height.min(other.height));
        let (mut sum, mut far) = (0u64, 0u64);
        for y in 0..h {
            let a = &self.pixels[y * self.width * 3..][..w * 3];
            let b = &other.pixels[y * other.width * 3..][..w * 3];
            for (p, q) in a.chunks_exact(3).zip(b.chunks_exact(3)) {
                let d = p.iter().zip(q).map(|(x, y)| x.abs_diff(*y));
                sum += d.clone().map(u64::from).sum::<u64>();
                far += u64::from(d.max().unwrap_or(0) > 128);
            }
        }
        let pixels = (w * h) as f64;
        Some((sum as f64 / (pixels * 3.0), far as f64 / pixels))
    }
}

/// The page images of a sanitized PDF (each page one RGB image).
fn pages_of(pdf: &Path) -> Vec<Rgb> {
    let doc = lopdf::Document::load(pdf).unwrap_or_else(|e| panic!("{}: {e}", pdf.display()));
    doc.get_pages()
        .values()
        .map(|&page| {
            let page = doc.get_object(page).unwrap().as_dict().unwrap();
            let resources = page.get(b"Resources").unwrap().as_dict().unwrap();
            let xobjects = resources.get(b"XObject").unwrap().as_dict().unwrap();
            let id = xobjects.get(b"Im0").unwrap().as_reference().unwrap();
            let image = doc.get_object(id).unwrap().as_stream().unwrap();
            let dim = |k: &[u8]| image.dict.get(k).unwrap().as_i64().unwrap() as usize;
            let mut pixels = Vec::new();
            flate2::read::ZlibDecoder::new(image.content.as_slice())
                .read_to_end(&mut pixels)
                .unwrap();
            Rgb {
                width: dim(b"Width"),
                height: dim(b"Height"),
                pixels,
            }
        })
        .collect()
}

/// The reference rendering of Office documents: LibreOffice outside any
/// sandbox (one process for all of them), then poppler's pdftoppm at 150
/// dpi. `Err` says why there is none (pdftoppm missing).
fn references(dir: &Path, names: &[&str]) -> Result<BTreeMap<String, Vec<Rgb>>, String> {
    if Command::new("pdftoppm").arg("-v").output().is_err() {
        return Err("pdftoppm is not installed (apt-get install poppler-utils)".into());
    }
    let work = dir.join("reference");
    std::fs::create_dir_all(&work).unwrap();
    // Numbered copies: benign.docx and benign.odt would both become benign.pdf.
    let docs: Vec<PathBuf> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ext = Path::new(n).extension().unwrap().to_string_lossy();
            let doc = work.join(format!("{i}.{ext}"));
            std::fs::copy(repo().join("samples").join(n), &doc).unwrap();
            doc
        })
        .collect();
    let convert = |docs: &[PathBuf]| {
        Command::new(SOFFICE)
            .arg(format!(
                "-env:UserInstallation=file://{}/profile",
                work.display()
            ))
            .args([
                "--headless",
                "--norestore",
                "--convert-to",
                "pdf",
                "--outdir",
            ])
            .arg(&work)
            .args(docs)
            .env("HOME", &work)
            .output()
            .unwrap()
    };
    // A fresh profile's first start may end before converting (exit
    // status 81: LibreOffice's own launcher would run it again).
    if convert(&docs).status.code() == Some(81) {
        convert(&docs);
    }
    let mut out = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let pdf = work.join(format!("{i}.pdf"));
        assert!(pdf.exists(), "{name}: LibreOffice wrote no reference PDF");
        let ok = Command::new("pdftoppm")
            .args(["-r", "150"])
            .arg(&pdf)
            .arg(work.join(format!("page{i}")))
            .status()
            .unwrap();
        assert!(ok.success());
        let mut pages: Vec<PathBuf> = std::fs::read_dir(&work)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let f = p.file_name().unwrap().to_string_lossy();
                f.starts_with(&format!("page{i}-")) && f.ends_with(".ppm")
            })
            .collect();
        pages.sort();
        out.insert(
            name.to_string(),
            pages.iter().map(|p| read_ppm(p)).collect(),
        );
    }
    Ok(out)
}

/// A binary PPM (P6, 8 bits) as pdftoppm writes it.
fn read_ppm(path: &Path) -> Rgb {
    let bytes = std::fs::read(path).unwrap();
    let mut fields = Vec::new();
    let mut at = 0;
    while fields.len() < 4 {
        while bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
    }
    assert_eq!(fields[0], "P6", "{}", path.display());
    Rgb {
        width: fields[1].parse().unwrap(),
        height: fields[2].parse().unwrap(),
        pixels: bytes[at + 1..].to_vec(),
    }
}

fn text_of(pdf: &Path) -> String {
    let doc = lopdf::Document::load(pdf).unwrap();
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    doc.extract_text(&pages).unwrap_or_default()
}

/// A docx with `marker` in its text (stored, so the bytes are there as
/// they are): what the stand-in converter looks for.
fn docx_with(marker: &str) -> Vec<u8> {
    let types = br#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let body = format!(
        r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>{marker}</w:t></w:r></w:p></w:body></w:document>"#
    );
    stored_zip(&[
        ("[Content_Types].xml", types),
        ("word/document.xml", body.as_bytes()),
    ])
}

fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let (crc, len, offset) = (crc.sum(), data.len() as u32, out.len() as u32);
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        };
        out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\x21\0");
        common(&mut out);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\x21\0");
        common(&mut central);
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (at, len, n) = (out.len() as u32, central.len() as u32, entries.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    for v in [n, n] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// Pages of each sample's output.
const PAGES: [(&str, usize); 17] = [
    ("benign.docx", 2),
    ("benign.doc", 2),
    ("benign.xlsx", 1),
    ("benign.xls", 1),
    ("benign.pptx", 2),
    ("benign.ppt", 2),
    ("benign.odt", 1),
    ("benign.ods", 1),
    ("benign.odp", 2),
    ("benign.odg", 1),
    ("benign.rtf", 1),
    ("hostile-macro-vba.docx", 1),
    ("hostile-macro-onload.odt", 1),
    ("hostile-remote-template.docx", 1),
    ("hostile-external-link.xlsx", 1),
    ("hostile-ole-object.pptx", 1),
    ("hostile-odt-pdf-polyglot.odt", 1),
];

#[test]
fn test_office_samples_in_a_mixed_batch_give_clean_searchable_pdfs() {
    if let Some(why) = libreoffice_missing() {
        println!("{why}");
        return;
    }
    let ocr = tesseract_missing();
    if let Some(why) = &ocr {
        println!("{why}: the text layer is not checked");
    }
    let _alone = LIBREOFFICE.read().unwrap();
    let dir = scratch();
    let mut names: Vec<String> = PAGES.iter().map(|(n, _)| format!("office/{n}")).collect();
    names.extend(["benign.pdf".into(), "benign.png".into()]);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let input = inputs(dir.path(), &names);
    let listener = Listener::start();
    let args: &[&str] = if ocr.is_none() {
        &["--ocr", "eng"]
    } else {
        &[]
    };

    let (o, records) = sanitize(Command::new(plugwarden()), dir.path(), &input, args);

    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let verdicts = verdicts(&stdout);
    for name in names
        .iter()
        .map(|n| Path::new(n).file_name().unwrap().to_string_lossy())
    {
        assert_eq!(
            verdicts.get(name.as_ref()).map(String::as_str),
            Some("ok"),
            "{name}\n{stdout}\n{stderr}"
        );
    }
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    match &listener {
        Some(l) => assert_eq!(l.hits(), 0, "a sample reached {REMOTE} from the sandbox"),
        None => println!("{REMOTE} is taken: the no-fetch check is skipped"),
    }
    let out = dir.path().join("safe");
    for (name, pages) in PAGES {
        let pdf = out.join(format!("{name}.safe.pdf"));
        let doc = lopdf::Document::load(&pdf).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.get_pages().len(), pages, "{name}");
        assert_eq!(has_forbidden(&doc), Vec::<String>::new(), "{name}");
        assert!(
            doc.trailer.get(b"Info").is_err(),
            "{name}: an Info dictionary"
        );
        let record = &records[name];
        assert_eq!(record["policy"], "office", "{name}");
        let notes = notes(record);
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("stage 1 of 2, office: LibreOffice converted the"))
                && notes
                    .iter()
                    .any(|n| n.starts_with("stage 2 of 2, pdf: ok in ")),
            "{name}: {notes:?}"
        );
    }
    if ocr.is_none() {
        for name in [
            "benign.docx",
            "benign.doc",
            "benign.odt",
            "benign.pptx",
            "benign.odp",
            "benign.rtf",
            "benign.xlsx",
            "hostile-macro-vba.docx",
            "hostile-macro-onload.odt",
            "hostile-remote-template.docx",
            "hostile-ole-object.pptx",
        ] {
            let text = text_of(&out.join(format!("{name}.safe.pdf"))).to_lowercase();
            assert!(text.contains("harvest"), "{name}: {text}");
            assert!(!text.contains("macro ran"), "{name}: a macro ran: {text}");
        }
        let polyglot = text_of(&out.join("hostile-odt-pdf-polyglot.odt.safe.pdf"));
        assert!(
            polyglot.contains("ODT SIDE") && !polyglot.contains("PDF SIDE"),
            "{polyglot}"
        );
        assert!(text_of(&out.join("benign.pdf.safe.pdf")).contains("quick brown fox"));
        assert!(notes(&records["benign.docx"])
            .iter()
            .any(|n| n.starts_with("ocr (eng): 2 of 2 rendered pages read")));
    }
    // Pixels: as LibreOffice draws the document outside any sandbox, and
    // poppler renders that. Measured here: means 0.07-1.03 (anti-aliasing
    // of two renderers); a page of text against a blank page is 3.8.
    const MAX_MEAN: f64 = 1.5;
    const MAX_FAR: f64 = 0.005;
    let compared = [
        "benign.docx",
        "benign.odt",
        "benign.xlsx",
        "benign.pptx",
        "benign.odg",
        "hostile-odt-pdf-polyglot.odt",
    ];
    let names: Vec<String> = compared.iter().map(|n| format!("office/{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match references(dir.path(), &names) {
        Ok(refs) => {
            for name in compared {
                let ours = pages_of(&out.join(format!("{name}.safe.pdf")));
                let theirs = &refs[&format!("office/{name}")];
                assert_eq!(ours.len(), theirs.len(), "{name}");
                for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
                    let d = a.distance(b);
                    println!(
                        "{name} page {}: (mean, far) {d:?} from the reference",
                        i + 1
                    );
                    assert!(
                        d.is_some_and(|(mean, far)| mean < MAX_MEAN && far < MAX_FAR),
                        "{name} page {}: {}x{} vs {}x{}, distance {d:?}",
                        i + 1,
                        a.width,
                        a.height,
                        b.width,
                        b.height
                    );
                }
            }
        }
        Err(why) => println!("not applicable: the pixel comparison: {why}"),
    }
}

#[test]
fn test_office_without_libreoffice_is_unsupported_naming_the_package() {
    let dir = scratch();
    let input = inputs(
        dir.path(),
        &["office/benign.docx", "office/benign.ods", "benign.pdf"],
    );
    let mut cmd = Command::new(plugwarden());
    cmd.env("PLUGWARDEN_NO_LIBREOFFICE", "1");

    let (o, _) = sanitize(cmd, dir.path(), &input, &[]);

    let stdout = String::from_utf8_lossy(&o.stdout);
    let v = verdicts(&stdout);
    assert_eq!(v["benign.docx"], "unsupported", "{stdout}");
    assert_eq!(v["benign.ods"], "unsupported", "{stdout}");
    assert_eq!(v["benign.pdf"], "ok", "{stdout}");
    for detail in [
        ": Word document (docx): LibreOffice is not installed: apt-get install libreoffice-writer-nogui\n",
        ": OpenDocument spreadsheet (ods): LibreOffice is not installed: apt-get install libreoffice-calc-nogui\n",
    ] {
        assert!(stdout.contains(detail), "{stdout}");
    }
}

/// A plugins directory with the real pdf and image plugins and the
/// stand-in converter (plugins/probe's pw-fake-office-convert) as
/// pw-office-convert.
fn plugins_with_fake_converter(dir: &Path) -> (PathBuf, PathBuf) {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for name in ["pw-pdf-sanitize", "pw-image-sanitize"] {
        copy_executable(&plugin(name), &plugins.join(name));
    }
    let fake = plugins.join("pw-office-convert");
    copy_executable(&plugin("pw-fake-office-convert"), &fake);
    (plugins, fake)
}

#[test]
fn test_office_converter_crash_hang_full_tmp_and_leftover_process_end_alone() {
    if let Some(why) = libreoffice_missing() {
        println!("{why}");
        return;
    }
    let _alone = LIBREOFFICE.read().unwrap();
    let dir = scratch();
    let (plugins, fake) = plugins_with_fake_converter(dir.path());
    // Two batches at once: the hang with a short wall (retried once), the
    // rest under the office policy's own limits (filling its 2 GiB /tmp
    // takes seconds on a loaded machine).
    let batches = [
        (
            vec![
                ("crash.docx", "PW-CRASH"),
                ("fill-tmp.docx", "PW-FILL-TMP"),
                ("linger.docx", "PW-LINGER"),
                ("plain.docx", "nothing special"),
            ],
            vec![],
        ),
        (vec![("hang.docx", "PW-HANG")], vec!["--timeout", "3s"]),
    ];
    let runs: Vec<_> = batches
        .into_iter()
        .enumerate()
        .map(|(i, (docs, args))| {
            let (root, plugins) = (dir.path().join(format!("batch{i}")), plugins.clone());
            std::thread::spawn(move || {
                let input = root.join("in");
                std::fs::create_dir_all(&input).unwrap();
                for (name, marker) in docs {
                    std::fs::write(input.join(name), docx_with(marker)).unwrap();
                }
                let mut args: Vec<&str> = args;
                let plugins_arg = plugins.to_string_lossy().into_owned();
                args.extend(["--plugins", &plugins_arg]);
                let (o, records) = sanitize(Command::new(plugwarden()), &root, &input, &args);
                (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    records.len(),
                )
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();

    let stdout = format!("{}{}", runs[0].0, runs[1].0);
    let v = verdicts(&stdout);
    assert_eq!(v["crash.docx"], "crashed", "{stdout}");
    assert!(stdout.contains("killed by SIGABRT"), "{stdout}");
    assert_eq!(v["hang.docx"], "timeout", "{stdout}");
    assert_eq!(v["fill-tmp.docx"], "memory", "{stdout}");
    assert_eq!(v["linger.docx"], "ok", "{stdout}");
    assert_eq!(v["plain.docx"], "ok", "{stdout}");
    assert_eq!(runs[0].1 + runs[1].1, 5);
    // The process the converter left behind went with its sandbox.
    let left: Vec<i32> = running(&fake);
    assert!(left.is_empty(), "still running: {left:?}");
}

/// Entries of the host's /tmp that LibreOffice would leave (its pipe, its
/// temporary files, a profile).
fn libreoffice_leftovers_in_tmp() -> Vec<String> {
    std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("OSL_PIPE") || n.starts_with("lu") || n == "pw-office")
        .collect()
}

#[test]
fn test_office_zip_bomb_and_million_rows_end_alone_and_leave_nothing() {
    if let Some(why) = libreoffice_missing() {
        println!("{why}");
        return;
    }
    let _alone = LIBREOFFICE.write().unwrap();
    let before = libreoffice_leftovers_in_tmp();
    // Two batches at once: the bomb under the policy's own limits, the
    // spreadsheet with a shorter wall (its timeout is retried once).
    let runs = [
        (
            vec![
                "tests/data/office/hostile-zip-bomb.docx",
                "office/benign.odt",
            ],
            vec![],
        ),
        (
            vec![
                "tests/data/office/hostile-million-rows.xlsx",
                "office/benign.rtf",
            ],
            vec!["--timeout", "15s"],
        ),
    ];
    let handles: Vec<_> = runs
        .into_iter()
        .map(|(names, args)| {
            std::thread::spawn(move || {
                let dir = scratch();
                let input = inputs(dir.path(), &names);
                let (o, records) = sanitize(Command::new(plugwarden()), dir.path(), &input, &args);
                (String::from_utf8_lossy(&o.stdout).into_owned(), records)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let (bomb, bomb_records) = &results[0];
    let v = verdicts(bomb);
    assert_eq!(v["hostile-zip-bomb.docx"], "memory", "{bomb}");
    assert_eq!(v["benign.odt"], "ok", "{bomb}");
    assert_eq!(
        bomb_records["hostile-zip-bomb.docx"]["attempt"], 2,
        "retried once, then poison"
    );
    let (rows, _) = &results[1];
    let v = verdicts(rows);
    assert_eq!(v["hostile-million-rows.xlsx"], "timeout", "{rows}");
    assert_eq!(v["benign.rtf"], "ok", "{rows}");
    // Nothing of LibreOffice outlives its sandbox: no process, and its
    // profile, pipe and scratch files were in the private /tmp.
    assert_eq!(running(Path::new(SOFFICE)), Vec::<i32>::new());
    assert_eq!(libreoffice_leftovers_in_tmp(), before);
}

#[test]
fn test_office_unprivileged_host_converts_and_reads_a_docx() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if let Some(why) = libreoffice_missing() {
        println!("{why}");
        return;
    }
    if !is_root() {
        println!("not applicable: switching the host to uid 65534 needs root");
        return;
    }
    let _alone = LIBREOFFICE.read().unwrap();
    let dir = scratch();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    copy_executable(&plugwarden(), &bin.join("plugwarden"));
    for name in ["pw-pdf-sanitize", "pw-image-sanitize", "pw-office-convert"] {
        copy_executable(&plugin(name), &bin.join(name));
    }
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o777)).unwrap();
    let input = inputs(&work, &["office/benign.docx"]);
    let ocr = tesseract_missing();
    let mut args = vec!["--plugins", bin.to_str().unwrap()];
    if ocr.is_none() {
        args.extend(["--ocr", "eng"]);
    }
    let mut cmd = Command::new(bin.join("plugwarden"));
    cmd.uid(65534)
        .gid(65534)
        .current_dir(&work)
        .env_remove("PLUGWARDEN_EXE");

    let (o, records) = sanitize(cmd, &work, &input, &args);

    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(verdicts(&stdout)["benign.docx"], "ok", "{stdout}\n{stderr}");
    let pdf = work.join("safe/benign.docx.safe.pdf");
    assert_eq!(lopdf::Document::load(&pdf).unwrap().get_pages().len(), 2);
    assert!(notes(&records["benign.docx"])
        .iter()
        .any(|n| n.starts_with("stage 2 of 2, pdf: ok")));
    match ocr {
        None => assert!(text_of(&pdf).to_lowercase().contains("harvest")),
        Some(why) => println!("{why}: the text layer is not checked"),
    }
}
