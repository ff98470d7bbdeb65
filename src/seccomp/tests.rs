use plugwarden_seccomp::{BPF_JMP_JA, BPF_JMP_JEQ_K, BPF_JMP_JGE_K, BPF_RET_K};
use seccompiler::sock_filter;

use super::*;

/// The previous compiler, seccompiler's linear chain as two programs
/// (clone3 first, then the allowlist), kept as the reference the
/// emitter is checked against.
mod reference {
    use std::collections::BTreeMap;

    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
        SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
    };

    use super::super::{ALWAYS, CLONE_NAMESPACE_FLAGS, RET_USER_NOTIF};
    use crate::policy::groups::{self, Arch};
    use crate::policy::Syscalls;

    const RET_TRACE: u32 = 0x7ff0_0000;

    fn target(arch: Arch) -> TargetArch {
        match arch {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }

    fn cond(arg: u8, len: Len, op: Op, value: u64) -> Cond {
        Cond::new(arg, len, op, value).unwrap()
    }

    fn rules(sys: &Syscalls, processes: u64, arch: Arch) -> BTreeMap<i64, Vec<SeccompRule>> {
        let mut map = BTreeMap::new();
        let names = sys
            .allow
            .iter()
            .map(String::as_str)
            .chain(ALWAYS.iter().copied());
        if let Some(nr) = groups::number(arch, "seccomp") {
            let rule = SeccompRule::new(vec![
                cond(
                    0,
                    Len::Dword,
                    Op::Eq,
                    u64::from(libc::SECCOMP_SET_MODE_FILTER),
                ),
                cond(1, Len::Qword, Op::Eq, 0),
            ])
            .unwrap();
            map.insert(nr, vec![rule]);
        }
        for name in names {
            if name == "seccomp" || name == "clone3" {
                continue;
            }
            if processes == 0 && matches!(name, "fork" | "vfork") {
                continue;
            }
            let Some(nr) = groups::number(arch, name) else {
                continue;
            };
            let one = |c: Cond| SeccompRule::new(vec![c]).unwrap();
            let rules = match name {
                "ioctl" => {
                    if sys.ioctl.is_empty() {
                        continue;
                    }
                    sys.ioctl
                        .iter()
                        .map(|&r| one(cond(1, Len::Dword, Op::Eq, u64::from(r))))
                        .collect()
                }
                "socket" | "socketpair" if !sys.socket_families.is_empty() => sys
                    .socket_families
                    .iter()
                    .map(|&f| one(cond(0, Len::Dword, Op::Eq, u64::from(f))))
                    .collect(),
                "memfd_create" => vec![one(cond(1, Len::Dword, Op::MaskedEq(8), 8))],
                "prlimit64" if !sys.allow.contains("setrlimit") => {
                    vec![one(cond(2, Len::Qword, Op::Eq, 0))]
                }
                "clone" => {
                    let thread = libc::CLONE_THREAD as u64;
                    vec![one(if processes == 0 {
                        cond(
                            0,
                            Len::Qword,
                            Op::MaskedEq(CLONE_NAMESPACE_FLAGS | thread),
                            thread,
                        )
                    } else {
                        cond(0, Len::Qword, Op::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)
                    })]
                }
                _ => Vec::new(),
            };
            map.insert(nr, rules);
        }
        map
    }

    /// `(clone3, main)` as the old `compile` built them.
    pub fn compile(sys: &Syscalls, processes: u64, arch: Arch) -> (BpfProgram, BpfProgram) {
        let main = SeccompFilter::new(
            rules(sys, processes, arch),
            SeccompAction::Trace(0),
            SeccompAction::Allow,
            target(arch),
        )
        .unwrap();
        let mut main: BpfProgram = main.try_into().unwrap();
        for insn in &mut main {
            if insn.code == 0x06 && insn.k == RET_TRACE {
                insn.k = RET_USER_NOTIF;
            }
        }
        let mut clone3 = BTreeMap::new();
        if let Some(nr) = groups::number(arch, "clone3") {
            clone3.insert(nr, Vec::new());
        }
        let clone3 = SeccompFilter::new(
            clone3,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            target(arch),
        )
        .unwrap();
        let clone3: BpfProgram = clone3.try_into().unwrap();
        (clone3, main)
    }
}

const BUILT_IN: [&str; 6] = ["strict", "default", "image", "pdf", "office", "ocr"];
const ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

fn policy(name: &str) -> crate::policy::Policy {
    crate::policy::load(name).unwrap()
}

