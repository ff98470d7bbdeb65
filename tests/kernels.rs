//! Older kernels, simulated on this one (issue 22): `PLUGWARDEN_LANDLOCK_ABI`
//! lowers the Landlock ABI, `PLUGWARDEN_KERNEL` the release the floor check
//! reads, `PLUGWARDEN_NO_<FEATURE>=1` removes one feature. Each test runs
//! the real binary with real sandboxed children and checks what the issue
//! promises: the round trip and the main job work at ABI 1, 4 and 6, each
//! missing right is named with what stands in for it, an uncovered one
//! follows `best_effort` (refused, or a line in the log and in every audit
//! record), and a missing feature falls back or is refused by name.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// `plugwarden ARGS` with `env`, `input` on stdin.
fn pw(args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(plugwarden())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn plugwarden");
    let _ = child.stdin.take().expect("stdin").write_all(input);
    child.wait_with_output().expect("wait")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `call` of pw-probe under `policy` with `env`: (verdict line, stdout, stderr).
fn probe(policy: &str, input: &str, env: &[(&str, &str)]) -> (String, String, String) {
    let exe = plugin("pw-probe");
    let o = pw(
        &[
            "call",
            "--plugin",
            exe.to_str().unwrap(),
            "--policy",
            policy,
        ],
        env,
        input.as_bytes(),
    );
    (verdict(&o), text(&o.stdout), text(&o.stderr))
}

/// Skips (with the reason) when this kernel offers less than `abi`.
fn kernel_has_abi(abi: u8) -> bool {
    let have = plugwarden::kernel::kernel().landlock_abi;
    if have < abi {
        println!(
            "not applicable: this kernel offers Landlock ABI {have}, the test simulates {abi}"
        );
    }
    have >= abi
}

fn doctor(env: &[(&str, &str)]) -> String {
    let o = pw(&["doctor"], env, b"");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn test_echo_round_trip_at_landlock_abi_1_4_and_6() {
    for abi in ["1", "4", "6"] {
        if !kernel_has_abi(abi.parse().unwrap()) {
            continue;
        }
        let exe = plugin("pw-echo");
        let o = pw(
            &["call", "--plugin", exe.to_str().unwrap()],
            &[("PLUGWARDEN_LANDLOCK_ABI", abi)],
            b"round trip",
        );
        assert_eq!(verdict(&o), "ok", "ABI {abi}: {}", text(&o.stderr));
        assert_eq!(o.stdout, b"round trip", "ABI {abi}");
        // Under the shipped policies every missing right is covered.
        assert!(
            !text(&o.stderr).contains("weaker sandbox"),
            "{}",
            text(&o.stderr)
        );
    }
}

#[test]
fn test_main_job_sanitizes_at_landlock_abi_1_4_and_6() {
    let dir = scratch();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    for name in ["benign.png", "benign.pdf", "hostile-launch.pdf"] {
        std::fs::copy(repo().join("samples").join(name), inbox.join(name)).unwrap();
    }
    for abi in ["1", "4", "6"] {
        if !kernel_has_abi(abi.parse().unwrap()) {
            continue;
        }
        let out = dir.path().join(format!("safe-{abi}"));
        let o = pw(
            &[
                "sanitize",
                inbox.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[("PLUGWARDEN_LANDLOCK_ABI", abi)],
            b"",
        );
        assert_eq!(o.status.code(), Some(0), "ABI {abi}: {}", text(&o.stdout));
        for safe in [
            "benign.png.safe.png",
            "benign.pdf.safe.pdf",
            "hostile-launch.pdf.safe.pdf",
        ] {
            assert!(out.join(safe).exists(), "ABI {abi}: no {safe}");
        }
    }
}

#[test]
fn test_doctor_names_each_missing_right_and_what_covers_it() {
    let cases: [(&str, &[&str]); 3] = [
        (
            "1",
            &[
                "landlock rename and link across directories (refer) covered needs ABI 2 (Linux 5.19); covered by ABI 1 itself",
                "landlock truncate covered needs ABI 3 (Linux 6.2); covered by the minimal root",
                "landlock TCP bind and connect covered needs ABI 4 (Linux 6.7); covered by the empty network namespace",
                "landlock device ioctls covered needs ABI 5 (Linux 6.10); covered by seccomp",
                "landlock signal scope covered needs ABI 6 (Linux 6.12); covered by the PID namespace",
                "landlock abstract unix socket scope covered needs ABI 6 (Linux 6.12); covered by the empty network namespace",
                "landlock audit logging of denials covered needs ABI 7 (Linux 6.15)",
            ],
        ),
        (
            "4",
            &[
                "landlock TCP ports enforced",
                "landlock device ioctls covered needs ABI 5",
                "landlock signal scope covered needs ABI 6",
                "landlock abstract unix socket scope covered needs ABI 6",
            ],
        ),
        (
            "6",
            &[
                "landlock scopes enforced",
                "landlock audit logging of denials covered needs ABI 7",
            ],
        ),
    ];
    for (abi, rows) in cases {
        if !kernel_has_abi(abi.parse().unwrap()) {
            continue;
        }
        let out = doctor(&[("PLUGWARDEN_LANDLOCK_ABI", abi)]);
        assert!(
            out.contains(&format!("  landlock: ABI {abi} (the kernel reports")),
            "{out}"
        );
        assert!(out.contains(&format!("simulated: PLUGWARDEN_LANDLOCK_ABI={abi}")));
        for want in rows {
            let name = want.split(" covered").next().unwrap();
            let name = name.split(" enforced").next().unwrap();
            assert!(
                doctor_row(&out, name).starts_with(want),
                "ABI {abi}: {}",
                doctor_row(&out, name)
            );
        }
    }
}

#[test]
fn test_uncovered_right_is_refused_or_weakened_per_best_effort() {
    if !kernel_has_abi(4) {
        return;
    }
    // Without its PID namespace nothing stands in for the signal scope.
    let dir = scratch();
    let strict = policy(
        dir.path(),
        "nopid.toml",
        "description = \"x\"\nextends = \"default\"\nbest_effort = false\n[namespaces]\npid = false\n",
    );
    let abi4 = [("PLUGWARDEN_LANDLOCK_ABI", "4")];
    let (v, _, err) = probe(strict.to_str().unwrap(), "echo:x", &abi4);
    assert!(
        v.contains("needs walls this machine cannot raise: landlock signal scope (ABI 6, Linux 6.12) missing: signals may reach processes of the same user outside the sandbox"),
        "{err}"
    );
    assert!(v.contains("set best_effort = true"), "{v}");

    let weak = policy(
        dir.path(),
        "nopid-weak.toml",
        "description = \"x\"\nextends = \"default\"\nbest_effort = true\n[namespaces]\npid = false\n",
    );
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("a"), "echo:a").unwrap();
    let audit = dir.path().join("audit.jsonl");
    let exe = plugin("pw-probe");
    let o = pw(
        &[
            "run",
            "--plugin",
            exe.to_str().unwrap(),
            "--policy",
            weak.to_str().unwrap(),
            "--audit",
            audit.to_str().unwrap(),
            input.to_str().unwrap(),
        ],
        &abi4,
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("weaker sandbox: landlock signal scope (ABI 6, Linux 6.12) missing"),
        "{}",
        text(&o.stderr)
    );
    let record = std::fs::read_to_string(&audit).unwrap();
    assert!(
        record.contains("weakened: landlock signal scope (ABI 6, Linux 6.12) missing: signals may reach processes of the same user outside the sandbox"),
        "{record}"
    );
}

#[test]
fn test_no_landlock_at_all_is_named_and_follows_best_effort() {
    let dir = scratch();
    let strict = policy(
        dir.path(),
        "strictest.toml",
        "description = \"x\"\nextends = \"default\"\nbest_effort = false\n",
    );
    let none = [("PLUGWARDEN_LANDLOCK_ABI", "0")];
    let (v, _, _) = probe(strict.to_str().unwrap(), "echo:x", &none);
    assert!(
        v.contains("landlock file rules (ABI 1, Linux 5.13) missing: files are limited only by the minimal root"),
        "{v}"
    );
    // best_effort: runs, the minimal root still hides the host's files.
    let (v, out, err) = probe("default", "exists:/etc/passwd", &none);
    assert!(err.contains("weaker sandbox: landlock file rules"), "{err}");
    assert_eq!(
        v, "plugin_error: missing: No such file or directory (os error 2)",
        "{out}"
    );
}

#[test]
fn test_policy_min_abi_above_this_kernel_is_refused_whatever_best_effort_says() {
    if !kernel_has_abi(3) {
        return;
    }
    let dir = scratch();
    let p = policy(
        dir.path(),
        "floor.toml",
        "description = \"x\"\nextends = \"default\"\nbest_effort = true\n[landlock]\nmin_abi = 4\n",
    );
    let (v, _, _) = probe(
        p.to_str().unwrap(),
        "echo:x",
        &[("PLUGWARDEN_LANDLOCK_ABI", "3")],
    );
    assert_eq!(
        v,
        format!(
            "plugwarden: policy {} needs Landlock ABI 4 (Linux 6.7) by its [landlock] min_abi; this kernel offers ABI 3: run on a newer kernel or lower min_abi",
            p.display()
        )
    );
    let (v, out, _) = probe(
        p.to_str().unwrap(),
        "echo:x",
        &[("PLUGWARDEN_LANDLOCK_ABI", "4")],
    );
    assert_eq!((v.as_str(), out.as_str()), ("ok", "x"));
}

#[test]
fn test_policy_min_abi_out_of_range_is_a_policy_error() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "bad.toml",
        "description = \"x\"\nextends = \"default\"\n[landlock]\nmin_abi = 9\n",
    );
    let o = pw(&["policy", "check", p.to_str().unwrap()], &[], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("landlock.min_abi = 9: give an ABI from 1 to 7"),
        "{}",
        text(&o.stderr)
    );
}

