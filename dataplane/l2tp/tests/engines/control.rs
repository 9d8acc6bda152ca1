//! The tie breaker (RFC 2661 §5.8), SLI/WEN and outgoing calls, HELLO and data activity.

use super::*;

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
