//! OCR's host side: a page image for Tesseract, its words back, and the
//! invisible text layer they become.
//!
//! Tesseract runs as a filter in the `ocr` sandbox (one process per page):
//! it reads the page as a binary PGM on stdin and writes its TSV report
//! (one line per page, block, paragraph, line and word, with boxes in
//! pixels). That report is untrusted like any plugin output: [`parse_tsv`]
//! keeps only well-formed word lines whose box lies on the page, bounded in
//! count and length, and never panics.
//!
//! [`text_layer`] turns the words into a content stream that draws nothing
//! (text render mode 3, invisible) in Helvetica, a standard font every
//! reader has: the output gains no font program, no action, nothing of the
//! input's but recognised text placed over the pixels it was read from, so
//! a reader can search and select it. Helvetica's encoding here is
//! WinAnsi: letters outside it (Latin-1 and a few typographic marks)
//! become `?`.

use std::fmt::Write as _;

/// Most words kept from one page.
pub const MAX_WORDS: usize = 20_000;
/// Longest word kept, in bytes.
pub const MAX_WORD_LEN: usize = 200;

/// A recognised word and its box on the page, in pixels from the top left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
    pub text: String,
}

/// A page as a binary PGM (P5, 8-bit grey): what Tesseract reads.
pub fn pgm(width: u32, height: u32, grey: &[u8]) -> Vec<u8> {
    let mut out = format!("P5\n{width} {height}\n255\n").into_bytes();
    out.extend_from_slice(grey);
    out
}

/// The words of Tesseract's TSV report for a `width` x `height` page:
/// level-5 lines (words) with a confidence of 0 or more, non-empty text and
/// a box inside the page. Anything else is skipped; at most [`MAX_WORDS`].
pub fn parse_tsv(tsv: &[u8], width: u32, height: u32) -> Vec<Word> {
    let mut words = Vec::new();
    for line in tsv.split(|&b| b == b'\n') {
        if words.len() >= MAX_WORDS {
            break;
        }
        if let Some(word) = parse_word(line, width, height) {
            words.push(word);
        }
    }
    words
}

fn parse_word(line: &[u8], page_width: u32, page_height: u32) -> Option<Word> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let fields: Vec<&[u8]> = line.splitn(12, |&b| b == b'\t').collect();
    let [level, _page, _block, _par, _line, _word, left, top, width, height, conf, text] =
        fields.as_slice()
    else {
        return None;
    };
    let number = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u32>().ok();
    if number(level)? != 5 {
        return None;
    }
    let conf: f32 = std::str::from_utf8(conf).ok()?.parse().ok()?;
    if conf.is_nan() || conf < 0.0 {
        return None; // Tesseract's -1: not a word
    }
    let (left, top, width, height) = (number(left)?, number(top)?, number(width)?, number(height)?);
    let inside = width > 0
        && height > 0
        && left.checked_add(width).is_some_and(|r| r <= page_width)
        && top.checked_add(height).is_some_and(|b| b <= page_height);
    let text = String::from_utf8_lossy(text);
    let text = text.trim();
    if !inside || text.is_empty() || text.len() > MAX_WORD_LEN {
        return None;
    }
    Some(Word {
        left,
        top,
        width,
        height,
        text: text.to_string(),
    })
}

/// The content stream of a page's invisible text layer: each word in
/// Helvetica (font resource `font`), sized to its box's height and
/// stretched to its width, then a space, for a page of `page_height`
/// pixels at `dpi`.
pub fn text_layer(words: &[Word], page_height: u32, dpi: u32, font: &str) -> String {
    let pt = |px: u32| f64::from(px) * 72.0 / f64::from(dpi.max(1));
    let mut out = String::from("BT\n3 Tr\n");
    for w in words {
        let encoded = win_ansi(&w.text);
        let size = pt(w.height).max(1.0);
        let natural = helvetica_width(&encoded) * size / 1000.0;
        let scale = if natural > 0.0 {
            (100.0 * pt(w.width) / natural).clamp(1.0, 1000.0)
        } else {
            100.0
        };
        // Baseline a fifth of the box up from its bottom: the box holds the
        // descenders.
        let x = pt(w.left);
        let y = pt(page_height.saturating_sub(w.top + w.height)) + size * 0.2;
        let _ = write!(
            out,
            "/{font} {size:.2} Tf {scale:.1} Tz 1 0 0 1 {x:.2} {y:.2} Tm <"
        );
        // A space after each word (outside its box): text extraction and
        // copying get the words apart.
        for b in encoded.iter().chain(b" ") {
            let _ = write!(out, "{b:02X}");
        }
        out.push_str("> Tj\n");
    }
    out.push_str("ET");
    out
}

