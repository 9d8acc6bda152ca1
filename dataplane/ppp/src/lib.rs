//! Sans-IO PPP engine (RFC 1661) for PPTP/L2TP tunnels, both roles.
//!
//! Frames given to and taken from [`Ppp`] carry no HDLC framing: optional `FF 03`, the protocol
//! field (1 or 2 octets on input; always `FF 03` + 2 octets on output) and the information field.
//!
//! Implemented: LCP (RFC 1661), PAP (RFC 1334), CHAP-MD5 (RFC 1994), MS-CHAPv1 (RFC 2433),
//! MS-CHAPv2 (RFC 2759), IPCP (RFC 1332, DNS per RFC 1877), CCP (RFC 1962) with MPPE
//! (RFC 3078, keys per RFC 3079). Crypto is exposed in [`mschap`] and [`mppe`].
//!
//! The server answers `AuthRequest` with a [`Credential`]: the cleartext password, or only its
//! NtPasswordHash (RFC 2759 §8.3), which suffices for MS-CHAPv1/v2 and MPPE.
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]
#![warn(missing_docs)]

mod auth;
mod ccp;
pub mod chap;
mod config;
mod engine;
mod error;
pub mod frame;
mod fsm;
mod ipcp;
mod lcp;
pub mod mppe;
pub mod mschap;
pub mod pap;
#[cfg(test)]
mod test_vectors;

pub use auth::Credential;
pub use config::{
    AuthProto, ClientConfig, Encoding, EncryptionPolicy, KeyLengths, MppePolicy, ServerConfig,
    StatefulMode,
};
pub use engine::{DownReason, Event, MppeRepairs, Phase, Ppp, SETUP_TIMEOUT};
pub use error::{Error, Layer, SendError};
