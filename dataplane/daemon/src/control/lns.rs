//! The gateway's L2TP control plane (RFC 2661 §5, §7; LNS role). One task owns
//! the sans-IO [`Endpoint`] with every tunnel of this node. It is fed by the
//! control queue of [`crate::datapath::l2tp`], answers incoming calls through the
//! same admission as PPTP, creates a link per established session and carries
//! session teardown between the data path and the LAC (CDN).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_l2tp::{
    CdnResult, Endpoint, EndpointConfig, Error as L2tpError, Event, Role, StopCcnResult,
    TunnelState,
};
use sluice_ppp::Ppp;
use tokio::sync::{mpsc, watch};
use tracing::{Span, debug, info, warn};

use crate::config::Runtime;
use crate::control::pptp::ppp_server_config;
use crate::datapath::drive;
use crate::datapath::l2tp::{ControlQueues, flush_control, session_link};
use crate::datapath::link::{CtlCmd, Framing, Link, setup_span};
use crate::gateway::Gateway;
use crate::gateway::admission::SetupSlot;
use crate::host::seed;
use crate::metrics::{self, DirLabels, Direction, Layer, Protocol, SetupPhase, SetupResult};

/// How long shutdown waits for the LACs to acknowledge StopCCN.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Tunnels answered but not yet established, at most (each costs retransmissions of SCCRP).
const MAX_PENDING_TUNNELS: usize = 1024;

/// Shortest time between two sweeps of the sessions' data activity into the endpoint
/// ([`note_data_activity`]): each sweep reads every session once.
const ACTIVITY_SWEEP: Duration = Duration::from_secs(1);

/// Endpoint settings for the gateway from its configuration and the host's limits.
pub fn endpoint_config(cfg: &Runtime, limits: Limits) -> EndpointConfig {
    EndpointConfig {
        role: Role::Lns,
        hostname: crate::host::hostname(),
        vendor: "Sluice".into(),
        secret: cfg.l2tp.secret.as_ref().map(|s| s.expose().to_vec()),
        hello_interval: cfg.l2tp.hello,
        max_tunnels: limits.tunnels,
        max_pending_tunnels: MAX_PENDING_TUNNELS.min(limits.tunnels),
        max_sessions_per_tunnel: limits.sessions_per_tunnel,
        ..EndpointConfig::default()
    }
}

/// Host limits for the LNS.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Tunnels at once (the PPTP control-connection bound applies to L2TP tunnels too).
    pub tunnels: usize,
    /// Sessions per tunnel.
    pub sessions_per_tunnel: usize,
}

