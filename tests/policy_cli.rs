//! The policy commands through the real binary: `policy list|check|explain`,
//! `doctor`, `learn`, and log-only mode, judged by their exact output and
//! by what the learned policies then let a real plugin do.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn pw(args: &[&str]) -> Output {
    Command::new(plugwarden())
        .args(args)
        .output()
        .expect("run plugwarden")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `policy check FILE`: (exit status, stdout, stderr).
fn check(path: &Path) -> (i32, String, String) {
    let o = pw(&["policy", "check", path.to_str().expect("utf-8 path")]);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

/// The line of `text` that starts with `prefix`.
fn line_starting<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
}

/// The BPF sample row of `explain` output: [start-up, after start-up].
fn sample_row(explain: &str, syscall: &str) -> Vec<String> {
    let line = explain
        .lines()
        .find(|l| l.len() > 33 && l[2..32].trim_end() == syscall)
        .unwrap_or_else(|| panic!("no sample row {syscall:?} in:\n{explain}"));
    vec![line[33..53].trim_end().to_string(), line[54..].to_string()]
}

fn row(start: &str, after: &str) -> Vec<String> {
    vec![start.to_string(), after.to_string()]
}

fn explain(name: &str) -> String {
    let o = pw(&["policy", "explain", name]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

/// The number of syscalls a policy allows, from `policy explain`.
fn allowed_count(name: &str) -> usize {
    let text = explain(name);
    let line = line_starting(&text, "syscalls allowed after group expansion (");
    line["syscalls allowed after group expansion (".len()..]
        .split(';')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

fn shipped_policy_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("policies"))
        .expect("policies/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn test_policy_list_builtin_shows_descriptions() {
    let o = pw(&["policy", "list"]);

    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(out.lines().next(), Some("built-in policies:"));
    assert_eq!(
        line_starting(&out, "  strict "),
        "  strict   pure compute on the pipes: no files beyond loading the executable, no network, no new processes"
    );
    assert_eq!(
        line_starting(&out, "  image "),
        "  image    image decoders: pipes and memory only, 1GiB memory cap"
    );
}

#[test]
fn test_policy_list_in_repo_lists_policy_files() {
    let o = Command::new(plugwarden())
        .args(["policy", "list"])
        .current_dir(repo())
        .output()
        .unwrap();

    let out = stdout(&o);
    assert!(out.contains("\nfiles in ./policies/:\n"), "{out}");
    assert_eq!(
        line_starting(&out, "  policies/pdf.toml"),
        "  policies/pdf.toml      PDF renderers: pipes and memory only, 2GiB memory cap, long wall time"
    );
}

#[test]
fn test_policy_check_shipped_policies_ok() {
    let files = shipped_policy_files();
    let mut args = vec!["policy".to_string(), "check".to_string()];
    args.extend(files.iter().map(|p| p.display().to_string()));

    let o = Command::new(plugwarden()).args(&args).output().unwrap();

    let expected: String = files
        .iter()
        .map(|p| format!("{}: ok\n", p.display()))
        .collect();
    assert_eq!(stdout(&o), expected);
    assert_eq!(stderr(&o), "");
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn test_policy_check_unknown_syscall_error_with_line() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "description = \"x\"\n[syscalls]\nallow = [\"read\", \"raed\"]\n",
    );

    let (code, out, err) = check(&p);

    assert_eq!(code, 2);
    assert_eq!(out, format!("{}: 1 error, 0 warnings\n", p.display()));
    assert_eq!(
        err,
        format!(
            "{}:3:18: error: unknown syscall \"raed\": not a Linux syscall on x86_64 or aarch64 (check the spelling; groups start with '@', see `plugwarden policy explain`)\n",
            p.display()
        )
    );
}

#[test]
fn test_policy_check_unknown_key_error_with_line() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "extends = \"strict\"\n\n[limits]\nwal = \"1s\"\n",
    );

    let (code, _, err) = check(&p);

    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!(
            "{}:4:1: error: unknown field `wal`, expected one of `wall`, `cpu`, `memory`, `processes`, `open_files`, `file_size`, `output`, `max_frame`, `input`\n",
            p.display()
        )
    );
}

#[test]
fn test_policy_check_unknown_group_error_with_line() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "[syscalls]\nallow = [\"@default\",\n    \"@no-such-group\"]\n",
    );

    let (code, _, err) = check(&p);

    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!(
            "{}:3:5: error: unknown syscall group \"@no-such-group\": known groups are @default, @startup,",
            p.display()
        )),
        "{err}"
    );
}

