use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use super::paths::wildcard_match;
use super::shebang::Shebang;
use super::*;

#[cfg(target_arch = "x86_64")]
const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";
#[cfg(target_arch = "aarch64")]
const LD_SO: &str = "/lib/ld-linux-aarch64.so.1";

fn canonical(path: &str) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn system_lib(name: &str) -> PathBuf {
    canonical(&format!("/lib/{MULTIARCH}/{name}"))
}

fn python_libs() -> Vec<PathBuf> {
    ["libm.so.6", "libz.so.1", "libexpat.so.1", "libc.so.6"]
        .into_iter()
        .map(system_lib)
        .collect()
}

fn write_executable(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    fs::canonicalize(path).unwrap()
}

/// A copy of /bin/true whose `DT_NEEDED` string "libc.so.6" is replaced by
/// `needed` (same length, so nothing else moves).
fn true_needing(dir: &Path, needed: &[u8; 9]) -> PathBuf {
    let mut bytes = fs::read("/bin/true").unwrap();
    let at = bytes
        .windows(10)
        .position(|window| window == b"libc.so.6\0")
        .unwrap();
    bytes[at..at + 9].copy_from_slice(needed);
    write_executable(dir, "true-patched", &bytes)
}

/// Runs gcc; `None` (with the reason printed) when it is missing or fails.
fn gcc(dir: &Path, args: &[&str]) -> Option<()> {
    let status = Command::new("gcc").current_dir(dir).args(args).status();
    match status {
        Ok(status) if status.success() => Some(()),
        other => {
            println!("not applicable: gcc {args:?} did not build ({other:?})");
            None
        }
    }
}

/// What glibc's own loader maps for `path`, from `ldd`.
fn ldd_paths(path: &str) -> Option<BTreeSet<PathBuf>> {
    let Ok(output) = Command::new("ldd").arg(path).output() else {
        println!("not applicable: ldd is not installed");
        return None;
    };
    let text = String::from_utf8(output.stdout).unwrap();
    let paths = text
        .lines()
        .filter_map(|line| {
            let target = line
                .split_once("=>")
                .map_or(line, |(_, right)| right)
                .trim();
            let path = target.split(" (").next()?;
            path.starts_with('/').then(|| canonical(path))
        })
        .collect();
    Some(paths)
}

fn assert_matches_ldd(path: &str) {
    let Some(expected) = ldd_paths(path) else {
        return;
    };
    let deps = exec_dependencies(Path::new(path)).unwrap();
    let cache = canonical(LD_SO_CACHE);
    let exe = canonical(path);
    let found: BTreeSet<PathBuf> = deps
        .exec
        .into_iter()
        .chain(deps.read)
        .filter(|p| *p != cache && *p != exe)
        .collect();
    assert_eq!(found, expected);
}

#[test]
fn test_exec_dependencies_dynamic_binary_grants_interpreter_and_libc() {
    let interpreter = canonical(LD_SO);

    let deps = exec_dependencies(Path::new("/bin/true")).unwrap();

    assert!(interpreter.starts_with("/usr/lib"), "{interpreter:?}");
    let expected = ExecDeps {
        exec: vec![canonical("/bin/true"), interpreter],
        read: vec![system_lib("libc.so.6"), canonical(LD_SO_CACHE)],
        is_script: false,
        is_static: false,
    };
    assert_eq!(deps, expected);
}

#[test]
fn test_exec_dependencies_python_grants_its_libraries_in_load_order() {
    let deps = exec_dependencies(Path::new("/usr/bin/python3")).unwrap();

    let mut read = python_libs();
    read.push(canonical(LD_SO_CACHE));
    assert_eq!(
        deps.exec,
        vec![canonical("/usr/bin/python3.11"), canonical(LD_SO)]
    );
    assert_eq!(deps.read, read);
}

#[test]
fn test_exec_dependencies_python_matches_ldd() {
    assert_matches_ldd("/usr/bin/python3.11");
}

