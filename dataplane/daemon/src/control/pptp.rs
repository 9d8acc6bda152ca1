//! One task per PPTP control connection (RFC 2637 §3): drives the PAC engine
//! with TCP bytes and timers, creates a link per accepted call, and carries
//! call teardown between the data path and the peer.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_ppp::{EncryptionPolicy, Ppp, ServerConfig};
use sluice_pptp::{ControlConnection, ControlEvent, GreChannel, OcrpResult, PacConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::timeout;
use tracing::{debug, info, warn};

use crate::config::{PppPolicy, Runtime};
use crate::datapath::link::{CtlCmd, Framing, Link, set_deadline, setup_span};
use crate::gateway::Gateway;
use crate::gateway::admission::ConnSlot;
use crate::host::{hostname, seed};
use crate::metrics::{Layer, Protocol, Role, SetupPhase};

/// How long a new call waits for the client to speak first.
const PASSIVE_START: Duration = Duration::from_millis(250);

/// PPP settings for a new server-side session of a protocol with `policy`.
///
/// `spec.ppp.mtu`/`mru` are IP packet sizes (the tunnel interface MTU); when
/// MPPE may be used, the PPP MRU/MTU carry its 4 bytes of overhead on top so
/// a full-size IP packet still fits.
pub fn ppp_server_config(cfg: &Runtime, policy: &PppPolicy) -> ServerConfig {
    let overhead = mppe_overhead(policy.mppe.policy);
    ServerConfig {
        auth: policy.auth.clone(),
        mppe: policy.mppe,
        mru: cfg.mru.saturating_add(overhead),
        mtu: cfg.mtu.saturating_add(overhead),
        local_addr: cfg.local_address,
        dns: cfg.dns.clone(),
        keepalive: cfg.keepalive,
        max_auth_attempts: 3,
        auth_timeout: Duration::from_secs(30),
        name: "sluice".into(),
    }
}

/// Bytes MPPE adds inside the PPP information field (RFC 3078 §3: header and
/// the encrypted protocol field), or 0 when MPPE is never negotiated.
pub fn mppe_overhead(policy: EncryptionPolicy) -> u16 {
    match policy {
        EncryptionPolicy::Deny => 0,
        _ => (sluice_ppp::mppe::HEADER_LEN + 2) as u16,
    }
}

/// PAC settings for a new control connection.
pub fn pac_config(max_calls: u16) -> PacConfig {
    PacConfig {
        hostname: hostname(),
        vendor: "Sluice".into(),
        max_calls,
        ..PacConfig::default()
    }
}

/// By default, a connection without a call for this long is closed (RFC 2637 §3.1.3: a PAC clears the
/// control connection once no call is left; stock clients place their call at once).
pub const NO_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A control message not taken by the peer's TCP stack within this is a dead or hostile
/// peer: the connection is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one control connection until it closes.
pub async fn serve(
    gw: Arc<Gateway>,
    stream: TcpStream,
    peer: SocketAddrV4,
    _permit: OwnedSemaphorePermit,
    _slot: ConnSlot,
) {
    let peer_ip = *peer.ip();
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<CtlCmd>();
    let pac_cfg = pac_config(gw.max_calls_per_connection);
    let recv_window = pac_cfg.recv_window;
    let opened = Instant::now();
    // The first call's control phase includes the connection's setup (SCCRQ/SCCRP).
    let mut first_call = true;
    let mut pac = ControlConnection::new(pac_cfg, opened);
    let mut calls: HashMap<u16, Arc<Link>> = HashMap::new();
    // The calls' latest PPP frame from the peer seen at the last timer (data-path clock,
    // milliseconds): liveness for the keep-alive.
    let mut calls_rx = 0u64;
    // Since when the connection has had no call (from the accept: SCCRQ, echoes and no
    // call hold a descriptor and a slot for nothing).
    let mut idle_since = Some(opened);
    let mut buf = vec![0u8; 2048];
    gw.dp.metrics.control_connections.inc();
    debug!(%peer, "control connection opened");
    let reason = 'conn: loop {
        let mut closed = None;
        while let Some(ev) = pac.poll_event() {
            let now = Instant::now();
            match ev {
                ControlEvent::Established {
                    peer_hostname,
                    peer_vendor,
                } => {
                    debug!(%peer, host = %peer_hostname, vendor = %peer_vendor, "control connection established");
                }
                ControlEvent::CallRequested {
                    peer_call_id,
                    peer_recv_window,
                    ..
                } => {
                    let (slot, id) = match gw.open_call(Protocol::Pptp, peer_ip, false) {
                        Ok(opened) => opened,
                        Err(why) => {
                            info!(%peer, reason = %why, "call refused");
                            pac.reject_call(now, peer_call_id, OcrpResult::Busy, None);
                            continue;
                        }
                    };
                    let cfg = gw.config();

                    let span = setup_span(Role::Server, Protocol::Pptp, peer_ip);
                    span.record("call_id", id);
                    let control = tracing::info_span!(parent: &span, "control");
                    let ppp = Ppp::server(ppp_server_config(&cfg, &cfg.pptp), now, seed());
                    let mut gre = GreChannel::new(peer_call_id, peer_recv_window, now);
                    gre.set_recv_window(recv_window);
                    let started = if std::mem::take(&mut first_call) {
                        opened
                    } else {
                        now
                    };
                    let link = Arc::new(Link::new(
                        id,
                        peer_call_id,
                        peer_ip,
                        now,
                        tx.clone(),
                        ppp,
                        Framing::Gre(gre),
                    ));
                    link.lock().setup_slot = Some(slot);
                    gw.note_setups();
                    gw.dp.links.insert(link.clone());
                    idle_since = None;
                    if let Err(e) = pac.accept_call(now, peer_call_id, id) {
                        warn!(%peer, error = %e, "accepting call failed");
                        gw.abort(&link, "call setup failed");
                        continue;
                    }
                    gw.dp.metrics.phase(
                        Protocol::Pptp,
                        SetupPhase::Control,
                        now.saturating_duration_since(started),
                    );
                    drop(control);
                    link.set_setup_span(span);
                    calls.insert(id, link.clone());
                    // Passive start: the engine's first Configure-Request goes
                    // out when the client's first GRE packet arrives (it is then
                    // ready to receive) or after a short grace period, so it is
                    // not lost to the race between our OCRP and the client
                    // setting up its side (which would cost a 3 s restart).
                    let grace = now + PASSIVE_START;
                    set_deadline(&gw.dp.timers, &link, gw.dp.clock.encode(Some(grace)));
                }
                ControlEvent::CallCleared { local_call_id } => {
                    if let Some(link) = calls.remove(&local_call_id) {
                        gw.abort(&link, "peer cleared the call");
                    }
                    if calls.is_empty() {
                        idle_since = Some(now);
                    }
                }
                ControlEvent::Closed { reason } => closed = Some(reason),
                _ => {}
            }
        }
        while let Some(bytes) = pac.poll_transmit() {
            match timeout(WRITE_TIMEOUT, wr.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => break 'conn format!("write failed: {e}"),
                Err(_) => break 'conn "write timed out: the peer does not read".to_owned(),
            }
        }
        if let Some(reason) = closed {
            break reason;
        }
        let idle_deadline = idle_since.map(|t| t + gw.control_idle_timeout);
        if idle_deadline.is_some_and(|d| Instant::now() >= d) {
            gw.dp.metrics.dropped("control_connection_without_call");
            break "no call placed".to_owned();
        }
        let deadline = [pac.poll_timeout(), idle_deadline]
            .into_iter()
            .flatten()
            .min();
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => break "peer closed the TCP connection".to_owned(),
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if let Err(e) = pac.handle_input(Instant::now(), data) {
                        gw.dp.metrics.malformed(Layer::Pptp);
                        info!(%peer, error = %e, "bad control message; closing connection");
                        while let Some(bytes) = pac.poll_transmit() {
                            let _ = wr.write_all(&bytes).await;
                        }
                        break e.to_string();
                    }
                }
                Err(e) => break format!("read failed: {e}"),
            },
            Some(cmd) = rx.recv() => match cmd {
                CtlCmd::CallDown { local_call_id, cause } => {
                    if calls.remove(&local_call_id).is_some() {
                        pac.disconnect_call(Instant::now(), local_call_id, &cause);
                    }
                }
            },
            _ = sleep_until(deadline) => {
                let now = Instant::now();
                // PPP from the peer since the last timer says it is alive: no Echo-Request.
                let rx = calls.values().map(|l| l.last_rx_ms.load(Ordering::Relaxed)).max().unwrap_or(0);
                if rx > calls_rx {
                    calls_rx = rx;
                    pac.note_peer_alive(gw.dp.clock.epoch + Duration::from_millis(rx));
                }
                pac.handle_timeout(now);
            }
        }
    };
    for link in calls.values() {
        gw.abort(link, "control connection closed");
    }
    let _ = wr.shutdown().await;
    gw.dp.metrics.control_connections.dec();
    debug!(%peer, %reason, "control connection closed");
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
