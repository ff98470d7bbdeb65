//! The pdf-sanitize plugin's logic: render every page of one untrusted PDF
//! with hayro and hand back nothing but RGB pixels, page by page.
//!
//! It runs inside the sandbox under the `pdf` policy; the host validates the
//! pixels and writes a fresh image-only PDF (src/sanitize) as they arrive.
//! Every page the document declares gets one record, in order: its pixels,
//! or why it could not be rendered ([`tree`] finds the declared pages;
//! hayro's own list drops repeated and unreadable ones). hayro has no size
//! limit of its own and panics on pages of 65.4k px or more, so every
//! page's size is computed from `render_dimensions()` and checked against
//! [`RenderLimits`] before the first page is rendered; a page that is too
//! large, or whose rendering panics, is a failed page, not a lost one.
//! Memory bombs inside a page (flate streams, huge images) are left to the
//! policy's memory limit. No I/O here: the plugwarden package's
//! `src/bin/pw-pdf-sanitize.rs` feeds it through the SDK, the tests feed
//! it the samples.

use std::panic::{self, AssertUnwindSafe};

use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::{DecryptionError, LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings};

// The format this plugin writes and the host reads (the host's
// `plugwarden::sanitize` documents it and defines the same values; a test
// in tests.rs holds the two together, since this crate cannot depend on
// the host: the host's `pw-pdf-sanitize` binary depends on it).
/// Magic of this plugin's output (format 2).
pub const MAGIC: &[u8; 8] = b"PWPDF2\0\0";
/// Flag: the document has no readable page tree; its pages were found by
/// scanning the file for page objects.
pub const PDF_SCANNED: u32 = 1;
/// Record kind: a rendered page.
pub const PAGE_RENDERED: u8 = 1;
/// Record kind: a declared page that could not be rendered.
pub const PAGE_FAILED: u8 = 2;
/// Longest reason a failed page may carry, in bytes.
pub const MAX_PAGE_REASON: usize = 1000;
/// Magic of an input that carries a password before the PDF.
pub const PDF_PASSWORD_MAGIC: &[u8; 8] = b"PWPDFPW\0";

pub mod tree;

use tree::Slot;

/// Resolution used when the command line does not say.
pub const DEFAULT_DPI: u32 = 150;

/// Bounds checked for the whole document before anything is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderLimits {
    /// Most pages a document may declare.
    pub max_pages: usize,
    /// Largest width or height of one rendered page, in pixels.
    pub max_side: u32,
    /// Largest width * height of one rendered page.
    pub max_page_pixels: u64,
    /// Largest sum of width * height over all pages (bounds the output's
    /// size and the time it takes; the host streams pages, so not its memory).
    pub max_total_pixels: u64,
}

impl Default for RenderLimits {
    /// 10,000 pages; 20000 px a side (well under hayro's 65.4k panic); 64 Mpx
    /// a page (A0 at 150 dpi is 35 Mpx); 4 Gpx in total, 1,900 letter pages
    /// at 150 dpi (12 GiB of RGB streamed to the host).
    fn default() -> Self {
        RenderLimits {
            max_pages: 10_000,
            max_side: 20_000,
            max_page_pixels: 64 << 20,
            max_total_pixels: 4 << 30,
        }
    }
}

/// Size in pixels of one page at the requested resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize {
    pub width: u32,
    pub height: u32,
}

/// Where the rendered document goes, part by part (the SDK's `Parts`).
pub type Sink<'a> = &'a mut dyn FnMut(&[u8]) -> Result<(), String>;

/// Where the rendered document goes, with a way to write a page's pixels
/// in place ([`render_guarded_to`]; the plugin's main writes them straight
/// into the host's shared-memory arena).
pub trait PageSink {
    /// The next part of the output (the header, a failed page's record).
    fn part(&mut self, bytes: &[u8]) -> Result<(), String>;

    /// A rendered page's record: `head`, then `pixels` bytes of RGB that
    /// `fill` writes into the slice it is given. By default gathered in
    /// `scratch` (kept from page to page) and sent as one part.
    fn page(
        &mut self,
        head: &[u8],
        pixels: usize,
        scratch: &mut Vec<u8>,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), String> {
        scratch.clear();
        scratch.extend_from_slice(head);
        scratch.resize(head.len() + pixels, 0);
        fill(&mut scratch[head.len()..]);
        self.part(scratch)
    }
}

/// A [`Sink`] as a [`PageSink`] that gathers each page.
struct Gathered<'a, 'b>(&'b mut Sink<'a>);

