//! Quick Mode (RFC 2409 §5.5): one pair of ESP SAs in transport mode, with optional PFS.
//!
//! ```text
//! Initiator                        Responder
//! HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr] -->
//!                  <-- HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr]
//! HDR*, HASH(3)                    -->
//! ```
//!
//! HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [| KE] [| IDci | IDcr]),
//! HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [| KE] [| IDci | IDcr]),
//! HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b). NAT-OA (RFC 3947 §5.2) follows the IDs.
//! [`Initiator`] is the state after message 1, [`Responder`] after message 2; what to offer
//! or accept is the driver's policy.

use std::net::IpAddr;

use rand_chacha::ChaCha20Rng;

use crate::dh::{Group, KeyPair};
use crate::error::WireError;
use crate::header::{ExchangeType, Header};
use crate::identity::emit_nat_oa;
use crate::keys::{KeymatInput, Phase1Keys, SecretBytes, quick_mode_keymat};
use crate::message::{Message, PayloadsExt, after_hash};
use crate::natt::NatTVariant;
use crate::payload::{ChainBuilder, RawPayload, kind};
use crate::responder::DropReason;
use crate::sa::{EspTransform, Proposal, SaPayload, Transform, protocol};

use super::informational::Protection;
use super::{first_body, new_nonce};

/// What a Quick Mode we start offers.
pub(crate) struct Offer {
    /// ESP transforms of our one proposal.
    pub(crate) transforms: Vec<Transform>,
    /// The PFS group: a KE payload goes with message 1.
    pub(crate) pfs: Option<Group>,
    /// IDci and IDcr payload bodies.
    pub(crate) ids: Option<(Vec<u8>, Vec<u8>)>,
    /// NAT-OA (RFC 3947 §5.2): the NAT-T variant, our address, then the peer's.
    pub(crate) nat_oa: Option<(NatTVariant, IpAddr, IpAddr)>,
}

/// The answer to our message 1.
pub(crate) struct Answer<'a> {
    /// Nr_b.
    pub(crate) nr: &'a [u8],
    /// The peer's inbound SPI.
    pub(crate) peer_spi: u32,
    /// The transform it chose.
    pub(crate) transform: EspTransform,
}

/// Quick Mode as initiator: message 1 sent, waiting for message 2.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct Initiator {
    /// Its Message ID.
    pub(crate) msgid: u32,
    /// IV of the answer (the last block of message 1).
    iv: Vec<u8>,
    /// Ni_b.
    ni: Vec<u8>,
    /// Our inbound SPI.
    pub(crate) our_spi: u32,
    /// Our PFS key pair.
    dh: Option<KeyPair>,
}

