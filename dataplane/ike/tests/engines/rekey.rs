//! The responder's own rekeys: ESP pairs (Quick Mode) and Phase 1 (its own Main Mode).

use super::*;

#[test]
fn responder_rekeys_the_esp_pair_before_it_expires() {
    for (nat, pfs) in [
        (None, None),
        (Some(Nat::new("203.0.113.7")), Some(Group::Modp2048)),
    ] {
        let behind_nat = nat.is_some();
        let c = client(
            "10.0.0.2",
            8,
            b"correct horse",
            vec![ike(
                Cipher::AesCbc(AesKeyLen::Aes128),
                HashAlg::Sha256,
                Group::Modp2048,
            )],
            vec![esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes128),
                Some(EspAuth::HmacSha256),
                pfs,
            )],
        );
        let cfg = Config {
            esp_lifetime: Duration::from_secs(120),
            ..responder_config()
        };
        let mut net = Net::new(cfg, vec![c], nat);
        net.clients[0].start(net.now);
        net.pump();
        let first = newest_pair_agrees(&net);
        // Margin 10 s plus up to 5 s jitter: the rekey comes between 105 s and 110 s.
        net.advance(Duration::from_secs(104));
        assert_eq!(responder_children(&net.events).len(), 1);
        net.advance(Duration::from_secs(7));
        assert_eq!(responder_children(&net.events).len(), 2, "nat={behind_nat}");
        let second = newest_pair_agrees(&net);
        assert_ne!(first, second);
        assert_eq!(net.resp.stats().rekeys_completed, 1);
        let r = *responder_children(&net.events).last().unwrap();
        assert_eq!(r.udp_encap, behind_nat);
        assert_eq!(r.transform.group, pfs);
        // The old pair expires at 120 s (DELETE sent); the IKE SA and the new pair stay.
        net.advance(Duration::from_secs(10));
        let downs: Vec<u32> = net
            .events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaDown {
                    inbound_spi,
                    reason: DownReason::Expired,
                    ..
                } => Some(*inbound_spi),
                _ => None,
            })
            .collect();
        assert_eq!(downs, [first.0]);
        assert_eq!(net.resp.ike_sa_count(), 1);
        // And the new pair is rekeyed in turn before it expires.
        net.advance(Duration::from_secs(110));
        assert_eq!(
            responder_children(&net.events).len(),
            3,
            "{:?} {:?}",
            net.resp.stats(),
            net.events
                .iter()
                .filter(|e| !matches!(e, Event::ChildSaUp(_)))
                .collect::<Vec<_>>()
        );
        newest_pair_agrees(&net);
    }
}

