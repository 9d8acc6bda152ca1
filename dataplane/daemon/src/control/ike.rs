//! The gateway's IKE thread: one sans-IO [`Responder`] with every IKE SA of this node, fed
//! by the IKE queues of [`crate::datapath::ipsec`]. Quick Mode results become ESP SAs in the fast
//! path's tables; deletions, expiry and dead peers remove them.
//!
//! The responder runs on a dedicated OS thread (`sluice-ike`, a current-thread runtime for
//! its timers and queues), not on the Tokio workers: Diffie-Hellman (Main Mode message 3,
//! Aggressive Mode, PFS), RSA signatures and certificate chains cost milliseconds, and a
//! burst of them would otherwise stall the control plane (PPTP/L2TP control, /metrics,
//! reloads) on the two workers. It is a pool of one with bounded queues in front: the known
//! queue (live SAs, served first) and the new-exchange queue behind the flood guard
//! ([`crate::datapath::ipsec::guard`]); full queues drop and count. One thread suffices: a core
//! completes over 1,100 MODP2048 Main Modes per second, and the engine's state is one
//! `&mut` structure that would otherwise need locking or splitting per exchange.

mod quiet;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sluice_ike::responder::{ChildSa, DownReason, DropReason, Event, IkeSaId, Responder};
use sluice_ike::sa::IkeTransform;
use sluice_telemetry::opentelemetry::KeyValue;
use sluice_telemetry::opentelemetry::trace::SpanContext;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::datapath::ipsec::guard::{IkeGuard, Limits};
use crate::datapath::ipsec::{IkeDatagram, IpsecIo, PeerMove, receive_esp};
use crate::gateway::Gateway;
use crate::host::{seed, unix_now};
use crate::metrics::{DirLabels, Direction, Layer, Protocol, SetupPhase};

/// How often ESP activity is passed to the responder (postpones DPD).
const ACTIVITY_EVERY: Duration = Duration::from_secs(1);

fn v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

/// The `ike_phase1` span of an IKE SA that just came up (it lasted `setup` until now).
fn phase1_span(
    peer: SocketAddr,
    identity: &str,
    transform: &IkeTransform,
    behind_nat: bool,
    setup: Duration,
) -> SpanContext {
    let end = SystemTime::now();
    sluice_telemetry::record_span(
        "ike_phase1",
        end.checked_sub(setup).unwrap_or(end),
        end,
        vec![
            KeyValue::new("peer", peer.to_string()),
            KeyValue::new("identity", identity.to_owned()),
            KeyValue::new("auth", transform.auth.name()),
            KeyValue::new("cipher", transform.cipher.name()),
            KeyValue::new("hash", transform.hash.name()),
            KeyValue::new("group", transform.group.name()),
            KeyValue::new("client_behind_nat", behind_nat),
        ],
        None,
    )
}

/// The `ike_phase2` span of a Quick Mode that just completed, in its IKE SA's trace.
fn phase2_span(c: &ChildSa, phase1: Option<&SpanContext>) -> SpanContext {
    let end = SystemTime::now();
    let t = &c.transform;
    sluice_telemetry::record_span(
        "ike_phase2",
        end.checked_sub(c.setup).unwrap_or(end),
        end,
        vec![
            KeyValue::new("peer", c.peer.to_string()),
            KeyValue::new("cipher", t.cipher.name()),
            KeyValue::new("integrity", t.auth.map_or("none", |a| a.name())),
            KeyValue::new("pfs_group", t.group.map_or("none", |g| g.name())),
            KeyValue::new("udp_encap", c.udp_encap),
            KeyValue::new("spi_in", format!("{:#010x}", c.inbound.spi)),
            KeyValue::new("spi_out", format!("{:#010x}", c.outbound.spi)),
        ],
        phase1,
    )
}

/// Drop reasons of the IKE thread under a flood, present from the start: half-open SAs
/// timed out, and (the responder's `DropReason::Evicted`) evicted to make room.
pub const DROP_REASONS: [&str; 2] = ["ike_half_open_timeout", "ike_half_open_evicted"];

