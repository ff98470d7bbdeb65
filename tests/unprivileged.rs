//! The host itself started as an ordinary user (uid 65534): no identity
//! change is possible, but no_new_privs, Landlock and seccomp still apply
//! and the escapes still fail. The binaries are copied into a fresh
//! world-readable directory first: the checkout may sit where uid 65534
//! cannot enter.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

struct Staged {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn stage() -> Option<Staged> {
    if !is_root() {
        println!("not applicable: switching the host to uid 65534 needs root; this run is already uid {}", nix::unistd::geteuid());
        return None;
    }
    let dir = scratch();
    let root = dir.path().to_path_buf();
    for bin in [plugwarden(), plugin("pw-probe")] {
        let dst = root.join(bin.file_name().unwrap());
        std::fs::copy(&bin, &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    Some(Staged { _dir: dir, root })
}

fn as_nobody(s: &Staged, policy: &str, input: &str) -> (String, String) {
    let o = as_nobody_env(s, policy, input, &[]);
    (verdict(&o), String::from_utf8_lossy(&o.stdout).into_owned())
}

fn as_nobody_env(
    s: &Staged,
    policy: &str,
    input: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = Command::new(s.root.join("plugwarden"));
    cmd.uid(65534)
        .gid(65534)
        .current_dir(&s.root)
        .env_remove("PLUGWARDEN_EXE")
        .envs(env.iter().copied());
    let probe = s.root.join("pw-probe");
    call_with(
        cmd,
        &["--plugin", probe.to_str().unwrap(), "--policy", policy],
        input.as_bytes(),
    )
}

fn secret(root: &Path) -> PathBuf {
    let p = root.join("secret.txt");
    std::fs::write(&p, "top secret").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

#[test]
fn test_unprivileged_host_escapes_still_fail() {
    let Some(s) = stage() else { return };
    let secret = secret(&s.root);
    let writable = s.root.join("w");
    std::fs::create_dir(&writable).unwrap();
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
    let target = writable.join("pwned");
    for policy in ["strict", "default"] {
        // Denied by Landlock, or not even there inside the minimal root.
        let hidden = [
            "plugin_error: denied: Permission denied (os error 13)",
            "plugin_error: denied: No such file or directory (os error 2)",
        ];
        let (v, out) = as_nobody(&s, policy, &format!("read:{}", secret.display()));
        assert!(hidden.contains(&v.as_str()), "{policy}: {v}");
        assert!(!out.contains("top secret"));
        let (v, _) = as_nobody(&s, policy, &format!("write:{}", target.display()));
        assert!(hidden.contains(&v.as_str()), "{policy}: {v}");
        assert!(!target.exists());
        let (v, _) = as_nobody(&s, policy, "socket");
        assert_eq!(v, "violation: socket(AF_INET, SOCK_STREAM, 0)", "{policy}");
        let (v, _) = as_nobody(&s, policy, "echo:still works");
        assert_eq!(v, "ok");
    }
}

#[test]
fn test_unprivileged_host_child_has_nnp_and_seccomp() {
    let Some(s) = stage() else { return };
    let p = policy(&s.root, "proc.toml", "description = \"x\"\nextends = \"default\"\n[filesystem]\nread = [\"/proc\"]\n[namespaces]\nmount = false\n");
    let (v, out) = as_nobody(&s, p.to_str().unwrap(), "status");
    assert_eq!(v, "ok");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("Uid:\t65534\t65534\t65534\t65534"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
}

#[test]
fn test_unprivileged_host_gets_namespaces_from_a_user_namespace() {
    let Some(s) = stage() else { return };
    let o = as_nobody_env(&s, "default", "exists:/etc/passwd", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("user namespaces unavailable") {
        println!("not applicable: this kernel refuses unprivileged user namespaces: {err}");
        return;
    }
    // The minimal root, built inside the plugin's own user namespace.
    assert_eq!(
        verdict(&o),
        "plugin_error: missing: No such file or directory (os error 2)",
        "{err}"
    );
    let (v, out) = as_nobody(&s, "default", "echo:inside");
    assert_eq!((v.as_str(), out.as_str()), ("ok", "inside"));
}

#[test]
fn test_unprivileged_host_without_user_namespaces_reports_the_fallback() {
    let Some(s) = stage() else { return };
    // Simulates a distribution that blocks user namespaces.
    let o = as_nobody_env(
        &s,
        "default",
        "exists:/etc/passwd",
        &[("PLUGWARDEN_NO_USERNS", "1")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "weaker sandbox: user namespaces unavailable (disabled by PLUGWARDEN_NO_USERNS=1)"
        ),
        "{err}"
    );
    assert_eq!(
        verdict(&o),
        "ok",
        "no minimal root: the host's /etc/passwd is visible (but not readable)"
    );
    let (v, _) = as_nobody(&s, "default", "socket");
    assert_eq!(v, "violation: socket(AF_INET, SOCK_STREAM, 0)");
}

#[test]
fn test_unprivileged_policy_without_best_effort_is_refused_naming_the_wall() {
    let Some(s) = stage() else { return };
    // As uid 65534 there is no cgroup to create here.
    let p = policy(
        &s.root,
        "strictest.toml",
        "description = \"x\"\nextends = \"default\"\nbest_effort = false\n",
    );
    let o = as_nobody_env(&s, p.to_str().unwrap(), "echo:x", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    if !err.contains("needs walls") {
        println!(
            "not applicable: this machine gives uid 65534 every wall (cgroups delegated): {err}"
        );
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("needs walls this machine cannot raise: cgroups:"),
        "{err}"
    );
    assert!(err.contains("set best_effort = true"), "{err}");
}

#[test]
fn test_unprivileged_host_plugin_is_the_child_of_its_namespaces_init() {
    let Some(s) = stage() else { return };
    let p = policy(
        &s.root,
        "sid.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"getsid\"]\n",
    );
    let o = as_nobody_env(&s, p.to_str().unwrap(), "sid", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("user namespaces unavailable") {
        println!("not applicable: this kernel refuses unprivileged user namespaces: {err}");
        return;
    }
    assert_eq!(verdict(&o), "ok", "{err}");
    // PID 1 is the sandbox's init (its session leader), the plugin PID 2.
    assert_eq!(String::from_utf8_lossy(&o.stdout), "sid=1 pid=2");
}

#[test]
fn test_unprivileged_doctor_describes_the_namespaces_children_get() {
    let Some(s) = stage() else { return };
    let doctor = |env: &[(&str, &str)]| {
        let o = Command::new(s.root.join("plugwarden"))
            .uid(65534)
            .gid(65534)
            .current_dir(&s.root)
            .envs(env.iter().copied())
            .arg("doctor")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("namespaces "))
            .unwrap_or("")
            .to_string()
    };
    let line = doctor(&[]);
    let o = as_nobody_env(&s, "default", "echo:x", &[]);
    if String::from_utf8_lossy(&o.stderr).contains("user namespaces unavailable") {
        assert!(line.contains("weakened"), "{line}");
    } else {
        // The children really get them: the probe is PID 2 under an init.
        assert!(line.contains("enforced   from a user namespace"), "{line}");
        assert!(line.contains("an init as PID 1"), "{line}");
    }
    let line = doctor(&[("PLUGWARDEN_NO_USERNS", "1")]);
    assert!(
        line.contains("weakened   none (PLUGWARDEN_NO_USERNS=1)"),
        "{line}"
    );
}