/// Without a minimal root, the private mount namespace that only holds the
/// sandbox's own /proc stands in for nothing: truncate at ABI 2 is lost.
#[test]
fn test_own_proc_mount_namespace_does_not_cover_like_a_minimal_root() {
    if !kernel_has_abi(3) {
        return;
    }
    let dir = scratch();
    let p = policy(
        dir.path(),
        "nomount.toml",
        "description = \"x\"\nextends = \"default\"\nbest_effort = false\n[namespaces]\nmount = false\n",
    );
    let (v, _, err) = probe(
        p.to_str().unwrap(),
        "echo:x",
        &[("PLUGWARDEN_LANDLOCK_ABI", "2")],
    );
    assert!(
        v.contains("landlock truncate (ABI 3, Linux 6.2) missing: truncate(2) and O_TRUNC reach any file Unix permissions allow"),
        "{v}\n{err}"
    );
}

#[test]
fn test_kernel_below_the_floor_is_refused_in_one_sentence() {
    let (v, _, _) = probe("default", "echo:x", &[("PLUGWARDEN_KERNEL", "5.10")]);
    assert_eq!(
        v,
        "plugwarden: this is Linux 5.10, older than plugwarden's floor, Linux 5.15 (Ubuntu 22.04 LTS): the features the sandbox is built on may be missing, and best_effort does not stand in for a whole kernel; run on Linux 5.15 or later"
    );
    let out = doctor(&[("PLUGWARDEN_KERNEL", "5.10")]);
    assert!(
        out.contains("  kernel: 5.10 (REFUSED: this is Linux 5.10"),
        "{out}"
    );
    assert!(doctor_row(&out, "every wall").starts_with("every wall refused"));
}

