//! What an installed plugwarden relies on: the sanitize plugins found in
//! the Debian package's layout (`bin/` and `lib/plugwarden/`), plugins that
//! another user could replace refused, the build information, completions
//! and manual pages. The installs themselves (cargo install, dpkg) are
//! exercised by packaging/test-install.sh, which CI runs as root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// pw-echo copied into a fresh directory `dir` with `dir_mode`, the copy
/// with `file_mode`.
fn echo_copy(dir_mode: u32, file_mode: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let scratch = scratch();
    let dir = scratch.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let exe = dir.join("pw-echo");
    copy_executable(&plugin("pw-echo"), &exe);
    chmod(&exe, file_mode);
    chmod(&dir, dir_mode);
    (scratch, exe)
}

/// `call` with an empty input: a refused plugin ends plugwarden before it
/// reads stdin, and a longer input would meet a closed pipe.
fn call_echo(exe: &Path) -> Output {
    call(&["--plugin", exe.to_str().unwrap()], b"")
}

#[test]
fn test_plugin_writable_by_every_user_is_refused() {
    let (_d, exe) = echo_copy(0o755, 0o777);
    let o = call_echo(&exe);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr),
        format!("plugwarden: plugin file {p} could be replaced by another user: {p} is writable by every user; plugwarden runs only plugins that no one but root and the user running it can change (chown root and chmod go-w it and its directories, or install it where that holds)\n", p = exe.display())
    );
}

#[test]
fn test_plugin_in_a_directory_every_user_can_write_is_refused() {
    let (_d, exe) = echo_copy(0o777, 0o755);
    let o = call_echo(&exe);
    assert_eq!(o.status.code(), Some(2));
    let why = format!(
        "{} is writable by every user",
        exe.parent().unwrap().display()
    );
    assert!(text(&o.stderr).contains(&why), "{}", text(&o.stderr));
}

#[test]
fn test_plugin_owned_by_another_user_is_refused_when_root() {
    if !is_root() {
        println!("not applicable: only root can give the plugin to another user");
        return;
    }
    let (_d, exe) = echo_copy(0o755, 0o755);
    std::os::unix::fs::chown(&exe, Some(65534), Some(65534)).unwrap();
    let o = call_echo(&exe);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains(&format!("{} is owned by uid 65534", exe.display())),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn test_plugin_in_a_sticky_world_writable_directory_runs() {
    // /tmp is 1777: only an entry's owner may replace it, so a root-owned
    // plugin under a root-owned directory there is safe.
    let (d, exe) = echo_copy(0o755, 0o755);
    let sticky = d.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    let inner = sticky.join("pw-echo");
    copy_executable(&exe, &inner);
    chmod(&inner, 0o755);
    let o = call(&["--plugin", inner.to_str().unwrap()], b"hi");
    assert_eq!(verdict(&o), "ok", "{}", text(&o.stderr));
    assert_eq!(o.stdout, b"hi");
}

/// plugwarden in PREFIX/bin and the sanitize plugins in PREFIX/lib/plugwarden,
/// as the Debian package lays them out; `plugin_dir_mode` for that directory.
fn deb_layout(plugin_dir_mode: u32) -> tempfile::TempDir {
    let prefix = scratch();
    let bin = prefix.path().join("bin");
    let lib = prefix.path().join("lib/plugwarden");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&lib).unwrap();
    copy_executable(&plugwarden(), &bin.join("plugwarden"));
    for p in ["pw-image-sanitize", "pw-pdf-sanitize", "pw-office-convert"] {
        copy_executable(&plugin(p), &lib.join(p));
    }
    for d in [prefix.path().join("lib"), lib] {
        chmod(&d, 0o755);
    }
    chmod(&prefix.path().join("lib/plugwarden"), plugin_dir_mode);
    prefix
}

