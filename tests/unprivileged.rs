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
    let mut cmd = Command::new(s.root.join("plugwarden"));
    cmd.uid(65534).gid(65534).current_dir(&s.root).env_remove("PLUGWARDEN_EXE");
    let probe = s.root.join("pw-probe");
    let o = call_with(cmd, &["--plugin", probe.to_str().unwrap(), "--policy", policy], input.as_bytes());
    (verdict(&o), String::from_utf8_lossy(&o.stdout).into_owned())
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
        let (v, out) = as_nobody(&s, policy, &format!("read:{}", secret.display()));
        assert_eq!(v, "plugin_error: denied: Permission denied (os error 13)", "{policy}");
        assert!(!out.contains("top secret"));
        let (v, _) = as_nobody(&s, policy, &format!("write:{}", target.display()));
        assert_eq!(v, "plugin_error: denied: Permission denied (os error 13)", "{policy}");
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
    let p = policy(&s.root, "proc.toml", "description = \"x\"\nextends = \"default\"\n[filesystem]\nread = [\"/proc\"]\n");
    let (v, out) = as_nobody(&s, p.to_str().unwrap(), "status");
    assert_eq!(v, "ok");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("Uid:\t65534\t65534\t65534\t65534"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
}
