//! `audit status`: one row per shard log.

use std::path::PathBuf;

use super::{assemble, read_all, with_listing};
use super::{MergeError, Origin};

/// One shard's row of `audit status`.
#[derive(Debug)]
pub struct StatusRow {
    pub shard: u32,
    pub file: Option<PathBuf>,
    pub done: u64,
    pub failed: u64,
    /// Known from `--inputs` or from the shard's `shard_end` record.
    pub total: Option<u64>,
    pub finished: bool,
    pub torn: bool,
    pub last_time: String,
}

impl StatusRow {
    pub fn remaining(&self) -> Option<u64> {
        self.total.map(|t| t.saturating_sub(self.done))
    }
}

/// A job's progress, from its shard logs.
#[derive(Debug)]
pub struct Status {
    /// N.
    pub shards: u32,
    /// One per shard (those with no log given too, the first
    /// [`MAX_LISTED`](super::MAX_LISTED) of them), in order.
    pub rows: Vec<StatusRow>,
    /// The logs that could not be read, each with why.
    pub errors: Vec<MergeError>,
}

/// Progress of a job from its shard logs, some possibly still being
/// written (a torn last line is not an error here).
pub fn status(origins: &[Origin<'_>], inputs: Option<&[PathBuf]>) -> Result<Status, MergeError> {
    let mut logs = Vec::new();
    let mut errors = Vec::new();
    for result in read_all(origins, true) {
        match result {
            Ok(log) => logs.push(log),
            Err(e) => errors.push(e),
        }
    }
    if logs.is_empty() {
        return Err(errors.into_iter().next().unwrap_or(MergeError::NoLogs));
    }
    let report = with_listing(assemble(logs)?, inputs)?;
    let mut rows: Vec<StatusRow> = report
        .shards
        .iter()
        .map(|l| StatusRow {
            shard: l.shard,
            file: Some(l.file.clone()),
            done: l.done,
            failed: l.failed,
            total: l.finished,
            finished: l.finished.is_some(),
            torn: l.torn,
            last_time: l.last_time.clone(),
        })
        .collect();
    rows.extend(report.absent_listed.iter().map(|&shard| StatusRow {
        shard,
        file: None,
        done: 0,
        failed: 0,
        total: None,
        finished: false,
        torn: false,
        last_time: String::new(),
    }));
    rows.sort_by_key(|r| r.shard);
    if let Some(listing) = &report.listing {
        for row in &mut rows {
            row.total = Some(listing.shards.get(&row.shard).map_or(0, |l| l.found));
        }
    }
    Ok(Status {
        shards: report.job.shards,
        rows,
        errors,
    })
}
