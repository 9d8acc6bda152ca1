//! A link is one PPP session, carried by a PPTP call over enhanced GRE or by
//! an L2TP session over UDP — on the gateway (PAC / LNS role) or in the
//! in-repo client (PNS / LAC role). The link table demultiplexes GRE by our
//! Call ID, L2TP data by our Session ID (one node-wide ID space for both), and
//! TUN traffic by tunnel address.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use sluice_l2tp::DataSequencer;
use sluice_ppp::{AuthProto, Encoding, MppeRepairs, Phase, Ppp};
use sluice_pptp::GreChannel;
use tokio::sync::mpsc;
use tracing::Span;

use crate::datapath::Hooks;
use crate::datapath::ratelimit::{RateLimit, SessionLimit};
use crate::datapath::timer_wheel::Wheel;
use crate::gateway::admission::SetupSlot;
use crate::gateway::policy::SessionPhase;
use crate::metrics::{Protocol, Role, SessionLabels};

/// Commands from the data path to the control connection that owns a call.
#[derive(Debug)]
pub enum CtlCmd {
    /// The PPP session of this call ended: tell the peer (PPTP Call-Disconnect-Notify,
    /// L2TP CDN).
    CallDown { local_call_id: u16, cause: String },
}

/// The trace of one session setup, opened when the call is requested (PPTP
/// Outgoing-Call-Request, L2TP ICRQ; for a dialled call, `role` `client`, when the server
/// answers it): children `control`, `lcp`, `auth`, `ncp` follow in order; `user`, `call_id`
/// and `result` (a `session_setups_total` result) are filled in as they become known.
/// `caller` is the peer's public address.
pub fn setup_span(role: Role, protocol: Protocol, caller: Ipv4Addr) -> Span {
    tracing::info_span!(
        "session_setup",
        role = role.as_str(),
        protocol = protocol.as_str(),
        %caller,
        call_id = tracing::field::Empty,
        user = tracing::field::Empty,
        result = tracing::field::Empty,
    )
}

/// How a link's PPP frames travel, with the per-link state of that framing.
pub enum Framing {
    /// PPTP: enhanced GRE (RFC 2637 §4) over the node's raw GRE socket.
    Gre(GreChannel),
    /// L2TP data messages (RFC 2661 §5.4) over the node's L2TP UDP port.
    L2tp(L2tpFraming),
}

/// Addressing and sequencing of one L2TP session's data messages.
pub struct L2tpFraming {
    /// Our Tunnel ID (data from the peer carries it).
    pub local_tunnel: u16,
    /// The peer's Tunnel and Session IDs (data we send carries them).
    pub peer_tunnel: u16,
    pub peer_session: u16,
    /// The peer's address and port: the only accepted source, and where data goes.
    pub remote: SocketAddrV4,
    /// The local address the tunnel's datagrams arrive on: ours leave from it.
    pub local: Ipv4Addr,
    /// Data-message sequencing (RFC 2661 §5.4), on when the peer asks for it.
    pub seq: DataSequencer,
}

/// Byte and packet counters of one link (IP payload, both directions).
#[derive(Debug, Default)]
pub struct LinkStats {
    pub rx_bytes: AtomicU64,
    pub rx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
}

/// Mutable state of a link, behind its lock.
pub struct LinkState {
    pub ppp: Ppp,
    pub framing: Framing,
    pub username: Option<String>,
    /// "namespace/name" of the authenticated user's VpnUser (empty until then).
    pub source: String,
    /// Why admission refused the current login attempt, if it did.
    pub refusal: Option<String>,
    pub auth_method: Option<AuthProto>,
    /// The peer's tunnel address once assigned.
    pub address: Option<Ipv4Addr>,
    /// Whether `address` came from the dynamic pool (else it is a static one).
    pub address_from_pool: bool,
    /// Routes installed toward the client while it is up.
    pub routes: Vec<Ipv4Net>,
    /// Where the session is in the gateway's accounting (counted toward maxSessions,
    /// setup outcome recorded, last login attempt, torn down).
    pub session: SessionPhase,
    pub up_at: Option<(Instant, SystemTime)>,
    pub encoding: Encoding,
    /// Reason the link went down, once it did.
    pub down_reason: Option<String>,
    /// The PPP phase last seen, and since when (setup-phase timing).
    pub phase: Phase,
    pub phase_since: Instant,
    /// The `sluice_sessions_active` series this session counts in while it is up.
    pub active: Option<SessionLabels>,
    /// Trace of the setup (`session_setup`, until the network phase is up or the setup
    /// fails) and of its current phase (`lcp`, `auth`, `ncp`).
    pub setup_span: Span,
    pub phase_span: Span,
    /// PPP retransmissions already counted in the metrics.
    pub retransmits_seen: u64,
    /// Stateful MPPE repairs already counted in the metrics.
    pub mppe_repairs_seen: MppeRepairs,
    /// The user's bandwidth limit and this session's buckets.
    pub rate_limit: Option<(RateLimit, SessionLimit)>,
    /// Gateway: the session's place among those in setup, given back once authenticated.
    pub setup_slot: Option<SetupSlot>,
    /// Gateway: the password check is held back until then (login throttle).
    pub held_auth: Option<Instant>,
}

