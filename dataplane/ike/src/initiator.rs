//! A single-SA IKEv1 initiator (Main Mode PSK, or Aggressive Mode PSK, + one Quick Mode for
//! L2TP transport mode), used by the engine-pair tests and the in-repo client. It floats to the NAT-T port when NAT-D
//! shows a NAT (RFC 3947 §4), answers DPD and sends DELETEs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::dh::KeyPair;
use crate::header::{ExchangeType, Header};
use crate::identity::{Identification, emit_nat_oa};
use crate::keys::{
    AuthHashInput, KeymatInput, Phase1Input, Phase1Keys, SkeyidInput, auth_hash, derive_phase1,
    phase1_iv, phase2_iv, quick_mode_keymat,
};
use crate::message::{Message, PayloadsExt, after_hash, header, seal_encrypted, seal_plain};
use crate::natt::{NatState, NatTVariant, PeerVendor, nat_d, vid};
use crate::notify::{Delete, Notify, code};
use crate::payload::{ChainBuilder, kind, parse_chain};
use crate::responder::{ChildKeys, Transmit};
use crate::sa::{
    AuthMethod, EncapMode, EspTransform, IkeTransform, Lifetime, Proposal, SaPayload, protocol,
};

/// What the initiator proposes.
#[derive(Clone)]
pub struct InitiatorConfig {
    /// Pre-shared key.
    pub psk: Zeroizing<Vec<u8>>,
    /// Phase 1 transforms, in order of preference.
    pub ike: Vec<IkeTransform>,
    /// ESP transforms (mode is set from NAT detection), in order of preference.
    pub esp: Vec<EspTransform>,
    /// Our port-500 address.
    pub local: SocketAddr,
    /// Our NAT-T address (same IP, the NAT-T port).
    pub local_natt: SocketAddr,
    /// The responder's port-500 address.
    pub remote: SocketAddr,
    /// The responder's NAT-T port.
    pub remote_natt_port: u16,
    /// Announce NAT-T (RFC 3947 VID and NAT-D).
    pub nat_t: bool,
    /// Announce DPD.
    pub dpd: bool,
    /// The L2TP port for the Quick Mode selectors.
    pub l2tp_port: u16,
    /// Resend interval of an unanswered message.
    pub retransmit: Duration,
    /// Aggressive Mode (RFC 2409 §5.4) instead of Main Mode; the first transform's group
    /// is used for the key exchange.
    pub aggressive: bool,
    /// With RSA-signature transforms: our certificate chain and key, the CAs the
    /// responder's certificate must chain to, and the wall clock (seconds since the epoch).
    pub certificate: Option<std::sync::Arc<crate::cert::Credentials>>,
    pub ca: Option<std::sync::Arc<crate::cert::TrustStore>>,
    pub unix_time: u64,
}

/// Progress of the initiator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitiatorState {
    /// Not started.
    Idle,
    /// Message 1 sent.
    SentSa,
    /// Aggressive Mode message 1 sent.
    SentAggressive,
    /// Message 3 sent.
    SentKe,
    /// Message 5 sent.
    SentAuth,
    /// Quick Mode message 1 sent.
    SentQuick,
    /// ESP SAs up.
    Established,
    /// Failed or deleted.
    Closed,
}

/// What the initiator reports.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
pub enum InitiatorEvent {
    /// Phase 1 complete.
    IkeUp {
        /// NAT situation.
        nat: NatState,
    },
    /// ESP SAs ready.
    ChildUp {
        /// Negotiated transform.
        transform: EspTransform,
        /// Our inbound SA (the responder's outbound).
        inbound: ChildKeys,
        /// Our outbound SA.
        outbound: ChildKeys,
        /// UDP encapsulation in use.
        udp_encap: bool,
    },
    /// The responder sent a notify (error or lifetime).
    Notified(u16),
    /// The responder deleted the SA.
    Deleted,
}

/// The initiator.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Initiator {
    cfg: InitiatorConfig,
    rng: ChaCha20Rng,
    state: InitiatorState,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    sai_b: Vec<u8>,
    chosen: Option<IkeTransform>,
    vendor: PeerVendor,
    dh: Option<KeyPair>,
    ni: Vec<u8>,
    keys: Option<Phase1Keys>,
    iv: Vec<u8>,
    gxr: Vec<u8>,
    nat: NatState,
    floated: bool,
    qm_id: u32,
    qm_ni: Vec<u8>,
    qm_spi: u32,
    qm_iv: Vec<u8>,
    qm_dh: Option<KeyPair>,
    last_tx: Vec<u8>,
    next_retransmit: Option<Instant>,
    out: Vec<Transmit>,
    events: Vec<InitiatorEvent>,
    our_spi: Option<u32>,
    /// The responder's SPI we send on (of the newest pair).
    out_spi: Option<u32>,
    /// The responder sent a Certificate Request.
    cert_requested: bool,
    /// A Quick Mode the responder started (its rekey), answered and awaiting HASH(3).
    peer_qm: Option<PeerQuick>,
}

