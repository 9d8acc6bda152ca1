//! UDP encapsulation of ESP for NAT traversal (RFC 3948).
//!
//! On UDP port 4500 three things share the socket (§2):
//!
//! * a NAT-keepalive: a single 0xFF octet (§2.3), to be ignored;
//! * IKE, prefixed with the 4-octet all-zero non-ESP marker (§2.2);
//! * ESP, starting directly with its (never zero) SPI (§2.1).
//!
//! [`classify`] tells them apart.
//!
//! # Transport-mode checksums (§3.1.2)
//!
//! In transport mode the inner TCP/UDP checksum was computed by the peer over
//! *its* view of the addresses, which a NAT in between has rewritten, so after
//! decapsulation the checksum would fail against the addresses the packet is
//! delivered with. RFC 3948 §3.1.2 lets the receiver fix this: incrementally
//! update it from the NAT-OA addresses, recompute it, or, for UDP over IPv4,
//! set it to zero ("no checksum", RFC 768). ESP's ICV already protects the
//! datagram. [`fix_inner_udp_checksum_ipv4`] recomputes it over the addresses
//! the decapsulated packet is delivered with (normally the outer header's
//! source and destination as received); [`zero_inner_udp_checksum_ipv4`]
//! clears it. (IPv6 forbids a zero UDP checksum; it is out of scope here.)

use core::net::Ipv4Addr;

use crate::error::ChecksumError;

/// The IKE / NAT-T port (RFC 3948 §1, RFC 3947).
pub const NAT_T_PORT: u16 = 4500;
/// The non-ESP marker in front of IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The NAT-keepalive payload (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xFF];
/// Fixed IKE header length (RFC 2408 §3.1); shorter "IKE" payloads are malformed.
pub const IKE_HEADER_LEN: usize = 28;
/// UDP header length (RFC 768).
pub const UDP_HEADER_LEN: usize = 8;

const MIN_ESP_LEN: usize = 8;

/// What a UDP/4500 datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500Payload<'a> {
    /// NAT-keepalive (0xFF); ignore it.
    Keepalive,
    /// An IKE message; the non-ESP marker has been removed.
    Ike(&'a [u8]),
    /// An ESP packet (SPI first); hand it to the SA with that SPI.
    Esp(&'a [u8]),
    /// None of the above (too short for what its first octets announce).
    Malformed,
}

/// Classifies a UDP/4500 payload (RFC 3948 §2).
#[must_use]
pub fn classify(payload: &[u8]) -> Udp4500Payload<'_> {
    match payload {
        [0xFF] => Udp4500Payload::Keepalive,
        [0, 0, 0, 0, ike @ ..] if ike.len() >= IKE_HEADER_LEN => Udp4500Payload::Ike(ike),
        [0, 0, 0, 0, ..] => Udp4500Payload::Malformed,
        esp if esp.len() >= MIN_ESP_LEN => Udp4500Payload::Esp(esp),
        _ => Udp4500Payload::Malformed,
    }
}

/// Appends the non-ESP marker and then `ike_message` to `out`: the UDP/4500
/// payload for an IKE message (RFC 3948 §2.2).
pub fn append_ike_with_marker(out: &mut Vec<u8>, ike_message: &[u8]) {
    out.reserve(NON_ESP_MARKER.len() + ike_message.len());
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(ike_message);
}

/// The UDP length field, validated against the buffer.
fn udp_len(udp: &[u8]) -> Result<usize, ChecksumError> {
    let [_, _, _, _, hi, lo, _, _, ..] = udp else {
        return Err(ChecksumError::Truncated);
    };
    let field = u16::from_be_bytes([*hi, *lo]);
    let len = usize::from(field);
    if len < UDP_HEADER_LEN || len > udp.len() {
        return Err(ChecksumError::BadLength(field));
    }
    Ok(len)
}

fn sum_words(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        if let [a, b] = pair {
            acc += u32::from(u16::from_be_bytes([*a, *b]));
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    // Fold now and then so the accumulator never overflows (≤ 32 KiWords).
    (acc & 0xFFFF) + (acc >> 16)
}

/// The RFC 768 checksum of the UDP datagram `udp` (header ‖ data, as long as
/// its length field says; trailing octets are ignored) over the IPv4 pseudo
/// header, treating the checksum field as zero. Never returns 0 (a computed
/// 0 is sent as 0xFFFF).
///
/// # Errors
/// [`ChecksumError`] if the datagram is truncated or its length field
/// inconsistent.
pub fn udp_checksum_ipv4(udp: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<u16, ChecksumError> {
    let len = udp_len(udp)?;
    let datagram = udp.get(..len).ok_or(ChecksumError::Truncated)?;
    let (head, data) = datagram
        .split_at_checked(6)
        .ok_or(ChecksumError::Truncated)?;
    let data = data.get(2..).ok_or(ChecksumError::Truncated)?;
    let mut acc = 0u32;
    acc = sum_words(&src.octets(), acc);
    acc = sum_words(&dst.octets(), acc);
    acc += 17; // zero ‖ protocol (UDP)
    acc += u32::try_from(len).unwrap_or(0);
    acc = sum_words(head, acc);
    for chunk in data.chunks(8192) {
        acc = sum_words(chunk, acc);
    }
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    let sum = !u16::try_from(acc).unwrap_or(0xFFFF);
    Ok(if sum == 0 { 0xFFFF } else { sum })
}

/// Recomputes the checksum of a decapsulated transport-mode UDP datagram for
/// the addresses it is delivered with (RFC 3948 §3.1.2), in place. `udp`
/// starts at the UDP header (e.g. [`Decapsulated::payload`](crate::Decapsulated)).
///
/// # Errors
/// [`ChecksumError`] if the datagram is truncated or its length field
/// inconsistent; `udp` is unchanged then.
pub fn fix_inner_udp_checksum_ipv4(
    udp: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<(), ChecksumError> {
    let sum = udp_checksum_ipv4(udp, src, dst)?;
    set_checksum(udp, sum)
}

/// Sets the checksum of a decapsulated transport-mode UDP/IPv4 datagram to
/// zero, meaning "not computed" (RFC 768; allowed by RFC 3948 §3.1.2).
///
/// # Errors
/// [`ChecksumError::Truncated`] if `udp` is shorter than a UDP header.
pub fn zero_inner_udp_checksum_ipv4(udp: &mut [u8]) -> Result<(), ChecksumError> {
    set_checksum(udp, 0)
}

fn set_checksum(udp: &mut [u8], sum: u16) -> Result<(), ChecksumError> {
    match udp {
        [_, _, _, _, _, _, hi, lo, ..] => {
            [*hi, *lo] = sum.to_be_bytes();
            Ok(())
        }
        _ => Err(ChecksumError::Truncated),
    }
}
