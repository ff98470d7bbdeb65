//! libFuzzer entry point; the body is in `audit_merge_check.rs`, which
//! `tests/fuzz_corpus.rs` also replays over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "audit_merge_check.rs"]
mod c;

fuzz_target!(|data: &[u8]| c::check(data));
