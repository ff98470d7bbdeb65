//! The recorder: one audit record per result, the outputs, the counts
//! and latencies the summary prints.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use super::commit::{GroupCommit, Job, Output, Report};
use super::feed::{sha256_file, sha256_hex, Converter, Item};
use super::{BatchError, Event, MAX_DETAIL, MAX_NOTE, MAX_NOTES, MAX_POISON_LISTED};
use crate::audit::{AuditRecord, AuditWriter, Route};
use crate::escape;
use crate::pool::{truncate, Finished};
use crate::sandbox::Sandbox;
use crate::verdict::Verdict;

/// Job latencies in log-spaced buckets (about 1.5% wide): percentiles in
/// constant memory however many inputs there are.
#[derive(Default)]
pub(crate) struct Latencies {
    pub(crate) buckets: BTreeMap<u32, u64>,
    pub(crate) count: u64,
}

impl Latencies {
    pub(crate) fn bucket(us: u64) -> u32 {
        if us < 64 {
            return us as u32;
        }
        let shift = 63 - us.leading_zeros() - 5;
        shift * 32 + (us >> shift) as u32
    }

    pub(crate) fn lower_bound(bucket: u32) -> u64 {
        if bucket < 64 {
            return u64::from(bucket);
        }
        let shift = bucket / 32 - 1;
        u64::from(bucket - shift * 32) << shift
    }

    pub(crate) fn add(&mut self, d: Duration) {
        *self
            .buckets
            .entry(Self::bucket(d.as_micros() as u64))
            .or_default() += 1;
        self.count += 1;
    }

    /// The `p`-th percentile (0..=100) in milliseconds.
    pub(crate) fn percentile_ms(&self, p: f64) -> f64 {
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
pub(crate) struct RecordBase {
    pub(crate) plugin: String,
    pub(crate) plugin_sha256: String,
    pub(crate) policy: String,
    pub(crate) policy_sha256: String,
    pub(crate) weakenings: Vec<String>,
}

/// The consumer: outputs, audit, counts; what happens goes to `report`.
pub(crate) struct Recorder<'a> {
    /// With `--out`.
    pub(crate) out: Option<PathBuf>,
    /// Puts outputs and records on disk a group at a time.
    pub(crate) commit: GroupCommit,
    /// With `--audit`: records are made.
    pub(crate) audited: bool,
    /// The audit log, back from the committer once the batch is over.
    pub(crate) audit: Option<AuditWriter>,
    /// One per route.
    pub(crate) bases: Vec<RecordBase>,
    pub(crate) convert: Option<Box<Converter>>,
    /// Where each result and each failure is reported.
    pub(crate) report: Box<dyn FnMut(Event<'_>) + 'a>,
    pub(crate) counts: BTreeMap<&'static str, u64>,
    pub(crate) latencies: Latencies,
    pub(crate) poison: Vec<String>,
    pub(crate) poison_count: u64,
    pub(crate) done: u64,
    /// A failure that stops the run (audit or output not writable).
    pub(crate) fatal: Option<String>,
}

impl Recorder<'_> {
    pub(crate) fn take(&mut self, f: Finished<Item>) {
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
        (self.report)(Event::Judged {
            name: &name,
            verdict: verdict_word,
            wall: outcome.wall,
            attempt,
            poison,
            detail: &detail,
            done: self.done,
            counts: &self.counts,
        });
        self.commit.add(Job {
            name,
            record,
            output: staged,
        });
    }

    /// What the committer reported: an output reported ok that could not
    /// be put on disk is `cancelled` after all, and stops the batch.
    pub(crate) fn note(&mut self, report: Report) {
        match report {
            Report::Cancelled { name, detail } => {
                if let Some(n) = self.counts.get_mut(Verdict::Ok.word()) {
                    *n -= 1;
                }
                *self.counts.entry(Verdict::Cancelled.word()).or_default() += 1;
                (self.report)(Event::Withdrawn {
                    name: &name,
                    detail: &detail,
                });
                self.fail(format!("{detail} (for {name})"));
            }
            Report::Fatal(msg) => self.fail(msg),
        }
    }

    /// Commits the last group and takes the audit log back.
    pub(crate) fn finish_commit(&mut self) {
        let (audit, reports) = self.commit.finish();
        self.audit = audit;
        for report in reports {
            self.note(report);
        }
    }

    pub(crate) fn fail(&mut self, msg: String) {
        if self.fatal.is_none() {
            (self.report)(Event::Failed { error: &msg });
            self.fatal = Some(msg);
        }
    }
}

impl RecordBase {
    pub(crate) fn route(&self) -> Route {
        Route {
            plugin: self.plugin.clone(),
            plugin_sha256: self.plugin_sha256.clone(),
            policy: self.policy.clone(),
            policy_sha256: self.policy_sha256.clone(),
        }
    }
}

pub(crate) fn record_base(sandbox: &Sandbox) -> Result<RecordBase, BatchError> {
    let exe = &sandbox.plugin.exe;
    let plugin_sha256 = sha256_file(exe).map_err(|error| BatchError::Plugin {
        path: exe.clone(),
        error,
    })?;
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

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
