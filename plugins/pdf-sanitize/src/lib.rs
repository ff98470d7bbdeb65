//! The pdf-sanitize plugin's logic: render every page of one untrusted PDF
//! with hayro and hand back nothing but RGB pixels.
//!
//! It runs inside the sandbox under the `pdf` policy; the host validates the
//! pixels and writes a fresh image-only PDF (src/sanitize). hayro has no size
//! limit of its own and panics on pages of 65.4k px or more, so every page's
//! size is computed from `render_dimensions()` and checked against
//! [`RenderLimits`] for the whole document before the first page is rendered;
//! a panic anywhere in one document becomes that document's error
//! ([`render_guarded`]). Memory bombs inside a page (flate streams, huge
//! images) are left to the policy's memory limit. No I/O here: the
//! plugwarden package's `src/bin/pw-pdf-sanitize.rs` feeds
//! it through the SDK, the tests feed it the samples.

use std::panic::{self, AssertUnwindSafe};

use hayro::hayro_interpret::util::TransformExt;
use hayro::hayro_interpret::InterpreterSettings;
use hayro::hayro_syntax::page::Page;
use hayro::hayro_syntax::{LoadPdfError, Pdf};
use hayro::kurbo::Affine;
use hayro::vello_cpu::color::palette::css::WHITE;
use hayro::vello_cpu::{Pixmap, RasterizerSettings, RenderContext, Resources, TargetInit};
use hayro::{RenderCache, RenderSettings};

/// First 8 bytes of the output; then u32 LE page count, then per page u32
/// LE width, u32 LE height and exactly width * height * 3 RGB bytes.
pub const MAGIC: &[u8; 8] = b"PWPDF1\0\0";
/// Resolution used when the command line does not say.
pub const DEFAULT_DPI: u32 = 150;

/// Bounds checked for the whole document before anything is rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenderLimits {
    /// Most pages a document may have.
    pub max_pages: usize,
    /// Largest width or height of one rendered page, in pixels.
    pub max_side: u32,
    /// Largest width * height of one rendered page.
    pub max_page_pixels: u64,
    /// Largest sum of width * height over all pages (the host holds them).
    pub max_total_pixels: u64,
}

impl Default for RenderLimits {
    /// 500 pages; 20000 px a side (well under hayro's 65.4k panic); 64 Mpx a
    /// page (A0 at 150 dpi is 35 Mpx); 1 Gpx in total, enough for 500 letter
    /// pages at 150 dpi (3 GiB of RGB on the host).
    fn default() -> Self {
        RenderLimits {
            max_pages: 500,
            max_side: 20_000,
            max_page_pixels: 64 << 20,
            max_total_pixels: 1 << 30,
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

/// [`render`], with a panic turned into `Err("renderer panicked: ...")`.
pub fn render_guarded(
    input: &[u8],
    dpi: u32,
    limits: &RenderLimits,
    sink: Sink,
) -> Result<(), String> {
    match panic::catch_unwind(AssertUnwindSafe(|| render(input, dpi, limits, sink))) {
        Ok(result) => result,
        Err(payload) => Err(format!("renderer panicked: {}", panic_message(&*payload))),
    }
}

/// Renders every page of `input` at `dpi` onto white and sends the output
/// format described at [`MAGIC`] to `sink`. All sizes are checked first,
/// so a document that is too large produces no output at all.
pub fn render(input: &[u8], dpi: u32, limits: &RenderLimits, sink: Sink) -> Result<(), String> {
    let pdf = Pdf::new(input.to_vec()).map_err(describe_load_error)?;
    let pages = pdf.pages();
    let sizes = plan(pages, dpi, limits)?;
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&(sizes.len() as u32).to_le_bytes());
    sink(&head)?;
    let cache = RenderCache::new();
    let mut renderer = PageRenderer::new();
    for (page, size) in pages.iter().zip(&sizes) {
        // One part per page; the SDK splits it into frames of at most 64 MiB.
        sink(renderer.render(page, &cache, dpi, *size))?;
    }
    Ok(())
}

/// The pixel size of every page, checked against `limits` — before
/// anything is allocated for pixels.
pub fn plan(pages: &[Page<'_>], dpi: u32, limits: &RenderLimits) -> Result<Vec<PageSize>, String> {
    if pages.is_empty() {
        return Err("pdf has no pages".to_string());
    }
    if pages.len() > limits.max_pages {
        return Err(format!(
            "too many pages: {}, limit {}",
            pages.len(),
            limits.max_pages
        ));
    }
    let mut total = 0u64;
    let mut sizes = Vec::with_capacity(pages.len());
    for (index, page) in pages.iter().enumerate() {
        let size = page_size(page.render_dimensions(), dpi, index + 1, limits)?;
        total += u64::from(size.width) * u64::from(size.height);
        if total > limits.max_total_pixels {
            return Err(format!(
                "document too large: more than {} px in total at {dpi} dpi by page {}",
                limits.max_total_pixels,
                index + 1
            ));
        }
        sizes.push(size);
    }
    Ok(sizes)
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
    /// The page's part: u32 LE width, u32 LE height, then RGB.
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
    ) -> &[u8] {
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
        self.part.clear();
        self.part.extend_from_slice(&size.width.to_le_bytes());
        self.part.extend_from_slice(&size.height.to_le_bytes());
        composite_on_white(self.pixmap.data_as_u8_slice(), &mut self.part);
        &self.part
    }
}

/// Appends premultiplied RGBA composited over white, `c + (255 - a)`, as
/// RGB. The background is cleared to opaque white, so alpha is 255 in
/// practice; this keeps the output right if a blend mode ever leaves a
/// pixel translucent. Eight pixels at a time with constant indices so the
/// compiler drops the bounds checks and vectorises (4x faster than a
/// pixel-by-pixel loop).
pub fn composite_on_white(rgba: &[u8], out: &mut Vec<u8>) {
    const BLOCK: usize = 8;
    let start = out.len();
    out.resize(start + rgba.len() / 4 * 3, 0);
    let dst = &mut out[start..];
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
    match e {
        LoadPdfError::Invalid => {
            "cannot read pdf: no usable cross-reference table or page tree".to_string()
        }
        LoadPdfError::Decryption(d) => format!("cannot read pdf: encrypted ({d:?})"),
    }
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
