//! Grants added to a policy for one plugin, from its manifest or the
//! command line: `--ro PATH`, `--rw PATH`, `--exec PATH`, `--tmp SIZE`,
//! `--cwd DIR`, `--allow NAME` (in a manifest: `[filesystem] read`,
//! `write`, `exec`, `tmp`, `[syscalls] allow` and `cwd`).
//!
//! A path grant must name what it grants: it must exist, must not reach
//! its target through a symlink (the sandbox binds, and Landlock grants,
//! the target, which is then not where the plugin looks), and `/` is never
//! writable. Relative paths are taken from a base directory (the current
//! one for flags, the manifest's for a manifest). Where two grants overlap
//! the wider one wins, and [`Extra::apply`] says so in a note.

use std::path::{Component, Path, PathBuf};

use super::{Policy, WRITABLE_ROOT};

/// Grants for one plugin beyond its policy, as given.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    /// How these grants are named in messages: `flags` gives `--ro PATH`,
    /// a manifest's path gives `plugin.toml: read PATH`.
    pub origin: Origin,
    /// Where relative paths start from.
    pub base: PathBuf,
    pub read: Vec<PathBuf>,
    pub write: Vec<PathBuf>,
    pub exec: Vec<PathBuf>,
    /// A private writable /tmp of this size (overrides the policy's).
    pub tmp: Option<u64>,
    /// The plugin's working directory.
    pub cwd: Option<PathBuf>,
    /// Syscall and `@group` names added to the allowlist.
    pub allow: Vec<String>,
}

/// Where grants come from, for messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    #[default]
    Flags,
    Manifest(PathBuf),
}

/// The kinds of grant, each with its flag and its manifest key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    Exec,
    Cwd,
}

impl Kind {
    fn flag(self) -> &'static str {
        match self {
            Kind::Read => "--ro",
            Kind::Write => "--rw",
            Kind::Exec => "--exec",
            Kind::Cwd => "--cwd",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::Read => "[filesystem] read",
            Kind::Write => "[filesystem] write",
            Kind::Exec => "[filesystem] exec",
            Kind::Cwd => "cwd",
        }
    }
}

impl Origin {
    /// `--ro /data` or `plugins/x/plugin.toml: [filesystem] read /data`.
    fn name(&self, kind: Kind, path: &Path) -> String {
        match self {
            Origin::Flags => format!("{} {}", kind.flag(), path.display()),
            Origin::Manifest(m) => format!("{}: {} {}", m.display(), kind.key(), path.display()),
        }
    }

