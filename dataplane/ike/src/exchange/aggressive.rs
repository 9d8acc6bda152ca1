//! Aggressive Mode with pre-shared keys (RFC 2409 §5.4), with NAT-D (RFC 3947 §3.2):
//!
//! ```text
//! Initiator                          Responder
//! HDR, SA, KE, Ni, IDii, VID*        -->
//!                                    <-- HDR, SA, KE, Nr, IDir, HASH_R, VID*, NAT-D*
//! HDR[*], HASH_I, NAT-D*             -->
//! ```
//!
//! The gateway answers it only when configured to; the in-repo initiator can start it.

use std::net::SocketAddr;

use rand_chacha::ChaCha20Rng;

use crate::dh::{Group, KeyPair};
use crate::header::{ExchangeType, Header};
use crate::identity::Identification;
use crate::keys::{Phase1Keys, SkeyidInput};
use crate::message::{Message, PayloadsExt, header, seal_encrypted, seal_plain};
use crate::natt::{NatTVariant, PeerVendor};
use crate::payload::{ChainBuilder, RawPayload, kind};
use crate::responder::DropReason;
use crate::sa::{AuthMethod, Transform};

use super::{
    Phase1Sa, Transcript, hash_eq, initial_contact, new_nonce, nonce_ok, phase1_sa, push_vendor_ids,
};

/// What the gateway brings to its message 2.
pub(crate) struct ResponderKeying<'a> {
    /// The chosen SA payload body.
    pub(crate) sa_reply: &'a [u8],
    /// The pre-shared key, if configured.
    pub(crate) psk: Option<&'a [u8]>,
    /// Length of our nonce.
    pub(crate) nonce_len: usize,
    /// The initiator's Vendor IDs (ours answer them).
    pub(crate) vendor: PeerVendor,
    /// Show the initiator a NAT in front of it whatever the truth.
    pub(crate) force_encap: bool,
}

/// Aggressive Mode as responder: message 2 sent, waiting for message 3.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct ResponderSent {
    transcript: Transcript,
    /// IDii_b, which HASH_I covers.
    idi_b: Vec<u8>,
    /// The initiator's identity.
    identity: Identification,
    keys: Phase1Keys,
    /// IV of an encrypted message 3.
    iv: Vec<u8>,
}

/// Message 3, checked.
pub(crate) struct Message3 {
    /// What the initiator's NAT-D showed (see [`super::main_mode::NatSeen`]).
    pub(crate) nat: Option<(bool, bool)>,
    /// It carried INITIAL-CONTACT.
    pub(crate) initial_contact: bool,
    /// Its last ciphertext block, when encrypted: the Phase 1 IV from now on.
    pub(crate) last_block: Option<Vec<u8>>,
}

/// Why message 3 was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message3Error {
    /// It does not decrypt or parse, or has no HASH.
    Malformed,
    /// HASH_I does not match.
    HashMismatch,
}

