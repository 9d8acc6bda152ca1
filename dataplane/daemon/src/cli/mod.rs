//! Commands that talk to a running data plane's admin endpoint.

pub mod drain;
pub mod sessions;

use std::net::SocketAddr;

/// Why a command could not get its answer from the data plane.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("connecting to {endpoint}: {source}")]
    Connect {
        endpoint: SocketAddr,
        source: std::io::Error,
    },
    #[error("talking to {endpoint}: {source}")]
    Io {
        endpoint: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}: malformed HTTP response")]
    Malformed(SocketAddr),
    /// Any answer but 200 (the admin endpoint says why in the body).
    #[error("{endpoint}: {status}: {body}")]
    Status {
        endpoint: SocketAddr,
        status: String,
        body: String,
    },
    #[error("decoding {what}: {source}")]
    Decode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("still not drained after {0} s")]
    NotDrained(u64),
}
