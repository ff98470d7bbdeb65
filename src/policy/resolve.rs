//! Resolving a policy along its `extends` chain into concrete values, and
//! checking the result.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{
    builtin_names, errno_number, groups, invalid, ioctl_number, parse, socket_family, Environment,
    Filesystem, Identity, IoctlName, Limits, Namespaces, Network, Origin, Policy, PolicyError,
    PolicyFile, Syscalls, Worker, BUILTIN, FAMILIES, IOCTLS, MAX_IOCTLS, UNDENIABLE, WRITABLE_ROOT,
};

/// Parses `text` and everything it extends into a resolved [`Policy`].
pub fn resolve(origin: Origin, text: &str) -> Result<Policy, PolicyError> {
    // Collect the chain, innermost (the file itself) first.
    let mut chain: Vec<(Origin, String, PolicyFile)> = Vec::new();
    let mut current = (origin.clone(), text.to_string());
    loop {
        if chain.len() >= 8 {
            return Err(PolicyError::ExtendsLoop {
                origin: origin.label(),
            });
        }
        let file = parse(&current.0, &current.1)?;
        let parent = file.extends.clone();
        chain.push((current.0.clone(), current.1.clone(), file));
        let Some(parent) = parent else { break };
        let parent_name = parent.get_ref().as_str();
        current = if let Some((n, t)) = BUILTIN.iter().find(|(n, _)| *n == parent_name) {
            (Origin::Builtin(n), t.to_string())
        } else {
            let base = match &current.0 {
                Origin::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
                Origin::Builtin(_) => PathBuf::new(),
            };
            let path = base.join(parent_name);
            if path.exists() {
                super::check_trusted(&path)?;
            }
            match std::fs::read_to_string(&path) {
                Ok(t) => (Origin::File(path), t),
                Err(e) => {
                    let (o, t) = (&current.0, &current.1);
                    return Err(invalid(
                        o,
                        t,
                        parent.span(),
                        format!(
                            "cannot extend {parent_name:?}: not a built-in policy ({}) and {} is unreadable ({e})",
                            builtin_names(),
                            path.display()
                        ),
                    ));
                }
            }
        };
    }

    let mut policy = Policy {
        name: match &origin {
            Origin::Builtin(n) => n.to_string(),
            Origin::File(p) => p.display().to_string(),
        },
        description: String::new(),
        sources: chain.iter().rev().map(|(_, t, _)| t.clone()).collect(),
        best_effort: false,
        syscalls: Syscalls::default(),
        filesystem: Filesystem::default(),
        network: Network::default(),
        limits: Limits::default(),
        identity: Identity::default(),
        worker: Worker::default(),
        namespaces: Namespaces::default(),
        landlock_min_abi: 0,
        environment: Environment::default(),
    };
    // Apply outermost first so the file itself wins.
    for (origin, text, file) in chain.iter().rev() {
        apply(&mut policy, origin, text, file)?;
    }
    validate(&policy, &origin, text)?;
    Ok(policy)
}

