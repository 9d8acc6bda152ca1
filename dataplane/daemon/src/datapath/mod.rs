//! The per-node fast path. GRE datagrams are read in batches from the one raw
//! socket, demultiplexed by Call ID and pushed through the session's GRE
//! sequencing, PPP/MPPE decapsulation and the TUN write on the same thread —
//! no task or channel hop per packet ([`crate::datapath::l2tp`] does the same for
//! L2TP data on the UDP port). The TUN reader does the reverse. A timer
//! thread runs the engines' timeouts. Gateway and in-repo client share all of
//! this; they differ only in their [`Hooks`].

pub mod aqm;
pub mod callid;
pub mod codel;
pub mod ipsec;
pub mod l2tp;
pub mod link;
pub mod ratelimit;
pub mod timer_wheel;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use sluice_ppp::{Event, Phase};
use sluice_pptp::{GrePacket, GreRepr, RxVerdict, ipv4_payload_range};
use tracing::{Span, warn};

use crate::datapath::aqm::Verdict;
use crate::datapath::codel::CodelParams;
use crate::datapath::ipsec::IpsecIo;
use crate::datapath::l2tp::{L2tpIo, send_l2tp};
use crate::datapath::link::{
    Clock, Framing, Link, LinkState, LinkStats, LinkTable, Timers, due, lower_deadline,
    set_deadline,
};
use crate::datapath::ratelimit::Admit;
use crate::io::batch::RecvBatch;
use crate::io::rawsock::{self, IPPROTO_GRE, RawSocket};
use crate::io::send_batch::{self, SendScope};
use crate::io::shard::ShardKey;
use crate::io::tun::{self, Tun, TunReader, WriteScope};
use crate::metrics::{Direction, Layer, Metrics, SetupPhase};

/// Shared data-path resources.
pub struct DataPath {
    /// The raw GRE socket: every send, and the receive of shard 0.
    pub gre: RawSocket,
    /// The receive sockets of GRE shards 1.. (`io::shard`: by Call ID, one thread each).
    pub gre_shards: Vec<RawSocket>,
    /// The L2TP UDP port, once L2TP is served (gateway) or used (client).
    pub l2tp: OnceLock<L2tpIo>,
    /// IKE, NAT-T and raw ESP, once L2TP/IPsec is served or used.
    pub ipsec: OnceLock<IpsecIo>,
    /// Whether L2TP that did not arrive under ESP is accepted (`allowUnencrypted`, or no
    /// IPsec configured).
    pub l2tp_plain: AtomicBool,
    pub links: LinkTable,
    /// The links' timer deadlines, for the timer thread.
    pub timers: Timers,
    pub tun: Option<Arc<Tun>>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    pub stop: AtomicBool,
    /// CoDel on every receive queue (`aqm`; default on, RFC 8289's 5 ms / 100 ms), or none.
    pub aqm: Option<CodelParams>,
}

impl DataPath {
    /// The data path with `rx_shards` GRE receive threads' sockets (at least 1).
    pub fn new(
        bind: Option<Ipv4Addr>,
        tun: Option<Arc<Tun>>,
        metrics: Arc<Metrics>,
        rx_shards: u32,
    ) -> std::io::Result<DataPath> {
        let open = || RawSocket::open(IPPROTO_GRE, bind, Duration::from_millis(200));
        let (gre, gre_shards) = sharded(open, ShardKey::GreCallId, rx_shards)?;
        Ok(DataPath {
            gre,
            gre_shards,
            l2tp: OnceLock::new(),
            ipsec: OnceLock::new(),
            l2tp_plain: AtomicBool::new(true),
            links: LinkTable::default(),
            timers: Timers::default(),
            tun,
            metrics,
            clock: Clock {
                epoch: Instant::now(),
            },
            stop: AtomicBool::new(false),
            aqm: Some(CodelParams::default()),
        })
    }

    /// How many GRE receive shards there are.
    pub fn gre_shard_count(&self) -> usize {
        1 + self.gre_shards.len()
    }
}

