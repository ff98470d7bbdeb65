//! Fuzz check for the OCR report parser and the text layer: arbitrary
//! bytes as Tesseract's TSV never make `ocr::parse_tsv` panic, every word
//! it keeps lies on the page with text of bounded length, and the text
//! layer drawn from them is plain ASCII with every word in a hex string
//! (nothing of the report can end a string or add an operator).
//!
//! Input layout: bytes 0-1 and 2-3 (LE) are the page's width and height
//! in pixels; the rest is the report.

use plugwarden::sanitize::ocr::{parse_tsv, text_layer, MAX_WORDS, MAX_WORD_LEN};

/// Panics if the parser or the text layer misbehaves (see the module comment).
pub fn check(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let width = u32::from(u16::from_le_bytes([data[0], data[1]]));
    let height = u32::from(u16::from_le_bytes([data[2], data[3]]));
    let words = parse_tsv(&data[4..], width, height);
    assert!(words.len() <= MAX_WORDS);
    for w in &words {
        assert!(w.width > 0 && w.height > 0, "{w:?}");
        assert!(
            u64::from(w.left) + u64::from(w.width) <= u64::from(width),
            "{w:?}"
        );
        assert!(
            u64::from(w.top) + u64::from(w.height) <= u64::from(height),
            "{w:?}"
        );
        assert!(!w.text.is_empty() && w.text.len() <= MAX_WORD_LEN, "{w:?}");
    }
    let content = text_layer(&words, height, 150, "F2");
    assert!(content.is_ascii(), "non-ASCII in the content stream");
    assert_eq!(content.matches(" Tj\n").count(), words.len());
    for shown in content.split('<').skip(1) {
        let hex = shown.split('>').next().unwrap_or("");
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "not hex: {hex}");
    }
}
