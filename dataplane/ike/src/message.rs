//! Whole ISAKMP messages: header + payload chain, with Phase 1 encryption (RFC 2408 §3.5,
//! RFC 2409 Appendix B) and the hashes over "the rest of the message" that Quick Mode and
//! Informational exchanges use (RFC 2409 §5.5, §5.7).

use crate::cipher::Cipher;
use crate::error::WireError;
use crate::header::{ExchangeType, HEADER_LEN, Header, MAX_MESSAGE_LEN, flags};
use crate::payload::{ChainBuilder, RawPayload, kind, parse_chain};

/// A decoded message: header, plaintext payload bytes and the payload chain over them.
#[derive(Debug, Clone)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// Payload bytes (decrypted if the E flag was set), padding included.
    pub body: Vec<u8>,
    /// The last ciphertext block of an encrypted message (the next IV, Appendix B).
    pub last_block: Option<Vec<u8>>,
}

impl Message {
    /// Decodes a message whose payloads are in clear.
    pub fn parse_plain(datagram: &[u8]) -> Result<Message, WireError> {
        let (header, body) = Header::parse(datagram)?;
        Ok(Message {
            header,
            body: body.to_vec(),
            last_block: None,
        })
    }

    /// Decrypts the payloads of an encrypted message with `iv`.
    pub fn decrypt(
        header: Header,
        ciphertext: &[u8],
        cipher: Cipher,
        key: &[u8],
        iv: &[u8],
    ) -> Result<Message, WireError> {
        let bs = cipher.block_len();
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(bs) {
            return Err(WireError::NotBlockAligned);
        }
        let last_block = ciphertext.get(ciphertext.len() - bs..).map(<[u8]>::to_vec);
        let mut body = ciphertext.to_vec();
        cipher
            .decrypt(key, iv, &mut body)
            .map_err(|_| WireError::NotBlockAligned)?;
        Ok(Message {
            header,
            body,
            last_block,
        })
    }

    /// The payload chain.
    pub fn payloads(&self) -> Result<Vec<RawPayload<'_>>, WireError> {
        parse_chain(self.header.next_payload, &self.body)
    }
}

/// Payload lookup helpers over a parsed chain.
pub trait PayloadsExt<'a> {
    /// The first payload of `kind`.
    fn find_kind(&self, kind: u8) -> Option<&RawPayload<'a>>;
    /// Every payload of `kind`, in order.
    fn all_kind(&self, kind: u8) -> Vec<&RawPayload<'a>>;
}

impl<'a> PayloadsExt<'a> for [RawPayload<'a>] {
    fn find_kind(&self, k: u8) -> Option<&RawPayload<'a>> {
        self.iter().find(|p| p.kind == k)
    }
    fn all_kind(&self, k: u8) -> Vec<&RawPayload<'a>> {
        self.iter().filter(|p| p.kind == k).collect()
    }
}

/// The bytes the Quick Mode / Informational HASH covers: everything after the leading HASH
/// payload up to the end of the last payload (padding excluded). `None` when the first
/// payload is not a HASH.
pub fn after_hash<'a>(body: &'a [u8], chain: &[RawPayload<'_>]) -> Option<(&'a [u8], usize)> {
    let h = chain.first()?;
    if h.kind != kind::HASH {
        return None;
    }
    let end = chain.last().map_or(h.end, |p| p.end);
    Some((body.get(h.end..end)?, h.body.len()))
}

/// Assembles a message with the payloads of `chain` in clear.
pub fn seal_plain(mut header: Header, chain: &ChainBuilder) -> Vec<u8> {
    header.next_payload = chain.first();
    header.flags &= !flags::ENCRYPTION;
    let body = chain.bytes();
    header.length = u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    header.emit(&mut out);
    out.extend_from_slice(body);
    out
}

/// Assembles and encrypts a message; returns it with its last ciphertext block (the IV of
/// the next message in the same exchange). Padding is zeros to the block size (RFC 2408
/// §3.5 leaves its value open; the receiver finds the end through the chain).
pub fn seal_encrypted(
    mut header: Header,
    chain: &ChainBuilder,
    cipher: Cipher,
    key: &[u8],
    iv: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), WireError> {
    let bs = cipher.block_len();
    let mut body = chain.bytes().to_vec();
    let padded = body.len().div_ceil(bs).max(1) * bs;
    body.resize(padded, 0);
    if HEADER_LEN + body.len() > MAX_MESSAGE_LEN {
        return Err(WireError::Length(
            u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX),
        ));
    }
    cipher
        .encrypt(key, iv, &mut body)
        .map_err(|_| WireError::NotBlockAligned)?;
    header.next_payload = chain.first();
    header.flags |= flags::ENCRYPTION;
    header.length = u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX);
    let last = body
        .get(body.len() - bs..)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    header.emit(&mut out);
    out.extend_from_slice(&body);
    Ok((out, last))
}

/// A header for a reply or a new message of an exchange.
pub fn header(cky_i: [u8; 8], cky_r: [u8; 8], exchange: ExchangeType, message_id: u32) -> Header {
    Header {
        cky_i,
        cky_r,
        next_payload: 0,
        exchange,
        flags: 0,
        message_id,
        length: 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cipher::AesKeyLen;

    #[test]
    fn encrypted_round_trip_and_hash_range() {
        let mut chain = ChainBuilder::new();
        chain
            .push(kind::HASH, &[0xaa; 20])
            .push(kind::N, &[1; 13])
            .push(kind::D, &[2; 3]);
        let c = Cipher::AesCbc(AesKeyLen::Aes128);
        let h = header([1; 8], [2; 8], ExchangeType::Informational, 7);
        let (wire, last) = seal_encrypted(h, &chain, c, &[3; 16], &[4; 16]).unwrap();
        assert_eq!((wire.len() - HEADER_LEN) % 16, 0);
        assert_eq!(&wire[wire.len() - 16..], &last[..]);
        let (hdr, ct) = Header::parse(&wire).unwrap();
        assert!(hdr.encrypted());
        let m = Message::decrypt(hdr, ct, c, &[3; 16], &[4; 16]).unwrap();
        let p = m.payloads().unwrap();
        assert_eq!(p.len(), 3);
        let (rest, hash_len) = after_hash(&m.body, &p).unwrap();
        assert_eq!(hash_len, 20);
        assert_eq!(rest, &chain.bytes()[24..]);
        // Wrong key: the chain is garbage, which is an error, not a panic.
        let bad = Message::decrypt(hdr, ct, c, &[9; 16], &[4; 16]).unwrap();
        let _ = bad.payloads();
        assert_eq!(
            Message::decrypt(hdr, &ct[..15], c, &[3; 16], &[4; 16]).unwrap_err(),
            WireError::NotBlockAligned
        );
    }
}
