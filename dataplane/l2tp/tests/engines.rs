//! LAC ↔ LNS endpoint pair tests over a simulated network (loss, reordering, duplication)
//! with simulated time, plus a hand-driven "raw" peer for malformed input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};
use sluice_l2tp::avp::{AvpIter, attr, emit_avp};
use sluice_l2tp::message::{Avps, PROTOCOL_VERSION, ResultCode};
use sluice_l2tp::*;

fn lac_addr() -> SocketAddr {
    "192.0.2.1:40000".parse().unwrap()
}
fn lns_addr() -> SocketAddr {
    "198.51.100.1:1701".parse().unwrap()
}

fn lns_cfg() -> EndpointConfig {
    EndpointConfig {
        role: Role::Lns,
        hostname: "lns.example".into(),
        vendor: "Sluice".into(),
        ..Default::default()
    }
}
fn lac_cfg() -> EndpointConfig {
    EndpointConfig {
        role: Role::Lac,
        hostname: "lac.example".into(),
        vendor: "TestLAC".into(),
        ..Default::default()
    }
}

/// A datagram on its way.
struct InTransit {
    at: Instant,
    to_lns: bool,
    bytes: Vec<u8>,
}

type Filter = Box<dyn FnMut(bool, &[u8]) -> bool>;

struct Pair {
    now: Instant,
    lac: Endpoint,
    lns: Endpoint,
    lac_events: Vec<Event>,
    lns_events: Vec<Event>,
    wire: Vec<InTransit>,
    /// Every datagram sent (to_lns, bytes), before loss.
    log: Vec<(bool, Vec<u8>)>,
    loss_pct: u32,
    dup_pct: u32,
    reorder_pct: u32,
    latency: Duration,
    rng: ChaCha20Rng,
    /// Returns false to drop a datagram (applied before random loss).
    filter: Option<Filter>,
    auto_accept: bool,
    next_local_session: u16,
    max_in_flight_seen: usize,
    /// Where the LNS sees the LAC (a NAT in between may change it).
    lac_at: SocketAddr,
}

impl Pair {
    fn new(lac: EndpointConfig, lns: EndpointConfig) -> Self {
        Self {
            now: Instant::now(),
            lac: Endpoint::new(lac, [1; 32]),
            lns: Endpoint::new(lns, [2; 32]),
            lac_events: vec![],
            lns_events: vec![],
            wire: vec![],
            log: vec![],
            loss_pct: 0,
            dup_pct: 0,
            reorder_pct: 0,
            latency: Duration::from_millis(10),
            rng: ChaCha20Rng::from_seed([3; 32]),
            filter: None,
            auto_accept: true,
            next_local_session: 100,
            max_in_flight_seen: 0,
            lac_at: lac_addr(),
        }
    }

    fn default_pair() -> Self {
        Self::new(lac_cfg(), lns_cfg())
    }

    fn chance(&mut self, pct: u32) -> bool {
        pct > 0 && self.rng.next_u32() % 100 < pct
    }

    fn send(&mut self, to_lns: bool, bytes: Vec<u8>) {
        self.log.push((to_lns, bytes.clone()));
        if let Some(f) = self.filter.as_mut()
            && !f(to_lns, &bytes)
        {
            return;
        }
        if self.chance(self.loss_pct) {
            return;
        }
        let copies = if self.chance(self.dup_pct) { 2 } else { 1 };
        for _ in 0..copies {
            let extra = if self.chance(self.reorder_pct) {
                Duration::from_millis(u64::from(self.rng.next_u32() % 300))
            } else {
                Duration::ZERO
            };
            self.wire.push(InTransit {
                at: self.now + self.latency + extra,
                to_lns,
                bytes: bytes.clone(),
            });
        }
    }

    fn check_windows(&mut self) {
        for ep in [&self.lac, &self.lns] {
            for t in ep.tunnels() {
                assert!(
                    t.in_flight <= usize::from(t.peer_window),
                    "in flight {} > peer window {}",
                    t.in_flight,
                    t.peer_window
                );
                self.max_in_flight_seen = self.max_in_flight_seen.max(t.in_flight);
            }
        }
    }

    /// Collects output and events of both endpoints.
    fn drain(&mut self) {
        loop {
            let mut any = false;
            while let Some(t) = self.lac.poll_transmit() {
                assert_eq!(t.local, lac_addr());
                assert_eq!(t.remote, lns_addr());
                self.send(true, t.payload);
                any = true;
            }
            while let Some(t) = self.lns.poll_transmit() {
                assert_eq!(t.local, lns_addr());
                assert_eq!(t.remote, self.lac_at);
                self.send(false, t.payload);
                any = true;
            }
            while let Some(e) = self.lac.poll_event() {
                self.lac_events.push(e);
            }
            while let Some(e) = self.lns.poll_event() {
                if self.auto_accept
                    && let Event::SessionRequested {
                        tunnel,
                        peer_session,
                        ..
                    } = &e
                {
                    let local = self.next_local_session;
                    self.next_local_session += 1;
                    self.lns
                        .accept_session(self.now, *tunnel, *peer_session, local)
                        .unwrap();
                    any = true;
                }
                self.lns_events.push(e);
            }
            self.check_windows();
            if !any {
                return;
            }
        }
    }

