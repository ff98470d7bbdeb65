//! The deeper walls: cgroups (memory attributed, processes bounded, the
//! whole tree killed) and namespaces (an empty network namespace).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::worker::Worker;
use plugwarden::ForkServer;
use plugwarden::Verdict;

fn sandbox_with(policy_text: &str) -> (Sandbox, tempfile::TempDir) {
    let dir = scratch();
    let p = policy(dir.path(), "p.toml", policy_text);
    let policy = plugwarden::policy::load(p.to_str().unwrap()).unwrap();
    let fs = Arc::new(ForkServer::start(&plugwarden()).unwrap());
    let plugin = PluginSpec {
        exe: plugin("pw-probe"),
        args: Vec::new(),
        mode: Mode::Worker,
        env: Vec::new(),
        cwd: None,
    };
    (
        Sandbox::new(fs, plugin, Arc::new(policy), Enforce::Policy).unwrap(),
        dir,
    )
}

fn applicable(sb: &Sandbox, what: &str) -> bool {
    if !sb.walls().cgroups_active {
        println!(
            "not applicable: {what} needs cgroups; {}",
            sb.walls().cgroups
        );
        return false;
    }
    true
}

fn alive(pid: i32) -> bool {
    // A zombie is not alive for this purpose.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

const PROCESSES: &str = "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"@process\"]\n[limits]\nprocesses = 16\nwall = \"5s\"\n";

#[test]
fn test_memory_limit_is_attributed_by_the_cgroup() {
    let (sb, _d) =
        sandbox_with("description = \"x\"\nextends = \"default\"\n[limits]\nmemory = \"128MiB\"\n");
    if !applicable(&sb, "an attributed OOM kill") {
        return;
    }
    let mut w = Worker::start(&sb).unwrap();
    let o = w.run_job(b"alloc:1024");
    assert_eq!(
        o.verdict,
        Verdict::Memory("memory limit reached (cgroup OOM kill, peak 128 MiB)".into())
    );
    assert!(o.max_rss_kib >= 100 * 1024, "peak {} KiB", o.max_rss_kib);
}

#[test]
fn test_fork_bomb_stops_at_process_limit_and_leaves_nothing() {
    let (sb, _d) = sandbox_with(PROCESSES);
    if !applicable(&sb, "a process limit per worker") {
        return;
    }
    // Two workers of the same uid: each gets its own 16, neither starves.
    let mut a = Worker::start(&sb).unwrap();
    let mut b = Worker::start(&sb).unwrap();
    for w in [&mut a, &mut b] {
        let o = w.run_job(b"forkbomb");
        let text = String::from_utf8_lossy(&o.output).into_owned();
        assert_eq!(o.verdict, Verdict::Ok, "{text}");
        assert!(text.starts_with("forked 16 then"), "{text}");
    }
    let fs_pid = sb.fork_server().pid();
    a.shutdown();
    b.shutdown();
    // What may stay is one idle zygote (the init the fork server keeps for
    // the profile's next input, docs/decisions/zygote.md), holding no
    // process of its own: everything a worker started is gone.
    let started = Instant::now();
    loop {
        let left = left_under_fork_server(fs_pid);
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn test_double_forked_setsid_daemon_is_gone_within_a_second() {
    // Without a PID namespace (whose init would take the daemon down with
    // it): this is the cgroup's whole-tree kill alone.
    let (sb, _d) = sandbox_with(&format!("{PROCESSES}[namespaces]\npid = false\n"));
    if !applicable(&sb, "a whole-tree kill") {
        return;
    }
    let mut w = Worker::start(&sb).unwrap();
    let o = w.run_job(b"daemon");
    assert_eq!(o.verdict, Verdict::Ok);
    let pid: i32 = String::from_utf8_lossy(&o.output).parse().unwrap();
    assert!(
        alive(pid),
        "the daemon should be running while its worker lives"
    );
    w.shutdown();
    let started = Instant::now();
    while alive(pid) {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "daemon {pid} outlived its worker"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn test_network_namespace_has_only_loopback_and_no_route() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = format!(
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"@network\"]\nsocket_families = [\"AF_INET\"]\n[network]\nconnect_tcp = [{port}]\n[filesystem]\nread = [\"/proc\"]\n[namespaces]\nmount = false\n"
    );
    let (sb, _d) = sandbox_with(&text);
    if sb.walls().namespaces & libc::CLONE_NEWNET as u64 == 0 {
        println!(
            "not applicable: no network namespace here ({:?})",
            sb.walls().missing
        );
        return;
    }
    let mut w = Worker::start(&sb).unwrap();
    // Even with Landlock allowing the port, the empty namespace has no route.
    let o = w.run_job(format!("connect:{port}").as_bytes());
    assert_eq!(
        o.verdict,
        Verdict::PluginError("denied: Network is unreachable (os error 101)".into())
    );
    assert!(listener.accept().is_err(), "the listener got a connection");
    let o = w.run_job(b"read:/proc/net/dev");
    let dev = String::from_utf8_lossy(&o.output).into_owned();
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{dev}");
    w.shutdown();
}

#[test]
fn test_pid_namespace_plugin_is_the_inits_child_and_cannot_signal_the_host() {
    let (sb, _d) = sandbox_with(
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"getsid\", \"kill\"]\n",
    );
    if sb.walls().namespaces & libc::CLONE_NEWPID as u64 == 0 {
        println!(
            "not applicable: no PID namespace here ({:?})",
            sb.walls().missing
        );
        return;
    }
    let mut w = Worker::start(&sb).unwrap();
    // PID 1 is the sandbox's init (its session leader), the plugin PID 2.
    let o = w.run_job(b"sid");
    assert_eq!(String::from_utf8_lossy(&o.output), "sid=1 pid=2");
    let me = std::process::id();
    let o = w.run_job(format!("kill:{me}").as_bytes());
    assert_eq!(
        o.verdict,
        Verdict::PluginError("denied: No such process (os error 3)".into())
    );
    w.shutdown();
}

#[test]
fn test_minimal_root_hides_host_files_and_still_runs() {
    let (sb, _d) = sandbox_with("description = \"x\"\nextends = \"default\"\n");
    if sb.walls().namespaces & libc::CLONE_NEWNS as u64 == 0 {
        println!(
            "not applicable: no minimal root here ({:?})",
            sb.walls().missing
        );
        return;
    }
    let host_tmp_file = tempfile::NamedTempFile::new_in("/tmp").unwrap();
    let mut w = Worker::start(&sb).unwrap();
    // Metadata is not mediated by Landlock, so this shows what exists at all.
    for path in [
        "/etc/passwd",
        "/home",
        "/root",
        host_tmp_file.path().to_str().unwrap(),
    ] {
        let o = w.run_job(format!("exists:{path}").as_bytes());
        assert_eq!(
            o.verdict,
            Verdict::PluginError("missing: No such file or directory (os error 2)".into()),
            "{path}"
        );
    }
    for path in [
        "/usr/lib",
        "/etc/ld.so.cache",
        "/dev/null",
        "/tmp",
        "/proc/self",
    ] {
        let o = w.run_job(format!("exists:{path}").as_bytes());
        assert_eq!(o.verdict, Verdict::Ok, "{path}");
    }
    w.shutdown();
    // And without it, the same probe sees the host's files.
    let (sb, _d) =
        sandbox_with("description = \"x\"\nextends = \"default\"\n[namespaces]\nmount = false\n");
    let mut w = Worker::start(&sb).unwrap();
    assert_eq!(w.run_job(b"exists:/etc/passwd").verdict, Verdict::Ok);
    w.shutdown();
}

#[test]
fn test_minimal_root_shows_a_granted_directory_under_tmp() {
    let data = scratch(); // under /tmp, where the private /tmp is mounted
    let file = data.path().join("granted.txt");
    std::fs::write(&file, "visible").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let text = format!(
        "description = \"x\"\nextends = \"default\"\n[filesystem]\nread = [\"{}\"]\n",
        data.path().display()
    );
    let (sb, _d) = sandbox_with(&text);
    let mut w = Worker::start(&sb).unwrap();
    let o = w.run_job(format!("read:{}", file.display()).as_bytes());
    assert_eq!(o.verdict, Verdict::Ok, "{}", o.stderr_tail);
    assert_eq!(o.output, b"visible");
    // The rest of the host's /tmp stays hidden.
    let o = w.run_job(b"exists:/tmp/.X11-unix-not-there-anyway");
    assert!(matches!(o.verdict, Verdict::PluginError(_)));
    w.shutdown();
}
