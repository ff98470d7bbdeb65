//! Fuzz check for the plugin manifest parser: arbitrary UTF-8 never makes
//! `manifest::parse` panic. Inputs that are not UTF-8 are skipped (a
//! manifest is read as a string).

use plugwarden::manifest::{self, Executable};

/// Panics if parsing `data` as a `plugin.toml` misbehaves.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match manifest::parse(text) {
        Ok(m) => {
            // Formatting walks every field.
            let _ = format!("{m:?}");
            let candidates = match &m.executable {
                Executable::One(one) => std::slice::from_ref(one),
                Executable::Candidates(list) => list.as_slice(),
            };
            // TOML escapes never expand, so no string can outgrow the text:
            // the parser allocates in proportion to its input.
            let strings = candidates
                .iter()
                .chain(&m.args)
                .chain(&m.description)
                .chain(&m.policy);
            for s in strings {
                assert!(
                    s.len() <= text.len(),
                    "a {}-byte string from {} bytes",
                    s.len(),
                    text.len()
                );
            }
        }
        Err(e) => assert!(
            !e.to_string().is_empty(),
            "a refused manifest has an empty message"
        ),
    }
}
