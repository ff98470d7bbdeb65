//! The faithful sandbox (issue 12): ordinary programs, written in C and
//! compiled here with gcc, behave under plugwarden as they would outside,
//! except where the policy says no. Signals a program sends itself kill it
//! as they would outside (it is not PID 1: the sandbox's init is); the
//! verdict is its own; what it leaves behind dies with the sandbox; its
//! init withstands it; and no policy can make setup hang or leave anything
//! behind, even when the host is killed in the middle of it.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Programs that end as they would outside, one case per argument.
const SIGNALS_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "abort")) abort();
    if (!strcmp(c, "segv")) raise(SIGSEGV);
    if (!strcmp(c, "alarm")) { alarm(1); pause(); }
    if (!strcmp(c, "pipe")) { int p[2]; pipe(p); close(p[0]); write(p[1], "x", 1); }
    if (!strcmp(c, "term")) kill(getpid(), SIGTERM);
    printf("carried on after %s", c);
    return 0;
}
"#;

/// The signal cases and the verdict each must end with.
const SIGNAL_CASES: [(&str, &str); 5] = [
    ("abort", "crashed: killed by SIGABRT"),
    ("segv", "crashed: killed by SIGSEGV"),
    ("alarm", "crashed: killed by SIGALRM"),
    ("pipe", "crashed: killed by SIGPIPE"),
    ("term", "crashed: killed by SIGTERM"),
];

/// A program that starts a grandchild which outlives it, and attacks on
/// the sandbox's init: signals, ptrace and its relatives, a flood of
/// orphans for it to reap.
const PROCESSES_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
static const char *res(long rc) { return rc < 0 ? strerror(errno) : "done"; }
int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "grandchild")) {
        if (fork() == 0) { if (fork() == 0) { sleep(100); _exit(0); } _exit(0); }
        wait(NULL);
        printf("left a grandchild behind");
        return 3;
    }
    if (!strcmp(c, "signal")) {
        int sigs[] = {SIGKILL, SIGTERM, SIGSTOP, SIGINT, SIGSEGV};
        for (int i = 0; i < 5; i++) printf("kill(1, %d): %s; ", sigs[i], res(kill(1, sigs[i])));
        printf("kill(-1, SIGKILL): %s; ", res(kill(-1, SIGKILL)));
        usleep(100000);
        printf("ppid %d", getppid());
        return 0;
    }
    if (!strcmp(c, "ptrace")) {
        printf("ptrace: %s; ", res(ptrace(PTRACE_ATTACH, 1, 0, 0)));
        printf("seize: %s; ", res(ptrace(PTRACE_SEIZE, 1, 0, 0)));
        char buf[8];
        struct iovec local = {buf, sizeof buf}, remote = {(void *)0x10000, sizeof buf};
        printf("vm_readv: %s; ", res(process_vm_readv(1, &local, 1, &remote, 1, 0)));
        printf("mem: %s; ", res(open("/proc/1/mem", O_RDWR)));
        printf("ppid %d", getppid());
        return 0;
    }
    if (!strcmp(c, "flood")) {
        int made = 0;
        for (int i = 0; i < 2000; i++) {
            pid_t p = fork();
            if (p == 0) { if (fork() == 0) _exit(0); _exit(0); }
            if (p > 0) { made++; waitpid(p, NULL, 0); }
        }
        for (int i = 0; i < 20; i++) if (fork() == 0) _exit(0);
        printf("flooded %d", made);
        return 0;
    }
    return 2;
}
"#;

/// A scratch directory with a copy of plugwarden in it (so that uid 65534
/// can run it, and so that its processes are recognisable by executable).
fn staged() -> (tempfile::TempDir, PathBuf) {
    let dir = scratch();
    let pw = dir.path().join("plugwarden");
    copy_executable(&plugwarden(), &pw);
    (dir, pw)
}

