//! The loader's search paths: dynamic string tokens (`$ORIGIN`, `$LIB`,
//! `$PLATFORM`), `/etc/ld.so.conf` with its includes and globs.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::{MAX_CONF_BYTES, MAX_CONF_DEPTH, MAX_CONF_FILES, MAX_CONF_GLOB, MULTIARCH, PLATFORM};

/// Expands ld.so's dynamic string tokens (`$ORIGIN`, `$LIB`, `$PLATFORM`, or
/// braced) in one path. Unknown `$` sequences stay literal, as in ld.so.
pub(super) fn expand_dst(text: &[u8], origin: &Path) -> Vec<u8> {
    let lib = format!("lib/{MULTIARCH}");
    let tokens: [(&[u8], &[u8]); 3] = [
        (b"ORIGIN", origin.as_os_str().as_bytes()),
        (b"PLATFORM", PLATFORM.as_bytes()),
        (b"LIB", lib.as_bytes()),
    ];
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.iter().position(|&b| b == b'$') {
        out.extend_from_slice(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        let token = tokens
            .iter()
            .find_map(|&(name, value)| dst_len(rest, name).map(|len| (len, value)));
        match token {
            Some((len, value)) => {
                out.extend_from_slice(value);
                rest = &rest[len..];
            }
            None => out.push(b'$'),
        }
    }
    out.extend_from_slice(rest);
    out
}

/// Length of `NAME` or `{NAME}` at the start of `text`, when it is the token
/// (unbraced, it must end the path or a component: `$ORIGINAL` is not `$ORIGIN`).
pub(super) fn dst_len(text: &[u8], name: &[u8]) -> Option<usize> {
    if let Some(braced) = text.strip_prefix(b"{") {
        let after = braced.strip_prefix(name)?;
        return after.starts_with(b"}").then_some(name.len() + 2);
    }
    let after = text.strip_prefix(name)?;
    (after.is_empty() || after.starts_with(b"/")).then_some(name.len())
}

/// Splits a `DT_RPATH`/`DT_RUNPATH` list and expands each entry; empty and
/// relative entries (relative to the child's working directory) are dropped.
pub(super) fn expand_search_list(list: &OsStr, origin: &Path) -> Vec<PathBuf> {
    list.as_bytes()
        .split(|&b| b == b':')
        .filter(|entry| !entry.is_empty())
        .map(|entry| PathBuf::from(OsString::from_vec(expand_dst(entry, origin))))
        .filter(|dir| dir.is_absolute())
        .collect()
}

/// Directories listed in an ld.so.conf, following `include` globs. Missing or
/// unreadable files count as empty: the file only adds directories.
pub(super) fn read_ld_so_conf(path: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut files_left = MAX_CONF_FILES;
    read_conf_file(path, 0, &mut files_left, &mut dirs);
    let mut seen = HashSet::new();
    dirs.retain(|dir| seen.insert(dir.clone()));
    dirs
}

pub(super) fn read_conf_file(
    path: &Path,
    depth: usize,
    files_left: &mut usize,
    dirs: &mut Vec<PathBuf>,
) {
    if depth > MAX_CONF_DEPTH || *files_left == 0 {
        return;
    }
    *files_left -= 1;
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|file| file.take(MAX_CONF_BYTES).read_to_end(&mut bytes));
    if read.is_err() {
        return;
    }
    let base = path.parent().unwrap_or(Path::new("/"));
    for line in String::from_utf8_lossy(&bytes).lines() {
        let line = line.split_once('#').map_or(line, |(kept, _)| kept).trim();
        if let Some(patterns) = strip_keyword(line, "include") {
            for pattern in patterns.split_whitespace() {
                for file in glob_files(&base.join(pattern)) {
                    read_conf_file(&file, depth + 1, files_left, dirs);
                }
            }
        } else if line.is_empty() || strip_keyword(line, "hwcap").is_some() {
            continue;
        } else {
            let dir = line.trim_end_matches('/');
            if dir.starts_with('/') {
                dirs.push(PathBuf::from(dir));
            }
        }
    }
}

/// `line` without its leading `keyword` and the blank after it.
pub(super) fn strip_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(keyword)?;
    rest.starts_with([' ', '\t']).then_some(rest)
}

/// A small glob(3): `*` and `?` in the last component only, results sorted.
pub(super) fn glob_files(pattern: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(file_pattern)) = (pattern.parent(), pattern.file_name()) else {
        return Vec::new();
    };
    let file_pattern = file_pattern.as_bytes();
    let has_wildcard = |bytes: &[u8]| bytes.iter().any(|&b| b == b'*' || b == b'?');
    if has_wildcard(dir.as_os_str().as_bytes()) {
        return Vec::new();
    }
    if !has_wildcard(file_pattern) {
        return if pattern.exists() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .take(MAX_CONF_GLOB)
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .filter(|name| wildcard_match(file_pattern, name.as_bytes()))
        .map(|name| dir.join(name))
        .collect();
    files.sort();
    files
}

/// fnmatch for `*` and `?`; a leading `.` must be matched literally.
pub(super) fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.starts_with(b".") && !pattern.starts_with(b".") {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    // Where the last `*` was, and how much of the name it has taken.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}
