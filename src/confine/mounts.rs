//! The sandbox's own mounts: which Landlock rights its own `/proc` and
//! its private `/tmp` get, and which grants go to the profile's ruleset.

use std::path::Path;

use crate::landlock_rules::Grants;

/// The rights a sandbox adds to its own ruleset for the mounts that exist
/// only inside it (0: no rule).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnMounts {
    /// On the sandbox's own procfs.
    pub proc_access: u64,
    /// On the sandbox's private /tmp.
    pub tmp_access: u64,
}

/// What a profile asks of `/proc` and `/tmp`, and what its sandboxes have.
#[derive(Clone, Copy, Debug)]
pub struct MountsAsked {
    /// The rights the policy's grants under /proc add up to
    /// (`landlock_rules::proc_access`).
    pub granted_proc: u64,
    /// The rights of a writable /tmp at this ABI
    /// (`landlock_rules::tmp_access`).
    pub tmp_rights: u64,
    /// The size of the private /tmp the policy asks for (0: none).
    pub tmp: u64,
    /// The policy asks for a PID namespace.
    pub wanted_pidns: bool,
    /// The sandbox has a PID namespace.
    pub pidns: bool,
    /// The sandbox has a minimal root.
    pub minimal_root: bool,
}

/// Decides the rules on the sandbox's own mounts. A grant under /proc is
/// a grant on the sandbox's own procfs, which only a PID namespace of its
/// own makes safe: without one the grant is withheld (a procfs would show
/// the host's processes), named in `missing` when the policy wanted that
/// namespace. The private /tmp exists only in a minimal root.
pub fn own_mounts(asked: &MountsAsked, missing: &mut Vec<String>) -> OwnMounts {
    let proc_access = if asked.pidns { asked.granted_proc } else { 0 };
    if asked.granted_proc != 0 && !asked.pidns && asked.wanted_pidns {
        missing.push(
            "pid namespace: the policy's grant of /proc is withheld (without a PID \
             namespace of its own the plugin's /proc would show the host's processes)"
                .into(),
        );
    }
    let tmp_access = if asked.tmp > 0 && asked.minimal_root {
        asked.tmp_rights
    } else {
        0
    };
    if asked.tmp > 0 && !asked.minimal_root {
        missing.push(
            "private /tmp: no minimal root (mount namespace), so no /tmp of its own: the plugin cannot write /tmp".into(),
        );
    }
    OwnMounts {
        proc_access,
        tmp_access,
    }
}

/// The grants the profile's ruleset is built from: every grant but those
/// under /proc (the host's procfs is never granted; the sandbox's own is
/// covered by [`OwnMounts::proc_access`]).
pub fn host_grants(grants: &Grants) -> Grants {
    let mut grants = grants.clone();
    for list in [&mut grants.read, &mut grants.write, &mut grants.exec] {
        list.retain(|p| !p.starts_with(Path::new("/proc")));
    }
    grants
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn asked() -> MountsAsked {
        MountsAsked {
            granted_proc: 0b11,
            tmp_rights: 0b1100,
            tmp: 16 << 20,
            wanted_pidns: true,
            pidns: true,
            minimal_root: true,
        }
    }

    #[test]
    fn test_a_sandbox_with_its_own_pidns_and_root_gets_both_rules() {
        let mut missing = Vec::new();
        let own = own_mounts(&asked(), &mut missing);
        assert_eq!(
            own,
            OwnMounts {
                proc_access: 0b11,
                tmp_access: 0b1100
            }
        );
        assert!(missing.is_empty());
    }

    #[test]
    fn test_proc_is_withheld_without_a_pid_namespace() {
        let mut missing = Vec::new();
        let a = MountsAsked {
            pidns: false,
            ..asked()
        };
        assert_eq!(own_mounts(&a, &mut missing).proc_access, 0);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].starts_with("pid namespace: the policy's grant of /proc"));
        // The policy turned the namespace off itself: nothing to name.
        let mut missing = Vec::new();
        let a = MountsAsked {
            pidns: false,
            wanted_pidns: false,
            ..asked()
        };
        assert_eq!(own_mounts(&a, &mut missing).proc_access, 0);
        assert!(missing.is_empty());
    }

    #[test]
    fn test_tmp_needs_a_minimal_root() {
        let mut missing = Vec::new();
        let a = MountsAsked {
            minimal_root: false,
            ..asked()
        };
        assert_eq!(own_mounts(&a, &mut missing).tmp_access, 0);
        assert!(missing[0].starts_with("private /tmp: no minimal root"));
        let mut missing = Vec::new();
        let a = MountsAsked { tmp: 0, ..asked() };
        assert_eq!(own_mounts(&a, &mut missing).tmp_access, 0);
        assert!(missing.is_empty(), "no /tmp asked, none missing");
    }

    #[test]
    fn test_host_grants_drop_only_proc() {
        let g = Grants {
            read: vec![PathBuf::from("/proc/self"), PathBuf::from("/usr")],
            write: vec![PathBuf::from("/proc"), PathBuf::from("/data")],
            exec: vec![PathBuf::from("/procfoo")],
            ..Grants::default()
        };
        let h = host_grants(&g);
        assert_eq!(h.read, [PathBuf::from("/usr")]);
        assert_eq!(h.write, [PathBuf::from("/data")]);
        assert_eq!(
            h.exec,
            [PathBuf::from("/procfoo")],
            "a path component match"
        );
    }
}
