use std::io::Read;

use lopdf::{Dictionary, Document, Object};

use super::*;

// ------------------------------------------------------------------ helpers

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run samples/make_samples.py)"))
}

/// An image payload whose pixel bytes count up (so misplaced bytes show).
fn image_payload(width: u32, height: u32, alpha: u8) -> Vec<u8> {
    let mut p = IMAGE_MAGIC.to_vec();
    p.extend_from_slice(&width.to_le_bytes());
    p.extend_from_slice(&height.to_le_bytes());
    for i in 0..width * height {
        p.extend_from_slice(&[(i % 251) as u8, (i % 13) as u8, (i % 7) as u8, alpha]);
    }
    p
}

/// Pixels of page `index`: a ramp offset by the page index.
fn page_pixels(index: u32, width: u32, height: u32) -> Vec<u8> {
    (0..width * height * 3)
        .map(|i| ((i + index * 17) % 256) as u8)
        .collect()
}

/// The pdf plugin's output for rendered pages of these sizes.
fn pdf_payload(sizes: &[(u32, u32)]) -> Vec<u8> {
    let mut p = pdf_header(sizes.len() as u32, 0);
    for (index, &(w, h)) in sizes.iter().enumerate() {
        p.push(PAGE_RENDERED);
        p.extend_from_slice(&w.to_le_bytes());
        p.extend_from_slice(&h.to_le_bytes());
        p.extend_from_slice(&page_pixels(index as u32, w, h));
    }
    p
}

fn pdf_header(declared: u32, flags: u32) -> Vec<u8> {
    let mut p = PDF_MAGIC.to_vec();
    p.extend_from_slice(&declared.to_le_bytes());
    p.extend_from_slice(&flags.to_le_bytes());
    p
}

/// A failed page's record.
fn failed(width: u32, height: u32, reason: &[u8]) -> Vec<u8> {
    let mut r = vec![PAGE_FAILED];
    r.extend_from_slice(&width.to_le_bytes());
    r.extend_from_slice(&height.to_le_bytes());
    r.extend_from_slice(&(reason.len() as u32).to_le_bytes());
    r.extend_from_slice(reason);
    r
}

/// Page 1 rendered (4x4), page 2 failed, page 3 rendered (4x4).
fn payload_with_failed_page(reason: &[u8]) -> Vec<u8> {
    let mut p = pdf_header(3, 0);
    let one = pdf_payload(&[(4, 4)]);
    p.extend_from_slice(&one[16..]);
    p.extend_from_slice(&failed(0, 0, reason));
    p.extend_from_slice(&one[16..]);
    p
}

fn png_chunk_names(png: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        names.push(String::from_utf8_lossy(&png[at + 4..at + 8]).into_owned());
        at += 12 + len;
    }
    names
}

fn decode_png(png: &[u8]) -> (png::OutputInfo, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info, buf)
}

/// Names that carry actions, scripts, forms, links or attachments.
const FORBIDDEN: &[&[u8]] = &[
    b"JavaScript",
    b"JS",
    b"OpenAction",
    b"AA",
    b"Launch",
    b"EmbeddedFile",
    b"EmbeddedFiles",
    b"URI",
    b"AcroForm",
    b"Annots",
    b"Names",
    b"Metadata",
    b"Info",
];

/// Every dictionary key and name value anywhere in `object`.
fn collect_names(object: &Object, out: &mut Vec<Vec<u8>>) {
    let dict_names = |d: &Dictionary, out: &mut Vec<Vec<u8>>| {
        for (key, value) in d.iter() {
            out.push(key.clone());
            collect_names(value, out);
        }
    };
    match object {
        Object::Name(n) => out.push(n.clone()),
        Object::Array(items) => items.iter().for_each(|o| collect_names(o, out)),
        Object::Dictionary(d) => dict_names(d, out),
        Object::Stream(s) => dict_names(&s.dict, out),
        _ => {}
    }
}

fn all_names(doc: &Document) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    collect_names(&Object::Dictionary(doc.trailer.clone()), &mut names);
    for object in doc.objects.values() {
        collect_names(object, &mut names);
    }
    names
}

