//! Main Mode (RFC 2409 §5, identity protection), with pre-shared keys (§5.4) or RSA
//! signatures (§5.1), and NAT-D (RFC 3947 §3.2):
//!
//! ```text
//! Initiator                          Responder
//! HDR, SA, VID*                      -->
//!                                    <-- HDR, SA, VID*
//! HDR, KE, Ni, [CR*], NAT-D*         -->
//!                                    <-- HDR, KE, Nr, [CR*], NAT-D*
//! HDR*, IDii, HASH_I | CERT*, SIG_I  -->
//!                                    <-- HDR*, IDir, HASH_R | CERT*, SIG_R
//! ```
//!
//! The initiator states serve the in-repo [`crate::initiator::Initiator`] and the
//! gateway's own Phase 1 rekey alike; the responder states serve the gateway.

use rand_chacha::ChaCha20Rng;

use crate::cert::Credentials;
use crate::dh::KeyPair;
use crate::header::{ExchangeType, Header};
use crate::keys::{Phase1Keys, SecretBytes, SkeyidInput};
use crate::message::{Message, PayloadsExt, header, seal_encrypted, seal_plain};
use crate::natt::{NatDetection, NatTVariant, PeerVendor};
use crate::payload::{ChainBuilder, RawPayload, kind};
use crate::responder::DropReason;
use crate::sa::Transform;

use super::{PeerProof, Phase1Sa, Transcript, id_and_proof, new_nonce, phase1_sa, push_vendor_ids};

/// The KE and NONCE payloads of message 3 or 4; `None` when either is missing.
pub(crate) fn key_exchange<'a, 'b>(
    chain: &'b [RawPayload<'a>],
) -> Option<(&'b RawPayload<'a>, &'b RawPayload<'a>)> {
    Some((chain.find_kind(kind::KE)?, chain.find_kind(kind::NONCE)?))
}

/// A plain Main Mode message of `sa` carrying `c`.
fn plain(sa: &Phase1Sa, c: &ChainBuilder) -> Vec<u8> {
    seal_plain(
        header(sa.cky_i, sa.cky_r, ExchangeType::IdentityProtection, 0),
        c,
    )
}

/// An encrypted Main Mode message of `sa` carrying `c`, and its last block.
fn encrypted(
    sa: &Phase1Sa,
    keys: &Phase1Keys,
    c: &ChainBuilder,
    iv: &[u8],
) -> Option<(Vec<u8>, Vec<u8>)> {
    let hdr = header(sa.cky_i, sa.cky_r, ExchangeType::IdentityProtection, 0);
    seal_encrypted(hdr, c, keys.cipher, &keys.enc_key, iv).ok()
}

/// Main Mode as responder: message 2 sent, waiting for message 3.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct ResponderSentSa {
    /// SAi_b.
    sai_b: Vec<u8>,
}

/// How we answer the initiator's NAT-D (RFC 3947 §3.2).
#[derive(Clone, Copy)]
pub(crate) struct NatAnswer {
    /// The NAT-T variant both announced.
    pub(crate) variant: NatTVariant,
    /// Honest, or parroting the initiator.
    pub(crate) detection: NatDetection,
}

/// What the peer's NAT-D showed: `None` when NAT-T was not announced, `Some(None)` when it
/// was but no NAT-D came (no detection, no encapsulation), else (we are behind NAT, the
/// peer is).
pub(crate) type NatSeen = Option<Option<(bool, bool)>>;

/// What the gateway brings to its message 4.
pub(crate) struct ResponderKeying<'a> {
    /// Length of our nonce.
    pub(crate) nonce_len: usize,
    /// The pre-shared key; `None` with signatures.
    pub(crate) psk: Option<&'a [u8]>,
    /// RSA signature authentication (RFC 2409 §5.1).
    pub(crate) signatures: bool,
    /// CR payload bodies (RFC 2408 §3.10).
    pub(crate) cert_requests: &'a [Vec<u8>],
    /// NAT-D, when NAT-T was announced.
    pub(crate) nat: Option<NatAnswer>,
}

