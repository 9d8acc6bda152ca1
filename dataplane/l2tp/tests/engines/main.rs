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

mod authentication;
mod control;
mod malformed;
mod sessions;
mod tunnels;
