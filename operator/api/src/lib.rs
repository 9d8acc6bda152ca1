//! Manifest types (`VpnGateway`, `VpnUser`), manifest loading, and the pure
//! [`compile`] that turns them into the data plane's [`GatewayConfig`].
//!
//! `compile` is the one place where manifests become data-plane
//! configuration: the operator calls it with objects from the apiserver, the
//! standalone data plane with objects from [`parse_manifests`].
//!
//! [`ipsec_tokens`] lists the algorithm words of the IPsec proposal grammar that
//! [`check_proposal`] (and so `compile`) accepts in `spec.l2tp.ipsec.ikeProposals` and
//! `espProposals`, per class; the data plane parses the proposals again with its own parser,
//! and a data-plane test can use this list to check that the two parsers agree.

mod compile;
pub mod crdgen;
mod duration;
mod error;
mod gateway;
mod ipsec;
mod manifest;
mod manifest_file;
pub mod rate;
pub mod schema_cases;
mod user;

pub use compile::{
    MAX_CREDENTIAL_BYTES, MAX_DNS_SERVERS, MAX_KEEPALIVE_SECONDS, MAX_POOL_PREFIX,
    MAX_PRE_SHARED_KEY_BYTES, MAX_TUNNEL_SECRET_BYTES, MIN_PRE_SHARED_KEY_BYTES, compile,
    compile_from_manifests, redacted,
};
pub use duration::parse_go_duration;
pub use error::{ConfigError, FieldError, object_name};
pub use gateway::*;
pub use ipsec::{
    IpsecTokens, MAX_PROPOSAL_TOKENS, MAX_PROPOSALS, ProposalKind, check_proposal, ipsec_tokens,
};
pub use manifest::{MAX_DOCUMENTS, MAX_INPUT_BYTES, Manifests, parse_manifests};
pub use manifest_file::ManifestFile;
pub use sluice_proto::v1::GatewayConfig;
pub use user::*;
