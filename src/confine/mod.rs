//! Pure decisions from what a profile asks for and what this host can do
//! to what each child applies: no syscalls, so every branch is
//! unit-tested here. The fork server's `prepare` (src/spawn/prepare.rs)
//! calls them and carries out the result.
//!
//! The rooms: this file decides the namespaces; `limits.rs` the rlimits
//! and the process count; `mounts.rs` the rules on the sandbox's own
//! `/proc` and `/tmp`.

mod limits;
mod mounts;

pub use limits::{process_limit, rlimits, tasks, tree_kill, Cgroups, ProcessLimit};
pub use mounts::{host_grants, own_mounts, MountsAsked};

/// What the fork server found it can do on this host.
#[derive(Clone, Copy, Debug)]
pub struct Host<'a> {
    pub is_root: bool,
    /// Whether an ordinary user can have a user namespace here (and why not).
    pub userns: Result<(), &'a str>,
    /// The fork server holds a shared empty network namespace.
    pub shared_netns: bool,
    /// The fork server has a directory to build minimal roots on.
    pub root_dir: bool,
}

/// The namespaces each child of a profile enters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// CLONE_* flags the road unshares (IPC, UTS, and NET when not joined).
    pub unshare: u64,
    /// Join the fork server's shared empty network namespace.
    pub join_net: bool,
    /// Cloned into a new user namespace (an ordinary user's way in).
    pub userns: bool,
    pub pidns: bool,
    /// A minimal root in a mount namespace of its own.
    pub minimal_root: bool,
    /// Without a minimal root but with a PID namespace: a private mount
    /// namespace with the sandbox's own /proc.
    pub own_proc: bool,
}

impl Namespaces {
    /// Decides from the `CLONE_*` flags a policy wants; pushes onto
    /// `missing` what cannot be had here.
    pub fn decide(wanted: u64, host: &Host, missing: &mut Vec<String>) -> Self {
        let flag = |f: i32| f as u64;
        let userns = !host.is_root && host.userns.is_ok() && wanted != 0;
        let (unshare, join_net) = if host.is_root {
            (
                wanted & flag(libc::CLONE_NEWIPC | libc::CLONE_NEWUTS),
                wanted & flag(libc::CLONE_NEWNET) != 0 && host.shared_netns,
            )
        } else if userns {
            // No shared namespace to join without privilege: a fresh one each.
            let fresh = libc::CLONE_NEWIPC | libc::CLONE_NEWUTS | libc::CLONE_NEWNET;
            (wanted & flag(fresh), false)
        } else {
            if let Err(why) = host.userns {
                missing.push(format!(
                    "user namespaces unavailable ({why}): no namespaces and no minimal root; \
                     no_new_privs, Landlock, seccomp and rlimits still apply"
                ));
            }
            (0, false)
        };
        let pidns = (host.is_root || userns) && wanted & flag(libc::CLONE_NEWPID) != 0;
        let minimal_root = wanted & flag(libc::CLONE_NEWNS) != 0 && host.root_dir;
        Namespaces {
            unshare,
            join_net,
            userns,
            pidns,
            minimal_root,
            // With a PID namespace the sandbox always has its own /proc (in
            // the minimal root, or in a private mount namespace without one):
            // a grant under /proc is a grant on that procfs, never the host's.
            own_proc: pidns && !minimal_root,
        }
    }

    /// The `CLONE_*` flags of every namespace a child enters (what
    /// `Walls::namespaces` reports).
    pub fn flags(&self) -> u64 {
        let on = |b: bool, f: i32| if b { f as u64 } else { 0 };
        self.unshare
            | on(self.join_net, libc::CLONE_NEWNET)
            | on(self.pidns, libc::CLONE_NEWPID)
            | on(self.minimal_root || self.own_proc, libc::CLONE_NEWNS)
            | on(self.userns, libc::CLONE_NEWUSER)
    }
}

