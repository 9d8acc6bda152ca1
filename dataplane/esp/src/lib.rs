//! IPsec ESP security associations for the data plane fast path.
//!
//! Sans-IO and pure: no sockets, clocks, OS randomness or threads. The IKEv1
//! engine negotiates a [`Suite`] and KEYMAT and builds an [`OutboundSa`] /
//! [`InboundSa`] pair; the receive thread then calls
//! [`OutboundSa::encapsulate`] / [`InboundSa::decapsulate`] per packet, into
//! and out of caller-provided buffers (no allocation per packet).
//!
//! # Wire format (RFC 4303 §2)
//!
//! ```text
//! SPI (4) ‖ Sequence Number (4) ‖ IV ‖ E(Payload ‖ Padding ‖ Pad Length (1) ‖ Next Header (1)) ‖ ICV
//! ```
//!
//! * Transport mode and tunnel mode share this framing; the caller passes
//!   the Next Header (e.g. 17 for the UDP of L2TP/IPsec, 4 for IPv4-in-ESP).
//! * Padding is the minimal monotonic 1, 2, 3, … of §2.4, aligning to the
//!   cipher block (CBC) or to 4 octets (GCM); the receiver checks it.
//! * Sequence numbers start at 1 and are 32-bit (no ESN); they are never
//!   reused (§3.3.3): [`EncapError::SequenceExhausted`] ends the SA, and
//!   [`OutboundSa::needs_rekey`] warns from [`SEQ_SOFT_LIMIT`] on.
//! * The receiver checks the replay window before any cryptography and
//!   updates it only after the ICV verified (§3.4.3), see [`ReplayWindow`].
//!
//! # Suites
//!
//! | cipher | IV | ICV | RFC |
//! |---|---|---|---|
//! | AES-CBC 128/192/256 + HMAC | 16, random (ChaCha20 CSPRNG) | 12–32 | 3602 |
//! | 3DES-CBC + HMAC | 8, random | 12–32 | 2451 |
//! | AES-GCM 128/192/256, 16-octet ICV | 8, the packet counter | 16 | 4106 |
//!
//! HMACs: HMAC-MD5-96 (RFC 2403), HMAC-SHA1-96 (RFC 2404),
//! HMAC-SHA-256-128 / -384-192 / -512-256 (RFC 4868). KEYMAT is the
//! encryption key (followed by the 4-octet salt for GCM, RFC 4106 §8.1)
//! followed by the integrity key (RFC 2409 §5.5); [`Suite::keymat_len`].
//!
//! Key schedules and HMAC pads are computed once per SA and zeroized on
//! drop; `Debug` never shows key material.
//!
//! # API at a glance
//!
//! ```text
//! Suite::new(Cipher, Option<Integrity>) -> Result<Suite, SuiteError>
//!   .keymat_len() .iv_len() .block_len() .icv_len() .header_len()
//!   .ciphertext_len(n) .encapsulated_len(n) .overhead(n) .max_overhead() .max_payload_len(budget)
//! OutboundSa::new(spi, suite, keymat, iv_seed: [u8; 32]) -> Result<OutboundSa, KeyError>
//!   .encapsulate(next_header, payload, &mut Vec<u8>) -> Result<(), EncapError>      // appends
//!   .encapsulate_in_place(next_header, &mut [u8], payload_len) -> Result<usize, EncapError>
//!   .needs_rekey() .stats() .last_seq() .spi() .suite()
//! InboundSa::new(spi, suite, keymat, replay_window) -> Result<InboundSa, KeyError>
//!   .decapsulate(&mut [u8]) -> Result<Decapsulated<'_>, DecapError>                 // in place
//!   .stats() .replay_window() .spi() .suite()
//! spi_of(&[u8]) -> Option<u32>
//! ReplayWindow::new(size) .check(seq) .update(seq)
//! udp_encap::{classify, append_ike_with_marker, fix_inner_udp_checksum_ipv4, zero_inner_udp_checksum_ipv4}
//! ```
//!
//! The two encapsulation entry points cost the same (measured with
//! `examples/esp_bench.rs`); `encapsulate_in_place` exists so a caller that
//! already has the payload at offset [`Suite::header_len`] of its send buffer
//! (with outer headers in front) avoids the copy.
//!
//! # Out of scope
//!
//! Extended sequence numbers (RFC 4303 §2.2.1), TFC padding, AH, IPv6 UDP
//! checksum fixing, and tunnel-mode policy (inner selector) checks are not
//! implemented. The IV generator's ChaCha20 state is not zeroized on drop
//! (`rand_chacha` offers no zeroization); it holds no traffic key.
//!
//! # UDP encapsulation (RFC 3948)
//!
//! [`udp_encap`] classifies UDP/4500 datagrams (keepalive / IKE / ESP) and
//! fixes inner UDP checksums after transport-mode decapsulation behind NAT.
//!
//! # Example
//!
//! ```
//! use sluice_esp::{AesKeyLen, Cipher, InboundSa, Integrity, OutboundSa, Suite};
//!
//! let suite = Suite::new(Cipher::AesCbc { key_len: AesKeyLen::Aes128 }, Some(Integrity::HmacSha1_96))?;
//! let keymat = [7u8; 36]; // from IKE: 16 octets AES key ‖ 20 octets HMAC key
//! assert_eq!(suite.keymat_len(), keymat.len());
//! let mut tx = OutboundSa::new(0x1234_5678, suite, &keymat, [1; 32])?;
//! let mut rx = InboundSa::new(0x1234_5678, suite, &keymat, 1024)?;
//!
//! let mut packet = Vec::with_capacity(suite.encapsulated_len(5));
//! tx.encapsulate(17, b"hello", &mut packet)?;
//! assert_eq!(sluice_esp::spi_of(&packet), Some(0x1234_5678));
//! let opened = rx.decapsulate(&mut packet)?;
//! assert_eq!((opened.next_header, &opened.payload[..]), (17, &b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]
#![warn(missing_docs)]

mod crypto;
pub mod error;
mod inbound;
mod keys;
mod outbound;
pub mod replay;
pub mod suite;
pub mod udp_encap;

#[cfg(test)]
mod tests;

pub use error::{ChecksumError, DecapError, EncapError, KeyError, ReplayError, SuiteError};
pub use inbound::{Decapsulated, InboundSa, NEXT_HEADER_DUMMY, spi_of};
pub use outbound::{OutboundSa, SEQ_SOFT_LIMIT, TRIPLE_DES_SOFT_BYTES};
pub use replay::ReplayWindow;
pub use suite::{
    AesKeyLen, Cipher, ESP_HEADER_LEN, ESP_TRAILER_LEN, Integrity, MAX_ICV_LEN, MAX_PAYLOAD_LEN,
    Suite,
};

/// Traffic counters of one SA, for IKE lifetimes in packets and kilobytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaStats {
    /// Packets built (outbound) or accepted (inbound).
    pub packets: u64,
    /// Payload octets (before padding, without ESP framing).
    pub bytes: u64,
}