impl ResponderSentSa {
    /// After message 1 with SA payload body `sai_b`.
    pub(crate) fn new(sai_b: Vec<u8>) -> ResponderSentSa {
        ResponderSentSa { sai_b }
    }

    /// Message 2 (HDR, SA, VID*): the chosen proposal `sa_reply`, and our Vendor IDs for
    /// those the initiator sent.
    pub(crate) fn message2(sa: &Phase1Sa, sa_reply: &[u8], vendor: &PeerVendor) -> Vec<u8> {
        let mut reply = ChainBuilder::new();
        reply.push(kind::SA, sa_reply);
        push_vendor_ids(&mut reply, vendor.nat_t, vendor.dpd);
        plain(sa, &reply)
    }

    /// Message 3 (HDR, KE, Ni, NAT-D*) → message 4 (HDR, KE, Nr, [CR*], NAT-D*), with a
    /// fresh DH pair and nonce.
    pub(crate) fn answer(
        &self,
        rng: &mut ChaCha20Rng,
        sa: &Phase1Sa,
        chain: &[RawPayload<'_>],
        (ke, ni): (&[u8], &[u8]),
        k: &ResponderKeying<'_>,
    ) -> Result<(ResponderSentKe, Vec<u8>, NatSeen), DropReason> {
        let dh = KeyPair::generate(sa.transform.group, rng);
        let gxy = dh.shared_secret(ke).map_err(|_| DropReason::Malformed)?;
        let nr = new_nonce(rng, k.nonce_len);
        let auth = match (k.signatures, k.psk) {
            (true, _) => SkeyidInput::Signature,
            (false, Some(p)) => SkeyidInput::PreSharedKey(p),
            (false, None) => return Err(DropReason::AuthFailed),
        };
        let keys = Transcript::derive(sa, auth, (ni, &nr), &gxy);
        let mut reply = ChainBuilder::new();
        reply.push(kind::KE, dh.public()).push(kind::NONCE, &nr);
        for cr in k.cert_requests {
            reply.push(kind::CR, cr);
        }
        let seen = k.nat.map(|n| {
            let natd = chain.all_kind(n.variant.nat_d_kind());
            let (seen, first) = (sa.nat_seen(&natd)?, natd.first()?);
            let theirs = sa.nat_d(sa.peer);
            let (peer_hash, local_hash) = match n.detection {
                NatDetection::Honest => (theirs, sa.nat_d(sa.local)),
                NatDetection::Parrot => (theirs, first.body.to_vec()),
                // Any value that cannot match the client's own: the hash of its address
                // with the port bits inverted.
                NatDetection::ParrotForceEncapsulation => (
                    sa.nat_d(std::net::SocketAddr::new(sa.peer.ip(), !sa.peer.port())),
                    first.body.to_vec(),
                ),
            };
            reply
                .push(n.variant.nat_d_kind(), &peer_hash)
                .push(n.variant.nat_d_kind(), &local_hash);
            Some(seen)
        });
        let transcript = Transcript {
            sai_b: self.sai_b.clone(),
            gxi: ke.to_vec(),
            gxr: dh.public().to_vec(),
        };
        let iv = transcript.first_iv(sa);
        let next = ResponderSentKe {
            transcript,
            keys,
            iv,
        };
        Ok((next, plain(sa, &reply), seen))
    }
}

/// Main Mode as responder: message 4 sent, waiting for message 5.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct ResponderSentKe {
    transcript: Transcript,
    keys: Phase1Keys,
    /// IV of message 5.
    iv: Vec<u8>,
}

/// The initiator's message 5, decrypted.
pub(crate) struct Message5 {
    /// The decrypted message (its last block is the IV of message 6).
    pub(crate) message: Message,
    /// IDii, its proof and certificates; `None` when the payloads are garbage (which
    /// almost always means the pre-shared keys differ).
    pub(crate) proof: Option<PeerProof>,
}

