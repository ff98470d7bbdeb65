//! The pdf plugin's pages in, a fresh image-only PDF out, page by page.
//!
//! The writer is ours and small on purpose: a catalog, a page tree, and per
//! page one content stream that draws one DeviceRGB image XObject filling
//! the MediaBox. No Info dictionary, no metadata, no actions, annotations,
//! forms or names — there is no code path that could copy them from the
//! input, because the input never reaches this module. A page the plugin
//! could not render keeps its place as a blank page labelled with its
//! number, in Helvetica (a standard font every reader has: nothing is
//! embedded, and the label is ours, never the plugin's words).
//!
//! [`PdfStream`] parses the plugin's output as it arrives, in pieces of any
//! size, and appends each page to the output as soon as its last byte is
//! in: it holds one page's compressed image, never the document. The page
//! tree and the cross-reference table, which need every page's object
//! number and offset (a few bytes a page), are written at the end.
//!
//! With a text layer ([`PdfStream::keep_pages_for_ocr`]), each rendered
//! page also goes, in grey, to a spill file for OCR, and its page names a
//! second content stream written later ([`PdfStream::set_text`]): the
//! invisible words of `ocr.rs`, or nothing when none were found.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use super::compress::{Compress, PageEncoder};
use super::ocr::{self, Word};
use super::payload::check_size;
mod records;
mod report;

pub use report::PageReport;

use super::{Limits, SanitizeError, PAGE_FAILED, PAGE_RENDERED, PDF_MAGIC, PDF_SCANNED};

/// Bytes of the output's header: magic, declared pages, flags.
const HEADER_LEN: usize = 16;
/// Bytes that start a rendered page's record (kind, width, height) and a
/// failed page's (kind, width, height, reason length).
const RENDERED_HEAD: usize = 9;
const FAILED_HEAD: usize = 13;
/// Most reasons spelled out in [`PageReport::shortfall`].
const MAX_REASONS_SHOWN: usize = 5;

/// Counts what goes through, for the cross-reference table.
struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where the parser is in the plugin's output.
enum State {
    Header,
    /// Between records, or inside a record's head (in `head`).
    Record,
    /// A rendered page's pixels, deflated as they arrive.
    Pixels {
        width: u32,
        height: u32,
        remaining: u64,
        encoder: PageEncoder,
    },
    /// A failed page's reason.
    Reason {
        width: u32,
        height: u32,
        len: usize,
        text: Vec<u8>,
    },
    /// Every declared page is in.
    End,
}

/// Validates the pdf plugin's output (magic, page count, sides, total
/// pixels, exact byte counts) while it arrives and writes a new PDF with
/// one image per declared page to `W` as it goes. Feed it with
/// [`PdfStream::write`], close it with [`PdfStream::finish`].
pub struct PdfStream<W: Write> {
    limits: Limits,
    out: Counting<W>,
    /// Offset of object n at n - 1; 0 until it is written.
    offsets: Vec<u64>,
    /// Object numbers of the pages, in order.
    kids: Vec<usize>,
    state: State,
    /// The header or the record head being read.
    head: Vec<u8>,
    report: PageReport,
    /// Records complete so far.
    done: u32,
    total_pixels: u64,
    /// The last rendered page's size: a placeholder of unknown size takes it.
    last_size: Option<(u32, u32)>,
    /// The placeholders' font object, once written.
    font: Option<usize>,
    /// The deflate output buffer, kept from page to page.
    deflated: Vec<u8>,
    /// Pages kept for OCR, when there is a text layer.
    ocr: Option<OcrSpill>,
    /// How page images are compressed.
    compress: Compress,
}

/// A rendered page kept for OCR: its 1-based number, its size in pixels,
/// and (private) where its grey pixels are and its text layer's object.
#[derive(Clone, Debug)]
pub struct OcrPage {
    pub number: u32,
    pub width: u32,
    pub height: u32,
    offset: u64,
    text_object: usize,
    written: bool,
}

