//! Sluice data plane: the PPTP gateway — standalone (manifests) or in agent
//! mode (configured by the operator over gRPC) — and the in-repo client and
//! load generator that drive the same sans-IO engines.

pub mod admin;
pub mod admin_token;
pub mod admission;
pub mod agent;
pub mod bench;
pub mod callid;
pub mod client;
pub mod client_cli;
pub mod client_ipsec;
pub mod config;
pub mod control;
pub mod datapath;
pub mod drain_cmd;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod gateway;
pub mod http;
pub mod http_listener;
pub mod ike;
pub mod ipsec_path;
pub mod l2tp_path;
pub mod lac;
pub mod link;
pub mod lns;
pub mod log_budget;
pub mod login;
pub mod login_throttle;
pub mod managed;
pub mod metrics;
pub mod netcfg;
pub mod nofile;
pub mod pool;
pub mod ratelimit;
pub mod rawsock;
pub mod rng;
pub mod server;
pub mod sessions_cmd;
mod sync;
pub mod udpsock;
