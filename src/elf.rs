//! Which files exec'ing a plugin opens, so the sandbox can grant exactly those.
//!
//! Landlock checks access when a file is opened, and exec opens more than the
//! plugin: the kernel opens a `#!` interpreter and the ELF interpreter
//! (`PT_INTERP`, ld.so) with execute+read rights, then ld.so opens
//! `/etc/ld.so.cache` and every `DT_NEEDED` library for reading. A missing rule
//! makes execve fail with EACCES, or ld.so exit 127 with a misleading "No such
//! file or directory". This module walks that chain before the fork, the way
//! the kernel and glibc's ld.so do, and returns canonical paths (Landlock rules
//! follow symlinks to the inode).
//!
//! Everything read here comes from the plugin, so reads are plain, bounded
//! reads (no mmap, at most [`MAX_ELF_READ`] bytes per ELF file), the walk is
//! bounded, and malformed input is an error, never a panic. Not modelled:
//! `LD_LIBRARY_PATH` and `LD_PRELOAD` (the child gets a clean environment),
//! `dlopen` at run time, relative `DT_RPATH` entries (they depend on the
//! child's working directory), and the `glibc-hwcaps` and legacy `tls/`
//! subdirectories (when a variant there is denied, ld.so falls back to the
//! plain copy in the same search directory). `/etc/ld.so.cache` is stood in for
//! by the directories listed in `/etc/ld.so.conf`, which is what it indexes.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use locate::{ensure_regular, env_command, find_command, probe, read_head, Located, Probe};
use object::elf::{self};
use paths::{expand_dst, expand_search_list, read_ld_so_conf};
use reader::{ElfInfo, ElfReader};
use shebang::parse_shebang;

mod locate;
mod paths;
mod reader;
mod shebang;

/// Most bytes read from one ELF file. Headers, the dynamic section and the
/// strings it names take a few KiB in real files; this only stops hostile ones.
pub const MAX_ELF_READ: u64 = 64 << 20;
/// Largest program header table accepted (the kernel's own limit).
const MAX_PHDR_TABLE: u64 = 64 << 10;
/// Largest `PT_INTERP` accepted (PATH_MAX).
const MAX_INTERP_LEN: u64 = 4096;
/// Largest `PT_DYNAMIC` accepted: 64 Ki entries of 16 bytes.
const MAX_DYNAMIC_LEN: u64 = 1 << 20;
/// Most shared objects in one process image, counting the executable and
/// ld.so. glibc has no limit; real programs load well under 200.
pub const MAX_LIBRARIES: usize = 512;
/// Most `#!` scripts in one chain. The kernel follows 5 and refuses a sixth
/// (ELOOP); a chain longer than 4 is a packaging mistake, refused here already.
pub const MAX_SCRIPT_DEPTH: usize = 4;
/// How much of a file the kernel reads to find `#!` (BINPRM_BUF_SIZE).
const SHEBANG_BUF: usize = 256;
/// Most nested `include` levels followed in ld.so.conf.
const MAX_CONF_DEPTH: usize = 8;
/// Largest ld.so.conf file read, most files read for one ld.so.conf, and most
/// directory entries one `include` glob looks at.
const MAX_CONF_BYTES: u64 = 1 << 20;
const MAX_CONF_FILES: usize = 256;
const MAX_CONF_GLOB: usize = 4096;

/// Where `#!/usr/bin/env NAME` looks for NAME.
pub const ENV_PATH: [&str; 3] = ["/usr/local/bin", "/usr/bin", "/bin"];
const LD_SO_CACHE: &str = "/etc/ld.so.cache";
const LD_SO_CONF: &str = "/etc/ld.so.conf";

#[cfg(target_arch = "x86_64")]
const MULTIARCH: &str = "x86_64-linux-gnu";
#[cfg(target_arch = "aarch64")]
const MULTIARCH: &str = "aarch64-linux-gnu";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("the elf module knows the library layout of x86_64 and aarch64 only");
/// What ld.so substitutes for `$PLATFORM` (the kernel's AT_PLATFORM).
const PLATFORM: &str = std::env::consts::ARCH;

