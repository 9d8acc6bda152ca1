//! Error types.

use std::fmt;

use crate::mppe::MppeError;

/// Protocol layer an [`Error`] belongs to (for per-layer counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// PPP framing / protocol field.
    Ppp,
    /// Link Control Protocol.
    Lcp,
    /// IP Control Protocol.
    Ipcp,
    /// Compression Control Protocol.
    Ccp,
    /// MPPE data.
    Mppe,
    /// PAP / CHAP / MS-CHAP.
    Auth,
}

impl Layer {
    /// Lower-case name ("ppp", "lcp", "ipcp", "ccp", "mppe", "auth").
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Ppp => "ppp",
            Layer::Lcp => "lcp",
            Layer::Ipcp => "ipcp",
            Layer::Ccp => "ccp",
            Layer::Mppe => "mppe",
            Layer::Auth => "auth",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A received frame was malformed or unexpected; the caller counts and drops it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Frame too short for the address/control and protocol fields.
    #[error("ppp: frame too short")]
    FrameTooShort,
    /// Protocol field not valid per RFC 1661 §2.
    #[error("ppp: invalid protocol field {0:#06x}")]
    BadProtocol(u16),
    /// Protocol not supported (LCP Protocol-Reject sent when the link is open).
    #[error("ppp: unsupported protocol {0:#06x}")]
    UnknownProtocol(u16),
    /// Control packet failed length/format checks.
    #[error("{layer}: malformed packet: {what}")]
    Malformed {
        /// Layer of the packet.
        layer: Layer,
        /// What was wrong.
        what: &'static str,
    },
    /// Well-formed packet that is not acceptable in the current state.
    #[error("{layer}: unexpected packet: {what}")]
    Unexpected {
        /// Layer of the packet.
        layer: Layer,
        /// What was wrong.
        what: &'static str,
    },
    /// MPPE receive failure.
    #[error("mppe: {0}")]
    Mppe(#[from] MppeError),
}

impl Error {
    /// Layer for counting.
    pub fn layer(&self) -> Layer {
        match self {
            Error::FrameTooShort | Error::BadProtocol(_) | Error::UnknownProtocol(_) => Layer::Ppp,
            Error::Malformed { layer, .. } | Error::Unexpected { layer, .. } => *layer,
            Error::Mppe(_) => Layer::Mppe,
        }
    }

    pub(crate) fn malformed(layer: Layer, what: &'static str) -> Error {
        Error::Malformed { layer, what }
    }

    pub(crate) fn unexpected(layer: Layer, what: &'static str) -> Error {
        Error::Unexpected { layer, what }
    }
}

/// Data could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The network phase is not up (or the link is down).
    #[error("ppp: network phase not up")]
    NotReady,
    /// The packet (plus encapsulation) exceeds min(peer MRU, mtu).
    #[error("ppp: packet of {len} octets exceeds the limit of {max}")]
    TooBig {
        /// IP datagram length.
        len: usize,
        /// Largest IP datagram that fits.
        max: usize,
    },
}
