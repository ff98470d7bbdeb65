//! The road itself: every step between clone and exec, in order, as one
//! flat list written against [`Sys`]. The road runner walks [`road`]; the
//! plugin process it starts walks [`plugin_steps`]. Production runs them
//! on [`super::libc::Libc`] (raw syscalls); the unit test below runs them
//! on a recorder and asserts the order, without root or a child.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{Landlock, OwnRuleset, Plan, RootPlan, Stage, UsernsPlan};

/// What a failing step reports: the stage and the errno.
pub type Failure = (Stage, i32);
/// The outcome of one step.
pub type Step = Result<(), Failure>;

/// The syscalls of the road, one method per named step. Implementations
/// run in the cloned child: no allocation, no locks, no panics.
pub trait Sys {
    /// `setsid`: no controlling terminal.
    fn new_session(&self) -> Step;
    /// An empty signal mask; `ignored` back to their default disposition.
    fn reset_signals(&self, ignored: &[i32]) -> Step;
    /// `dup2(fd, target)`.
    fn dup_stdio(&self, fd: RawFd, target: RawFd) -> Step;
    /// Closes every fd from `from` up but `keep` and `sorted`.
    fn close_others(&self, from: u32, limit: RawFd, keep: [RawFd; 5], sorted: &[RawFd]) -> Step;
    /// Close-on-exec on every fd from `first` up (below `limit` when not -1).
    fn cloexec_from(&self, first: u32, limit: RawFd) -> Step;
    /// setgroups deny, then the uid and gid maps of our user namespace.
    fn map_ids(&self, userns: &UsernsPlan) -> Step;
    /// `setns(fd, CLONE_NEWNET)`.
    fn join_netns(&self, fd: RawFd) -> Step;
    /// `unshare(flags)`.
    fn unshare(&self, flags: i32) -> Step;
    /// `sethostname`.
    fn set_hostname(&self, name: &CStr) -> Step;
    /// The minimal root: join its template or build it, then pivot.
    fn enter_root(&self, root: &RootPlan) -> Step;
    /// A private mount namespace with our own /proc.
    fn mount_own_proc(&self) -> Step;
    /// `chdir`.
    fn chdir(&self, dir: &CStr) -> Step;
    /// Builds the sandbox's own Landlock ruleset; returns its fd.
    fn own_ruleset(&self, own: &OwnRuleset) -> Result<RawFd, Failure>;
    /// Moves the exec fd to `slot`.
    fn move_exe_fd(&self, fd: RawFd, slot: RawFd) -> Step;
    /// `prlimit64` on ourselves.
    fn set_rlimit(&self, resource: u32, soft: u64, hard: u64) -> Step;
    /// `PR_SET_NO_NEW_PRIVS`.
    fn no_new_privs(&self) -> Step;
    /// Root only: no groups, no bounding set, (uid, gid), no capabilities.
    fn drop_identity(&self, uid: u32, gid: u32, last_cap: u32) -> Step;
    /// In our own user namespace: no bounding set, no capabilities.
    fn drop_caps(&self, last_cap: u32) -> Step;
    /// `PR_SET_PDEATHSIG` and the check that `parent` is still our parent.
    fn parent_death(&self, parent: libc::pid_t) -> Step;
    /// `PR_SET_DUMPABLE 0`.
    fn not_dumpable(&self) -> Step;
    /// `landlock_restrict_self(ruleset)`.
    fn landlock_restrict(&self, ruleset: RawFd) -> Step;
    /// Installs the policy's seccomp program; returns the listener.
    fn install_filter(&self, prog: &[seccompiler::sock_filter]) -> Result<RawFd, Failure>;
    /// Execs the plugin; returns only on failure.
    fn exec(&self, plan: &Plan) -> Failure;
}

