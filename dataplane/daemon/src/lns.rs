//! The gateway's L2TP control plane (RFC 2661 §5, §7; LNS role). One task owns
//! the sans-IO [`Endpoint`] with every tunnel of this node. It is fed by the
//! control queue of [`crate::l2tp_path`], answers incoming calls through the
//! same admission as PPTP, creates a link per established session and carries
//! session teardown between the data path and the LAC (CDN).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_l2tp::{CdnResult, DataSequencer, Endpoint, EndpointConfig, Event, Role, StopCcnResult};
use sluice_ppp::Ppp;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::config::Runtime;
use crate::control::{ppp_server_config, seed};
use crate::datapath::drive;
use crate::gateway::Gateway;
use crate::l2tp_path::ControlDatagram;
use crate::link::{CtlCmd, Framing, L2tpFraming, Link};
use crate::metrics::{DirLabels, Direction, Layer, Protocol, SetupResult};

/// How long shutdown waits for the LACs to acknowledge StopCCN.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Tunnels answered but not yet established, at most (each costs retransmissions of SCCRP).
const MAX_PENDING_TUNNELS: usize = 1024;

/// Endpoint settings for the gateway from its configuration and the host's limits.
pub fn endpoint_config(cfg: &Runtime, limits: Limits) -> EndpointConfig {
    EndpointConfig {
        role: Role::Lns,
        hostname: crate::control::hostname(),
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

fn v4(a: SocketAddr) -> Option<SocketAddrV4> {
    match a {
        SocketAddr::V4(a) => Some(a),
        SocketAddr::V6(_) => None,
    }
}

/// Runs the LNS until `shutdown` turns true and the tunnels are closed.
pub async fn run(
    gw: Arc<Gateway>,
    mut datagrams: mpsc::Receiver<ControlDatagram>,
    mut shutdown: watch::Receiver<bool>,
    limits: Limits,
) {
    let mut version = gw.config().version.clone();
    let mut ep = Endpoint::new(endpoint_config(&gw.config(), limits), seed());
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<CtlCmd>();
    // Our Session ID → (our Tunnel ID, link); and IDs answered but not up yet.
    let mut sessions: HashMap<u16, (u16, Arc<Link>)> = HashMap::new();
    let mut pending: HashMap<u16, u16> = HashMap::new();
    // Established tunnels (TunnelUp until TunnelDown), for the gauge.
    let mut up: HashSet<u16> = HashSet::new();
    let mut stopping: Option<Instant> = None;
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
                    info!(tunnel, %remote, host = %peer_hostname, vendor = %peer_vendor, "L2TP tunnel up");
                }
                Event::SessionRequested {
                    tunnel,
                    peer_session,
                    remote,
                    ..
                } => {
                    let cfg = gw.config();
                    let in_use = gw.dp.links.len() + pending.len();
                    let limit = cfg.max_sessions > 0 && in_use >= cfg.max_sessions as usize;
                    let id = if limit || !cfg.l2tp.enabled || stopping.is_some() {
                        None
                    } else {
                        gw.call_ids
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .allocate()
                    };
                    let Some(id) = id else {
                        gw.dp.metrics.setup(Protocol::L2tp, SetupResult::Limit);
                        info!(%remote, "L2TP call refused: gateway session limit");
                        ep.reject_session(
                            now,
                            tunnel,
                            peer_session,
                            CdnResult::TemporaryNoFacilities,
                            "session limit reached",
                        );
                        continue;
                    };
                    match ep.accept_session(now, tunnel, peer_session, id) {
                        Ok(()) => {
                            pending.insert(id, tunnel);
                        }
                        Err(e) => {
                            warn!(%remote, error = %e, "accepting an L2TP call failed");
                            release(&gw, id);
                        }
                    }
                }
                Event::SessionUp {
                    tunnel,
                    local_session,
                    peer_tunnel,
                    peer_session,
                    remote,
                    local,
                    sequencing,
                    ..
                } => {
                    if pending.remove(&local_session).is_none() {
                        continue;
                    }
                    let (Some(remote), Some(local)) = (v4(remote), v4(local)) else {
                        release(&gw, local_session);
                        continue;
                    };
                    let cfg = gw.config();
                    let ppp = Ppp::server(ppp_server_config(&cfg, &cfg.l2tp.ppp), now, seed());
                    let framing = Framing::L2tp(L2tpFraming {
                        local_tunnel: tunnel,
                        peer_tunnel,
                        peer_session,
                        remote,
                        local: *local.ip(),
                        seq: DataSequencer::new(Role::Lns, sequencing),
                    });
                    let link = Arc::new(Link::new(
                        local_session,
                        peer_session,
                        *remote.ip(),
                        now,
                        ctl_tx.clone(),
                        ppp,
                        framing,
                    ));
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
                    } else if pending.remove(&local_session).is_some() {
                        gw.dp.metrics.setup(Protocol::L2tp, SetupResult::PeerClosed);
                        release(&gw, local_session);
                    }
                }
                Event::TunnelDown { tunnel, reason } => {
                    up.remove(&tunnel);
                    info!(tunnel, %reason, "L2TP tunnel down");
                }
                _ => {}
            }
        }
        if let Some(io) = gw.dp.l2tp.get() {
            while let Some(t) = ep.poll_transmit() {
                let Some(remote) = v4(t.remote) else { continue };
                let from = match t.local.ip() {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                };
                match io.sock.send_from(&t.payload, from, remote) {
                    Ok(_) => {
                        tx.inc();
                    }
                    Err(e) => debug!(%remote, error = %e, "L2TP control send failed"),
                }
            }
        }
        gw.dp
            .metrics
            .l2tp_tunnels
            .set(i64::try_from(up.len()).unwrap_or(i64::MAX));
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
                    let local = SocketAddr::V4(d.local);
                    if let Err(e) = ep.handle_input(Instant::now(), local, SocketAddr::V4(d.remote), &d.bytes) {
                        gw.dp.metrics.malformed(Layer::L2tp);
                        debug!(remote = %d.remote, error = %e, "bad L2TP control message");
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
            r = shutdown.changed(), if stopping.is_none() => {
                if r.is_err() || *shutdown.borrow() {
                    stopping = Some(Instant::now());
                    ep.shutdown(Instant::now());
                }
            }
            _ = sleep_until(deadline) => ep.handle_timeout(Instant::now()),
        }
        let current = gw.config();
        if current.version != version {
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

fn release(gw: &Gateway, id: u16) {
    gw.call_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .release(id);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
