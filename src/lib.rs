//! plugwarden: run untrusted plugins safely on Linux.
//!
//! The host ([`sandbox::Sandbox`], [`worker::Worker`]) asks a small
//! single-threaded fork server ([`spawn`]) to fork each plugin; the child walks the
//! confinement road in `child` (session, fds, rlimits, Landlock,
//! identity, seccomp) and execs. The host talks to it over pipes with the
//! bounded wire protocol (the `plugwarden-proto` crate), enforces
//! deadlines, names violations through seccomp user notification, and
//! gives every input one [`verdict`]. Plugins link `plugwarden-sdk` (and
//! through it the protocol and `plugwarden-seccomp`), never this crate.
//! docs/ARCHITECTURE.md is the map.

pub mod audit;
pub mod cgroup;
mod child;
mod confine;
pub mod describe;
mod elf;
pub mod escape;
pub mod input;
pub mod kernel;
pub mod landlock_rules;
pub mod manifest;
pub mod merge;
pub mod observe;
pub mod policy;
pub mod pool;
pub mod sandbox;
pub mod sanitize;
pub mod seccomp;
pub mod shard;
pub mod sink;
pub mod spawn;
pub mod verdict;
pub mod worker;

// The wire protocol and the arena are shared with the plugins (crates/proto,
// crates/sdk); the host keeps naming them `crate::protocol`, `crate::arena`.
use plugwarden_proto as protocol;
use plugwarden_sdk::arena;

pub use pool::Pool;
pub use verdict::{TimeoutKind, Verdict};
