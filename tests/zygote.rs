//! The warm zygote (issue 15, docs/decisions/zygote.md): inputs of one
//! sandbox run one after another in the same pre-confined init, and an
//! input's process sees nothing a previous input's process left: no file
//! in /tmp, no System V IPC object, no process, no memory charged to its
//! cgroup. Judged by what a real program (C, compiled here) sees, one
//! input after another through the same `Sandbox`.

mod common;

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::{ExitInfo, ForkServer};

/// Looks at what a previous input left, then (by its input) leaves
/// something of its own behind.
const LEAVER_C: &str = r#"
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>
#define KEY 0x7077
static const char *seen(int found) { return found ? "left" : "clean"; }
static const char *res(long rc) { return rc < 0 ? "denied" : "done"; }
int main(void) {
    char c[32] = {0};
    if (read(0, c, sizeof c - 1) < 0) return 2;
    printf("pid %d; tmp %s; shm %s; msg %s; sem %s; procs", getpid(),
           seen(access("/tmp/left", F_OK) == 0), seen(shmget(KEY, 0, 0) >= 0),
           seen(msgget(KEY, 0) >= 0), seen(semget(KEY, 0, 0) >= 0));
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int pid = isdigit((unsigned char)e->d_name[0]) ? atoi(e->d_name) : 0;
        if (pid > 1 && pid != getpid()) printf(" %d", pid);
    }
    fflush(stdout);
    if (!strcmp(c, "files")) {
        FILE *f = fopen("/tmp/left", "w");
        if (!f || fputs("x", f) < 0 || fclose(f)) return 4;
    } else if (!strcmp(c, "ipc")) {
        if (shmget(KEY, 4096, IPC_CREAT | 0600) < 0 || msgget(KEY, IPC_CREAT | 0600) < 0 ||
            semget(KEY, 1, IPC_CREAT | 0600) < 0)
            return 5;
    } else if (!strcmp(c, "process")) {
        if (fork() == 0) { close(0); close(1); close(2); for (;;) pause(); }
    } else if (!strcmp(c, "attack")) {
        /* The zygote has no seccomp program of its own: its other walls
           must hold (PID 1 of the namespace, not dumpable, outside the
           plugin's Landlock domain). */
        int sigs[] = {SIGKILL, SIGTERM, SIGSTOP, SIGSEGV};
        for (int i = 0; i < 4; i++) printf("; kill(1, %d) %s", sigs[i], res(kill(1, sigs[i])));
        printf("; ptrace %s", res(ptrace(PTRACE_ATTACH, 1, 0, 0)));
        printf("; mem %s", res(open("/proc/1/mem", O_RDWR)));
        char buf[8];
        struct iovec local = {buf, sizeof buf}, remote = {(void *)0x10000, sizeof buf};
        printf("; vm_readv %s", res(process_vm_readv(1, &local, 1, &remote, 1, 0)));
    } else if (!strcmp(c, "memory")) {
        size_t size = 64 << 20;
        volatile char *p = malloc(size);
        if (!p) return 6;
        for (size_t i = 0; i < size; i += 4096) p[i] = 1;
        printf("; touched %d", p[size - 4096]);
    }
    return 0;
}
"#;

/// The policy: `default`, plus fork and System V IPC (not POSIX message
/// queues: a policy that allows them gets no zygote).
const POLICY: &str = "description = \"x\"\nextends = \"default\"\n[syscalls]\nallow = [\"@process\", \"@debug\", \"shmget\", \"shmctl\", \"msgget\", \"msgctl\", \"semget\", \"semctl\"]\n[limits]\nprocesses = 8\nmemory = \"512MiB\"\nwall = \"20s\"\n";

