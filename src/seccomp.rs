//! Seccomp: compile a policy's syscall rules to BPF, and name violations.
//!
//! The host compiles, from syscall names resolved per architecture (so the
//! same policy compiles for x86_64 and aarch64), ONE classic BPF program:
//! the architecture check, then a balanced binary search (`JGE`) over the
//! syscall number whose leaves return directly or enter a short argument
//! block. Anything not allowed returns `SECCOMP_RET_USER_NOTIF`: the
//! supervisor (the host, holding the listener fd) learns the syscall and
//! its arguments with authority, not from the compromised child, and then
//! kills the plugin (verdict `violation: socket(AF_INET, ...)`) or answers
//! EPERM. `clone3` answers ENOSYS so libc falls back to `clone`, whose
//! flags BPF can inspect.
//!
//! The emitter and evaluator are the `plugwarden-seccomp` crate
//! (crates/seccomp), which the plugin SDK's lockdown
//! (`plugwarden_sdk::lockdown_program`) is built with too, with
//! `SECCOMP_RET_KILL_PROCESS` as its miss action; this module turns a
//! policy into the emitter's input.

use std::collections::{BTreeMap, BTreeSet};

use seccompiler::BpfProgram;

pub use plugwarden_seccomp::{
    audit_arch, emit, evaluate, ArgCheck, Leaf, Width, CLONE_NAMESPACE_FLAGS, MAX_INSNS,
    PTHREAD_CLONE_FLAGS, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_USER_NOTIF,
};

use crate::policy::groups::{self, Arch};
use crate::policy::Syscalls;

/// Syscalls every program allows: every process ends through them, the
/// plugin process too when its exec fails. A policy cannot deny them (it
/// is refused, `policy::UNDENIABLE`).
pub const ALWAYS: &[&str] = &["exit", "exit_group"];

/// Syscalls the program checks by argument (when allowed): an errno in
/// the policy still answers the calls their rules do not admit (the
/// supervisor answers them, see `worker`).
pub const ARGUMENT_RULED: &[&str] = &[
    "ioctl",
    "socket",
    "socketpair",
    "clone",
    "memfd_create",
    "prlimit64",
    "seccomp",
    "execveat",
];

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp program cannot be built for {arch:?}: {message}")]
    Build { arch: Arch, message: String },
}

/// The allowlist that `sys` compiles to on `arch`, with argument rules;
/// numbers not in the map get user notification (the policy's errno
/// answers are the supervisor's, which records each: a soft denial is
/// still a denial someone must see). `exe_slot` is the fd number the child's road execs the
/// plugin through (`execveat(exe_slot, "", ..., AT_EMPTY_PATH)`), a number
/// the plugin can never hold: a policy that does not allow `execveat`
/// still lets that one call pass, and no other.
pub fn rules(
    sys: &Syscalls,
    processes: u64,
    arch: Arch,
    exe_slot: Option<u32>,
) -> BTreeMap<u32, Leaf> {
    let mut map = BTreeMap::new();
    let mut put = |name: &str, leaf: Leaf| {
        if let Some(nr) = groups::number(arch, name).and_then(|n| u32::try_from(n).ok()) {
            map.insert(nr, leaf);
        }
    };
    // BPF cannot read clone3's flags (they are in memory): ENOSYS makes
    // libc fall back to clone, whose flags it can check.
    put("clone3", Leaf::Ret(RET_ERRNO | libc::ENOSYS as u32));
    // A plugin may add filters of its own (they can only restrict it
    // further) unless the policy denies it: seccomp(SECCOMP_SET_MODE_FILTER,
    // flags = 0, ...). No flags means no second listener and no TSYNC games.
    if !sys.denied.contains("seccomp") {
        put(
            "seccomp",
            Leaf::Rules(vec![vec![
                ArgCheck::eq(0, Width::Dword, u64::from(libc::SECCOMP_SET_MODE_FILTER)),
                ArgCheck::eq(1, Width::Qword, 0),
            ]]),
        );
    }
    if let (Some(slot), false) = (exe_slot, sys.allow.contains("execveat")) {
        // The road's own exec, and only it.
        put(
            "execveat",
            Leaf::Rules(vec![vec![
                ArgCheck::eq(0, Width::Dword, u64::from(slot)),
                ArgCheck::eq(4, Width::Dword, libc::AT_EMPTY_PATH as u64),
            ]]),
        );
    }
    let names = sys
        .allow
        .iter()
        .map(String::as_str)
        .chain(ALWAYS.iter().copied());
    for name in names {
        if matches!(name, "seccomp" | "clone3") {
            continue;
        }
        if processes == 0 && matches!(name, "fork" | "vfork") {
            continue;
        }
        let leaf = match name {
            "ioctl" if sys.ioctl.is_empty() => continue,
            // The kernel reads the request as an unsigned int.
            "ioctl" => one_of(1, &sys.ioctl),
            "socket" | "socketpair" if !sys.socket_families.is_empty() => {
                one_of(0, &sys.socket_families)
            }
            "memfd_create" => {
                // Only non-executable memfds: Landlock's execute right does
                // not cover them, so an executable one could run code the
                // policy never granted (Linux 6.3+: MFD_NOEXEC_SEAL).
                let seal = 0x0008; // MFD_NOEXEC_SEAL
                Leaf::Rules(vec![vec![ArgCheck::masked(1, Width::Dword, seal, seal)]])
            }
            // Reading a limit (new_limit NULL) is what glibc's getrlimit
            // does; changing one is for policies that allow setrlimit.
            "prlimit64" if !sys.allow.contains("setrlimit") => {
                Leaf::Rules(vec![vec![ArgCheck::eq(2, Width::Qword, 0)]])
            }
            "clone" => {
                // aarch64 and x86_64 both pass the flags in argument 0.
                let thread = libc::CLONE_THREAD as u64;
                let check = if processes == 0 {
                    ArgCheck::masked(0, Width::Qword, CLONE_NAMESPACE_FLAGS | thread, thread)
                } else {
                    ArgCheck::masked(0, Width::Qword, CLONE_NAMESPACE_FLAGS, 0)
                };
                Leaf::Rules(vec![vec![check]])
            }
            _ => Leaf::Ret(RET_ALLOW),
        };
        put(name, leaf);
    }
    map
}

/// Argument `arg`'s low 32 bits equal one of `values`.
fn one_of(arg: u8, values: &BTreeSet<u32>) -> Leaf {
    Leaf::Rules(
        values
            .iter()
            .map(|&v| vec![ArgCheck::eq(arg, Width::Dword, u64::from(v))])
            .collect(),
    )
}

/// Compiles the policy's program for `arch`: the architecture check,
/// `clone3` → ENOSYS, the allowlist; everything else → user notification.
pub fn compile(
    sys: &Syscalls,
    processes: u64,
    arch: Arch,
    exe_slot: Option<u32>,
) -> Result<BpfProgram, SeccompError> {
    let map = rules(sys, processes, arch, exe_slot);
    emit(&map, audit_arch(arch), RET_USER_NOTIF).map_err(|n| SeccompError::Build {
        arch,
        message: format!(
            "the program has {n} instructions, more than the kernel's {MAX_INSNS}; \
             allow fewer ioctl requests or socket families"
        ),
    })
}

pub use crate::describe::describe;

#[cfg(test)]
pub(crate) mod tests;
