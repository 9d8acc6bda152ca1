//! The responder endpoint: every IKE SA of one gateway. It demultiplexes datagrams to their
//! SA by cookie, enforces the limits, runs the timer table and queues what goes out; the
//! exchanges themselves are in [`crate::exchange`].
//!
//! State is keyed by our responder cookie, and every IKE SA remembers the client's address
//! *and port*, so any number of clients behind one NAT get their own IKE SA and ESP SAs. An
//! IKE SA follows its client when an authenticated message arrives from a new address (the
//! float to UDP 4500, or a NAT rebinding).

mod children;
mod event;
mod ike_sa;
mod info;
mod lifecycle;
mod output;
mod own_main;
mod phase1;
mod pressure;
mod quick;
mod timers;

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

pub use event::{ChildKeys, ChildSa, DownReason, DropReason, Event, IkeSaId, Stats, Transmit};
pub use pressure::SaChange;

use crate::exchange::Incoming;
use crate::header::{ExchangeType, Header};
use crate::message::{header, seal_plain};
use crate::notify::Notify;
use crate::payload::{ChainBuilder, kind};
use crate::policy::Config;
use crate::sa::protocol;
use ike_sa::{IkeSa, InitiatingStep, RespondingStep, State};
use output::Output;

/// Resends of one reply to retransmitted requests.
const MAX_RETRANSMITS: u8 = 8;
/// RFC 2407 §4.5: default lifetime when none is proposed.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(28800);
/// Nonce length we send.
const NONCE_LEN: usize = 32;
/// Certificate Request payloads we send at most (one per CA).
const MAX_CERT_REQUESTS: usize = 8;
/// First resend interval of our own Quick Mode message 1 and Main Mode messages (doubling).
const OWN_RETRANSMIT: Duration = Duration::from_secs(2);