fn image_of_page(doc: &Document, page: lopdf::ObjectId) -> &lopdf::Stream {
    let page = doc.get_object(page).unwrap().as_dict().unwrap();
    let resources = page.get(b"Resources").unwrap().as_dict().unwrap();
    let xobjects = resources.get(b"XObject").unwrap().as_dict().unwrap();
    let id = xobjects.get(b"Im0").unwrap().as_reference().unwrap();
    doc.get_object(id).unwrap().as_stream().unwrap()
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

// ------------------------------------------------------------------- detect

#[test]
fn test_detect_pdf_magic_pdf() {
    assert_eq!(detect(b"%PDF-1.7\n..."), FileType::Pdf);
}

#[test]
fn test_detect_pdf_after_junk_within_1024_pdf() {
    let mut bytes = vec![b'x'; 1000];
    bytes.extend_from_slice(b"%PDF-1.4\n");

    assert_eq!(detect(&bytes), FileType::Pdf);
}

#[test]
fn test_detect_pdf_after_1024_unknown() {
    let mut bytes = vec![b'x'; 1020];
    bytes.extend_from_slice(b"%PDF-1.4\n");

    assert_eq!(detect(&bytes), FileType::Unknown);
}

#[test]
fn test_detect_zip_hiding_pdf_zip() {
    let mut bytes = b"PK\x03\x04".to_vec();
    bytes.extend_from_slice(b"junk %PDF-1.4\n");

    assert_eq!(detect(&bytes), FileType::Zip);
}

#[test]
fn test_detect_image_magics_each_type() {
    assert_eq!(detect(b"\x89PNG\r\n\x1a\n...."), FileType::Png);
    assert_eq!(detect(b"\xff\xd8\xff\xe0...."), FileType::Jpeg);
    assert_eq!(detect(b"GIF87a...."), FileType::Gif);
    assert_eq!(detect(b"GIF89a...."), FileType::Gif);
    assert_eq!(detect(b"II*\0...."), FileType::Tiff);
    assert_eq!(detect(b"MM\0*...."), FileType::Tiff);
    assert_eq!(detect(b"RIFF\x10\0\0\0WEBPVP8 "), FileType::Webp);
    assert_eq!(
        detect(b"BM\0\0\0\0\0\0\0\0\0\0\0\0\x28\0\0\0"),
        FileType::Bmp
    );
}

#[test]
fn test_detect_text_starting_bm_unknown() {
    assert_eq!(
        detect(b"BMW is a car maker, not a bitmap.\n"),
        FileType::Unknown
    );
}

#[test]
fn test_detect_riff_wave_unknown() {
    assert_eq!(detect(b"RIFF\x10\0\0\0WAVEfmt "), FileType::Unknown);
}

#[test]
fn test_detect_empty_unknown() {
    assert_eq!(detect(b""), FileType::Unknown);
}

#[test]
fn test_detect_samples_by_content_not_name() {
    assert_eq!(detect(&sample("benign.pdf")), FileType::Pdf);
    assert_eq!(detect(&sample("benign.png")), FileType::Png);
    assert_eq!(detect(&sample("benign.jpg")), FileType::Jpeg);
    assert_eq!(detect(&sample("benign.gif")), FileType::Gif);
    assert_eq!(detect(&sample("benign.bmp")), FileType::Bmp);
    assert_eq!(
        detect(&sample("hostile-polyglot-pdf-zip.pdf")),
        FileType::Pdf
    );
    assert_eq!(detect(&sample("unsupported-archive.zip")), FileType::Zip);
    assert_eq!(detect(&sample("unsupported-notes.txt")), FileType::Unknown);
}

#[test]
fn test_file_type_unsupported_no_sanitizer() {
    assert_eq!(FileType::Zip.sanitizer(), None);
    assert_eq!(FileType::Unknown.sanitizer(), None);
    assert_eq!(FileType::Zip.describe(), "ZIP archive");
    assert_eq!(FileType::Unknown.describe(), "unknown type");
}

#[test]
fn test_file_type_supported_routed_to_plugins() {
    assert_eq!(FileType::Pdf.sanitizer(), Some(Sanitizer::Pdf));
    assert_eq!(FileType::Webp.sanitizer(), Some(Sanitizer::Image));
    assert_eq!(Sanitizer::Pdf.output_extension(), "pdf");
    assert_eq!(Sanitizer::Image.policy_name(), "image");
}

// ---------------------------------------------------------------- png output

#[test]
fn test_png_from_output_translucent_decodes_to_same_rgba() {
    let payload = image_payload(7, 5, 128);

    let (png, w, h) = png_from_plugin_output(&payload, &Limits::default()).unwrap();

    let (info, pixels) = decode_png(&png);
    assert_eq!((w, h, info.width, info.height), (7, 5, 7, 5));
    assert_eq!(info.color_type, png::ColorType::Rgba);
    assert_eq!(pixels, payload[16..]);
}

#[test]
fn test_png_from_output_opaque_written_as_rgb() {
    let payload = image_payload(7, 5, 255);

    let (png, _, _) = png_from_plugin_output(&payload, &Limits::default()).unwrap();

    let (info, pixels) = decode_png(&png);
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let rgb: Vec<u8> = payload[16..]
        .chunks(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    assert_eq!(pixels, rgb);
}

#[test]
fn test_png_from_output_only_critical_chunks() {
    let payload = image_payload(30, 20, 255);

    let (png, _, _) = png_from_plugin_output(&payload, &Limits::default()).unwrap();

    assert_eq!(png_chunk_names(&png), ["IHDR", "IDAT", "IEND"]);
}

#[test]
fn test_png_from_output_short_header_protocol_error() {
    let err = png_from_plugin_output(b"PWIMG1\0\0\x01\0\0\0", &Limits::default()).unwrap_err();

    assert!(
        matches!(err, SanitizeError::ShortHeader { len: 12, .. }),
        "{err}"
    );
    assert!(err.is_protocol_error());
}

#[test]
fn test_png_from_output_pdf_magic_rejected() {
    let mut payload = image_payload(2, 2, 255);
    payload[..8].copy_from_slice(PDF_MAGIC);

    let err = png_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert_eq!(
        err.to_string(),
        "plugin output does not start with \"PWIMG1\""
    );
}

#[test]
fn test_png_from_output_zero_width_rejected() {
    let payload = image_payload(0, 5, 255);

    let err = png_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(
        matches!(err, SanitizeError::BadSize { width: 0, .. }),
        "{err}"
    );
}

#[test]
fn test_png_from_output_side_over_limit_rejected() {
    let limits = Limits {
        max_side: 6,
        ..Limits::default()
    };

    let err = png_from_plugin_output(&image_payload(7, 5, 255), &limits).unwrap_err();

    assert!(
        matches!(err, SanitizeError::BadSize { width: 7, .. }),
        "{err}"
    );
}

#[test]
fn test_png_from_output_area_over_limit_rejected() {
    let limits = Limits {
        max_image_pixels: 34,
        ..Limits::default()
    };

    let err = png_from_plugin_output(&image_payload(7, 5, 255), &limits).unwrap_err();

    assert!(matches!(err, SanitizeError::BadSize { .. }), "{err}");
}

#[test]
fn test_png_from_output_huge_declared_size_rejected_without_alloc() {
    let mut payload = IMAGE_MAGIC.to_vec();
    payload.extend_from_slice(&u32::MAX.to_le_bytes());
    payload.extend_from_slice(&u32::MAX.to_le_bytes());

    let err = png_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert!(matches!(err, SanitizeError::BadSize { .. }), "{err}");
}

#[test]
fn test_png_from_output_missing_byte_rejected() {
    let mut payload = image_payload(7, 5, 255);
    payload.pop();

    let err = png_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert_eq!(
        err.to_string(),
        "plugin returned 139 bytes for image, expected 140 for 7x5 RGBA"
    );
}

#[test]
fn test_png_from_output_extra_byte_rejected() {
    let mut payload = image_payload(7, 5, 255);
    payload.push(0);

    let err = png_from_plugin_output(&payload, &Limits::default()).unwrap_err();

    assert_eq!(
        err.to_string(),
        "plugin returned 141 bytes for image, expected 140 for 7x5 RGBA"
    );
}

#[test]
fn test_png_from_output_every_truncation_rejected() {
    let payload = image_payload(3, 2, 255);

    // Every proper prefix, including the empty one, is an error and not a panic.
    let accepted = (0..payload.len())
        .filter(|&n| png_from_plugin_output(&payload[..n], &Limits::default()).is_ok());

    assert_eq!(accepted.count(), 0);
}

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
