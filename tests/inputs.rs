//! The host's own inputs are hostile too (SECURITY.md, "The host's own
//! inputs"): special files, huge and endless inputs, names with escape
//! sequences or bytes that are not UTF-8, and a plugin's stderr. Each test
//! drives the real binary; nothing may hang, so every run has a deadline.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{plugin, plugwarden, scratch};
use serde_json::Value;

/// A marker no other test's plugin carries (passed as a plugin argument).
fn marker() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "pw-inputs-marker-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Processes whose command line carries `marker` (the host passes it on:
/// its own command line has it too).
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.split(|b| *b == 0).any(|a| a == marker.as_bytes()) {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    found
}

/// Waits until the plugin of `host` carrying `marker` runs.
fn plugin_started(host: &Child, marker: &str) -> bool {
    let host = host.id().to_string();
    wait_for(Duration::from_secs(30), || {
        processes_with(marker).iter().any(|p| *p != host)
    })
}

/// Waits up to `within` for `cond`.
fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Waits for `child` at most `within`; kills it and fails the test if it
/// is still running then (a hang is the bug these tests look for).
fn finish(mut child: Child, within: Duration, what: &str) -> Output {
    if !wait_for(within, || child.try_wait().expect("try_wait").is_some()) {
        let _ = child.kill();
        let o = child.wait_with_output().expect("wait");
        panic!(
            "{what} still running after {within:?}; stderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    child.wait_with_output().expect("wait")
}

fn spawn(args: &[&OsStr]) -> Child {
    Command::new(plugwarden())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plugwarden")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn audit_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line"))
        .collect()
}

fn stdout_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)
        .expect("send signal");
}

