//! The recorder: one audit record per result, the outputs, the counts
//! and latencies the summary prints.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use plugwarden::audit::{AuditRecord, AuditWriter, Route};
use plugwarden::escape;
use plugwarden::pool::{truncate, Finished};
use plugwarden::sandbox::Sandbox;
use plugwarden::verdict::{Verdict, WORDS};

use super::{
    print_line, sha256_file, sha256_hex, Converter, Item, MAX_DETAIL, MAX_NOTE, MAX_NOTES,
    MAX_POISON_LISTED,
};
use crate::cli::commit::{GroupCommit, Job, Output, Report};
use crate::cli::Usage;

/// Job latencies in log-spaced buckets (about 1.5% wide): percentiles in
/// constant memory however many inputs there are.
#[derive(Default)]
pub(super) struct Latencies {
    pub(super) buckets: BTreeMap<u32, u64>,
    pub(super) count: u64,
}

impl Latencies {
    pub(super) fn bucket(us: u64) -> u32 {
        if us < 64 {
            return us as u32;
        }
        let shift = 63 - us.leading_zeros() - 5;
        shift * 32 + (us >> shift) as u32
    }

    pub(super) fn lower_bound(bucket: u32) -> u64 {
        if bucket < 64 {
            return u64::from(bucket);
        }
        let shift = bucket / 32 - 1;
        u64::from(bucket - shift * 32) << shift
    }

    pub(super) fn add(&mut self, d: Duration) {
        *self
            .buckets
            .entry(Self::bucket(d.as_micros() as u64))
            .or_default() += 1;
        self.count += 1;
    }

