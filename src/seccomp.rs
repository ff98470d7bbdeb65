//! Seccomp: compile a policy's syscall rules to BPF, and name violations.
//!
//! Programs are compiled in the host with seccompiler, from syscall names
//! resolved per architecture (so the same policy compiles for x86_64 and
//! aarch64). Anything not allowed returns `SECCOMP_RET_USER_NOTIF`: the
//! supervisor (the host, holding the listener fd) learns the syscall and
//! its arguments with authority, not from the compromised child, and then
//! kills the plugin (verdict `violation: socket(AF_INET, ...)`) or answers
//! EPERM. seccompiler 0.5 has no user-notif action, so the program is
//! compiled with `Trace(0)` as a placeholder and the return instructions
//! are rewritten. `clone3` gets its own, earlier filter answering ENOSYS so
//! libc falls back to `clone`, whose flags BPF can inspect.

use std::collections::BTreeMap;

use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use crate::policy::groups::{self, Arch};
use crate::policy::{self, Syscalls};

/// `SECCOMP_RET_TRACE`, the placeholder action seccompiler emits.
const RET_TRACE: u32 = 0x7ff0_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
const BPF_RET_K: u16 = 0x06;

/// Namespace-creating clone flags: never allowed.
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64
    | 0x80; // CLONE_NEWTIME

/// Syscalls the child's road needs between installing the filter and the
/// plugin's first instruction (report to the fork server, exec). Always
/// allowed; a plugin's own lockdown can forbid the exec family again.
pub const ROAD: &[&str] = &["read", "write", "execve", "execveat", "exit", "exit_group"];

/// The two programs installed in the child, in this order.
#[derive(Clone, Debug)]
pub struct Filters {
    /// `clone3` → ENOSYS, everything else allowed.
    pub clone3: BpfProgram,
    /// The allowlist; everything else → user notification.
    pub main: BpfProgram,
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp program cannot be built for {arch:?}: {message}")]
    Build { arch: Arch, message: String },
}

fn target(arch: Arch) -> TargetArch {
    match arch {
        Arch::X86_64 => TargetArch::x86_64,
        Arch::Aarch64 => TargetArch::aarch64,
    }
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Cond {
    Cond::new(arg, len, op, value).expect("argument index below 6")
}

/// The allowlist that `sys` compiles to on `arch`, with argument rules.
pub fn rules(sys: &Syscalls, processes: u64, arch: Arch) -> BTreeMap<i64, Vec<SeccompRule>> {
    let mut map = BTreeMap::new();
    let names = sys
        .allow
        .iter()
        .map(String::as_str)
        .chain(ROAD.iter().copied());
    // A plugin may always add filters of its own (they can only restrict
    // it further): seccomp(SECCOMP_SET_MODE_FILTER, flags = 0, ...). No
    // flags means no second listener and no TSYNC games.
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
        .expect("two conditions");
        map.insert(nr, vec![rule]);
    }
    for name in names {
        if name == "seccomp" {
            continue;
        }
        if processes == 0 && matches!(name, "fork" | "vfork") {
            continue;
        }
        if name == "clone3" {
            continue; // answered by the clone3 filter
        }
        let Some(nr) = groups::number(arch, name) else {
            continue;
        };
        let rules = match name {
            "ioctl" => {
                if sys.ioctl.is_empty() {
                    continue;
                }
                sys.ioctl
                    .iter()
                    .map(|&req| {
                        SeccompRule::new(vec![cond(1, Len::Dword, Op::Eq, u64::from(req))])
                            .expect("one condition")
                    })
                    .collect()
            }
            "socket" | "socketpair" if !sys.socket_families.is_empty() => sys
                .socket_families
                .iter()
                .map(|&f| {
                    SeccompRule::new(vec![cond(0, Len::Dword, Op::Eq, u64::from(f))])
                        .expect("one condition")
                })
                .collect(),
            "memfd_create" => {
                // Only non-executable memfds: Landlock's execute right does
                // not cover them, so an executable one could run code the
                // policy never granted (Linux 6.3+: MFD_NOEXEC_SEAL).
                let seal = 0x0008; // MFD_NOEXEC_SEAL
                vec![
                    SeccompRule::new(vec![cond(1, Len::Dword, Op::MaskedEq(seal), seal)])
                        .expect("one condition"),
                ]
            }
            "clone" => {
                // aarch64 and x86_64 both pass the flags in argument 0.
                let thread = libc::CLONE_THREAD as u64;
                let c = if processes == 0 {
                    cond(
                        0,
                        Len::Qword,
                        Op::MaskedEq(CLONE_NAMESPACE_FLAGS | thread),
                        thread,
                    )
                } else {
                    cond(0, Len::Qword, Op::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)
                };
                vec![SeccompRule::new(vec![c]).expect("one condition")]
            }
            _ => Vec::new(),
        };
        map.insert(nr, rules);
    }
    map
}