/// `plugwarden call --mode filter` of `exe case` under `policy`, as root or
/// (`nobody`) as uid 65534, with extra environment.
fn filter_call(
    pw: &Path,
    exe: &Path,
    case: &str,
    policy: &str,
    nobody: bool,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(pw);
    cmd.env_remove("PLUGWARDEN_EXE").envs(env.iter().copied());
    if nobody {
        cmd.uid(65534).gid(65534).current_dir(pw.parent().unwrap());
    }
    let exe = exe.to_str().unwrap();
    call_with(
        cmd,
        &[
            "--mode",
            "filter",
            "--plugin",
            exe,
            "--arg",
            case,
            "--policy",
            policy,
            "--timeout",
            "20s",
        ],
        b"",
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits up to one second for every process running one of `exes` to end.
fn gone_within_a_second(exes: &[&Path]) -> Vec<i32> {
    let until = Instant::now() + Duration::from_secs(1);
    loop {
        let left: Vec<i32> = exes.iter().flat_map(|e| running(e)).collect();
        if left.is_empty() || Instant::now() >= until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn test_signals_a_program_sends_itself_end_it_as_outside() {
    let (dir, pw) = staged();
    let Some(exe) = cc(dir.path(), "signals", SIGNALS_C) else {
        return;
    };
    let no_pidns = policy(
        dir.path(),
        "no-pidns.toml",
        "description = \"x\"\nextends = \"default\"\n[namespaces]\npid = false\n",
    );
    // The last run: a kernel without PIDFD_INFO_EXIT (before 6.15), where
    // the init's report is the plugin's status alone.
    let old_kernel = [("PLUGWARDEN_NO_PIDFD_INFO", "1")];
    let runs = [
        ("default", &[][..]),
        (no_pidns.to_str().unwrap(), &[][..]),
        ("default", &old_kernel[..]),
    ];
    for (case, expected) in SIGNAL_CASES {
        for (p, env) in runs {
            let o = filter_call(&pw, &exe, case, p, false, env);
            assert_eq!(
                verdict(&o),
                expected,
                "{case} under {p} {env:?}: {}",
                stdout(&o)
            );
        }
    }
}

#[test]
fn test_signals_a_program_sends_itself_end_it_as_outside_as_uid_65534() {
    if !is_root() {
        println!("not applicable: switching to uid 65534 needs root");
        return;
    }
    let (dir, pw) = staged();
    let Some(exe) = cc(dir.path(), "signals", SIGNALS_C) else {
        return;
    };
    // With its walls from a user namespace (the init included), and with
    // none at all (user namespaces refused: no init, the plugin is the fork
    // server's child).
    let probe = filter_call(&pw, &exe, "abort", "default", true, &[]);
    if String::from_utf8_lossy(&probe.stderr).contains("user namespaces unavailable") {
        println!("not applicable (user namespace half): this kernel refuses unprivileged user namespaces");
    }
    for env in [&[][..], &[("PLUGWARDEN_NO_USERNS", "1")][..]] {
        for (case, expected) in SIGNAL_CASES {
            let o = filter_call(&pw, &exe, case, "default", true, env);
            assert_eq!(verdict(&o), expected, "{case} {env:?}: {}", stdout(&o));
        }
    }
}

/// Runs `PROCESSES_C case` under default plus `@process` and `@debug`;
/// `None` without gcc. Returns the output and the program's path.
fn processes_call(case: &str) -> Option<(Output, PathBuf, tempfile::TempDir)> {
    let (dir, pw) = staged();
    let exe = cc(dir.path(), "processes", PROCESSES_C)?;
    let p = policy(
        dir.path(),
        "processes.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"@process\", \"@debug\"]\n[limits]\nprocesses = 32\n",
    );
    let o = filter_call(&pw, &exe, case, p.to_str().unwrap(), false, &[]);
    Some((o, exe, dir))
}

#[test]
fn test_grandchild_left_behind_dies_with_the_sandbox_and_the_verdict_is_the_programs() {
    let Some((o, exe, _dir)) = processes_call("grandchild") else {
        return;
    };
    assert_eq!(verdict(&o), "plugin_error: exit status 3", "{}", stdout(&o));
    assert_eq!(gone_within_a_second(&[&exe]), Vec::<i32>::new());
}

#[test]
fn test_init_ignores_signals_from_its_plugin() {
    let Some((o, _, _dir)) = processes_call("signal") else {
        return;
    };
    let out = stdout(&o);
    // The init is outside the plugin's Landlock domain (EPERM), and as PID
    // 1 of the namespace it ignores what would still reach it: it is alive,
    // still the plugin's parent, and the verdict is the plugin's own.
    assert_eq!(verdict(&o), "ok", "{out}");
    assert!(out.ends_with("ppid 1"), "{out}");
    assert!(out.contains("kill(-1, SIGKILL): No such process"), "{out}");
}

#[test]
fn test_init_cannot_be_traced_or_read_by_its_plugin() {
    let Some((o, _, _dir)) = processes_call("ptrace") else {
        return;
    };
    let out = stdout(&o);
    assert_eq!(verdict(&o), "ok", "{out}");
    assert_eq!(
        out,
        "ptrace: Operation not permitted; seize: Operation not permitted; \
         vm_readv: Operation not permitted; mem: Permission denied; ppid 1"
    );
}

#[test]
fn test_init_reaps_a_flood_of_orphans_and_the_host_gets_a_verdict() {
    let Some((o, exe, _dir)) = processes_call("flood") else {
        return;
    };
    assert_eq!(verdict(&o), "ok", "{}", stdout(&o));
    assert!(stdout(&o).starts_with("flooded "), "{}", stdout(&o));
    assert_eq!(gone_within_a_second(&[&exe]), Vec::<i32>::new());
}

/// A policy without a syscall that loading a program needs: the first
/// instruction that needs it is a violation (or setup fails, naming the
/// stage), well within the deadline; nothing of the road runs under the
/// policy's filter but the exec.
#[test]
fn test_policy_without_close_mmap_or_rt_sigprocmask_cannot_hang_setup() {
    let dir = scratch();
    for name in ["close", "mmap", "rt_sigprocmask"] {
        let p = policy(
            dir.path(),
            &format!("no-{name}.toml"),
            &format!(
                "description = \"x\"\nextends = \"default\"\n[syscalls]\ndeny = [\"{name}\"]\n"
            ),
        );
        let ps = p.to_str().unwrap();
        for (plugin, mode) in [("/bin/true", "filter"), ("pw-echo", "worker")] {
            let exe = if plugin.starts_with('/') {
                PathBuf::from(plugin)
            } else {
                common::plugin(plugin)
            };
            let started = Instant::now();
            let o = call(
                &[
                    "--mode",
                    mode,
                    "--plugin",
                    exe.to_str().unwrap(),
                    "--policy",
                    ps,
                    "--timeout",
                    "30s",
                ],
                b"x",
            );
            let v = verdict(&o);
            let word = v.split(':').next().unwrap_or("");
            assert!(
                ["violation", "setup_error", "ok"].contains(&word),
                "{name} {plugin}: {v}"
            );
            if word == "violation" {
                assert!(
                    v.starts_with(&format!("violation: {name}(")),
                    "{name} {plugin}: {v}"
                );
            }
            // The wall limit is 30 s: ending long before it shows that
            // nothing waited for it.
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name} {plugin}: {v}"
            );
        }
    }
    // ld.so maps and closes libraries: those two are always violations.
    for name in ["close", "mmap"] {
        let p = dir.path().join(format!("no-{name}.toml"));
        let o = call(
            &[
                "--mode",
                "filter",
                "--plugin",
                "/bin/true",
                "--policy",
                p.to_str().unwrap(),
            ],
            b"",
        );
        assert!(
            verdict(&o).starts_with(&format!("violation: {name}(")),
            "{}",
            verdict(&o)
        );
    }
}

#[test]
fn test_spawn_is_bounded_by_the_job_deadline() {
    // A deadline too short for setup: the job ends at it, as a setup error
    // naming the deadline or as a wall timeout, never later.
    let o = call(
        &[
            "--mode",
            "filter",
            "--plugin",
            "/bin/true",
            "--policy",
            "default",
            "--timeout",
            "1ms",
        ],
        b"",
    );
    let v = verdict(&o);
    assert!(
        v == "timeout: wall"
            || v.contains("the deadline (setup did not finish in time)")
            || v == "ok",
        "{v}"
    );
}

/// cgroup directories a fork server made (`plugwarden-<its pid>`) that
/// still exist.
fn cgroup_dirs_of(fork_servers: &[i32]) -> Vec<PathBuf> {
    let names: Vec<String> = fork_servers
        .iter()
        .map(|p| format!("plugwarden-{p}"))
        .collect();
    walkdir::WalkDir::new("/sys/fs/cgroup")
        .max_depth(8)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .filter(|e| {
            names
                .iter()
                .any(|n| e.file_name().to_string_lossy() == n.as_str())
        })
        .map(|e| e.path().to_path_buf())
        .collect()
}

#[test]
fn test_host_killed_mid_setup_leaves_no_process_or_cgroup() {
    let (dir, pw) = staged();
    let Some(exe) = cc(dir.path(), "signals", SIGNALS_C) else {
        return;
    };
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    for i in 0..400 {
        std::fs::write(inputs.join(format!("{i:03}")), "x").unwrap();
    }
    // Each job is a fresh sandbox: the host is killed while slots are in
    // the middle of spawning, at a different moment each round.
    for round in 0..8u64 {
        let mut host = Command::new(&pw)
            .env_remove("PLUGWARDEN_EXE")
            .args(["run", "--workers", "2", "--mode", "filter", "--plugin"])
            .arg(&exe)
            .args(["--arg", "none", "--policy", "default"])
            .arg(&inputs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + round * 37));
        // The fork servers are the host's children running our copy.
        let fork_servers: Vec<i32> = running(&pw)
            .into_iter()
            .filter(|&p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit(')')
                            .next()?
                            .split_whitespace()
                            .nth(1)?
                            .parse()
                            .ok()
                    })
                    == Some(host.id() as i32)
            })
            .collect();
        host.kill().unwrap();
        host.wait().unwrap();
        let left = gone_within_a_second(&[&pw, &exe]);
        assert_eq!(left, Vec::<i32>::new(), "round {round}: still running");
        assert!(
            !fork_servers.is_empty(),
            "round {round}: no fork server seen"
        );
        assert_eq!(
            cgroup_dirs_of(&fork_servers),
            Vec::<PathBuf>::new(),
            "round {round}"
        );
    }
}

