//! [`Endpoint`]: all tunnels and sessions of one role (LNS or LAC), sans-IO.
//!
//! The endpoint owns every tunnel because an SCCRQ arrives with Tunnel ID 0: its
//! retransmissions are matched to the tunnel already created by (peer address, peer's Assigned
//! Tunnel ID). Any other datagram names our Tunnel ID; one for an unknown tunnel, or from an
//! address other than the tunnel's peer (§8.1), is dropped with an [`Error`] and no reply.
//!
//! Data messages are not handled here: the daemon parses them with [`crate::DataHeader`] on its
//! fast path (and may call [`Endpoint::note_data_activity`] so data counts as liveness, §5.5).
//!
//! Limits and policies:
//! - Local Tunnel IDs are random, non-zero and unique (seeded RNG); local Session IDs come from
//!   the caller (unique per tunnel, non-zero).
//! - SCCRQ floods: a new SCCRQ is dropped without reply (and without state) when
//!   [`EndpointConfig::max_tunnels`] tunnels exist or [`EndpointConfig::max_pending_tunnels`]
//!   are still being set up. Tunnels that never complete setup are cleared after
//!   [`EndpointConfig::setup_timeout`]. Tunnels holding state after a StopCCN count too.
//! - Sessions: at most [`EndpointConfig::max_sessions_per_tunnel`] (pending included) and
//!   [`EndpointConfig::max_pending_sessions`] awaiting the application's decision; beyond
//!   them ICRQ is answered with CDN result 4.
//! - Tie breaker (§4.4.3): an LNS never originates tunnels, so it ignores Tie Breaker AVPs. A
//!   LAC endpoint accepts no control connections, except when it has an SCCRQ outstanding to
//!   the same peer address: the lower Tie Breaker wins (one present beats none; equal values
//!   make both sides discard). If ours wins the peer's SCCRQ is ignored; if it loses (or neither
//!   side sent one) our tunnel is discarded silently (`TunnelDown`) and the peer's SCCRQ is
//!   answered as a recipient.
//! - Output: at most [`MAX_QUEUED_TRANSMITS`] datagrams wait for `poll_transmit`; beyond that
//!   they are dropped (counted) and the reliability layer retransmits.
//! - Events: at most [`MAX_QUEUED_EVENTS`]; informational ones (`SetLinkInfo`, `WanError`)
//!   are dropped first, once [`MAX_QUEUED_INFO_EVENTS`] are queued.
//! - Local closes: `close_session` and `reject_session` emit no event; `close_tunnel` and
//!   `shutdown` emit `SessionDown` for every session and then `TunnelDown`.
//! - `TunnelDown` is emitted only for tunnels the application knows: created by `connect` or
//!   reported by `TunnelUp`. `SessionRequestCancelled` ends a `SessionRequested` that was not
//!   accepted (peer CDN, timeout, tunnel down).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};

use crate::channel::ChannelConfig;
use crate::error::Error;
use crate::header::Packet;
use crate::message::{CallErrors, CdnResult, ControlMessage, MessageType, StopCcnResult};
use crate::timer_index::TimerIndex;
use crate::tunnel::Tunnel;

/// Most datagrams queued for [`Endpoint::poll_transmit`].
pub const MAX_QUEUED_TRANSMITS: usize = 8192;
/// Most events queued for [`Endpoint::poll_event`].
pub const MAX_QUEUED_EVENTS: usize = 65_536;
/// Informational events are dropped while this many events are queued.
pub const MAX_QUEUED_INFO_EVENTS: usize = 1024;

/// Which side of RFC 2661 this endpoint plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// L2TP Network Server: accepts tunnels (SCCRQ) and incoming calls (ICRQ).
    Lns,
    /// L2TP Access Concentrator: opens tunnels and incoming calls (test client, load generator).
    Lac,
}