    /// The `p`-th percentile (0..=100) in milliseconds.
    pub(super) fn percentile_ms(&self, p: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Self::lower_bound(*bucket) as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// What stays the same in every record of one route.
#[derive(Clone, Default)]
pub(super) struct RecordBase {
    pub(super) plugin: String,
    pub(super) plugin_sha256: String,
    pub(super) policy: String,
    pub(super) policy_sha256: String,
    pub(super) weakenings: Vec<String>,
}

/// The consumer: outputs, audit, progress, counts.
pub(super) struct Recorder {
    /// With `--out`.
    pub(super) out: Option<PathBuf>,
    /// Puts outputs and records on disk a group at a time.
    pub(super) commit: GroupCommit,
    /// With `--audit`: records are made.
    pub(super) audited: bool,
    /// The audit log, back from the committer once the batch is over.
    pub(super) audit: Option<AuditWriter>,
    /// One per route.
    pub(super) bases: Vec<RecordBase>,
    pub(super) convert: Option<Box<Converter>>,
    pub(super) json: bool,
    pub(super) progress: Option<ProgressBar>,
    pub(super) counts: BTreeMap<&'static str, u64>,
    pub(super) latencies: Latencies,
    pub(super) poison: Vec<String>,
    pub(super) poison_count: u64,
    pub(super) done: u64,
    pub(super) started: Instant,
    /// A failure that stops the run (audit or output not writable).
    pub(super) fatal: Option<String>,
}

impl Recorder {
    pub(super) fn take(&mut self, f: Finished<Item>) {
        let Finished {
            tag: item,
            mut outcome,
            attempt,
            generation,
            recycle_reason,
            poison,
            notes,
        } = f;
        let mut rel = item.rel.clone();
        // An output saved while it arrived is final; one held is converted.
        let mut saved = outcome.saved.take();
        if let (true, None, Some(convert)) = (outcome.verdict.is_ok(), &saved, &self.convert) {
            match convert(item.route, &item.rel, std::mem::take(&mut outcome.output)) {
                Ok((bytes, new_rel)) => {
                    outcome.output = bytes;
                    rel = new_rel;
                }
                Err(v) => outcome.verdict = v,
            }
        }
        let name = escape::name(&item.path);
        let mut verdict_word = outcome.verdict.word();
        let mut detail = outcome.verdict.detail();
        let mut staged = None;
        let mut output_sha = None;
        let mut saved_notes = Vec::new();
        if outcome.verdict.is_ok() {
            output_sha = Some(match &mut saved {
                Some(s) => {
                    detail = std::mem::take(&mut s.detail);
                    saved_notes = std::mem::take(&mut s.notes);
                    rel = s.name.take().unwrap_or(rel);
                    s.sha256.clone()
                }
                None => sha256_hex(&outcome.output),
            });
            if let Some(out) = self.out.clone() {
                let output = match saved.and_then(|s| s.file) {
                    Some(file) => Output::File(file),
                    None => Output::Bytes(&outcome.output),
                };
                match self.commit.stage(&rel, output) {
                    Ok(s) => staged = Some(s),
                    Err(e) => {
                        // Never judged for good: `--resume` runs it again.
                        verdict_word = Verdict::Cancelled.word();
                        detail = format!(
                            "cannot write the output {}: {e}; run again with --resume once fixed",
                            escape::name(out.join(&rel))
                        );
                        output_sha = None;
                        self.fail(format!("cannot write the output for {name}: {e}"));
                    }
                }
            }
        }
        *self.counts.entry(verdict_word).or_default() += 1;
        self.done += 1;
        self.latencies.add(outcome.wall);
        if poison {
            self.poison_count += 1;
            if self.poison.len() < MAX_POISON_LISTED {
                self.poison.push(name.clone());
            }
        }
        let record = self.audited.then(|| {
            let base = &self.bases[item.route.min(self.bases.len() - 1)];
            let mut all_notes: Vec<String> = base.weakenings.clone();
            all_notes.extend(notes);
            all_notes.extend(std::mem::take(&mut outcome.notes));
            all_notes.extend(saved_notes);
            all_notes.extend(outcome.denied.iter().map(|d| format!("denied: {d}")));
            if !outcome.verdict.is_ok() && !outcome.stderr_tail.is_empty() {
                all_notes.push(format!("stderr: {}", outcome.stderr_tail));
            }
            all_notes.truncate(MAX_NOTES);
            let mut rec = AuditRecord {
                input_sha256: item.sha256.clone(),
                plugin: base.plugin.clone(),
                plugin_sha256: base.plugin_sha256.clone(),
                policy: base.policy.clone(),
                policy_sha256: base.policy_sha256.clone(),
                worker_pid: u32::try_from(outcome.pid).ok().filter(|p| *p > 0),
                generation,
                verdict: verdict_word.to_string(),
                detail: truncate(&detail, MAX_DETAIL),
                attempt,
                wall_ms: outcome.wall.as_millis() as u64,
                cpu_ms: outcome.cpu_ms,
                max_rss_kib: outcome.max_rss_kib,
                recycle_reason: recycle_reason.map(|r| r.word().to_string()),
                output_sha256: output_sha,
                notes: all_notes.iter().map(|n| truncate(n, MAX_NOTE)).collect(),
                ..AuditRecord::default()
            };
            rec.set_input(item.path.as_os_str().as_bytes());
            if let Some(s) = &staged {
                rec.set_output(s.target().as_os_str().as_bytes());
            }
            rec
        });
        if !self.json {
            let mut line = format!(
                "{verdict_word:<14} {name} ({} ms)",
                outcome.wall.as_millis()
            );
            if attempt > 1 {
                line.push_str(&format!(
                    " [attempt {attempt}{}]",
                    if poison { ", poison" } else { "" }
                ));
            }
            if !detail.is_empty() {
                line.push_str(": ");
                line.push_str(&truncate(&detail, 300));
            }
            self.print(&line);
        }
        self.commit.add(Job {
            name,
            record,
            output: staged,
        });
        if let Some(pb) = &self.progress {
            pb.set_position(self.done);
            let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
            pb.set_message(format!("{rate:.1}/s · {}", self.counts_text()));
        }
    }

    /// What the committer reported: an output reported ok that could not
    /// be put on disk is `cancelled` after all, and stops the batch.
    pub(super) fn note(&mut self, report: Report) {
        match report {
            Report::Cancelled { name, detail } => {
                if let Some(n) = self.counts.get_mut(Verdict::Ok.word()) {
                    *n -= 1;
                }
                *self.counts.entry(Verdict::Cancelled.word()).or_default() += 1;
                if !self.json {
                    self.print(&format!(
                        "{:<14} {name}: {detail}",
                        Verdict::Cancelled.word()
                    ));
                }
                self.fail(format!("{detail} (for {name})"));
            }
            Report::Fatal(msg) => self.fail(msg),
        }
    }

    /// Commits the last group and takes the audit log back.
    pub(super) fn finish_commit(&mut self) {
        let (audit, reports) = self.commit.finish();
        self.audit = audit;
        for report in reports {
            self.note(report);
        }
    }

    pub(super) fn print(&self, line: &str) {
        match &self.progress {
            Some(pb) => pb.suspend(|| print_line(line)),
            None => print_line(line),
        }
    }

    pub(super) fn fail(&mut self, msg: String) {
        if self.fatal.is_none() {
            eprintln!("plugwarden: {msg}; stopping (finished jobs are recorded)");
            self.fatal = Some(msg);
        }
    }

    pub(super) fn counts_text(&self) -> String {
        let parts: Vec<String> = WORDS
            .iter()
            .filter_map(|w| self.counts.get(w).map(|n| format!("{w} {n}")))
            .collect();
        parts.join(" · ")
    }
}

impl RecordBase {
    pub(super) fn route(&self) -> Route {
        Route {
            plugin: self.plugin.clone(),
            plugin_sha256: self.plugin_sha256.clone(),
            policy: self.policy.clone(),
            policy_sha256: self.policy_sha256.clone(),
        }
    }
}

pub(super) fn record_base(sandbox: &Sandbox) -> Result<RecordBase, Usage> {
    let exe = &sandbox.plugin.exe;
    let plugin_sha256 = sha256_file(exe)
        .map_err(|e| Usage(format!("cannot read the plugin {}: {e}", exe.display())))?;
    Ok(RecordBase {
        plugin: exe.display().to_string(),
        plugin_sha256,
        policy: sandbox.policy.name.clone(),
        policy_sha256: sha256_hex(sandbox.policy.sources.concat().as_bytes()),
        weakenings: sandbox
            .weakenings
            .iter()
            .map(|w| format!("weakened: {w}"))
            .collect(),
    })
}