#[test]
fn test_feature_the_supervisor_needs_is_refused_by_name() {
    for (switch, name, since) in [
        (
            "PLUGWARDEN_NO_USER_NOTIF",
            "seccomp user notification",
            "5.0",
        ),
        ("PLUGWARDEN_NO_PIDFD_OPEN", "pidfd_open", "5.3"),
    ] {
        let (v, _, _) = probe("default", "echo:x", &[(switch, "1")]);
        assert!(
            v.starts_with(&format!(
                "plugwarden: this kernel lacks {name} (Linux {since}+) (simulated by {switch}=1): sandboxes are refused"
            )),
            "{v}"
        );
    }
}

#[test]
fn test_log_only_mode_without_continue_is_refused() {
    let exe = plugin("pw-probe");
    let o = pw(
        &[
            "call",
            "--plugin",
            exe.to_str().unwrap(),
            "--enforce",
            "log",
        ],
        &[("PLUGWARDEN_NO_NOTIF_CONTINUE", "1")],
        b"echo:x",
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        verdict(&o),
        "plugwarden: log-only mode needs seccomp notification CONTINUE flag (Linux 5.5+), which this kernel lacks: run with the policy's own enforcement"
    );
    let out = doctor(&[("PLUGWARDEN_NO_NOTIF_CONTINUE", "1")]);
    assert!(doctor_row(&out, "log-only mode").starts_with("log-only mode refused"));
}

