use super::*;

fn stager(root: &Path) -> Stager {
    Stager {
        root: root.to_path_buf(),
        abs: root.to_path_buf(),
        made: HashSet::new(),
        durability: Durability::Group,
        unnamed: unnamed_files_work(root),
    }
}

fn job(n: u32, output: Option<Staged>) -> Job {
    let mut record = AuditRecord {
        verdict: "ok".into(),
        output_sha256: Some("ab".repeat(32)),
        ..AuditRecord::default()
    };
    record.set_input(format!("in/{n}").as_bytes());
    if let Some(s) = &output {
        record.set_output(s.target().as_os_str().as_bytes());
    }
    Job {
        name: format!("in/{n}"),
        record: Some(record),
        output,
    }
}

#[test]
fn test_stager_new_directories_are_made_once_and_their_parents_synced() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stager(dir.path());
    let (mut first, mut second) = (BTreeSet::new(), BTreeSet::new());

    s.bytes(Path::new("a/b/x"), b"x", &mut first).unwrap();
    s.bytes(Path::new("a/b/y"), b"y", &mut second).unwrap();

    let root = dir.path();
    let expected: BTreeSet<PathBuf> = [root.to_path_buf(), root.join("a"), root.join("a/b")].into();
    assert_eq!(first, expected);
    assert_eq!(second, [root.join("a/b")].into());
}

#[test]
fn test_group_commit_closes_at_size_and_places_outputs_before_records() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log) = (dir.path().join("out"), dir.path().join("a.jsonl"));
    std::fs::create_dir(&out).unwrap();
    let audit = AuditWriter::open(&log).unwrap();
    let limits = Limits {
        size: 2,
        time: Duration::from_secs(3600),
    };
    let mut commit =
        GroupCommit::start(Some(&out), Some(audit), Durability::Group, limits).unwrap();

    for n in 0..2 {
        let staged = commit
            .stage(Path::new(&format!("o{n}")), Output::Bytes(b"data"))
            .unwrap();
        commit.add(job(n, Some(staged)));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(&log).unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }

    assert_eq!(std::fs::read(out.join("o1")).unwrap(), b"data");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
    let (audit, reports) = commit.finish();
    assert_eq!(audit.unwrap().next_seq(), 3);
    assert!(reports.is_empty());
}

#[test]
fn test_output_that_cannot_be_placed_is_recorded_cancelled_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log) = (dir.path().join("out"), dir.path().join("a.jsonl"));
    std::fs::create_dir(&out).unwrap();
    let audit = AuditWriter::open(&log).unwrap();
    let limits = Limits {
        size: 10,
        time: Duration::from_secs(3600),
    };
    let mut commit =
        GroupCommit::start(Some(&out), Some(audit), Durability::Group, limits).unwrap();
    let staged = commit
        .stage(Path::new("taken"), Output::Bytes(b"data"))
        .unwrap();
    // A directory now holds the final name: the output cannot go there.
    std::fs::create_dir(out.join("taken")).unwrap();
    std::fs::write(out.join("taken").join("keep"), b"").unwrap();

    commit.add(job(1, Some(staged)));
    let (_, reports) = commit.finish();

    let rec: AuditRecord =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(rec.verdict, "cancelled");
    assert!(
        rec.detail.contains("cannot move the output into place"),
        "{}",
        rec.detail
    );
    assert_eq!(rec.output, None);
    assert!(matches!(&reports[..], [Report::Cancelled { .. }]));
}
