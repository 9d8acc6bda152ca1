//! The RFC 2409 exchanges, one module each, with the states of both roles: [`main_mode`]
//! (§5, §5.1, §5.4), [`aggressive`] (§5.4), [`quick_mode`] (§5.5) and [`informational`]
//! (§5.7). A state holds only what its next message needs; handling a message returns the
//! next state (and what to send) or a typed reason to drop it. The responder endpoint and
//! the [`crate::initiator::Initiator`] both drive these states; neither builds or checks an
//! exchange's messages itself.
//!
//! What the exchanges share lives here: the incoming message, nonces, our ID and its proof
//! (HASH or CERT + SIG), the peer's certificates, vendor IDs and NAT-D (RFC 3947 §3.2).

pub(crate) mod aggressive;
pub(crate) mod informational;
pub(crate) mod main_mode;
pub(crate) mod quick_mode;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::cert::Credentials;
use crate::header::Header;
use crate::identity::{Identification, id_type};
use crate::keys::{
    AuthHashInput, Phase1Input, Phase1Keys, SecretBytes, SkeyidInput, auth_hash, derive_phase1,
    phase1_iv,
};
use crate::message::PayloadsExt;
use crate::natt::{NatDetection, NatState, NatTVariant, PeerVendor, nat_d, vid};
use crate::notify::{Notify, code};
use crate::payload::{ChainBuilder, RawPayload, kind};
use crate::sa::{IkeTransform, Proposal, SaPayload, Transform, protocol};

/// Certificate encoding 4, X.509 Certificate - Signature (RFC 2408 §3.9).
pub(crate) const CERT_X509_SIGNATURE: u8 = 4;

/// One received ISAKMP message (RFC 2408 §3.1): when and where it arrived, its header, and
/// its bytes.
#[derive(Clone, Copy)]
pub(crate) struct Incoming<'a> {
    /// When it arrived.
    pub(crate) now: Instant,
    /// Our address and port it arrived on.
    pub(crate) local: SocketAddr,
    /// The sender's address and port.
    pub(crate) remote: SocketAddr,
    /// Its parsed header.
    pub(crate) hdr: Header,
    /// The payloads after the header (ciphertext when the E flag is set).
    pub(crate) body: &'a [u8],
    /// The whole message, header included (the non-ESP marker stripped).
    pub(crate) bytes: &'a [u8],
}

impl Incoming<'_> {
    /// The digest by which a retransmitted message is recognised.
    pub(crate) fn digest(&self) -> [u8; 20] {
        digest(self.bytes)
    }
}

/// SHA-1 of a message, to recognise retransmissions (not a security function).
pub(crate) fn digest(b: &[u8]) -> [u8; 20] {
    Sha1::digest(b).into()
}

/// Constant-time comparison of a computed hash with a received one.
pub(crate) fn hash_eq(expect: &[u8], got: &[u8]) -> bool {
    bool::from(expect.ct_eq(got))
}

/// A nonce of acceptable length: 8 to 256 octets (RFC 2409 §5).
pub(crate) fn nonce_ok(nonce: &[u8]) -> bool {
    (8..=256).contains(&nonce.len())
}

/// A fresh nonce of `len` octets.
pub(crate) fn new_nonce(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut n = vec![0u8; len];
    rng.fill_bytes(&mut n);
    n
}

/// A non-zero Message ID (RFC 2408 §3.1) that `used` rejects no more.
pub(crate) fn new_msgid(rng: &mut ChaCha20Rng, used: impl Fn(u32) -> bool) -> u32 {
    loop {
        let m = rng.next_u32();
        if m != 0 && !used(m) {
            break m;
        }
    }
}

/// The facts of an IKE SA a Phase 1 exchange needs: the cookies, the addresses its NAT-D
/// hashes cover (RFC 3947 §3.2) and the transform.
#[derive(Clone, Copy)]
pub(crate) struct Phase1Sa {
    /// CKY-I.
    pub(crate) cky_i: [u8; 8],
    /// CKY-R (zero until the responder answers).
    pub(crate) cky_r: [u8; 8],
    /// Our address and port.
    pub(crate) local: SocketAddr,
    /// The peer's address and port.
    pub(crate) peer: SocketAddr,
    /// The Phase 1 transform (proposed or chosen).
    pub(crate) transform: IkeTransform,
}

impl Phase1Sa {
    /// NAT-D of `addr` (RFC 3947 §3.2).
    pub(crate) fn nat_d(&self, addr: SocketAddr) -> Vec<u8> {
        nat_d(self.transform.hash, &self.cky_i, &self.cky_r, addr)
    }