#[test]
fn test_exec_dependencies_curl_matches_ldd() {
    assert_matches_ldd("/usr/bin/curl");
}

#[test]
fn test_exec_dependencies_ssh_matches_ldd() {
    assert_matches_ldd("/usr/bin/ssh");
}

#[test]
fn test_exec_dependencies_python_script_grants_script_and_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_executable(dir.path(), "plugin.py", b"#!/usr/bin/python3\nprint(1)\n");

    let deps = exec_dependencies(&script).unwrap();

    let mut read = python_libs();
    read.push(canonical(LD_SO_CACHE));
    let expected = ExecDeps {
        exec: vec![script, canonical("/usr/bin/python3.11"), canonical(LD_SO)],
        read,
        is_script: true,
        is_static: false,
    };
    assert_eq!(deps, expected);
}

#[test]
fn test_exec_dependencies_env_script_grants_env_and_command() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"#!/usr/bin/env python3\nprint(1)\n";
    let script = write_executable(dir.path(), "plugin.py", text);

    let deps = exec_dependencies(&script).unwrap();

    let exec = vec![
        script,
        canonical("/usr/bin/env"),
        canonical(LD_SO),
        canonical("/usr/bin/python3.11"),
    ];
    assert_eq!(deps.exec, exec);
    assert!(deps.is_script);
    assert!(python_libs().iter().all(|lib| deps.read.contains(lib)));
}

#[test]
fn test_exec_dependencies_env_split_string_finds_command() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"#!/usr/bin/env -S -i PYTHONSAFEPATH=1 python3 -u\n";
    let script = write_executable(dir.path(), "plugin.py", text);

    let deps = exec_dependencies(&script).unwrap();

    assert!(deps.exec.contains(&canonical("/usr/bin/python3.11")));
}

#[test]
fn test_exec_dependencies_every_path_exists_is_canonical_and_unique() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"#!/usr/bin/env python3\nprint(1)\n";
    let script = write_executable(dir.path(), "plugin.py", text);

    let deps = exec_dependencies(&script).unwrap();

    let all: Vec<&PathBuf> = deps.exec.iter().chain(&deps.read).collect();
    let bad: Vec<&&PathBuf> = all
        .iter()
        .filter(|p| !p.is_file() || fs::canonicalize(p).ok().as_ref() != Some(**p))
        .collect();
    let unique: HashSet<&&PathBuf> = all.iter().collect();
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(unique.len(), all.len(), "{all:?}");
}

#[test]
fn test_exec_dependencies_static_binary_grants_only_itself() {
    // Debian's ldconfig is static-pie: ET_DYN without PT_INTERP.
    let Ok(ldconfig) = fs::canonicalize("/sbin/ldconfig") else {
        println!("not applicable: /sbin/ldconfig, a static binary, is not installed");
        return;
    };

    let deps = exec_dependencies(&ldconfig).unwrap();

    let expected = ExecDeps {
        exec: vec![ldconfig],
        read: vec![],
        is_script: false,
        is_static: true,
    };
    assert_eq!(deps, expected);
}

#[test]
fn test_exec_dependencies_origin_runpath_finds_private_library() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("lib")).unwrap();
    fs::write(dir.path().join("demo.c"), "int demo(void) { return 1; }\n").unwrap();
    fs::write(
        dir.path().join("main.c"),
        "int demo(void);\nint main(void) { return demo(); }\n",
    )
    .unwrap();
    let built = gcc(
        dir.path(),
        &["-shared", "-fPIC", "-o", "lib/libdemo.so", "demo.c"],
    )
    .and_then(|()| {
        gcc(
            dir.path(),
            &[
                "-o",
                "main",
                "main.c",
                "-Llib",
                "-ldemo",
                "-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib",
            ],
        )
    });
    if built.is_none() {
        return;
    }

    let deps = exec_dependencies(&dir.path().join("main")).unwrap();

    let private = fs::canonicalize(dir.path().join("lib/libdemo.so")).unwrap();
    assert_eq!(deps.read.first(), Some(&private));
}