/// The responder's Quick Mode in progress (us as Quick Mode responder).
#[cfg_attr(fuzzing, derive(Clone))]
struct PeerQuick {
    msgid: u32,
    /// IV for its message 3 (the last block of our message 2).
    iv: Vec<u8>,
    /// Its nonce (Ni_b) and ours (Nr_b).
    ni: Vec<u8>,
    nr: Vec<u8>,
    our_spi: u32,
    peer_spi: u32,
    transform: EspTransform,
    pfs_gxy: Option<crate::keys::SecretBytes>,
    /// Our message 2, resent when message 1 repeats.
    last_tx: Vec<u8>,
    rx1: Vec<u8>,
}

impl Initiator {
    /// A new initiator; `seed` drives cookies, nonces and DH secrets.
    pub fn new(cfg: InitiatorConfig, seed: [u8; 32]) -> Initiator {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let cky_i = rng.next_u64().to_be_bytes();
        Initiator {
            cfg,
            rng,
            state: InitiatorState::Idle,
            cky_i,
            cky_r: [0; 8],
            sai_b: Vec::new(),
            chosen: None,
            vendor: PeerVendor::default(),
            dh: None,
            ni: Vec::new(),
            keys: None,
            iv: Vec::new(),
            gxr: Vec::new(),
            nat: NatState::default(),
            floated: false,
            qm_id: 0,
            qm_ni: Vec::new(),
            qm_spi: 0,
            qm_iv: Vec::new(),
            qm_dh: None,
            last_tx: Vec::new(),
            next_retransmit: None,
            out: Vec::new(),
            events: Vec::new(),
            our_spi: None,
            out_spi: None,
            cert_requested: false,
            peer_qm: None,
        }
    }

    /// Gives up: nothing is resent any more.
    fn close_locally(&mut self) {
        self.state = InitiatorState::Closed;
        self.next_retransmit = None;
    }

    /// Chooses Aggressive Mode (before [`Initiator::start`]).
    pub fn set_aggressive(&mut self, on: bool) {
        self.cfg.aggressive = on;
    }

    /// Whether the responder asked for our certificate (CR in Main Mode message 4).
    pub fn cert_requested(&self) -> bool {
        self.cert_requested
    }

    /// Current state.
    pub fn state(&self) -> InitiatorState {
        self.state
    }

    /// Our (private) IP address.
    pub fn local_ip(&self) -> std::net::IpAddr {
        self.cfg.local.ip()
    }

    /// Our cookie.
    pub fn cookie(&self) -> [u8; 8] {
        self.cky_i
    }

