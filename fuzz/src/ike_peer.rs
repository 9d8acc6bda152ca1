//! A scripted IKEv1 peer for the structure-aware targets (`ike_responder_phases`,
//! `ike_initiator_phases`). It runs the Diffie-Hellman exchange with the engine under test,
//! so it knows the Phase 1 keys and IVs: the input then chooses the *plaintext* of the
//! encrypted messages (Main Mode 5/6, Quick Mode, Informational), which the peer encrypts
//! correctly and, where the input asks for it, authenticates with the right HASH. Random
//! bytes alone never get past the decryption and the hashes; these targets start behind them.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sluice_ike::cipher::{AesKeyLen, Cipher};
use sluice_ike::dh::{Group, KeyPair};
use sluice_ike::header::{ExchangeType, HEADER_LEN, Header, MAX_MESSAGE_LEN, flags};
use sluice_ike::identity::Identification;
use sluice_ike::initiator::esp_proposal;
use sluice_ike::keys::Phase1Keys;
use sluice_ike::message::Message;
use sluice_ike::notify::{Delete, Notify, code};
use sluice_ike::payload::{ChainBuilder, kind};
use sluice_ike::prf::HashAlg;
use sluice_ike::sa::{
    AuthMethod, EspAuth, EspCipher, IkeTransform, Lifetime, Proposal, SaPayload, protocol,
};

use crate::Ops;

/// A deterministic RNG for the peer's DH secret.
pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

/// The Phase 1 transform the input picks. ECP-256 unless asked otherwise: its key agreement
/// costs far less than MODP, which keeps the targets fast.
pub fn ike_transform(sel: u8) -> IkeTransform {
    let cipher = match sel & 3 {
        0 | 1 => Cipher::AesCbc(AesKeyLen::Aes128),
        2 => Cipher::AesCbc(AesKeyLen::Aes256),
        _ => Cipher::TripleDesCbc,
    };
    let hash = match (sel >> 2) & 3 {
        0 | 1 => HashAlg::Sha1,
        2 => HashAlg::Sha256,
        _ => HashAlg::Sha384,
    };
    let group = if sel & 0x40 != 0 {
        Group::Modp1024
    } else {
        Group::Ecp256
    };
    IkeTransform {
        cipher,
        hash,
        auth: AuthMethod::PreSharedKey,
        group,
        lifetime: Lifetime {
            seconds: Some(28800),
            kilobytes: None,
        },
    }
}

/// The SA payload of a one-transform Quick Mode proposal (ESP AES-128/SHA-1, transport).
pub fn esp_sa(spi: u32, pfs: Option<Group>) -> Vec<u8> {
    let t = esp_proposal(
        EspCipher::AesCbc(AesKeyLen::Aes128),
        Some(EspAuth::HmacSha1),
        pfs,
    );
    SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: protocol::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: vec![t.to_transform(1, t.lifetime)],
        }],
    }
    .emit()
}

/// An R-U-THERE (DPD) notify body for the IKE SA of the given cookies.
pub fn dpd_notify(cky_i: [u8; 8], cky_r: [u8; 8], ack: bool, seq: u32) -> Vec<u8> {
    Notify {
        protocol: protocol::ISAKMP,
        code: if ack {
            code::R_U_THERE_ACK
        } else {
            code::R_U_THERE
        },
        spi: [cky_i, cky_r].concat(),
        data: seq.to_be_bytes().to_vec(),
    }
    .emit()
}

/// A DELETE body for one SPI of `proto` (ESP: 4 octets; ISAKMP: the two cookies).
pub fn delete(proto: u8, spi: Vec<u8>) -> Vec<u8> {
    Delete {
        protocol: proto,
        spis: vec![spi],
    }
    .emit()
}

/// An ID payload body for an address (and protocol/port).
pub fn id(addr: std::net::IpAddr, proto: u8, port: u16) -> Vec<u8> {
    Identification::address(addr, proto, port).emit()
}

/// A payload chain the input edits before it is sent.
#[derive(Debug, Clone, Default)]
pub struct Chain(pub Vec<(u8, Vec<u8>)>);

impl Chain {
    pub fn push(&mut self, kind: u8, body: Vec<u8>) -> &mut Self {
        self.0.push((kind, body));
        self
    }

    /// Up to three edits from the input: replace, drop, insert, corrupt or retype a payload.
    pub fn edit(&mut self, ops: &mut Ops<'_>) {
        for _ in 0..ops.u8() % 4 {
            let op = ops.u8();
            let at = usize::from(ops.u8()) % (self.0.len() + 1);
            match (op % 5, self.0.get_mut(at)) {
                (0, Some(p)) => p.1 = ops.short().to_vec(),
                (1, Some(_)) => {
                    self.0.remove(at);
                }
                (3, Some(p)) => ops.mutate(&mut p.1, 4),
                (4, Some(p)) => p.0 = ops.u8(),
                _ => {
                    let k = ops.u8();
                    self.0.insert(at, (k, ops.short().to_vec()));
                }
            }
        }
    }

