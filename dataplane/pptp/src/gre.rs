//! Enhanced GRE header (RFC 2637 §4.1) and the IPv4 envelope helper.
//!
//! ```text
//! |C|R|K|S|s|Recur|A| Flags | Ver |         Protocol Type         |
//! |    Key (HW) Payload Length    |       Key (LW) Call ID        |
//! |                  Sequence Number (Optional)                   |
//! |               Acknowledgment Number (Optional)                |
//! ```
//! PPTP sends C=0 R=0 K=1 s=0 Recur=0 Flags=0 Ver=1 Protocol=0x880B; S is set when a payload is
//! present, A when an acknowledgement is carried. On receipt, C or R set is rejected (it would
//! move the fields); s, Recur and Flags are ignored.

use std::net::Ipv4Addr;

use crate::error::{GreError, Ipv4Error};

/// GRE Protocol Type for PPP (§4.1).
pub const GRE_PROTOCOL_PPP: u16 = 0x880B;
/// Enhanced GRE version number (§4.1).
pub const GRE_VERSION: u8 = 1;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// Fixed part of the header (flags, protocol, key).
pub const GRE_BASE_LEN: usize = 8;
/// Longest header: base + sequence + acknowledgement.
pub const GRE_MAX_HEADER_LEN: usize = 16;

const FLAG_C: u8 = 0x80;
const FLAG_R: u8 = 0x40;
const FLAG_K: u8 = 0x20;
const FLAG_S: u8 = 0x10;
const FLAG_A: u8 = 0x80;
const VER_MASK: u8 = 0x07;

/// Checked view of an enhanced GRE packet.
///
/// After [`GrePacket::new_checked`]: version 1, protocol 0x880B, K set, C/R clear, and the
/// buffer holds the header and `payload_len()` payload bytes (trailing bytes are ignored).
#[derive(Debug, Clone)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    /// Wraps a buffer without validation.
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps and validates a buffer.
    pub fn new_checked(buffer: T) -> Result<Self, GreError> {
        let p = Self::new_unchecked(buffer);
        p.check()?;
        Ok(p)
    }

    /// Validates the header and lengths.
    pub fn check(&self) -> Result<(), GreError> {
        let [f0, f1, p0, p1, ..] = *self
            .buffer
            .as_ref()
            .first_chunk::<GRE_BASE_LEN>()
            .ok_or(GreError::Truncated)?;
        if f1 & VER_MASK != GRE_VERSION {
            return Err(GreError::BadVersion(f1 & VER_MASK));
        }
        let proto = u16::from_be_bytes([p0, p1]);
        if proto != GRE_PROTOCOL_PPP {
            return Err(GreError::BadProtocol(proto));
        }
        if f0 & (FLAG_C | FLAG_R) != 0 {
            return Err(GreError::UnsupportedFlags);
        }
        if f0 & FLAG_K == 0 {
            return Err(GreError::KeyMissing);
        }
        let total = self.header_len() + usize::from(self.payload_len());
        if self.buffer.as_ref().len() < total {
            return Err(GreError::Truncated);
        }
        Ok(())
    }

    fn base(&self) -> [u8; GRE_BASE_LEN] {
        self.buffer
            .as_ref()
            .first_chunk::<GRE_BASE_LEN>()
            .copied()
            .unwrap_or([0; GRE_BASE_LEN])
    }

    fn word_at(&self, offset: usize) -> Option<u32> {
        let bytes = self.buffer.as_ref().get(offset..)?.first_chunk::<4>()?;
        Some(u32::from_be_bytes(*bytes))
    }

    /// S bit: sequence number present.
    pub fn has_seq(&self) -> bool {
        self.base()[0] & FLAG_S != 0
    }

    /// A bit: acknowledgement number present.
    pub fn has_ack(&self) -> bool {
        self.base()[1] & FLAG_A != 0
    }

    /// Version field.
    pub fn version(&self) -> u8 {
        self.base()[1] & VER_MASK
    }

    /// Protocol Type field.
    pub fn protocol(&self) -> u16 {
        let [_, _, a, b, ..] = self.base();
        u16::from_be_bytes([a, b])
    }

    /// Key (HW): payload length.
    pub fn payload_len(&self) -> u16 {
        let [_, _, _, _, a, b, _, _] = self.base();
        u16::from_be_bytes([a, b])
    }

    /// Key (LW): call id (the receiver's call id).
    pub fn call_id(&self) -> u16 {
        let [.., a, b] = self.base();
        u16::from_be_bytes([a, b])
    }

    /// Header length given the S and A bits.
    pub fn header_len(&self) -> usize {
        GRE_BASE_LEN + if self.has_seq() { 4 } else { 0 } + if self.has_ack() { 4 } else { 0 }
    }

    /// Sequence number, if present.
    pub fn seq(&self) -> Option<u32> {
        if self.has_seq() {
            self.word_at(GRE_BASE_LEN)
        } else {
            None
        }
    }

    /// Acknowledgement number, if present.
    pub fn ack(&self) -> Option<u32> {
        if self.has_ack() {
            self.word_at(GRE_BASE_LEN + if self.has_seq() { 4 } else { 0 })
        } else {
            None
        }
    }

    /// The payload (`payload_len()` bytes after the header; empty if the buffer is short).
    pub fn payload(&self) -> &[u8] {
        let start = self.header_len();
        self.buffer
            .as_ref()
            .get(start..start + usize::from(self.payload_len()))
            .unwrap_or(&[])
    }
}

