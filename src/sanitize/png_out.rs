//! The image plugin's pixels in, a fresh PNG out.
//!
//! The PNG is written from the pixels alone: IHDR, IDAT, IEND and no
//! ancillary chunk (no text, time, ICC, EXIF or gamma), so nothing of the
//! original file can ride along. An image whose alpha is 255 everywhere is
//! written as RGB, a quarter smaller.

use super::payload::{check_size, expect_magic, take_pixels, Cursor};
use super::{Limits, SanitizeError, IMAGE_MAGIC};

/// Validates the image plugin's output (magic, sides, exact byte count) and
/// encodes it as a new PNG; returns the PNG and its width and height.
pub fn png_from_plugin_output(
    payload: &[u8],
    limits: &Limits,
) -> Result<(Vec<u8>, u32, u32), SanitizeError> {
    let mut cursor = Cursor::new(payload);
    expect_magic(&mut cursor, IMAGE_MAGIC, "image", 16)?;
    let short = || SanitizeError::ShortHeader {
        what: "image",
        len: payload.len(),
    };
    let width = cursor.u32_le().ok_or_else(short)?;
    let height = cursor.u32_le().ok_or_else(short)?;
    let what = || "image".to_string();
    check_size(width, height, &what, limits)?;
    let rgba = take_pixels(&mut cursor, width, height, 4, &what)?;
    if cursor.remaining() != 0 {
        return Err(SanitizeError::PixelLength {
            what: what(),
            got: payload.len() - 16,
            expected: u64::from(width) * u64::from(height) * 4,
            width,
            height,
            model: "RGBA",
        });
    }
    let png = encode_png(rgba, width, height).map_err(SanitizeError::Png)?;
    Ok((png, width, height))
}

fn encode_png(rgba: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let opaque = rgba.chunks_exact(4).all(|px| px[3] == 255);
    let rgb: Vec<u8>;
    let (color, data) = if opaque {
        rgb = rgba
            .chunks_exact(4)
            .flat_map(|px| [px[0], px[1], px[2]])
            .collect();
        (png::ColorType::Rgb, rgb.as_slice())
    } else {
        (png::ColorType::Rgba, rgba)
    };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(data)?;
    writer.finish()?;
    Ok(out)
}