/// Sends every queued IKE datagram from the port it names; returns how many left. The
/// guard learns new SAs first: a reply reveals their cookie, and the answer must get in.
fn flush(io: &IpsecIo, r: &mut Responder) -> u64 {
    if let Some(g) = io.guard.get() {
        g.apply(std::iter::from_fn(|| r.poll_sa_change()));
    }
    let mut n = 0;
    while let Some(t) = r.poll_transmit() {
        n += u64::from(io.send_ike(t.local, t.remote, &t.payload));
    }
    n
}

/// Runs the responder on its own thread until `shutdown` turns true (DELETEs are sent to
/// every client then); returns when that thread has finished.
pub async fn run(
    gw: Arc<Gateway>,
    rx: mpsc::Receiver<IkeDatagram>,
    shutdown: watch::Receiver<bool>,
) {
    let (done_tx, done_rx) = oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("sluice-ike".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt.block_on(drive(gw, rx, shutdown)),
                Err(e) => warn!(error = %e, "IKE thread: no runtime"),
            }
            let _ = done_tx.send(());
        });
    match spawned {
        Ok(_) => {
            let _ = done_rx.await;
        }
        Err(e) => warn!(error = %e, "starting the IKE thread failed"),
    }
}

/// The next datagram: live SAs' queue first, then new exchanges (`None`: both closed).
async fn next_datagram(
    known: &mut mpsc::Receiver<IkeDatagram>,
    new: &mut mpsc::Receiver<IkeDatagram>,
) -> Option<IkeDatagram> {
    tokio::select! {
        biased;
        d = known.recv() => d,
        Some(d) = new.recv() => Some(d),
    }
}

