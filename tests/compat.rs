//! The compatibility corpus: real Debian programs that nobody on the project
//! wrote, each run on a fixed input (tests/compat/, samples/) outside any
//! sandbox and under plugwarden, in filter mode, with the shipped `default`
//! (no flag but `--ro` of the directory holding its own script or data),
//! with the policy `plugwarden learn` writes for it, and with `strict`.
//! Outputs are compared byte for byte, or after taking out what changes
//! from one run to the next (a time, a temporary file's name).
//!
//! The test writes the table of results and checks that docs/COMPAT.md
//! holds exactly that table, between `<!-- programs:begin -->` and
//! `<!-- programs:end -->`; `PW_COMPAT_UPDATE=1 cargo test --test compat`
//! rewrites it there. Goals: every program identical under its learned
//! policy, at least 90% under `default`, and under `strict` every program
//! that needs nothing but its pipes. A program whose Debian package is not
//! installed is reported not applicable (and the table then not compared);
//! `.ci/run` installs them all.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// Where a program's stdin comes from.
#[derive(Clone, Copy)]
enum Input {
    /// A file of tests/compat/ or samples/ (staged together).
    File(&'static str),
    /// What another program printed outside the sandbox (a compressor's
    /// output, to decompress).
    OutputOf(&'static str),
}

/// Takes out of an output what changes from run to run.
type Normalize = fn(&[u8]) -> Vec<u8>;

/// A program of the corpus.
struct Program {
    name: &'static str,
    package: &'static str,
    /// The command; `@DIR@` stands for the staged directory of fixtures,
    /// which is then granted for reading (`--ro DIR`).
    argv: &'static [&'static str],
    input: Input,
    /// What it needs beyond its pipes (`None`: nothing, so `strict` must
    /// run it).
    needs: Option<&'static str>,
    normalize: Option<Normalize>,
}

const TEXT: Input = Input::File("text.txt");
const PDF: Input = Input::File("benign.pdf");
const PNG: Input = Input::File("benign.png");
const CSV: Input = Input::File("data.csv");
const JSON: Input = Input::File("data.json");
const TAR: Input = Input::File("sample.tar");

const fn pipes(
    name: &'static str,
    package: &'static str,
    argv: &'static [&'static str],
    input: Input,
) -> Program {
    Program {
        name,
        package,
        argv,
        input,
        needs: None,
        normalize: None,
    }
}

const fn needs(
    name: &'static str,
    package: &'static str,
    argv: &'static [&'static str],
    input: Input,
    what: &'static str,
) -> Program {
    Program {
        needs: Some(what),
        ..pipes(name, package, argv, input)
    }
}

const LOCALE: &str = "its locale's conversion modules";