/// Endpoint configuration. `Debug` never shows the tunnel secret.
#[derive(Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// LNS or LAC.
    pub role: Role,
    /// Host Name AVP we send (empty → "sluice").
    pub hostname: String,
    /// Vendor Name AVP we send.
    pub vendor: String,
    /// Firmware Revision AVP we send.
    pub firmware_revision: u16,
    /// Tunnel secret (§4.3, §5.1.1). With it we authenticate the peer and can decode hidden
    /// AVPs; without it a peer's Challenge is refused.
    pub secret: Option<Vec<u8>>,
    /// Hide every AVP §4.4 allows to be hidden (needs `secret`). Default off.
    pub hide_avps: bool,
    /// Send HELLO after this long without a message from the peer (§5.5; 60 s). `None` (or
    /// zero) disables HELLO, leaving dead-peer detection to messages we send anyway.
    pub hello_interval: Option<Duration>,
    /// Receive Window Size we advertise (§5.8; 16).
    pub recv_window: u16,
    /// First retransmission timeout (§5.8; 1 s; clamped to 0.1–8 s).
    pub retransmit_initial: Duration,
    /// Cap of the exponential back-off, clamped to 8..=16 s (§5.8; 8 s).
    pub retransmit_cap: Duration,
    /// Retransmissions before the tunnel is declared dead (§5.8; 5).
    pub max_retransmits: u32,
    /// Most tunnels (any state) at once.
    pub max_tunnels: usize,
    /// Most tunnels still being set up at once (SCCRQ flood protection).
    pub max_pending_tunnels: usize,
    /// Most sessions per tunnel, pending ones included.
    pub max_sessions_per_tunnel: usize,
    /// Most ICRQs per tunnel awaiting `accept_session`/`reject_session`.
    pub max_pending_sessions: usize,
    /// Tunnel and session setup must complete within this time.
    pub setup_timeout: Duration,
    /// LAC: send a Tie Breaker AVP in SCCRQ (§4.4.3). Default off.
    pub send_tie_breaker: bool,
    /// LAC: send Sequencing Required in ICCN (§4.4.4). Default off.
    pub sequencing_required: bool,
    /// LAC: (Tx) Connect Speed sent in ICCN, bits per second.
    pub connect_speed: u32,
}

impl fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("role", &self.role)
            .field("hostname", &self.hostname)
            .field("vendor", &self.vendor)
            .field("firmware_revision", &self.firmware_revision)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("hide_avps", &self.hide_avps)
            .field("hello_interval", &self.hello_interval)
            .field("recv_window", &self.recv_window)
            .field("retransmit_initial", &self.retransmit_initial)
            .field("retransmit_cap", &self.retransmit_cap)
            .field("max_retransmits", &self.max_retransmits)
            .field("max_tunnels", &self.max_tunnels)
            .field("max_pending_tunnels", &self.max_pending_tunnels)
            .field("max_sessions_per_tunnel", &self.max_sessions_per_tunnel)
            .field("max_pending_sessions", &self.max_pending_sessions)
            .field("setup_timeout", &self.setup_timeout)
            .field("send_tie_breaker", &self.send_tie_breaker)
            .field("sequencing_required", &self.sequencing_required)
            .field("connect_speed", &self.connect_speed)
            .finish()
    }
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            role: Role::Lns,
            hostname: "sluice".into(),
            vendor: "Sluice".into(),
            firmware_revision: 1,
            secret: None,
            hide_avps: false,
            hello_interval: Some(Duration::from_secs(60)),
            recv_window: 16,
            retransmit_initial: Duration::from_secs(1),
            retransmit_cap: Duration::from_secs(8),
            max_retransmits: 5,
            max_tunnels: 1024,
            max_pending_tunnels: 64,
            max_sessions_per_tunnel: 1024,
            max_pending_sessions: 64,
            setup_timeout: Duration::from_secs(30),
            send_tie_breaker: false,
            sequencing_required: false,
            connect_speed: 100_000_000,
        }
    }
}

impl EndpointConfig {
    /// The reliability parameters of every tunnel.
    pub fn channel_config(&self) -> ChannelConfig {
        ChannelConfig {
            recv_window: self.recv_window.max(1),
            retransmit_initial: self
                .retransmit_initial
                .clamp(Duration::from_millis(100), Duration::from_secs(8)),
            retransmit_cap: self
                .retransmit_cap
                .clamp(Duration::from_secs(8), Duration::from_secs(16)),
            max_retransmits: self.max_retransmits.min(32),
        }
    }
}

