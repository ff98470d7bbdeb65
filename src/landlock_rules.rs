//! Landlock: build the filesystem and network ruleset of one profile, at
//! the best ABI this kernel offers, and say what stands in for each right
//! an older ABI lacks.
//!
//! The ruleset is built at exactly the ABI [`crate::kernel`] reports, as a
//! hard requirement: what it handles is fully enforced once the child
//! restricts itself, and nothing is weakened silently. What that ABI
//! cannot handle is a [`Gap`]: either another wall in force covers the
//! same ground (the empty network namespace for TCP, the PID namespace for
//! signals, the minimal root for truncate, seccomp for device ioctls), or
//! it is a weakening, which the policy's `best_effort` turns into a
//! refusal or a line in the log and in every audit record.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope, ABI,
};
use serde::{Deserialize, Serialize};

use crate::kernel::landlock_since;

/// What a profile grants; paths are absolute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// Read and execute (the executable, interpreters, policy `exec`).
    pub exec: Vec<PathBuf>,
    /// Read files and list directories.
    pub read: Vec<PathBuf>,
    /// Read, write, create, remove beneath.
    pub write: Vec<PathBuf>,
    pub connect_tcp: Vec<u16>,
    pub bind_tcp: Vec<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("landlock ABI {abi:?} cannot be enforced by this kernel ({source}); see `plugwarden doctor`")]
    Unsupported {
        abi: ABI,
        #[source]
        source: landlock::RulesetError,
    },
    #[error("cannot grant {path}: {source}")]
    Path {
        path: PathBuf,
        #[source]
        source: landlock::RulesetError,
    },
}

fn fs_rule(
    rs: RulesetCreated,
    abi: ABI,
    path: &Path,
    access: landlock::BitFlags<AccessFs>,
) -> Result<RulesetCreated, LandlockError> {
    let fd = match PathFd::new(path) {
        Ok(fd) => fd,
        Err(_) => {
            // A grant for something that does not exist grants nothing; say so.
            tracing::debug!(path = %path.display(), "landlock grant skipped: path does not exist");
            return Ok(rs);
        }
    };
    rs.add_rule(PathBeneath::new(fd, path_access(path, access, abi)))
        .map_err(|source| LandlockError::Path {
            path: path.to_path_buf(),
            source,
        })
}

/// What a rule on `path` may grant: file rights only on a file.
fn path_access(
    path: &Path,
    access: landlock::BitFlags<AccessFs>,
    abi: ABI,
) -> landlock::BitFlags<AccessFs> {
    if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(abi)
    }
}

/// The rights each grant list gives at `abi`, in [`build`]'s order.
fn grant_lists(grants: &Grants, abi: ABI) -> [(&[PathBuf], landlock::BitFlags<AccessFs>); 3] {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    [
        (&grants.read, read),
        (&grants.exec, read | AccessFs::Execute),
        (&grants.write, read | AccessFs::from_write(abi)),
    ]
}

/// What a ruleset at `abi` handles (denies unless granted): filesystem
/// rights, TCP rights (ABI 4+) and scopes (ABI 6+). [`build`] and [`raw`]
/// both take it from here, so a sandbox's own ruleset handles exactly what
/// the profile's does.
fn handled(
    abi: ABI,
) -> (
    landlock::BitFlags<AccessFs>,
    landlock::BitFlags<AccessNet>,
    landlock::BitFlags<Scope>,
) {
    (
        AccessFs::from_all(abi),
        AccessNet::from_all(abi),
        Scope::from_all(abi),
    )
}

/// [`build`]'s ruleset as raw values, for a sandbox that builds its own
/// (`child::OwnRuleset`, to add rules for its own mounts): the handled
/// rights (fs, net, scoped), each path rule with an `O_PATH` fd, each port
/// rule. Paths that do not exist are left out, as in [`build`].
pub struct Raw {
    pub attr: [u64; 3],
    pub paths: Vec<(std::os::fd::OwnedFd, u64)>,
    pub ports: Vec<(u64, u64)>,
}

