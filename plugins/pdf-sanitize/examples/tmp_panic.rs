fn main() {
    pw_pdf_sanitize::install_panic_hook();
    plugwarden::plugin::serve_parts(|input, _parts| {
        pw_pdf_sanitize::render_guarded(input, 150, &Default::default(), &mut |_| panic!("test panic in sink"))
    });
}
