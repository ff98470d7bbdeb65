//! The rlimits and the process count of a profile: what the policy asks
//! for, adjusted to the cgroup controllers this host offers.

/// The cgroup controllers the fork server found.
#[derive(Clone, Copy, Debug)]
pub struct Cgroups<'a> {
    /// Any backend at all (a group per sandbox: tree kill).
    pub active: bool,
    pub memory: bool,
    pub pids: bool,
    /// The backend, described ("none (...)" when absent).
    pub describe: &'a str,
}

/// The profile's rlimits (resource, soft, hard). With a memory cgroup and
/// a memory limit, the cgroup is the real limit (it names an OOM kill):
/// the address-space and data rlimits become a looser backstop, twice the
/// limit or the limit plus 1 GiB, never above the host's own hard limit
/// (`host_hard`) nor below what the policy asked, and still hard = soft.
/// Without a memory cgroup the loss is pushed onto `missing`.
pub fn rlimits(
    asked: &[(u32, u64, u64)],
    memory: Option<u64>,
    cgroups: &Cgroups,
    host_hard: impl Fn(u32) -> u64,
    missing: &mut Vec<String>,
) -> Vec<(u32, u64, u64)> {
    let mut rlimits = asked.to_vec();
    if !cgroups.memory {
        missing.push(format!(
            "memory: no memory cgroup ({}): RLIMIT_AS bounds the address space, and the verdict is memory only when the plugin reports the failed allocation",
            cgroups.describe
        ));
        return rlimits;
    }
    let Some(mem) = memory else {
        return rlimits;
    };
    for r in &mut rlimits {
        if r.0 == libc::RLIMIT_AS || r.0 == libc::RLIMIT_DATA {
            let loose = mem
                .saturating_mul(2)
                .max(mem.saturating_add(1 << 30))
                .min(host_hard(r.0))
                .max(r.1);
            *r = (r.0, loose, loose);
        }
    }
    rlimits
}

/// The sandbox's task limit for its pids cgroup: the policy's, plus one
/// for the init when there is a PID namespace (the init is a task of the
/// sandbox too).
pub fn tasks(pids: Option<u64>, pidns: bool) -> Option<u64> {
    if pidns {
        pids.map(|n| n.saturating_add(1))
    } else {
        pids
    }
}

/// How `limits.processes` is held for a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessLimit {
    /// By the pids cgroup (or there is nothing to hold).
    Cgroup,
    /// By `RLIMIT_NPROC` = this value, hard = soft: not root, in the
    /// plugin's own user namespace (Linux 5.14+), where the kernel counts
    /// per user in each user namespace, so only the sandbox's own tasks.
    Nproc(u64),
    /// Not at all (the reason is in `missing`).
    None,
}

/// Decides how `processes` (the policy's `limits.processes`, 0: none) is
/// held. `tasks` is the sandbox's pids limit, the init included (see
/// [`tasks`]); `nproc_per_userns` whether RLIMIT_NPROC counts per user
/// namespace here (`Err`: why not); `host_nproc_hard` the host's own hard
/// RLIMIT_NPROC. As root the plugin's uid is shared with other workers:
/// no such rlimit.
pub fn process_limit(
    processes: u64,
    tasks: Option<u64>,
    userns: bool,
    nproc_per_userns: Result<(), &str>,
    host_nproc_hard: u64,
    cgroups: &Cgroups,
    missing: &mut Vec<String>,
) -> ProcessLimit {
    if cgroups.pids {
        return ProcessLimit::Cgroup;
    }
    if userns && nproc_per_userns.is_ok() {
        return ProcessLimit::Nproc(tasks.unwrap_or(u64::MAX).min(host_nproc_hard));
    }
    if processes > 0 {
        let why = match nproc_per_userns {
            Err(why) if userns => why,
            _ => "no user namespace to count the plugin's processes in",
        };
        missing.push(format!(
            "process count: no pids cgroup ({}); {why}: limits.processes = {processes} is not enforced",
            cgroups.describe
        ));
    }
    ProcessLimit::None
}

