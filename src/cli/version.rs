//! Build information: `plugwarden --version` (text) and `plugwarden version
//! --json` (for scripts). The commit and target come from build.rs; the
//! Landlock and seccomp lines say what this build knows how to use, whatever
//! the kernel it runs on offers (`plugwarden doctor` says that).

use std::sync::LazyLock;

use clap::Args;
use plugwarden::kernel::{self, Feature};
use serde::Serialize;

use super::{Usage, EXIT_OK};

#[derive(Args)]
pub struct VersionArgs {
    /// Print the build information as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What this binary is and what it was built for.
#[derive(Serialize)]
pub struct BuildInfo {
    version: &'static str,
    commit: &'static str,
    target: &'static str,
    profile: &'static str,
    /// Cargo features this binary was built with (`sanitize`: the sanitize
    /// plugins were built beside it).
    features: Vec<&'static str>,
    /// The oldest kernel it runs on.
    kernel_floor: String,
    landlock: Landlock,
    seccomp: Seccomp,
}

#[derive(Serialize)]
struct Landlock {
    /// The Landlock ABIs it can use; an older one is covered wall by wall.
    oldest_abi: u8,
    newest_abi: u8,
}

#[derive(Serialize)]
struct Seccomp {
    /// The architecture its filters are compiled for.
    arch: &'static str,
    /// Calls of any other ABI on this machine (i386 and x32 on x86_64,
    /// arm on aarch64) that the filters refuse.
    refused_abis: &'static [&'static str],
    /// The seccomp features it uses, with the Linux release that brought each.
    features: Vec<String>,
}

pub fn build_info() -> BuildInfo {
    let refused_abis: &[&str] = if cfg!(target_arch = "x86_64") {
        &["i386", "x32"]
    } else {
        &["arm"]
    };
    BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        commit: env!("PW_BUILD_COMMIT"),
        target: env!("PW_BUILD_TARGET"),
        profile: env!("PW_BUILD_PROFILE"),
        features: [("sanitize", cfg!(feature = "sanitize"))]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect(),
        kernel_floor: format!("{}.{}", kernel::FLOOR.0, kernel::FLOOR.1),
        landlock: Landlock {
            oldest_abi: 1,
            newest_abi: kernel::LANDLOCK_NEWEST,
        },
        seccomp: Seccomp {
            arch: std::env::consts::ARCH,
            refused_abis,
            features: [Feature::UserNotif, Feature::NotifContinue]
                .iter()
                .map(|f| format!("{} (Linux {}.{})", f.name(), f.since().0, f.since().1))
                .collect(),
        },
    }
}

/// The text of `--version`, made once (clap wants a `'static` string).
pub fn long_version() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        let b = build_info();
        let (old, new) = (b.landlock.oldest_abi, b.landlock.newest_abi);
        let since = |abi| {
            let (major, minor) = kernel::landlock_since(abi);
            format!("{major}.{minor}")
        };
        let features = if b.features.is_empty() {
            "none".to_string()
        } else {
            b.features.join(", ")
        };
        format!(
            "{}\ncommit:   {}\ntarget:   {} ({})\nfeatures: {features}\nkernel:   Linux {} or later\nlandlock: ABI {old} to {new} (Linux {} to {})\nseccomp:  {} filters ({} calls refused); {}",
            b.version,
            b.commit,
            b.target,
            b.profile,
            b.kernel_floor,
            since(old),
            since(new),
            b.seccomp.arch,
            b.seccomp.refused_abis.join(" and "),
            b.seccomp.features.join(", "),
        )
    });
    &TEXT
}

pub fn run(a: VersionArgs) -> Result<u8, Usage> {
    super::policy::quiet_on_closed_stdout();
    if a.json {
        println!("{}", serde_json::to_string(&build_info())?);
    } else {
        println!("plugwarden {}", long_version());
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_long_version_names_commit_target_landlock_and_seccomp() {
        let text = long_version();
        assert!(text.starts_with(env!("CARGO_PKG_VERSION")), "{text}");
        for head in ["commit:", "target:", "landlock: ABI 1 to", "seccomp:  "] {
            assert!(text.contains(head), "{head} missing in {text}");
        }
        assert!(text.contains("seccomp user notification (Linux 5.0)"));
    }
}
