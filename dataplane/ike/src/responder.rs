//! The IKEv1 responder: Main Mode with pre-shared keys (RFC 2409 §5.4), Quick Mode for
//! transport-mode ESP protecting L2TP (§5.5), Informational exchanges (§5.7: DELETE,
//! INITIAL-CONTACT, notify errors), DPD (RFC 3706) and NAT-T (RFC 3947).
//!
//! State is keyed by our responder cookie, and every IKE SA remembers the client's address
//! *and port*, so any number of clients behind one NAT get their own IKE SA and ESP SAs. An
//! IKE SA follows its client when an authenticated message arrives from a new address (the
//! float to UDP 4500, or a NAT rebinding).
//!
//! Sans-IO: [`Responder::handle_input`] takes a UDP payload exactly as received on port 500 or
//! on the NAT-T port (with its non-ESP marker), [`Responder::poll_transmit`] yields UDP
//! payloads exactly as to be sent, [`Responder::poll_event`] the SA changes the data plane
//! must apply, and [`Responder::poll_timeout`] / [`Responder::handle_timeout`] drive timers.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::dh::KeyPair;
use crate::header::{ExchangeType, Header};
use crate::identity::{Identification, emit_nat_oa};
use crate::keys::{
    AuthHashInput, KeymatInput, Phase1Input, Phase1Keys, SecretBytes, SkeyidInput, auth_hash,
    derive_phase1, phase1_iv, phase2_iv, quick_mode_keymat,
};
use crate::message::{Message, PayloadsExt, after_hash, header, seal_encrypted, seal_plain};
use crate::natt::{NatDetection, NatState, NatTVariant, PeerVendor, nat_d, vid};
use crate::notify::{Delete, Notify, code};
use crate::payload::{ChainBuilder, RawPayload, kind};
use crate::policy::Config;
use crate::sa::{
    AuthMethod, EspTransform, IkeTransform, Lifetime, SaPayload, encode_attributes,
    esp_lifetime_attributes, protocol,
};

mod own_main;
mod pressure;

pub use pressure::SaChange;

/// Identifies one IKE SA of a responder (derived from our cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

/// A UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port to send from (500 or the NAT-T port).
    pub local: SocketAddr,
    /// The client's address and port.
    pub remote: SocketAddr,
    /// The UDP payload (with the non-ESP marker when sent on the NAT-T port).
    pub payload: Vec<u8>,
}

/// Keys of one direction of an ESP SA.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct ChildKeys {
    /// SPI (inbound: ours; outbound: the client's).
    pub spi: u32,
    /// KEYMAT: encryption key then integrity key (RFC 2409 §5.5).
    pub keymat: SecretBytes,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChildKeys {{ spi: {:#010x}, keymat: <redacted> }}",
            self.spi
        )
    }
}

/// A negotiated pair of ESP SAs in transport mode.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
pub struct ChildSa {
    /// The IKE SA it was negotiated under.
    pub ike: IkeSaId,
    /// The client's outer address and port (where UDP-encapsulated ESP goes).
    pub peer: SocketAddr,
    /// Our address and port.
    pub local: SocketAddr,
    /// UDP encapsulation (RFC 3948) rather than raw IP protocol 50.
    pub udp_encap: bool,
    /// The negotiated transform.
    pub transform: EspTransform,
    /// Our inbound SA.
    pub inbound: ChildKeys,
    /// Our outbound SA.
    pub outbound: ChildKeys,
    /// The client's address from its Quick Mode ID (its private address behind NAT).
    pub client_addr: Option<IpAddr>,
    /// Lifetime in effect.
    pub lifetime: Duration,
    /// Kilobyte lifetime in effect.
    pub lifetime_kb: Option<u64>,
    /// From the Quick Mode's first message to its completion (Phase 2 setup time).
    pub setup: Duration,
}

/// Why an SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The client sent a DELETE.
    DeletedByPeer,
    /// Its lifetime ran out.
    Expired,
    /// DPD found the client dead.
    DeadPeer,
    /// INITIAL-CONTACT from the same client identity replaced it.
    Replaced,
    /// The responder is shutting down or the SA was closed locally.
    Closed,
    /// Main Mode did not complete in time.
    HalfOpenTimeout,
    /// A newer IKE SA of the same client took over (its ESP SAs moved there).
    Rekeyed,
}

/// What the data plane must act on.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
pub enum Event {
    /// Main Mode completed.
    IkeSaUp {
        /// The SA.
        id: IkeSaId,
        /// Client address and port.
        peer: SocketAddr,
        /// Our address and port.
        local: SocketAddr,
        /// The client's Phase 1 identity, printable.
        identity: String,
        /// NAT situation as the client will see it.
        nat: NatState,
        /// The negotiated Phase 1 transform.
        transform: IkeTransform,
        /// From the exchange's first message to its completion (Phase 1 setup time).
        setup: Duration,
    },
    /// Quick Mode completed: install both ESP SAs.
    ChildSaUp(Box<ChildSa>),
    /// Remove these ESP SAs.
    ChildSaDown {
        /// The IKE SA.
        ike: IkeSaId,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// Our outbound SPI.
        outbound_spi: u32,
        /// Why.
        reason: DownReason,
    },
    /// The IKE SA is gone (its ESP SAs have their own `ChildSaDown` first).
    IkeSaDown {
        /// The SA.
        id: IkeSaId,
        /// Client address and port.
        peer: SocketAddr,
        /// Why.
        reason: DownReason,
    },
    /// An ESP SA pair now belongs to another IKE SA of the same client (Phase 1 was
    /// rekeyed: RFC 2409 ESP SAs outlive the ISAKMP SA they were negotiated under).
    ChildSaMoved {
        /// The IKE SA it belonged to.
        from: IkeSaId,
        /// The IKE SA it belongs to now.
        to: IkeSaId,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// Our outbound SPI.
        outbound_spi: u32,
    },
    /// The client's address or port changed (authenticated): move its ESP SAs.
    PeerMoved {
        /// The SA.
        id: IkeSaId,
        /// New client address and port.
        peer: SocketAddr,
        /// Our address and port it now talks to.
        local: SocketAddr,
    },
    /// Authentication failed (wrong pre-shared key or hash).
    AuthFailed {
        /// Client address and port.
        peer: SocketAddr,
        /// What failed.
        reason: String,
    },
}

/// Why a datagram was dropped (each has a counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Header or payloads failed to parse.
    Malformed,
    /// Cookies match no SA.
    UnknownSa,
    /// A message the SA's state does not expect.
    Unexpected,
    /// Too many half-open SAs from this address, or in total, or SAs for this client.
    Limit,
    /// No acceptable proposal.
    NoProposal,
    /// Aggressive Mode (not enabled).
    AggressiveRefused,
    /// Hash or pre-shared key mismatch.
    AuthFailed,
    /// A replayed or retransmitted message we had already answered too often.
    Replay,
    /// A Quick Mode selector we do not serve.
    InvalidId,
    /// An unanswered half-open SA was evicted to make room for a new Main Mode (counted per
    /// evicted SA; see [`pressure`]).
    Evicted,
}

impl DropReason {
    /// A metrics label (`ike_` + the reason in snake case).
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "ike_malformed",
            DropReason::UnknownSa => "ike_unknown_sa",
            DropReason::Unexpected => "ike_unexpected",
            DropReason::Limit => "ike_limit",
            DropReason::NoProposal => "ike_no_proposal",
            DropReason::AggressiveRefused => "ike_aggressive_refused",
            DropReason::AuthFailed => "ike_auth_failed",
            DropReason::Replay => "ike_replay",
            DropReason::InvalidId => "ike_invalid_id",
            DropReason::Evicted => "ike_half_open_evicted",
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Datagrams accepted.
    pub rx: u64,
    /// Datagrams queued for sending.
    pub tx: u64,
    /// Replies resent because the client retransmitted.
    pub retransmits: u64,
    /// Drops by reason.
    pub drops: std::collections::BTreeMap<DropReason, u64>,
    /// IKE SAs established.
    pub ike_sas_established: u64,
    /// ESP SA pairs established.
    pub child_sas_established: u64,
    /// Quick Modes we started to rekey an ESP SA pair.
    pub rekeys_started: u64,
    /// Of those, completed.
    pub rekeys_completed: u64,
    /// Main Modes we started to replace an IKE SA before it expires.
    pub ike_rekeys_started: u64,
    /// Of those, completed.
    pub ike_rekeys_completed: u64,
}

/// Largest number of queued datagrams/events before new ones are dropped.
const MAX_QUEUE: usize = 8192;
/// Resends of one reply to retransmitted requests.
const MAX_RETRANSMITS: u8 = 8;
/// Quick Mode exchanges not completed within this are dropped.
const QUICK_MODE_TIMEOUT: Duration = Duration::from_secs(30);
/// First resend interval of our own Quick Mode message 1 (doubling).
const OWN_QUICK_RETRANSMIT: Duration = Duration::from_secs(2);
/// Resends of our own Quick Mode message 1 before the rekey is given up.
const MAX_OWN_RETRANSMITS: u8 = 3;
/// Message IDs remembered per SA to refuse replays.
const DONE_MSGIDS: usize = 64;
/// RFC 2407 §4.5: default lifetime when none is proposed.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(28800);
/// Nonce length we send.
const NONCE_LEN: usize = 32;
/// Certificate encoding 4, X.509 Certificate - Signature (RFC 2408 §3.9).
const CERT_X509_SIGNATURE: u8 = 4;
/// Certificate Request payloads we send at most (one per CA).
const MAX_CERT_REQUESTS: usize = 8;
/// CERT payloads accepted from a client (its leaf and intermediates).
const MAX_CLIENT_CERTS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitKe,
    AwaitAuth,
    /// Our own Main Mode (a Phase 1 rekey): message 1 sent.
    SentSa,
    /// Message 3 sent.
    SentKe,
    /// Message 5 sent.
    SentAuth,
    Established,
}

#[cfg_attr(fuzzing, derive(Clone))]
struct Quick {
    msgid: u32,
    iv: Vec<u8>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    transform: EspTransform,
    peer_spi: u32,
    our_spi: u32,
    pfs_gxy: Option<SecretBytes>,
    /// The selectors as the client sent them (IDci, IDcr): its address, and our own rekey.
    ids: Option<(Identification, Identification)>,
    lifetime: Duration,
    lifetime_kb: Option<u64>,
    last_rx: [u8; 20],
    last_tx: Vec<u8>,
    retransmits: u8,
    deadline: Instant,
    /// When its first message arrived.
    started: Instant,
}

#[cfg_attr(fuzzing, derive(Clone))]
struct Child {
    inbound_spi: u32,
    outbound_spi: u32,
    expires: Instant,
    /// When we replace it with our own Quick Mode unless the client has by then.
    rekey_at: Instant,
    /// A newer pair exists, or our Quick Mode to make one is running.
    rekeying: bool,
    transform: EspTransform,
    ids: Option<(Identification, Identification)>,
    lifetime: Duration,
    lifetime_kb: Option<u64>,
}

impl Child {
    /// The client's address from its Quick Mode ID (checked to be a single address).
    fn client_addr(&self) -> Option<IpAddr> {
        self.ids
            .as_ref()
            .and_then(|(client, _)| client.single_address())
    }
}