/// Opens `count` raw sockets (at least 1) that share the packets by `key` (`io::shard`): the
/// first, and the rest.
pub fn sharded(
    open: impl Fn() -> std::io::Result<RawSocket>,
    key: ShardKey,
    count: u32,
) -> std::io::Result<(RawSocket, Vec<RawSocket>)> {
    let count = count.max(1);
    let first = open()?;
    if count == 1 {
        return Ok((first, Vec::new()));
    }
    first.keep_shard(key, 0, count)?;
    let rest = (1..count)
        .map(|i| {
            let s = open()?;
            s.keep_shard(key, i, count)?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((first, rest))
}

/// What distinguishes the gateway from the client.
pub trait Hooks: Send + Sync + 'static {
    fn dp(&self) -> &DataPath;
    /// Handles one PPP engine event; the link is locked by the caller.
    fn on_event(&self, link: &Arc<Link>, st: &mut LinkState, ev: Event, now: Instant);
    /// Picks the link for an IP packet read from the TUN device.
    fn route(&self, ip: &[u8]) -> Option<Arc<Link>>;
    /// Receives decapsulated IP when there is no TUN device (load generator).
    fn deliver(&self, _link: &Link, _ip: &[u8]) {}
    /// Whether decapsulated IP from this link may enter the TUN device (anti-spoofing).
    fn accept_source(&self, _st: &LinkState, _ip: &[u8]) -> SourceCheck {
        SourceCheck::Allowed
    }
    /// Whether an IP packet read from the TUN device may go into a tunnel (IPv4 only).
    fn tun_accepts(&self, ip: &[u8]) -> bool {
        ip.first().map(|b| b >> 4) == Some(4)
    }
    /// The link's timer fired (before its engines' timeouts run): the hooks' own timers,
    /// such as a held-back password check ([`LinkState::held_auth`]).
    fn on_timer(&self, _link: &Arc<Link>, _st: &mut LinkState, _now: Instant) {}
}

/// Drains the engines of a locked link: control frames to the peer, events to
/// the hooks, a pending GRE acknowledgement, and the next timer deadline.
pub fn drive<H: Hooks>(h: &H, link: &Arc<Link>, st: &mut LinkState, now: Instant) {
    let dp = h.dp();
    // Events may produce frames and frames events; bounded so a confused
    // engine can never spin here.
    for _ in 0..64 {
        let mut progressed = false;
        while let Some(frame) = st.ppp.poll_transmit() {
            send_frame(dp, link, st, &frame);
            progressed = true;
        }
        while let Some(ev) = st.ppp.poll_event() {
            note_phase(dp, link, st, now);
            h.on_event(link, st, ev, now);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    note_phase(dp, link, st, now);
    let retransmits = st.ppp.retransmits();
    if retransmits > st.retransmits_seen {
        dp.metrics
            .retransmitted(Layer::Ppp, retransmits - st.retransmits_seen);
        st.retransmits_seen = retransmits;
    }
    let repairs = st.ppp.mppe_repairs();
    if repairs != st.mppe_repairs_seen {
        dp.metrics.mppe_repaired(&st.mppe_repairs_seen, &repairs);
        st.mppe_repairs_seen = repairs;
    }
    let framing_timeout = match &mut st.framing {
        Framing::Gre(gre) => {
            if let Some(ack) = gre.poll_ack_only(now) {
                let mut out = Vec::with_capacity(16);
                ack.emit_vec(&mut out);
                if let Err(e) = send_batch::send(&dp.gre, &out, link.peer, "gre_send_error") {
                    warn!(call = link.local_call_id, error = %e, "GRE send failed");
                }
            }
            gre.poll_timeout()
        }
        Framing::L2tp(_) => None,
    };
    let shaper = st
        .rate_limit
        .as_ref()
        .and_then(|(_, l)| l.next_release())
        .map(|ns| dp.clock.epoch + Duration::from_nanos(ns));
    let next = [st.ppp.poll_timeout(), framing_timeout, shaper, st.held_auth]
        .into_iter()
        .flatten()
        .min();
    set_deadline(&dp.timers, link, dp.clock.encode(next));
}

/// Setup-phase timing: observes the duration of each PPP phase (RFC 1661 §3.2) the link
/// completes on its way to the network phase; failed phases are not observed.
fn note_phase(dp: &DataPath, link: &Link, st: &mut LinkState, now: Instant) {
    let phase = st.ppp.phase();
    if phase == st.phase {
        return;
    }
    let done = match (st.phase, phase) {
        (Phase::Establish, Phase::Authenticate | Phase::Network | Phase::Running) => {
            Some(SetupPhase::Lcp)
        }
        (Phase::Authenticate, Phase::Network | Phase::Running) => Some(SetupPhase::Auth),
        (Phase::Network, Phase::Running) => Some(SetupPhase::Ncp),
        _ => None,
    };
    if let Some(done) = done {
        dp.metrics.phase(
            link.protocol,
            done,
            now.saturating_duration_since(st.phase_since),
        );
    }
    // The finished phase's span closes, then the next one opens under the setup's.
    st.phase_span = Span::none();
    st.phase_span = match phase {
        Phase::Authenticate => tracing::info_span!(parent: &st.setup_span, "auth"),
        Phase::Network => tracing::info_span!(parent: &st.setup_span, "ncp"),
        _ => Span::none(),
    };
    st.phase = phase;
    st.phase_since = now;
}

/// Why a frame could not be sent (the metrics' drop reason).
type SendFailure = &'static str;

/// Frames one PPP frame for the link's carrier (GRE header or L2TP data header) into `out`
/// and sends it to the peer.
fn transmit(
    dp: &DataPath,
    link: &Link,
    st: &mut LinkState,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), SendFailure> {
    out.clear();
    match &mut st.framing {
        Framing::Gre(gre) => {
            let len = u16::try_from(frame.len()).map_err(|_| "oversize")?;
            if gre.write_header(len, out).beyond_window {
                dp.metrics.gre_beyond_window.inc();
            }
            out.extend_from_slice(frame);
            send_batch::send(&dp.gre, out, link.peer, "gre_send_error")
                .map_err(|_| "gre_send_error")
        }
        Framing::L2tp(l2tp) => {
            sluice_l2tp::emit_data_header(
                out,
                l2tp.peer_tunnel,
                l2tp.peer_session,
                l2tp.seq.next_tx(),
            );
            out.extend_from_slice(frame);
            send_l2tp(dp, l2tp.local, l2tp.remote, out)
        }
    }
}

/// Sends one PPP frame over the link's carrier.
pub fn send_frame(dp: &DataPath, link: &Link, st: &mut LinkState, frame: &[u8]) {
    let mut out = Vec::with_capacity(16 + frame.len());
    if let Err(reason) = transmit(dp, link, st, frame, &mut out) {
        dp.metrics.dropped(reason);
    }
}

/// Per-thread buffers for the transmit path.
#[derive(Default)]
pub struct TxScratch {
    ppp: Vec<u8>,
    out: Vec<u8>,
}

/// Sends one IP packet toward the link's peer through the session's rate limit
/// (`VpnUser.spec.rateLimit`): now, later from the shaper's queue, or not at all.
pub fn send_ip(
    dp: &DataPath,
    link: &Link,
    st: &mut LinkState,
    ip: &[u8],
    now: Instant,
    scratch: &mut TxScratch,
) -> bool {
    if let Some((_, limit)) = &mut st.rate_limit {
        let now_ns = dp.clock.now_nanos(now);
        match limit.admit_down(now_ns, ip) {
            Admit::Send => {}
            Admit::Queued => {
                // The timer thread sends it (the deadline is in the clock's nanoseconds).
                if let Some(at) = limit.next_release() {
                    lower_deadline(&dp.timers, link, at);
                }
                return true;
            }
            Admit::Dropped => {
                dp.metrics.dropped("rate_limit_down");
                return false;
            }
        }
    }
    encapsulate_ip(dp, link, st, ip, scratch)
}

/// Sends the packets of the session's shaper queue whose tokens are there.
pub fn release_shaped(
    dp: &DataPath,
    link: &Link,
    st: &mut LinkState,
    now: Instant,
    scratch: &mut TxScratch,
) {
    let now_ns = dp.clock.now_nanos(now);
    while let Some(ip) = st.rate_limit.as_mut().and_then(|(_, l)| l.pop_down(now_ns)) {
        encapsulate_ip(dp, link, st, &ip, scratch);
    }
}

/// Encapsulates one IP packet (PPP, MPPE, GRE or L2TP) and sends it to the link's peer.
fn encapsulate_ip(
    dp: &DataPath,
    link: &Link,
    st: &mut LinkState,
    ip: &[u8],
    scratch: &mut TxScratch,
) -> bool {
    scratch.ppp.clear();
    if st.ppp.encapsulate_ip(ip, &mut scratch.ppp).is_err() {
        dp.metrics.dropped("link_not_ready");
        return false;
    }
    let TxScratch { ppp, out } = scratch;
    // A CCP Reset-Ack the engine held for this (flushed) packet goes first, in the same lane
    // as every packet encrypted before the reset (`Ppp::encapsulate_ip`).
    while let Some(frame) = st.ppp.poll_transmit() {
        send_frame(dp, link, st, &frame);
    }
    match transmit(dp, link, st, ppp, out) {
        Ok(()) => {
            count(&dp.metrics, &link.stats, Direction::Tx, ip.len());
            true
        }
        Err(reason) => {
            dp.metrics.dropped(reason);
            false
        }
    }
}

/// Per-packet accounting of one IP packet from (`Rx`) or toward (`Tx`) a client: the
/// link's and the node's counters.
#[inline]
pub fn count(m: &Metrics, stats: &LinkStats, dir: Direction, len: usize) {
    let (packets, bytes, node_packets, node_bytes) = match dir {
        Direction::Rx => (
            &stats.rx_packets,
            &stats.rx_bytes,
            &m.rx_packets,
            &m.rx_bytes,
        ),
        Direction::Tx => (
            &stats.tx_packets,
            &stats.tx_bytes,
            &m.tx_packets,
            &m.tx_bytes,
        ),
    };
    packets.fetch_add(1, Ordering::Relaxed);
    bytes.fetch_add(len as u64, Ordering::Relaxed);
    node_packets.inc();
    node_bytes.inc_by(len as u64);
}

/// The verdict of the gateway's anti-spoofing check on one decapsulated packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceCheck {
    /// A well-formed IPv4 packet from the session's address or one of its routes.
    Allowed,
    /// IPv4 from any other source.
    Spoofed,
    /// An IPv6 packet (version 6): not carried until IPv6 is supported, whatever its source.
    Ipv6,
    /// Not a well-formed IPv4 header (other version, IHL below 5 or past the packet, total
    /// length past the packet), RFC 791 §3.1.
    Malformed,
}

impl SourceCheck {
    /// The `sluice_dropped_packets_total` reason of a refused packet.
    pub fn drop_reason(self) -> Option<&'static str> {
        match self {
            SourceCheck::Allowed => None,
            SourceCheck::Spoofed => Some("spoofed_source"),
            SourceCheck::Ipv6 => Some("inner_ipv6"),
            SourceCheck::Malformed => Some("inner_malformed"),
        }
    }
}

/// Anti-spoofing for the gateway: a session may only send IPv4 (RFC 791 §3.1: version 4, a
/// header length of 5..=15 words within the packet, a total length within the packet) from its
/// assigned address or from the networks routed to it (`VpnUser.spec.routes`); anything else
/// would let one user impersonate another or the gateway side. The TUN device picks the
/// protocol from the version nibble, so the version is checked before any address.
pub fn check_source(st: &LinkState, ip: &[u8]) -> SourceCheck {
    check_packet_source(ip, st.address, &st.routes)
}

/// [`check_source`] for a session with tunnel address `address` and routed networks `routes`.
pub fn check_packet_source(
    ip: &[u8],
    address: Option<Ipv4Addr>,
    routes: &[Ipv4Net],
) -> SourceCheck {
    let Some(&first) = ip.first() else {
        return SourceCheck::Malformed;
    };
    match first >> 4 {
        4 => {}
        6 => return SourceCheck::Ipv6,
        _ => return SourceCheck::Malformed,
    }
    let header_len = usize::from(first & 0x0f) * 4;
    let total_len = ip
        .get(2..4)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let src = ip
        .get(12..16)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(Ipv4Addr::from);
    match (total_len, src) {
        (Some(total), Some(src))
            if header_len >= 20 && header_len <= total && total <= ip.len() =>
        {
            if address == Some(src) || routes.iter().any(|n| n.contains(&src)) {
                SourceCheck::Allowed
            } else {
                SourceCheck::Spoofed
            }
        }
        _ => SourceCheck::Malformed,
    }
}

/// Whether [`check_source`] lets the packet in.
pub fn source_allowed(st: &LinkState, ip: &[u8]) -> bool {
    check_source(st, ip) == SourceCheck::Allowed
}

/// Handles one datagram from the raw GRE socket.
pub fn handle_datagram<H: Hooks>(h: &H, buf: &mut [u8], now: Instant) {
    let dp = h.dp();
    let Some((src, gre)) = ipv4_payload_range(buf)
        .ok()
        .and_then(|(src, range)| buf.get_mut(range).map(|gre| (src, gre)))
    else {
        dp.metrics.malformed(Layer::Ip);
        return;
    };
    let repr = match GrePacket::new_checked(&*gre).and_then(|p| GreRepr::parse(&p)) {
        Ok(r) => r,
        Err(_) => {
            dp.metrics.malformed(Layer::Gre);
            return;
        }
    };
    let Some(link) = dp.links.get(repr.call_id) else {
        dp.metrics.dropped("unknown_call_id");
        return;
    };
    if link.peer != src {
        dp.metrics.dropped("wrong_gre_source");
        return;
    }
    let mut st = link.lock();
    if st.session.is_closed() {
        return;
    }
    let Framing::Gre(gre_channel) = &mut st.framing else {
        dp.metrics.dropped("unknown_call_id");
        return;
    };
    match gre_channel.on_receive(now, &repr) {
        RxVerdict::Accept => {
            let start = repr.header_len();
            let end = start + usize::from(repr.payload_len);
            if let Some(payload) = gre.get_mut(start..end) {
                receive_frame(h, &link, &mut st, payload, now);
            }
        }
        RxVerdict::AckOnly => {}
        RxVerdict::Duplicate => dp.metrics.dropped("gre_duplicate"),
        RxVerdict::OutOfWindow => dp.metrics.dropped("gre_out_of_order"),
    }
    drive(h, &link, &mut st, now);
}

/// Feeds one received PPP frame to the link's engine; decapsulated IP goes to
/// the TUN device (or the hooks' sink) once the source is accepted.
pub fn receive_frame<H: Hooks>(
    h: &H,
    link: &Link,
    st: &mut LinkState,
    frame: &mut [u8],
    now: Instant,
) {
    let dp = h.dp();
    let ip = match st.ppp.handle_input(now, frame) {
        Ok(ip) => {
            link.last_rx_ms
                .store(dp.clock.millis(now), Ordering::Relaxed);
            match ip {
                Some(ip) => ip,
                None => return,
            }
        }
        Err(e) => return dp.metrics.malformed(Layer::from(e.layer())),
    };
    if let Some(reason) = h.accept_source(st, ip).drop_reason() {
        return dp.metrics.dropped(reason);
    }
    if st
        .rate_limit
        .as_mut()
        .is_some_and(|(_, l)| !l.allow_up(dp.clock.now_nanos(now), ip.len()))
    {
        return dp.metrics.dropped("rate_limit_up");
    }
    // A standing queue in front of this thread signals its sender (`aqm`).
    let marked;
    let ip = match aqm::verdict(ip) {
        Verdict::Deliver => ip,
        Verdict::Mark => match aqm::mark_ce(ip) {
            Some(m) => {
                dp.metrics.aqm_marked.inc();
                marked = m;
                &marked[..]
            }
            None => ip,
        },
        Verdict::Drop => return dp.metrics.dropped("queue_delay"),
    };
    count(&dp.metrics, &link.stats, Direction::Rx, ip.len());
    match &dp.tun {
        Some(dev) => {
            if tun::write(dev, ip).is_err() {
                dp.metrics.dropped("tun_write_error");
            }
        }
        None => h.deliver(link, ip),
    }
}

/// Reads the raw GRE socket of receive shard `shard` until stopped (0: `DataPath::gre`).
pub fn gre_rx_loop<H: Hooks>(h: Arc<H>, shard: usize) {
    let dp = h.dp();
    let Some(sock) = crate::io::shard::socket(&dp.gre, &dp.gre_shards, shard) else {
        return;
    };
    let mut batch = RecvBatch::new(32, rawsock::MAX_DATAGRAM);
    aqm::attach(dp.aqm);
    while !h.dp().stop.load(Ordering::Relaxed) {
        let n = match sock.recv_batch(&mut batch) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "GRE receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let now = Instant::now();
        tun_writes_together(h.dp(), || {
            for i in 0..n {
                dequeued(h.dp(), &batch, i, now);
                if let Some(buf) = batch.payload_mut(i) {
                    handle_datagram(&*h, buf, now);
                }
            }
        });
    }
}

/// Notes for `aqm` how long datagram `i` of `batch`, taken from its socket at `now`, queued.
pub fn dequeued(dp: &DataPath, batch: &RecvBatch, i: usize, now: Instant) {
    aqm::dequeued(batch.sojourn(i), dp.clock.now_nanos(now));
}

/// Runs `batch` (the handling of one receive batch) with its writes to the TUN device
/// gathered and written together at the end (`io::tun`: GRO coalesces a TCP flow's segments).
pub fn tun_writes_together(dp: &DataPath, batch: impl FnOnce()) {
    let writes = WriteScope::open(dp.tun.as_deref());
    batch();
    if writes.finish().is_err() {
        dp.metrics.dropped("tun_write_error");
    }
}

/// Reads the TUN device until stopped and sends each packet into its link. One read may
/// hold a whole TCP super-segment, split into up to `io::tun::BATCH` packets (`io::tun`);
/// their GRE or ESP packets leave in one `sendmmsg(2)`.
pub fn tun_rx_loop<H: Hooks>(h: Arc<H>) {
    let Some(dev) = h.dp().tun.clone() else {
        return;
    };
    // The configuration allows an MTU of at most 1,436 (`sluice_api`).
    let mut reader = TunReader::new(1500);
    let mut scratch = TxScratch::default();
    while !h.dp().stop.load(Ordering::Relaxed) {
        let n = match reader.read(&dev) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!(error = %e, "TUN read failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let now = Instant::now();
        let sends = SendScope::open();
        for ip in (0..n).filter_map(|i| reader.packet(i)) {
            tun_packet(&*h, ip, now, &mut scratch);
        }
        count_failures(h.dp(), sends.finish());
    }
}

/// Sends one packet read from the TUN device into the session it is routed to.
fn tun_packet<H: Hooks>(h: &H, ip: &[u8], now: Instant, scratch: &mut TxScratch) {
    if !h.tun_accepts(ip) {
        h.dp().metrics.dropped("not_ipv4");
        return;
    }
    let Some(link) = h.route(ip) else {
        h.dp().metrics.dropped("no_route_to_session");
        return;
    };
    let mut st = link.lock();
    if st.session.is_closed() {
        return;
    }
    send_ip(h.dp(), &link, &mut st, ip, now, scratch);
}

/// Runs due engine timers until stopped: only the links whose deadlines the timer wheel
/// holds for the ticks that passed ([`timer_wheel`]), not every link.
pub fn timer_loop<H: Hooks>(h: Arc<H>, tick: Duration) {
    let mut scratch = TxScratch::default();
    let mut entries = Vec::new();
    let dp = h.dp();
    while !dp.stop.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        let now = Instant::now();
        let now_nanos = dp.clock.now_nanos(now);
        entries.clear();
        dp.timers.expire(now_nanos, &mut entries);
        // The packets of one tick (keep-alives, acknowledgements, retransmissions) leave in
        // one sendmmsg(2) per socket.
        let sends = SendScope::open();
        for &(id, at) in &entries {
            let Some(link) = dp.links.get(id) else {
                continue;
            };
            // Only the link's live entry counts; a stale one (its deadline moved) is skipped.
            if link
                .scheduled
                .compare_exchange(at, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if !due(&link, now_nanos) {
                // Postponed since it was filed, or a tick early: file the real deadline.
                dp.timers
                    .schedule(&link, link.deadline.load(Ordering::Relaxed));
                continue;
            }
            let mut st = link.lock();
            if st.session.is_closed() {
                continue;
            }
            h.on_timer(&link, &mut st, now);
            st.ppp.handle_timeout(now);
            if let Framing::Gre(gre) = &mut st.framing {
                gre.handle_timeout(now);
            }
            release_shaped(dp, &link, &mut st, now, &mut scratch);
            drive(&*h, &link, &mut st, now);
        }
        count_failures(dp, sends.finish());
    }
}

/// Counts the datagrams a send scope could not send, under their drop reasons.
fn count_failures(dp: &DataPath, failures: send_batch::SendFailures) {
    for (reason, n) in failures.counts {
        dp.metrics.dropped_n(reason, n);
    }
}

#[cfg(test)]
mod source_tests {
    use super::*;

    /// An IPv4 header (RFC 791 §3.1) with the given first byte, total length and source.
    fn ipv4(first: u8, total: u16, src: [u8; 4], len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = first;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[12..16].copy_from_slice(&src);
        p
    }

    #[test]
    fn only_well_formed_ipv4_from_the_session_passes() {
        let addr = Some(Ipv4Addr::new(10, 9, 0, 2));
        let routes: Vec<Ipv4Net> = vec!["192.168.50.0/24".parse().unwrap()];
        let check = |p: &[u8]| check_packet_source(p, addr, &routes);
        assert_eq!(
            check(&ipv4(0x45, 28, [10, 9, 0, 2], 28)),
            SourceCheck::Allowed
        );
        assert_eq!(
            check(&ipv4(0x45, 28, [192, 168, 50, 7], 28)),
            SourceCheck::Allowed
        );
        // Options (IHL 6) are fine; trailing padding after the total length too.
        assert_eq!(
            check(&ipv4(0x46, 28, [10, 9, 0, 2], 32)),
            SourceCheck::Allowed
        );
        assert_eq!(
            check(&ipv4(0x45, 28, [10, 9, 0, 3], 28)),
            SourceCheck::Spoofed
        );
        assert_eq!(
            check(&ipv4(0x45, 28, [192, 168, 51, 1], 28)),
            SourceCheck::Spoofed
        );
    }

    #[test]
    fn ipv6_is_refused_whatever_bytes_12_to_16_hold() {
        let addr = Some(Ipv4Addr::new(10, 9, 0, 2));
        // The audit's packet: version 6, with the session's IPv4 address where an IPv4
        // source would sit (inside the IPv6 source address).
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[12..16].copy_from_slice(&[10, 9, 0, 2]);
        assert_eq!(check_packet_source(&p, addr, &[]), SourceCheck::Ipv6);
        assert_eq!(SourceCheck::Ipv6.drop_reason(), Some("inner_ipv6"));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let addr = Some(Ipv4Addr::new(10, 9, 0, 2));
        let src = [10, 9, 0, 2];
        let check = |p: &[u8]| check_packet_source(p, addr, &[]);
        assert_eq!(check(&[]), SourceCheck::Malformed);
        assert_eq!(check(&[0x45]), SourceCheck::Malformed);
        assert_eq!(check(&ipv4(0x44, 28, src, 28)), SourceCheck::Malformed); // IHL 4
        assert_eq!(check(&ipv4(0x4f, 28, src, 28)), SourceCheck::Malformed); // IHL past total
        assert_eq!(check(&ipv4(0x45, 40, src, 28)), SourceCheck::Malformed); // total past end
        assert_eq!(check(&ipv4(0x55, 28, src, 28)), SourceCheck::Malformed); // version 5
        assert_eq!(check(&ipv4(0x45, 16, src, 16)), SourceCheck::Malformed); // too short
    }
}
