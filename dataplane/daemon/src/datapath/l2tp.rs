//! The L2TP side of the per-node fast path. One thread reads the UDP port in
//! batches: data messages (RFC 2661 §5.4) are demultiplexed by our Session ID
//! straight into the session's PPP engine and the TUN device, like GRE in
//! [`crate::datapath`]; control messages (T=1) go to the control task through
//! a bounded queue, after a per-source rate limit so one noisy client cannot
//! crowd out the others.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_l2tp::{DataHeader, DataSequencer, Endpoint, Event, Role, SeqVerdict};
use sluice_ppp::Ppp;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use crate::datapath::link::{CtlCmd, Framing, L2tpFraming, Link};
use crate::datapath::{DataPath, Hooks, drive, receive_frame};
use crate::io::batch::RecvBatch;
use crate::io::udpsock::{self, UdpPort};
use crate::metrics::Layer;

/// Control datagrams waiting for the control task, at most.
pub const CONTROL_QUEUE: usize = 4096;

/// One control message for the control task.
#[derive(Debug)]
pub struct ControlDatagram {
    /// The local address and port it arrived on.
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub bytes: Vec<u8>,
}

/// Per-source budget for control messages (a token bucket per source address).
#[derive(Debug, Clone, Copy)]
pub struct ControlRate {
    /// Sustained messages per second from one address; 0 disables the limit.
    pub per_second: u32,
    /// Burst allowance.
    pub burst: u32,
}

impl Default for ControlRate {
    fn default() -> Self {
        ControlRate {
            per_second: 500,
            burst: 1000,
        }
    }
}

/// IPsec peers whose last SA went away, waiting for the control task, at most.
pub const GONE_QUEUE: usize = 4096;

/// The L2TP UDP port and the queues toward its control task.
pub struct L2tpIo {
    pub sock: UdpPort,
    control: mpsc::Sender<ControlDatagram>,
    gone: mpsc::Sender<SocketAddrV4>,
    moved: Arc<Notify>,
    rate: ControlRate,
}

/// The receiving ends of [`L2tpIo`]'s queues, for the control task.
pub struct ControlQueues {
    /// Control messages.
    pub control: mpsc::Receiver<ControlDatagram>,
    /// Peer keys no IPsec SA reaches any more (their tunnels end).
    pub gone: mpsc::Receiver<SocketAddrV4>,
    /// IPsec peers moved: rename them ([`crate::datapath::ipsec::IpsecIo::renames`]).
    pub moved: Arc<Notify>,
}

impl L2tpIo {
    pub fn new(sock: UdpPort, rate: ControlRate) -> (L2tpIo, ControlQueues) {
        let (tx, control) = mpsc::channel(CONTROL_QUEUE);
        let (gone_tx, gone) = mpsc::channel(GONE_QUEUE);
        let moved = Arc::new(Notify::new());
        (
            L2tpIo {
                sock,
                control: tx,
                gone: gone_tx,
                moved: moved.clone(),
                rate,
            },
            ControlQueues {
                control,
                gone,
                moved,
            },
        )
    }

    /// Tells the control task that no IPsec SA reaches `key` any more: its tunnels are
    /// closed at once rather than left to time out. A full queue leaves them to HELLO.
    pub fn peer_gone(&self, key: SocketAddrV4) {
        let _ = self.gone.try_send(key);
    }

    /// Tells the control task that IPsec peers moved to new addresses (NAT rebinding): it
    /// renames them in its tunnels and sessions.
    pub fn peers_moved(&self) {
        self.moved.notify_one();
    }

    /// The local port (to build control replies' source address).
    pub fn port(&self) -> u16 {
        self.sock.local_addr().map_or(0, |a| a.port())
    }
}