/// A Quick Mode we started to rekey an ESP SA pair (RFC 2409 §5.5, us as initiator).
#[cfg_attr(fuzzing, derive(Clone))]
struct OwnQuick {
    msgid: u32,
    /// IV for the client's reply (the last block of our message 1), then of our message 3.
    iv: Vec<u8>,
    /// Our nonce (Ni_b) and, once answered, the client's (Nr_b).
    ni: Vec<u8>,
    our_spi: u32,
    dh: Option<KeyPair>,
    /// The pair it replaces (our inbound SPI).
    replaces: u32,
    last_tx: Vec<u8>,
    /// Digest of the client's message 2 once answered (a repeat gets message 3 again).
    answered: Option<[u8; 20]>,
    retransmits: u8,
    next_retransmit: Instant,
    deadline: Instant,
    /// When we sent its first message.
    started: Instant,
}

#[cfg_attr(fuzzing, derive(Clone))]
struct IkeSa {
    id: IkeSaId,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    peer: SocketAddr,
    local: SocketAddr,
    phase: Phase,
    /// Main Mode (identity protection) or Aggressive Mode.
    exchange: ExchangeType,
    vendor: PeerVendor,
    transform: IkeTransform,
    sai_b: Vec<u8>,
    /// The client's IDii payload body (Aggressive Mode: HASH_I covers it, message 3).
    idi_b: Vec<u8>,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    ni: Vec<u8>,
    keys: Option<Phase1Keys>,
    /// CBC IV of the Phase 1 exchange; after Main Mode the last Phase 1 block.
    iv: Vec<u8>,
    /// NAT situation as the client sees it (decides UDP encapsulation).
    nat: NatState,
    /// We really are behind NAT (decides keep-alives).
    local_behind_nat: bool,
    nat_t: Option<NatTVariant>,
    last_rx: [u8; 20],
    last_tx: Vec<u8>,
    retransmits: u8,
    /// Half-open deadline, then lifetime expiry.
    deadline: Instant,
    identity: Option<Identification>,
    /// The client certificate's subject, with signature authentication (for logs).
    peer_subject: Option<String>,
    quick: Vec<Quick>,
    own_quick: Vec<OwnQuick>,
    children: Vec<Child>,
    done_msgids: VecDeque<u32>,
    last_activity: Instant,
    dpd_seq: u32,
    dpd_outstanding: bool,
    next_keepalive: Option<Instant>,
    /// The instant under which the SA is filed in the timer index.
    timer: Option<Instant>,
    /// Its key in `by_initiator` while Main Mode message 1 may still be retransmitted.
    first_message: Option<(SocketAddr, [u8; 8])>,
    /// We initiated this Main Mode (our cookie is CKY-I and names the SA).
    own: Option<own_main::OwnMain>,
    /// Lifetime in effect once established.
    lifetime: Duration,
    /// When we start our own Main Mode to replace it, unless the client has by then.
    rekey_at: Option<Instant>,
    /// A newer IKE SA of the same client exists, or our Main Mode to make one is running.
    superseded: bool,
    /// When the exchange's first message arrived (or we sent ours).
    started: Instant,
}

/// The responder endpoint: every IKE SA of one gateway.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct Responder {
    config: Config,
    rng: ChaCha20Rng,
    sas: HashMap<IkeSaId, IkeSa>,
    /// (client address and port, CKY-I) → SA, to answer retransmitted first messages.
    by_initiator: HashMap<(SocketAddr, [u8; 8]), IkeSaId>,
    half_open_by_ip: HashMap<IpAddr, usize>,
    half_open: usize,
    /// Half-open SAs whose client has not yet sent message 3, oldest first (evicted first).
    unproven: BTreeSet<(Instant, IkeSaId)>,
    /// Changes to the SA set, while the caller tracks them.
    sa_journal: Option<VecDeque<SaChange>>,
    per_client: HashMap<SocketAddr, usize>,
    timers: BTreeSet<(Instant, IkeSaId)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    /// Wall-clock seconds since the epoch, for certificate validity (set by the caller).
    unix_time: u64,
}

impl IkeSa {
    /// A half-open SA: cookies (CKY-I, CKY-R), (peer, local), the Phase 1 transform and the
    /// SA payload body that HASH_I/HASH_R cover; every other field starts empty.
    fn new(
        id: IkeSaId,
        (cky_i, cky_r): ([u8; 8], [u8; 8]),
        (peer, local): (SocketAddr, SocketAddr),
        transform: IkeTransform,
        sai_b: Vec<u8>,
        now: Instant,
        deadline: Instant,
    ) -> IkeSa {
        IkeSa {
            id,
            cky_i,
            cky_r,
            peer,
            local,
            phase: Phase::AwaitKe,
            exchange: ExchangeType::IdentityProtection,
            vendor: PeerVendor::default(),
            transform,
            sai_b,
            idi_b: Vec::new(),
            gxi: Vec::new(),
            gxr: Vec::new(),
            ni: Vec::new(),
            keys: None,
            iv: Vec::new(),
            nat: NatState::default(),
            local_behind_nat: false,
            nat_t: None,
            last_rx: [0; 20],
            last_tx: Vec::new(),
            retransmits: 0,
            deadline,
            identity: None,
            peer_subject: None,
            quick: Vec::new(),
            own_quick: Vec::new(),
            children: Vec::new(),
            done_msgids: VecDeque::new(),
            last_activity: now,
            dpd_seq: 0,
            dpd_outstanding: false,
            next_keepalive: None,
            timer: None,
            first_message: None,
            own: None,
            lifetime: DEFAULT_LIFETIME,
            rekey_at: None,
            superseded: false,
            started: now,
        }
    }

    /// Counted against the half-open limits: a client's Main Mode not yet complete (our
    /// own Main Modes are not).
    fn counts_half_open(&self) -> bool {
        self.own.is_none() && self.phase != Phase::Established
    }
}