#[test]
fn test_without_close_range_the_child_still_holds_only_its_fds() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "proc.toml",
        "description = \"x\"\nextends = \"default\"\n[filesystem]\nread = [\"/proc\"]\n",
    );
    let (v, out, err) = probe(
        p.to_str().unwrap(),
        "fds",
        &[("PLUGWARDEN_NO_CLOSE_RANGE", "1")],
    );
    assert_eq!(v, "ok", "{err}");
    // stdio, the arena (3), the directory handle listing /proc/self/fd.
    assert_eq!(out, "0,1,2,3,4");
}

#[test]
fn test_without_noexec_seal_the_arena_still_works() {
    let exe = plugin("pw-echo");
    let big = vec![b'x'; 1 << 20];
    let o = pw(
        &["call", "--plugin", exe.to_str().unwrap()],
        &[("PLUGWARDEN_NO_MFD_NOEXEC_SEAL", "1")],
        &big,
    );
    assert_eq!(verdict(&o), "ok", "{}", text(&o.stderr));
    assert_eq!(o.stdout, big);
    let out = doctor(&[("PLUGWARDEN_NO_MFD_NOEXEC_SEAL", "1")]);
    assert!(doctor_row(&out, "arena seal").starts_with("arena seal covered fallback:"));
}

/// The daemon probe's grandchild calls setsid and tries to outlive its
/// job; without a PID namespace only the tree kill can reach it.
fn daemon_outlives(env: &[(&str, &str)], dir: &Path) -> bool {
    let p = policy(dir, "daemon.toml", DAEMON_POLICY);
    let (v, out, err) = probe(p.to_str().unwrap(), "daemon", env);
    assert_eq!(v, "ok", "{err}");
    let pid: i32 = out.trim().parse().expect("the daemon's pid");
    !gone_within(pid, std::time::Duration::from_secs(2))
}

#[test]
fn test_without_cgroup_kill_the_tree_is_killed_by_pid() {
    if !is_root() {
        println!("not applicable: the cgroup tree kill needs a cgroup; this run is not root");
        return;
    }
    let out = doctor(&[("PLUGWARDEN_NO_CGROUP_KILL", "1")]);
    let backend = out
        .lines()
        .find(|l| l.contains("cgroup backend for workers"))
        .unwrap()
        .to_string();
    if backend.contains("none (") {
        println!("not applicable: no cgroup here: {backend}");
        return;
    }
    assert!(backend.contains("tree kill by pid"), "{backend}");
    let dir = scratch();
    let alive = daemon_outlives(&[("PLUGWARDEN_NO_CGROUP_KILL", "1")], dir.path());
    assert!(!alive, "the daemon outlived its job");
}
