//! The pdf plugin's pages in, a fresh image-only PDF out.
//!
//! The writer is ours and small on purpose: a catalog, a page tree, and per
//! page one content stream that draws one DeviceRGB image XObject filling
//! the MediaBox. No Info dictionary, no metadata, no fonts, actions,
//! annotations, forms or names — there is no code path that could copy
//! them from the input, because the input never reaches this module.
//!
//! Compression is the main cost (a 150 dpi letter page is 6.3 MB of RGB),
//! so pages are deflated at the fastest level on every available CPU.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use flate2::write::ZlibEncoder;
use flate2::Compression;

use super::payload::{check_size, expect_magic, take_pixels, Cursor};
use super::{Limits, SanitizeError, PDF_MAGIC};

/// One validated page: exactly `width * height * 3` RGB bytes.
struct PageImage<'a> {
    width: u32,
    height: u32,
    rgb: &'a [u8],
}

/// Validates the pdf plugin's output (magic, page count, sides, total
/// pixels, exact byte counts) and writes a new PDF with one image per
/// page; returns the PDF and its page count.
pub fn pdf_from_plugin_output(
    payload: &[u8],
    limits: &Limits,
) -> Result<(Vec<u8>, u32), SanitizeError> {
    let pages = parse_pages(payload, limits)?;
    let streams = compress_pages(&pages)?;
    let pdf = write_pdf(&pages, &streams, limits.dpi);
    Ok((pdf, pages.len() as u32))
}

fn parse_pages<'a>(
    payload: &'a [u8],
    limits: &Limits,
) -> Result<Vec<PageImage<'a>>, SanitizeError> {
    let mut cursor = Cursor::new(payload);
    expect_magic(&mut cursor, PDF_MAGIC, "pdf", 12)?;
    let count = cursor.u32_le().ok_or(SanitizeError::ShortHeader {
        what: "pdf",
        len: payload.len(),
    })?;
    if count == 0 {
        return Err(SanitizeError::NoPages);
    }
    if count > limits.max_pages {
        return Err(SanitizeError::TooManyPages {
            pages: count,
            limit: limits.max_pages,
        });
    }
    let mut pages = Vec::with_capacity(count as usize);
    let mut total = 0u64;
    for number in 1..=count {
        let what = || format!("page {number}");
        let cut = SanitizeError::PageSizeCut {
            page: number,
            got: cursor.remaining(),
        };
        let (Some(width), Some(height)) = (cursor.u32_le(), cursor.u32_le()) else {
            return Err(cut);
        };
        total += check_size(width, height, &what, limits)?;
        if total > limits.max_total_pixels {
            return Err(SanitizeError::TooManyPixels {
                page: number,
                limit: limits.max_total_pixels,
            });
        }
        let rgb = take_pixels(&mut cursor, width, height, 3, &what)?;
        pages.push(PageImage { width, height, rgb });
    }
    if cursor.remaining() != 0 {
        return Err(SanitizeError::TrailingBytes {
            extra: cursor.remaining(),
        });
    }
    Ok(pages)
}

/// Deflates every page, the current thread and one helper per extra CPU
/// taking pages from a shared counter (pages differ a lot in cost). A
/// helper that cannot be started just leaves its share to the others.
fn compress_pages(pages: &[PageImage<'_>]) -> Result<Vec<Vec<u8>>, SanitizeError> {
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, std::io::Result<Vec<u8>>)>> =
        Mutex::new(Vec::with_capacity(pages.len()));
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(page) = pages.get(i) else { break };
        let stream = deflate(page.rgb);
        done.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((i, stream));
    };
    let helpers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pages.len())
        .saturating_sub(1);
    std::thread::scope(|scope| {
        for _ in 0..helpers {
            // Ignored on purpose: the loop below finishes the pages anyway.
            let _ = std::thread::Builder::new()
                .name("pw-deflate".into())
                .spawn_scoped(scope, work);
        }
        work();
    });
    let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter()
        .map(|(_, stream)| stream.map_err(SanitizeError::Compress))
        .collect()
}

fn deflate(data: &[u8]) -> std::io::Result<Vec<u8>> {
    // Level 1: rendered pages are mostly flat colour, which the fastest
    // level already shrinks 20-50x; higher levels cost far more time than
    // they save in size.
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(data.len() / 8), Compression::fast());
    encoder.write_all(data)?;
    encoder.finish()
}

/// Appends objects and remembers where each starts, for the xref table.
struct PdfWriter {
    out: Vec<u8>,
    offsets: Vec<usize>,
}

impl PdfWriter {
    fn new(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        // The comment of high bytes marks the file as binary for transfer tools.
        out.extend_from_slice(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
        PdfWriter {
            out,
            offsets: Vec::new(),
        }
    }

    /// Writes the next object (numbers start at 1 and are never skipped).
    fn object(&mut self, body: &[u8]) {
        self.offsets.push(self.out.len());
        let number = self.offsets.len();
        self.out
            .extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        self.out.extend_from_slice(body);
        self.out.extend_from_slice(b"\nendobj\n");
    }

    fn stream(&mut self, dict: &str, data: &[u8]) {
        let mut body = format!("<< {dict} /Length {} >>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.object(&body);
    }

    /// The xref table (each entry exactly 20 bytes) and the trailer.
    fn finish(mut self, root: usize) -> Vec<u8> {
        let xref = self.out.len();
        let size = self.offsets.len() + 1;
        self.out
            .extend_from_slice(format!("xref\n0 {size}\n0000000000 65535 f \n").as_bytes());
        for offset in &self.offsets {
            self.out
                .extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        let trailer =
            format!("trailer\n<< /Size {size} /Root {root} 0 R >>\nstartxref\n{xref}\n%%EOF\n");
        self.out.extend_from_slice(trailer.as_bytes());
        self.out
    }
}

/// Object layout: 1 catalog, 2 page tree, then per page i (from 0) the
/// page 3+3i, its content 4+3i and its image 5+3i.
fn write_pdf(pages: &[PageImage<'_>], streams: &[Vec<u8>], dpi: u32) -> Vec<u8> {
    let capacity = streams.iter().map(|s| s.len() + 400).sum::<usize>() + 200;
    let mut w = PdfWriter::new(capacity);
    w.object(b"<< /Type /Catalog /Pages 2 0 R >>");
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 3 + 3 * i))
        .collect();
    w.object(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        )
        .as_bytes(),
    );
    for (i, (page, stream)) in pages.iter().zip(streams).enumerate() {
        let (content, image) = (4 + 3 * i, 5 + 3 * i);
        let (width_pt, height_pt) = (points(page.width, dpi), points(page.height, dpi));
        w.object(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width_pt} {height_pt}] \
                 /Resources << /XObject << /Im0 {image} 0 R >> >> /Contents {content} 0 R >>"
            )
            .as_bytes(),
        );
        w.stream(
            "",
            format!("q\n{width_pt} 0 0 {height_pt} 0 0 cm\n/Im0 Do\nQ").as_bytes(),
        );
        w.stream(
            &format!(
                "/Type /XObject /Subtype /Image /Width {} /Height {} \
                 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode",
                page.width, page.height
            ),
            stream,
        );
    }
    w.finish(1)
}

/// Pixels at `dpi` to PDF points (1/72 inch), at most 4 decimals, no
/// trailing zeros (PDF reals have no exponent form).
fn points(pixels: u32, dpi: u32) -> String {
    let value = f64::from(pixels) * 72.0 / f64::from(dpi.max(1));
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
