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

mod pdf;
