//! plugwarden: run untrusted plugins safely on Linux.
//!
//! A host application builds a [`Sandbox`] (one plugin under one
//! [`Policy`]), runs inputs through it one at a time ([`Sandbox::run`]) or
//! many at once through a [`Pool`], and gets exactly one [`Verdict`] per
//! input. Each plugin runs in a child forked by a small helper process,
//! the fork server ([`ForkServer`]), confined by seccomp, Landlock,
//! rlimits, namespaces and cgroups where the machine has them.
//!
//! # The one rule: [`bootstrap`] first thing in `main`
//!
//! The fork server is this program run again in a hidden mode (or the
//! installed `plugwarden` binary: [`ForkServer::with_helper`]). So the
//! first line of `main` must be [`bootstrap()`]: in the helper it serves and
//! never returns; in the application it returns at once. Forgetting it is
//! a clear error ([`ForkServerError::NotBootstrapped`]), never a fork bomb,
//! and a helper that would start a helper of its own is refused
//! ([`ForkServerError::Recursion`]).
//!
//! # Example
//!
//! An existing program as a filter (input on stdin, output on stdout):
//!
//! ```
//! use plugwarden::{Sandbox, Verdict};
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     plugwarden::bootstrap(); // first thing: the fork server is this program
//!     let sandbox = match Sandbox::builder("/usr/bin/base64")
//!         .filter()
//!         .policy("default")
//!         .timeout(std::time::Duration::from_secs(10))
//!         .build()
//!     {
//!         Ok(sandbox) => sandbox,
//!         // Not root, an old kernel: the walls this machine lacks are
//!         // named; `.allow_weaker()` accepts them.
//!         Err(plugwarden::BuildError::Weaker(weakenings)) => {
//!             eprintln!("would run weakened: {weakenings:?}");
//!             return Ok(());
//!         }
//!         Err(e) => return Err(e.into()),
//!     };
//!     let outcome = sandbox.run(b"plugwarden");
//!     assert_eq!(outcome.verdict, Verdict::Ok);
//!     assert_eq!(outcome.output, b"cGx1Z3dhcmRlbg==\n");
//!     Ok(())
//! }
//! ```
//!
//! A worker plugin (one that links `plugwarden-sdk` and serves many jobs)
//! is the same with `.worker()` (the default); [`Pool`] runs many inputs
//! over several workers with bounded memory; [`batch::Batch`] runs a set of
//! files and directories as `plugwarden run` does (outputs, audit log,
//! resume). `examples/` has one program per task (a worker, a pool over a
//! directory with an audit log, a batch, a filter, every verdict, tokio).
//! docs/LIBRARY.md is the guide, and
//! docs/ARCHITECTURE.md the map of the source.
//!
//! # Cargo features
//!
//! - `cli` (default): the `plugwarden` command ([`cli::main`]) and its
//!   dependencies (clap, indicatif, tracing-subscriber, signal-hook).
//! - `sanitize` (default): the sanitizer (the `sanitize` command's host
//!   side and its plugins: image, hayro, png, flate2).
//!
//! An application takes `plugwarden = { version = "…", default-features = false }`.

#![deny(missing_docs)]
// The examples show `main` on purpose: `bootstrap()` is its first line.
#![allow(clippy::needless_doctest_main)]
// Without the command line, what only it uses is unused.
#![cfg_attr(not(feature = "cli"), allow(dead_code, unused_imports))]

// The command line (src/cli) names the library `plugwarden::…`, as it did
// when it was a module of the binary.
extern crate self as plugwarden;

pub mod audit;
pub mod batch;
mod bootstrap;
mod builder;
pub(crate) mod cgroup;
mod child;
// The `plugwarden` command line (the `cli` feature): the binary's `main`
// is `cli::main`.
#[cfg(feature = "cli")]
pub mod cli;
mod confine;
pub(crate) mod describe;
mod elf;
pub(crate) mod escape;
pub mod input;
pub mod kernel;
pub(crate) mod landlock_rules;
#[doc(hidden)]
pub mod manifest;
#[doc(hidden)]
pub mod merge;
pub(crate) mod observe;
pub mod policy;
pub mod pool;
pub mod sandbox;
// The host side of the sanitizer plugins (the `sanitize` command): public
// for the sanitize plugins' tests and the fuzz targets, not part of the
// library's API.
#[cfg(feature = "sanitize")]
#[doc(hidden)]
pub mod sanitize;
#[doc(hidden)]
pub mod seccomp;
#[doc(hidden)]
pub mod shard;
pub mod sink;
pub(crate) mod spawn;
mod trust;
pub mod verdict;
pub mod worker;

// The wire protocol and the arena are shared with the plugins (crates/proto,
// crates/sdk); the host keeps naming them `crate::protocol`, `crate::arena`.
use plugwarden_proto as protocol;
use plugwarden_sdk::arena;

// docs/LIBRARY.md's code compiles (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../docs/LIBRARY.md")]
struct LibraryGuide;

pub use bootstrap::bootstrap;
pub use builder::{BuildError, SandboxBuilder};
pub use cgroup::Usage as CgroupUsage;
pub use policy::Policy;
pub use pool::{Pool, PoolConfig};
pub use sandbox::{Mode, Sandbox};
pub use spawn::{ExitInfo, ForkServer, ForkServerError, Walls};
pub use verdict::{Signal, Syscall, TimeoutKind, Verdict, Violation};
pub use worker::{JobOutcome, Worker};
