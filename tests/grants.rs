//! Grants beyond a policy, on the command line (`--ro`, `--rw`, `--cwd`,
//! ...) and in manifests: a script in any directory runs with one `--ro`,
//! bad grants are refused with a sentence, conflicting grants say which
//! wins, and the manifests of plugins/ for third-party programs run them
//! as they run outside.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn filter(exe: &str, flags: &[&str], input: &[u8]) -> Output {
    let mut args = vec!["--mode", "filter", "--plugin", exe];
    args.extend(flags);
    call(&args, input)
}

/// Whether `exe` is there; says why not when it is not.
fn installed(exe: &str, package: &str) -> bool {
    let there = Path::new(exe).exists();
    if !there {
        println!("not applicable: {package} not installed ({exe})");
    }
    there
}

/// A directory with a script that imports a module beside it.
fn script_dir(parent: &Path) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pw-script-")
        .tempdir_in(parent)
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("script.py"),
        "import sys, helper\nprint(helper.shout(sys.stdin.read()), end='')\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("helper.py"),
        "def shout(text):\n    return text.upper()\n",
    )
    .unwrap();
    dir
}

#[test]
fn test_python_script_in_any_directory_runs_with_one_ro() {
    if !installed("/usr/bin/python3", "python3") {
        return;
    }
    // Under the host's /tmp (which the sandbox's private /tmp hides, so the
    // grant is bound over it) and elsewhere.
    for parent in [std::env::temp_dir(), PathBuf::from("/var/tmp")] {
        let dir = script_dir(&parent);
        let d = std::fs::canonicalize(dir.path()).unwrap();
        let d = d.to_str().unwrap();
        let script = format!("{d}/script.py");
        let o = filter(
            "/usr/bin/python3",
            &["--ro", d, "--arg", &script],
            b"quiet\n",
        );
        assert_eq!(verdict(&o), "ok", "{}", stderr(&o));
        assert_eq!(o.stdout, b"QUIET\n");
        // `python3 script.py` from the script's directory.
        let flags = ["--ro", d, "--cwd", d, "--arg", "script.py"];
        let o = filter("/usr/bin/python3", &flags, b"here\n");
        assert_eq!((verdict(&o), o.stdout), ("ok".into(), b"HERE\n".to_vec()));
        // Without the grant the script is not there.
        let o = filter("/usr/bin/python3", &["--arg", &script], b"x");
        assert!(
            verdict(&o).starts_with("plugin_error: exit status 2"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn test_run_and_learn_take_the_same_grants() {
    if !installed("/usr/bin/python3", "python3") {
        return;
    }
    let dir = script_dir(&std::env::temp_dir());
    let d = std::fs::canonicalize(dir.path()).unwrap();
    let ds = d.to_str().unwrap();
    let script = format!("{ds}/script.py");
    let inputs = scratch();
    std::fs::write(inputs.path().join("a.txt"), "abc\n").unwrap();
    let out = scratch();
    let grants = [
        "--mode",
        "filter",
        "--plugin",
        "/usr/bin/python3",
        "--ro",
        ds,
    ];
    let o = Command::new(plugwarden())
        .arg("run")
        .args(grants)
        .args(["--arg", &script, "--out"])
        .args([out.path(), inputs.path()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.path().join("a.txt")).unwrap(), b"ABC\n");
    let o = Command::new(plugwarden())
        .arg("learn")
        .args(grants)
        .args(["--arg", &script])
        .arg(inputs.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The learned policy keeps the grant: the script's directory.
    let text = String::from_utf8_lossy(&o.stdout);
    let read = text.lines().find(|l| l.starts_with("read = ")).unwrap();
    assert!(read.contains(&format!("\"{ds}\"")), "{read}");
}

/// Under `strict` (no /usr/lib): `env` runs jq, which loads libjq and
/// libonig; `--exec` of jq brings them, `--ro` does not let it run.
#[test]
fn test_exec_grant_brings_the_programs_interpreter_and_libraries() {
    if !installed("/usr/bin/jq", "jq") {
        return;
    }
    let run = |grant: &str| {
        let flags = [
            "--policy",
            "strict",
            grant,
            "/usr/bin/jq",
            "--arg",
            "/usr/bin/jq",
            "--arg",
            "-n",
            "--arg",
            "1+1",
        ];
        filter("/usr/bin/env", &flags, b"")
    };
    let o = run("--exec");
    assert_eq!((verdict(&o), o.stdout), ("ok".into(), b"2\n".to_vec()));
    let o = run("--ro");
    assert!(
        verdict(&o).starts_with("plugin_error: exit status 126"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn test_grant_of_missing_path_is_refused_with_a_sentence() {
    let o = filter("/usr/bin/true", &["--ro", "/no/such/dir"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "plugwarden: --ro /no/such/dir: no such file or directory; grant a path that exists \
         (the sandbox shows what is there when it starts)\n"
    );
}

#[test]
fn test_grant_of_symlink_out_of_the_tree_is_refused_and_names_the_target() {
    let dir = scratch();
    let link = dir.path().join("data");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let o = filter("/usr/bin/true", &["--ro", link.to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "plugwarden: --ro {}: reaches /etc through a symlink, and the sandbox would grant \
             /etc itself (where the plugin does not look for it): grant /etc instead\n",
            link.display()
        )
    );
}

/// A symlink inside a granted directory leads nowhere the grant does not.
#[test]
fn test_symlink_inside_a_granted_directory_does_not_reach_out() {
    let dir = scratch();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "top secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let granted = dir.path().join("granted");
    std::fs::create_dir(&granted).unwrap();
    std::fs::set_permissions(&granted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let escape = granted.join("escape");
    std::os::unix::fs::symlink(&secret, &escape).unwrap();
    let o = filter(
        "/usr/bin/cat",
        &[
            "--ro",
            granted.to_str().unwrap(),
            "--arg",
            escape.to_str().unwrap(),
        ],
        b"",
    );
    assert!(
        verdict(&o).starts_with("plugin_error: exit status 1"),
        "{}",
        stderr(&o)
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("secret"));
}

#[test]
fn test_writable_root_is_refused_with_a_sentence() {
    let o = filter("/usr/bin/true", &["--rw", "/"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with(
            "plugwarden: --rw /: the host's whole filesystem (/) is never granted for writing"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn test_manifest_grant_of_missing_path_names_the_manifest() {
    let dir = scratch();
    let manifest = dir.path().join("plugin.toml");
    std::fs::write(
        &manifest,
        "executable = \"/usr/bin/cat\"\nmode = \"filter\"\n[filesystem]\nread = [\"data\"]\n",
    )
    .unwrap();
    let o = call(&["--plugin", dir.path().to_str().unwrap()], b"");
    assert_eq!(o.status.code(), Some(2));
    let want = format!(
        "plugwarden: {}: [filesystem] read data: no such file or directory",
        manifest.display()
    );
    assert!(stderr(&o).starts_with(&want), "{}", stderr(&o));
}

/// `--ro D --rw D`: the note says `--rw` wins, and the plugin writes there
/// (a directory under the host's /tmp, bound over the private one).
#[test]
fn test_read_and_write_of_one_directory_says_write_wins_and_writes() {
    let dir = scratch();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let ds = d.to_str().unwrap();
    let out = format!("{ds}/out.txt");
    let o = filter(
        "/usr/bin/tee",
        &["--ro", ds, "--rw", ds, "--arg", &out],
        b"kept\n",
    );
    assert_eq!(verdict(&o), "ok", "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "plugwarden: note: --ro {ds} and --rw {ds}: --rw {ds} wins (read and write)\n"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"kept\n");
}

#[test]
fn test_cwd_flag_wins_over_the_manifest_and_says_so() {
    let dir = scratch();
    let d = std::fs::canonicalize(dir.path()).unwrap();
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        d.join("plugin.toml"),
        "executable = \"/usr/bin/pwd\"\nmode = \"filter\"\ncwd = \".\"\n[filesystem]\nread = [\".\"]\n",
    )
    .unwrap();
    let o = call(&["--plugin", d.to_str().unwrap()], b"");
    assert_eq!(o.stdout, format!("{}\n", d.display()).into_bytes());
    let o = call(
        &[
            "--plugin",
            d.to_str().unwrap(),
            "--cwd",
            sub.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(verdict(&o), "ok", "{}", stderr(&o));
    assert_eq!(o.stdout, format!("{}\n", sub.display()).into_bytes());
    assert!(
        stderr(&o).contains(&format!(
            "plugwarden: note: --cwd {} wins over the manifest's cwd {}\n",
            sub.display(),
            d.display()
        )),
        "{}",
        stderr(&o)
    );
}

/// A plugin directory of plugins/, copied where uid 65534 may read it.
fn staged_plugin(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = scratch();
    let to = dir.path().join(name);
    std::fs::create_dir(&to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in std::fs::read_dir(repo().join("plugins").join(name)).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
    }
    (dir, to)
}

/// Runs the plugin's command outside the sandbox, as its manifest says.
fn outside(exe: &str, args: &[&str], cwd: &Path, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(exe)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{exe} {args:?} fails outside the sandbox"
    );
    o.stdout
}

/// `plugwarden call --plugin plugins/NAME` gives what the program gives
/// outside; returns it.
fn check_plugin(name: &str, exe: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let (_dir, plugin) = staged_plugin(name);
    let o = call(&["--plugin", plugin.to_str().unwrap()], input);
    assert_eq!(verdict(&o), "ok", "{name}: {}", stderr(&o));
    assert_eq!(o.stdout, outside(exe, args, &plugin, input), "{name}");
    o.stdout
}

#[test]
fn test_plugin_pdftotext_runs_under_its_learned_policy() {
    if !installed("/usr/bin/pdftotext", "poppler-utils") {
        return;
    }
    let pdf = std::fs::read(repo().join("samples/benign.pdf")).unwrap();
    check_plugin(
        "pdftotext",
        "/usr/bin/pdftotext",
        &["-layout", "-", "-"],
        &pdf,
    );
}

#[test]
fn test_plugin_python_script_imports_its_module_from_its_directory() {
    if !installed("/usr/bin/python3", "python3") {
        return;
    }
    let text = std::fs::read(repo().join("tests/compat/text.txt")).unwrap();
    check_plugin(
        "python-script",
        "/usr/bin/python3",
        &["wordcount.py"],
        &text,
    );
}

#[test]
fn test_plugin_thumbnail_shrinks_a_jpeg() {
    if !installed("/usr/bin/convert", "imagemagick-6.q16") {
        return;
    }
    let jpeg = Command::new("/usr/bin/convert")
        .args(["-size", "400x300", "gradient:navy-gold", "jpg:-"])
        .output()
        .unwrap()
        .stdout;
    let args = [
        "-",
        "-thumbnail",
        "128x128>",
        "-strip",
        "-define",
        "png:exclude-chunks=date,time",
        "png:-",
    ];
    let png = check_plugin("thumbnail", "/usr/bin/convert", &args, &jpeg);
    // A PNG 128 pixels wide (IHDR's width, big-endian, at byte 16).
    assert!(png.starts_with(b"\x89PNG"));
    assert_eq!(png[16..20], 128u32.to_be_bytes());
}

#[test]
fn test_sanitize_takes_the_grants_and_refuses_bad_ones() {
    let dir = scratch();
    let input = dir.path().join("benign.png");
    std::fs::copy(repo().join("samples/benign.png"), &input).unwrap();
    let sanitize = |grant: &[&str]| {
        Command::new(plugwarden())
            .args(["sanitize", "--out"])
            .arg(dir.path().join("safe"))
            .args(grant)
            .arg(&input)
            .output()
            .unwrap()
    };
    let o = sanitize(&["--ro", "/no/such/dir"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("plugwarden: --ro /no/such/dir: no such file or directory"),
        "{}",
        stderr(&o)
    );
    // Said once, though both routes (images, PDFs) take it.
    let d = std::fs::canonicalize(dir.path()).unwrap();
    let d = d.to_str().unwrap();
    let o = sanitize(&["--ro", d, "--rw", d]);
    assert!(o.status.success(), "{}", stderr(&o));
    let note = format!("--rw {d} wins");
    assert_eq!(stderr(&o).matches(&note).count(), 1, "{}", stderr(&o));
    assert!(dir.path().join("safe/benign.png.safe.png").exists());
}

#[test]
fn test_learn_on_a_program_that_never_succeeds_writes_no_policy() {
    let dir = scratch();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "x").unwrap();
    let o = Command::new(plugwarden())
        .args(["learn", "--mode", "filter", "--plugin", "/usr/bin/false"])
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        stderr(&o).contains(
            "learn: false did not succeed on any input while observed (see each verdict above), \
             so there is nothing to learn from: no policy written."
        ),
        "{}",
        stderr(&o)
    );
}