#[rustfmt::skip] // a table: one program a line
const CORPUS: &[Program] = &[
    pipes("sort", "coreutils", &["/usr/bin/sort"], TEXT),
    pipes("sort -k", "coreutils", &["/usr/bin/sort", "-u", "-k2,2", "-k1,1"], TEXT),
    needs("tac", "coreutils", &["/usr/bin/tac"], TEXT, "a file in /tmp (a pipe cannot be read backwards)"),
    pipes("wc", "coreutils", &["/usr/bin/wc"], TEXT),
    pipes("tr", "coreutils", &["/usr/bin/tr", "a-z", "A-Z"], TEXT),
    pipes("base64", "coreutils", &["/usr/bin/base64"], PNG),
    pipes("base32", "coreutils", &["/usr/bin/base32"], TEXT),
    pipes("sha256sum", "coreutils", &["/usr/bin/sha256sum"], PDF),
    pipes("md5sum", "coreutils", &["/usr/bin/md5sum"], PDF),
    pipes("b2sum", "coreutils", &["/usr/bin/b2sum"], PDF),
    pipes("uniq", "coreutils", &["/usr/bin/uniq", "-c"], TEXT),
    pipes("cut", "coreutils", &["/usr/bin/cut", "-d,", "-f2"], CSV),
    pipes("od", "coreutils", &["/usr/bin/od", "-A", "x", "-t", "x1z"], PNG),
    pipes("nl", "coreutils", &["/usr/bin/nl"], TEXT),
    pipes("fold", "coreutils", &["/usr/bin/fold", "-w", "17"], TEXT),
    pipes("fmt", "coreutils", &["/usr/bin/fmt", "-w", "40"], TEXT),
    pipes("numfmt", "coreutils", &["/usr/bin/numfmt", "--to=iec", "--field=3", "-d,"], CSV),
    needs("paste", "coreutils", &["/usr/bin/paste", "-d:", "@DIR@/data.csv", "-"], CSV, "a data file"),
    pipes("date", "coreutils", &["/usr/bin/date", "-u", "-d", "@1700000000"], TEXT),
    pipes("rev", "util-linux", &["/usr/bin/rev"], TEXT),
    pipes("column", "bsdextrautils", &["/usr/bin/column", "-t", "-s,"], CSV),
    pipes("hexdump", "bsdextrautils", &["/usr/bin/hexdump", "-C"], PNG),
    pipes("gzip", "gzip", &["/usr/bin/gzip", "-c", "-n"], TEXT),
    pipes("gunzip", "gzip", &["/usr/bin/gzip", "-d", "-c"], Input::OutputOf("gzip")),
    pipes("xz", "xz-utils", &["/usr/bin/xz", "-c"], TEXT),
    pipes("unxz", "xz-utils", &["/usr/bin/xz", "-d", "-c"], Input::OutputOf("xz")),
    pipes("bzip2", "bzip2", &["/usr/bin/bzip2", "-c"], TEXT),
    pipes("bunzip2", "bzip2", &["/usr/bin/bzip2", "-d", "-c"], Input::OutputOf("bzip2")),
    pipes("zstd", "zstd", &["/usr/bin/zstd", "-q", "-c"], TEXT),
    pipes("unzstd", "zstd", &["/usr/bin/zstd", "-q", "-d", "-c"], Input::OutputOf("zstd")),
    pipes("lz4", "lz4", &["/usr/bin/lz4", "-q", "-c"], TEXT),
    pipes("unlz4", "lz4", &["/usr/bin/lz4", "-q", "-d", "-c"], Input::OutputOf("lz4")),
    needs("unzip -p", "unzip", &["/usr/bin/unzip", "-p", "@DIR@/sample.zip", "data.json"], TEXT, "its archive"),
    pipes("tar tv", "tar", &["/usr/bin/tar", "tvf", "-"], TAR),
    pipes("tar xO", "tar", &["/usr/bin/tar", "xOf", "-", "data.json"], TAR),
    pipes("jq", "jq", &["/usr/bin/jq", "-c", ".items|map(select(.n > 3).name)"], JSON),
    needs("python3 script", "python3", &["/usr/bin/python3", "@DIR@/script.py"], TEXT, "its standard library and script"),
    needs("python3 -c", "python3", &["/usr/bin/python3", "-c", "import sys, json; print(json.dumps(sorted(set(sys.stdin.read().split()))))"], TEXT, "its standard library"),
    needs("python3 -m json.tool", "python3", &["/usr/bin/python3", "-m", "json.tool"], JSON, "its standard library"),
    needs("perl script", "perl-base", &["/usr/bin/perl", "@DIR@/script.pl"], TEXT, "its modules and script"),
    pipes("perl -ne", "perl-base", &["/usr/bin/perl", "-ne", "print if /alpha/ .. /omega/"], TEXT),
    pipes("mawk", "mawk", &["/usr/bin/mawk", "-F,", "{ s += $3 } END { print s, NR }"], CSV),
    needs("gawk -f", "gawk", &["/usr/bin/gawk", "-f", "@DIR@/prog.awk"], TEXT, "its script"),
    pipes("sed", "sed", &["/usr/bin/sed", "-e", "s/alpha/ALPHA/g", "-e", "/beta/d"], TEXT),
    pipes("grep", "grep", &["/usr/bin/grep", "-E", "-c", "alpha|omega"], TEXT),
    needs("iconv", "libc-bin", &["/usr/bin/iconv", "-f", "LATIN1", "-t", "UTF-8"], Input::File("latin1.txt"), LOCALE),
    pipes("sqlite3", "sqlite3", &["/usr/bin/sqlite3"], Input::File("q.sql")),
    pipes("bc", "bc", &["/usr/bin/bc", "-l"], Input::File("calc.bc")),
    pipes("xmllint", "libxml2-utils", &["/usr/bin/xmllint", "--format", "-"], Input::File("x.xml")),
    pipes("msgfmt", "gettext", &["/usr/bin/msgfmt", "-o", "-", "-"], Input::File("messages.po")),
    pipes("openssl dgst", "openssl", &["/usr/bin/openssl", "dgst", "-sha256"], PDF),
    pipes("git hash-object", "git", &["/usr/bin/git", "hash-object", "--stdin"], TEXT),
    pipes("xxd", "xxd", &["/usr/bin/xxd"], PNG),
    pipes("strings", "binutils", &["/usr/bin/strings"], PDF),
    needs("file (PDF)", "file", &["/usr/bin/file", "-"], PDF, "its magic database"),
    needs("file (PNG)", "file", &["/usr/bin/file", "-b", "--mime", "-"], PNG, "its magic database"),
    needs("pdftotext", "poppler-utils", &["/usr/bin/pdftotext", "-layout", "-", "-"], PDF, "poppler's data"),
    needs("pdfinfo", "poppler-utils", &["/usr/bin/pdfinfo", "-"], PDF, "poppler's data"),
    needs("pdftocairo -png", "poppler-utils", &["/usr/bin/pdftocairo", "-png", "-singlefile", "-r", "30", "-", "-"], PDF, "fonts and their configuration"),
    Program { normalize: Some(pdf_creation_date), ..needs("pdftocairo -pdf", "poppler-utils", &["/usr/bin/pdftocairo", "-pdf", "-", "-"], PDF, "fonts and their configuration") },
    needs("pdftoppm", "poppler-utils", &["/usr/bin/pdftoppm", "-r", "20", "-f", "1", "-l", "1", "-png", "-"], PDF, "fonts and their configuration"),
    needs("pdftops", "poppler-utils", &["/usr/bin/pdftops", "-", "-"], PDF, "fonts and their configuration"),
    needs("qpdf", "qpdf", &["/usr/bin/qpdf", "--show-npages", "@DIR@/benign.pdf"], TEXT, "its input file (it seeks)"),
    needs("gs", "ghostscript", &["/usr/bin/gs", "-q", "-sDEVICE=png16m", "-r30", "-o", "-", "-dBATCH", "-dNOPAUSE", "-"], PDF, "its PostScript resources, fonts, a file in /tmp"),
    needs("convert", "imagemagick-6.q16", &["/usr/bin/convert", "png:-", "-resize", "50%", "gif:-"], PNG, "its configuration and coders, a file in /tmp"),
    Program { normalize: Some(identify_without_time), ..needs("identify", "imagemagick-6.q16", &["/usr/bin/identify", "-"], PNG, "its configuration and coders, a file in /tmp") },
    needs("groff", "groff-base", &["/usr/bin/groff", "-Tutf8", "-man"], Input::File("page.man"), "processes: it runs troff and grotty"),
];

