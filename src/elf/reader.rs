//! Reading one ELF file within bounds: its class, machine and
//! endianness, its interpreter, its dynamic section.

use std::cell::Cell;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use object::elf::{self, FileHeader32, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::read::{ReadCache, StringTable};
use object::{Endianness, FileKind, ReadRef};

use super::{io_error, ElfError, MAX_DYNAMIC_LEN, MAX_ELF_READ, MAX_INTERP_LEN, MAX_PHDR_TABLE};

/// What decides whether ld.so accepts a library for an object.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Arch {
    pub(super) class64: bool,
    pub(super) big_endian: bool,
    pub(super) machine: u16,
}

/// What the loader needs from one ELF file.
#[derive(Debug, Default)]
pub(super) struct ElfInfo {
    pub(super) arch: Arch,
    pub(super) interpreter: Option<OsString>,
    pub(super) needed: Vec<OsString>,
    pub(super) soname: Option<OsString>,
    /// `DT_RPATH`, already dropped when `DT_RUNPATH` is present (as ld.so does).
    pub(super) rpath: Option<OsString>,
    pub(super) runpath: Option<OsString>,
    /// `DF_1_NODEFLIB`: skip the default directories.
    pub(super) nodeflib: bool,
}

/// A file that hands out at most [`MAX_ELF_READ`] bytes in total, so a hostile
/// ELF cannot make us read (and cache) gigabytes.
pub(super) struct LimitedFile {
    pub(super) file: File,
    pub(super) remaining: u64,
    pub(super) exhausted: Rc<Cell<bool>>,
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
pub(super) struct ElfReader {
    pub(super) path: PathBuf,
    pub(super) data: ReadCache<LimitedFile>,
    pub(super) exhausted: Rc<Cell<bool>>,
    pub(super) arch: Arch,
}

/// Why parsing failed, before the path is attached.
pub(super) enum ParseFailure {
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
    pub(super) fn open(path: &Path) -> Result<Self, ElfError> {
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
    pub(super) fn info(&self) -> Result<ElfInfo, ElfError> {
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

pub(super) fn header_arch<Elf: FileHeader<Endian = Endianness>>(
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
pub(super) fn parse_elf<Elf: FileHeader<Endian = Endianness>>(
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

pub(super) fn read_interpreter<Ph: ProgramHeader<Endian = Endianness>>(
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

pub(super) fn read_dynamic<Elf: FileHeader<Endian = Endianness>>(
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
pub(super) fn address_to_offset<Ph: ProgramHeader<Endian = Endianness>>(
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