impl PageSink for Gathered<'_, '_> {
    fn part(&mut self, bytes: &[u8]) -> Result<(), String> {
        (self.0)(bytes)
    }
}

/// Installs a panic hook that prints one line (no backtrace: with
/// `RUST_BACKTRACE` set the default hook opens /proc/self/maps and the
/// executable, which the sandbox forbids). Call once at start-up.
pub fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = panic_message(info.payload()).replace('\n', " ");
        // Formatted first so the line goes out in a single write.
        let line = format!("pw-pdf-sanitize: renderer panicked{location}: {message}\n");
        eprint!("{line}");
    }));
}

/// [`render`], with a panic outside the page loop (parsing, the page tree)
/// turned into `Err("renderer panicked: ...")`.
pub fn render_guarded(
    input: &[u8],
    dpi: u32,
    limits: &RenderLimits,
    mut sink: Sink,
) -> Result<(), String> {
    render_guarded_to(input, dpi, limits, &mut Gathered(&mut sink))
}

/// [`render_guarded`] into a [`PageSink`].
pub fn render_guarded_to(
    input: &[u8],
    dpi: u32,
    limits: &RenderLimits,
    sink: &mut dyn PageSink,
) -> Result<(), String> {
    match panic::catch_unwind(AssertUnwindSafe(|| render_to(input, dpi, limits, sink))) {
        Ok(result) => result,
        Err(payload) => Err(format!("renderer panicked: {}", panic_message(&*payload))),
    }
}

/// One declared page, planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// hayro's page at `index`, at `size`.
    Render { index: usize, size: PageSize },
    /// A page that cannot be rendered: why, and the size of its placeholder
    /// when the page's own size is known and within the limits.
    Fail {
        size: Option<PageSize>,
        reason: String,
    },
}

/// Renders every declared page of `input` (a PDF, or a password and a PDF
/// after [`PDF_PASSWORD_MAGIC`]) at `dpi` onto white and sends the output
/// format described at [`MAGIC`] to `sink`, one part per page. The whole
/// document is planned first, so one that is too large produces no output.
pub fn render(input: &[u8], dpi: u32, limits: &RenderLimits, mut sink: Sink) -> Result<(), String> {
    render_to(input, dpi, limits, &mut Gathered(&mut sink))
}

/// [`render`] into a [`PageSink`].
pub fn render_to(
    input: &[u8],
    dpi: u32,
    limits: &RenderLimits,
    sink: &mut dyn PageSink,
) -> Result<(), String> {
    let (password, pdf) = split_password(input)?;
    let pdf = open(pdf, password)?;
    let declared = tree::declared_pages(&pdf, limits.max_pages)?;
    let pages = pdf.pages();
    let slots = tree::slots(declared.as_deref(), pages);
    let plan = plan(pages, &slots, dpi, limits)?;
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&(plan.len() as u32).to_le_bytes());
    let flags = if declared.is_none() { PDF_SCANNED } else { 0 };
    head.extend_from_slice(&flags.to_le_bytes());
    sink.part(&head)?;
    let mut cache = RenderCache::new();
    let mut renderer = PageRenderer::new();
    for planned in plan {
        match planned {
            Planned::Render { index, size } => {
                let page = &pages[index];
                let drawn = panic::catch_unwind(AssertUnwindSafe(|| {
                    renderer.render(page, &cache, dpi, size)
                }));
                match drawn {
                    Ok(()) => renderer.send(size, sink)?,
                    Err(payload) => {
                        // The renderer's state may be half-updated: start afresh.
                        cache = RenderCache::new();
                        renderer = PageRenderer::new();
                        let reason = format!("renderer panicked: {}", panic_message(&*payload));
                        sink.part(&failed_record(Some(size), &reason))?;
                    }
                }
            }
            Planned::Fail { size, reason } => sink.part(&failed_record(size, &reason))?,
        }
    }
    Ok(())
}

/// Splits the job input into the password (when the host sent one) and
/// the PDF.
pub fn split_password(input: &[u8]) -> Result<(Option<&str>, &[u8]), String> {
    let Some(rest) = input.strip_prefix(PDF_PASSWORD_MAGIC.as_slice()) else {
        return Ok((None, input));
    };
    let bad = || "the host sent a malformed password header".to_string();
    let len = rest
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(bad)?;
    let password = rest.get(4..4 + len).ok_or_else(bad)?;
    let password = std::str::from_utf8(password).map_err(|_| bad())?;
    Ok((Some(password), &rest[4 + len..]))
}