/// The grey copies of the rendered pages, one after the other in a file.
struct OcrSpill {
    file: File,
    len: u64,
    pages: Vec<OcrPage>,
    /// Where the page being received starts.
    page_start: u64,
    /// The start of an RGB pixel split across two writes.
    carry: Vec<u8>,
    grey: Vec<u8>,
    /// The text layer's font object, once written.
    font: Option<usize>,
}

impl OcrSpill {
    fn pixels(&mut self, rgb: &[u8]) -> io::Result<()> {
        self.grey.clear();
        let mut rgb = rgb;
        if !self.carry.is_empty() {
            let n = (3 - self.carry.len()).min(rgb.len());
            self.carry.extend_from_slice(&rgb[..n]);
            rgb = &rgb[n..];
            if self.carry.len() == 3 {
                self.grey.push(luma(&self.carry));
                self.carry.clear();
            }
        }
        let whole = rgb.len() / 3 * 3;
        self.grey.extend(rgb[..whole].chunks_exact(3).map(luma));
        self.carry.extend_from_slice(&rgb[whole..]);
        self.file.write_all_at(&self.grey, self.len)?;
        self.len += self.grey.len() as u64;
        Ok(())
    }
}

/// ITU-R BT.601 luma, in integers.
fn luma(p: &[u8]) -> u8 {
    ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2])) >> 8) as u8
}

/// Object 1 is the catalog, 2 the page tree (written last).
const CATALOG: usize = 1;
const PAGES: usize = 2;

