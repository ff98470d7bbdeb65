//! Host side of `plugwarden sanitize`: pure functions, no sandbox code.
//!
//! The sandboxed plugins (plugins/image-sanitize, plugins/pdf-sanitize) do
//! the dangerous part, parsing hostile files, and hand back raw pixels.
//! This module does the rest, trusting none of what they return:
//! - `detect` picks a plugin by magic bytes, never by file name, and
//!   [`detect_file`] looks into a ZIP or OLE2 container's directory for
//!   the Office or OpenDocument format it holds (bounded; `office.rs`);
//! - [`png_from_plugin_output`] and [`PdfStream`] check the pixel payload
//!   byte for byte against [`Limits`] and write brand-new files that hold
//!   nothing but those pixels (no metadata, no scripts, nothing copied from
//!   the input). [`PdfStream`] takes the pdf plugin's pages as they arrive
//!   and appends each to the output at once, so the host holds one page of
//!   a document at a time, whatever its length;
//! - [`PageReport`] accounts for every page the document declares: the
//!   caller refuses a document with a page missing unless told otherwise.
//!
//! A [`SanitizeError`] for which [`SanitizeError::is_protocol_error`] holds
//! means the plugin broke the contract: the caller reports `protocol_error`.

mod compress;
mod detect;
pub mod ocr;
mod office;
mod payload;
mod pdf_out;
mod png_out;

pub use compress::Compress;
pub use detect::{detect, detect_file, FileType, Sanitizer};
pub use office::{ContainerError, OfficeFormat, OfficeModule, ReadAt};
pub use pdf_out::{pdf_from_plugin_output, OcrPage, PageReport, PdfStream};
pub use png_out::png_from_plugin_output;

/// Magic of the image plugin's output: then u32 LE width, u32 LE height and
/// exactly width * height * 4 RGBA bytes.
pub const IMAGE_MAGIC: &[u8; 8] = b"PWIMG1\0\0";
/// Magic of the pdf plugin's output (format 2): then u32 LE the number of
/// pages the document declares, u32 LE flags ([`PDF_SCANNED`]), and one
/// record per declared page, in order: [`PAGE_RENDERED`], u32 LE width,
/// u32 LE height and exactly width * height * 3 RGB bytes; or
/// [`PAGE_FAILED`], u32 LE width and height of the placeholder (0 0 when
/// unknown), u32 LE length and that many bytes of UTF-8 reason (at most
/// [`MAX_PAGE_REASON`]).
pub const PDF_MAGIC: &[u8; 8] = b"PWPDF2\0\0";
/// Flag: the document has no readable page tree; its pages were found by
/// scanning the file for page objects.
pub const PDF_SCANNED: u32 = 1;
/// Record kind: a rendered page.
pub const PAGE_RENDERED: u8 = 1;
/// Record kind: a declared page that could not be rendered.
pub const PAGE_FAILED: u8 = 2;
/// Longest reason a failed page may carry, in bytes.
pub const MAX_PAGE_REASON: usize = 1000;
/// Input of the pdf plugin that carries a password (`--password-file`):
/// then u32 LE length, the password (UTF-8), then the PDF. It travels in
/// the job, never on a command line.
pub const PDF_PASSWORD_MAGIC: &[u8; 8] = b"PWPDFPW\0";
/// Input of the office converter (plugins/office-convert): then u32 LE
/// length (at most 16), the format's name ([`OfficeFormat::extension`]),
/// then the document. LibreOffice is forced to that format's import filter.
pub const OFFICE_MAGIC: &[u8; 8] = b"PWOFFC1\0";

impl ReadAt for crate::input::Input {
    fn size(&self) -> u64 {
        self.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> bool {
        match self {
            crate::input::Input::Bytes(b) => b.as_slice().read_exact_at(offset, buf),
            crate::input::Input::File(src) => {
                offset
                    .checked_add(buf.len() as u64)
                    .is_some_and(|end| end <= src.len())
                    && src.read_at(offset, buf).is_ok()
            }
        }
    }
}

/// Bounds on what a plugin may return, and how pages are laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Most pages one PDF may declare.
    pub max_pages: u32,
    /// Largest width or height of an image or page, in pixels.
    pub max_side: u32,
    /// Largest width * height of one image or page.
    pub max_image_pixels: u64,
    /// Largest sum of width * height over all pages of one PDF.
    pub max_total_pixels: u64,
    /// The resolution the pdf plugin rendered at (its `--dpi`); sizes the
    /// output pages so they print at the original size.
    pub dpi: u32,
}

impl Default for Limits {
    /// Matches the plugins' own defaults, so a benign file that the plugin
    /// accepts is never refused here: 10,000 pages, 20000 px a side, 64 Mpx
    /// an image, 4 Gpx a document (1,900 letter pages at 150 dpi), 150 dpi.
    fn default() -> Self {
        Limits {
            max_pages: 10_000,
            max_side: 20_000,
            max_image_pixels: 64 << 20,
            max_total_pixels: 4 << 30,
            dpi: 150,
        }
    }
}

/// What is wrong with a plugin's output. Every variant but [`Self::Png`]
/// and [`Self::Write`] is the plugin's fault (`protocol_error`).
#[derive(Debug, thiserror::Error)]
pub enum SanitizeError {
    #[error("plugin returned {len} bytes, too short for the {what} header")]
    ShortHeader { what: &'static str, len: usize },
    #[error("plugin output does not start with {expected:?}")]
    BadMagic { expected: &'static str },
    #[error("plugin returned no pages")]
    NoPages,
    #[error("plugin returned {pages} pages, limit {limit}")]
    TooManyPages { pages: u32, limit: u32 },
    #[error("plugin returned a {width}x{height} {what}, limit {max_side} px a side and {max_pixels} px in all")]
    BadSize {
        what: String,
        width: u32,
        height: u32,
        max_side: u32,
        max_pixels: u64,
    },
    #[error("plugin returned more than {limit} px in total by page {page}")]
    TooManyPixels { page: u32, limit: u64 },
    #[error(
        "plugin returned {got} bytes for {what}, expected {expected} for {width}x{height} {model}"
    )]
    PixelLength {
        what: String,
        got: usize,
        expected: u64,
        width: u32,
        height: u32,
        model: &'static str,
    },
    #[error("plugin returned {extra} bytes after the last page")]
    TrailingBytes { extra: usize },
    #[error("plugin returned a record of unknown kind {kind} for page {page}")]
    BadRecord { page: u32, kind: u8 },
    #[error("plugin gave page {page} a reason of {len} bytes that is not UTF-8 or longer than {MAX_PAGE_REASON}")]
    BadReason { page: u32, len: u32 },
    #[error("plugin output ends at page {page} of the {declared} declared")]
    Unfinished { page: u32, declared: u32 },
    #[error("cannot encode the png")]
    Png(#[source] png::EncodingError),
    #[error("cannot write the safe pdf")]
    Write(#[source] std::io::Error),
}

impl SanitizeError {
    /// True when the plugin broke the output contract (verdict
    /// `protocol_error`); false for the host's own failure.
    pub fn is_protocol_error(&self) -> bool {
        !matches!(self, SanitizeError::Png(_) | SanitizeError::Write(_))
    }
}

#[cfg(test)]
mod tests;