/// Sends one L2TP datagram to `remote`: inside ESP when `remote` is a peer reached over
/// IPsec, else in clear from the L2TP port — only when the configuration allows plain L2TP
/// (a peer whose SAs are gone is never answered in clear).
pub fn send_l2tp(
    dp: &DataPath,
    local: Ipv4Addr,
    remote: SocketAddrV4,
    bytes: &[u8],
) -> Result<(), &'static str> {
    if let Some(sent) = dp.ipsec.get().and_then(|i| i.send_l2tp(remote, bytes)) {
        return sent;
    }
    if !dp.l2tp_plain.load(Ordering::Relaxed) {
        return Err("l2tp_not_under_esp");
    }
    let io = dp.l2tp.get().ok_or("l2tp_not_open")?;
    io.sock
        .send_from(bytes, Some(local), remote, "l2tp_send_error")
        .map_err(|_| "l2tp_send_error")
}

/// Sends every datagram the endpoint has queued; returns how many left.
pub fn flush_control(dp: &DataPath, ep: &mut Endpoint) -> u64 {
    let mut sent = 0;
    while let Some(t) = ep.poll_transmit() {
        let (SocketAddr::V4(remote), IpAddr::V4(from)) = (t.remote, t.local.ip()) else {
            continue;
        };
        match send_l2tp(dp, from, remote, &t.payload) {
            Ok(()) => sent += 1,
            Err(e) => debug!(%remote, error = e, "L2TP control send failed"),
        }
    }
    sent
}

/// The link carrying an L2TP session the endpoint reported up (`ev` must be
/// [`Event::SessionUp`]; `None` otherwise or for IPv6 addresses). Returns our Tunnel ID too.
pub fn session_link(
    ev: &Event,
    role: Role,
    ppp: Ppp,
    ctl: &mpsc::UnboundedSender<CtlCmd>,
    now: Instant,
) -> Option<(u16, Link)> {
    let Event::SessionUp {
        tunnel,
        local_session,
        peer_tunnel,
        peer_session,
        remote: SocketAddr::V4(remote),
        local,
        sequencing,
        ..
    } = *ev
    else {
        return None;
    };
    let IpAddr::V4(local) = local.ip() else {
        return None;
    };
    let framing = Framing::L2tp(L2tpFraming {
        local_tunnel: tunnel,
        peer_tunnel,
        peer_session,
        remote,
        local,
        seq: DataSequencer::new(role, sequencing),
    });
    let link = Link::new(
        local_session,
        peer_session,
        *remote.ip(),
        now,
        ctl.clone(),
        ppp,
        framing,
    );
    Some((tunnel, link))
}

/// Most sources tracked by the rate limiter; beyond it the table starts afresh.
const MAX_TRACKED_SOURCES: usize = 16384;

/// Token buckets per source address.
pub(crate) struct RateLimiter {
    rate: ControlRate,
    buckets: HashMap<Ipv4Addr, (f64, Instant)>,
    /// Last time a flood was logged (one line per interval).
    logged: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(rate: ControlRate) -> Self {
        RateLimiter {
            rate,
            buckets: HashMap::new(),
            logged: None,
        }
    }

    fn allow(&mut self, src: Ipv4Addr, now: Instant) -> bool {
        if self.rate.per_second == 0 {
            return true;
        }
        if self.buckets.len() >= MAX_TRACKED_SOURCES && !self.buckets.contains_key(&src) {
            self.buckets.clear();
        }
        let burst = f64::from(self.rate.burst.max(1));
        let (tokens, last) = self.buckets.entry(src).or_insert((burst, now));
        let refill =
            now.saturating_duration_since(*last).as_secs_f64() * f64::from(self.rate.per_second);
        *tokens = (*tokens + refill).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            if self
                .logged
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(10))
            {
                self.logged = Some(now);
                info!(source = %src, limit = self.rate.per_second, "L2TP control flood: dropping messages over the per-source rate");
            }
            false
        }
    }
}

/// Handles an L2TP datagram that arrived inside ESP from the peer known as `key`.
pub fn handle_protected<H: Hooks>(
    h: &H,
    buf: &mut [u8],
    key: SocketAddrV4,
    local: Ipv4Addr,
    now: Instant,
) {
    let port = h.dp().ipsec.get().map_or(1701, |i| i.l2tp_port);
    handle_datagram(h, None, buf, key, local, port, now);
}