/// Our ID payload body. With signatures it is our certificate's subject (ID_DER_ASN1_DN),
/// which is what Windows and strongSwan match against the certificate they are sent; else
/// our address.
fn own_id(credentials: Option<&crate::cert::Credentials>, local: IpAddr) -> Vec<u8> {
    match credentials {
        Some(c) => Identification {
            id_type: crate::identity::id_type::DER_ASN1_DN,
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
fn id_and_proof(
    rng: &mut ChaCha20Rng,
    credentials: Option<&crate::cert::Credentials>,
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

/// The X.509 certificates (encoding 4) of a message's CERT payloads, at most
/// `MAX_CLIENT_CERTS`; leaf first by convention, but any order works.
fn x509_certs(chain: &[RawPayload<'_>]) -> Vec<Vec<u8>> {
    chain
        .all_kind(kind::CERT)
        .iter()
        .filter_map(|c| match c.body.split_first() {
            Some((&CERT_X509_SIGNATURE, der)) => Some(der.to_vec()),
            _ => None,
        })
        .take(MAX_CLIENT_CERTS)
        .collect()
}

fn digest(b: &[u8]) -> [u8; 20] {
    Sha1::digest(b).into()
}

/// Strips the non-ESP marker of a message received on the NAT-T port.
fn strip_marker(on_natt: bool, datagram: &[u8]) -> Option<&[u8]> {
    if !on_natt {
        return Some(datagram);
    }
    match datagram.split_first_chunk::<4>() {
        Some((&[0, 0, 0, 0], rest)) => Some(rest),
        _ => None,
    }
}

impl Responder {
    /// A responder with `config`; `seed` feeds the CSPRNG for cookies, nonces, DH secrets and
    /// SPIs (the daemon passes OS randomness).
    pub fn new(config: Config, seed: [u8; 32]) -> Responder {
        Responder {
            config,
            rng: ChaCha20Rng::from_seed(seed),
            sas: HashMap::new(),
            by_initiator: HashMap::new(),
            half_open_by_ip: HashMap::new(),
            half_open: 0,
            unproven: BTreeSet::new(),
            sa_journal: None,
            per_client: HashMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            unix_time: 0,
        }
    }

    /// The wall clock (seconds since the epoch) that client certificates are checked
    /// against; call before [`Responder::handle_input`] (the engine reads no clock).
    pub fn set_unix_time(&mut self, secs: u64) {
        self.unix_time = secs;
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration (new PSK, algorithms, limits): applies to new exchanges.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// IKE SAs (half-open and established).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Half-open IKE SAs.
    pub fn half_open_count(&self) -> usize {
        self.half_open
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Responder::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Records traffic under an IKE SA's ESP SAs (postpones DPD).
    pub fn note_activity(&mut self, id: IkeSaId, now: Instant) {
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.last_activity = now;
            sa.dpd_outstanding = false;
        }
    }

    fn discard(&mut self, why: DropReason) {
        *self.stats.drops.entry(why).or_default() += 1;
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
        if self.transmits.len() >= MAX_QUEUE {
            return;
        }
        let mut payload = Vec::with_capacity(msg.len() + 4);
        if local.port() == self.config.natt_port {
            payload.extend_from_slice(&[0; 4]);
        }
        payload.extend_from_slice(msg);
        self.stats.tx += 1;
        self.transmits.push_back(Transmit {
            local,
            remote,
            payload,
        });
    }

    fn event(&mut self, e: Event) {
        if self.events.len() < MAX_QUEUE {
            self.events.push_back(e);
        }
    }

    /// Processes one UDP payload received on `local` from `remote`.
    pub fn handle_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) {
        let on_natt = local.port() == self.config.natt_port;
        let Some(msg) = strip_marker(on_natt, datagram) else {
            return self.discard(DropReason::Malformed);
        };
        let Ok((hdr, body)) = Header::parse(msg) else {
            return self.discard(DropReason::Malformed);
        };
        self.stats.rx += 1;
        if hdr.cky_r == [0; 8] {
            return self.first_message(now, local, remote, &hdr, body, msg);
        }
        let Some((id, sa)) = self.lookup(&hdr) else {
            return self.discard(DropReason::UnknownSa);
        };
        let phase1 = sa.exchange;
        match (hdr.exchange, sa.phase) {
            (x, _) if x == phase1 && sa.last_rx == digest(msg) => {
                if x == ExchangeType::Aggressive {
                    // Message 3 again: it has no answer.
                    self.discard(DropReason::Replay);
                } else {
                    self.retransmit(id);
                }
            }
            (ExchangeType::IdentityProtection, Phase::AwaitKe)
                if phase1 == ExchangeType::IdentityProtection && !hdr.encrypted() =>
            {
                self.main_mode_ke(now, id, remote, &hdr, body, msg);
            }
            (ExchangeType::IdentityProtection, Phase::AwaitAuth)
                if phase1 == ExchangeType::IdentityProtection && hdr.encrypted() =>
            {
                self.main_mode_auth(now, id, local, remote, &hdr, body, msg);
            }
            (ExchangeType::Aggressive, Phase::AwaitAuth) if phase1 == ExchangeType::Aggressive => {
                self.aggressive_auth(now, id, local, remote, &hdr, body, msg);
            }
            (ExchangeType::IdentityProtection, Phase::SentSa) if !hdr.encrypted() => {
                self.own_main_sa(now, id, remote, &hdr, body, msg);
            }
            (ExchangeType::IdentityProtection, Phase::SentKe) if !hdr.encrypted() => {
                self.own_main_ke(now, id, remote, &hdr, body, msg);
            }
            (ExchangeType::IdentityProtection, Phase::SentAuth) if hdr.encrypted() => {
                self.own_main_auth(now, id, local, remote, &hdr, body, msg);
            }
            (ExchangeType::QuickMode, Phase::Established)
                if hdr.encrypted() && hdr.message_id != 0 =>
            {
                self.quick_mode(now, id, local, remote, &hdr, body, msg);
            }
            (ExchangeType::Informational, Phase::Established) if hdr.encrypted() => {
                self.informational(now, id, local, remote, &hdr, body);
            }
            _ => self.discard(DropReason::Unexpected),
        }
    }

    /// The SA a message belongs to: ours as responder are named by CKY-R, our own Main
    /// Modes (Phase 1 rekeys) by CKY-I (the client's cookie is not known before message 2).
    fn lookup(&self, hdr: &Header) -> Option<(IkeSaId, &IkeSa)> {
        let by_r = IkeSaId(u64::from_be_bytes(hdr.cky_r));
        if let Some(sa) = self.sas.get(&by_r)
            && sa.own.is_none()
            && sa.cky_i == hdr.cky_i
        {
            return Some((by_r, sa));
        }
        let by_i = IkeSaId(u64::from_be_bytes(hdr.cky_i));
        self.sas
            .get(&by_i)
            .filter(|sa| sa.own.is_some() && (sa.cky_r == hdr.cky_r || sa.phase == Phase::SentSa))
            .map(|sa| (by_i, sa))
    }

    /// A random cookie naming no SA of ours.
    fn fresh_cookie(&mut self) -> [u8; 8] {
        loop {
            let c: [u8; 8] = self.rng.next_u64().to_be_bytes();
            if c != [0; 8] && !self.sas.contains_key(&IkeSaId(u64::from_be_bytes(c))) {
                break c;
            }
        }
    }

    fn retransmit(&mut self, id: IkeSaId) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.retransmits >= MAX_RETRANSMITS || sa.last_tx.is_empty() {
            return self.discard(DropReason::Replay);
        }
        sa.retransmits += 1;
        let (local, peer, msg) = (sa.local, sa.peer, sa.last_tx.clone());
        self.stats.retransmits += 1;
        self.send(local, peer, &msg);
    }

    /// An unprotected Informational notify (RFC 2408 §5: errors before keys exist).
    fn notify_plain(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        cky_i: [u8; 8],
        cky_r: [u8; 8],
        c: u16,
    ) {
        let n = Notify {
            protocol: protocol::ISAKMP,
            code: c,
            spi: [cky_i, cky_r].concat(),
            data: vec![],
        };
        let mut chain = ChainBuilder::new();
        chain.push(kind::N, &n.emit());
        let msg = seal_plain(header(cky_i, cky_r, ExchangeType::Informational, 0), &chain);
        self.send(local, remote, &msg);
    }

    /// Main Mode message 1 (HDR, SA, VID*) → message 2; Aggressive Mode message 1
    /// (HDR, SA, KE, Ni, IDii, VID*) → message 2 when the configuration allows it.
    fn first_message(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        match hdr.exchange {
            ExchangeType::IdentityProtection => {}
            ExchangeType::Aggressive if self.config.allow_aggressive => {}
            ExchangeType::Aggressive => {
                self.discard(DropReason::AggressiveRefused);
                return self.notify_plain(
                    local,
                    remote,
                    hdr.cky_i,
                    [0; 8],
                    code::INVALID_EXCHANGE_TYPE,
                );
            }
            _ => return self.discard(DropReason::Unexpected),
        }
        if hdr.message_id != 0 || hdr.encrypted() {
            return self.discard(DropReason::Malformed);
        }
        if let Some(&id) = self.by_initiator.get(&(remote, hdr.cky_i)) {
            if self
                .sas
                .get(&id)
                .is_some_and(|sa| sa.last_rx == digest(msg))
            {
                return self.retransmit(id);
            }
            return self.discard(DropReason::Unexpected);
        }
        let per_ip = self.half_open_by_ip.get(&remote.ip()).copied().unwrap_or(0);
        let per_client = self.per_client.get(&remote).copied().unwrap_or(0);
        if per_ip >= self.config.max_half_open_per_ip
            || per_client >= self.config.max_ike_sas_per_client
        {
            return self.discard(DropReason::Limit);
        }
        let Ok(chain) = crate::payload::parse_chain(hdr.next_payload, body) else {
            return self.discard(DropReason::Malformed);
        };
        let Some(sa_p) = chain.first().filter(|p| p.kind == kind::SA) else {
            return self.discard(DropReason::Malformed);
        };
        let Ok(sa_payload) = SaPayload::parse(sa_p.body) else {
            return self.discard(DropReason::Malformed);
        };
        let mut vendor = PeerVendor::default();
        for v in chain.all_kind(kind::VID) {
            vendor.note(v.body);
        }
        let Some(choice) = self.config.choose_ike(&sa_payload) else {
            self.discard(DropReason::NoProposal);
            return self.notify_plain(local, remote, hdr.cky_i, [0; 8], code::NO_PROPOSAL_CHOSEN);
        };
        // A full table makes room by evicting the oldest unanswered message 1 (see
        // `pressure`); only a table of proven exchanges refuses the newcomer.
        while self.half_open >= self.config.max_half_open
            || self.sas.len() >= self.config.max_ike_sas
        {
            if !self.evict_unproven() {
                return self.discard(DropReason::Limit);
            }
        }
        let cky_r = self.fresh_cookie();
        let id = IkeSaId(u64::from_be_bytes(cky_r));
        let mut sa = IkeSa::new(
            id,
            (hdr.cky_i, cky_r),
            (remote, local),
            choice.transform,
            sa_p.body.to_vec(),
            now,
            now + self.config.half_open_timeout,
        );
        sa.dpd_seq = self.rng.next_u32() >> 1;
        sa.exchange = hdr.exchange;
        sa.vendor = vendor;
        sa.nat_t = vendor.nat_t;
        sa.last_rx = digest(msg);
        sa.first_message = Some((remote, hdr.cky_i));
        self.sas.insert(id, sa);
        self.journal(SaChange::Added(id));
        self.mark_unproven(now, id);
        self.by_initiator.insert((remote, hdr.cky_i), id);
        *self.half_open_by_ip.entry(remote.ip()).or_default() += 1;
        self.half_open += 1;
        *self.per_client.entry(remote).or_default() += 1;
        self.reschedule(id);
        let out = if hdr.exchange == ExchangeType::Aggressive {
            match self.aggressive_reply(id, &chain, &choice.reply.emit()) {
                Ok(out) => out,
                Err(why) => {
                    self.discard(why);
                    return self.remove(id, DownReason::Closed, false);
                }
            }
        } else {
            let mut reply = ChainBuilder::new();
            reply.push(kind::SA, &choice.reply.emit());
            vendor_ids(&mut reply, &vendor);
            seal_plain(
                header(hdr.cky_i, cky_r, ExchangeType::IdentityProtection, 0),
                &reply,
            )
        };
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.last_tx = out.clone();
        }
        self.send(local, remote, &out);
    }

    /// Aggressive Mode message 2 (RFC 2409 §5.4): HDR, SA, KE, Nr, IDir, HASH_R, VID*,
    /// NAT-D* (RFC 3947 §3.2). Our NAT-D are honest here: the client's own arrive only in
    /// message 3, so there is nothing to parrot yet.
    fn aggressive_reply(
        &mut self,
        id: IkeSaId,
        chain: &[RawPayload<'_>],
        sa_reply: &[u8],
    ) -> Result<Vec<u8>, DropReason> {
        let (Some(ke), Some(nonce), Some(id_p)) = (
            chain.find_kind(kind::KE),
            chain.find_kind(kind::NONCE),
            chain.find_kind(kind::ID),
        ) else {
            return Err(DropReason::Malformed);
        };
        if !(8..=256).contains(&nonce.body.len()) {
            return Err(DropReason::Malformed);
        }
        let ident = Identification::parse(id_p.body).map_err(|_| DropReason::Malformed)?;
        if self.sas.get(&id).map(|sa| sa.transform.auth) != Some(AuthMethod::PreSharedKey) {
            // Aggressive Mode is offered with pre-shared keys only.
            return Err(DropReason::NoProposal);
        }
        let psk = self.config.psk.clone().ok_or(DropReason::AuthFailed)?;
        let group = self
            .sas
            .get(&id)
            .ok_or(DropReason::UnknownSa)?
            .transform
            .group;
        let dh = KeyPair::generate(group, &mut self.rng);
        let gxy = dh
            .shared_secret(ke.body)
            .map_err(|_| DropReason::Malformed)?;
        let mut nr = vec![0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nr);
        let force_encap = self.config.nat_detection == NatDetection::ParrotForceEncapsulation;
        let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
        let keys = derive_phase1(&Phase1Input {
            hash: sa.transform.hash,
            cipher: sa.transform.cipher,
            auth: SkeyidInput::PreSharedKey(&psk),
            ni: nonce.body,
            nr: &nr,
            gxy: &gxy,
            cky_i: sa.cky_i,
            cky_r: sa.cky_r,
        });
        let idir = Identification::address(sa.local.ip(), 0, 0).emit();
        let hash_r = auth_hash(
            keys.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: dh.public(),
                gx_peer: ke.body,
                cky_self: sa.cky_r,
                cky_peer: sa.cky_i,
                sai_b: &sa.sai_b,
                id_b: &idir,
            },
        );
        let mut reply = ChainBuilder::new();
        reply
            .push(kind::SA, sa_reply)
            .push(kind::KE, dh.public())
            .push(kind::NONCE, &nr)
            .push(kind::ID, &idir)
            .push(kind::HASH, &hash_r);
        vendor_ids(&mut reply, &sa.vendor);
        if let Some(variant) = sa.nat_t {
            let h = sa.transform.hash;
            let peer = if force_encap {
                SocketAddr::new(sa.peer.ip(), !sa.peer.port())
            } else {
                sa.peer
            };
            reply
                .push(variant.nat_d_kind(), &nat_d(h, &sa.cky_i, &sa.cky_r, peer))
                .push(
                    variant.nat_d_kind(),
                    &nat_d(h, &sa.cky_i, &sa.cky_r, sa.local),
                );
        }
        sa.iv = phase1_iv(keys.hash, keys.cipher, ke.body, dh.public());
        sa.gxi = ke.body.to_vec();
        sa.gxr = dh.public().to_vec();
        sa.ni = nonce.body.to_vec();
        sa.idi_b = id_p.body.to_vec();
        sa.identity = Some(ident);
        sa.keys = Some(keys);
        sa.phase = Phase::AwaitAuth;
        Ok(seal_plain(
            header(sa.cky_i, sa.cky_r, ExchangeType::Aggressive, 0),
            &reply,
        ))
    }

    /// Aggressive Mode message 3: HDR[*], HASH_I, NAT-D* — encrypted or not (RFC 2409 §5.4
    /// leaves it open; strongSwan encrypts, others do not).
    #[allow(clippy::too_many_arguments)]
    fn aggressive_auth(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let opened = if hdr.encrypted() {
            Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &sa.iv)
        } else {
            Message::parse_plain(msg)
        };
        let Ok(m) = opened else {
            return self.discard(DropReason::Malformed);
        };
        let Ok(chain) = m.payloads() else {
            return self.discard(DropReason::Malformed);
        };
        let Some(hash_i) = chain.find_kind(kind::HASH) else {
            return self.discard(DropReason::Malformed);
        };
        let expect = auth_hash(
            keys.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &sa.gxi,
                gx_peer: &sa.gxr,
                cky_self: sa.cky_i,
                cky_peer: sa.cky_r,
                sai_b: &sa.sai_b,
                id_b: &sa.idi_b,
            },
        );
        if !bool::from(expect.as_slice().ct_eq(hash_i.body)) {
            let (cky_i, cky_r) = (sa.cky_i, sa.cky_r);
            self.discard(DropReason::AuthFailed);
            self.event(Event::AuthFailed {
                peer: remote,
                reason: "HASH_I mismatch (Aggressive Mode)".into(),
            });
            self.notify_plain(local, remote, cky_i, cky_r, code::INVALID_HASH_INFORMATION);
            return self.remove(id, DownReason::Closed, false);
        }
        let nat = sa
            .nat_t
            .and_then(|v| nat_seen(sa, &chain.all_kind(v.nat_d_kind())));
        let initial_contact = chain
            .all_kind(kind::N)
            .iter()
            .any(|n| Notify::parse(n.body).is_ok_and(|n| n.code == code::INITIAL_CONTACT));
        let detection = self.config.nat_detection;
        let last_block = m.last_block.clone();
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        match nat {
            Some((local_behind, peer_behind)) => {
                sa.local_behind_nat = local_behind;
                sa.nat = shown_nat(detection, local_behind, peer_behind);
            }
            None => sa.nat_t = None,
        }
        if let Some(last) = last_block {
            sa.iv = last;
        }
        sa.last_rx = digest(msg);
        self.move_peer(id, local, remote, false);
        self.phase1_done(now, id, initial_contact, None);
    }

    /// Main Mode message 3 (HDR, KE, Ni, NAT-D*) → message 4.
    fn main_mode_ke(
        &mut self,
        _now: Instant,
        id: IkeSaId,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let Ok(chain) = crate::payload::parse_chain(hdr.next_payload, body) else {
            return self.discard(DropReason::Malformed);
        };
        let (Some(ke), Some(nonce)) = (chain.find_kind(kind::KE), chain.find_kind(kind::NONCE))
        else {
            return self.discard(DropReason::Malformed);
        };
        if !(8..=256).contains(&nonce.body.len()) {
            return self.discard(DropReason::Malformed);
        }
        let Some(sa) = self.sas.get(&id) else { return };
        if remote != sa.peer {
            return self.discard(DropReason::Unexpected);
        }
        let group = sa.transform.group;
        let dh = KeyPair::generate(group, &mut self.rng);
        let Ok(gxy) = dh.shared_secret(ke.body) else {
            return self.discard(DropReason::Malformed);
        };
        let mut nr = vec![0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nr);
        let psk = match sa.transform.auth {
            AuthMethod::PreSharedKey => match self.config.psk.clone() {
                Some(p) => Some(p),
                None => return self.discard(DropReason::AuthFailed),
            },
            AuthMethod::RsaSignature => None,
        };
        // RFC 2409 §5.1: ask for a certificate from one of our CAs (RFC 2408 §3.10).
        let cert_requests: Vec<Vec<u8>> = match (&psk, &self.config.client_ca) {
            (None, Some(ca)) => ca
                .ca_names()
                .into_iter()
                .take(MAX_CERT_REQUESTS)
                .map(|dn| [&[CERT_X509_SIGNATURE][..], &dn].concat())
                .collect(),
            _ => Vec::new(),
        };
        let nat_detection = self.config.nat_detection;
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let keys = derive_phase1(&Phase1Input {
            hash: sa.transform.hash,
            cipher: sa.transform.cipher,
            auth: match &psk {
                Some(p) => SkeyidInput::PreSharedKey(p),
                None => SkeyidInput::Signature,
            },
            ni: nonce.body,
            nr: &nr,
            gxy: &gxy,
            cky_i: sa.cky_i,
            cky_r: sa.cky_r,
        });
        let h = sa.transform.hash;
        let mut reply = ChainBuilder::new();
        reply.push(kind::KE, dh.public()).push(kind::NONCE, &nr);
        for cr in &cert_requests {
            reply.push(kind::CR, cr);
        }
        if let Some(variant) = sa.nat_t {
            let natd = chain.all_kind(variant.nat_d_kind());
            if let (Some((local_behind, peer_behind)), Some(first)) =
                (nat_seen(sa, &natd), natd.first())
            {
                let ours = nat_d(h, &sa.cky_i, &sa.cky_r, sa.local);
                let theirs = nat_d(h, &sa.cky_i, &sa.cky_r, sa.peer);
                sa.local_behind_nat = local_behind;
                let (peer_hash, local_hash) = match nat_detection {
                    NatDetection::Honest => (theirs, ours),
                    NatDetection::Parrot => (theirs, first.body.to_vec()),
                    // Any value that cannot match the client's own: the hash of its address
                    // with the port bits inverted.
                    NatDetection::ParrotForceEncapsulation => (
                        nat_d(
                            h,
                            &sa.cky_i,
                            &sa.cky_r,
                            SocketAddr::new(sa.peer.ip(), !sa.peer.port()),
                        ),
                        first.body.to_vec(),
                    ),
                };
                sa.nat = shown_nat(nat_detection, local_behind, peer_behind);
                reply
                    .push(variant.nat_d_kind(), &peer_hash)
                    .push(variant.nat_d_kind(), &local_hash);
            } else {
                // NAT-T announced but no NAT-D sent: no detection, no encapsulation.
                sa.nat_t = None;
            }
        }
        sa.iv = phase1_iv(h, sa.transform.cipher, ke.body, dh.public());
        sa.gxi = ke.body.to_vec();
        sa.gxr = dh.public().to_vec();
        sa.ni = nonce.body.to_vec();
        sa.keys = Some(keys);
        sa.phase = Phase::AwaitAuth;
        let started = sa.started;
        let out = seal_plain(
            header(sa.cky_i, sa.cky_r, ExchangeType::IdentityProtection, 0),
            &reply,
        );
        sa.last_rx = digest(msg);
        sa.last_tx = out.clone();
        sa.retransmits = 0;
        let (local, peer) = (sa.local, sa.peer);
        self.mark_proven(started, id);
        self.send(local, peer, &out);
    }

    /// Main Mode message 5 (HDR*, IDii, HASH_I) → message 6.
    #[allow(clippy::too_many_arguments)]
    fn main_mode_auth(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let Ok(m) = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &sa.iv) else {
            return self.discard(DropReason::Malformed);
        };
        let signatures = sa.transform.auth == AuthMethod::RsaSignature;
        let parsed = m.payloads().ok().and_then(|chain| {
            let id_p = chain.find_kind(kind::ID)?;
            // HASH_I, or with signatures SIG_I (RFC 2409 §5.1).
            let proof = chain.find_kind(if signatures { kind::SIG } else { kind::HASH })?;
            let ident = Identification::parse(id_p.body).ok()?;
            let initial_contact = chain
                .all_kind(kind::N)
                .iter()
                .any(|n| Notify::parse(n.body).is_ok_and(|n| n.code == code::INITIAL_CONTACT));
            let certs = x509_certs(&chain);
            Some((
                id_p.body.to_vec(),
                proof.body.to_vec(),
                ident,
                initial_contact,
                certs,
            ))
        });
        let Some((idii_b, proof, ident, initial_contact, certs)) = parsed else {
            // Garbage after decryption almost always means the pre-shared keys differ.
            let (cky_i, cky_r) = (sa.cky_i, sa.cky_r);
            self.discard(DropReason::AuthFailed);
            self.event(Event::AuthFailed {
                peer: remote,
                reason: "message 5 did not decrypt (pre-shared key mismatch?)".into(),
            });
            self.notify_plain(local, remote, cky_i, cky_r, code::AUTHENTICATION_FAILED);
            return self.remove(id, DownReason::Closed, false);
        };
        let expect = auth_hash(
            keys.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &sa.gxi,
                gx_peer: &sa.gxr,
                cky_self: sa.cky_i,
                cky_peer: sa.cky_r,
                sai_b: &sa.sai_b,
                id_b: &idii_b,
            },
        );
        let verdict = if signatures {
            self.check_certificate(&certs, &ident, &expect, &proof)
                .map(Some)
                .map_err(|why| (why, code::AUTHENTICATION_FAILED))
        } else if bool::from(expect.as_slice().ct_eq(&proof)) {
            Ok(None)
        } else {
            Err(("HASH_I mismatch".to_owned(), code::INVALID_HASH_INFORMATION))
        };
        let peer_cert = match verdict {
            Ok(p) => p,
            Err((reason, notify)) => {
                let (cky_i, cky_r) = (sa.cky_i, sa.cky_r);
                self.discard(DropReason::AuthFailed);
                self.event(Event::AuthFailed {
                    peer: remote,
                    reason,
                });
                self.notify_plain(local, remote, cky_i, cky_r, notify);
                return self.remove(id, DownReason::Closed, false);
            }
        };
        self.move_peer(id, local, remote, false);
        let credentials = self.config.certificate.clone().filter(|_| signatures);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        sa.peer_subject = peer_cert.map(|p| p.subject_display());
        let Some(keys) = sa.keys.as_ref() else { return };
        let idir = own_id(credentials.as_deref(), sa.local.ip());
        let hash_r = auth_hash(
            keys.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &sa.gxr,
                gx_peer: &sa.gxi,
                cky_self: sa.cky_r,
                cky_peer: sa.cky_i,
                sai_b: &sa.sai_b,
                id_b: &idir,
            },
        );
        let Some(reply) = id_and_proof(&mut self.rng, credentials.as_deref(), &idir, &hash_r)
        else {
            return;
        };
        let last = m.last_block.clone().unwrap_or_default();
        let Ok((out, last_out)) = seal_encrypted(
            header(sa.cky_i, sa.cky_r, ExchangeType::IdentityProtection, 0),
            &reply,
            keys.cipher,
            &keys.enc_key,
            &last,
        ) else {
            return;
        };
        sa.iv = last_out;
        sa.identity = Some(ident);
        sa.last_rx = digest(msg);
        self.phase1_done(now, id, initial_contact, Some(out));
    }

    /// Phase 1 is complete (after Main Mode message 5 with `reply` = message 6, or after
    /// Aggressive Mode message 3): the SA is established and no longer half-open.
    fn phase1_done(
        &mut self,
        now: Instant,
        id: IkeSaId,
        initial_contact: bool,
        reply: Option<Vec<u8>>,
    ) {
        let ike_lifetime = self.config.ike_lifetime;
        let keepalive = self.config.nat_keepalive;
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let Some(ident) = sa.identity.clone() else {
            return;
        };
        let shown = sa.peer_subject.clone().unwrap_or_else(|| ident.display());
        let was_half_open = sa.counts_half_open();
        sa.phase = Phase::Established;
        if let Some(out) = &reply {
            sa.last_tx = out.clone();
        }
        sa.retransmits = 0;
        sa.last_activity = now;
        let life = sa
            .transform
            .lifetime
            .seconds
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        sa.lifetime = life.min(ike_lifetime);
        sa.deadline = now + sa.lifetime;
        let (lifetime, main_mode) = (sa.lifetime, sa.exchange == ExchangeType::IdentityProtection);
        sa.next_keepalive = (sa.local_behind_nat && sa.nat.any()).then(|| now + keepalive);
        // The exchange is no longer half-open.
        let peer_ip = sa.peer.ip();
        let (peer, local, nat, transform) = (sa.peer, sa.local, sa.nat, sa.transform);
        let (started, setup) = (sa.started, now.saturating_duration_since(sa.started));
        if let Some(k) = sa.first_message.take() {
            self.by_initiator.remove(&k);
        }
        self.mark_proven(started, id);
        if was_half_open {
            self.half_open_done(peer_ip);
        }
        // Our own Main Mode replaces it shortly before it expires (one we start ourselves
        // is Main Mode, so not for SAs a client made by Aggressive Mode).
        let rekey_at = main_mode.then(|| self.rekey_time(now, lifetime));
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.rekey_at = rekey_at;
        }
        self.stats.ike_sas_established += 1;
        self.reschedule(id);
        if let Some(out) = reply {
            self.send(local, peer, &out);
        }
        self.event(Event::IkeSaUp {
            id,
            peer,
            local,
            identity: shown,
            nat,
            transform,
            setup,
        });
        if initial_contact {
            // RFC 2407 §4.6.3.3: the client lost its state; SAs of the same identity from the
            // same public address are stale (clients behind one NAT have distinct private IDs).
            let stale: Vec<IkeSaId> = self
                .sas
                .values()
                .filter(|o| {
                    o.id != id
                        && o.phase == Phase::Established
                        && o.peer.ip() == peer.ip()
                        && o.identity.as_ref() == Some(&ident)
                })
                .map(|o| o.id)
                .collect();
            for s in stale {
                self.remove(s, DownReason::Replaced, false);
            }
        }
        // Older SAs of the same client and identity are being replaced: they neither rekey
        // nor probe any more, and their ESP SAs move here when they go.
        for o in self.sas.values_mut() {
            if o.id != id
                && o.phase == Phase::Established
                && o.peer == peer
                && o.identity.as_ref() == Some(&ident)
            {
                o.superseded = true;
            }
        }
        self.own_main_done(id);
    }

    /// When to rekey an SA with `lifetime` established at `now`: a margin before it expires,
    /// less up to half the margin again of jitter (so SAs made together do not rekey
    /// together).
    fn rekey_time(&mut self, now: Instant, lifetime: Duration) -> Instant {
        let margin = rekey_margin(lifetime);
        let jitter_ms = u64::try_from(margin.as_millis() / 2).unwrap_or(0).max(1);
        let jitter = Duration::from_millis(self.rng.next_u64() % jitter_ms);
        now + lifetime.saturating_sub(margin + jitter)
    }

    /// RFC 2409 §5.1 with signatures: the client's certificate chains to one of our CAs and
    /// is valid now, names the client's ID, and its key signed HASH_I.
    fn check_certificate(
        &self,
        certs: &[Vec<u8>],
        ident: &Identification,
        hash_i: &[u8],
        sig_i: &[u8],
    ) -> Result<crate::cert::PeerCert, String> {
        let ca = self
            .config
            .client_ca
            .as_ref()
            .ok_or_else(|| "no client CA configured".to_owned())?;
        let Some((leaf, rest)) = certs.split_first() else {
            return Err("the client sent no X.509 certificate".into());
        };
        let intermediates: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
        let peer = ca
            .verify(leaf, &intermediates, self.unix_time)
            .map_err(|e| format!("client certificate refused: {e}"))?;
        if !peer.matches_id(ident) {
            return Err(format!(
                "ID {} does not name the certificate of {}",
                ident.display(),
                peer.subject_display()
            ));
        }
        if !peer.verify_hash_signature(hash_i, sig_i) {
            return Err(format!(
                "SIG_I of {} does not verify",
                peer.subject_display()
            ));
        }
        Ok(peer)
    }

    fn half_open_done(&mut self, ip: IpAddr) {
        self.half_open = self.half_open.saturating_sub(1);
        if let Some(n) = self.half_open_by_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open_by_ip.remove(&ip);
            }
        }
    }

    /// Follows an authenticated message from a new address or port.
    fn move_peer(&mut self, id: IkeSaId, local: SocketAddr, remote: SocketAddr, announce: bool) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.peer == remote && sa.local == local {
            return;
        }
        let old = sa.peer;
        let was_half_open = sa.counts_half_open();
        sa.peer = remote;
        sa.local = local;
        if let Some(n) = self.per_client.get_mut(&old) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&old);
            }
        }
        *self.per_client.entry(remote).or_default() += 1;
        if was_half_open && old.ip() != remote.ip() {
            if let Some(n) = self.half_open_by_ip.get_mut(&old.ip()) {
                *n = n.saturating_sub(1);
            }
            *self.half_open_by_ip.entry(remote.ip()).or_default() += 1;
        }
        if announce {
            self.event(Event::PeerMoved {
                id,
                peer: remote,
                local,
            });
        }
    }

    /// Decrypts a Quick Mode or Informational message with `iv` and checks HASH(1) (or, with
    /// `hash3`, the bare HASH(3) of §5.5). Returns the message and the payload chain range.
    fn open_protected(&self, id: IkeSaId, hdr: &Header, body: &[u8], iv: &[u8]) -> Option<Message> {
        let sa = self.sas.get(&id)?;
        let keys = sa.keys.as_ref()?;
        Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, iv).ok()
    }

    /// Decrypts the first message of a Quick Mode or an Informational exchange with its own
    /// IV and checks its HASH(1) = prf(SKEYID_a, M-ID | payloads after HASH) (RFC 2409 §5.5,
    /// §5.7).
    fn open_hashed(&self, id: IkeSaId, hdr: &Header, body: &[u8]) -> Result<Message, DropReason> {
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let keys = sa.keys.as_ref().ok_or(DropReason::Unexpected)?;
        let msgid = hdr.message_id.to_be_bytes();
        let iv = phase2_iv(keys.hash, keys.cipher, &sa.iv, hdr.message_id);
        let m = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &iv)
            .map_err(|_| DropReason::Malformed)?;
        let authentic = {
            let chain = m.payloads().map_err(|_| DropReason::Malformed)?;
            let (rest, _) = after_hash(&m.body, &chain).ok_or(DropReason::Malformed)?;
            let hash1 = chain.first().map(|p| p.body).unwrap_or_default();
            let expect = keys.hash.prf(&keys.skeyid_a, &[&msgid, rest]);
            bool::from(expect.as_slice().ct_eq(hash1))
        };
        if authentic {
            Ok(m)
        } else {
            Err(DropReason::AuthFailed)
        }
    }

    /// Quick Mode (RFC 2409 §5.5), responder side.
    #[allow(clippy::too_many_arguments)]
    fn quick_mode(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let msgid = hdr.message_id;
        let Some(sa) = self.sas.get(&id) else { return };
        if sa.own_quick.iter().any(|q| q.msgid == msgid) {
            return self.own_quick_reply(now, id, local, remote, hdr, body, msg);
        }
        if let Some(q) = sa.quick.iter().find(|q| q.msgid == msgid) {
            if q.last_rx == digest(msg) {
                let Some(sa) = self.sas.get_mut(&id) else {
                    return;
                };
                let Some(q) = sa.quick.iter_mut().find(|q| q.msgid == msgid) else {
                    return;
                };
                if q.retransmits >= MAX_RETRANSMITS {
                    return self.discard(DropReason::Replay);
                }
                q.retransmits += 1;
                let (l, p, out) = (sa.local, sa.peer, q.last_tx.clone());
                self.stats.retransmits += 1;
                return self.send(l, p, &out);
            }
            let iv = q.iv.clone();
            return self.quick_mode_hash3(now, id, local, remote, hdr, body, &iv);
        }
        if sa.done_msgids.contains(&msgid) {
            return self.discard(DropReason::Replay);
        }
        if sa.quick.len() >= self.config.max_quick_modes_per_sa
            || sa.children.len() >= self.config.max_child_sas_per_ike_sa
        {
            return self.discard(DropReason::Limit);
        }
        let m = match self.open_hashed(id, hdr, body) {
            Ok(m) => m,
            Err(why) => return self.discard(why),
        };
        let Ok(chain) = m.payloads() else {
            return self.discard(DropReason::Malformed);
        };
        // Authenticated: the client may have moved (NAT rebinding).
        self.move_peer(id, local, remote, true);
        let last_block = m.last_block.clone().unwrap_or_default();
        match self.quick_mode_reply(now, id, msgid, &chain, last_block, msg) {
            Ok(()) => {}
            Err(c) => {
                self.discard(if c == code::INVALID_ID_INFORMATION {
                    DropReason::InvalidId
                } else {
                    DropReason::NoProposal
                });
                self.send_info(id, |chain| {
                    chain.push(
                        kind::N,
                        &Notify {
                            protocol: protocol::ESP,
                            code: c,
                            spi: vec![],
                            data: vec![],
                        }
                        .emit(),
                    );
                });
            }
        }
    }

    fn quick_mode_reply(
        &mut self,
        now: Instant,
        id: IkeSaId,
        msgid: u32,
        chain: &[RawPayload<'_>],
        last_block: Vec<u8>,
        msg: &[u8],
    ) -> Result<(), u16> {
        let sa_p = chain.find_kind(kind::SA).ok_or(code::PAYLOAD_MALFORMED)?;
        let nonce = chain
            .find_kind(kind::NONCE)
            .ok_or(code::PAYLOAD_MALFORMED)?;
        if !(8..=256).contains(&nonce.body.len()) {
            return Err(code::PAYLOAD_MALFORMED);
        }
        let proposal = SaPayload::parse(sa_p.body).map_err(|_| code::PAYLOAD_MALFORMED)?;
        let ids = chain.all_kind(kind::ID);
        let (idci, idcr) = match ids.as_slice() {
            [] => (None, None),
            [i, r] => (
                Some(Identification::parse(i.body).map_err(|_| code::INVALID_ID_INFORMATION)?),
                Some(Identification::parse(r.body).map_err(|_| code::INVALID_ID_INFORMATION)?),
            ),
            _ => return Err(code::INVALID_ID_INFORMATION),
        };
        let sa = self.sas.get(&id).ok_or(code::INVALID_COOKIE)?;
        let udp_encap = sa.nat.any() && sa.nat_t.is_some();
        let (p, t, et) = self
            .config
            .choose_esp(&proposal, udp_encap)
            .ok_or(code::NO_PROPOSAL_CHOSEN)?;
        // Selectors: the client's single address; our side must be the L2TP port (or any).
        let l2tp = self.config.l2tp_port;
        if let (Some(i), Some(r)) = (&idci, &idcr) {
            i.single_address().ok_or(code::INVALID_ID_INFORMATION)?;
            r.single_address().ok_or(code::INVALID_ID_INFORMATION)?;
            let proto_ok = |x: &Identification| x.protocol == 0 || x.protocol == 17;
            if !proto_ok(i) || !proto_ok(r) || !(r.port == 0 || r.port == l2tp || l2tp == 0) {
                return Err(code::INVALID_ID_INFORMATION);
            }
        }
        let peer_spi = p
            .spi
            .as_slice()
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| code::INVALID_SPI)?;
        let ke = chain.find_kind(kind::KE);
        let (pfs_public, pfs_gxy) = match (et.group, ke) {
            (None, None) => (None, None),
            (Some(g), Some(ke)) => {
                let dh = KeyPair::generate(g, &mut self.rng);
                let gxy = dh
                    .shared_secret(ke.body)
                    .map_err(|_| code::INVALID_KEY_INFORMATION)?;
                (Some(dh.public().to_vec()), Some(gxy))
            }
            _ => return Err(code::INVALID_KEY_INFORMATION),
        };
        let our_spi = self.new_spi(id);
        let mut nr = vec![0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut nr);
        let proposed = et
            .lifetime
            .seconds
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let lifetime = proposed.min(self.config.esp_lifetime);
        let lifetime_kb = match (et.lifetime.kilobytes, self.config.esp_lifetime_kb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let shortened = lifetime < proposed || lifetime_kb != et.lifetime.kilobytes;
        let mut reply_sa = proposal.clone();
        reply_sa.proposals = vec![crate::sa::Proposal {
            spi: our_spi.to_be_bytes().to_vec(),
            transforms: vec![t.clone()],
            ..p.clone()
        }];
        let sa = self.sas.get(&id).ok_or(code::INVALID_COOKIE)?;
        let keys = sa.keys.as_ref().ok_or(code::INVALID_COOKIE)?;
        let mut rest = ChainBuilder::new();
        rest.push(kind::SA, &reply_sa.emit()).push(kind::NONCE, &nr);
        if let Some(pk) = &pfs_public {
            rest.push(kind::KE, pk);
        }
        if let (Some(i), Some(r)) = (&idci, &idcr) {
            rest.push(kind::ID, &i.emit()).push(kind::ID, &r.emit());
        }
        if shortened {
            let mut data = Vec::new();
            encode_attributes(
                &esp_lifetime_attributes(Lifetime {
                    seconds: Some(lifetime.as_secs()),
                    kilobytes: lifetime_kb,
                }),
                &mut data,
            );
            let n = Notify {
                protocol: protocol::ESP,
                code: code::RESPONDER_LIFETIME,
                spi: p.spi.clone(),
                data,
            };
            rest.push(kind::N, &n.emit());
        }
        if udp_encap && let Some(v) = sa.nat_t {
            rest.push(v.nat_oa_kind(), &emit_nat_oa(sa.peer.ip()));
            rest.push(v.nat_oa_kind(), &emit_nat_oa(sa.local.ip()));
        }
        let hash2 = keys.hash.prf(
            &keys.skeyid_a,
            &[&msgid.to_be_bytes(), nonce.body, rest.bytes()],
        );
        let mut full = ChainBuilder::new();
        full.push(kind::HASH, &hash2).append(rest);
        let hdr = header(sa.cky_i, sa.cky_r, ExchangeType::QuickMode, msgid);
        let (out, last_out) = seal_encrypted(hdr, &full, keys.cipher, &keys.enc_key, &last_block)
            .map_err(|_| code::PAYLOAD_MALFORMED)?;
        let q = Quick {
            msgid,
            iv: last_out,
            ni: nonce.body.to_vec(),
            nr,
            transform: et,
            peer_spi,
            our_spi,
            pfs_gxy,
            ids: idci.zip(idcr),
            lifetime,
            lifetime_kb,
            last_rx: digest(msg),
            last_tx: out.clone(),
            retransmits: 0,
            deadline: now + QUICK_MODE_TIMEOUT,
            started: now,
        };
        let (local, peer) = (sa.local, sa.peer);
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.quick.push(q);
            sa.last_activity = now;
        }
        self.reschedule(id);
        self.send(local, peer, &out);
        Ok(())
    }

    /// Quick Mode message 3: HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b).
    #[allow(clippy::too_many_arguments)]
    fn quick_mode_hash3(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        iv: &[u8],
    ) {
        let msgid = hdr.message_id;
        let Some(m) = self.open_protected(id, hdr, body, iv) else {
            return self.discard(DropReason::Malformed);
        };
        let Ok(chain) = m.payloads() else {
            return self.discard(DropReason::Malformed);
        };
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let Some(q) = sa.quick.iter().find(|q| q.msgid == msgid) else {
            return;
        };
        let hash3 = match chain.as_slice() {
            [h] if h.kind == kind::HASH => h.body,
            _ => return self.discard(DropReason::Malformed),
        };
        let expect = keys
            .hash
            .prf(&keys.skeyid_a, &[&[0], &msgid.to_be_bytes(), &q.ni, &q.nr]);
        if !bool::from(expect.as_slice().ct_eq(hash3)) {
            return self.discard(DropReason::AuthFailed);
        }
        let len = q.transform.keymat_len();
        let pfs = q.pfs_gxy.as_ref().map(|g| g.as_slice());
        let km = KeymatInput {
            hash: keys.hash,
            skeyid_d: &keys.skeyid_d,
            pfs_gxy: pfs,
            protocol: protocol::ESP,
            ni_b: &q.ni,
            nr_b: &q.nr,
        };
        let inbound = quick_mode_keymat(&km, q.our_spi, len);
        let outbound = quick_mode_keymat(&km, q.peer_spi, len);
        self.move_peer(id, local, remote, true);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let Some(pos) = sa.quick.iter().position(|q| q.msgid == msgid) else {
            return;
        };
        let q = sa.quick.swap_remove(pos);
        remember(&mut sa.done_msgids, msgid);
        let child = Child {
            inbound_spi: q.our_spi,
            outbound_spi: q.peer_spi,
            expires: now + q.lifetime,
            rekey_at: now,
            rekeying: false,
            transform: q.transform,
            ids: q.ids,
            lifetime: q.lifetime,
            lifetime_kb: q.lifetime_kb,
        };
        self.child_up(now, id, child, (inbound, outbound), q.started);
    }

    /// A new ESP SA pair is up (either side's Quick Mode): older pairs of the IKE SA are
    /// replaced (they run until they expire or are deleted, so packets in flight still
    /// arrive), and the new one is scheduled for our own rekey shortly before it expires.
    fn child_up(
        &mut self,
        now: Instant,
        id: IkeSaId,
        mut child: Child,
        (inbound, outbound): (SecretBytes, SecretBytes),
        started: Instant,
    ) {
        child.rekey_at = self.rekey_time(now, child.lifetime);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        for old in &mut sa.children {
            old.rekeying = true;
        }
        sa.last_activity = now;
        let udp_encap = sa.nat.any() && sa.nat_t.is_some();
        let up = ChildSa {
            ike: id,
            peer: sa.peer,
            local: sa.local,
            udp_encap,
            transform: child.transform,
            inbound: ChildKeys {
                spi: child.inbound_spi,
                keymat: inbound,
            },
            outbound: ChildKeys {
                spi: child.outbound_spi,
                keymat: outbound,
            },
            client_addr: child.client_addr(),
            lifetime: child.lifetime,
            lifetime_kb: child.lifetime_kb,
            setup: now.saturating_duration_since(started),
        };
        sa.children.push(child);
        self.stats.child_sas_established += 1;
        self.reschedule(id);
        self.event(Event::ChildSaUp(Box::new(up)));
    }

    /// Starts our own Quick Mode to replace the ESP SA pair with inbound or outbound SPI
    /// `spi` (its lifetime is running out, or the data path reports its sequence-number or
    /// volume soft limit). Nothing happens when a replacement exists or is being made.
    pub fn rekey_child(&mut self, now: Instant, id: IkeSaId, spi: u32) {
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        if sa.phase != Phase::Established
            || sa.own_quick.len() >= self.config.max_quick_modes_per_sa
        {
            return;
        }
        let Some(old) = sa
            .children
            .iter()
            .find(|c| (c.inbound_spi == spi || c.outbound_spi == spi) && !c.rekeying)
        else {
            return;
        };
        let (hash, cipher, enc_key, skeyid_a) = (
            keys.hash,
            keys.cipher,
            keys.enc_key.clone(),
            keys.skeyid_a.clone(),
        );
        let (transform, ids, replaces) = (old.transform, old.ids.clone(), old.inbound_spi);
        let (phase1_iv_base, cky_i, cky_r, local, peer) =
            (sa.iv.clone(), sa.cky_i, sa.cky_r, sa.local, sa.peer);
        let udp_encap = sa.nat.any() && sa.nat_t.is_some();
        let nat_oa = sa.nat_t.filter(|_| udp_encap);
        let used: Vec<u32> = sa
            .done_msgids
            .iter()
            .copied()
            .chain(sa.quick.iter().map(|q| q.msgid))
            .collect();
        let msgid = loop {
            let m = self.rng.next_u32();
            if m != 0 && !used.contains(&m) {
                break m;
            }
        };
        let our_spi = self.new_spi(id);
        let mut ni = vec![0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut ni);
        let dh = transform.group.map(|g| KeyPair::generate(g, &mut self.rng));
        let proposal = SaPayload {
            proposals: vec![crate::sa::Proposal {
                number: 1,
                protocol: protocol::ESP,
                spi: our_spi.to_be_bytes().to_vec(),
                transforms: vec![transform.to_transform(1, transform.lifetime)],
            }],
        };
        let mut rest = ChainBuilder::new();
        rest.push(kind::SA, &proposal.emit()).push(kind::NONCE, &ni);
        if let Some(dh) = &dh {
            rest.push(kind::KE, dh.public());
        }
        // Our selectors first now that we initiate: IDci = ours, IDcr = the client's.
        if let Some((client, ours)) = &ids {
            rest.push(kind::ID, &ours.emit())
                .push(kind::ID, &client.emit());
        }
        if let Some(v) = nat_oa {
            rest.push(v.nat_oa_kind(), &emit_nat_oa(local.ip()));
            rest.push(v.nat_oa_kind(), &emit_nat_oa(peer.ip()));
        }
        let hash1 = hash.prf(&skeyid_a, &[&msgid.to_be_bytes(), rest.bytes()]);
        let mut full = ChainBuilder::new();
        full.push(kind::HASH, &hash1).append(rest);
        let iv = phase2_iv(hash, cipher, &phase1_iv_base, msgid);
        let Ok((out, last)) = seal_encrypted(
            header(cky_i, cky_r, ExchangeType::QuickMode, msgid),
            &full,
            cipher,
            &enc_key,
            &iv,
        ) else {
            return;
        };
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if let Some(c) = sa.children.iter_mut().find(|c| c.inbound_spi == replaces) {
            c.rekeying = true;
        }
        sa.own_quick.push(OwnQuick {
            msgid,
            iv: last,
            ni,
            our_spi,
            dh,
            replaces,
            last_tx: out.clone(),
            answered: None,
            retransmits: 0,
            next_retransmit: now + OWN_QUICK_RETRANSMIT,
            deadline: now + QUICK_MODE_TIMEOUT,
            started: now,
        });
        self.stats.rekeys_started += 1;
        self.reschedule(id);
        self.send(local, peer, &out);
    }

    /// The client's answer to our Quick Mode (HASH(2), SA, Nr, [KE], [IDci, IDcr]) →
    /// message 3 and the new pair (RFC 2409 §5.5).
    #[allow(clippy::too_many_arguments)]
    fn own_quick_reply(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let msgid = hdr.message_id;
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let Some(q) = sa.own_quick.iter().find(|q| q.msgid == msgid) else {
            return;
        };
        if let Some(d) = q.answered {
            // Our message 3 was lost: the client repeats message 2.
            if d == digest(msg) && q.retransmits < MAX_RETRANSMITS {
                let (l, p, out) = (sa.local, sa.peer, q.last_tx.clone());
                if let Some(q) = self
                    .sas
                    .get_mut(&id)
                    .and_then(|sa| sa.own_quick.iter_mut().find(|q| q.msgid == msgid))
                {
                    q.retransmits += 1;
                }
                self.stats.retransmits += 1;
                return self.send(l, p, &out);
            }
            return self.discard(DropReason::Replay);
        }
        let Ok(m) = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &q.iv) else {
            return self.discard(DropReason::Malformed);
        };
        let Ok(chain) = m.payloads() else {
            return self.discard(DropReason::Malformed);
        };
        let Some((rest, _)) = after_hash(&m.body, &chain) else {
            return self.discard(DropReason::Malformed);
        };
        let hash2 = chain.first().map(|p| p.body).unwrap_or_default();
        let expect = keys
            .hash
            .prf(&keys.skeyid_a, &[&msgid.to_be_bytes(), &q.ni, rest]);
        if !bool::from(expect.as_slice().ct_eq(hash2)) {
            return self.discard(DropReason::AuthFailed);
        }
        let Some(old) = sa.children.iter().find(|c| c.inbound_spi == q.replaces) else {
            return self.discard(DropReason::Unexpected);
        };
        let answer = (|| {
            let nr = chain.find_kind(kind::NONCE)?;
            let p = SaPayload::parse(chain.find_kind(kind::SA)?.body).ok()?;
            let p = p.proposals.first()?;
            let et = EspTransform::from_transform(p.transforms.first()?).ok()?;
            let same = et.cipher == old.transform.cipher
                && et.auth == old.transform.auth
                && et.mode == old.transform.mode
                && et.group == old.transform.group;
            let peer_spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
            let pfs = match (&q.dh, chain.find_kind(kind::KE)) {
                (None, _) => None,
                (Some(dh), Some(ke)) => Some(dh.shared_secret(ke.body).ok()?),
                (Some(_), None) => return None,
            };
            (same && (8..=256).contains(&nr.body.len()) && peer_spi > 255)
                .then(|| (nr.body.to_vec(), peer_spi, pfs))
        })();
        let Some((nr, peer_spi, pfs)) = answer else {
            return self.discard(DropReason::NoProposal);
        };
        let hash3 = keys
            .hash
            .prf(&keys.skeyid_a, &[&[0], &msgid.to_be_bytes(), &q.ni, &nr]);
        let mut c = ChainBuilder::new();
        c.push(kind::HASH, &hash3);
        let last = m.last_block.clone().unwrap_or_default();
        let Ok((out, _)) = seal_encrypted(
            header(sa.cky_i, sa.cky_r, ExchangeType::QuickMode, msgid),
            &c,
            keys.cipher,
            &keys.enc_key,
            &last,
        ) else {
            return;
        };
        let len = old.transform.keymat_len();
        let km = KeymatInput {
            hash: keys.hash,
            skeyid_d: &keys.skeyid_d,
            pfs_gxy: pfs.as_ref().map(|g| g.as_slice()),
            protocol: protocol::ESP,
            ni_b: &q.ni,
            nr_b: &nr,
        };
        let inbound = quick_mode_keymat(&km, q.our_spi, len);
        let outbound = quick_mode_keymat(&km, peer_spi, len);
        let started = q.started;
        let child = Child {
            inbound_spi: q.our_spi,
            outbound_spi: peer_spi,
            expires: now + old.lifetime,
            rekey_at: now,
            rekeying: false,
            transform: old.transform,
            ids: old.ids.clone(),
            lifetime: old.lifetime,
            lifetime_kb: old.lifetime_kb,
        };
        self.move_peer(id, local, remote, true);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if let Some(q) = sa.own_quick.iter_mut().find(|q| q.msgid == msgid) {
            q.answered = Some(digest(msg));
            q.last_tx = out.clone();
            q.retransmits = 0;
        }
        remember(&mut sa.done_msgids, msgid);
        let (l, p) = (sa.local, sa.peer);
        self.send(l, p, &out);
        self.stats.rekeys_completed += 1;
        self.child_up(now, id, child, (inbound, outbound), started);
    }

    /// A fresh inbound SPI: random, above the IANA-reserved 1–255, unused by this SA.
    fn new_spi(&mut self, id: IkeSaId) -> u32 {
        loop {
            let spi: u32 = self.rng.next_u32();
            let used = self.sas.get(&id).is_some_and(|sa| {
                sa.children.iter().any(|c| c.inbound_spi == spi)
                    || sa.quick.iter().any(|q| q.our_spi == spi)
                    || sa.own_quick.iter().any(|q| q.our_spi == spi)
            });
            if spi > 255 && !used {
                return spi;
            }
        }
    }

    /// Informational exchange (RFC 2409 §5.7): HASH(1) = prf(SKEYID_a, M-ID | N/D).
    fn informational(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
    ) {
        let msgid = hdr.message_id;
        let Some(sa) = self.sas.get(&id) else { return };
        if sa.done_msgids.contains(&msgid) {
            return self.discard(DropReason::Replay);
        }
        let (cky_i, cky_r) = (sa.cky_i, sa.cky_r);
        let m = match self.open_hashed(id, hdr, body) {
            Ok(m) => m,
            Err(why) => return self.discard(why),
        };
        let Ok(chain) = m.payloads() else {
            return self.discard(DropReason::Malformed);
        };
        let notifies: Vec<Notify> = chain
            .all_kind(kind::N)
            .iter()
            .filter_map(|p| Notify::parse(p.body).ok())
            .collect();
        let deletes: Vec<Delete> = chain
            .all_kind(kind::D)
            .iter()
            .filter_map(|p| Delete::parse(p.body).ok())
            .collect();
        self.move_peer(id, local, remote, true);
        if let Some(sa) = self.sas.get_mut(&id) {
            remember(&mut sa.done_msgids, msgid);
            sa.last_activity = now;
            sa.dpd_outstanding = false;
        }
        for n in notifies {
            match n.code {
                code::R_U_THERE => {
                    let ack = Notify {
                        code: code::R_U_THERE_ACK,
                        ..n
                    };
                    self.send_info(id, |c| {
                        c.push(kind::N, &ack.emit());
                    });
                }
                code::R_U_THERE_ACK => {}
                _ => {}
            }
        }
        for d in deletes {
            match d.protocol {
                protocol::ISAKMP
                    if d.spis
                        .iter()
                        .any(|s| s.as_slice() == [cky_i, cky_r].concat().as_slice()) =>
                {
                    self.remove(id, DownReason::DeletedByPeer, false);
                    return;
                }
                protocol::ESP => {
                    for spi in &d.spis {
                        let Ok(spi) = <[u8; 4]>::try_from(spi.as_slice()) else {
                            continue;
                        };
                        let spi = u32::from_be_bytes(spi);
                        // After a Phase 1 rekey the client may delete a pair under the
                        // other of its IKE SAs.
                        let owner = self.child_owner(id, spi);
                        self.remove_child(owner, spi, DownReason::DeletedByPeer, false);
                    }
                }
                _ => {}
            }
        }
        self.reschedule(id);
    }

    /// Sends a protected Informational message built by `fill` (RFC 2409 §5.7).
    fn send_info(&mut self, id: IkeSaId, fill: impl FnOnce(&mut ChainBuilder)) {
        let msgid = loop {
            let m: u32 = self.rng.next_u32();
            if m != 0 {
                break m;
            }
        };
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(keys) = sa.keys.as_ref() else { return };
        let mut rest = ChainBuilder::new();
        fill(&mut rest);
        let hash = keys
            .hash
            .prf(&keys.skeyid_a, &[&msgid.to_be_bytes(), rest.bytes()]);
        let mut full = ChainBuilder::new();
        full.push(kind::HASH, &hash).append(rest);
        let iv = phase2_iv(keys.hash, keys.cipher, &sa.iv, msgid);
        let hdr = header(sa.cky_i, sa.cky_r, ExchangeType::Informational, msgid);
        let Ok((out, _)) = seal_encrypted(hdr, &full, keys.cipher, &keys.enc_key, &iv) else {
            return;
        };
        let (local, peer) = (sa.local, sa.peer);
        self.send(local, peer, &out);
    }

    /// The IKE SA holding the ESP SA pair with SPI `spi`: `id`, or another of the same
    /// client.
    fn child_owner(&self, id: IkeSaId, spi: u32) -> IkeSaId {
        let holds = |sa: &IkeSa| {
            sa.children
                .iter()
                .any(|c| c.outbound_spi == spi || c.inbound_spi == spi)
        };
        let Some(sa) = self.sas.get(&id) else {
            return id;
        };
        if holds(sa) {
            return id;
        }
        self.sas
            .values()
            .find(|o| o.peer == sa.peer && o.identity == sa.identity && holds(o))
            .map_or(id, |o| o.id)
    }

    /// The established SA of the same client and identity that lives longest, other than
    /// `id`: where `id`'s ESP SAs go when it does.
    fn successor(&self, id: IkeSaId) -> Option<IkeSaId> {
        let sa = self.sas.get(&id)?;
        let ident = sa.identity.as_ref()?;
        self.sas
            .values()
            .filter(|o| {
                o.id != id
                    && o.phase == Phase::Established
                    && o.peer == sa.peer
                    && o.identity.as_ref() == Some(ident)
            })
            .max_by_key(|o| o.deadline)
            .map(|o| o.id)
    }

    /// Moves every ESP SA pair of `from` to `to`; a rekey `from` had running for one is
    /// dropped (the pair may be rekeyed again under `to`).
    fn adopt_children(&mut self, from: IkeSaId, to: IkeSaId) {
        let Some(old) = self.sas.get_mut(&from) else {
            return;
        };
        let mut moved = std::mem::take(&mut old.children);
        for c in &mut moved {
            if old.own_quick.iter().any(|q| q.replaces == c.inbound_spi) {
                c.rekeying = false;
            }
        }
        old.own_quick.clear();
        let spis: Vec<(u32, u32)> = moved
            .iter()
            .map(|c| (c.inbound_spi, c.outbound_spi))
            .collect();
        let Some(new) = self.sas.get_mut(&to) else {
            return;
        };
        new.children.extend(moved);
        for (inbound_spi, outbound_spi) in spis {
            self.event(Event::ChildSaMoved {
                from,
                to,
                inbound_spi,
                outbound_spi,
            });
        }
        self.reschedule(to);
    }

    /// Deletes one ESP SA pair by either SPI; with `tell_peer`, sends DELETE for our inbound SPI.
    fn remove_child(&mut self, id: IkeSaId, spi: u32, reason: DownReason, tell_peer: bool) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let Some(pos) = sa
            .children
            .iter()
            .position(|c| c.outbound_spi == spi || c.inbound_spi == spi)
        else {
            return;
        };
        let c = sa.children.swap_remove(pos);
        if tell_peer {
            let d = Delete {
                protocol: protocol::ESP,
                spis: vec![c.inbound_spi.to_be_bytes().to_vec()],
            };
            self.send_info(id, |chain| {
                chain.push(kind::D, &d.emit());
            });
        }
        self.event(Event::ChildSaDown {
            ike: id,
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            reason,
        });
    }

    /// Removes an IKE SA and its ESP SAs; with `tell_peer`, sends DELETEs first. When it
    /// expires, is deleted by the client or was rekeyed, and a newer SA of the same client
    /// exists, its ESP SAs move there instead (ESP SAs do not depend on the ISAKMP SA that
    /// negotiated them; strongSwan and Windows keep theirs across a Phase 1 rekey).
    fn remove(&mut self, id: IkeSaId, reason: DownReason, tell_peer: bool) {
        let heir = match reason {
            DownReason::Expired | DownReason::DeletedByPeer | DownReason::Rekeyed => {
                self.successor(id)
            }
            _ => None,
        };
        if let Some(heir) = heir {
            self.adopt_children(id, heir);
        }
        let spis: Vec<u32> = self
            .sas
            .get(&id)
            .map(|sa| sa.children.iter().map(|c| c.inbound_spi).collect())
            .unwrap_or_default();
        for spi in spis {
            self.remove_child(id, spi, reason, tell_peer);
        }
        if tell_peer && let Some(sa) = self.sas.get(&id) {
            let d = Delete {
                protocol: protocol::ISAKMP,
                spis: vec![[sa.cky_i, sa.cky_r].concat()],
            };
            self.send_info(id, |chain| {
                chain.push(kind::D, &d.emit());
            });
        }
        let Some(sa) = self.sas.remove(&id) else {
            return;
        };
        self.journal(SaChange::Removed(id));
        self.mark_proven(sa.started, id);
        // Our Main Mode to replace it has nothing left to replace (only established SAs
        // are replaced: half-open ones, a flood's, skip the scan).
        let orphans: Vec<IkeSaId> = if sa.phase == Phase::Established {
            self.sas
                .values()
                .filter(|o| {
                    o.phase != Phase::Established
                        && o.own.as_ref().is_some_and(|m| m.replaces == id)
                })
                .map(|o| o.id)
                .collect()
        } else {
            Vec::new()
        };
        for o in orphans {
            self.remove(o, DownReason::Closed, false);
        }
        if let Some(t) = sa.timer {
            self.timers.remove(&(t, id));
        }
        if let Some(k) = sa.first_message {
            self.by_initiator.remove(&k);
        }
        if sa.counts_half_open() {
            self.half_open_done(sa.peer.ip());
        }
        if let Some(n) = self.per_client.get_mut(&sa.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&sa.peer);
            }
        }
        if sa.phase == Phase::Established || reason == DownReason::HalfOpenTimeout {
            self.event(Event::IkeSaDown {
                id,
                peer: sa.peer,
                reason,
            });
        }
    }

    /// Closes one IKE SA (sending DELETEs).
    pub fn close(&mut self, id: IkeSaId) {
        self.remove(id, DownReason::Closed, true);
    }

    /// Closes every SA, telling each client.
    pub fn shutdown(&mut self) {
        let ids: Vec<IkeSaId> = self.sas.keys().copied().collect();
        for id in ids {
            let established = self
                .sas
                .get(&id)
                .is_some_and(|s| s.phase == Phase::Established);
            self.remove(id, DownReason::Closed, established);
        }
    }

    fn next_deadline(&self, sa: &IkeSa) -> Instant {
        let mut t = sa.deadline;
        for q in &sa.quick {
            t = t.min(q.deadline);
        }
        for c in &sa.children {
            t = t.min(c.expires);
            if !c.rekeying {
                t = t.min(c.rekey_at);
            }
        }
        for q in &sa.own_quick {
            t = t.min(q.deadline);
            if q.answered.is_none() {
                t = t.min(q.next_retransmit);
            }
        }
        if sa.phase == Phase::Established
            && !sa.superseded
            && let Some(r) = sa.rekey_at
        {
            t = t.min(r);
        }
        if let Some(o) = sa.own.as_ref().filter(|_| sa.phase != Phase::Established) {
            t = t.min(o.next_retransmit);
        }
        if sa.phase == Phase::Established
            && !sa.superseded
            && sa.vendor.dpd
            && let Some(delay) = self.config.dpd_delay
        {
            let probe = if sa.dpd_outstanding {
                sa.last_activity + self.config.dpd_timeout
            } else {
                sa.last_activity + delay
            };
            t = t.min(probe);
        }
        if let Some(k) = sa.next_keepalive {
            t = t.min(k);
        }
        t
    }

    fn reschedule(&mut self, id: IkeSaId) {
        let Some(sa) = self.sas.get(&id) else { return };
        let next = self.next_deadline(sa);
        let old = sa.timer;
        if old == Some(next) {
            return;
        }
        if let Some(t) = old {
            self.timers.remove(&(t, id));
        }
        self.timers.insert((next, id));
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.timer = Some(next);
        }
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Every SA's timer is due at most a few times per call; the bound keeps a timer that
        // failed to move forward from spinning here (the rest waits for the next call).
        let mut budget = self.timers.len().saturating_mul(4).saturating_add(64);
        while let Some(&(t, id)) = self.timers.first() {
            if t > now || budget == 0 {
                break;
            }
            budget -= 1;
            self.timers.remove(&(t, id));
            if let Some(sa) = self.sas.get_mut(&id) {
                sa.timer = None;
            }
            self.sa_timeout(now, id);
            self.reschedule(id);
        }
    }

    fn sa_timeout(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.own.is_some() && sa.phase != Phase::Established {
            return self.own_main_timeout(now, id);
        }
        if sa.phase == Phase::Established
            && !sa.superseded
            && sa.deadline > now
            && sa.rekey_at.is_some_and(|t| t <= now)
        {
            sa.rekey_at = None;
            self.rekey_ike(now, id);
        }
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.deadline <= now {
            let reason = if sa.phase == Phase::Established {
                DownReason::Expired
            } else {
                DownReason::HalfOpenTimeout
            };
            let tell = sa.phase == Phase::Established;
            return self.remove(id, reason, tell);
        }
        sa.quick.retain(|q| q.deadline > now);
        // Our rekeys: resend unanswered ones, forget finished or failed ones (a failed one
        // lets the pair be rekeyed again, by either side, until it expires).
        let mut resend = Vec::new();
        let mut failed = Vec::new();
        sa.own_quick.retain_mut(|q| {
            if q.deadline <= now {
                if q.answered.is_none() {
                    failed.push(q.replaces);
                }
                return false;
            }
            if q.answered.is_none() && q.next_retransmit <= now {
                if q.retransmits >= MAX_OWN_RETRANSMITS {
                    failed.push(q.replaces);
                    return false;
                }
                q.retransmits += 1;
                q.next_retransmit = now + OWN_QUICK_RETRANSMIT * (1 << q.retransmits.min(4));
                resend.push(q.last_tx.clone());
            }
            true
        });
        for c in &mut sa.children {
            if failed.contains(&c.inbound_spi) {
                c.rekeying = false;
                c.rekey_at = now + OWN_QUICK_RETRANSMIT;
            }
        }
        let (l, p) = (sa.local, sa.peer);
        let due: Vec<u32> = sa
            .children
            .iter()
            .filter(|c| !c.rekeying && c.rekey_at <= now && c.expires > now)
            .map(|c| c.inbound_spi)
            .collect();
        for out in resend {
            self.stats.retransmits += 1;
            self.send(l, p, &out);
        }
        for spi in due {
            self.rekey_child(now, id, spi);
        }
        // A rekey that could not start now (our Quick Modes at their limit) is tried again
        // shortly; a due time left in the past would make the timer fire without end.
        if let Some(sa) = self.sas.get_mut(&id) {
            for c in &mut sa.children {
                if !c.rekeying && c.rekey_at <= now {
                    c.rekey_at = now + OWN_QUICK_RETRANSMIT;
                }
            }
        }
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let expired: Vec<u32> = sa
            .children
            .iter()
            .filter(|c| c.expires <= now)
            .map(|c| c.inbound_spi)
            .collect();
        for spi in expired {
            self.remove_child(id, spi, DownReason::Expired, true);
        }
        let (dpd_delay, dpd_timeout, keepalive) = (
            self.config.dpd_delay,
            self.config.dpd_timeout,
            self.config.nat_keepalive,
        );
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if let Some(k) = sa.next_keepalive.filter(|k| *k <= now) {
            sa.next_keepalive = Some(k.max(now) + keepalive);
            let (local, peer) = (sa.local, sa.peer);
            if local.port() == self.config.natt_port && self.transmits.len() < MAX_QUEUE {
                // RFC 3948 §2.3: a single 0xFF octet, no marker.
                self.stats.tx += 1;
                self.transmits.push_back(Transmit {
                    local,
                    remote: peer,
                    payload: vec![0xff],
                });
            }
        }
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.phase == Phase::Established
            && !sa.superseded
            && sa.vendor.dpd
            && let Some(delay) = dpd_delay
        {
            if sa.dpd_outstanding && now >= sa.last_activity + dpd_timeout {
                return self.remove(id, DownReason::DeadPeer, false);
            }
            if !sa.dpd_outstanding && now >= sa.last_activity + delay {
                sa.dpd_outstanding = true;
                sa.dpd_seq = sa.dpd_seq.wrapping_add(1);
                let n = Notify {
                    protocol: protocol::ISAKMP,
                    code: code::R_U_THERE,
                    spi: [sa.cky_i, sa.cky_r].concat(),
                    data: sa.dpd_seq.to_be_bytes().to_vec(),
                };
                self.send_info(id, |c| {
                    c.push(kind::N, &n.emit());
                });
            }
        }
    }
}

