//! plugwarden: run untrusted plugins safely on Linux.
//!
//! The host ([`sandbox::Sandbox`], [`worker::Worker`]) asks a small
//! single-threaded [`forkserver`] to fork each plugin; the child walks the
//! confinement road in [`child`] (session, fds, rlimits, Landlock,
//! identity, seccomp) and execs. The host talks to it over pipes with the
//! bounded [`protocol`], enforces deadlines, names violations through
//! seccomp user notification, and gives every input one [`verdict`].
//! docs/ARCHITECTURE.md is the map.

pub mod arena;
pub mod audit;
pub mod cgroup;
pub mod child;
pub mod describe;
pub mod elf;
pub mod escape;
pub mod forkserver;
pub mod input;
pub mod kernel;
pub mod landlock_rules;
pub mod manifest;
pub mod merge;
pub mod plugin;
pub mod policy;
pub mod pool;
pub mod sandbox;
pub mod sanitize;
pub mod seccomp;
pub mod shard;
pub mod sink;
pub mod verdict;
pub mod worker;

// The wire protocol is its own crate (shared with the SDK); the host keeps
// naming it `crate::protocol`.
use plugwarden_proto as protocol;

pub use pool::Pool;
pub use verdict::{TimeoutKind, Verdict};