/// One datagram to send from `local` to `remote`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Source address (the address the tunnel's first datagram arrived on / was sent from).
    pub local: SocketAddr,
    /// Destination.
    pub remote: SocketAddr,
    /// The L2TP control message.
    pub payload: Vec<u8>,
}

/// Something the application must know or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The control connection is established (SCCCN received as recipient, sent as originator).
    TunnelUp {
        /// Our Tunnel ID.
        tunnel: u16,
        /// The peer's Tunnel ID.
        peer_tunnel: u16,
        /// Peer address.
        remote: SocketAddr,
        /// Our address.
        local: SocketAddr,
        /// Peer's Host Name.
        peer_hostname: String,
        /// Peer's Vendor Name (empty when absent).
        peer_vendor: String,
    },
    /// LNS: ICRQ received; answer with `accept_session` or `reject_session`.
    SessionRequested {
        /// Our Tunnel ID.
        tunnel: u16,
        /// The LAC's Session ID.
        peer_session: u16,
        /// Call Serial Number.
        serial: u32,
        /// Peer address.
        remote: SocketAddr,
        /// Calling Number (empty when absent).
        calling_number: String,
        /// Called Number (empty when absent).
        called_number: String,
        /// Sub-Address (empty when absent).
        sub_address: String,
        /// Bearer Type.
        bearer_type: Option<u32>,
        /// Physical Channel ID.
        physical_channel_id: Option<u32>,
    },
    /// A `SessionRequested` that was never accepted is gone (CDN, timeout, tunnel down).
    SessionRequestCancelled {
        /// Our Tunnel ID.
        tunnel: u16,
        /// The LAC's Session ID.
        peer_session: u16,
        /// Human-readable cause.
        reason: String,
    },
    /// The session is established (LNS: ICCN received; LAC: ICCN sent).
    SessionUp {
        /// Our Tunnel ID.
        tunnel: u16,
        /// Our Session ID.
        local_session: u16,
        /// Peer's Tunnel ID (goes into data headers we send).
        peer_tunnel: u16,
        /// Peer's Session ID (goes into data headers we send).
        peer_session: u16,
        /// Peer address.
        remote: SocketAddr,
        /// Our address.
        local: SocketAddr,
        /// Sequencing Required was in ICCN: data messages must carry Ns/Nr (§5.4).
        sequencing: bool,
        /// (Tx) Connect Speed from ICCN.
        tx_connect_speed: u32,
        /// Rx Connect Speed from ICCN.
        rx_connect_speed: Option<u32>,
        /// Framing Type from ICCN.
        framing_type: u32,
        /// Private Group ID from ICCN.
        private_group_id: Option<Vec<u8>>,
    },
    /// The session ended: CDN received, protocol error or setup timeout (CDN sent), or the
    /// tunnel went away (one per session, before `TunnelDown`).
    SessionDown {
        /// Our Tunnel ID.
        tunnel: u16,
        /// Our Session ID.
        local_session: u16,
        /// Human-readable cause.
        reason: String,
    },
    /// The tunnel ended (StopCCN either way, peer unreachable, setup failure).
    TunnelDown {
        /// Our Tunnel ID.
        tunnel: u16,
        /// Human-readable cause.
        reason: String,
    },
    /// Set-Link-Info received (informational).
    SetLinkInfo {
        /// Our Tunnel ID.
        tunnel: u16,
        /// Our Session ID.
        local_session: u16,
        /// Send ACCM.
        send_accm: u32,
        /// Receive ACCM.
        recv_accm: u32,
    },
    /// WAN-Error-Notify received (informational).
    WanError {
        /// Our Tunnel ID.
        tunnel: u16,
        /// Our Session ID.
        local_session: u16,
        /// Cumulative counters.
        errors: CallErrors,
    },
}

impl Event {
    fn is_info(&self) -> bool {
        matches!(self, Event::SetLinkInfo { .. } | Event::WanError { .. })
    }
}

/// Control connection states (§7.2.1), plus the two teardown phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelState {
    /// Recipient: created by an SCCRQ being processed.
    Idle,
    /// Originator: SCCRQ sent.
    WaitCtlReply,
    /// Recipient: SCCRP sent.
    WaitCtlConn,
    /// Established.
    Established,
    /// We sent StopCCN and wait for its acknowledgement.
    Closing,
    /// We received StopCCN and keep acknowledging retransmissions for a full cycle (§5.7).
    Draining,
}

