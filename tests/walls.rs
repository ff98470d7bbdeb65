//! Every wall of the sandbox, crossed by a real plugin and judged by its
//! observable effect and by the verdict the host reports.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;

/// Refused by Landlock, or not even there inside the minimal root.
const HIDDEN: [&str; 2] = [
    "plugin_error: denied: Permission denied (os error 13)",
    "plugin_error: denied: No such file or directory (os error 2)",
];

#[test]
fn test_landlock_alone_denies_reading_a_visible_secret() {
    // Without the minimal root the file is there; Landlock alone refuses it.
    let dir = scratch();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = policy(
        dir.path(),
        "nomount.toml",
        "description = \"x\"\nextends = \"default\"\n[namespaces]\nmount = false\n",
    );
    let (v, out, _) = probe_call(
        p.to_str().unwrap(),
        &format!("read:{}", secret.display()),
        &[],
    );
    assert_eq!(v, "plugin_error: denied: Permission denied (os error 13)");
    assert!(!out.contains("top secret"));
}

fn probe() -> String {
    plugin("pw-probe").display().to_string()
}

fn probe_call(policy: &str, input: &str, extra: &[&str]) -> (String, String, i32) {
    let p = probe();
    let mut args = vec!["--plugin", p.as_str(), "--policy", policy];
    args.extend_from_slice(extra);
    let o = call(&args, input.as_bytes());
    (
        verdict(&o),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[test]
fn test_landlock_read_outside_allowed_paths_is_denied() {
    let dir = scratch();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    for policy in ["strict", "default"] {
        let (v, out, code) = probe_call(policy, &format!("read:{}", secret.display()), &[]);
        assert!(HIDDEN.contains(&v.as_str()), "{policy}: {v}");
        assert!(!out.contains("top secret"));
        assert_eq!(code, 1);
    }
}

#[test]
fn test_landlock_write_anywhere_is_denied_and_creates_nothing() {
    let dir = scratch();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    for policy in ["strict", "default"] {
        let target = dir.path().join(format!("pwned-{policy}"));
        let (v, _, _) = probe_call(policy, &format!("write:{}", target.display()), &[]);
        assert!(HIDDEN.contains(&v.as_str()), "{policy}: {v}");
        assert!(!target.exists(), "{policy}: the file was created");
    }
}

#[test]
fn test_seccomp_socket_is_a_violation_naming_it() {
    for policy in ["strict", "default"] {
        let (v, out, code) = probe_call(policy, "socket", &[]);
        assert_eq!(v, "violation: socket(AF_INET, SOCK_STREAM, 0)", "{policy}");
        assert!(out.is_empty());
        assert_eq!(code, 1);
    }
}

#[test]
fn test_seccomp_ptrace_of_host_is_a_violation_and_host_survives() {
    let me = std::process::id().to_string();
    let (v, _, _) = probe_call("default", &format!("ptrace:{me}"), &[]);
    assert!(v.starts_with("violation: ptrace("), "{v}");
    // The test process (an ancestor of the plugin) is still here and untraced.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(status.contains("TracerPid:\t0"));
}

#[test]
fn test_identity_and_flags_in_proc_status() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "proc.toml",
        "description = \"default plus /proc\"\nextends = \"default\"\n[filesystem]\nread = [\"/proc\"]\n",
    );
    // The host ignores SIGHUP (and Rust ignores SIGPIPE in every program).
    let mut cmd = std::process::Command::new(plugwarden());
    // SAFETY: the closure only calls signal(), which is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            Ok(())
        });
    }
    let o = call_with(
        cmd,
        &[
            "--plugin",
            probe().as_str(),
            "--policy",
            p.to_str().unwrap(),
        ],
        b"status",
    );
    assert_eq!(verdict(&o), "ok");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_else(|| panic!("{name} missing in {out}"))
    };
    assert_eq!(field("NoNewPrivs:"), ["1"]);
    assert_eq!(field("Seccomp:"), ["2"]);
    // The plugin starts with every disposition at its default and nothing
    // blocked: what it ignores is only its own SIGPIPE (pw-probe is a Rust
    // program), not the host's SIGHUP.
    assert_eq!(
        field("SigIgn:"),
        [format!("{:016x}", 1u64 << (libc::SIGPIPE - 1))]
    );
    assert_eq!(field("SigBlk:"), ["0000000000000000"]);
    if !is_root() {
        println!("not applicable: uid and capability drop need the host to run as root (this test runs as uid {})", nix::unistd::geteuid());
        return;
    }
    assert_eq!(field("Uid:"), ["65534"; 4]);
    assert_eq!(field("Gid:"), ["65534"; 4]);
    assert_eq!(field("Groups:"), Vec::<&str>::new());
    for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(field(cap), ["0000000000000000"], "{cap}");
    }
}