/// Opens the document with the empty password (which opens every document
/// whose user password is empty), then with `password` if that is not
/// enough; says why when neither does.
pub fn open(bytes: &[u8], password: Option<&str>) -> Result<Pdf, String> {
    let first = match Pdf::new(bytes.to_vec()) {
        Ok(pdf) => return Ok(pdf),
        Err(e) => e,
    };
    let needs_password = LoadPdfError::Decryption(DecryptionError::PasswordProtected);
    match password {
        Some(pw) if first == needs_password => Pdf::new_with_password(bytes.to_vec(), pw)
            .map_err(|e| match e {
                e if e == needs_password => "cannot read pdf: encrypted, and the password from --password-file does not open it".to_string(),
                e => describe_load_error(e),
            }),
        _ => Err(describe_load_error(first)),
    }
}

/// The size of every declared page, checked against `limits` before
/// anything is allocated for pixels; a page that is too large becomes a
/// failed page, a document that is too large in all an error.
pub fn plan(
    pages: &[Page<'_>],
    slots: &[Slot],
    dpi: u32,
    limits: &RenderLimits,
) -> Result<Vec<Planned>, String> {
    if slots.is_empty() {
        return Err("pdf has no pages".to_string());
    }
    if slots.len() > limits.max_pages {
        return Err(format!(
            "too many pages: {}, limit {}",
            slots.len(),
            limits.max_pages
        ));
    }
    let mut total = 0u64;
    let mut planned = Vec::with_capacity(slots.len());
    for (number, slot) in (1..).zip(slots) {
        let index = match slot {
            Slot::Render(index) => *index,
            Slot::Fail(reason) => {
                planned.push(Planned::Fail {
                    size: None,
                    reason: reason.clone(),
                });
                continue;
            }
        };
        let size = match page_size(pages[index].render_dimensions(), dpi, number, limits) {
            Ok(size) => size,
            Err(reason) => {
                planned.push(Planned::Fail { size: None, reason });
                continue;
            }
        };
        total += u64::from(size.width) * u64::from(size.height);
        if total > limits.max_total_pixels {
            return Err(format!(
                "document too large: more than {} px in total at {dpi} dpi by page {number}",
                limits.max_total_pixels,
            ));
        }
        planned.push(Planned::Render { index, size });
    }
    Ok(planned)
}

/// A failed page's record: its placeholder's size (0 0 when unknown) and
/// the reason, cut to [`MAX_PAGE_REASON`] bytes on a character boundary.
pub fn failed_record(size: Option<PageSize>, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_PAGE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let (width, height) = size.map_or((0, 0), |s| (s.width, s.height));
    let mut record = vec![PAGE_FAILED];
    record.extend_from_slice(&width.to_le_bytes());
    record.extend_from_slice(&height.to_le_bytes());
    record.extend_from_slice(&(end as u32).to_le_bytes());
    record.extend_from_slice(&reason.as_bytes()[..end]);
    record
}

/// Rounds points times dpi / 72 to whole pixels (at least one) and checks
/// the result; `number` is 1-based, for the message.
pub fn page_size(
    points: (f32, f32),
    dpi: u32,
    number: usize,
    limits: &RenderLimits,
) -> Result<PageSize, String> {
    let scale = f64::from(dpi) / 72.0;
    let (w, h) = (f64::from(points.0) * scale, f64::from(points.1) * scale);
    let finite = w.is_finite() && h.is_finite();
    // `max` would turn NaN into 1, hence the finiteness check first.
    let (w, h) = (w.round().max(1.0), h.round().max(1.0));
    let within = finite
        && w <= f64::from(limits.max_side)
        && h <= f64::from(limits.max_side)
        && w * h <= limits.max_page_pixels as f64;
    if !within {
        return Err(format!(
            "page too large: page {number} is {w:.0}x{h:.0} px at {dpi} dpi ({}x{} pt), limit {} px a side and {} px a page",
            points.0, points.1, limits.max_side, limits.max_page_pixels
        ));
    }
    Ok(PageSize {
        width: w as u32,
        height: h as u32,
    })
}

/// Renders pages one after the other, reusing the render context and the
/// pixel buffers: allocating them afresh cost a third of the time per page
/// (page faults on 8 MB of new memory).
struct PageRenderer {
    settings: InterpreterSettings,
    ctx: Option<RenderContext>,
    pixmap: Pixmap,
    /// Where a sink without room of its own gathers the page's record.
    part: Vec<u8>,
}

impl PageRenderer {
    fn new() -> Self {
        PageRenderer {
            settings: InterpreterSettings::default(),
            ctx: None,
            pixmap: Pixmap::new(1, 1),
            part: Vec::new(),
        }
    }

    fn render<'a>(
        &mut self,
        page: &'a Page<'a>,
        cache: &RenderCache<'a>,
        dpi: u32,
        size: PageSize,
    ) {
        // The sizes passed `page_size`, so they fit in u16 (max_side is far below 65535).
        let (w, h) = (size.width as u16, size.height as u16);
        let ctx = match &mut self.ctx {
            Some(ctx) => {
                ctx.reset_and_resize(w, h);
                ctx
            }
            None => self.ctx.insert(RenderContext::new(w, h)),
        };
        let scale = f64::from(dpi) / 72.0;
        let transform = Affine::scale(scale) * page.initial_transform(true).to_kurbo();
        hayro::render_into(
            page,
            cache,
            &self.settings,
            &RenderSettings::default(),
            ctx,
            transform,
        );
        ctx.flush();
        self.pixmap.resize(w, h);
        let raster = RasterizerSettings {
            target_init: TargetInit::Clear(WHITE),
            ..Default::default()
        };
        ctx.render_with(&mut self.pixmap, &mut Resources::default(), raster);
    }

    /// The page just rendered, as its record: [`PAGE_RENDERED`], u32 LE
    /// width, u32 LE height, then RGB composited over white straight into
    /// the sink's room.
    fn send(&mut self, size: PageSize, sink: &mut dyn PageSink) -> Result<(), String> {
        let mut head = [PAGE_RENDERED; 9];
        head[1..5].copy_from_slice(&size.width.to_le_bytes());
        head[5..9].copy_from_slice(&size.height.to_le_bytes());
        let rgba = self.pixmap.data_as_u8_slice();
        let pixels = rgba.len() / 4 * 3;
        sink.page(&head, pixels, &mut self.part, &mut |dst| {
            composite_on_white_into(rgba, dst)
        })
    }
}

