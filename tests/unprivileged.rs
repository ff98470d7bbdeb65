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
        copy_executable(&bin, &root.join(bin.file_name().unwrap()));
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
        err.contains("needs walls this machine cannot raise: memory: no memory cgroup"),
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
        doctor_row(&String::from_utf8_lossy(&o.stdout), "namespaces ")
    };
    let line = doctor(&[]);
    let o = as_nobody_env(&s, "default", "echo:x", &[]);
    if String::from_utf8_lossy(&o.stderr).contains("user namespaces unavailable") {
        assert!(line.contains("weakened"), "{line}");
    } else {
        // The children really get them: the probe is PID 2 under an init.
        assert!(line.contains("enforced from a user namespace"), "{line}");
        assert!(line.contains("an init as PID 1"), "{line}");
    }
    let line = doctor(&[("PLUGWARDEN_NO_USERNS", "1")]);
    assert!(
        line.contains("weakened none (disabled by PLUGWARDEN_NO_USERNS=1)"),
        "{line}"
    );
}

fn doctor_as_nobody(s: &Staged, env: &[(&str, &str)]) -> String {
    let o = Command::new(s.root.join("plugwarden"))
        .arg("doctor")
        .uid(65534)
        .gid(65534)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const FORK_BOMB_POLICY: &str = "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"fork\", \"wait4\"]\n[limits]\nprocesses = 64\n";

#[test]
fn test_unprivileged_fork_bomb_stops_at_the_process_limit() {
    let Some(s) = stage() else { return };
    let p = policy(&s.root, "bomb.toml", FORK_BOMB_POLICY);
    let o = as_nobody_env(&s, p.to_str().unwrap(), "forkbomb", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    if err.contains("user namespaces unavailable") {
        println!("not applicable: this kernel refuses unprivileged user namespaces: {err}");
        return;
    }
    assert_eq!(verdict(&o), "ok", "{err}");
    // The plugin and 64 children: RLIMIT_NPROC counts only the tasks of
    // the plugin's uid in its own user namespace.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "forked 64 then Resource temporarily unavailable (os error 11)"
    );
    let out = doctor_as_nobody(&s, &[]);
    if out.contains("cgroup backend for workers: none") {
        assert!(
            doctor_row(&out, "process count").starts_with(
                "process count enforced RLIMIT_NPROC in the plugin's own user namespace"
            ),
            "{out}"
        );
    }
}

#[test]
fn test_unprivileged_without_per_userns_nproc_the_process_limit_is_named() {
    let Some(s) = stage() else { return };
    let env = [("PLUGWARDEN_NO_NPROC_USERNS", "1")];
    let out = doctor_as_nobody(&s, &env);
    if !out.contains("cgroup backend for workers: none") {
        println!("not applicable: uid 65534 has a cgroup here");
        return;
    }
    assert!(
        doctor_row(&out, "process count").starts_with("process count weakened"),
        "{out}"
    );
    // Refused rather than run without a limit (a best_effort run would
    // let the bomb reach its own cap of 1000).
    let p = policy(
        &s.root,
        "bomb-strict.toml",
        &FORK_BOMB_POLICY.replacen("[syscalls]", "best_effort = false\n[syscalls]", 1),
    );
    let o = as_nobody_env(&s, p.to_str().unwrap(), "forkbomb", &env);
    let v = verdict(&o);
    assert!(
        v.contains("process count: no pids cgroup")
            && v.contains("limits.processes = 64 is not enforced"),
        "{v}"
    );
}

#[test]
fn test_unprivileged_memory_verdict_without_a_memory_cgroup() {
    let Some(s) = stage() else { return };
    let out = doctor_as_nobody(&s, &[]);
    if !doctor_row(&out, "memory").starts_with("memory weakened") {
        println!("not applicable: uid 65534 has a memory cgroup here");
        return;
    }
    let o = as_nobody_env(&s, "default", "alloc:2000", &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("weaker sandbox: memory: no memory cgroup"),
        "{err}"
    );
    assert!(
        verdict(&o).starts_with("memory: address-space limit reached"),
        "{err}"
    );
}

#[test]
fn test_unprivileged_doctor_table_matches_what_the_tests_observe() {
    let Some(s) = stage() else { return };
    let out = doctor_as_nobody(&s, &[]);
    assert!(
        out.contains("walls on this machine, without root (uid 65534):"),
        "{out}"
    );
    if out.contains("user namespaces: max") && out.contains("not usable") {
        println!("not applicable: no unprivileged user namespaces here");
        return;
    }
    // Observed by the tests above and in this file: the namespaces and
    // PID 1, the kept uid, Landlock, seccomp.
    for (wall, want) in [
        (
            "namespaces",
            "namespaces enforced from a user namespace of the plugin's own",
        ),
        (
            "identity drop",
            "identity drop weakened the plugin keeps this user's uid",
        ),
        ("seccomp allowlist", "seccomp allowlist enforced"),
        ("landlock files", "landlock files enforced"),
    ] {
        assert!(
            doctor_row(&out, wall).starts_with(want),
            "{}",
            doctor_row(&out, wall)
        );
    }
    if out.contains("cgroup backend for workers: none") {
        assert!(
            doctor_row(&out, "tree kill").starts_with("tree kill enforced the PID namespace"),
            "{out}"
        );
    }
    // Without user namespaces: no namespaces, and nothing kills a tree.
    let out = doctor_as_nobody(&s, &[("PLUGWARDEN_NO_USERNS", "1")]);
    assert!(
        doctor_row(&out, "namespaces").starts_with("namespaces weakened"),
        "{out}"
    );
    if out.contains("cgroup backend for workers: none") {
        assert!(
            doctor_row(&out, "tree kill").starts_with("tree kill weakened"),
            "{out}"
        );
        assert!(
            doctor_row(&out, "process count").starts_with("process count weakened"),
            "{out}"
        );
    }
}

/// A cgroup v2 subtree made by root and handed to uid 65534, as systemd's
/// `Delegate=yes` does: the subtree, and a leaf in it where the host runs.
struct Delegated {
    subtree: PathBuf,
    leaf: PathBuf,
}

impl Delegated {
    fn make() -> Option<Delegated> {
        let mount = [
            Path::new("/sys/fs/cgroup"),
            Path::new("/sys/fs/cgroup/unified"),
        ]
        .into_iter()
        .find(|m| m.join("cgroup.controllers").exists())?;
        let subtree = mount.join(format!("pw-delegated-{}", std::process::id()));
        std::fs::create_dir(&subtree).ok()?;
        // Hand down what the mount offers of memory and pids (none here,
        // where the cgroup2 mount has only hugetlb).
        let offered = std::fs::read_to_string(subtree.join("cgroup.controllers")).unwrap();
        for c in ["memory", "pids"] {
            if offered.split_whitespace().any(|o| o == c) {
                let _ = std::fs::write(subtree.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
        let leaf = subtree.join("host");
        std::fs::create_dir(&leaf).unwrap();
        for dir in [&subtree, &leaf] {
            for f in [
                "",
                "cgroup.procs",
                "cgroup.subtree_control",
                "cgroup.threads",
            ] {
                let path = dir.join(f);
                std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            }
        }
        Some(Delegated { subtree, leaf })
    }

    /// `plugwarden ARGS` as uid 65534, started inside the leaf.
    fn run(&self, s: &Staged, args: &[&str], input: &str) -> std::process::Output {
        let procs = std::ffi::CString::new(
            self.leaf
                .join("cgroup.procs")
                .as_os_str()
                .as_encoded_bytes(),
        )
        .unwrap();
        let mut cmd = Command::new(s.root.join("plugwarden"));
        cmd.current_dir(&s.root).env_remove("PLUGWARDEN_EXE");
        // SAFETY: open/write/close/setgroups/setgid/setuid only, on data
        // prepared before the fork: join the leaf as root, then drop.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(65534) != 0
                    || libc::setuid(65534) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        if args[0] == "doctor" {
            return cmd.args(args).output().unwrap();
        }
        call_with(cmd, args, input.as_bytes())
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.leaf);
        if let Ok(entries) = std::fs::read_dir(&self.subtree) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.subtree);
    }
}

#[test]
fn test_unprivileged_host_uses_a_delegated_cgroup_v2_subtree() {
    let Some(s) = stage() else { return };
    let Some(d) = Delegated::make() else {
        println!("not applicable: no cgroup v2 mount where root can make a subtree to delegate");
        return;
    };
    let o = d.run(&s, &["doctor"], "");
    let out = String::from_utf8_lossy(&o.stdout);
    let backend = out
        .lines()
        .find(|l| l.contains("cgroup backend for workers"))
        .unwrap();
    if backend.contains("cgroup v1") {
        println!("not applicable: uid 65534 has writable v1 cgroups here: {backend}");
        return;
    }
    assert!(
        backend.contains(&format!("cgroup v2 at {}", d.subtree.display()))
            && backend.contains("(delegated to this user)"),
        "{backend}"
    );
    // The tree kill: without a PID namespace only cgroup.kill reaches a
    // grandchild that called setsid.
    assert!(backend.contains("tree kill cgroup.kill"), "{backend}");
    assert!(doctor_row(&out, "tree kill").starts_with("tree kill enforced cgroup.kill"));
    let p = policy(&s.root, "daemon.toml", DAEMON_POLICY);
    let probe = s.root.join("pw-probe");
    let args = [
        "--plugin",
        probe.to_str().unwrap(),
        "--policy",
        p.to_str().unwrap(),
    ];
    let o = d.run(&s, &args, "daemon");
    assert_eq!(verdict(&o), "ok", "{}", String::from_utf8_lossy(&o.stderr));
    let pid: i32 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(
        gone_within(pid, std::time::Duration::from_secs(2)),
        "the daemon outlived its job despite the delegated cgroup"
    );

    let offered = std::fs::read_to_string(d.subtree.join("cgroup.subtree_control")).unwrap();
    for c in ["memory", "pids"] {
        let has = offered.split_whitespace().any(|o| o == c);
        assert!(
            backend.contains(&format!("{c} {}", if has { "yes" } else { "no" })),
            "{backend}"
        );
        if !has {
            println!(
                "not applicable here: the {c} controller (this cgroup v2 mount offers only {:?}); its limit is tested as root through cgroup v1",
                std::fs::read_to_string(d.subtree.parent().unwrap().join("cgroup.controllers"))
                    .unwrap()
                    .trim()
            );
        }
    }
    if offered.contains("pids") {
        let p = policy(&s.root, "bomb.toml", FORK_BOMB_POLICY);
        let args = [
            "--plugin",
            probe.to_str().unwrap(),
            "--policy",
            p.to_str().unwrap(),
        ];
        let o = d.run(&s, &args, "forkbomb");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "forked 64 then Resource temporarily unavailable (os error 11)"
        );
    }
    if offered.contains("memory") {
        let args = ["--plugin", probe.to_str().unwrap(), "--policy", "default"];
        let o = d.run(&s, &args, "alloc:2000");
        assert!(
            verdict(&o).starts_with("memory: memory limit reached (cgroup OOM kill"),
            "{}",
            verdict(&o)
        );
    }
}