impl TunnelState {
    /// The RFC's state name.
    pub fn name(self) -> &'static str {
        match self {
            TunnelState::Idle => "idle",
            TunnelState::WaitCtlReply => "wait-ctl-reply",
            TunnelState::WaitCtlConn => "wait-ctl-conn",
            TunnelState::Established => "established",
            TunnelState::Closing => "closing",
            TunnelState::Draining => "draining",
        }
    }
}

/// Incoming-call session states (§7.4.1, §7.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// LAC: waiting for the tunnel.
    WaitTunnel,
    /// LAC: ICRQ sent.
    WaitReply,
    /// LNS: ICRP sent.
    WaitConnect,
    /// Established.
    Established,
}

/// Snapshot of one tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInfo {
    /// Our Tunnel ID.
    pub tunnel: u16,
    /// Peer's Tunnel ID (0 until known).
    pub peer_tunnel: u16,
    /// Our address.
    pub local: SocketAddr,
    /// Peer address.
    pub remote: SocketAddr,
    /// State.
    pub state: TunnelState,
    /// Peer's Host Name.
    pub peer_hostname: String,
    /// Sessions with a local id (any state).
    pub sessions: usize,
    /// ICRQs awaiting a decision.
    pub pending_sessions: usize,
    /// Control messages unacknowledged.
    pub in_flight: usize,
    /// Peer's Receive Window Size in use.
    pub peer_window: u16,
    /// Retransmissions so far.
    pub retransmits: u64,
}

/// Snapshot of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// Our Session ID.
    pub local_session: u16,
    /// Peer's Session ID (0 until known).
    pub peer_session: u16,
    /// State.
    pub state: SessionState,
    /// Call Serial Number.
    pub serial: u32,
    /// Data sequencing required.
    pub sequencing: bool,
}

/// Endpoint counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointStats {
    /// Datagrams given to `handle_input`.
    pub rx_datagrams: u64,
    /// Datagrams dropped by `handle_input` with an error.
    pub rx_dropped: u64,
    /// Datagrams handed out by `poll_transmit`.
    pub tx_datagrams: u64,
    /// Datagrams dropped because the transmit queue was full.
    pub tx_dropped: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Tunnels created.
    pub tunnels_created: u64,
    /// Control messages retransmitted (RFC 2661 §5.8), tunnels that ended included.
    pub retransmits: u64,
}

/// Bounded event queue.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    queue: VecDeque<Event>,
    dropped: u64,
}

impl EventQueue {
    pub(crate) fn push(&mut self, ev: Event) {
        if self.queue.len() >= MAX_QUEUED_EVENTS {
            self.dropped += 1;
        } else {
            self.queue.push_back(ev);
        }
    }

    pub(crate) fn push_info(&mut self, ev: Event) {
        debug_assert!(ev.is_info());
        if self.queue.len() >= MAX_QUEUED_INFO_EVENTS {
            self.dropped += 1;
        } else {
            self.push(ev);
        }
    }
}

/// Bounded transmit queue.
#[derive(Debug, Default)]
pub(crate) struct TransmitQueue {
    queue: VecDeque<Transmit>,
    dropped: u64,
}

impl TransmitQueue {
    pub(crate) fn push(&mut self, t: Transmit) {
        if self.queue.len() >= MAX_QUEUED_TRANSMITS {
            self.dropped += 1;
        } else {
            self.queue.push_back(t);
        }
    }
}

/// What tunnels need from their endpoint while handling something.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub cfg: &'a EndpointConfig,
    pub rng: &'a mut ChaCha20Rng,
    pub events: &'a mut EventQueue,
    pub serial: &'a mut u32,
}

/// All tunnels of one role.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    rng: ChaCha20Rng,
    tunnels: BTreeMap<u16, Tunnel>,
    /// (peer address, peer's Assigned Tunnel ID) → our Tunnel ID, for SCCRQ retransmissions
    /// and StopCCNs sent before the peer learned our id.
    by_peer: BTreeMap<(SocketAddr, u16), u16>,
    /// Each tunnel's next deadline, earliest first: the next timeout and the due tunnels are
    /// found without visiting every tunnel.
    timers: TimerIndex,
    events: EventQueue,
    transmits: TransmitQueue,
    serial: u32,
    stats: EndpointStats,
    shutting_down: bool,
}