/// One input through a fresh process of `sb`: what it printed and how it
/// ended.
fn input(sb: &Sandbox, case: &str) -> (String, ExitInfo) {
    let mut p = sb.spawn_within(Duration::from_secs(20)).expect("spawn");
    let stdin = p.stdin.take().expect("stdin");
    nix::unistd::write(stdin.as_fd(), case.as_bytes()).expect("write the input");
    drop(stdin);
    let info = p.wait().expect("wait");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let stdout = p.stdout.take().expect("stdout");
    while let Ok(n) = nix::unistd::read(&stdout, &mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    (String::from_utf8_lossy(&out).into_owned(), info)
}

/// A scratch directory outside /tmp: the program is granted where it
/// lies, and a grant below /tmp (bound into the sandbox's private /tmp)
/// keeps a profile from having a zygote.
fn outside_tmp() -> tempfile::TempDir {
    // Re-run as uid 65534 (staged binaries), the target directory is out
    // of reach: /var/tmp stands in for it.
    let base = match std::env::var_os(BIN_DIR) {
        Some(_) => PathBuf::from("/var/tmp"),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    };
    let d = tempfile::Builder::new()
        .prefix("pw-zygote-")
        .tempdir_in(base)
        .expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

/// The pid a line starts with.
fn pid_of(line: &str) -> i32 {
    line.strip_prefix("pid ")
        .and_then(|r| r.split(';').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

const CLEAN: &str = "tmp clean; shm clean; msg clean; sem clean; procs";

#[test]
fn test_an_input_sees_nothing_a_previous_input_left() {
    let dir = outside_tmp();
    let Some(exe) = cc(dir.path(), "leaver", LEAVER_C) else {
        return;
    };
    let policy = policy(dir.path(), "leaver.toml", POLICY);
    let policy = plugwarden::policy::load(policy.to_str().unwrap()).expect("policy");
    let fs = Arc::new(ForkServer::start(&plugwarden()).expect("fork server"));
    let spec = PluginSpec {
        exe,
        args: Vec::new(),
        mode: Mode::Filter,
        env: Vec::new(),
        cwd: None,
    };
    let sb = Sandbox::new(fs, spec, Arc::new(policy), Enforce::Policy).expect("sandbox");
    let ns = sb.walls().namespaces;
    if ns & libc::CLONE_NEWPID as u64 == 0 || !sb.walls().minimal_root {
        println!(
            "not applicable: no PID namespace or minimal root here ({:?})",
            sb.walls().missing
        );
        return;
    }
    let zygote = std::env::var_os("PLUGWARDEN_NO_ZYGOTE").is_none_or(|v| v != "1");
    // A fresh sandbox: its plugin is PID 2 under its init.
    let (first, info) = input(&sb, "look");
    assert_eq!(info.code(), Some(0), "{first}");
    assert_eq!(first, format!("pid 2; {CLEAN}"));
    // The same init starts the next input: a later pid in the same
    // namespace (without the zygote, a fresh sandbox: PID 2 again).
    let (second, _) = input(&sb, "look");
    assert!(second.ends_with(CLEAN), "{second}");
    assert_eq!(pid_of(&second) > 2, zygote, "{second}");

    // Each kind of leftover, then a look from the next input.
    for case in ["process", "attack", "files", "ipc", "memory"] {
        let (out, info) = input(&sb, case);
        assert_eq!(info.code(), Some(0), "{case}: {out}");
        assert!(out.contains(CLEAN), "{case} saw a leftover: {out}");
        let (next, after) = input(&sb, "look");
        assert!(
            next.ends_with(CLEAN),
            "after {case} the next input saw a leftover: {next}"
        );
        // A process left behind is killed, and the zygote serves the next
        // input; a file in /tmp or an IPC object retires it (the next input
        // gets a fresh sandbox, PID 2).
        let reused = pid_of(&next) > 2;
        let expect_reuse = zygote && matches!(case, "process" | "attack" | "memory");
        if case == "attack" {
            // Signals to PID 1 are refused (Landlock's signal scope, ABI 6+)
            // or dropped (a namespace's init ignores them); either way the
            // zygote serves the next input (checked below).
            assert!(
                out.ends_with("; ptrace denied; mem denied; vm_readv denied"),
                "the plugin reached its zygote: {out}"
            );
        }
        assert_eq!(reused, expect_reuse, "after {case}: {next}");
        if case == "memory" {
            let peak = |i: &ExitInfo| i.cgroup.and_then(|c| c.memory_peak);
            match (peak(&info), peak(&after)) {
                (Some(big), Some(small)) => {
                    assert!(big >= 64 << 20, "the 64 MiB input peaked at {big}");
                    assert!(
                        small < 32 << 20,
                        "the next input's group peaked at {small}: not fresh"
                    );
                }
                _ => println!("memory peak not measured here: {:?}", sb.walls().cgroups),
            }
        }
    }
}

#[test]
fn test_an_input_sees_nothing_a_previous_input_left_as_uid_65534() {
    if !is_root() {
        println!(
            "not applicable: switching to uid 65534 needs root; the test above runs as uid {}",
            nix::unistd::geteuid()
        );
        return;
    }
    let (dir, test_bin) = stage_binaries(&[]);
    let o = Command::new(&test_bin)
        .args([
            "--exact",
            "test_an_input_sees_nothing_a_previous_input_left",
            "--nocapture",
        ])
        .env(BIN_DIR, dir.path())
        .current_dir(dir.path())
        .uid(65534)
        .gid(65534)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the test as uid 65534");
    let out = String::from_utf8_lossy(&o.stdout);
    println!("{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "the test failed as uid 65534");
    assert!(out.contains("1 passed"), "{out}");
}

/// `plugwarden run --mode filter --batch 1` over `n` inputs saying "look",
/// one worker; the outputs, in input order.
fn run_looks(dir: &Path, exe: &Path, policy: &Path, n: usize, env: &[(&str, &str)]) -> Vec<String> {
    let inputs = dir.join("in");
    let out = dir.join(format!("out-{}", env.len()));
    std::fs::create_dir_all(&inputs).expect("mkdir");
    for i in 0..n {
        std::fs::write(inputs.join(format!("{i:03}")), "look").expect("write input");
    }
    let o = Command::new(plugwarden())
        .env_remove("PLUGWARDEN_EXE")
        .envs(env.iter().copied())
        .args(["run", "--mode", "filter", "--batch", "1", "--workers", "1"])
        .arg("--plugin")
        .arg(exe)
        .arg("--policy")
        .arg(policy)
        .arg("--out")
        .arg(&out)
        .arg(&inputs)
        .output()
        .expect("plugwarden run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (0..n)
        .map(|i| {
            let name = format!("{i:03}");
            let file = std::fs::read_dir(&out)
                .expect("outputs")
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(&name))
                .unwrap_or_else(|| panic!("no output for {name}"));
            std::fs::read_to_string(file.path()).expect("read output")
        })
        .collect()
}

#[test]
fn test_a_filter_batch_runs_in_the_zygote_and_without_it_each_input_is_fresh() {
    let dir = outside_tmp();
    let Some(exe) = cc(dir.path(), "leaver", LEAVER_C) else {
        return;
    };
    let policy = policy(dir.path(), "leaver.toml", POLICY);
    let probe = plugwarden::policy::load(policy.to_str().unwrap()).expect("policy");
    let fs = Arc::new(ForkServer::start(&plugwarden()).expect("fork server"));
    let spec = PluginSpec {
        exe: exe.clone(),
        args: Vec::new(),
        mode: Mode::Filter,
        env: Vec::new(),
        cwd: None,
    };
    let sb = Sandbox::new(fs, spec, Arc::new(probe), Enforce::Policy).expect("sandbox");
    if sb.walls().namespaces & libc::CLONE_NEWPID as u64 == 0 || !sb.walls().minimal_root {
        println!(
            "not applicable: no PID namespace or minimal root here ({:?})",
            sb.walls().missing
        );
        return;
    }
    drop(sb);
    let warm = run_looks(dir.path(), &exe, &policy, 6, &[]);
    assert!(warm.iter().all(|o| o.ends_with(CLEAN)), "{warm:?}");
    let zygote = std::env::var_os("PLUGWARDEN_NO_ZYGOTE").is_none_or(|v| v != "1");
    if zygote {
        // One worker slot: after the first, the inputs run in its zygote.
        assert!(warm.iter().skip(1).any(|o| pid_of(o) > 2), "{warm:?}");
    }
    let cold = run_looks(
        dir.path(),
        &exe,
        &policy,
        3,
        &[("PLUGWARDEN_NO_ZYGOTE", "1")],
    );
    assert!(
        cold.iter().all(|o| *o == format!("pid 2; {CLEAN}")),
        "{cold:?}"
    );
}
