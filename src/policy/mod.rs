//! Policies.

pub mod groups;
