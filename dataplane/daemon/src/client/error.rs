//! Why a dialled call could not be set up at the connection level (a session that fails to
//! come up is an [`Outcome`](super::Outcome), not an error).

use std::io;
use std::net::SocketAddr;

/// Every way a client's control connection can fail.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("the {0} server must be an IPv4 address")]
    NotIpv4(&'static str),
    #[error("connecting to {server}: {source}")]
    Connect {
        server: SocketAddr,
        source: io::Error,
    },
    #[error("write failed: {0}")]
    Write(io::Error),
    #[error("read failed: {0}")]
    Read(io::Error),
    #[error("bad control message from server: {0}")]
    Pptp(#[from] sluice_pptp::Error),
    #[error("out of {0} IDs")]
    OutOfIds(&'static str),
}
