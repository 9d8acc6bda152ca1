//! Sans-IO IKEv1 (RFC 2407, 2408, 2409) for L2TP/IPsec: the ISAKMP wire codec, the Phase 1
//! and Phase 2 cryptography, the exchanges, and the two engines that drive them.
//!
//! - [`header`], [`payload`], [`sa`], [`identity`], [`notify`]: checked parsing and emission
//!   of ISAKMP messages (RFC 2408 §3) with hard limits on every count and length.
//! - [`prf`], [`cipher`], [`dh`], [`keys`]: hash/PRF, Phase 1 CBC encryption, MODP and ECP
//!   Diffie-Hellman, and the RFC 2409 §5 key derivation.
//! - [`natt`]: NAT-T (RFC 3947 and drafts), vendor IDs, DPD and fragmentation markers.
//! - [`cert`]: X.509 certificates, trust stores and the RSA signatures of RSA signature
//!   authentication (RFC 2409 §5.1).
//! - `exchange` (crate-private): one module per RFC 2409 exchange — Main Mode, Aggressive
//!   Mode, Quick Mode, Informational — with the states of both roles.
//! - [`responder`]: the gateway's endpoint (demultiplexing, limits, timers, SA events) over
//!   those states; [`initiator`]: a single-SA initiator over the same states.
//!
//! No I/O, clocks, threads or OS randomness: callers pass datagrams, `now` and seeds.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(clippy::indexing_slicing)]

pub mod cert;
pub mod cipher;
pub mod dh;
mod endpoint;
pub mod error;
pub(crate) mod exchange;
pub mod header;
pub mod identity;
pub mod initiator;
pub mod keys;
pub mod message;
pub mod natt;
pub mod notify;
pub mod payload;
pub mod policy;
pub mod prf;
pub mod responder;
pub mod sa;

#[cfg(test)]
pub(crate) mod testutil;

pub use error::WireError;
