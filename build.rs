//! Build information for `plugwarden --version`: the git commit and the
//! target. Two facts from `git` and cargo's environment are not worth a
//! build-time crate (and its compile time on CI's two cores).
//!
//! The commit comes from, in order: `PLUGWARDEN_BUILD_COMMIT` (for builds
//! without `.git`: a distribution's tarball, the container build), the
//! `.cargo_vcs_info.json` that `cargo package` writes (a `cargo install
//! plugwarden` from crates.io), `git rev-parse HEAD` in a checkout, or
//! `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    for var in ["TARGET", "PROFILE"] {
        let value = std::env::var(var).unwrap_or_default();
        println!("cargo:rustc-env=PW_BUILD_{var}={value}");
    }
    println!("cargo:rustc-env=PW_BUILD_COMMIT={}", commit());
    println!("cargo:rerun-if-env-changed=PLUGWARDEN_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    // HEAD's reflog grows on every commit and checkout, also in a worktree.
    if let Some(log) = git(&["rev-parse", "--git-path", "logs/HEAD"]) {
        if Path::new(&log).exists() {
            println!("cargo:rerun-if-changed={log}");
        }
    }
}

fn commit() -> String {
    if let Some(c) = std::env::var("PLUGWARDEN_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
    {
        return c;
    }
    vcs_info_sha1()
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".into())
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// `"sha1": "<40 hex>"` from `.cargo_vcs_info.json`.
fn vcs_info_sha1() -> Option<String> {
    let text = std::fs::read_to_string(".cargo_vcs_info.json").ok()?;
    let rest = &text[text.find("\"sha1\"")? + 6..];
    let hex = rest.split('"').nth(1)?;
    (hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| hex.to_string())
}