fn compiled(name: &str, arch: Arch) -> BpfProgram {
    let p = policy(name);
    compile(&p.syscalls, p.limits.processes, arch, None).unwrap()
}

/// What the kernel returns with several filters installed: the most
/// restrictive action (lowest as a signed number).
fn strictest(results: &[u32]) -> u32 {
    *results
        .iter()
        .min_by_key(|r| (**r & 0xffff_0000) as i32)
        .unwrap()
}

/// Runs the installed program, as the kernel would.
fn run(f: &[sock_filter], name: &str, args: [u64; 6]) -> u32 {
    let arch = Arch::native();
    let nr = groups::number(arch, name).unwrap() as i32;
    evaluate(f, audit_arch(arch), nr, args)
}

/// Every jump of `prog` lands inside it and it ends in a return, as the
/// kernel's checker demands.
fn assert_well_formed(prog: &[sock_filter]) {
    assert!(prog.len() <= MAX_INSNS, "{} instructions", prog.len());
    assert_eq!(prog.last().map(|i| i.code), Some(BPF_RET_K));
    for (pc, i) in prog.iter().enumerate() {
        let targets = match i.code {
            BPF_JMP_JA => vec![pc + 1 + i.k as usize],
            BPF_JMP_JEQ_K | BPF_JMP_JGE_K => {
                vec![pc + 1 + usize::from(i.jt), pc + 1 + usize::from(i.jf)]
            }
            _ => Vec::new(),
        };
        for t in targets {
            assert!(t < prog.len(), "insn {pc} jumps to {t} of {}", prog.len());
        }
    }
}

/// A fixed-seed xorshift, for argument values nobody chose.
pub(crate) fn randoms(seed: u64, n: usize) -> Vec<u64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        })
        .collect()
}

/// Argument vectors that cross every argument rule's edges.
fn argument_vectors(sys: &Syscalls) -> Vec<[u64; 6]> {
    let high = 1u64 << 32;
    let mut v = vec![[0; 6], [u64::MAX; 6]];
    for &r in sys.ioctl.iter().chain([&0x5412u32]) {
        let r = u64::from(r);
        for req in [r, r | high, r | 0xffff_ffff_0000_0000, r ^ 1, r + 1] {
            v.push([0, req, 0, 0, 0, 0]);
        }
    }
    for family in 0..50u64 {
        v.push([family, 1, 0, 0, 0, 0]);
        v.push([family | high, 1, 0, 0, 0, 0]);
    }
    let thread = PTHREAD_CLONE_FLAGS;
    let sigchld = libc::SIGCHLD as u64;
    for base in [thread, sigchld, 0, thread | high, sigchld | high] {
        v.push([base, 0, 0, 0, 0, 0]);
        for bit in 0..32 {
            let flag = 1u64 << bit;
            if CLONE_NAMESPACE_FLAGS & flag != 0 {
                v.push([base | flag, 0, 0, 0, 0, 0]);
            }
        }
    }
    for flags in [0, 8, 9, 1, high | 8, high, 0xffff_fff7] {
        v.push([0, flags, 0, 0, 0, 0]);
    }
    for (a, b) in [(1, 0), (1, 8), (0, 0), (1, high), (1 | high, 0), (2, 0)] {
        v.push([a, b, 0, 0, 0, 0]);
    }
    for chunk in randoms(0x9e37_79b9_7f4a_7c15, 6 * 12).chunks(6) {
        v.push(chunk.try_into().unwrap());
    }
    v
}

fn syscall_numbers(arch: Arch) -> Vec<i32> {
    let mut nrs: Vec<i32> = (0..=600).collect();
    nrs.extend([1000, 4096, -1, i32::MAX, 0x4000_0000]);
    if arch == Arch::X86_64 {
        nrs.extend([0x4000_0001, 0x4000_0000 | 435, 0x4000_0000 | 56]);
    }
    nrs
}

#[test]
fn test_emit_every_builtin_policy_matches_seccompiler_pair() {
    for name in BUILT_IN {
        let p = policy(name);
        let vectors = argument_vectors(&p.syscalls);
        for arch in ARCHES {
            let new = compile(&p.syscalls, p.limits.processes, arch, None).unwrap();
            let (old_clone3, old_main) = reference::compile(&p.syscalls, p.limits.processes, arch);
            assert_well_formed(&new);
            let audit = audit_arch(arch);
            for nr in syscall_numbers(arch) {
                for args in &vectors {
                    let old = strictest(&[
                        evaluate(&old_clone3, audit, nr, *args),
                        evaluate(&old_main, audit, nr, *args),
                    ]);
                    let got = evaluate(&new, audit, nr, *args);
                    assert_eq!(
                        got, old,
                        "{name} {arch:?} nr {nr:#x} args {args:x?}: new {got:#x}, old {old:#x}"
                    );
                }
            }
        }
    }
}

