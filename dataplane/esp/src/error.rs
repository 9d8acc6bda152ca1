//! Error types. Every way a packet can be refused has its own variant so the
//! daemon can count drops per reason (see [`DecapError::label`]).

use thiserror::Error;

/// Why a [`Suite`](crate::Suite) combination was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SuiteError {
    /// A combined-mode cipher (AES-GCM) provides its own ICV; RFC 4106 §4 and
    /// RFC 8221 §3 forbid adding a separate integrity algorithm.
    #[error("a combined-mode cipher must not be combined with an integrity algorithm")]
    IntegrityWithCombinedMode,
    /// CBC ciphers provide confidentiality only; RFC 8221 §3 forbids
    /// encryption without integrity protection.
    #[error("a CBC cipher requires an integrity algorithm")]
    MissingIntegrity,
}

/// Why an SA could not be built from the negotiated keying material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum KeyError {
    /// `keymat` is not exactly [`Suite::keymat_len`](crate::Suite::keymat_len) octets.
    #[error("keying material is {actual} octets, the suite needs {expected}")]
    KeymatLength {
        /// Octets the suite needs.
        expected: usize,
        /// Octets supplied.
        actual: usize,
    },
    /// SPI 0 is reserved for local use and 1..=255 are reserved by IANA
    /// (RFC 4303 §2.1); neither is ever negotiated for an SA.
    #[error("SPI {0:#010x} is reserved (RFC 4303 section 2.1)")]
    ReservedSpi(u32),
    /// The three DES keys are not independent (K1 = K2 or K2 = K3), which
    /// degenerates DES-EDE3 to single DES (RFC 2451, "Weak Keys").
    #[error("3DES key is degenerate: K1 = K2 or K2 = K3")]
    WeakTripleDesKey,
}

/// Why [`OutboundSa`](crate::OutboundSa) refused to build a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncapError {
    /// All 2^32 − 1 sequence numbers have been used; a sequence number must
    /// never be reused (RFC 4303 §3.3.3). The SA must be replaced.
    #[error("sequence number space exhausted; the SA must be rekeyed")]
    SequenceExhausted,
    /// The payload is larger than [`MAX_PAYLOAD_LEN`](crate::MAX_PAYLOAD_LEN).
    #[error("payload of {len} octets exceeds the maximum of {max}")]
    PayloadTooLarge {
        /// Payload length supplied.
        len: usize,
        /// Largest accepted payload.
        max: usize,
    },
    /// The in-place buffer is smaller than the packet to be built.
    #[error("buffer of {actual} octets is too small; {needed} needed")]
    BufferTooSmall {
        /// Octets needed.
        needed: usize,
        /// Octets available.
        actual: usize,
    },
}

/// Why [`InboundSa::decapsulate`](crate::InboundSa::decapsulate) dropped a
/// packet. The checks run in this order: framing, SPI, sequence/replay
/// (before any cryptography), ICV, padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecapError {
    /// Shorter than SPI ‖ Seq ‖ IV ‖ one cipher block (or 4 octets for GCM)
    /// ‖ ICV.
    #[error("packet truncated")]
    Truncated,
    /// The SPI is not this SA's (the demultiplexer routed it wrongly).
    #[error("SPI {got:#010x} does not belong to SA {expected:#010x}")]
    WrongSpi {
        /// This SA's SPI.
        expected: u32,
        /// SPI in the packet.
        got: u32,
    },
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3: the first packet is 1).
    #[error("sequence number 0 is invalid")]
    SequenceZero,
    /// The sequence number was already received (RFC 4303 §3.4.3).
    #[error("sequence number {seq} replayed")]
    Replayed {
        /// Offending sequence number.
        seq: u32,
    },
    /// The sequence number lies to the left of the replay window.
    #[error("sequence number {seq} is left of the replay window")]
    TooOld {
        /// Offending sequence number.
        seq: u32,
    },
    /// The ciphertext is not a whole number of cipher blocks (RFC 3602 §3,
    /// RFC 2451) or of 4 octets (RFC 4303 §2.4, RFC 4106 §3).
    #[error("ciphertext length is not a multiple of the block size")]
    BadLength,
    /// The ICV did not verify (checked in constant time).
    #[error("integrity check failed")]
    IntegrityFailed,
    /// The pad length exceeds the plaintext, or the padding octets are not
    /// the monotonic 1, 2, 3, … sequence of RFC 4303 §2.4.
    #[error("invalid ESP padding")]
    BadPadding,
    /// An authentic dummy packet (next header 59, RFC 4303 §2.6); the replay
    /// window was updated. Drop it silently.
    #[error("dummy packet (next header 59)")]
    DummyPacket,
}

impl DecapError {
    /// A short, stable, lowercase name for metrics labels.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Truncated => "truncated",
            Self::WrongSpi { .. } => "wrong_spi",
            Self::SequenceZero => "sequence_zero",
            Self::Replayed { .. } => "replayed",
            Self::TooOld { .. } => "too_old",
            Self::BadLength => "bad_length",
            Self::IntegrityFailed => "integrity_failed",
            Self::BadPadding => "bad_padding",
            Self::DummyPacket => "dummy",
        }
    }
}

/// Verdict of [`ReplayWindow::check`](crate::ReplayWindow::check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplayError {
    /// Sequence number 0 is never valid.
    #[error("sequence number 0 is invalid")]
    Zero,
    /// Already received.
    #[error("sequence number already received")]
    Replayed,
    /// Left of the window.
    #[error("sequence number is left of the window")]
    TooOld,
}

impl ReplayError {
    pub(crate) const fn into_decap(self, seq: u32) -> DecapError {
        match self {
            Self::Zero => DecapError::SequenceZero,
            Self::Replayed => DecapError::Replayed { seq },
            Self::TooOld => DecapError::TooOld { seq },
        }
    }
}

/// Why a UDP checksum could not be recomputed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ChecksumError {
    /// Fewer than the 8 octets of a UDP header.
    #[error("UDP datagram shorter than its header")]
    Truncated,
    /// The UDP length field is below 8 or beyond the buffer.
    #[error("UDP length field {0} is inconsistent with the buffer")]
    BadLength(u16),
}
