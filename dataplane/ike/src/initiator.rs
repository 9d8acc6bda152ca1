//! A single-SA IKEv1 initiator (Main Mode PSK or RSA signatures, or Aggressive Mode PSK, +
//! one Quick Mode for L2TP transport mode), used by the engine-pair tests and the in-repo
//! client. It floats to the NAT-T port when NAT-D shows a NAT (RFC 3947 §4), answers the
//! responder's Quick Modes (its rekeys) and DPD (RFC 3706), and sends DELETEs. The
//! exchanges are the initiator states of `crate::exchange`, which the gateway's own
//! rekeys drive as well; this module only sequences them for one SA.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use zeroize::Zeroizing;

use crate::exchange::aggressive::{self, Message2Error};
use crate::exchange::informational::{
    Protection, delete_esp, delete_isakmp, r_u_there, r_u_there_ack,
};
use crate::exchange::main_mode::{
    self, InitiatorSentAuth, InitiatorSentKe, InitiatorSentSa, OwnProof,
};
use crate::exchange::quick_mode::{self, Offer, Request};
use crate::exchange::{Phase1Sa, chosen_ike, hash_eq, new_msgid, new_nonce, own_id};
use crate::header::{ExchangeType, Header};
use crate::identity::Identification;
use crate::keys::{Phase1Keys, SkeyidInput};
use crate::message::PayloadsExt;
use crate::natt::{NatState, NatTVariant, PeerVendor};
use crate::notify::{Delete, Notify, code};
use crate::payload::{ChainBuilder, kind, parse_chain};
use crate::responder::{ChildKeys, Transmit};
use crate::sa::{
    AuthMethod, EncapMode, EspTransform, IkeTransform, Lifetime, SaPayload, Transform, protocol,
};

/// Length of our Phase 1 nonce.
const PHASE1_NONCE_LEN: usize = 24;
/// Length of our Quick Mode nonce.
const QUICK_NONCE_LEN: usize = 16;

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
    /// The CAs the responder's certificate must chain to.
    pub ca: Option<std::sync::Arc<crate::cert::TrustStore>>,
    /// The wall clock (seconds since the epoch) certificates are checked against.
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

/// The Phase 1 exchange in progress.
#[cfg_attr(fuzzing, derive(Clone))]
enum Phase1 {
    /// Main Mode message 1 sent.
    MainSa(InitiatorSentSa),
    /// Main Mode message 3 sent.
    MainKe(InitiatorSentKe),
    /// Main Mode message 5 sent.
    MainAuth(Box<InitiatorSentAuth>),
    /// Aggressive Mode message 1 sent.
    Aggressive(Box<aggressive::InitiatorSent>),
}

/// The responder's Quick Mode in progress (us as Quick Mode responder).
#[cfg_attr(fuzzing, derive(Clone))]
struct PeerQuick {
    qm: quick_mode::Responder,
    /// Our message 2, resent when message 1 repeats.
    last_tx: Vec<u8>,
    /// Its message 1.
    rx1: Vec<u8>,
}

