//! Arbitrary bytes and random (structurally plausible) message sequences into an LNS endpoint:
//! never a panic, and every queue and table stays within its documented bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sluice_l2tp::avp::emit_avp;
use sluice_l2tp::endpoint::{MAX_QUEUED_EVENTS, MAX_QUEUED_TRANSMITS};
use sluice_l2tp::message::{Avps, PROTOCOL_VERSION};
use sluice_l2tp::*;

fn lns(secret: bool) -> Endpoint {
    Endpoint::new(
        EndpointConfig {
            role: Role::Lns,
            secret: secret.then(|| b"s".to_vec()),
            max_tunnels: 8,
            max_pending_tunnels: 4,
            max_sessions_per_tunnel: 6,
            max_pending_sessions: 3,
            ..Default::default()
        },
        [7; 32],
    )
}

fn local() -> SocketAddr {
    "198.51.100.1:1701".parse().unwrap()
}

fn peer(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n % 4], 1701))
}

fn check_bounds(ep: &Endpoint) {
    assert!(ep.queued_events() <= MAX_QUEUED_EVENTS);
    assert!(ep.queued_transmits() <= MAX_QUEUED_TRANSMITS);
    assert!(ep.tunnels().count() <= 8);
    for t in ep.tunnels() {
        assert!(t.sessions + t.pending_sessions <= 6);
        assert!(t.pending_sessions <= 3);
        assert!(t.in_flight <= usize::from(t.peer_window));
    }
}

