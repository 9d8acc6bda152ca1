//! Sluice data plane: the gateway for PPTP and L2TP/IPsec in user space — standalone
//! (manifests) or in agent mode (configured by the operator over gRPC).
//!
//! ```text
//! io/         sockets: raw GRE/ESP, UDP with IP_PKTINFO, host network configuration
//! datapath/   the fast path: links, PPTP/GRE, L2TP and ESP receive paths, rate limits
//! control/    one task per protocol's control plane: PPTP (pptp), L2TP LNS (lns), IKE (ike)
//! gateway/    one gateway's state and policy: admission, logins, pool, events
//! mode/       how it runs: standalone (manifests) and agent (operator)
//! http/       metrics listener and the authenticated admin listener
//! cli/        the admin endpoint's commands (sessions, drain)
//! host.rs     seeds, hostname, wall clock, descriptor limit
//! backoff.rs  reconnect delays with jitter (agent mode, client tunnels)
//! ```

pub mod backoff;
pub mod cli;
pub mod client;
pub mod config;
pub mod control;
pub mod datapath;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod host;
pub mod http;
pub mod io;
pub mod metrics;
pub mod mode;
mod sync;