/// What handling a datagram came to: done, or dropped for a reason that is counted.
type Handled = Result<(), DropReason>;

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
    sa_journal: Option<std::collections::VecDeque<SaChange>>,
    per_client: HashMap<SocketAddr, usize>,
    /// Every SA filed under its earliest timer.
    timers: BTreeSet<(Instant, IkeSaId)>,
    out: Output,
    stats: Stats,
    /// Wall-clock seconds since the epoch, for certificate validity (set by the caller).
    unix_time: u64,
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
            out: Output::default(),
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
        self.out.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.poll_event()
    }

    /// When [`Responder::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Records traffic under an IKE SA's ESP SAs (postpones DPD).
    pub fn note_activity(&mut self, id: IkeSaId, now: Instant) {
        if let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) {
            e.last_activity = now;
            e.dpd_outstanding = false;
        }
    }

    /// Authenticated ESP of IKE SA `id` arrived from a new address or port: the client's NAT
    /// mapping changed (RFC 3948 §2.3, RFC 3947 §5). DPD, rekeys and keep-alives go there from
    /// now on. The caller moved the ESP SA already, so no [`Event::PeerMoved`] is emitted.
    /// The caller vouches for the packet: an unauthenticated one (a keep-alive, a bad ICV)
    /// must never get here.
    pub fn peer_moved(&mut self, id: IkeSaId, local: SocketAddr, remote: SocketAddr) {
        self.move_peer(id, local, remote, false);
    }

    fn discard(&mut self, why: DropReason) {
        *self.stats.drops.entry(why).or_default() += 1;
    }

    /// Queues `msg` (with the non-ESP marker on the NAT-T port).
    fn send(&mut self, local: SocketAddr, remote: SocketAddr, msg: &[u8]) {
        if !self.out.has_room() {
            return;
        }
        let mut payload = Vec::with_capacity(msg.len() + 4);
        if local.port() == self.config.natt_port {
            payload.extend_from_slice(&[0; 4]);
        }
        payload.extend_from_slice(msg);
        self.out.send(&mut self.stats, local, remote, payload);
    }

    fn event(&mut self, e: Event) {
        self.out.event(&mut self.stats, e);
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
        let Some(bytes) = strip_marker(on_natt, datagram) else {
            return self.discard(DropReason::Malformed);
        };
        let Ok((hdr, body)) = Header::parse(bytes) else {
            return self.discard(DropReason::Malformed);
        };
        self.stats.rx += 1;
        let msg = Incoming {
            now,
            local,
            remote,
            hdr,
            body,
            bytes,
        };
        let handled = if hdr.cky_r == [0; 8] {
            self.first_message(&msg)
        } else {
            self.demux(&msg)
        };
        if let Err(why) = handled {
            self.discard(why);
        }
    }

    /// A message of an existing SA, to the handler of its exchange and state.
    fn demux(&mut self, msg: &Incoming<'_>) -> Handled {
        let hdr = msg.hdr;
        let (id, sa) = self.lookup(&hdr).ok_or(DropReason::UnknownSa)?;
        let phase1 = sa.exchange;
        let (x, encrypted) = (hdr.exchange, hdr.encrypted());
        match &sa.state {
            // Aggressive Mode message 3 again: it has no answer.
            _ if x == phase1 && sa.last_rx == msg.digest() && x == ExchangeType::Aggressive => {
                Err(DropReason::Replay)
            }
            _ if x == phase1 && sa.last_rx == msg.digest() => self.retransmit(id),
            State::Responding(r) => match (&r.step, x) {
                (RespondingStep::MainSentSa(_), ExchangeType::IdentityProtection) if !encrypted => {
                    self.main_mode_ke(id, msg)
                }
                (RespondingStep::MainSentKe(_), ExchangeType::IdentityProtection) if encrypted => {
                    self.main_mode_auth(id, msg)
                }
                (RespondingStep::Aggressive(_), ExchangeType::Aggressive) => {
                    self.aggressive_auth(id, msg)
                }
                _ => Err(DropReason::Unexpected),
            },
            State::Initiating(o) => match (&o.step, x) {
                (InitiatingStep::Sa(_), ExchangeType::IdentityProtection) if !encrypted => {
                    self.own_main_sa(id, msg)
                }
                (InitiatingStep::Ke(_), ExchangeType::IdentityProtection) if !encrypted => {
                    self.own_main_ke(id, msg)
                }
                (InitiatingStep::Auth(_), ExchangeType::IdentityProtection) if encrypted => {
                    self.own_main_auth(id, msg)
                }
                _ => Err(DropReason::Unexpected),
            },
            State::Established(_) => match x {
                ExchangeType::QuickMode if encrypted && hdr.message_id != 0 => {
                    self.quick_mode(id, msg)
                }
                ExchangeType::Informational if encrypted => self.informational(id, msg),
                _ => Err(DropReason::Unexpected),
            },
            State::Moving => Err(DropReason::Unexpected),
        }
    }

    /// The SA a message belongs to: ours as responder are named by CKY-R, our own Main
    /// Modes (Phase 1 rekeys) by CKY-I (the client's cookie is not known before message 2).
    fn lookup(&self, hdr: &Header) -> Option<(IkeSaId, &IkeSa)> {
        let by_r = IkeSaId(u64::from_be_bytes(hdr.cky_r));
        if let Some(sa) = self.sas.get(&by_r)
            && !sa.ours
            && sa.cky_i == hdr.cky_i
        {
            return Some((by_r, sa));
        }
        let by_i = IkeSaId(u64::from_be_bytes(hdr.cky_i));
        let sent_sa = |sa: &IkeSa| {
            sa.initiating()
                .is_some_and(|o| matches!(o.step, InitiatingStep::Sa(_)))
        };
        self.sas
            .get(&by_i)
            .filter(|sa| sa.ours && (sa.cky_r == hdr.cky_r || sent_sa(sa)))
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

    /// Resends our last Phase 1 message to a retransmitted request.
    fn retransmit(&mut self, id: IkeSaId) -> Handled {
        let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
        if sa.retransmits >= MAX_RETRANSMITS || sa.last_tx.is_empty() {
            return Err(DropReason::Replay);
        }
        sa.retransmits += 1;
        let (local, peer, msg) = (sa.local, sa.peer, sa.last_tx.clone());
        self.stats.retransmits += 1;
        self.send(local, peer, &msg);
        Ok(())
    }

    /// An unprotected Informational notify (RFC 2408 §5: errors before keys exist).
    fn notify_plain(&mut self, msg: &Incoming<'_>, cky_r: [u8; 8], c: u16) {
        let cky_i = msg.hdr.cky_i;
        let n = Notify {
            protocol: protocol::ISAKMP,
            code: c,
            spi: [cky_i, cky_r].concat(),
            data: vec![],
        };
        let mut chain = ChainBuilder::new();
        chain.push(kind::N, &n.emit());
        let out = seal_plain(header(cky_i, cky_r, ExchangeType::Informational, 0), &chain);
        self.send(msg.local, msg.remote, &out);
    }
}
