//! Sans-IO PPTP (RFC 2637): control connection engines for both roles and enhanced GRE.
//!
//! - [`control`]: the 15 control messages (checked view + validated reprs).
//! - [`framer`]: message reassembly from a TCP byte stream.
//! - [`pac`]: server (PPTP Access Concentrator) control engine, used by the daemon.
//! - [`pns`]: client (PPTP Network Server) control engine, used by test/load clients.
//! - [`gre`]: enhanced GRE header and IPv4 envelope helper.
//! - [`channel`]: per-call GRE sequencing, acknowledgement and window state.
//!
//! No I/O, clocks or threads: callers pass bytes and `now`, and poll for output.
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]
#![warn(missing_docs)]

pub mod channel;
pub mod control;
pub mod error;
pub mod framer;
pub mod gre;
mod link;
pub mod pac;
pub mod pns;

pub use channel::{ChannelStats, GreChannel, RxVerdict, Sent};
pub use control::{
    ControlMessage, ControlPacket, GeneralError, MessageType, OcrpResult, StopReason,
};
pub use error::{Error, GreError, Ipv4Error, ParseError};
pub use framer::Framer;
pub use gre::{GrePacket, GreRepr, ipv4_payload, ipv4_payload_range};
pub use link::MAX_OUTPUT_BYTES;
pub use pac::{CallInfo, CallState, ControlConnection, ControlEvent, PacConfig};
pub use pns::{Pns, PnsConfig, PnsEvent};
