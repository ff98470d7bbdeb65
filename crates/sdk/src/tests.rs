use super::*;
use plugwarden_seccomp::{audit_arch, evaluate, CLONE_NAMESPACE_FLAGS};

const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

/// The lockdown as seccompiler built it before (a linear chain, kill
/// on mismatch), kept as the reference the emitted program is checked
/// against.
fn reference_lockdown(arch: Arch) -> seccompiler::BpfProgram {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
        SeccompFilter, SeccompRule,
    };
    let cond = |i, op, v| Cond::new(i, Len::Qword, op, v).expect("valid condition");
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in LOCKDOWN {
        if let Some(nr) = groups::number(arch, name) {
            rules.insert(nr, Vec::new());
        }
    }
    let no_exec = || {
        SeccompRule::new(vec![cond(2, Op::MaskedEq(libc::PROT_EXEC as u64), 0)])
            .expect("one condition")
    };
    for name in ["mmap", "mprotect"] {
        if let Some(nr) = groups::number(arch, name) {
            rules.insert(nr, vec![no_exec()]);
        }
    }
    if let Some(nr) = groups::number(arch, "clone") {
        let mask = CLONE_NAMESPACE_FLAGS | libc::CLONE_THREAD as u64;
        let rule = SeccompRule::new(vec![cond(0, Op::MaskedEq(mask), libc::CLONE_THREAD as u64)])
            .expect("one condition");
        rules.insert(nr, vec![rule]);
    }
    if let Some(nr) = groups::number(arch, "prctl") {
        let rule = SeccompRule::new(vec![cond(0, Op::Eq, libc::PR_SET_NAME as u64)])
            .expect("one condition");
        rules.insert(nr, vec![rule]);
    }
    let target = match arch {
        Arch::X86_64 => seccompiler::TargetArch::x86_64,
        Arch::Aarch64 => seccompiler::TargetArch::aarch64,
    };
    SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        target,
    )
    .unwrap()
    .try_into()
    .unwrap()
}

/// Argument vectors across the lockdown's rules: PROT_EXEC in argument
/// 2, clone flags with and without CLONE_THREAD and each namespace
/// flag, prctl options, and random values.
fn argument_vectors() -> Vec<[u64; 6]> {
    let high = 1u64 << 32;
    let mut v = vec![[0; 6], [u64::MAX; 6]];
    let exec = libc::PROT_EXEC as u64;
    let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    for prot in [0, rw, exec, rw | exec, high, high | exec, !exec, u64::MAX] {
        v.push([0, 4096, prot, 0x22, u64::MAX, 0]);
    }
    let thread = seccomp::PTHREAD_CLONE_FLAGS;
    let sigchld = libc::SIGCHLD as u64;
    let bare = libc::CLONE_THREAD as u64;
    for base in [thread, sigchld, 0, bare, thread | high, sigchld | high] {
        v.push([base, 0, 0, 0, 0, 0]);
        for bit in 0..64 {
            let flag = 1u64 << bit;
            if CLONE_NAMESPACE_FLAGS & flag != 0 || bit >= 32 {
                v.push([base | flag, 0, 0, 0, 0, 0]);
            }
        }
    }
    let name = libc::PR_SET_NAME as u64;
    for option in [
        name,
        name | high,
        name ^ 1,
        name + 1,
        0,
        16,
        libc::PR_SET_SECCOMP as u64,
    ] {
        v.push([option, 0x1000, 0, 0, 0, 0]);
    }
    let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
    v.extend((0..64).map(|_| std::array::from_fn(|_| rng.u64(..))));
    v
}

fn syscall_numbers(arch: Arch) -> Vec<i32> {
    let mut nrs: Vec<i32> = (0..=600).collect();
    nrs.extend([1000, 4096, -1, i32::MAX, i32::MIN, 0x4000_0000]);
    if arch == Arch::X86_64 {
        nrs.extend([0x4000_0001, 0x4000_0000 | 9, 0x4000_0000 | 56]);
    }
    nrs
}

