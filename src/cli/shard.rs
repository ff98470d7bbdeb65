//! `--shard` on the batch commands: which shard this process is, and what
//! a shard's run adds to its audit log (its `shard_start` record first, its
//! `shard_end` record when every input it found is judged). The partition
//! itself is [`plugwarden::shard`]'s.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use clap::Args;
use plugwarden::audit::{AuditWriter, Job, Root, Route};
use plugwarden::input::{Entry, InputError};
use plugwarden::shard::{self, Shard, ShardSpec};

use super::run::error_chain;
use super::Usage;

#[derive(Args, Clone, Debug)]
pub struct ShardArgs {
    /// Run only shard I of N (0-based) of the inputs, or `auto`: from a Slurm array's or a Kubernetes Indexed Job's variables (docs/BATCH.md).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<ShardSpec>,
    /// N for `--shard auto` where the scheduler does not say it (a Kubernetes Indexed Job; part of a Slurm array run again); also PLUGWARDEN_SHARDS.
    #[arg(long, value_name = "N", requires = "shard", value_parser = clap::value_parser!(u32).range(1..))]
    pub shards: Option<u32>,
}

/// A batch's shard, if it has one, and the job it is part of.
pub struct Sharding {
    shard: Option<Shard>,
    job: Job,
}

impl ShardArgs {
    /// The shard this process runs, from the flags and the environment.
    pub fn resolve(&self) -> Result<Option<Shard>, Usage> {
        let Some(spec) = self.shard else {
            return Ok(None);
        };
        let shard = spec.resolve(self.shards, |var| std::env::var(var).ok())?;
        tracing::info!("shard {shard}");
        Ok(Some(shard))
    }
}

impl Sharding {
    /// Checks that `audit` (at `path`) may take this run's records and
    /// starts a shard log; `routes` are the plugin and policy of each pool.
    pub fn start(
        shard: Option<Shard>,
        inputs: &[PathBuf],
        routes: Vec<Route>,
        audit: Option<(&mut AuditWriter, &Path)>,
    ) -> Result<Sharding, Usage> {
        let job = Job {
            shards: shard.map_or(1, |s| s.count),
            roots: inputs
                .iter()
                .map(|r| Root::new(r.as_os_str().as_bytes()))
                .collect(),
            routes,
        };
        if let Some((log, path)) = audit {
            shard::begin_log(log, path, shard, &job).map_err(|e| Usage(error_chain(&e)))?;
        }
        Ok(Sharding { shard, job })
    }

    /// Whether a walked entry is this shard's.
    pub fn owns(&self, roots: &[PathBuf], entry: &Result<Entry, InputError>) -> bool {
        self.shard.is_none_or(|s| s.owns_walked(roots, entry))
    }

    /// After the run: a shard whose run judged every input it found (`inputs`)
    /// says so in its log.
    pub fn finish(
        &self,
        audit: Option<&mut AuditWriter>,
        all_judged: bool,
        inputs: u64,
    ) -> Result<(), String> {
        match (self.shard, audit, all_judged) {
            (Some(shard), Some(log), true) => {
                shard::end_log(log, shard, &self.job, inputs).map_err(|e| error_chain(&e))
            }
            _ => Ok(()),
        }
    }
}