impl Initiator {
    /// Message 1 with a fresh nonce of `nonce_len` octets (and a fresh PFS key pair).
    pub(crate) fn start(
        rng: &mut ChaCha20Rng,
        p: &Protection<'_>,
        (msgid, our_spi): (u32, u32),
        nonce_len: usize,
        offer: Offer,
    ) -> Result<(Initiator, Vec<u8>), WireError> {
        let ni = new_nonce(rng, nonce_len);
        let dh = offer.pfs.map(|g| KeyPair::generate(g, rng));
        let proposal = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ESP,
                spi: our_spi.to_be_bytes().to_vec(),
                transforms: offer.transforms,
            }],
        };
        let mut rest = ChainBuilder::new();
        rest.push(kind::SA, &proposal.emit()).push(kind::NONCE, &ni);
        if let Some(dh) = &dh {
            rest.push(kind::KE, dh.public());
        }
        if let Some((idci, idcr)) = &offer.ids {
            rest.push(kind::ID, idci).push(kind::ID, idcr);
        }
        if let Some((v, ours, theirs)) = offer.nat_oa {
            rest.push(v.nat_oa_kind(), &emit_nat_oa(ours));
            rest.push(v.nat_oa_kind(), &emit_nat_oa(theirs));
        }
        let (out, iv) = p.seal_first(ExchangeType::QuickMode, msgid, rest)?;
        let state = Initiator {
            msgid,
            iv,
            ni,
            our_spi,
            dh,
        };
        Ok((state, out))
    }

    /// Decrypts message 2 and checks its HASH(2).
    pub(crate) fn open_answer(
        &self,
        p: &Protection<'_>,
        hdr: &Header,
        body: &[u8],
    ) -> Result<Message, DropReason> {
        let m = p.open(hdr, body, &self.iv)?;
        let chain = m.payloads().map_err(|_| DropReason::Malformed)?;
        let (rest, _) = after_hash(&m.body, &chain).ok_or(DropReason::Malformed)?;
        p.verify(
            &[&self.msgid.to_be_bytes(), &self.ni, rest],
            first_body(&chain),
        )?;
        drop(chain);
        Ok(m)
    }

    /// Nr, the SPI and the transform of message 2 (its first proposal and transform).
    pub(crate) fn answer<'a>(chain: &[RawPayload<'a>]) -> Option<Answer<'a>> {
        let nr = chain.find_kind(kind::NONCE)?.body;
        let sa = SaPayload::parse(chain.find_kind(kind::SA)?.body).ok()?;
        let p = sa.proposals.first()?;
        let transform = EspTransform::from_transform(p.transforms.first()?).ok()?;
        let peer_spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
        Some(Answer {
            nr,
            peer_spi,
            transform,
        })
    }

    /// g^xy of PFS with the peer's KE; `None` when the KE does not fit our group.
    pub(crate) fn pfs_secret(&self, ke: &[u8]) -> Option<SecretBytes> {
        self.dh.as_ref()?.shared_secret(ke).ok()
    }

    /// Whether we sent a PFS KE.
    pub(crate) fn has_pfs(&self) -> bool {
        self.dh.is_some()
    }

    /// Message 3 (HDR*, HASH(3)) under `iv`, the last block of message 2.
    pub(crate) fn finish(
        &self,
        p: &Protection<'_>,
        nr: &[u8],
        iv: &[u8],
    ) -> Result<Vec<u8>, WireError> {
        let c = hash3(p.keys, self.msgid, &self.ni, nr);
        p.seal(ExchangeType::QuickMode, self.msgid, &c, iv)
            .map(|(out, _)| out)
    }

    /// KEYMAT of the new pair: (inbound, outbound).
    pub(crate) fn keymat(
        &self,
        keys: &Phase1Keys,
        pfs: Option<&SecretBytes>,
        nr: &[u8],
        peer_spi: u32,
        len: usize,
    ) -> (SecretBytes, SecretBytes) {
        keymat(keys, pfs, (&self.ni, nr), (self.our_spi, peer_spi), len)
    }
}

/// Quick Mode as responder: message 2 sent, waiting for message 3.
#[cfg_attr(fuzzing, derive(Clone))]
pub(crate) struct Responder {
    /// Its Message ID.
    pub(crate) msgid: u32,
    /// IV of message 3 (the last block of message 2).
    iv: Vec<u8>,
    /// Ni_b and Nr_b.
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// Our inbound SPI.
    pub(crate) our_spi: u32,
    /// The peer's inbound SPI.
    pub(crate) peer_spi: u32,
    /// The chosen transform.
    pub(crate) transform: EspTransform,
    /// g^xy of PFS.
    pfs_gxy: Option<SecretBytes>,
}

/// The request being answered, as [`Responder::answer`] needs it.
pub(crate) struct Request<'a> {
    /// Its Message ID.
    pub(crate) msgid: u32,
    /// Ni_b.
    pub(crate) ni: &'a [u8],
    /// The peer's inbound SPI.
    pub(crate) peer_spi: u32,
    /// The chosen transform.
    pub(crate) transform: EspTransform,
    /// The last ciphertext block of message 1 (the IV of message 2).
    pub(crate) iv: &'a [u8],
}

/// The SA payload of message 2: the chosen proposal `p` with our SPI and the chosen
/// transform `t` only.
pub(crate) fn chosen_sa(p: &Proposal, t: &Transform, our_spi: u32) -> Vec<u8> {
    SaPayload {
        proposals: vec![Proposal {
            spi: our_spi.to_be_bytes().to_vec(),
            transforms: vec![t.clone()],
            ..p.clone()
        }],
    }
    .emit()
}