impl ResponderSent {
    /// Message 1 (HDR, SA, KE, Ni, IDii, VID*) → message 2 (HDR, SA, KE, Nr, IDir, HASH_R,
    /// VID*, NAT-D*). Our NAT-D are honest here: the client's own arrive only in message
    /// 3, so there is nothing to parrot yet.
    pub(crate) fn answer(
        rng: &mut ChaCha20Rng,
        sa: &Phase1Sa,
        (sai_b, chain): (&[u8], &[RawPayload<'_>]),
        nat_t: Option<NatTVariant>,
        k: &ResponderKeying<'_>,
    ) -> Result<(ResponderSent, Vec<u8>), DropReason> {
        let (Some(ke), Some(nonce), Some(id_p)) = (
            chain.find_kind(kind::KE),
            chain.find_kind(kind::NONCE),
            chain.find_kind(kind::ID),
        ) else {
            return Err(DropReason::Malformed);
        };
        if !nonce_ok(nonce.body) {
            return Err(DropReason::Malformed);
        }
        let identity = Identification::parse(id_p.body).map_err(|_| DropReason::Malformed)?;
        if sa.transform.auth != AuthMethod::PreSharedKey {
            // Aggressive Mode is offered with pre-shared keys only.
            return Err(DropReason::NoProposal);
        }
        let psk = k.psk.ok_or(DropReason::AuthFailed)?;
        let dh = KeyPair::generate(sa.transform.group, rng);
        let gxy = dh
            .shared_secret(ke.body)
            .map_err(|_| DropReason::Malformed)?;
        let nr = new_nonce(rng, k.nonce_len);
        let keys = Transcript::derive(sa, SkeyidInput::PreSharedKey(psk), (nonce.body, &nr), &gxy);
        let transcript = Transcript {
            sai_b: sai_b.to_vec(),
            gxi: ke.body.to_vec(),
            gxr: dh.public().to_vec(),
        };
        let idir = Identification::address(sa.local.ip(), 0, 0).emit();
        let hash_r = transcript.hash_r(&keys, sa, &idir);
        let mut reply = ChainBuilder::new();
        reply
            .push(kind::SA, k.sa_reply)
            .push(kind::KE, dh.public())
            .push(kind::NONCE, &nr)
            .push(kind::ID, &idir)
            .push(kind::HASH, &hash_r);
        push_vendor_ids(&mut reply, k.vendor.nat_t, k.vendor.dpd);
        if let Some(variant) = nat_t {
            let peer = if k.force_encap {
                SocketAddr::new(sa.peer.ip(), !sa.peer.port())
            } else {
                sa.peer
            };
            reply
                .push(variant.nat_d_kind(), &sa.nat_d(peer))
                .push(variant.nat_d_kind(), &sa.nat_d(sa.local));
        }
        let iv = transcript.first_iv(sa);
        let next = ResponderSent {
            transcript,
            idi_b: id_p.body.to_vec(),
            identity,
            keys,
            iv,
        };
        let out = seal_plain(
            header(sa.cky_i, sa.cky_r, ExchangeType::Aggressive, 0),
            &reply,
        );
        Ok((next, out))
    }

    /// Message 3: HDR[*], HASH_I, NAT-D* — encrypted or not (RFC 2409 §5.4 leaves it
    /// open; strongSwan encrypts, others do not).
    pub(crate) fn check(
        &self,
        sa: &Phase1Sa,
        (hdr, body, bytes): (&Header, &[u8], &[u8]),
        nat_t: Option<NatTVariant>,
    ) -> Result<Message3, Message3Error> {
        let k = &self.keys;
        let opened = if hdr.encrypted() {
            Message::decrypt(*hdr, body, k.cipher, &k.enc_key, &self.iv)
        } else {
            Message::parse_plain(bytes)
        };
        let m = opened.map_err(|_| Message3Error::Malformed)?;
        let chain = m.payloads().map_err(|_| Message3Error::Malformed)?;
        let hash_i = chain
            .find_kind(kind::HASH)
            .ok_or(Message3Error::Malformed)?;
        let expect = self.transcript.hash_i(k, sa, &self.idi_b);
        if !hash_eq(&expect, hash_i.body) {
            return Err(Message3Error::HashMismatch);
        }
        Ok(Message3 {
            nat: nat_t.and_then(|v| sa.nat_seen(&chain.all_kind(v.nat_d_kind()))),
            initial_contact: initial_contact(&chain),
            last_block: m.last_block.clone(),
        })
    }

    /// The initiator's identity.
    pub(crate) fn identity(&self) -> &Identification {
        &self.identity
    }

    /// The keys and the IV before message 3, once Phase 1 is complete.
    pub(crate) fn into_keys(self) -> (Phase1Keys, Vec<u8>) {
        (self.keys, self.iv)
    }
}

/// Aggressive Mode as initiator: message 1 sent, waiting for message 2.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct InitiatorSent {
    sai_b: Vec<u8>,
    dh: KeyPair,
    /// Ni_b.
    ni: Vec<u8>,
    /// IDii_b.
    idi_b: Vec<u8>,
}

/// Why message 2 was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message2Error {
    /// Its KE does not fit the group, or sealing failed.
    Malformed,
    /// HASH_R does not match.
    HashMismatch,
}

