//! DPD (RFC 3706), a NAT mapping that moves, DELETE, lifetimes and the half-open limit.

use super::*;

#[test]
fn dpd_keeps_a_live_client_and_reaps_a_dead_one() {
    let mut net = establish(
        ike(
            Cipher::AesCbc(AesKeyLen::Aes128),
            HashAlg::Sha1,
            Group::Modp2048,
        ),
        esp_proposal(
            EspCipher::AesCbc(AesKeyLen::Aes128),
            Some(EspAuth::HmacSha1),
            None,
        ),
    );
    net.advance(Duration::from_secs(120));
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaDown { .. })),
        "acked R-U-THEREs keep it up"
    );
    net.cut = true;
    net.advance(Duration::from_secs(200));
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::ChildSaDown {
            reason: DownReason::DeadPeer,
            ..
        }
    )));
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: DownReason::DeadPeer,
            ..
        }
    )));
    assert_eq!(net.resp.ike_sa_count(), 0);
}

/// A client behind a NAT whose mapping is then lost and re-made on another public port;
/// returns the net, the IKE SA and the gateway's NAT-T address.
fn nat_client_remapped() -> (Net, sluice_ike::responder::IkeSaId, SocketAddr, SocketAddr) {
    let c = aes_sha1_client("10.0.0.2", 21);
    let mut net = Net::new(responder_config(), vec![c], Some(Nat::new("203.0.113.7")));
    net.clients[0].start(net.now);
    net.pump();
    assert_eq!(net.clients[0].state(), InitiatorState::Established);
    let id = ike_sas_up(&net.events)[0];
    let (local, peer) = {
        let c = responder_children(&net.events)[0];
        (c.local, c.peer)
    };
    let nat = net.nat.as_mut().unwrap();
    nat.map.clear();
    nat.rev.clear();
    nat.next = 41000;
    // The client's next ESP packet makes the new mapping.
    let moved_to = nat.out(sock("10.0.0.2:4500"));
    assert_ne!(moved_to, peer);
    (net, id, local, moved_to)
}

#[test]
fn dpd_follows_a_client_whose_nat_mapping_moved() {
    let dead = |net: &Net| {
        net.events.iter().any(|e| {
            matches!(
                e,
                Event::IkeSaDown {
                    reason: DownReason::DeadPeer,
                    ..
                }
            )
        })
    };
    // Nothing tells the responder: its R-U-THEREs go to the old port and the SA dies.
    let (mut net, ..) = nat_client_remapped();
    net.advance(Duration::from_secs(200));
    assert!(dead(&net), "DPD to the lost mapping finds the peer dead");
    // Authenticated ESP from the new port moved it: DPD is answered there for hours.
    let (mut net, id, local, moved_to) = nat_client_remapped();
    net.resp.peer_moved(id, local, moved_to);
    net.advance(Duration::from_secs(3 * 3600));
    assert!(!dead(&net), "DPD follows the new mapping");
    assert_eq!(net.resp.ike_sa_count(), 1);
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::PeerMoved { .. })),
        "the caller moved the ESP SA itself: no event"
    );
}

#[test]
fn client_delete_removes_both_sas() {
    let mut net = establish(
        ike(
            Cipher::AesCbc(AesKeyLen::Aes256),
            HashAlg::Sha256,
            Group::Modp2048,
        ),
        esp_proposal(
            EspCipher::AesCbc(AesKeyLen::Aes256),
            Some(EspAuth::HmacSha256),
            None,
        ),
    );
    let now = net.now;
    net.clients[0].delete(now);
    net.pump();
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::ChildSaDown {
            reason: DownReason::DeletedByPeer,
            ..
        }
    )));
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::IkeSaDown {
            reason: DownReason::DeletedByPeer,
            ..
        }
    )));
    assert_eq!(net.resp.ike_sa_count(), 0);
}

#[test]
fn longer_lifetime_is_shortened_and_expires() {
    let mut esp = esp_proposal(
        EspCipher::AesCbc(AesKeyLen::Aes128),
        Some(EspAuth::HmacSha1),
        None,
    );
    esp.lifetime = Lifetime {
        seconds: Some(7200),
        kilobytes: None,
    };
    let mut net = establish(
        ike(
            Cipher::AesCbc(AesKeyLen::Aes128),
            HashAlg::Sha1,
            Group::Modp2048,
        ),
        esp,
    );
    assert!(
        net.client_events[0]
            .iter()
            .any(|e| matches!(e, InitiatorEvent::Notified(code::RESPONDER_LIFETIME)))
    );
    assert_eq!(
        responder_children(&net.events)[0].lifetime,
        Duration::from_secs(3600)
    );
    net.advance(Duration::from_secs(3601));
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::ChildSaDown {
            reason: DownReason::Expired,
            ..
        }
    )));
}

#[test]
fn half_open_limit_per_address_and_timeout() {
    let clients: Vec<Initiator> = (0..6)
        .map(|i| {
            client(
                "192.0.2.10",
                10 + i,
                b"x",
                vec![ike(
                    Cipher::AesCbc(AesKeyLen::Aes128),
                    HashAlg::Sha1,
                    Group::Modp2048,
                )],
                vec![],
            )
        })
        .collect();
    let mut net = Net::new(responder_config(), clients, None);
    for i in 0..6 {
        let now = net.now;
        net.clients[i].start(now);
        // Hold every client at message 1 (the responder's reply never reaches it).
        net.drop_next_reply[i] = true;
    }
    net.cut = false;
    net.pump();
    assert_eq!(
        net.resp.half_open_count(),
        4,
        "max_ike_sas_per_client (4) binds first: same address and port"
    );
    net.cut = true;
    net.advance(Duration::from_secs(31));
    assert_eq!(net.resp.half_open_count(), 0);
    assert_eq!(net.resp.ike_sa_count(), 0);
}