#[test]
fn test_only_stdio_fds_are_open_in_the_child() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "proc.toml",
        "description = \"x\"\nextends = \"default\"\n[filesystem]\nread = [\"/proc\"]\n",
    );
    let (v, out, _) = probe_call(p.to_str().unwrap(), "fds", &[]);
    assert_eq!(v, "ok");
    // 0, 1, 2, the worker's shared-memory arena (3) and the directory
    // handle used to list /proc/self/fd.
    assert_eq!(out, "0,1,2,3,4");
}

#[test]
fn test_child_is_in_a_session_of_its_own_without_terminal() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "tty.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"getsid\"]\n[filesystem]\nread = [\"/dev/tty\"]\n",
    );
    // A session of the sandbox's own, led by its init (PID 1; the plugin
    // is PID 2), which has no controlling terminal.
    let (v, out, _) = probe_call(p.to_str().unwrap(), "sid", &[]);
    assert_eq!(v, "ok");
    assert_eq!(out, "sid=1 pid=2", "not in the init's session: {out}");
    let (v, _, _) = probe_call(p.to_str().unwrap(), "tty", &[]);
    assert_eq!(
        v,
        "plugin_error: no tty: No such device or address (os error 6)"
    );
}

#[test]
fn test_memory_limit_gives_memory_verdict() {
    let (v, _, _) = probe_call("default", "alloc:1024", &["--memory", "256MiB"]);
    assert!(v.starts_with("memory: "), "{v}");
}

#[test]
fn test_cpu_limit_gives_cpu_timeout() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "cpu.toml",
        "description = \"x\"\nextends = \"strict\"\n[limits]\ncpu = \"1s\"\nwall = \"20s\"\n",
    );
    let started = Instant::now();
    let (v, _, _) = probe_call(p.to_str().unwrap(), "spin", &[]);
    assert_eq!(v, "timeout: cpu");
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[test]
fn test_sleeping_plugin_times_out_within_deadline_plus_grace() {
    let started = Instant::now();
    let (v, _, code) = probe_call("strict", "sleep", &["--timeout", "500ms"]);
    assert_eq!(v, "timeout: wall");
    assert_eq!(code, 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn test_crash_gives_crashed_with_signal() {
    let (v, _, _) = probe_call("strict", "crash", &[]);
    assert_eq!(v, "crashed: killed by SIGSEGV");
}

#[test]
fn test_plugin_error_message_reaches_the_verdict() {
    let (v, _, code) = probe_call("strict", "fail:bad input", &[]);
    assert_eq!(v, "plugin_error: refused: bad input");
    assert_eq!(code, 1);
}

#[test]
fn test_stderr_flood_does_not_block_the_job() {
    let (v, out, _) = probe_call("strict", "flood", &[]);
    assert_eq!(v, "ok");
    assert_eq!(out, "flooded");
}

/// The shipped policies answer `socket(AF_UNIX)` with EACCES (glibc's nscd
/// probe), so the hostile suite never reaches `connect`; a policy that
/// allows unix sockets still reaches no socket of the host: Landlock's
/// abstract-unix scope and the network namespace each stop it.
#[test]
fn test_unix_socket_allowed_by_policy_reaches_no_abstract_socket_of_the_host() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let name = format!("pw-walls-{}", std::process::id());
    let listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let dir = scratch();
    let p = policy(
        dir.path(),
        "unix.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"socket\", \"connect\"]\nsocket_families = [\"AF_UNIX\"]\n",
    );
    let exe = plugin("hostile-unix-abstract");
    let o = call(
        &[
            "--plugin",
            exe.to_str().unwrap(),
            "--policy",
            p.to_str().unwrap(),
        ],
        name.as_bytes(),
    );
    let v = verdict(&o);
    assert!(v.starts_with("plugin_error: connect(@abstract): "), "{v}");
    assert!(listener.accept().is_err(), "the plugin connected");
}