/// /dev/zero, a FIFO, a socket, a 20 GiB sparse file and symlinks: each
/// gets its verdict at once, nothing is read into memory, nothing hangs.
#[test]
fn test_run_special_files_get_input_error_quickly_and_host_memory_stays_small() {
    let dir = scratch();
    let d = dir.path();
    nix::unistd::mkfifo(&d.join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    std::fs::File::create(d.join("sparse"))
        .unwrap()
        .set_len(20 << 30)
        .unwrap();
    std::fs::write(d.join("real"), b"hello").unwrap();
    std::os::unix::fs::symlink(d.join("real"), d.join("named-link")).unwrap();
    let tree = d.join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::os::unix::fs::symlink(d.join("real"), tree.join("inner-link")).unwrap();
    std::os::unix::fs::symlink("/etc", tree.join("dir-link")).unwrap();
    std::fs::write(tree.join("plain"), b"x").unwrap();
    let audit = d.join("a.jsonl");
    let names = ["fifo", "sock", "sparse", "named-link", "tree"];
    let echo = plugin("pw-echo");
    let mut args: Vec<&OsStr> = vec![os("run"), os("--plugin"), echo.as_os_str()];
    args.extend([os("--json"), os("--workers"), os("1"), os("--audit")]);
    args.push(audit.as_os_str());
    args.push(os("/dev/zero"));
    let paths: Vec<_> = names.iter().map(|n| d.join(n)).collect();
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let started = Instant::now();
    let o = finish(
        spawn(&args),
        Duration::from_secs(60),
        "run on special files",
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let verdicts: Vec<(String, String, String)> = audit_records(&audit)
        .iter()
        .map(|r| {
            let name = r["input"].as_str().unwrap();
            let short = name.rsplit('/').next().unwrap().to_owned();
            (
                short,
                r["verdict"].as_str().unwrap().to_owned(),
                r["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |short: &str, verdict: &str, detail: &str| {
        let found = verdicts.iter().find(|v| v.0 == short);
        assert!(
            found.is_some_and(|v| v.1 == verdict && v.2.contains(detail)),
            "{short}: expected {verdict} with {detail:?}, got {found:?}"
        );
    };
    expect(
        "zero",
        "input_error",
        "a character device, not a regular file",
    );
    expect("fifo", "input_error", "a FIFO, not a regular file");
    expect("sock", "input_error", "a socket, not a regular file");
    expect(
        "sparse",
        "input_error",
        &format!(
            "input too large ({} bytes, limit {})",
            20u64 << 30,
            1u64 << 30
        ),
    );
    expect("named-link", "ok", "");
    expect(
        "inner-link",
        "input_error",
        "symbolic link inside a walked directory",
    );
    expect(
        "dir-link",
        "input_error",
        "symbolic link inside a walked directory",
    );
    expect("plain", "ok", "");
    assert_eq!(verdicts.len(), 8, "{verdicts:?}");
    let summary: Value = serde_json::from_slice(&o.stdout).expect("summary");
    let rss = summary["host_max_rss_kib"].as_u64().unwrap();
    assert!(rss < 100 << 10, "host peak RSS {rss} KiB");
    println!(
        "special files: {:?}, host peak RSS {rss} KiB",
        started.elapsed()
    );
}

/// `--max-input` is checked against the size before reading.
#[test]
fn test_run_max_input_refuses_a_bigger_file_with_its_size() {
    let dir = scratch();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![7u8; 3 << 20]).unwrap();
    let echo = plugin("pw-echo");
    let args = [
        os("run"),
        os("--plugin"),
        echo.as_os_str(),
        os("--max-input"),
        os("2MiB"),
        big.as_os_str(),
    ];
    let o = finish(spawn(&args), Duration::from_secs(60), "run --max-input");
    let lines = stdout_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("input_error")
            && lines[0].ends_with(": input too large (3145728 bytes, limit 2097152)"),
        "{lines:?}"
    );
}

/// SIGTERM while one input is a FIFO and the plugin ignores SIGTERM: the
/// FIFO never blocks the walk, the job in flight is killed after the
/// grace period and printed `cancelled`, the host exits 143 and nothing
/// is left running.
#[test]
fn test_run_sigterm_with_fifo_input_and_stubborn_plugin_ends_cancelled() {
    let dir = scratch();
    let d = dir.path();
    nix::unistd::mkfifo(&d.join("a-fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::fs::write(d.join("b-stubborn"), b"stubborn").unwrap();
    let mark = marker();
    let probe = plugin("pw-probe");
    let args = [
        os("run"),
        os("--plugin"),
        probe.as_os_str(),
        os("--arg"),
        os(&mark),
        os("--timeout"),
        os("60s"),
        os("--workers"),
        os("1"),
        os("--grace"),
        os("1s"),
        d.as_os_str(),
    ];
    let child = spawn(&args);
    assert!(
        plugin_started(&child, &mark),
        "the stubborn job never started"
    );
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGTERM);
    let o = finish(child, Duration::from_secs(30), "run after SIGTERM");
    let took = sent.elapsed();
    assert_eq!(o.status.code(), Some(143), "{o:?}");
    let lines = stdout_lines(&o);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("input_error") && l.contains("a-fifo")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("cancelled") && l.contains("b-stubborn")),
        "{lines:?}"
    );
    assert!(
        wait_for(Duration::from_secs(3), || processes_with(&mark).is_empty()),
        "left running: {:?}",
        processes_with(&mark)
    );
    println!("run ended {took:?} after SIGTERM (grace 1s)");
}

/// Ctrl-C to `call` whose plugin ignores SIGTERM and SIGINT: `cancelled`
/// is printed, exit 130, nothing left running.
#[test]
fn test_call_sigint_prints_cancelled_exits_130_and_leaves_nothing() {
    let mark = marker();
    let probe = plugin("pw-probe");
    let mut child = Command::new(plugwarden())
        .args([os("call"), os("--plugin"), probe.as_os_str(), os("--arg")])
        .args([os(&mark), os("--timeout"), os("60s")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn call");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"stubborn").unwrap();
    }
    assert!(plugin_started(&child, &mark), "the job never started");
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let o = finish(child, Duration::from_secs(10), "call after SIGINT");
    assert_eq!(o.status.code(), Some(130), "{o:?}");
    assert_eq!(common::verdict(&o), "cancelled");
    assert!(
        wait_for(Duration::from_secs(3), || processes_with(&mark).is_empty()),
        "left running: {:?}",
        processes_with(&mark)
    );
}

/// `call` through pw-echo with a stdin that never ends: `signal` is sent
/// once `wait` returns; the verdict must be `cancelled` with exit `code`.
fn call_is_cancelled_by(sig: nix::sys::signal::Signal, code: i32, wait: impl FnOnce(&Child)) {
    let echo = plugin("pw-echo");
    let mut child = Command::new(plugwarden())
        .args([os("call"), os("--plugin"), echo.as_os_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn call");
    let stdin = child.stdin.take();
    wait(&child);
    signal(&child, sig);
    let o = finish(child, Duration::from_secs(10), "call after the signal");
    drop(stdin);
    assert_eq!(o.status.code(), Some(code), "{o:?}");
    assert_eq!(common::verdict(&o), "cancelled");
}

/// Ctrl-C the moment `call` can take one, while its fork server is still
/// starting: `cancelled`, exit 130. SIGINT is never ignored on the way
/// (the fork server ignores it itself, in its own process group).
#[test]
fn test_call_sigint_during_start_up_prints_cancelled() {
    call_is_cancelled_by(nix::sys::signal::Signal::SIGINT, 130, |child| {
        // SIGINT (2) is bit 1 of the masks in /proc/PID/status.
        let status = format!("/proc/{}/status", child.id());
        let sigint_in = |field: &str| {
            std::fs::read_to_string(&status)
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
                .is_some_and(|m| m & 2 != 0)
        };
        assert!(
            wait_for(Duration::from_secs(10), || sigint_in("SigCgt:")
                || sigint_in("SigIgn:")),
            "call never handled SIGINT"
        );
        assert!(!sigint_in("SigIgn:"), "call ignores SIGINT while it starts");
        // Its handler takes a few registrations; the fork server's start
        // takes far longer than this.
        std::thread::sleep(Duration::from_millis(5));
    });
}

/// SIGTERM to `call` while its stdin never ends: `cancelled`, exit 143.
#[test]
fn test_call_sigterm_while_stdin_never_ends_prints_cancelled() {
    call_is_cancelled_by(nix::sys::signal::Signal::SIGTERM, 143, |_| {
        std::thread::sleep(Duration::from_millis(500))
    });
}

/// A file name with an escape sequence and a newline is printed escaped on
/// one line; the audit record keeps its exact bytes.
#[test]
fn test_run_name_with_escapes_prints_escaped_and_audit_keeps_it_exact() {
    let dir = scratch();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let evil = "evil\x1b[31mRED\x1b[0m\nnewline.txt";
    std::fs::write(inputs.join(evil), b"x").unwrap();
    let audit = dir.path().join("a.jsonl");
    let out = dir.path().join("out");
    let echo = plugin("pw-echo");
    let args = [
        os("run"),
        os("--plugin"),
        echo.as_os_str(),
        os("--audit"),
        audit.as_os_str(),
        os("--out"),
        out.as_os_str(),
        inputs.as_os_str(),
    ];
    let o = finish(spawn(&args), Duration::from_secs(60), "run");
    assert!(o.status.success(), "{o:?}");
    assert!(!o.stdout.contains(&0x1b), "raw escape on stdout");
    let lines = stdout_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("in/evil\\x1b[31mRED\\x1b[0m\\nnewline.txt ("),
        "{lines:?}"
    );
    let recs = audit_records(&audit);
    assert_eq!(recs[0]["input"].as_str(), inputs.join(evil).to_str());
    assert!(recs[0].get("input_bytes").is_none());
    assert_eq!(recs[0]["output"].as_str(), out.join(evil).to_str());
    assert_eq!(std::fs::read(out.join(evil)).unwrap(), b"x");
}

/// Two names that differ only in bytes that are not UTF-8 get two records
/// with their exact bytes, outputs under their exact names, and
/// `--resume` skips exactly them.
#[test]
fn test_run_invalid_utf8_names_are_recorded_exactly_and_resumed_exactly() {
    let dir = scratch();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    let a = OsStr::from_bytes(b"bad\xff\xfename.txt");
    let b = OsStr::from_bytes(b"bad\xff\xfdname.txt");
    std::fs::write(inputs.join(a), b"first").unwrap();
    std::fs::write(inputs.join(b), b"second").unwrap();
    let audit = dir.path().join("a.jsonl");
    let out = dir.path().join("out");
    let echo = plugin("pw-echo");
    let run = || {
        let args = [
            os("run"),
            os("--plugin"),
            echo.as_os_str(),
            os("--audit"),
            audit.as_os_str(),
            os("--resume"),
            os("--out"),
            out.as_os_str(),
            inputs.as_os_str(),
        ];
        finish(spawn(&args), Duration::from_secs(60), "run --resume")
    };
    let first = run();
    assert!(first.status.success(), "{first:?}");
    let recs = audit_records(&audit);
    assert_eq!(recs.len(), 2);
    let mut exact: Vec<Vec<u8>> = recs
        .iter()
        .map(|r| hex::decode(r["input_bytes"].as_str().expect("input_bytes")).unwrap())
        .collect();
    exact.sort();
    assert_eq!(
        exact,
        [inputs.join(b), inputs.join(a)].map(|p| p.as_os_str().as_bytes().to_vec())
    );
    assert_ne!(recs[0]["input"], recs[1]["input"]);
    assert_eq!(std::fs::read(out.join(a)).unwrap(), b"first");
    assert_eq!(std::fs::read(out.join(b)).unwrap(), b"second");
    let verify = Command::new(plugwarden())
        .args([os("audit"), os("verify"), audit.as_os_str()])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{verify:?}");
    // A third name, also not UTF-8: only it runs on resume.
    let c = OsStr::from_bytes(b"bad\xff\xfcname.txt");
    std::fs::write(inputs.join(c), b"third").unwrap();
    let second = run();
    assert!(second.status.success(), "{second:?}");
    let lines = stdout_lines(&second);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("bad\\xff\\xfcname.txt"), "{lines:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("2 skipped"),
        "{second:?}"
    );
    assert_eq!(audit_records(&audit).len(), 3);
}

/// What the plugin prints on stderr (escape sequences, a forged `ok`
/// line) stays inside the quoted detail of the verdict in `run` and
/// `call`, and `call`'s verdict is always a line of its own.
#[test]
fn test_forged_stderr_stays_inside_the_quoted_detail() {
    let script = r#"printf 'warn\n\033]0;pwned\007\033[2J\nok      /etc/shadow' >&2; exit 1"#;
    let shell = [
        "--plugin", "/bin/sh", "--mode", "filter", "--arg", "-c", "--arg", script,
    ];
    let o = common::call(&shell, b"input");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last, r#"plugin_error: exit status 1: stderr "ok      /etc/shadow""#,
        "{stderr}"
    );
    // Relayed live before the verdict (raw: stderr is not a terminal).
    assert!(stderr.starts_with("warn\n\x1b]0;pwned"), "{stderr:?}");

    let dir = scratch();
    let input = dir.path().join("one");
    std::fs::write(&input, b"x").unwrap();
    let mut args: Vec<&OsStr> = vec![os("run")];
    args.extend(shell.iter().map(|s| os(s)));
    args.push(input.as_os_str());
    let o = finish(spawn(&args), Duration::from_secs(60), "run");
    let lines = stdout_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("plugin_error")
            && lines[0].ends_with(r#": exit status 1: stderr "ok      /etc/shadow""#),
        "{lines:?}"
    );
    assert!(!o.stdout.contains(&0x1b) && !o.stderr.contains(&0x1b));
}

/// On a terminal, `call`'s relay escapes control characters other than
/// newline and tab; `--raw-stderr` passes them.
#[test]
fn test_call_relay_on_a_terminal_escapes_and_raw_stderr_passes_bytes() {
    if !Path::new("/usr/bin/script").exists() {
        println!("not applicable: no /usr/bin/script to give call a terminal");
        return;
    }
    let printer = r#"printf 'a\tb\n\033[2Jc\n' >&2; exit 1"#;
    let run = |extra: &str| {
        let cmd = format!(
            "echo x | {} call --plugin /bin/sh --mode filter --arg -c --arg \"{printer}\" {extra}",
            plugwarden().display()
        );
        Command::new("/usr/bin/script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script")
    };
    let escaped = run("");
    let text = String::from_utf8_lossy(&escaped.stdout);
    assert!(text.contains("a\tb\r\n\\x1b[2Jc"), "{text:?}");
    let raw = run("--raw-stderr");
    assert!(
        String::from_utf8_lossy(&raw.stdout).contains("\x1b[2Jc"),
        "{raw:?}"
    );
}

/// A 100 MiB stderr flood: `call` relays at most its limit (1 MiB) and
/// says how much it dropped; `run` with the debug log costs the host less
/// than 2 MiB of output and of memory.
#[test]
fn test_stderr_flood_of_100_mib_costs_the_host_under_2_mib() {
    let probe = plugin("pw-probe");
    let probe = probe.to_str().unwrap();
    let o = common::call(&["--plugin", probe], b"stderr:100");
    assert!(o.status.success(), "{o:?}");
    assert!(
        o.stderr.len() < 2 << 20,
        "{} bytes of stderr",
        o.stderr.len()
    );
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(
        text.contains("plugwarden: the plugin's stderr was cut after 1048576 bytes: "),
        "{}",
        &text[text.len().saturating_sub(500)..]
    );
    assert_eq!(common::verdict(&o), "ok");

    let dir = scratch();
    let rss = |mib: u32| {
        let input = dir.path().join(format!("flood-{mib}"));
        std::fs::write(&input, format!("stderr:{mib}")).unwrap();
        let o = Command::new(plugwarden())
            .env("RUST_LOG", "debug")
            .args([os("run"), os("--plugin"), os(probe), os("--json")])
            .args([os("--workers"), os("1"), input.as_os_str()])
            .output()
            .expect("run");
        assert!(o.status.success(), "{o:?}");
        let summary: Value = serde_json::from_slice(&o.stdout).expect("summary");
        (
            summary["host_max_rss_kib"].as_u64().unwrap(),
            o.stderr.len(),
        )
    };
    let (quiet_rss, quiet_log) = rss(0);
    let (flood_rss, flood_log) = rss(100);
    assert!(
        flood_log < quiet_log + (2 << 20),
        "debug log {flood_log} bytes (quiet: {quiet_log})"
    );
    assert!(
        flood_rss < quiet_rss + 2048,
        "host peak RSS {flood_rss} KiB (quiet: {quiet_rss} KiB)"
    );
}

/// sha256 of a file, read in chunks.
fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).expect("open");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            return hex::encode(h.finalize());
        }
        h.update(&buf[..n]);
    }
}

