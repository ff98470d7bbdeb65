//! Seccomp programs as data: the syscall tables of each architecture and
//! the named groups ([`groups`]), and the classic BPF emitter and evaluator
//! that both the host's filter and the plugin SDK's lockdown are built with.
//!
//! [`emit`] turns a map from syscall number to [`Leaf`] into ONE program:
//! the architecture check, then a balanced binary search (`JGE`) over the
//! syscall number whose leaves return directly or enter a short argument
//! block; numbers not in the map get the caller's miss action
//! (`SECCOMP_RET_USER_NOTIF` for the host, `SECCOMP_RET_KILL_PROCESS` for
//! the SDK's lockdown). [`evaluate`] runs a program in user space the way
//! the kernel does, for `policy explain` and the differential tests.
//!
//! We emit the BPF ourselves instead of through seccompiler because its
//! programs are a linear chain of compares: the kernel validates, converts
//! and, per syscall number, emulates the program at install, so install
//! cost grows with its length, and every syscall the plugin makes walks the
//! chain. For the host's `strict` policy the tree is under a fifth as long
//! and reaches any syscall in O(log n) compares (docs/decisions/bpf-emitter.md).
//! The host's `seccomp` module compiles a policy into the map.

#![deny(missing_docs)]

use std::collections::{BTreeMap, HashMap};

use seccompiler::{sock_filter, BpfProgram};

pub mod groups;

use groups::Arch;

/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;
/// `SECCOMP_RET_ERRNO` (the errno goes in the low 16 bits).
pub const RET_ERRNO: u32 = 0x0005_0000;
/// `SECCOMP_RET_KILL_PROCESS`.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;

/// The kernel's limit on a program's length (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

// Classic BPF opcodes (linux/bpf_common.h), the few this emitter uses;
// public so that tests can check the shape of an emitted program.
/// `BPF_LD | BPF_W | BPF_ABS`: load a word of `struct seccomp_data`.
pub const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_ALU | BPF_AND | BPF_K`.
pub const BPF_ALU_AND_K: u16 = 0x54;
/// `BPF_JMP | BPF_JA`: an unconditional jump.
pub const BPF_JMP_JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
pub const BPF_JMP_JEQ_K: u16 = 0x15;
/// `BPF_JMP | BPF_JGE | BPF_K`.
pub const BPF_JMP_JGE_K: u16 = 0x35;
/// `BPF_RET | BPF_K`: return a constant action.
pub const BPF_RET_K: u16 = 0x06;

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
    /// Which argument, 0 to 5.
    pub arg: u8,
    /// How much of it is compared.
    pub width: Width,
    /// The bits compared.
    pub mask: u64,
    /// What the masked bits must equal.
    pub value: u64,
}

impl ArgCheck {
    /// `args[arg] == value` over `width`.
    pub fn eq(arg: u8, width: Width, value: u64) -> ArgCheck {
        ArgCheck {
            arg,
            width,
            mask: u64::MAX,
            value,
        }
    }

    /// `(args[arg] & mask) == value` over `width`.
    pub fn masked(arg: u8, width: Width, mask: u64, value: u64) -> ArgCheck {
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
    /// Allowed when every check of one of the rules holds, else this
    /// action (the policy's errno for the syscall).
    RulesOr(Vec<Vec<ArgCheck>>, u32),
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Emits the program for `map` (syscall number → what to do) checking the audit arch
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
        Leaf::RulesOr(rules, fail) => argument_block(e, rules, *fail),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