/// Whether the sandboxes of a profile may be served by a warm zygote
/// (docs/decisions/zygote.md): `enabled` (the host lets no notified call
/// run, and `PLUGWARDEN_NO_ZYGOTE` is unset), a PID namespace (the zygote
/// is its init, which can end every process an input left) and a minimal
/// root (its private /tmp is what the zygote checks is empty, so no
/// grant may be `/` or lie below /tmp: `grant_in_tmp`), and no POSIX
/// message queue the plugin could leave behind (`allows`: whether the
/// profile's seccomp program lets a syscall run; a queue cannot be seen
/// without mounting its filesystem).
pub fn zygote(
    enabled: bool,
    ns: &Namespaces,
    grant_in_tmp: bool,
    allows: impl Fn(&str) -> bool,
) -> bool {
    enabled && ns.pidns && ns.minimal_root && !grant_in_tmp && !allows("mq_open")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: i32 = libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNS;

    fn host(is_root: bool, userns: Result<(), &str>) -> Host<'_> {
        Host {
            is_root,
            userns,
            shared_netns: true,
            root_dir: true,
        }
    }

    #[test]
    fn test_root_joins_the_shared_netns_and_unshares_ipc_uts() {
        let mut missing = Vec::new();
        let ns = Namespaces::decide(ALL as u64, &host(true, Ok(())), &mut missing);
        assert_eq!(ns.unshare, (libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) as u64);
        assert!(ns.join_net && ns.pidns && ns.minimal_root && !ns.own_proc && !ns.userns);
        assert_eq!(ns.flags(), ALL as u64);
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn test_an_ordinary_user_gets_fresh_namespaces_in_its_own_userns() {
        let mut missing = Vec::new();
        let ns = Namespaces::decide(ALL as u64, &host(false, Ok(())), &mut missing);
        assert!(ns.userns && !ns.join_net && ns.pidns);
        assert_eq!(ns.flags(), (ALL | libc::CLONE_NEWUSER) as u64);
        assert!(missing.is_empty());
    }

    #[test]
    fn test_without_userns_nothing_is_entered_and_the_loss_is_named() {
        let mut missing = Vec::new();
        let ns = Namespaces::decide(ALL as u64, &host(false, Err("no")), &mut missing);
        assert_eq!(ns.flags() & !(libc::CLONE_NEWNS as u64), 0);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].starts_with("user namespaces unavailable (no)"));
    }

    #[test]
    fn test_a_pid_namespace_without_minimal_root_mounts_its_own_proc() {
        let mut missing = Vec::new();
        let wanted = libc::CLONE_NEWPID as u64;
        let ns = Namespaces::decide(wanted, &host(true, Ok(())), &mut missing);
        assert!(ns.pidns && ns.own_proc && !ns.minimal_root);
        assert_eq!(ns.flags(), (libc::CLONE_NEWPID | libc::CLONE_NEWNS) as u64);
    }

    #[test]
    fn test_a_zygote_needs_a_pid_namespace_a_minimal_root_and_no_mq_open() {
        let mut missing = Vec::new();
        let full = Namespaces::decide(ALL as u64, &host(true, Ok(())), &mut missing);
        let none = |_: &str| false;
        assert!(zygote(true, &full, false, none));
        assert!(!zygote(false, &full, false, none), "switched off");
        assert!(!zygote(true, &full, true, none), "a grant in /tmp");
        assert!(!zygote(true, &full, false, |name| name == "mq_open"));
        let no_pid = Namespaces::decide(
            (ALL & !libc::CLONE_NEWPID) as u64,
            &host(true, Ok(())),
            &mut missing,
        );
        assert!(!zygote(true, &no_pid, false, none));
        let no_root = Namespaces::decide(
            (ALL & !libc::CLONE_NEWNS) as u64,
            &host(true, Ok(())),
            &mut missing,
        );
        assert!(!zygote(true, &no_root, false, none));
    }
}
