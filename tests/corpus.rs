//! A real-world corpus through `plugwarden sanitize`: the test PDFs shipped
//! in pypdf's source distribution (real documents, damaged files and every
//! standard encryption, none made by this project) and the project's own
//! samples.
//!
//! The sdist is fetched once with pip (`pip download --no-binary :all:
//! --no-deps pypdf==VERSION`) into the target directory, keyed by version,
//! and kept: later runs cost no download. When pip or the registry cannot
//! be reached, the test says it was not run, and why.
//!
//! Every file must get one verdict; none may be `crashed`, `timeout`,
//! `memory` or `protocol_error`; every `ok` PDF must have exactly the pages
//! its document declares; and each file's verdict and page count must be
//! the ones in the table of docs/COMPAT.md, which also holds poppler's
//! results for the same files. `PW_COMPAT_UPDATE=1 cargo test --test corpus`
//! rewrites that table (it needs poppler-utils' `pdftoppm`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The pypdf release whose test files make the corpus.
const PYPDF: &str = "7.1.1";
/// Verdicts no input of the corpus may get.
const FORBIDDEN: [&str; 4] = ["crashed", "timeout", "memory", "protocol_error"];
const TABLE_START: &str =
    "<!-- corpus table: written by PW_COMPAT_UPDATE=1 cargo test --test corpus -->";
const TABLE_END: &str = "<!-- end of corpus table -->";

/// The corpus directory (pypdf's resources/ and the samples), fetching the
/// sdist if it is not cached yet; Err says why it cannot be had.
fn corpus() -> Result<PathBuf, String> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("corpus-pypdf-{PYPDF}"));
    let pdfs = cache.join("pypdf");
    if !pdfs.join("resources").is_dir() {
        std::fs::create_dir_all(&cache)
            .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
        let download = cache.join("download");
        let pip = Command::new("python3")
            .args(["-m", "pip", "download", "--no-binary", ":all:", "--no-deps"])
            .args([
                "--timeout",
                "30",
                "--retries",
                "1",
                "--disable-pip-version-check",
            ])
            .arg(format!("pypdf=={PYPDF}"))
            .arg("-d")
            .arg(&download)
            .output()
            .map_err(|e| format!("cannot run `python3 -m pip`: {e}"))?;
        if !pip.status.success() {
            let err = String::from_utf8_lossy(&pip.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!(
                "`pip download pypdf=={PYPDF}` failed ({}): {last}",
                pip.status
            ));
        }
        // Past the download, a failure is this test's, not the registry's.
        let sdist = download.join(format!("pypdf-{PYPDF}.tar.gz"));
        let staging = cache.join("staging");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).unwrap();
        // GNU tar's `*` matches `/` too: this takes resources/encryption/ as well.
        let tar = Command::new("tar")
            .arg("-xzf")
            .arg(&sdist)
            .arg("-C")
            .arg(&staging)
            .args(["--wildcards", "*/resources/*.pdf"])
            .status()
            .expect("run tar");
        assert!(
            tar.success(),
            "cannot unpack {}: tar {tar}",
            sdist.display()
        );
        let _ = std::fs::remove_dir_all(&pdfs);
        std::fs::rename(staging.join(format!("pypdf-{PYPDF}")), &pdfs).unwrap();
    }
    let samples = cache.join("samples");
    let _ = std::fs::remove_dir_all(&samples);
    std::fs::create_dir_all(&samples).unwrap();
    for e in std::fs::read_dir(repo().join("samples")).unwrap().flatten() {
        let name = e.file_name();
        let keep = [".pdf", ".png", ".jpg", ".gif", ".bmp"]
            .iter()
            .any(|x| name.to_string_lossy().ends_with(x));
        if keep {
            std::fs::copy(e.path(), samples.join(&name)).unwrap();
        }
    }
    Ok(cache)
}

/// One input's result, by its name relative to the corpus directory.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Row {
    verdict: String,
    /// Pages of the safe PDF (ok PDFs only).
    pages: Option<usize>,
}

/// Runs sanitize over the corpus; checks the invariants; returns the rows.
fn sanitize_corpus(corpus: &Path) -> BTreeMap<String, (Row, String)> {
    let dir = scratch();
    let (out, audit) = (dir.path().join("safe"), dir.path().join("audit.jsonl"));
    let inputs = [
        corpus.join("pypdf").join("resources"),
        corpus.join("samples"),
    ];
    let run = Command::new(plugwarden())
        .args(["sanitize", "--workers", "2", "--out"])
        .arg(&out)
        .arg("--audit")
        .arg(&audit)
        .args(&inputs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let files: Vec<PathBuf> = inputs
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(d).into_iter().flatten())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    assert_eq!(records.len(), files.len(), "one verdict per file\n{stdout}");
    let mut rows = BTreeMap::new();
    for r in &records {
        let input = PathBuf::from(r["input"].as_str().unwrap());
        let name = input.strip_prefix(corpus).unwrap().display().to_string();
        let name = name.trim_start_matches("pypdf/resources/").to_string();
        let verdict = r["verdict"].as_str().unwrap().to_string();
        let detail = r["detail"].as_str().unwrap_or("").to_string();
        assert!(
            !FORBIDDEN.contains(&verdict.as_str()),
            "{name}: {verdict}: {detail}"
        );
        let output = r["output"].as_str().filter(|o| o.ends_with(".pdf"));
        let pages = output.map(|o| {
            let n = lopdf::Document::load(o)
                .unwrap_or_else(|e| panic!("{name}: the safe PDF does not load: {e}"))
                .get_pages()
                .len();
            let declared =
                declared_pages(r).unwrap_or_else(|| panic!("{name}: no page count in {r}"));
            assert_eq!(
                n, declared,
                "{name}: the safe PDF has {n} pages, the document declares {declared}"
            );
            n
        });
        rows.insert(name, (Row { verdict, pages }, detail));
    }
    rows
}

