//! Tunnel life (RFC 2661 §5.5, §5.7): setup through loss, reordering and duplication, HELLO, a moved peer, reaping, StopCCN.

use super::*;

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
