//! Informational exchanges (RFC 2409 §5.7), and the HASH(1) protection they share with the
//! first message of a Quick Mode (§5.5): HDR*, HASH(1), payloads, where
//! HASH(1) = prf(SKEYID_a, M-ID | payloads) and the IV derives from the last Phase 1 CBC
//! block and the Message ID (Appendix B). DPD rides on it (RFC 3706 §5).

use crate::error::WireError;
use crate::header::{ExchangeType, Header};
use crate::keys::{Phase1Keys, phase2_iv};
use crate::message::{Message, after_hash, header, seal_encrypted};
use crate::notify::{Delete, Notify, code};
use crate::payload::ChainBuilder;
use crate::responder::DropReason;
use crate::sa::protocol;

use super::{first_body, hash_eq};

/// The keys and cookies of an established ISAKMP SA that protect its Phase 2 and
/// Informational messages.
#[derive(Clone, Copy)]
pub(crate) struct Protection<'a> {
    /// The Phase 1 keys (SKEYID_a, the cipher and key).
    pub(crate) keys: &'a Phase1Keys,
    /// The last CBC block of Phase 1 (RFC 2409 Appendix B).
    pub(crate) phase1_iv: &'a [u8],
    /// CKY-I.
    pub(crate) cky_i: [u8; 8],
    /// CKY-R.
    pub(crate) cky_r: [u8; 8],
}

impl<'a> Protection<'a> {
    /// The protection of an ISAKMP SA with `keys` (none before Phase 1 completes).
    pub(crate) fn of(
        keys: Option<&'a Phase1Keys>,
        phase1_iv: &'a [u8],
        (cky_i, cky_r): ([u8; 8], [u8; 8]),
    ) -> Option<Protection<'a>> {
        Some(Protection {
            keys: keys?,
            phase1_iv,
            cky_i,
            cky_r,
        })
    }

    /// Seals the first message of an exchange: HDR*, HASH(1), `rest`. Returns the message
    /// and its last ciphertext block (the IV of the answer).
    pub(crate) fn seal_first(
        &self,
        exchange: ExchangeType,
        msgid: u32,
        rest: ChainBuilder,
    ) -> Result<(Vec<u8>, Vec<u8>), WireError> {
        let k = self.keys;
        let hash = k
            .hash
            .prf(&k.skeyid_a, &[&msgid.to_be_bytes(), rest.bytes()]);
        let mut full = ChainBuilder::new();
        full.push(crate::payload::kind::HASH, &hash).append(rest);
        let iv = phase2_iv(k.hash, k.cipher, self.phase1_iv, msgid);
        self.seal(exchange, msgid, &full, &iv)
    }

    /// Encrypts `chain` under the Phase 1 key with `iv`.
    pub(crate) fn seal(
        &self,
        exchange: ExchangeType,
        msgid: u32,
        chain: &ChainBuilder,
        iv: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), WireError> {
        let hdr = header(self.cky_i, self.cky_r, exchange, msgid);
        seal_encrypted(hdr, chain, self.keys.cipher, &self.keys.enc_key, iv)
    }

    /// Decrypts a message with `iv`.
    pub(crate) fn open(&self, hdr: &Header, body: &[u8], iv: &[u8]) -> Result<Message, DropReason> {
        Message::decrypt(*hdr, body, self.keys.cipher, &self.keys.enc_key, iv)
            .map_err(|_| DropReason::Malformed)
    }

    /// Decrypts the first message of an exchange the peer started with its own IV and
    /// checks its HASH(1) = prf(SKEYID_a, M-ID | payloads after HASH).
    pub(crate) fn open_first(&self, hdr: &Header, body: &[u8]) -> Result<Message, DropReason> {
        let k = self.keys;
        let iv = phase2_iv(k.hash, k.cipher, self.phase1_iv, hdr.message_id);
        let m = self.open(hdr, body, &iv)?;
        {
            let chain = m.payloads().map_err(|_| DropReason::Malformed)?;
            let (rest, _) = after_hash(&m.body, &chain).ok_or(DropReason::Malformed)?;
            self.verify(&[&hdr.message_id.to_be_bytes(), rest], first_body(&chain))?;
        }
        Ok(m)
    }

    /// Checks a received hash: `got` = prf(SKEYID_a, `parts`).
    pub(crate) fn verify(&self, parts: &[&[u8]], got: &[u8]) -> Result<(), DropReason> {
        let expect = self.keys.hash.prf(&self.keys.skeyid_a, parts);
        if hash_eq(&expect, got) {
            Ok(())
        } else {
            Err(DropReason::AuthFailed)
        }
    }

    /// An Informational message of `msgid` carrying `rest` (RFC 2409 §5.7).
    pub(crate) fn informational(&self, msgid: u32, rest: ChainBuilder) -> Option<Vec<u8>> {
        self.seal_first(ExchangeType::Informational, msgid, rest)
            .ok()
            .map(|(out, _)| out)
    }
}

/// R-U-THERE with sequence number `seq` (RFC 3706 §5).
pub(crate) fn r_u_there((cky_i, cky_r): ([u8; 8], [u8; 8]), seq: u32) -> Notify {
    Notify {
        protocol: protocol::ISAKMP,
        code: code::R_U_THERE,
        spi: [cky_i, cky_r].concat(),
        data: seq.to_be_bytes().to_vec(),
    }
}

/// DELETE of the ISAKMP SA named by its cookies (RFC 2408 §3.15).
pub(crate) fn delete_isakmp((cky_i, cky_r): ([u8; 8], [u8; 8])) -> Delete {
    Delete {
        protocol: protocol::ISAKMP,
        spis: vec![[cky_i, cky_r].concat()],
    }
}

/// DELETE of the ESP SA with our inbound SPI `spi` (RFC 2408 §3.15).
pub(crate) fn delete_esp(spi: u32) -> Delete {
    Delete {
        protocol: protocol::ESP,
        spis: vec![spi.to_be_bytes().to_vec()],
    }
}

/// The answer to an R-U-THERE: the same notify as R-U-THERE-ACK (RFC 3706 §5).
pub(crate) fn r_u_there_ack(n: Notify) -> Notify {
    Notify {
        code: code::R_U_THERE_ACK,
        ..n
    }
}