/// The initiator.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Initiator {
    cfg: InitiatorConfig,
    rng: ChaCha20Rng,
    state: InitiatorState,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    /// The Phase 1 exchange, until it completes.
    phase1: Option<Phase1>,
    chosen: Option<IkeTransform>,
    vendor: PeerVendor,
    /// The ISAKMP SA once Phase 1 is complete: its keys and the last Phase 1 CBC block.
    keys: Option<Phase1Keys>,
    iv: Vec<u8>,
    nat: NatState,
    floated: bool,
    /// Message ID of our latest Quick Mode, and its state.
    qm_id: u32,
    quick: Option<quick_mode::Initiator>,
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
            phase1: None,
            chosen: None,
            vendor: PeerVendor::default(),
            keys: None,
            iv: Vec::new(),
            nat: NatState::default(),
            floated: false,
            qm_id: 0,
            quick: None,
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

    /// The facts of our Phase 1: NAT-D covers our port-500 addresses (RFC 3947 §3.2).
    fn phase1_sa(&self, transform: IkeTransform) -> Phase1Sa {
        Phase1Sa {
            cky_i: self.cky_i,
            cky_r: self.cky_r,
            local: self.cfg.local,
            peer: self.cfg.remote,
            transform,
        }
    }

    /// The NAT-T variant in use: the responder's, if we announced NAT-T.
    fn nat_t(&self) -> Option<NatTVariant> {
        self.vendor.nat_t.filter(|_| self.cfg.nat_t)
    }

    /// Sends Main Mode (or Aggressive Mode) message 1.
    pub fn start(&mut self, now: Instant) {
        let transforms: Vec<Transform> = self
            .cfg
            .ike
            .iter()
            .zip(1u8..)
            .map(|(t, n)| t.to_transform(n, t.lifetime))
            .collect();
        let nat_t = self.cfg.nat_t.then_some(NatTVariant::Rfc3947);
        let msg = if self.cfg.aggressive
            && let Some(first) = self.cfg.ike.first()
        {
            let idi_b = self.id_payload();
            let (st, msg) = aggressive::InitiatorSent::start(
                &mut self.rng,
                (self.cky_i, transforms, first.group),
                PHASE1_NONCE_LEN,
                idi_b,
                (nat_t, self.cfg.dpd),
            );
            self.phase1 = Some(Phase1::Aggressive(Box::new(st)));
            self.state = InitiatorState::SentAggressive;
            msg
        } else {
            let (st, msg) = InitiatorSentSa::start(self.cky_i, transforms, nat_t, self.cfg.dpd);
            self.phase1 = Some(Phase1::MainSa(st));
            self.state = InitiatorState::SentSa;
            msg
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
        let credentials = self.cfg.certificate.as_deref().filter(|_| signed);
        own_id(credentials, self.cfg.local.ip())
    }

    /// NAT situation from the responder's NAT-D.
    fn nat_from(
        &self,
        sa: &Phase1Sa,
        chain: &[crate::payload::RawPayload<'_>],
    ) -> Option<NatState> {
        let v = self.nat_t()?;
        let seen = sa.nat_seen(&chain.all_kind(v.nat_d_kind()));
        Some(
            seen.map_or_else(NatState::default, |(local, peer)| NatState {
                local_behind_nat: local,
                peer_behind_nat: peer,
            }),
        )
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

    /// Phase 1 is complete: the ISAKMP SA's keys and IV, and on to Quick Mode.
    fn phase1_done(&mut self, now: Instant, keys: Phase1Keys, iv: Vec<u8>) {
        self.keys = Some(keys);
        self.iv = iv;
        self.phase1 = None;
        self.events.push(InitiatorEvent::IkeUp { nat: self.nat });
        self.next_retransmit = None;
        self.start_quick_mode(now);
    }

    /// Main Mode message 2 (HDR, SA, VID*) → message 3 (HDR, KE, Ni, NAT-D*).
    fn on_sa(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Ok(chain) = parse_chain(hdr.next_payload, body) else {
            return;
        };
        let Some(chosen) = chosen_ike(&chain) else {
            return;
        };
        for v in chain.all_kind(kind::VID) {
            self.vendor.note(v.body);
        }
        self.cky_r = hdr.cky_r;
        self.chosen = Some(chosen);
        let Some(Phase1::MainSa(st)) = &self.phase1 else {
            return;
        };
        let (sa, nat_t) = (self.phase1_sa(chosen), self.nat_t());
        let (next, msg) = st.send_ke(&mut self.rng, &sa, PHASE1_NONCE_LEN, &[], nat_t);
        self.phase1 = Some(Phase1::MainKe(next));
        self.state = InitiatorState::SentKe;
        self.send(now, msg, true);
    }

    /// Main Mode message 4 (HDR, KE, Nr, [CR*], NAT-D*) → message 5.
    fn on_ke(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Ok(chain) = parse_chain(hdr.next_payload, body) else {
            return;
        };
        let (Some((ke, nr)), Some(chosen), Some(Phase1::MainKe(st))) =
            (main_mode::key_exchange(&chain), self.chosen, &self.phase1)
        else {
            return;
        };
        let signatures = chosen.auth == AuthMethod::RsaSignature;
        let sa = self.phase1_sa(chosen);
        let idii = self.id_payload();
        let own = OwnProof {
            auth: Some(if signatures {
                SkeyidInput::Signature
            } else {
                SkeyidInput::PreSharedKey(&self.cfg.psk)
            }),
            id_b: &idii,
            credentials: self.cfg.certificate.as_deref().filter(|_| signatures),
        };
        let Ok((next, msg)) = st.send_auth(&mut self.rng, &sa, (ke.body, nr.body), &own) else {
            return;
        };
        if let Some(nat) = self.nat_from(&sa, &chain) {
            self.nat = nat;
        }
        self.cert_requested = !chain.all_kind(kind::CR).is_empty();
        self.phase1 = Some(Phase1::MainAuth(Box::new(next)));
        // RFC 3947 §4: with a NAT in between, switch to the NAT-T port from message 5 on.
        self.floated = self.nat.any();
        self.state = InitiatorState::SentAuth;
        self.send(now, msg, true);
    }

    /// Main Mode message 6 (HDR*, IDir, HASH_R | CERT*, SIG_R): Phase 1 is complete.
    fn on_auth(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let (Some(chosen), Some(Phase1::MainAuth(st))) = (self.chosen, &self.phase1) else {
            return;
        };
        let signatures = chosen.auth == AuthMethod::RsaSignature;
        let Ok((m, proof, expect)) = st.open(&self.phase1_sa(chosen), hdr, body, signatures) else {
            return;
        };
        let authentic = if signatures {
            let ident = Identification::parse(&proof.id_b).ok();
            match (&self.cfg.ca, proof.certs.split_first(), ident) {
                (Some(ca), Some((leaf, rest)), Some(ident)) => {
                    let rest: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
                    ca.verify(leaf, &rest, self.cfg.unix_time).is_ok_and(|p| {
                        p.matches_id(&ident) && p.verify_hash_signature(&expect, &proof.proof)
                    })
                }
                _ => false,
            }
        } else {
            hash_eq(&expect, &proof.proof)
        };
        if !authentic {
            self.close_locally();
            return;
        }
        let Some(Phase1::MainAuth(st)) = self.phase1.take() else {
            return;
        };
        let (keys, _) = st.into_keys();
        self.phase1_done(now, keys, m.last_block.unwrap_or_default());
    }

    /// Aggressive Mode message 2 → message 3 (HASH_I and NAT-D, encrypted like strongSwan).
    fn on_aggressive(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Ok(chain) = parse_chain(hdr.next_payload, body) else {
            return;
        };
        let (Some(chosen), Some(answer), Some(Phase1::Aggressive(st))) = (
            chosen_ike(&chain),
            aggressive::Answer::find(&chain),
            &self.phase1,
        ) else {
            return;
        };
        for v in chain.all_kind(kind::VID) {
            self.vendor.note(v.body);
        }
        self.cky_r = hdr.cky_r;
        let sa = self.phase1_sa(chosen);
        let (keys, msg, iv) = match st.finish(&sa, &answer, &self.cfg.psk, self.nat_t()) {
            Ok(r) => r,
            Err(Message2Error::HashMismatch) => return self.close_locally(),
            Err(Message2Error::Malformed) => return,
        };
        if let Some(nat) = self.nat_from(&sa, &chain) {
            self.nat = nat;
        }
        self.chosen = Some(chosen);
        // RFC 3947 §4: behind a NAT, message 3 already goes to the NAT-T port.
        self.floated = self.nat.any();
        self.send(now, msg, false);
        self.phase1_done(now, keys, iv);
    }

    /// Starts a Quick Mode exchange for the L2TP selectors (also used to rekey).
    pub fn start_quick_mode(&mut self, now: Instant) {
        if self.keys.is_none() {
            return;
        }
        let udp = self.nat.any();
        let v = self.vendor.nat_t.unwrap_or(NatTVariant::Rfc3947);
        self.qm_id = new_msgid(&mut self.rng, |_| false);
        let our_spi = self.rng.next_u32() | 0x1000;
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
        let selector = |ip| Identification::address(ip, 17, self.cfg.l2tp_port).emit();
        let offer = Offer {
            transforms,
            pfs: self.cfg.esp.first().and_then(|t| t.group),
            ids: Some((
                selector(self.cfg.local.ip()),
                selector(self.cfg.remote.ip()),
            )),
            nat_oa: udp.then(|| (v, self.cfg.local.ip(), self.cfg.remote.ip())),
        };
        let Some(p) = Protection::of(self.keys.as_ref(), &self.iv, (self.cky_i, self.cky_r)) else {
            return;
        };
        let Ok((qm, msg)) = quick_mode::Initiator::start(
            &mut self.rng,
            &p,
            (self.qm_id, our_spi),
            QUICK_NONCE_LEN,
            offer,
        ) else {
            return;
        };
        self.quick = Some(qm);
        self.state = InitiatorState::SentQuick;
        self.send(now, msg, true);
    }

    /// Quick Mode message 2 → message 3 and the ESP SAs.
    fn on_quick(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let (Some(p), Some(qm)) = (
            Protection::of(self.keys.as_ref(), &self.iv, (self.cky_i, self.cky_r)),
            self.quick.as_ref(),
        ) else {
            return;
        };
        let Ok(m) = qm.open_answer(&p, hdr, body) else {
            return;
        };
        let Ok(chain) = m.payloads() else { return };
        let Some(a) = quick_mode::Initiator::answer(&chain) else {
            return;
        };
        let pfs = match (qm.has_pfs(), chain.find_kind(kind::KE)) {
            (true, Some(ke)) => match qm.pfs_secret(ke.body) {
                Some(g) => Some(g),
                None => return,
            },
            _ => None,
        };
        for n in chain.all_kind(kind::N) {
            if let Ok(n) = Notify::parse(n.body) {
                self.events.push(InitiatorEvent::Notified(n.code));
            }
        }
        let Ok(msg) = qm.finish(&p, a.nr, m.last_block.as_deref().unwrap_or_default()) else {
            return;
        };
        let len = a.transform.keymat_len();
        let (inbound, outbound) = qm.keymat(p.keys, pfs.as_ref(), a.nr, a.peer_spi, len);
        let our_spi = qm.our_spi;
        self.our_spi = Some(our_spi);
        self.out_spi = Some(a.peer_spi);
        self.state = InitiatorState::Established;
        self.next_retransmit = None;
        self.send(now, msg, false);
        self.child_up(a.transform, (our_spi, inbound), (a.peer_spi, outbound));
    }

    /// A new pair of ESP SAs.
    fn child_up(
        &mut self,
        transform: EspTransform,
        (in_spi, inbound): (u32, crate::keys::SecretBytes),
        (out_spi, outbound): (u32, crate::keys::SecretBytes),
    ) {
        self.events.push(InitiatorEvent::ChildUp {
            transform,
            inbound: ChildKeys {
                spi: in_spi,
                keymat: inbound,
            },
            outbound: ChildKeys {
                spi: out_spi,
                keymat: outbound,
            },
            udp_encap: self.nat.any(),
        });
    }

    /// The responder's own Quick Mode (its rekey, RFC 2409 §5.5): message 1 → message 2;
    /// message 3 → the new pair.
    fn on_peer_quick(&mut self, now: Instant, hdr: &Header, body: &[u8]) {
        let Some(p) = Protection::of(self.keys.as_ref(), &self.iv, (self.cky_i, self.cky_r)) else {
            return;
        };
        let msgid = hdr.message_id;
        if let Some(pq) = self.peer_qm.as_ref().filter(|q| q.qm.msgid == msgid) {
            if pq.rx1 == body {
                let out = pq.last_tx.clone();
                return self.send(now, out, false);
            }
            if pq.qm.check_hash3(&p, hdr, body).is_err() {
                return;
            }
            let (inbound, outbound) = pq.qm.keymat(p.keys);
            let (transform, in_spi, out_spi) = (pq.qm.transform, pq.qm.our_spi, pq.qm.peer_spi);
            self.peer_qm = None;
            self.our_spi = Some(in_spi);
            self.out_spi = Some(out_spi);
            return self.child_up(transform, (in_spi, inbound), (out_spi, outbound));
        }
        let Ok(m) = p.open_first(hdr, body) else {
            return;
        };
        let Ok(chain) = m.payloads() else { return };
        let (Some(ni), Some(sa)) = (chain.find_kind(kind::NONCE), chain.find_kind(kind::SA)) else {
            return;
        };
        let Ok(sa) = SaPayload::parse(sa.body) else {
            return;
        };
        let Some(prop) = sa.proposals.first() else {
            return;
        };
        let Some((t, Ok(et))) = prop
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
        let Ok(peer_spi) = <[u8; 4]>::try_from(prop.spi.as_slice()).map(u32::from_be_bytes) else {
            return;
        };
        let Some((ke_pub, pfs_gxy)) =
            quick_mode::pfs_answer(&mut self.rng, et.group, chain.find_kind(kind::KE))
        else {
            return;
        };
        let our_spi = self.rng.next_u32() | 0x1000;
        let nr = new_nonce(&mut self.rng, QUICK_NONCE_LEN);
        let mut rest = ChainBuilder::new();
        rest.push(kind::SA, &quick_mode::chosen_sa(prop, t, our_spi))
            .push(kind::NONCE, &nr);
        if let Some(k) = &ke_pub {
            rest.push(kind::KE, k);
        }
        for id in chain.all_kind(kind::ID) {
            rest.push(kind::ID, id.body);
        }
        let req = Request {
            msgid,
            ni: ni.body,
            peer_spi,
            transform: et,
            iv: m.last_block.as_deref().unwrap_or_default(),
        };
        let Ok((qm, msg)) = quick_mode::Responder::answer(&p, req, (our_spi, nr), pfs_gxy, rest)
        else {
            return;
        };
        self.peer_qm = Some(PeerQuick {
            qm,
            last_tx: msg.clone(),
            rx1: body.to_vec(),
        });
        self.send(now, msg, false);
    }

    /// An Informational message: errors before Phase 1 (in clear), then DPD, notifies and
    /// DELETEs (RFC 2409 §5.7).
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
        let Some(Ok(m)) = Protection::of(self.keys.as_ref(), &self.iv, (self.cky_i, self.cky_r))
            .map(|p| p.open_first(hdr, body))
        else {
            return;
        };
        let Ok(chain) = m.payloads() else { return };
        let mut acks = Vec::new();
        for n in chain.all_kind(kind::N) {
            let Ok(n) = Notify::parse(n.body) else {
                continue;
            };
            if n.code == code::R_U_THERE {
                acks.push(r_u_there_ack(n));
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
        if self.keys.is_none() {
            return;
        }
        let msgid = self.rng.next_u32() | 1;
        let mut rest = ChainBuilder::new();
        fill(&mut rest);
        let Some(msg) = Protection::of(self.keys.as_ref(), &self.iv, (self.cky_i, self.cky_r))
            .and_then(|p| p.informational(msgid, rest))
        else {
            return;
        };
        self.send(now, msg, false);
    }

    /// Sends R-U-THERE (RFC 3706) with `seq`.
    pub fn send_dpd(&mut self, now: Instant, seq: u32) {
        let n = r_u_there((self.cky_i, self.cky_r), seq);
        self.send_info(now, |c| {
            c.push(kind::N, &n.emit());
        });
    }

    /// Deletes the ESP SA and the IKE SA (RFC 2408 §3.15).
    pub fn delete(&mut self, now: Instant) {
        if let Some(spi) = self.our_spi {
            let d = delete_esp(spi);
            self.send_info(now, |c| {
                c.push(kind::D, &d.emit());
            });
        }
        let d = delete_isakmp((self.cky_i, self.cky_r));
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
