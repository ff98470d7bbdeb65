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

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use object::elf::{self, FileHeader32, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::read::{ReadCache, StringTable};
use object::{Endianness, FileKind, ReadRef};

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

/// A library found on disk: the path it was opened by, where it really is, and
/// what it says about itself.
struct Located {
    path: PathBuf,
    canonical: PathBuf,
    info: ElfInfo,
}

enum Probe {
    Found(Located),
    /// Nothing usable there: ld.so moves on to the next directory.
    Absent,
    /// An ELF for another class or machine: ld.so skips it too.
    OtherArch,
}

/// Looks at one candidate the way ld.so's `open_verify` does: a missing file
/// or one for another architecture is skipped, anything else that is not a
/// valid ELF is fatal.
fn probe(path: &Path, arch: Arch) -> Result<Probe, ElfError> {
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

fn ensure_regular(path: &Path) -> Result<(), ElfError> {
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
fn read_head(path: &Path) -> Result<Vec<u8>, ElfError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut head = Vec::with_capacity(SHEBANG_BUF);
    file.take(SHEBANG_BUF as u64)
        .read_to_end(&mut head)
        .map_err(io_error(path))?;
    Ok(head)
}

/// What decides whether ld.so accepts a library for an object.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Arch {
    class64: bool,
    big_endian: bool,
    machine: u16,
}

/// What the loader needs from one ELF file.
#[derive(Debug, Default)]
struct ElfInfo {
    arch: Arch,
    interpreter: Option<OsString>,
    needed: Vec<OsString>,
    soname: Option<OsString>,
    /// `DT_RPATH`, already dropped when `DT_RUNPATH` is present (as ld.so does).
    rpath: Option<OsString>,
    runpath: Option<OsString>,
    /// `DF_1_NODEFLIB`: skip the default directories.
    nodeflib: bool,
}

/// A file that hands out at most [`MAX_ELF_READ`] bytes in total, so a hostile
/// ELF cannot make us read (and cache) gigabytes.
struct LimitedFile {
    file: File,
    remaining: u64,
    exhausted: Rc<Cell<bool>>,
}

impl Read for LimitedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 && !buf.is_empty() {
            self.exhausted.set(true);
            return Err(io::Error::other("elf read limit reached"));
        }
        let allowed = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        let len = buf.len().min(allowed);
        let read = self.file.read(&mut buf[..len])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

impl Seek for LimitedFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

/// One ELF file opened for bounded, on-demand reads.
struct ElfReader {
    path: PathBuf,
    data: ReadCache<LimitedFile>,
    exhausted: Rc<Cell<bool>>,
    arch: Arch,
}

/// Why parsing failed, before the path is attached.
enum ParseFailure {
    Object(object::read::Error),
    Invalid(&'static str),
}

impl From<object::read::Error> for ParseFailure {
    fn from(err: object::read::Error) -> Self {
        ParseFailure::Object(err)
    }
}

impl ElfReader {
    /// Opens `path` and reads its ELF header.
    fn open(path: &Path) -> Result<Self, ElfError> {
        let file = File::open(path).map_err(io_error(path))?;
        let exhausted = Rc::new(Cell::new(false));
        let data = ReadCache::new(LimitedFile {
            file,
            remaining: MAX_ELF_READ,
            exhausted: Rc::clone(&exhausted),
        });
        let mut reader = ElfReader {
            path: path.to_path_buf(),
            data,
            exhausted,
            arch: Arch::default(),
        };
        if (&reader.data).read_bytes_at(0, 4) != Ok(&elf::ELFMAG[..]) {
            return Err(ElfError::NotElf {
                path: path.to_path_buf(),
            });
        }
        let arch = match FileKind::parse(&reader.data) {
            Ok(FileKind::Elf32) => header_arch::<FileHeader32<Endianness>>(&reader.data),
            Ok(FileKind::Elf64) => header_arch::<FileHeader64<Endianness>>(&reader.data),
            Ok(_) => Err(ParseFailure::Invalid("unknown elf class")),
            Err(err) => Err(ParseFailure::Object(err)),
        };
        reader.arch = arch.map_err(|failure| reader.error(failure))?;
        Ok(reader)
    }

    /// Reads the interpreter and dynamic section.
    fn info(&self) -> Result<ElfInfo, ElfError> {
        let parsed = if self.arch.class64 {
            parse_elf::<FileHeader64<Endianness>>(&self.data)
        } else {
            parse_elf::<FileHeader32<Endianness>>(&self.data)
        };
        let mut info = parsed.map_err(|failure| self.error(failure))?;
        info.arch = self.arch;
        Ok(info)
    }

    fn error(&self, failure: ParseFailure) -> ElfError {
        let path = self.path.clone();
        if self.exhausted.get() {
            return ElfError::ReadLimit { path };
        }
        match failure {
            ParseFailure::Object(source) => ElfError::Parse { path, source },
            ParseFailure::Invalid(detail) => ElfError::Malformed { path, detail },
        }
    }
}

fn header_arch<Elf: FileHeader<Endian = Endianness>>(
    data: &ReadCache<LimitedFile>,
) -> Result<Arch, ParseFailure> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    Ok(Arch {
        class64: header.is_class_64(),
        big_endian: header.is_big_endian(),
        machine: header.e_machine(endian).0,
    })
}

/// Reads what the kernel and ld.so read: the program headers, `PT_INTERP` and
/// `PT_DYNAMIC` (not section headers, which a loaded file need not have).
fn parse_elf<Elf: FileHeader<Endian = Endianness>>(
    data: &ReadCache<LimitedFile>,
) -> Result<ElfInfo, ParseFailure> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let kind = header.e_type(endian);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        return Err(ParseFailure::Invalid("not an executable or shared library"));
    }
    let phnum = header.e_phnum(endian);
    let table = u64::from(phnum) * u64::from(header.e_phentsize(endian));
    if phnum == elf::PN_XNUM || table > MAX_PHDR_TABLE {
        return Err(ParseFailure::Invalid("program header table too large"));
    }
    let phdrs = header.program_headers(endian, data)?;
    let mut info = ElfInfo {
        interpreter: read_interpreter(phdrs, endian, data)?,
        ..ElfInfo::default()
    };
    let Some(dynamic) = phdrs.iter().find(|ph| ph.p_type(endian) == elf::PT_DYNAMIC) else {
        return Ok(info);
    };
    if dynamic.p_filesz(endian).into() > MAX_DYNAMIC_LEN {
        return Err(ParseFailure::Invalid("dynamic segment too large"));
    }
    let entries = dynamic.dynamic(endian, data)?.unwrap_or_default();
    read_dynamic::<Elf>(entries, phdrs, endian, data, &mut info)?;
    Ok(info)
}

