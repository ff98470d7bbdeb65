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
//! We emit the BPF ourselves instead of through seccompiler because its
//! programs are a linear chain of compares: the kernel validates, converts
//! and, per syscall number, emulates the program at install, so install
//! cost grows with its length, and every syscall the plugin makes walks the
//! chain. For `strict` the tree is under a fifth as long and reaches any
//! syscall in O(log n) compares. The Rust SDK's lockdown
//! (`plugin::lockdown_program`) is emitted the same way, with
//! `SECCOMP_RET_KILL_PROCESS` as its miss action.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use seccompiler::{sock_filter, BpfProgram};

use crate::policy::groups::{self, Arch};
use crate::policy::Syscalls;

/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// The kernel's limit on a program's length (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

// Classic BPF opcodes (linux/bpf_common.h), the few this emitter uses.
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;

/// Longest forward distance of a conditional jump (8-bit offsets).
const MAX_COND_JUMP: usize = 255;

/// Namespace-creating clone flags: never allowed.
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64
    | 0x80; // CLONE_NEWTIME

/// The `clone` flags glibc's `pthread_create` passes: a thread, which every
/// policy allows (samples and tests check against them).
pub const PTHREAD_CLONE_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;

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

/// How much of a 64-bit argument a check compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// The low 32 bits only (what the kernel reads of an `int`).
    Dword,
    /// Both 32-bit halves.
    Qword,
}

/// `(args[arg] & mask) == value`, over `width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCheck {
    pub arg: u8,
    pub width: Width,
    pub mask: u64,
    pub value: u64,
}

impl ArgCheck {
    fn eq(arg: u8, width: Width, value: u64) -> ArgCheck {
        ArgCheck {
            arg,
            width,
            mask: u64::MAX,
            value,
        }
    }

    fn masked(arg: u8, width: Width, mask: u64, value: u64) -> ArgCheck {
        ArgCheck {
            arg,
            width,
            mask,
            value,
        }
    }

    /// The 32-bit compares this check makes: (offset, mask, value); the
    /// arguments are little-endian u64s on both supported arches.
    fn halves(&self) -> Vec<(u32, u32, u32)> {
        let off = DATA_ARGS + 8 * u32::from(self.arg);
        let lo = (off, self.mask as u32, self.value as u32);
        let hi = (off + 4, (self.mask >> 32) as u32, (self.value >> 32) as u32);
        match self.width {
            Width::Dword => vec![lo],
            Width::Qword => vec![lo, hi],
        }
    }
}

/// What the program does for one allowed syscall number (numbers not in
/// the map get the program's miss action, see [`emit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Return this action whatever the arguments.
    Ret(u32),
    /// Allowed when every check of one of the rules holds, else the miss
    /// action.
    Rules(Vec<Vec<ArgCheck>>),
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

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Emits the program for `map` (see [`rules`]) checking the audit arch
/// `audit` (any other returns `miss`); syscall numbers not in `map` and
/// calls no rule of their [`Leaf::Rules`] admits return `miss`
/// ([`RET_USER_NOTIF`] for the host's program, [`RET_KILL_PROCESS`] for
/// the SDK's lockdown). `Err(length)` when it exceeds [`MAX_INSNS`].
pub fn emit(map: &BTreeMap<u32, Leaf>, audit: u32, miss: u32) -> Result<BpfProgram, usize> {
    let mut e = Emitter {
        rev: Vec::new(),
        rets: HashMap::new(),
        miss,
    };
    // x32 calls on x86_64 (bit 30 set) land in the gap above the highest
    // allowed number: the miss action, as seccompiler's chain gave them,
    // and `describe` names them.
    let spans = spans(map.iter().map(|(&nr, l)| (nr, l.clone())), Leaf::Ret(miss));
    let tree = search(&mut e, &spans, &mut |e, leaf| match leaf {
        Leaf::Ret(action) => Jump::Ret(*action),
        Leaf::Rules(rules) => {
            let fail = e.miss;
            argument_block(e, rules, fail)
        }
    });
    e.fall_into(tree);
    let load_nr = e.push(insn(BPF_LD_W_ABS, 0, 0, DATA_NR));
    // Another ABI (i386 through int 0x80, 32-bit ARM) misses too: the
    // host's program hands it to the host, which names it; the lockdown kills.
    let arch_ok = e.jump(BPF_JMP_JEQ_K, audit, load_nr, Jump::Ret(miss));
    e.fall_into(arch_ok);
    e.push(insn(BPF_LD_W_ABS, 0, 0, DATA_ARCH));
    let prog = e.finish();
    if prog.len() > MAX_INSNS {
        return Err(prog.len());
    }
    Ok(prog)
}

