use std::io::Read;

use super::*;

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/../../samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run samples/make_samples.py)"))
}

/// One rendered page as the plugin sent it.
#[derive(Debug)]
struct Rendered {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Rendered {
    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        self.rgb[i..i + 3].try_into().unwrap()
    }
}

/// Runs the plugin's logic and returns its raw output.
fn run(input: &[u8], dpi: u32, limits: &RenderLimits) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    render_guarded(input, dpi, limits, &mut |part| {
        out.extend_from_slice(part);
        Ok(())
    })?;
    Ok(out)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

/// Splits the output format back into one record per declared page: the
/// pixels, or the reason (panics on a malformed output: the tests here are
/// about the plugin, the host checks live in src/sanitize).
fn records(out: &[u8]) -> Vec<Result<Rendered, String>> {
    assert_eq!(&out[..8], MAGIC);
    let count = le32(&out[8..]);
    let mut at = 16;
    let mut pages = Vec::new();
    for _ in 0..count {
        let (kind, width, height) = (out[at], le32(&out[at + 1..]), le32(&out[at + 5..]));
        at += 9;
        if kind == PAGE_FAILED {
            let len = le32(&out[at..]) as usize;
            pages.push(Err(
                String::from_utf8(out[at + 4..at + 4 + len].to_vec()).unwrap()
            ));
            at += 4 + len;
            continue;
        }
        assert_eq!(kind, PAGE_RENDERED);
        let len = (width * height * 3) as usize;
        pages.push(Ok(Rendered {
            width,
            height,
            rgb: out[at..at + len].to_vec(),
        }));
        at += len;
    }
    assert_eq!(at, out.len(), "bytes after the last page");
    pages
}

/// The pages of an output in which every page was rendered.
fn parse(out: &[u8]) -> Vec<Rendered> {
    records(out)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a page failed: {e}")))
        .collect()
}

fn render_sample(name: &str, dpi: u32) -> Result<Vec<Rendered>, String> {
    run(&sample(name), dpi, &RenderLimits::default()).map(|out| parse(&out))
}

fn sizes(pages: &[Rendered]) -> Vec<(u32, u32)> {
    pages.iter().map(|p| (p.width, p.height)).collect()
}

fn assert_near(actual: [u8; 3], expected: [u8; 3], tolerance: u8) {
    let close = actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= tolerance);
    assert!(
        close,
        "{actual:?} differs from {expected:?} by more than {tolerance}"
    );
}

/// The plugin's copy of the format is the host's.
#[test]
fn format_constants_match_the_host() {
    use plugwarden::sanitize as host;
    assert_eq!(MAGIC, host::PDF_MAGIC);
    assert_eq!(PDF_SCANNED, host::PDF_SCANNED);
    assert_eq!(PAGE_RENDERED, host::PAGE_RENDERED);
    assert_eq!(PAGE_FAILED, host::PAGE_FAILED);
    assert_eq!(MAX_PAGE_REASON, host::MAX_PAGE_REASON);
    assert_eq!(PDF_PASSWORD_MAGIC, host::PDF_PASSWORD_MAGIC);
}

#[test]
fn test_render_benign_three_letter_pages_at_150_dpi() {
    let pages = render_sample("benign.pdf", 150).unwrap();

    assert_eq!(sizes(&pages), [(1275, 1650); 3]);
}

#[test]
fn test_render_benign_colours_where_drawn() {
    let pages = render_sample("benign.pdf", 72).unwrap();
    let page = &pages[0];

    // 72 dpi: one pixel per point, y down from the top (792 - y_pdf).
    assert_near(page.pixel(10, 10), [255, 255, 255], 0);
    assert_near(page.pixel(50, 50), [242, 242, 255], 1);
    assert_near(page.pixel(122, 792 - 430), [0, 128, 0], 2);
    assert_near(page.pixel(490, 792 - 430), [0, 0, 179], 2);
}

#[test]
fn test_render_benign_text_darkens_title_line() {
    let pages = render_sample("benign.pdf", 72).unwrap();
    let page = &pages[0];

    // The title baseline is at y 700; its glyphs cover part of the row above.
    let dark = (72..400)
        .filter(|&x| page.pixel(x, 792 - 708)[0] < 100)
        .count();
    assert!(dark > 20, "only {dark} dark pixels on the title row");
}

