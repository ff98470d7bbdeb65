use super::*;

fn uses(list: &[(&str, Access)]) -> BTreeSet<PathUse> {
    list.iter()
        .map(|(p, a)| PathUse {
            path: PathBuf::from(p),
            access: *a,
        })
        .collect()
}

#[test]
fn test_tree_grant_takes_the_package_directory() {
    let g = |p: &str| tree_grant(Path::new(p));
    assert_eq!(
        g("/usr/share/poppler/cMap/Adobe/x"),
        Some("/usr/share/poppler".into())
    );
    assert_eq!(
        g("/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so"),
        Some("/usr/lib/x86_64-linux-gnu/gconv".into())
    );
    assert_eq!(g("/etc/fonts/fonts.conf"), Some("/etc/fonts".into()));
    assert_eq!(g("/etc/passwd"), None);
    assert_eq!(g("/home/u/x"), None);
}

#[test]
fn test_fold_collapses_trees_drops_missing_and_known() {
    let known = Known {
        read: vec!["/usr/lib/x86_64-linux-gnu".into()],
        ..Known::default()
    };
    let l = fold(
        &uses(&[
            ("/usr/share/mime/types", Access::Read),
            ("/usr/share/mime/globs2", Access::Read),
            (
                "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules",
                Access::Read,
            ),
            ("/no/such/file", Access::Stat),
            ("/tmp/scratch", Access::Write),
            ("/proc/self/status", Access::Read),
            ("/usr/bin/true", Access::Exec),
        ]),
        &known,
    );
    assert_eq!(l.read, vec![PathBuf::from("/usr/share/mime")]);
    assert_eq!(
        l.exec,
        vec![std::fs::canonicalize("/usr/bin/true").unwrap()]
    );
    assert!(l.tmp && l.proc);
    assert_eq!(l.missing, 1);
    assert_eq!(l.summary[0], "reads /usr/share/mime (2 files)");
}

#[test]
fn test_fold_grants_a_directory_of_many_files_and_single_files_alone() {
    // Not under /tmp, which folds into the private /tmp.
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    let real = std::fs::canonicalize(dir.path()).unwrap();
    let many = real.join("many");
    std::fs::create_dir(&many).unwrap();
    let mut list = Vec::new();
    for n in ["a", "b", "c"] {
        std::fs::write(many.join(n), n).unwrap();
        list.push((many.join(n), Access::Read));
    }
    std::fs::write(real.join("one"), "1").unwrap();
    list.push((real.join("one"), Access::Read));
    let set = list
        .into_iter()
        .map(|(path, access)| PathUse { path, access })
        .collect();
    let l = fold(&set, &Known::default());
    assert_eq!(l.read, vec![many, real.join("one")]);
}

#[test]
fn test_fold_never_grants_a_tree_root_for_its_files() {
    let l = fold(
        &uses(&[
            ("/etc/passwd", Access::Read),
            ("/etc/group", Access::Read),
            ("/etc/nsswitch.conf", Access::Read),
            ("/etc/hostname", Access::Read),
        ]),
        &Known::default(),
    );
    assert!(!l.read.contains(&PathBuf::from("/etc")), "{:?}", l.read);
    assert!(
        l.read.contains(&PathBuf::from("/etc/passwd")),
        "{:?}",
        l.read
    );
}

#[test]
fn test_fold_reports_writes_outside_grants() {
    let l = fold(&uses(&[("/etc/newfile", Access::Write)]), &Known::default());
    assert_eq!(l.refused_writes, vec![PathBuf::from("/etc/newfile")]);
    assert!(l.read.is_empty());
}

#[test]
fn test_read_string_stops_at_nul_and_bounds() {
    let text = b"/usr/share/x\0garbage";
    let pid = std::process::id();
    let got = read_string(pid, text.as_ptr() as u64).unwrap();
    assert_eq!(got, b"/usr/share/x");
    assert_eq!(read_string(pid, 0), None);
    let long = vec![b'a'; PATH_MAX + 10];
    assert_eq!(read_string(pid, long.as_ptr() as u64), None);
}

#[test]
fn test_open_access_from_flags() {
    assert_eq!(open_access(libc::O_RDONLY as u64), Access::Read);
    assert_eq!(
        open_access((libc::O_WRONLY | libc::O_CREAT) as u64),
        Access::Write
    );
    assert_eq!(
        open_access((libc::O_RDONLY | libc::O_CREAT) as u64),
        Access::Write
    );
}