/// Where a jump goes: a return of this action (any copy of it will do), or
/// a given instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Jump {
    Ret(u32),
    /// Index in [`Emitter::rev`].
    At(usize),
}

/// Builds a program backwards, from its last instruction to its first, so
/// every jump target is already placed and its distance known: a target
/// beyond a conditional jump's 255 gets a nearer copy of its return or a
/// `JA` (32-bit offset) trampoline.
struct Emitter {
    /// The program, reversed.
    rev: Vec<sock_filter>,
    /// The nearest (last emitted) return of each action.
    rets: HashMap<u32, usize>,
    /// What a miss or a rule mismatch returns.
    miss: u32,
}

impl Emitter {
    fn push(&mut self, i: sock_filter) -> Jump {
        self.rev.push(i);
        Jump::At(self.rev.len() - 1)
    }

    /// The jump offset from the next instruction emitted to `at`.
    fn distance(&self, at: usize) -> usize {
        self.rev.len() - 1 - at
    }

    /// `to` as an instruction index the next instruction reaches with a
    /// conditional jump.
    fn near(&mut self, to: Jump) -> usize {
        match to {
            Jump::Ret(action) => match self.rets.get(&action) {
                Some(&at) if self.distance(at) <= MAX_COND_JUMP => at,
                _ => {
                    self.rev.push(insn(BPF_RET_K, 0, 0, action));
                    let at = self.rev.len() - 1;
                    self.rets.insert(action, at);
                    at
                }
            },
            Jump::At(at) if self.distance(at) <= MAX_COND_JUMP => at,
            Jump::At(at) => {
                let k = self.distance(at) as u32;
                self.rev.push(insn(BPF_JMP_JA, 0, 0, k));
                self.rev.len() - 1
            }
        }
    }

    /// A conditional jump on the accumulator; emits nothing when both
    /// branches go to the same place.
    fn jump(&mut self, code: u16, k: u32, yes: Jump, no: Jump) -> Jump {
        if yes == no {
            return yes;
        }
        let mut t = self.near(yes);
        let f = self.near(no);
        if self.distance(t) > MAX_COND_JUMP {
            // `no` needed an instruction of its own and pushed `t` one
            // step out of reach.
            t = self.near(Jump::At(t));
        }
        let reach = |d: usize| u8::try_from(d).expect("targets resolved within reach");
        let (jt, jf) = (reach(self.distance(t)), reach(self.distance(f)));
        self.push(insn(code, jt, jf, k))
    }

    /// Makes `to` the instruction right after the next one emitted.
    fn fall_into(&mut self, to: Jump) {
        match to {
            Jump::At(at) if at + 1 == self.rev.len() => {}
            Jump::Ret(action) => {
                self.push(insn(BPF_RET_K, 0, 0, action));
            }
            Jump::At(at) => {
                let k = self.distance(at) as u32;
                self.push(insn(BPF_JMP_JA, 0, 0, k));
            }
        }
    }

    fn finish(mut self) -> BpfProgram {
        self.rev.reverse();
        self.rev
    }
}

/// Sorted `(first value, leaf)` spans covering all of u32 from `points`
/// (sorted, distinct values), every other value getting `default`;
/// neighbours with equal leaves are merged.
fn spans<T: Clone + PartialEq>(
    points: impl Iterator<Item = (u32, T)>,
    default: T,
) -> Vec<(u32, T)> {
    let mut out = vec![(0, default.clone())];
    for (v, leaf) in points {
        if out.last().is_some_and(|l| l.0 == v) {
            out.pop();
        }
        if out.last().is_none_or(|l| l.1 != leaf) {
            out.push((v, leaf.clone()));
        }
        if let Some(next) = v.checked_add(1) {
            if leaf != default {
                out.push((next, default.clone()));
            }
        }
    }
    out
}

