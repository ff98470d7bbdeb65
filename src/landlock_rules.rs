//! Landlock: build the filesystem and network ruleset of one profile.
//!
//! The ABI is pinned ([`ABI`]) and requested as a hard requirement, so a
//! kernel that cannot enforce every right fails loudly here instead of
//! silently weakening the sandbox: a ruleset that builds is fully enforced
//! once the child restricts itself with it.
//! Every filesystem and TCP right is handled (denied unless granted), and
//! signals and abstract unix sockets are scoped to the sandbox.

use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, Scope, ABI,
};
use serde::{Deserialize, Serialize};

/// The Landlock ABI plugwarden is tested against (Linux 6.15+: scopes and audit flags).
pub const ABI_PINNED: ABI = ABI::V7;

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
    #[error("landlock ABI {abi:?} cannot be fully enforced by this kernel ({source}); plugwarden needs Linux 6.12 or later with Landlock enabled (see `plugwarden doctor`)")]
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
    rs.add_rule(PathBeneath::new(fd, path_access(path, access)))
        .map_err(|source| LandlockError::Path {
            path: path.to_path_buf(),
            source,
        })
}

/// What a rule on `path` may grant: file rights only on a file.
fn path_access(path: &Path, access: landlock::BitFlags<AccessFs>) -> landlock::BitFlags<AccessFs> {
    if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(ABI_PINNED)
    }
}

/// The rights each grant list gives, in [`build`]'s order.
fn grant_lists(grants: &Grants) -> [(&[PathBuf], landlock::BitFlags<AccessFs>); 3] {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    [
        (&grants.read, read),
        (&grants.exec, read | AccessFs::Execute),
        (&grants.write, read | AccessFs::from_write(ABI_PINNED)),
    ]
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

pub fn raw(grants: &Grants) -> Raw {
    let abi = ABI_PINNED;
    let mut paths = Vec::new();
    for (list, access) in grant_lists(grants) {
        for p in list {
            let fd = nix::fcntl::open(
                p.as_path(),
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            );
            if let Ok(fd) = fd {
                paths.push((fd, path_access(p, access).bits()));
            }
        }
    }
    let connect = landlock::BitFlags::from(AccessNet::ConnectTcp).bits();
    let bind = landlock::BitFlags::from(AccessNet::BindTcp).bits();
    let ports = grants
        .connect_tcp
        .iter()
        .map(|&p| (connect, u64::from(p)))
        .chain(grants.bind_tcp.iter().map(|&p| (bind, u64::from(p))))
        .collect();
    Raw {
        attr: [
            AccessFs::from_all(abi).bits(),
            AccessNet::from_all(abi).bits(),
            Scope::from_all(abi).bits(),
        ],
        paths,
        ports,
    }
}

/// The rights a grant of `/proc` (or a path below it) gives on the
/// sandbox's own procfs: the union of the lists naming one.
pub fn proc_access(grants: &Grants) -> u64 {
    grant_lists(grants)
        .into_iter()
        .filter(|(list, _)| list.iter().any(|p| p.starts_with("/proc")))
        .fold(0, |acc, (_, access)| acc | access.bits())
}

/// Builds the ruleset (in the fork server, once per profile).
pub fn build(grants: &Grants) -> Result<RulesetCreated, LandlockError> {
    let abi = ABI_PINNED;
    let unsupported = |source| LandlockError::Unsupported { abi, source };
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .map_err(unsupported)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(unsupported)?
        .scope(Scope::from_all(abi))
        .map_err(unsupported)?
        .create()
        .map_err(unsupported)?;
    for (list, access) in grant_lists(grants) {
        for p in list {
            rs = fs_rule(rs, p, access)?;
        }
    }
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
    Ok(rs)
}

/// The Landlock ABI this kernel offers (0 = none).
pub fn kernel_abi() -> i64 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
    // only returns the ABI version; no memory is passed.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    }
    .max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_raw_rules_carry_the_uapi_bits() {
        let grants = Grants {
            read: vec![PathBuf::from("/usr"), PathBuf::from("/no/such/path")],
            exec: vec![PathBuf::from("/bin/true")],
            connect_tcp: vec![443],
            bind_tcp: vec![8080],
            ..Grants::default()
        };
        let raw = raw(&grants);
        // LANDLOCK_ACCESS_NET_BIND_TCP = 1, CONNECT_TCP = 2.
        assert_eq!(raw.ports, vec![(2, 443), (1, 8080)]);
        // A missing path grants nothing; a file gets file rights only.
        assert_eq!(raw.paths.len(), 2);
        let read_dir = 1 << 3; // LANDLOCK_ACCESS_FS_READ_DIR
        let execute = 1 << 0;
        assert_ne!(raw.paths[0].1 & read_dir, 0);
        assert_eq!(raw.paths[1].1 & read_dir, 0);
        assert_ne!(raw.paths[1].1 & execute, 0);
        assert_eq!(raw.attr[0], AccessFs::from_all(ABI_PINNED).bits());
    }

    #[test]
    fn test_proc_access_is_the_union_of_the_lists_naming_it() {
        let grants = Grants {
            read: vec![PathBuf::from("/proc")],
            ..Grants::default()
        };
        let read = (AccessFs::ReadFile | AccessFs::ReadDir).bits();
        assert_eq!(proc_access(&grants), read);
        assert_eq!(proc_access(&Grants::default()), 0);
    }
}