    /// Queued datagrams.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.out.is_empty() {
            None
        } else {
            Some(self.out.remove(0))
        }
    }

    /// Queued events.
    pub fn poll_event(&mut self) -> Option<InitiatorEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// Next retransmission.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_retransmit
    }

    fn endpoints(&self) -> (SocketAddr, SocketAddr) {
        if self.floated {
            (
                self.cfg.local_natt,
                SocketAddr::new(self.cfg.remote.ip(), self.cfg.remote_natt_port),
            )
        } else {
            (self.cfg.local, self.cfg.remote)
        }
    }

    fn send(&mut self, now: Instant, msg: Vec<u8>, reliable: bool) {
        let (local, remote) = self.endpoints();
        let mut payload = Vec::with_capacity(msg.len() + 4);
        if self.floated {
            payload.extend_from_slice(&[0; 4]);
        }
        payload.extend_from_slice(&msg);
        if reliable {
            self.last_tx = payload.clone();
            self.next_retransmit = Some(now + self.cfg.retransmit);
        }
        self.out.push(Transmit {
            local,
            remote,
            payload,
        });
    }

    /// Resends the last message when its timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_retransmit.is_some_and(|t| t <= now) && !self.last_tx.is_empty() {
            let (local, remote) = self.endpoints();
            self.out.push(Transmit {
                local,
                remote,
                payload: self.last_tx.clone(),
            });
            self.next_retransmit = Some(now + self.cfg.retransmit);
        }
    }

    /// Sends Main Mode (or Aggressive Mode) message 1.
    pub fn start(&mut self, now: Instant) {
        let sa = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ISAKMP,
                spi: vec![],
                transforms: self
                    .cfg
                    .ike
                    .iter()
                    .zip(1u8..)
                    .map(|(t, n)| t.to_transform(n, t.lifetime))
                    .collect(),
            }],
        };
        self.sai_b = sa.emit();
        let mut c = ChainBuilder::new();
        c.push(kind::SA, &self.sai_b);
        let mut exchange = ExchangeType::IdentityProtection;
        if self.cfg.aggressive
            && let Some(first) = self.cfg.ike.first()
        {
            let dh = KeyPair::generate(first.group, &mut self.rng);
            let mut ni = vec![0u8; 24];
            self.rng.fill_bytes(&mut ni);
            c.push(kind::KE, dh.public())
                .push(kind::NONCE, &ni)
                .push(kind::ID, &self.id_payload());
            self.dh = Some(dh);
            self.ni = ni;
            exchange = ExchangeType::Aggressive;
        }
        if self.cfg.nat_t {
            c.push(kind::VID, &NatTVariant::Rfc3947.vendor_id());
        }
        if self.cfg.dpd {
            c.push(kind::VID, &vid::DPD);
        }
        let msg = seal_plain(header(self.cky_i, [0; 8], exchange, 0), &c);
        self.state = if exchange == ExchangeType::Aggressive {
            InitiatorState::SentAggressive
        } else {
            InitiatorState::SentSa
        };
        self.send(now, msg, true);
    }

    /// Our IDii: our certificate's subject with signatures, else our address.
    fn id_payload(&self) -> Vec<u8> {
        let signed = self
            .chosen
            .is_some_and(|t| t.auth == AuthMethod::RsaSignature)
            || self
                .cfg
                .ike
                .first()
                .is_some_and(|t| t.auth == AuthMethod::RsaSignature);
        match self.cfg.certificate.as_ref().filter(|_| signed) {
            Some(c) => Identification {
                id_type: crate::identity::id_type::DER_ASN1_DN,
                protocol: 0,
                port: 0,
                data: c.subject_dn_der().to_vec(),
            }
            .emit(),
            None => Identification::address(self.cfg.local.ip(), 0, 0).emit(),
        }
    }

    /// NAT situation from the responder's NAT-D: the first is its hash of our address, the
    /// rest of its own.
    fn nat_from(
        &self,
        h: crate::prf::HashAlg,
        natd: &[&crate::payload::RawPayload<'_>],
    ) -> NatState {
        let Some((first, rest)) = natd.split_first() else {
            return NatState::default();
        };
        let ours = nat_d(h, &self.cky_i, &self.cky_r, self.cfg.local);
        let theirs = nat_d(h, &self.cky_i, &self.cky_r, self.cfg.remote);
        NatState {
            local_behind_nat: first.body != ours.as_slice(),
            peer_behind_nat: !rest.iter().any(|p| p.body == theirs.as_slice()),
        }
    }

    /// Our NAT-D: the responder's address, then ours.
    fn push_nat_d(&self, c: &mut ChainBuilder, v: NatTVariant, h: crate::prf::HashAlg) {
        c.push(
            v.nat_d_kind(),
            &nat_d(h, &self.cky_i, &self.cky_r, self.cfg.remote),
        );
        c.push(
            v.nat_d_kind(),
            &nat_d(h, &self.cky_i, &self.cky_r, self.cfg.local),
        );
    }

    /// Aggressive Mode message 2 → message 3 (HASH_I and NAT-D, encrypted like strongSwan).
    fn on_aggressive(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Ok(chain) = parse_chain(hdr.next_payload, body) else {
            return;
        };
        let Some(chosen) = chain
            .find_kind(kind::SA)
            .and_then(|p| SaPayload::parse(p.body).ok())
            .and_then(|sa| {
                let t = sa.proposals.first()?.transforms.first()?.clone();
                IkeTransform::from_transform(&t).ok()
            })
        else {
            return;
        };
        let (Some(ke), Some(nr), Some(idr), Some(hash_r), Some(dh)) = (
            chain.find_kind(kind::KE),
            chain.find_kind(kind::NONCE),
            chain.find_kind(kind::ID),
            chain.find_kind(kind::HASH),
            self.dh.as_ref(),
        ) else {
            return;
        };
        for v in chain.all_kind(kind::VID) {
            self.vendor.note(v.body);
        }
        self.cky_r = hdr.cky_r;
        let Ok(gxy) = dh.shared_secret(ke.body) else {
            return;
        };
        let keys = derive_phase1(&Phase1Input {
            hash: chosen.hash,
            cipher: chosen.cipher,
            auth: SkeyidInput::PreSharedKey(&self.cfg.psk),
            ni: &self.ni,
            nr: nr.body,
            gxy: &gxy,
            cky_i: self.cky_i,
            cky_r: self.cky_r,
        });
        let gxi = dh.public().to_vec();
        let expect = auth_hash(
            chosen.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: ke.body,
                gx_peer: &gxi,
                cky_self: self.cky_r,
                cky_peer: self.cky_i,
                sai_b: &self.sai_b,
                id_b: idr.body,
            },
        );
        if !bool::from(expect.as_slice().ct_eq(hash_r.body)) {
            self.close_locally();
            return;
        }
        let nat_t = self.vendor.nat_t.filter(|_| self.cfg.nat_t);
        if let Some(v) = nat_t {
            self.nat = self.nat_from(chosen.hash, &chain.all_kind(v.nat_d_kind()));
        }
        let hash_i = auth_hash(
            chosen.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &gxi,
                gx_peer: ke.body,
                cky_self: self.cky_i,
                cky_peer: self.cky_r,
                sai_b: &self.sai_b,
                id_b: &self.id_payload(),
            },
        );
        let mut c = ChainBuilder::new();
        c.push(kind::HASH, &hash_i);
        if let Some(v) = nat_t {
            self.push_nat_d(&mut c, v, chosen.hash);
        }
        let iv = phase1_iv(chosen.hash, chosen.cipher, &gxi, ke.body);
        let Ok((msg, last)) = seal_encrypted(
            header(self.cky_i, self.cky_r, ExchangeType::Aggressive, 0),
            &c,
            keys.cipher,
            &keys.enc_key,
            &iv,
        ) else {
            return;
        };
        self.gxr = ke.body.to_vec();
        self.chosen = Some(chosen);
        self.iv = last;
        self.keys = Some(keys);
        // RFC 3947 §4: behind a NAT, message 3 already goes to the NAT-T port.
        self.floated = self.nat.any();
        self.send(now, msg, false);
        self.next_retransmit = None;
        self.events.push(InitiatorEvent::IkeUp { nat: self.nat });
        self.start_quick_mode(now);
    }

    /// Processes a UDP payload from the responder.
    pub fn handle_input(&mut self, now: Instant, datagram: &[u8]) {
        let msg = if self.floated {
            match datagram.split_first_chunk::<4>() {
                Some((&[0, 0, 0, 0], rest)) => rest,
                _ => return,
            }
        } else {
            datagram
        };
        let Ok((hdr, body)) = Header::parse(msg) else {
            return;
        };
        if hdr.cky_i != self.cky_i {
            return;
        }
        match (hdr.exchange, self.state) {
            (ExchangeType::IdentityProtection, InitiatorState::SentSa) => {
                self.on_sa(now, &hdr, body)
            }
            (ExchangeType::Aggressive, InitiatorState::SentAggressive) => {
                self.on_aggressive(now, &hdr, body)
            }
            (ExchangeType::IdentityProtection, InitiatorState::SentKe) => {
                self.on_ke(now, &hdr, body)
            }
            (ExchangeType::IdentityProtection, InitiatorState::SentAuth) => {
                self.on_auth(now, &hdr, body)
            }
            (ExchangeType::QuickMode, InitiatorState::Established)
                if hdr.message_id != self.qm_id && hdr.message_id != 0 =>
            {
                self.on_peer_quick(now, &hdr, body)
            }
            (ExchangeType::QuickMode, InitiatorState::SentQuick)
                if hdr.message_id == self.qm_id =>
            {
                self.on_quick(now, &hdr, body)
            }
            (ExchangeType::Informational, _) => self.on_info(now, &hdr, body),
            _ => {}
        }
    }

    fn on_sa(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Ok(chain) = parse_chain(hdr.next_payload, body) else {
            return;
        };
        let Some(sa) = chain
            .find_kind(kind::SA)
            .and_then(|p| SaPayload::parse(p.body).ok())
        else {
            return;
        };
        let Some(t) = sa.proposals.first().and_then(|p| p.transforms.first()) else {
            return;
        };
        let Ok(chosen) = IkeTransform::from_transform(t) else {
            return;
        };
        for v in chain.all_kind(kind::VID) {
            self.vendor.note(v.body);
        }
        self.cky_r = hdr.cky_r;
        self.chosen = Some(chosen);
        let dh = KeyPair::generate(chosen.group, &mut self.rng);
        let mut ni = vec![0u8; 24];
        self.rng.fill_bytes(&mut ni);
        let mut c = ChainBuilder::new();
        c.push(kind::KE, dh.public()).push(kind::NONCE, &ni);
        if let Some(v) = self.vendor.nat_t.filter(|_| self.cfg.nat_t) {
            self.push_nat_d(&mut c, v, chosen.hash);
        }
        self.dh = Some(dh);
        self.ni = ni;
        let msg = seal_plain(
            header(self.cky_i, self.cky_r, ExchangeType::IdentityProtection, 0),
            &c,
        );
        self.state = InitiatorState::SentKe;
        self.send(now, msg, true);
    }

    fn on_ke(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Ok(chain) = parse_chain(hdr.next_payload, body) else {
            return;
        };
        let (Some(ke), Some(nr), Some(chosen), Some(dh)) = (
            chain.find_kind(kind::KE),
            chain.find_kind(kind::NONCE),
            self.chosen,
            self.dh.as_ref(),
        ) else {
            return;
        };
        let Ok(gxy) = dh.shared_secret(ke.body) else {
            return;
        };
        let signatures = chosen.auth == AuthMethod::RsaSignature;
        let keys = derive_phase1(&Phase1Input {
            hash: chosen.hash,
            cipher: chosen.cipher,
            auth: if signatures {
                SkeyidInput::Signature
            } else {
                SkeyidInput::PreSharedKey(&self.cfg.psk)
            },
            ni: &self.ni,
            nr: nr.body,
            gxy: &gxy,
            cky_i: self.cky_i,
            cky_r: self.cky_r,
        });
        if let Some(v) = self.vendor.nat_t.filter(|_| self.cfg.nat_t) {
            self.nat = self.nat_from(chosen.hash, &chain.all_kind(v.nat_d_kind()));
        }
        self.cert_requested = !chain.all_kind(kind::CR).is_empty();
        self.iv = phase1_iv(chosen.hash, chosen.cipher, dh.public(), ke.body);
        self.gxr = ke.body.to_vec();
        let idii = self.id_payload();
        let gxi = dh.public().to_vec();
        let hash_i = auth_hash(
            chosen.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &gxi,
                gx_peer: &self.gxr,
                cky_self: self.cky_i,
                cky_peer: self.cky_r,
                sai_b: &self.sai_b,
                id_b: &idii,
            },
        );
        let mut c = ChainBuilder::new();
        c.push(kind::ID, &idii);
        match self.cfg.certificate.clone().filter(|_| signatures) {
            Some(cert) => {
                for der in cert.chain_der() {
                    c.push(kind::CERT, &[&[4u8][..], der].concat());
                }
                let Ok(sig) = cert.sign_hash(&mut self.rng, &hash_i) else {
                    return;
                };
                c.push(kind::SIG, &sig);
            }
            None => {
                c.push(kind::HASH, &hash_i);
            }
        }
        let Ok((msg, last)) = seal_encrypted(
            header(self.cky_i, self.cky_r, ExchangeType::IdentityProtection, 0),
            &c,
            keys.cipher,
            &keys.enc_key,
            &self.iv,
        ) else {
            return;
        };
        self.iv = last;
        self.keys = Some(keys);
        // RFC 3947 §4: with a NAT in between, switch to the NAT-T port from message 5 on.
        self.floated = self.nat.any();
        self.state = InitiatorState::SentAuth;
        self.send(now, msg, true);
    }

    fn on_auth(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let (Some(keys), Some(chosen), Some(dh)) =
            (self.keys.as_ref(), self.chosen, self.dh.as_ref())
        else {
            return;
        };
        let Ok(m) = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &self.iv) else {
            return;
        };
        let Ok(chain) = m.payloads() else { return };
        let signatures = chosen.auth == AuthMethod::RsaSignature;
        let proof_kind = if signatures { kind::SIG } else { kind::HASH };
        let (Some(idr), Some(hash)) = (chain.find_kind(kind::ID), chain.find_kind(proof_kind))
        else {
            return;
        };
        let expect = auth_hash(
            chosen.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &self.gxr,
                gx_peer: dh.public(),
                cky_self: self.cky_r,
                cky_peer: self.cky_i,
                sai_b: &self.sai_b,
                id_b: idr.body,
            },
        );
        let authentic = if signatures {
            let certs: Vec<&[u8]> = chain
                .all_kind(kind::CERT)
                .iter()
                .filter_map(|c| match c.body.split_first() {
                    Some((4, der)) => Some(der),
                    _ => None,
                })
                .collect();
            let ident = Identification::parse(idr.body).ok();
            match (&self.cfg.ca, certs.split_first(), ident) {
                (Some(ca), Some((leaf, rest)), Some(ident)) => {
                    ca.verify(leaf, rest, self.cfg.unix_time).is_ok_and(|p| {
                        p.matches_id(&ident) && p.verify_hash_signature(&expect, hash.body)
                    })
                }
                _ => false,
            }
        } else {
            bool::from(expect.as_slice().ct_eq(hash.body))
        };
        if !authentic {
            self.close_locally();
            return;
        }
        self.iv = m.last_block.clone().unwrap_or_default();
        self.events.push(InitiatorEvent::IkeUp { nat: self.nat });
        self.next_retransmit = None;
        self.start_quick_mode(now);
    }

    /// Starts a Quick Mode exchange for the L2TP selectors (also used to rekey).
    pub fn start_quick_mode(&mut self, now: Instant) {
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let udp = self.nat.any();
        let v = self.vendor.nat_t.unwrap_or(NatTVariant::Rfc3947);
        self.qm_id = loop {
            let m = self.rng.next_u32();
            if m != 0 {
                break m;
            }
        };
        self.qm_spi = self.rng.next_u32() | 0x1000;
        let mut ni = vec![0u8; 16];
        self.rng.fill_bytes(&mut ni);
        let mut transforms = Vec::new();
        for (t, n) in self.cfg.esp.iter().zip(1u8..) {
            let mut t = *t;
            t.mode = if udp {
                EncapMode::UdpTransport
            } else {
                EncapMode::Transport
            };
            t.mode_value = if udp { v.udp_transport_mode() } else { 2 };
            transforms.push(t.to_transform(n, t.lifetime));
        }
        let pfs = self.cfg.esp.first().and_then(|t| t.group);
        let sa = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ESP,
                spi: self.qm_spi.to_be_bytes().to_vec(),
                transforms,
            }],
        };
        let mut rest = ChainBuilder::new();
        rest.push(kind::SA, &sa.emit()).push(kind::NONCE, &ni);
        if let Some(g) = pfs {
            let dh = KeyPair::generate(g, &mut self.rng);
            rest.push(kind::KE, dh.public());
            self.qm_dh = Some(dh);
        }
        rest.push(
            kind::ID,
            &Identification::address(self.cfg.local.ip(), 17, self.cfg.l2tp_port).emit(),
        );
        rest.push(
            kind::ID,
            &Identification::address(self.cfg.remote.ip(), 17, self.cfg.l2tp_port).emit(),
        );
        if udp {
            rest.push(v.nat_oa_kind(), &emit_nat_oa(self.cfg.local.ip()));
            rest.push(v.nat_oa_kind(), &emit_nat_oa(self.cfg.remote.ip()));
        }
        let hash1 = keys
            .hash
            .prf(&keys.skeyid_a, &[&self.qm_id.to_be_bytes(), rest.bytes()]);
        let mut full = ChainBuilder::new();
        full.push(kind::HASH, &hash1).append(rest);
        let iv = phase2_iv(keys.hash, keys.cipher, &self.iv, self.qm_id);
        let Ok((msg, last)) = seal_encrypted(
            header(self.cky_i, self.cky_r, ExchangeType::QuickMode, self.qm_id),
            &full,
            keys.cipher,
            &keys.enc_key,
            &iv,
        ) else {
            return;
        };
        self.qm_iv = last;
        self.qm_ni = ni;
        self.state = InitiatorState::SentQuick;
        self.send(now, msg, true);
    }

    fn on_quick(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let Ok(m) = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &self.qm_iv) else {
            return;
        };
        let Ok(chain) = m.payloads() else { return };
        let Some((rest, _)) = after_hash(&m.body, &chain) else {
            return;
        };
        let (Some(nr), Some(sa)) = (chain.find_kind(kind::NONCE), chain.find_kind(kind::SA)) else {
            return;
        };
        let hash2 = chain.first().map(|p| p.body).unwrap_or_default();
        let expect = keys.hash.prf(
            &keys.skeyid_a,
            &[&hdr.message_id.to_be_bytes(), &self.qm_ni, rest],
        );
        if !bool::from(expect.as_slice().ct_eq(hash2)) {
            return;
        }
        let Ok(sa) = SaPayload::parse(sa.body) else {
            return;
        };
        let Some(p) = sa.proposals.first() else {
            return;
        };
        let Some(Ok(et)) = p.transforms.first().map(EspTransform::from_transform) else {
            return;
        };
        let Ok(peer_spi) = <[u8; 4]>::try_from(p.spi.as_slice()).map(u32::from_be_bytes) else {
            return;
        };
        let pfs = match (&self.qm_dh, chain.find_kind(kind::KE)) {
            (Some(dh), Some(ke)) => match dh.shared_secret(ke.body) {
                Ok(g) => Some(g),
                Err(_) => return,
            },
            _ => None,
        };
        for n in chain.all_kind(kind::N) {
            if let Ok(n) = Notify::parse(n.body) {
                self.events.push(InitiatorEvent::Notified(n.code));
            }
        }
        let hash3 = keys.hash.prf(
            &keys.skeyid_a,
            &[&[0], &hdr.message_id.to_be_bytes(), &self.qm_ni, nr.body],
        );
        let mut c = ChainBuilder::new();
        c.push(kind::HASH, &hash3);
        let Ok((msg, _)) = seal_encrypted(
            header(self.cky_i, self.cky_r, ExchangeType::QuickMode, self.qm_id),
            &c,
            keys.cipher,
            &keys.enc_key,
            m.last_block.as_deref().unwrap_or_default(),
        ) else {
            return;
        };
        let len = et.keymat_len();
        let g = pfs.as_ref().map(|g| g.as_slice());
        let km = KeymatInput {
            hash: keys.hash,
            skeyid_d: &keys.skeyid_d,
            pfs_gxy: g,
            protocol: protocol::ESP,
            ni_b: &self.qm_ni,
            nr_b: nr.body,
        };
        let inbound = quick_mode_keymat(&km, self.qm_spi, len);
        let outbound = quick_mode_keymat(&km, peer_spi, len);
        self.our_spi = Some(self.qm_spi);
        self.out_spi = Some(peer_spi);
        self.state = InitiatorState::Established;
        self.next_retransmit = None;
        self.send(now, msg, false);
        self.events.push(InitiatorEvent::ChildUp {
            transform: et,
            inbound: ChildKeys {
                spi: self.qm_spi,
                keymat: inbound,
            },
            outbound: ChildKeys {
                spi: peer_spi,
                keymat: outbound,
            },
            udp_encap: self.nat.any(),
        });
    }

    /// Decrypts the first message of an exchange the responder started (Quick Mode or
    /// Informational) with its own IV and checks HASH(1) = prf(SKEYID_a, M-ID | payloads
    /// after HASH) (RFC 2409 §5.5, §5.7).
    fn open_hashed(&self, hdr: &Header, body: &[u8]) -> Option<Message> {
        let keys = self.keys.as_ref()?;
        let iv = phase2_iv(keys.hash, keys.cipher, &self.iv, hdr.message_id);
        let m = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &iv).ok()?;
        let chain = m.payloads().ok()?;
        let (rest, _) = after_hash(&m.body, &chain)?;
        let hash1 = chain.first().map(|p| p.body).unwrap_or_default();
        let expect = keys
            .hash
            .prf(&keys.skeyid_a, &[&hdr.message_id.to_be_bytes(), rest]);
        let ok = bool::from(expect.as_slice().ct_eq(hash1));
        drop(chain);
        ok.then_some(m)
    }

    /// The responder's own Quick Mode (its rekey, RFC 2409 §5.5): message 1 → message 2;
    /// message 3 → the new pair.
    fn on_peer_quick(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let msgid = hdr.message_id;
        if let Some(pq) = self.peer_qm.as_ref().filter(|p| p.msgid == msgid) {
            if pq.rx1 == body {
                let out = pq.last_tx.clone();
                return self.send(now, out, false);
            }
            let Ok(m) = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &pq.iv) else {
                return;
            };
            let Ok(chain) = m.payloads() else { return };
            let expect = keys.hash.prf(
                &keys.skeyid_a,
                &[&[0], &msgid.to_be_bytes(), &pq.ni, &pq.nr],
            );
            let ok = matches!(chain.as_slice(), [h] if h.kind == kind::HASH
                && bool::from(expect.as_slice().ct_eq(h.body)));
            if !ok {
                return;
            }
            let Some(pq) = self.peer_qm.take() else {
                return;
            };
            let km = KeymatInput {
                hash: keys.hash,
                skeyid_d: &keys.skeyid_d,
                pfs_gxy: pq.pfs_gxy.as_ref().map(|g| g.as_slice()),
                protocol: protocol::ESP,
                ni_b: &pq.ni,
                nr_b: &pq.nr,
            };
            let len = pq.transform.keymat_len();
            let inbound = quick_mode_keymat(&km, pq.our_spi, len);
            let outbound = quick_mode_keymat(&km, pq.peer_spi, len);
            self.our_spi = Some(pq.our_spi);
            self.out_spi = Some(pq.peer_spi);
            self.events.push(InitiatorEvent::ChildUp {
                transform: pq.transform,
                inbound: ChildKeys {
                    spi: pq.our_spi,
                    keymat: inbound,
                },
                outbound: ChildKeys {
                    spi: pq.peer_spi,
                    keymat: outbound,
                },
                udp_encap: self.nat.any(),
            });
            return;
        }
        let Some(m) = self.open_hashed(hdr, body) else {
            return;
        };
        let Ok(chain) = m.payloads() else { return };
        let (Some(ni), Some(sa)) = (chain.find_kind(kind::NONCE), chain.find_kind(kind::SA)) else {
            return;
        };
        let Ok(sa) = SaPayload::parse(sa.body) else {
            return;
        };
        let Some(p) = sa.proposals.first() else {
            return;
        };
        let Some((t, Ok(et))) = p
            .transforms
            .first()
            .map(|t| (t, EspTransform::from_transform(t)))
        else {
            return;
        };
        if !self
            .cfg
            .esp
            .iter()
            .any(|o| o.cipher == et.cipher && o.auth == et.auth && o.group == et.group)
        {
            return;
        }
        let Ok(peer_spi) = <[u8; 4]>::try_from(p.spi.as_slice()).map(u32::from_be_bytes) else {
            return;
        };
        let (ke_pub, pfs_gxy) = match (et.group, chain.find_kind(kind::KE)) {
            (None, None) => (None, None),
            (Some(g), Some(ke)) => {
                let dh = KeyPair::generate(g, &mut self.rng);
                let Ok(gxy) = dh.shared_secret(ke.body) else {
                    return;
                };
                (Some(dh.public().to_vec()), Some(gxy))
            }
            _ => return,
        };
        let our_spi = self.rng.next_u32() | 0x1000;
        let mut nr = vec![0u8; 16];
        self.rng.fill_bytes(&mut nr);
        let reply_sa = SaPayload {
            proposals: vec![Proposal {
                spi: our_spi.to_be_bytes().to_vec(),
                transforms: vec![t.clone()],
                ..p.clone()
            }],
        };
        let mut rest = ChainBuilder::new();
        rest.push(kind::SA, &reply_sa.emit()).push(kind::NONCE, &nr);
        if let Some(k) = &ke_pub {
            rest.push(kind::KE, k);
        }
        for id in chain.all_kind(kind::ID) {
            rest.push(kind::ID, id.body);
        }
        let hash2 = keys.hash.prf(
            &keys.skeyid_a,
            &[&msgid.to_be_bytes(), ni.body, rest.bytes()],
        );
        let mut full = ChainBuilder::new();
        full.push(kind::HASH, &hash2).append(rest);
        let Ok((msg, last)) = seal_encrypted(
            header(self.cky_i, self.cky_r, ExchangeType::QuickMode, msgid),
            &full,
            keys.cipher,
            &keys.enc_key,
            m.last_block.as_deref().unwrap_or_default(),
        ) else {
            return;
        };
        self.peer_qm = Some(PeerQuick {
            msgid,
            iv: last,
            ni: ni.body.to_vec(),
            nr,
            our_spi,
            peer_spi,
            transform: et,
            pfs_gxy,
            last_tx: msg.clone(),
            rx1: body.to_vec(),
        });
        self.send(now, msg, false);
    }

    fn on_info(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        if !hdr.encrypted() {
            if let Ok(chain) = parse_chain(hdr.next_payload, body) {
                for n in chain.all_kind(kind::N) {
                    if let Ok(n) = Notify::parse(n.body) {
                        self.events.push(InitiatorEvent::Notified(n.code));
                    }
                }
            }
            self.close_locally();
            return;
        }
        let Some(m) = self.open_hashed(hdr, body) else {
            return;
        };
        let Ok(chain) = m.payloads() else { return };
        let mut acks = Vec::new();
        for n in chain.all_kind(kind::N) {
            let Ok(n) = Notify::parse(n.body) else {
                continue;
            };
            if n.code == code::R_U_THERE {
                acks.push(Notify {
                    code: code::R_U_THERE_ACK,
                    ..n
                });
            } else {
                self.events.push(InitiatorEvent::Notified(n.code));
            }
        }
        // The ISAKMP SA, or the ESP SA we send on, deleted: we are done. A DELETE for a
        // pair a rekey replaced is routine.
        let ours = self.out_spi.map(|s| s.to_be_bytes().to_vec());
        let fatal = chain
            .all_kind(kind::D)
            .iter()
            .filter_map(|d| Delete::parse(d.body).ok())
            .any(|d| {
                d.protocol == protocol::ISAKMP || d.spis.iter().any(|s| Some(s) == ours.as_ref())
            });
        if fatal {
            self.close_locally();
            self.events.push(InitiatorEvent::Deleted);
        }
        for a in acks {
            self.send_info(now, |c| {
                c.push(kind::N, &a.emit());
            });
        }
    }

    /// Sends a protected Informational message.
    pub fn send_info(&mut self, now: Instant, fill: impl FnOnce(&mut ChainBuilder)) {
        let Some(keys) = self.keys.as_ref() else {
            return;
        };
        let msgid = self.rng.next_u32() | 1;
        let mut rest = ChainBuilder::new();
        fill(&mut rest);
        let hash = keys
            .hash
            .prf(&keys.skeyid_a, &[&msgid.to_be_bytes(), rest.bytes()]);
        let mut full = ChainBuilder::new();
        full.push(kind::HASH, &hash).append(rest);
        let iv = phase2_iv(keys.hash, keys.cipher, &self.iv, msgid);
        let Ok((msg, _)) = seal_encrypted(
            header(self.cky_i, self.cky_r, ExchangeType::Informational, msgid),
            &full,
            keys.cipher,
            &keys.enc_key,
            &iv,
        ) else {
            return;
        };
        self.send(now, msg, false);
    }

    /// Sends R-U-THERE (RFC 3706) with `seq`.
    pub fn send_dpd(&mut self, now: Instant, seq: u32) {
        let n = Notify {
            protocol: protocol::ISAKMP,
            code: code::R_U_THERE,
            spi: [self.cky_i, self.cky_r].concat(),
            data: seq.to_be_bytes().to_vec(),
        };
        self.send_info(now, |c| {
            c.push(kind::N, &n.emit());
        });
    }

    /// Deletes the ESP SA and the IKE SA (RFC 2408 §3.15).
    pub fn delete(&mut self, now: Instant) {
        if let Some(spi) = self.our_spi {
            let d = Delete {
                protocol: protocol::ESP,
                spis: vec![spi.to_be_bytes().to_vec()],
            };
            self.send_info(now, |c| {
                c.push(kind::D, &d.emit());
            });
        }
        let d = Delete {
            protocol: protocol::ISAKMP,
            spis: vec![[self.cky_i, self.cky_r].concat()],
        };
        self.send_info(now, |c| {
            c.push(kind::D, &d.emit());
        });
        self.close_locally();
    }
}

/// A convenient ESP transform proposal (transport mode; the mode is replaced per NAT).
pub fn esp_proposal(
    cipher: crate::sa::EspCipher,
    auth: Option<crate::sa::EspAuth>,
    pfs: Option<crate::dh::Group>,
) -> EspTransform {
    EspTransform {
        cipher,
        auth,
        mode: EncapMode::Transport,
        mode_value: 2,
        group: pfs,
        lifetime: Lifetime {
            seconds: Some(3600),
            kilobytes: None,
        },
    }
}