/// Emits a binary search on the accumulator over `spans` and returns its
/// entry; `leaf` emits (or names) the code for one span.
fn search<T: PartialEq>(
    e: &mut Emitter,
    spans: &[(u32, T)],
    leaf: &mut impl FnMut(&mut Emitter, &T) -> Jump,
) -> Jump {
    match spans {
        [] => unreachable!("spans cover all of u32"),
        [(_, only)] => leaf(e, only),
        // One value between two equal spans: a single JEQ.
        [(_, out), (v, one), (w, after)] if out == after && v.checked_add(1) == Some(*w) => {
            let no = leaf(e, out);
            let yes = leaf(e, one);
            e.jump(BPF_JMP_JEQ_K, *v, yes, no)
        }
        _ => {
            let mid = spans.len() / 2;
            // Backwards: the upper half first, so the lower half's entry
            // is right after the JGE.
            let upper = search(e, &spans[mid..], leaf);
            let lower = search(e, &spans[..mid], leaf);
            e.jump(BPF_JMP_JGE_K, spans[mid].0, upper, lower)
        }
    }
}

/// Emits the argument checks of one syscall: allowed when all checks of
/// one rule hold, else `fail`.
fn argument_block(e: &mut Emitter, rules: &[Vec<ArgCheck>], fail: u32) -> Jump {
    if let Some(arg) = single_dword_compares(rules) {
        // ioctl requests, socket families: one load, then a search over
        // the allowed values.
        let values = rules
            .iter()
            .map(|r| (r[0].value as u32, Jump::Ret(RET_ALLOW)));
        let values: BTreeMap<u32, Jump> = values.collect();
        let spans = spans(values.into_iter(), Jump::Ret(fail));
        let tree = search(e, &spans, &mut |_, j| *j);
        e.fall_into(tree);
        return e.push(insn(BPF_LD_W_ABS, 0, 0, DATA_ARGS + 8 * u32::from(arg)));
    }
    let mut fail = Jump::Ret(fail);
    for rule in rules.iter().rev() {
        let mut pass = Jump::Ret(RET_ALLOW);
        for check in rule.iter().rev() {
            pass = check_block(e, check, pass, fail);
        }
        fail = pass;
    }
    fail
}

/// The argument when every rule is one full-width Dword equality on it.
fn single_dword_compares(rules: &[Vec<ArgCheck>]) -> Option<u8> {
    let arg = rules.first()?.first()?.arg;
    rules
        .iter()
        .all(|r| {
            matches!(r.as_slice(), [c] if c.arg == arg && c.width == Width::Dword && c.mask as u32 == u32::MAX)
        })
        .then_some(arg)
}

/// Emits one check: load each half, mask it, compare.
fn check_block(e: &mut Emitter, check: &ArgCheck, pass: Jump, fail: Jump) -> Jump {
    let halves = check.halves();
    if halves.iter().any(|&(_, mask, value)| value & !mask != 0) {
        return fail; // bits outside the mask never compare equal
    }
    let mut next = pass;
    for (offset, mask, value) in halves.into_iter().rev() {
        if mask == 0 || next == fail {
            continue; // 0 == 0 always holds; or both outcomes are the same
        }
        next = e.jump(BPF_JMP_JEQ_K, value, next, fail);
        e.fall_into(next);
        if mask != u32::MAX {
            e.push(insn(BPF_ALU_AND_K, 0, 0, mask));
        }
        next = e.push(insn(BPF_LD_W_ABS, 0, 0, offset));
    }
    next
}

/// `AUDIT_ARCH_*` value the kernel reports for `arch`.
pub fn audit_arch(arch: Arch) -> u32 {
    match arch {
        Arch::X86_64 => 0xC000_003E,
        Arch::Aarch64 => 0xC000_00B7,
    }
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

pub use crate::describe::describe;

#[cfg(test)]
pub(crate) mod tests {
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
                let (old_clone3, old_main) =
                    reference::compile(&p.syscalls, p.limits.processes, arch);
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
    fn test_spans_merge_neighbours_and_cover_u32() {
        let points = [(0, 'a'), (1, 'a'), (2, 'b'), (5, 'a'), (u32::MAX, 'b')];
        assert_eq!(
            spans(points.into_iter(), 'n'),
            vec![
                (0, 'a'),
                (2, 'b'),
                (3, 'n'),
                (5, 'a'),
                (6, 'n'),
                (u32::MAX, 'b')
            ]
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
        let rc =
            unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, prog) };
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
        if !enosys(unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) })
        {
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
}
