//! Sluice's in-repo client: PPTP (PNS, [`pptp`]), L2TP (LAC, [`lac`]) and L2TP/IPsec
//! ([`ipsec`]) sessions against a gateway, one or thousands at once ([`cli`]), the
//! benchmarks ([`bench`]), and the persistent dialler's policy for client mode ([`dialler`],
//! issue 22). It drives the same sans-IO engines and the same fast path
//! (`sluice_dataplane::datapath`) as the gateway, with client-side hooks; none of it ships
//! in the gateway's binary.

pub mod bench;
pub mod cli;
pub mod dialler;
mod error;
pub mod ipsec;
pub mod lac;
pub mod pptp;

pub use error::ClientError;