impl LinkState {
    /// Makes `span` the setup's trace (`session_setup`) and starts its `lcp` phase.
    pub fn start_setup(&mut self, span: Span) {
        self.phase_span = tracing::info_span!(parent: &span, "lcp");
        self.setup_span = span;
    }
}

/// One PPP session (over GRE or L2TP).
pub struct Link {
    pub protocol: Protocol,
    /// Our PPTP Call ID or L2TP Session ID (unique on this node across both).
    pub local_call_id: u16,
    /// The peer's PPTP Call ID or L2TP Session ID.
    pub peer_call_id: u16,
    /// The peer's public address: GRE destination and the only accepted GRE source
    /// (for L2TP, the address of [`L2tpFraming::remote`]).
    pub peer: Ipv4Addr,
    pub created: Instant,
    pub ctl: mpsc::UnboundedSender<CtlCmd>,
    pub stats: LinkStats,
    /// Next timer deadline in nanoseconds since `epoch` (u64::MAX: none). Set it with
    /// [`set_deadline`] or [`lower_deadline`], which file it in the timer wheel.
    pub deadline: AtomicU64,
    /// The deadline of this link's one live entry in the timer wheel (u64::MAX: none);
    /// entries that do not match it are stale ([`crate::datapath::timer_wheel`]).
    pub scheduled: AtomicU64,
    /// Set once the link is torn down (lock-free check for the hot path).
    pub dead: AtomicBool,
    /// Milliseconds (data-path clock) of the last frame from the peer that PPP accepted
    /// (data or control): liveness for the PPTP control connection's keep-alive.
    pub last_rx_ms: AtomicU64,
    /// A call this node dialled as a client (issue 22, `VpnClient`): its own hooks, which the
    /// gateway's hand its PPP events, source checks and timers to. `None`: a session the
    /// gateway serves.
    pub owner: Option<Arc<dyn Hooks>>,
    state: Mutex<LinkState>,
}

impl Link {
    pub fn new(
        local_call_id: u16,
        peer_call_id: u16,
        peer: Ipv4Addr,
        now: Instant,
        ctl: mpsc::UnboundedSender<CtlCmd>,
        ppp: Ppp,
        framing: Framing,
    ) -> Link {
        Link {
            protocol: match framing {
                Framing::Gre(_) => Protocol::Pptp,
                Framing::L2tp(_) => Protocol::L2tp,
            },
            local_call_id,
            peer_call_id,
            peer,
            created: now,
            ctl,
            stats: LinkStats::default(),
            deadline: AtomicU64::new(u64::MAX),
            scheduled: AtomicU64::new(u64::MAX),
            dead: AtomicBool::new(false),
            last_rx_ms: AtomicU64::new(0),
            owner: None,
            state: Mutex::new(LinkState {
                ppp,
                framing,
                username: None,
                source: String::new(),
                refusal: None,
                auth_method: None,
                address: None,
                address_from_pool: false,
                routes: Vec::new(),
                session: SessionPhase::default(),
                up_at: None,
                encoding: Encoding::None,
                down_reason: None,
                phase: Phase::Establish,
                phase_since: now,
                active: None,
                setup_span: Span::none(),
                phase_span: Span::none(),
                retransmits_seen: 0,
                mppe_repairs_seen: MppeRepairs::default(),
                rate_limit: None,
                setup_slot: None,
                held_auth: None,
            }),
        }
    }

    /// Makes this link a call dialled by `owner` (see [`Link::owner`]).
    pub fn with_owner(mut self, owner: Arc<dyn Hooks>) -> Link {
        self.owner = Some(owner);
        self
    }

    /// Makes `span` the setup's trace (`session_setup`) and starts its `lcp` phase.
    pub fn set_setup_span(&self, span: Span) {
        self.lock().start_setup(span);
    }

    /// Locks the link state; a poisoned lock (a panic elsewhere) still yields the state.
    pub fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Demultiplexing tables shared by all data-path threads.
#[derive(Default)]
pub struct LinkTable {
    by_call: RwLock<HashMap<u16, Arc<Link>>>,
    by_addr: RwLock<HashMap<Ipv4Addr, Arc<Link>>>,
    /// Networks behind clients (spec.routes), longest prefix first.
    nets: RwLock<Vec<(Ipv4Net, Arc<Link>)>>,
}

impl LinkTable {
    pub fn insert(&self, link: Arc<Link>) {
        write(&self.by_call).insert(link.local_call_id, link);
    }

    pub fn get(&self, call_id: u16) -> Option<Arc<Link>> {
        read(&self.by_call).get(&call_id).cloned()
    }

    pub fn remove(&self, call_id: u16) -> Option<Arc<Link>> {
        write(&self.by_call).remove(&call_id)
    }