#[test]
fn a_lost_rekey_message_is_resent_and_a_soft_limit_rekeys_at_once() {
    let c = client(
        "192.0.2.10",
        9,
        b"correct horse",
        vec![ike(
            Cipher::AesCbc(AesKeyLen::Aes128),
            HashAlg::Sha1,
            Group::Modp2048,
        )],
        vec![esp_proposal(
            EspCipher::AesGcm16(AesKeyLen::Aes128),
            None,
            None,
        )],
    );
    let mut net = Net::new(responder_config(), vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    let (in_spi, _) = newest_pair_agrees(&net);
    let ike_id = responder_children(&net.events)[0].ike;
    // The data path reports the sequence-number soft limit: rekey now. Its first message
    // is lost on the way.
    net.drop_next_reply[0] = true;
    net.resp.rekey_child(net.now, ike_id, in_spi);
    net.pump();
    assert_eq!(responder_children(&net.events).len(), 1);
    net.advance(Duration::from_secs(3));
    assert_eq!(responder_children(&net.events).len(), 2);
    newest_pair_agrees(&net);
    assert!(net.resp.stats().retransmits >= 1);
    // A second report for the replaced pair does nothing.
    net.resp.rekey_child(net.now, ike_id, in_spi);
    net.pump();
    assert_eq!(net.resp.stats().rekeys_started, 1);
}

#[test]
fn responder_rekeys_phase_1_and_the_esp_sas_move_to_the_new_sa() {
    for nat in [None, Some(Nat::new("203.0.113.7"))] {
        let behind_nat = nat.is_some();
        let c = aes_sha1_client("10.0.0.2", 11);
        let cfg = Config {
            ike_lifetime: Duration::from_secs(300),
            dpd_delay: Some(Duration::from_secs(30)),
            ..responder_config()
        };
        let mut net = Net::new(cfg, vec![c], nat);
        net.peer_resp = Some(Responder::new(responder_config(), [7; 32]));
        net.clients[0].start(net.now);
        net.pump();
        let (in_spi, out_spi) = newest_pair_agrees(&net);
        let first = ike_sas_up(&net.events);
        assert_eq!(first.len(), 1);
        // Margin 10 s plus up to 5 s jitter: our Main Mode starts between 285 s and 290 s.
        net.advance(Duration::from_secs(284));
        assert_eq!(net.resp.stats().ike_rekeys_started, 0);
        net.advance(Duration::from_secs(7));
        let stats = net.resp.stats().clone();
        assert_eq!(
            (stats.ike_rekeys_started, stats.ike_rekeys_completed),
            (1, 1),
            "nat={behind_nat} {stats:?}"
        );
        let ups = ike_sas_up(&net.events);
        assert_eq!(ups.len(), 2);
        let (old, new) = (ups[0], ups[1]);
        // The client's side authenticated us as the gateway's address.
        assert!(net.peer_events.iter().any(|e| matches!(
            e,
            Event::IkeSaUp { identity, .. } if identity.contains(GW)
        )));
        // The pair moved, the old ISAKMP SA went, and no ESP SA went down.
        assert!(net.events.iter().any(|e| matches!(
            e,
            Event::ChildSaMoved { from, to, inbound_spi, outbound_spi }
                if (*from, *to, *inbound_spi, *outbound_spi) == (old, new, in_spi, out_spi)
        )));
        assert!(net.events.iter().any(|e| matches!(
            e,
            Event::IkeSaDown { id, reason: DownReason::Rekeyed, .. } if *id == old
        )));
        assert!(
            !net.events
                .iter()
                .any(|e| matches!(e, Event::ChildSaDown { .. }))
        );
        assert_eq!(net.resp.ike_sa_count(), 1);
        assert_eq!(net.resp.half_open_count(), 0);
        // DPD runs under the new SA (the client's side answers it), and the new SA is
        // replaced in turn before it expires, its pair moving again.
        net.advance(Duration::from_secs(300));
        assert_eq!(net.resp.stats().ike_rekeys_completed, 2);
        assert!(!net.events.iter().any(|e| matches!(
            e,
            Event::IkeSaDown {
                reason: DownReason::DeadPeer,
                ..
            }
        )));
        let third = *ike_sas_up(&net.events).last().unwrap();
        assert!(net.events.iter().any(|e| matches!(
            e,
            Event::ChildSaMoved { from, to, inbound_spi, .. }
                if (*from, *to, *inbound_spi) == (new, third, in_spi)
        )));
        assert_eq!(net.resp.ike_sa_count(), 1);
    }
}

#[test]
fn a_phase_1_rekey_nobody_answers_is_retried_and_the_sa_expires() {
    let c = aes_sha1_client("192.0.2.10", 12);
    let cfg = Config {
        ike_lifetime: Duration::from_secs(300),
        ..responder_config()
    };
    // The in-repo client does not answer a Main Mode it did not start.
    let mut net = Net::new(cfg, vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    net.advance(Duration::from_secs(299));
    let stats = net.resp.stats().clone();
    assert!(stats.ike_rekeys_started >= 1, "{stats:?}");
    assert_eq!(stats.ike_rekeys_completed, 0);
    assert_eq!(net.resp.half_open_count(), 0);
    // Our own attempts never count as IKE SAs that came up, and the SA expires with its pair.
    net.advance(Duration::from_secs(2));
    assert_eq!(ike_sas_up(&net.events).len(), 1);
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::ChildSaDown {
            reason: DownReason::Expired,
            ..
        }
    )));
    assert_eq!(net.resp.ike_sa_count(), 0);
}
