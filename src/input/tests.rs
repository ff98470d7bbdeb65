use super::*;

fn named(path: &Path) -> Entry {
    Entry {
        path: path.to_path_buf(),
        rel: path.file_name().map(PathBuf::from).unwrap_or_default(),
        walked: false,
        below_root: PathBuf::new(),
        root: path.to_path_buf(),
    }
}

#[test]
fn test_open_dev_zero_is_refused_as_a_device() {
    let err = open(&named(Path::new("/dev/zero")), 1 << 30).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/dev/zero: a character device, not a regular file: only regular files are inputs"
    );
}

#[test]
fn test_open_fifo_returns_at_once_and_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let err = open(&named(&fifo), 1 << 30).unwrap_err();
    assert!(
        err.to_string().contains("a FIFO, not a regular file"),
        "{err}"
    );
}

#[test]
fn test_open_sparse_file_over_the_limit_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    File::create(&path).unwrap().set_len(20 << 30).unwrap();
    let err = open(&named(&path), 1 << 30).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "input too large ({} bytes, limit {})",
            20u64 << 30,
            1u64 << 30
        )
    );
}

#[test]
fn test_walk_symlinks_below_a_root_are_refused_and_named_ones_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.txt");
    std::fs::write(&real, b"data").unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::os::unix::fs::symlink(&real, tree.join("link")).unwrap();
    std::fs::write(tree.join("plain"), b"p").unwrap();
    let entries: Vec<Entry> = walk(std::slice::from_ref(&tree))
        .map(Result::unwrap)
        .collect();
    assert_eq!(entries.len(), 2);
    let err = open(&entries[0], 100).unwrap_err();
    assert!(matches!(err, InputError::Symlink { .. }), "{err}");
    assert_eq!(open(&entries[1], 100).unwrap().read_all().unwrap(), b"p");
    let named_link = walk(std::slice::from_ref(&tree.join("link")))
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(open(&named_link, 100).unwrap().read_all().unwrap(), b"data");
}

#[test]
fn test_source_growing_after_open_is_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grows");
    std::fs::write(&path, b"abc").unwrap();
    let src = open(&named(&path), 100).unwrap();
    std::fs::write(&path, b"abcdef").unwrap();
    assert!(matches!(src.read_all(), Err(InputError::Changed { .. })));
    assert!(matches!(
        src.check_unchanged(),
        Err(InputError::Changed { .. })
    ));
}

#[test]
fn test_prefixed_file_reads_the_prefix_then_the_file() {
    let data = vec![7u8; (INLINE as usize) + 10];
    let input = read_stream(&data[..], 1 << 30).unwrap().unwrap();
    let Input::File(src) = input.prefixed(b"pw") else {
        panic!("a prefixed file stays a file");
    };
    assert_eq!(src.len(), data.len() as u64 + 2);
    let mut across = [0u8; 4];
    src.read_at(1, &mut across).unwrap();
    assert_eq!(&across, b"w\x07\x07\x07");
    assert_eq!(src.read_all().unwrap(), [&b"pw"[..], &data].concat());
    src.check_unchanged().unwrap();
}

#[test]
fn test_read_stream_over_the_limit_is_too_large() {
    let err = read_stream(&b"0123456789"[..], 4).unwrap().unwrap_err();
    assert_eq!(
        err.to_string(),
        "input too large (more than 4 bytes, the limit)"
    );
    let small = read_stream(&b"0123"[..], 4).unwrap().unwrap();
    assert_eq!(small.bytes(), Some(&b"0123"[..]));
}

#[test]
fn test_read_stream_big_goes_to_a_file_not_memory() {
    let data = vec![9u8; (INLINE as usize) * 3];
    let input = read_stream(&data[..], 1 << 30).unwrap().unwrap();
    let Input::File(src) = &input else {
        panic!("a big stream is spooled to a file");
    };
    assert_eq!(src.len(), data.len() as u64);
    assert_eq!(src.read_all().unwrap(), data);
    let err = read_stream(&data[..], INLINE * 2).unwrap().unwrap_err();
    assert!(matches!(err, InputError::StreamTooLarge { .. }), "{err}");
}