/// Whatever a plugin leaves behind dies with its sandbox when there is a
/// cgroup (killed as a whole) or a PID namespace (its init's exit ends
/// it); without either, a process that left the worker's session may
/// outlive it: pushed onto `missing` when the policy lets the plugin
/// start processes.
pub fn tree_kill(cgroups: &Cgroups, pidns: bool, processes: u64, missing: &mut Vec<String>) {
    if !cgroups.active && !pidns && processes > 0 {
        missing.push(
            "tree kill: no cgroup and no PID namespace: a process that left the worker's session may outlive it".into(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Cgroups = Cgroups {
        active: false,
        memory: false,
        pids: false,
        describe: "none (test)",
    };
    const FULL: Cgroups = Cgroups {
        active: true,
        memory: true,
        pids: true,
        describe: "v2 (test)",
    };
    const GIB: u64 = 1 << 30;

    fn asked() -> Vec<(u32, u64, u64)> {
        vec![
            (libc::RLIMIT_AS, GIB, GIB),
            (libc::RLIMIT_DATA, GIB, GIB),
            (libc::RLIMIT_NOFILE, 64, 64),
        ]
    }

    #[test]
    fn test_a_memory_cgroup_loosens_as_and_data_to_a_backstop() {
        let mut missing = Vec::new();
        let r = rlimits(&asked(), Some(GIB), &FULL, |_| u64::MAX, &mut missing);
        assert_eq!(r[0], (libc::RLIMIT_AS, 2 * GIB, 2 * GIB));
        assert_eq!(r[1], (libc::RLIMIT_DATA, 2 * GIB, 2 * GIB));
        assert_eq!(r[2], (libc::RLIMIT_NOFILE, 64, 64), "others untouched");
        assert!(missing.is_empty());
        // A small limit gets 1 GiB of headroom; never above the host's hard
        // limit, never below what the policy asked.
        let r = rlimits(&asked(), Some(1 << 20), &FULL, |_| u64::MAX, &mut missing);
        assert_eq!(r[0].1, GIB + (1 << 20));
        let r = rlimits(&asked(), Some(GIB), &FULL, |_| GIB / 2, &mut missing);
        assert_eq!(r[0], (libc::RLIMIT_AS, GIB, GIB));
        assert!(r.iter().all(|(_, soft, hard)| soft == hard));
    }

    #[test]
    fn test_without_a_memory_cgroup_the_rlimits_stand_and_the_loss_is_named() {
        let mut missing = Vec::new();
        let r = rlimits(&asked(), Some(GIB), &NONE, |_| u64::MAX, &mut missing);
        assert_eq!(r, asked());
        assert_eq!(missing.len(), 1);
        assert!(missing[0].starts_with("memory: no memory cgroup (none (test))"));
        // With a cgroup but no memory limit: nothing to loosen.
        let mut missing = Vec::new();
        assert_eq!(rlimits(&asked(), None, &FULL, |_| 0, &mut missing), asked());
        assert!(missing.is_empty());
    }

    #[test]
    fn test_the_init_counts_as_a_task() {
        assert_eq!(tasks(Some(4), true), Some(5));
        assert_eq!(tasks(Some(4), false), Some(4));
        assert_eq!(tasks(None, true), None);
        assert_eq!(tasks(Some(u64::MAX), true), Some(u64::MAX));
    }

    #[test]
    fn test_the_process_count_is_held_by_the_cgroup_else_nproc_in_a_userns() {
        let mut missing = Vec::new();
        let held = process_limit(4, Some(5), true, Ok(()), 100, &FULL, &mut missing);
        assert_eq!(held, ProcessLimit::Cgroup);
        let held = process_limit(4, Some(5), true, Ok(()), 100, &NONE, &mut missing);
        assert_eq!(held, ProcessLimit::Nproc(5));
        let held = process_limit(4, Some(500), true, Ok(()), 100, &NONE, &mut missing);
        assert_eq!(
            held,
            ProcessLimit::Nproc(100),
            "never above the host's hard"
        );
        assert!(missing.is_empty());
    }

    #[test]
    fn test_an_unheld_process_count_is_named_with_its_reason() {
        let mut missing = Vec::new();
        let held = process_limit(4, Some(5), true, Err("too old"), 100, &NONE, &mut missing);
        assert_eq!(held, ProcessLimit::None);
        assert!(
            missing[0].contains("too old: limits.processes = 4"),
            "{missing:?}"
        );
        let held = process_limit(4, Some(5), false, Ok(()), 100, &NONE, &mut missing);
        assert_eq!(held, ProcessLimit::None);
        assert!(missing[1].contains("no user namespace"), "{missing:?}");
        // Nothing asked, nothing missing.
        let mut missing = Vec::new();
        process_limit(0, None, false, Ok(()), 100, &NONE, &mut missing);
        assert!(missing.is_empty());
    }

    #[test]
    fn test_tree_kill_is_missing_only_without_cgroup_and_pid_namespace() {
        let mut missing = Vec::new();
        tree_kill(&FULL, false, 4, &mut missing);
        tree_kill(&NONE, true, 4, &mut missing);
        tree_kill(&NONE, false, 0, &mut missing);
        assert!(missing.is_empty());
        tree_kill(&NONE, false, 4, &mut missing);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].starts_with("tree kill"));
    }
}
