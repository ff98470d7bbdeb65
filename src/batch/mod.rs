//! The batch driver's parts that need no command line: the feeder (inputs
//! walked, read and queued for a pool, `--resume`'s skips), a shard's share
//! of the inputs and its log records, and the group commit (outputs and
//! audit records made durable a group at a time). `plugwarden run` and
//! `plugwarden sanitize` (src/cli/run.rs) drive them; docs/BATCH.md
//! describes the behaviour.

pub(crate) mod commit;
pub(crate) mod feed;
pub(crate) mod shard;

/// The error and its causes, one sentence.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
