//! The in-repo L2TP client (LAC role, RFC 2661 §7.2–§7.4: incoming calls):
//! one task owns a LAC [`Endpoint`] with every tunnel of the client process,
//! fed by the control queue of [`sluice_dataplane::datapath::l2tp`]. Tunnels are opened on
//! request, each with its sessions; a link per established session carries
//! PPP through the shared data path. Outcomes go to the client's channel like
//! PPTP's.

use std::collections::HashMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_l2tp::{CdnResult, Endpoint, EndpointConfig, Event, Role};
use sluice_ppp::{ClientConfig, Ppp};
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::ClientError;
use sluice_dataplane::client::{Client, Outcome};
use sluice_dataplane::datapath::Hooks;
use sluice_dataplane::datapath::l2tp::{ControlDatagram, flush_control, session_link};
use sluice_dataplane::datapath::link::{CtlCmd, Link, set_deadline};
use sluice_dataplane::host::seed;

/// How long stopping waits for the LNS to acknowledge StopCCN.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long a new session waits for the LNS to speak first (an LNS sends its
/// Configure-Request when ICCN arrives; a passive one waits for ours).
const PASSIVE_START: Duration = Duration::from_secs(1);

/// What the client's tunnels look like.
#[derive(Debug, Clone)]
pub struct LacParams {
    pub server: SocketAddrV4,
    pub ppp: ClientConfig,
    /// Tunnel secret (RFC 2661 §5.1.1); `None`: no tunnel authentication.
    pub secret: Option<Vec<u8>>,
    /// Hide the AVPs RFC 2661 §4.3 allows hiding (needs `secret`).
    pub hide_avps: bool,
    /// Ask the LNS for data sequencing (Sequencing Required in ICCN).
    pub sequencing: bool,
}

/// A request to the LAC task.
#[derive(Debug)]
pub enum LacCmd {
    /// Opens one tunnel carrying `sessions` sessions.
    Open { sessions: u16 },
}