/// Appends premultiplied RGBA composited over white, `c + (255 - a)`, as
/// RGB. The background is cleared to opaque white, so alpha is 255 in
/// practice; this keeps the output right if a blend mode ever leaves a
/// pixel translucent. Eight pixels at a time with constant indices so the
/// compiler drops the bounds checks and vectorises (4x faster than a
/// pixel-by-pixel loop).
pub fn composite_on_white(rgba: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + rgba.len() / 4 * 3, 0);
    composite_on_white_into(rgba, &mut out[start..]);
}

/// [`composite_on_white`] into `dst`, which holds `rgba.len() / 4 * 3`
/// bytes (any fewer or more are left alone).
pub fn composite_on_white_into(rgba: &[u8], dst: &mut [u8]) {
    const BLOCK: usize = 8;
    let mut dst_blocks = dst.chunks_exact_mut(3 * BLOCK);
    let mut src_blocks = rgba.chunks_exact(4 * BLOCK);
    for (d, s) in (&mut dst_blocks).zip(&mut src_blocks) {
        for i in 0..BLOCK {
            over_white(&mut d[3 * i..3 * i + 3], &s[4 * i..4 * i + 4]);
        }
    }
    let tail = dst_blocks.into_remainder().chunks_exact_mut(3);
    for (d, s) in tail.zip(src_blocks.remainder().chunks_exact(4)) {
        over_white(d, s);
    }
}

#[inline(always)]
fn over_white(dst: &mut [u8], src: &[u8]) {
    let under = 255 - src[3];
    dst[0] = src[0].saturating_add(under);
    dst[1] = src[1].saturating_add(under);
    dst[2] = src[2].saturating_add(under);
}

fn describe_load_error(e: LoadPdfError) -> String {
    let why = match e {
        LoadPdfError::Invalid => "no usable cross-reference table or page tree",
        LoadPdfError::Decryption(DecryptionError::PasswordProtected) => {
            "encrypted, and it needs a password: give it with --password-file FILE"
        }
        LoadPdfError::Decryption(DecryptionError::MissingIDEntry) => {
            "encrypted, but the /ID its encryption needs is missing"
        }
        LoadPdfError::Decryption(DecryptionError::InvalidEncryption) => {
            "encrypted, but its encryption dictionary is invalid"
        }
        LoadPdfError::Decryption(DecryptionError::UnsupportedAlgorithm) => {
            "encrypted with a method the renderer does not support (it reads the standard password handler: RC4 and AES-128/256)"
        }
    };
    format!("cannot read pdf: {why}")
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

#[cfg(test)]
mod tests;
