//! ISAKMP payload chains (RFC 2408 §3.2) and the simple payload bodies.

use crate::error::WireError;

/// Most payloads accepted in one message.
pub const MAX_PAYLOADS: usize = 32;

/// Payload types (RFC 2408 §3.1, RFC 3947 §3.2/§5.2, draft-ietf-ipsec-nat-t-ike-02/03).
pub mod kind {
    /// End of chain.
    pub const NONE: u8 = 0;
    /// Security Association.
    pub const SA: u8 = 1;
    /// Proposal (only inside SA).
    pub const PROPOSAL: u8 = 2;
    /// Transform (only inside Proposal).
    pub const TRANSFORM: u8 = 3;
    /// Key Exchange.
    pub const KE: u8 = 4;
    /// Identification.
    pub const ID: u8 = 5;
    /// Certificate.
    pub const CERT: u8 = 6;
    /// Certificate Request.
    pub const CR: u8 = 7;
    /// Hash.
    pub const HASH: u8 = 8;
    /// Signature.
    pub const SIG: u8 = 9;
    /// Nonce.
    pub const NONCE: u8 = 10;
    /// Notification.
    pub const N: u8 = 11;
    /// Delete.
    pub const D: u8 = 12;
    /// Vendor ID.
    pub const VID: u8 = 13;
    /// Attribute (Mode Config).
    pub const ATTR: u8 = 14;
    /// NAT Discovery (RFC 3947).
    pub const NAT_D: u8 = 20;
    /// NAT Original Address (RFC 3947).
    pub const NAT_OA: u8 = 21;
    /// NAT-D of the drafts (02/03).
    pub const NAT_D_DRAFT: u8 = 130;
    /// NAT-OA of the drafts (02/03).
    pub const NAT_OA_DRAFT: u8 = 131;
}

/// One payload of a chain: its type, its body (generic header excluded) and where the whole
/// payload sits in the parsed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// Payload type.
    pub kind: u8,
    /// Body after the 4-octet generic header.
    pub body: &'a [u8],
    /// Offset of the generic header in the buffer.
    pub start: usize,
    /// Offset one past the payload's last octet.
    pub end: usize,
}

/// Walks a payload chain starting with type `first`. Bytes after the payload whose Next Payload
/// is 0 are padding (encrypted messages, RFC 2408 §3.5) and are ignored.
pub fn parse_chain(first: u8, buf: &[u8]) -> Result<Vec<RawPayload<'_>>, WireError> {
    let mut out = Vec::new();
    let mut kind = first;
    let mut pos = 0usize;
    while kind != kind::NONE {
        if out.len() == MAX_PAYLOADS {
            return Err(WireError::TooMany("payloads"));
        }
        let hdr: &[u8; 4] = buf
            .get(pos..pos + 4)
            .and_then(|h| h.try_into().ok())
            .ok_or(WireError::PayloadLength(kind))?;
        let [next, _reserved, l0, l1] = *hdr;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        if len < 4 {
            return Err(WireError::PayloadLength(kind));
        }
        let end = pos.checked_add(len).ok_or(WireError::PayloadLength(kind))?;
        let body = buf
            .get(pos + 4..end)
            .ok_or(WireError::PayloadLength(kind))?;
        out.push(RawPayload {
            kind,
            body,
            start: pos,
            end,
        });
        kind = next;
        pos = end;
    }
    Ok(out)
}

/// Builds a payload chain: each pushed payload gets a generic header whose Next Payload field
/// is patched when the next payload is pushed.
#[derive(Debug, Default, Clone)]
pub struct ChainBuilder {
    buf: Vec<u8>,
    first: u8,
    last_header: Option<usize>,
}

impl ChainBuilder {
    /// An empty chain.
    pub fn new() -> ChainBuilder {
        ChainBuilder::default()
    }

    /// Appends a payload of `kind` with `body`. Bodies longer than 65531 octets are truncated
    /// by the caller's limits long before this point; the length is saturated, never wrapped.
    pub fn push(&mut self, kind: u8, body: &[u8]) -> &mut Self {
        match self.last_header {
            None => self.first = kind,
            Some(at) => {
                if let Some(b) = self.buf.get_mut(at) {
                    *b = kind;
                }
            }
        }
        self.last_header = Some(self.buf.len());
        let len = u16::try_from(body.len() + 4).unwrap_or(u16::MAX);
        self.buf.push(kind::NONE);
        self.buf.push(0);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(body);
        self
    }

    /// Appends every payload of `other` after ours.
    pub fn append(&mut self, other: ChainBuilder) -> &mut Self {
        let Some(other_last) = other.last_header else {
            return self;
        };
        match self.last_header {
            None => self.first = other.first,
            Some(at) => {
                if let Some(b) = self.buf.get_mut(at) {
                    *b = other.first;
                }
            }
        }
        self.last_header = Some(self.buf.len() + other_last);
        self.buf.extend_from_slice(&other.buf);
        self
    }

    /// Type of the first payload (for the ISAKMP header).
    pub fn first(&self) -> u8 {
        self.first
    }

    /// The chain's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Consumes the builder.
    pub fn into_parts(self) -> (u8, Vec<u8>) {
        (self.first, self.buf)
    }
}

/// Reads a big-endian u16 at `at`.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads a big-endian u32 at `at`.
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn chain_round_trip_padding_and_lies() {
        let mut b = ChainBuilder::new();
        b.push(kind::KE, &[1, 2, 3])
            .push(kind::NONCE, &[4; 8])
            .push(kind::VID, &[]);
        let (first, mut bytes) = b.into_parts();
        assert_eq!(first, kind::KE);
        bytes.extend_from_slice(&[0; 5]); // padding
        let chain = parse_chain(first, &bytes).unwrap();
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[0].body, &[1, 2, 3]);
        assert_eq!(chain[1].kind, kind::NONCE);
        assert_eq!(chain[2].body, &[] as &[u8]);
        assert_eq!(chain[2].end, bytes.len() - 5);
        let mut head = ChainBuilder::new();
        head.push(kind::HASH, &[9; 4]);
        let mut tail = ChainBuilder::new();
        tail.push(kind::SA, &[1]).push(kind::NONCE, &[2]);
        head.append(tail);
        head.push(kind::VID, &[3]);
        let kinds: Vec<u8> = parse_chain(head.first(), head.bytes())
            .unwrap()
            .iter()
            .map(|p| p.kind)
            .collect();
        assert_eq!(kinds, [kind::HASH, kind::SA, kind::NONCE, kind::VID]);
        // Truncated anywhere inside the payloads: an error, never a panic.
        for n in 0..chain[2].end {
            assert!(parse_chain(first, &bytes[..n]).is_err(), "{n}");
        }
        // Length below the generic header.
        assert_eq!(
            parse_chain(kind::KE, &[0, 0, 0, 3]),
            Err(WireError::PayloadLength(kind::KE))
        );
        // A self-referencing chain longer than the limit.
        let looped: Vec<u8> = std::iter::repeat_n([kind::VID, 0, 0, 4], 40)
            .flatten()
            .collect();
        assert_eq!(
            parse_chain(kind::VID, &looped),
            Err(WireError::TooMany("payloads"))
        );
    }
}