    /// Advances simulated time by `d`, delivering datagrams and running timers.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        self.drain();
        loop {
            let next_wire = self.wire.iter().map(|w| w.at).min();
            let next = [next_wire, self.lac.poll_timeout(), self.lns.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                break;
            };
            self.now = self.now.max(next);
            let (due, rest): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|w| w.at <= self.now);
            self.wire = rest;
            for w in due {
                if w.to_lns {
                    let _ = self
                        .lns
                        .handle_input(self.now, lns_addr(), self.lac_at, &w.bytes);
                } else {
                    let _ = self
                        .lac
                        .handle_input(self.now, lac_addr(), lns_addr(), &w.bytes);
                }
                self.drain();
            }
            self.lac.handle_timeout(self.now);
            self.lns.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.lac.handle_timeout(self.now);
        self.lns.handle_timeout(self.now);
        self.drain();
    }

    fn connect(&mut self) -> u16 {
        let t = self.lac.connect(self.now, lac_addr(), lns_addr()).unwrap();
        self.drain();
        t
    }

    fn lns_tunnel(&self) -> u16 {
        self.lns.tunnels().next().unwrap().tunnel
    }

    fn up_with_sessions(&mut self, n: u16) -> u16 {
        let t = self.connect();
        for s in 1..=n {
            self.lac.open_session(self.now, t, s).unwrap();
        }
        self.run(Duration::from_secs(5));
        assert!(tunnel_up(&self.lac_events));
        assert!(tunnel_up(&self.lns_events));
        assert_eq!(count(&self.lac_events, is_session_up), usize::from(n));
        assert_eq!(count(&self.lns_events, is_session_up), usize::from(n));
        t
    }

    /// Decoded control messages sent in one direction.
    fn messages(&self, to_lns: bool, secret: Option<&[u8]>) -> Vec<ControlMessage> {
        self.log
            .iter()
            .filter(|(d, _)| *d == to_lns)
            .filter_map(|(_, b)| {
                let p = Packet::new_checked(b.as_slice()).ok()?;
                ControlMessage::parse(p.payload(), secret).ok()
            })
            .collect()
    }
}