#[test]
fn test_render_benign_round_trip_through_host_pixels_equal() {
    let out = run(&sample("benign.pdf"), 72, &RenderLimits::default()).unwrap();
    let rendered = parse(&out);
    let limits = plugwarden::sanitize::Limits {
        dpi: 72,
        ..Default::default()
    };

    let (pdf, report) = plugwarden::sanitize::pdf_from_plugin_output(&out, &limits).unwrap();

    let doc = lopdf::Document::load_mem(&pdf).unwrap();
    let page = doc
        .get_object(doc.get_pages()[&2])
        .unwrap()
        .as_dict()
        .unwrap();
    let xobjects = page
        .get(b"Resources")
        .unwrap()
        .as_dict()
        .unwrap()
        .get(b"XObject")
        .unwrap()
        .as_dict()
        .unwrap();
    let image = doc
        .get_object(xobjects.get(b"Im0").unwrap().as_reference().unwrap())
        .unwrap()
        .as_stream()
        .unwrap();
    let mut pixels = Vec::new();
    flate2::read::ZlibDecoder::new(&image.content[..])
        .read_to_end(&mut pixels)
        .unwrap();
    assert_eq!((report.declared, report.rendered()), (3, 3));
    assert_eq!(pixels, rendered[1].rgb);
}

#[test]
fn test_render_huge_page_is_a_failed_page_not_rendered() {
    let out = run(
        &sample("hostile-huge-page.pdf"),
        150,
        &RenderLimits::default(),
    )
    .unwrap();

    let pages = records(&out);

    assert_eq!(pages.len(), 1);
    let err = pages[0].as_ref().unwrap_err();
    assert!(
        err.starts_with("page too large: page 1 is 208333x208333 px at 150 dpi"),
        "{err}"
    );
}

#[test]
fn test_render_repeated_page_rendered_each_time() {
    let pages = render_sample("hostile-repeated-page.pdf", 36).unwrap();

    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0].rgb, pages[1].rgb);
    assert_ne!(pages[1].rgb, pages[2].rgb);
}

#[test]
fn test_render_missing_page_object_is_a_failed_page() {
    let out = run(
        &sample("hostile-missing-page.pdf"),
        36,
        &RenderLimits::default(),
    )
    .unwrap();

    let pages = records(&out);

    assert_eq!(pages.len(), 3);
    assert!(pages[0].is_ok() && pages[2].is_ok());
    assert_eq!(
        pages[1].as_ref().unwrap_err(),
        "object 9 0 R is missing or not a page dictionary"
    );
}

#[test]
fn test_render_page_tree_cycle_cut_one_page() {
    let pages = render_sample("hostile-page-tree-cycle.pdf", 36).unwrap();

    assert_eq!(pages.len(), 1);
}

#[test]
fn test_render_no_page_tree_scanned_flag_set() {
    // The catalog's /Pages points nowhere: hayro finds the page by scanning.
    let pdf = String::from_utf8_lossy(&sample("benign.pdf"))
        .replace("/Pages 2 0 R >>", "/Pages 99 0 R >>");

    let out = run(pdf.as_bytes(), 36, &RenderLimits::default());

    let out = out.unwrap();
    assert_eq!(le32(&out[12..]), PDF_SCANNED);
    assert_eq!(records(&out).len(), 3);
}

#[test]
fn test_render_encrypted_empty_user_password_all_30_pages() {
    for name in [
        "encrypted-aes256-empty-password.pdf",
        "encrypted-aes256-crypt-filters.pdf",
    ] {
        let pages = render_sample(name, 18).unwrap_or_else(|e| panic!("{name}: {e}"));

        assert_eq!(pages.len(), 30, "{name}");
    }
    // The stream under an /Identity crypt filter, stored in clear, is
    // drawn: a grey bar at y 770-778 pt (row 4 at 18 dpi).
    let pages = render_sample("encrypted-aes256-crypt-filters.pdf", 18).unwrap();
    assert_near(pages[29].pixel(75, 4), [153, 153, 153], 30);
}

#[test]
fn test_render_encrypted_every_standard_handler_opens() {
    for name in [
        "encrypted-rc4-40-empty-password.pdf",
        "encrypted-rc4-128-empty-password.pdf",
        "encrypted-aes128-empty-password.pdf",
    ] {
        let pages = render_sample(name, 18).unwrap_or_else(|e| panic!("{name}: {e}"));

        assert_eq!(pages.len(), 3, "{name}");
    }
}

/// The input the host sends with `--password-file`.
fn with_password(password: &str, pdf: &[u8]) -> Vec<u8> {
    let mut input = PDF_PASSWORD_MAGIC.to_vec();
    input.extend_from_slice(&(password.len() as u32).to_le_bytes());
    input.extend_from_slice(password.as_bytes());
    input.extend_from_slice(pdf);
    input
}

#[test]
fn test_render_user_password_missing_says_how_to_give_it() {
    let err = render_sample("encrypted-aes256-user-password.pdf", 18).unwrap_err();

    assert_eq!(
        err,
        "cannot read pdf: encrypted, and it needs a password: give it with --password-file FILE"
    );
}

#[test]
fn test_render_user_password_given_opens() {
    let input = with_password("plugwarden", &sample("encrypted-aes256-user-password.pdf"));

    let out = run(&input, 18, &RenderLimits::default()).unwrap();

    assert_eq!(parse(&out).len(), 3);
}

