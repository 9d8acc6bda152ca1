//! Main Mode and Quick Mode across proposals, a wrong PSK, clients behind one NAT, a lost reply, no proposal chosen (RFC 2409 §5, §5.5).

use super::*;

#[test]
fn psk_main_mode_and_quick_mode_for_every_common_proposal() {
    let aes = |k| Cipher::AesCbc(k);
    let cases = [
        // What the interop list names, plus SHA-2/ECP and GCM.
        (
            ike(aes(AesKeyLen::Aes128), HashAlg::Sha1, Group::Modp2048),
            esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes128),
                Some(EspAuth::HmacSha1),
                None,
            ),
        ),
        (
            ike(aes(AesKeyLen::Aes256), HashAlg::Sha256, Group::Modp2048),
            esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes256),
                Some(EspAuth::HmacSha256),
                None,
            ),
        ),
        (
            ike(Cipher::TripleDesCbc, HashAlg::Sha1, Group::Modp1024),
            esp_proposal(EspCipher::TripleDesCbc, Some(EspAuth::HmacSha1), None),
        ),
        (
            ike(aes(AesKeyLen::Aes192), HashAlg::Sha384, Group::Ecp256),
            esp_proposal(EspCipher::AesGcm16(AesKeyLen::Aes128), None, None),
        ),
        (
            ike(aes(AesKeyLen::Aes256), HashAlg::Sha512, Group::Ecp384),
            esp_proposal(
                EspCipher::AesGcm16(AesKeyLen::Aes256),
                None,
                Some(Group::Modp2048),
            ),
        ),
        (
            ike(aes(AesKeyLen::Aes128), HashAlg::Sha256, Group::Modp1536),
            esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes128),
                Some(EspAuth::HmacSha512),
                Some(Group::Ecp256),
            ),
        ),
    ];
    for (i, e) in cases {
        let net = establish(i, e);
        assert!(matches!(net.events.first(), Some(Event::IkeSaUp { .. })));
        assert_eq!(net.resp.half_open_count(), 0);
    }
}

#[test]
fn wrong_psk_fails_with_a_notify_and_an_event() {
    let c = client(
        "192.0.2.10",
        1,
        b"wrong",
        vec![ike(
            Cipher::AesCbc(AesKeyLen::Aes128),
            HashAlg::Sha1,
            Group::Modp2048,
        )],
        vec![esp_proposal(
            EspCipher::AesCbc(AesKeyLen::Aes128),
            Some(EspAuth::HmacSha1),
            None,
        )],
    );
    let mut net = Net::new(responder_config(), vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    assert!(
        net.events
            .iter()
            .any(|e| matches!(e, Event::AuthFailed { .. }))
    );
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaUp { .. }))
    );
    assert_eq!(net.resp.ike_sa_count(), 0);
    assert_eq!(net.resp.half_open_count(), 0);
    assert!(
        net.client_events[0]
            .iter()
            .any(|e| matches!(e, InitiatorEvent::Notified(code::AUTHENTICATION_FAILED)))
    );
    assert_eq!(
        net.resp.stats().drops.get(&DropReason::AuthFailed),
        Some(&1)
    );
}

#[test]
fn two_clients_behind_one_nat_get_their_own_sas() {
    let mk = |ip, seed| {
        client(
            ip,
            seed,
            b"correct horse",
            vec![ike(
                Cipher::AesCbc(AesKeyLen::Aes256),
                HashAlg::Sha256,
                Group::Modp2048,
            )],
            vec![esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes256),
                Some(EspAuth::HmacSha256),
                None,
            )],
        )
    };
    let clients = vec![mk("10.0.0.2", 1), mk("10.0.0.3", 2)];
    let mut net = Net::new(responder_config(), clients, Some(Nat::new("203.0.113.7")));
    net.clients[0].start(net.now);
    net.clients[1].start(net.now);
    net.pump();
    for i in 0..2 {
        assert_eq!(net.clients[i].state(), InitiatorState::Established);
        let (_, _, _, _, _, udp) = child_up(&net.client_events[i]).unwrap();
        assert!(udp, "a NAT in the path means UDP encapsulation");
    }
    let rc = responder_children(&net.events);
    assert_eq!(rc.len(), 2);
    // Same public address, different NAT-T ports; each bound to its own IKE SA.
    assert_eq!(rc[0].peer.ip(), rc[1].peer.ip());
    assert_ne!(rc[0].peer.port(), rc[1].peer.port());
    assert_ne!(rc[0].ike, rc[1].ike);
    assert!(rc.iter().all(|c| c.udp_encap && c.local.port() == 4500));
    let addrs: Vec<_> = rc
        .iter()
        .map(|c| c.client_addr.unwrap().to_string())
        .collect();
    assert!(addrs.contains(&"10.0.0.2".to_string()) && addrs.contains(&"10.0.0.3".to_string()));
    assert_eq!(net.resp.ike_sa_count(), 2);
}

#[test]
fn lost_reply_is_resent_from_the_retransmitted_request() {
    let c = client(
        "192.0.2.10",
        3,
        b"correct horse",
        vec![ike(
            Cipher::AesCbc(AesKeyLen::Aes128),
            HashAlg::Sha1,
            Group::Modp1024,
        )],
        vec![esp_proposal(
            EspCipher::AesCbc(AesKeyLen::Aes128),
            Some(EspAuth::HmacSha1),
            None,
        )],
    );
    let mut net = Net::new(responder_config(), vec![c], None);
    net.clients[0].start(net.now);
    net.drop_next_reply[0] = true; // message 2 is lost
    net.pump();
    assert_eq!(net.clients[0].state(), InitiatorState::SentSa);
    net.advance(Duration::from_secs(3));
    assert_eq!(net.clients[0].state(), InitiatorState::Established);
    assert_eq!(net.resp.stats().retransmits, 1);
    assert_eq!(net.resp.ike_sa_count(), 1);
}

#[test]
fn no_acceptable_proposal_gets_no_proposal_chosen() {
    let c = client(
        "192.0.2.10",
        1,
        b"correct horse",
        vec![ike(
            Cipher::AesCbc(AesKeyLen::Aes128),
            HashAlg::Md5,
            Group::Modp2048,
        )],
        vec![],
    );
    let mut net = Net::new(responder_config(), vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    assert!(
        net.client_events[0]
            .iter()
            .any(|e| matches!(e, InitiatorEvent::Notified(code::NO_PROPOSAL_CHOSEN)))
    );
    assert_eq!(net.resp.ike_sa_count(), 0);
}