fn read_interpreter<Ph: ProgramHeader<Endian = Endianness>>(
    phdrs: &[Ph],
    endian: Endianness,
    data: &ReadCache<LimitedFile>,
) -> Result<Option<OsString>, ParseFailure> {
    // Like the kernel, use the first PT_INTERP.
    let Some(ph) = phdrs.iter().find(|ph| ph.p_type(endian) == elf::PT_INTERP) else {
        return Ok(None);
    };
    if ph.p_filesz(endian).into() > MAX_INTERP_LEN {
        return Err(ParseFailure::Invalid("interpreter path too long"));
    }
    match ph.interpreter(endian, data)? {
        Some(path) if !path.is_empty() => Ok(Some(OsString::from_vec(path.to_vec()))),
        _ => Err(ParseFailure::Invalid("empty interpreter path")),
    }
}

fn read_dynamic<Elf: FileHeader<Endian = Endianness>>(
    entries: &[Elf::Dyn],
    phdrs: &[Elf::ProgramHeader],
    endian: Endianness,
    data: &ReadCache<LimitedFile>,
    info: &mut ElfInfo,
) -> Result<(), ParseFailure> {
    let (mut strtab, mut strsz, mut flags1) = (None, None, 0);
    let (mut needed, mut soname, mut rpath, mut runpath) = (Vec::new(), None, None, None);
    for entry in entries {
        let value: u64 = entry.d_val(endian).into();
        match entry.d_tag(endian) {
            elf::DT_NULL => break,
            elf::DT_NEEDED => needed.push(value),
            elf::DT_SONAME => soname = Some(value),
            elf::DT_RPATH => rpath = Some(value),
            elf::DT_RUNPATH => runpath = Some(value),
            elf::DT_STRTAB => strtab = Some(value),
            elf::DT_STRSZ => strsz = Some(value),
            elf::DT_FLAGS_1 => flags1 = value,
            _ => {}
        }
    }
    info.nodeflib = flags1 & elf::DF_1_NODEFLIB.0 != 0;
    if needed.is_empty() && soname.is_none() && rpath.is_none() && runpath.is_none() {
        return Ok(());
    }
    let address = strtab.ok_or(ParseFailure::Invalid("dynamic section has no string table"))?;
    let start = address_to_offset(phdrs, endian, address)
        .ok_or(ParseFailure::Invalid("string table outside the file"))?;
    let file_len = data
        .len()
        .map_err(|()| ParseFailure::Invalid("cannot read file size"))?;
    let end = strsz.map_or(file_len, |size| start.saturating_add(size).min(file_len));
    let strings = StringTable::new(data, start, end);
    let string = |offset: u64| -> Result<OsString, ParseFailure> {
        u32::try_from(offset)
            .ok()
            .and_then(|offset| strings.get(offset).ok())
            .map(|bytes| OsString::from_vec(bytes.to_vec()))
            .ok_or(ParseFailure::Invalid("bad string in dynamic section"))
    };
    info.needed = needed.into_iter().map(&string).collect::<Result<_, _>>()?;
    info.soname = soname.map(&string).transpose()?;
    info.runpath = runpath.map(&string).transpose()?;
    // If both are given, ld.so ignores DT_RPATH.
    if info.runpath.is_none() {
        info.rpath = rpath.map(&string).transpose()?;
    }
    Ok(())
}