#[test]
fn test_exec_dependencies_rpath_is_inherited_but_runpath_is_not() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("lib")).unwrap();
    fs::write(
        dir.path().join("inner.c"),
        "int inner(void) { return 1; }\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("outer.c"),
        "int inner(void);\nint outer(void) { return inner(); }\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("main.c"),
        "int outer(void);\nint main(void) { return outer(); }\n",
    )
    .unwrap();
    let link = |dtags: &str, out: &str| {
        let flags = format!("-Wl,{dtags},-rpath,$ORIGIN/lib,-rpath-link,lib");
        gcc(
            dir.path(),
            &["-o", out, "main.c", "-Llib", "-louter", &flags],
        )
    };
    let built = gcc(
        dir.path(),
        &["-shared", "-fPIC", "-o", "lib/libinner.so", "inner.c"],
    )
    .and_then(|()| {
        gcc(
            dir.path(),
            &[
                "-shared",
                "-fPIC",
                "-o",
                "lib/libouter.so",
                "outer.c",
                "-Llib",
                "-linner",
            ],
        )
    })
    .and_then(|()| link("--disable-new-dtags", "main-rpath"))
    .and_then(|()| link("--enable-new-dtags", "main-runpath"));
    if built.is_none() {
        return;
    }

    let with_rpath = exec_dependencies(&dir.path().join("main-rpath")).unwrap();
    let with_runpath = exec_dependencies(&dir.path().join("main-runpath"));

    let inner = fs::canonicalize(dir.path().join("lib/libinner.so")).unwrap();
    assert!(with_rpath.read.contains(&inner), "{:?}", with_rpath.read);
    assert!(
        matches!(with_runpath, Err(ElfError::LibraryNotFound { ref name, .. }) if name == "libinner.so"),
        "{with_runpath:?}"
    );
}

#[test]
fn test_exec_dependencies_origin_needed_path_finds_library() {
    let dir = tempfile::tempdir().unwrap();
    let exe = true_needing(dir.path(), b"$ORIGIN/x");
    fs::copy(system_lib("libc.so.6"), dir.path().join("x")).unwrap();

    let deps = exec_dependencies(&exe).unwrap();

    assert_eq!(
        deps.read.first(),
        Some(&fs::canonicalize(dir.path().join("x")).unwrap())
    );
}

#[test]
fn test_exec_dependencies_missing_library_names_it_and_the_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let exe = true_needing(dir.path(), b"libq.so.6");

    let err = exec_dependencies(&exe).unwrap_err();

    let message = err.to_string();
    assert!(
        matches!(err, ElfError::LibraryNotFound { ref name, .. } if name == "libq.so.6"),
        "{err:?}"
    );
    assert!(
        message.contains(&format!("/usr/lib/{MULTIARCH}")),
        "{message}"
    );
    assert!(
        message.ends_with("install it or make the plugin static"),
        "{message}"
    );
}

#[test]
fn test_exec_dependencies_garbage_file_returns_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_executable(
        dir.path(),
        "garbage",
        b"this is not a program\n\x00\x01\x02",
    );

    let result = exec_dependencies(&path);

    assert!(
        matches!(result, Err(ElfError::NotExecutable { .. })),
        "{result:?}"
    );
}

#[test]
fn test_exec_dependencies_empty_file_returns_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_executable(dir.path(), "empty", b"");

    let result = exec_dependencies(&path);

    assert!(
        matches!(result, Err(ElfError::NotExecutable { .. })),
        "{result:?}"
    );
}

#[test]
fn test_exec_dependencies_truncated_elf_returns_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read("/bin/true").unwrap();
    let path = write_executable(dir.path(), "truncated", &bytes[..100]);

    let result = exec_dependencies(&path);

    assert!(matches!(result, Err(ElfError::Parse { .. })), "{result:?}");
}