/// A policy for inputs and outputs bigger than the shipped limits.
fn big_policy(dir: &Path) -> std::path::PathBuf {
    common::policy(
        dir,
        "big.toml",
        "extends = \"strict\"\n[limits]\ninput = \"8GiB\"\noutput = \"8GiB\"\nwall = \"600s\"\ncpu = \"600s\"\n",
    )
}

/// An input far bigger than one frame and than the bound streams through
/// `plugins/echo` (in parts both ways): the output is the input, and the
/// host's peak RSS stays far below the input's size. The bench measures
/// the curve up to 4 GiB (pw-bench streaming).
#[test]
fn test_run_and_call_stream_a_512_mib_input_through_echo_in_bounded_host_memory() {
    let dir = scratch();
    let input = dir.path().join("big");
    std::fs::File::create(&input)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    let policy = big_policy(dir.path());
    let audit = dir.path().join("a.jsonl");
    let echo = common::repo().join("plugins/echo");
    let args = [
        os("run"),
        os("--plugin"),
        echo.as_os_str(),
        os("--policy"),
        policy.as_os_str(),
        os("--json"),
        os("--audit"),
        audit.as_os_str(),
        input.as_os_str(),
    ];
    let o = finish(spawn(&args), Duration::from_secs(600), "run on 512 MiB");
    assert!(o.status.success(), "{o:?}");
    let summary: Value = serde_json::from_slice(&o.stdout).expect("summary");
    let rss = summary["host_max_rss_kib"].as_u64().unwrap();
    assert!(
        rss < 100 << 10,
        "host peak RSS {rss} KiB for a 512 MiB input"
    );
    let rec = &audit_records(&audit)[0];
    assert_eq!(rec["verdict"], "ok");
    assert_eq!(rec["output_sha256"], rec["input_sha256"]);

    let out = dir.path().join("out");
    let status = Command::new(plugwarden())
        .args([os("call"), os("--plugin"), echo.as_os_str(), os("--policy")])
        .arg(&policy)
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .status()
        .expect("call");
    assert!(status.success());
    assert_eq!(sha256_file(&out), rec["input_sha256"].as_str().unwrap());
}

