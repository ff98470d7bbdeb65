//! `--shard` on the batch commands: which shard this process is, and what
//! a shard's run adds to its audit log (its `shard_start` record first, its
//! `shard_end` record when every input it found is judged). The partition
//! itself is [`plugwarden::shard`]'s.

use clap::Args;
use plugwarden::shard::{Shard, ShardSpec};

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