fn sanitize_benign_png(prefix: &Path) -> Output {
    let out = prefix.join("safe");
    Command::new(prefix.join("bin/plugwarden"))
        .args(["sanitize", "--out"])
        .arg(&out)
        .arg(repo().join("samples/benign.png"))
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn test_sanitize_finds_its_plugins_in_lib_plugwarden() {
    let prefix = deb_layout(0o755);
    let o = sanitize_benign_png(prefix.path());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let png = std::fs::read(prefix.path().join("safe/benign.png.safe.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn test_sanitize_refuses_plugins_another_user_could_replace() {
    let prefix = deb_layout(0o777);
    let o = sanitize_benign_png(prefix.path());
    assert_eq!(o.status.code(), Some(2));
    let dir = prefix.path().join("lib/plugwarden");
    assert!(
        text(&o.stderr).contains(&format!(
            "could be replaced by another user: {} is writable by every user",
            std::fs::canonicalize(dir).unwrap().display()
        )),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn test_sanitize_without_its_plugins_says_where_it_looked() {
    let prefix = deb_layout(0o755);
    std::fs::remove_dir_all(prefix.path().join("lib")).unwrap();
    let o = sanitize_benign_png(prefix.path());
    assert_eq!(o.status.code(), Some(2));
    let bin = prefix.path().join("bin");
    assert!(
        text(&o.stderr).starts_with(&format!(
            "plugwarden: the sanitize plugin pw-image-sanitize is missing (looked in {}, {}): install plugwarden with its default features",
            bin.display(),
            prefix.path().join("lib/plugwarden").display()
        )),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn test_version_json_has_commit_target_and_walls() {
    let o = Command::new(plugwarden())
        .args(["version", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    let commit = v["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    let target = v["target"].as_str().unwrap();
    assert!(target.starts_with(std::env::consts::ARCH), "{target}");
    assert_eq!(
        v["landlock"]["newest_abi"],
        plugwarden::kernel::LANDLOCK_NEWEST
    );
    assert_eq!(v["seccomp"]["arch"], std::env::consts::ARCH);
    assert_eq!(v["features"], serde_json::json!(["sanitize"]));
}

#[test]
fn test_long_version_is_the_build_information() {
    let o = Command::new(plugwarden())
        .arg("--version")
        .output()
        .unwrap();
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            format!("plugwarden {}", env!("CARGO_PKG_VERSION")).as_str(),
            "commit",
            "target",
            "features",
            "kernel",
            "landlock",
            "seccomp"
        ]
    );
}

#[test]
fn test_completions_for_bash_zsh_and_fish_name_the_commands() {
    for (shell, head) in [
        ("bash", "_plugwarden() {"),
        ("zsh", "#compdef plugwarden"),
        ("fish", "complete -c plugwarden"),
    ] {
        let o = Command::new(plugwarden())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{shell}");
        let script = text(&o.stdout);
        assert!(script.contains(head), "{shell}: {script:.80}");
        assert!(script.contains("sanitize"), "{shell}");
    }
}

#[test]
fn test_man_writes_a_page_per_command() {
    let dir = scratch();
    let o = Command::new(plugwarden())
        .args(["man", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let top = std::fs::read_to_string(dir.path().join("plugwarden.1")).unwrap();
    assert!(top.contains(".TH plugwarden 1"), "{top:.200}");
    let sanitize = std::fs::read_to_string(dir.path().join("plugwarden-sanitize.1")).unwrap();
    assert!(sanitize.contains("\\-\\-plugins"), "{sanitize:.400}");
}

#[test]
fn test_doctor_check_runs_a_child_under_each_shipped_policy() {
    let o = Command::new(plugwarden())
        .args(["doctor", "--check"])
        .output()
        .unwrap();
    assert_eq!(
        text(&o.stdout),
        "policy strict   ok: a sandboxed child ran\npolicy default  ok: a sandboxed child ran\npolicy image    ok: a sandboxed child ran\npolicy pdf      ok: a sandboxed child ran\npolicy office   ok: a sandboxed child ran\npolicy ocr      ok: a sandboxed child ran\n"
    );
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn test_doctor_check_fails_below_the_kernel_floor() {
    let o = Command::new(plugwarden())
        .args(["doctor", "--check"])
        .env("PLUGWARDEN_KERNEL", "5.10")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("older than plugwarden's floor"),
        "{}",
        text(&o.stdout)
    );
}