#[test]
fn test_policy_check_tiny_memory_error_on_its_line() {
    let dir = scratch();
    let p = policy(
        dir.path(),
        "p.toml",
        "extends = \"strict\"\n[limits]\nmemory = \"1MiB\"\n",
    );

    let (code, _, err) = check(&p);

    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!(
            "{}:3:1: error: limits.memory of 1048576 bytes is too small to load a program; use at least \"16MiB\"\n",
            p.display()
        )
    );
}

#[test]
fn test_policy_check_exec_of_missing_path_error() {
    let dir = scratch();
    let missing = dir.path().join("no-such-dir");
    let text = format!(
        "extends = \"strict\"\n[filesystem]\nexec = [{:?}]\n",
        missing.display().to_string()
    );
    let p = policy(dir.path(), "p.toml", &text);

    let (code, _, err) = check(&p);

    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!(
            "{}:3:9: error: filesystem.exec grants {:?}, which does not exist on this machine; Landlock would grant nothing (remove it or fix the path)\n",
            p.display(),
            missing.display().to_string()
        )
    );
}

#[test]
fn test_policy_check_risky_grants_warn_and_pass() {
    let dir = scratch();
    let d = dir.path().display().to_string();
    let text = format!(
        "extends = \"default\"\n[syscalls]\nallow = [\"ptrace\", \"@mount\"]\ndeny = [\"bpf\"]\n[filesystem]\nwrite = [{d:?}]\nexec = [{d:?}]\n[limits]\ncpu = \"60s\"\n"
    );
    let p = policy(dir.path(), "p.toml", &text);

    let (code, out, err) = check(&p);

    let f = p.display();
    let expected = [
        format!("{f}:3:10: warning: risky grant: ptrace lets the plugin inspect and control other processes"),
        format!("{f}:3:20: warning: risky grant: mount (through @mount) changes the filesystem tree"),
        format!("{f}:3:20: warning: risky grant: umount2 (through @mount) changes the filesystem tree"),
        format!("{f}:4:9: warning: deny \"bpf\" removes nothing: it is never allowed; remove it"),
        format!("{f}:7:9: warning: {d:?} is both executable and writable (filesystem.write grants {d:?}): a plugin could write a program and run it; keep exec paths read-only"),
        format!("{f}:9:1: warning: limits.cpu (1m) is above limits.wall (30s): the wall limit always ends the job first"),
    ];
    for line in &expected {
        assert!(
            err.lines().any(|l| l == line),
            "missing {line:?} in:\n{err}"
        );
    }
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("{f}: ok, ")), "{out}");
}

#[test]
fn test_policy_explain_strict_denies_sockets_and_files() {
    let text = explain("strict");

    assert_eq!(
        line_starting(&text, "  the plugin can open only"),
        "  the plugin can open only the paths below and what loading its own executable needs (the executable, its ELF interpreter and libraries);"
    );
    assert_eq!(
        line_starting(&text, "  read:"),
        "  read:    nothing beyond what loading the executable needs"
    );
    // /dev/null holds nothing; every other path stays shut.
    assert_eq!(
        line_starting(&text, "  write:"),
        "  write:   /dev/null (create, change and remove beneath)"
    );
    assert_eq!(
        line_starting(&text, "  Landlock confines"),
        "  Landlock confines those opens (seccomp allows openat but cannot see paths)."
    );
    assert_eq!(
        line_starting(&text, "  the plugin cannot open sockets"),
        "  the plugin cannot open sockets: seccomp denies socket and socketpair."
    );
    assert_eq!(
        line_starting(&text, "  the plugin cannot create processes"),
        "  the plugin cannot create processes: seccomp denies fork, vfork and clone without CLONE_THREAD;"
    );
}

#[test]
fn test_policy_explain_strict_bpf_denies_socket_and_later_execve() {
    let text = explain("strict");

    assert_eq!(sample_row(&text, "read"), row("allow", "allow"));
    assert_eq!(sample_row(&text, "write"), row("allow", "allow"));
    assert_eq!(
        sample_row(&text, "socket(AF_INET)"),
        row("deny (violation)", "deny (killed)")
    );
    assert_eq!(sample_row(&text, "execve"), row("allow", "deny (killed)"));
    assert_eq!(sample_row(&text, "openat"), row("allow", "deny (killed)"));
    assert_eq!(
        sample_row(&text, "clone (fork flags)"),
        row("deny (violation)", "deny (killed)")
    );
    assert_eq!(
        sample_row(&text, "clone (thread flags)"),
        row("allow", "allow")
    );
    assert_eq!(
        sample_row(&text, "clone3"),
        row("deny (ENOSYS)", "deny (ENOSYS)")
    );
}

