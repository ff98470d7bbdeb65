//! The shared-memory arena's layout (docs/PROTOCOL.md, "The arena"): one
//! memfd of two equal regions, the input region `[0, region)` that the
//! host writes and the output region `[region, 2 × region)` that the
//! plugin writes; the plugin finds it as fd [`PLUGIN_FD`]. Frames name a
//! range of it with an [`ArenaSlice`](crate::ArenaSlice). The mapping
//! itself is the SDK's `arena` module.

/// Smallest payload worth the arena: below it a job is latency-bound and
/// the pipes are as fast.
pub const THRESHOLD: usize = 64 << 10;

/// The fd number the arena has in the plugin.
pub const PLUGIN_FD: std::os::fd::RawFd = 3;