#[test]
fn test_render_wrong_password_says_so() {
    let input = with_password("wrong", &sample("encrypted-aes256-user-password.pdf"));

    let err = run(&input, 18, &RenderLimits::default()).unwrap_err();

    assert_eq!(
        err,
        "cannot read pdf: encrypted, and the password from --password-file does not open it"
    );
}

#[test]
fn test_split_password_cut_header_refused() {
    let input = with_password("secret", b"%PDF-1.7");

    let err = split_password(&input[..14]).unwrap_err();

    assert_eq!(err, "the host sent a malformed password header");
}

#[test]
fn test_split_password_plain_pdf_untouched() {
    let (password, pdf) = split_password(b"%PDF-1.7").unwrap();

    assert_eq!((password, pdf), (None, b"%PDF-1.7".as_slice()));
}

#[test]
fn test_failed_record_reason_cut_on_char_boundary() {
    let reason = format!("a{}", "é".repeat(MAX_PAGE_REASON));

    let record = failed_record(None, &reason);

    let len = le32(&record[9..]) as usize;
    assert_eq!(len, MAX_PAGE_REASON - 1);
    assert!(std::str::from_utf8(&record[13..]).is_ok());
}

#[test]
fn test_render_million_page_claim_renders_real_page() {
    let pages = render_sample("hostile-million-pages.pdf", 36).unwrap();

    assert_eq!(sizes(&pages), [(306, 396)]);
}

#[test]
fn test_render_broken_xref_repaired_two_pages() {
    let pages = render_sample("hostile-broken-xref.pdf", 36).unwrap();

    assert_eq!(pages.len(), 2);
}

#[test]
fn test_render_active_content_samples_render_one_page() {
    let js = render_sample("hostile-openaction-js.pdf", 36).unwrap();
    let launch = render_sample("hostile-launch.pdf", 36).unwrap();
    let embedded = render_sample("hostile-embedded-file.pdf", 36).unwrap();
    let polyglot = render_sample("hostile-polyglot-pdf-zip.pdf", 36).unwrap();

    assert_eq!(
        [js.len(), launch.len(), embedded.len(), polyglot.len()],
        [1; 4]
    );
}

#[test]
fn test_render_text_file_cannot_read() {
    let err = render_sample("unsupported-notes.txt", 36).unwrap_err();

    assert!(err.starts_with("cannot read pdf"), "{err}");
}

#[test]
fn test_render_empty_input_cannot_read() {
    let err = run(b"", 36, &RenderLimits::default()).unwrap_err();

    assert!(err.starts_with("cannot read pdf"), "{err}");
}

#[test]
fn test_render_page_count_over_limit_refused() {
    let limits = RenderLimits {
        max_pages: 2,
        ..RenderLimits::default()
    };

    let err = run(&sample("benign.pdf"), 36, &limits).unwrap_err();

    assert_eq!(err, "too many pages: more than 2, the limit");
}

#[test]
fn test_render_total_pixels_over_limit_refused() {
    let limits = RenderLimits {
        max_total_pixels: 2 * 1275 * 1650,
        ..RenderLimits::default()
    };

    let err = run(&sample("benign.pdf"), 150, &limits).unwrap_err();

    assert!(err.starts_with("document too large"), "{err}");
    assert!(err.ends_with("by page 3"), "{err}");
}

#[test]
fn test_render_guarded_panic_becomes_error() {
    let err = render_guarded(
        &sample("benign.pdf"),
        36,
        &RenderLimits::default(),
        &mut |_| panic!("sink exploded"),
    )
    .unwrap_err();

    assert_eq!(err, "renderer panicked: sink exploded");
}

#[test]
fn test_page_size_letter_150_dpi_rounded() {
    let size = page_size((612.0, 792.0), 150, 1, &RenderLimits::default()).unwrap();

    assert_eq!(
        size,
        PageSize {
            width: 1275,
            height: 1650
        }
    );
}

#[test]
fn test_page_size_tiny_page_one_pixel() {
    let size = page_size((0.1, 0.1), 72, 1, &RenderLimits::default()).unwrap();

    assert_eq!(
        size,
        PageSize {
            width: 1,
            height: 1
        }
    );
}

#[test]
fn test_page_size_nan_refused() {
    let err = page_size((f32::NAN, 10.0), 150, 4, &RenderLimits::default()).unwrap_err();

    assert!(err.starts_with("page too large: page 4"), "{err}");
}

#[test]
fn test_page_size_infinite_refused() {
    let err = page_size((f32::INFINITY, 10.0), 150, 1, &RenderLimits::default()).unwrap_err();

    assert!(err.starts_with("page too large"), "{err}");
}

#[test]
fn test_page_size_area_over_limit_refused() {
    // 19000 px a side passes the side limit but not 64 Mpx a page.
    let err = page_size((9120.0, 9120.0), 150, 2, &RenderLimits::default()).unwrap_err();

    assert!(
        err.starts_with("page too large: page 2 is 19000x19000 px"),
        "{err}"
    );
}
