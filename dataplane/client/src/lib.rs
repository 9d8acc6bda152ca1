//! Sluice's in-repo client: PPTP (the data plane's PNS, `sluice_dataplane::client`), L2TP
//! (LAC, [`lac`]) and L2TP/IPsec ([`ipsec`]) sessions against a gateway, one or thousands
//! at once ([`cli`]), and the benchmarks ([`bench`]). It drives the same sans-IO engines and
//! the same fast path (`sluice_dataplane::datapath`) as the gateway, with client-side hooks;
//! the load generator and the benchmarks do not ship in the gateway's binary.

pub mod bench;
pub mod cli;
mod error;
pub mod ipsec;
pub mod lac;

pub use error::ClientError;