/// pdftocairo -pdf stamps the time it wrote the file.
fn pdf_creation_date(pdf: &[u8]) -> Vec<u8> {
    let key = b"/CreationDate (";
    let Some(at) = pdf.windows(key.len()).position(|w| w == key) else {
        return pdf.to_vec();
    };
    let start = at + key.len();
    let end = pdf[start..]
        .iter()
        .position(|&b| b == b')')
        .map_or(pdf.len(), |n| start + n);
    [&pdf[..start], &pdf[end..]].concat()
}

/// identify names the temporary file it read stdin into and says how long
/// it took: `-=>/tmp/magick-<random> PNG 64x48 ... 8288B 0.000u 0:00.000`.
fn identify_without_time(out: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(out);
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            fields[1..fields.len().saturating_sub(2).max(1)].join(" ")
        })
        .collect();
    lines.join("\n").into_bytes()
}

/// What a run gave, compared with the run outside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Identical,
    Differs,
    /// Did not end with `ok`: the verdict, shortened.
    Fails(String),
}

impl Outcome {
    fn cell(&self) -> String {
        match self {
            Outcome::Identical => "identical".into(),
            Outcome::Differs => "output differs".into(),
            Outcome::Fails(v) => format!("fails: {v}"),
        }
    }
}

/// The results of one program.
struct Results {
    default: Outcome,
    learned: Outcome,
    strict: Outcome,
    /// Probes `default` answered with an errno (`socket(AF_UNIX) → EACCES`).
    answered: BTreeSet<String>,
}

