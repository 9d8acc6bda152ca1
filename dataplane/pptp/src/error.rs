//! Error types of the PPTP crate.

use crate::control::MessageType;

/// A control message (RFC 2637 §1.4, §2) failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the header or the Length field require.
    #[error("control message truncated")]
    Truncated,
    /// Length field below the header size or above [`crate::control::MAX_MESSAGE_LEN`].
    #[error("control message length {0} out of range")]
    LengthOutOfRange(u16),
    /// PPTP Message Type other than 1 (control message).
    #[error("unsupported PPTP message type {0}")]
    BadPptpMessageType(u16),
    /// Magic Cookie other than 0x1A2B3C4D.
    #[error("bad magic cookie {0:#010x}")]
    BadMagicCookie(u32),
    /// Control Message Type outside 1..=15.
    #[error("unknown control message type {0}")]
    UnknownControlMessageType(u16),
    /// Length field differs from the fixed size of the message type.
    #[error("length {length} does not match the size of {message:?}")]
    BadLength {
        /// The message type named in the header.
        message: MessageType,
        /// The Length field as received.
        length: u16,
    },
    /// A previous error desynchronised the TCP byte stream; the framer accepts nothing more.
    #[error("control stream desynchronised by an earlier error")]
    StreamFailed,
}

/// A buffer given to an `emit` function is too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("buffer too small: need {needed} bytes, have {available}")]
pub struct BufferTooSmall {
    /// Bytes the message needs.
    pub needed: usize,
    /// Bytes the buffer has.
    pub available: usize,
}

/// A fatal error of a control connection engine ([`crate::pac::ControlConnection`], [`crate::pns::Pns`]).
///
/// After it the engine is closed; the caller drains `poll_transmit`/`poll_event` and closes TCP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The peer sent bytes that are not a valid control message.
    #[error("malformed control message: {0}")]
    Parse(#[from] ParseError),
    /// A valid message that is not allowed in the current state or direction.
    #[error("unexpected {message:?} in state {state}")]
    Unexpected {
        /// Type of the offending message.
        message: MessageType,
        /// Engine state when it arrived.
        state: &'static str,
    },
    /// The peer asked for a protocol version other than 1.0.
    #[error("unsupported protocol version {0:#06x}")]
    UnsupportedVersion(u16),
    /// The PAC refused our Start-Control-Connection-Request.
    #[error("control connection refused: {0}")]
    Refused(String),
    /// Output queue limit reached (the peer floods us or the caller does not drain).
    #[error("output queue overflow")]
    OutputOverflow,
    /// The connection is closed.
    #[error("control connection closed")]
    Closed,
    /// The connection is not established yet.
    #[error("control connection not established")]
    NotEstablished,
    /// No call with this id (pending or active) on this connection.
    #[error("unknown call id {0}")]
    UnknownCall(u16),
    /// The call id is already used on this connection.
    #[error("call id {0} already in use")]
    CallIdInUse(u16),
    /// The per-connection call limit is reached.
    #[error("too many calls")]
    TooManyCalls,
}

/// An enhanced GRE header (RFC 2637 §4.1) failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GreError {
    /// Shorter than the header, or than header + payload length.
    #[error("GRE packet truncated")]
    Truncated,
    /// Version field is not 1 (enhanced GRE).
    #[error("GRE version {0} is not 1")]
    BadVersion(u8),
    /// Protocol type is not 0x880B (PPP).
    #[error("GRE protocol {0:#06x} is not PPP")]
    BadProtocol(u16),
    /// Key present bit is clear.
    #[error("GRE key bit not set")]
    KeyMissing,
    /// Checksum or routing present: these change the header layout and are not allowed by PPTP.
    #[error("GRE checksum/routing present")]
    UnsupportedFlags,
    /// Payload length non-zero but no sequence number (§4.1: S is set whenever a payload is present).
    #[error("GRE payload without sequence number")]
    PayloadWithoutSequence,
    /// Buffer too small to emit the header.
    #[error("buffer too small for GRE header")]
    BufferTooSmall,
}

/// An IPv4 header around a GRE packet failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4Error {
    /// Shorter than the header or the total length.
    #[error("IPv4 packet truncated")]
    Truncated,
    /// Version nibble is not 4.
    #[error("not IPv4 (version {0})")]
    BadVersion(u8),
    /// IHL below 5 or total length below the header length.
    #[error("bad IPv4 header length")]
    BadHeaderLength,
    /// Protocol is not 47 (GRE).
    #[error("IPv4 protocol {0} is not GRE")]
    NotGre(u8),
    /// The packet is a fragment.
    #[error("IPv4 fragment")]
    Fragment,
}