/// Execs, personality and the environment, one case per argument.
const CALLS_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    const char *c = argc > 1 ? argv[1] : "";
    char *args[] = {"true", NULL};
    char *env[] = {NULL};
    if (!strcmp(c, "execveat")) {
        syscall(SYS_execveat, AT_FDCWD, "/usr/bin/true", args, env, 0);
        printf("execveat: %s", strerror(errno));
        return 0;
    }
    if (!strcmp(c, "execve")) {
        execve("/usr/bin/true", args, env);
        printf("execve: %s", strerror(errno));
        return 0;
    }
    if (!strcmp(c, "personality")) {
        int r = personality(0xffffffff);
        printf("personality: %s", r < 0 ? strerror(errno) : "answered");
        return 0;
    }
    if (!strcmp(c, "env")) {
        for (char **e = environ; *e; e++) printf("%s\n", *e);
        return 0;
    }
    printf("started");
    return 0;
}
"#;

fn probe_call(policy: &str, input: &str) -> (String, String) {
    let o = call(
        &[
            "--plugin",
            plugin("pw-probe").to_str().unwrap(),
            "--policy",
            policy,
        ],
        input.as_bytes(),
    );
    (verdict(&o), stdout(&o))
}

#[test]
fn test_deny_execveat_and_execve_are_enforced_and_the_plugin_still_starts() {
    let (dir, pw) = staged();
    let Some(exe) = cc(dir.path(), "calls", CALLS_C) else {
        return;
    };
    for name in ["execveat", "execve"] {
        let p = policy(
            dir.path(),
            &format!("no-{name}.toml"),
            &format!(
                "description = \"x\"\nextends = \"default\"\n[syscalls]\ndeny = [\"{name}\"]\n"
            ),
        );
        let ps = p.to_str().unwrap();
        // The road's own exec is never the plugin's to make.
        let o = filter_call(&pw, &exe, "start", ps, false, &[]);
        assert_eq!(
            (verdict(&o), stdout(&o)),
            ("ok".into(), "started".into()),
            "{name}"
        );
        let o = filter_call(&pw, &exe, name, ps, false, &[]);
        assert!(
            verdict(&o).starts_with(&format!("violation: {name}(")),
            "{name}: {}",
            verdict(&o)
        );
    }
    // Without the deny, the exec passes seccomp and meets Landlock instead.
    let o = filter_call(&pw, &exe, "execveat", "default", false, &[]);
    assert_eq!(stdout(&o), "execveat: Permission denied");
}