/// `text` in WinAnsiEncoding (PDF 1.7 Annex D): ASCII and Latin-1 as
/// themselves, the typographic marks of 0x80-0x9F at their places, the
/// common ligatures spelled out, anything else `?`.
pub fn win_ansi(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let code = c as u32;
        match code {
            0x20..=0x7E | 0xA0..=0xFF => out.push(code as u8),
            _ => match c {
                'ﬁ' => out.extend_from_slice(b"fi"),
                'ﬂ' => out.extend_from_slice(b"fl"),
                'ﬀ' => out.extend_from_slice(b"ff"),
                'ﬃ' => out.extend_from_slice(b"ffi"),
                'ﬄ' => out.extend_from_slice(b"ffl"),
                _ => out.push(
                    WIN_ANSI_HIGH
                        .iter()
                        .find(|(u, _)| *u == c)
                        .map_or(b'?', |(_, b)| *b),
                ),
            },
        }
    }
    out
}

/// WinAnsiEncoding's 0x80-0x9F.
const WIN_ANSI_HIGH: [(char, u8); 27] = [
    ('€', 0x80),
    ('‚', 0x82),
    ('ƒ', 0x83),
    ('„', 0x84),
    ('…', 0x85),
    ('†', 0x86),
    ('‡', 0x87),
    ('ˆ', 0x88),
    ('‰', 0x89),
    ('Š', 0x8A),
    ('‹', 0x8B),
    ('Œ', 0x8C),
    ('Ž', 0x8E),
    ('‘', 0x91),
    ('’', 0x92),
    ('“', 0x93),
    ('”', 0x94),
    ('•', 0x95),
    ('–', 0x96),
    ('—', 0x97),
    ('˜', 0x98),
    ('™', 0x99),
    ('š', 0x9A),
    ('›', 0x9B),
    ('œ', 0x9C),
    ('ž', 0x9E),
    ('Ÿ', 0x9F),
];

/// Helvetica's advance widths (its AFM, thousandths of the size) for
/// WinAnsi 0x20-0x7E; every other code counts as 556, the digits' width.
const HELVETICA_ASCII: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // space-/
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0-?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @-O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P-_
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `-o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p-~
];

fn helvetica_width(encoded: &[u8]) -> f64 {
    encoded
        .iter()
        .map(|&b| match b {
            0x20..=0x7E => f64::from(HELVETICA_ASCII[usize::from(b - 0x20)]),
            _ => 556.0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &[u8] = b"level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
1\t1\t0\t0\t0\t0\t0\t0\t1275\t1650\t-1\t\n\
4\t1\t1\t1\t1\t0\t153\t158\t605\t48\t-1\t\n\
5\t1\t1\t1\t1\t1\t153\t158\t232\t48\t96.5\tQuarterly\n\
5\t1\t1\t1\t1\t2\t407\t158\t183\t39\t96.4\tharvest\r\n";

    #[test]
    fn test_parse_tsv_keeps_words_only() {
        let words = parse_tsv(TSV, 1275, 1650);

        assert_eq!(
            words,
            vec![
                Word {
                    left: 153,
                    top: 158,
                    width: 232,
                    height: 48,
                    text: "Quarterly".into()
                },
                Word {
                    left: 407,
                    top: 158,
                    width: 183,
                    height: 39,
                    text: "harvest".into()
                },
            ]
        );
    }

    #[test]
    fn test_parse_tsv_skips_boxes_off_the_page_and_bad_lines() {
        let tsv = b"5\t1\t1\t1\t1\t1\t4294967295\t0\t2\t2\t90\toverflow\n\
5\t1\t1\t1\t1\t1\t1200\t0\t100\t10\t90\tpast-right\n\
5\t1\t1\t1\t1\t1\t0\t0\t0\t10\t90\tzero-width\n\
5\t1\t1\t1\t1\t1\t0\t0\t10\t10\tNaN\tnan\n\
5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t90\t   \n\
5\t1\t1\t1\t1\t1\t0\t0\t10\n\
\xff\xfe\t\t\t\n\
5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t90\tkept\twith\ttabs\n";

        let words = parse_tsv(tsv, 1275, 1650);

        assert_eq!(words.len(), 1, "{words:?}");
        assert_eq!(words[0].text, "kept\twith\ttabs".trim());
    }

    #[test]
    fn test_parse_tsv_caps_the_word_count() {
        let line = b"5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t90\tw\n";
        let tsv = line.repeat(MAX_WORDS + 5);

        assert_eq!(parse_tsv(&tsv, 100, 100).len(), MAX_WORDS);
    }

    #[test]
    fn test_text_layer_is_invisible_hex_text_stretched_to_the_box() {
        let words = [Word {
            left: 150,
            top: 150,
            width: 300,
            height: 75,
            text: "Hi (x)".into(),
        }];

        let content = text_layer(&words, 1650, 150, "F2");

        assert!(content.starts_with("BT\n3 Tr\n"), "{content}");
        assert!(content.ends_with("ET"), "{content}");
        // 75 px at 150 dpi = 36 pt; the box's bottom at 1650-225 px = 684 pt.
        assert!(content.contains("/F2 36.00 Tf "), "{content}");
        assert!(
            content.contains(" 1 0 0 1 72.00 691.20 Tm <48692028782920> Tj"),
            "{content}"
        );
    }

    #[test]
    fn test_win_ansi_maps_latin1_marks_and_ligatures() {
        assert_eq!(win_ansi("café “ﬁne” — ж"), b"caf\xe9 \x93fine\x94 \x97 ?");
    }
}
