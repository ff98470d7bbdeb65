//! Plugin manifests: `plugin.toml` in a plugin directory.
//!
//! ```toml
//! description = "echoes its input"
//! executable = ["../../target/release/pw-echo", "../../target/debug/pw-echo"]
//! args = []
//! mode = "worker"          # or "filter"
//! policy = "strict"        # built-in name, or a path relative to this file
//! ```
//! `executable` is a path or a list of candidates (the first that exists
//! wins), relative to the manifest's directory. A manifest may also add
//! grants to its policy, as the command line does (`--ro`, `--rw`,
//! `--exec`, `--tmp`, `--cwd`, `--allow`), paths relative to its directory:
//! ```toml
//! cwd = "."
//! [filesystem]
//! read = ["."]             # --ro
//! tmp = "64MiB"            # --tmp
//! [syscalls]
//! allow = ["@file-write"]  # --allow
//! ```
//!
//! A plugin (its executable, and its manifest, which names the executable
//! and the policy) must be a file that no one but root and the user running
//! plugwarden can change or replace ([`check_trusted`]): otherwise a host
//! running as root would run, with root's choice of walls, whatever another
//! user put there.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::policy::grants::{Extra, Origin};
use crate::sandbox::Mode;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub description: Option<String>,
    pub executable: Executable,
    #[serde(default)]
    pub args: Vec<String>,
    pub mode: Option<Mode>,
    pub policy: Option<String>,
    /// Variables for the plugin, over the policy's (`[environment]` with
    /// `set` and `pass`, as in a policy).
    #[serde(default)]
    pub environment: crate::policy::EnvironmentFile,
    /// The plugin's working directory, relative to the manifest's.
    pub cwd: Option<PathBuf>,
    /// Files beyond the policy's, relative to the manifest's directory.
    #[serde(default)]
    pub filesystem: FilesystemGrants,
    #[serde(default)]
    pub syscalls: SyscallGrants,
}

/// `[filesystem]` of a manifest: what `--ro`, `--rw`, `--exec` and
/// `--tmp` give on the command line.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesystemGrants {
    #[serde(default)]
    pub read: Vec<PathBuf>,
    #[serde(default)]
    pub write: Vec<PathBuf>,
    #[serde(default)]
    pub exec: Vec<PathBuf>,
    pub tmp: Option<crate::policy::Size>,
}

/// `[syscalls]` of a manifest: what `--allow` gives on the command line.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyscallGrants {
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum Executable {
    One(String),
    Candidates(Vec<String>),
}

/// A plugin located on disk, manifest applied.
#[derive(Clone, Debug)]
pub struct Located {
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub mode: Option<Mode>,
    /// Policy name, or a path already made relative to the current directory.
    pub policy: Option<String>,
    /// The manifest's environment, passed variables read now.
    pub env: Vec<(String, String)>,
    /// The manifest's grants beyond the policy (checked when applied).
    pub grants: Extra,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("plugin {0} does not exist: give the path of an executable or of a directory with plugin.toml")]
    Missing(PathBuf),
    #[error("plugin directory {0} has no plugin.toml: add one (see docs/ARCHITECTURE.md) or point --plugin at the executable")]
    NoManifest(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{manifest}: none of the executables exists: {}; build the plugin first (cargo build --release --workspace)", .tried.join(", "))]
    NoExecutable {
        manifest: PathBuf,
        tried: Vec<String>,
    },
    #[error("plugin {0} is not executable: chmod +x it")]
    NotExecutable(PathBuf),
    #[error("plugin file {path} could be replaced by another user: {why}; plugwarden runs only plugins that no one but root and the user running it can change (chown root and chmod go-w it and its directories, or install it where that holds)")]
    Replaceable { path: PathBuf, why: String },
}

/// Parses manifest text (exposed for fuzzing).
pub fn parse(text: &str) -> Result<Manifest, toml::de::Error> {
    toml::from_str(text)
}

/// Finds the executable and settings of `--plugin PATH`.
pub fn locate(path: &Path) -> Result<Located, ManifestError> {
    if !path.exists() {
        return Err(ManifestError::Missing(path.to_path_buf()));
    }
    if !path.is_dir() {
        let exe = std::fs::canonicalize(path).map_err(|source| ManifestError::Read {
            path: path.into(),
            source,
        })?;
        check_executable(&exe)?;
        return Ok(Located {
            exe,
            args: Vec::new(),
            mode: None,
            policy: None,
            env: Vec::new(),
            grants: Extra::default(),
        });
    }
    let file = path.join("plugin.toml");
    if !file.exists() {
        return Err(ManifestError::NoManifest(path.to_path_buf()));
    }
    check_trusted(&file)?;
    let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
        path: file.clone(),
        source,
    })?;
    let m = parse(&text).map_err(|e| ManifestError::Invalid {
        path: file.clone(),
        message: e.to_string(),
    })?;
    if let Some((span, message)) = m.environment.problem() {
        let (line, column) = crate::policy::line_col(&text, span.start);
        return Err(ManifestError::Invalid {
            path: file.clone(),
            message: format!("{line}:{column}: {message}"),
        });
    }
    let candidates = match m.executable {
        Executable::One(s) => vec![s],
        Executable::Candidates(v) => v,
    };
    let exe = candidates
        .iter()
        .map(|c| path.join(c))
        .find(|p| p.is_file())
        .ok_or_else(|| ManifestError::NoExecutable {
            manifest: file.clone(),
            tried: candidates.clone(),
        })?;
    let exe = std::fs::canonicalize(&exe).map_err(|source| ManifestError::Read {
        path: exe.clone(),
        source,
    })?;
    check_executable(&exe)?;
    let policy = m.policy.map(|p| {
        if crate::policy::BUILTIN.iter().any(|(n, _)| *n == p) {
            p
        } else {
            path.join(p).display().to_string()
        }
    });
    let grants = Extra {
        origin: Origin::Manifest(file.clone()),
        base: std::fs::canonicalize(path).map_err(|source| ManifestError::Read {
            path: path.into(),
            source,
        })?,
        read: m.filesystem.read,
        write: m.filesystem.write,
        exec: m.filesystem.exec,
        tmp: m.filesystem.tmp.map(|s| s.0),
        cwd: m.cwd,
        allow: m.syscalls.allow,
    };
    Ok(Located {
        exe,
        args: m.args,
        mode: m.mode,
        policy,
        env: m.environment.resolve(),
        grants,
    })
}

fn check_executable(exe: &Path) -> Result<(), ManifestError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(exe).map_err(|source| ManifestError::Read {
        path: exe.into(),
        source,
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ManifestError::NotExecutable(exe.to_path_buf()));
    }
    check_trusted(exe)
}

/// Fails unless no user but root and this process's can change `path` or
/// replace it (the owner and mode of it and of every directory above it).
pub fn check_trusted(path: &Path) -> Result<(), ManifestError> {
    let why = crate::trust::replaceable_by_others(path).map_err(|source| ManifestError::Read {
        path: path.into(),
        source,
    })?;
    match why {
        Some(why) => Err(ManifestError::Replaceable {
            path: path.into(),
            why,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_unknown_key_is_error() {
        assert!(parse("executable = \"x\"\nmoed = \"worker\"\n")
            .unwrap_err()
            .to_string()
            .contains("moed"));
    }

    #[test]
    fn test_parse_candidates_and_mode() {
        let m = parse("executable = [\"a\", \"b\"]\nmode = \"filter\"\n").unwrap();
        assert!(matches!(m.executable, Executable::Candidates(ref v) if v.len() == 2));
        assert_eq!(m.mode, Some(Mode::Filter));
    }
}
