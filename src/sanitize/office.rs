//! Which Office or OpenDocument format a file is, from its container.
//!
//! A ZIP says what it holds in two places a reader trusts: OOXML's
//! `[Content_Types].xml` names the main part's type (a Word, Excel or
//! PowerPoint document), OpenDocument's `mimetype` entry names the kind. An
//! OLE2 compound file (the legacy .doc/.xls/.ppt) says it with the name of
//! its main stream. Both containers keep their directory away from the
//! start, so this reads the file at offsets; every size and offset in them
//! is the file's claim and is checked against the file's real length and
//! against fixed caps before anything is read or allocated. Nothing here
//! decompresses more than [`MAX_PART`] bytes, whatever the entry declares.
//!
//! The host only routes by this. LibreOffice, in its sandbox, is forced to
//! the import filter of the format found here (`--infilter`), so a file
//! that is also something else (an ODT that is a valid PDF) is read as what
//! it was routed as, never as what LibreOffice would guess.

use std::io::Read;

mod ole;

pub use ole::{ole_format, OLE2_MAGIC};

/// An Office or OpenDocument format LibreOffice converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfficeFormat {
    Docx,
    Doc,
    Xlsx,
    Xls,
    Pptx,
    Ppt,
    Odt,
    Ods,
    Odp,
    Odg,
    Rtf,
}

/// The LibreOffice module that imports a format (and the Debian package
/// that ships it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OfficeModule {
    Writer,
    Calc,
    Impress,
    Draw,
}

impl OfficeModule {
    /// The module's configuration file under LibreOffice's
    /// `share/.registry`: present exactly when the module is installed.
    pub fn registry_file(self) -> &'static str {
        match self {
            OfficeModule::Writer => "writer.xcd",
            OfficeModule::Calc => "calc.xcd",
            OfficeModule::Impress => "impress.xcd",
            OfficeModule::Draw => "draw.xcd",
        }
    }

    /// Debian's package of the module, without a desktop.
    pub fn debian_package(self) -> &'static str {
        match self {
            OfficeModule::Writer => "libreoffice-writer-nogui",
            OfficeModule::Calc => "libreoffice-calc-nogui",
            OfficeModule::Impress => "libreoffice-impress-nogui",
            OfficeModule::Draw => "libreoffice-draw-nogui",
        }
    }
}

impl OfficeFormat {
    pub const ALL: [OfficeFormat; 11] = [
        OfficeFormat::Docx,
        OfficeFormat::Doc,
        OfficeFormat::Xlsx,
        OfficeFormat::Xls,
        OfficeFormat::Pptx,
        OfficeFormat::Ppt,
        OfficeFormat::Odt,
        OfficeFormat::Ods,
        OfficeFormat::Odp,
        OfficeFormat::Odg,
        OfficeFormat::Rtf,
    ];

    /// The usual file extension; also the name the converter knows the
    /// format by (its job header, plugins/office-convert).
    pub fn extension(self) -> &'static str {
        match self {
            OfficeFormat::Docx => "docx",
            OfficeFormat::Doc => "doc",
            OfficeFormat::Xlsx => "xlsx",
            OfficeFormat::Xls => "xls",
            OfficeFormat::Pptx => "pptx",
            OfficeFormat::Ppt => "ppt",
            OfficeFormat::Odt => "odt",
            OfficeFormat::Ods => "ods",
            OfficeFormat::Odp => "odp",
            OfficeFormat::Odg => "odg",
            OfficeFormat::Rtf => "rtf",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            OfficeFormat::Docx => "Word document (docx)",
            OfficeFormat::Doc => "Word 97-2003 document (doc)",
            OfficeFormat::Xlsx => "Excel workbook (xlsx)",
            OfficeFormat::Xls => "Excel 97-2003 workbook (xls)",
            OfficeFormat::Pptx => "PowerPoint presentation (pptx)",
            OfficeFormat::Ppt => "PowerPoint 97-2003 presentation (ppt)",
            OfficeFormat::Odt => "OpenDocument text (odt)",
            OfficeFormat::Ods => "OpenDocument spreadsheet (ods)",
            OfficeFormat::Odp => "OpenDocument presentation (odp)",
            OfficeFormat::Odg => "OpenDocument drawing (odg)",
            OfficeFormat::Rtf => "RTF document",
        }
    }

    pub fn module(self) -> OfficeModule {
        match self {
            OfficeFormat::Docx | OfficeFormat::Doc | OfficeFormat::Odt | OfficeFormat::Rtf => {
                OfficeModule::Writer
            }
            OfficeFormat::Xlsx | OfficeFormat::Xls | OfficeFormat::Ods => OfficeModule::Calc,
            OfficeFormat::Pptx | OfficeFormat::Ppt | OfficeFormat::Odp => OfficeModule::Impress,
            OfficeFormat::Odg => OfficeModule::Draw,
        }
    }
}