    fn allow(&self, name: &str) -> String {
        match self {
            Origin::Flags => format!("--allow {name}"),
            Origin::Manifest(m) => format!("{}: [syscalls] allow {name}", m.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{grant}: no such file or directory; grant a path that exists (the sandbox shows what is there when it starts)")]
    Missing { grant: String },
    #[error("{grant}: {source}")]
    Unreadable {
        grant: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{grant}: reaches {} through a symlink, and the sandbox would grant {} itself (where the plugin does not look for it): grant {} instead", .target.display(), .target.display(), .target.display())]
    Symlink { grant: String, target: PathBuf },
    #[error("{grant}: {WRITABLE_ROOT}")]
    WritableRoot { grant: String },
    #[error("{grant}: {why}")]
    Syscall {
        grant: String,
        why: super::NameError,
    },
    #[error("{grant}: the plugin would not see it (it is not inside a granted path nor the private /tmp): grant it too (--ro DIR)")]
    CwdNotGranted { grant: String },
    #[error("{grant}: not a directory")]
    CwdNotDir { grant: String },
}

/// What a path grant names: absolute, with `.` and `..` taken lexically.
fn absolute(base: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in base.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

impl Extra {
    /// The path `path` of a `kind` grant names, checked: it exists, is
    /// reached without a symlink, and is not `/` for writing.
    fn checked(&self, kind: Kind, path: &Path) -> Result<PathBuf, GrantError> {
        let grant = || self.origin.name(kind, path);
        let wanted = absolute(&self.base, path);
        let real = std::fs::canonicalize(&wanted).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                GrantError::Missing { grant: grant() }
            } else {
                GrantError::Unreadable {
                    grant: grant(),
                    source,
                }
            }
        })?;
        if real != wanted {
            return Err(GrantError::Symlink {
                grant: grant(),
                target: real,
            });
        }
        if kind == Kind::Write && real == Path::new("/") {
            return Err(GrantError::WritableRoot { grant: grant() });
        }
        Ok(real)
    }

    /// Adds these grants to `policy`; returns the working directory (when
    /// one was given) and a note for each overlap and risky grant, saying
    /// which grant wins.
    pub fn apply(&self, policy: &mut Policy) -> Result<(Option<PathBuf>, Vec<String>), GrantError> {
        let mut notes = Vec::new();
        let lists = [
            (Kind::Read, &self.read),
            (Kind::Write, &self.write),
            (Kind::Exec, &self.exec),
        ];
        let mut checked: Vec<(Kind, PathBuf, PathBuf)> = Vec::new();
        for (kind, paths) in lists {
            for p in paths {
                checked.push((kind, p.clone(), self.checked(kind, p)?));
            }
        }
        for (kind, given, real) in &checked {
            let fs = &mut policy.filesystem;
            let list = match kind {
                Kind::Read => &mut fs.read,
                Kind::Write => &mut fs.write,
                _ => &mut fs.exec,
            };
            if !list.contains(real) {
                list.push(real.clone());
            }
            notes.extend(self.overlap(*kind, given, real, &checked));
        }
        if let Some(size) = self.tmp {
            policy.filesystem.tmp = size;
        }
        for name in &self.allow {
            let grant = self.origin.allow(name);
            let names = super::expand(name).map_err(|why| GrantError::Syscall {
                grant: grant.clone(),
                why,
            })?;
            for syscall in names {
                if policy.syscalls.denied.remove(&syscall) {
                    notes.push(format!(
                        "{grant}: the policy denies {syscall}; {grant} wins"
                    ));
                }
                if let Some((_, why)) = super::groups::RISKY.iter().find(|(n, _)| *n == syscall) {
                    notes.push(format!("{grant}: {syscall} {why}"));
                }
                policy.syscalls.allow.insert(syscall);
            }
        }
        let cwd = self
            .cwd
            .as_ref()
            .map(|dir| self.working_dir(dir, policy))
            .transpose()?;
        Ok((cwd, notes))
    }

    /// What a grant's overlap with another of these grants means.
    fn overlap(
        &self,
        kind: Kind,
        given: &Path,
        real: &Path,
        all: &[(Kind, PathBuf, PathBuf)],
    ) -> Option<String> {
        let me = self.origin.name(kind, given);
        let writer = all
            .iter()
            .find(|(k, _, r)| *k == Kind::Write && real.starts_with(r))?;
        let other = self.origin.name(Kind::Write, &writer.1);
        match kind {
            Kind::Read if writer.2 == real => {
                Some(format!("{me} and {other}: {other} wins (read and write)"))
            }
            Kind::Read => Some(format!("{me} is inside {other}, which wins (writable)")),
            Kind::Exec => Some(format!(
                "{me} is inside {other}: the plugin may run what it can write (both apply)"
            )),
            _ => None,
        }
    }

    /// The working directory `dir`, checked: it must be somewhere the
    /// plugin can see.
    fn working_dir(&self, dir: &Path, policy: &Policy) -> Result<PathBuf, GrantError> {
        let real = self.checked(Kind::Cwd, dir)?;
        let grant = || self.origin.name(Kind::Cwd, dir);
        if !real.is_dir() {
            return Err(GrantError::CwdNotDir { grant: grant() });
        }
        let fs = &policy.filesystem;
        let private_tmp = fs.tmp > 0 && real == Path::new("/tmp");
        let visible = real == Path::new("/")
            || private_tmp
            || real.starts_with("/usr")
            || fs
                .read
                .iter()
                .chain(&fs.write)
                .chain(&fs.exec)
                .any(|g| real.starts_with(g));
        if !visible {
            return Err(GrantError::CwdNotGranted { grant: grant() });
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_policy() -> Policy {
        super::super::load("default").unwrap()
    }

    fn flags(f: impl FnOnce(&mut Extra)) -> Extra {
        let mut e = Extra {
            base: PathBuf::from("/"),
            ..Extra::default()
        };
        f(&mut e);
        e
    }

    #[test]
    fn test_absolute_takes_dots_lexically() {
        assert_eq!(
            absolute(Path::new("/a/b"), Path::new("../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(
            absolute(Path::new("/a"), Path::new("/x/..")),
            PathBuf::from("/")
        );
    }

    #[test]
    fn test_grant_missing_path_is_refused_with_its_flag() {
        let e = flags(|e| e.read.push("/no/such/dir".into()));
        let err = e.apply(&mut default_policy()).unwrap_err().to_string();
        assert!(
            err.starts_with("--ro /no/such/dir: no such file or directory"),
            "{err}"
        );
    }

    #[test]
    fn test_grant_through_symlink_names_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let e = flags(|e| e.read.push(dir.path().join("link")));
        let err = e.apply(&mut default_policy()).unwrap_err().to_string();
        let target = std::fs::canonicalize(&real).unwrap();
        assert!(
            err.contains(&format!("grant {} instead", target.display())),
            "{err}"
        );
    }

    #[test]
    fn test_writable_root_is_refused() {
        let e = flags(|e| e.write.push("/".into()));
        let err = e.apply(&mut default_policy()).unwrap_err().to_string();
        assert!(
            err.starts_with("--rw /: the host's whole filesystem"),
            "{err}"
        );
    }

    #[test]
    fn test_read_and_write_of_one_path_says_write_wins() {
        let e = flags(|e| {
            e.read.push("/usr/share".into());
            e.write.push("/usr/share".into());
        });
        let mut p = default_policy();
        let (_, notes) = e.apply(&mut p).unwrap();
        assert_eq!(
            notes,
            vec!["--ro /usr/share and --rw /usr/share: --rw /usr/share wins (read and write)"]
        );
        assert!(p.filesystem.write.contains(&PathBuf::from("/usr/share")));
    }

    #[test]
    fn test_allow_adds_group_and_overrides_deny() {
        let e = flags(|e| {
            e.allow
                .extend(["@file-write".to_string(), "ptrace".to_string()])
        });
        let mut p = default_policy();
        p.syscalls.denied.insert("ptrace".into());
        let (_, notes) = e.apply(&mut p).unwrap();
        assert!(p.syscalls.allow.contains("unlink") && p.syscalls.allow.contains("ptrace"));
        assert_eq!(
            notes[0],
            "--allow ptrace: the policy denies ptrace; --allow ptrace wins"
        );
        assert!(
            notes[1].starts_with("--allow ptrace: ptrace lets the plugin"),
            "{notes:?}"
        );
        let e = flags(|e| e.allow.push("@nope".into()));
        assert!(e
            .apply(&mut p)
            .unwrap_err()
            .to_string()
            .starts_with("--allow @nope: unknown syscall group"));
    }

    #[test]
    fn test_cwd_must_be_visible() {
        let dir = tempfile::tempdir().unwrap();
        let e = flags(|e| e.cwd = Some(dir.path().into()));
        let err = e.apply(&mut default_policy()).unwrap_err().to_string();
        assert!(err.contains("the plugin would not see it"), "{err}");
        let e = flags(|e| {
            e.cwd = Some(dir.path().into());
            e.read.push(dir.path().into());
        });
        let (cwd, _) = e.apply(&mut default_policy()).unwrap();
        assert_eq!(cwd, Some(std::fs::canonicalize(dir.path()).unwrap()));
    }
}