/// Handles one L2TP datagram: from the L2TP port (`limiter` set) or from inside ESP.
pub(crate) fn handle_datagram<H: Hooks>(
    h: &H,
    limiter: Option<&mut RateLimiter>,
    buf: &mut [u8],
    remote: SocketAddrV4,
    local: Ipv4Addr,
    port: u16,
    now: Instant,
) {
    let dp = h.dp();
    if limiter.is_some() {
        // In clear: only when allowed, and never for a peer known over IPsec.
        if !dp.l2tp_plain.load(Ordering::Relaxed)
            || dp.ipsec.get().is_some_and(|i| i.is_peer(remote))
        {
            dp.metrics.dropped("l2tp_not_under_esp");
            return;
        }
    }
    let Some(io) = dp.l2tp.get() else { return };
    if sluice_l2tp::is_control_message(buf) {
        if let Some(limiter) = limiter
            && !limiter.allow(*remote.ip(), now)
        {
            dp.metrics.dropped("l2tp_control_rate");
            return;
        }
        let d = ControlDatagram {
            local: SocketAddrV4::new(local, port),
            remote,
            bytes: buf.to_vec(),
        };
        if io.control.try_send(d).is_err() {
            dp.metrics.dropped("l2tp_control_queue_full");
        }
        return;
    }
    let hdr = match DataHeader::parse(buf) {
        Ok(hdr) => hdr,
        Err(_) => {
            dp.metrics.malformed(Layer::L2tp);
            return;
        }
    };
    let Some(link) = dp.links.get(hdr.session_id) else {
        dp.metrics.dropped("unknown_l2tp_session");
        return;
    };
    let mut st = link.lock();
    if st.session.is_closed() {
        return;
    }
    let Framing::L2tp(f) = &mut st.framing else {
        dp.metrics.dropped("unknown_l2tp_session");
        return;
    };
    if f.local_tunnel != hdr.tunnel_id || f.remote != remote {
        dp.metrics.dropped("wrong_l2tp_source");
        return;
    }
    if f.seq.on_receive(hdr.sequence.map(|(ns, _)| ns)) == SeqVerdict::Stale {
        dp.metrics.dropped("l2tp_out_of_order");
        return;
    }
    if let Some(frame) = buf.get_mut(hdr.payload) {
        receive_frame(h, &link, &mut st, frame, now);
    }
    drive(h, &link, &mut st, now);
}

/// Reads the L2TP port until stopped.
pub fn l2tp_rx_loop<H: Hooks>(h: Arc<H>) {
    let Some(io) = h.dp().l2tp.get() else { return };
    let port = io.port();
    let mut limiter = RateLimiter::new(io.rate);
    let mut batch = RecvBatch::new(32, udpsock::MAX_DATAGRAM);
    super::aqm::attach(h.dp().aqm);
    while !h.dp().stop.load(Ordering::Relaxed) {
        let n = match io.sock.recv_batch(&mut batch) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "L2TP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let now = Instant::now();
        super::tun_writes_together(h.dp(), || {
            for i in 0..n {
                super::dequeued(h.dp(), &batch, i, now);
                if let Some((buf, remote, local)) = batch.get_mut(i) {
                    handle_datagram(&*h, Some(&mut limiter), buf, remote, local, port, now);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_a_burst_then_the_sustained_rate() {
        let mut l = RateLimiter::new(ControlRate {
            per_second: 10,
            burst: 5,
        });
        let t0 = Instant::now();
        let src = Ipv4Addr::new(192, 0, 2, 1);
        let other = Ipv4Addr::new(192, 0, 2, 2);
        assert_eq!((0..20).filter(|_| l.allow(src, t0)).count(), 5);
        // Another source is unaffected.
        assert!(l.allow(other, t0));
        // 100 ms later one more token has accrued.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!((0..20).filter(|_| l.allow(src, t1)).count(), 1);
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut l = RateLimiter::new(ControlRate {
            per_second: 0,
            burst: 0,
        });
        let now = Instant::now();
        assert!((0..10_000).all(|_| l.allow(Ipv4Addr::LOCALHOST, now)));
    }
}
