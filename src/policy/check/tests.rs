use super::*;

fn lines(text: &str) -> Vec<String> {
    check(Origin::File("p.toml".into()), text)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn test_check_shipped_policies_no_error() {
    for (name, text) in BUILTIN {
        let errors: Vec<_> = check(Origin::Builtin(name), text)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert_eq!(errors, Vec::new(), "{name}");
    }
}

#[test]
fn test_check_tiny_memory_error_on_its_line() {
    let text = "extends = \"strict\"\n\n[limits]\nwall = \"1s\"\nmemory = \"1MiB\"\n";
    assert_eq!(
        lines(text),
        vec!["p.toml:5:1: error: limits.memory of 1048576 bytes is too small to load a program; use at least \"16MiB\""]
    );
}

#[test]
fn test_check_cpu_above_wall_warning() {
    let text = "extends = \"strict\"\n[limits]\nwall = \"1s\"\ncpu = \"2s\"\n";
    assert_eq!(
        lines(text),
        vec!["p.toml:4:1: warning: limits.cpu (2s) is above limits.wall (1s): the wall limit always ends the job first"]
    );
}

#[test]
fn test_check_risky_group_grant_names_syscall_and_group() {
    let text = "extends = \"strict\"\n[syscalls]\nallow = [\"@mount\"]\n";
    let out = lines(text);
    assert!(out.contains(&"p.toml:3:10: warning: risky grant: mount (through @mount) changes the filesystem tree".to_string()), "{out:?}");
}

#[test]
fn test_check_deny_never_allowed_warning() {
    let text = "extends = \"strict\"\n[syscalls]\ndeny = [\"ptrace\"]\n";
    assert_eq!(
        lines(text),
        vec![
            "p.toml:3:9: warning: deny \"ptrace\" removes nothing: it is never allowed; remove it"
        ]
    );
}

#[test]
fn test_check_namespace_off_warning_on_its_line() {
    let text = "extends = \"strict\"\n[namespaces]\nuts = false\npid = false\n";
    assert_eq!(
        lines(text),
        vec!["p.toml:4:1: warning: namespaces.pid = false: the plugin shares the host's PID namespace: no init reaps its orphans, it can probe every host pid, and its grants of /proc are withheld"]
    );
}

#[test]
fn test_check_flags_grants_wider_than_they_look() {
    let text = "extends = \"strict\"\n[filesystem]\nread = [\"/proc/self\", \"/tmp\"]\n";
    let out = lines(text);
    assert!(out.iter().any(|l| l.starts_with("p.toml:3:9: warning: filesystem.read grants \"/proc/self\", which grants the plugin's whole /proc")), "{out:?}");
    assert!(out.iter().any(|l| l.starts_with("p.toml:3:23: warning: filesystem.read grants \"/tmp\", which every process of the machine shares")), "{out:?}");
    // The directory holding some mount point of this machine.
    let parent = mount_points()
        .into_iter()
        .filter_map(|m| m.parent().map(Path::to_path_buf))
        .find(|p| p != Path::new("/") && !p.starts_with("/proc"));
    if let Some(parent) = parent {
        let text = format!(
            "extends = \"strict\"\n[filesystem]\nread = [{:?}]\n",
            parent.display().to_string()
        );
        let want = format!("p.toml:3:9: warning: filesystem.read grants {:?}, which also grants the filesystems mounted below it", parent.display().to_string());
        let out = lines(&text);
        assert!(out.iter().any(|l| l.starts_with(&want)), "{out:?}");
    } else {
        println!("not applicable (mounts below a grant): this machine mounts nothing below a directory but /");
    }
    let text = "extends = \"default\"\n[namespaces]\npid = false\n";
    let out = lines(text);
    assert!(
        out.iter().any(|l| l.starts_with(
            "p.toml:3:1: warning: namespaces.pid = false withholds the inherited grant of /proc"
        )),
        "{out:?}"
    );
    let text =
        "extends = \"strict\"\n[filesystem]\nread = [\"/proc\"]\n[namespaces]\npid = false\n";
    assert!(lines(text)
        .iter()
        .any(|l| l.contains("the grant is withheld")));
}

#[test]
fn test_check_warns_when_startup_calls_are_missing() {
    let text = "extends = \"strict\"\n[syscalls]\ndeny = [\"close\"]\n";
    assert_eq!(
        lines(text),
        vec!["p.toml:3:9: warning: the allowlist lacks close of @default/@startup, which the dynamic loader, libc and Rust std call before main: most programs will end with a violation as they start"]
    );
}

#[test]
fn test_key_position_finds_key_in_its_table() {
    let text = "wall = 1\n[worker]\nbatch = 0\n[limits]\n  wall = \"0s\"\n";
    assert_eq!(key_position(text, "limits", "wall"), (5, 3));
    assert_eq!(key_position(text, "limits", "cpu"), (1, 1));
}
