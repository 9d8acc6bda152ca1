//! Sans-IO L2TPv2 (RFC 2661): wire codec, control-channel reliability and tunnel/session
//! state machines for both roles.
//!
//! - [`header`]: the L2TP header (§3.1), checked view + repr, and the data-path fast helpers
//!   [`DataHeader`] / [`emit_data_header`].
//! - [`avp`]: AVP framing (§4.1) and attribute numbers (§4.4).
//! - [`hidden`]: hidden AVP values (§4.3).
//! - [`message`]: control messages (§3.2, §6) as a validated repr; Result Codes (§4.4.2).
//! - [`auth`]: tunnel authentication Challenge Response (§4.2, §5.1.1).
//! - [`channel`]: reliable delivery of control messages (§5.8) for one tunnel.
//! - [`endpoint`]: [`Endpoint`] owning all tunnels and sessions of one role (LNS or LAC).
//! - [`data`]: per-session data sequencing (§5.4).
//!
//! No I/O, clocks, threads or OS randomness: callers pass datagrams, `now` and a seed, and poll
//! for datagrams, events and the next timeout.
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]
#![warn(missing_docs)]

pub mod auth;
pub mod avp;
pub mod channel;
pub mod data;
pub mod endpoint;
pub mod error;
pub mod header;
pub mod hidden;
pub mod message;
mod session;
mod timer_index;
mod tunnel;

pub use channel::{ChannelConfig, ControlChannel, RxVerdict};
pub use data::{DataSequencer, SeqVerdict};
pub use endpoint::{
    Endpoint, EndpointConfig, EndpointStats, Event, Role, SessionInfo, SessionState, Transmit,
    TunnelInfo, TunnelState,
};
pub use error::{Error, ParseError};
pub use header::{DataHeader, HeaderRepr, Packet, emit_data_header, is_control_message};
pub use message::{
    Avps, CallErrors, CdnResult, ControlMessage, ErrorCode, MessageError, MessageType, ResultCode,
    StopCcnResult,
};