fn tunnel_up(ev: &[Event]) -> bool {
    ev.iter().any(|e| matches!(e, Event::TunnelUp { .. }))
}
fn is_session_up(e: &Event) -> bool {
    matches!(e, Event::SessionUp { .. })
}
fn is_session_down(e: &Event) -> bool {
    matches!(e, Event::SessionDown { .. })
}
fn is_tunnel_down(e: &Event) -> bool {
    matches!(e, Event::TunnelDown { .. })
}
fn count(ev: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    ev.iter().filter(|e| f(e)).count()
}
fn tunnel_down_reason(ev: &[Event]) -> Option<String> {
    ev.iter().find_map(|e| match e {
        Event::TunnelDown { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}
fn types(msgs: &[ControlMessage]) -> Vec<MessageType> {
    msgs.iter().map(|m| m.message_type).collect()
}

#[test]
fn tunnel_and_three_sessions_come_up() {
    let mut p = Pair::default_pair();
    let t = p.up_with_sessions(3);
    let up = p
        .lns_events
        .iter()
        .find(|e| matches!(e, Event::TunnelUp { .. }))
        .unwrap();
    let Event::TunnelUp {
        peer_hostname,
        peer_vendor,
        remote,
        local,
        peer_tunnel,
        ..
    } = up
    else {
        unreachable!()
    };
    assert_eq!(peer_hostname, "lac.example");
    assert_eq!(peer_vendor, "TestLAC");
    assert_eq!(*remote, lac_addr());
    assert_eq!(*local, lns_addr());
    assert_eq!(*peer_tunnel, t);
    let lac_up = p
        .lac_events
        .iter()
        .find_map(|e| match e {
            Event::TunnelUp { peer_hostname, .. } => Some(peer_hostname.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(lac_up, "lns.example");
    // LAC → LNS: SCCRQ, SCCCN, 3×ICRQ, 3×ICCN; LNS → LAC: SCCRP, 3×ICRP (plus ZLBs).
    let to_lns = types(&p.messages(true, None));
    assert_eq!(
        to_lns,
        [
            MessageType::Sccrq,
            MessageType::Scccn,
            MessageType::Icrq,
            MessageType::Icrq,
            MessageType::Icrq,
            MessageType::Iccn,
            MessageType::Iccn,
            MessageType::Iccn
        ]
    );
    let to_lac = types(&p.messages(false, None));
    assert_eq!(
        to_lac.iter().filter(|t| **t == MessageType::Icrp).count(),
        3
    );
    // SCCRQ went to Tunnel ID 0 with Ns 0, Nr 0.
    let first = Packet::new_checked(p.log[0].1.as_slice()).unwrap();
    assert_eq!(first.tunnel_id(), 0);
    assert_eq!(first.sequence(), Some((0, 0)));
    // Sessions on both sides agree on the ids.
    let lns_t = p.lns_tunnel();
    let mut lns_sessions: Vec<_> = p.lns.sessions(lns_t).collect();
    lns_sessions.sort_by_key(|s| s.peer_session);
    assert_eq!(lns_sessions.len(), 3);
    for s in &lns_sessions {
        assert_eq!(s.state, SessionState::Established);
    }
    let lac_sessions: Vec<_> = p.lac.sessions(t).collect();
    for s in &lac_sessions {
        assert!(
            lns_sessions
                .iter()
                .any(|l| l.peer_session == s.local_session && l.local_session == s.peer_session)
        );
    }
    // Quiet afterwards: no retransmissions on a clean network.
    assert!(p.lns.tunnels().all(|t| t.retransmits == 0));
    assert!(p.lac.tunnels().all(|t| t.retransmits == 0));
}

#[test]
fn comes_up_through_loss_reordering_and_duplication() {
    for seed in 0..8u8 {
        let mut p = Pair::default_pair();
        p.rng = ChaCha20Rng::from_seed([seed; 32]);
        p.loss_pct = 20;
        p.dup_pct = 10;
        p.reorder_pct = 30;
        let t = p.connect();
        for s in 1..=3 {
            p.lac.open_session(p.now, t, s).unwrap();
        }
        p.run(Duration::from_secs(60));
        assert!(tunnel_up(&p.lac_events), "seed {seed}");
        assert!(tunnel_up(&p.lns_events), "seed {seed}");
        assert_eq!(count(&p.lac_events, is_session_up), 3, "seed {seed}");
        assert_eq!(count(&p.lns_events, is_session_up), 3, "seed {seed}");
        assert_eq!(count(&p.lns_events, is_tunnel_down), 0, "seed {seed}");
        // Exactly one tunnel on the LNS despite duplicated/retransmitted SCCRQs.
        assert_eq!(p.lns.tunnels().count(), 1);
    }
}

#[test]
fn hello_keeps_idle_tunnel_alive_for_hours() {
    let mut p = Pair::default_pair();
    p.loss_pct = 5;
    p.up_with_sessions(1);
    p.run(Duration::from_secs(3 * 3600));
    assert_eq!(count(&p.lac_events, is_tunnel_down), 0);
    assert_eq!(count(&p.lns_events, is_tunnel_down), 0);
    let hellos = p
        .messages(true, None)
        .iter()
        .chain(p.messages(false, None).iter())
        .filter(|m| m.message_type == MessageType::Hello)
        .count();
    // Each side sends one every ~60 s of silence; with both sides the tunnel is never silent
    // longer than a minute.
    assert!(hellos >= 3 * 60, "only {hellos} HELLOs");
    assert!(hellos <= 2 * 3 * 60 + 10, "{hellos} HELLOs");
}

#[test]
fn a_moved_peer_keeps_its_tunnel_and_the_old_address_is_refused() {
    let mut p = Pair::default_pair();
    p.up_with_sessions(1);
    let old = p.lac_at;
    let new: SocketAddr = "192.0.2.1:41000".parse().unwrap();
    // A message from the new address before the move is refused (RFC 2661 §8.1)...
    let hello_from = |p: &mut Pair, from: SocketAddr| {
        let t = p.lns_tunnel();
        let d = ControlMessage::new(MessageType::Hello).to_datagram(t, 0, 0, 0, None);
        p.lns.handle_input(p.now, lns_addr(), from, &d)
    };
    assert!(hello_from(&mut p, new).is_err());
    let moved = p.lns.move_peer(old, new);
    assert_eq!(moved, vec![p.lns_tunnel()]);
    assert_eq!(p.lns.tunnels().next().unwrap().remote, new);
    // ... and from the old one after it, while the tunnel goes on at the new address: the
    // LNS answers there (the drain asserts every LNS datagram goes to `lac_at`), HELLOs
    // flow for ten minutes and nothing ends.
    p.lac_at = new;
    assert!(hello_from(&mut p, old).is_err());
    p.run(Duration::from_secs(600));
    assert_eq!(count(&p.lac_events, is_tunnel_down), 0);
    assert_eq!(count(&p.lns_events, is_tunnel_down), 0);
    assert!(
        p.lns.move_peer(old, new).is_empty(),
        "nothing is left at the old address"
    );
}

#[test]
fn lns_reaps_silent_lac() {
    let mut p = Pair::default_pair();
    p.up_with_sessions(2);
    p.filter = Some(Box::new(|_, _| false));
    let start = p.now;
    p.run(Duration::from_secs(60 + 31 + 2));
    let downs: Vec<&Event> = p
        .lns_events
        .iter()
        .filter(|e| is_session_down(e) || is_tunnel_down(e))
        .collect();
    assert_eq!(downs.len(), 3, "{downs:?}");
    assert!(is_session_down(downs[0]) && is_session_down(downs[1]));
    assert!(is_tunnel_down(downs[2]));
    assert!(
        tunnel_down_reason(&p.lns_events)
            .unwrap()
            .contains("not responding")
    );
    assert!(p.lns.is_idle());
    assert!(p.lac.is_idle());
    assert!(p.now - start <= Duration::from_secs(93));
}

#[test]
fn lost_stopccn_ack_and_lost_stopccn_both_end() {
    // (a) StopCCN arrives, every later datagram is lost (ZLB acks never reach the LNS).
    let mut p = Pair::default_pair();
    p.up_with_sessions(1);
    let t = p.lns_tunnel();
    let mut seen_stop = false;
    p.filter = Some(Box::new(move |to_lns, b| {
        if seen_stop {
            return false;
        }
        if !to_lns && is_type(b, MessageType::StopCcn) {
            seen_stop = true;
        }
        true
    }));
    p.lns
        .close_tunnel(p.now, t, StopCcnResult::Shutdown, "maintenance");
    p.run(Duration::from_secs(40));
    assert!(p.lns.is_idle(), "LNS gives up after the retry budget");
    assert!(p.lac.is_idle(), "LAC drains for one cycle, then forgets");
    let reason = tunnel_down_reason(&p.lac_events).unwrap();
    assert!(reason.contains("being shut down"), "{reason}");
    assert!(reason.contains("maintenance"), "{reason}");
    assert!(
        tunnel_down_reason(&p.lns_events)
            .unwrap()
            .contains("closed locally")
    );

    // (b) The StopCCN itself and everything after it is lost.
    let mut p = Pair::default_pair();
    p.up_with_sessions(1);
    let t = p.lns_tunnel();
    let mut dropping = false;
    p.filter = Some(Box::new(move |to_lns, b| {
        if !to_lns && is_type(b, MessageType::StopCcn) {
            dropping = true;
        }
        !dropping
    }));
    p.lns
        .close_tunnel(p.now, t, StopCcnResult::GeneralRequest, "bye");
    p.run(Duration::from_secs(35));
    assert!(p.lns.is_idle());
    p.run(Duration::from_secs(60 + 31 + 5));
    assert!(p.lac.is_idle(), "LAC notices via HELLO + retry budget");
    assert!(
        tunnel_down_reason(&p.lac_events)
            .unwrap()
            .contains("not responding")
    );
}

fn is_type(datagram: &[u8], t: MessageType) -> bool {
    Packet::new_checked(datagram)
        .ok()
        .and_then(|p| ControlMessage::parse(p.payload(), None).ok())
        .is_some_and(|m| m.message_type == t)
}

#[test]
fn orderly_stop_both_directions_and_shutdown() {
    let mut p = Pair::default_pair();
    let t = p.up_with_sessions(2);
    p.lac
        .close_tunnel(p.now, t, StopCcnResult::GeneralRequest, "done");
    p.run(Duration::from_secs(1));
    assert!(p.lac.is_idle(), "StopCCN acknowledged → closed");
    assert_eq!(count(&p.lns_events, is_session_down), 2);
    let r = tunnel_down_reason(&p.lns_events).unwrap();
    assert!(r.contains("general request") && r.contains("done"), "{r}");
    assert!(
        !p.lns.is_idle(),
        "receiver holds state for a retransmission cycle"
    );
    p.run(Duration::from_secs(32));
    assert!(p.lns.is_idle());

    let mut p = Pair::default_pair();
    p.up_with_sessions(1);
    p.lns.shutdown(p.now);
    p.run(Duration::from_secs(40));
    assert!(p.lns.is_idle() && p.lac.is_idle());
    assert_eq!(count(&p.lns_events, is_session_down), 1);
    assert_eq!(count(&p.lns_events, is_tunnel_down), 1);
}

#[test]
fn session_close_reject_and_timeout() {
    let mut p = Pair::new(
        EndpointConfig {
            setup_timeout: Duration::from_secs(120),
            ..lac_cfg()
        },
        lns_cfg(),
    );
    let t = p.up_with_sessions(2);
    let lt = p.lns_tunnel();
    // LNS closes its session 100 → LAC sees SessionDown with the CDN reason.
    p.lns
        .close_session(p.now, lt, 100, CdnResult::AdminDisconnect, "idle timeout");
    p.run(Duration::from_secs(1));
    let r = p
        .lac_events
        .iter()
        .find_map(|e| match e {
            Event::SessionDown {
                local_session,
                reason,
                ..
            } => Some((*local_session, reason.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(r.0, 1);
    assert!(
        r.1.contains("administrative") && r.1.contains("idle timeout"),
        "{}",
        r.1
    );
    // LAC closes session 2 → LNS SessionDown for 101.
    p.lac
        .close_session(p.now, t, 2, CdnResult::LostCarrier, "hangup");
    p.run(Duration::from_secs(1));
    assert!(p.lns_events.iter().any(|e| matches!(
        e,
        Event::SessionDown { local_session: 101, reason, .. } if reason.contains("loss of carrier")
    )));
    assert_eq!(p.lns.sessions(lt).count(), 0);

    // Rejection.
    p.auto_accept = false;
    p.lac.open_session(p.now, t, 7).unwrap();
    p.run(Duration::from_secs(1));
    let peer = p
        .lns_events
        .iter()
        .find_map(|e| match e {
            Event::SessionRequested {
                peer_session: 7,
                serial,
                ..
            } => Some(*serial),
            _ => None,
        })
        .unwrap();
    assert!(peer >= 3, "serial numbers count up");
    p.lns.reject_session(
        p.now,
        lt,
        7,
        CdnResult::TemporaryNoFacilities,
        "no addresses",
    );
    p.run(Duration::from_secs(1));
    assert!(p.lac_events.iter().any(|e| matches!(
        e,
        Event::SessionDown { local_session: 7, reason, .. } if reason.contains("no addresses")
    )));

    // No decision within setup_timeout → CDN, cancelled.
    p.lac.open_session(p.now, t, 8).unwrap();
    p.run(Duration::from_secs(31));
    assert!(p.lns_events.iter().any(|e| matches!(
        e,
        Event::SessionRequestCancelled {
            peer_session: 8,
            ..
        }
    )));
    assert!(p.lac_events.iter().any(|e| matches!(
        e,
        Event::SessionDown { local_session: 8, reason, .. } if reason.contains("not established within")
    )));
    // Tunnel unaffected.
    assert_eq!(count(&p.lac_events, is_tunnel_down), 0);
    // API errors.
    assert_eq!(
        p.lns.accept_session(p.now, lt, 999, 5),
        Err(Error::UnknownSession {
            tunnel: lt,
            session: 999
        })
    );
    assert_eq!(
        p.lac.open_session(p.now, t, 0),
        Err(Error::InvalidSessionId)
    );
    assert_eq!(p.lns.open_session(p.now, lt, 3), Err(Error::WrongRole));
    assert_eq!(
        p.lns.connect(p.now, lns_addr(), lac_addr()),
        Err(Error::WrongRole)
    );
    assert_eq!(
        p.lns.accept_session(p.now, 4242, 1, 1),
        Err(Error::UnknownTunnel(4242))
    );
}

#[test]
fn session_limit_answers_cdn_4() {
    let mut p = Pair::new(
        lac_cfg(),
        EndpointConfig {
            max_sessions_per_tunnel: 2,
            ..lns_cfg()
        },
    );
    let t = p.connect();
    for s in 1..=3 {
        p.lac.open_session(p.now, t, s).unwrap();
    }
    p.run(Duration::from_secs(3));
    assert_eq!(count(&p.lns_events, is_session_up), 2);
    assert!(p.lac_events.iter().any(|e| matches!(
        e,
        Event::SessionDown { local_session: 3, reason, .. } if reason.contains("temporary")
    )));
}

#[test]
fn window_is_honoured() {
    // The LNS advertises a window of 2; the LAC opens 30 sessions at once.
    let mut p = Pair::new(
        lac_cfg(),
        EndpointConfig {
            recv_window: 2,
            ..lns_cfg()
        },
    );
    p.loss_pct = 10;
    let t = p.connect();
    for s in 1..=30 {
        p.lac.open_session(p.now, t, s).unwrap();
    }
    p.run(Duration::from_secs(120));
    assert_eq!(count(&p.lns_events, is_session_up), 30);
    assert_eq!(count(&p.lac_events, is_session_up), 30);
    assert!(p.lac.tunnels().all(|t| t.peer_window == 2));
    assert!(p.max_in_flight_seen >= 2, "the window was used");
    // Independent check on the wire: Ns sent by the LAC never runs more than 2 ahead of the
    // highest Nr the LNS had sent before it.
    let mut acked = 0u16;
    for (to_lns, b) in &p.log {
        let pk = Packet::new_checked(b.as_slice()).unwrap();
        let (ns, nr) = pk.sequence().unwrap();
        if *to_lns {
            let ahead = ns.wrapping_sub(acked);
            if !pk.payload().is_empty() && ahead < 0x8000 {
                assert!(ahead < 2, "ns {ns} acked {acked}");
            }
        } else if nr.wrapping_sub(acked) < 0x8000 {
            acked = nr;
        }
    }
}

#[test]
fn tunnel_authentication_matching_and_mismatched() {
    let secret = |s: &str| Some(s.as_bytes().to_vec());
    let mut p = Pair::new(
        EndpointConfig {
            secret: secret("s3cret"),
            ..lac_cfg()
        },
        EndpointConfig {
            secret: secret("s3cret"),
            ..lns_cfg()
        },
    );
    p.up_with_sessions(1);
    let to_lns = p.messages(true, None);
    let to_lac = p.messages(false, None);
    assert!(
        to_lns[0].avps.challenge.is_some(),
        "SCCRQ carries a Challenge"
    );
    assert!(
        to_lac[0].avps.challenge.is_some(),
        "SCCRP carries a Challenge"
    );
    assert!(to_lac[0].avps.challenge_response.is_some());
    assert!(to_lns[1].avps.challenge_response.is_some(), "SCCCN answers");
    let expect = auth::challenge_response(
        MessageType::Sccrp,
        b"s3cret",
        to_lns[0].avps.challenge.as_ref().unwrap(),
    );
    assert_eq!(to_lac[0].avps.challenge_response, Some(expect));

    // Mismatched secrets: the LAC rejects the SCCRP with StopCCN result 4.
    let mut p = Pair::new(
        EndpointConfig {
            secret: secret("alpha"),
            ..lac_cfg()
        },
        EndpointConfig {
            secret: secret("beta"),
            ..lns_cfg()
        },
    );
    p.connect();
    p.run(Duration::from_secs(40));
    assert!(!tunnel_up(&p.lns_events));
    assert!(!tunnel_up(&p.lac_events));
    let stop = p
        .messages(true, None)
        .into_iter()
        .find(|m| m.message_type == MessageType::StopCcn)
        .unwrap();
    assert_eq!(stop.avps.result_code.unwrap().result, 4);
    assert!(
        tunnel_down_reason(&p.lac_events)
            .unwrap()
            .contains("authentication failed")
    );
    assert!(p.lac.is_idle() && p.lns.is_idle());

    // LNS with a secret, LAC without: the LAC cannot answer the LNS's Challenge.
    let mut p = Pair::new(
        lac_cfg(),
        EndpointConfig {
            secret: secret("beta"),
            ..lns_cfg()
        },
    );
    p.connect();
    p.run(Duration::from_secs(5));
    assert!(!tunnel_up(&p.lns_events));
    assert!(
        tunnel_down_reason(&p.lac_events)
            .unwrap()
            .contains("no secret")
    );

    // LAC with a secret, LNS without: the LNS refuses the SCCRQ's Challenge.
    let mut p = Pair::new(
        EndpointConfig {
            secret: secret("alpha"),
            ..lac_cfg()
        },
        lns_cfg(),
    );
    p.connect();
    p.run(Duration::from_secs(5));
    let stop = p
        .messages(false, None)
        .into_iter()
        .find(|m| m.message_type == MessageType::StopCcn)
        .unwrap();
    assert_eq!(stop.avps.result_code.unwrap().result, 4);
    assert!(
        tunnel_down_reason(&p.lac_events)
            .unwrap()
            .contains("not authorized")
    );
}

#[test]
fn hidden_avps_from_the_lac_are_decoded_by_the_lns() {
    let secret = Some(b"hide-me".to_vec());
    let mut p = Pair::new(
        EndpointConfig {
            secret: secret.clone(),
            hide_avps: true,
            sequencing_required: true,
            ..lac_cfg()
        },
        EndpointConfig {
            secret: secret.clone(),
            ..lns_cfg()
        },
    );
    p.up_with_sessions(2);
    // On the wire: SCCRQ has a Random Vector before hidden AVPs, Assigned Tunnel ID hidden.
    let sccrq = &p.log[0].1;
    let pk = Packet::new_checked(sccrq.as_slice()).unwrap();
    let avps: Vec<_> = AvpIter::new(pk.payload()).map(|a| a.unwrap()).collect();
    let rv = avps
        .iter()
        .position(|a| a.attribute == attr::RANDOM_VECTOR)
        .unwrap();
    let first_hidden = avps.iter().position(|a| a.hidden).unwrap();
    assert!(rv < first_hidden);
    assert!(
        avps.iter()
            .any(|a| a.attribute == attr::ASSIGNED_TUNNEL_ID && a.hidden)
    );
    assert!(
        avps.iter()
            .all(|a| !(a.hidden && a.attribute == attr::HOST_NAME))
    );
    // Without the secret the SCCRQ does not parse (hidden mandatory AVP).
    assert_eq!(
        ControlMessage::parse(pk.payload(), None).unwrap_err().error,
        ParseError::HiddenWithoutSecret(attr::FRAMING_CAPABILITIES)
    );
    // ICRQ's Assigned Session ID was hidden too, and the session is up with sequencing.
    assert!(p.lns_events.iter().any(|e| matches!(
        e,
        Event::SessionUp {
            sequencing: true,
            ..
        }
    )));
    let icrq = p
        .messages(true, secret.as_deref())
        .into_iter()
        .find(|m| m.message_type == MessageType::Icrq)
        .unwrap();
    assert_eq!(icrq.avps.assigned_session_id, Some(1));
}

/// A hand-driven LAC talking to an LNS endpoint with crafted datagrams.
struct RawPeer {
    now: Instant,
    lns: Endpoint,
    ns: u16,
    nr: u16,
    our_tunnel: u16,
    lns_tunnel: u16,
    received: Vec<(Packet<Vec<u8>>, Option<ControlMessage>)>,
    events: Vec<Event>,
}

impl RawPeer {
    fn new(cfg: EndpointConfig) -> Self {
        Self {
            now: Instant::now(),
            lns: Endpoint::new(cfg, [9; 32]),
            ns: 0,
            nr: 0,
            our_tunnel: 77,
            lns_tunnel: 0,
            received: vec![],
            events: vec![],
        }
    }

    /// Sends `msg` plus `extra` raw AVP bytes, with session id `sid`.
    fn send(&mut self, sid: u16, msg: &ControlMessage, extra: &[u8]) -> Result<(), Error> {
        let mut d = msg.to_datagram(self.lns_tunnel, sid, self.ns, self.nr, None);
        d.extend_from_slice(extra);
        let len = d.len() as u16;
        d[2..4].copy_from_slice(&len.to_be_bytes());
        self.ns = self.ns.wrapping_add(1);
        self.input(&d)
    }

    fn input(&mut self, d: &[u8]) -> Result<(), Error> {
        let r = self.lns.handle_input(self.now, lns_addr(), lac_addr(), d);
        self.pump();
        r
    }

    fn pump(&mut self) {
        while let Some(t) = self.lns.poll_transmit() {
            let p = Packet::new_checked(t.payload).unwrap();
            let m = ControlMessage::parse(p.payload(), None).ok();
            if m.is_some() {
                self.nr = p.sequence().unwrap().0.wrapping_add(1);
            }
            if let Some(ControlMessage {
                message_type: MessageType::Sccrp,
                avps,
            }) = &m
            {
                self.lns_tunnel = avps.assigned_tunnel_id.unwrap();
            }
            self.received.push((p, m));
        }
        while let Some(e) = self.lns.poll_event() {
            self.events.push(e);
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.lns.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.lns.handle_timeout(self.now);
            self.pump();
        }
        self.now = end;
        self.lns.handle_timeout(end);
        self.pump();
    }

    fn last_message(&self) -> Option<&ControlMessage> {
        self.received.iter().rev().find_map(|(_, m)| m.as_ref())
    }

    fn sccrq(&self) -> ControlMessage {
        ControlMessage {
            message_type: MessageType::Sccrq,
            avps: Avps {
                protocol_version: Some(PROTOCOL_VERSION),
                host_name: Some("raw".into()),
                framing_capabilities: Some(3),
                assigned_tunnel_id: Some(self.our_tunnel),
                ..Avps::default()
            },
        }
    }

    fn establish(&mut self) {
        let q = self.sccrq();
        self.send(0, &q, &[]).unwrap();
        assert_eq!(
            self.last_message().unwrap().message_type,
            MessageType::Sccrp
        );
        self.send(0, &ControlMessage::new(MessageType::Scccn), &[])
            .unwrap();
        assert!(tunnel_up(&self.events));
    }

    fn icrq(&self, session: u16) -> ControlMessage {
        ControlMessage {
            message_type: MessageType::Icrq,
            avps: Avps {
                assigned_session_id: Some(session),
                call_serial_number: Some(1),
                ..Avps::default()
            },
        }
    }
}

fn raw_avp(mandatory: bool, vendor: u16, attribute: u16, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    emit_avp(&mut v, mandatory, false, vendor, attribute, value);
    v
}

#[test]
fn unknown_mandatory_avp_in_icrq_ends_only_that_session() {
    let mut r = RawPeer::new(lns_cfg());
    r.establish();
    let icrq = r.icrq(5);
    r.send(0, &icrq, &raw_avp(true, 0, 99, b"??")).unwrap();
    r.advance(Duration::from_millis(200));
    let cdn = r.last_message().unwrap().clone();
    assert_eq!(cdn.message_type, MessageType::Cdn);
    let rc = cdn.avps.result_code.unwrap();
    assert_eq!(rc.result, 2);
    assert_eq!(rc.error, Some(8));
    assert!(rc.message.contains("attribute 99"), "{}", rc.message);
    let (pk, _) = r.received.iter().rev().find(|(_, m)| m.is_some()).unwrap();
    assert_eq!(pk.session_id(), 5, "CDN addressed to the peer's session");
    assert!(
        !r.events
            .iter()
            .any(|e| matches!(e, Event::SessionRequested { .. }))
    );
    // The tunnel is still fine: a good ICRQ gets through; vendor-specific M=1 also ends it.
    let icrq = r.icrq(6);
    r.send(0, &icrq, &[]).unwrap();
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::SessionRequested {
            peer_session: 6,
            ..
        }
    )));
    let icrq = r.icrq(7);
    r.send(0, &icrq, &raw_avp(true, 9, 1, b"x")).unwrap();
    assert_eq!(r.last_message().unwrap().message_type, MessageType::Cdn);
    assert!(!r.events.iter().any(is_tunnel_down));
    assert_eq!(
        r.lns.tunnels().next().unwrap().state,
        TunnelState::Established
    );
}

#[test]
fn unknown_mandatory_avp_in_sccrq_is_refused_with_stopccn() {
    let mut r = RawPeer::new(lns_cfg());
    let q = r.sccrq();
    r.send(0, &q, &raw_avp(true, 0, 200, &[1, 2, 3])).unwrap();
    let stop = r.last_message().unwrap().clone();
    assert_eq!(stop.message_type, MessageType::StopCcn);
    let rc = stop.avps.result_code.unwrap();
    assert_eq!((rc.result, rc.error), (2, Some(8)));
    let (pk, _) = r.received.last().unwrap();
    assert_eq!(
        pk.tunnel_id(),
        77,
        "StopCCN goes to the peer's Assigned Tunnel ID"
    );
    assert!(!r.events.iter().any(|e| matches!(e, Event::TunnelUp { .. })));
    // Acknowledge the StopCCN: the LNS forgets the tunnel.
    let lns_t = stop.avps.assigned_tunnel_id.unwrap();
    r.lns_tunnel = lns_t;
    let mut zlb = Vec::new();
    HeaderRepr::control(lns_t, 0, r.ns, r.nr).emit(&mut zlb, 0);
    r.input(&zlb).unwrap();
    assert!(r.lns.is_idle());
}

#[test]
fn unknown_optional_avps_are_ignored() {
    let mut r = RawPeer::new(lns_cfg());
    let q = r.sccrq();
    let mut extra = raw_avp(false, 0, 250, b"whatever");
    extra.extend(raw_avp(false, 311, 1, b"vendor"));
    // Reserved bits set on an M=0 AVP: unrecognised, ignored.
    let mut reserved = raw_avp(false, 0, attr::HOST_NAME, b"x");
    reserved[0] |= 0x10;
    extra.extend(reserved);
    // A malformed non-mandatory AVP (2-octet Rx Connect Speed) is ignored too (§7.1).
    extra.extend(raw_avp(false, 0, attr::RX_CONNECT_SPEED, &[0, 1]));
    r.send(0, &q, &extra).unwrap();
    assert_eq!(r.last_message().unwrap().message_type, MessageType::Sccrp);
    // Unknown message type with M=0 is ignored (but acknowledged).
    let mut body = raw_avp(false, 0, attr::MESSAGE_TYPE, &[0, 99]);
    body.extend(raw_avp(false, 0, 250, b""));
    let mut d = Vec::new();
    HeaderRepr::control(r.lns_tunnel, 0, r.ns, r.nr).emit(&mut d, body.len());
    d.extend(body);
    r.ns += 1;
    r.input(&d).unwrap();
    r.send(0, &ControlMessage::new(MessageType::Scccn), &[])
        .unwrap();
    assert!(tunnel_up(&r.events));
    // Unknown message type with M=1 clears the tunnel.
    let mut body = raw_avp(true, 0, attr::MESSAGE_TYPE, &[0, 99]);
    body.extend(raw_avp(false, 0, 250, b""));
    let mut d = Vec::new();
    HeaderRepr::control(r.lns_tunnel, 0, r.ns, r.nr).emit(&mut d, body.len());
    d.extend(body);
    r.ns += 1;
    r.input(&d).unwrap();
    assert_eq!(r.last_message().unwrap().message_type, MessageType::StopCcn);
    assert!(r.events.iter().any(is_tunnel_down));
}

#[test]
fn zero_receive_window_is_rejected_without_hanging() {
    let mut r = RawPeer::new(lns_cfg());
    let mut q = r.sccrq();
    q.avps.receive_window_size = Some(0);
    r.send(0, &q, &[]).unwrap();
    let stop = r.last_message().unwrap().clone();
    assert_eq!(stop.message_type, MessageType::StopCcn);
    let rc = stop.avps.result_code.unwrap();
    assert_eq!((rc.result, rc.error), (2, Some(3)));
    assert!(rc.message.contains("Receive Window Size 0"));
    // Never acknowledged: the StopCCN is retransmitted and the tunnel ends after the budget.
    r.advance(Duration::from_secs(32));
    assert!(r.lns.is_idle());
    let stops = r
        .received
        .iter()
        .filter(|(_, m)| {
            m.as_ref()
                .is_some_and(|m| m.message_type == MessageType::StopCcn)
        })
        .count();
    assert_eq!(stops, 6, "sent once + 5 retransmissions");
}

#[test]
fn sccrq_retransmission_maps_to_the_same_tunnel() {
    let mut r = RawPeer::new(lns_cfg());
    let q = r.sccrq();
    r.send(0, &q, &[]).unwrap();
    r.ns = 0;
    r.nr = 0;
    r.send(0, &q, &[]).unwrap();
    assert_eq!(r.lns.tunnels().count(), 1);
    // The duplicate is acknowledged with a ZLB.
    let (last, m) = r.received.last().unwrap();
    assert!(m.is_none() && last.payload().is_empty());
    // A different peer tunnel id from the same address is a new tunnel.
    r.our_tunnel = 78;
    r.ns = 0;
    r.lns_tunnel = 0;
    let q = r.sccrq();
    r.send(0, &q, &[]).unwrap();
    assert_eq!(r.lns.tunnels().count(), 2);
}

#[test]
fn foreign_datagrams_are_dropped() {
    let mut r = RawPeer::new(lns_cfg());
    r.establish();
    let t = r.lns_tunnel;
    let mut d = Vec::new();
    HeaderRepr::control(t, 0, r.ns, r.nr).emit(&mut d, 0);
    let other: SocketAddr = "203.0.113.9:1701".parse().unwrap();
    assert_eq!(
        r.lns.handle_input(r.now, lns_addr(), other, &d),
        Err(Error::AddressMismatch(t))
    );
    let mut d = Vec::new();
    HeaderRepr::control(t.wrapping_add(1), 0, 0, 0).emit(&mut d, 0);
    assert_eq!(
        r.lns.handle_input(r.now, lns_addr(), lac_addr(), &d),
        Err(Error::UnknownTunnel(t.wrapping_add(1)))
    );
    let mut data = Vec::new();
    emit_data_header(&mut data, t, 1, None);
    assert_eq!(
        r.lns.handle_input(r.now, lns_addr(), lac_addr(), &data),
        Err(Error::NotControl)
    );
    // An SCCRQ flood beyond max_pending_tunnels is dropped without reply.
    let mut r = RawPeer::new(EndpointConfig {
        max_pending_tunnels: 3,
        ..lns_cfg()
    });
    for id in 1..=10u16 {
        r.our_tunnel = id;
        r.ns = 0;
        r.lns_tunnel = 0;
        let q = r.sccrq();
        let res = r.send(0, &q, &[]);
        if id > 3 {
            assert_eq!(res, Err(Error::TooManyPendingTunnels));
        }
    }
    assert_eq!(r.lns.tunnels().count(), 3);
    // They time out after setup_timeout and are cleared after the StopCCN budget.
    r.advance(Duration::from_secs(30 + 32));
    assert!(r.lns.is_idle());
    assert!(r.lns.stats().rx_dropped >= 7);
}

#[test]
fn malformed_stopccn_still_stops_and_result_code_text() {
    let mut r = RawPeer::new(lns_cfg());
    r.establish();
    // StopCCN lacking its Result Code.
    let stop = ControlMessage {
        message_type: MessageType::StopCcn,
        avps: Avps {
            assigned_tunnel_id: Some(77),
            ..Avps::default()
        },
    };
    r.send(0, &stop, &[]).unwrap();
    assert!(r.events.iter().any(is_tunnel_down));
    let rc = ResultCode {
        result: 2,
        error: Some(8),
        message: "AVP 99".into(),
    };
    assert_eq!(
        rc.describe(MessageType::StopCcn),
        "general error (2), error: unknown AVP with the M bit set (8), \"AVP 99\""
    );
}

#[test]
fn tie_breaker_between_two_lacs() {
    // Two LAC endpoints with tie breakers open tunnels to each other at once: exactly one
    // tunnel survives, established on both sides.
    let a_addr: SocketAddr = "10.0.0.1:1701".parse().unwrap();
    let b_addr: SocketAddr = "10.0.0.2:1701".parse().unwrap();
    let cfg = EndpointConfig {
        send_tie_breaker: true,
        ..lac_cfg()
    };
    let now = Instant::now();
    let mut a = Endpoint::new(cfg.clone(), [4; 32]);
    let mut b = Endpoint::new(cfg, [5; 32]);
    a.connect(now, a_addr, b_addr).unwrap();
    b.connect(now, b_addr, a_addr).unwrap();
    let mut now = now;
    for _ in 0..200 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            let _ = b.handle_input(now, b_addr, a_addr, &t.payload);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            let _ = a.handle_input(now, a_addr, b_addr, &t.payload);
            moved = true;
        }
        if !moved {
            now += Duration::from_millis(200);
            a.handle_timeout(now);
            b.handle_timeout(now);
        }
    }
    let ea: Vec<Event> = std::iter::from_fn(|| a.poll_event()).collect();
    let eb: Vec<Event> = std::iter::from_fn(|| b.poll_event()).collect();
    assert_eq!(count(&ea, |e| matches!(e, Event::TunnelUp { .. })), 1);
    assert_eq!(count(&eb, |e| matches!(e, Event::TunnelUp { .. })), 1);
    let downs = count(&ea, is_tunnel_down) + count(&eb, is_tunnel_down);
    assert_eq!(
        downs, 1,
        "the loser discarded its own tunnel: {ea:?} {eb:?}"
    );
    assert_eq!(a.tunnels().count(), 1);
    assert_eq!(b.tunnels().count(), 1);
}

#[test]
fn set_link_info_wan_error_and_outgoing_calls() {
    let mut p = Pair::default_pair();
    let t = p.up_with_sessions(1);
    let lt = p.lns_tunnel();
    p.lns.set_link_info(p.now, lt, 100, 0xFFFF_FFFF, 0).unwrap();
    p.run(Duration::from_secs(1));
    assert!(p.lac_events.contains(&Event::SetLinkInfo {
        tunnel: t,
        local_session: 1,
        send_accm: 0xFFFF_FFFF,
        recv_accm: 0
    }));
    assert!(p.lns.set_link_info(p.now, lt, 555, 0, 0).is_err());

    // Raw peer: WEN → WanError; OCRQ → CDN result 5.
    let mut r = RawPeer::new(lns_cfg());
    r.establish();
    let icrq = r.icrq(5);
    r.send(0, &icrq, &[]).unwrap();
    let t = r.lns.tunnel_ids()[0];
    r.lns.accept_session(r.now, t, 5, 500).unwrap();
    r.pump();
    let iccn = ControlMessage {
        message_type: MessageType::Iccn,
        avps: Avps {
            tx_connect_speed: Some(64_000),
            framing_type: Some(1),
            ..Avps::default()
        },
    };
    r.send(500, &iccn, &[]).unwrap();
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::SessionUp {
            local_session: 500,
            peer_session: 5,
            tx_connect_speed: 64_000,
            sequencing: false,
            ..
        }
    )));
    let wen = ControlMessage {
        message_type: MessageType::Wen,
        avps: Avps {
            call_errors: Some(CallErrors {
                crc_errors: 3,
                ..CallErrors::default()
            }),
            ..Avps::default()
        },
    };
    r.send(500, &wen, &[]).unwrap();
    assert!(r.events.iter().any(|e| matches!(
        e,
        Event::WanError { local_session: 500, errors, .. } if errors.crc_errors == 3
    )));
    let ocrq = ControlMessage {
        message_type: MessageType::Ocrq,
        avps: Avps {
            assigned_session_id: Some(9),
            call_serial_number: Some(1),
            minimum_bps: Some(1),
            maximum_bps: Some(2),
            bearer_type: Some(0),
            framing_type: Some(1),
            called_number: Some("123".into()),
            ..Avps::default()
        },
    };
    r.send(0, &ocrq, &[]).unwrap();
    let cdn = r.last_message().unwrap();
    assert_eq!(cdn.message_type, MessageType::Cdn);
    assert_eq!(cdn.avps.result_code.as_ref().unwrap().result, 5);
}

#[test]
fn data_activity_suppresses_hello_and_lac_refuses_sccrq() {
    let mut p = Pair::default_pair();
    let t = p.up_with_sessions(1);
    let lt = p.lns_tunnel();
    for _ in 0..10 {
        p.lns.note_data_activity(p.now, lt);
        p.lac.note_data_activity(p.now, t);
        p.run(Duration::from_secs(30));
    }
    assert!(
        !p.messages(false, None)
            .iter()
            .chain(p.messages(true, None).iter())
            .any(|m| m.message_type == MessageType::Hello)
    );
    // A LAC endpoint without an outstanding SCCRQ to that peer does not answer one.
    let mut lac = Endpoint::new(lac_cfg(), [8; 32]);
    let q = RawPeer::new(lns_cfg()).sccrq();
    assert!(matches!(
        lac.handle_input(
            p.now,
            lac_addr(),
            lns_addr(),
            &q.to_datagram(0, 0, 0, 0, None)
        ),
        Err(Error::Refused(_))
    ));
    assert!(lac.poll_transmit().is_none());
    // After shutdown, new tunnels are refused.
    p.lns.shutdown(p.now);
    assert!(p.lns.is_shutting_down());
    let mut r = RawPeer::new(lns_cfg());
    r.lns.shutdown(r.now);
    let q = r.sccrq();
    assert!(matches!(r.send(0, &q, &[]), Err(Error::Refused(_))));
}

#[test]
fn hello_can_be_disabled() {
    let mut p = Pair::new(
        EndpointConfig {
            hello_interval: None,
            ..lac_cfg()
        },
        EndpointConfig {
            hello_interval: Some(Duration::ZERO),
            ..lns_cfg()
        },
    );
    p.up_with_sessions(1);
    p.run(Duration::from_secs(600));
    assert!(
        !p.messages(false, None)
            .iter()
            .chain(p.messages(true, None).iter())
            .any(|m| m.message_type == MessageType::Hello)
    );
    assert_eq!(count(&p.lns_events, is_tunnel_down), 0);
}
