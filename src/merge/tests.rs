use super::*;
use crate::audit::{AuditWriter, Root, Route};
use crate::shard::Shard;

const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Inputs `in/f0` … under `dir`, written to disk, and the job over them.
struct Batch {
    dir: tempfile::TempDir,
    root: PathBuf,
    inputs: Vec<PathBuf>,
}

impl Batch {
    fn new(count: usize) -> Batch {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        std::fs::create_dir(&root).unwrap();
        let inputs = (0..count)
            .map(|i| {
                let p = root.join(format!("f{i}"));
                std::fs::write(&p, format!("{i}")).unwrap();
                p
            })
            .collect();
        Batch { dir, root, inputs }
    }

    fn job(&self, shards: u32) -> Job {
        Job {
            shards,
            roots: vec![Root::new(self.root.as_os_str().as_bytes())],
            routes: vec![Route {
                plugin: "pw-probe".to_owned(),
                plugin_sha256: "ab".repeat(32),
                policy: "strict".to_owned(),
                policy_sha256: "cd".repeat(32),
            }],
        }
    }

    fn record(&self, input: &Path) -> AuditRecord {
        let mut rec = AuditRecord {
            input_sha256: Some(SHA_A.to_owned()),
            plugin: "pw-probe".to_owned(),
            plugin_sha256: "ab".repeat(32),
            policy: "strict".to_owned(),
            policy_sha256: "cd".repeat(32),
            verdict: "ok".to_owned(),
            attempt: 1,
            ..AuditRecord::default()
        };
        rec.set_input(input.as_os_str().as_bytes());
        rec
    }

    /// Shard `index` of `n`'s log as a run writes it: its start, a
    /// record per input it owns, its end.
    fn shard_log(&self, index: u32, n: u32) -> PathBuf {
        let path = self.dir.path().join(format!("shard-{index}-of-{n}.jsonl"));
        let shard = Shard::new(index, n).unwrap();
        let job = self.job(n);
        let mut log = AuditWriter::open(&path).unwrap();
        shard::begin_log(&mut log, &path, Some(shard), &job).unwrap();
        let roots = [self.root.clone()];
        let mine: Vec<_> = self
            .inputs
            .iter()
            .filter(|p| shard.owns(&roots, p))
            .collect();
        for p in &mine {
            log.append(self.record(p)).unwrap();
        }
        shard::end_log(&mut log, shard, &job, mine.len() as u64).unwrap();
        path
    }

    /// The first input that shard `index` of `n` owns.
    fn owned_by(&self, index: u32, n: u32) -> &Path {
        let roots = [self.root.clone()];
        let shard = Shard::new(index, n).unwrap();
        self.inputs.iter().find(|p| shard.owns(&roots, p)).unwrap()
    }

    fn logs(&self, n: u32) -> Vec<PathBuf> {
        (0..n).map(|i| self.shard_log(i, n)).collect()
    }
}

fn origins(paths: &[PathBuf]) -> Vec<Origin<'_>> {
    paths.iter().map(|p| Origin::File(p)).collect()
}

fn merged_bytes(paths: &[PathBuf], inputs: Option<&[PathBuf]>) -> (Report, Vec<u8>) {
    let report = check(&origins(paths), inputs).unwrap();
    let (bytes, _) = write_merged(&origins(paths), &report, Vec::new()).unwrap();
    (report, bytes)
}

/// Appends `line` (as bytes, newline added) to the log at `path`.
fn append_raw(path: &Path, line: &[u8]) {
    let mut data = std::fs::read(path).unwrap();
    data.extend_from_slice(line);
    std::fs::write(path, data).unwrap();
}

#[test]
fn test_merge_three_shards_proves_exactly_once_and_verifies() {
    let b = Batch::new(60);
    let logs = b.logs(3);
    let roots = [b.root.clone()];

    let (report, bytes) = merged_bytes(&logs, Some(&roots));

    assert!(report.proves_exactly_once(), "{report:?}");
    assert_eq!(report.done(), 60);
    let summary = audit::verify_bytes(&bytes).unwrap();
    assert_eq!(summary.records, 61);
    let head: JobRecord =
        serde_json::from_slice(bytes.split(|&c| c == b'\n').next().unwrap()).unwrap();
    for (source, log) in head.sources.iter().zip(&logs) {
        let verified = audit::verify(log).unwrap();
        assert_eq!(
            (source.records, &source.last_hash),
            (verified.records, &verified.last_hash)
        );
    }
}

