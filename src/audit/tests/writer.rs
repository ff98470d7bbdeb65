//! Appending: a torn tail cut away, an edited or locked log refused,
//! groups of records, oversized and unknown records, sync.

use super::*;

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