/// Runs the LNS until `shutdown` turns true and the tunnels are closed.
pub async fn run(
    gw: Arc<Gateway>,
    queues: ControlQueues,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) {
    let ControlQueues {
        control: mut datagrams,
        mut gone,
        moved,
    } = queues;
    let mut version = gw.config().version.clone();
    let mut ep = Endpoint::new(endpoint_config(&gw.config(), limits), seed());
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<CtlCmd>();
    // Our Session ID → (our Tunnel ID, link); and IDs answered but not up yet.
    let mut sessions: HashMap<u16, (u16, Arc<Link>)> = HashMap::new();
    // (pending: when the call's signalling started, its setup trace and control phase.)
    // Each holds its session's place among those in setup (admission), until the link does.
    let mut pending: HashMap<u16, (Instant, Span, Span, SetupSlot)> = HashMap::new();
    // Tunnels up whose first call has not come yet: since when (SCCCN).
    let mut fresh: HashMap<u16, Instant> = HashMap::new();
    // Established tunnels (TunnelUp until TunnelDown), for the gauge.
    let mut up: HashSet<u16> = HashSet::new();
    let mut stopping: Option<Instant> = None;
    let mut retransmits_seen = 0;
    let mut swept = Instant::now();
    let control = &gw.dp.metrics.l2tp_control;
    let rx = control
        .get_or_create(&DirLabels {
            direction: Direction::Rx,
        })
        .clone();
    let tx = control
        .get_or_create(&DirLabels {
            direction: Direction::Tx,
        })
        .clone();
    loop {
        while let Some(ev) = ep.poll_event() {
            let now = Instant::now();
            match ev {
                Event::TunnelUp {
                    tunnel,
                    remote,
                    peer_hostname,
                    peer_vendor,
                    ..
                } => {
                    up.insert(tunnel);
                    fresh.insert(tunnel, now);
                    info!(tunnel, %remote, host = %peer_hostname, vendor = %peer_vendor, "L2TP tunnel up");
                }
                Event::SessionRequested {
                    tunnel,
                    peer_session,
                    remote,
                    ..
                } => {
                    let started = fresh.remove(&tunnel).unwrap_or(now);
                    let caller = match remote.ip() {
                        IpAddr::V4(a) => a,
                        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
                    };
                    let (slot, id) = match gw.open_call(Protocol::L2tp, caller, stopping.is_some())
                    {
                        Ok(opened) => opened,
                        Err(why) => {
                            info!(%remote, reason = %why, "L2TP call refused");
                            ep.reject_session(
                                now,
                                tunnel,
                                peer_session,
                                CdnResult::TemporaryNoFacilities,
                                &why.to_string(),
                            );
                            continue;
                        }
                    };
                    match ep.accept_session(now, tunnel, peer_session, id) {
                        Ok(()) => {
                            let span = setup_span(metrics::Role::Server, Protocol::L2tp, caller);
                            span.record("call_id", id);
                            let control = tracing::info_span!(parent: &span, "control");
                            pending.insert(id, (started, span, control, slot));
                            gw.note_setups();
                        }
                        Err(e) => {
                            warn!(%remote, error = %e, "accepting an L2TP call failed");
                            release(&gw, id);
                        }
                    }
                }
                ev @ Event::SessionUp { local_session, .. } => {
                    let Some((started, span, control, slot)) = pending.remove(&local_session)
                    else {
                        continue;
                    };
                    let cfg = gw.config();
                    let ppp = Ppp::server(ppp_server_config(&cfg, &cfg.l2tp.ppp), now, seed());
                    let Some((tunnel, link)) = session_link(&ev, Role::Lns, ppp, &ctl_tx, now)
                    else {
                        release(&gw, local_session);
                        continue;
                    };
                    let link = Arc::new(link);
                    gw.dp.metrics.phase(
                        Protocol::L2tp,
                        SetupPhase::Control,
                        now.saturating_duration_since(started),
                    );
                    drop(control);
                    link.set_setup_span(span);
                    link.lock().setup_slot = Some(slot);
                    gw.dp.links.insert(link.clone());
                    sessions.insert(local_session, (tunnel, link.clone()));
                    // The LAC has sent ICCN and is ready: our Configure-Request goes out now.
                    let mut st = link.lock();
                    drive(&*gw, &link, &mut st, now);
                }
                Event::SessionDown {
                    local_session,
                    reason,
                    ..
                } => {
                    if let Some((_, link)) = sessions.remove(&local_session) {
                        gw.abort(&link, &format!("L2TP session closed: {reason}"));
                    } else if let Some((_, span, _, slot)) = pending.remove(&local_session) {
                        span.record("result", SetupResult::PeerClosed.as_str());
                        gw.dp.metrics.setup(Protocol::L2tp, SetupResult::PeerClosed);
                        release(&gw, local_session);
                        drop(slot);
                        gw.note_setups();
                    }
                }
                Event::TunnelDown { tunnel, reason } => {
                    up.remove(&tunnel);
                    fresh.remove(&tunnel);
                    info!(tunnel, %reason, "L2TP tunnel down");
                }
                _ => {}
            }
        }
        tx.inc_by(flush_control(&gw.dp, &mut ep));
        gw.dp
            .metrics
            .l2tp_tunnels
            .set(i64::try_from(up.len()).unwrap_or(i64::MAX));
        let retransmits = ep.stats().retransmits;
        gw.dp
            .metrics
            .retransmitted(Layer::L2tp, retransmits.saturating_sub(retransmits_seen));
        retransmits_seen = retransmits;
        if let Some(since) = stopping
            && (ep.tunnel_count() == 0 || since.elapsed() >= SHUTDOWN_GRACE)
        {
            break;
        }
        let deadline = ep.poll_timeout();
        tokio::select! {
            d = datagrams.recv() => match d {
                Some(d) => {
                    rx.inc();
                    // A reload (new tunnel secret) applies before the next message is read.
                    sync_config(&gw, &mut ep, &mut version);
                    let local = SocketAddr::V4(d.local);
                    match ep.handle_input(Instant::now(), local, SocketAddr::V4(d.remote), &d.bytes) {
                        Ok(()) => {}
                        Err(e @ L2tpError::Malformed(_)) => {
                            gw.dp.metrics.malformed(Layer::L2tp);
                            debug!(remote = %d.remote, error = %e, "malformed L2TP control message");
                        }
                        Err(e) => {
                            gw.dp.metrics.dropped(drop_reason(&e));
                            debug!(remote = %d.remote, error = %e, "L2TP control message dropped");
                        }
                    }
                }
                None => break,
            },
            Some(cmd) = ctl_rx.recv() => match cmd {
                CtlCmd::CallDown { local_call_id, cause } => {
                    if let Some((tunnel, _)) = sessions.remove(&local_call_id) {
                        ep.close_session(Instant::now(), tunnel, local_call_id, CdnResult::AdminDisconnect, &cause);
                    }
                }
            },
            Some(key) = gone.recv() => {
                // Nothing reaches the client any more: end its tunnels now (sessions and
                // addresses are released at once; the StopCCN cannot be delivered).
                let remote = SocketAddr::V4(key);
                // Tunnels already ending (StopCCN sent or received) are left to finish.
                let ids: Vec<u16> = ep
                    .tunnels()
                    .filter(|t| t.remote == remote)
                    .filter(|t| !matches!(t.state, TunnelState::Closing | TunnelState::Draining))
                    .map(|t| t.tunnel)
                    .collect();
                for tunnel in ids {
                    info!(tunnel, %remote, "closing L2TP tunnel: its IPsec SAs are gone");
                    ep.close_tunnel(Instant::now(), tunnel, StopCcnResult::GeneralRequest, "IPsec SA deleted");
                }
            }
            () = moved.notified() => follow_moved_peers(&gw, &mut ep, &sessions),
            r = shutdown.changed(), if stopping.is_none() => {
                if r.is_err() || *shutdown.borrow() {
                    stopping = Some(Instant::now());
                    ep.shutdown(Instant::now());
                }
            }
            _ = sleep_until(deadline) => {
                let now = Instant::now();
                if now.saturating_duration_since(swept) >= ACTIVITY_SWEEP {
                    swept = now;
                    note_data_activity(&gw, &mut ep, &sessions);
                }
                ep.handle_timeout(now);
            }
        }
        sync_config(&gw, &mut ep, &mut version);
    }
    for (_, link) in sessions.into_values() {
        gw.abort(&link, "L2TP control plane stopped");
    }
    for id in pending.into_keys() {
        release(&gw, id);
    }
    gw.dp.metrics.l2tp_tunnels.set(0);
    debug!("L2TP control plane stopped");
}