async fn drive(
    gw: Arc<Gateway>,
    mut rx: mpsc::Receiver<IkeDatagram>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(io) = gw.dp.ipsec.get() else { return };
    let cfg = gw.config();
    let Some(ipsec) = cfg.l2tp.ipsec.clone() else {
        return;
    };
    let mut version = cfg.version.clone();
    let mut r = Responder::new(ipsec.responder_config(cfg.l2tp.port), seed());
    drop(cfg);
    r.track_sa_changes(true);
    let (guard, mut new_rx) = IkeGuard::new(Limits::default(), Instant::now());
    if io.guard.set(guard).is_err() {
        warn!("the IKE flood guard was already set; first messages are not served");
    }
    let mut quiet = quiet::Quiet::new(Instant::now());
    let m = &gw.dp.metrics;
    let rx_count = m
        .ike_messages
        .get_or_create(&DirLabels {
            direction: Direction::Rx,
        })
        .clone();
    let tx_count = m
        .ike_messages
        .get_or_create(&DirLabels {
            direction: Direction::Tx,
        })
        .clone();
    let mut up: HashMap<IkeSaId, SocketAddr> = HashMap::new();
    // Each IKE SA's `ike_phase1` span: its Quick Modes' spans go into that trace.
    let mut traces: HashMap<IkeSaId, SpanContext> = HashMap::new();
    // Responder drop counters already passed to the metrics.
    let mut drops_seen: BTreeMap<DropReason, u64> = BTreeMap::new();
    let mut last_activity = Instant::now();
    let mut seen: HashMap<u64, u64> = HashMap::new();
    let mut retransmits_seen = 0;
    let mut events_dropped_seen = 0;
    loop {
        while let Some(ev) = r.poll_event() {
            match ev {
                Event::IkeSaUp {
                    id,
                    peer,
                    identity,
                    nat,
                    transform,
                    setup,
                    ..
                } => {
                    up.insert(id, peer);
                    m.phase(Protocol::L2tp, SetupPhase::IkePhase1, setup);
                    let span = phase1_span(peer, &identity, &transform, nat.peer_behind_nat, setup);
                    traces.insert(id, span);
                    info!(%peer, %identity, cipher = transform.cipher.name(), hash = transform.hash.name(),
                        group = transform.group.name(), client_behind_nat = nat.peer_behind_nat, "IKE SA up");
                }
                Event::ChildSaExpected { inbound_spi, .. } => {
                    let expired = io.expect_child(inbound_spi, Instant::now());
                    m.dropped_n("esp_held_expired", expired as u64);
                }
                Event::ChildSaUp(c) => {
                    m.phase(Protocol::L2tp, SetupPhase::IkePhase2, c.setup);
                    phase2_span(&c, traces.get(&c.ike));
                    let (Some(local), Some(peer)) = (v4(c.local), v4(c.peer)) else {
                        continue;
                    };
                    match io.install(
                        c.ike.0,
                        &c.transform,
                        (c.inbound.spi, &c.inbound.keymat),
                        (c.outbound.spi, &c.outbound.keymat),
                        local,
                        peer,
                        c.udp_encap,
                        c.lifetime_kb,
                        seed(),
                    ) {
                        Ok(()) => {
                            info!(%peer, spi_in = format_args!("{:#010x}", c.inbound.spi),
                                spi_out = format_args!("{:#010x}", c.outbound.spi), udp_encap = c.udp_encap,
                                client = ?c.client_addr, lifetime = ?c.lifetime, "ESP SAs installed");
                            // ESP that overtook message 3, in arrival order.
                            for mut p in io.release_held(c.inbound.spi) {
                                m.esp_held.inc();
                                receive_esp(&*gw, io, &mut p.esp, p.outer, p.local, Instant::now());
                            }
                        }
                        Err(e) => {
                            warn!(%peer, error = %e, "installing ESP SAs failed");
                            let lost = io.release_held(c.inbound.spi).len();
                            m.dropped_n("esp_unknown_spi", lost as u64);
                            r.close(c.ike);
                        }
                    }
                }
                Event::ChildSaDown {
                    ike,
                    inbound_spi,
                    outbound_spi,
                    reason,
                } => {
                    io.remove_child(ike.0, inbound_spi, outbound_spi);
                    debug!(
                        spi_in = format_args!("{inbound_spi:#010x}"),
                        ?reason,
                        "ESP SAs removed"
                    );
                }
                Event::IkeSaDown {
                    peer,
                    reason: DownReason::HalfOpenTimeout,
                    ..
                } => {
                    // Attacker-driven (one per spoofed message 1): counted, summarised.
                    quiet.half_open_timeout();
                    m.dropped("ike_half_open_timeout");
                    debug!(%peer, "half-open IKE SA timed out");
                }
                Event::IkeSaDown { id, peer, reason } => {
                    up.remove(&id);
                    traces.remove(&id);
                    let gone = io.remove_ike(id.0);
                    if let Some(l2tp) = gw.dp.l2tp.get() {
                        for key in &gone {
                            l2tp.peer_gone(*key);
                        }
                    }
                    info!(%peer, ?reason, l2tp_peers_closed = gone.len(), "IKE SA down");
                }
                Event::ChildSaMoved {
                    from,
                    to,
                    inbound_spi,
                    outbound_spi,
                } => {
                    io.adopt_child(from.0, to.0, inbound_spi, outbound_spi);
                    debug!(
                        spi_in = format_args!("{inbound_spi:#010x}"),
                        "ESP SAs moved to the new IKE SA"
                    );
                }
                Event::PeerMoved { id, peer, local } => {
                    if let (Some(local), Some(peer)) = (v4(local), v4(peer)) {
                        match io.move_peer(id.0, local, peer) {
                            Ok(PeerMove::Unchanged) => {}
                            Ok(PeerMove::Moved { l2tp_rename }) => {
                                m.ipsec_peer_moves.inc();
                                info!(%peer, ike = id.0, "IPsec client moved (learned from IKE)");
                                if l2tp_rename && let Some(l2tp) = gw.dp.l2tp.get() {
                                    l2tp.peers_moved();
                                }
                            }
                            Err(e) => {
                                m.ipsec_peer_moves.inc();
                                warn!(%peer, error = %e, "IPsec client moved; its L2TP peer could not follow");
                            }
                        }
                    }
                }
                Event::AuthFailed { peer, reason } => {
                    m.malformed(Layer::Ike);
                    if quiet.auth_failed() {
                        info!(%peer, reason, "IKE authentication failed");
                    }
                }
            }
        }
        tx_count.inc_by(flush(io, &mut r));
        for (why, n) in &r.stats().drops {
            let before = drops_seen.insert(*why, *n).unwrap_or(0);
            if *n > before {
                m.dropped_n(why.label(), n - before);
            }
        }
        m.ike_sas.set(i64::try_from(up.len()).unwrap_or(i64::MAX));
        m.ike_half_open
            .set(i64::try_from(r.half_open_count()).unwrap_or(i64::MAX));
        let retransmits = r.stats().retransmits;
        m.retransmitted(Layer::Ike, retransmits.saturating_sub(retransmits_seen));
        retransmits_seen = retransmits;
        // Informational events a full queue lost (SA events never are): counted as drops.
        let events_dropped = r.stats().events_dropped;
        m.dropped_n(
            "ike_events_dropped",
            events_dropped.saturating_sub(events_dropped_seen),
        );
        events_dropped_seen = events_dropped;
        m.esp_sas
            .set(i64::try_from(io.sa_count()).unwrap_or(i64::MAX));
        summarise(&mut quiet, &r, io);
        if last_activity.elapsed() >= ACTIVITY_EVERY {
            last_activity = Instant::now();
            // Clients the data path followed on their ESP: DPD and rekeys go there too.
            for mv in io.take_esp_moves() {
                r.peer_moved(
                    IkeSaId(mv.ike),
                    SocketAddr::V4(mv.local),
                    SocketAddr::V4(mv.remote),
                );
            }
            for (ike, ms) in io.activity() {
                if ms > 0 && seen.get(&ike) != Some(&ms) {
                    seen.insert(ike, ms);
                    r.note_activity(IkeSaId(ike), gw.dp.clock.epoch + Duration::from_millis(ms));
                }
            }
            seen.retain(|k, _| up.contains_key(&IkeSaId(*k)));
            let now = Instant::now();
            for (ike, spi) in io.rekey_due() {
                r.rekey_child(now, IkeSaId(ike), spi);
            }
        }
        let deadline = r
            .poll_timeout()
            .map(|d| d.min(Instant::now() + ACTIVITY_EVERY));
        tokio::select! {
            biased;
            c = shutdown.changed() => {
                if c.is_err() || *shutdown.borrow() {
                    r.shutdown();
                    while r.poll_event().is_some() {}
                    flush(io, &mut r);
                    break;
                }
            }
            d = next_datagram(&mut rx, &mut new_rx) => match d {
                Some(d) => {
                    rx_count.inc();
                    sync_config(&gw, &mut r, &mut version);
                    r.set_unix_time(unix_now());
                    r.handle_input(Instant::now(), SocketAddr::V4(d.local), SocketAddr::V4(d.remote), &d.bytes);
                }
                None => break,
            },
            _ = sleep_until(deadline) => r.handle_timeout(Instant::now()),
        }
    }
    m.ike_sas.set(0);
    m.esp_sas.set(0);
    debug!("IKE task stopped");
}

