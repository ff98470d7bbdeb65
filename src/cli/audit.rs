//! `plugwarden audit`: commands on audit logs written by `run --audit`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{Usage, EXIT_OK, EXIT_VERDICT};

#[derive(Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain: prints OK and the record count, or names the
    /// first record that was edited, removed, inserted or reordered (exit 1).
    Verify {
        /// The audit log (JSON lines).
        file: PathBuf,
    },
}

pub fn audit(a: AuditArgs) -> Result<u8, Usage> {
    match a.command {
        AuditCommand::Verify { file } => match plugwarden::audit::verify(&file) {
            Ok(summary) => {
                println!(
                    "OK: {} records, last hash {}",
                    summary.records, summary.last_hash
                );
                Ok(EXIT_OK)
            }
            Err(e) => {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(": ");
                    msg.push_str(&s.to_string());
                    source = s.source();
                }
                eprintln!("plugwarden: {msg}");
                Ok(EXIT_VERDICT)
            }
        },
    }
}
