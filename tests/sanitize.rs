//! `plugwarden sanitize` end to end on the shipped samples: every hostile
//! sample gets its verdict, every output is a fresh pixels-only file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The samples (not the 20-page benchmark file) copied into a scratch dir.
fn samples(dir: &Path) -> PathBuf {
    let dst = dir.join("samples");
    std::fs::create_dir(&dst).unwrap();
    for e in std::fs::read_dir(repo().join("samples")).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
    dst
}

#[test]
fn test_sanitize_samples_give_expected_verdicts_and_clean_files() {
    let dir = scratch();
    let input = samples(dir.path());
    let out = dir.path().join("safe");
    let audit = dir.path().join("audit.jsonl");
    let o = Command::new(plugwarden())
        .args(["sanitize", "--out"])
        .arg(&out)
        .arg("--audit")
        .arg(&audit)
        .arg(&input)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let v = verdicts(&stdout);
    let expect = [
        ("benign.png", "ok"),
        ("benign.jpg", "ok"),
        ("benign.gif", "ok"),
        ("benign.bmp", "ok"),
        ("benign.pdf", "ok"),
        ("hostile-bomb.png", "plugin_error"),
        ("hostile-bomb-pixels.png", "plugin_error"),
        ("hostile-truncated.jpg", "ok"),
        ("hostile-huge-exif.jpg", "ok"),
        ("hostile-trailing-data.png", "ok"),
        ("hostile-openaction-js.pdf", "ok"),
        ("hostile-embedded-file.pdf", "ok"),
        ("hostile-launch.pdf", "ok"),
        ("hostile-broken-xref.pdf", "ok"),
        ("hostile-million-pages.pdf", "ok"),
        ("hostile-huge-page.pdf", "plugin_error"),
        ("hostile-polyglot-pdf-zip.pdf", "ok"),
        ("hostile-repeated-page.pdf", "ok"),
        ("hostile-missing-page.pdf", "plugin_error"),
        ("hostile-page-tree-cycle.pdf", "ok"),
        ("encrypted-aes256-empty-password.pdf", "ok"),
        ("encrypted-aes256-crypt-filters.pdf", "ok"),
        ("encrypted-aes128-empty-password.pdf", "ok"),
        ("encrypted-rc4-128-empty-password.pdf", "ok"),
        ("encrypted-rc4-40-empty-password.pdf", "ok"),
        ("encrypted-aes256-user-password.pdf", "plugin_error"),
        ("unsupported-archive.zip", "unsupported"),
        ("unsupported-notes.txt", "unsupported"),
    ];
    for (name, word) in expect {
        assert_eq!(
            v.get(name).map(String::as_str),
            Some(word),
            "{name}\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout.contains("plugin_error   ") && stdout.contains("image too large"),
        "{stdout}"
    );
    assert!(stdout.contains("ZIP archive"), "{stdout}");
    assert!(
        stdout.contains(
            "rendered 2 of 3 pages: page 2 failed: object 9 0 R is missing or not a page dictionary"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("it needs a password: give it with --password-file FILE"),
        "{stdout}"
    );
    assert!(!out.join("hostile-missing-page.pdf.safe.pdf").exists());
    assert_eq!(o.status.code(), Some(1), "some inputs are refused");
    // One audit record per input, and the chain verifies.
    let records = std::fs::read_to_string(&audit).unwrap().lines().count();
    assert_eq!(records, v.len());
    let verify = Command::new(plugwarden())
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // Every PDF parses, has its pages, and carries nothing active.
    for (name, pages) in [
        ("benign.pdf", None),
        ("hostile-openaction-js.pdf", None),
        ("hostile-embedded-file.pdf", None),
        ("hostile-launch.pdf", None),
        ("hostile-broken-xref.pdf", Some(2)),
        ("hostile-million-pages.pdf", Some(1)),
        ("hostile-polyglot-pdf-zip.pdf", None),
        ("hostile-repeated-page.pdf", Some(3)),
        ("hostile-page-tree-cycle.pdf", Some(1)),
        ("encrypted-aes256-empty-password.pdf", Some(30)),
        ("encrypted-aes256-crypt-filters.pdf", Some(30)),
        ("encrypted-rc4-40-empty-password.pdf", Some(3)),
    ] {
        let path = out.join(format!("{name}.safe.pdf"));
        let doc = lopdf::Document::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let n = doc.get_pages().len();
        assert!(n >= 1, "{name}");
        if let Some(p) = pages {
            assert_eq!(n, p, "{name}");
        }
        assert_eq!(has_forbidden(&doc), Vec::<String>::new(), "{name}");
        assert!(
            doc.trailer.get(b"Info").is_err(),
            "{name}: has an Info dictionary"
        );
    }
    // Every PNG decodes and has only the critical chunks.
    for name in [
        "benign.png",
        "benign.jpg",
        "benign.gif",
        "benign.bmp",
        "hostile-huge-exif.jpg",
        "hostile-trailing-data.png",
    ] {
        let bytes = std::fs::read(out.join(format!("{name}.safe.png"))).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder
            .read_info()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        let mut chunks = Vec::new();
        let mut pos = 8;
        while pos + 8 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            chunks.push(String::from_utf8_lossy(&bytes[pos + 4..pos + 8]).into_owned());
            pos += 12 + len;
        }
        assert_eq!(pos, bytes.len(), "{name}: bytes after IEND");
        assert!(
            chunks
                .iter()
                .all(|c| ["IHDR", "IDAT", "IEND"].contains(&c.as_str())),
            "{name}: {chunks:?}"
        );
    }
}

/// One PDF sample in a scratch dir, sanitized with `args`; returns the
/// scratch dir, the output dir, the run and its audit records.
fn sanitize_one(
    sample: &str,
    args: &[&str],
) -> (
    tempfile::TempDir,
    PathBuf,
    std::process::Output,
    Vec<serde_json::Value>,
) {
    let bytes = std::fs::read(repo().join("samples").join(sample)).unwrap();
    sanitize_bytes(sample, &bytes, args)
}

/// [`sanitize_one`] for a PDF given by its bytes, named `name`.
fn sanitize_bytes(
    name: &str,
    bytes: &[u8],
    args: &[&str],
) -> (
    tempfile::TempDir,
    PathBuf,
    std::process::Output,
    Vec<serde_json::Value>,
) {
    let dir = scratch();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join(name), bytes).unwrap();
    let (out, audit) = (dir.path().join("safe"), dir.path().join("audit.jsonl"));
    let o = Command::new(plugwarden())
        .args(["sanitize", "--out"])
        .arg(&out)
        .arg("--audit")
        .arg(&audit)
        .args(args)
        .arg(&input)
        .output()
        .unwrap();
    let records = std::fs::read_to_string(&audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (dir, out, o, records)
}

#[test]
fn test_sanitize_allow_partial_keeps_page_numbers_and_lists_missing_pages() {
    let (_dir, out, o, records) = sanitize_one("hostile-missing-page.pdf", &["--allow-partial"]);

    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(stdout.starts_with("ok "), "{stdout}");
    let doc = lopdf::Document::load(out.join("hostile-missing-page.pdf.safe.pdf")).unwrap();
    let pages = doc.get_pages();
    assert_eq!(pages.len(), 3);
    let label = String::from_utf8_lossy(&doc.get_page_content(pages[&2])).into_owned();
    assert!(label.contains("(Page 2 could not be rendered.)"), "{label}");
    let record = &records[0];
    assert_eq!(record["verdict"], "ok");
    assert!(
        record["detail"]
            .as_str()
            .unwrap()
            .starts_with("rendered 2 of 3 pages: page 2 failed"),
        "{record}"
    );
    let notes: Vec<&str> = record["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.contains(&"pages: 3 declared, 2 rendered"),
        "{notes:?}"
    );
    assert!(
        notes.contains(&"missing page 2 of 3 (a labelled blank page in its place): object 9 0 R is missing or not a page dictionary"),
        "{notes:?}"
    );
}

#[test]
fn test_sanitize_password_file_opens_user_password_pdf() {
    let dir = scratch();
    let password = dir.path().join("password.txt");
    std::fs::write(&password, "plugwarden\n").unwrap();

    let (_d, out, o, records) = sanitize_one(
        "encrypted-aes256-user-password.pdf",
        &["--password-file", password.to_str().unwrap()],
    );

    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let doc =
        lopdf::Document::load(out.join("encrypted-aes256-user-password.pdf.safe.pdf")).unwrap();
    assert_eq!(doc.get_pages().len(), 3);
    assert!(!records[0].to_string().contains("plugwarden\\n"));
}

/// A document over 1 MiB stays an open file the host streams to the
/// plugin; the password record goes in front of it all the same.
#[test]
fn test_sanitize_password_file_opens_a_streamed_pdf_over_one_mib() {
    let dir = scratch();
    let password = dir.path().join("password.txt");
    std::fs::write(&password, "plugwarden\n").unwrap();
    // A comment of 1.5 MiB after the end, then the same startxref again: the
    // document is unchanged, the file is big enough to be streamed.
    let mut pdf = std::fs::read(repo().join("samples/encrypted-aes256-user-password.pdf")).unwrap();
    let tail = String::from_utf8_lossy(&pdf[pdf.len() - 64..]).into_owned();
    let xref = tail
        .split("startxref")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    pdf.push(b'%');
    pdf.resize(pdf.len() + (3 << 19), b'x');
    pdf.extend_from_slice(format!("\nstartxref\n{xref}\n%%EOF\n").as_bytes());
    let name = "big-encrypted.pdf";

    let (_d, out, o, records) =
        sanitize_bytes(name, &pdf, &["--password-file", password.to_str().unwrap()]);

    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let doc = lopdf::Document::load(out.join("big-encrypted.pdf.safe.pdf")).unwrap();
    assert_eq!(doc.get_pages().len(), 3);
    assert_eq!(records[0]["verdict"], "ok");
}

#[test]
fn test_sanitize_missing_password_file_is_a_usage_error() {
    let (_d, _out, o, records) =
        sanitize_one("benign.pdf", &["--password-file", "/nonexistent/pw"]);

    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("cannot read the password file /nonexistent/pw"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(records.is_empty());
}

#[test]
fn test_sanitize_png_pixels_survive() {
    let dir = scratch();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::copy(repo().join("samples/benign.png"), input.join("benign.png")).unwrap();
    let out = dir.path().join("safe");
    let o = Command::new(plugwarden())
        .args(["sanitize", "--out"])
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Both decoded to RGBA (8-bit RGB or RGBA, as the samples are).
    let decode = |p: PathBuf| {
        let mut r = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()))
            .read_info()
            .unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        let rgba: Vec<u8> = match info.color_type {
            png::ColorType::Rgba => buf,
            png::ColorType::Rgb => buf
                .chunks(3)
                .flat_map(|c| [c[0], c[1], c[2], 255])
                .collect(),
            other => panic!("sample color type {other:?} not handled by this test"),
        };
        (info.width, info.height, rgba)
    };
    let (w0, h0, a) = decode(repo().join("samples/benign.png"));
    let (w1, h1, b) = decode(out.join("benign.png.safe.png"));
    assert_eq!((w0, h0), (w1, h1));
    let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    assert!(worst <= 2, "pixels differ by up to {worst}");
}