/// Raises every wall but Landlock and seccomp; returns the Landlock
/// ruleset fd the plugin process restricts itself with.
pub fn road(sys: &impl Sys, plan: &Plan) -> Result<RawFd, Failure> {
    // 1. Session and signals: no controlling terminal (TIOCSTI needs one),
    // default dispositions, nothing blocked.
    if plan.new_session {
        sys.new_session()?;
    }
    sys.reset_signals(plan.ignored_signals)?;

    // 2. Only the intended fds: stdio from the plan, everything else
    // close-on-exec. Every source fd is above 3 (the fork server's own fds
    // 0-3 are never handed out), so no dup2 here overwrites a later source.
    for (target, &fd) in plan.stdio.iter().enumerate() {
        if fd >= 0 && fd != target as RawFd {
            sys.dup_stdio(fd, target as RawFd)?;
        }
    }
    // Close every other fd the fork server had (its socket, other workers'
    // pidfds, ...): nothing may leak into the plugin, and the listener must
    // get a low number under RLIMIT_NOFILE. What the road still needs stays
    // open, close-on-exec.
    let first = if plan.stdio[3] >= 0 { 4 } else { 3 };
    let (ruleset, paths): (RawFd, &[RawFd]) = match plan.landlock {
        Landlock::Profile(fd) => (fd, &[]),
        Landlock::Own(own) => (-1, &own.keep),
    };
    let keep = [
        plan.report,
        plan.exe_fd,
        plan.netns,
        ruleset,
        plan.root.map_or(-1, |r| r.template),
    ];
    sys.close_others(first, plan.fd_limit, keep, paths)?;
    sys.cloexec_from(first, plan.fd_limit)?;

    // 3. Namespaces: as an ordinary user, first map our uid inside the user
    // namespace the fork server cloned us into; then the shared empty
    // network namespace, fresh IPC and UTS (named `plugwarden`), the
    // minimal root or at least our own /proc.
    if let Some(u) = plan.userns {
        sys.map_ids(u)?;
    }
    if plan.netns >= 0 {
        sys.join_netns(plan.netns)?;
    }
    if plan.unshare != 0 {
        sys.unshare(plan.unshare)?;
    }
    if let Some(name) = plan.hostname {
        sys.set_hostname(name)?;
    }
    if let Some(root) = plan.root {
        sys.enter_root(root)?;
    } else if plan.own_proc {
        sys.mount_own_proc()?;
    }
    if let Some(dir) = plan.cwd {
        sys.chdir(dir)?;
    }

    // 4. The sandbox's own Landlock ruleset, now that its mounts exist.
    let ruleset = match plan.landlock {
        Landlock::Own(own) => sys.own_ruleset(own)?,
        Landlock::Profile(fd) => fd,
    };

    // 5. The exec fd to its slot, then the rlimits (which put the slot out
    // of the plugin's reach).
    if plan.exe_slot >= 0 && plan.exe_fd >= 0 {
        sys.move_exe_fd(plan.exe_fd, plan.exe_slot)?;
    }
    for &(resource, soft, hard) in plan.rlimits {
        sys.set_rlimit(resource, soft, hard)?;
    }

    // 6. no_new_privs (once: a credential change keeps it), identity (root
    // only), then the parent-death signal, which a credential change would
    // have cleared.
    sys.no_new_privs()?;
    if let Some((uid, gid)) = plan.identity {
        sys.drop_identity(uid, gid, plan.last_cap)?;
    } else if plan.userns.is_some() {
        // Capabilities held inside our own user namespace go too.
        sys.drop_caps(plan.last_cap)?;
    }
    sys.parent_death(plan.parent)?;
    if plan.init {
        // Nobody may read or trace the init's memory (a copy of the fork
        // server's), not even a plugin of the same uid. (The launcher shares
        // the fork server's memory, so this flag would be the fork
        // server's; the plugin cannot trace the launcher anyway: it is
        // outside the plugin's Landlock domain.)
        sys.not_dumpable()?;
    }
    Ok(ruleset)
}