    /// Our NAT-D payloads as the sender of a Phase 1 message: the peer's address first,
    /// then ours (RFC 3947 §3.2).
    pub(crate) fn push_nat_d(&self, c: &mut ChainBuilder, v: NatTVariant) {
        c.push(v.nat_d_kind(), &self.nat_d(self.peer))
            .push(v.nat_d_kind(), &self.nat_d(self.local));
    }

    /// What the peer's NAT-D payloads say: the first is its hash of our address, the rest
    /// of its own. Returns (we are behind NAT, the peer is), or `None` when it sent none.
    pub(crate) fn nat_seen(&self, natd: &[&RawPayload<'_>]) -> Option<(bool, bool)> {
        let (first, rest) = natd.split_first()?;
        let ours = self.nat_d(self.local);
        let theirs = self.nat_d(self.peer);
        Some((
            first.body != ours.as_slice(),
            !rest.iter().any(|p| p.body == theirs.as_slice()),
        ))
    }
}

/// The NAT situation the client is shown (and that decides UDP encapsulation): the parrot
/// modes hide that we are behind NAT; `ParrotForceEncapsulation` also claims the client is.
pub(crate) fn shown_nat(
    detection: NatDetection,
    local_behind: bool,
    peer_behind: bool,
) -> NatState {
    match detection {
        NatDetection::Honest => NatState {
            local_behind_nat: local_behind,
            peer_behind_nat: peer_behind,
        },
        NatDetection::Parrot => NatState {
            local_behind_nat: false,
            peer_behind_nat: peer_behind,
        },
        NatDetection::ParrotForceEncapsulation => NatState {
            local_behind_nat: false,
            peer_behind_nat: true,
        },
    }
}

/// The Vendor IDs of a message.
pub(crate) fn vendor_of(chain: &[RawPayload<'_>]) -> PeerVendor {
    let mut vendor = PeerVendor::default();
    for v in chain.all_kind(kind::VID) {
        vendor.note(v.body);
    }
    vendor
}

/// Our Vendor IDs: the NAT-T variant (RFC 3947 §3.1) and DPD (RFC 3706 §4).
pub(crate) fn push_vendor_ids(chain: &mut ChainBuilder, nat_t: Option<NatTVariant>, dpd: bool) {
    if let Some(v) = nat_t {
        chain.push(kind::VID, &v.vendor_id());
    }
    if dpd {
        chain.push(kind::VID, &vid::DPD);
    }
}

/// A Phase 1 SA payload body: one ISAKMP proposal with `transforms` (RFC 2408 §3.4).
pub(crate) fn phase1_sa(transforms: Vec<Transform>) -> Vec<u8> {
    SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: protocol::ISAKMP,
            spi: vec![],
            transforms,
        }],
    }
    .emit()
}