#[test]
fn test_policy_explain_default_tiocsti_denied_even_with_high_bits() {
    let text = explain("default");

    assert_eq!(
        sample_row(&text, "ioctl(TCGETS)"),
        row("allow", "deny (killed)")
    );
    assert_eq!(
        sample_row(&text, "ioctl(TIOCSTI)"),
        row("deny (violation)", "deny (killed)")
    );
    assert_eq!(
        sample_row(&text, "ioctl(TIOCSTI | 0x100000000)"),
        row("deny (violation)", "deny (killed)")
    );
    assert_eq!(
        line_starting(&text, "  ioctl: only"),
        "  ioctl: only TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIONCLEX, FIOCLEX (compared on the low 32 bits, as the kernel does)"
    );
}

#[test]
fn test_policy_explain_unknown_name_usage_error() {
    let o = pw(&["policy", "explain", "nosuch"]);

    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "plugwarden: unknown policy \"nosuch\": use one of strict, default, image, pdf, office, ocr or a path to a .toml file\n"
    );
}

#[test]
fn test_log_mode_socket_reported_and_job_completes() {
    let probe = plugin("pw-probe").display().to_string();

    let o = call(
        &["--plugin", &probe, "--policy", "strict", "--enforce", "log"],
        b"socket",
    );

    assert_eq!(stdout(&o), "socket created");
    assert_eq!(
        stderr(&o),
        "plugwarden: denied: socket(AF_INET, SOCK_STREAM, 0)\nok\n"
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn test_doctor_reports_this_process_and_exits_zero() {
    let o = pw(&["doctor"]);

    let out = stdout(&o);
    let abi = plugwarden::kernel::kernel().landlock_abi;
    assert_eq!(o.status.code(), Some(0));
    if abi == 0 {
        assert_eq!(
            line_starting(&out, "  landlock:"),
            "  landlock: not available (Linux 5.13+ with landlock in the boot's lsm= list)"
        );
    } else {
        assert!(
            line_starting(&out, "  landlock:").starts_with(&format!("  landlock: ABI {abi} (")),
            "{out}"
        );
    }
    let root = if is_root() { "yes" } else { "no" };
    assert_eq!(
        line_starting(&out, "  running as root:"),
        format!("  running as root: {root}")
    );
    let identity = line_starting(&out, "  identity drop");
    assert_eq!(identity.contains("enforced"), is_root(), "{identity}");
}

/// `plugwarden learn` on `inputs`; returns the policy text after checking the exit status.
fn learn(plugin_name: &str, inputs: &[&Path]) -> String {
    let exe = plugin(plugin_name);
    let mut cmd = Command::new(plugwarden());
    cmd.arg("learn").arg("--plugin").arg(&exe).args(inputs);
    let o = cmd.output().expect("run learn");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

fn input(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write input");
    p
}

#[test]
fn test_learn_echo_policy_checks_passes_and_is_smaller_than_default() {
    let dir = scratch();
    let a = input(dir.path(), "a", b"hello");
    let b = input(dir.path(), "b", &[0u8, 1, 2, 255]);

    let learned = learn("pw-echo", &[&a, &b]);

    assert!(!learned.contains("extends"), "{learned}");
    let p = policy(dir.path(), "learned.toml", &learned);
    let (code, out, err) = check(&p);
    assert_eq!(
        (code, out, err),
        (0, format!("{}: ok\n", p.display()), String::new())
    );
    let echo = plugin("pw-echo").display().to_string();
    let ps = p.display().to_string();
    let o = call(&["--plugin", &echo, "--policy", &ps], b"round trip");
    assert_eq!(
        (verdict(&o), stdout(&o)),
        ("ok".to_string(), "round trip".to_string())
    );
    assert!(allowed_count(&ps) < allowed_count("default"), "{learned}");
}

#[test]
fn test_learn_probe_unobserved_socket_is_violation() {
    let dir = scratch();
    let a = input(dir.path(), "a", b"echo:x");

    let learned = learn("pw-probe", &[&a]);

    let p = policy(dir.path(), "learned.toml", &learned);
    let probe = plugin("pw-probe").display().to_string();
    let ps = p.display().to_string();
    let ok = call(&["--plugin", &probe, "--policy", &ps], b"echo:y");
    assert_eq!(
        (verdict(&ok), stdout(&ok)),
        ("ok".to_string(), "y".to_string())
    );
    let bad = call(&["--plugin", &probe, "--policy", &ps], b"socket");
    assert_eq!(verdict(&bad), "violation: socket(AF_INET, SOCK_STREAM, 0)");
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn test_learn_probe_observed_socket_granted_with_family() {
    let dir = scratch();
    let a = input(dir.path(), "a", b"socket");

    let learned = learn("pw-probe", &[&a]);

    assert!(
        learned.contains("\n#   socket(AF_INET, SOCK_STREAM, 0)\n"),
        "{learned}"
    );
    assert!(
        learned.contains("\nsocket_families = [\"AF_INET\"]\n"),
        "{learned}"
    );
    let p = policy(dir.path(), "learned.toml", &learned);
    let probe = plugin("pw-probe").display().to_string();
    let ps = p.display().to_string();
    let o = call(&["--plugin", &probe, "--policy", &ps], b"socket");
    assert_eq!(
        (verdict(&o), stdout(&o)),
        ("ok".to_string(), "socket created".to_string())
    );
}

#[test]
fn test_policy_doc_lists_every_group_and_risky_syscall() {
    let doc = std::fs::read_to_string(repo().join("docs/POLICY.md")).expect("docs/POLICY.md");

    let missing_groups: Vec<&str> = plugwarden::policy::groups::GROUPS
        .iter()
        .filter(|g| {
            let members: Vec<String> = g.syscalls.iter().map(|m| format!("`{m}`")).collect();
            !doc.contains(&format!(
                "| `{}` | {} | {} |",
                g.name,
                g.description,
                members.join(" ")
            ))
        })
        .map(|g| g.name)
        .collect();
    let missing_risky: Vec<&str> = plugwarden::policy::groups::RISKY
        .iter()
        .filter(|(name, why)| !doc.contains(&format!("| `{name}` | {why} |")))
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(missing_groups, Vec::<&str>::new());
    assert_eq!(missing_risky, Vec::<&str>::new());
}

/// A filter plugin that makes one raw `ioctl(0, request, buf)` through
/// Python's ctypes (the full 64-bit request reaches the kernel) and prints
/// the result; None when this machine has no usable /usr/bin/python3.
fn python_ioctl(request: u64) -> Option<Output> {
    let python = Path::new("/usr/bin/python3");
    let script = format!(
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nbuf = ctypes.create_string_buffer(64)\n\
         rc = libc.syscall(ctypes.c_long({}), ctypes.c_long(0), ctypes.c_ulong({request}), buf)\n\
         print('rc', rc, 'errno', ctypes.get_errno())\n",
        libc::SYS_ioctl
    );
    let usable = python.exists()
        && Command::new(python)
            .args(["-S", "-I", "-c", "import ctypes"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !usable {
        return None;
    }
    let args = [
        "--plugin",
        "/usr/bin/python3",
        "--mode",
        "filter",
        "--policy",
        "default",
    ];
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--arg", "-S", "--arg", "-I", "--arg", "-c", "--arg", &script,
    ]);
    Some(call(&all, b""))
}

#[test]
fn test_default_ioctl_tiocsti_with_high_bits_is_violation_in_real_run() {
    let Some(plain) = python_ioctl(0x5412) else {
        println!("not applicable: no /usr/bin/python3 with ctypes to make a raw ioctl");
        return;
    };
    let high = python_ioctl(0x1_0000_5412).expect("python checked above");
    let tcgets = python_ioctl(0x5401).expect("python checked above");

    for v in [verdict(&plain), verdict(&high)] {
        assert!(v.starts_with("violation: ioctl(0, TIOCSTI, 0x"), "{v}");
    }
    // TCGETS passes the filter; the kernel answers ENOTTY on a pipe.
    assert_eq!(verdict(&tcgets), "ok");
    assert_eq!(stdout(&tcgets), format!("rc -1 errno {}\n", libc::ENOTTY));
}

#[test]
fn test_a_policy_file_another_user_could_replace_is_refused_before_anything_runs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch();
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let p = policy(
        &open,
        "loose.toml",
        "description = \"x\"\nextends = \"strict\"\n",
    );
    let echo = plugin("pw-echo");
    let o = call(
        &[
            "--plugin",
            echo.to_str().unwrap(),
            "--policy",
            p.to_str().unwrap(),
        ],
        b"hello",
    );
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(o.stdout.is_empty(), "nothing ran: {}", stdout(&o));
    assert!(
        err.contains("could be replaced by another user")
            && err.contains("open is writable by every user")
            && err.contains("chmod go-w"),
        "{err}"
    );
}