pub(super) fn apply(
    p: &mut Policy,
    origin: &Origin,
    text: &str,
    f: &PolicyFile,
) -> Result<(), PolicyError> {
    if let Some(d) = &f.description {
        p.description = d.clone();
    }
    if let Some(b) = f.best_effort {
        p.best_effort = b;
    }
    let s = &f.syscalls;
    for name in &s.allow {
        for syscall in expand_name(origin, text, name)? {
            p.syscalls.denied.remove(&syscall);
            p.syscalls.allow.insert(syscall);
        }
    }
    for name in &s.deny {
        for syscall in expand_name(origin, text, name)? {
            if UNDENIABLE.contains(&syscall.as_str()) {
                return Err(invalid(
                    origin,
                    text,
                    name.span(),
                    format!(
                        "{syscall} cannot be denied: every process ends through it (exit and exit_group are always allowed); remove {:?} from deny",
                        name.get_ref()
                    ),
                ));
            }
            p.syscalls.allow.remove(&syscall);
            p.syscalls.denied.insert(syscall);
        }
    }
    if let Some(table) = &s.errno {
        for (name, errno) in table {
            let number = errno_number(errno.get_ref()).ok_or_else(|| {
                invalid(
                    origin,
                    text,
                    errno.span(),
                    format!(
                        "unknown errno {:?}: write its name, e.g. \"EPERM\", \"ENOSYS\", \"EACCES\"",
                        errno.get_ref()
                    ),
                )
            })?;
            if let Some(key) = family_key(name.get_ref()) {
                let key = key.map_err(|m| invalid(origin, text, name.span(), m))?;
                p.syscalls.errno.insert(key, number);
                continue;
            }
            for syscall in expand_name(origin, text, name)? {
                if UNDENIABLE.contains(&syscall.as_str()) {
                    return Err(invalid(
                        origin,
                        text,
                        name.span(),
                        format!(
                            "{syscall} cannot be given an errno: every process ends through it"
                        ),
                    ));
                }
                p.syscalls.errno.insert(syscall, number);
            }
        }
    }
    if let Some(v) = s.on_violation {
        p.syscalls.on_violation = v;
    }
    if let Some(list) = &s.ioctl {
        p.syscalls.ioctl.clear();
        for item in list {
            let nr = match item.get_ref() {
                IoctlName::Number(n) => *n,
                IoctlName::Name(name) => ioctl_number(name).ok_or_else(|| {
                    invalid(
                        origin,
                        text,
                        item.span(),
                        format!(
                            "unknown ioctl {name:?}: use one of {} or its number",
                            IOCTLS
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?,
            };
            p.syscalls.ioctl.insert(nr);
        }
    }
    if let Some(list) = &s.socket_families {
        p.syscalls.socket_families.clear();
        for item in list {
            let fam = socket_family(item.get_ref()).ok_or_else(|| {
                invalid(
                    origin,
                    text,
                    item.span(),
                    format!(
                        "unknown socket family {:?}: use one of {}",
                        item.get_ref(),
                        FAMILIES
                            .iter()
                            .map(|(n, _)| *n)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
            p.syscalls.socket_families.insert(fam);
        }
    }
    let fs = &f.filesystem;
    for (dst, src) in [
        (&mut p.filesystem.read, &fs.read),
        (&mut p.filesystem.write, &fs.write),
        (&mut p.filesystem.exec, &fs.exec),
    ] {
        for path in src {
            let pb = PathBuf::from(path.get_ref());
            if !pb.is_absolute() {
                return Err(invalid(
                    origin,
                    text,
                    path.span(),
                    format!("path {:?} must be absolute", path.get_ref()),
                ));
            }
            if !dst.contains(&pb) {
                dst.push(pb);
            }
        }
    }
    if let Some(root) = fs
        .write
        .iter()
        .find(|p| Path::new(p.get_ref()) == Path::new("/"))
    {
        return Err(invalid(origin, text, root.span(), WRITABLE_ROOT.into()));
    }
    set(&mut p.filesystem.tmp, fs.tmp.map(|s| s.0));
    p.network.connect_tcp.extend(&f.network.connect_tcp);
    p.network.bind_tcp.extend(&f.network.bind_tcp);
    let l = &f.limits;
    let lim = &mut p.limits;
    set(&mut lim.wall, l.wall.map(|d| d.0));
    set(&mut lim.cpu, l.cpu.map(|d| d.0));
    set(&mut lim.memory, l.memory.map(|s| s.0));
    set(&mut lim.processes, l.processes);
    set(&mut lim.open_files, l.open_files);
    set(&mut lim.file_size, l.file_size.map(|s| s.0));
    set(&mut lim.output, l.output.map(|s| s.0));
    set(&mut lim.input, l.input.map(|s| s.0));
    if let Some(m) = l.max_frame {
        lim.max_frame = u32::try_from(m.0).map_err(|_| {
            invalid(
                origin,
                text,
                0..0,
                "limits.max_frame must be below 4GiB".into(),
            )
        })?;
    }
    set(&mut p.identity.uid, f.identity.uid);
    set(&mut p.identity.gid, f.identity.gid);
    set(&mut p.worker.batch, f.worker.batch);
    set(&mut p.worker.recycle_rss, f.worker.recycle_rss.map(|s| s.0));
    set(
        &mut p.worker.max_lifetime,
        f.worker.max_lifetime.map(|d| d.0),
    );
    set(&mut p.namespaces.net, f.namespaces.net);
    set(&mut p.namespaces.ipc, f.namespaces.ipc);
    set(&mut p.namespaces.uts, f.namespaces.uts);
    set(&mut p.namespaces.pid, f.namespaces.pid);
    set(&mut p.namespaces.mount, f.namespaces.mount);
    if let Some(abi) = f.landlock.min_abi {
        let newest = crate::kernel::LANDLOCK_NEWEST;
        if !(1..=newest).contains(&abi) {
            return Err(invalid(
                origin,
                text,
                0..0,
                format!("landlock.min_abi = {abi}: give an ABI from 1 to {newest}"),
            ));
        }
        p.landlock_min_abi = abi;
    }
    let env = &f.environment;
    if let Some((span, message)) = env.problem() {
        return Err(invalid(origin, text, span, message));
    }
    for (k, v) in &env.set {
        p.environment
            .set
            .insert(k.get_ref().clone(), v.get_ref().clone());
    }
    p.environment
        .pass
        .extend(env.pass.iter().map(|k| k.get_ref().clone()));
    Ok(())
}

pub(super) fn set<T>(dst: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *dst = v;
    }
}

pub(super) fn expand_name(
    origin: &Origin,
    text: &str,
    name: &Spanned<String>,
) -> Result<Vec<String>, PolicyError> {
    expand(name.get_ref()).map_err(|e| invalid(origin, text, name.span(), e.to_string()))
}

/// A name in an allow or deny list that stands for nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("unknown syscall group {name:?}: known groups are {known}")]
    /// A syscall group that does not exist.
    UnknownGroup {
        /// The name as written.
        name: String,
        /// The groups there are.
        known: String,
    },
    #[error(transparent)]
    /// A group whose expansion failed.
    Group(#[from] groups::ExpandError),
    #[error(
        "unknown syscall {0:?}: not a Linux syscall on x86_64 or aarch64 (check the spelling; \
         groups start with '@', see `plugwarden policy explain`)"
    )]
    /// A syscall name this architecture table does not have.
    UnknownSyscall(String),
}

/// The syscalls a name in an allow or deny list stands for: a group's
/// members, or the syscall itself; why not, when it names neither.
pub fn expand(name: &str) -> Result<Vec<String>, NameError> {
    if name.starts_with('@') {
        if groups::find(name).is_none() {
            let known = groups::GROUPS.iter().map(|g| g.name).collect::<Vec<_>>();
            return Err(NameError::UnknownGroup {
                name: name.to_string(),
                known: known.join(", "),
            });
        }
        let expanded = groups::expand(&[name])?;
        return Ok(expanded.into_iter().map(str::to_string).collect());
    }
    if groups::number(groups::Arch::X86_64, name).is_none()
        && groups::number(groups::Arch::Aarch64, name).is_none()
    {
        return Err(NameError::UnknownSyscall(name.to_string()));
    }
    Ok(vec![name.to_string()])
}

pub(super) fn validate(p: &Policy, origin: &Origin, text: &str) -> Result<(), PolicyError> {
    let fail = |m: String| Err(invalid(origin, text, 0..0, m));
    if p.limits.wall.is_zero() {
        return fail("limits.wall must be greater than 0".into());
    }
    if p.limits.cpu.is_zero() {
        return fail("limits.cpu must be greater than 0".into());
    }
    if p.limits.memory < (16 << 20) {
        return fail(format!(
            "limits.memory of {} bytes is too small to load a program; use at least \"16MiB\"",
            p.limits.memory
        ));
    }
    if p.limits.open_files < 4 {
        return fail(
            "limits.open_files must be at least 4 (stdin, stdout, stderr and one more)".into(),
        );
    }
    if p.limits.max_frame < 4096 {
        return fail("limits.max_frame must be at least \"4KiB\"".into());
    }
    if p.worker.batch == 0 {
        return fail("worker.batch must be at least 1".into());
    }
    // Each request costs one or two BPF instructions in the search over
    // requests; the cap keeps policies far from the kernel's 4096 (which
    // `seccomp::compile` also reports), as fuzz/policy_parser once found.
    if p.syscalls.ioctl.len() > MAX_IOCTLS {
        return fail(format!(
            "syscalls.ioctl lists {} requests; at most {MAX_IOCTLS} fit in a seccomp program",
            p.syscalls.ioctl.len()
        ));
    }
    Ok(())
}

/// An errno table key for one socket family, `"socket(AF_UNIX)"`: `None`
/// when `key` is not of that form, else the key as stored or why it is
/// wrong.
pub(super) fn family_key(key: &str) -> Option<Result<String, String>> {
    let (name, rest) = key.split_once('(')?;
    let family = rest.strip_suffix(')')?;
    if !matches!(name, "socket" | "socketpair") {
        return Some(Err(format!(
            "{key:?}: only socket and socketpair take an argument here (a family: \"socket(AF_UNIX)\")"
        )));
    }
    Some(match socket_family(family) {
        Some(_) => Ok(key.to_string()),
        None => Err(format!(
            "{key:?}: unknown socket family {family:?}: use one of {}",
            FAMILIES
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    })
}