/// The fixtures, in a directory uid 65534 (the plugin) may read.
struct Fixtures {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn stage_fixtures() -> Fixtures {
    let dir = scratch();
    let path = std::fs::canonicalize(dir.path()).expect("canonical scratch dir");
    let files = std::fs::read_dir(repo().join("tests/compat"))
        .expect("tests/compat")
        .map(|e| e.expect("entry").path())
        .filter(|f| !f.ends_with("packages"))
        .chain(["benign.pdf", "benign.png"].map(|f| repo().join("samples").join(f)));
    for f in files {
        let to = path.join(f.file_name().expect("name"));
        std::fs::copy(&f, &to).expect("copy fixture");
    }
    Fixtures { _dir: dir, path }
}

impl Program {
    fn exe(&self) -> &'static str {
        self.argv[0]
    }

    fn installed(&self) -> bool {
        Path::new(self.exe()).exists()
    }

    fn uses_dir(&self) -> bool {
        self.argv.iter().any(|a| a.contains("@DIR@"))
    }

    fn args(&self, dir: &Path) -> Vec<String> {
        self.argv[1..]
            .iter()
            .map(|a| a.replace("@DIR@", &dir.display().to_string()))
            .collect()
    }

    /// The flags that run it under plugwarden, but the policy.
    fn flags(&self, dir: &Path, grant_dir: bool) -> Vec<String> {
        let mut f: Vec<String> = ["--mode", "filter", "--plugin", self.exe()]
            .map(String::from)
            .into();
        if grant_dir && self.uses_dir() {
            f.extend(["--ro".to_string(), dir.display().to_string()]);
        }
        for a in self.args(dir) {
            f.extend(["--arg".to_string(), a]);
        }
        f
    }

    fn same(&self, a: &[u8], b: &[u8]) -> bool {
        match self.normalize {
            Some(n) => n(a) == n(b),
            None => a == b,
        }
    }

    /// The command as the table shows it: `python3 DIR/script.py < text.txt`.
    fn command(&self) -> String {
        let exe = Path::new(self.exe())
            .file_name()
            .expect("name")
            .to_string_lossy();
        let mut words = vec![exe.into_owned()];
        for a in &self.argv[1..] {
            let a = a.replace("@DIR@", "DIR");
            let plain = a
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./,:=@%+".contains(c));
            words.push(if plain { a } else { format!("'{a}'") });
        }
        let input = match self.input {
            Input::File(f) => f.to_string(),
            Input::OutputOf(p) => format!("({p}'s output)"),
        };
        format!("{} < {input}", words.join(" "))
    }
}

/// Runs `argv` outside any sandbox, in the environment and directory the
/// sandbox gives a plugin.
fn outside(p: &Program, dir: &Path, input: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(p.exe());
    cmd.args(p.args(dir))
        .env_clear()
        .env("LANG", "C.UTF-8")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/");
    let o = feed(cmd, input);
    assert!(
        o.status.success(),
        "{} fails outside the sandbox ({}): {}",
        p.name,
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Runs `cmd` with `input` on stdin (written by a thread, so a program
/// that answers before it has read everything cannot block).
fn feed(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input); // a program may not read it all
    });
    let o = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    o
}

fn under(p: &Program, flags: &[String], reference: &[u8], input: &[u8]) -> (Outcome, Output) {
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let o = call(&args, input);
    let v = verdict(&o);
    let outcome = if v != "ok" || !o.status.success() {
        Outcome::Fails(short(&v))
    } else if p.same(&o.stdout, reference) {
        Outcome::Identical
    } else {
        Outcome::Differs
    };
    (outcome, o)
}