#[test]
fn test_deny_of_exit_or_exit_group_is_refused_with_its_line() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\ndeny = [\"exit_group\"]\n",
    );
    let ps = p.to_str().unwrap();
    let o = call(
        &["--mode", "filter", "--plugin", "/bin/true", "--policy", ps],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{ps}:4:9: exit_group cannot be denied: every process ends through it"
        )),
        "{err}"
    );
}

#[test]
fn test_proc_is_the_sandboxs_own_and_default_reads_proc_self() {
    // Only the plugin (2) and its init (1) exist in its PID namespace.
    let (v, out) = probe_call("default", "listdir:/proc");
    assert_eq!(v, "ok");
    let mut pids: Vec<&str> = out
        .lines()
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    pids.sort();
    assert_eq!(pids, ["1", "2"]);
    let (v, out) = probe_call("default", "read:/proc/self/status");
    assert_eq!(v, "ok");
    assert!(out.contains("\nPid:\t2\n"), "{out}");
    assert_eq!(probe_call("default", "read:/proc/self/maps").0, "ok");
    assert_eq!(probe_call("default", "listdir:/proc/self/fd").0, "ok");
    let (v, out) = probe_call("default", "readlink:/proc/self/exe");
    assert_eq!(
        (v.as_str(), out.as_str()),
        ("ok", plugin("pw-probe").to_str().unwrap())
    );
    // strict grants no /proc: the procfs is there, Landlock denies it.
    let (v, _) = probe_call("strict", "read:/proc/self/status");
    assert_eq!(v, "plugin_error: denied: Permission denied (os error 13)");
}