/// Runs the LAC until `stop` turns true and every tunnel has closed.
pub async fn run(
    client: Arc<Client>,
    params: LacParams,
    mut datagrams: mpsc::Receiver<ControlDatagram>,
    mut cmds: mpsc::UnboundedReceiver<LacCmd>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let io = client
        .dp()
        .l2tp
        .get()
        .ok_or(ClientError::NotOpen("client's L2TP port"))?;
    let local = io.sock.local_addr().ok_or(ClientError::NotOpen(
        "client's L2TP port (it has no address)",
    ))?;
    let mut ep = Endpoint::new(
        EndpointConfig {
            role: Role::Lac,
            hostname: "sluice-client".into(),
            vendor: "Sluice".into(),
            secret: params.secret.clone(),
            hide_avps: params.hide_avps && params.secret.is_some(),
            max_tunnels: usize::MAX,
            max_pending_tunnels: usize::MAX,
            max_sessions_per_tunnel: usize::from(u16::MAX),
            sequencing_required: params.sequencing,
            ..EndpointConfig::default()
        },
        seed(),
    );
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel::<CtlCmd>();
    let mut links: HashMap<u16, (u16, Arc<Link>)> = HashMap::new();
    let mut pending: HashMap<u16, u16> = HashMap::new();
    let mut stopping: Option<Instant> = None;
    loop {
        while let Some(ev) = ep.poll_event() {
            let now = Instant::now();
            match ev {
                ev @ Event::SessionUp { local_session, .. } => {
                    if pending.remove(&local_session).is_none() {
                        continue;
                    }
                    let ppp = Ppp::client(params.ppp.clone(), now, seed());
                    let Some((tunnel, link)) = session_link(&ev, Role::Lac, ppp, &ctl_tx, now)
                    else {
                        client.release_id(local_session);
                        continue;
                    };
                    let link = Arc::new(link);
                    client.dp().links.insert(link.clone());
                    links.insert(local_session, (tunnel, link.clone()));
                    // Passive start: our ICCN may still wait in the control window while
                    // data would go out at once, and the LNS drops data for a session it
                    // has not seen ICCN for (a lost Configure-Request costs the 3 s restart
                    // timer). The LNS speaks first on receiving ICCN; our Configure-Request
                    // follows its first frame, or the grace period.
                    set_deadline(
                        &client.dp().timers,
                        &link,
                        client.dp().clock.encode(Some(now + PASSIVE_START)),
                    );
                }
                Event::SessionDown {
                    local_session,
                    reason,
                    ..
                } => {
                    if let Some((_, link)) = links.remove(&local_session) {
                        let mut st = link.lock();
                        let outcome = if st.up_at.is_some() {
                            Outcome::Down(format!("gateway disconnected the session: {reason}"))
                        } else {
                            Outcome::Failed(st.down_reason.take().unwrap_or_else(|| {
                                format!("gateway disconnected the session: {reason}")
                            }))
                        };
                        client.finish(&link, &mut st, outcome);
                    } else if pending.remove(&local_session).is_some() {
                        client.release_id(local_session);
                        client.outcome(
                            local_session,
                            Outcome::Failed(format!("session refused: {reason}")),
                        );
                    }
                }
                Event::TunnelDown { tunnel, reason } => {
                    debug!(tunnel, %reason, "L2TP tunnel down");
                }
                _ => {}
            }
        }
        flush_control(client.dp(), &mut ep);
        if let Some(since) = stopping
            && links.is_empty()
            && pending.is_empty()
        {
            if ep.tunnel_count() > 0 && !ep.is_shutting_down() {
                ep.shutdown(Instant::now());
                continue;
            }
            if ep.tunnel_count() == 0 || since.elapsed() >= STOP_GRACE {
                break;
            }
        }
        let deadline = ep.poll_timeout();
        tokio::select! {
            d = datagrams.recv() => match d {
                Some(d) => {
                    if let Err(e) = ep.handle_input(Instant::now(), SocketAddr::V4(d.local), SocketAddr::V4(d.remote), &d.bytes) {
                        debug!(error = %e, "bad L2TP control message from the server");
                    }
                }
                None => break,
            },
            Some(cmd) = cmds.recv(), if stopping.is_none() => match cmd {
                LacCmd::Open { sessions } => {
                    let now = Instant::now();
                    let tunnel = match ep.connect(now, SocketAddr::V4(local), SocketAddr::V4(params.server)) {
                        Ok(t) => t,
                        Err(e) => {
                            for _ in 0..sessions {
                                client.outcome(0, Outcome::Failed(format!("opening a tunnel: {e}")));
                            }
                            continue;
                        }
                    };
                    for _ in 0..sessions {
                        let Some(id) = client.allocate_id() else {
                            return Err(sluice_dataplane::client::DialError::OutOfIds("session").into());
                        };
                        match ep.open_session(now, tunnel, id) {
                            Ok(()) => {
                                pending.insert(id, tunnel);
                            }
                            Err(e) => {
                                client.release_id(id);
                                client.outcome(id, Outcome::Failed(format!("opening a session: {e}")));
                            }
                        }
                    }
                }
            },
            Some(cmd) = ctl_rx.recv() => match cmd {
                CtlCmd::CallDown { local_call_id, cause } => {
                    if let Some((tunnel, _)) = links.remove(&local_call_id) {
                        ep.close_session(Instant::now(), tunnel, local_call_id, CdnResult::AdminDisconnect, &cause);
                    }
                }
            },
            r = stop.changed(), if stopping.is_none() => {
                if r.is_err() || *stop.borrow() {
                    stopping = Some(Instant::now());
                    for (_, link) in links.values() {
                        client.close(link, "client stopping");
                    }
                    for (id, tunnel) in pending.drain() {
                        ep.close_session(Instant::now(), tunnel, id, CdnResult::AdminDisconnect, "client stopping");
                        client.release_id(id);
                        client.outcome(id, Outcome::Failed("client stopped".into()));
                    }
                }
            }
            _ = sleep_until(deadline) => ep.handle_timeout(Instant::now()),
        }
    }
    for (_, link) in links.into_values() {
        let mut st = link.lock();
        client.finish(&link, &mut st, Outcome::Down("L2TP tunnel closed".into()));
    }
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
