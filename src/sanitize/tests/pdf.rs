//! The pdf route's writer: structure, pixels, limits, failed pages, the
//! page report, the text layer.

use lopdf::{Document, Object};

use super::*;

#[test]
fn test_pdf_from_output_three_pages_lopdf_three_pages() {
    let payload = pdf_payload(&[(30, 40), (50, 20), (10, 10)]);

    let (pdf, pages) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let doc = Document::load_mem(&pdf).unwrap();
    assert_eq!((pages.declared, pages.rendered()), (3, 3));
    assert_eq!(doc.get_pages().len(), 3);
}

#[test]
fn test_pdf_from_output_no_active_content_names() {
    let payload = pdf_payload(&[(30, 40), (50, 20)]);

    let (pdf, _) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let names = all_names(&Document::load_mem(&pdf).unwrap());
    let found: Vec<String> = names
        .iter()
        .filter(|n| FORBIDDEN.contains(&n.as_slice()))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(found, Vec::<String>::new());
}

#[test]
fn test_pdf_from_output_only_expected_keys() {
    let payload = pdf_payload(&[(30, 40)]);
    let allowed: &[&[u8]] = &[
        b"Type",
        b"Pages",
        b"Kids",
        b"Count",
        b"Parent",
        b"MediaBox",
        b"Resources",
        b"XObject",
        b"Im0",
        b"Contents",
        b"Length",
        b"Subtype",
        b"Width",
        b"Height",
        b"ColorSpace",
        b"BitsPerComponent",
        b"Filter",
        b"Size",
        b"Root",
    ];

    let (pdf, _) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let doc = Document::load_mem(&pdf).unwrap();
    let mut keys = Vec::new();
    let dicts = doc.objects.values().filter_map(|o| match o {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    });
    for dict in dicts.chain([&doc.trailer]) {
        keys.extend(dict.iter().map(|(k, _)| k.clone()));
    }
    let unexpected: Vec<String> = keys
        .iter()
        .filter(|k| !allowed.contains(&k.as_slice()))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(unexpected, Vec::<String>::new());
}

#[test]
fn test_pdf_from_output_pixels_round_trip_exact() {
    let payload = pdf_payload(&[(30, 40), (50, 20)]);

    let (pdf, _) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let doc = Document::load_mem(&pdf).unwrap();
    let pages = doc.get_pages();
    let second = image_of_page(&doc, pages[&2]);
    assert_eq!(second.dict.get(b"Width").unwrap().as_i64().unwrap(), 50);
    assert_eq!(second.dict.get(b"Height").unwrap().as_i64().unwrap(), 20);
    assert_eq!(inflate(&second.content), page_pixels(1, 50, 20));
}

#[test]
fn test_pdf_from_output_many_pages_order_kept() {
    let sizes: Vec<(u32, u32)> = (1..=12).map(|i| (i * 3, 7)).collect();
    let payload = pdf_payload(&sizes);

    let (pdf, _) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let doc = Document::load_mem(&pdf).unwrap();
    let pages = doc.get_pages();
    let ninth = image_of_page(&doc, pages[&9]);
    assert_eq!(inflate(&ninth.content), page_pixels(8, 27, 7));
}

#[test]
fn test_pdf_from_output_media_box_from_dpi() {
    let payload = pdf_payload(&[(1275, 1650)]);
    let limits = Limits {
        dpi: 150,
        ..Limits::default()
    };

    let (pdf, _) = pdf_from_plugin_output(&payload, &limits).unwrap();

    let doc = Document::load_mem(&pdf).unwrap();
    let page = doc
        .get_object(doc.get_pages()[&1])
        .unwrap()
        .as_dict()
        .unwrap();
    let media_box: Vec<f32> = page
        .get(b"MediaBox")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_float().unwrap())
        .collect();
    assert_eq!(media_box, [0.0, 0.0, 612.0, 792.0]);
}

#[test]
fn test_pdf_from_output_xref_offsets_point_at_objects() {
    let payload = pdf_payload(&[(8, 8), (9, 9)]);

    let (pdf, _) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    // Only the tail is text; the image streams before it are binary.
    let tail_at = pdf.windows(10).rposition(|w| w == b"startxref\n").unwrap();
    let startxref: usize = std::str::from_utf8(&pdf[tail_at + 10..])
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let table = std::str::from_utf8(&pdf[startxref..]).unwrap();
    let entries: Vec<usize> = table
        .lines()
        .skip(3)
        .take(8)
        .map(|l| l[..10].parse().unwrap())
        .collect();
    let starts: Vec<bool> = entries
        .iter()
        .enumerate()
        .map(|(i, &off)| pdf[off..].starts_with(format!("{} 0 obj\n", i + 1).as_bytes()))
        .collect();
    assert!(
        table.starts_with("xref\n0 9\n0000000000 65535 f \n"),
        "{table}"
    );
    assert_eq!(starts, [true; 8]);
}

