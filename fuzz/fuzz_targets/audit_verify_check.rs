//! Fuzz check for the audit verifier: arbitrary bytes never make it panic,
//! and whatever it accepts is a complete log in which every line is a record.

use plugwarden::audit::{verify_bytes, GENESIS};

/// Runs the verifier over `data`; panics only if the verifier itself does or
/// if it accepts something that is not a whole, chained log.
pub fn check(data: &[u8]) {
    let summary = match verify_bytes(data) {
        Ok(summary) => summary,
        Err(error) => {
            // Rendering the message must not panic either.
            let _ = error.to_string();
            return;
        }
    };
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(
        summary.records, lines,
        "every line of an accepted log is a record"
    );
    assert!(
        data.is_empty() || data.ends_with(b"\n"),
        "an accepted log ends with a newline"
    );
    assert_eq!(summary.last_hash.len(), 64, "last_hash is a sha256 in hex");
    if summary.records == 0 {
        assert_eq!(summary.last_hash, GENESIS, "an empty log ends at genesis");
    }
}
