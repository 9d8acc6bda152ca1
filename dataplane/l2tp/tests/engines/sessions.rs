//! Sessions (RFC 2661 §7.4): close, reject and timeout, the session limit, the receive window.

use super::*;

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