#[test]
fn test_pdf_from_output_zero_pages_rejected() {
    let err = pdf_from_plugin_output(&pdf_payload(&[]), &Limits::default()).unwrap_err();

    assert!(matches!(err, SanitizeError::NoPages), "{err}");
    assert!(err.is_protocol_error());
}

#[test]
fn test_pdf_from_output_page_count_over_limit_rejected() {
    let payload = pdf_header(1_000_000, 0);

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert_eq!(
        err.to_string(),
        "plugin returned 1000000 pages, limit 10000"
    );
}

#[test]
fn test_pdf_from_output_short_page_message_names_page() {
    let mut payload = pdf_payload(&[(2, 2), (2, 2)]);
    payload[8..12].copy_from_slice(&3u32.to_le_bytes());
    payload.push(PAGE_RENDERED);
    payload.extend_from_slice(&1275u32.to_le_bytes());
    payload.extend_from_slice(&1649u32.to_le_bytes());
    payload.extend_from_slice(&[0; 1000]);

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert_eq!(
        err.to_string(),
        "plugin output ends at page 3 of the 3 declared"
    );
}

#[test]
fn test_pdf_from_output_trailing_bytes_rejected() {
    let mut payload = pdf_payload(&[(2, 2)]);
    payload.extend_from_slice(b"extra");

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert_eq!(
        err.to_string(),
        "plugin returned 5 bytes after the last page"
    );
}

