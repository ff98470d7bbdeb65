//! `plugwarden audit`: commands on audit logs written by `run --audit`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use plugwarden::merge::{self, Origin, Report, Status, StatusRow, MAX_LISTED};
use serde_json::json;

use super::run::error_chain;
use super::{Usage, EXIT_OK, EXIT_USAGE, EXIT_VERDICT};

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
    /// Merge the logs of a sharded job (`run --shard`) into one chain, once
    /// they prove every input judged exactly once; else say what is missing
    /// or judged twice (exit 1) and write nothing.
    Merge {
        /// Every shard's audit log.
        #[arg(required = true, value_name = "SHARD_LOG")]
        logs: Vec<PathBuf>,
        /// The job's INPUT arguments, in the same order, as seen from here:
        /// walked to find the inputs no shard judged.
        #[arg(long, num_args = 1.., value_name = "ROOT")]
        inputs: Option<Vec<PathBuf>>,
        /// The merged log to write (a new file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Progress of a sharded job, running or not: per shard and in total,
    /// inputs done, failed (a verdict other than ok) and remaining.
    Status {
        /// The shard logs written so far.
        #[arg(required = true, value_name = "SHARD_LOG")]
        logs: Vec<PathBuf>,
        /// The job's INPUT arguments, walked to count each shard's inputs
        /// (else a shard's total is known once it has finished).
        #[arg(long, num_args = 1.., value_name = "ROOT")]
        inputs: Option<Vec<PathBuf>>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
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
                eprintln!("plugwarden: {}", error_chain(&e));
                Ok(EXIT_VERDICT)
            }
        },
        AuditCommand::Merge { logs, inputs, out } => {
            let origins: Vec<Origin> = logs.iter().map(|p| Origin::File(p)).collect();
            match merge::merge(&origins, inputs.as_deref(), &out) {
                Ok((report, Some(merged))) => {
                    println!(
                        "OK: {} shards, {} inputs each judged once ({} failed); {} written: {} records, last hash {}",
                        report.shards.len(),
                        report.done(),
                        report.shards.iter().map(|s| s.failed).sum::<u64>(),
                        out.display(),
                        merged.records,
                        merged.last_hash
                    );
                    Ok(EXIT_OK)
                }
                Ok((report, None)) => {
                    print_gaps(&report);
                    eprintln!("plugwarden: nothing written: the logs do not prove every input judged exactly once");
                    Ok(EXIT_VERDICT)
                }
                Err(
                    e @ (merge::MergeError::Exists { .. } | merge::MergeError::RootsCount { .. }),
                ) => Err(Usage(error_chain(&e))),
                Err(e) => {
                    eprintln!("plugwarden: {}", error_chain(&e));
                    Ok(EXIT_VERDICT)
                }
            }
        }
        AuditCommand::Status { logs, inputs, json } => {
            let origins: Vec<Origin> = logs.iter().map(|p| Origin::File(p)).collect();
            let status =
                merge::status(&origins, inputs.as_deref()).map_err(|e| Usage(error_chain(&e)))?;
            for e in &status.errors {
                eprintln!("plugwarden: skipped: {}", error_chain(e));
            }
            print_status(&status, json);
            Ok(if status.errors.is_empty() {
                EXIT_OK
            } else {
                EXIT_USAGE
            })
        }
    }
}

/// Why a merge proves nothing yet, and what to run again.
fn print_gaps(report: &Report) {
    let n = report.job.shards;
    if report.absent > 0 {
        let listed: Vec<String> = report.absent_listed.iter().map(u32::to_string).collect();
        eprintln!(
            "{} of {n} shards have no log: {}{}: run them (or give their logs)",
            report.absent,
            listed.join(", "),
            if report.absent > listed.len() as u64 {
                ", …"
            } else {
                ""
            }
        );
    }
    for s in report.shards.iter().filter(|s| s.duplicates > 0) {
        eprintln!(
            "shard {}/{n} ({}): {} inputs judged more than once, e.g. {}: the shard ran them again (without --resume, or the file changed in between); run that shard again with a new --audit file",
            s.shard,
            s.file.display(),
            s.duplicates,
            s.duplicate_names.first().map_or("", String::as_str)
        );
    }
    let log_of = |shard: u32| {
        report
            .shards
            .iter()
            .find(|s| s.shard == shard)
            .map_or_else(|| "no log".to_owned(), |s| s.file.display().to_string())
    };
    match &report.listing {
        Some(listing) => {
            for (shard, listed) in listing.shards.iter().filter(|(_, l)| l.missing > 0) {
                eprintln!(
                    "shard {shard}/{n} ({}): {} of its {} inputs have no verdict: run it again with --resume",
                    log_of(*shard),
                    listed.missing,
                    listed.found
                );
            }
            for (shard, name) in &listing.missing {
                println!("missing\t{shard}\t{name}");
            }
            if listing.missing_count() > listing.missing.len() as u64 {
                eprintln!("(the first {MAX_LISTED} missing inputs are listed)");
            }
        }
        None => {
            for shard in report.unfinished() {
                eprintln!(
                    "shard {shard}/{n} ({}): the log does not end with its shard_end record, so its run stopped before every input was judged (or the end of the log was cut off): run it again with --resume, or pass --inputs to list what is missing",
                    log_of(shard)
                );
            }
        }
    }
}

fn print_status(status: &Status, json: bool) {
    let (rows, n) = (&status.rows, status.shards);
    let total = |f: fn(&StatusRow) -> u64| rows.iter().map(f).sum::<u64>();
    let remaining: Option<u64> = rows.iter().map(StatusRow::remaining).sum();
    if json {
        let shards: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "shard": r.shard,
                    "log": r.file.as_ref().map(|f| f.display().to_string()),
                    "done": r.done,
                    "failed": r.failed,
                    "remaining": r.remaining(),
                    "finished": r.finished,
                    "writing": r.torn,
                    "last_record": r.last_time,
                })
            })
            .collect();
        let summary = json!({
            "shard_count": n,
            "shards": shards,
            "done": total(|r| r.done),
            "failed": total(|r| r.failed),
            "remaining": remaining,
        });
        println!("{summary}");
        return;
    }
    println!(
        "{:<10} {:>10} {:>10} {:>10}  state",
        "shard", "done", "failed", "remaining"
    );
    let unknown = || "?".to_owned();
    for r in rows {
        let state = match (&r.file, r.finished) {
            (None, _) => "no log given".to_owned(),
            (Some(_), true) => "finished".to_owned(),
            (Some(_), false) => format!("running or stopped (last record {})", r.last_time),
        };
        println!(
            "{:<10} {:>10} {:>10} {:>10}  {state}",
            format!("{}/{n}", r.shard),
            r.done,
            r.failed,
            r.remaining().map_or_else(unknown, |n| n.to_string())
        );
    }
    println!(
        "{:<10} {:>10} {:>10} {:>10}  {} of {n} shards finished",
        "total",
        total(|r| r.done),
        total(|r| r.failed),
        remaining.map_or_else(unknown, |n| n.to_string()),
        rows.iter().filter(|r| r.finished).count()
    );
}