    pub fn bind_address(&self, addr: Ipv4Addr, link: Arc<Link>) {
        write(&self.by_addr).insert(addr, link);
    }

    pub fn unbind_address(&self, addr: Ipv4Addr, call_id: u16) {
        let mut map = write(&self.by_addr);
        if map.get(&addr).is_some_and(|l| l.local_call_id == call_id) {
            map.remove(&addr);
        }
    }

    pub fn by_address(&self, addr: Ipv4Addr) -> Option<Arc<Link>> {
        read(&self.by_addr).get(&addr).cloned()
    }

    /// The only address-bound link, when there is exactly one.
    pub fn sole_bound(&self) -> Option<Arc<Link>> {
        let map = read(&self.by_addr);
        if map.len() == 1 {
            map.values().next().cloned()
        } else {
            None
        }
    }

    /// Routes `net` to `link` (networks behind a client).
    pub fn bind_net(&self, net: Ipv4Net, link: Arc<Link>) {
        let mut nets = write(&self.nets);
        nets.push((net, link));
        nets.sort_by_key(|(n, _)| std::cmp::Reverse(n.prefix_len()));
    }

    /// Drops every network routed to `call_id`.
    pub fn unbind_nets(&self, call_id: u16) {
        write(&self.nets).retain(|(_, l)| l.local_call_id != call_id);
    }

    /// Longest-prefix match over the networks behind clients.
    pub fn by_net(&self, addr: Ipv4Addr) -> Option<Arc<Link>> {
        read(&self.nets)
            .iter()
            .find(|(n, _)| n.contains(&addr))
            .map(|(_, l)| l.clone())
    }

    /// A snapshot of every link.
    pub fn all(&self) -> Vec<Arc<Link>> {
        read(&self.by_call).values().cloned().collect()
    }

    /// How many sessions this node serves (every link but the calls it dialled as a client).
    pub fn served(&self) -> usize {
        read(&self.by_call)
            .values()
            .filter(|l| l.owner.is_none())
            .count()
    }

    /// A snapshot of the sessions this node serves (not the calls it dialled).
    pub fn served_links(&self) -> Vec<Arc<Link>> {
        read(&self.by_call)
            .values()
            .filter(|l| l.owner.is_none())
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        read(&self.by_call).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// Converts deadlines to and from the `u64` kept in `Link::deadline`.
#[derive(Clone, Copy)]
pub struct Clock {
    pub epoch: Instant,
}

impl Clock {
    pub fn encode(&self, t: Option<Instant>) -> u64 {
        match t {
            None => u64::MAX,
            Some(t) => u64::try_from(t.saturating_duration_since(self.epoch).as_nanos())
                .unwrap_or(u64::MAX - 1),
        }
    }

    pub fn now_nanos(&self, now: Instant) -> u64 {
        self.encode(Some(now))
    }

    /// Milliseconds since the epoch (coarse activity stamps).
    pub fn millis(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Loads `deadline` for a lock-free "is anything due" check.
pub fn due(link: &Link, now_nanos: u64) -> bool {
    link.deadline.load(Ordering::Relaxed) <= now_nanos
}

/// The links' timers ([`crate::datapath::timer_wheel`]) behind one lock: an entry is filed
/// only when a link's deadline moves earlier than the one the wheel holds for it.
#[derive(Debug)]
pub struct Timers(Mutex<Wheel>);

impl Timers {
    /// Ticks of `tick` (the timer thread's period).
    pub fn new(tick: Duration) -> Timers {
        let ns = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
        Timers(Mutex::new(Wheel::new(ns)))
    }

    /// Files `at` for `link` unless the wheel already holds an earlier or equal entry.
    pub fn schedule(&self, link: &Link, at: u64) {
        if at != u64::MAX && at < link.scheduled.fetch_min(at, Ordering::Relaxed) {
            self.wheel().insert(link.local_call_id, at);
        }
    }

    /// Entries due by `now_nanos` (Call ID, deadline), stale ones included.
    pub fn expire(&self, now_nanos: u64, due: &mut Vec<(u16, u64)>) {
        self.wheel().expire(now_nanos, due);
    }

    fn wheel(&self) -> MutexGuard<'_, Wheel> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Timers {
    fn default() -> Timers {
        Timers::new(TIMER_TICK)
    }
}

/// The timer thread's period.
pub const TIMER_TICK: Duration = Duration::from_millis(20);

/// Sets `link`'s next deadline (nanoseconds of the data path's clock; u64::MAX: none).
pub fn set_deadline(timers: &Timers, link: &Link, at: u64) {
    link.deadline.store(at, Ordering::Relaxed);
    timers.schedule(link, at);
}

/// Brings `link`'s next deadline forward to `at` if that is earlier.
pub fn lower_deadline(timers: &Timers, link: &Link, at: u64) {
    link.deadline.fetch_min(at, Ordering::Relaxed);
    timers.schedule(link, at);
}
