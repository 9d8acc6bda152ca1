//! The PPTP client's control connection (PNS role, RFC 2637 §2): one TCP connection carrying
//! one or more calls, each a [`Link`] on the client's data path. The dialler runs one per
//! `VpnClient`; the load generator (`sluice-client`) runs many.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sluice_ppp::{ClientConfig, Ppp};
use sluice_pptp::{GreChannel, Pns, PnsConfig, PnsEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::datapath::drive;
use crate::datapath::link::{CtlCmd, Framing, Link};
use crate::host::seed;

use super::{Client, DialError, Outcome};

/// GRE receive window the client advertises in its Outgoing-Call-Requests.
const RECV_WINDOW: u16 = 64;

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
) -> Result<(), DialError> {
    let SocketAddr::V4(server) = params.server else {
        return Err(DialError::NotIpv4("PPTP"));
    };
    let stream = TcpStream::connect(params.server)
        .await
        .map_err(|source| DialError::Connect {
            server: params.server,
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<CtlCmd>();
    let mut pns = Pns::new(PnsConfig::default(), Instant::now());
    let mut pending: HashSet<u16> = HashSet::new();
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
                        let Some(id) = client.allocate_id() else {
                            break 'conn Err(DialError::OutOfIds("call"));
                        };
                        if let Err(e) = pns.open_call(now, id, RECV_WINDOW) {
                            client.release_id(id);
                            break 'conn Err(DialError::Pptp(e));
                        }
                        pending.insert(id);
                    }
                }
                PnsEvent::CallConnected {
                    local_call_id,
                    peer_call_id,
                    peer_recv_window,
                } => {
                    if !pending.remove(&local_call_id) {
                        continue;
                    }
                    let ppp = Ppp::client(params.ppp.clone(), now, seed());
                    let mut gre = GreChannel::new(peer_call_id, peer_recv_window, now);
                    gre.set_recv_window(RECV_WINDOW);
                    let link = client.insert(Link::new(
                        local_call_id,
                        peer_call_id,
                        *server.ip(),
                        now,
                        tx.clone(),
                        ppp,
                        Framing::Gre(gre),
                    ));
                    calls.insert(local_call_id, link.clone());
                    kick.push(link);
                }
                PnsEvent::CallFailed {
                    local_call_id,
                    result,
                    ..
                } => {
                    // Only a call still waiting has its ID (a call given up on stop
                    // returned it already).
                    if !pending.remove(&local_call_id) {
                        continue;
                    }
                    client.release_id(local_call_id);
                    client.outcome(
                        local_call_id,
                        Outcome::Failed(format!("call refused: {result:?}")),
                    );
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
                break 'conn Err(DialError::Write(e));
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
                        break Err(DialError::Pptp(e));
                    }
                }
                Err(e) => break Err(DialError::Read(e)),
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
                // Calls the server has not answered yet are given up (a late answer is
                // ignored; StopCCRQ ends them on the server).
                for id in pending.drain() {
                    client.release_id(id);
                    client.outcome(id, Outcome::Failed("client stopping".into()));
                }
            }
            _ = sleep_until(deadline) => pns.handle_timeout(Instant::now()),
        }
        if stopping && calls.is_empty() && pending.is_empty() && !pns.is_established() {
            break Ok("stopped".to_owned());
        }
    };
    for id in pending {
        client.release_id(id);
        client.outcome(id, Outcome::Failed("control connection closed".into()));
    }
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
