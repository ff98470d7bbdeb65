//! Helpers for the integration tests: the real plugwarden binary, the test
//! plugins built by `cargo build --workspace`, and scratch directories that
//! a dropped uid (65534) can enter.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Set by a test that re-runs a test binary as another user: the directory
/// the binaries were copied to (see [`stage_binaries`]).
pub const BIN_DIR: &str = "PW_TEST_BIN_DIR";

pub fn plugwarden() -> PathBuf {
    match std::env::var_os(BIN_DIR) {
        Some(d) => PathBuf::from(d).join("plugwarden"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_plugwarden")),
    }
}

/// A binary of another workspace crate (`pw-probe`, `pw-echo`), from the
/// same target directory as this test.
pub fn plugin(name: &str) -> PathBuf {
    let dir = plugwarden().parent().expect("target dir").to_path_buf();
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace` before the tests (the README's test command does)", p.display());
    p
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A temporary directory everyone may enter (mode 0755).
pub fn scratch() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("pw-test-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// Copies this test binary, plugwarden and `plugins` into a fresh
/// world-readable directory (the checkout may sit where uid 65534 cannot
/// enter) and returns it with the path of the copied test binary.
pub fn stage_binaries(plugins: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = scratch();
    let me = std::env::current_exe().expect("test binary");
    let test_bin = dir.path().join(me.file_name().expect("name"));
    let bins = [me.clone(), plugwarden()]
        .into_iter()
        .chain(plugins.iter().map(|p| plugin(p)));
    for bin in bins {
        copy_executable(&bin, &dir.path().join(bin.file_name().expect("name")));
    }
    (dir, test_bin)
}

/// Copies an executable to `dst` (mode 0755) with `install`, so that this
/// multi-threaded test process never holds the copy open for writing: a
/// child forked meanwhile by another test would inherit that descriptor
/// and make running the copy fail with ETXTBSY ("Text file busy").
pub fn copy_executable(src: &Path, dst: &Path) {
    let ok = Command::new("install")
        .args(["-m", "0755"])
        .arg(src)
        .arg(dst)
        .status()
        .expect("run install");
    assert!(ok.success(), "install {} {}", src.display(), dst.display());
}

/// Writes a policy file into `dir` and returns its path.
pub fn policy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write policy");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    p
}

/// `plugwarden call` with `input` on stdin.
pub fn call(args: &[&str], input: &[u8]) -> Output {
    call_with(Command::new(plugwarden()), args, input)
}

pub fn call_with(mut cmd: Command, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    cmd.arg("call")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn plugwarden");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write input");
    child.wait_with_output().expect("wait")
}

/// The verdict line (last line of stderr).
pub fn verdict(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .last()
        .unwrap_or("")
        .to_string()
}

/// `plugwarden doctor`'s row for `wall`, whitespace collapsed.
pub fn doctor_row(out: &str, wall: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(wall))
        .unwrap_or_else(|| panic!("no row {wall:?} in:\n{out}"));
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A policy under which pw-probe's `daemon` can double-fork and `setsid`,
/// without a PID namespace: only a tree kill can reach the grandchild.
pub const DAEMON_POLICY: &str = "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"fork\", \"wait4\", \"setsid\", \"pipe\", \"pipe2\"]\n[limits]\nprocesses = 8\n[namespaces]\npid = false\n";

/// Whether process `pid` is gone (or a zombie, dead but not yet reaped)
/// within `within`; if not, it is killed before returning false.
pub fn gone_within(pid: i32, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
        if matches!(state, None | Some('Z' | 'X')) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            // SAFETY: kill with integers; `pid` is the test's own straggler.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Live (non-zombie) processes running `exe`.
pub fn running(exe: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("exe")).ok().as_deref() != Some(exe) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
        {
            pids.push(pid);
        }
    }
    pids
}

/// Verdict word per input file name, from `run`-style output lines.
pub fn verdicts(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let word = parts.next()?;
            let path = parts.next()?;
            Some((
                Path::new(path).file_name()?.to_string_lossy().into_owned(),
                word.to_string(),
            ))
        })
        .collect()
}

/// Keys and names of active content, links, forms and attachments
/// anywhere in a sanitized PDF.
pub fn has_forbidden(doc: &lopdf::Document) -> Vec<String> {
    const KEYS: [&[u8]; 9] = [
        b"JavaScript",
        b"JS",
        b"OpenAction",
        b"AA",
        b"Launch",
        b"EmbeddedFile",
        b"URI",
        b"AcroForm",
        b"Annots",
    ];
    let mut found = Vec::new();
    for obj in doc.objects.values() {
        let dict = match obj {
            lopdf::Object::Dictionary(d) => d,
            lopdf::Object::Stream(s) => &s.dict,
            _ => continue,
        };
        for (k, v) in dict.iter() {
            if KEYS.contains(&k.as_slice()) {
                found.push(String::from_utf8_lossy(k).into_owned());
            }
            if let lopdf::Object::Name(n) = v {
                if KEYS.contains(&n.as_slice()) {
                    found.push(String::from_utf8_lossy(n).into_owned());
                }
            }
        }
    }
    found
}

/// What a fork server (`fs_pid`) still has under it that it should not:
/// every child of it but one idle zygote (the init it keeps for a
/// profile's next input, docs/decisions/zygote.md), which must be neither
/// a zombie nor hold a process of its own. Empty when nothing is left.
pub fn left_under_fork_server(fs_pid: u32) -> Vec<String> {
    let children = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default()
    };
    let state = |pid: &str| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .unwrap_or('?')
    };
    let all = children(&fs_pid.to_string());
    let mut left = Vec::new();
    let mut idle = 0;
    for pid in all.split_whitespace() {
        let own = children(pid);
        if state(pid) == 'Z' || !own.trim().is_empty() {
            left.push(format!(
                "{pid} (state {}, children [{}])",
                state(pid),
                own.trim()
            ));
        } else {
            idle += 1;
            if idle > 1 {
                left.push(format!("{pid} (a second idle init)"));
            }
        }
    }
    left
}

/// Compiles `source` into `dir/name` (mode 0755); `None`, saying why, when
/// this machine has no gcc.
pub fn cc(dir: &Path, name: &str, source: &str) -> Option<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write C source");
    let out = dir.join(name);
    match Command::new("gcc")
        .arg("-O2")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
    {
        Ok(o) if o.status.success() => {
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
            Some(out)
        }
        Ok(o) => panic!("gcc failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => {
            println!("not applicable: the C test program needs gcc ({e})");
            None
        }
    }
}