/// Inputs over one frame reach plugins that take them whole too: the
/// SDK's `serve` (pw-probe) and the Python reference plugin put the parts
/// together; the answer comes back in parts of at most one frame.
#[test]
fn test_call_input_over_one_frame_reaches_whole_input_plugins_in_parts() {
    let mut input = b"echo:".to_vec();
    input.resize(input.len() + (70 << 20), b'x');
    let probe = plugin("pw-probe");
    let o = common::call(
        &["--plugin", probe.to_str().unwrap(), "--max-input", "100MiB"],
        &input,
    );
    assert_eq!(common::verdict(&o), "ok");
    assert_eq!(o.stdout.len(), 70 << 20);
    if !Path::new("/usr/bin/python3").exists() {
        println!("not applicable: no /usr/bin/python3 for the Python reference plugin");
        return;
    }
    let python = common::repo().join("plugins/python-echo");
    let o = common::call(
        &[
            "--plugin",
            python.to_str().unwrap(),
            "--max-input",
            "100MiB",
        ],
        &input,
    );
    assert_eq!(
        common::verdict(&o),
        "ok",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.stdout == input, "the Python plugin's answer differs");
}

/// Log lines carry no colour codes when stderr is not a terminal, nor on
/// a terminal with `NO_COLOR` set; on a terminal without it they do.
#[test]
fn test_log_colour_only_on_a_terminal_and_never_with_no_color() {
    // The probe's stderr (logged at debug level, escaped) makes log lines.
    let probe = plugin("pw-probe");
    let mut cmd = Command::new(plugwarden());
    cmd.env("RUST_LOG", "debug").env_remove("NO_COLOR");
    let o = common::call_with(cmd, &["--plugin", probe.to_str().unwrap()], b"stderr:0");
    assert_eq!(common::verdict(&o), "ok");
    let text = String::from_utf8_lossy(&o.stderr);
    let log: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("plugwarden::plugin"))
        .collect();
    assert!(!log.is_empty(), "debug log expected: {text:?}");
    assert!(
        log.iter().all(|l| !l.contains('\x1b')),
        "colour in a piped log: {log:?}"
    );
    if !Path::new("/usr/bin/script").exists() {
        println!("not applicable: no /usr/bin/script to give the log a terminal");
        return;
    }
    let on_terminal = |no_color: &str| {
        let cmd = format!(
            "printf stderr:0 | {no_color} RUST_LOG=debug {} call --plugin {}",
            plugwarden().display(),
            probe.display()
        );
        let o = Command::new("/usr/bin/script")
            .env_remove("NO_COLOR")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let log: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("plugwarden::plugin"))
            .collect();
        assert!(!log.is_empty(), "debug log expected: {text:?}");
        log.iter().any(|l| l.contains('\x1b'))
    };
    assert!(on_terminal(""), "a terminal gets colour");
    assert!(!on_terminal("NO_COLOR=1"), "NO_COLOR is honoured");
}