impl InitiatorSent {
    /// Message 1 (HDR, SA, KE, Ni, IDii, VID*) proposing `transforms` with a fresh DH pair
    /// of `group` and nonce of `nonce_len` octets.
    pub(crate) fn start(
        rng: &mut ChaCha20Rng,
        (cky_i, transforms, group): ([u8; 8], Vec<Transform>, Group),
        nonce_len: usize,
        idi_b: Vec<u8>,
        (nat_t, dpd): (Option<NatTVariant>, bool),
    ) -> (InitiatorSent, Vec<u8>) {
        let sai_b = phase1_sa(transforms);
        let dh = KeyPair::generate(group, rng);
        let ni = new_nonce(rng, nonce_len);
        let mut c = ChainBuilder::new();
        c.push(kind::SA, &sai_b)
            .push(kind::KE, dh.public())
            .push(kind::NONCE, &ni)
            .push(kind::ID, &idi_b);
        push_vendor_ids(&mut c, nat_t, dpd);
        let msg = seal_plain(header(cky_i, [0; 8], ExchangeType::Aggressive, 0), &c);
        let state = InitiatorSent {
            sai_b,
            dh,
            ni,
            idi_b,
        };
        (state, msg)
    }

    /// Message 2 (chose `sa.transform`) → message 3 (HDR*, HASH_I, NAT-D*), encrypted like
    /// strongSwan's; the keys and the Phase 1 IV after it.
    pub(crate) fn finish(
        &self,
        sa: &Phase1Sa,
        answer: &Answer<'_>,
        psk: &[u8],
        nat_t: Option<NatTVariant>,
    ) -> Result<(Phase1Keys, Vec<u8>, Vec<u8>), Message2Error> {
        let gxy = self
            .dh
            .shared_secret(answer.ke)
            .map_err(|_| Message2Error::Malformed)?;
        let keys = Transcript::derive(
            sa,
            SkeyidInput::PreSharedKey(psk),
            (&self.ni, answer.nr),
            &gxy,
        );
        let transcript = Transcript {
            sai_b: self.sai_b.clone(),
            gxi: self.dh.public().to_vec(),
            gxr: answer.ke.to_vec(),
        };
        if !hash_eq(&transcript.hash_r(&keys, sa, answer.idr), answer.hash_r) {
            return Err(Message2Error::HashMismatch);
        }
        let hash_i = transcript.hash_i(&keys, sa, &self.idi_b);
        let mut c = ChainBuilder::new();
        c.push(kind::HASH, &hash_i);
        if let Some(v) = nat_t {
            sa.push_nat_d(&mut c, v);
        }
        let (msg, iv) = seal_encrypted(
            header(sa.cky_i, sa.cky_r, ExchangeType::Aggressive, 0),
            &c,
            keys.cipher,
            &keys.enc_key,
            &transcript.first_iv(sa),
        )
        .map_err(|_| Message2Error::Malformed)?;
        Ok((keys, msg, iv))
    }
}

/// The payloads of message 2 that message 3 depends on.
pub(crate) struct Answer<'a> {
    /// g^xr.
    pub(crate) ke: &'a [u8],
    /// Nr_b.
    pub(crate) nr: &'a [u8],
    /// IDir_b.
    pub(crate) idr: &'a [u8],
    /// HASH_R.
    pub(crate) hash_r: &'a [u8],
}

impl<'a> Answer<'a> {
    /// Finds them; `None` when one is missing.
    pub(crate) fn find(chain: &[RawPayload<'a>]) -> Option<Answer<'a>> {
        Some(Answer {
            ke: chain.find_kind(kind::KE)?.body,
            nr: chain.find_kind(kind::NONCE)?.body,
            idr: chain.find_kind(kind::ID)?.body,
            hash_r: chain.find_kind(kind::HASH)?.body,
        })
    }
}