#[test]
fn test_exec_dependencies_elf_magic_only_returns_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_executable(dir.path(), "magic", b"\x7fELF");

    let result = exec_dependencies(&path);

    assert!(matches!(result, Err(ElfError::Parse { .. })), "{result:?}");
}

#[test]
fn test_exec_dependencies_corrupted_headers_never_panic() {
    // A loop on purpose: one corrupted byte per run over the ELF header,
    // the program headers and the dynamic section.
    let dir = tempfile::tempdir().unwrap();
    let original = fs::read("/bin/true").unwrap();
    let path = dir.path().join("corrupt");
    let dynamic = original
        .windows(16)
        .position(|w| w == [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
        .unwrap_or(0);
    let offsets = (0..800).chain(dynamic..(dynamic + 512).min(original.len()));
    let outcomes: Vec<bool> = offsets
        .map(|offset| {
            let mut bytes = original.clone();
            bytes[offset] ^= 0xff;
            fs::write(&path, &bytes).unwrap();
            exec_dependencies(&path).is_ok()
        })
        .collect();

    assert!(outcomes.iter().any(|ok| !ok));
}

#[test]
fn test_exec_dependencies_nonexistent_path_returns_io_error() {
    let result = exec_dependencies(Path::new("/nonexistent/plugwarden/plugin"));

    assert!(matches!(result, Err(ElfError::Io { .. })), "{result:?}");
}

#[test]
fn test_exec_dependencies_directory_returns_not_a_file() {
    let result = exec_dependencies(Path::new("/usr/bin"));

    assert!(
        matches!(result, Err(ElfError::NotAFile { .. })),
        "{result:?}"
    );
}

#[test]
fn test_exec_dependencies_missing_script_interpreter_returns_error() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_executable(dir.path(), "s", b"#!/usr/bin/no-such-python\n");

    let result = exec_dependencies(&script);

    assert!(
        matches!(result, Err(ElfError::ScriptInterpreterMissing { .. })),
        "{result:?}"
    );
}

#[test]
fn test_exec_dependencies_env_missing_command_returns_error() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_executable(dir.path(), "s", b"#!/usr/bin/env no-such-command-xyz\n");

    let result = exec_dependencies(&script);

    assert!(
        matches!(result, Err(ElfError::EnvCommandNotFound { .. })),
        "{result:?}"
    );
}

#[test]
fn test_exec_dependencies_relative_shebang_returns_bad_shebang() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_executable(dir.path(), "s", b"#!python3\n");

    let result = exec_dependencies(&script);

    assert!(
        matches!(result, Err(ElfError::BadShebang { .. })),
        "{result:?}"
    );
}

/// Writes s0 (`#!/bin/sh`) and s1..=s`last`, each running the one before.
fn script_chain(dir: &Path, last: usize) -> PathBuf {
    let mut path = write_executable(dir, "s0", b"#!/bin/sh\necho ok\n");
    for i in 1..=last {
        let text = format!("#!{}\n", path.display());
        path = write_executable(dir, &format!("s{i}"), text.as_bytes());
    }
    path
}

#[test]
fn test_exec_dependencies_four_nested_scripts_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let top = script_chain(dir.path(), 3);

    let deps = exec_dependencies(&top).unwrap();

    assert!(deps.exec.contains(&canonical("/bin/sh")), "{:?}", deps.exec);
}

#[test]
fn test_exec_dependencies_five_nested_scripts_return_too_deep() {
    let dir = tempfile::tempdir().unwrap();
    let top = script_chain(dir.path(), 4);

    let result = exec_dependencies(&top);

    assert!(
        matches!(result, Err(ElfError::ScriptTooDeep { .. })),
        "{result:?}"
    );
}