/// The count in the audit note `pages: N declared, M rendered`.
fn declared_pages(record: &serde_json::Value) -> Option<usize> {
    record["notes"].as_array()?.iter().find_map(|n| {
        n.as_str()?
            .strip_prefix("pages: ")?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

fn compat_path() -> PathBuf {
    repo().join("docs/COMPAT.md")
}

/// The rows of the committed table: file → (verdict, pages).
fn committed_rows() -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(compat_path()).unwrap();
    let start = text
        .find(TABLE_START)
        .expect("docs/COMPAT.md has no corpus table");
    let end = text
        .find(TABLE_END)
        .expect("docs/COMPAT.md: the corpus table has no end");
    text[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`').to_string();
            let pages = cells[3].parse().ok();
            (
                name,
                Row {
                    verdict: cells[2].to_string(),
                    pages,
                },
            )
        })
        .collect()
}

/// Poppler's result for one file: `N pages` or the error it gives.
fn poppler(file: &Path) -> String {
    let dir = scratch();
    let run = Command::new("timeout")
        .args(["120", "pdftoppm", "-r", "20", "-png"])
        .arg(file)
        .arg(dir.path().join("p"))
        .output()
        .expect("run pdftoppm (apt-get install poppler-utils)");
    let pages = std::fs::read_dir(dir.path()).unwrap().count();
    let err = String::from_utf8_lossy(&run.stderr);
    let first = err.lines().next().unwrap_or("").replace('|', "/");
    match (run.status.success(), pages) {
        (true, n) => format!("ok, {n} pages"),
        (false, 0) => format!("fails: {first}"),
        (false, n) => format!("{n} pages, then fails: {first}"),
    }
}

fn write_table(corpus: &Path, rows: &BTreeMap<String, (Row, String)>) {
    let mut table = format!(
        "{TABLE_START}\n\n| file | plugwarden | pages | detail | poppler (`pdftoppm`) |\n|---|---|---|---|---|\n"
    );
    for (name, (row, detail)) in rows {
        let file = if name.starts_with("samples/") {
            corpus.join(name)
        } else {
            corpus.join("pypdf/resources").join(name)
        };
        let pages = row.pages.map_or("-".to_string(), |p| p.to_string());
        let detail: String = detail
            .chars()
            .take(120)
            .collect::<String>()
            .replace('|', "/");
        let poppler = if name.ends_with(".pdf") {
            poppler(&file)
        } else {
            "— (an image)".to_string()
        };
        table.push_str(&format!(
            "| `{name}` | {} | {pages} | {detail} | {poppler} |\n",
            row.verdict
        ));
    }
    table.push('\n');
    let text = std::fs::read_to_string(compat_path()).unwrap();
    let (start, end) = (
        text.find(TABLE_START).unwrap(),
        text.find(TABLE_END).unwrap(),
    );
    let text = format!("{}{table}{}", &text[..start], &text[end..]);
    std::fs::write(compat_path(), text).unwrap();
}

#[test]
fn test_corpus_every_file_gets_a_verdict_and_ok_pdfs_keep_every_page() {
    let corpus = match corpus() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("corpus test NOT RUN: {why}");
            return;
        }
    };
    let rows = sanitize_corpus(&corpus);
    if std::env::var_os("PW_COMPAT_UPDATE").is_some() {
        write_table(&corpus, &rows);
        return;
    }
    let now: BTreeMap<String, Row> = rows.into_iter().map(|(k, (r, _))| (k, r)).collect();
    let committed = committed_rows();
    let changed: Vec<String> = now
        .iter()
        .filter(|(name, row)| committed.get(*name) != Some(row))
        .map(|(name, row)| {
            format!(
                "{name}: now {row:?}, docs/COMPAT.md says {:?}",
                committed.get(name)
            )
        })
        .collect();
    assert!(
        changed.is_empty(),
        "results differ from docs/COMPAT.md (PW_COMPAT_UPDATE=1 rewrites it):\n{}",
        changed.join("\n")
    );
    assert_eq!(
        now.len(),
        committed.len(),
        "files in the corpus and in docs/COMPAT.md"
    );
}