/// Maps a link-time address to a file offset through the `PT_LOAD` segments.
fn address_to_offset<Ph: ProgramHeader<Endian = Endianness>>(
    phdrs: &[Ph],
    endian: Endianness,
    address: u64,
) -> Option<u64> {
    phdrs
        .iter()
        .filter(|ph| ph.p_type(endian) == elf::PT_LOAD)
        .find_map(|ph| {
            let delta = address.checked_sub(ph.p_vaddr(endian).into())?;
            if delta >= ph.p_filesz(endian).into() {
                return None;
            }
            ph.p_offset(endian).into().checked_add(delta)
        })
}

/// Expands ld.so's dynamic string tokens (`$ORIGIN`, `$LIB`, `$PLATFORM`, or
/// braced) in one path. Unknown `$` sequences stay literal, as in ld.so.
fn expand_dst(text: &[u8], origin: &Path) -> Vec<u8> {
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
fn dst_len(text: &[u8], name: &[u8]) -> Option<usize> {
    if let Some(braced) = text.strip_prefix(b"{") {
        let after = braced.strip_prefix(name)?;
        return after.starts_with(b"}").then_some(name.len() + 2);
    }
    let after = text.strip_prefix(name)?;
    (after.is_empty() || after.starts_with(b"/")).then_some(name.len())
}

/// Splits a `DT_RPATH`/`DT_RUNPATH` list and expands each entry; empty and
/// relative entries (relative to the child's working directory) are dropped.
fn expand_search_list(list: &OsStr, origin: &Path) -> Vec<PathBuf> {
    list.as_bytes()
        .split(|&b| b == b':')
        .filter(|entry| !entry.is_empty())
        .map(|entry| PathBuf::from(OsString::from_vec(expand_dst(entry, origin))))
        .filter(|dir| dir.is_absolute())
        .collect()
}

/// Directories listed in an ld.so.conf, following `include` globs. Missing or
/// unreadable files count as empty: the file only adds directories.
fn read_ld_so_conf(path: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut files_left = MAX_CONF_FILES;
    read_conf_file(path, 0, &mut files_left, &mut dirs);
    let mut seen = HashSet::new();
    dirs.retain(|dir| seen.insert(dir.clone()));
    dirs
}

fn read_conf_file(path: &Path, depth: usize, files_left: &mut usize, dirs: &mut Vec<PathBuf>) {
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
fn strip_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(keyword)?;
    rest.starts_with([' ', '\t']).then_some(rest)
}

/// A small glob(3): `*` and `?` in the last component only, results sorted.
fn glob_files(pattern: &Path) -> Vec<PathBuf> {
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
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
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

/// A parsed `#!` line: the interpreter and the one optional argument the
/// kernel passes (the rest of the line, spaces included).
#[derive(Debug, PartialEq, Eq)]
struct Shebang {
    interpreter: Vec<u8>,
    argument: Option<Vec<u8>>,
}

/// Parses `#!` like the kernel's binfmt_script: spaces and tabs separate, the
/// line ends at a newline or NUL, and an interpreter name cut off by the
/// 256-byte buffer is refused.
fn parse_shebang(head: &[u8]) -> Result<Shebang, &'static str> {
    let body = head.strip_prefix(b"#!").ok_or("no #! at the start")?;
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let line = match body.iter().position(|&b| b == b'\n' || b == 0) {
        Some(end) => &body[..end],
        None if head.len() < SHEBANG_BUF => body,
        None => {
            let name_start = body.iter().position(|b| !is_blank(b)).unwrap_or(body.len());
            if !body[name_start..].iter().any(is_blank) {
                return Err("the interpreter path is longer than the 256 bytes the kernel reads");
            }
            body
        }
    };
    let start = line
        .iter()
        .position(|b| !is_blank(b))
        .ok_or("no interpreter after #!")?;
    let end = line
        .iter()
        .rposition(|b| !is_blank(b))
        .map_or(start, |last| last + 1);
    let line = &line[start..end];
    let (interpreter, rest) = match line.iter().position(is_blank) {
        Some(split) => line.split_at(split),
        None => (line, &[][..]),
    };
    let argument = rest
        .iter()
        .position(|b| !is_blank(b))
        .map(|arg_start| rest[arg_start..].to_vec());
    Ok(Shebang {
        interpreter: interpreter.to_vec(),
        argument,
    })
}

/// The command `env` runs given the `#!` argument, if any. Without `-S` the
/// kernel hands env the whole rest of the line as one argument.
fn env_command(argument: Option<&[u8]>) -> Result<Option<OsString>, &'static str> {
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
fn find_command(command: &OsStr) -> Option<PathBuf> {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::process::Command;

    use super::*;

    #[cfg(target_arch = "x86_64")]
    const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";
    #[cfg(target_arch = "aarch64")]
    const LD_SO: &str = "/lib/ld-linux-aarch64.so.1";

    fn canonical(path: &str) -> PathBuf {
        fs::canonicalize(path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    fn system_lib(name: &str) -> PathBuf {
        canonical(&format!("/lib/{MULTIARCH}/{name}"))
    }

    fn python_libs() -> Vec<PathBuf> {
        ["libm.so.6", "libz.so.1", "libexpat.so.1", "libc.so.6"]
            .into_iter()
            .map(system_lib)
            .collect()
    }

    fn write_executable(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        fs::canonicalize(path).unwrap()
    }

    /// A copy of /bin/true whose `DT_NEEDED` string "libc.so.6" is replaced by
    /// `needed` (same length, so nothing else moves).
    fn true_needing(dir: &Path, needed: &[u8; 9]) -> PathBuf {
        let mut bytes = fs::read("/bin/true").unwrap();
        let at = bytes
            .windows(10)
            .position(|window| window == b"libc.so.6\0")
            .unwrap();
        bytes[at..at + 9].copy_from_slice(needed);
        write_executable(dir, "true-patched", &bytes)
    }

    /// Runs gcc; `None` (with the reason printed) when it is missing or fails.
    fn gcc(dir: &Path, args: &[&str]) -> Option<()> {
        let status = Command::new("gcc").current_dir(dir).args(args).status();
        match status {
            Ok(status) if status.success() => Some(()),
            other => {
                println!("not applicable: gcc {args:?} did not build ({other:?})");
                None
            }
        }
    }

    /// What glibc's own loader maps for `path`, from `ldd`.
    fn ldd_paths(path: &str) -> Option<BTreeSet<PathBuf>> {
        let Ok(output) = Command::new("ldd").arg(path).output() else {
            println!("not applicable: ldd is not installed");
            return None;
        };
        let text = String::from_utf8(output.stdout).unwrap();
        let paths = text
            .lines()
            .filter_map(|line| {
                let target = line
                    .split_once("=>")
                    .map_or(line, |(_, right)| right)
                    .trim();
                let path = target.split(" (").next()?;
                path.starts_with('/').then(|| canonical(path))
            })
            .collect();
        Some(paths)
    }

    fn assert_matches_ldd(path: &str) {
        let Some(expected) = ldd_paths(path) else {
            return;
        };
        let deps = exec_dependencies(Path::new(path)).unwrap();
        let cache = canonical(LD_SO_CACHE);
        let exe = canonical(path);
        let found: BTreeSet<PathBuf> = deps
            .exec
            .into_iter()
            .chain(deps.read)
            .filter(|p| *p != cache && *p != exe)
            .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn test_exec_dependencies_dynamic_binary_grants_interpreter_and_libc() {
        let interpreter = canonical(LD_SO);

        let deps = exec_dependencies(Path::new("/bin/true")).unwrap();

        assert!(interpreter.starts_with("/usr/lib"), "{interpreter:?}");
        let expected = ExecDeps {
            exec: vec![canonical("/bin/true"), interpreter],
            read: vec![system_lib("libc.so.6"), canonical(LD_SO_CACHE)],
            is_script: false,
            is_static: false,
        };
        assert_eq!(deps, expected);
    }

    #[test]
    fn test_exec_dependencies_python_grants_its_libraries_in_load_order() {
        let deps = exec_dependencies(Path::new("/usr/bin/python3")).unwrap();

        let mut read = python_libs();
        read.push(canonical(LD_SO_CACHE));
        assert_eq!(
            deps.exec,
            vec![canonical("/usr/bin/python3.11"), canonical(LD_SO)]
        );
        assert_eq!(deps.read, read);
    }

    #[test]
    fn test_exec_dependencies_python_matches_ldd() {
        assert_matches_ldd("/usr/bin/python3.11");
    }

    #[test]
    fn test_exec_dependencies_curl_matches_ldd() {
        assert_matches_ldd("/usr/bin/curl");
    }

    #[test]
    fn test_exec_dependencies_ssh_matches_ldd() {
        assert_matches_ldd("/usr/bin/ssh");
    }

    #[test]
    fn test_exec_dependencies_python_script_grants_script_and_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_executable(dir.path(), "plugin.py", b"#!/usr/bin/python3\nprint(1)\n");

        let deps = exec_dependencies(&script).unwrap();

        let mut read = python_libs();
        read.push(canonical(LD_SO_CACHE));
        let expected = ExecDeps {
            exec: vec![script, canonical("/usr/bin/python3.11"), canonical(LD_SO)],
            read,
            is_script: true,
            is_static: false,
        };
        assert_eq!(deps, expected);
    }

    #[test]
    fn test_exec_dependencies_env_script_grants_env_and_command() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"#!/usr/bin/env python3\nprint(1)\n";
        let script = write_executable(dir.path(), "plugin.py", text);

        let deps = exec_dependencies(&script).unwrap();

        let exec = vec![
            script,
            canonical("/usr/bin/env"),
            canonical(LD_SO),
            canonical("/usr/bin/python3.11"),
        ];
        assert_eq!(deps.exec, exec);
        assert!(deps.is_script);
        assert!(python_libs().iter().all(|lib| deps.read.contains(lib)));
    }

    #[test]
    fn test_exec_dependencies_env_split_string_finds_command() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"#!/usr/bin/env -S -i PYTHONSAFEPATH=1 python3 -u\n";
        let script = write_executable(dir.path(), "plugin.py", text);

        let deps = exec_dependencies(&script).unwrap();

        assert!(deps.exec.contains(&canonical("/usr/bin/python3.11")));
    }

    #[test]
    fn test_exec_dependencies_every_path_exists_is_canonical_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"#!/usr/bin/env python3\nprint(1)\n";
        let script = write_executable(dir.path(), "plugin.py", text);

        let deps = exec_dependencies(&script).unwrap();

        let all: Vec<&PathBuf> = deps.exec.iter().chain(&deps.read).collect();
        let bad: Vec<&&PathBuf> = all
            .iter()
            .filter(|p| !p.is_file() || fs::canonicalize(p).ok().as_ref() != Some(**p))
            .collect();
        let unique: HashSet<&&PathBuf> = all.iter().collect();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(unique.len(), all.len(), "{all:?}");
    }

    #[test]
    fn test_exec_dependencies_static_binary_grants_only_itself() {
        // Debian's ldconfig is static-pie: ET_DYN without PT_INTERP.
        let Ok(ldconfig) = fs::canonicalize("/sbin/ldconfig") else {
            println!("not applicable: /sbin/ldconfig, a static binary, is not installed");
            return;
        };

        let deps = exec_dependencies(&ldconfig).unwrap();

        let expected = ExecDeps {
            exec: vec![ldconfig],
            read: vec![],
            is_script: false,
            is_static: true,
        };
        assert_eq!(deps, expected);
    }

    #[test]
    fn test_exec_dependencies_origin_runpath_finds_private_library() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        fs::write(dir.path().join("demo.c"), "int demo(void) { return 1; }\n").unwrap();
        fs::write(
            dir.path().join("main.c"),
            "int demo(void);\nint main(void) { return demo(); }\n",
        )
        .unwrap();
        let built = gcc(
            dir.path(),
            &["-shared", "-fPIC", "-o", "lib/libdemo.so", "demo.c"],
        )
        .and_then(|()| {
            gcc(
                dir.path(),
                &[
                    "-o",
                    "main",
                    "main.c",
                    "-Llib",
                    "-ldemo",
                    "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
                ],
            )
        });
        if built.is_none() {
            return;
        }

        let deps = exec_dependencies(&dir.path().join("main")).unwrap();

        let private = fs::canonicalize(dir.path().join("lib/libdemo.so")).unwrap();
        assert_eq!(deps.read.first(), Some(&private));
    }

    #[test]
    fn test_exec_dependencies_rpath_is_inherited_but_runpath_is_not() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        fs::write(
            dir.path().join("inner.c"),
            "int inner(void) { return 1; }\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("outer.c"),
            "int inner(void);\nint outer(void) { return inner(); }\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("main.c"),
            "int outer(void);\nint main(void) { return outer(); }\n",
        )
        .unwrap();
        let link = |dtags: &str, out: &str| {
            let flags = format!("-Wl,{dtags},-rpath,$ORIGIN/lib,-rpath-link,lib");
            gcc(
                dir.path(),
                &["-o", out, "main.c", "-Llib", "-louter", &flags],
            )
        };
        let built = gcc(
            dir.path(),
            &["-shared", "-fPIC", "-o", "lib/libinner.so", "inner.c"],
        )
        .and_then(|()| {
            gcc(
                dir.path(),
                &[
                    "-shared",
                    "-fPIC",
                    "-o",
                    "lib/libouter.so",
                    "outer.c",
                    "-Llib",
                    "-linner",
                ],
            )
        })
        .and_then(|()| link("--disable-new-dtags", "main-rpath"))
        .and_then(|()| link("--enable-new-dtags", "main-runpath"));
        if built.is_none() {
            return;
        }

        let with_rpath = exec_dependencies(&dir.path().join("main-rpath")).unwrap();
        let with_runpath = exec_dependencies(&dir.path().join("main-runpath"));

        let inner = fs::canonicalize(dir.path().join("lib/libinner.so")).unwrap();
        assert!(with_rpath.read.contains(&inner), "{:?}", with_rpath.read);
        assert!(
            matches!(with_runpath, Err(ElfError::LibraryNotFound { ref name, .. }) if name == "libinner.so"),
            "{with_runpath:?}"
        );
    }

    #[test]
    fn test_exec_dependencies_origin_needed_path_finds_library() {
        let dir = tempfile::tempdir().unwrap();
        let exe = true_needing(dir.path(), b"$ORIGIN/x");
        fs::copy(system_lib("libc.so.6"), dir.path().join("x")).unwrap();

        let deps = exec_dependencies(&exe).unwrap();

        assert_eq!(
            deps.read.first(),
            Some(&fs::canonicalize(dir.path().join("x")).unwrap())
        );
    }

    #[test]
    fn test_exec_dependencies_missing_library_names_it_and_the_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let exe = true_needing(dir.path(), b"libq.so.6");

        let err = exec_dependencies(&exe).unwrap_err();

        let message = err.to_string();
        assert!(
            matches!(err, ElfError::LibraryNotFound { ref name, .. } if name == "libq.so.6"),
            "{err:?}"
        );
        assert!(
            message.contains(&format!("/usr/lib/{MULTIARCH}")),
            "{message}"
        );
        assert!(
            message.ends_with("install it or make the plugin static"),
            "{message}"
        );
    }

    #[test]
    fn test_exec_dependencies_garbage_file_returns_not_executable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_executable(
            dir.path(),
            "garbage",
            b"this is not a program\n\x00\x01\x02",
        );

        let result = exec_dependencies(&path);

        assert!(
            matches!(result, Err(ElfError::NotExecutable { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn test_exec_dependencies_empty_file_returns_not_executable() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_executable(dir.path(), "empty", b"");

        let result = exec_dependencies(&path);

        assert!(
            matches!(result, Err(ElfError::NotExecutable { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn test_exec_dependencies_truncated_elf_returns_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = fs::read("/bin/true").unwrap();
        let path = write_executable(dir.path(), "truncated", &bytes[..100]);

        let result = exec_dependencies(&path);

        assert!(matches!(result, Err(ElfError::Parse { .. })), "{result:?}");
    }

    #[test]
    fn test_exec_dependencies_elf_magic_only_returns_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_executable(dir.path(), "magic", b"\x7fELF");

        let result = exec_dependencies(&path);

        assert!(matches!(result, Err(ElfError::Parse { .. })), "{result:?}");
    }

    #[test]
    fn test_exec_dependencies_corrupted_headers_never_panic() {
        // A loop on purpose: one corrupted byte per run over the ELF header,
        // the program headers and the dynamic section.
        let dir = tempfile::tempdir().unwrap();
        let original = fs::read("/bin/true").unwrap();
        let path = dir.path().join("corrupt");
        let dynamic = original
            .windows(16)
            .position(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
            .unwrap_or(0);
        let offsets = (0..800).chain(dynamic..(dynamic + 512).min(original.len()));
        let outcomes: Vec<bool> = offsets
            .map(|offset| {
                let mut bytes = original.clone();
                bytes[offset] ^= 0xff;
                fs::write(&path, &bytes).unwrap();
                exec_dependencies(&path).is_ok()
            })
            .collect();

        assert!(outcomes.iter().any(|ok| !ok));
    }

    #[test]
    fn test_exec_dependencies_nonexistent_path_returns_io_error() {
        let result = exec_dependencies(Path::new("/nonexistent/plugwarden/plugin"));

        assert!(matches!(result, Err(ElfError::Io { .. })), "{result:?}");
    }

    #[test]
    fn test_exec_dependencies_directory_returns_not_a_file() {
        let result = exec_dependencies(Path::new("/usr/bin"));

        assert!(
            matches!(result, Err(ElfError::NotAFile { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn test_exec_dependencies_missing_script_interpreter_returns_error() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_executable(dir.path(), "s", b"#!/usr/bin/no-such-python\n");

        let result = exec_dependencies(&script);

        assert!(
            matches!(result, Err(ElfError::ScriptInterpreterMissing { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn test_exec_dependencies_env_missing_command_returns_error() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_executable(dir.path(), "s", b"#!/usr/bin/env no-such-command-xyz\n");

        let result = exec_dependencies(&script);

        assert!(
            matches!(result, Err(ElfError::EnvCommandNotFound { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn test_exec_dependencies_relative_shebang_returns_bad_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let script = write_executable(dir.path(), "s", b"#!python3\n");

        let result = exec_dependencies(&script);

        assert!(
            matches!(result, Err(ElfError::BadShebang { .. })),
            "{result:?}"
        );
    }

    /// Writes s0 (`#!/bin/sh`) and s1..=s`last`, each running the one before.
    fn script_chain(dir: &Path, last: usize) -> PathBuf {
        let mut path = write_executable(dir, "s0", b"#!/bin/sh\necho ok\n");
        for i in 1..=last {
            let text = format!("#!{}\n", path.display());
            path = write_executable(dir, &format!("s{i}"), text.as_bytes());
        }
        path
    }

    #[test]
    fn test_exec_dependencies_four_nested_scripts_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let top = script_chain(dir.path(), 3);

        let deps = exec_dependencies(&top).unwrap();

        assert!(deps.exec.contains(&canonical("/bin/sh")), "{:?}", deps.exec);
    }

    #[test]
    fn test_exec_dependencies_five_nested_scripts_return_too_deep() {
        let dir = tempfile::tempdir().unwrap();
        let top = script_chain(dir.path(), 4);

        let result = exec_dependencies(&top);

        assert!(
            matches!(result, Err(ElfError::ScriptTooDeep { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn test_parse_shebang_interpreter_and_argument_split_at_first_blank() {
        let shebang = parse_shebang(b"#! \t/usr/bin/env  -S python3 -u \t\nrest").unwrap();

        let expected = Shebang {
            interpreter: b"/usr/bin/env".to_vec(),
            argument: Some(b"-S python3 -u".to_vec()),
        };
        assert_eq!(shebang, expected);
    }

    #[test]
    fn test_parse_shebang_without_newline_uses_whole_file() {
        let shebang = parse_shebang(b"#!/bin/sh").unwrap();

        let expected = Shebang {
            interpreter: b"/bin/sh".to_vec(),
            argument: None,
        };
        assert_eq!(shebang, expected);
    }

    #[test]
    fn test_parse_shebang_truncated_interpreter_returns_error() {
        let mut head = b"#!/".to_vec();
        head.resize(SHEBANG_BUF, b'a');

        let result = parse_shebang(&head);

        assert!(result.is_err());
    }

    #[test]
    fn test_parse_shebang_blank_line_returns_error() {
        let result = parse_shebang(b"#!  \n/bin/sh");

        assert!(result.is_err());
    }

    #[test]
    fn test_env_command_plain_argument_is_one_command() {
        let command = env_command(Some(b"python3 -u")).unwrap();

        assert_eq!(command, Some(OsString::from("python3 -u")));
    }

    #[test]
    fn test_env_command_split_string_skips_options_and_assignments() {
        let command = env_command(Some(b"-S -i -u HOME A=b python3 -u")).unwrap();

        assert_eq!(command, Some(OsString::from("python3")));
    }

    #[test]
    fn test_env_command_unknown_option_returns_error() {
        let result = env_command(Some(b"-S --frobnicate python3"));

        assert!(result.is_err());
    }

    #[test]
    fn test_expand_dst_origin_forms_expand_and_lookalikes_stay() {
        let origin = Path::new("/opt/app");

        let expanded = expand_dst(b"$ORIGIN/a ${ORIGIN}/b $ORIGINAL $LIB/c $FOO", origin);

        let expected = format!("/opt/app/a /opt/app/b $ORIGINAL lib/{MULTIARCH}/c $FOO");
        assert_eq!(String::from_utf8(expanded).unwrap(), expected);
    }

    #[test]
    fn test_expand_search_list_drops_empty_and_relative_entries() {
        let dirs = expand_search_list(OsStr::new("$ORIGIN/lib::rel:/abs/"), Path::new("/o"));

        assert_eq!(dirs, vec![PathBuf::from("/o/lib"), PathBuf::from("/abs/")]);
    }

    #[test]
    fn test_wildcard_match_star_and_question_mark() {
        assert!(wildcard_match(b"*.conf", b"libc.conf"));
        assert!(wildcard_match(b"lib?.c*f", b"libc.conf"));
        assert!(!wildcard_match(b"*.conf", b"libc.conf.bak"));
        assert!(!wildcard_match(b"*.conf", b".hidden.conf"));
    }

    #[test]
    fn test_read_ld_so_conf_follows_relative_include_globs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("conf.d")).unwrap();
        let main =
            "# comment\n/first/ # trailing\ninclude conf.d/*.conf\nhwcap 0 nosegneg\n/last\n";
        fs::write(root.join("ld.so.conf"), main).unwrap();
        fs::write(root.join("conf.d/b.conf"), "/from-b\n").unwrap();
        fs::write(root.join("conf.d/a.conf"), "/from-a\n/first\n").unwrap();
        fs::write(root.join("conf.d/c.txt"), "/ignored\n").unwrap();

        let dirs = read_ld_so_conf(&root.join("ld.so.conf"));

        let expected: Vec<PathBuf> = ["/first", "/from-a", "/from-b", "/last"]
            .into_iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(dirs, expected);
    }

    #[test]
    fn test_read_ld_so_conf_self_include_stops() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("loop.conf");
        fs::write(&conf, "/d\ninclude loop.conf\n").unwrap();

        let dirs = read_ld_so_conf(&conf);

        assert_eq!(dirs, vec![PathBuf::from("/d")]);
    }
}
