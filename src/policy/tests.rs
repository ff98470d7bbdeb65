use super::*;

#[test]
fn test_builtin_policies_all_resolve() {
    for (name, _) in BUILTIN {
        let p = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(p.syscalls.allow.contains("read"), "{name}");
        assert!(!p.description.is_empty(), "{name}");
    }
}

#[test]
fn test_unknown_syscall_names_line_and_column() {
    let text = "description = \"x\"\n[syscalls]\nallow = [\"read\", \"raed\"]\n";
    let err = resolve(Origin::File("p.toml".into()), text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("p.toml:3:18: unknown syscall \"raed\""),
        "{err}"
    );
}

#[test]
fn test_unknown_key_is_error_with_line() {
    let text = "[limits]\nwal = \"1s\"\n";
    let err = resolve(Origin::File("p.toml".into()), text)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("p.toml:2:1: unknown field `wal`"), "{err}");
}

#[test]
fn test_unknown_group_is_error() {
    let text = "[syscalls]\nallow = [\"@nope\"]\n";
    let err = resolve(Origin::File("p.toml".into()), text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown syscall group \"@nope\""), "{err}");
}

#[test]
fn test_extends_adds_and_overrides() {
    let text = "extends = \"strict\"\n[syscalls]\nallow = [\"socket\"]\n[limits]\nwall = \"3s\"\n";
    let p = resolve(Origin::File("p.toml".into()), text).unwrap();
    assert!(p.syscalls.allow.contains("socket"));
    assert!(p.syscalls.allow.contains("read"));
    assert_eq!(p.limits.wall, Duration::from_secs(3));
    assert_eq!(p.sources.len(), 2);
}

#[test]
fn test_unknown_policy_name_is_error() {
    assert!(matches!(
        load("nosuch"),
        Err(PolicyError::UnknownName { .. })
    ));
}

#[test]
fn test_errno_table_resolves_names_and_groups() {
    let text = "extends = \"strict\"\n[syscalls]\nerrno = { personality = \"ENOSYS\", \"@keyring\" = \"EPERM\" }\n";
    let p = resolve(Origin::File("p.toml".into()), text).unwrap();
    assert_eq!(
        p.syscalls.errno.get("personality"),
        Some(&(libc::ENOSYS as u16))
    );
    assert_eq!(p.syscalls.errno.get("keyctl"), Some(&(libc::EPERM as u16)));
}

#[test]
fn test_errno_table_bad_names_are_located() {
    let err = |t: &str| {
        resolve(Origin::File("p.toml".into()), t)
            .unwrap_err()
            .to_string()
    };
    let e = err("[syscalls]\nerrno = { personality = \"ENOSUCH\" }\n");
    assert!(
        e.starts_with("p.toml:2:25: unknown errno \"ENOSUCH\""),
        "{e}"
    );
    let e = err("[syscalls]\nerrno = { personalty = \"ENOSYS\" }\n");
    assert!(
        e.starts_with("p.toml:2:11: unknown syscall \"personalty\""),
        "{e}"
    );
    let e = err("[syscalls]\nerrno = { exit = \"EPERM\" }\n");
    assert!(
        e.starts_with("p.toml:2:11: exit cannot be given an errno"),
        "{e}"
    );
}

#[test]
fn test_environment_keys_with_equals_are_located() {
    let text = "[environment]\nset = { \"A=B\" = \"x\" }\n";
    let e = resolve(Origin::File("p.toml".into()), text)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "p.toml:2:9: environment.set: \"A=B\" is not a variable name: it contains '='"
        ),
        "{e}"
    );
    let text = "[environment]\npass = [\"HOME\", \"X=\"]\n";
    let e = resolve(Origin::File("p.toml".into()), text)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("p.toml:2:17: environment.pass: \"X=\" is not a variable name"),
        "{e}"
    );
    let text = "extends = \"strict\"\n[environment]\nset = { TZ = \"UTC\" }\npass = [\"TERM\"]\n";
    let p = resolve(Origin::File("p.toml".into()), text).unwrap();
    assert_eq!(p.environment.set.get("TZ").map(String::as_str), Some("UTC"));
    assert!(p.environment.pass.contains("TERM"));
}

#[test]
fn test_parse_size_accepts_units() {
    assert_eq!(parse_size("256MiB"), Ok(256 << 20));
    assert_eq!(parse_size("4096"), Ok(4096));
    assert!(parse_size("lots").is_err());
}

#[test]
fn test_a_policy_file_another_user_could_replace_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    let policy = open.join("p.toml");
    std::fs::write(&policy, "description = \"x\"\nextends = \"strict\"\n").unwrap();
    load(policy.to_str().unwrap()).expect("a policy only its owner can change loads");

    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = load(policy.to_str().unwrap()).unwrap_err();
    assert!(matches!(e, PolicyError::Replaceable { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("is writable by every user"), "{msg}");
    assert!(msg.contains("chmod go-w"), "{msg}");

    // A trusted policy that extends one in that directory is refused too.
    let child = dir.path().join("child.toml");
    std::fs::write(&child, "description = \"y\"\nextends = \"open/p.toml\"\n").unwrap();
    let e = load(child.to_str().unwrap()).unwrap_err();
    assert!(matches!(e, PolicyError::Replaceable { .. }), "{e}");
}