/// The transform of a Phase 1 answer (its first proposal's first transform).
pub(crate) fn chosen_ike(chain: &[RawPayload<'_>]) -> Option<IkeTransform> {
    let sa = SaPayload::parse(chain.find_kind(kind::SA)?.body).ok()?;
    let t = sa.proposals.first()?.transforms.first()?;
    IkeTransform::from_transform(t).ok()
}

/// Certificate Request payload bodies naming `ca`'s CAs, at most `max` (RFC 2408 §3.10).
pub(crate) fn cert_requests(ca: &crate::cert::TrustStore, max: usize) -> Vec<Vec<u8>> {
    ca.ca_names()
        .into_iter()
        .take(max)
        .map(|dn| [&[CERT_X509_SIGNATURE][..], &dn].concat())
        .collect()
}

/// Our ID payload body. With signatures it is our certificate's subject (ID_DER_ASN1_DN),
/// which is what Windows and strongSwan match against the certificate they are sent; else
/// our address.
pub(crate) fn own_id(credentials: Option<&Credentials>, local: IpAddr) -> Vec<u8> {
    match credentials {
        Some(c) => Identification {
            id_type: id_type::DER_ASN1_DN,
            protocol: 0,
            port: 0,
            data: c.subject_dn_der().to_vec(),
        },
        None => Identification::address(local, 0, 0),
    }
    .emit()
}

/// Our ID and its proof (RFC 2409 §5.1, §5.4): ID, then HASH, or with signatures our
/// certificate chain and SIG over `hash`. `None` when signing fails.
pub(crate) fn id_and_proof(
    rng: &mut ChaCha20Rng,
    credentials: Option<&Credentials>,
    id_b: &[u8],
    hash: &[u8],
) -> Option<ChainBuilder> {
    let mut c = ChainBuilder::new();
    c.push(kind::ID, id_b);
    match credentials {
        Some(cert) => {
            for der in cert.chain_der() {
                c.push(kind::CERT, &[&[CERT_X509_SIGNATURE][..], der].concat());
            }
            let sig = cert.sign_hash(rng, hash).ok()?;
            c.push(kind::SIG, &sig);
        }
        None => {
            c.push(kind::HASH, hash);
        }
    }
    Some(c)
}

/// The peer's ID and proof of a Phase 1 authentication message: ID, and HASH or, with
/// signatures, SIG (RFC 2409 §5.1), with the X.509 certificates (encoding 4) of its CERT
/// payloads, leaf first by convention.
pub(crate) struct PeerProof {
    /// The ID payload body.
    pub(crate) id_b: Vec<u8>,
    /// The HASH or SIG payload body.
    pub(crate) proof: Vec<u8>,
    /// DER certificates, in the order sent.
    pub(crate) certs: Vec<Vec<u8>>,
}

impl PeerProof {
    /// Finds the ID and the proof of a decrypted message; `None` when either is missing.
    pub(crate) fn find(chain: &[RawPayload<'_>], signatures: bool) -> Option<PeerProof> {
        let id_p = chain.find_kind(kind::ID)?;
        let proof = chain.find_kind(if signatures { kind::SIG } else { kind::HASH })?;
        let certs = chain
            .all_kind(kind::CERT)
            .iter()
            .filter_map(|c| match c.body.split_first() {
                Some((&CERT_X509_SIGNATURE, der)) => Some(der.to_vec()),
                _ => None,
            })
            .collect();
        Some(PeerProof {
            id_b: id_p.body.to_vec(),
            proof: proof.body.to_vec(),
            certs,
        })
    }
}

/// The body of the first HASH payload of a message (empty when there is none).
pub(crate) fn first_body<'a>(chain: &[RawPayload<'a>]) -> &'a [u8] {
    chain.first().map(|p| p.body).unwrap_or_default()
}

/// Whether a message carries INITIAL-CONTACT (RFC 2407 §4.6.3.3).
pub(crate) fn initial_contact(chain: &[RawPayload<'_>]) -> bool {
    chain
        .all_kind(kind::N)
        .iter()
        .any(|n| Notify::parse(n.body).is_ok_and(|n| n.code == code::INITIAL_CONTACT))
}

/// What both Phase 1 authentication hashes cover besides the cookies and the ID: the
/// initiator's SA payload body and both public values (RFC 2409 §5).
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct Transcript {
    /// SAi_b: the initiator's whole SA payload body.
    pub(crate) sai_b: Vec<u8>,
    /// g^xi.
    pub(crate) gxi: Vec<u8>,
    /// g^xr.
    pub(crate) gxr: Vec<u8>,
}

impl Transcript {
    /// HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b).
    pub(crate) fn hash_i(&self, keys: &Phase1Keys, sa: &Phase1Sa, id_b: &[u8]) -> SecretBytes {
        auth_hash(
            keys.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &self.gxi,
                gx_peer: &self.gxr,
                cky_self: sa.cky_i,
                cky_peer: sa.cky_r,
                sai_b: &self.sai_b,
                id_b,
            },
        )
    }

    /// HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b).
    pub(crate) fn hash_r(&self, keys: &Phase1Keys, sa: &Phase1Sa, id_b: &[u8]) -> SecretBytes {
        auth_hash(
            keys.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &self.gxr,
                gx_peer: &self.gxi,
                cky_self: sa.cky_r,
                cky_peer: sa.cky_i,
                sai_b: &self.sai_b,
                id_b,
            },
        )
    }

    /// SKEYID and its descendants (RFC 2409 §5) from g^xy and both nonces.
    pub(crate) fn derive(
        sa: &Phase1Sa,
        auth: SkeyidInput<'_>,
        (ni, nr): (&[u8], &[u8]),
        gxy: &[u8],
    ) -> Phase1Keys {
        derive_phase1(&Phase1Input {
            hash: sa.transform.hash,
            cipher: sa.transform.cipher,
            auth,
            ni,
            nr,
            gxy,
            cky_i: sa.cky_i,
            cky_r: sa.cky_r,
        })
    }

    /// The IV of the first encrypted Phase 1 message: hash(g^xi | g^xr) (Appendix B).
    pub(crate) fn first_iv(&self, sa: &Phase1Sa) -> Vec<u8> {
        phase1_iv(sa.transform.hash, sa.transform.cipher, &self.gxi, &self.gxr)
    }
}
