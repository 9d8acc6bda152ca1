//! Sluice operator: reconciles `VpnGateway` / `VpnUser` (and their Secrets) into data-plane
//! Deployments and into the configuration it streams to data-plane agents over mTLS gRPC,
//! and folds the agents' session reports back into the objects' status.
//!
//! Pipeline per gateway: dereference (reflector caches) → [`config::compile_gateway`] (the
//! same `sluice_api::compile` standalone mode uses) → [`hub::Hub::publish`] (agents follow it)
//! → server-side apply of [`workloads`] → [`status`].

pub mod autoscaler;
pub mod ca_set;
pub mod conditions;
pub mod config;
pub mod context;
pub mod controller;
pub mod deletion_cost;
pub mod gateway;
pub mod gateway_state;
pub mod grpc;
pub mod http;
pub mod hub;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod owner;
pub mod pki;
pub mod rotation;
pub mod secrets;
pub mod serve;
pub mod standalone;
pub mod status;
pub mod tls;
pub mod user;
pub mod watch;
pub mod workloads;