    pub fn builder(&self) -> ChainBuilder {
        let mut c = ChainBuilder::new();
        for (k, b) in &self.0 {
            c.push(*k, b);
        }
        c
    }
}

/// A header for one of our messages.
pub fn header(cky_i: [u8; 8], cky_r: [u8; 8], exchange: ExchangeType, message_id: u32) -> Header {
    sluice_ike::message::header(cky_i, cky_r, exchange, message_id)
}

/// Encrypts the payload bytes `body` (first payload `first`) with zero padding; returns the
/// message and its last ciphertext block (the next IV). Overlong bodies are cut.
pub fn seal(
    mut hdr: Header,
    first: u8,
    body: &[u8],
    keys: &Phase1Keys,
    iv: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let bs = keys.cipher.block_len();
    let max = (MAX_MESSAGE_LEN - HEADER_LEN) / bs * bs;
    let mut buf = body[..body.len().min(max)].to_vec();
    let padded = buf.len().div_ceil(bs).max(1) * bs;
    buf.resize(padded, 0);
    keys.cipher
        .encrypt(&keys.enc_key, iv, &mut buf)
        .expect("block-aligned");
    hdr.next_payload = first;
    hdr.flags |= flags::ENCRYPTION;
    hdr.length = u32::try_from(HEADER_LEN + buf.len()).expect("bounded");
    let last = buf[buf.len() - bs..].to_vec();
    let mut out = Vec::with_capacity(HEADER_LEN + buf.len());
    hdr.emit(&mut out);
    out.extend_from_slice(&buf);
    (out, last)
}

/// Encrypts a chain (see [`seal`]).
pub fn seal_chain(
    hdr: Header,
    chain: &ChainBuilder,
    keys: &Phase1Keys,
    iv: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    seal(hdr, chain.first(), chain.bytes(), keys, iv)
}

/// Decrypts one of the engine's messages (`None` when it is not encrypted or malformed).
pub fn open(msg: &[u8], keys: &Phase1Keys, iv: &[u8]) -> Option<Message> {
    let (hdr, body) = Header::parse(msg).ok()?;
    if !hdr.encrypted() {
        return None;
    }
    Message::decrypt(hdr, body, keys.cipher, &keys.enc_key, iv).ok()
}

/// `prf(SKEYID_a, parts...)`: the Quick Mode and Informational hashes.
pub fn hash_a(keys: &Phase1Keys, parts: &[&[u8]]) -> Vec<u8> {
    keys.hash.prf(&keys.skeyid_a, parts).to_vec()
}

/// A message with HASH(1) (RFC 2409 §5.5, §5.7) over `rest`, or with the input's HASH
/// when `forge` is set.
pub fn hashed(
    keys: &Phase1Keys,
    msgid: u32,
    rest: &ChainBuilder,
    forge: Option<&[u8]>,
) -> ChainBuilder {
    let h = match forge {
        Some(f) => f.to_vec(),
        None => hash_a(keys, &[&msgid.to_be_bytes(), rest.bytes()]),
    };
    let mut c = ChainBuilder::new();
    c.push(kind::HASH, &h).append(rest.clone());
    c
}

/// Our DH key pair for `group`.
pub fn keypair(group: Group, seed: u8) -> KeyPair {
    KeyPair::generate(group, &mut rng(seed))
}

thread_local! {
    static PUBLIC_KEYS: std::cell::RefCell<std::collections::HashMap<(Group, u8), Vec<u8>>> =
        std::cell::RefCell::default();
}

/// The public value of [`keypair`]`(group, seed)`, computed once per thread: a KE payload
/// the peer sends without needing the shared secret (Quick Mode PFS), at no DH cost per input.
pub fn public_key(group: Group, seed: u8) -> Vec<u8> {
    PUBLIC_KEYS.with(|c| {
        c.borrow_mut()
            .entry((group, seed))
            .or_insert_with(|| keypair(group, seed).public().to_vec())
            .clone()
    })
}

/// A HASH payload with `hash` in front of the raw payload bytes `rest` (first payload
/// `first`): the first payload type and the body of a hashed message.
pub fn hash_then(hash: &[u8], first: u8, rest: &[u8]) -> (u8, Vec<u8>) {
    let mut body = vec![first, 0];
    body.extend_from_slice(
        &u16::try_from(hash.len() + 4)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
    body.extend_from_slice(hash);
    body.extend_from_slice(rest);
    (kind::HASH, body)
}
