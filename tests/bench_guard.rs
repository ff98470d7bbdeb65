//! Regression guard: a few seconds of plugwarden-bench (benches/) that CI
//! runs with `cargo test`. It fails only on gross regressions, never on
//! noise: each ratio is measured side by side in a few rounds and the best
//! round is compared with a loose bound (looser still in a debug build,
//! where the host side is several times slower). The real numbers come
//! from `cargo run --release -p pw-bench --bin plugwarden-bench`.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use common::*;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::worker::Worker;
use plugwarden::ForkServer;

const ROUNDS: usize = 3;

/// Bounds (spawn × bare spawn, round trip × pipe). Today's best rounds on
/// a loaded 2-CPU machine, in a debug build, are about 2× and 4×
/// (docs/PERFORMANCE.md); the bounds leave room for noise and catch gross
/// regressions only. A debug build of the host is slower, so its bounds
/// are looser.
fn bounds() -> (f64, f64) {
    if cfg!(debug_assertions) {
        (12.0, 40.0)
    } else {
        (10.0, 20.0)
    }
}

/// The two guards measure one at a time, not against each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn sandbox(exe: std::path::PathBuf, mode: Mode) -> Sandbox {
    let fs = Arc::new(ForkServer::start(&plugwarden()).expect("fork server"));
    let policy = Arc::new(plugwarden::policy::load("strict").expect("strict policy"));
    Sandbox::new(
        fs,
        PluginSpec {
            exe,
            args: Vec::new(),
            mode,
            env: Vec::new(),
            cwd: None,
        },
        policy,
        Enforce::Policy,
    )
    .expect("sandbox")
}

/// Seconds per call of `f`, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// The smallest of the per-round ratios `ours / floor`.
fn best_ratio(mut ours: impl FnMut() -> f64, mut floor: impl FnMut() -> f64) -> (f64, Vec<String>) {
    let mut best = f64::INFINITY;
    let mut log = Vec::new();
    for _ in 0..ROUNDS {
        let (o, f) = (ours(), floor());
        best = best.min(o / f);
        log.push(format!("{:.0} µs / {:.0} µs", o * 1e6, f * 1e6));
    }
    (best, log)
}

#[test]
fn test_spawn_strict_true_within_loose_bound_of_fork_exec_floor() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let sb = sandbox("/bin/true".into(), Mode::Filter);
    let spawn_wait = || {
        let mut p = sb.spawn().expect("spawn");
        assert_eq!(p.wait().expect("wait").code(), Some(0));
    };
    let bare = || {
        assert!(Command::new("/bin/true")
            .status()
            .expect("/bin/true")
            .success());
    };
    per_call(3, spawn_wait);
    let (ratio, log) = best_ratio(|| per_call(30, spawn_wait), || per_call(30, bare));
    let (bound, _) = bounds();
    println!(
        "spawn under strict / bare spawn of /bin/true: best {ratio:.2}× ({})",
        log.join(", ")
    );
    assert!(
        ratio < bound,
        "sandboxed spawn is {ratio:.1}× the bare spawn (bound {bound}×): {}",
        log.join(", ")
    );
}

#[test]
fn test_round_trip_1kib_within_loose_bound_of_pipe_ping_pong() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let sb = sandbox(plugin("pw-echo"), Mode::Worker);
    let mut w = Worker::start(&sb).expect("worker");
    let input = vec![0x5a; 1024];
    let mut job = || {
        let o = w.run_job(&input);
        assert!(
            o.verdict.is_ok() && o.output.len() == input.len(),
            "echo failed: {}",
            o.verdict
        );
    };
    per_call(50, &mut job);
    // The floor: the same 1 KiB through `cat` and back over two pipes.
    let mut cat = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    let (mut to_cat, mut from_cat) = (
        cat.stdin.take().expect("stdin"),
        cat.stdout.take().expect("stdout"),
    );
    let mut back = vec![0u8; 1024];
    let mut ping = || {
        to_cat.write_all(&input).expect("write to cat");
        from_cat.read_exact(&mut back).expect("read from cat");
    };
    per_call(50, &mut ping);
    let (ratio, log) = best_ratio(|| per_call(1000, &mut job), || per_call(1000, &mut ping));
    drop(to_cat);
    let _ = cat.wait();
    w.shutdown();
    let (_, bound) = bounds();
    println!(
        "1 KiB round trip, warm pw-echo / pipe ping-pong: best {ratio:.2}× ({})",
        log.join(", ")
    );
    assert!(
        ratio < bound,
        "worker round trip is {ratio:.1}× a pipe ping-pong (bound {bound}×): {}",
        log.join(", ")
    );
}
