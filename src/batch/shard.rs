//! A batch's shard, if it has one: which walked inputs are its own, and
//! what its run adds to its audit log (its `shard_start` record first, its
//! `shard_end` record when every input it found is judged). The partition
//! itself is [`crate::shard`]'s.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::audit::{AuditError, AuditWriter, Job, Root, Route};
use crate::input::{Entry, InputError};
use crate::shard::{self, LogError, Shard};

/// A batch's shard, if it has one, and the job it is part of.
pub(crate) struct Sharding {
    shard: Option<Shard>,
    job: Job,
}

impl Sharding {
    /// Checks that `audit` (at `path`) may take this run's records and
    /// starts a shard log; `routes` are the plugin and policy of each pool.
    pub(crate) fn start(
        shard: Option<Shard>,
        inputs: &[PathBuf],
        routes: Vec<Route>,
        audit: Option<(&mut AuditWriter, &Path)>,
    ) -> Result<Sharding, LogError> {
        let job = Job {
            shards: shard.map_or(1, |s| s.count),
            roots: inputs
                .iter()
                .map(|r| Root::new(r.as_os_str().as_bytes()))
                .collect(),
            routes,
        };
        if let Some((log, path)) = audit {
            shard::begin_log(log, path, shard, &job)?;
        }
        Ok(Sharding { shard, job })
    }

    /// Whether a walked entry is this shard's.
    pub(crate) fn owns(&self, roots: &[PathBuf], entry: &Result<Entry, InputError>) -> bool {
        self.shard.is_none_or(|s| s.owns_walked(roots, entry))
    }

    /// After the run: a shard whose run judged every input it found (`inputs`)
    /// says so in its log.
    pub(crate) fn finish(
        &self,
        audit: Option<&mut AuditWriter>,
        all_judged: bool,
        inputs: u64,
    ) -> Result<(), AuditError> {
        match (self.shard, audit, all_judged) {
            (Some(shard), Some(log), true) => shard::end_log(log, shard, &self.job, inputs),
            _ => Ok(()),
        }
    }
}
