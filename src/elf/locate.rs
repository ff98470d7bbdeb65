//! Finding what an executable names on disk: a library probed for the
//! right class and machine, a script's interpreter, `env`'s command on
//! `PATH`.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::reader::{Arch, ElfInfo, ElfReader};
use super::{io_error, ElfError, ENV_PATH, SHEBANG_BUF};

/// A library found on disk: the path it was opened by, where it really is, and
/// what it says about itself.
pub(super) struct Located {
    pub(super) path: PathBuf,
    pub(super) canonical: PathBuf,
    pub(super) info: ElfInfo,
}

pub(super) enum Probe {
    Found(Located),
    /// Nothing usable there: ld.so moves on to the next directory.
    Absent,
    /// An ELF for another class or machine: ld.so skips it too.
    OtherArch,
}

/// Looks at one candidate the way ld.so's `open_verify` does: a missing file
/// or one for another architecture is skipped, anything else that is not a
/// valid ELF is fatal.
pub(super) fn probe(path: &Path, arch: Arch) -> Result<Probe, ElfError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        _ => return Ok(Probe::Absent),
    }
    let canonical = fs::canonicalize(path).map_err(io_error(path))?;
    let reader = ElfReader::open(&canonical)?;
    if reader.arch != arch {
        return Ok(Probe::OtherArch);
    }
    let info = reader.info()?;
    Ok(Probe::Found(Located {
        path: path.to_path_buf(),
        canonical,
        info,
    }))
}

pub(super) fn ensure_regular(path: &Path) -> Result<(), ElfError> {
    let meta = fs::metadata(path).map_err(io_error(path))?;
    if meta.is_file() {
        Ok(())
    } else {
        Err(ElfError::NotAFile {
            path: path.to_path_buf(),
        })
    }
}

/// The first bytes of a file, as much as the kernel looks at for `#!`.
pub(super) fn read_head(path: &Path) -> Result<Vec<u8>, ElfError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut head = Vec::with_capacity(SHEBANG_BUF);
    file.take(SHEBANG_BUF as u64)
        .read_to_end(&mut head)
        .map_err(io_error(path))?;
    Ok(head)
}

/// The command `env` runs given the `#!` argument, if any. Without `-S` the
/// kernel hands env the whole rest of the line as one argument.
pub(super) fn env_command(argument: Option<&[u8]>) -> Result<Option<OsString>, &'static str> {
    let Some(argument) = argument else {
        return Ok(None);
    };
    let split = argument
        .strip_prefix(b"-S")
        .or_else(|| argument.strip_prefix(b"--split-string="))
        .or_else(|| argument.strip_prefix(b"--split-string "));
    let tokens: Vec<&[u8]> = match split {
        Some(list) => list
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|token| !token.is_empty())
            .collect(),
        None => vec![argument],
    };
    let mut tokens = tokens.into_iter();
    while let Some(token) = tokens.next() {
        match token {
            b"-i" | b"-" | b"--ignore-environment" | b"-0" | b"--null" | b"-v" | b"--debug" => {}
            b"-u" | b"--unset" | b"-C" | b"--chdir" => {
                tokens.next();
            }
            b"--" => return Ok(tokens.next().map(|t| OsString::from_vec(t.to_vec()))),
            t if t.starts_with(b"--unset=") || t.starts_with(b"--chdir=") => {}
            t if t.starts_with(b"-u") || t.starts_with(b"-C") => {}
            t if t.starts_with(b"-") => return Err("env option not understood"),
            t if t.contains(&b'=') => {}
            t => return Ok(Some(OsString::from_vec(t.to_vec()))),
        }
    }
    Ok(None)
}

/// Where env's execvp finds `command`: as a path if it has a slash, else the
/// first executable regular file in [`ENV_PATH`].
pub(super) fn find_command(command: &OsStr) -> Option<PathBuf> {
    if command.as_bytes().contains(&b'/') {
        let path = PathBuf::from(command);
        return path.is_absolute().then_some(path);
    }
    ENV_PATH
        .iter()
        .map(|dir| Path::new(dir).join(command))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}
