//! The in-repo PPTP client (PNS role, RFC 2637) and PPP peer: the tool the
//! network tests and the load generator use to open sessions against a gateway
//! (its L2TP counterpart is [`crate::lac`]). It shares the data path with the
//! gateway; only its [`Hooks`] differ.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_ppp::{ClientConfig, Encoding, Event, Ppp};
use sluice_pptp::{GreChannel, Pns, PnsConfig, PnsEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use sluice_dataplane::datapath::callid::CallIds;
use sluice_dataplane::datapath::link::{CtlCmd, Framing, Link, LinkState};
use sluice_dataplane::datapath::{DataPath, Hooks, drive};
use sluice_dataplane::host::seed;

use crate::ClientError;

/// GRE receive window the client advertises in its Outgoing-Call-Requests.
const RECV_WINDOW: u16 = 64;

/// How one session attempt ended (or that it came up).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Up {
        address: Ipv4Addr,
        gateway: Ipv4Addr,
        dns: Vec<Ipv4Addr>,
        encoding: Encoding,
        setup: Duration,
    },
    Failed(String),
    Down(String),
}

/// The client's hooks: report outcomes, count delivered packets.
pub struct Client {
    pub dp: DataPath,
    pub call_ids: Mutex<CallIds>,
    outcomes: mpsc::UnboundedSender<(u16, Outcome)>,
    /// Packets and bytes delivered when there is no TUN device.
    pub sink_packets: AtomicU64,
    pub sink_bytes: AtomicU64,
    /// Abuse tests: send whatever the TUN device gives, IPv6 included, as IPv4 PPP frames.
    pub send_any_ip: AtomicBool,
}

impl Client {
    pub fn new(dp: DataPath) -> (Arc<Client>, mpsc::UnboundedReceiver<(u16, Outcome)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Client {
                dp,
                call_ids: Mutex::new(CallIds::new(sluice_dataplane::host::seed_u64())),
                outcomes: tx,
                sink_packets: AtomicU64::new(0),
                sink_bytes: AtomicU64::new(0),
                send_any_ip: AtomicBool::new(false),
            }),
            rx,
        )
    }

    /// A fresh local Call ID / Session ID.
    pub fn allocate_id(&self) -> Option<u16> {
        self.call_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allocate()
    }

    /// Returns an ID that never got a link.
    pub fn release_id(&self, id: u16) {
        self.call_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(id);
    }

    /// Reports an outcome for a session that has no link.
    pub fn outcome(&self, id: u16, outcome: Outcome) {
        let _ = self.outcomes.send((id, outcome));
    }

    /// Ends a link and reports its outcome. Idempotent.
    pub fn finish(&self, link: &Arc<Link>, st: &mut LinkState, outcome: Outcome) {
        if st.session.is_closed() {
            return;
        }
        st.session = sluice_dataplane::gateway::policy::SessionPhase::Closed;
        link.dead.store(true, Ordering::Relaxed);
        if let Some(a) = st.address.take() {
            self.dp.links.unbind_address(a, link.local_call_id);
        }
        self.dp.links.remove(link.local_call_id);
        self.call_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(link.local_call_id);
        let cause = match &outcome {
            Outcome::Failed(s) | Outcome::Down(s) => s.clone(),
            Outcome::Up { .. } => String::new(),
        };
        let _ = self.outcomes.send((link.local_call_id, outcome));
        let _ = link.ctl.send(CtlCmd::CallDown {
            local_call_id: link.local_call_id,
            cause,
        });
    }

    /// Closes a link gracefully (LCP Terminate; Down follows).
    pub fn close(&self, link: &Arc<Link>, reason: &str) {
        let now = Instant::now();
        let mut st = link.lock();
        if !st.session.is_closed() {
            st.ppp.close(now, reason);
            drive(self, link, &mut st, now);
        }
    }
}

impl Hooks for Client {
    fn dp(&self) -> &DataPath {
        &self.dp
    }

    fn on_event(&self, link: &Arc<Link>, st: &mut LinkState, ev: Event, now: Instant) {
        match ev {
            Event::Up {
                local,
                peer,
                dns,
                encoding,
            } => {
                // In the client, "local" is our address and "peer" the gateway's.
                st.address = Some(local);
                st.encoding = encoding;
                st.up_at = Some((now, std::time::SystemTime::now()));
                self.dp.links.bind_address(local, link.clone());
                let _ = self.outcomes.send((
                    link.local_call_id,
                    Outcome::Up {
                        address: local,
                        gateway: peer,
                        dns,
                        encoding,
                        setup: now.saturating_duration_since(link.created),
                    },
                ));
            }
            Event::AuthFailed { reason, .. } => {
                st.down_reason = Some(format!("authentication failed: {reason}"));
            }
            Event::Down { reason } => {
                let text = st.down_reason.take().unwrap_or_else(|| reason.to_string());
                let outcome = if st.up_at.is_some() {
                    Outcome::Down(text)
                } else {
                    Outcome::Failed(text)
                };
                self.finish(link, st, outcome);
            }
            Event::AuthRequest { .. } | Event::Authenticated { .. } => {}
        }
    }

    fn tun_accepts(&self, ip: &[u8]) -> bool {
        self.send_any_ip.load(Ordering::Relaxed) || ip.first().map(|b| b >> 4) == Some(4)
    }

    fn route(&self, ip: &[u8]) -> Option<Arc<Link>> {
        // Packets from the TUN device leave through the session owning their source; with a
        // single session (a client routing a network behind it) every source uses it, and
        // the gateway decides what it accepts.
        let src = ip.get(12..16)?;
        let src = Ipv4Addr::new(*src.first()?, *src.get(1)?, *src.get(2)?, *src.get(3)?);
        self.dp
            .links
            .by_address(src)
            .or_else(|| self.dp.links.sole_bound())
    }