#[test]
fn test_lockdown_emitted_matches_seccompiler_on_every_syscall_and_vector() {
    let vectors = argument_vectors();
    for arch in ARCHES {
        let new = lockdown_program_for(arch).unwrap();
        let old = reference_lockdown(arch);
        let other = audit_arch(match arch {
            Arch::X86_64 => Arch::Aarch64,
            Arch::Aarch64 => Arch::X86_64,
        });
        let mut allowed = 0;
        for audit in [audit_arch(arch), other, 0x4000_0003] {
            for nr in syscall_numbers(arch) {
                for args in &vectors {
                    let (got, want) = (
                        evaluate(&new, audit, nr, *args),
                        evaluate(&old, audit, nr, *args),
                    );
                    assert_eq!(
                        got, want,
                        "{arch:?} audit {audit:#x} nr {nr} args {args:x?}: new {got:#x}, old {want:#x}"
                    );
                    allowed += usize::from(got == RET_ALLOW);
                }
            }
        }
        // Not vacuous: both outcomes occur.
        assert!(allowed > 0 && allowed < 3 * vectors.len() * syscall_numbers(arch).len());
        println!(
            "lockdown {arch:?}: emitted {} instructions, seccompiler {}",
            new.len(),
            old.len()
        );
    }
}

#[test]
fn test_lockdown_denies_exec_memory_processes_and_other_prctl() {
    for arch in ARCHES {
        let prog = lockdown_program_for(arch).unwrap();
        let audit = audit_arch(arch);
        let run = |name: &str, args: [u64; 6]| {
            let nr = groups::number(arch, name).unwrap() as i32;
            evaluate(&prog, audit, nr, args)
        };
        let exec = libc::PROT_EXEC as u64;
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(run("read", [0; 6]), RET_ALLOW);
        assert_eq!(run("mmap", [0, 4096, 3, 0x22, 0, 0]), RET_ALLOW);
        assert_eq!(
            run("mmap", [0, 4096, 3 | exec, 0x22, 0, 0]),
            RET_KILL_PROCESS
        );
        assert_eq!(run("mprotect", [0, 4096, exec, 0, 0, 0]), RET_KILL_PROCESS);
        assert_eq!(run("clone", [thread, 0, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(
            run("clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            RET_KILL_PROCESS
        );
        let ns = thread | libc::CLONE_NEWUSER as u64;
        assert_eq!(run("clone", [ns, 0, 0, 0, 0, 0]), RET_KILL_PROCESS);
        assert_eq!(
            run("prctl", [libc::PR_SET_NAME as u64, 0, 0, 0, 0, 0]),
            RET_ALLOW
        );
        let dumpable = libc::PR_SET_DUMPABLE as u64;
        assert_eq!(run("prctl", [dumpable, 0, 0, 0, 0, 0]), RET_KILL_PROCESS);
        assert_eq!(run("openat", [0; 6]), RET_KILL_PROCESS);
        assert_eq!(run("execve", [0; 6]), RET_KILL_PROCESS);
    }
}

/// Forks a child that sets no_new_privs, installs the lockdown and
/// makes one syscall (`what`), then `_exit(0)`; returns its wait
/// status.
fn install_lockdown_in_child_and(what: &str) -> i32 {
    let prog = lockdown_program().unwrap();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    let path = c"/dev/null";
    // SAFETY: the child makes raw syscalls only and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: integer-only prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            // SAFETY: _exit is async-signal-safe and skips the harness.
            unsafe { libc::_exit(10) };
        }
        // SAFETY: `fprog` points into `prog`, alive in this child.
        let rc =
            unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) };
        if rc != 0 {
            // SAFETY: as above.
            unsafe { libc::_exit(11) };
        }
        let (prot, flags) = (
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        );
        // SAFETY: each arm is one raw syscall with integer arguments
        // or a pointer to a static string; anonymous mappings touch
        // no existing memory.
        let rc = unsafe {
            match what {
                "getpid" => libc::syscall(libc::SYS_getpid),
                "mmap" => libc::syscall(libc::SYS_mmap, 0, 4096, prot, flags, -1, 0),
                "mmap-exec" => libc::syscall(
                    libc::SYS_mmap,
                    0,
                    4096,
                    prot | libc::PROT_EXEC,
                    flags,
                    -1,
                    0,
                ),
                "openat" => libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), 0),
                _ => -1,
            }
        };
        // SAFETY: as above.
        unsafe { libc::_exit(if rc < 0 { 12 } else { 0 }) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child into a stack integer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

#[test]
fn test_lockdown_installed_allows_getpid_mmap_and_kills_openat_exec_mmap() {
    for ok in ["getpid", "mmap"] {
        let status = install_lockdown_in_child_and(ok);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{ok}: status {status:#x}"
        );
    }
    for denied in ["openat", "mmap-exec"] {
        let status = install_lockdown_in_child_and(denied);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "{denied}: status {status:#x}"
        );
    }
}
