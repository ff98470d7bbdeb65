use super::*;
use crate::audit::{AuditRecord, Root};

fn job(shards: u32) -> Job {
    Job {
        shards,
        roots: vec![Root::new(b"in")],
        routes: Vec::new(),
    }
}

fn begin(path: &Path, shard: Option<Shard>, job: &Job) -> Result<(), LogError> {
    let mut log = AuditWriter::open(path).unwrap();
    begin_log(&mut log, path, shard, job)
}

#[test]
fn test_begin_log_new_shard_log_starts_with_its_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let shard = Shard::new(1, 3).ok();

    begin(&path, shard, &job(3)).unwrap();
    begin(&path, shard, &job(3)).unwrap();

    let Some(Line::Job(first)) = audit::first_record(&path).unwrap() else {
        panic!("no shard_start record");
    };
    assert_eq!(
        (first.event.as_str(), first.shard),
        (audit::SHARD_START, Some(1))
    );
    assert_eq!(audit::verify(&path).unwrap().records, 1);
}

#[test]
fn test_begin_log_refuses_other_shard_other_job_and_unsharded_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    begin(&path, Shard::new(1, 3).ok(), &job(3)).unwrap();

    let other_shard = begin(&path, Shard::new(2, 3).ok(), &job(3)).unwrap_err();
    let other_job = begin(&path, Shard::new(1, 4).ok(), &job(4)).unwrap_err();
    let unsharded = begin(&path, None, &job(1)).unwrap_err();

    assert!(
        matches!(other_shard, LogError::OtherShard { .. }),
        "{other_shard}"
    );
    assert!(
        matches!(other_job, LogError::OtherJob { .. }),
        "{other_job}"
    );
    assert!(
        matches!(unsharded, LogError::ShardLog { .. }),
        "{unsharded}"
    );
    assert!(unsharded.to_string().contains("--shard 1/3"), "{unsharded}");
}

#[test]
fn test_begin_log_sharded_run_refuses_unsharded_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let mut log = AuditWriter::open(&path).unwrap();
    let mut rec = AuditRecord {
        verdict: "ok".to_owned(),
        ..AuditRecord::default()
    };
    rec.set_input(b"in/x");
    log.append(rec).unwrap();
    drop(log);

    let err = begin(&path, Shard::new(0, 2).ok(), &job(2)).unwrap_err();

    assert!(matches!(err, LogError::NotAShardLog { .. }), "{err}");
}