    fn deliver(&self, _link: &Link, ip: &[u8]) {
        self.sink_packets.fetch_add(1, Ordering::Relaxed);
        self.sink_bytes
            .fetch_add(ip.len() as u64, Ordering::Relaxed);
    }
}

/// What a client session asks for.
#[derive(Debug, Clone)]
pub struct SessionParams {
    pub server: SocketAddr,
    pub ppp: ClientConfig,
    /// Calls opened over this control connection.
    pub calls: u16,
}

/// Runs one control connection with `calls` calls until `stop` turns true or
/// every call ended. Outcomes are reported through the client's channel.
pub async fn run_connection(
    client: Arc<Client>,
    params: SessionParams,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ClientError> {
    let SocketAddr::V4(server) = params.server else {
        return Err(ClientError::NotIpv4("PPTP"));
    };
    let stream =
        TcpStream::connect(params.server)
            .await
            .map_err(|source| ClientError::Connect {
                server: params.server,
                source,
            })?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<CtlCmd>();
    let mut pns = Pns::new(PnsConfig::default(), Instant::now());
    let mut pending: HashMap<u16, ()> = HashMap::new();
    let mut calls: HashMap<u16, Arc<Link>> = HashMap::new();
    let mut kick = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut stopping = *stop.borrow();
    let result = 'conn: loop {
        let mut closed = None;
        while let Some(ev) = pns.poll_event() {
            let now = Instant::now();
            match ev {
                PnsEvent::Established { .. } => {
                    for _ in 0..params.calls {
                        let id = client
                            .call_ids
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .allocate();
                        let Some(id) = id else {
                            break 'conn Err(ClientError::OutOfIds("call"));
                        };
                        if let Err(e) = pns.open_call(now, id, RECV_WINDOW) {
                            break 'conn Err(ClientError::Pptp(e));
                        }
                        pending.insert(id, ());
                    }
                }
                PnsEvent::CallConnected {
                    local_call_id,
                    peer_call_id,
                    peer_recv_window,
                } => {
                    if pending.remove(&local_call_id).is_none() {
                        continue;
                    }
                    let ppp = Ppp::client(params.ppp.clone(), now, seed());
                    let mut gre = GreChannel::new(peer_call_id, peer_recv_window, now);
                    gre.set_recv_window(RECV_WINDOW);
                    let link = Arc::new(Link::new(
                        local_call_id,
                        peer_call_id,
                        *server.ip(),
                        now,
                        tx.clone(),
                        ppp,
                        Framing::Gre(gre),
                    ));
                    client.dp.links.insert(link.clone());
                    calls.insert(local_call_id, link.clone());
                    kick.push(link);
                }
                PnsEvent::CallFailed {
                    local_call_id,
                    result,
                    ..
                } => {
                    pending.remove(&local_call_id);
                    client
                        .call_ids
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .release(local_call_id);
                    let _ = client.outcomes.send((
                        local_call_id,
                        Outcome::Failed(format!("call refused: {result:?}")),
                    ));
                }
                PnsEvent::CallDisconnected {
                    local_call_id,
                    cause,
                    ..
                } => {
                    if let Some(link) = calls.remove(&local_call_id) {
                        let mut st = link.lock();
                        let outcome = if st.up_at.is_some() {
                            Outcome::Down(format!("gateway disconnected the call: {cause}"))
                        } else {
                            Outcome::Failed(st.down_reason.take().unwrap_or_else(|| {
                                format!("gateway disconnected the call: {cause}")
                            }))
                        };
                        client.finish(&link, &mut st, outcome);
                    }
                }
                PnsEvent::Closed { reason } => closed = Some(reason),
            }
        }
        while let Some(bytes) = pns.poll_transmit() {
            if let Err(e) = wr.write_all(&bytes).await {
                break 'conn Err(ClientError::Write(e));
            }
        }
        for link in kick.drain(..) {
            let now = Instant::now();
            let mut st = link.lock();
            if !st.session.is_closed() {
                drive(&*client, &link, &mut st, now);
            }
        }
        if let Some(reason) = closed {
            break Ok(reason);
        }
        if stopping && calls.is_empty() && pending.is_empty() && pns.is_established() {
            pns.shutdown(Instant::now());
        }
        let deadline = pns.poll_timeout();
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => break Ok("server closed the TCP connection".to_owned()),
                Ok(n) => {
                    if let Err(e) = pns.handle_input(Instant::now(), buf.get(..n).unwrap_or_default()) {
                        break Err(ClientError::Pptp(e));
                    }
                }
                Err(e) => break Err(ClientError::Read(e)),
            },
            Some(cmd) = rx.recv() => match cmd {
                CtlCmd::CallDown { local_call_id, .. } => {
                    if calls.remove(&local_call_id).is_some() {
                        let _ = pns.clear_call(Instant::now(), local_call_id);
                    }
                }
            },
            _ = stop.changed(), if !stopping => {
                stopping = true;
                for link in calls.values() {
                    client.close(link, "client stopping");
                }
            }
            _ = sleep_until(deadline) => pns.handle_timeout(Instant::now()),
        }
        if stopping && calls.is_empty() && pending.is_empty() && !pns.is_established() {
            break Ok("stopped".to_owned());
        }
    };
    for (id, link) in calls {
        let mut st = link.lock();
        client.finish(
            &link,
            &mut st,
            Outcome::Down("control connection closed".into()),
        );
        debug!(call = id, "call ended with its control connection");
    }
    let _ = wr.shutdown().await;
    result.map(|_| ())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
