//! Error types.

/// An ISAKMP message or payload failed validation (RFC 2408 §3, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than a header or length field requires.
    #[error("message truncated")]
    Truncated,
    /// Major version other than 1.
    #[error("unsupported ISAKMP version {0:#04x}")]
    Version(u8),
    /// The header's Length field is below 28, beyond the datagram or beyond the size limit.
    #[error("ISAKMP length field {0} invalid")]
    Length(u32),
    /// A payload's length is below its header or runs past its container.
    #[error("payload {0} has an invalid length")]
    PayloadLength(u8),
    /// More payloads, proposals, transforms or attributes than the limits allow.
    #[error("too many {0} in one message")]
    TooMany(&'static str),
    /// A payload's fixed fields are invalid.
    #[error("malformed {0} payload")]
    Malformed(&'static str),
    /// Encrypted payloads are not a whole number of cipher blocks.
    #[error("encrypted payloads are not block aligned")]
    NotBlockAligned,
}
