//! Commands that talk to a running data plane's admin endpoint.

pub mod drain;
pub mod sessions;
