//! `plugwarden sanitize`: hostile PDFs and images in, pixels-only files out.
//!
//! Each input's type is found from its bytes ([`plugwarden::sanitize::detect`]),
//! then it goes to one of two pools: images to `pw-image-sanitize` under the
//! `image` policy, PDFs to `pw-pdf-sanitize` under `pdf`. Each plugin parses
//! the hostile file in its sandbox and returns raw pixels; the host checks
//! them byte for byte and writes a brand-new PNG or PDF that holds nothing
//! else. Everything else about the batch (recycling, quarantine, audit,
//! resume, progress, summary) is `plugwarden run`'s.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use plugwarden::sandbox::{Enforce, Mode, PluginSpec, Sandbox};
use plugwarden::sanitize::{self, Limits, Sanitizer};
use plugwarden::Verdict;

use super::run::{self, Batch, BatchArgs};
use super::{parse_duration, start_fork_server, Usage};

/// The two routes, in pool order.
const ROUTES: [Sanitizer; 2] = [Sanitizer::Image, Sanitizer::Pdf];

#[derive(Args)]
pub struct SanitizeArgs {
    /// Where the safe files go: DIR/<name>.safe.png or DIR/<name>.safe.pdf.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Resolution PDF pages are rendered at.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u32).range(18..=600))]
    pub dpi: u32,
    /// Wall-clock limit per input (overrides the policies).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Directory holding pw-image-sanitize and pw-pdf-sanitize (default: next to this
    /// program, then ../lib/plugwarden from it).
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    #[command(flatten)]
    pub batch: BatchArgs,
    #[command(flatten)]
    pub grants: super::GrantArgs,
}

/// Where the sanitize plugins are looked for: `--plugins DIR`, or beside
/// this program (`cargo install`, target/release) and then in
/// `../lib/plugwarden` from it (the Debian package's /usr/lib/plugwarden).
fn plugin_dirs(given: Option<&Path>) -> Result<Vec<PathBuf>, Usage> {
    if let Some(d) = given {
        return Ok(vec![d.to_path_buf()]);
    }
    let exe = std::env::current_exe().map_err(|e| {
        Usage(format!(
            "cannot find this program's path ({e}); pass --plugins DIR"
        ))
    })?;
    let bin = exe.parent().unwrap_or(Path::new("/"));
    let prefix = bin.parent().unwrap_or(bin);
    Ok(vec![bin.to_path_buf(), prefix.join("lib/plugwarden")])
}

/// The plugin's executable from the first directory that has it, checked
/// like any `--plugin` (executable, replaceable by no other user).
fn find_plugin(s: Sanitizer, dirs: &[PathBuf]) -> Result<PathBuf, Usage> {
    let name = s.plugin_name();
    match dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
        Some(exe) => Ok(plugwarden::manifest::locate(&exe)?.exe),
        None => Err(Usage(format!(
            "the sanitize plugin {name} is missing (looked in {}): install plugwarden with its default features (`cargo install --path .` from a checkout), build it with `cargo build --release --workspace`, or pass --plugins DIR",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn sandbox_for(
    s: Sanitizer,
    dirs: &[PathBuf],
    a: &SanitizeArgs,
    fs: &Arc<plugwarden::forkserver::ForkServer>,
) -> Result<Arc<Sandbox>, Usage> {
    let exe = find_plugin(s, dirs)?;
    let mut policy = plugwarden::policy::load(s.policy_name())?;
    if let Some(t) = a.timeout {
        policy.limits.wall = t;
    }
    if let Some(b) = a.batch.batch {
        policy.worker.batch = b;
    }
    // The same grants for both routes; their notes said once.
    let (cwd, notes) = a.grants.applied(&Default::default(), &mut policy)?;
    if s == ROUTES[0] {
        for n in notes {
            eprintln!("plugwarden: note: {n}");
        }
    }
    let args = match s {
        Sanitizer::Pdf => vec!["--dpi".to_string(), a.dpi.to_string()],
        Sanitizer::Image => Vec::new(),
    };
    let plugin = PluginSpec {
        exe,
        args,
        mode: Mode::Worker,
        env: Vec::new(),
        cwd,
    };
    Ok(Arc::new(Sandbox::new(
        fs.clone(),
        plugin,
        Arc::new(policy),
        Enforce::Policy,
    )?))
}

/// `photo.jpg` → `photo.jpg.safe.png`: the original name stays visible,
/// the extension says what the file now is.
fn safe_name(rel: &Path, ext: &str) -> PathBuf {
    let mut name = rel
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".safe.{ext}"));
    rel.with_file_name(name)
}

pub fn sanitize(a: SanitizeArgs) -> Result<u8, Usage> {
    run::check_inputs(&a.batch.inputs)?;
    run::check_out_dir(&a.out)?;
    run::ignore_sigint_for_children();
    let dirs = plugin_dirs(a.plugins.as_deref())?;
    let fs = start_fork_server()?;
    let sandboxes = ROUTES
        .iter()
        .map(|s| sandbox_for(*s, &dirs, &a, &fs))
        .collect::<Result<Vec<_>, _>>()?;
    let limits = Limits {
        dpi: a.dpi,
        ..Limits::default()
    };
    let router = |bytes: &[u8]| {
        let kind = sanitize::detect(bytes);
        match kind.sanitizer() {
            Some(s) => Ok(ROUTES.iter().position(|r| *r == s).unwrap_or(0)),
            None => Err(Verdict::Unsupported(kind.describe().to_string())),
        }
    };
    let convert = move |route: usize, rel: &Path, pixels: Vec<u8>| {
        let s = ROUTES[route.min(ROUTES.len() - 1)];
        let result = match s {
            Sanitizer::Image => {
                sanitize::png_from_plugin_output(&pixels, &limits).map(|(png, _, _)| png)
            }
            Sanitizer::Pdf => {
                sanitize::pdf_from_plugin_output(&pixels, &limits).map(|(pdf, _)| pdf)
            }
        };
        match result {
            Ok(bytes) => Ok((bytes, safe_name(rel, s.output_extension()))),
            Err(e) if e.is_protocol_error() => Err(Verdict::ProtocolError(e.to_string())),
            Err(e) => Err(Verdict::InputError(format!(
                "cannot write the safe file: {e}"
            ))),
        }
    };
    run::drive(Batch {
        sandboxes,
        router: Box::new(router),
        convert: Some(Box::new(convert)),
        out: Some(a.out),
        args: a.batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_safe_name_keeps_name_and_adds_kind() {
        assert_eq!(
            safe_name(Path::new("a/photo.jpg"), "png"),
            PathBuf::from("a/photo.jpg.safe.png")
        );
    }
}