#[test]
fn test_proc_grant_without_a_pid_namespace_is_withheld() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\nextends = \"default\"\n[namespaces]\npid = false\n",
    );
    let (v, _) = probe_call(p.to_str().unwrap(), "listdir:/proc");
    assert!(v.starts_with("plugin_error: denied:"), "{v}");
}

#[test]
fn test_read_root_works_read_only_with_the_sandboxs_own_proc() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\nextends = \"default\"\n[filesystem]\nread = [\"/\"]\n",
    );
    let ps = p.to_str().unwrap();
    // The host's tree (but its /tmp: the sandbox has its own there).
    let host = std::fs::read_to_string("/etc/os-release").unwrap();
    let (v, out) = probe_call(ps, "read:/etc/os-release");
    assert_eq!((v.as_str(), out.as_str()), ("ok", host.as_str()));
    let target = format!("/etc/pw-fidelity-{}", std::process::id());
    let (v, _) = probe_call(ps, &format!("write:{target}"));
    assert!(v.starts_with("plugin_error: denied:"), "{v}");
    assert!(!Path::new(&target).exists());
    let (v, out) = probe_call(ps, "listdir:/proc");
    assert_eq!(v, "ok");
    let pids = out
        .lines()
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .count();
    assert_eq!(pids, 2, "{out}");
}

#[test]
fn test_hostname_inside_is_plugwarden() {
    let (v, out) = probe_call("default", "read:/proc/sys/kernel/hostname");
    assert_eq!((v.as_str(), out.as_str()), ("ok", "plugwarden\n"));
}

#[test]
fn test_rlimits_have_hard_equal_to_soft_and_cannot_be_raised() {
    let (v, limits) = probe_call("default", "read:/proc/self/limits");
    assert_eq!(v, "ok");
    for line in limits.lines().skip(1) {
        // "Max cpu time   30   30   seconds": soft and hard are the two
        // columns after the name (which may hold spaces).
        let cols: Vec<&str> = line.split_whitespace().collect();
        let name = line.get(..26).unwrap_or(line).trim();
        if name == "Max processes" {
            continue; // not set by plugwarden (RLIMIT_NPROC counts the uid)
        }
        let n = cols.len();
        let (soft, hard) = if cols
            .last()
            .is_some_and(|u| u.chars().all(char::is_alphabetic))
        {
            (cols[n - 3], cols[n - 2])
        } else {
            (cols[n - 2], cols[n - 1])
        };
        assert_eq!(soft, hard, "{line}");
    }
    // prlimit64 with a new limit is a violation unless @resources is
    // allowed; with it, the kernel refuses anything above the hard limit.
    let (v, _) = probe_call("default", "raise");
    assert!(v.starts_with("violation: prlimit64("), "{v}");
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"@resources\"]\n",
    );
    let (v, out) = probe_call(p.to_str().unwrap(), "raise");
    assert_eq!(v, "ok");
    for part in out.split("; ") {
        assert!(
            part.ends_with(": raise Operation not permitted (os error 1), lower ok"),
            "{out}"
        );
    }
}

