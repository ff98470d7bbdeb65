use super::*;

/// Groups that shipped policies for ordinary plugins are built from.
const ORDINARY: &[&str] = &[
    "@default",
    "@startup",
    "@basic-io",
    "@memory",
    "@file-read",
    "@signal",
    "@time",
    "@thread",
    "@ipc",
    "@system-info",
];

fn members() -> impl Iterator<Item = (&'static str, &'static str)> {
    GROUPS.iter().flat_map(|group| {
        group
            .syscalls
            .iter()
            .map(move |member| (group.name, *member))
    })
}

fn exists_somewhere(name: &str) -> bool {
    number(Arch::X86_64, name).is_some() || number(Arch::Aarch64, name).is_some()
}

/// The first cycle reachable from `name`, as the path that closes it.
fn cycle_from(name: &'static str, path: &mut Vec<&'static str>) -> Option<Vec<&'static str>> {
    if path.contains(&name) {
        path.push(name);
        return Some(path.clone());
    }
    let group = find(name)?;
    path.push(name);
    let cycle = group
        .syscalls
        .iter()
        .filter(|member| member.starts_with('@'))
        .find_map(|member| cycle_from(member, path));
    path.pop();
    cycle
}

#[test]
fn test_group_syscalls_unknown_on_both_arches_none() {
    let unknown: Vec<_> = members()
        .filter(|(_, member)| !member.starts_with('@') && !exists_somewhere(member))
        .collect();

    assert_eq!(unknown, Vec::<(&str, &str)>::new());
}

#[test]
fn test_group_references_unresolved_none() {
    let unresolved: Vec<_> = members()
        .filter(|(_, member)| member.starts_with('@') && find(member).is_none())
        .collect();

    assert_eq!(unresolved, Vec::<(&str, &str)>::new());
}

#[test]
fn test_group_references_cycle_none() {
    let cycles: Vec<_> = GROUPS
        .iter()
        .filter_map(|group| cycle_from(group.name, &mut Vec::new()))
        .collect();

    assert_eq!(cycles, Vec::<Vec<&str>>::new());
}

#[test]
fn test_group_names_unique_and_prefixed() {
    let names: Vec<_> = GROUPS.iter().map(|group| group.name).collect();
    let unique: BTreeSet<_> = names.iter().copied().collect();

    assert_eq!(unique.len(), names.len());
    assert!(names.iter().all(|name| name.starts_with('@')), "{names:?}");
}

#[test]
fn test_group_members_repeated_within_group_none() {
    let repeated: Vec<_> = GROUPS
        .iter()
        .filter(|group| {
            let unique: BTreeSet<_> = group.syscalls.iter().collect();
            unique.len() != group.syscalls.len()
        })
        .map(|group| group.name)
        .collect();

    assert_eq!(repeated, Vec::<&str>::new());
}

#[test]
fn test_ordinary_groups_risky_syscall_none() {
    let ordinary = expand(ORDINARY).unwrap();

    let granted_risky: Vec<_> = RISKY
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| ordinary.contains(name))
        .collect();

    assert_eq!(granted_risky, Vec::<&str>::new());
}

#[test]
fn test_risky_names_unknown_or_ungrouped_none() {
    let grouped = expand(&GROUPS.iter().map(|group| group.name).collect::<Vec<_>>()).unwrap();

    let unexplained: Vec<_> = RISKY
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !exists_somewhere(name) || !grouped.contains(name))
        .collect();

    assert_eq!(unexplained, Vec::<&str>::new());
}

#[test]
fn test_risky_names_repeated_none() {
    let unique: BTreeSet<_> = RISKY.iter().map(|(name, _)| name).collect();

    assert_eq!(unique.len(), RISKY.len());
}

#[test]
fn test_expand_basic_io_contains_read_and_write() {
    let syscalls = expand(&["@basic-io"]).unwrap();

    assert!(syscalls.contains(&"read"), "{syscalls:?}");
    assert!(syscalls.contains(&"write"), "{syscalls:?}");
}

#[test]
fn test_expand_startup_contains_exec() {
    let syscalls = expand(&["@startup"]).unwrap();

    assert!(syscalls.contains(&"execve"), "{syscalls:?}");
    assert!(syscalls.contains(&"execveat"), "{syscalls:?}");
}

#[test]
fn test_expand_nested_groups_sorted_and_deduplicated() {
    let syscalls = expand(&["@privileged", "@mount", "mount", "@swap"]).unwrap();

    let mut sorted = syscalls.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(syscalls, sorted);
    assert!(syscalls.contains(&"mount"), "{syscalls:?}");
    assert!(syscalls.contains(&"swapon"), "{syscalls:?}");
}

#[test]
fn test_expand_unknown_group_err_with_name() {
    assert_eq!(
        expand(&["@basic-io", "@no-such-group"]),
        Err(ExpandError::UnknownGroup("@no-such-group".to_owned()))
    );
}

#[test]
fn test_expand_unknown_syscall_err_with_name() {
    assert_eq!(
        expand(&["read", "fstatat"]),
        Err(ExpandError::UnknownSyscall("fstatat".to_owned()))
    );
    assert_eq!(expand(&["fstatat"]).unwrap_err().name(), "fstatat");
}

#[test]
fn test_expand_arch_specific_syscall_kept() {
    assert_eq!(
        expand(&["open", "newfstatat"]),
        Ok(vec!["newfstatat", "open"])
    );
}

#[test]
fn test_number_read_on_x86_64_zero() {
    assert_eq!(number(Arch::X86_64, "read"), Some(0));
}

#[test]
fn test_number_open_on_aarch64_none() {
    assert_eq!(number(Arch::Aarch64, "open"), None);
}

#[test]
fn test_number_newfstatat_on_aarch64_kernel_number() {
    assert_eq!(number(Arch::Aarch64, "newfstatat"), Some(79));
    assert_eq!(number(Arch::Aarch64, "fstatat"), None);
    assert_eq!(name_of(Arch::Aarch64, 79), Some("newfstatat"));
}

#[test]
fn test_number_time64_variant_on_aarch64_none() {
    assert_eq!(number(Arch::Aarch64, "clock_gettime64"), None);
    assert_eq!(name_of(Arch::Aarch64, 403), None);
}

#[test]
fn test_name_of_41_on_x86_64_socket() {
    assert_eq!(name_of(Arch::X86_64, 41), Some("socket"));
}

#[test]
fn test_name_of_negative_none() {
    assert_eq!(name_of(Arch::X86_64, -1), None);
}

#[test]
fn test_number_native_matches_libc() {
    let arch = Arch::native();

    assert_eq!(number(arch, "read"), Some(libc::SYS_read));
    assert_eq!(number(arch, "openat"), Some(libc::SYS_openat));
    assert_eq!(number(arch, "newfstatat"), Some(libc::SYS_newfstatat));
    assert_eq!(number(arch, "exit_group"), Some(libc::SYS_exit_group));
}
