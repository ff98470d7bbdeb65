//! Reading a plugin's pixel payload: a bounds-checked cursor and the size
//! checks shared by the image and the pdf output.
//!
//! Every length here comes from a hostile plugin, so arithmetic is done in
//! u64 (no overflow for u32 sides) and nothing is sliced before its length
//! has been compared with what is actually there.

use super::{Limits, SanitizeError};

/// A forward-only reader over the payload.
pub(super) struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Cursor { rest: bytes }
    }

    pub(super) fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `n` bytes, or `None` (and nothing consumed) if fewer remain.
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    pub(super) fn u32_le(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Checks the 8-byte magic at the start of the payload.
pub(super) fn expect_magic(
    cursor: &mut Cursor<'_>,
    magic: &'static [u8; 8],
    what: &'static str,
    header_len: usize,
) -> Result<(), SanitizeError> {
    if cursor.remaining() < header_len {
        return Err(SanitizeError::ShortHeader {
            what,
            len: cursor.remaining(),
        });
    }
    match cursor.take(8) {
        Some(m) if m == magic => Ok(()),
        _ => Err(SanitizeError::BadMagic {
            expected: std::str::from_utf8(&magic[..6]).unwrap_or("?"),
        }),
    }
}

/// Checks one image's (or page's) sides and area; returns the pixel count.
pub(super) fn check_size(
    width: u32,
    height: u32,
    what: &dyn Fn() -> String,
    limits: &Limits,
) -> Result<u64, SanitizeError> {
    let pixels = u64::from(width) * u64::from(height);
    let ok = width >= 1
        && height >= 1
        && width <= limits.max_side
        && height <= limits.max_side
        && pixels <= limits.max_image_pixels;
    if !ok {
        return Err(SanitizeError::BadSize {
            what: what(),
            width,
            height,
            max_side: limits.max_side,
            max_pixels: limits.max_image_pixels,
        });
    }
    Ok(pixels)
}

/// Takes exactly `width * height * channels` bytes, or says how many there
/// were instead.
pub(super) fn take_pixels<'a>(
    cursor: &mut Cursor<'a>,
    width: u32,
    height: u32,
    channels: u8,
    what: &dyn Fn() -> String,
) -> Result<&'a [u8], SanitizeError> {
    let expected = u64::from(width) * u64::from(height) * u64::from(channels);
    let remaining = cursor.remaining();
    let taken = usize::try_from(expected).ok().and_then(|n| cursor.take(n));
    taken.ok_or_else(|| SanitizeError::PixelLength {
        what: what(),
        got: remaining,
        expected,
        width,
        height,
        model: if channels == 4 { "RGBA" } else { "RGB" },
    })
}
