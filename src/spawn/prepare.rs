//! Preparing a profile once: the exec fd and strings, the Landlock
//! ruleset, the BPF programs, the root layout and its template.

use super::*;

impl Server {
    /// Prepares a profile: the exec strings, the walls this host can raise
    /// (confine's decisions carried out), the Landlock ruleset, the root.
    pub(super) fn prepare(&self, spec: &ProfileSpec) -> Result<Prepared, ServerError> {
        let (exe_fd, path, argv_s, env_s) = exec_strings(spec)?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain([std::ptr::null()])
                .collect::<Vec<_>>()
        };
        let (argv, envp) = (ptrs(&argv_s), ptrs(&env_s));
        let mut walls = Walls {
            cgroups: self.cgroups.describe(),
            cgroups_active: self.cgroups.is_active(),
            landlock_abi: crate::kernel::kernel().landlock_abi,
            ..Walls::default()
        };
        let (ns, rlimits, cgroup) = self.limits(spec, &mut walls.missing);
        let (grants, landlock) = profile_landlock(spec, &ns, &mut walls.missing)?;
        let (root, template) = self.root(spec, &ns, &grants)?;
        walls.minimal_root = root.is_some();
        walls.namespaces = ns.flags();
        let filter: Vec<_> = spec
            .filter
            .iter()
            .map(|&(code, jt, jf, k)| seccompiler::sock_filter { code, jt, jf, k })
            .collect();
        let zygote = zygote_allowed(
            self.zygote_enabled && spec.zygote,
            &ns,
            &spec.grants,
            &filter,
        );
        Ok(Prepared {
            zygote,
            landlock,
            filter,
            exe_slot: if exe_fd.is_some() { spec.exe_slot } else { -1 },
            exe_fd,
            path,
            _strings: argv_s.into_iter().chain(env_s).collect(),
            argv,
            envp,
            rlimits,
            identity: if self.is_root { spec.identity } else { None },
            new_session: spec.new_session,
            cgroup,
            unshare: ns.unshare,
            join_net: ns.join_net,
            pidns: ns.pidns,
            own_proc: ns.own_proc,
            root,
            _root_template: template,
            userns: ns.userns.then(crate::kernel::userns_plan),
            cwd: spec
                .cwd
                .as_ref()
                .map(|d| cstr(d.as_os_str().as_bytes()))
                .transpose()?,
            walls,
        })
    }

    /// The namespaces, rlimits and cgroup limits of a profile on this
    /// host (confine's decisions); pushes what cannot be had onto
    /// `missing`.
    fn limits(
        &self,
        spec: &ProfileSpec,
        missing: &mut Vec<String>,
    ) -> (
        confine::Namespaces,
        Vec<(u32, u64, u64)>,
        crate::cgroup::Limits,
    ) {
        use crate::kernel::Feature;
        let describe = self.cgroups.describe();
        let cgroups = confine::Cgroups {
            active: self.cgroups.is_active(),
            memory: self.cgroups.has_memory(),
            pids: self.cgroups.has_pids(),
            describe: &describe,
        };
        let host_hard = |resource: u32| {
            let mut lim = libc::rlimit64 {
                rlim_cur: u64::MAX,
                rlim_max: u64::MAX,
            };
            // SAFETY: getrlimit64 writes one struct on our stack.
            unsafe { libc::getrlimit64(resource as _, &mut lim) };
            lim.rlim_max
        };
        let mut rlimits = confine::rlimits(
            &spec.rlimits,
            spec.cgroup.memory,
            &cgroups,
            host_hard,
            missing,
        );
        let host = confine::Host {
            is_root: self.is_root,
            userns: self.userns.as_ref().map_err(String::as_str).copied(),
            shared_netns: self.netns.is_some(),
            root_dir: self.root_dir.is_some(),
        };
        let ns = confine::Namespaces::decide(spec.namespaces, &host, missing);
        let mut cgroup = spec.cgroup;
        cgroup.pids = confine::tasks(cgroup.pids, ns.pidns);
        let feature = Feature::NprocPerUserns;
        let nproc_per_userns = if crate::kernel::kernel().has(feature) {
            Ok(())
        } else {
            Err(feature.without())
        };
        let held = confine::process_limit(
            spec.processes,
            cgroup.pids,
            ns.userns,
            nproc_per_userns,
            host_hard(libc::RLIMIT_NPROC),
            &cgroups,
            missing,
        );
        if let confine::ProcessLimit::Nproc(n) = held {
            rlimits.push((libc::RLIMIT_NPROC, n, n));
        }
        confine::tree_kill(&cgroups, ns.pidns, spec.processes, missing);
        (ns, rlimits, cgroup)
    }

    /// The minimal root of a profile (when it has one) and, as root, the
    /// template mount namespace every child of the profile joins a copy of
    /// (a child in its own user namespace could not join it).
    fn root(
        &self,
        spec: &ProfileSpec,
        ns: &confine::Namespaces,
        grants: &Grants,
    ) -> Result<(Option<child::RootPlan>, Option<OwnedFd>), ServerError> {
        let mut root = match (&self.root_dir, ns.minimal_root) {
            (Some(dir), true) => Some(root_plan(dir, grants, ns.pidns, spec.tmp)?),
            _ => None,
        };
        let template = root
            .as_ref()
            .filter(|_| self.is_root)
            .and_then(|r| root_template(r, grants));
        if let (Some(r), Some(t)) = (&mut root, &template) {
            r.template = t.as_raw_fd();
        }
        Ok((root, template))
    }
}