/// Drains output, answering session requests according to `decide`.
fn drain(ep: &mut Endpoint, now: Instant, decide: &mut impl FnMut() -> u8) {
    while ep.poll_transmit().is_some() {}
    while let Some(e) = ep.poll_event() {
        if let Event::SessionRequested {
            tunnel,
            peer_session,
            ..
        } = e
        {
            match decide() % 3 {
                0 => {
                    let _ = ep.accept_session(now, tunnel, peer_session, peer_session | 1);
                }
                1 => ep.reject_session(now, tunnel, peer_session, CdnResult::Busy, "no"),
                _ => {}
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams(chunks in prop::collection::vec((any::<u8>(), any::<u8>(), prop::collection::vec(any::<u8>(), 0..80)), 0..40)) {
        let mut ep = lns(true);
        let mut now = Instant::now();
        for (who, step, mut bytes) in chunks {
            // Make roughly half of them look like v2 control messages so parsing goes deeper.
            if who & 1 == 0 && bytes.len() >= 2 {
                bytes[0] = 0xC8;
                bytes[1] = 0x02;
            }
            let _ = ep.handle_input(now, local(), peer(who), &bytes);
            now += Duration::from_millis(u64::from(step) * 10);
            ep.handle_timeout(now);
            let _ = ep.poll_timeout();
            drain(&mut ep, now, &mut || who);
            check_bounds(&ep);
        }
    }
}

/// One step of a structured random conversation.
#[derive(Debug, Clone)]
enum Op {
    Sccrq {
        peer: u8,
        peer_tunnel: u16,
        window: u16,
        challenge: bool,
    },
    Msg {
        peer: u8,
        tunnel_pick: u8,
        session: u16,
        ty: u8,
        ns_delta: i8,
        avps: Vec<(bool, bool, u16, Vec<u8>)>,
    },
    Zlb {
        peer: u8,
        tunnel_pick: u8,
        nr: u16,
    },
    Wait(u16),
    Api {
        pick: u8,
        what: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), 1u16..6, 0u16..5, any::<bool>()).prop_map(
            |(peer, peer_tunnel, window, challenge)| Op::Sccrq {
                peer,
                peer_tunnel,
                window,
                challenge
            }
        ),
        (
            any::<u8>(),
            any::<u8>(),
            0u16..4,
            0u8..18,
            -2i8..3,
            prop::collection::vec(
                (
                    any::<bool>(),
                    any::<bool>(),
                    0u16..42,
                    prop::collection::vec(any::<u8>(), 0..12)
                ),
                0..6
            )
        )
            .prop_map(|(peer, tunnel_pick, session, ty, ns_delta, avps)| Op::Msg {
                peer,
                tunnel_pick,
                session,
                ty,
                ns_delta,
                avps
            }),
        (any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(peer, tunnel_pick, nr)| Op::Zlb {
            peer,
            tunnel_pick,
            nr
        }),
        (0u16..20_000).prop_map(Op::Wait),
        (any::<u8>(), any::<u8>()).prop_map(|(pick, what)| Op::Api { pick, what }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn random_message_sequences(ops in prop::collection::vec(op(), 0..60)) {
        let mut ep = lns(false);
        let mut now = Instant::now();
        // Per (peer, lns tunnel) our next Ns, approximated.
        let mut next_ns: std::collections::BTreeMap<u16, u16> = Default::default();
        let mut counter = 0u8;
        for op in ops {
            let tunnels: Vec<TunnelInfo> = ep.tunnels().collect();
            let pick = |p: u8| tunnels.get(usize::from(p) % tunnels.len().max(1)).cloned();
            match op {
                Op::Sccrq { peer: pr, peer_tunnel, window, challenge } => {
                    let m = ControlMessage {
                        message_type: MessageType::Sccrq,
                        avps: Avps {
                            protocol_version: Some(PROTOCOL_VERSION),
                            host_name: Some("fuzz".into()),
                            framing_capabilities: Some(3),
                            assigned_tunnel_id: Some(peer_tunnel),
                            receive_window_size: (window > 0).then(|| window - 1),
                            challenge: challenge.then(|| vec![1, 2, 3]),
                            ..Avps::default()
                        },
                    };
                    let _ = ep.handle_input(now, local(), peer(pr), &m.to_datagram(0, 0, 0, 0, None));
                }
                Op::Msg { peer: pr, tunnel_pick, session, ty, ns_delta, avps } => {
                    let Some(t) = pick(tunnel_pick) else { continue };
                    let ns = next_ns.entry(t.tunnel).or_insert(1);
                    let this_ns = ns.wrapping_add_signed(i16::from(ns_delta));
                    if ns_delta == 0 { *ns = ns.wrapping_add(1); }
                    let mut body = Vec::new();
                    emit_avp(&mut body, true, false, 0, 0, &u16::from(ty).to_be_bytes());
                    for (m, h, a, v) in avps {
                        emit_avp(&mut body, m, h, 0, a, &v);
                    }
                    if pr & 0x10 != 0 {
                        // Required AVPs of the session messages, well formed.
                        emit_avp(&mut body, true, false, 0, 14, &(session + 1).to_be_bytes());
                        emit_avp(&mut body, true, false, 0, 15, &[0, 0, 0, pr]);
                        emit_avp(&mut body, true, false, 0, 24, &[0, 1, 0, 0]);
                        emit_avp(&mut body, true, false, 0, 19, &[0, 0, 0, 1]);
                        emit_avp(&mut body, true, false, 0, 1, &[0, 1]);
                        emit_avp(&mut body, true, false, 0, 9, &[0, 1]);
                    }
                    let mut d = Vec::new();
                    HeaderRepr::control(t.tunnel, session, this_ns, 0).emit(&mut d, body.len());
                    d.extend(body);
                    let from = if pr % 8 == 0 { peer(pr) } else { t.remote };
                    let _ = ep.handle_input(now, local(), from, &d);
                }
                Op::Zlb { peer: pr, tunnel_pick, nr } => {
                    let Some(t) = pick(tunnel_pick) else { continue };
                    let mut d = Vec::new();
                    HeaderRepr::control(t.tunnel, 0, 0, nr % 8).emit(&mut d, 0);
                    let _ = ep.handle_input(now, local(), if pr % 8 == 0 { peer(pr) } else { t.remote }, &d);
                }
                Op::Wait(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    ep.handle_timeout(now);
                }
                Op::Api { pick: p, what } => {
                    if let Some(t) = pick(p) {
                        match what % 4 {
                            0 => ep.close_tunnel(now, t.tunnel, StopCcnResult::GeneralRequest, "x"),
                            1 => ep.close_session(now, t.tunnel, u16::from(what) | 1, CdnResult::AdminDisconnect, "x"),
                            2 => { let _ = ep.set_link_info(now, t.tunnel, u16::from(what) | 1, 0, 0); }
                            _ => ep.shutdown(now),
                        }
                    }
                }
            }
            counter = counter.wrapping_add(1);
            let c = counter;
            drain(&mut ep, now, &mut || c);
            check_bounds(&ep);
            if let Some(t) = ep.poll_timeout() {
                prop_assert!(t >= now || ep.tunnels().count() > 0);
            }
        }
        // Everything ends eventually once input stops.
        for _ in 0..400 {
            let Some(t) = ep.poll_timeout() else { break };
            now = now.max(t);
            ep.handle_timeout(now);
            drain(&mut ep, now, &mut || 2);
        }
        prop_assert!(ep.is_idle(), "{:?}", ep.tunnels().collect::<Vec<_>>());
    }
}

/// An LNS whose caller never drains events: the event queue stops at its cap.
#[test]
fn undrained_events_stay_bounded() {
    let mut ep = Endpoint::new(
        EndpointConfig {
            max_tunnels: 100_000,
            max_pending_tunnels: 100_000,
            ..Default::default()
        },
        [1; 32],
    );
    let now = Instant::now();
    // Many tunnels come up (TunnelUp each) without draining; transmits are capped too.
    for i in 0..3000u32 {
        let addr = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1701));
        let q = ControlMessage {
            message_type: MessageType::Sccrq,
            avps: Avps {
                protocol_version: Some(PROTOCOL_VERSION),
                host_name: Some("x".into()),
                framing_capabilities: Some(3),
                assigned_tunnel_id: Some(1),
                ..Avps::default()
            },
        };
        ep.handle_input(now, local(), addr, &q.to_datagram(0, 0, 0, 0, None))
            .unwrap();
    }
    assert_eq!(ep.tunnels().count(), 3000);
    assert!(ep.queued_transmits() <= MAX_QUEUED_TRANSMITS);
    assert!(ep.queued_events() <= MAX_QUEUED_EVENTS);
}

/// The structured generator reaches the interesting states (guards against a generator that
/// only ever produces rejected input).
#[test]
fn structured_sequences_reach_sessions() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = prop::collection::vec(op(), 40..60);
    let mut up = 0;
    let mut requested = 0;
    for _ in 0..300 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let mut ep = lns(false);
        let now = Instant::now();
        let mut next_ns: std::collections::BTreeMap<u16, u16> = Default::default();
        for op in ops {
            let tunnels: Vec<TunnelInfo> = ep.tunnels().collect();
            match op {
                Op::Sccrq {
                    peer: pr,
                    peer_tunnel,
                    ..
                } => {
                    let m = ControlMessage {
                        message_type: MessageType::Sccrq,
                        avps: Avps {
                            protocol_version: Some(PROTOCOL_VERSION),
                            host_name: Some("fuzz".into()),
                            framing_capabilities: Some(3),
                            assigned_tunnel_id: Some(peer_tunnel),
                            ..Avps::default()
                        },
                    };
                    let _ =
                        ep.handle_input(now, local(), peer(pr), &m.to_datagram(0, 0, 0, 0, None));
                }
                Op::Msg {
                    tunnel_pick,
                    session,
                    ty,
                    ..
                } => {
                    let Some(t) = tunnels.get(usize::from(tunnel_pick) % tunnels.len().max(1))
                    else {
                        continue;
                    };
                    let ns = next_ns.entry(t.tunnel).or_insert(1);
                    let ty = if t.state == TunnelState::WaitCtlConn {
                        3
                    } else {
                        10 + ty % 3
                    };
                    let mut body = Vec::new();
                    emit_avp(&mut body, true, false, 0, 0, &u16::from(ty).to_be_bytes());
                    emit_avp(&mut body, true, false, 0, 14, &(session + 1).to_be_bytes());
                    emit_avp(&mut body, true, false, 0, 15, &[0, 0, 0, 1]);
                    let mut d = Vec::new();
                    HeaderRepr::control(t.tunnel, 0, *ns, 0).emit(&mut d, body.len());
                    d.extend(body);
                    *ns += 1;
                    let _ = ep.handle_input(now, local(), t.remote, &d);
                }
                _ => {}
            }
            while ep.poll_transmit().is_some() {}
            while let Some(e) = ep.poll_event() {
                match e {
                    Event::TunnelUp { .. } => up += 1,
                    Event::SessionRequested { .. } => requested += 1,
                    _ => {}
                }
            }
        }
    }
    assert!(up > 100 && requested > 100, "up {up} requested {requested}");
}
