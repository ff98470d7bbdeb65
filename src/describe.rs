//! How a syscall the plugin made is shown in a verdict or a `denied:`
//! note: `socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, 0)`,
//! `geteuid()`, `i386 syscall 1 (exit) through int 0x80`.
//!
//! The host learns the call from the kernel (a seccomp notification: the
//! architecture, the number and six raw registers), never from the plugin.
//! What it prints must be the truth about that call: exactly as many
//! arguments as the syscall takes ([`arity`], generated from the kernel's
//! own prototypes), flags by their full names (nix's flag tables: no bit
//! dropped, unknown bits in hex), and a call through another ABI (the
//! 32-bit `int 0x80` gate, x32) named as such, with that ABI's own
//! syscall table.

mod arity;

use std::fmt::Write;

use bitflags::Flags;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::mman::{MapFlags, ProtFlags};

use crate::policy::groups::{self, Arch};
use crate::policy::{self, IOCTLS};
use crate::seccomp::audit_arch;

/// `AUDIT_ARCH_I386`: the 32-bit x86 ABI (`int 0x80`, or `sysenter`).
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_ARM`: 32-bit ARM (compat) on an aarch64 kernel.
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
/// The x32 ABI's bit in the syscall number on x86_64.
const X32_BIT: u32 = 0x4000_0000;

/// The number of arguments `name` takes; `None` for a name the table
/// does not know (then all six registers are shown).
pub fn arity(name: &str) -> Option<usize> {
    arity::ARITY
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| usize::from(arity::ARITY[i].1))
}

/// The call `nr` with registers `args`, as the kernel reported it for the
/// audit architecture `audit`.
pub fn describe(audit: u32, nr: i32, args: [u64; 6]) -> String {
    let native = [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .find(|a| audit_arch(*a) == audit);
    match native {
        Some(Arch::X86_64) if nr as u32 & X32_BIT != 0 => {
            let plain = i64::from(nr as u32 & !X32_BIT);
            format!(
                "x32 syscall {nr:#x} ({}) through the x32 ABI",
                groups::name_of(Arch::X86_64, plain).unwrap_or("unknown")
            )
        }
        Some(arch) => match groups::name_of(arch, i64::from(nr)) {
            Some(name) => call(name, &args),
            None => format!("syscall {nr} (unknown to this build)"),
        },
        None => foreign(audit, nr),
    }
}

/// A call through an ABI other than the plugin's own.
fn foreign(audit: u32, nr: i32) -> String {
    let named = |name: Option<&str>| name.map_or_else(String::new, |n| format!(" ({n})"));
    match audit {
        AUDIT_ARCH_I386 => {
            let name = u32::try_from(nr)
                .ok()
                .and_then(|n| syscalls::x86::Sysno::new(n as usize))
                .map(|s| s.name());
            format!("i386 syscall {nr}{} through int 0x80", named(name))
        }
        AUDIT_ARCH_ARM => {
            let name = u32::try_from(nr)
                .ok()
                .and_then(|n| syscalls::arm::Sysno::new(n as usize))
                .map(|s| s.name());
            format!("arm syscall {nr}{} through the 32-bit ABI", named(name))
        }
        _ => format!("syscall {nr} of foreign architecture {audit:#x}"),
    }
}

/// `name(arg, ...)` with the syscall's real arity and decoded arguments.
fn call(name: &str, args: &[u64; 6]) -> String {
    let n = arity(name).unwrap_or(6);
    let hex = |a: u64| format!("{a:#x}");
    let int = |a: u64| (a as i32).to_string();
    let shown: Vec<String> = match name {
        "socket" | "socketpair" => {
            let mut v = vec![family(args[0]), socket_type(args[1]), int(args[2])];
            v.extend(args[3..n].iter().map(|a| hex(*a)));
            v
        }
        "ioctl" => vec![int(args[0]), ioctl(args[1]), hex(args[2])],
        "clone" => {
            let signal = args[0] & 0xff;
            let mut flags = flag_names::<CloneFlags>(args[0] & !0xff, "0");
            if signal != 0 {
                flags = format!("{flags}|{}", signal_name(signal));
            }
            let mut v = vec![flags];
            v.extend(args[1..n].iter().map(|a| hex(*a)));
            v
        }
        "unshare" => vec![flag_names::<CloneFlags>(args[0], "0")],
        "setns" => vec![int(args[0]), flag_names::<CloneFlags>(args[1], "0")],
        "mmap" => vec![
            hex(args[0]),
            args[1].to_string(),
            flag_names::<ProtFlags>(args[2], "PROT_NONE"),
            flag_names::<MapFlags>(args[3], "0"),
            int(args[4]),
            hex(args[5]),
        ],
        "mprotect" | "pkey_mprotect" => {
            let mut v = vec![
                hex(args[0]),
                args[1].to_string(),
                flag_names::<ProtFlags>(args[2], "PROT_NONE"),
            ];
            v.extend(args[3..n].iter().map(|a| int(*a)));
            v
        }
        "open" => vec![hex(args[0]), open_flags(args[1]), format!("{:#o}", args[2])],
        "openat" => vec![
            dirfd(args[0]),
            hex(args[1]),
            open_flags(args[2]),
            format!("{:#o}", args[3]),
        ],
        "kill" | "tkill" => vec![int(args[0]), signal_name(args[1])],
        "tgkill" => vec![int(args[0]), int(args[1]), signal_name(args[2])],
        // int arguments: the kernel reads the low 32 bits, signed.
        "ptrace" | "setuid" | "setgid" => {
            let mut v: Vec<String> = args[..n.min(2)].iter().map(|a| int(*a)).collect();
            v.extend(args[n.min(2)..n].iter().map(|a| hex(*a)));
            v
        }
        _ => args[..n].iter().map(|a| hex(*a)).collect(),
    };
    format!("{name}({})", shown.join(", "))
}

/// A flag type's bits as a register holds them.
trait Register: Copy {
    fn from_register(r: u64) -> Self;
    fn to_register(self) -> u64;
}

impl Register for i32 {
    /// An `int` argument: the kernel reads the low 32 bits.
    fn from_register(r: u64) -> i32 {
        r as u32 as i32
    }
    fn to_register(self) -> u64 {
        u64::from(self as u32)
    }
}

impl Register for u64 {
    fn from_register(r: u64) -> u64 {
        r
    }
    fn to_register(self) -> u64 {
        self
    }
}

/// The set flags of `bits` by their full names, `A|B`, with bits no name
/// covers in hex; `zero` when none is set.
fn flag_names<F: Flags>(bits: u64, zero: &str) -> String
where
    F::Bits: Register,
{
    let raw = F::Bits::from_register(bits);
    let flags = F::from_bits_retain(raw);
    let mut names: Vec<String> = flags.iter_names().map(|(n, _)| n.to_owned()).collect();
    let unknown = flags
        .difference(F::from_bits_truncate(raw))
        .bits()
        .to_register();
    if unknown != 0 {
        names.push(format!("{unknown:#x}"));
    }
    if names.is_empty() {
        zero.to_owned()
    } else {
        names.join("|")
    }
}

fn family(a: u64) -> String {
    policy::family_name(a).map_or_else(|| a.to_string(), str::to_owned)
}

/// `SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK`: the type, then its flags.
fn socket_type(a: u64) -> String {
    let ty = match a as i32 & 0xf {
        libc::SOCK_STREAM => "SOCK_STREAM".to_owned(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_owned(),
        libc::SOCK_RAW => "SOCK_RAW".to_owned(),
        libc::SOCK_RDM => "SOCK_RDM".to_owned(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".to_owned(),
        t => t.to_string(),
    };
    let mut s = ty;
    let rest = a & !0xf;
    for (bit, flag) in [
        (libc::SOCK_CLOEXEC, "SOCK_CLOEXEC"),
        (libc::SOCK_NONBLOCK, "SOCK_NONBLOCK"),
    ] {
        if rest & bit as u64 != 0 {
            s.push('|');
            s.push_str(flag);
        }
    }
    let unknown = rest & !((libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64);
    if unknown != 0 {
        let _ = write!(s, "|{unknown:#x}");
    }
    s
}

fn ioctl(a: u64) -> String {
    let req = a as u32;
    IOCTLS
        .iter()
        .find(|(_, v)| *v == req)
        .map_or_else(|| format!("{a:#x}"), |(n, _)| (*n).to_owned())
}

/// `O_RDONLY|O_CLOEXEC`: the access mode, then the other flags.
fn open_flags(a: u64) -> String {
    let access = match a as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = a & !(libc::O_ACCMODE as u64);
    if rest == 0 {
        return access.to_owned();
    }
    // O_RDONLY is 0 and O_RDWR/O_WRONLY are access modes, not flags.
    let flags = flag_names::<OFlag>(rest, "");
    format!("{access}|{flags}")
}

fn dirfd(a: u64) -> String {
    if a as i32 == libc::AT_FDCWD {
        "AT_FDCWD".to_owned()
    } else {
        (a as i32).to_string()
    }
}

fn signal_name(a: u64) -> String {
    match i32::try_from(a) {
        Ok(0) => "0".to_owned(),
        Ok(sig) => crate::verdict::signal_name(sig),
        Err(_) => format!("{a:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native(name: &str, args: [u64; 6]) -> String {
        let arch = if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        };
        let nr = groups::number(arch, name).unwrap() as i32;
        describe(audit_arch(arch), nr, args)
    }

    #[test]
    fn test_describe_socket_with_flags_names_every_one() {
        let ty = (libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u64;
        assert_eq!(
            native("socket", [1, ty, 0, 7, 7, 7]),
            "socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, 0)"
        );
        assert_eq!(
            native("socket", [2, 1, 0, 0, 0, 0]),
            "socket(AF_INET, SOCK_STREAM, 0)"
        );
    }

    #[test]
    fn test_describe_shows_the_real_arity() {
        assert_eq!(native("geteuid", [2, 1, 0, 0, 0, 0]), "geteuid()");
        assert_eq!(
            native("personality", [1, 2, 0, 0, 0, 0]),
            "personality(0x1)"
        );
        assert_eq!(native("kill", [5, 15, 9, 9, 9, 9]), "kill(5, SIGTERM)");
    }

    #[test]
    fn test_describe_clone_names_flags_and_exit_signal() {
        let flags = (libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::SIGCHLD) as u64;
        assert_eq!(
            native("clone", [flags, 0, 0, 0, 0, 0]),
            "clone(CLONE_NEWUSER|CLONE_NEWNET|SIGCHLD, 0x0, 0x0, 0x0, 0x0)"
        );
    }

    #[test]
    fn test_describe_mmap_and_openat_decode_their_flags() {
        let prot = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        let map = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
        assert_eq!(
            native("mmap", [0, 4096, prot, map, u64::MAX, 0]),
            "mmap(0x0, 4096, PROT_READ|PROT_EXEC, MAP_PRIVATE|MAP_ANON, -1, 0x0)"
        );
        let flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC) as u64;
        let text = native(
            "openat",
            [libc::AT_FDCWD as u64, 0x1000, flags, 0o644, 0, 0],
        );
        assert_eq!(
            text,
            "openat(AT_FDCWD, 0x1000, O_WRONLY|O_CLOEXEC|O_CREAT, 0o644)"
        );
    }

    #[test]
    fn test_describe_foreign_abis_are_named_as_such() {
        assert_eq!(
            describe(AUDIT_ARCH_I386, 1, [0; 6]),
            "i386 syscall 1 (exit) through int 0x80"
        );
        assert_eq!(
            describe(AUDIT_ARCH_I386, 359, [2, 1, 0, 0, 0, 0]),
            "i386 syscall 359 (socket) through int 0x80"
        );
        assert_eq!(
            describe(audit_arch(Arch::X86_64), (41 | X32_BIT) as i32, [0; 6]),
            "x32 syscall 0x40000029 (socket) through the x32 ABI"
        );
        assert_eq!(
            describe(0xdead, 3, [0; 6]),
            "syscall 3 of foreign architecture 0xdead"
        );
    }

    #[test]
    fn test_arity_table_knows_every_native_syscall() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for nr in 0..1024 {
                if let Some(name) = groups::name_of(arch, nr) {
                    assert!(arity(name).is_some(), "{arch:?} {name}");
                }
            }
        }
    }
}
