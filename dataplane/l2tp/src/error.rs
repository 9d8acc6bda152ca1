//! Error types of the L2TP crate.

use crate::message::MessageType;

/// A header, AVP or control message (RFC 2661 §3.1, §4.1, §6) failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the header, the Length field or an AVP require.
    #[error("message truncated")]
    Truncated,
    /// Ver other than 2 (§3.1: 1 is L2F, 3 is L2TPv3; neither is supported).
    #[error("unsupported L2TP header version {0} (1 = L2F, 3 = L2TPv3; only 2 is supported)")]
    BadVersion(u8),
    /// A control message (T=1) without L=1 and S=1, or with O=1 or P=1 (§3.1).
    #[error("control message with invalid L/S/O/P bits")]
    BadControlFlags,
    /// Length field smaller than the header it describes.
    #[error("length field {0} smaller than the header")]
    BadLength(u16),
    /// Offset Size reaches past the message.
    #[error("offset size {0} reaches past the message")]
    BadOffset(u16),
    /// AVP Length below 6 (§4.1).
    #[error("AVP length {0} below 6")]
    AvpLength(u16),
    /// An AVP's Length reaches past the end of the message.
    #[error("AVP runs past the end of the message")]
    AvpTruncated,
    /// More AVPs than [`crate::message::MAX_AVPS_PER_MESSAGE`].
    #[error("too many AVPs in one message")]
    TooManyAvps,
    /// The first AVP is not a Message Type AVP (§4.4.1), or the body is empty.
    #[error("first AVP is not a Message Type AVP")]
    MissingMessageType,
    /// Message Type AVP hidden, vendor-specific or not 2 octets (§4.4.1).
    #[error("malformed Message Type AVP")]
    BadMessageTypeAvp,
    /// Message Type not defined by RFC 2661 §3.2. With `mandatory` the tunnel must be cleared;
    /// without it the message may be ignored (§4.4.1).
    #[error("unknown message type {code}")]
    UnknownMessageType {
        /// The Message Type value.
        code: u16,
        /// The M bit of the Message Type AVP.
        mandatory: bool,
    },
    /// Unrecognised AVP (unknown, vendor-specific or with reserved bits set) with M=1 (§4.1).
    #[error("unknown mandatory AVP (vendor {vendor}, attribute {attribute})")]
    UnknownMandatoryAvp {
        /// Vendor ID.
        vendor: u16,
        /// Attribute Type.
        attribute: u16,
    },
    /// A known AVP with M=1 whose value has the wrong size or an invalid value (§7.1).
    #[error("malformed mandatory AVP {0}")]
    MalformedAvp(u16),
    /// A hidden AVP (H=1) arrived but no shared secret is configured (§4.3).
    #[error("hidden AVP {0} but no shared secret is configured")]
    HiddenWithoutSecret(u16),
    /// A hidden AVP (H=1) not preceded by a Random Vector AVP (§4.3).
    #[error("hidden AVP {0} without a preceding Random Vector AVP")]
    HiddenWithoutRandomVector(u16),
    /// A hidden AVP whose decoded Length of Original Value exceeds the AVP (wrong secret?).
    #[error("hidden AVP {0} does not decode (wrong secret?)")]
    BadHiddenAvp(u16),
    /// A required AVP (§6) is absent.
    #[error("{message} lacks required AVP {attribute}")]
    MissingAvp {
        /// The message type.
        message: MessageType,
        /// The missing Attribute Type.
        attribute: u16,
    },
    /// A data message (T=0) where a control message was expected.
    #[error("not a control message")]
    NotControl,
    /// A control message (T=1) where a data message was expected.
    #[error("not a data message")]
    NotData,
}

/// An error of the [`crate::Endpoint`] API or of one input datagram.
///
/// Input errors mean the datagram was dropped without any reply (the caller counts them).
/// Protocol violations inside a known tunnel are answered on the wire (StopCCN/CDN) and
/// reported as events; `handle_input` still returns `Ok` for them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The datagram's header (or, for Tunnel ID 0, its body) is malformed.
    #[error("malformed datagram: {0}")]
    Malformed(#[from] ParseError),
    /// A data message was handed to the control endpoint.
    #[error("data message given to the control endpoint")]
    NotControl,
    /// No tunnel with this local Tunnel ID.
    #[error("unknown tunnel id {0}")]
    UnknownTunnel(u16),
    /// A datagram for a tunnel arrived from another address than the tunnel's peer (§8.1:
    /// addresses and ports stay static for the life of the tunnel).
    #[error("datagram for tunnel {0} from an unexpected address")]
    AddressMismatch(u16),
    /// [`crate::EndpointConfig::max_tunnels`] reached.
    #[error("tunnel limit reached")]
    TooManyTunnels,
    /// [`crate::EndpointConfig::max_pending_tunnels`] tunnels are still being set up.
    #[error("too many tunnels in setup")]
    TooManyPendingTunnels,
    /// The datagram was refused by policy without a reply.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// No such session on the tunnel.
    #[error("unknown session {session} on tunnel {tunnel}")]
    UnknownSession {
        /// Local tunnel id.
        tunnel: u16,
        /// Session id as given.
        session: u16,
    },
    /// The local session id is zero (§5.3: 0 is never assigned).
    #[error("session id 0 is reserved")]
    InvalidSessionId,
    /// The local session id is already used on this tunnel.
    #[error("session id {0} already in use")]
    SessionIdInUse(u16),
    /// [`crate::EndpointConfig::max_sessions_per_tunnel`] reached.
    #[error("session limit reached")]
    TooManySessions,
    /// The tunnel is not established.
    #[error("tunnel {0} is not established")]
    NotEstablished(u16),
    /// The operation is not available in this endpoint's role.
    #[error("operation not available in this role")]
    WrongRole,
}