#[test]
fn test_merge_shard_resumed_elsewhere_with_plugin_at_another_path_is_finished() {
    let b = Batch::new(10);
    let logs = b.logs(1);
    let mut elsewhere = b.job(1);
    elsewhere.routes[0].plugin = "/opt/other/pw-probe".to_owned();
    let mut log = AuditWriter::open(&logs[0]).unwrap();
    shard::end_log(&mut log, Shard::new(0, 1).unwrap(), &elsewhere, 10).unwrap();
    drop(log);

    let report = check(&origins(&logs), None).unwrap();

    assert!(report.proves_exactly_once(), "{report:?}");
}

#[test]
fn test_merge_absent_shard_is_reported_and_proves_nothing() {
    let b = Batch::new(30);
    let mut logs = b.logs(3);
    logs.remove(1);

    let report = check(&origins(&logs), Some(std::slice::from_ref(&b.root))).unwrap();

    assert!(!report.proves_exactly_once());
    assert_eq!((report.absent, report.absent_listed.clone()), (1, vec![1]));
    let listing = report.listing.as_ref().unwrap();
    assert_eq!(listing.missing_count(), listing.shards[&1].found);
    assert!(listing.missing.iter().all(|(s, _)| *s == 1));
}

#[test]
fn test_merge_log_without_shard_end_is_unfinished() {
    let b = Batch::new(20);
    let logs = b.logs(2);
    let mut lines: Vec<&str> = Vec::new();
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    lines.extend(text.lines());
    lines.pop();
    std::fs::write(
        &logs[0],
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();

    let report = check(&origins(&logs), None).unwrap();

    assert_eq!(report.unfinished(), vec![0]);
    assert!(!report.proves_exactly_once());
}

#[test]
fn test_merge_input_judged_twice_is_a_duplicate() {
    let b = Batch::new(20);
    let logs = b.logs(2);
    let again = b.owned_by(1, 2);
    let mut log = AuditWriter::open(&logs[1]).unwrap();
    log.append(b.record(again)).unwrap();
    drop(log);

    let report = check(&origins(&logs), None).unwrap();

    assert_eq!(report.duplicates(), 1);
    assert_eq!(report.shards[1].duplicate_names, vec![escape::name(again)]);
    assert!(!report.proves_exactly_once());
}

#[test]
fn test_merge_edited_byte_is_refused_naming_the_file() {
    let b = Batch::new(20);
    let logs = b.logs(2);
    let text = std::fs::read_to_string(&logs[1]).unwrap();
    std::fs::write(
        &logs[1],
        text.replacen("\"verdict\":\"ok\"", "\"verdict\":\"no\"", 1),
    )
    .unwrap();

    let err = check(&origins(&logs), None).unwrap_err();

    assert!(
        matches!(
            err,
            MergeError::Verify(VerifyError::HashMismatch { line: 2, .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("shard-1-of-2"), "{err}");
}

#[test]
fn test_merge_logs_of_two_jobs_are_refused() {
    let b = Batch::new(20);
    let mut logs = b.logs(2);
    logs[1] = b.shard_log(1, 3);

    let err = check(&origins(&logs), None).unwrap_err();

    assert!(matches!(err, MergeError::OtherJob { .. }), "{err:?}");
    assert!(err.to_string().contains("3 shards, not 2"), "{err}");
}

#[test]
fn test_merge_other_plugin_is_another_job() {
    let b = Batch::new(10);
    let logs = b.logs(2);
    let other = b.dir.path().join("other.jsonl");
    let mut job = b.job(2);
    job.routes[0].plugin_sha256 = "ef".repeat(32);
    let mut log = AuditWriter::open(&other).unwrap();
    shard::begin_log(&mut log, &other, Some(Shard::new(1, 2).unwrap()), &job).unwrap();
    drop(log);

    let err = check(&origins(&[logs[0].clone(), other]), None).unwrap_err();

    assert!(matches!(err, MergeError::OtherJob { .. }), "{err:?}");
}

#[test]
fn test_merge_two_logs_of_one_shard_are_refused() {
    let b = Batch::new(10);
    let logs = b.logs(2);
    let copy = b.dir.path().join("copy.jsonl");
    std::fs::copy(&logs[0], &copy).unwrap();

    let err = check(&origins(&[logs[0].clone(), logs[1].clone(), copy]), None).unwrap_err();

    assert!(
        matches!(err, MergeError::SameShard { shard: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn test_merge_index_beyond_count_is_refused() {
    let b = Batch::new(4);
    let path = b.dir.path().join("forged.jsonl");
    let mut log = AuditWriter::open(&path).unwrap();
    log.append_job(JobRecord {
        event: audit::SHARD_START.to_owned(),
        job: b.job(4),
        shard: Some(4),
        ..JobRecord::default()
    })
    .unwrap();
    drop(log);

    let err = check(&origins(&[path]), None).unwrap_err();

    assert!(
        matches!(
            err,
            MergeError::IndexOutOfRange {
                shard: 4,
                shards: 4,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_merge_record_of_another_shard_is_refused() {
    let b = Batch::new(20);
    let logs = b.logs(2);
    let theirs = b.owned_by(1, 2);
    let mut log = AuditWriter::open(&logs[0]).unwrap();
    log.append(b.record(theirs)).unwrap();
    drop(log);

    let err = check(&origins(&logs), None).unwrap_err();

    assert!(
        matches!(
            err,
            MergeError::WrongShard {
                owner: 1,
                shard: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_merge_record_of_another_plugin_is_refused() {
    let b = Batch::new(20);
    let logs = b.logs(1);
    let mut rec = b.record(&b.inputs[0]);
    rec.plugin_sha256 = "ef".repeat(32);
    let mut log = AuditWriter::open(&logs[0]).unwrap();
    log.append(rec).unwrap();
    drop(log);

    let err = check(&origins(&logs), None).unwrap_err();

    assert!(matches!(err, MergeError::ForeignRoute { .. }), "{err:?}");
}

#[test]
fn test_merge_refuses_torn_line_that_status_accepts() {
    let b = Batch::new(10);
    let logs = b.logs(1);
    append_raw(&logs[0], b"{\"seq\":99,\"ti");

    let err = check(&origins(&logs), None).unwrap_err();
    let status = status(&origins(&logs), None).unwrap();

    assert!(
        matches!(err, MergeError::Verify(VerifyError::TornLine { .. })),
        "{err:?}"
    );
    assert!(status.rows[0].torn);
    assert_eq!(status.rows[0].done, 10);
}

#[test]
fn test_merged_log_with_last_record_removed_fails_verify() {
    let b = Batch::new(10);
    let (_, bytes) = merged_bytes(&b.logs(2), None);
    let cut = &bytes[..bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&c| c == b'\n')
        .unwrap()
        + 1];

    let err = audit::verify_bytes(cut).unwrap_err();

    assert!(
        matches!(
            err,
            VerifyError::Incomplete {
                expected: 11,
                found: 10,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn test_merge_log_changed_after_checking_is_refused() {
    let b = Batch::new(10);
    let logs = b.logs(2);
    let report = check(&origins(&logs), None).unwrap();
    let text = std::fs::read_to_string(&logs[1]).unwrap();
    std::fs::write(&logs[1], text.replacen("\"attempt\":1", "\"attempt\":2", 1)).unwrap();

    let err = write_merged(&origins(&logs), &report, Vec::new()).unwrap_err();

    assert!(matches!(err, MergeError::Changed { .. }), "{err:?}");
}

#[test]
fn test_merged_log_is_not_a_shard_log() {
    let b = Batch::new(10);
    let (_, bytes) = merged_bytes(&b.logs(2), None);
    let name = PathBuf::from("merged.jsonl");

    let err = check(&[Origin::Bytes(&name, &bytes)], None).unwrap_err();

    assert!(matches!(err, MergeError::NotAShardLog { .. }), "{err:?}");
}

#[test]
fn test_merge_writes_file_once_and_refuses_to_overwrite() {
    let b = Batch::new(10);
    let logs = b.logs(2);
    let out = b.dir.path().join("merged.jsonl");

    let (_, wrote) = merge(&origins(&logs), None, &out).unwrap();
    let wrote = wrote.unwrap();
    let again = merge(&origins(&logs), None, &out).unwrap_err();

    assert_eq!(audit::verify(&out).unwrap(), wrote);
    assert_eq!(wrote.records, 11);
    assert!(matches!(again, MergeError::Exists { .. }), "{again:?}");
}

#[test]
fn test_status_counts_remaining_from_listing() {
    let b = Batch::new(30);
    let logs = b.logs(3);
    let mut lines: Vec<String> = std::fs::read_to_string(&logs[2])
        .unwrap()
        .lines()
        .map(|l| format!("{l}\n"))
        .collect();
    let owned = lines.len() as u64 - 2;
    lines.truncate(2);
    std::fs::write(&logs[2], lines.concat()).unwrap();

    let status = status(&origins(&logs), Some(std::slice::from_ref(&b.root))).unwrap();

    let row = &status.rows[2];
    assert_eq!(
        (row.done, row.remaining(), row.finished),
        (1, Some(owned - 1), false)
    );
    assert!(status.rows[..2]
        .iter()
        .all(|r| r.finished && r.remaining() == Some(0)));
}