/// Random access to the file being detected; fails when the range is not
/// all there.
pub trait ReadAt {
    fn size(&self) -> u64;
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> bool;
}

impl ReadAt for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.len() as u64 {
            return false;
        }
        buf.copy_from_slice(&self[offset as usize..end as usize]);
        true
    }
}

/// Why a ZIP or OLE2 file is not a document this routes.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("ZIP archive")]
    PlainZip,
    #[error("ZIP archive with an unreadable directory: {0}")]
    BadZip(&'static str),
    #[error("ZIP archive whose {name} cannot be read: {why}")]
    BadPart { name: &'static str, why: String },
    #[error("OOXML package that is not a Word, Excel or PowerPoint document")]
    UnknownOoxml,
    #[error("OOXML package with main parts of more than one kind")]
    AmbiguousOoxml,
    #[error("OpenDocument package of an unsupported kind ({0})")]
    UnknownOdf(String),
    #[error("OLE2 compound file with an unreadable directory: {0}")]
    BadOle(&'static str),
    #[error("encrypted Office document (it needs a password; not supported)")]
    EncryptedOffice,
    #[error("OLE2 compound file that is not a Word, Excel or PowerPoint document")]
    UnknownOle,
}

/// Longest ZIP comment: the end record is in the last 22 + 65535 bytes.
const EOCD_SEARCH: u64 = 22 + 0xFFFF;
/// Largest central directory read (about 50,000 entries).
const MAX_DIRECTORY: u64 = 4 << 20;
/// Largest `[Content_Types].xml` or `mimetype`, compressed or not.
pub const MAX_PART: u64 = 1 << 20;

/// An entry of the central directory, as it claims to be.
struct ZipEntry {
    method: u16,
    compressed: u64,
    local_header: u64,
}

/// The format of a ZIP that is an OOXML or OpenDocument package.
pub fn zip_format(file: &(impl ReadAt + ?Sized)) -> Result<OfficeFormat, ContainerError> {
    let directory = read_zip_directory(file)?;
    let mut content_types = None;
    let mut mimetype = None;
    // The first entry of each name, as readers take it.
    walk_zip_directory(&directory, |name, entry| match name {
        b"[Content_Types].xml" if content_types.is_none() => content_types = Some(entry),
        b"mimetype" if mimetype.is_none() => mimetype = Some(entry),
        _ => {}
    })?;
    if let Some(entry) = mimetype {
        let text = read_part(file, &entry, "mimetype")?;
        return odf_format(&text);
    }
    if let Some(entry) = content_types {
        let xml = read_part(file, &entry, "[Content_Types].xml")?;
        return ooxml_format(&xml);
    }
    Err(ContainerError::PlainZip)
}

/// The central directory's bytes, located through the end record (and the
/// ZIP64 one when the end record says so).
fn read_zip_directory(file: &(impl ReadAt + ?Sized)) -> Result<Vec<u8>, ContainerError> {
    let len = file.size();
    let tail_len = len.min(EOCD_SEARCH);
    let tail_at = len - tail_len;
    let mut tail = vec![0; tail_len as usize];
    if !file.read_exact_at(tail_at, &mut tail) {
        return Err(ContainerError::BadZip("cannot read its end"));
    }
    // The last end record whose comment reaches exactly to the end of the
    // file; else the last signature at all (some writers pad).
    let candidates: Vec<usize> = (0..tail.len().saturating_sub(21))
        .rev()
        .filter(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .collect();
    let eocd = candidates
        .iter()
        .copied()
        .find(|&i| i + 22 + usize::from(u16_at(&tail, i + 20)) == tail.len())
        .or_else(|| candidates.first().copied())
        .ok_or(ContainerError::BadZip("no end of central directory record"))?;
    let eocd_at = tail_at + eocd as u64;
    let mut size = u64::from(u32_at(&tail, eocd + 12));
    let mut offset = u64::from(u32_at(&tail, eocd + 16));
    if size == 0xFFFF_FFFF || offset == 0xFFFF_FFFF {
        (size, offset) = zip64_directory(file, eocd_at)?;
    }
    if size > MAX_DIRECTORY {
        return Err(ContainerError::BadZip(
            "central directory larger than 4 MiB",
        ));
    }
    if offset.checked_add(size).is_none_or(|end| end > eocd_at) {
        return Err(ContainerError::BadZip("central directory outside the file"));
    }
    let mut directory = vec![0; size as usize];
    if !file.read_exact_at(offset, &mut directory) {
        return Err(ContainerError::BadZip("cannot read the central directory"));
    }
    Ok(directory)
}

/// Size and offset of the central directory from the ZIP64 end record,
/// found through its locator just before the end record.
fn zip64_directory(
    file: &(impl ReadAt + ?Sized),
    eocd_at: u64,
) -> Result<(u64, u64), ContainerError> {
    let bad = ContainerError::BadZip("bad ZIP64 end record");
    let mut locator = [0u8; 20];
    let at = eocd_at
        .checked_sub(20)
        .ok_or(ContainerError::BadZip("bad ZIP64 end record"))?;
    if !file.read_exact_at(at, &mut locator) || !locator.starts_with(b"PK\x06\x07") {
        return Err(bad);
    }
    let record_at = u64_at(&locator, 8);
    let mut record = [0u8; 56];
    if record_at >= at
        || !file.read_exact_at(record_at, &mut record)
        || !record.starts_with(b"PK\x06\x06")
    {
        return Err(bad);
    }
    Ok((u64_at(&record, 40), u64_at(&record, 48)))
}

/// Calls `visit` with each entry's name and claims; stops at the first
/// malformed entry.
fn walk_zip_directory(
    directory: &[u8],
    mut visit: impl FnMut(&[u8], ZipEntry),
) -> Result<(), ContainerError> {
    let mut at = 0;
    while at < directory.len() {
        let fixed = directory
            .get(at..at + 46)
            .filter(|h| h.starts_with(b"PK\x01\x02"))
            .ok_or(ContainerError::BadZip(
                "a malformed central directory entry",
            ))?;
        let name_len = usize::from(u16_at(fixed, 28));
        let extra_len = usize::from(u16_at(fixed, 30));
        let comment_len = usize::from(u16_at(fixed, 32));
        let name_end = at + 46 + name_len;
        let end = name_end + extra_len + comment_len;
        let (Some(name), Some(extra)) = (
            directory.get(at + 46..name_end),
            directory.get(name_end..name_end + extra_len),
        ) else {
            return Err(ContainerError::BadZip(
                "a central directory entry runs past its end",
            ));
        };
        let mut entry = ZipEntry {
            method: u16_at(fixed, 10),
            compressed: u64::from(u32_at(fixed, 20)),
            local_header: u64::from(u32_at(fixed, 42)),
        };
        zip64_extra(extra, fixed, &mut entry);
        visit(name, entry);
        at = end;
    }
    Ok(())
}

/// The ZIP64 extra field's 64-bit values, for the fields the fixed header
/// marks with all ones (in the order the format gives them).
fn zip64_extra(mut extra: &[u8], fixed: &[u8], entry: &mut ZipEntry) {
    while extra.len() >= 4 {
        let (id, len) = (u16_at(extra, 0), usize::from(u16_at(extra, 2)));
        let Some(data) = extra.get(4..4 + len) else {
            return;
        };
        if id == 1 {
            let mut values = data.chunks_exact(8).map(|c| u64_at(c, 0));
            if u32_at(fixed, 24) == u32::MAX {
                values.next(); // uncompressed size: never used
            }
            if u32_at(fixed, 20) == u32::MAX {
                entry.compressed = values.next().unwrap_or(u64::MAX);
            }
            if u32_at(fixed, 42) == u32::MAX {
                entry.local_header = values.next().unwrap_or(u64::MAX);
            }
            return;
        }
        extra = &extra[4 + len..];
    }
}

/// One small entry's content, inflated to at most [`MAX_PART`] bytes.
fn read_part(
    file: &(impl ReadAt + ?Sized),
    entry: &ZipEntry,
    name: &'static str,
) -> Result<Vec<u8>, ContainerError> {
    let bad = |why: &str| ContainerError::BadPart {
        name,
        why: why.to_string(),
    };
    if entry.compressed > MAX_PART {
        return Err(bad("larger than 1 MiB"));
    }
    let mut local = [0u8; 30];
    if !file.read_exact_at(entry.local_header, &mut local) || !local.starts_with(b"PK\x03\x04") {
        return Err(bad("its local header is missing"));
    }
    let names = 30 + u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
    let mut data = vec![0; entry.compressed as usize];
    let data_at = entry.local_header.checked_add(names);
    if !data_at.is_some_and(|at| file.read_exact_at(at, &mut data)) {
        return Err(bad("its data runs past the end of the file"));
    }
    match entry.method {
        0 => Ok(data),
        8 => {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(data.as_slice())
                .take(MAX_PART + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(&format!("bad deflate data ({e})")))?;
            if out.len() as u64 > MAX_PART {
                return Err(bad("it inflates to more than 1 MiB"));
            }
            Ok(out)
        }
        m => Err(bad(&format!("compression method {m}"))),
    }
}

fn odf_format(mimetype: &[u8]) -> Result<OfficeFormat, ContainerError> {
    let text = String::from_utf8_lossy(mimetype);
    let kind = text.trim();
    match kind {
        "application/vnd.oasis.opendocument.text" => Ok(OfficeFormat::Odt),
        "application/vnd.oasis.opendocument.spreadsheet" => Ok(OfficeFormat::Ods),
        "application/vnd.oasis.opendocument.presentation" => Ok(OfficeFormat::Odp),
        "application/vnd.oasis.opendocument.graphics" => Ok(OfficeFormat::Odg),
        _ => Err(ContainerError::UnknownOdf(crate::escape::quote(
            &kind.as_bytes()[..kind.len().min(80)],
        ))),
    }
}

/// Main-part content types of each OOXML family (plain, template,
/// macro-enabled: the macros never run, the document is converted alike).
const OOXML_MAIN: [(OfficeFormat, &[&str]); 3] = [
    (
        OfficeFormat::Docx,
        &[
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
            "application/vnd.ms-word.document.macroEnabled.main+xml",
            "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
        ],
    ),
    (
        OfficeFormat::Xlsx,
        &[
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
            "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
            "application/vnd.ms-excel.template.macroEnabled.main+xml",
        ],
    ),
    (
        OfficeFormat::Pptx,
        &[
            "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml",
            "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml",
            "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml",
            "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml",
            "application/vnd.ms-powerpoint.slideshow.macroEnabled.main+xml",
        ],
    ),
];

/// The family whose main-part type `[Content_Types].xml` declares, read
/// from its `ContentType` attribute values (no XML tree is built).
fn ooxml_format(xml: &[u8]) -> Result<OfficeFormat, ContainerError> {
    let mut found = None;
    for value in attribute_values(xml, b"ContentType") {
        let Some((format, _)) = OOXML_MAIN
            .iter()
            .find(|(_, types)| types.iter().any(|t| t.as_bytes() == value))
        else {
            continue;
        };
        match found {
            Some(f) if f != *format => return Err(ContainerError::AmbiguousOoxml),
            _ => found = Some(*format),
        }
    }
    found.ok_or(ContainerError::UnknownOoxml)
}

/// The values of every `name="..."` or `name='...'` attribute in `xml`.
fn attribute_values<'a>(xml: &'a [u8], name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut at = 0;
    std::iter::from_fn(move || {
        while let Some(pos) = find(&xml[at..], name) {
            let start = at + pos;
            at = start + name.len();
            let preceded = start == 0 || xml[start - 1].is_ascii_whitespace();
            let rest = &xml[at..];
            let eq = rest.iter().position(|b| !b.is_ascii_whitespace());
            let Some(eq) = eq.filter(|&i| preceded && rest[i] == b'=') else {
                continue;
            };
            let after = &rest[eq + 1..];
            let Some(q) = after.iter().position(|b| !b.is_ascii_whitespace()) else {
                continue;
            };
            let quote = after[q];
            if quote != b'"' && quote != b'\'' {
                continue;
            }
            let value = &after[q + 1..];
            if let Some(end) = value.iter().position(|&b| b == quote) {
                at += eq + 1 + q + 1 + end + 1;
                return Some(&value[..end]);
            }
        }
        None
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
#[path = "office_tests.rs"]
mod tests;
