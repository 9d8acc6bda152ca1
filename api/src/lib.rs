//! Manifest types (`VpnGateway`, `VpnUser`, `VpnClient`), manifest loading, and the pure
//! [`compile`] that turns them into the data plane's [`GatewayConfig`].
//!
//! `compile` is the one place where manifests become data-plane
//! configuration: the operator calls it with objects from the apiserver, the
//! standalone data plane with objects from [`parse_manifests`].
//!
//! The IPsec proposals of `spec.l2tp.ipsec` are parsed with the engine's own grammar
//! (`sluice_ike::policy`) and travel typed ([`wire`]): the data plane parses no strings.

mod bad_users;
mod client;
mod compile;
pub mod crdgen;
mod duration;
mod error;
mod gateway;
mod manifest;
mod manifest_file;
mod object_ref;
pub mod rate;
pub mod schema_cases;
mod user;
pub mod wire;

pub use bad_users::{Compiled, compile_leaving_out_bad_users, compile_manifests};
pub use client::*;
pub use compile::{
    MAX_CREDENTIAL_BYTES, MAX_DNS_SERVERS, MAX_KEEPALIVE_SECONDS, MAX_POOL_PREFIX,
    MAX_PRE_SHARED_KEY_BYTES, MAX_TUNNEL_SECRET_BYTES, MIN_PRE_SHARED_KEY_BYTES, compile,
    compile_clients, compile_from_manifests, redacted, with_clients,
};
pub use duration::{DurationError, format_go_duration, parse_go_duration};
pub use error::{ConfigError, FieldError, ObjectKind, ObjectRef, Subject};
pub use gateway::*;
pub use manifest::{MAX_DOCUMENTS, MAX_INPUT_BYTES, Manifests, parse_manifests};
pub use manifest_file::ManifestFile;
pub use sluice_proto::v1::GatewayConfig;
pub use user::*;
