//! The wire from the host's side: hostile replies end in verdicts, the two
//! reference plugins (Rust and Python) pass the same protocol test, and a
//! filter (an existing program) works too.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::worker::Worker;
use plugwarden::ForkServer;
use plugwarden::Verdict;

fn sandbox(exe: std::path::PathBuf, args: &[&str], policy: &str, mode: Mode) -> Sandbox {
    sandbox_with_wall(exe, args, policy, mode, Duration::from_secs(2))
}

fn sandbox_with_wall(
    exe: std::path::PathBuf,
    args: &[&str],
    policy: &str,
    mode: Mode,
    wall: Duration,
) -> Sandbox {
    let fs = Arc::new(ForkServer::start(&plugwarden()).unwrap());
    let mut policy = plugwarden::policy::load(policy).unwrap();
    policy.limits.wall = wall;
    let plugin = PluginSpec {
        exe,
        args: args.iter().map(|s| s.to_string()).collect(),
        mode,
        env: Vec::new(),
        cwd: None,
    };
    Sandbox::new(fs, plugin, Arc::new(policy), Enforce::Policy).unwrap()
}

fn host_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// The host-memory test measures this process's RSS, which the tests here
/// that move megabytes would inflate when run beside it: they share this
/// lock, the memory test takes it alone.
static MEMORY: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn big_allocations() -> std::sync::RwLockReadGuard<'static, ()> {
    MEMORY.read().unwrap_or_else(|p| p.into_inner())
}

fn one(sb: &Sandbox, input: &str) -> Verdict {
    let mut w = Worker::start(sb).unwrap();
    let v = w.run_job(input.as_bytes()).verdict;
    w.shutdown();
    v
}

#[test]
fn test_hostile_replies_end_in_protocol_error_with_bounded_memory() {
    let _alone = MEMORY.write().unwrap_or_else(|p| p.into_inner());
    let sb = sandbox(plugin("pw-probe"), &[], "strict", Mode::Worker);
    let before = host_rss_kib();
    let cases = [
        ("garbage", "protocol_error: bad frame magic"),
        (
            "hugelen",
            "protocol_error: frame of 4294967295 bytes exceeds the limit",
        ),
        (
            "wrongid",
            "protocol_error: the plugin answered job 999999 which was never sent",
        ),
        (
            "exit",
            "protocol_error: the plugin exited with status 3 before answering",
        ),
    ];
    for (input, want) in cases {
        let v = one(&sb, input).to_string();
        assert!(v.starts_with(want), "{input}: {v}");
    }
    assert!(host_rss_kib() < before + 32 * 1024, "host memory grew");
}

#[test]
fn test_silent_plugin_never_saying_hello_is_protocol_error() {
    let sb = sandbox(plugin("pw-probe"), &["silent"], "strict", Mode::Worker);
    assert_eq!(
        one(&sb, "echo:x"),
        Verdict::ProtocolError("the plugin never said hello".into())
    );
}

#[test]
fn test_rust_and_python_echo_pass_the_same_protocol_test() {
    let _shared = big_allocations();
    let py = repo().join("plugins/python-echo");
    let py_policy = py.join("policy.toml");
    for (exe, policy) in [
        (plugin("pw-echo"), "strict".to_string()),
        (py.join("plugin.py"), py_policy.display().to_string()),
    ] {
        let sb = sandbox(exe.clone(), &[], &policy, Mode::Worker);
        let mut w = Worker::start(&sb).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for input in [b"hello".to_vec(), Vec::new(), big] {
            let o = w.run_job(&input);
            assert_eq!(
                o.verdict,
                Verdict::Ok,
                "{}: {}",
                exe.display(),
                o.stderr_tail
            );
            assert_eq!(o.output, input, "{}", exe.display());
        }
        assert_eq!(w.jobs, 3);
        w.shutdown();
    }
}

#[test]
fn test_filter_mode_runs_an_existing_program() {
    let sb = sandbox("/usr/bin/base64".into(), &[], "default", Mode::Filter);
    let o = sb.run(b"plugwarden");
    assert_eq!(o.verdict, Verdict::Ok, "{}", o.stderr_tail);
    assert_eq!(o.output, b"cGx1Z3dhcmRlbg==\n");
    // A non-zero exit is the filter saying no.
    let sb = sandbox(
        "/usr/bin/base64".into(),
        &["--decode"],
        "default",
        Mode::Filter,
    );
    let o = sb.run(b"!!!not base64");
    assert!(
        matches!(o.verdict, Verdict::PluginError(ref m) if m.starts_with("exit status 1")),
        "{:?}",
        o.verdict
    );
}