impl<W: Write> PdfStream<W> {
    /// Starts the output: the file header and the catalog.
    pub fn new(out: W, limits: Limits) -> Result<Self, SanitizeError> {
        let mut s = PdfStream {
            limits,
            out: Counting {
                inner: out,
                written: 0,
            },
            offsets: vec![0; PAGES],
            kids: Vec::new(),
            state: State::Header,
            head: Vec::with_capacity(HEADER_LEN),
            report: PageReport::default(),
            done: 0,
            total_pixels: 0,
            last_size: None,
            font: None,
            deflated: Vec::new(),
            ocr: None,
            compress: Compress::default(),
        };
        // The comment of high bytes marks the file as binary for transfer tools.
        s.out
            .write_all(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
            .map_err(SanitizeError::Write)?;
        s.object(CATALOG, b"<< /Type /Catalog /Pages 2 0 R >>")?;
        Ok(s)
    }

    /// Keeps every rendered page, in grey, in `spill` (a scratch file) for
    /// OCR, and gives each a text layer: call before the first byte, then
    /// [`Self::set_text`] for the pages of [`Self::ocr_pages`] once every
    /// page is in, before [`Self::finish`].
    pub fn keep_pages_for_ocr(&mut self, spill: File) {
        self.ocr = Some(OcrSpill {
            file: spill,
            len: 0,
            pages: Vec::new(),
            page_start: 0,
            carry: Vec::new(),
            grey: Vec::new(),
            font: None,
        });
    }

    /// How the page images are compressed (default [`Compress::Fast`]):
    /// call before the first byte.
    pub fn set_compress(&mut self, compress: Compress) {
        self.compress = compress;
    }

    /// The rendered pages kept for OCR (none without a text layer).
    pub fn ocr_pages(&self) -> Vec<OcrPage> {
        self.ocr.as_ref().map_or_else(Vec::new, |o| o.pages.clone())
    }

    /// A kept page's grey pixels, width x height bytes.
    pub fn page_grey(&self, page: &OcrPage) -> io::Result<Vec<u8>> {
        let spill = self.ocr.as_ref().ok_or(io::ErrorKind::NotFound)?;
        let mut grey = vec![0; page.width as usize * page.height as usize];
        spill.file.read_exact_at(&mut grey, page.offset)?;
        Ok(grey)
    }

    /// Writes page `number`'s text layer: `words`, invisible, over the
    /// pixels they were read from. A page not kept, or given its text
    /// already, is left alone.
    pub fn set_text(&mut self, number: u32, words: &[Word]) -> Result<(), SanitizeError> {
        let dpi = self.limits.dpi;
        let Some(page) = self.ocr.as_mut().and_then(|o| {
            o.pages
                .iter_mut()
                .find(|p| p.number == number && !p.written)
        }) else {
            return Ok(());
        };
        page.written = true;
        let (object, height) = (page.text_object, page.height);
        let content = ocr::text_layer(words, height, dpi, "F2");
        self.stream(object, "", content.as_bytes())
    }

    /// The next bytes of the plugin's output; part boundaries mean nothing.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<(), SanitizeError> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Header => {
                    if take_into(&mut self.head, HEADER_LEN, &mut bytes) {
                        self.header()?;
                    }
                }
                State::Record => {
                    let need = match self.head.first() {
                        None => 1,
                        Some(&PAGE_RENDERED) => RENDERED_HEAD,
                        Some(&PAGE_FAILED) => FAILED_HEAD,
                        Some(&kind) => {
                            return Err(SanitizeError::BadRecord {
                                page: self.done + 1,
                                kind,
                            })
                        }
                    };
                    if take_into(&mut self.head, need, &mut bytes) && need > 1 {
                        self.record_head()?;
                    }
                }
                State::Pixels {
                    remaining, encoder, ..
                } => {
                    let n = bytes
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    encoder.write(&bytes[..n]).map_err(SanitizeError::Write)?;
                    if let Some(spill) = &mut self.ocr {
                        spill.pixels(&bytes[..n]).map_err(SanitizeError::Write)?;
                    }
                    *remaining -= n as u64;
                    bytes = &bytes[n..];
                    if *remaining == 0 {
                        self.end_image()?;
                    }
                }
                State::Reason { len, text, .. } => {
                    if take_into(text, *len, &mut bytes) {
                        self.end_reason()?;
                    }
                }
                State::End => {
                    return Err(SanitizeError::TrailingBytes { extra: bytes.len() });
                }
            }
        }
        Ok(())
    }

    /// Checks that every declared page came, writes the page tree, the
    /// cross-reference table and the trailer; returns the writer and what
    /// the plugin said about the pages.
    pub fn finish(mut self) -> Result<(W, PageReport), SanitizeError> {
        match self.state {
            State::End => {}
            State::Header => {
                return Err(SanitizeError::ShortHeader {
                    what: "pdf",
                    len: self.head.len(),
                })
            }
            _ => {
                return Err(SanitizeError::Unfinished {
                    page: self.done + 1,
                    declared: self.report.declared,
                })
            }
        }
        // Text layers nobody set: empty, so no page names a missing object.
        for page in self.ocr_pages() {
            if !page.written {
                self.set_text(page.number, &[])?;
            }
        }
        let kids: Vec<String> = self.kids.iter().map(|k| format!("{k} 0 R")).collect();
        let tree = format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            self.kids.len()
        );
        self.object(PAGES, tree.as_bytes())?;
        let xref = self.out.written;
        let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", self.offsets.len() + 1);
        for offset in &self.offsets {
            table.push_str(&format!("{offset:010} 00000 n \n"));
        }
        table.push_str(&format!(
            "trailer\n<< /Size {} /Root {CATALOG} 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            self.offsets.len() + 1
        ));
        self.out
            .write_all(table.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(SanitizeError::Write)?;
        Ok((self.out.inner, self.report))
    }

    fn header(&mut self) -> Result<(), SanitizeError> {
        if &self.head[..8] != PDF_MAGIC {
            return Err(SanitizeError::BadMagic {
                expected: std::str::from_utf8(&PDF_MAGIC[..6]).unwrap_or("?"),
            });
        }
        let declared = le32(&self.head[8..12]);
        let flags = le32(&self.head[12..16]);
        if declared == 0 {
            return Err(SanitizeError::NoPages);
        }
        if declared > self.limits.max_pages {
            return Err(SanitizeError::TooManyPages {
                pages: declared,
                limit: self.limits.max_pages,
            });
        }
        self.report.declared = declared;
        self.report.scanned = flags & PDF_SCANNED != 0;
        self.head.clear();
        self.state = State::Record;
        Ok(())
    }

    fn points(&self, width: u32, height: u32) -> (String, String) {
        (
            points(width, self.limits.dpi),
            points(height, self.limits.dpi),
        )
    }

    /// A page object; `contents` is a reference or an array of them.
    fn page(
        &mut self,
        number: usize,
        contents: &str,
        (w_pt, h_pt): (&str, &str),
        resources: &str,
    ) -> Result<(), SanitizeError> {
        let dict = format!(
            "<< /Type /Page /Parent {PAGES} 0 R /MediaBox [0 0 {w_pt} {h_pt}] \
             /Resources {resources} /Contents {contents} >>"
        );
        self.object(number, dict.as_bytes())?;
        self.kids.push(number);
        Ok(())
    }

    /// The next object number (numbers start at 1 and are never skipped).
    fn alloc(&mut self) -> usize {
        self.offsets.push(0);
        self.offsets.len()
    }

    fn object(&mut self, number: usize, body: &[u8]) -> Result<(), SanitizeError> {
        self.offsets[number - 1] = self.out.written;
        let out = &mut self.out;
        writeln!(out, "{number} 0 obj")
            .and_then(|()| out.write_all(body))
            .and_then(|()| out.write_all(b"\nendobj\n"))
            .map_err(SanitizeError::Write)
    }

    fn stream(&mut self, number: usize, dict: &str, data: &[u8]) -> Result<(), SanitizeError> {
        self.offsets[number - 1] = self.out.written;
        let out = &mut self.out;
        write!(
            out,
            "{number} 0 obj\n<< {dict} /Length {} >>\nstream\n",
            data.len()
        )
        .and_then(|()| out.write_all(data))
        .and_then(|()| out.write_all(b"\nendstream\nendobj\n"))
        .map_err(SanitizeError::Write)
    }
}

