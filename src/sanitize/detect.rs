//! File type detection by content: which sanitizer, if any, gets a file.
//!
//! The extension is never consulted: a hostile file names itself whatever
//! it likes. A signature at offset 0 wins; only when there is none do we
//! look for `%PDF-` in the first 1024 bytes, because PDF readers accept
//! leading junk there and the user would see that file as a PDF. A file
//! that starts as a ZIP stays a ZIP, whatever it hides later: it is an
//! Office or OpenDocument file when its directory says so ([`detect_file`],
//! `office.rs`), else unsupported. An OLE2 compound file likewise.

use super::office::{self, ContainerError, OfficeFormat, ReadAt, OLE2_MAGIC};

/// What a file is, judged by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    Pdf,
    Png,
    Jpeg,
    Gif,
    Bmp,
    Tiff,
    Webp,
    Zip,
    /// An OLE2 compound file not yet looked into.
    Ole2,
    Office(OfficeFormat),
    Unknown,
}

/// The plugin that handles a supported type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sanitizer {
    /// plugins/image-sanitize under the `image` policy; output `.safe.png`.
    Image,
    /// plugins/pdf-sanitize under the `pdf` policy; output `.safe.pdf`.
    Pdf,
    /// plugins/office-convert (LibreOffice) under the `office` policy, then
    /// its PDF through [`Sanitizer::Pdf`]; output `.safe.pdf`.
    Office,
}

/// How far into a file readers look for `%PDF-`.
const PDF_SEARCH_LEN: usize = 1024;

/// Signatures at offset 0, most specific first.
const SIGNATURES: &[(&[u8], FileType)] = &[
    (b"%PDF-", FileType::Pdf),
    (b"\x89PNG\r\n\x1a\n", FileType::Png),
    (b"\xff\xd8\xff", FileType::Jpeg),
    (b"GIF87a", FileType::Gif),
    (b"GIF89a", FileType::Gif),
    (b"II*\0", FileType::Tiff),
    (b"MM\0*", FileType::Tiff),
    (b"PK\x03\x04", FileType::Zip),
    (b"PK\x05\x06", FileType::Zip),
    (b"PK\x07\x08", FileType::Zip),
    (OLE2_MAGIC, FileType::Ole2),
    (b"{\\rtf", FileType::Office(OfficeFormat::Rtf)),
];

/// Detects the type of `bytes` by magic numbers.
pub fn detect(bytes: &[u8]) -> FileType {
    if let Some((_, kind)) = SIGNATURES
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
    {
        return *kind;
    }
    if is_webp(bytes) {
        return FileType::Webp;
    }
    if is_bmp(bytes) {
        return FileType::Bmp;
    }
    let head = &bytes[..bytes.len().min(PDF_SEARCH_LEN)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return FileType::Pdf;
    }
    FileType::Unknown
}

/// Detects the type of a whole file from its first bytes (`head`) and,
/// for a ZIP or OLE2 container, from its directory (read from `file` at
/// offsets, bounded). A container that is no document this handles, or
/// whose directory is broken, is an error saying what it is (the verdict
/// `unsupported`).
pub fn detect_file(head: &[u8], file: &(impl ReadAt + ?Sized)) -> Result<FileType, ContainerError> {
    match detect(head) {
        FileType::Zip => office::zip_format(file).map(FileType::Office),
        FileType::Ole2 => office::ole_format(file).map(FileType::Office),
        other => Ok(other),
    }
}

/// "RIFF", a 4-byte size, "WEBP".
fn is_webp(bytes: &[u8]) -> bool {
    bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP"
}

/// "BM" alone is too weak (any text may start so): also require a known
/// DIB header size at offset 14.
fn is_bmp(bytes: &[u8]) -> bool {
    if bytes.len() < 18 || !bytes.starts_with(b"BM") {
        return false;
    }
    let dib = u32::from_le_bytes([bytes[14], bytes[15], bytes[16], bytes[17]]);
    matches!(dib, 12 | 16 | 40 | 52 | 56 | 64 | 108 | 124)
}

impl FileType {
    /// A human name, for `unsupported: <name>` and summaries.
    pub fn describe(self) -> &'static str {
        match self {
            FileType::Pdf => "PDF document",
            FileType::Png => "PNG image",
            FileType::Jpeg => "JPEG image",
            FileType::Gif => "GIF image",
            FileType::Bmp => "BMP image",
            FileType::Tiff => "TIFF image",
            FileType::Webp => "WebP image",
            FileType::Zip => "ZIP archive",
            FileType::Ole2 => "OLE2 compound file",
            FileType::Office(f) => f.describe(),
            FileType::Unknown => "unknown type",
        }
    }

    /// The sanitizer for this type, or `None` (verdict `unsupported`).
    pub fn sanitizer(self) -> Option<Sanitizer> {
        match self {
            FileType::Pdf => Some(Sanitizer::Pdf),
            FileType::Png
            | FileType::Jpeg
            | FileType::Gif
            | FileType::Bmp
            | FileType::Tiff
            | FileType::Webp => Some(Sanitizer::Image),
            FileType::Office(_) => Some(Sanitizer::Office),
            FileType::Zip | FileType::Ole2 | FileType::Unknown => None,
        }
    }
}

impl Sanitizer {
    /// The plugin's crate and binary name.
    pub fn plugin_name(self) -> &'static str {
        match self {
            Sanitizer::Image => "pw-image-sanitize",
            Sanitizer::Pdf => "pw-pdf-sanitize",
            Sanitizer::Office => "pw-office-convert",
        }
    }

    /// The shipped policy the plugin runs under.
    pub fn policy_name(self) -> &'static str {
        match self {
            Sanitizer::Image => "image",
            Sanitizer::Pdf => "pdf",
            Sanitizer::Office => "office",
        }
    }

    /// The output file's suffix: `DIR/<name>.safe.<ext>`.
    pub fn output_extension(self) -> &'static str {
        match self {
            Sanitizer::Image => "png",
            Sanitizer::Pdf | Sanitizer::Office => "pdf",
        }
    }
}
