//! How the data plane runs: [`standalone`] (manifests on disk, reloads on change) or
//! [`agent`] (configuration pushed by the operator over mTLS gRPC).

pub mod agent;
pub mod standalone;
mod start_error;

pub use start_error::StartError;
