//! Fuzz check for the audit verifier: arbitrary bytes never make it panic,
//! and whatever it accepts is a complete log in which every line is a record.

use plugwarden::audit::{name_fields, verify_bytes_with, GENESIS};

/// Runs the verifier over `data`; panics only if the verifier itself does or
/// if it accepts something that is not a whole, chained log, or a record
/// whose names are not exactly one path each (`input_bytes`/`output_bytes`).
pub fn check(data: &[u8]) {
    let names_exact = |rec: &plugwarden::audit::AuditRecord| {
        let path = rec
            .input_path()
            .expect("an accepted record names one input");
        assert_eq!(
            name_fields(&path),
            (rec.input.clone(), rec.input_bytes.clone()),
            "an accepted input name is the canonical form of its path"
        );
        assert!(
            rec.output.is_some() || rec.output_bytes.is_none(),
            "no output bytes without an output"
        );
    };
    let summary = match verify_bytes_with(data, names_exact) {
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
