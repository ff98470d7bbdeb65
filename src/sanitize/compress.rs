//! How the safe PDF's page images are compressed (`--compress fast|small`).
//!
//! A rendered page is 6.3 MB of RGB at 150 dpi and mostly flat colour.
//! [`Compress::Fast`] deflates it at zlib's fastest level as it arrives;
//! [`Compress::Small`] first applies the PNG "Up" predictor to each row
//! (PDF `/Predictor 12`: each byte minus the one above it, so a flat area
//! becomes runs of zeros) and deflates at the highest level. The measured
//! trade-off (sizes and pages per second on the bench's sample) is in
//! docs/SANITIZE.md and docs/PERFORMANCE.md.

use std::io::{self, Write};

use flate2::write::ZlibEncoder;
use flate2::Compression;

/// How page images are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compress {
    /// zlib level 1, no predictor: the fastest to write.
    #[default]
    Fast,
    /// PNG Up predictor and zlib level 9: a smaller file, more CPU.
    Small,
}

impl Compress {
    /// `fast` or `small`, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Compress::Fast => "fast",
            Compress::Small => "small",
        }
    }

    fn level(self) -> Compression {
        match self {
            Compress::Fast => Compression::fast(),
            Compress::Small => Compression::best(),
        }
    }
}

/// One page image being compressed as its bytes arrive, in pieces of any
/// size.
pub(super) struct PageEncoder {
    zlib: ZlibEncoder<Vec<u8>>,
    /// With the predictor: the row above (zeros for the first) and the
    /// row being received.
    up: Option<UpRows>,
}

struct UpRows {
    row_len: usize,
    above: Vec<u8>,
    row: Vec<u8>,
    /// The filtered row: the filter type byte, then the differences.
    filtered: Vec<u8>,
}

/// PNG filter type 2, "Up".
const PNG_UP: u8 = 2;

impl PageEncoder {
    /// An encoder for an RGB image `width` pixels wide, writing into
    /// `buffer` (cleared; kept from page to page by the caller).
    pub(super) fn new(mut buffer: Vec<u8>, width: u32, compress: Compress) -> PageEncoder {
        buffer.clear();
        let up = (compress == Compress::Small && width > 0).then(|| {
            let row_len = width as usize * 3;
            UpRows {
                row_len,
                above: vec![0; row_len],
                row: Vec::with_capacity(row_len),
                filtered: Vec::with_capacity(row_len + 1),
            }
        });
        PageEncoder {
            zlib: ZlibEncoder::new(buffer, compress.level()),
            up,
        }
    }

    /// The image dictionary's entries for how it is compressed.
    pub(super) fn filter_entries(compress: Compress, width: u32) -> String {
        match compress {
            Compress::Fast => "/Filter /FlateDecode".to_string(),
            Compress::Small => format!(
                "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Colors 3 \
                 /BitsPerComponent 8 /Columns {width} >>"
            ),
        }
    }