#[test]
fn test_parse_shebang_interpreter_and_argument_split_at_first_blank() {
    let shebang = parse_shebang(b"#! \t/usr/bin/env  -S python3 -u \t\nrest").unwrap();

    let expected = Shebang {
        interpreter: b"/usr/bin/env".to_vec(),
        argument: Some(b"-S python3 -u".to_vec()),
    };
    assert_eq!(shebang, expected);
}

#[test]
fn test_parse_shebang_without_newline_uses_whole_file() {
    let shebang = parse_shebang(b"#!/bin/sh").unwrap();

    let expected = Shebang {
        interpreter: b"/bin/sh".to_vec(),
        argument: None,
    };
    assert_eq!(shebang, expected);
}

#[test]
fn test_parse_shebang_truncated_interpreter_returns_error() {
    let mut head = b"#!/".to_vec();
    head.resize(SHEBANG_BUF, b'a');

    let result = parse_shebang(&head);

    assert!(result.is_err());
}

#[test]
fn test_parse_shebang_blank_line_returns_error() {
    let result = parse_shebang(b"#!  \n/bin/sh");

    assert!(result.is_err());
}

#[test]
fn test_env_command_plain_argument_is_one_command() {
    let command = env_command(Some(b"python3 -u")).unwrap();

    assert_eq!(command, Some(OsString::from("python3 -u")));
}

#[test]
fn test_env_command_split_string_skips_options_and_assignments() {
    let command = env_command(Some(b"-S -i -u HOME A=b python3 -u")).unwrap();

    assert_eq!(command, Some(OsString::from("python3")));
}

#[test]
fn test_env_command_unknown_option_returns_error() {
    let result = env_command(Some(b"-S --frobnicate python3"));

    assert!(result.is_err());
}

#[test]
fn test_expand_dst_origin_forms_expand_and_lookalikes_stay() {
    let origin = Path::new("/opt/app");

    let expanded = expand_dst(b"$ORIGIN/a ${ORIGIN}/b $ORIGINAL $LIB/c $FOO", origin);

    let expected = format!("/opt/app/a /opt/app/b $ORIGINAL lib/{MULTIARCH}/c $FOO");
    assert_eq!(String::from_utf8(expanded).unwrap(), expected);
}

#[test]
fn test_expand_search_list_drops_empty_and_relative_entries() {
    let dirs = expand_search_list(OsStr::new("$ORIGIN/lib::rel:/abs/"), Path::new("/o"));

    assert_eq!(dirs, vec![PathBuf::from("/o/lib"), PathBuf::from("/abs/")]);
}

#[test]
fn test_wildcard_match_star_and_question_mark() {
    assert!(wildcard_match(b"*.conf", b"libc.conf"));
    assert!(wildcard_match(b"lib?.c*f", b"libc.conf"));
    assert!(!wildcard_match(b"*.conf", b"libc.conf.bak"));
    assert!(!wildcard_match(b"*.conf", b".hidden.conf"));
}

#[test]
fn test_read_ld_so_conf_follows_relative_include_globs_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("conf.d")).unwrap();
    let main = "# comment\n/first/ # trailing\ninclude conf.d/*.conf\nhwcap 0 nosegneg\n/last\n";
    fs::write(root.join("ld.so.conf"), main).unwrap();
    fs::write(root.join("conf.d/b.conf"), "/from-b\n").unwrap();
    fs::write(root.join("conf.d/a.conf"), "/from-a\n/first\n").unwrap();
    fs::write(root.join("conf.d/c.txt"), "/ignored\n").unwrap();

    let dirs = read_ld_so_conf(&root.join("ld.so.conf"));

    let expected: Vec<PathBuf> = ["/first", "/from-a", "/from-b", "/last"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(dirs, expected);
}

#[test]
fn test_read_ld_so_conf_self_include_stops() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("loop.conf");
    fs::write(&conf, "/d\ninclude loop.conf\n").unwrap();

    let dirs = read_ld_so_conf(&conf);

    assert_eq!(dirs, vec![PathBuf::from("/d")]);
}