impl ResponderSentKe {
    /// Decrypts message 5 (HDR*, IDii, HASH_I | CERT*, SIG_I).
    pub(crate) fn open(
        &self,
        hdr: &Header,
        body: &[u8],
        signatures: bool,
    ) -> Result<Message5, DropReason> {
        let k = &self.keys;
        let message = Message::decrypt(*hdr, body, k.cipher, &k.enc_key, &self.iv)
            .map_err(|_| DropReason::Malformed)?;
        let proof = message
            .payloads()
            .ok()
            .and_then(|chain| PeerProof::find(&chain, signatures));
        Ok(Message5 { message, proof })
    }

    /// HASH_I for the initiator's `id_b`.
    pub(crate) fn hash_i(&self, sa: &Phase1Sa, id_b: &[u8]) -> SecretBytes {
        self.transcript.hash_i(&self.keys, sa, id_b)
    }

    /// Message 6 (HDR*, IDir, HASH_R | CERT*, SIG_R) under `iv` (the last block of
    /// message 5), and its last block: the Phase 1 IV from now on. `None` when signing
    /// or sealing fails.
    pub(crate) fn finish(
        &self,
        rng: &mut ChaCha20Rng,
        sa: &Phase1Sa,
        credentials: Option<&Credentials>,
        iv: &[u8],
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let idir = super::own_id(credentials, sa.local.ip());
        let hash_r = self.transcript.hash_r(&self.keys, sa, &idir);
        let reply = id_and_proof(rng, credentials, &idir, &hash_r)?;
        encrypted(sa, &self.keys, &reply, iv)
    }

    /// The keys and the IV of message 5, once Phase 1 is complete.
    pub(crate) fn into_keys(self) -> (Phase1Keys, Vec<u8>) {
        (self.keys, self.iv)
    }
}

/// Main Mode as initiator: message 1 sent, waiting for message 2.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct InitiatorSentSa {
    /// SAi_b.
    sai_b: Vec<u8>,
}

impl InitiatorSentSa {
    /// Message 1 (HDR, SA, VID*) proposing `transforms`.
    pub(crate) fn start(
        cky_i: [u8; 8],
        transforms: Vec<Transform>,
        nat_t: Option<NatTVariant>,
        dpd: bool,
    ) -> (InitiatorSentSa, Vec<u8>) {
        let sai_b = phase1_sa(transforms);
        let mut c = ChainBuilder::new();
        c.push(kind::SA, &sai_b);
        push_vendor_ids(&mut c, nat_t, dpd);
        let msg = seal_plain(
            header(cky_i, [0; 8], ExchangeType::IdentityProtection, 0),
            &c,
        );
        (InitiatorSentSa { sai_b }, msg)
    }

    /// Message 2 chose `sa.transform` → message 3 (HDR, KE, Ni, [CR*], NAT-D*) with a
    /// fresh DH pair and nonce of `nonce_len` octets.
    pub(crate) fn send_ke(
        &self,
        rng: &mut ChaCha20Rng,
        sa: &Phase1Sa,
        nonce_len: usize,
        cert_requests: &[Vec<u8>],
        nat_t: Option<NatTVariant>,
    ) -> (InitiatorSentKe, Vec<u8>) {
        let dh = KeyPair::generate(sa.transform.group, rng);
        let ni = new_nonce(rng, nonce_len);
        let mut c = ChainBuilder::new();
        c.push(kind::KE, dh.public()).push(kind::NONCE, &ni);
        for cr in cert_requests {
            c.push(kind::CR, cr);
        }
        if let Some(v) = nat_t {
            sa.push_nat_d(&mut c, v);
        }
        let next = InitiatorSentKe {
            sai_b: self.sai_b.clone(),
            dh,
            ni,
        };
        (next, plain(sa, &c))
    }
}

