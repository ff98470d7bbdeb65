//! The library as an application uses it (docs/LIBRARY.md): the builder
//! with the installed binary as the fork server, `Pool::map` with more
//! inputs than the queues hold, and a pool dropped with jobs in flight.

mod common;

use std::time::{Duration, Instant};

use plugwarden::pool::{Pool, PoolConfig, Task};
use plugwarden::{ForkServer, Sandbox, Verdict};

/// A sandbox of `exe` with the `plugwarden` binary as its fork server
/// (this test binary never calls `bootstrap`).
fn builder(exe: impl Into<std::path::PathBuf>) -> plugwarden::SandboxBuilder {
    let fs = ForkServer::with_helper(common::plugwarden()).expect("fork server");
    Sandbox::builder(exe).fork_server(fs).allow_weaker()
}

#[test]
fn test_pool_map_of_a_thousand_inputs_ends_without_reading_in_step() {
    // The trap: 1,000 submissions before the first read hung
    // after ~136 (both channels bounded). map feeds on its own thread.
    let sandbox = builder(common::plugin("pw-echo"))
        .policy("strict")
        .build()
        .expect("sandbox");
    let mut config = PoolConfig::from_policy(sandbox.policy());
    config.workers = 2;
    assert!(config.queue_capacity() * 2 < 1000);
    let tasks = (0..1000u32).map(|i| Task::new(i, i.to_le_bytes().to_vec()));
    let mut results = Pool::map(sandbox, config, tasks).expect("pool");
    // The caller may be slow to start reading: the feeder blocks, nothing hangs.
    std::thread::sleep(Duration::from_millis(300));
    let mut seen = vec![false; 1000];
    for done in results.by_ref() {
        assert_eq!(done.outcome.verdict, Verdict::Ok, "input {}", done.tag);
        assert_eq!(done.outcome.output, done.tag.to_le_bytes());
        seen[done.tag as usize] = true;
    }
    assert!(seen.iter().all(|s| *s), "every input has its result");
    let stats = results.join();
    assert!(stats.workers_started >= 2, "{stats:?}");
}

#[test]
fn test_results_dropped_with_jobs_in_flight_cancels_and_reaps_them() {
    let dir = common::scratch();
    let spin = dir.path().join("pw-spin-sh");
    common::copy_executable(std::path::Path::new("/bin/sh"), &spin);
    let sandbox = builder(&spin)
        .filter()
        .args(["-c", "while :; do :; done"])
        .policy("default")
        .timeout(Duration::from_secs(60))
        .build()
        .expect("sandbox");
    let mut config = PoolConfig::from_policy(sandbox.policy());
    config.workers = 2;
    let tasks = (0..6u32).map(|i| Task::new(i, b"x".to_vec()));
    let results = Pool::map(sandbox, config, tasks).expect("pool");
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::running(&spin).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(common::running(&spin).len(), 2, "two jobs in flight");
    let t = Instant::now();
    drop(results);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(common::running(&spin).is_empty(), "every plugin reaped");
}

#[test]
fn test_a_worker_call_on_a_filter_sandbox_is_a_clear_error() {
    let sandbox = builder("/usr/bin/base64")
        .filter()
        .policy("default")
        .build()
        .expect("sandbox");
    let err = plugwarden::Worker::start(&sandbox).err().expect("refused");
    assert!(
        matches!(err, plugwarden::sandbox::SandboxError::WrongMode { .. }),
        "{err}"
    );
    assert_eq!(sandbox.run(b"hi").verdict, Verdict::Ok);
}

#[test]
fn test_a_violation_names_its_syscall_as_a_typed_value() {
    let sandbox = builder("/bin/sh")
        .filter()
        .args(["-c", "/bin/true"])
        .policy("default")
        .build()
        .expect("sandbox");
    let outcome = sandbox.run(b"");
    let Verdict::Violation(v) = &outcome.verdict else {
        panic!("{}", outcome.verdict);
    };
    let call = v.syscall().expect("caught by the host's filter");
    assert!(
        matches!(call.name(), Some("vfork" | "fork" | "clone" | "clone3")),
        "{call}: {v}"
    );
    assert!(outcome.verdict.to_string().starts_with("violation: "));
}

#[test]
fn test_a_weaker_sandbox_is_refused_unless_allowed() {
    // Without Landlock the strict policy's file rules are missing. The
    // kernel is probed once per process, so this test runs itself again
    // with Landlock switched off (PLUGWARDEN_LANDLOCK_ABI=0).
    const NAME: &str = "test_a_weaker_sandbox_is_refused_unless_allowed";
    if std::env::var(plugwarden::kernel::LANDLOCK_SWITCH).as_deref() != Ok("0") {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture"])
            .env(plugwarden::kernel::LANDLOCK_SWITCH, "0")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("refused: the sandbox would be weaker"),
            "{stdout}"
        );
        return;
    }
    let fs = ForkServer::with_helper(common::plugwarden()).expect("fork server");
    let err = Sandbox::builder(common::plugin("pw-echo"))
        .fork_server(fs)
        .policy("strict")
        .build()
        .expect_err("weaker without Landlock");
    assert!(
        matches!(&err, plugwarden::BuildError::Weaker(w) if w.iter().any(|m| m.contains("landlock"))),
        "{err}"
    );
    println!("refused: {err}");
    let sandbox = builder(common::plugin("pw-echo"))
        .policy("strict")
        .build()
        .expect("allowed");
    assert!(!sandbox.weakenings().is_empty());
    assert_eq!(sandbox.run(b"x").verdict, Verdict::Ok);
}

#[test]
fn test_a_missing_helper_is_a_clear_error() {
    let err = ForkServer::with_helper("/nonexistent/plugwarden").expect_err("no helper");
    assert!(err.to_string().contains("not found"), "{err}");
}
