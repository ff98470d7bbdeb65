//! The names a policy may use for numbers: errnos, ioctl requests,
//! socket families.

use std::collections::BTreeMap;

/// The errno `errno` table answers syscall `name` with, called with
/// `args`: a family's own entry (`socket(AF_UNIX)`) first, then the
/// syscall's.
pub fn errno_answer(errno: &BTreeMap<String, u16>, name: &str, args: &[u64; 6]) -> Option<u16> {
    if matches!(name, "socket" | "socketpair") {
        if let Some(family) = family_name(args[0] & 0xffff_ffff) {
            if let Some(&e) = errno.get(&format!("{name}({family})")) {
                return Some(e);
            }
        }
    }
    errno.get(name).copied()
}

/// The number of an errno name (`"ENOSYS"` → 38), as this build's libc
/// names them.
pub fn errno_number(name: &str) -> Option<u16> {
    (1..4096)
        .find(|&n| {
            let e = nix::errno::Errno::from_raw(n);
            e != nix::errno::Errno::UnknownErrno && format!("{e:?}") == name
        })
        .and_then(|n| u16::try_from(n).ok())
}

/// Why `write = ["/"]` (or `--rw /`) is refused.
pub const WRITABLE_ROOT: &str = "the host's whole filesystem (/) is never granted for writing: \
     grant the directories the plugin writes, and a private /tmp (tmp = \"64MiB\", --tmp) for scratch files";

/// Syscalls no policy can deny (see `seccomp::ALWAYS`).
pub const UNDENIABLE: &[&str] = &["exit", "exit_group"];

/// Most ioctl requests one policy may allow.
pub const MAX_IOCTLS: usize = 256;

/// ioctl requests a policy may name (x86_64 and aarch64 share these numbers).
pub const IOCTLS: &[(&str, u32)] = &[
    ("TCGETS", 0x5401),
    ("TCSETS", 0x5402),
    ("TIOCGWINSZ", 0x5413),
    ("TIOCGPGRP", 0x540F),
    ("FIONREAD", 0x541B),
    ("FIONBIO", 0x5421),
    ("FIONCLEX", 0x5450),
    ("FIOCLEX", 0x5451),
    ("FIOASYNC", 0x5452),
    ("TIOCSTI", 0x5412),
    ("TIOCLINUX", 0x541C),
];

/// The number of the ioctl request `name` from [`IOCTLS`].
pub fn ioctl_number(name: &str) -> Option<u32> {
    IOCTLS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Socket families a policy may name.
pub const FAMILIES: &[(&str, u32)] = &[
    ("AF_UNIX", libc::AF_UNIX as u32),
    ("AF_INET", libc::AF_INET as u32),
    ("AF_INET6", libc::AF_INET6 as u32),
    ("AF_NETLINK", libc::AF_NETLINK as u32),
    ("AF_PACKET", libc::AF_PACKET as u32),
];

/// The number of the socket family `name` (`AF_INET`).
pub fn socket_family(name: &str) -> Option<u32> {
    FAMILIES.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The name of socket family number `nr`.
pub fn family_name(nr: u64) -> Option<&'static str> {
    FAMILIES
        .iter()
        .find(|(_, v)| u64::from(*v) == nr)
        .map(|(n, _)| *n)
}
