//! Malformed input from a hand-driven raw peer: unknown mandatory and optional AVPs, a zero window, retransmitted SCCRQ, foreign datagrams, a malformed StopCCN (RFC 2661 §4.1).

use super::*;

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