impl Endpoint {
    /// An endpoint; all randomness (Tunnel IDs, challenges, random vectors, tie breakers)
    /// comes from `seed`.
    pub fn new(cfg: EndpointConfig, seed: [u8; 32]) -> Self {
        Self {
            cfg,
            rng: ChaCha20Rng::from_seed(seed),
            tunnels: BTreeMap::new(),
            by_peer: BTreeMap::new(),
            timers: TimerIndex::default(),
            events: EventQueue::default(),
            transmits: TransmitQueue::default(),
            serial: 1,
            stats: EndpointStats::default(),
            shutting_down: false,
        }
    }

    /// Replaces the tunnel secret (configuration reload). From now on it decodes and hides
    /// AVPs and authenticates tunnels, including Challenge Responses still awaited by tunnels in
    /// setup. Established tunnels are not re-authenticated.
    pub fn set_secret(&mut self, secret: Option<Vec<u8>>) {
        self.cfg.secret = secret;
    }

    /// Replaces the HELLO interval (configuration reload); applies to all tunnels.
    pub fn set_hello_interval(&mut self, interval: Option<Duration>) {
        self.cfg.hello_interval = interval;
        let ids: Vec<u16> = self.tunnels.keys().copied().collect();
        for id in ids {
            self.reschedule(id);
        }
    }

