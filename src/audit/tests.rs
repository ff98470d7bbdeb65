use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::*;

fn record(n: u64, verdict: &str) -> AuditRecord {
    AuditRecord {
        input: format!("in/{n}.png"),
        input_sha256: Some(format!("{n:064x}")),
        plugin: "plugins/echo".to_owned(),
        plugin_sha256: "ab".repeat(32),
        policy: "strict".to_owned(),
        policy_sha256: "cd".repeat(32),
        worker_pid: Some(1000 + n as u32),
        generation: Some(1),
        verdict: verdict.to_owned(),
        detail: format!("job {n}"),
        attempt: 1,
        wall_ms: 12,
        cpu_ms: 10,
        max_rss_kib: 2048,
        ..AuditRecord::default()
    }
}

/// A log of `n` "ok" records in a fresh directory.
fn write_log(n: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = AuditWriter::open(&path).unwrap();
    for i in 1..=n {
        writer.append(record(i, "ok")).unwrap();
    }
    (dir, path)
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap();
    data.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn log_bytes(n: u64) -> Vec<u8> {
    let (_dir, path) = write_log(n);
    std::fs::read(path).unwrap()
}

#[test]
fn test_verify_five_records_ok() {
    let (_dir, path) = write_log(5);

    let summary = verify(&path).unwrap();

    assert_eq!(summary.records, 5);
    assert_eq!(summary.last_hash.len(), 64);
    assert_ne!(summary.last_hash, GENESIS);
}

#[test]
fn test_verify_empty_log_ok_at_genesis() {
    let summary = verify_bytes(b"").unwrap();

    assert_eq!(
        summary,
        VerifySummary {
            records: 0,
            last_hash: GENESIS.to_owned()
        }
    );
}

#[test]
fn test_append_new_log_fills_seq_time_prev_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = AuditWriter::open(&dir.path().join("a.jsonl")).unwrap();

    let first = writer.append(record(1, "ok")).unwrap();
    let second = writer.append(record(2, "crashed")).unwrap();

    assert_eq!((first.seq, second.seq, writer.next_seq()), (1, 2, 3));
    assert_eq!(first.prev, GENESIS);
    assert_eq!(second.prev, first.hash);
    assert_eq!(writer.last_hash(), second.hash);
    assert_eq!(first.time.len(), "2026-11-30T03:04:05.123Z".len());
    assert!(first.time.ends_with('Z'), "{}", first.time);
}

#[test]
fn test_open_existing_log_continues_chain() {
    let (_dir, path) = write_log(2);

    let rec = AuditWriter::open(&path)
        .unwrap()
        .append(record(3, "ok"))
        .unwrap();

    assert_eq!(rec.seq, 3);
    assert_eq!(verify(&path).unwrap().records, 3);
}

#[test]
fn test_verify_byte_flipped_in_record_3_names_record_3() {
    let (_dir, path) = write_log(5);
    let mut data = std::fs::read(&path).unwrap();
    let at = find(&data, b"job 3");
    data[at] = b'J';
    std::fs::write(&path, &data).unwrap();

    let err = verify(&path).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::HashMismatch {
                line: 3,
                seq: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("a.jsonl: record 3 (line 3) was edited"),
        "{message}"
    );
}

