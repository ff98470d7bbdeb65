//! plugwarden: run untrusted plugins safely on Linux.
//!
//! See docs/ARCHITECTURE.md for the map of this crate.

pub mod audit;
pub mod elf;
pub mod policy;
pub mod sanitize;