    /// Files tunnel `id`'s next deadline in the timer index (or takes it out: no deadline, or
    /// no such tunnel any more).
    fn reschedule(&mut self, id: u16) {
        let hello = self.cfg.hello_interval;
        let at = self.tunnels.get(&id).and_then(|t| t.poll_timeout(hello));
        self.timers.set(id, at);
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Counters (O(tunnels): the live tunnels' retransmissions are summed).
    pub fn stats(&self) -> EndpointStats {
        let live: u64 = self
            .tunnels
            .values()
            .map(|t| t.channel.stats().retransmits)
            .sum();
        EndpointStats {
            tx_dropped: self.transmits.dropped,
            events_dropped: self.events.dropped,
            retransmits: self.stats.retransmits + live,
            ..self.stats
        }
    }

    /// Runs `f` on tunnel `id` with a context, then flushes its output and removes it when it
    /// is finished.
    fn with_tunnel<R>(
        &mut self,
        now: Instant,
        id: u16,
        f: impl FnOnce(&mut Tunnel, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let t = self.tunnels.get_mut(&id)?;
        let mut ctx = Ctx {
            now,
            cfg: &self.cfg,
            rng: &mut self.rng,
            events: &mut self.events,
            serial: &mut self.serial,
        };
        let r = f(t, &mut ctx);
        t.after(&mut ctx);
        t.flush(now, &mut self.transmits);
        if t.finished {
            let key = (t.remote, t.peer_id);
            self.stats.retransmits += t.channel.stats().retransmits;
            self.tunnels.remove(&id);
            if self.by_peer.get(&key) == Some(&id) {
                self.by_peer.remove(&key);
            }
        }
        self.reschedule(id);
        Some(r)
    }

    fn allocate_tunnel_id(&mut self) -> Option<u16> {
        if self.tunnels.len() >= usize::from(u16::MAX) {
            return None;
        }
        for _ in 0..64 {
            let id = (self.rng.next_u32() & 0xFFFF) as u16;
            if id != 0 && !self.tunnels.contains_key(&id) {
                return Some(id);
            }
        }
        (1..=u16::MAX).find(|id| !self.tunnels.contains_key(id))
    }

    fn check_new_tunnel(&self) -> Result<(), Error> {
        if self.tunnels.len() >= self.cfg.max_tunnels {
            return Err(Error::TooManyTunnels);
        }
        if self.tunnels.values().filter(|t| t.in_setup()).count() >= self.cfg.max_pending_tunnels {
            return Err(Error::TooManyPendingTunnels);
        }
        Ok(())
    }

    /// One UDP datagram that is an L2TP control message (T=1). `local` is the address it
    /// arrived on (replies leave from it). `Err` means it was dropped without any reply.
    pub fn handle_input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), Error> {
        self.stats.rx_datagrams += 1;
        let r = self.input(now, local, remote, datagram);
        if r.is_err() {
            self.stats.rx_dropped += 1;
        }
        r
    }

    fn input(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), Error> {
        let packet = Packet::new_checked(datagram)?;
        if !packet.is_control() {
            return Err(Error::NotControl);
        }
        let tid = packet.tunnel_id();
        if tid != 0 {
            let t = self.tunnels.get(&tid).ok_or(Error::UnknownTunnel(tid))?;
            if t.remote != remote {
                return Err(Error::AddressMismatch(tid));
            }
            self.with_tunnel(now, tid, |t, ctx| t.handle_datagram(ctx, datagram));
            return Ok(());
        }
        // Tunnel ID 0: SCCRQ (new or retransmitted), or a StopCCN sent before the peer knew
        // our id. Both name the peer's tunnel in Assigned Tunnel ID.
        let body = packet.payload();
        if body.is_empty() {
            return Err(Error::UnknownTunnel(0));
        }
        let parsed = ControlMessage::parse(body, self.cfg.secret.as_deref());
        let (message_type, peer_tid, tie_breaker) = match &parsed {
            Ok(m) => (
                Some(m.message_type),
                m.avps.assigned_tunnel_id,
                m.avps.tie_breaker,
            ),
            Err(e) => (e.message_type, e.assigned_tunnel_id, None),
        };
        let Some(peer_tid) = peer_tid.filter(|p| *p != 0) else {
            return Err(match parsed {
                Err(e) => Error::Malformed(e.error),
                Ok(_) => Error::UnknownTunnel(0),
            });
        };
        if let Some(&id) = self.by_peer.get(&(remote, peer_tid)) {
            self.with_tunnel(now, id, |t, ctx| t.handle_datagram(ctx, datagram));
            return Ok(());
        }
        if message_type != Some(MessageType::Sccrq) {
            return Err(Error::UnknownTunnel(0));
        }
        if self.shutting_down {
            return Err(Error::Refused("endpoint is shutting down"));
        }
        if self.cfg.role == Role::Lac && !self.lac_accepts_sccrq(now, remote, tie_breaker) {
            return Err(Error::Refused("a LAC endpoint does not accept SCCRQ"));
        }
        self.check_new_tunnel()?;
        let id = self.allocate_tunnel_id().ok_or(Error::TooManyTunnels)?;
        let ctx = Ctx {
            now,
            cfg: &self.cfg,
            rng: &mut self.rng,
            events: &mut self.events,
            serial: &mut self.serial,
        };
        let tunnel = Tunnel::new_responder(&ctx, id, local, remote, peer_tid);
        self.tunnels.insert(id, tunnel);
        self.by_peer.insert((remote, peer_tid), id);
        self.stats.tunnels_created += 1;
        self.with_tunnel(now, id, |t, ctx| t.handle_datagram(ctx, datagram));
        Ok(())
    }

    /// LAC role: SCCRQ from `remote` collides with ours? Applies the tie breaker (§4.4.3) and
    /// says whether to answer the peer's SCCRQ.
    fn lac_accepts_sccrq(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        theirs: Option<[u8; 8]>,
    ) -> bool {
        let ours: Vec<(u16, Option<[u8; 8]>)> = self
            .tunnels
            .values()
            .filter(|t| t.originator && t.remote == remote && t.state == TunnelState::WaitCtlReply)
            .map(|t| (t.local_id, t.tie_breaker))
            .collect();
        if ours.is_empty() {
            return false;
        }
        let mut accept = false;
        for (id, tb) in ours {
            let (discard, answer) = match (tb, theirs) {
                (Some(a), Some(b)) if a < b => (false, false),
                (Some(a), Some(b)) if a == b => (true, false),
                (Some(_), Some(_)) => (true, true),
                (Some(_), None) => (false, false),
                (None, Some(_)) => (true, true),
                (None, None) => (false, true),
            };
            if discard {
                self.with_tunnel(now, id, |t, ctx| {
                    t.discard(ctx, "tie breaker lost to the peer's SCCRQ".into());
                });
            }
            accept |= answer;
        }
        accept
    }

    /// Runs timers (retransmissions, delayed acks, HELLO, setup timeouts, drain periods).
    pub fn handle_timeout(&mut self, now: Instant) {
        let hello = self.cfg.hello_interval;
        // Each tunnel due now runs once; one whose deadline moved later meanwhile (data
        // activity) is only filed again.
        for id in self.timers.take_due(now) {
            let due = self
                .tunnels
                .get(&id)
                .and_then(|t| t.poll_timeout(hello))
                .is_some_and(|d| d <= now);
            if due {
                self.with_tunnel(now, id, |t, ctx| t.handle_timeout(ctx));
            } else {
                self.reschedule(id);
            }
        }
    }

    /// When `handle_timeout` must next be called (O(1); may be early, never late).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first()
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.queue.pop_front()?;
        self.stats.tx_datagrams += 1;
        Some(t)
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.queue.pop_front()
    }

    /// LNS: accepts a `SessionRequested` with ICRP. `local_session` is allocated by the caller
    /// (node-wide unique ids; non-zero, unique on the tunnel).
    pub fn accept_session(
        &mut self,
        now: Instant,
        tunnel: u16,
        peer_session: u16,
        local_session: u16,
    ) -> Result<(), Error> {
        self.with_tunnel(now, tunnel, |t, ctx| {
            t.accept_session(ctx, peer_session, local_session)
        })
        .unwrap_or(Err(Error::UnknownTunnel(tunnel)))
    }

    /// LNS: refuses a `SessionRequested` with CDN. Unknown ids are ignored.
    pub fn reject_session(
        &mut self,
        now: Instant,
        tunnel: u16,
        peer_session: u16,
        result: CdnResult,
        message: &str,
    ) {
        self.with_tunnel(now, tunnel, |t, ctx| {
            t.reject_session(ctx, peer_session, result, message)
        });
    }

    /// Ends a session with CDN (no `SessionDown` event). Unknown ids are ignored.
    pub fn close_session(
        &mut self,
        now: Instant,
        tunnel: u16,
        local_session: u16,
        result: CdnResult,
        message: &str,
    ) {
        self.with_tunnel(now, tunnel, |t, ctx| {
            t.close_session(ctx, local_session, result, message)
        });
    }

    /// Ends a tunnel with StopCCN; emits `SessionDown` for each session and `TunnelDown`.
    /// Unknown ids are ignored.
    pub fn close_tunnel(
        &mut self,
        now: Instant,
        tunnel: u16,
        result: StopCcnResult,
        message: &str,
    ) {
        self.with_tunnel(now, tunnel, |t, ctx| {
            t.stop(
                ctx,
                result,
                None,
                message,
                format!("closed locally: {message}"),
            )
        });
    }

    /// StopCCN (result 6, shutting down) on every tunnel; new SCCRQs and `connect` are refused
    /// from now on. Keep polling until [`Endpoint::is_idle`].
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        let ids: Vec<u16> = self.tunnels.keys().copied().collect();
        for id in ids {
            self.close_tunnel(now, id, StopCcnResult::Shutdown, "shutting down");
        }
    }

