//! No orphans when the host dies: a batch whose plugins fork grandchildren
//! and setsid daemons, the host killed with SIGKILL, and within a second
//! nothing of the batch is left (EOF on the fork server's socket → it kills
//! every worker's cgroup; each worker also has a parent-death signal).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Kills the host even when an assertion fails first.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn test_host_killed_leaves_no_process_of_the_batch() {
    let dir = scratch();
    // A private copy, so that only this test's plugin processes match.
    let probe = dir.path().join("orphan-probe");
    copy_executable(&plugin("pw-probe"), &probe);
    let policy = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"@process\"]\n[limits]\nprocesses = 16\nwall = \"60s\"\n",
    );
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    std::fs::write(inputs.join("1-daemon"), "daemon").unwrap();
    std::fs::write(inputs.join("2-forks"), "forkbomb").unwrap();
    std::fs::write(inputs.join("3-sleep"), "sleep").unwrap();
    // One worker, so the daemon, the forked children and the sleeper all
    // belong to the batch at the moment the host dies.
    let host = Command::new(plugwarden())
        .args([
            "run",
            "--workers",
            "1",
            "--plugin",
            probe.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ])
        .arg(&inputs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut host = KillOnDrop(host);
    // Wait until the batch has its daemon, its forked children and the sleeper.
    let started = Instant::now();
    while running(&probe).len() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the batch never got going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    host.0.kill().unwrap();
    host.0.wait().unwrap();
    let killed = Instant::now();
    loop {
        let left = running(&probe);
        if left.is_empty() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "still running 1 s after the host died: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
