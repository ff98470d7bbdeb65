//! The image-sanitize worker: one untrusted image per job in, raw RGBA
//! pixels out (format in lib.rs), many jobs per process through the SDK.

use pw_image_sanitize::{decode, emit, DecodeLimits};

fn main() {
    // std seeds HashMap keys with getrandom on first use; do it now, before
    // the SDK's lockdown, so no job ever needs that syscall.
    let _ = std::collections::hash_map::RandomState::new();
    // One line per panic and no backtrace: with RUST_BACKTRACE set the
    // default hook would open files, which the lockdown filter kills.
    std::panic::set_hook(Box::new(|info| {
        // Formatted first so the line goes out in a single write.
        let line = format!("pw-image-sanitize: decoder panicked: {info}").replace('\n', " ") + "\n";
        eprint!("{line}");
    }));
    let limits = DecodeLimits::default();
    plugwarden_sdk::serve_parts(|input, parts| {
        let decoded = decode(input, &limits)?;
        emit(&decoded, &mut |bytes| Ok(parts.send(bytes)?))
    });
}