    /// LAC: opens a tunnel to `remote` with SCCRQ; returns our Tunnel ID.
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<u16, Error> {
        if self.cfg.role != Role::Lac {
            return Err(Error::WrongRole);
        }
        if self.shutting_down {
            return Err(Error::Refused("endpoint is shutting down"));
        }
        self.check_new_tunnel()?;
        let id = self.allocate_tunnel_id().ok_or(Error::TooManyTunnels)?;
        let mut ctx = Ctx {
            now,
            cfg: &self.cfg,
            rng: &mut self.rng,
            events: &mut self.events,
            serial: &mut self.serial,
        };
        let tunnel = Tunnel::new_originator(&mut ctx, id, local, remote);
        self.tunnels.insert(id, tunnel);
        self.stats.tunnels_created += 1;
        self.with_tunnel(now, id, |_, _| ());
        Ok(id)
    }

    /// LAC: opens an incoming-call session with ICRQ (sent once the tunnel is up).
    /// `local_session` is non-zero and unique on the tunnel.
    pub fn open_session(
        &mut self,
        now: Instant,
        tunnel: u16,
        local_session: u16,
    ) -> Result<(), Error> {
        if self.cfg.role != Role::Lac {
            return Err(Error::WrongRole);
        }
        self.with_tunnel(now, tunnel, |t, ctx| t.open_session(ctx, local_session))
            .unwrap_or(Err(Error::UnknownTunnel(tunnel)))
    }