#[test]
fn test_thousand_jobs_leave_no_zombie_and_no_process() {
    let sb = sandbox(plugin("pw-echo"), &[], "strict", Mode::Worker);
    let fs_pid = sb.fork_server().pid();
    let mut w = Worker::start(&sb).unwrap();
    let mut pids = std::collections::BTreeSet::new();
    for i in 0..1000u32 {
        if w.jobs == 100 {
            w.shutdown();
            w = Worker::start(&sb).unwrap();
        }
        pids.insert(w.pid());
        let o = w.run_job(&i.to_le_bytes());
        assert_eq!(o.verdict, Verdict::Ok);
    }
    w.shutdown();
    assert_eq!(pids.len(), 10);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "worker {pid} still exists"
        );
    }
    // Nothing left under the fork server, not even a zombie (but the one
    // idle zygote it keeps for the next worker, itself empty).
    assert_eq!(left_under_fork_server(fs_pid), Vec::<String>::new());
}

#[test]
fn test_cli_bad_input_is_usage_error_with_one_sentence() {
    let cases: [(&[&str], &str); 3] = [
        (&["--plugin", "/nonexistent/plugin"], "does not exist"),
        (&["--plugin", "/etc/passwd"], "is not executable"),
        (
            &["--plugin", "/bin/true", "--policy", "nosuch"],
            "unknown policy \"nosuch\"",
        ),
    ];
    for (args, want) in cases {
        let o = call(args, b"");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn test_cli_call_echoes_through_the_plugin_directory() {
    let dir = repo().join("plugins/echo");
    let o = call(&["--plugin", dir.to_str().unwrap()], b"round trip");
    assert_eq!(verdict(&o), "ok");
    assert_eq!(o.stdout, b"round trip");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn test_pipelined_batch_answers_in_order_and_stops_at_a_crash() {
    let sb = sandbox(plugin("pw-echo"), &[], "strict", Mode::Worker);
    let mut w = Worker::start(&sb).unwrap();
    let inputs: Vec<Vec<u8>> = (0..500u32)
        .map(|i| i.to_le_bytes().repeat(i as usize % 7))
        .collect();
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    let outcomes = w.run_batch(&refs);
    assert_eq!(outcomes.len(), 500);
    for (o, i) in outcomes.iter().zip(&inputs) {
        assert_eq!(o.verdict, Verdict::Ok);
        assert_eq!(&o.output, i);
    }
    w.shutdown();

    let sb = sandbox(plugin("pw-probe"), &[], "strict", Mode::Worker);
    let mut w = Worker::start(&sb).unwrap();
    let batch: [&[u8]; 5] = [b"echo:a", b"fail:b", b"crash", b"echo:d", b"echo:e"];
    let outcomes = w.run_batch(&batch);
    let words: Vec<&str> = outcomes.iter().map(|o| o.verdict.word()).collect();
    assert_eq!(words, ["ok", "plugin_error", "crashed"]);
    assert!(!w.is_alive());
    w.shutdown();
}

#[test]
fn test_pipelined_second_answer_blames_its_job_not_the_next() {
    let sb = sandbox(plugin("hostile-double-answer"), &[], "strict", Mode::Worker);
    let mut w = Worker::start(&sb).unwrap();
    assert_eq!(w.run_job(b"warm").verdict, Verdict::Ok); // job 1
                                                         // Jobs 2, 3, 4 in one window; job 2 answers twice.
    let window: Vec<&[u8]> = vec![b"twice 2", b"innocent", b"innocent too"];
    let outcomes = w.run_batch(&window);
    let words: Vec<&str> = outcomes.iter().map(|o| o.verdict.word()).collect();
    // Job 2 carries the blame; jobs 3 and 4 get no outcome (not run by an
    // honest worker: a pool resends them).
    assert_eq!(words, ["protocol_error"]);
    assert!(
        outcomes[0].verdict.detail().contains("after its answer"),
        "{}",
        outcomes[0].verdict.detail()
    );
    assert!(outcomes[0].output.is_empty());
    assert!(!w.is_alive());
    w.shutdown();
}

#[test]
fn test_pipelined_slow_job_late_in_window_gets_one_cpu_budget() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "cpu.toml",
        "description = \"x\"\nextends = \"strict\"\n[limits]\ncpu = \"1s\"\nwall = \"30s\"\n",
    );
    // A wall limit far above the CPU limit: on a loaded machine one second
    // of CPU can take several seconds of wall time.
    let sb = sandbox_with_wall(
        plugin("pw-probe"),
        &[],
        p.to_str().unwrap(),
        Mode::Worker,
        Duration::from_secs(30),
    );
    let mut w = Worker::start(&sb).unwrap();
    // Nine fast jobs, then one that spins: it gets one second of CPU, not
    // the ten its window would add up to (ten seconds of CPU cannot take
    // less than ten seconds of wall time).
    let mut window: Vec<&[u8]> = vec![b"echo:fast"; 9];
    window.push(b"spin");
    let outcomes = w.run_batch(&window);
    let words: Vec<&str> = outcomes.iter().map(|o| o.verdict.word()).collect();
    assert_eq!(words[..9], ["ok"; 9]);
    assert_eq!(outcomes[9].verdict.to_string(), "timeout: cpu");
    assert!(
        outcomes[9].cpu_ms < 5000,
        "the spinning job used {} ms of CPU",
        outcomes[9].cpu_ms
    );
    w.shutdown();
}

/// A worker of `hostile-arena` (with `args`) under strict, plus the two
/// resizing syscalls and the file-size limit its `resize` attack needs to
/// reach the seals (with `file_size = 0`, RLIMIT_FSIZE refuses first).
fn hostile_arena(dir: &std::path::Path, args: &[&str]) -> Sandbox {
    let p = policy(
        dir,
        "arena.toml",
        "description = \"x\"\nextends = \"strict\"\n[syscalls]\nallow = [\"ftruncate\", \"fallocate\"]\n[limits]\nfile_size = \"1GiB\"\n",
    );
    sandbox(
        plugin("hostile-arena"),
        args,
        p.to_str().unwrap(),
        Mode::Worker,
    )
}

/// The verdict and output of one fresh worker's first job.
fn first_job(sb: &Sandbox, input: &[u8]) -> (Verdict, Vec<u8>) {
    let mut w = Worker::start(sb).unwrap();
    let o = w.run_job(input);
    w.shutdown();
    (o.verdict, o.output)
}

#[test]
fn test_echo_64mib_through_the_arena_returns_identical_bytes() {
    let _shared = big_allocations();
    let sb = sandbox(plugin("pw-echo"), &[], "strict", Mode::Worker);
    assert_eq!(sb.arena_region(), Some(64 << 20));
    let input: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut w = Worker::start(&sb).unwrap();
    for _ in 0..2 {
        let o = w.run_job(&input);
        assert_eq!(o.verdict, Verdict::Ok, "{}", o.stderr_tail);
        assert!(o.output == input, "the echo differs from the input");
    }
    assert_eq!((w.arena_inputs, w.arena_parts), (2, 2));
    w.shutdown();
}

#[test]
fn test_arena_pages_do_not_count_as_the_workers_rss() {
    let _shared = big_allocations();
    // A worker that moved 48 MiB through its arena keeps those pages
    // mapped; they are shared memory, not growth, and must not trigger
    // `recycle_rss`.
    let sb = sandbox(plugin("pw-echo"), &[], "strict", Mode::Worker);
    let mut w = Worker::start(&sb).unwrap();
    let o = w.run_job(&vec![7u8; 48 << 20]);
    assert_eq!(o.verdict, Verdict::Ok, "{}", o.stderr_tail);
    assert_eq!(w.arena_parts, 1);
    let o = w.run_job(b"small");
    assert_eq!(o.verdict, Verdict::Ok);
    let rss = w.rss_bytes().expect("rss of a live worker");
    assert!(
        rss < 24 << 20,
        "worker rss {} MiB after the arena job",
        rss >> 20
    );
    w.shutdown();
}

#[test]
fn test_echo_small_job_goes_through_the_pipes() {
    let sb = sandbox(plugin("pw-echo"), &[], "strict", Mode::Worker);
    let mut w = Worker::start(&sb).unwrap();
    let o = w.run_job(b"hello");
    assert_eq!((o.verdict, o.output), (Verdict::Ok, b"hello".to_vec()));
    assert_eq!((w.arena_inputs, w.arena_parts), (0, 0));
    w.shutdown();
}

#[test]
fn test_python_echo_big_input_goes_through_the_pipes() {
    let _shared = big_allocations();
    let py = repo().join("plugins/python-echo");
    let policy = py.join("policy.toml");
    let sb = sandbox(
        py.join("plugin.py"),
        &[],
        policy.to_str().unwrap(),
        Mode::Worker,
    );
    assert!(
        sb.arena_region().is_some(),
        "python-echo is offered an arena"
    );
    let input = vec![0x5a; 8 << 20];
    let mut w = Worker::start(&sb).unwrap();
    let o = w.run_job(&input);
    assert_eq!(o.verdict, Verdict::Ok, "{}", o.stderr_tail);
    assert!(o.output == input, "the echo differs from the input");
    assert_eq!((w.arena_inputs, w.arena_parts), (0, 0));
    w.shutdown();
}

#[test]
fn test_arena_resize_by_plugin_is_refused_and_host_keeps_working() {
    let dir = scratch();
    let sb = hostile_arena(dir.path(), &[]);
    let mut w = Worker::start(&sb).unwrap();
    let o = w.run_job(b"resize");
    assert_eq!(o.verdict, Verdict::Ok, "{}", o.stderr_tail);
    assert_eq!(
        String::from_utf8_lossy(&o.output),
        "ftruncate 0: EPERM (Operation not permitted); \
         ftruncate grow: EPERM (Operation not permitted); \
         fallocate grow: EPERM (Operation not permitted)"
    );
    let o = w.run_job(b"fill 7 100000");
    assert_eq!((o.verdict, o.output), (Verdict::Ok, vec![7; 100_000]));
    assert_eq!(w.arena_parts, 2);
    w.shutdown();
}

#[test]
fn test_arena_answer_inside_output_region_is_ok() {
    let dir = scratch();
    let sb = hostile_arena(dir.path(), &[]);
    let region = sb.arena_region().unwrap() as u64;
    let (v, out) = first_job(&sb, format!("slice {} 10", 2 * region - 10).as_bytes());
    assert_eq!((v, out), (Verdict::Ok, vec![0; 10]));
}

#[test]
fn test_arena_answer_outside_output_region_is_protocol_error() {
    let dir = scratch();
    let sb = hostile_arena(dir.path(), &[]);
    let region = sb.arena_region().unwrap() as u64;
    let lies = [
        (0, 10),              // the input region
        (region - 1, 10),     // straddles the regions
        (2 * region - 5, 10), // runs past the end
        (region, u64::MAX),   // offset + len overflows
        (u64::MAX, 2),        // offset + len overflows
        (region, 1 << 40),    // larger than the arena
    ];
    for (offset, len) in lies {
        let (v, out) = first_job(&sb, format!("slice {offset} {len}").as_bytes());
        assert_eq!(v.word(), "protocol_error", "slice {offset} {len}: {v:?}");
        assert!(
            v.detail().contains("outside the region"),
            "slice {offset} {len}: {}",
            v.detail()
        );
        assert!(out.is_empty());
    }
}

#[test]
fn test_arena_answer_never_offered_is_protocol_error() {
    let dir = scratch();
    let unannounced = hostile_arena(dir.path(), &["unannounced"]);
    let (v, _) = first_job(&unannounced, b"fill 1 10");
    assert_eq!(v.word(), "protocol_error");
    assert!(v.detail().contains("did not offer"), "{}", v.detail());

    // Pipelined jobs never offer the arena, even to a plugin that maps it.
    let announced = hostile_arena(dir.path(), &[]);
    let mut w = Worker::start(&announced).unwrap();
    let outcomes = w.run_batch(&[b"fill 1 10"]);
    assert_eq!(outcomes[0].verdict.word(), "protocol_error");
    assert!(outcomes[0].verdict.detail().contains("did not offer"));
    w.shutdown();
}

#[test]
fn test_arena_rewritten_after_answer_leaves_returned_output_unchanged() {
    let _shared = big_allocations();
    let dir = scratch();
    let sb = hostile_arena(dir.path(), &[]);
    let mut w = Worker::start(&sb).unwrap();
    let first = w.run_job(b"fill 65 1048576");
    assert_eq!(first.verdict, Verdict::Ok, "{}", first.stderr_tail);
    let second = w.run_job(b"rewrite 66");
    assert_eq!(second.output, b"rewritten");
    assert!(first.output == vec![65; 1 << 20], "the host's copy changed");
    w.shutdown();
}

#[test]
fn test_pipelined_batch_gives_the_arena_to_one_big_input_only() {
    let _shared = big_allocations();
    let sb = sandbox(plugin("pw-echo"), &[], "strict", Mode::Worker);
    let mut w = Worker::start(&sb).unwrap();
    let big_a = vec![0xa1; 1 << 20];
    let big_b = vec![0xb2; 1 << 20];
    let inputs: [&[u8]; 4] = [b"small", &big_a, &big_b, b"tail"];
    let outcomes = w.run_batch(&inputs);
    let outputs: Vec<&[u8]> = outcomes.iter().map(|o| o.output.as_slice()).collect();
    assert_eq!(outputs, inputs);
    assert_eq!((w.arena_inputs, w.arena_parts), (1, 1));
    w.shutdown();
}