#[test]
fn test_pdf_policy_denies_files_outside_its_grants() {
    // A test hook standing in for a compromised renderer: the probe under
    // the `pdf` policy tries to open a file.
    let dir = scratch();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    let p = plugin("pw-probe");
    let o = call(
        &["--plugin", p.to_str().unwrap(), "--policy", "pdf"],
        format!("read:{}", secret.display()).as_bytes(),
    );
    let v = verdict(&o);
    assert!(v.starts_with("plugin_error: denied: "), "{v}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("top secret"));
}

#[test]
fn test_sanitize_compress_small_same_pixels_not_larger_than_fast() {
    let sample = "hostile-repeated-page.pdf";
    let (_d1, fast_out, fast, fast_records) = sanitize_one(sample, &["--compress", "fast"]);
    let (_d2, small_out, small, small_records) = sanitize_one(sample, &["--compress", "small"]);
    for (o, records) in [(&fast, &fast_records), (&small, &small_records)] {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["verdict"], "ok", "{records:?}");
    }
    let name = format!("{sample}.safe.pdf");
    let (fast_pdf, small_pdf) = (fast_out.join(&name), small_out.join(&name));
    // Both pass the output checks of every safe PDF, and a reader (lopdf)
    // gets the same pixels from both.
    let pixels = |path: &Path| {
        let doc = lopdf::Document::load(path).unwrap();
        assert_eq!(has_forbidden(&doc), Vec::<String>::new());
        assert!(doc.trailer.get(b"Info").is_err());
        doc.get_pages()
            .values()
            .map(|&id| {
                let page = doc.get_object(id).unwrap().as_dict().unwrap();
                let res = page.get(b"Resources").unwrap().as_dict().unwrap();
                let xobj = res.get(b"XObject").unwrap().as_dict().unwrap();
                let im = xobj.get(b"Im0").unwrap().as_reference().unwrap();
                let image = doc.get_object(im).unwrap().as_stream().unwrap();
                image.decompressed_content().unwrap()
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (pixels(&fast_pdf), pixels(&small_pdf));
    assert_eq!(a.len(), 3);
    assert!(a == b, "the two outputs' pixels differ");
    // And they are the renderer's own pixels (the plugin composites them
    // straight into the arena): the same pages rendered in this process.
    let bytes = std::fs::read(repo().join("samples").join(sample)).unwrap();
    let mut rendered = Vec::new();
    pw_pdf_sanitize::render_guarded(
        &bytes,
        150,
        &pw_pdf_sanitize::RenderLimits::default(),
        &mut |part| {
            rendered.extend_from_slice(part);
            Ok(())
        },
    )
    .unwrap();
    let mut expected = Vec::new();
    let mut at = 16;
    while at < rendered.len() {
        assert_eq!(rendered[at], 1, "a rendered page");
        let le = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap()) as usize;
        let (w, h) = (le(&rendered[at + 1..at + 5]), le(&rendered[at + 5..at + 9]));
        expected.push(rendered[at + 9..at + 9 + w * h * 3].to_vec());
        at += 9 + w * h * 3;
    }
    assert!(
        a == expected,
        "the safe PDF's pixels are not the renderer's"
    );
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&small_pdf) <= size(&fast_pdf),
        "small {} > fast {}",
        size(&small_pdf),
        size(&fast_pdf)
    );
}
