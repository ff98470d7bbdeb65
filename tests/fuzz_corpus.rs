//! Replays the committed fuzz corpora through the fuzz targets' own checks.
//!
//! Each target's body lives in `fuzz/fuzz_targets/<target>_check.rs` and is
//! compiled both into the cargo-fuzz binary and, through `#[path]`, into this
//! ordinary test, so every input the fuzzer kept (`fuzz/corpus/<target>/`)
//! and every crash reproducer (`fuzz/regressions/<target>/`) runs on stable
//! in CI and a regression in a decoder fails the build. See fuzz/README.md.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/fuzz_targets/audit_merge_check.rs"]
mod audit_merge;
#[path = "../fuzz/fuzz_targets/audit_verify_check.rs"]
mod audit_verify;
#[path = "../fuzz/fuzz_targets/frame_decoder_check.rs"]
mod frame_decoder;
#[path = "../fuzz/fuzz_targets/manifest_parser_check.rs"]
mod manifest_parser;
#[path = "../fuzz/fuzz_targets/policy_parser_check.rs"]
mod policy_parser;
#[path = "../fuzz/fuzz_targets/protocol_messages_check.rs"]
mod protocol_messages;

/// The input files of `dir` (sorted; hidden files such as `.gitkeep` are
/// skipped); an absent directory has none.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    files.sort();
    files
}

/// Runs every input of `dirs` through `check`; returns how many ran and the
/// inputs on which it panicked, each with its panic message.
fn run(dirs: &[PathBuf], check: fn(&[u8])) -> (usize, Vec<String>) {
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in dirs.iter().flat_map(|d| inputs(d)) {
        let data =
            std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        ran += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("non-string panic");
            failures.push(format!("{}: {message}", file.display()));
        }
    }
    (ran, failures)
}

/// Replays corpus and regressions of `target`; fails when the corpus is
/// empty or any input makes the check panic.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = fuzz.join("corpus").join(target);
    let regressions = fuzz.join("regressions").join(target);
    let corpus_len = inputs(&corpus).len();
    assert!(
        corpus_len > 0,
        "fuzz corpus {} is empty: seed it (see fuzz/README.md) so the replay tests something",
        corpus.display()
    );
    let (ran, failures) = run(&[corpus, regressions], check);
    assert!(
        failures.is_empty(),
        "{} of {ran} {target} fuzz inputs fail; reproduce one with \
         `cargo fuzz run --sanitizer none {target} <file>` in fuzz/:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{target}: {ran} fuzz inputs replayed ({corpus_len} corpus), all pass");
}

#[test]
fn test_fuzz_corpus_frame_decoder_replays_clean() {
    replay("frame_decoder", frame_decoder::check);
}

#[test]
fn test_fuzz_corpus_protocol_messages_replays_clean() {
    replay("protocol_messages", protocol_messages::check);
}

#[test]
fn test_fuzz_corpus_policy_parser_replays_clean() {
    replay("policy_parser", policy_parser::check);
}

#[test]
fn test_fuzz_corpus_manifest_parser_replays_clean() {
    replay("manifest_parser", manifest_parser::check);
}

#[test]
fn test_fuzz_corpus_audit_verify_replays_clean() {
    replay("audit_verify", audit_verify::check);
}

#[test]
fn test_fuzz_corpus_audit_merge_replays_clean() {
    replay("audit_merge", audit_merge::check);
}

/// The harness itself: a check that panics on one input is reported with
/// that file's name and message, and the others still run.
#[test]
fn test_fuzz_replay_panicking_input_is_listed() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good"), b"fine").expect("write");
    std::fs::write(dir.path().join("bad"), b"boom").expect("write");
    std::fs::write(dir.path().join(".gitkeep"), b"boom").expect("write");
    let (ran, failures) = run(&[dir.path().to_path_buf()], |data| {
        assert_ne!(data, b"boom", "planted")
    });
    assert_eq!(ran, 2, "hidden files are skipped, the rest all run");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("bad") && failures[0].contains("planted"),
        "{failures:?}"
    );
}

/// The checks hold on well-formed inputs built here, independent of the
/// corpus: a frame followed by garbage, its header, every built-in policy
/// and a minimal manifest.
#[test]
fn test_fuzz_checks_valid_inputs_pass() {
    let mut stream = vec![3, 7];
    plugwarden_proto::encode_frame(&mut stream, plugwarden_proto::Kind::Job, 9, b"payload");
    stream.extend_from_slice(b"garbage after the frame");
    frame_decoder::check(&stream);
    protocol_messages::check(&stream[2..]);
    for (_, text) in plugwarden::policy::BUILTIN {
        policy_parser::check(text.as_bytes());
    }
    manifest_parser::check(b"executable = \"pw-echo\"\nmode = \"worker\"\n");
}