/// A verdict without what varies from run to run: the syscall's arguments,
/// the plugin's stderr.
fn short(verdict: &str) -> String {
    let v = verdict.split(": stderr").next().unwrap_or(verdict);
    match v.strip_prefix("violation: ") {
        Some(call) => format!("violation: {}", call.split('(').next().unwrap_or(call)),
        None => v.chars().take(60).collect(),
    }
}

/// The probes the policy answered: `plugwarden: denied: fchmod(0x3, 0x180)
/// → EPERM` gives `fchmod → EPERM`; a socket keeps its family.
fn answered(stderr: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("plugwarden: denied: "))
        .filter_map(|l| {
            let (call, errno) = l.rsplit_once(" → ")?;
            let (name, args) = call.split_once('(')?;
            let name = match name {
                "socket" | "socketpair" => format!("{name}({})", args.split(',').next()?),
                _ => name.to_string(),
            };
            Some(format!("{name} → {errno}"))
        })
        .collect()
}

/// `plugwarden learn` on the program with `input` (and `--ro DIR`).
fn learn(p: &Program, fx: &Fixtures, input: &Path) -> Output {
    Command::new(plugwarden())
        .arg("learn")
        .args(p.flags(&fx.path, true))
        .arg(input)
        .output()
        .expect("run learn")
}

/// `plugwarden learn` on the program, then a run under the policy it wrote
/// (with no other flag: the policy holds the `--ro` grant).
fn learned(p: &Program, fx: &Fixtures, input: &Path, reference: &[u8], data: &[u8]) -> Outcome {
    let o = learn(p, fx, input);
    if !o.status.success() {
        let last = verdict(&o);
        return Outcome::Fails(format!("learn: {}", short(&last)));
    }
    let file = policy(
        &fx.path,
        &format!("learned-{}.toml", p.name.replace([' ', '/', '(', ')'], "_")),
        &String::from_utf8_lossy(&o.stdout),
    );
    let mut flags = p.flags(&fx.path, false);
    flags.extend(["--policy".to_string(), file.display().to_string()]);
    under(p, &flags, reference, data).0
}

/// The program's stdin, and a file that holds it (for `learn`).
fn stdin_of(p: &Program, fx: &Fixtures) -> (PathBuf, Vec<u8>) {
    match p.input {
        Input::File(f) => {
            let path = fx.path.join(f);
            let data = std::fs::read(&path).expect("fixture");
            (path, data)
        }
        Input::OutputOf(other) => {
            let source = program(other);
            let data = outside(source, &fx.path, &stdin_of(source, fx).1);
            let path = fx.path.join(format!("output-of-{other}"));
            std::fs::write(&path, &data).expect("write input");
            (path, data)
        }
    }
}

fn run_program(p: &Program, fx: &Fixtures) -> Results {
    let (input_file, data) = stdin_of(p, fx);
    let reference = outside(p, &fx.path, &data);
    let with = |policy: &str| {
        let mut f = p.flags(&fx.path, true);
        f.extend(["--policy".to_string(), policy.to_string()]);
        under(p, &f, &reference, &data)
    };
    let (default, o) = with("default");
    let strict = with("strict").0;
    let learned = learned(p, fx, &input_file, &reference, &data);
    Results {
        default,
        learned,
        strict,
        answered: answered(&o.stderr),
    }
}

/// Markdown for one cell: `|` would end it.
fn md(text: &str) -> String {
    text.replace('|', "\\|")
}

fn percent(n: usize, of: usize) -> String {
    format!("{n} of {of} ({:.0}%)", 100.0 * n as f64 / of.max(1) as f64)
}