#[test]
fn test_errno_table_goes_to_the_supervisor() {
    // The supervisor answers (and records) what the table names, so
    // the program notifies exactly as without the table.
    let plain = compile(&policy("default").syscalls, 0, Arch::native(), None).unwrap();
    let mut sys = policy("default").syscalls;
    sys.errno.insert("personality".into(), libc::ENOSYS as u16);
    sys.errno.insert("ioctl".into(), libc::ENOTTY as u16);
    let f = compile(&sys, 0, Arch::native(), None).unwrap();
    assert_eq!(f, plain);
    assert_eq!(run(&f, "personality", [0; 6]), RET_USER_NOTIF);
    assert_eq!(run(&f, "ioctl", [0, 0x5412, 0, 0, 0, 0]), RET_USER_NOTIF);
    assert_eq!(run(&f, "ioctl", [0, 0x5401, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn test_road_exec_passes_only_on_its_slot_when_execveat_is_denied() {
    let mut sys = policy("default").syscalls;
    sys.allow.remove("execveat");
    let f = compile(&sys, 0, Arch::native(), Some(77)).unwrap();
    let empty = libc::AT_EMPTY_PATH as u64;
    assert_eq!(run(&f, "execveat", [77, 0, 0, 0, empty, 0]), RET_ALLOW);
    assert_eq!(run(&f, "execveat", [76, 0, 0, 0, empty, 0]), RET_USER_NOTIF);
    assert_eq!(run(&f, "execveat", [77, 0, 0, 0, 0, 0]), RET_USER_NOTIF);
    assert_eq!(run(&f, "prlimit64", [0, 7, 0, 0x1000, 0, 0]), RET_ALLOW);
    assert_eq!(
        run(&f, "prlimit64", [0, 7, 0x2000, 0, 0, 0]),
        RET_USER_NOTIF
    );
}

#[test]
fn test_emit_kill_miss_action_replaces_every_user_notif() {
    for name in BUILT_IN {
        let p = policy(name);
        for arch in ARCHES {
            let map = rules(&p.syscalls, p.limits.processes, arch, None);
            let audit = audit_arch(arch);
            let notif = emit(&map, audit, RET_USER_NOTIF).unwrap();
            let kill = emit(&map, audit, RET_KILL_PROCESS).unwrap();
            assert_well_formed(&kill);
            for nr in syscall_numbers(arch) {
                for args in argument_vectors(&p.syscalls) {
                    let want = match evaluate(&notif, audit, nr, args) {
                        RET_USER_NOTIF => RET_KILL_PROCESS,
                        other => other,
                    };
                    assert_eq!(
                        evaluate(&kill, audit, nr, args),
                        want,
                        "{name} {arch:?} {nr}"
                    );
                }
            }
        }
    }
}

#[test]
fn test_emit_foreign_audit_arch_goes_to_the_host_where_seccompiler_killed() {
    for arch in ARCHES {
        let p = policy("default");
        let new = compile(&p.syscalls, p.limits.processes, arch, None).unwrap();
        let (_, old_main) = reference::compile(&p.syscalls, p.limits.processes, arch);
        let other = audit_arch(match arch {
            Arch::X86_64 => Arch::Aarch64,
            Arch::Aarch64 => Arch::X86_64,
        });
        // i386 on x86_64 (AUDIT_ARCH_I386), arm on aarch64, nonsense.
        for audit in [other, 0x4000_0003, 0x4000_0028, 0, u32::MAX] {
            for nr in [0, 1, 56, 59, 435, 0x4000_0001] {
                assert_eq!(evaluate(&new, audit, nr, [0; 6]), RET_USER_NOTIF);
                assert_eq!(evaluate(&old_main, audit, nr, [0; 6]), RET_KILL_PROCESS);
            }
        }
    }
}

#[test]
fn test_emit_strict_is_under_half_the_old_length() {
    let p = policy("strict");
    let arch = Arch::native();
    let new = compile(&p.syscalls, p.limits.processes, arch, None).unwrap();
    let (c, m) = reference::compile(&p.syscalls, p.limits.processes, arch);
    let old = c.len() + m.len();
    println!(
        "strict on {arch:?}: {} instructions in one program; seccompiler: {} + {} = {old}",
        new.len(),
        c.len(),
        m.len()
    );
    assert!(new.len() * 2 < old, "{} vs {old}", new.len());
}

/// Every syscall allowed, `ioctls` requests: the ioctl block alone is
/// longer than a conditional jump can cross.
fn everything_with_ioctls(ioctls: u32) -> Syscalls {
    let mut allow: BTreeSet<String> = (0..600)
        .filter_map(|nr| groups::name_of(Arch::native(), nr))
        .map(str::to_string)
        .collect();
    allow.insert("ioctl".into());
    Syscalls {
        allow,
        on_violation: policy("strict").syscalls.on_violation,
        // Spread over the whole u32 range, with neighbours one apart.
        ioctl: (0..ioctls)
            .map(|i| (i / 2).wrapping_mul(0x9e37_79b9) + i % 2)
            .collect(),
        socket_families: [1, 2, 10].into(),
        ..Syscalls::default()
    }
}

#[test]
fn test_emit_300_ioctls_allows_exactly_those_requests() {
    let sys = everything_with_ioctls(300);
    let f = compile(&sys, 0, Arch::native(), None).unwrap();
    assert_well_formed(&f);
    for &req in &sys.ioctl {
        let r = u64::from(req);
        assert_eq!(run(&f, "ioctl", [0, r, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&f, "ioctl", [0, r | 1 << 32, 0, 0, 0, 0]), RET_ALLOW);
        if !sys.ioctl.contains(&req.wrapping_add(2)) {
            let other = u64::from(req.wrapping_add(2));
            assert_eq!(run(&f, "ioctl", [0, other, 0, 0, 0, 0]), RET_USER_NOTIF);
        }
    }
}

#[test]
fn test_emit_block_longer_than_jump_range_keeps_every_syscall_reachable() {
    let sys = everything_with_ioctls(2000);
    let arch = Arch::native();
    let f = compile(&sys, 1, arch, None).unwrap();
    assert_well_formed(&f);
    assert!(f.len() > 1000, "{} instructions", f.len());
    assert!(
        f.iter().any(|i| i.code == BPF_JMP_JA),
        "no trampoline exercised"
    );
    let audit = audit_arch(arch);
    for nr in 0..600 {
        let Some(name) = groups::name_of(arch, i64::from(nr)) else {
            continue;
        };
        let got = evaluate(&f, audit, nr, [0; 6]);
        let want = match name {
            "clone3" => RET_ERRNO | libc::ENOSYS as u32,
            "socket" | "socketpair" | "seccomp" | "memfd_create" => RET_USER_NOTIF,
            _ => RET_ALLOW, // ioctl: 0 is among the requests
        };
        assert_eq!(got, want, "{name}");
    }
    let ioctl = groups::number(arch, "ioctl").unwrap() as i32;
    for &req in &sys.ioctl {
        let args = [0, u64::from(req), 0, 0, 0, 0];
        assert_eq!(evaluate(&f, audit, ioctl, args), RET_ALLOW);
    }
}

#[test]
fn test_compile_over_kernel_limit_is_build_error() {
    let sys = everything_with_ioctls(6000);
    let err = compile(&sys, 0, Arch::native(), None).unwrap_err();
    assert!(
        err.to_string().contains("more than the kernel's 4096"),
        "{err}"
    );
}

#[test]
fn test_compile_strict_allows_read_and_notifies_socket() {
    let f = compiled("strict", Arch::native());
    assert_eq!(run(&f, "read", [0; 6]), RET_ALLOW);
    assert_eq!(run(&f, "socket", [2, 1, 0, 0, 0, 0]), RET_USER_NOTIF);
    assert_eq!(run(&f, "ptrace", [0; 6]), RET_USER_NOTIF);
    assert_eq!(run(&f, "clone3", [0; 6]), RET_ERRNO | libc::ENOSYS as u32);
}

#[test]
fn test_compile_strict_allows_threads_but_not_processes() {
    let p = policy("strict");
    let f = compile(&p.syscalls, 0, Arch::native(), None).unwrap();
    let thread_flags = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    assert_eq!(run(&f, "clone", [thread_flags, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(
        run(&f, "clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
        RET_USER_NOTIF
    );
    let ns = thread_flags | libc::CLONE_NEWUSER as u64;
    assert_eq!(run(&f, "clone", [ns, 0, 0, 0, 0, 0]), RET_USER_NOTIF);
}

#[test]
fn test_compile_default_ioctl_masked_compare_denies_tiocsti() {
    let f = compiled("default", Arch::native());
    assert_eq!(run(&f, "ioctl", [0, 0x5401, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&f, "ioctl", [0, 0x5412, 0, 0, 0, 0]), RET_USER_NOTIF);
    assert_eq!(
        run(&f, "ioctl", [0, 0x1_0000_5412, 0, 0, 0, 0]),
        RET_USER_NOTIF
    );
}

#[test]
fn test_compile_seccomp_needs_both_halves_of_flags_zero() {
    let f = compiled("strict", Arch::native());
    assert_eq!(run(&f, "seccomp", [1, 0, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(run(&f, "seccomp", [1, 1 << 32, 0, 0, 0, 0]), RET_USER_NOTIF);
    assert_eq!(run(&f, "seccomp", [1, 8, 0, 0, 0, 0]), RET_USER_NOTIF);
    assert_eq!(run(&f, "seccomp", [1 | 1 << 32, 0, 0, 0, 0, 0]), RET_ALLOW);
}

#[test]
fn test_compile_aarch64_builds_by_name() {
    let f = compiled("default", Arch::Aarch64);
    let nr = groups::number(Arch::Aarch64, "read").unwrap() as i32;
    assert_eq!(
        evaluate(&f, audit_arch(Arch::Aarch64), nr, [0; 6]),
        RET_ALLOW
    );
    // The x86_64 program hands aarch64 callers to the host.
    let x = compiled("default", Arch::X86_64);
    assert_eq!(
        evaluate(&x, audit_arch(Arch::Aarch64), nr, [0; 6]),
        RET_USER_NOTIF
    );
}

/// Whether this kernel has the user-notification action.
fn kernel_has_user_notif() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .is_ok_and(|a| a.split_whitespace().any(|w| w == "user_notif"))
}

fn fprog(prog: &[sock_filter]) -> libc::sock_fprog {
    libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    }
}

/// The child's half of the install test: raw syscalls only (it was
/// forked from a threaded test harness). Returns a bitmask of failures.
fn install_and_probe(prog: &libc::sock_fprog) -> i32 {
    // SAFETY: integer-only prctl.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return 1;
    }
    // SAFETY: `prog` points to a program that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, prog) };
    if rc != 0 {
        return 2;
    }
    // A denied syscall: user notification without a listener is ENOSYS.
    let enosys = |rc: libc::c_long| {
        // SAFETY: reads this thread's errno.
        rc == -1 && unsafe { *libc::__errno_location() } == libc::ENOSYS
    };
    let mut failed = 0;
    // SAFETY: getpid has no arguments.
    if unsafe { libc::syscall(libc::SYS_getpid) } <= 0 {
        failed |= 4;
    }
    // SAFETY: write to an invalid fd touches no memory.
    let rc = unsafe { libc::syscall(libc::SYS_write, -1, [0u8].as_ptr(), 1) };
    // SAFETY: reads this thread's errno.
    if rc != -1 || unsafe { *libc::__errno_location() } != libc::EBADF {
        failed |= 8;
    }
    // SAFETY: socket takes integers only.
    if !enosys(unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) }) {
        failed |= 16;
    }
    // SAFETY: PTRACE_TRACEME takes no pointers.
    if !enosys(unsafe { libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) }) {
        failed |= 32;
    }
    // SAFETY: clone3 with a null argument never creates a process.
    if !enosys(unsafe { libc::syscall(libc::SYS_clone3, 0, 0) }) {
        failed |= 64;
    }
    failed
}

#[test]
fn test_install_strict_in_child_allows_getpid_and_denies_socket_ptrace_clone3() {
    if !kernel_has_user_notif() {
        println!("not applicable: this kernel lacks SECCOMP_RET_USER_NOTIF");
        return;
    }
    let f = compiled("strict", Arch::native());
    let prog = fprog(&f);
    // SAFETY: the child makes raw syscalls only and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let failed = install_and_probe(&prog);
        // SAFETY: _exit is async-signal-safe and skips the harness.
        unsafe { libc::_exit(failed) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child into a stack integer.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child status {status:#x}");
    // 1 nnp, 2 install, 4 getpid, 8 write, 16 socket, 32 ptrace, 64 clone3.
    assert_eq!(libc::WEXITSTATUS(status), 0, "failures bitmask");
}
