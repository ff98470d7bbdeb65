//! Fuzz check for the policy parser: arbitrary UTF-8 never makes
//! `policy::resolve` panic, and every policy it accepts compiles to seccomp
//! programs for both architectures and keeps the limits `validate` promises.
//!
//! Inputs that are not UTF-8 are skipped (a policy is read as a string).
//! Inputs whose `extends` names a file rather than a built-in policy are
//! skipped too, so the check never reads the disk and gives the same answer
//! under the fuzzer (run in fuzz/) and in the replay test (run in the root).

use plugwarden::policy::groups::{self, Arch};
use plugwarden::policy::{self, Origin, BUILTIN};
use plugwarden::seccomp;

/// Panics if resolving `data` as a policy file misbehaves.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Origin::File("fuzz.toml".into());
    if let Ok(file) = policy::parse(&origin, text) {
        if let Some(parent) = &file.extends {
            if !BUILTIN.iter().any(|(name, _)| name == parent.get_ref()) {
                return;
            }
        }
    }
    let policy = match policy::resolve(origin, text) {
        Ok(policy) => policy,
        Err(error) => {
            // Rendering the message must not panic either.
            let _ = error.to_string();
            return;
        }
    };
    let limits = &policy.limits;
    assert!(
        !limits.wall.is_zero() && !limits.cpu.is_zero(),
        "zero time limit accepted"
    );
    assert!(
        limits.memory >= 16 << 20,
        "memory limit of {} bytes accepted",
        limits.memory
    );
    assert!(
        limits.open_files >= 4,
        "open_files of {} accepted",
        limits.open_files
    );
    assert!(
        limits.max_frame >= 4096,
        "max_frame of {} accepted",
        limits.max_frame
    );
    assert!(policy.worker.batch >= 1, "worker.batch of 0 accepted");
    for name in &policy.syscalls.allow {
        assert!(
            groups::number(Arch::X86_64, name).is_some()
                || groups::number(Arch::Aarch64, name).is_some(),
            "allowed syscall {name:?} exists on neither architecture"
        );
    }
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let filters = seccomp::compile(&policy.syscalls, limits.processes, arch, Some(1 << 20))
            .unwrap_or_else(|e| panic!("accepted policy does not compile for {arch:?}: {e}"));
        assert!(!filters.is_empty(), "empty seccomp program");
    }
}