#[test]
fn test_pdf_from_output_page_side_over_limit_rejected() {
    let mut payload = pdf_payload(&[(2, 2)]);
    payload[17..21].copy_from_slice(&20_001u32.to_le_bytes());

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(
        matches!(err, SanitizeError::BadSize { width: 20_001, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("page 1"), "{err}");
}

#[test]
fn test_pdf_from_output_total_pixels_over_limit_rejected() {
    let payload = pdf_payload(&[(10, 10), (10, 10), (10, 10)]);
    let limits = Limits {
        max_total_pixels: 250,
        ..Limits::default()
    };

    let err = pdf_from_plugin_output(&payload, &limits).unwrap_err();

    assert!(
        matches!(
            err,
            SanitizeError::TooManyPixels {
                page: 3,
                limit: 250
            }
        ),
        "{err}"
    );
}

#[test]
fn test_pdf_from_output_cut_inside_page_size_rejected() {
    let mut payload = pdf_payload(&[(2, 2), (2, 2)]);
    payload.truncate(16 + 9 + 12 + 5);

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(
        matches!(
            err,
            SanitizeError::Unfinished {
                page: 2,
                declared: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn test_pdf_from_output_image_magic_rejected() {
    let mut payload = pdf_payload(&[(2, 2)]);
    payload[..8].copy_from_slice(IMAGE_MAGIC);

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(matches!(err, SanitizeError::BadMagic { .. }), "{err}");
}

#[test]
fn test_pdf_from_output_every_truncation_rejected() {
    let payload = pdf_payload(&[(2, 3), (1, 1)]);

    // Every proper prefix, including the empty one, is an error and not a panic.
    let accepted = (0..payload.len())
        .filter(|&n| pdf_from_plugin_output(&payload[..n], &Limits::default()).is_ok());

    assert_eq!(accepted.count(), 0);
}

#[test]
fn test_pdf_stream_fed_byte_by_byte_same_pdf() {
    let payload = payload_with_failed_page(b"page too large");
    let (whole, _) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let mut stream = PdfStream::new(Vec::new(), Limits::default()).unwrap();
    for byte in payload.chunks(1) {
        stream.write(byte).unwrap();
    }
    let (pieces, report) = stream.finish().unwrap();

    // The same document (deflate may cut its blocks elsewhere).
    let (a, b) = (
        Document::load_mem(&whole).unwrap(),
        Document::load_mem(&pieces).unwrap(),
    );
    let (pa, pb) = (a.get_pages(), b.get_pages());
    assert_eq!(pb.len(), 3);
    for n in [1, 3] {
        assert_eq!(
            inflate(&image_of_page(&a, pa[&n]).content),
            inflate(&image_of_page(&b, pb[&n]).content)
        );
    }
    assert_eq!(a.get_page_content(pa[&2]), b.get_page_content(pb[&2]));
    assert_eq!(report.declared, 3);
}

#[test]
fn test_pdf_from_output_failed_page_keeps_its_place() {
    let payload = payload_with_failed_page(b"renderer panicked: boom");

    let (pdf, report) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let doc = Document::load_mem(&pdf).unwrap();
    let pages = doc.get_pages();
    assert_eq!(pages.len(), 3);
    let second = doc.get_object(pages[&2]).unwrap().as_dict().unwrap();
    let resources = second.get(b"Resources").unwrap().as_dict().unwrap();
    assert!(
        resources.get(b"XObject").is_err(),
        "no image on a placeholder"
    );
    let content = doc.get_page_content(pages[&2]);
    let text = String::from_utf8_lossy(&content);
    assert!(text.contains("(Page 2 could not be rendered.)"), "{text}");
    assert!(
        !text.contains("boom"),
        "the plugin's words stay out: {text}"
    );
    assert_eq!(
        report,
        PageReport {
            declared: 3,
            failed: vec![(2, "renderer panicked: boom".to_string())],
            scanned: false,
        }
    );
}

#[test]
fn test_pdf_from_output_failed_page_reason_is_escaped() {
    let payload = payload_with_failed_page(b"boom\nok      /etc/shadow\x1b[2J");

    let (_, report) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    let shortfall = report.shortfall().unwrap();
    assert_eq!(
        shortfall,
        "rendered 2 of 3 pages: page 2 failed: boom\\nok      /etc/shadow\\x1b[2J"
    );
}

#[test]
fn test_pdf_from_output_placeholder_takes_previous_page_size() {
    let payload = payload_with_failed_page(b"");
    let limits = Limits {
        dpi: 72,
        ..Limits::default()
    };

    let (pdf, _) = pdf_from_plugin_output(&payload, &limits).unwrap();

    let doc = Document::load_mem(&pdf).unwrap();
    let page = doc
        .get_object(doc.get_pages()[&2])
        .unwrap()
        .as_dict()
        .unwrap();
    let media_box: Vec<f32> = page
        .get(b"MediaBox")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_float().unwrap())
        .collect();
    assert_eq!(media_box, [0.0, 0.0, 4.0, 4.0]);
}

#[test]
fn test_pdf_from_output_unknown_record_kind_rejected() {
    let mut payload = pdf_payload(&[(2, 2)]);
    payload[16] = 7;

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(
        matches!(err, SanitizeError::BadRecord { page: 1, kind: 7 }),
        "{err}"
    );
    assert!(err.is_protocol_error());
}

#[test]
fn test_pdf_from_output_reason_over_limit_rejected() {
    let mut payload = pdf_header(1, 0);
    payload.extend_from_slice(&failed(0, 0, b""));
    payload[16 + 9..16 + 13].copy_from_slice(&1001u32.to_le_bytes());

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(
        matches!(err, SanitizeError::BadReason { page: 1, len: 1001 }),
        "{err}"
    );
}

#[test]
fn test_pdf_from_output_reason_not_utf8_rejected() {
    let payload = payload_with_failed_page(b"\xff\xfe");

    let err = pdf_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(
        matches!(err, SanitizeError::BadReason { page: 2, .. }),
        "{err}"
    );
}

#[test]
fn test_pdf_from_output_scanned_flag_reported() {
    let mut payload = pdf_payload(&[(2, 2)]);
    payload[12..16].copy_from_slice(&PDF_SCANNED.to_le_bytes());

    let (_, report) = pdf_from_plugin_output(&payload, &Limits::default()).unwrap();

    assert!(report.scanned);
    assert!(
        report.notes()[0].contains("scanning"),
        "{:?}",
        report.notes()
    );
}

#[test]
fn test_page_report_complete_has_no_shortfall() {
    let report = PageReport {
        declared: 3,
        ..PageReport::default()
    };

    assert_eq!(report.shortfall(), None);
    assert_eq!(report.notes(), ["pages: 3 declared, 3 rendered"]);
}

#[test]
fn test_page_report_one_missing_page_names_it() {
    let report = PageReport {
        declared: 30,
        failed: vec![(28, "renderer panicked: x".to_string())],
        scanned: false,
    };

    assert_eq!(
        report.shortfall().unwrap(),
        "rendered 29 of 30 pages: page 28 failed: renderer panicked: x"
    );
}

#[test]
fn test_page_report_groups_pages_by_reason_as_ranges() {
    let failed = [(3, "a"), (5, "b"), (6, "b"), (7, "b"), (9, "a")]
        .map(|(p, r)| (p, r.to_string()))
        .to_vec();
    let report = PageReport {
        declared: 10,
        failed,
        scanned: false,
    };

    assert_eq!(
        report.shortfall().unwrap(),
        "rendered 5 of 10 pages: pages 3, 5-7, 9 failed: pages 3, 9: a; pages 5-7: b"
    );
    assert_eq!(
        report.notes()[1..],
        [
            "missing pages 3, 9 of 10 (a labelled blank page in its place): a",
            "missing pages 5-7 of 10 (a labelled blank page in its place): b"
        ]
    );
}

// The text layer.

/// The pages of `payload` through a stream with a text layer; `words`
/// given to page 1 only.
fn pdf_with_text_layer(payload: &[u8], words: &[ocr::Word]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut stream = PdfStream::new(Vec::new(), Limits::default()).unwrap();
    stream.keep_pages_for_ocr(tempfile::tempfile().unwrap());
    for chunk in payload.chunks(7) {
        stream.write(chunk).unwrap();
    }
    let greys = stream
        .ocr_pages()
        .iter()
        .map(|p| stream.page_grey(p).unwrap())
        .collect();
    stream.set_text(1, words).unwrap();
    let (pdf, _) = stream.finish().unwrap();
    (pdf, greys)
}

#[test]
fn test_pdf_without_text_layer_is_byte_identical_to_before() {
    // The writer's output before the text layer existed (commit 69bc9ef).
    let (pdf, _) =
        pdf_from_plugin_output(&payload_with_failed_page(b"gone"), &Limits::default()).unwrap();

    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&pdf)),
        PDF_BEFORE_TEXT_LAYER
    );
}

#[test]
fn test_text_layer_keeps_grey_pages_for_ocr() {
    let payload = pdf_payload(&[(4, 3), (2, 2)]);

    let (_, greys) = pdf_with_text_layer(&payload, &[]);

    let expected: Vec<u8> = page_pixels(0, 4, 3)
        .chunks_exact(3)
        .map(|p| ((77 * u32::from(p[0]) + 150 * u32::from(p[1]) + 29 * u32::from(p[2])) >> 8) as u8)
        .collect();
    assert_eq!(greys.len(), 2);
    assert_eq!(greys[0], expected);
    assert_eq!(greys[1].len(), 4);
}

#[test]
fn test_text_layer_is_invisible_standard_font_text_and_nothing_else() {
    let words = [ocr::Word {
        left: 0,
        top: 0,
        width: 4,
        height: 2,
        text: "apples".into(),
    }];

    let (pdf, _) = pdf_with_text_layer(&pdf_payload(&[(4, 3), (2, 2)]), &words);

    let doc = Document::load_mem(&pdf).unwrap();
    let pages = doc.get_pages();
    assert_eq!(pages.len(), 2);
    assert_eq!(doc.extract_text(&[1]).unwrap().trim(), "apples");
    assert_eq!(doc.extract_text(&[2]).unwrap().trim(), "");
    // The font is a reference to Helvetica: no font program, no widths.
    let fonts: Vec<&Dictionary> = doc
        .objects
        .values()
        .filter_map(|o| o.as_dict().ok())
        .filter(|d| d.get(b"Type").ok().and_then(|t| t.as_name().ok()) == Some(b"Font"))
        .collect();
    assert_eq!(fonts.len(), 1);
    let keys: Vec<&[u8]> = fonts[0].iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [&b"Type"[..], b"Subtype", b"BaseFont", b"Encoding"]);
    let names = all_names(&doc);
    for bad in FORBIDDEN
        .iter()
        .chain([&&b"FontFile"[..], &&b"FontFile2"[..], &&b"FontFile3"[..]])
    {
        assert!(
            !names.iter().any(|n| n == bad),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    // Render mode 3: invisible.
    let page1 = doc.get_page_contents(pages[&1]);
    let text = doc.get_object(page1[1]).unwrap().as_stream().unwrap();
    assert!(String::from_utf8_lossy(&text.content).contains("3 Tr"));
}

/// sha256 of `pdf_from_plugin_output(payload_with_failed_page(b"gone"))`
/// as written before the text layer existed.
const PDF_BEFORE_TEXT_LAYER: &str =
    "5ff133fd1f23b35fdab6f3405a20db9282142408e9af462793a67b8300aea194";
