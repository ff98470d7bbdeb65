//! Preparing a profile once: the exec fd and strings, the Landlock
//! ruleset, the BPF programs, the root layout and its template.

use super::*;

impl Server {
    pub(super) fn prepare(&self, spec: &ProfileSpec) -> Result<Prepared, ServerError> {
        let kernel = crate::kernel::kernel();
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
            landlock_abi: kernel.landlock_abi,
            ..Walls::default()
        };
        let mut rlimits = self.rlimits(spec, &mut walls.missing);
        let wanted_ns = spec.namespaces;
        let host = confine::Host {
            is_root: self.is_root,
            userns: self.userns.as_ref().map_err(String::as_str).copied(),
            shared_netns: self.netns.is_some(),
            root_dir: self.root_dir.is_some(),
        };
        let ns = confine::Namespaces::decide(wanted_ns, &host, &mut walls.missing);
        let confine::Namespaces {
            unshare,
            join_net,
            userns,
            pidns,
            minimal_root,
            own_proc,
        } = ns;
        let mut cgroup = spec.cgroup;
        if pidns {
            // The init counts as a task of the sandbox too.
            cgroup.pids = cgroup.pids.map(|n| n.saturating_add(1));
        }
        self.process_limit(spec, userns, cgroup.pids, &mut rlimits, &mut walls.missing);
        if !self.cgroups.is_active() && !pidns && spec.processes > 0 {
            walls.missing.push(
                "tree kill: no cgroup and no PID namespace: a process that left the worker's session may outlive it".into(),
            );
        }
        // Without its own PID namespace a procfs would show the host's
        // processes: grants under /proc are then withheld.
        let granted_proc = landlock_rules::proc_access(&spec.grants, kernel.landlock());
        let proc_access = if pidns { granted_proc } else { 0 };
        if granted_proc != 0 && !pidns && wanted_ns & libc::CLONE_NEWPID as u64 != 0 {
            walls.missing.push(
                "pid namespace: the policy's grant of /proc is withheld (without a PID \
                 namespace of its own the plugin's /proc would show the host's processes)"
                    .into(),
            );
        }
        // The private /tmp exists only in a minimal root, and is writable
        // only through a rule each sandbox adds for its own tmpfs.
        let tmp_access = if spec.tmp > 0 && minimal_root {
            landlock_rules::tmp_access(kernel.landlock())
        } else {
            0
        };
        if spec.tmp > 0 && !minimal_root {
            walls.missing.push(
                "private /tmp: no minimal root (mount namespace), so no /tmp of its own: the plugin cannot write /tmp".into(),
            );
        }
        let mut grants = spec.grants.clone();
        for list in [&mut grants.read, &mut grants.write, &mut grants.exec] {
            list.retain(|p| !p.starts_with("/proc"));
        }
        // Built (and its hard requirements checked) even when each sandbox
        // builds its own from the raw rules.
        let ruleset = match landlock_rules::build(&grants, kernel.landlock())? {
            Some(rs) => Some(Option::<OwnedFd>::from(rs).ok_or(ServerError::Broken(
                "landlock ruleset has no fd on this kernel",
            ))?),
            None => None,
        };
        // Both are 0 without Landlock (then there is no raw form).
        let raw = (proc_access != 0 || tmp_access != 0)
            .then(|| landlock_rules::raw(&grants, kernel.landlock()))
            .flatten();
        let landlock = own_landlock(raw, proc_access, tmp_access, ruleset);
        let mut root = match (&self.root_dir, minimal_root) {
            (Some(dir), true) => Some(root_plan(dir, &grants, pidns, spec.tmp)?),
            _ => None,
        };
        // As root, every child of the profile joins a copy of one prepared
        // root (a child in its own user namespace could not join it).
        let template = root
            .as_ref()
            .filter(|_| self.is_root)
            .and_then(|r| root_template(r, &grants));
        if let (Some(r), Some(t)) = (&mut root, &template) {
            r.template = t.as_raw_fd();
        }
        walls.minimal_root = root.is_some();
        walls.namespaces = ns.flags();
        let filter = spec
            .filter
            .iter()
            .map(|&(code, jt, jf, k)| seccompiler::sock_filter { code, jt, jf, k })
            .collect();
        let exe_slot = if exe_fd.is_some() { spec.exe_slot } else { -1 };
        Ok(Prepared {
            landlock,
            filter,
            exe_fd,
            exe_slot,
            path,
            _strings: argv_s.into_iter().chain(env_s).collect(),
            argv,
            envp,
            rlimits,
            identity: if self.is_root { spec.identity } else { None },
            new_session: spec.new_session,
            cgroup,
            unshare,
            join_net,
            pidns,
            own_proc,
            root,
            _root_template: template,
            userns: userns.then(crate::kernel::userns_plan),
            cwd: spec
                .cwd
                .as_ref()
                .map(|d| cstr(d.as_os_str().as_bytes()))
                .transpose()?,
            walls,
        })
    }

    /// The profile's rlimits; with a memory cgroup, the address-space and
    /// data limits loosened to a backstop.
    fn rlimits(&self, spec: &ProfileSpec, missing: &mut Vec<String>) -> Vec<(u32, u64, u64)> {
        let mut rlimits = spec.rlimits.clone();
        if !self.cgroups.has_memory() {
            missing.push(format!(
                "memory: no memory cgroup ({}): RLIMIT_AS bounds the address space, and the verdict is memory only when the plugin reports the failed allocation",
                self.cgroups.describe()
            ));
        } else if let Some(mem) = spec.cgroup.memory {
            // The memory cgroup is the real limit and names an OOM kill; the
            // address-space and data rlimits stay as a looser backstop
            // (still hard = soft).
            for r in &mut rlimits {
                if r.0 == libc::RLIMIT_AS || r.0 == libc::RLIMIT_DATA {
                    let mut lim = libc::rlimit64 {
                        rlim_cur: u64::MAX,
                        rlim_max: u64::MAX,
                    };
                    // SAFETY: getrlimit64 writes one struct on our stack.
                    unsafe { libc::getrlimit64(r.0 as _, &mut lim) };
                    let loose = mem
                        .saturating_mul(2)
                        .max(mem.saturating_add(1 << 30))
                        .min(lim.rlim_max)
                        .max(r.1);
                    *r = (r.0, loose, loose);
                }
            }
        }
        rlimits
    }

    /// Holds `limits.processes` for a profile: the pids cgroup, else (not
    /// root, in the plugin's own user namespace, Linux 5.14+) RLIMIT_NPROC,
    /// which the kernel counts per user in each user namespace, so that it
    /// counts only the worker's own tasks. As root the plugin's uid is
    /// shared with other workers: no such rlimit. `tasks` is the sandbox's
    /// pids limit, the init included (the init is a task of the plugin's
    /// uid in that user namespace too).
    pub(super) fn process_limit(
        &self,
        spec: &ProfileSpec,
        userns: bool,
        tasks: Option<u64>,
        rlimits: &mut Vec<(u32, u64, u64)>,
        missing: &mut Vec<String>,
    ) {
        use crate::kernel::Feature;
        if self.cgroups.has_pids() {
            return;
        }
        let tasks = tasks.unwrap_or(u64::MAX);
        if userns && crate::kernel::kernel().has(Feature::NprocPerUserns) {
            let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
                .map_or(u64::MAX, |(_, h)| h);
            let n = tasks.min(hard);
            rlimits.push((libc::RLIMIT_NPROC, n, n));
            return;
        }
        if spec.processes > 0 {
            let why = if userns {
                Feature::NprocPerUserns.without()
            } else {
                "no user namespace to count the plugin's processes in"
            };
            missing.push(format!(
                "process count: no pids cgroup ({}); {why}: limits.processes = {} is not enforced",
                self.cgroups.describe(),
                spec.processes
            ));
        }
    }
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