/// [`build`]'s ruleset at `abi` in raw form; `None` without Landlock
/// (ABI 0), where [`build`] makes no ruleset either.
pub fn raw(grants: &Grants, abi: ABI) -> Option<Raw> {
    if abi == ABI::Unsupported {
        return None;
    }
    let mut paths = Vec::new();
    for (list, access) in grant_lists(grants, abi) {
        for p in list {
            let fd = nix::fcntl::open(
                p.as_path(),
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            );
            if let Ok(fd) = fd {
                paths.push((fd, path_access(p, access, abi).bits()));
            }
        }
    }
    let (fs, net, scopes) = handled(abi);
    // Before ABI 4 no TCP right is handled, and a port rule would be refused.
    let ports = if net.is_empty() {
        Vec::new()
    } else {
        let connect = landlock::BitFlags::from(AccessNet::ConnectTcp).bits();
        let bind = landlock::BitFlags::from(AccessNet::BindTcp).bits();
        grants
            .connect_tcp
            .iter()
            .map(|&p| (connect, u64::from(p)))
            .chain(grants.bind_tcp.iter().map(|&p| (bind, u64::from(p))))
            .collect()
    };
    Some(Raw {
        attr: [fs.bits(), net.bits(), scopes.bits()],
        paths,
        ports,
    })
}

/// The rights a grant of `/proc` (or a path below it) gives at `abi` on
/// the sandbox's own procfs: the union of the lists naming one (0 without
/// Landlock).
pub fn proc_access(grants: &Grants, abi: ABI) -> u64 {
    if abi == ABI::Unsupported {
        return 0;
    }
    grant_lists(grants, abi)
        .into_iter()
        .filter(|(list, _)| list.iter().any(|p| p.starts_with("/proc")))
        .fold(0, |acc, (_, access)| acc | access.bits())
}

/// The rights a sandbox's private writable /tmp gets at `abi`: those of a
/// `write` grant (0 without Landlock).
pub fn tmp_access(abi: ABI) -> u64 {
    if abi == ABI::Unsupported {
        return 0;
    }
    (AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::from_write(abi)).bits()
}

/// Builds the ruleset at `abi` (in the fork server, once per profile):
/// every right of that ABI handled, denied unless granted. `None` without
/// Landlock (ABI 0).
pub fn build(grants: &Grants, abi: ABI) -> Result<Option<RulesetCreated>, LandlockError> {
    if abi == ABI::Unsupported {
        return Ok(None);
    }
    let unsupported = |source| LandlockError::Unsupported { abi, source };
    let (fs, net, scopes) = handled(abi);
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(fs)
        .map_err(unsupported)?;
    // Before ABI 4 there is no TCP right, before ABI 6 no scope: handling
    // an empty set is an error, not a no-op.
    if !net.is_empty() {
        rs = rs.handle_access(net).map_err(unsupported)?;
    }
    if !scopes.is_empty() {
        rs = rs.scope(scopes).map_err(unsupported)?;
    }
    let mut rs = rs.create().map_err(unsupported)?;
    for (list, access) in grant_lists(grants, abi) {
        for p in list {
            rs = fs_rule(rs, abi, p, access)?;
        }
    }
    if !net.is_empty() {
        for &port in &grants.connect_tcp {
            rs = rs
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(unsupported)?;
        }
        for &port in &grants.bind_tcp {
            rs = rs
                .add_rule(NetPort::new(port, AccessNet::BindTcp))
                .map_err(unsupported)?;
        }
    }
    Ok(Some(rs))
}

/// The walls in force around the ruleset that can stand in for a right
/// the Landlock ABI lacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cover {
    /// The plugin is in an empty network namespace.
    pub net_ns: bool,
    /// The plugin has its own PID namespace.
    pub pid_ns: bool,
    /// The plugin sees only the minimal root (read-only binds but for
    /// write grants).
    pub minimal_root: bool,
    /// The policy grants TCP ports.
    pub tcp_grants: bool,
    /// seccomp lets `socket()` make AF_INET or AF_INET6 sockets.
    pub inet_sockets: bool,
    /// seccomp lets `socket()` make AF_UNIX sockets.
    pub unix_sockets: bool,
}