fn remember(done: &mut VecDeque<u32>, msgid: u32) {
    if done.len() == DONE_MSGIDS {
        done.pop_front();
    }
    done.push_back(msgid);
}

/// Our vendor IDs for a client that sent the matching ones.
fn vendor_ids(chain: &mut ChainBuilder, vendor: &PeerVendor) {
    if let Some(v) = vendor.nat_t {
        chain.push(kind::VID, &v.vendor_id());
    }
    if vendor.dpd {
        chain.push(kind::VID, &vid::DPD);
    }
}

/// What the client's NAT-D payloads say (RFC 3947 §3.2): the first is its hash of our
/// address, the rest of its own. Returns (we are behind NAT, the client is), or `None` when
/// it sent none. The hashes cover the Phase 1 addresses (before any float to NAT-T).
fn nat_seen(sa: &IkeSa, natd: &[&RawPayload<'_>]) -> Option<(bool, bool)> {
    let (first, rest) = natd.split_first()?;
    let h = sa.transform.hash;
    let ours = nat_d(h, &sa.cky_i, &sa.cky_r, sa.local);
    let theirs = nat_d(h, &sa.cky_i, &sa.cky_r, sa.peer);
    Some((
        first.body != ours.as_slice(),
        !rest.iter().any(|p| p.body == theirs.as_slice()),
    ))
}

/// The NAT situation the client is shown (and that decides UDP encapsulation): the parrot
/// modes hide that we are behind NAT; `ParrotForceEncapsulation` also claims the client is.
fn shown_nat(detection: NatDetection, local_behind: bool, peer_behind: bool) -> NatState {
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

/// How long before an ESP SA pair expires we rekey it ourselves (plus up to half as much
/// jitter): late enough that clients, which rekey earlier (strongSwan 9–18 min before
/// expiry with its defaults, Windows at about 90 %), normally go first.
fn rekey_margin(lifetime: Duration) -> Duration {
    (lifetime / 30).clamp(Duration::from_secs(10), Duration::from_secs(120))
}