/// Moves bytes from `bytes` into `buf` until it holds `need`; true then.
fn take_into(buf: &mut Vec<u8>, need: usize, bytes: &mut &[u8]) -> bool {
    let n = need.saturating_sub(buf.len()).min(bytes.len());
    buf.extend_from_slice(&bytes[..n]);
    *bytes = &bytes[n..];
    buf.len() == need
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// An A4 page at `dpi`, in pixels: the placeholder for a page whose size
/// is unknown when no page before it was rendered.
fn a4(dpi: u32) -> (u32, u32) {
    let px = |mm: f64| (mm / 25.4 * f64::from(dpi)).round() as u32;
    (px(210.0), px(297.0))
}

/// The placeholder's drawing: a light frame and two lines of grey text,
/// sized to the page.
fn placeholder(number: u32, width: u32, height: u32, dpi: u32) -> String {
    let to_pt = |px: u32| f64::from(px) * 72.0 / f64::from(dpi.max(1));
    let (w, h) = (to_pt(width), to_pt(height));
    let size = (w / 30.0).clamp(4.0, 24.0);
    let margin = (w.min(h) / 20.0).max(1.0);
    format!(
        "q 0.8 G 1 w {margin:.2} {margin:.2} {:.2} {:.2} re S Q\n\
         BT 0.35 g /F1 {size:.2} Tf {margin2:.2} {y:.2} Td \
         (Page {number} could not be rendered.) Tj 0 {lead:.2} Td \
         (See the audit record of plugwarden sanitize for why.) Tj ET",
        w - 2.0 * margin,
        h - 2.0 * margin,
        margin2 = 2.0 * margin,
        y = h / 2.0,
        lead = -1.5 * size,
    )
}

/// Validates the whole of the pdf plugin's output at once and returns the
/// new PDF and the page report ([`PdfStream`] over a `Vec`).
pub fn pdf_from_plugin_output(
    payload: &[u8],
    limits: &Limits,
) -> Result<(Vec<u8>, PageReport), SanitizeError> {
    let mut stream = PdfStream::new(Vec::new(), *limits)?;
    stream.write(payload)?;
    stream.finish()
}

/// Pixels at `dpi` to PDF points (1/72 inch), at most 4 decimals, no
/// trailing zeros (PDF reals have no exponent form).
fn points(pixels: u32, dpi: u32) -> String {
    let value = f64::from(pixels) * 72.0 / f64::from(dpi.max(1));
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}
