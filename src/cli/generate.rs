//! `plugwarden completions SHELL` and `plugwarden man`: shell completions
//! (clap_complete) and manual pages (clap_mangen), generated from the same
//! clap definitions the parser uses, so they never drift from it. The
//! Debian package ships their output (packaging/deb/build.sh).

use std::path::PathBuf;

use clap::Args;
use clap_complete::Shell;

use super::{Usage, EXIT_OK};

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Write plugwarden.1 and a page per subcommand (plugwarden-sanitize.1,
    /// …) into DIR instead of printing plugwarden.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub fn completions(a: CompletionsArgs) -> Result<u8, Usage> {
    super::policy::quiet_on_closed_stdout();
    let mut cmd = super::command();
    clap_complete::generate(a.shell, &mut cmd, "plugwarden", &mut std::io::stdout());
    Ok(EXIT_OK)
}

pub fn man(a: ManArgs) -> Result<u8, Usage> {
    super::policy::quiet_on_closed_stdout();
    let cmd = super::command();
    match a.dir {
        Some(dir) => clap_mangen::generate_to(cmd, &dir).map_err(|e| {
            Usage(format!(
                "cannot write the manual pages into {}: {e}",
                dir.display()
            ))
        })?,
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(|e| Usage(format!("cannot write the manual page: {e}")))?,
    }
    Ok(EXIT_OK)
}