    /// The next bytes of the image's RGB rows.
    pub(super) fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let Some(up) = &mut self.up else {
            return self.zlib.write_all(bytes);
        };
        while !bytes.is_empty() {
            let n = (up.row_len - up.row.len()).min(bytes.len());
            up.row.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if up.row.len() == up.row_len {
                up.filtered.clear();
                up.filtered.push(PNG_UP);
                up.filtered.extend(
                    up.row
                        .iter()
                        .zip(&up.above)
                        .map(|(now, above)| now.wrapping_sub(*above)),
                );
                self.zlib.write_all(&up.filtered)?;
                std::mem::swap(&mut up.above, &mut up.row);
                up.row.clear();
            }
        }
        Ok(())
    }

    /// The compressed image. Every row must be complete (the caller counts
    /// the bytes).
    pub(super) fn finish(self) -> io::Result<Vec<u8>> {
        self.zlib.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use lopdf::Document;

    use super::*;
    use crate::sanitize::{Limits, PdfStream, PAGE_RENDERED, PDF_MAGIC};

    /// A page of flat colour with a few lines and a gradient band, like a
    /// rendered page of text.
    fn page(width: u32, height: u32, seed: u32) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(width as usize * height as usize * 3);
        for y in 0..height {
            for x in 0..width {
                let ink = (y % 7 == 0 && x % 5 != seed % 5) || y == x;
                let v = if ink {
                    30
                } else if y > height / 2 {
                    (x * 3 + seed) as u8
                } else {
                    250
                };
                rgb.extend_from_slice(&[v, v.wrapping_add(seed as u8), 255 - v]);
            }
        }
        rgb
    }

    fn payload(pages: &[(u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut p = PDF_MAGIC.to_vec();
        p.extend_from_slice(&(pages.len() as u32).to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        for (w, h, rgb) in pages {
            p.push(PAGE_RENDERED);
            p.extend_from_slice(&w.to_le_bytes());
            p.extend_from_slice(&h.to_le_bytes());
            p.extend_from_slice(rgb);
        }
        p
    }

    /// The PDF written with `compress`, its payload fed `piece` bytes at a time.
    fn written(payload: &[u8], compress: Compress, piece: usize) -> Vec<u8> {
        let mut stream = PdfStream::new(Vec::new(), Limits::default()).unwrap();
        stream.set_compress(compress);
        for bytes in payload.chunks(piece) {
            stream.write(bytes).unwrap();
        }
        stream.finish().unwrap().0
    }

    /// Each page's RGB as a reader decodes it: inflated, and with
    /// `/Predictor 12` the PNG Up filter undone row by row.
    fn decoded_pages(pdf: &[u8]) -> Vec<Vec<u8>> {
        let doc = Document::load_mem(pdf).unwrap();
        doc.get_pages()
            .values()
            .map(|&id| {
                let page = doc.get_object(id).unwrap().as_dict().unwrap();
                let res = page.get(b"Resources").unwrap().as_dict().unwrap();
                let xobj = res.get(b"XObject").unwrap().as_dict().unwrap();
                let im = xobj.get(b"Im0").unwrap().as_reference().unwrap();
                let image = doc.get_object(im).unwrap().as_stream().unwrap();
                let mut data = Vec::new();
                flate2::read::ZlibDecoder::new(image.content.as_slice())
                    .read_to_end(&mut data)
                    .unwrap();
                let Ok(parms) = image.dict.get(b"DecodeParms") else {
                    return data;
                };
                let parms = parms.as_dict().unwrap();
                assert_eq!(parms.get(b"Predictor").unwrap().as_i64().unwrap(), 12);
                assert_eq!(parms.get(b"Colors").unwrap().as_i64().unwrap(), 3);
                let columns = parms.get(b"Columns").unwrap().as_i64().unwrap() as usize;
                let row = columns * 3;
                let mut rgb: Vec<u8> = Vec::with_capacity(data.len());
                for filtered in data.chunks(row + 1) {
                    assert_eq!(filtered[0], PNG_UP);
                    let above = rgb.len().checked_sub(row);
                    for (i, &d) in filtered[1..].iter().enumerate() {
                        let up = above.map_or(0, |a| rgb[a + i]);
                        rgb.push(d.wrapping_add(up));
                    }
                }
                rgb
            })
            .collect()
    }

    #[test]
    fn test_small_pixels_round_trip_exact_in_any_pieces() {
        let pages = vec![(40, 30, page(40, 30, 1)), (17, 9, page(17, 9, 2))];
        let input = payload(&pages);

        for piece in [1, 7, 4096, input.len()] {
            let pdf = written(&input, Compress::Small, piece);

            let decoded = decoded_pages(&pdf);
            assert_eq!(decoded.len(), 2);
            assert_eq!(decoded[0], pages[0].2, "piece {piece}");
            assert_eq!(decoded[1], pages[1].2, "piece {piece}");
        }
    }

    #[test]
    fn test_fast_is_the_default_and_has_no_predictor() {
        let pages = vec![(40, 30, page(40, 30, 3))];
        let input = payload(&pages);

        let fast = written(&input, Compress::Fast, input.len());
        let default = PdfStream::new(Vec::new(), Limits::default())
            .and_then(|mut s| s.write(&input).map(|()| s))
            .and_then(PdfStream::finish)
            .unwrap()
            .0;

        assert!(fast == default, "Compress::Fast is not the default");
        assert!(!String::from_utf8_lossy(&fast).contains("DecodeParms"));
        assert_eq!(decoded_pages(&fast), vec![pages[0].2.clone()]);
    }

    #[test]
    fn test_small_not_larger_than_fast() {
        let pages: Vec<_> = (0..3).map(|i| (300, 200, page(300, 200, i))).collect();
        let input = payload(&pages);

        let fast = written(&input, Compress::Fast, 1 << 16);
        let small = written(&input, Compress::Small, 1 << 16);

        assert!(
            small.len() <= fast.len(),
            "small {} > fast {}",
            small.len(),
            fast.len()
        );
    }
}
