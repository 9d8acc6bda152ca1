//! Why the client could not run: bad arguments, the host refused a socket or device, or a
//! connection to the gateway failed. A session that fails to set up is an outcome in the
//! report, not an error.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Every way the client can fail.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // ---- arguments
    #[error("--server {server}: {source}")]
    Resolve { server: String, source: io::Error },
    #[error("--server {0}: no IPv4 address")]
    NoIpv4Address(String),
    #[error("--password-file {path}: {source}")]
    PasswordFile { path: PathBuf, source: io::Error },
    #[error("--password or --password-file is required")]
    NoPassword,
    #[error("{flag} {path}: {source}")]
    ReadFile {
        flag: &'static str,
        path: String,
        source: io::Error,
    },
    #[error("{flag}: {source}")]
    Certificate {
        flag: &'static str,
        source: sluice_ike::cert::CertError,
    },
    #[error("{flag} {proposal:?}: {source}")]
    Proposal {
        flag: &'static str,
        proposal: String,
        source: sluice_ike::policy::ProposalError,
    },

    // ---- the host
    #[error("{0}")]
    Net(#[from] sluice_dataplane::io::netcfg::NetError),
    #[error("opening the raw GRE socket: {0} (needs CAP_NET_RAW)")]
    GreSocket(io::Error),
    #[error("opening the L2TP socket: {0}")]
    L2tpSocket(io::Error),
    #[error("opening udp/{ike} and udp/{natt} for IPsec: {source}")]
    IpsecSockets {
        ike: u16,
        natt: u16,
        source: io::Error,
    },
    #[error("the {0} is already open")]
    AlreadyOpen(&'static str),
    #[error("the {0} is not open")]
    NotOpen(&'static str),
    #[error("{0}")]
    Thread(#[from] sluice_dataplane::host::ThreadError),
    #[error("no IPv4 route to {0}")]
    NoRoute(Ipv4Addr),
    #[error("no route to {server}: {source}")]
    Route { server: Ipv4Addr, source: io::Error },

    // ---- talking to the gateway
    #[error(transparent)]
    Dial(#[from] sluice_dataplane::client::DialError),
    #[error("installing the ESP SAs: {0}")]
    EspInstall(#[from] sluice_dataplane::datapath::ipsec::InstallError),
    #[error("the gateway refused IKE: {0}")]
    IkeRefused(&'static str),
    #[error("the IKE task ended")]
    IkeTaskEnded,
    #[error("no IPsec SA with {server} within {timeout:?}")]
    IkeTimeout {
        server: Ipv4Addr,
        timeout: std::time::Duration,
    },
    #[error("the client task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    // ---- benchmarks
    #[error("reading {path}: {source}")]
    Proc { path: String, source: io::Error },
    #[error("{0} has no VmRSS")]
    NoRss(String),
    #[error("{0} has no CPU times")]
    NoCpuTimes(String),
    #[error("the session did not come up: {0}")]
    NotUp(String),
    #[error("the session has no {0}")]
    NoSession(&'static str),
    #[error("{0}")]
    Admin(#[from] sluice_dataplane::cli::CliError),
    #[error("{endpoint}/metrics has no {name}")]
    NoMetric {
        endpoint: SocketAddr,
        name: &'static str,
    },

    #[error("{failed} of {total} sessions failed; first failure: {first}")]
    SessionsFailed {
        failed: u32,
        total: u32,
        first: String,
    },
}