/// IPsec clients moved to a new address (NAT rebinding, learned from authenticated ESP or
/// IKE): their tunnels and sessions follow, then the old address is retired.
fn follow_moved_peers(gw: &Gateway, ep: &mut Endpoint, sessions: &HashMap<u16, (u16, Arc<Link>)>) {
    let Some(io) = gw.dp.ipsec.get() else { return };
    for (from, to) in io.renames() {
        let tunnels = ep.move_peer(SocketAddr::V4(from), SocketAddr::V4(to));
        for (_, link) in sessions.values().filter(|(t, _)| tunnels.contains(t)) {
            if let Framing::L2tp(f) = &mut link.lock().framing {
                f.remote = to;
            }
        }
        io.renamed(from, to);
        info!(%from, %to, tunnels = tunnels.len(), "L2TP peer followed to its new address");
    }
}

/// Applies a configuration change to the endpoint: the tunnel secret and HELLO interval
/// at once; L2TP turned off closes every tunnel (StopCCN).
fn sync_config(gw: &Gateway, ep: &mut Endpoint, version: &mut String) {
    let current = gw.config();
    if current.version == *version {
        return;
    }
    version.clone_from(&current.version);
    ep.set_secret(current.l2tp.secret.as_ref().map(|s| s.expose().to_vec()));
    ep.set_hello_interval(current.l2tp.hello);
    if !current.l2tp.enabled {
        for tunnel in ep.tunnel_ids() {
            ep.close_tunnel(
                Instant::now(),
                tunnel,
                StopCcnResult::GeneralRequest,
                "L2TP disabled by configuration",
            );
        }
    }
}

/// The `dropped_packets` reason for a well-formed control message the endpoint refused.
fn drop_reason(e: &L2tpError) -> &'static str {
    match e {
        L2tpError::UnknownTunnel(_) => "l2tp_unknown_tunnel",
        L2tpError::AddressMismatch(_) => "wrong_l2tp_source",
        L2tpError::TooManyTunnels | L2tpError::TooManyPendingTunnels => "l2tp_tunnel_limit",
        _ => "l2tp_control_refused",
    }
}

fn release(gw: &Gateway, id: u16) {
    gw.call_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .release(id);
}

/// Data counts as liveness (RFC 2661 §5.5; §6.5 leaves HELLO's policy to the implementation):
/// before the endpoint's timers run, each tunnel learns when its sessions last carried a frame
/// from the LAC, so a busy tunnel sends no HELLO.
fn note_data_activity(gw: &Gateway, ep: &mut Endpoint, sessions: &HashMap<u16, (u16, Arc<Link>)>) {
    for (tunnel, link) in sessions.values() {
        let ms = link.last_rx_ms.load(std::sync::atomic::Ordering::Relaxed);
        if ms != 0 {
            ep.note_data_activity(gw.dp.clock.epoch + Duration::from_millis(ms), *tunnel);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