/// Once per [`quiet::INTERVAL`]: one line with what attackers can drive (timeouts,
/// evictions, refused datagrams, unlogged authentication failures), when any happened.
fn summarise(q: &mut quiet::Quiet, r: &Responder, io: &IpsecIo) {
    let now = Instant::now();
    if !q.due(now) {
        return;
    }
    let engine = r.stats().drops.iter().map(|(why, n)| (why.label(), *n));
    let totals: Vec<(&'static str, u64)> = match io.guard.get() {
        Some(g) => engine.chain(g.drop_counts()).collect(),
        None => engine.collect(),
    };
    let Some(s) = q.tick(now, totals) else {
        return;
    };
    if s.any() {
        warn!(
            half_open = r.half_open_count(),
            unanswered = r.unproven_count(),
            half_open_timeouts = s.half_open_timeouts,
            auth_failures = s.auth_failures,
            auth_failures_not_logged = s.auth_failures_not_logged,
            drops = %s.drops_text(),
            "IKE under pressure in the last {}s",
            quiet::INTERVAL.as_secs()
        );
    }
}

/// A reload replaces the PSK, proposals and lifetimes for new exchanges.
fn sync_config(gw: &Gateway, r: &mut Responder, version: &mut String) {
    let current = gw.config();
    if current.version == *version {
        return;
    }
    version.clone_from(&current.version);
    if let Some(i) = &current.l2tp.ipsec {
        r.set_config(i.responder_config(current.l2tp.port));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => tokio::time::sleep(ACTIVITY_EVERY).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eviction_drop_reason_is_the_responders_label() {
        assert!(DROP_REASONS.contains(&DropReason::Evicted.label()));
    }
}