fn table(rows: &[(&Program, Results)]) -> String {
    let mut t = String::from(
        "| program | Debian package | command | needs beyond its pipes | `default` | learned policy | `strict` | answered under `default` |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for (p, r) in rows {
        let answered: Vec<&str> = r.answered.iter().map(String::as_str).collect();
        t.push_str(&format!(
            "| {} | {} | `{}`{} | {} | {} | {} | {} | {} |\n",
            p.name,
            p.package,
            md(&p.command()),
            if p.uses_dir() { ", `--ro DIR`" } else { "" },
            p.needs.unwrap_or("nothing"),
            md(&r.default.cell()),
            md(&r.learned.cell()),
            md(&r.strict.cell()),
            md(&answered.join(", ")),
        ));
    }
    let count = |f: &dyn Fn(&Results) -> bool| rows.iter().filter(|(_, r)| f(r)).count();
    let pipes_only: Vec<&Results> = rows
        .iter()
        .filter(|(p, _)| p.needs.is_none())
        .map(|(_, r)| r)
        .collect();
    t.push_str(&format!(
        "\nIdentical output: under `default` {}; under the learned policy {}; \
         under `strict` {} of the programs that need nothing but their pipes ({} in all).\n",
        percent(count(&|r| r.default == Outcome::Identical), rows.len()),
        percent(count(&|r| r.learned == Outcome::Identical), rows.len()),
        percent(
            pipes_only
                .iter()
                .filter(|r| r.strict == Outcome::Identical)
                .count(),
            pipes_only.len()
        ),
        percent(count(&|r| r.strict == Outcome::Identical), rows.len()),
    ));
    t
}

/// The packages .ci/run installs when missing.
fn listed_packages() -> BTreeSet<String> {
    std::fs::read_to_string(repo().join("tests/compat/packages"))
        .expect("tests/compat/packages")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

const BEGIN: &str = "<!-- programs:begin -->\n";
const END: &str = "<!-- programs:end -->";

/// docs/COMPAT.md's table, or the file with `table` put in its place.
fn docs_with(table: &str) -> (String, String) {
    let path = repo().join("docs/COMPAT.md");
    let text = std::fs::read_to_string(&path).expect("docs/COMPAT.md");
    let start = text
        .find(BEGIN)
        .expect("docs/COMPAT.md has <!-- programs:begin -->")
        + BEGIN.len();
    let end = text
        .find(END)
        .expect("docs/COMPAT.md has <!-- programs:end -->");
    let rewritten = format!("{}{table}{}", &text[..start], &text[end..]);
    (text[start..end].to_string(), rewritten)
}

#[test]
fn test_corpus_runs_as_outside_under_default_learned_and_strict() {
    let fx = stage_fixtures();
    let mut rows = Vec::new();
    let mut absent = BTreeSet::new();
    for p in CORPUS {
        if !p.installed() {
            println!("not applicable: {}: {} not installed", p.name, p.package);
            absent.insert(p.package);
            continue;
        }
        let r = run_program(p, &fx);
        rows.push((p, r));
    }
    let table = table(&rows);
    println!("{table}");
    assert!(CORPUS.len() >= 30, "the corpus holds at least 30 programs");
    let listed = listed_packages();
    let unlisted: Vec<&str> = CORPUS
        .iter()
        .map(|p| p.package)
        .filter(|p| !listed.contains(*p))
        .collect();
    assert!(
        unlisted.is_empty(),
        "add {unlisted:?} to tests/compat/packages, so that .ci/run installs them"
    );

    let failed = |f: &dyn Fn(&Results) -> bool| -> Vec<&str> {
        rows.iter()
            .filter(|(_, r)| f(r))
            .map(|(p, _)| p.name)
            .collect()
    };
    let not_learned = failed(&|r| r.learned != Outcome::Identical);
    assert!(
        not_learned.is_empty(),
        "not identical under their learned policy: {not_learned:?}"
    );
    let not_default = failed(&|r| r.default != Outcome::Identical);
    assert!(
        not_default.len() * 10 <= rows.len(),
        "more than 10% not identical under default: {not_default:?}"
    );
    let pipes_not_strict: Vec<&str> = rows
        .iter()
        .filter(|(p, r)| p.needs.is_none() && r.strict != Outcome::Identical)
        .map(|(p, _)| p.name)
        .collect();
    assert!(
        pipes_not_strict.is_empty(),
        "programs that need nothing but their pipes fail under strict: {pipes_not_strict:?}"
    );

    if !absent.is_empty() {
        println!(
            "not applicable: docs/COMPAT.md's table is not compared: {} not installed \
             (.ci/run installs them)",
            absent.into_iter().collect::<Vec<_>>().join(", ")
        );
        return;
    }
    let (documented, rewritten) = docs_with(&table);
    if std::env::var_os("PW_COMPAT_UPDATE").is_some() {
        std::fs::write(repo().join("docs/COMPAT.md"), rewritten).expect("write docs/COMPAT.md");
        return;
    }
    assert!(
        documented == table,
        "docs/COMPAT.md's table is not what the corpus gives (above): rewrite it with \
         `PW_COMPAT_UPDATE=1 cargo test --test compat` and review the difference"
    );
}

fn program(name: &str) -> &'static Program {
    CORPUS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no program {name:?} in the corpus"))
}

