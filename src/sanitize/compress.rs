//! How the safe PDF's page images are compressed (`--compress fast|small`).
//!
//! A rendered page is 6.3 MB of RGB at 150 dpi and mostly flat colour.
//! [`Compress::Fast`] deflates it at zlib's fastest level as it arrives;
//! [`Compress::Small`] at the highest. Chosen by measurement on the
//! bench's sample (docs/SANITIZE.md has the table): level 1 writes 1.6-1.9
//! GB/s of pixels, 28x smaller; level 9 about 60 MB/s, 50x smaller; the
//! levels between gain little size for much time, and the PNG Up
//! predictor (PDF `/Predictor 12`) made these pages larger at every level.

use std::io::{self, Write};

use flate2::write::ZlibEncoder;
use flate2::Compression;

/// How page images are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compress {
    /// zlib level 1: the fastest to write.
    #[default]
    Fast,
    /// zlib level 9: about half the size, some 30 times the CPU.
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
}

impl PageEncoder {
    /// An encoder writing into `buffer` (cleared; kept from page to page
    /// by the caller).
    pub(super) fn new(mut buffer: Vec<u8>, compress: Compress) -> PageEncoder {
        buffer.clear();
        PageEncoder {
            zlib: ZlibEncoder::new(buffer, compress.level()),
        }
    }

    /// The next bytes of the image.
    pub(super) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.zlib.write_all(bytes)
    }

    /// The compressed image.
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

    /// Each page's RGB as a reader decodes it.
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
                assert_eq!(
                    image.dict.get(b"Filter").unwrap().as_name().unwrap(),
                    b"FlateDecode"
                );
                let mut data = Vec::new();
                flate2::read::ZlibDecoder::new(image.content.as_slice())
                    .read_to_end(&mut data)
                    .unwrap();
                data
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
    fn test_fast_is_the_default() {
        let pages = vec![(40, 30, page(40, 30, 3))];
        let input = payload(&pages);

        let fast = written(&input, Compress::Fast, input.len());
        let default = PdfStream::new(Vec::new(), Limits::default())
            .and_then(|mut s| s.write(&input).map(|()| s))
            .and_then(PdfStream::finish)
            .unwrap()
            .0;

        assert!(fast == default, "Compress::Fast is not the default");
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
