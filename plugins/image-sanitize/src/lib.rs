//! The image-sanitize plugin's logic: decode one untrusted image into raw
//! RGBA pixels and nothing else.
//!
//! It runs inside the sandbox under the `image` policy; the host re-encodes
//! the pixels as a fresh PNG (src/sanitize), so no metadata, ICC profile,
//! trailing data or polyglot survives. Every size is checked against
//! [`DecodeLimits`] from the image header *before* the pixel buffer is
//! allocated, so a decompression bomb is refused with `image too large`
//! instead of ending in an out-of-memory kill. The code is pure (no I/O) so
//! it is unit-tested here and driven by the SDK in the plugwarden package's
//! `src/bin/pw-image-sanitize.rs`.

use std::io::Cursor;

use image::error::{ImageError, LimitErrorKind};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

/// First 8 bytes of the plugin's output, followed by u32 LE width, u32 LE
/// height and exactly width * height * 4 RGBA bytes.
pub const MAGIC: &[u8; 8] = b"PWIMG1\0\0";
/// Length of the output header (magic, width, height).
pub const HEADER_LEN: usize = 16;

/// Bounds applied to an image before its pixels are allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width or height in pixels.
    pub max_side: u32,
    /// Largest accepted width * height.
    pub max_pixels: u64,
    /// Largest sum of the decoder's allocations (decoded buffer included).
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    /// 16384 px a side, 64 Mpx (256 MiB as RGBA8), 512 MiB of decoder
    /// buffers: a 16-bit RGBA image at the pixel limit still fits.
    fn default() -> Self {
        DecodeLimits {
            max_side: 16384,
            max_pixels: 64 << 20,
            max_alloc: 512 << 20,
        }
    }
}

/// A decoded image: `rgba.len() == width * height * 4`.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

/// Decodes `input` (PNG, JPEG, GIF first frame, BMP, TIFF or WebP, told
/// apart by content) into RGBA8, with the EXIF orientation applied so the
/// pixels look as the original was displayed once its metadata is gone.
pub fn decode(input: &[u8], limits: &DecodeLimits) -> Result<Decoded, String> {
    let format = image::guess_format(input).map_err(|_| "unsupported image format".to_string())?;
    if !is_routed_format(format) {
        return Err(format!("unsupported image format: {format:?}"));
    }
    let mut reader = ImageReader::with_format(Cursor::new(input), format);
    reader.limits(image_limits(limits));
    let mut decoder = reader.into_decoder().map_err(|e| describe(e, limits))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    check_alloc(&decoder, limits)?;
    // A broken orientation tag is metadata we drop anyway, not a reason to fail.
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| describe(e, limits))?;
    if let Some(orientation) = orientation {
        img.apply_orientation(orientation);
    }
    let rgba = img.into_rgba8();
    Ok(Decoded {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    })
}

/// Sends a decoded image as the plugin's output in two parts, the 16-byte
/// header and the pixels, so the pixels are never copied (the SDK splits a
/// part into frames of at most 64 MiB).
pub fn emit(
    decoded: &Decoded,
    send: &mut dyn FnMut(&[u8]) -> Result<(), String>,
) -> Result<(), String> {
    send(&header(decoded.width, decoded.height))?;
    send(&decoded.rgba)
}

/// The whole output in one buffer (tests and the one-shot mode).
pub fn sanitize_to_vec(input: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, String> {
    let decoded = decode(input, limits)?;
    let mut out = Vec::with_capacity(HEADER_LEN + decoded.rgba.len());
    emit(&decoded, &mut |part| {
        out.extend_from_slice(part);
        Ok(())
    })?;
    Ok(out)
}

fn header(width: u32, height: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&width.to_le_bytes());
    h[12..16].copy_from_slice(&height.to_le_bytes());
    h
}

/// The host only routes these types here (src/sanitize/detect.rs); anything
/// else that `guess_format` recognises is refused rather than decoded.
fn is_routed_format(format: ImageFormat) -> bool {
    matches!(
        format,
        ImageFormat::Png
            | ImageFormat::Jpeg
            | ImageFormat::Gif
            | ImageFormat::Bmp
            | ImageFormat::Tiff
            | ImageFormat::WebP
    )
}

fn image_limits(limits: &DecodeLimits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc);
    l
}

/// The decoder enforces each side; the product is ours to check, and must
/// be checked before `from_decoder` allocates the buffer.
fn check_pixels(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), String> {
    let pixels = u64::from(width) * u64::from(height);
    if width > limits.max_side || height > limits.max_side || pixels > limits.max_pixels {
        return Err(format!(
            "image too large: {width}x{height} pixels, limit {} a side and {} in total",
            limits.max_side, limits.max_pixels
        ));
    }
    if pixels == 0 {
        return Err(format!("image has no pixels: {width}x{height}"));
    }
    Ok(())
}

/// The decoders do not count their output buffer against `max_alloc`
/// (image 0.25), so count it here, with the RGBA8 copy made afterwards.
fn check_alloc(decoder: &impl ImageDecoder, limits: &DecodeLimits) -> Result<(), String> {
    let (width, height) = decoder.dimensions();
    let rgba8 = u64::from(width) * u64::from(height) * 4;
    let decoded = decoder.total_bytes();
    let needed = if decoder.color_type() == image::ColorType::Rgba8 {
        decoded
    } else {
        decoded.saturating_add(rgba8)
    };
    if needed > limits.max_alloc {
        return Err(format!(
            "image too large: decoding {width}x{height} {:?} needs {needed} bytes, limit {}",
            decoder.color_type(),
            limits.max_alloc
        ));
    }
    Ok(())
}

fn describe(e: ImageError, limits: &DecodeLimits) -> String {
    match e {
        ImageError::Limits(l) => match l.kind() {
            // The decoder refuses from the header; it does not say the size.
            LimitErrorKind::DimensionError => {
                format!(
                    "image too large: more than {} pixels a side",
                    limits.max_side
                )
            }
            LimitErrorKind::InsufficientMemory => {
                format!("image too large: decoding needs more memory than allowed ({l})")
            }
            _ => format!("image limits: {l}"),
        },
        ImageError::Unsupported(u) => format!("unsupported image: {u}"),
        other => format!("cannot decode image: {other}"),
    }
}

#[cfg(test)]
mod tests;
