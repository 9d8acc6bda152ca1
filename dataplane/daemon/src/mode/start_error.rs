//! Why a gateway could not start (both modes), or the standalone one could not run.

use std::net::SocketAddr;

/// A handler for one Unix signal (both modes install theirs at start-up).
pub(crate) fn signal(
    name: &'static str,
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, StartError> {
    tokio::signal::unix::signal(kind).map_err(|source| StartError::Signal {
        signal: name,
        source,
    })
}

/// Why [`standalone::start`](super::standalone::start) (or a later L2TP/IPsec start, or
/// [`standalone::run`](super::standalone::run)) failed. Everything that can fail is done
/// before any thread starts.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] crate::config::LoadError),
    #[error("{0}")]
    Net(#[from] crate::io::netcfg::NetError),
    #[error("opening the raw GRE socket: {0} (needs CAP_NET_RAW)")]
    GreSocket(std::io::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("binding udp/{port} for L2TP on {bind}: {source}")]
    L2tpPort {
        port: u16,
        bind: std::net::Ipv4Addr,
        source: std::io::Error,
    },
    #[error(
        "opening udp/{ike} and udp/{natt} for IKE and raw ESP on {bind}: {source} (needs \
         CAP_NET_RAW)"
    )]
    IpsecSockets {
        ike: u16,
        natt: u16,
        bind: std::net::Ipv4Addr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Thread(#[from] crate::host::ThreadError),
    #[error("{0}")]
    Http(#[from] crate::http::EndpointError),
    #[error("installing the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
}
