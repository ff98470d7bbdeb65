use std::os::unix::fs::PermissionsExt;

use super::*;
use plugwarden::sanitize as host;

fn job(format: &str, document: &[u8]) -> Vec<u8> {
    let mut j = MAGIC.to_vec();
    j.extend_from_slice(&(format.len() as u32).to_le_bytes());
    j.extend_from_slice(format.as_bytes());
    j.extend_from_slice(document);
    j
}

/// A stand-in for soffice.bin: records its arguments and environment next
/// to itself, finds `--outdir` and the document, then runs `body`.
fn fake_soffice(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("soffice.bin");
    let script = format!(
        "#!/bin/sh\nhere=$(dirname \"$0\")\nprintf '%s\\n' \"$@\" > \"$here/args\"\nenv > \"$here/env\"\n\
         prev=; for a in \"$@\"; do [ \"$prev\" = --outdir ] && out=$a; prev=$a; doc=$a; done\n{body}\n"
    );
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn convert_with(body: &str, input: &[u8]) -> (Result<(), Failure>, Vec<u8>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let soffice = fake_soffice(dir.path(), body);
    let mut out = Vec::new();
    let r = convert(input, &mut out, &soffice, &dir.path().join("work"));
    (r, out, dir)
}

#[test]
fn test_header_constants_match_the_host() {
    assert_eq!(MAGIC, host::OFFICE_MAGIC);
    let ours: Vec<&str> = FORMATS.iter().map(|(name, _)| *name).collect();
    let hosts: Vec<&str> = host::OfficeFormat::ALL
        .iter()
        .map(|f| f.extension())
        .collect();
    assert_eq!(ours, hosts);
}

#[test]
fn test_header_names_format_and_filter() {
    let input = job("xlsx", b"PK...");
    let mut r = input.as_slice();

    assert_eq!(
        read_header(&mut r).unwrap(),
        ("xlsx", "Calc MS Excel 2007 XML")
    );
    assert_eq!(r, b"PK...");
}

#[test]
fn test_header_unknown_format_refused() {
    let err = read_header(&mut job("exe", b"MZ").as_slice()).unwrap_err();

    assert_eq!(err.to_string(), "bad job header: unknown format \"exe\"");
}

#[test]
fn test_header_long_name_refused_unread() {
    let mut input = MAGIC.to_vec();
    input.extend_from_slice(&u32::MAX.to_le_bytes());

    let err = read_header(&mut input.as_slice()).unwrap_err();

    assert_eq!(
        err.to_string(),
        "bad job header: a format name of 4294967295 bytes"
    );
}

#[test]
fn test_convert_runs_soffice_with_forced_filter_and_copies_pdf() {
    let (r, out, dir) = convert_with(
        "cp \"$doc\" \"$out/document.pdf\"",
        &job("docx", b"%PDF-1.4 pretend"),
    );

    r.unwrap();
    assert_eq!(out, b"%PDF-1.4 pretend");
    let args = fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(args.contains("--infilter=MS Word 2007 XML\n"), "{args}");
    assert!(
        args.contains("--headless\n") && args.contains("--convert-to\npdf\n"),
        "{args}"
    );
    assert!(args.ends_with("/in/document.docx\n"), "{args}");
    let env = fs::read_to_string(dir.path().join("env")).unwrap();
    assert!(
        env.contains(&format!("HOME={}/work/home\n", dir.path().display())),
        "{env}"
    );
    let registry = fs::read_to_string(
        dir.path()
            .join("work/profile/user/registrymodifications.xcu"),
    )
    .unwrap();
    assert!(registry.contains("DisableMacrosExecution"));
}

#[test]
fn test_convert_runs_again_after_first_start_restart() {
    let body = "if [ ! -e \"$here/started\" ]; then touch \"$here/started\"; exit 81; fi\ncp \"$doc\" \"$out/document.pdf\"";

    let (r, out, _dir) = convert_with(body, &job("odt", b"%PDF-second run"));

    r.unwrap();
    assert_eq!(out, b"%PDF-second run");
}

#[test]
fn test_convert_without_pdf_says_so() {
    let (r, out, _dir) = convert_with(
        "echo 'Error: source file could not be loaded'; exit 0",
        &job("doc", b"junk"),
    );

    let err = r.unwrap_err();
    assert!(matches!(err, Failure::NoPdf { .. }), "{err}");
    assert_eq!(err.exit_code(), 1);
    assert!(out.is_empty());
}

#[test]
fn test_convert_soffice_killed_reports_signal() {
    let (r, _, _dir) = convert_with("kill -SEGV $$", &job("rtf", b"{\\rtf1}"));

    assert!(matches!(r, Err(Failure::Killed(11))), "{r:?}");
}

#[test]
fn test_convert_real_libreoffice_writes_a_pdf() {
    if !Path::new(SOFFICE).exists() {
        eprintln!("not applicable: LibreOffice is not installed (apt-get install libreoffice-writer-nogui)");
        return;
    }
    let docx = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../samples/office/benign.docx"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();

    convert(
        job("docx", &docx).as_slice(),
        &mut out,
        Path::new(SOFFICE),
        dir.path(),
    )
    .unwrap();

    assert!(out.starts_with(b"%PDF-"), "{:?}", &out[..out.len().min(16)]);
}