    /// Sends Set-Link-Info (§6.14; normally LNS → LAC) for an established session.
    pub fn set_link_info(
        &mut self,
        now: Instant,
        tunnel: u16,
        local_session: u16,
        send_accm: u32,
        recv_accm: u32,
    ) -> Result<(), Error> {
        self.with_tunnel(now, tunnel, |t, ctx| {
            t.set_link_info(ctx, local_session, send_accm, recv_accm)
        })
        .unwrap_or(Err(Error::UnknownTunnel(tunnel)))
    }

    /// Data received on `tunnel`: counts as liveness for the HELLO timer (§5.5). Its deadline
    /// only moves later, so the timer index keeps the earlier one until it comes due.
    pub fn note_data_activity(&mut self, now: Instant, tunnel: u16) {
        if let Some(t) = self.tunnels.get_mut(&tunnel) {
            t.note_activity(now);
        }
    }

    /// No tunnels left (e.g. after `shutdown` completed).
    pub fn is_idle(&self) -> bool {
        self.tunnels.is_empty()
    }

    /// Whether [`Endpoint::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Number of tunnels in any state (including ones closing or holding state after StopCCN).
    pub fn tunnel_count(&self) -> usize {
        self.tunnels.len()
    }

    /// The peer known as `from` is now reached at `to` (its NAT mapping changed, learned from
    /// authenticated IPsec traffic; RFC 3948 §2.3): every tunnel with it follows, and so do
    /// later replies and retransmissions. Messages from `from` are refused from then on
    /// (§8.1). Returns the Tunnel IDs that moved. The caller vouches for the move: nothing in
    /// L2TP itself authenticates an address.
    pub fn move_peer(&mut self, from: SocketAddr, to: SocketAddr) -> Vec<u16> {
        let mut moved = Vec::new();
        for t in self.tunnels.values_mut().filter(|t| t.remote == from) {
            t.remote = to;
            moved.push(t.local_id);
            if self.by_peer.get(&(from, t.peer_id)) == Some(&t.local_id) {
                self.by_peer.remove(&(from, t.peer_id));
                self.by_peer.insert((to, t.peer_id), t.local_id);
            }
        }
        moved
    }

    /// Our Tunnel IDs (owned, so the caller can close tunnels while iterating).
    pub fn tunnel_ids(&self) -> Vec<u16> {
        self.tunnels.keys().copied().collect()
    }

    /// Snapshots of all tunnels (for session tables and metrics).
    pub fn tunnels(&self) -> impl Iterator<Item = TunnelInfo> + '_ {
        self.tunnels.values().map(|t| TunnelInfo {
            tunnel: t.local_id,
            peer_tunnel: t.peer_id,
            local: t.local,
            remote: t.remote,
            state: t.state,
            peer_hostname: t.peer_hostname.clone(),
            sessions: t.sessions.len(),
            pending_sessions: t.pending.len(),
            in_flight: t.channel.in_flight(),
            peer_window: t.channel.peer_window(),
            retransmits: t.channel.stats().retransmits,
        })
    }

    /// Snapshots of the sessions of `tunnel` (empty for an unknown tunnel).
    pub fn sessions(&self, tunnel: u16) -> impl Iterator<Item = SessionInfo> + '_ {
        self.tunnels
            .get(&tunnel)
            .into_iter()
            .flat_map(|t| t.sessions.values())
            .map(|s| SessionInfo {
                local_session: s.local_id,
                peer_session: s.peer_id,
                state: s.state,
                serial: s.serial,
                sequencing: s.sequencing,
            })
    }

    /// Queued events (for tests and back-pressure decisions).
    pub fn queued_events(&self) -> usize {
        self.events.queue.len()
    }

    /// Queued datagrams.
    pub fn queued_transmits(&self) -> usize {
        self.transmits.queue.len()
    }
}