/// A right the Landlock ABI in use lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    /// What Landlock would have enforced.
    pub right: &'static str,
    /// The ABI that has it.
    pub abi: u8,
    /// `Ok(wall)`: another wall in force covers it; `Err(loss)`: what the
    /// plugin can do that Landlock would have stopped.
    pub cover: Result<&'static str, &'static str>,
}

impl Gap {
    /// One line for doctor, the log and the audit notes.
    pub fn describe(&self) -> String {
        let (major, minor) = landlock_since(self.abi);
        let head = format!(
            "landlock {} (ABI {}, Linux {major}.{minor})",
            self.right, self.abi
        );
        match self.cover {
            Ok(wall) => format!("{head} missing, covered by {wall}"),
            Err(loss) => format!("{head} missing: {loss}"),
        }
    }
}

/// The rights Landlock ABI `abi` lacks, each with what covers it.
pub fn gaps(abi: u8, c: &Cover) -> Vec<Gap> {
    let gap = |right, abi, cover| Gap { right, abi, cover };
    let mut out = Vec::new();
    if abi == 0 {
        out.push(gap(
            "file rules",
            1,
            Err(if c.minimal_root {
                "files are limited only by the minimal root (what is bound in may be read and executed; Unix permissions decide writes to write grants)"
            } else {
                "no file limits beyond Unix permissions"
            }),
        ));
    }
    if abi == 1 {
        out.push(gap(
            "rename and link across directories (refer)",
            2,
            Ok("ABI 1 itself, which refuses every rename and link across directories (stricter)"),
        ));
    }
    if abi < 3 {
        out.push(gap(
            "truncate",
            3,
            if c.minimal_root {
                Ok("the minimal root (everything but the write grants is a read-only bind)")
            } else {
                Err("truncate(2) and O_TRUNC reach any file Unix permissions allow")
            },
        ));
    }
    if abi < 4 {
        out.push(gap(
            "TCP bind and connect",
            4,
            if c.net_ns {
                Ok("the empty network namespace (there is nothing to connect to or bind on)")
            } else if c.tcp_grants || c.inet_sockets {
                Err("any TCP port may be connected to or bound, not only the policy's")
            } else {
                Ok("seccomp (socket() may not create AF_INET or AF_INET6 sockets)")
            },
        ));
    }
    if abi < 5 {
        out.push(gap(
            "device ioctls",
            5,
            Ok("seccomp (only the policy's ioctl requests pass)"),
        ));
    }
    if abi < 6 {
        out.push(gap(
            "signal scope",
            6,
            if c.pid_ns {
                Ok("the PID namespace (no process outside it can be named)")
            } else {
                Err("signals may reach processes of the same user outside the sandbox")
            },
        ));
        out.push(gap(
            "abstract unix socket scope",
            6,
            if c.net_ns {
                Ok("the empty network namespace (abstract sockets belong to a network namespace)")
            } else if c.unix_sockets {
                Err("abstract unix sockets outside the sandbox may be reached")
            } else {
                Ok("seccomp (socket() may not create AF_UNIX sockets)")
            },
        ));
    }
    if (1..7).contains(&abi) {
        out.push(gap(
            "audit logging of denials",
            7,
            Ok("the lower ABI itself: ABI 7 adds only the kernel's audit records of denials, no right"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_walls() -> Cover {
        Cover {
            net_ns: true,
            pid_ns: true,
            minimal_root: true,
            ..Cover::default()
        }
    }

    #[test]
    fn test_gaps_abi_7_has_none() {
        assert!(gaps(7, &Cover::default()).is_empty());
    }

    #[test]
    fn test_gaps_abi_1_under_every_namespace_are_all_covered() {
        let g = gaps(1, &all_walls());
        assert_eq!(g.len(), 7);
        assert!(g.iter().all(|g| g.cover.is_ok()), "{g:?}");
    }

    #[test]
    fn test_gaps_abi_4_without_namespaces_lose_the_scopes() {
        let c = Cover {
            unix_sockets: true,
            ..Cover::default()
        };
        let lost: Vec<&str> = gaps(4, &c)
            .iter()
            .filter(|g| g.cover.is_err())
            .map(|g| g.right)
            .collect();
        assert_eq!(lost, ["signal scope", "abstract unix socket scope"]);
    }

    #[test]
    fn test_gaps_tcp_grants_without_a_network_namespace_are_a_loss() {
        let c = Cover {
            tcp_grants: true,
            ..all_walls()
        };
        let tcp = |c: &Cover| gaps(3, c).into_iter().find(|g| g.abi == 4).unwrap();
        assert!(tcp(&c).cover.is_ok(), "the empty namespace still covers");
        let c = Cover { net_ns: false, ..c };
        assert!(tcp(&c).cover.is_err());
        assert_eq!(
            tcp(&c).describe(),
            "landlock TCP bind and connect (ABI 4, Linux 6.7) missing: any TCP port may be connected to or bound, not only the policy's"
        );
    }

    #[test]
    fn test_gaps_without_landlock_name_the_file_rules() {
        let g = gaps(0, &all_walls());
        assert_eq!(g[0].right, "file rules");
        assert!(g[0].cover.is_err());
    }

    #[test]
    fn test_raw_rules_carry_the_uapi_bits() {
        let grants = Grants {
            read: vec![PathBuf::from("/usr"), PathBuf::from("/no/such/path")],
            exec: vec![PathBuf::from("/bin/true")],
            connect_tcp: vec![443],
            bind_tcp: vec![8080],
            ..Grants::default()
        };
        let raw = raw(&grants, ABI::V7).unwrap();
        // LANDLOCK_ACCESS_NET_BIND_TCP = 1, CONNECT_TCP = 2.
        assert_eq!(raw.ports, vec![(2, 443), (1, 8080)]);
        // A missing path grants nothing; a file gets file rights only.
        assert_eq!(raw.paths.len(), 2);
        let read_dir = 1 << 3; // LANDLOCK_ACCESS_FS_READ_DIR
        let execute = 1 << 0;
        assert_ne!(raw.paths[0].1 & read_dir, 0);
        assert_eq!(raw.paths[1].1 & read_dir, 0);
        assert_ne!(raw.paths[1].1 & execute, 0);
        assert_eq!(raw.attr[0], AccessFs::from_all(ABI::V7).bits());
    }

    #[test]
    fn test_raw_handles_what_build_handles_at_every_abi() {
        let grants = Grants {
            read: vec![PathBuf::from("/usr")],
            connect_tcp: vec![443],
            ..Grants::default()
        };
        assert!(raw(&grants, ABI::Unsupported).is_none());
        assert!(build(&grants, ABI::Unsupported).unwrap().is_none());
        let uapi: [u64; 8] = [0, 0x1fff, 0x3fff, 0x7fff, 0x7fff, 0xffff, 0xffff, 0xffff];
        for n in 1..=7 {
            let abi = ABI::from(n);
            let (fs, net, scopes) = handled(abi);
            let raw = raw(&grants, abi).unwrap();
            assert_eq!(raw.attr, [fs.bits(), net.bits(), scopes.bits()], "ABI {n}");
            // The kernel's own numbers (uapi/linux/landlock.h), not the
            // crate's: the raw ruleset goes straight to the syscall.
            assert_eq!(raw.attr[0], uapi[n as usize], "ABI {n}");
            assert_eq!(raw.attr[1], if n >= 4 { 3 } else { 0 }, "ABI {n}");
            assert_eq!(raw.attr[2], if n >= 6 { 3 } else { 0 }, "ABI {n}");
            // No port rule where no TCP right is handled.
            assert_eq!(raw.ports.is_empty(), n < 4, "ABI {n}");
        }
    }

    #[test]
    fn test_proc_access_is_the_union_of_the_lists_naming_it() {
        let grants = Grants {
            read: vec![PathBuf::from("/proc")],
            ..Grants::default()
        };
        let read = (AccessFs::ReadFile | AccessFs::ReadDir).bits();
        assert_eq!(proc_access(&grants, ABI::V7), read);
        assert_eq!(proc_access(&grants, ABI::Unsupported), 0);
        assert_eq!(proc_access(&Grants::default(), ABI::V7), 0);
    }
}