#[test]
fn test_errno_table_answers_personality_with_enosys() {
    let (dir, pw) = staged();
    let Some(exe) = cc(dir.path(), "calls", CALLS_C) else {
        return;
    };
    let p = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\nextends = \"default\"\n[syscalls]\nerrno = { personality = \"ENOSYS\", bpf = \"EPERM\" }\n",
    );
    let ps = p.to_str().unwrap();
    let o = filter_call(&pw, &exe, "personality", ps, false, &[]);
    assert_eq!(
        (verdict(&o), stdout(&o)),
        ("ok".into(), "personality: Function not implemented".into())
    );
    // Without the table it is a violation, as before.
    let o = filter_call(&pw, &exe, "personality", "default", false, &[]);
    assert!(
        verdict(&o).starts_with("violation: personality("),
        "{}",
        verdict(&o)
    );
    // policy explain shows the table.
    let o = Command::new(&pw)
        .args(["policy", "explain", ps])
        .output()
        .unwrap();
    // (with default's own answers, which the table extends)
    let text = stdout(&o);
    let answers = text
        .lines()
        .skip_while(|l| !l.starts_with("  errno answers"))
        .nth(1)
        .unwrap_or("");
    assert!(
        answers.contains("bpf → EPERM") && answers.contains("personality → ENOSYS"),
        "{text}"
    );
}

#[test]
fn test_environment_is_clean_by_default_and_set_by_policy_manifest_and_flags() {
    let (dir, pw) = staged();
    let Some(exe) = cc(dir.path(), "calls", CALLS_C) else {
        return;
    };
    let env_of = |plugin: &Path, policy: &str, flags: &[&str]| {
        let mut args = vec!["--mode", "filter", "--plugin", plugin.to_str().unwrap()];
        args.extend(["--arg", "env", "--policy", policy]);
        args.extend(flags);
        let mut cmd = Command::new(&pw);
        cmd.env_remove("PLUGWARDEN_EXE")
            .env("PW_HOST_ONLY", "secret")
            .env("PW_PASSED", "from the host");
        let o = call_with(cmd, &args, b"");
        assert_eq!(verdict(&o), "ok", "{}", String::from_utf8_lossy(&o.stderr));
        let mut vars: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
        vars.sort();
        vars
    };
    // Nothing of the host's: a search path and a UTF-8 locale.
    assert_eq!(
        env_of(&exe, "default", &[]),
        ["LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin"]
    );
    // The policy's table, the manifest's over it, the flags over both.
    let p = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\nextends = \"default\"\n[environment]\nset = { TZ = \"UTC\", LAYER = \"policy\" }\npass = [\"PW_PASSED\", \"PW_UNSET\"]\n",
    );
    let plugin_dir = dir.path().join("plugin");
    std::fs::create_dir(&plugin_dir).unwrap();
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        format!(
            "executable = {:?}\nmode = \"filter\"\n[environment]\nset = {{ LAYER = \"manifest\", MANIFEST = \"1\" }}\n",
            exe.display().to_string()
        ),
    )
    .unwrap();
    assert_eq!(
        env_of(
            &plugin_dir,
            p.to_str().unwrap(),
            &[
                "--env",
                "LAYER=flag",
                "--env",
                "EMPTY=",
                "--env-pass",
                "PW_HOST_ONLY"
            ]
        ),
        [
            "EMPTY=",
            "LANG=C.UTF-8",
            "LAYER=flag",
            "MANIFEST=1",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "PW_HOST_ONLY=secret",
            "PW_PASSED=from the host",
            "TZ=UTC",
        ]
    );
    // Bad names are refused, saying where.
    let o = call(
        &["--plugin", exe.to_str().unwrap(), "--env-pass", "A=B"],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        verdict(&o).contains("--env-pass A=B: \"A=B\" is not a variable name"),
        "{}",
        verdict(&o)
    );
    let o = call(
        &["--plugin", exe.to_str().unwrap(), "--env", "NOVALUE"],
        b"",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        verdict(&o).contains("--env NOVALUE: write KEY=VALUE"),
        "{}",
        verdict(&o)
    );
    std::fs::write(
        plugin_dir.join("plugin.toml"),
        format!(
            "executable = {:?}\n[environment]\nset = {{ \"BAD=KEY\" = \"1\" }}\n",
            exe.display().to_string()
        ),
    )
    .unwrap();
    let o = call(&["--plugin", plugin_dir.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        verdict(&o)
            .contains("plugin.toml: 3:9: environment.set: \"BAD=KEY\" is not a variable name"),
        "{}",
        verdict(&o)
    );
}