#[test]
fn test_verify_hash_field_edited_reports_hash_mismatch() {
    let mut data = log_bytes(3);
    let at = find(&data, b"\"hash\":\"") + 8;
    data[at] = if data[at] == b'0' { b'1' } else { b'0' };

    let err = verify_bytes(&data).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::HashMismatch {
                line: 1,
                seq: 1,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_verify_line_3_deleted_reports_chain_broken_at_record_4() {
    let (_dir, path) = write_log(5);
    let mut lines = lines(&path);
    lines.remove(2);
    std::fs::write(&path, lines.concat()).unwrap();

    let err = verify(&path).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::ChainBroken {
                line: 3,
                seq: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("record 4 (line 3)"), "{err}");
}

#[test]
fn test_verify_last_line_deleted_is_undetectable_without_anchor() {
    // Truncating the tail leaves a valid prefix: only a last_hash kept
    // elsewhere catches it. This pins the documented limit.
    let (_dir, path) = write_log(5);
    let full = verify(&path).unwrap();
    let mut lines = lines(&path);
    lines.pop();
    std::fs::write(&path, lines.concat()).unwrap();

    let cut = verify(&path).unwrap();

    assert_eq!(cut.records, 4);
    assert_ne!(cut.last_hash, full.last_hash);
}

#[test]
fn test_verify_lines_2_and_3_swapped_reports_chain_broken_at_line_2() {
    let (_dir, path) = write_log(5);
    let mut lines = lines(&path);
    lines.swap(1, 2);
    std::fs::write(&path, lines.concat()).unwrap();

    let err = verify(&path).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::ChainBroken {
                line: 2,
                seq: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_verify_copied_line_inserted_reports_chain_broken() {
    let (_dir, path) = write_log(5);
    let mut lines = lines(&path);
    let copy = lines[1].clone();
    lines.insert(2, copy);
    std::fs::write(&path, lines.concat()).unwrap();

    let err = verify(&path).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::ChainBroken {
                line: 3,
                seq: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_verify_well_forged_line_inserted_reports_chain_broken_after_it() {
    // The forger chains a new record 3 to record 2 with a correct hash;
    // the original record 3 then no longer chains.
    let (_dir, path) = write_log(5);
    let mut lines = lines(&path);
    let mut forged: AuditRecord = serde_json::from_slice(&lines[1]).unwrap();
    forged.prev = forged.hash.clone();
    forged.seq = 3;
    forged.detail = "forged".to_owned();
    let mut forged_line = seal(&mut forged);
    forged_line.push(b'\n');
    lines.insert(2, forged_line);
    std::fs::write(&path, lines.concat()).unwrap();

    let err = verify(&path).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::ChainBroken {
                line: 4,
                seq: 3,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_verify_whitespace_added_reports_not_canonical() {
    let mut data = log_bytes(3);
    let second_line = find(&data, b"\n{\"seq\":2") + 1;
    data.insert(second_line + 1, b' ');

    let err = verify_bytes(&data).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::NotCanonical {
                line: 2,
                seq: 2,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_verify_unknown_field_reports_malformed() {
    let data = log_bytes(2);
    let data = String::from_utf8(data)
        .unwrap()
        .replacen("\"notes\"", "\"nopes\"", 1);

    let err = verify_bytes(data.as_bytes()).unwrap_err();

    assert!(
        matches!(err, VerifyError::Malformed { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn test_verify_torn_last_line_reports_torn_line() {
    let mut data = log_bytes(3);
    let len = data.len() as u64;
    data.extend_from_slice(b"{\"seq\":4,\"ti");

    let err = verify_bytes(&data).unwrap_err();

    assert!(
        matches!(err, VerifyError::TornLine { line: 4, offset, .. } if offset == len),
        "{err:?}"
    );
}

#[test]
fn test_open_torn_last_line_truncates_and_appends() {
    let (_dir, path) = write_log(3);
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(b"{\"seq\":4,\"ti");
    std::fs::write(&path, &data).unwrap();

    let mut writer = AuditWriter::open(&path).unwrap();
    let rec = writer.append(record(4, "ok")).unwrap();
    drop(writer);

    assert_eq!(rec.seq, 4);
    assert_eq!(verify(&path).unwrap().records, 4);
}

#[test]
fn test_open_edited_log_is_refused_as_invalid() {
    let (_dir, path) = write_log(3);
    let mut lines = lines(&path);
    lines.swap(0, 1);
    std::fs::write(&path, lines.concat()).unwrap();

    let err = AuditWriter::open(&path).unwrap_err();

    assert!(
        matches!(err, AuditError::Invalid { line: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("move it aside"), "{err}");
}

#[test]
fn test_open_log_held_by_another_writer_is_locked() {
    let (_dir, path) = write_log(1);
    let _first = AuditWriter::open(&path).unwrap();

    let err = AuditWriter::open(&path).unwrap_err();

    assert!(matches!(err, AuditError::Locked { .. }), "{err:?}");
}

#[test]
fn test_open_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();

    let err = AuditWriter::open(dir.path()).unwrap_err();

    assert!(
        matches!(err, AuditError::Open { .. } | AuditError::NotAFile { .. }),
        "{err:?}"
    );
}

#[test]
fn test_append_unknown_verdict_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = AuditWriter::open(&dir.path().join("a.jsonl")).unwrap();

    let err = writer.append(record(1, "Crashed")).unwrap_err();

    assert!(matches!(err, AuditError::UnknownVerdict { .. }), "{err:?}");
    assert_eq!(writer.next_seq(), 1);
}

#[test]
fn test_append_all_three_records_chain_like_three_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = AuditWriter::open(&path).unwrap();
    let mut recs: Vec<AuditRecord> = (1..=3).map(|i| record(i, "ok")).collect();

    writer.append_all(&mut recs).unwrap();

    assert_eq!(recs[2].seq, 3);
    assert_eq!(recs[1].prev, recs[0].hash);
    assert_eq!(writer.last_hash(), recs[2].hash);
    assert_eq!(writer.next_seq(), 4);
    assert_eq!(verify(&path).unwrap().records, 3);
}

#[test]
fn test_append_all_with_one_oversized_record_writes_none_of_them() {
    let (_dir, path) = write_log(1);
    let mut writer = AuditWriter::open(&path).unwrap();
    let mut big = record(3, "plugin_error");
    big.detail = "x".repeat(MAX_LINE);
    let mut recs = vec![record(2, "ok"), big];

    let err = writer.append_all(&mut recs).unwrap_err();

    assert!(matches!(err, AuditError::RecordTooLarge { .. }), "{err:?}");
    assert_eq!(writer.next_seq(), 2);
    writer.append(record(2, "ok")).unwrap();
    assert_eq!(verify(&path).unwrap().records, 2);
}

#[test]
fn test_append_all_empty_writes_nothing() {
    let (_dir, path) = write_log(2);
    let before = std::fs::read(&path).unwrap();
    let mut writer = AuditWriter::open(&path).unwrap();

    writer.append_all(&mut []).unwrap();
    writer.sync().unwrap();

    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(writer.next_seq(), 3);
}

#[test]
fn test_append_oversized_record_is_refused_and_log_stays_valid() {
    let (_dir, path) = write_log(1);
    let mut writer = AuditWriter::open(&path).unwrap();
    let mut big = record(2, "plugin_error");
    big.detail = "x".repeat(MAX_LINE);

    let err = writer.append(big).unwrap_err();
    let next = writer.append(record(2, "ok")).unwrap();
    drop(writer);

    assert!(matches!(err, AuditError::RecordTooLarge { .. }), "{err:?}");
    assert_eq!(next.seq, 2);
    assert_eq!(verify(&path).unwrap().records, 2);
}

#[test]
fn test_append_with_sync_writes_durable_valid_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = AuditWriter::open(&path).unwrap();
    writer.set_sync(true);

    writer.append(record(1, "ok")).unwrap();
    writer.append(record(2, "ok")).unwrap();
    drop(writer);

    assert_eq!(verify(&path).unwrap().records, 2);
}

#[test]
fn test_recorded_inputs_mixed_verdicts_returns_final_inputs_with_sha() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = AuditWriter::open(&path).unwrap();
    writer.append(record(1, "ok")).unwrap();
    writer.append(record(2, "cancelled")).unwrap();
    writer.append(record(3, "violation")).unwrap();
    let mut unreadable = record(4, "input_error");
    unreadable.input_sha256 = None;
    writer.append(unreadable).unwrap();
    drop(writer);

    let inputs = recorded_inputs(&path).unwrap();

    let expected: HashSet<_> = [1u64, 3]
        .iter()
        .map(|n| (format!("in/{n}.png").into_bytes(), format!("{n:064x}")))
        .collect();
    assert_eq!(inputs, expected);
}

#[test]
fn test_names_differing_only_in_invalid_utf8_get_distinct_exact_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = AuditWriter::open(&path).unwrap();
    for (n, name) in [
        (1, &b"in/bad\xff\xfename.txt"[..]),
        (2, b"in/bad\xff\xfdname.txt"),
    ] {
        let mut rec = record(n, "ok");
        rec.set_input(name);
        rec.set_output(&[b"out/".as_slice(), &name[3..]].concat());
        let written = writer.append(rec).unwrap();
        assert_eq!(
            written.input,
            format!("in/bad\\xff\\xf{}name.txt", ["e", "d"][n as usize - 1])
        );
    }
    writer.append(record(3, "ok")).unwrap();
    drop(writer);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(r#""input_bytes":"696e2f626164fffe6e616d652e747874""#),
        "{text}"
    );
    assert_eq!(
        text.matches("input_bytes").count(),
        2,
        "UTF-8 names have none"
    );
    assert_eq!(verify(&path).unwrap().records, 3);
    let inputs = recorded_inputs(&path).unwrap();
    assert!(inputs.contains(&(b"in/bad\xff\xfename.txt".to_vec(), format!("{:064x}", 1))));
    assert!(inputs.contains(&(b"in/bad\xff\xfdname.txt".to_vec(), format!("{:064x}", 2))));
    assert!(inputs.contains(&(b"in/3.png".to_vec(), format!("{:064x}", 3))));
}

#[test]
fn test_verify_bytes_field_that_does_not_match_its_name_is_malformed() {
    for (input, bytes) in [
        ("in/x", "696e2f78"),              // UTF-8: no bytes field
        ("in/bad\\xff", "696e2f626164fe"), // another name
        ("in/bad\\xff", "696E2F626164FF"), // not lowercase
        ("in/bad\\xff", "zz"),
    ] {
        let mut rec = record(1, "ok");
        rec.input = input.to_owned();
        rec.input_bytes = Some(bytes.to_owned());
        rec.prev = GENESIS.to_owned();
        let mut line = seal(&mut rec);
        line.push(b'\n');
        let err = verify_bytes(&line).unwrap_err();
        assert!(
            matches!(err, VerifyError::Malformed { .. }),
            "{input} {bytes}: {err}"
        );
    }
}

#[test]
fn test_recorded_inputs_torn_last_line_ignores_it() {
    let (_dir, path) = write_log(2);
    let mut data = std::fs::read(&path).unwrap();
    data.extend_from_slice(b"{\"seq\":3");
    std::fs::write(&path, &data).unwrap();

    let inputs = recorded_inputs(&path).unwrap();

    assert_eq!(inputs.len(), 2);
}

#[test]
fn test_recorded_inputs_missing_file_returns_empty() {
    let dir = tempfile::tempdir().unwrap();

    let inputs = recorded_inputs(&dir.path().join("none.jsonl")).unwrap();

    assert!(inputs.is_empty());
}

#[test]
fn test_recorded_inputs_edited_log_is_refused() {
    let (_dir, path) = write_log(3);
    let mut lines = lines(&path);
    lines.remove(0);
    std::fs::write(&path, lines.concat()).unwrap();

    let err = recorded_inputs(&path).unwrap_err();

    assert!(
        matches!(err, AuditError::Invalid { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn test_verify_bytes_garbage_is_malformed() {
    let garbage: [&[u8]; 6] = [
        b"\n",
        b"{}\n",
        b"null\n",
        b"\xff\xfe\x00garbage\n",
        b"{\"seq\":1}\n",
        b"[1,2,3]\nmore\n",
    ];

    let results: Vec<_> = garbage.iter().map(|g| verify_bytes(g)).collect();

    for (g, result) in garbage.iter().zip(results) {
        assert!(
            matches!(result, Err(VerifyError::Malformed { line: 1, .. })),
            "{g:?}: {result:?}"
        );
    }
}

#[test]
fn test_verify_bytes_huge_line_is_malformed_not_torn() {
    let mut data = vec![b'a'; 3 * MAX_LINE];

    let unterminated = verify_bytes(&data).unwrap_err();
    data.push(b'\n');
    let terminated = verify_bytes(&data).unwrap_err();

    assert!(
        matches!(unterminated, VerifyError::Malformed { line: 1, .. }),
        "{unterminated:?}"
    );
    assert!(
        matches!(terminated, VerifyError::Malformed { line: 1, .. }),
        "{terminated:?}"
    );
}

#[test]
fn test_verify_bytes_long_unknown_key_keeps_reason_short() {
    let data = format!("{{\"{}\":1}}\n", "k".repeat(10_000));

    let err = verify_bytes(data.as_bytes()).unwrap_err();

    assert!(err.to_string().len() < 2 * MAX_REASON + 200, "{err}");
}

/// Every single-byte change of a valid log is detected: the verifier
/// compares bytes as well as hashes, so not even whitespace slips by.
#[test]
fn test_verify_bytes_random_single_byte_mutations_all_detected() {
    let original = log_bytes(4);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        // Knuth's MMIX LCG: deterministic, no crate needed.
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut undetected = Vec::new();
    for _ in 0..3000 {
        let at = next() as usize % original.len();
        let byte = next() as u8;
        if byte == original[at] {
            continue;
        }
        let mut data = original.clone();
        data[at] = byte;
        if verify_bytes(&data).is_ok() {
            undetected.push((at, byte));
        }
    }
    assert!(
        undetected.is_empty(),
        "undetected mutations: {undetected:?}"
    );
}

fn shard_start() -> JobRecord {
    JobRecord {
        event: SHARD_START.to_owned(),
        job: Job {
            shards: 2,
            roots: vec![Root::new(b"in/bad\xff")],
            routes: Vec::new(),
        },
        shard: Some(1),
        ..JobRecord::default()
    }
}

#[test]
fn test_job_records_chain_with_input_records_and_resume_skips_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut writer = AuditWriter::open(&path).unwrap();
    writer.append_job(shard_start()).unwrap();
    writer.append(record(2, "ok")).unwrap();
    drop(writer);

    let first = first_record(&path).unwrap();

    assert_eq!(verify(&path).unwrap().records, 2);
    assert_eq!(recorded_inputs(&path).unwrap().len(), 1);
    let Some(Line::Job(head)) = first else {
        panic!("{first:?}");
    };
    assert_eq!(head.job.roots[0].bytes().unwrap(), b"in/bad\xff");
    assert_eq!(head.job.roots[0].path, "in/bad\\xff");
}

#[test]
fn test_verify_malformed_job_record_names_its_own_problem() {
    let mut rec = shard_start();
    rec.prev = GENESIS.to_owned();
    let line = String::from_utf8(seal(&mut rec)).unwrap();
    let line = line.replacen("\"shards\"", "\"shardz\"", 1) + "\n";

    let err = verify_bytes(line.as_bytes()).unwrap_err();

    assert!(err.to_string().contains("shardz"), "{err}");
}

#[test]
fn test_push_verified_gives_the_bytes_of_seal() {
    let mut rec = record(7, "ok");
    rec.set_input(b"in/bad\xff\"name\\");
    rec.set_output(b"out/x");
    rec.notes = vec!["weakened: \"quotes\",\"prev\":".to_owned()];
    rec.set_position(41, &"9".repeat(64));
    let original = seal(&mut rec);
    assert_eq!(relink(&original, &"9".repeat(64)), Some(rec.hash.as_str()));
    assert_eq!(relink(&original, &"8".repeat(64)), None);
    let mut by_parse = ChainWriter::new(Vec::new());
    let mut by_bytes = ChainWriter::new(Vec::new());
    by_parse.push(&mut Line::Input(record(1, "ok"))).unwrap();
    by_bytes.push(&mut Line::Input(record(1, "ok"))).unwrap();

    by_parse.push(&mut Line::Input(rec)).unwrap();
    by_bytes.push_verified(&original).unwrap().unwrap();

    let (parsed, summary) = by_parse.finish();
    let (bytes, same) = by_bytes.finish();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&parsed)
    );
    assert_eq!(
        (summary.clone(), verify_bytes(&bytes).unwrap()),
        (same, summary)
    );
}

#[test]
fn test_push_verified_refuses_lines_not_shaped_as_records() {
    let mut chain = ChainWriter::new(Vec::new());
    for line in [
        &b""[..],
        b"{}",
        b"{\"seq\":,\"prev\":\"",
        b"{\"seq\":1x,",
        &[b'{'; 200],
    ] {
        assert!(chain.push_verified(line).is_none(), "{line:?}");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}
