//! Tunnel authentication (RFC 2661 §5.1.1) and hidden AVPs (§4.3).

use super::*;

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
