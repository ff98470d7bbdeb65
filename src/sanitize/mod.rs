//! Host side of `plugwarden sanitize`: pure functions, no sandbox code.
//!
//! The sandboxed plugins (plugins/image-sanitize, plugins/pdf-sanitize) do
//! the dangerous part, parsing hostile files, and hand back raw pixels.
//! This module does the rest, trusting none of what they return:
//! - [`detect`] picks a plugin by magic bytes, never by file name;
//! - [`png_from_plugin_output`] and [`pdf_from_plugin_output`] check the
//!   pixel payload byte for byte against [`Limits`] and write brand-new
//!   files that hold nothing but those pixels (no metadata, no scripts,
//!   nothing copied from the input).
//!
//! Any [`SanitizeError`] from the two output functions means the plugin
//! broke the contract: the caller reports it as `protocol_error`.

mod detect;
mod payload;
mod pdf_out;
mod png_out;

pub use detect::{detect, FileType, Sanitizer};
pub use pdf_out::pdf_from_plugin_output;
pub use png_out::png_from_plugin_output;

/// Magic of the image plugin's output: then u32 LE width, u32 LE height and
/// exactly width * height * 4 RGBA bytes.
pub const IMAGE_MAGIC: &[u8; 8] = b"PWIMG1\0\0";
/// Magic of the pdf plugin's output: then u32 LE page count and per page
/// u32 LE width, u32 LE height and exactly width * height * 3 RGB bytes.
pub const PDF_MAGIC: &[u8; 8] = b"PWPDF1\0\0";

/// Bounds on what a plugin may return, and how pages are laid out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// Most pages in one PDF.
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
    /// accepts is never refused here: 500 pages, 20000 px a side, 64 Mpx
    /// an image, 1 Gpx a document (500 letter pages at 150 dpi), 150 dpi.
    fn default() -> Self {
        Limits {
            max_pages: 500,
            max_side: 20_000,
            max_image_pixels: 64 << 20,
            max_total_pixels: 1 << 30,
            dpi: 150,
        }
    }
}

/// What is wrong with a plugin's output. Every variant but [`Self::Png`]
/// and [`Self::Compress`] is the plugin's fault (`protocol_error`).
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
    #[error("plugin output ends inside the size of page {page}: {got} of 8 bytes")]
    PageSizeCut { page: u32, got: usize },
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
    #[error("cannot encode the png")]
    Png(#[source] png::EncodingError),
    #[error("cannot compress a page")]
    Compress(#[source] std::io::Error),
}

impl SanitizeError {
    /// True when the plugin broke the output contract (verdict
    /// `protocol_error`); false for the host's own failure.
    pub fn is_protocol_error(&self) -> bool {
        !matches!(self, SanitizeError::Png(_) | SanitizeError::Compress(_))
    }
}

#[cfg(test)]
mod tests;