/// Compiles the policy's programs for `arch`.
pub fn compile(sys: &Syscalls, processes: u64, arch: Arch) -> Result<Filters, SeccompError> {
    let build = |m: String| SeccompError::Build { arch, message: m };
    let main = SeccompFilter::new(
        rules(sys, processes, arch),
        SeccompAction::Trace(0),
        SeccompAction::Allow,
        target(arch),
    )
    .map_err(|e| build(e.to_string()))?;
    let mut main: BpfProgram = main
        .try_into()
        .map_err(|e: seccompiler::BackendError| build(e.to_string()))?;
    for insn in &mut main {
        if insn.code == BPF_RET_K && insn.k == RET_TRACE {
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
    .map_err(|e| build(e.to_string()))?;
    let clone3: BpfProgram = clone3
        .try_into()
        .map_err(|e: seccompiler::BackendError| build(e.to_string()))?;
    Ok(Filters { clone3, main })
}

/// `AUDIT_ARCH_*` value the kernel reports for `arch`.
pub fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 0xC000_003E,
        Arch::Aarch64 => 0xC000_00B7,
    }
}

fn arch_of_audit(audit: u32) -> Option<Arch> {
    [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .find(|a| audit_arch(*a) == audit)
}

/// Runs a classic BPF program the way the kernel runs a seccomp filter, in
/// user space, so `policy explain` can show what a program does. Returns
/// the filter's return value (action | data); malformed programs and
/// out-of-range reads give KILL_PROCESS, as the kernel would refuse them.
pub fn evaluate(prog: &[sock_filter], audit: u32, nr: i32, args: [u64; 6]) -> u32 {
    // struct seccomp_data: nr (4), arch (4), instruction_pointer (8), args (6 * 8).
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&audit.to_ne_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + i * 8..24 + i * 8].copy_from_slice(&a.to_ne_bytes());
    }
    let (mut acc, mut x, mut pc) = (0u32, 0u32, 0usize);
    let mut mem = [0u32; 16];
    for _ in 0..prog.len() + 1 {
        let Some(i) = prog.get(pc) else {
            return RET_KILL_PROCESS;
        };
        pc += 1;
        let k = i.k;
        match i.code {
            0x20 => {
                // BPF_LD | BPF_W | BPF_ABS
                let Some(w) = data.get(k as usize..k as usize + 4) else {
                    return RET_KILL_PROCESS;
                };
                acc = u32::from_ne_bytes(w.try_into().expect("4 bytes"));
            }
            0x00 => acc = k,                      // BPF_LD | BPF_IMM
            0x01 => x = k,                        // BPF_LDX | BPF_IMM
            0x02 => mem[(k & 15) as usize] = acc, // BPF_ST
            0x60 => acc = mem[(k & 15) as usize], // BPF_LD | BPF_MEM
            0x54 => acc &= k,                     // BPF_ALU | BPF_AND | BPF_K
            0x05 => pc += k as usize,             // BPF_JMP | BPF_JA
            0x15 | 0x25 | 0x35 | 0x45 => {
                let taken = match i.code {
                    0x15 => acc == k,
                    0x25 => acc > k,
                    0x35 => acc >= k,
                    _ => acc & k != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            0x06 => return k, // BPF_RET | BPF_K
            0x16 => return acc,
            0x07 => x = acc, // BPF_MISC | BPF_TAX
            0x87 => acc = x, // BPF_MISC | BPF_TXA
            _ => return RET_KILL_PROCESS,
        }
    }
    let _ = x;
    RET_KILL_PROCESS
}

/// Renders a denied syscall as `name(arg, ...)`, decoding the arguments
/// that tell a reviewer the most (socket families, ioctl requests, clone
/// flags); others are shown in hex.
pub fn describe(audit: u32, nr: i32, args: [u64; 6]) -> String {
    let Some(arch) = arch_of_audit(audit) else {
        return format!("syscall {nr} of foreign architecture {audit:#x}");
    };
    if arch == Arch::X86_64 && nr as u32 & 0x4000_0000 != 0 {
        return format!("syscall {nr:#x} (x32 ABI, refused)");
    }
    let Some(name) = groups::name_of(arch, i64::from(nr)) else {
        return format!("syscall {nr} (unknown to this build)");
    };
    let hex = |a: u64| format!("{a:#x}");
    let shown: Vec<String> = match name {
        "socket" | "socketpair" => {
            let family =
                policy::family_name(args[0]).map_or_else(|| args[0].to_string(), str::to_string);
            let ty = match args[1] as i32 & 0xf {
                libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
                libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
                libc::SOCK_RAW => "SOCK_RAW".to_string(),
                libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".to_string(),
                t => t.to_string(),
            };
            vec![family, ty, args[2].to_string()]
        }
        "ioctl" => {
            let req = args[1] as u32;
            let req = policy::IOCTLS
                .iter()
                .find(|(_, v)| *v == req)
                .map_or_else(|| hex(args[1]), |(n, _)| (*n).to_string());
            vec![args[0].to_string(), req]
        }
        "clone" => vec![hex(args[0]), "...".into()],
        // int arguments: the kernel reads the low 32 bits, signed.
        "kill" | "tgkill" | "ptrace" | "setuid" | "setgid" | "personality" => args
            .iter()
            .take(2)
            .map(|a| (*a as i32).to_string())
            .collect(),
        _ => args.iter().take(3).map(|a| hex(*a)).collect(),
    };
    format!("{name}({})", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> crate::policy::Policy {
        crate::policy::load("strict").unwrap()
    }

    fn run(f: &Filters, name: &str, args: [u64; 6]) -> u32 {
        let arch = Arch::native();
        let nr = groups::number(arch, name).unwrap() as i32;
        let a = evaluate(&f.clone3, audit_arch(arch), nr, args);
        let b = evaluate(&f.main, audit_arch(arch), nr, args);
        // Precedence as in the kernel: the numerically smaller action wins
        // (ignoring KILL, which these programs only use for a wrong arch).
        if a & 0xffff_0000 < b & 0xffff_0000 {
            a
        } else {
            b
        }
    }

    #[test]
    fn test_compile_strict_allows_read_and_notifies_socket() {
        let p = strict();
        let f = compile(&p.syscalls, p.limits.processes, Arch::native()).unwrap();
        assert_eq!(run(&f, "read", [0; 6]), RET_ALLOW);
        assert_eq!(run(&f, "socket", [2, 1, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(run(&f, "ptrace", [0; 6]), RET_USER_NOTIF);
        assert_eq!(run(&f, "clone3", [0; 6]), RET_ERRNO | libc::ENOSYS as u32);
    }

    #[test]
    fn test_compile_strict_allows_threads_but_not_processes() {
        let p = strict();
        let f = compile(&p.syscalls, 0, Arch::native()).unwrap();
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
        let p = crate::policy::load("default").unwrap();
        let f = compile(&p.syscalls, p.limits.processes, Arch::native()).unwrap();
        assert_eq!(run(&f, "ioctl", [0, 0x5401, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&f, "ioctl", [0, 0x5412, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(
            run(&f, "ioctl", [0, 0x1_0000_5412, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
    }

    #[test]
    fn test_compile_aarch64_builds_by_name() {
        let p = crate::policy::load("default").unwrap();
        let f = compile(&p.syscalls, 0, Arch::Aarch64).unwrap();
        let nr = groups::number(Arch::Aarch64, "read").unwrap() as i32;
        assert_eq!(
            evaluate(&f.main, audit_arch(Arch::Aarch64), nr, [0; 6]),
            RET_ALLOW
        );
        // The x86_64 program refuses aarch64 callers outright.
        let x = compile(&p.syscalls, 0, Arch::X86_64).unwrap();
        assert_eq!(
            evaluate(&x.main, audit_arch(Arch::Aarch64), nr, [0; 6]),
            RET_KILL_PROCESS
        );
    }

    #[test]
    fn test_describe_socket_names_family() {
        let nr = groups::number(Arch::X86_64, "socket").unwrap() as i32;
        assert_eq!(
            describe(audit_arch(Arch::X86_64), nr, [2, 1, 0, 0, 0, 0]),
            "socket(AF_INET, SOCK_STREAM, 0)"
        );
    }
}
