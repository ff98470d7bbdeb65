fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let input = std::fs::read(std::env::args().nth(2).unwrap()).unwrap();
    let n: usize = std::env::args().nth(3).unwrap().parse().unwrap();
    let limits = pw_pdf_sanitize::RenderLimits::default();
    let mut out = Vec::new();
    pw_pdf_sanitize::render_guarded(&input, 150, &limits, &mut |p| { out.extend_from_slice(p); Ok(()) }).unwrap();
    for _ in 0..n {
        if mode == "render" {
            let mut n = 0usize;
            pw_pdf_sanitize::render_guarded(&input, 150, &limits, &mut |p| { n += std::hint::black_box(p).len(); Ok(()) }).unwrap();
        } else {
            let (pdf, _) = plugwarden::sanitize::pdf_from_plugin_output(&out, &Default::default()).unwrap();
            std::hint::black_box(pdf);
        }
    }
}