/// The named programs, or `None` (said) when one is not installed.
fn installed(names: &[&str]) -> Option<Vec<&'static Program>> {
    let programs: Vec<&Program> = names.iter().map(|n| program(n)).collect();
    if let Some(p) = programs.iter().find(|p| !p.installed()) {
        println!("not applicable: {} not installed", p.package);
        return None;
    }
    Some(programs)
}

#[test]
fn test_tar_tv_and_python_c_pass_under_default_with_the_nscd_probe_answered() {
    let Some(programs) = installed(&["tar tv", "python3 -c"]) else {
        return;
    };
    let fx = stage_fixtures();
    for p in programs {
        let data = stdin_of(p, &fx).1;
        let reference = outside(p, &fx.path, &data);
        let mut flags = p.flags(&fx.path, true);
        flags.extend(["--policy".into(), "default".into()]);
        let (outcome, o) = under(p, &flags, &reference, &data);
        assert_eq!(outcome, Outcome::Identical, "{}: {}", p.name, verdict(&o));
        // glibc's user lookup tried nscd's socket first: answered, and said.
        assert!(
            answered(&o.stderr).contains("socket(AF_UNIX) → EACCES"),
            "{}: {}",
            p.name,
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn test_learn_pdftocairo_names_poppler_and_fonts_then_runs_without_violation() {
    let Some(programs) = installed(&["pdftocairo -png"]) else {
        return;
    };
    let p = programs[0];
    let fx = stage_fixtures();
    let (input, data) = stdin_of(p, &fx);
    let o = learn(p, &fx, &input);
    let (text, said) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{said}");
    // In plain words on stderr, and as grants in the policy.
    assert!(said.contains("  reads /usr/share/poppler ("), "{said}");
    let read = text
        .lines()
        .find(|l| l.starts_with("read = "))
        .unwrap_or_else(|| panic!("no read grants in:\n{text}"));
    for dir in ["/usr/share/poppler", "/usr/share/fonts", "/etc/fonts"] {
        assert!(read.contains(&format!("\"{dir}\"")), "{dir} not in: {read}");
    }
    let learned = policy(&fx.path, "pdftocairo.toml", &text);
    let reference = outside(p, &fx.path, &data);
    let mut flags = p.flags(&fx.path, false);
    flags.extend(["--policy".into(), learned.display().to_string()]);
    let (outcome, o) = under(p, &flags, &reference, &data);
    assert_eq!(outcome, Outcome::Identical, "{}", verdict(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("denied"), "{stderr}");
}

/// The host itself run as uid 65534: no identity to drop, the walls the
/// same. Everything it runs is copied into a world-readable directory.
#[test]
fn test_corpus_programs_run_identically_with_an_unprivileged_host() {
    if !is_root() {
        println!("not applicable: switching the host to uid 65534 needs root");
        return;
    }
    let names = [
        "sort",
        "gunzip",
        "tar tv",
        "python3 script",
        "pdftotext",
        "convert",
    ];
    let Some(programs) = installed(&names) else {
        return;
    };
    let fx = stage_fixtures();
    let pw = fx.path.join("plugwarden");
    copy_executable(&plugwarden(), &pw);
    for p in programs {
        let data = stdin_of(p, &fx).1;
        let reference = outside(p, &fx.path, &data);
        let mut cmd = Command::new(&pw);
        cmd.uid(65534).gid(65534).current_dir(&fx.path);
        let flags = p.flags(&fx.path, true);
        let args: Vec<&str> = flags.iter().map(String::as_str).collect();
        let o = call_with(cmd, &args, &data);
        assert_eq!(
            verdict(&o),
            "ok",
            "{}: {}",
            p.name,
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(p.same(&o.stdout, &reference), "{}: output differs", p.name);
    }
}