/// Validated enhanced GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GreRepr {
    /// Call id of the receiving side (the peer's call id when sending).
    pub call_id: u16,
    /// Sequence number (present iff a payload is carried).
    pub seq: Option<u32>,
    /// Acknowledgement number.
    pub ack: Option<u32>,
    /// Payload length.
    pub payload_len: u16,
}

impl GreRepr {
    /// Parses a packet view (re-checking it).
    pub fn parse<T: AsRef<[u8]>>(packet: &GrePacket<T>) -> Result<Self, GreError> {
        packet.check()?;
        let repr = Self {
            call_id: packet.call_id(),
            seq: packet.seq(),
            ack: packet.ack(),
            payload_len: packet.payload_len(),
        };
        if repr.seq.is_none() && repr.payload_len != 0 {
            return Err(GreError::PayloadWithoutSequence);
        }
        Ok(repr)
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        GRE_BASE_LEN
            + if self.seq.is_some() { 4 } else { 0 }
            + if self.ack.is_some() { 4 } else { 0 }
    }

    fn header_bytes(&self) -> ([u8; GRE_MAX_HEADER_LEN], usize) {
        let f0 = FLAG_K | if self.seq.is_some() { FLAG_S } else { 0 };
        let f1 = GRE_VERSION | if self.ack.is_some() { FLAG_A } else { 0 };
        let [p0, p1] = GRE_PROTOCOL_PPP.to_be_bytes();
        let [l0, l1] = self.payload_len.to_be_bytes();
        let [c0, c1] = self.call_id.to_be_bytes();
        let [s0, s1, s2, s3] = self.seq.unwrap_or(0).to_be_bytes();
        let [a0, a1, a2, a3] = self.ack.unwrap_or(0).to_be_bytes();
        let h = match (self.seq.is_some(), self.ack.is_some()) {
            (true, true) => [
                f0, f1, p0, p1, l0, l1, c0, c1, s0, s1, s2, s3, a0, a1, a2, a3,
            ],
            (true, false) => [f0, f1, p0, p1, l0, l1, c0, c1, s0, s1, s2, s3, 0, 0, 0, 0],
            (false, true) => [f0, f1, p0, p1, l0, l1, c0, c1, a0, a1, a2, a3, 0, 0, 0, 0],
            (false, false) => [f0, f1, p0, p1, l0, l1, c0, c1, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        (h, self.header_len())
    }

    /// Writes the header (not the payload) to the start of `buf`, returning its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, GreError> {
        let (h, len) = self.header_bytes();
        let dst = buf.get_mut(..len).ok_or(GreError::BufferTooSmall)?;
        dst.copy_from_slice(h.get(..len).ok_or(GreError::BufferTooSmall)?);
        Ok(len)
    }

    /// Appends the header (not the payload) to `out`.
    pub fn emit_vec(&self, out: &mut Vec<u8>) {
        let (h, len) = self.header_bytes();
        out.extend_from_slice(h.get(..len).unwrap_or_default());
    }
}

/// Validates an IPv4 header carrying GRE and returns the source address and the range of the GRE bytes
/// (up to the IPv4 Total Length; link-layer padding is dropped).
pub fn ipv4_payload_range(packet: &[u8]) -> Result<(Ipv4Addr, core::ops::Range<usize>), Ipv4Error> {
    let hdr = packet.first_chunk::<20>().ok_or(Ipv4Error::Truncated)?;
    let [
        vihl,
        _tos,
        t0,
        t1,
        _id0,
        _id1,
        fo0,
        fo1,
        _ttl,
        proto,
        _c0,
        _c1,
        s0,
        s1,
        s2,
        s3,
        ..,
    ] = *hdr;
    let version = vihl >> 4;
    if version != 4 {
        return Err(Ipv4Error::BadVersion(version));
    }
    let ihl = usize::from(vihl & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([t0, t1]));
    if ihl < 20 || total < ihl {
        return Err(Ipv4Error::BadHeaderLength);
    }
    if packet.len() < total {
        return Err(Ipv4Error::Truncated);
    }
    // More-fragments flag or a non-zero fragment offset.
    if u16::from_be_bytes([fo0, fo1]) & 0x3FFF != 0 {
        return Err(Ipv4Error::Fragment);
    }
    if proto != IPPROTO_GRE {
        return Err(Ipv4Error::NotGre(proto));
    }
    Ok((Ipv4Addr::new(s0, s1, s2, s3), ihl..total))
}

/// Like [`ipv4_payload_range`], returning the GRE bytes themselves.
pub fn ipv4_payload(packet: &[u8]) -> Result<(Ipv4Addr, &[u8]), Ipv4Error> {
    let (src, range) = ipv4_payload_range(packet)?;
    let gre = packet.get(range).ok_or(Ipv4Error::Truncated)?;
    Ok((src, gre))
}