/// The profile's Landlock rules: the grants its ruleset is built from
/// (none under /proc) and the ruleset, shared or (with rules on the
/// sandbox's own /proc or /tmp) in the raw form each sandbox builds its
/// own from.
fn profile_landlock(
    spec: &ProfileSpec,
    ns: &confine::Namespaces,
    missing: &mut Vec<String>,
) -> Result<(Grants, ProfileLandlock), ServerError> {
    let abi = crate::kernel::kernel().landlock();
    let own = confine::own_mounts(
        &confine::MountsAsked {
            granted_proc: landlock_rules::proc_access(&spec.grants, abi),
            tmp_rights: landlock_rules::tmp_access(abi),
            tmp: spec.tmp,
            wanted_pidns: spec.namespaces & libc::CLONE_NEWPID as u64 != 0,
            pidns: ns.pidns,
            minimal_root: ns.minimal_root,
        },
        missing,
    );
    let grants = confine::host_grants(&spec.grants);
    // Built (and its hard requirements checked) even when each sandbox
    // builds its own from the raw rules.
    let ruleset = match landlock_rules::build(&grants, abi)? {
        Some(rs) => Some(Option::<OwnedFd>::from(rs).ok_or(ServerError::Broken(
            "landlock ruleset has no fd on this kernel",
        ))?),
        None => None,
    };
    // Both are 0 without Landlock (then there is no raw form).
    let raw = (own.proc_access != 0 || own.tmp_access != 0)
        .then(|| landlock_rules::raw(&grants, abi))
        .flatten();
    let landlock = own_landlock(raw, own.proc_access, own.tmp_access, ruleset);
    Ok((grants, landlock))
}

/// The exec fd (when exec'ing by fd) and the exec strings of a profile.
#[allow(clippy::type_complexity)]
fn exec_strings(
    spec: &ProfileSpec,
) -> Result<(Option<OwnedFd>, CString, Vec<CString>, Vec<CString>), ServerError> {
    let exe_fd = if spec.exec_by_fd {
        let fd = nix::fcntl::open(
            &spec.exe,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|source| ServerError::Open {
            path: spec.exe.clone(),
            source,
        })?;
        Some(fd)
    } else {
        None
    };
    let path = cstr(spec.exe.as_os_str().as_bytes())?;
    let argv_s: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    let env_s: Vec<CString> = spec
        .env
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<_, _>>()?;
    Ok((exe_fd, path, argv_s, env_s))
}

/// A C string of `s`, refused when it holds a NUL byte.
fn cstr(s: &[u8]) -> Result<CString, ServerError> {
    CString::new(s).map_err(|_| ServerError::Broken("argument or environment contains a NUL byte"))
}

/// The profile's Landlock ruleset: shared by every sandbox, or (with rules
/// for the sandbox's own /proc or /tmp) the raw rules each sandbox builds
/// its own from.
fn own_landlock(
    raw: Option<landlock_rules::Raw>,
    proc_access: u64,
    tmp_access: u64,
    ruleset: Option<OwnedFd>,
) -> ProfileLandlock {
    if let Some(raw) = raw {
        let mut keep: Vec<RawFd> = raw.paths.iter().map(|(fd, _)| fd.as_raw_fd()).collect();
        keep.sort_unstable();
        let own = child::OwnRuleset {
            attr: raw.attr,
            paths: raw
                .paths
                .iter()
                .map(|(fd, a)| (fd.as_raw_fd(), *a))
                .collect(),
            ports: raw.ports,
            proc_access,
            tmp_access,
            keep,
        };
        ProfileLandlock::Own {
            rules: own,
            _fds: raw.paths.into_iter().map(|(fd, _)| fd).collect(),
        }
    } else {
        ProfileLandlock::Shared(ruleset)
    }
}