/// PFS as responder (RFC 2409 §5.5): with a group, the peer's KE is required and we
/// answer with ours; without one, there must be none. Returns (our KE, g^xy).
pub(crate) fn pfs_answer(
    rng: &mut ChaCha20Rng,
    group: Option<Group>,
    ke: Option<&RawPayload<'_>>,
) -> Option<(Option<Vec<u8>>, Option<SecretBytes>)> {
    match (group, ke) {
        (None, None) => Some((None, None)),
        (Some(g), Some(ke)) => {
            let dh = KeyPair::generate(g, rng);
            let gxy = dh.shared_secret(ke.body).ok()?;
            Some((Some(dh.public().to_vec()), Some(gxy)))
        }
        _ => None,
    }
}

impl Responder {
    /// Message 2: HDR*, HASH(2), `rest` (SA, Nr, [KE], [IDs], ...), with nonce `nr`.
    pub(crate) fn answer(
        p: &Protection<'_>,
        req: Request<'_>,
        (our_spi, nr): (u32, Vec<u8>),
        pfs_gxy: Option<SecretBytes>,
        rest: ChainBuilder,
    ) -> Result<(Responder, Vec<u8>), WireError> {
        let k = p.keys;
        let hash2 = k.hash.prf(
            &k.skeyid_a,
            &[&req.msgid.to_be_bytes(), req.ni, rest.bytes()],
        );
        let mut full = ChainBuilder::new();
        full.push(kind::HASH, &hash2).append(rest);
        let (out, iv) = p.seal(ExchangeType::QuickMode, req.msgid, &full, req.iv)?;
        let state = Responder {
            msgid: req.msgid,
            iv,
            ni: req.ni.to_vec(),
            nr,
            our_spi,
            peer_spi: req.peer_spi,
            transform: req.transform,
            pfs_gxy,
        };
        Ok((state, out))
    }

    /// Checks message 3: HDR*, HASH(3) and nothing else.
    pub(crate) fn check_hash3(
        &self,
        p: &Protection<'_>,
        hdr: &Header,
        body: &[u8],
    ) -> Result<(), DropReason> {
        let m = p.open(hdr, body, &self.iv)?;
        let chain = m.payloads().map_err(|_| DropReason::Malformed)?;
        let [h] = chain.as_slice() else {
            return Err(DropReason::Malformed);
        };
        if h.kind != kind::HASH {
            return Err(DropReason::Malformed);
        }
        p.verify(
            &[&[0], &self.msgid.to_be_bytes(), &self.ni, &self.nr],
            h.body,
        )
    }

    /// KEYMAT of the new pair: (inbound, outbound).
    pub(crate) fn keymat(&self, keys: &Phase1Keys) -> (SecretBytes, SecretBytes) {
        keymat(
            keys,
            self.pfs_gxy.as_ref(),
            (&self.ni, &self.nr),
            (self.our_spi, self.peer_spi),
            self.transform.keymat_len(),
        )
    }
}

/// HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b), as a payload chain.
fn hash3(keys: &Phase1Keys, msgid: u32, ni: &[u8], nr: &[u8]) -> ChainBuilder {
    let h = keys
        .hash
        .prf(&keys.skeyid_a, &[&[0], &msgid.to_be_bytes(), ni, nr]);
    let mut c = ChainBuilder::new();
    c.push(kind::HASH, &h);
    c
}

/// KEYMAT = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b) for each direction.
fn keymat(
    keys: &Phase1Keys,
    pfs: Option<&SecretBytes>,
    (ni, nr): (&[u8], &[u8]),
    (our_spi, peer_spi): (u32, u32),
    len: usize,
) -> (SecretBytes, SecretBytes) {
    let km = KeymatInput {
        hash: keys.hash,
        skeyid_d: &keys.skeyid_d,
        pfs_gxy: pfs.map(|g| g.as_slice()),
        protocol: protocol::ESP,
        ni_b: ni,
        nr_b: nr,
    };
    (
        quick_mode_keymat(&km, our_spi, len),
        quick_mode_keymat(&km, peer_spi, len),
    )
}
