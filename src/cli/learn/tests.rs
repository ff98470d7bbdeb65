use super::*;

#[test]
fn test_observed_socket_records_family_and_name() {
    let mut o = Observed::default();
    o.record("socket(AF_INET, SOCK_STREAM, 0)");
    assert_eq!(o.families, BTreeSet::from([libc::AF_INET as u32]));
    assert_eq!(o.syscalls.keys().collect::<Vec<_>>(), vec!["socket"]);
}

#[test]
fn test_observed_ioctl_hex_request_low_32_bits() {
    let mut o = Observed::default();
    o.record("ioctl(0, TCGETS)");
    o.record("ioctl(1, 0x100005413)");
    assert_eq!(o.ioctls, BTreeSet::from([0x5401, 0x5413]));
}

#[test]
fn test_observed_clone_thread_is_not_a_fork() {
    // As the host describes them (flags by name).
    let arch = groups::Arch::native();
    let nr = groups::number(arch, "clone").unwrap() as i32;
    let audit = plugwarden::seccomp::audit_arch(arch);
    let clone = |flags| plugwarden::describe::describe(audit, nr, [flags, 0, 0, 0, 0, 0]);
    let mut o = Observed::default();
    o.record(&clone(0x3d0f00));
    assert!(!o.forks);
    o.record(&clone(0x1200011));
    assert!(o.forks);
}

#[test]
fn test_allow_singles_socket_of_unnamed_family_not_listed() {
    let mut o = Observed::default();
    o.record("socket(17, SOCK_RAW, 0)");
    o.record("futex(0x7f00, 0x81, 0x1)");
    assert_eq!(o.allow_singles(), BTreeSet::from(["futex".to_string()]));
    assert_eq!(o.unnamed_families, BTreeSet::from(["17".to_string()]));
}

#[test]
fn test_render_learned_policy_resolves_without_extends() {
    let mut o = Observed::default();
    o.record("ioctl(1, TCGETS)");
    o.record("socket(AF_UNIX, SOCK_STREAM, 0)");
    o.record("write(0x1, 0x7f00, 0x5)");
    let s = Summary {
        exe: "x",
        mode: Mode::Worker,
        inputs: 1,
        failed: 0,
        converged: true,
    };
    let files = Files {
        read: vec![PathBuf::from("/usr/share/mime")],
        write: Vec::new(),
        exec: Vec::new(),
        tmp: 1 << 20,
        summary: vec!["reads /usr/share/mime (2 files)".into()],
    };
    let text = render(&o, &s, &plugwarden::policy::Limits::default(), &files, &[]);
    let p = policy::resolve(policy::Origin::File("learned.toml".into()), &text).unwrap();
    assert_eq!(p.syscalls.ioctl, BTreeSet::from([0x5401]));
    assert_eq!(
        p.syscalls.socket_families,
        BTreeSet::from([libc::AF_UNIX as u32])
    );
    assert!(p.syscalls.allow.contains("socket") && p.syscalls.allow.contains("write"));
    assert!(!text.contains("extends"), "{text}");
}

#[test]
fn test_observed_unknown_syscall_ignored() {
    let mut o = Observed::default();
    o.record("syscall 9999 (unknown to this build)");
    assert!(o.syscalls.is_empty());
}
