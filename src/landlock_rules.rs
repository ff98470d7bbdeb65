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
    let access = if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(ABI_PINNED)
    };
    rs.add_rule(PathBeneath::new(fd, access))
        .map_err(|source| LandlockError::Path {
            path: path.to_path_buf(),
            source,
        })
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
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    for p in &grants.read {
        rs = fs_rule(rs, p, read)?;
    }
    for p in &grants.exec {
        rs = fs_rule(rs, p, read | AccessFs::Execute)?;
    }
    for p in &grants.write {
        rs = fs_rule(rs, p, read | AccessFs::from_write(abi))?;
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
