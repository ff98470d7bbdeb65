//! Fuzz check for `audit merge` and `audit status`: the shard logs a user
//! hands them are hostile files. The input is up to four logs separated by
//! NUL bytes (a NUL never appears in a valid log). Whatever they hold,
//! neither panics, and a merge that proves exactly once writes a log that
//! the verifier accepts, holding every input record it copied.

use std::path::PathBuf;

use plugwarden::audit::verify_bytes;
use plugwarden::merge::{self, Origin};

pub fn check(data: &[u8]) {
    let names: Vec<PathBuf> = (0..4)
        .map(|i| PathBuf::from(format!("shard-{i}.jsonl")))
        .collect();
    let origins: Vec<Origin> = data
        .split(|&b| b == 0)
        .take(4)
        .zip(&names)
        .map(|(log, name)| Origin::Bytes(name, log))
        .collect();
    match merge::status(&origins, None) {
        Ok(status) => assert!(status.rows.len() <= origins.len() + merge::MAX_LISTED),
        Err(e) => drop(e.to_string()),
    }
    let report = match merge::check(&origins, None) {
        Ok(report) => report,
        Err(e) => return drop(e.to_string()),
    };
    if !report.proves_exactly_once() {
        return;
    }
    let (merged, promised) = merge::write_merged(&origins, &report, Vec::new())
        .expect("logs that were checked are copied");
    let summary = verify_bytes(&merged).expect("a merged log verifies");
    assert_eq!(summary, promised, "the merge says what verify finds");
    let copied: u64 = report.shards.iter().map(|s| s.input_records).sum();
    assert_eq!(
        summary.records,
        1 + copied,
        "the merge record and every input record"
    );
}