/// What the sandboxed child needs to exec one plugin executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecDeps {
    /// Files the child must be able to execute (read+execute): the executable,
    /// ELF interpreters, script interpreters. Canonical absolute paths, no
    /// duplicates.
    pub exec: Vec<PathBuf>,
    /// Files the child must be able to read: shared libraries (recursively),
    /// /etc/ld.so.cache if present. Canonical absolute paths, no duplicates,
    /// not repeating anything in `exec`.
    pub read: Vec<PathBuf>,
    /// True when the executable is a script (starts with #!).
    pub is_script: bool,
    /// True when the main executable is a statically linked ELF (no PT_INTERP).
    pub is_static: bool,
}

/// Why the files an executable needs could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read {}: check that it exists and is readable", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a regular file: point the plugin at a binary or a script", .path.display())]
    NotAFile { path: PathBuf },
    #[error("{} is neither an elf file nor a #! script: point the plugin at a binary or a script", .path.display())]
    NotExecutable { path: PathBuf },
    #[error("{} is not an elf file: replace it with a shared library or make the plugin static", .path.display())]
    NotElf { path: PathBuf },
    #[error("malformed elf file {}: {detail}: rebuild it or use another binary", .path.display())]
    Malformed { path: PathBuf, detail: &'static str },
    #[error("malformed elf file {}: rebuild it or use another binary", .path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: object::read::Error,
    },
    #[error("elf file {} needs more than {MAX_ELF_READ} bytes read to find its dependencies: rebuild it or use another binary", .path.display())]
    ReadLimit { path: PathBuf },
    #[error("elf interpreter {interpreter} of {} is not an absolute path: relink the plugin with the standard interpreter", .path.display())]
    RelativeInterpreter { path: PathBuf, interpreter: String },
    #[error("elf interpreter {} of {} not found: install it or make the plugin static", .interpreter.display(), .path.display())]
    InterpreterMissing {
        path: PathBuf,
        interpreter: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid #! line in {}: {detail}: fix the first line of the script", .path.display())]
    BadShebang { path: PathBuf, detail: &'static str },
    #[error("interpreter {} named by the #! line of {} not found: install it or fix the #! line", .interpreter.display(), .script.display())]
    ScriptInterpreterMissing {
        script: PathBuf,
        interpreter: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("command {command} run by the #! env line of {} not found in {}: install it or put its absolute path in the #! line", .script.display(), ENV_PATH.join(", "))]
    EnvCommandNotFound { script: PathBuf, command: String },
    #[error("#! scripts nest more than {MAX_SCRIPT_DEPTH} deep at {}: point the #! line at a binary", .path.display())]
    ScriptTooDeep { path: PathBuf },
    #[error("library {name} needed by {} not found in {}: install it or make the plugin static", .needed_by.display(), display_list(.searched))]
    LibraryNotFound {
        name: String,
        needed_by: PathBuf,
        searched: Vec<PathBuf>,
    },
    #[error("library path {name} needed by {} is relative, so it depends on the working directory: relink with an absolute path or $ORIGIN", .needed_by.display())]
    RelativeLibrary { name: String, needed_by: PathBuf },
    #[error("library {} needed by {} is built for another architecture: install the matching build", .path.display(), .needed_by.display())]
    WrongArchitecture { path: PathBuf, needed_by: PathBuf },
    #[error("{} loads more than {MAX_LIBRARIES} shared objects: make the plugin static or split it", .path.display())]
    TooManyLibraries { path: PathBuf },
}

fn display_list(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ElfError + '_ {
    move |source| ElfError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Lists the files that exec'ing `path` in the sandboxed child opens: what to
/// grant execute+read (`exec`) and read (`read`) in its Landlock ruleset.
pub fn exec_dependencies(path: &Path) -> Result<ExecDeps, ElfError> {
    let mut walker = Walker::default();
    let kind = walker.executable(path, 0)?;
    Ok(walker.grants.finish(kind))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExecKind {
    Script,
    StaticElf,
    DynamicElf,
}

/// The growing answer: ordered, without duplicates.
#[derive(Default)]
struct Grants {
    exec: Vec<PathBuf>,
    read: Vec<PathBuf>,
    exec_seen: HashSet<PathBuf>,
    read_seen: HashSet<PathBuf>,
    /// Some image in the chain runs ld.so, which reads /etc/ld.so.cache.
    uses_loader: bool,
}

impl Grants {
    fn add_exec(&mut self, path: &Path) {
        if self.exec_seen.insert(path.to_path_buf()) {
            self.exec.push(path.to_path_buf());
        }
    }

    fn add_read(&mut self, path: &Path) {
        if self.read_seen.insert(path.to_path_buf()) {
            self.read.push(path.to_path_buf());
        }
    }

    fn finish(mut self, kind: ExecKind) -> ExecDeps {
        if self.uses_loader {
            // A static chain never reads the cache, so it gets no rule for it.
            if let Ok(cache) = fs::canonicalize(LD_SO_CACHE) {
                if cache.is_file() {
                    self.add_read(&cache);
                }
            }
        }
        let exec_seen = self.exec_seen;
        let mut read = self.read;
        read.retain(|path| !exec_seen.contains(path));
        ExecDeps {
            exec: self.exec,
            read,
            is_script: kind == ExecKind::Script,
            is_static: kind == ExecKind::StaticElf,
        }
    }
}

/// Walks one chain of execs: scripts, their interpreters, and each ELF image.
#[derive(Default)]
struct Walker {
    grants: Grants,
    /// Directories from /etc/ld.so.conf, read on first use.
    conf_dirs: Option<Vec<PathBuf>>,
}

impl Walker {
    /// Adds what exec'ing `path` needs; `depth` counts the scripts before it.
    fn executable(&mut self, path: &Path, depth: usize) -> Result<ExecKind, ElfError> {
        let canonical = fs::canonicalize(path).map_err(io_error(path))?;
        ensure_regular(&canonical)?;
        let head = read_head(&canonical)?;
        if head.starts_with(b"#!") {
            self.script(&canonical, &head, depth)?;
            Ok(ExecKind::Script)
        } else if head.starts_with(&elf::ELFMAG) {
            self.elf_image(&canonical)
        } else {
            Err(ElfError::NotExecutable {
                path: path.to_path_buf(),
            })
        }
    }

    fn script(&mut self, script: &Path, head: &[u8], depth: usize) -> Result<(), ElfError> {
        if depth >= MAX_SCRIPT_DEPTH {
            return Err(ElfError::ScriptTooDeep {
                path: script.to_path_buf(),
            });
        }
        let bad_shebang = |detail| ElfError::BadShebang {
            path: script.to_path_buf(),
            detail,
        };
        self.grants.add_exec(script);
        let shebang = parse_shebang(head).map_err(bad_shebang)?;
        let interpreter = PathBuf::from(OsString::from_vec(shebang.interpreter));
        if !interpreter.is_absolute() {
            return Err(bad_shebang("the interpreter path is relative"));
        }
        self.script_interpreter(script, &interpreter, depth)?;
        if interpreter.file_name() != Some(OsStr::new("env")) {
            return Ok(());
        }
        let Some(command) = env_command(shebang.argument.as_deref()).map_err(bad_shebang)? else {
            return Ok(());
        };
        let resolved = find_command(&command).ok_or_else(|| ElfError::EnvCommandNotFound {
            script: script.to_path_buf(),
            command: command.to_string_lossy().into_owned(),
        })?;
        self.script_interpreter(script, &resolved, depth)
    }

    fn script_interpreter(
        &mut self,
        script: &Path,
        interpreter: &Path,
        depth: usize,
    ) -> Result<(), ElfError> {
        if let Err(source) = fs::metadata(interpreter) {
            return Err(ElfError::ScriptInterpreterMissing {
                script: script.to_path_buf(),
                interpreter: interpreter.to_path_buf(),
                source,
            });
        }
        self.executable(interpreter, depth + 1).map(drop)
    }

    /// Adds an ELF executable, its ELF interpreter and its libraries.
    fn elf_image(&mut self, exe: &Path) -> Result<ExecKind, ElfError> {
        let main = ElfReader::open(exe)?.info()?;
        self.grants.add_exec(exe);
        let Some(interpreter) = main.interpreter.clone() else {
            // The kernel jumps straight to the entry point: nothing else loads.
            return Ok(ExecKind::StaticElf);
        };
        let interpreter = PathBuf::from(interpreter);
        if !interpreter.is_absolute() {
            return Err(ElfError::RelativeInterpreter {
                path: exe.to_path_buf(),
                interpreter: interpreter.to_string_lossy().into_owned(),
            });
        }
        let rtld_path =
            fs::canonicalize(&interpreter).map_err(|source| ElfError::InterpreterMissing {
                path: exe.to_path_buf(),
                interpreter: interpreter.clone(),
                source,
            })?;
        ensure_regular(&rtld_path)?;
        let rtld = ElfReader::open(&rtld_path)?.info()?;
        self.grants.add_exec(&rtld_path);
        self.grants.uses_loader = true;
        let mut image = Image::new(exe, main, &interpreter, &rtld_path, rtld);
        self.load_libraries(&mut image)?;
        Ok(ExecKind::DynamicElf)
    }

    /// Loads `DT_NEEDED` breadth first, as ld.so's `_dl_map_object_deps` does;
    /// the order decides each library's loader and so its inherited RPATHs.
    fn load_libraries(&mut self, image: &mut Image) -> Result<(), ElfError> {
        let mut next = 0;
        while next < image.objects.len() {
            let needed = std::mem::take(&mut image.objects[next].info.needed);
            for name in &needed {
                self.load_library(image, next, name)?;
            }
            next += 1;
        }
        Ok(())
    }

    fn load_library(
        &mut self,
        image: &mut Image,
        requester: usize,
        name: &OsStr,
    ) -> Result<(), ElfError> {
        if image.find_by_name(name).is_some() {
            return Ok(());
        }
        let found = self.locate(image, requester, name)?;
        // ld.so also recognises an object it already has by device and inode.
        if let Some(index) = image.find_by_path(&found.canonical) {
            image.objects[index].names.push(name.to_os_string());
            return Ok(());
        }
        if image.objects.len() >= MAX_LIBRARIES {
            return Err(ElfError::TooManyLibraries {
                path: image.objects[0].canonical.clone(),
            });
        }
        self.grants.add_read(&found.canonical);
        let mut names = vec![name.to_os_string(), found.path.clone().into_os_string()];
        names.extend(found.info.soname.clone());
        image.objects.push(LoadedObject {
            canonical: found.canonical,
            origin: found
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            names,
            info: found.info,
            loader: Some(requester),
        });
        Ok(())
    }

    /// Finds the file ld.so would map for `name` needed by `requester`.
    fn locate(
        &mut self,
        image: &Image,
        requester: usize,
        name: &OsStr,
    ) -> Result<Located, ElfError> {
        let object = &image.objects[requester];
        let not_found = |searched| ElfError::LibraryNotFound {
            name: name.to_string_lossy().into_owned(),
            needed_by: object.canonical.clone(),
            searched,
        };
        // Like ld.so, expand `$ORIGIN` and friends only in names that are paths.
        if name.as_bytes().contains(&b'/') {
            let expanded = expand_dst(name.as_bytes(), &object.origin);
            let path = PathBuf::from(OsString::from_vec(expanded));
            if !path.is_absolute() {
                return Err(ElfError::RelativeLibrary {
                    name: name.to_string_lossy().into_owned(),
                    needed_by: object.canonical.clone(),
                });
            }
            return match probe(&path, object.info.arch)? {
                Probe::Found(found) => Ok(found),
                Probe::OtherArch => Err(ElfError::WrongArchitecture {
                    path,
                    needed_by: object.canonical.clone(),
                }),
                Probe::Absent => Err(not_found(
                    path.parent().map(Path::to_path_buf).into_iter().collect(),
                )),
            };
        }
        let dirs = self.search_dirs(image, requester);
        for dir in &dirs {
            if let Probe::Found(found) = probe(&dir.join(name), object.info.arch)? {
                return Ok(found);
            }
        }
        Err(not_found(dirs))
    }

    /// The directories ld.so searches for a bare name needed by `requester`:
    /// DT_RPATH of the requester and its loaders up to the executable (only
    /// when the requester has no DT_RUNPATH), else its DT_RUNPATH; then the
    /// cache (ld.so.conf); then the default directories, unless the requester
    /// is linked with `-z nodefaultlib`.
    fn search_dirs(&mut self, image: &Image, requester: usize) -> Vec<PathBuf> {
        let object = &image.objects[requester];
        let mut dirs = Vec::new();
        match &object.info.runpath {
            Some(runpath) => dirs.extend(expand_search_list(runpath, &object.origin)),
            None => {
                // Loaders always sit before what they load, so this ends at the executable.
                let mut cursor = Some(requester);
                while let Some(index) = cursor {
                    let loader = &image.objects[index];
                    if let Some(rpath) = &loader.info.rpath {
                        dirs.extend(expand_search_list(rpath, &loader.origin));
                    }
                    cursor = loader.loader;
                }
            }
        }
        let defaults = default_dirs();
        let nodeflib = object.info.nodeflib;
        let conf = self
            .conf_dirs
            .get_or_insert_with(|| read_ld_so_conf(Path::new(LD_SO_CONF)));
        dirs.extend(
            conf.iter()
                .filter(|dir| !nodeflib || !defaults.iter().any(|d| dir.starts_with(d)))
                .cloned(),
        );
        if !nodeflib {
            dirs.extend(defaults);
        }
        let mut seen = HashSet::new();
        dirs.retain(|dir| seen.insert(dir.clone()));
        dirs
    }
}

/// The directories glibc searches last (its `system_dirs`).
fn default_dirs() -> Vec<PathBuf> {
    [
        format!("/lib/{MULTIARCH}"),
        format!("/usr/lib/{MULTIARCH}"),
        "/lib64".to_owned(),
        "/usr/lib64".to_owned(),
        "/lib".to_owned(),
        "/usr/lib".to_owned(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// One process image's link map as ld.so builds it: the executable first,
/// ld.so second, then libraries in load order.
struct Image {
    objects: Vec<LoadedObject>,
}

struct LoadedObject {
    canonical: PathBuf,
    /// What `$ORIGIN` expands to: the executable's real directory (ld.so reads
    /// /proc/self/exe), or the directory a library was found in, unresolved.
    origin: PathBuf,
    /// Names a later `DT_NEEDED` matches this object by: the names it was
    /// requested as, the path it was opened by, and its `DT_SONAME`.
    names: Vec<OsString>,
    info: ElfInfo,
    /// The object whose `DT_NEEDED` loaded this one.
    loader: Option<usize>,
}

impl Image {
    fn new(
        exe: &Path,
        main: ElfInfo,
        interpreter: &Path,
        rtld_path: &Path,
        mut rtld: ElfInfo,
    ) -> Self {
        // ld.so relocates itself and loads nothing on its own behalf.
        rtld.needed.clear();
        let main_names = main.soname.iter().cloned().collect();
        let mut rtld_names = vec![interpreter.as_os_str().to_os_string()];
        rtld_names.extend(rtld.soname.clone());
        let main = LoadedObject {
            canonical: exe.to_path_buf(),
            origin: exe.parent().map(Path::to_path_buf).unwrap_or_default(),
            names: main_names,
            info: main,
            loader: None,
        };
        let rtld = LoadedObject {
            canonical: rtld_path.to_path_buf(),
            origin: interpreter
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            names: rtld_names,
            info: rtld,
            loader: None,
        };
        Image {
            objects: vec![main, rtld],
        }
    }

    fn find_by_name(&self, name: &OsStr) -> Option<usize> {
        self.objects
            .iter()
            .position(|object| object.names.iter().any(|known| known == name))
    }

    fn find_by_path(&self, canonical: &Path) -> Option<usize> {
        self.objects
            .iter()
            .position(|object| object.canonical == canonical)
    }
}

#[cfg(test)]
mod tests;
