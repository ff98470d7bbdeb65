use super::*;

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/../../samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run samples/make_samples.py)"))
}

fn decode_sample(name: &str) -> Result<Decoded, String> {
    decode(&sample(name), &DecodeLimits::default())
}

fn pixel(d: &Decoded, x: u32, y: u32) -> [u8; 4] {
    let i = ((y * d.width + x) * 4) as usize;
    d.rgba[i..i + 4].try_into().unwrap()
}

/// The pattern samples/make_samples.py draws into benign.png and benign.bmp.
fn benign_pixel(x: u32, y: u32) -> [u8; 4] {
    [
        (x * 4 % 256) as u8,
        (y * 5 % 256) as u8,
        ((x + y) * 2 % 256) as u8,
        255,
    ]
}

fn assert_near(actual: [u8; 4], expected: [u8; 4], tolerance: u8) {
    let close = actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= tolerance);
    assert!(
        close,
        "{actual:?} differs from {expected:?} by more than {tolerance}"
    );
}

#[test]
fn test_decode_benign_png_pixels_match_generator() {
    let d = decode_sample("benign.png").unwrap();

    assert_eq!((d.width, d.height), (64, 48));
    assert_eq!(d.rgba.len(), 64 * 48 * 4);
    let expected: Vec<u8> = (0..48)
        .flat_map(|y| (0..64).flat_map(move |x| benign_pixel(x, y)))
        .collect();
    assert_eq!(d.rgba, expected);
}

#[test]
fn test_decode_benign_bmp_pixels_match_generator() {
    let d = decode_sample("benign.bmp").unwrap();

    assert_eq!((d.width, d.height), (40, 30));
    assert_eq!(pixel(&d, 0, 0), benign_pixel(0, 0));
    assert_eq!(pixel(&d, 39, 29), benign_pixel(39, 29));
    assert_eq!(pixel(&d, 17, 5), benign_pixel(17, 5));
}

#[test]
fn test_decode_benign_jpeg_quadrants_within_tolerance() {
    let d = decode_sample("benign.jpg").unwrap();

    assert_eq!((d.width, d.height), (64, 48));
    assert_near(pixel(&d, 12, 10), [220, 30, 30, 255], 6);
    assert_near(pixel(&d, 44, 10), [30, 200, 60, 255], 6);
    assert_near(pixel(&d, 12, 36), [40, 60, 210, 255], 6);
}

#[test]
fn test_decode_gif_two_frames_keeps_first() {
    let d = decode_sample("benign.gif").unwrap();

    assert_eq!((d.width, d.height), (32, 24));
    assert_eq!(pixel(&d, 0, 0), [255, 0, 0, 255]);
    assert_eq!(pixel(&d, 10, 10), [0, 0, 255, 255]);
}

#[test]
fn test_decode_png_bomb_too_large() {
    let err = decode_sample("hostile-bomb.png").unwrap_err();

    assert_eq!(err, "image too large: more than 16384 pixels a side");
}

#[test]
fn test_decode_png_pixel_bomb_within_side_limit_too_large() {
    let err = decode_sample("hostile-bomb-pixels.png").unwrap_err();

    assert_eq!(
        err,
        "image too large: 16000x16000 pixels, limit 16384 a side and 67108864 in total"
    );
}

#[test]
fn test_decode_small_alloc_limit_too_large() {
    let limits = DecodeLimits {
        max_alloc: 1000,
        ..DecodeLimits::default()
    };

    let err = decode(&sample("benign.png"), &limits).unwrap_err();

    assert!(err.starts_with("image too large"), "{err}");
}

#[test]
fn test_decode_truncated_jpeg_partial_image_full_size() {
    let d = decode_sample("hostile-truncated.jpg").unwrap();

    // zune-jpeg keeps what it decoded and fills the missing blocks with grey.
    assert_eq!((d.width, d.height), (64, 48));
    assert_near(pixel(&d, 12, 10), [220, 30, 30, 255], 6);
    assert_eq!(pixel(&d, 12, 36), [128, 128, 128, 255]);
}

#[test]
fn test_decode_huge_exif_jpeg_same_pixels_as_plain() {
    let plain = decode_sample("benign.jpg").unwrap();

    let with_exif = decode_sample("hostile-huge-exif.jpg").unwrap();

    assert_eq!(with_exif, plain);
}

#[test]
fn test_decode_png_trailing_data_same_pixels_as_plain() {
    let plain = decode_sample("benign.png").unwrap();

    let trailing = decode_sample("hostile-trailing-data.png").unwrap();

    assert_eq!(trailing, plain);
}

#[test]
fn test_decode_text_unsupported() {
    let err = decode_sample("unsupported-notes.txt").unwrap_err();

    assert_eq!(err, "unsupported image format");
}

#[test]
fn test_decode_pdf_unsupported() {
    let err = decode_sample("benign.pdf").unwrap_err();

    assert_eq!(err, "unsupported image format");
}

#[test]
fn test_decode_empty_input_unsupported() {
    let err = decode(b"", &DecodeLimits::default()).unwrap_err();

    assert_eq!(err, "unsupported image format");
}

#[test]
fn test_sanitize_to_vec_benign_png_header_and_exact_length() {
    let out = sanitize_to_vec(&sample("benign.png"), &DecodeLimits::default()).unwrap();

    assert_eq!(&out[..8], MAGIC);
    assert_eq!(&out[8..12], &64u32.to_le_bytes());
    assert_eq!(&out[12..16], &48u32.to_le_bytes());
    assert_eq!(out.len(), HEADER_LEN + 64 * 48 * 4);
}

/// Runs a sample through the plugin's logic and the host's re-encoding.
fn sanitize_sample(name: &str) -> (Vec<u8>, u32, u32) {
    let out = sanitize_to_vec(&sample(name), &DecodeLimits::default()).unwrap();
    plugwarden::sanitize::png_from_plugin_output(&out, &Default::default()).unwrap()
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

#[test]
fn test_round_trip_benign_png_through_host_pixels_equal() {
    let decoded = decode_sample("benign.png").unwrap();

    let (png, _, _) = sanitize_sample("benign.png");

    let mut reader = png::Decoder::new(std::io::Cursor::new(&png))
        .read_info()
        .unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut rgb).unwrap();
    let rgba: Vec<u8> = rgb
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    assert_eq!(rgba, decoded.rgba);
}

#[test]
fn test_round_trip_text_chunk_dropped() {
    let (png, _, _) = sanitize_sample("benign.png");

    assert_eq!(
        png_chunk_names(&sample("benign.png")),
        ["IHDR", "tEXt", "IDAT", "IEND"]
    );
    assert_eq!(png_chunk_names(&png), ["IHDR", "IDAT", "IEND"]);
}

#[test]
fn test_round_trip_huge_exif_dropped() {
    let (png, w, h) = sanitize_sample("hostile-huge-exif.jpg");

    assert_eq!((w, h), (64, 48));
    assert_eq!(png_chunk_names(&png), ["IHDR", "IDAT", "IEND"]);
    assert!(png.len() < 20_000, "{} bytes", png.len());
}

#[test]
fn test_round_trip_trailing_data_dropped() {
    let (png, _, _) = sanitize_sample("hostile-trailing-data.png");

    assert!(
        png.ends_with(b"IEND\xaeB`\x82"),
        "output does not end at IEND"
    );
    assert!(!png.windows(8).any(|w| w == b"<script>"));
}