/// Main Mode as initiator: message 3 sent, waiting for message 4.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct InitiatorSentKe {
    sai_b: Vec<u8>,
    dh: KeyPair,
    /// Ni_b.
    ni: Vec<u8>,
}

/// Why message 4 was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendAuthError {
    /// The peer's KE does not fit the group.
    BadKe,
    /// No pre-shared key or certificate for the chosen method.
    NoCredentials,
    /// Signing or sealing message 5 failed.
    Seal,
}

/// Our side of message 5.
pub(crate) struct OwnProof<'a> {
    /// How SKEYID is made (`None`: we have nothing for the chosen method).
    pub(crate) auth: Option<SkeyidInput<'a>>,
    /// IDii payload body.
    pub(crate) id_b: &'a [u8],
    /// With signatures, our certificate chain and key.
    pub(crate) credentials: Option<&'a Credentials>,
}

impl InitiatorSentKe {
    /// Message 4 (KE, Nr) → message 5 (HDR*, IDii, HASH_I | CERT*, SIG_I).
    pub(crate) fn send_auth(
        &self,
        rng: &mut ChaCha20Rng,
        sa: &Phase1Sa,
        (ke, nr): (&[u8], &[u8]),
        own: &OwnProof<'_>,
    ) -> Result<(InitiatorSentAuth, Vec<u8>), SendAuthError> {
        let gxy = self
            .dh
            .shared_secret(ke)
            .map_err(|_| SendAuthError::BadKe)?;
        let auth = own.auth.ok_or(SendAuthError::NoCredentials)?;
        let keys = Transcript::derive(sa, auth, (&self.ni, nr), &gxy);
        let transcript = Transcript {
            sai_b: self.sai_b.clone(),
            gxi: self.dh.public().to_vec(),
            gxr: ke.to_vec(),
        };
        let hash_i = transcript.hash_i(&keys, sa, own.id_b);
        let c = id_and_proof(rng, own.credentials, own.id_b, &hash_i).ok_or(SendAuthError::Seal)?;
        let (out, iv) =
            encrypted(sa, &keys, &c, &transcript.first_iv(sa)).ok_or(SendAuthError::Seal)?;
        let next = InitiatorSentAuth {
            transcript,
            keys,
            iv,
        };
        Ok((next, out))
    }
}

/// Main Mode as initiator: message 5 sent, waiting for message 6.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct InitiatorSentAuth {
    transcript: Transcript,
    keys: Phase1Keys,
    /// IV of message 6 (the last block of message 5).
    iv: Vec<u8>,
}

/// Why message 6 was not accepted before its proof was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message6Error {
    /// It did not decrypt.
    Undecryptable,
    /// Its payloads are garbage or lack IDir or the proof (a pre-shared key mismatch?).
    Garbled,
}

impl InitiatorSentAuth {
    /// Decrypts message 6 (HDR*, IDir, HASH_R | CERT*, SIG_R): the message, the peer's ID
    /// and proof, and the HASH_R its proof must match (or its signature cover).
    pub(crate) fn open(
        &self,
        sa: &Phase1Sa,
        hdr: &Header,
        body: &[u8],
        signatures: bool,
    ) -> Result<(Message, PeerProof, SecretBytes), Message6Error> {
        let k = &self.keys;
        let m = Message::decrypt(*hdr, body, k.cipher, &k.enc_key, &self.iv)
            .map_err(|_| Message6Error::Undecryptable)?;
        let proof = m
            .payloads()
            .ok()
            .and_then(|chain| PeerProof::find(&chain, signatures))
            .ok_or(Message6Error::Garbled)?;
        let expect = self.transcript.hash_r(k, sa, &proof.id_b);
        Ok((m, proof, expect))
    }

    /// The keys and the IV of message 6, once Phase 1 is complete.
    pub(crate) fn into_keys(self) -> (Phase1Keys, Vec<u8>) {
        (self.keys, self.iv)
    }
}
