//! What `--resume` skips, exact names, the verifier on arbitrary bytes,
//! records about the batch, relinking verified lines.

use super::*;

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