/// The plugin process between clone and exec: Landlock, seccomp, exec.
/// After the filter is installed the only syscalls are the exec (allowed
/// by a rule only this call can meet) and `exit_group` if it fails.
/// `hand_over` gets the listener before the exec (it is close-on-exec in
/// the fd table shared with the road runner: after the exec only the road
/// runner holds it). Returns only on failure.
pub fn plugin_steps(
    sys: &impl Sys,
    plan: &Plan,
    ruleset: RawFd,
    hand_over: impl FnOnce(RawFd),
) -> Failure {
    let confined = || -> Result<RawFd, Failure> {
        if !plan.init {
            // Our parent is the fork server (CLONE_PARENT): die with it.
            sys.parent_death(plan.fork_server)?;
        }
        // -1 only without Landlock (ABI 0, a weakening the host named); a
        // bad fd fails the spawn at this stage. The ruleset was built with
        // every right of the kernel's ABI as a hard requirement, so it is
        // fully enforced once this succeeds.
        if ruleset >= 0 {
            sys.landlock_restrict(ruleset)?;
        }
        sys.install_filter(plan.filter)
    };
    match confined() {
        Ok(listener) => {
            hand_over(listener);
            sys.exec(plan)
        }
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Records the name of every step; each succeeds but `fail_at`.
    #[derive(Default)]
    struct Recorder {
        steps: RefCell<Vec<&'static str>>,
        fail_at: Option<&'static str>,
    }

    impl Recorder {
        fn note(&self, step: &'static str) -> Step {
            self.steps.borrow_mut().push(step);
            if self.fail_at == Some(step) {
                return Err((Stage::NoNewPrivs, libc::EPERM));
            }
            Ok(())
        }
    }

    impl Sys for Recorder {
        fn new_session(&self) -> Step {
            self.note("session")
        }
        fn reset_signals(&self, _: &[i32]) -> Step {
            self.note("signals")
        }
        fn dup_stdio(&self, _: RawFd, _: RawFd) -> Step {
            self.note("stdio")
        }
        fn close_others(&self, _: u32, _: RawFd, _: [RawFd; 5], _: &[RawFd]) -> Step {
            self.note("close fds")
        }
        fn cloexec_from(&self, _: u32, _: RawFd) -> Step {
            self.note("cloexec fds")
        }
        fn map_ids(&self, _: &UsernsPlan) -> Step {
            self.note("map ids")
        }
        fn join_netns(&self, _: RawFd) -> Step {
            self.note("netns")
        }
        fn unshare(&self, _: i32) -> Step {
            self.note("unshare")
        }
        fn set_hostname(&self, _: &CStr) -> Step {
            self.note("hostname")
        }
        fn enter_root(&self, _: &RootPlan) -> Step {
            self.note("root")
        }
        fn mount_own_proc(&self) -> Step {
            self.note("own proc")
        }
        fn chdir(&self, _: &CStr) -> Step {
            self.note("cwd")
        }
        fn own_ruleset(&self, _: &OwnRuleset) -> Result<RawFd, Failure> {
            self.note("landlock ruleset")?;
            Ok(9)
        }
        fn move_exe_fd(&self, _: RawFd, _: RawFd) -> Step {
            self.note("exec fd")
        }
        fn set_rlimit(&self, _: u32, _: u64, _: u64) -> Step {
            self.note("rlimit")
        }
        fn no_new_privs(&self) -> Step {
            self.note("no_new_privs")
        }
        fn drop_identity(&self, _: u32, _: u32, _: u32) -> Step {
            self.note("ids")
        }
        fn drop_caps(&self, _: u32) -> Step {
            self.note("caps")
        }
        fn parent_death(&self, _: libc::pid_t) -> Step {
            self.note("pdeathsig")
        }
        fn not_dumpable(&self) -> Step {
            self.note("dumpable")
        }
        fn landlock_restrict(&self, _: RawFd) -> Step {
            self.note("landlock")
        }
        fn install_filter(&self, _: &[seccompiler::sock_filter]) -> Result<RawFd, Failure> {
            self.note("seccomp")?;
            Ok(5)
        }
        fn exec(&self, _: &Plan) -> Failure {
            self.steps.borrow_mut().push("exec");
            (Stage::Exec, libc::ENOENT)
        }
    }

    fn plan<'a>(own: &'a OwnRuleset, root: &'a RootPlan, init: bool) -> Plan<'a> {
        Plan {
            stdio: [10, 11, 12, 13],
            report: 14,
            fd_limit: -1,
            new_session: true,
            netns: 15,
            unshare: libc::CLONE_NEWIPC | libc::CLONE_NEWUTS,
            hostname: Some(c"plugwarden"),
            root: Some(root),
            own_proc: false,
            userns: None,
            cwd: Some(c"/"),
            rlimits: &[(libc::RLIMIT_NOFILE, 64, 64), (libc::RLIMIT_AS, 1, 1)],
            landlock: Landlock::Own(own),
            identity: Some((65534, 65534)),
            parent: 0,
            fork_server: 1,
            ignored_signals: &[],
            last_cap: 40,
            filter: &[],
            init_filter: &[],
            exe_fd: 16,
            exe_slot: 100,
            path: c"/bin/true",
            argv: &[std::ptr::null()],
            envp: &[std::ptr::null()],
            init,
            zygote: false,
            plugin_stack: std::ptr::null_mut(),
        }
    }

    fn walk(plan: &Plan) -> (Vec<&'static str>, RawFd) {
        let sys = Recorder::default();
        let ruleset = road(&sys, plan).expect("every step succeeds");
        let mut listener = -1;
        let failure = plugin_steps(&sys, plan, ruleset, |fd| listener = fd);
        assert_eq!(failure, (Stage::Exec, libc::ENOENT));
        (sys.steps.into_inner(), listener)
    }

    /// No Landlock rule and the host's root: the road's steps only.
    fn empty_rules() -> (OwnRuleset, RootPlan) {
        let own = OwnRuleset {
            attr: [0; 3],
            paths: Vec::new(),
            ports: Vec::new(),
            proc_access: 0,
            tmp_access: 0,
            keep: Vec::new(),
        };
        let root = RootPlan {
            mountpoint: c"/".into(),
            opts: c"".into(),
            host_root: None,
            ops: Vec::new(),
            template: -1,
        };
        (own, root)
    }

    #[test]
    fn test_road_raises_the_walls_in_order() {
        let (own, root) = empty_rules();
        let (steps, listener) = walk(&plan(&own, &root, true));
        assert_eq!(
            steps,
            [
                "session",
                "signals",
                "stdio",
                "stdio",
                "stdio",
                "stdio",
                "close fds",
                "cloexec fds",
                "netns",
                "unshare",
                "hostname",
                "root",
                "cwd",
                "landlock ruleset",
                "exec fd",
                "rlimit",
                "rlimit",
                "no_new_privs",
                "ids",
                "pdeathsig",
                "dumpable",
                // the plugin process
                "landlock",
                "seccomp",
                "exec",
            ]
        );
        assert_eq!(listener, 5, "the listener is handed over before the exec");
        assert_eq!(
            steps.iter().filter(|s| **s == "no_new_privs").count(),
            1,
            "no_new_privs is set once"
        );

        // A launcher's plugin process dies with the fork server; the init
        // is not made non-dumpable (it is the fork server's memory).
        let (steps, _) = walk(&plan(&own, &root, false));
        let tail = &steps[steps.len() - 6..];
        assert_eq!(
            tail,
            [
                "ids",
                "pdeathsig",
                "pdeathsig",
                "landlock",
                "seccomp",
                "exec"
            ]
        );
    }

    #[test]
    fn test_a_failing_step_stops_the_road() {
        let (own, root) = empty_rules();
        let sys = Recorder {
            fail_at: Some("no_new_privs"),
            ..Recorder::default()
        };
        let failed = road(&sys, &plan(&own, &root, true));
        assert_eq!(failed, Err((Stage::NoNewPrivs, libc::EPERM)));
        assert_eq!(sys.steps.borrow().last(), Some(&"no_new_privs"));
    }
}
