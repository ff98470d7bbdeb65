//! The programs in examples/ run, as a host application would run them:
//! each is its own fork server (`plugwarden::bootstrap`), builds a
//! sandbox and checks its verdicts. `cargo test` builds the examples
//! before it runs this; `cargo build --workspace` builds `pw-echo`.

mod common;

use std::path::PathBuf;
use std::process::Command;

/// An example built next to this test (`target/debug/examples/NAME`).
fn example(name: &str) -> Option<PathBuf> {
    let dir = common::plugwarden().parent()?.join("examples");
    let path = dir.join(name);
    path.exists().then_some(path)
}

/// Runs an example with `args`; its stdout, or `None` (printed why) when
/// it was not built.
fn run(name: &str, args: &[&std::ffi::OsStr]) -> Option<String> {
    let Some(exe) = example(name) else {
        println!("not applicable: example {name} was not built (run `cargo test`, which builds the examples)");
        return None;
    };
    let out = Command::new(&exe)
        .args(args)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "example {name}: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    Some(stdout)
}

fn echo() -> PathBuf {
    common::plugin("pw-echo")
}

#[test]
fn test_example_worker_echoes_twice_on_one_worker() {
    let echo = echo();
    let Some(out) = run("worker", &[echo.as_os_str(), "ping".as_ref()]) else {
        return;
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines.iter().all(|l| l.starts_with("ok: \"ping\"")), "{out}");
    // The second call reused the first call's worker.
    let pid = |l: &str| l.rsplit("pid ").next().map(str::to_string);
    assert_eq!(pid(lines[0]), pid(lines[1]), "{out}");
}

#[test]
fn test_example_filter_runs_base64_and_refuses_a_worker_call() {
    let Some(out) = run("filter", &[]) else {
        return;
    };
    assert!(out.starts_with("cGx1Z3dhcmRlbg==\n"), "{out}");
    assert!(out.contains("is a filter sandbox"), "{out}");
}

#[test]
fn test_example_pool_dir_writes_a_verified_audit_log() {
    let dir = common::scratch();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    for i in 0..25 {
        std::fs::write(inputs.join(format!("{i:02}.txt")), format!("input {i}")).unwrap();
    }
    let log = dir.path().join("audit.jsonl");
    let echo = echo();
    let Some(out) = run(
        "pool_dir",
        &[inputs.as_os_str(), log.as_os_str(), echo.as_os_str()],
    ) else {
        return;
    };
    assert!(out.contains("{\"ok\": 25}"), "{out}");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 25);
    let verified = Command::new(common::plugwarden())
        .args(["audit", "verify"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{verified:?}");
}

#[test]
fn test_example_verdicts_names_each_outcome() {
    let Some(out) = run("verdicts", &[]) else {
        return;
    };
    for (what, says) in [
        ("answers", "ok: use the output"),
        ("refuses", "the plugin refused the input"),
        ("crashes", "crashed by SIGSEGV"),
        ("spins", "ran out of"),
        ("forks", "made a forbidden system call"),
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{what}:")))
            .unwrap_or_else(|| panic!("no line for {what}: {out}"));
        assert!(line.contains(says), "{what}: {line}");
    }
}

#[test]
fn test_example_tokio_runs_four_requests() {
    let echo = echo();
    let Some(out) = run("tokio", &[echo.as_os_str()]) else {
        return;
    };
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("ok: request "))
            .count(),
        4,
        "{out}"
    );
}

#[test]
fn test_a_program_without_bootstrap_gets_a_clear_error_not_a_fork_bomb() {
    // The test harness never calls plugwarden::bootstrap().
    let err = plugwarden::ForkServer::start_self().unwrap_err();
    assert!(
        err.to_string()
            .contains("plugwarden::bootstrap() was not called"),
        "{err}"
    );
}

#[test]
fn test_a_fork_server_never_starts_another() {
    // A process whose environment says it is a fork server (what the
    // fork server's own is) may not start one: a second level is refused.
    let Some(exe) = example("worker") else {
        println!("not applicable: example worker was not built");
        return;
    };
    let echo = echo();
    let out = Command::new(exe)
        .env("PLUGWARDEN_FORK_SERVER_LEVEL", "1")
        .arg(&echo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // `main` returning the error prints its Debug form.
    assert!(stderr.contains("ForkServer(Recursion)"), "{stderr}");
    let text = plugwarden::ForkServerError::Recursion.to_string();
    assert!(text.contains("may not start another"), "{text}");
}
