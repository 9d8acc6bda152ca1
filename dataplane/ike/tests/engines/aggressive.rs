//! Aggressive Mode (RFC 2409 §5, with a pre-shared key §5.4): refused unless enabled, direct and behind NAT, wrong PSK.

use super::*;

fn aggressive_client(ip: &str, seed: u8, psk: &[u8]) -> Initiator {
    let mut cfg_client = client(
        ip,
        seed,
        psk,
        vec![ike(
            Cipher::AesCbc(AesKeyLen::Aes256),
            HashAlg::Sha256,
            Group::Modp2048,
        )],
        vec![esp_proposal(
            EspCipher::AesCbc(AesKeyLen::Aes128),
            Some(EspAuth::HmacSha1),
            None,
        )],
    );
    cfg_client.set_aggressive(true);
    cfg_client
}

#[test]
fn aggressive_mode_is_refused_unless_enabled() {
    let c = aggressive_client("192.0.2.10", 5, b"correct horse");
    let mut net = Net::new(responder_config(), vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    assert_ne!(net.clients[0].state(), InitiatorState::Established);
    assert!(
        net.client_events[0]
            .iter()
            .any(|e| matches!(e, InitiatorEvent::Notified(code::INVALID_EXCHANGE_TYPE)))
    );
    assert_eq!(net.resp.ike_sa_count(), 0);
    assert_eq!(
        net.resp.stats().drops.get(&DropReason::AggressiveRefused),
        Some(&1)
    );
}

#[test]
fn aggressive_mode_when_enabled_direct_and_behind_nat() {
    for nat in [None, Some(Nat::new("203.0.113.7"))] {
        let behind_nat = nat.is_some();
        let c = aggressive_client("10.0.0.2", 6, b"correct horse");
        let cfg = Config {
            allow_aggressive: true,
            ..responder_config()
        };
        let mut net = Net::new(cfg, vec![c], nat);
        net.clients[0].start(net.now);
        net.pump();
        assert_eq!(net.clients[0].state(), InitiatorState::Established);
        let (_, in_spi, out_spi, in_key, out_key, udp) = child_up(&net.client_events[0]).unwrap();
        let rc = responder_children(&net.events);
        assert_eq!(rc.len(), 1);
        assert_eq!((rc[0].inbound.spi, rc[0].outbound.spi), (out_spi, in_spi));
        assert_eq!(&rc[0].inbound.keymat[..], out_key);
        assert_eq!(&rc[0].outbound.keymat[..], in_key);
        assert_eq!(udp, behind_nat);
        assert_eq!(rc[0].udp_encap, behind_nat);
        assert_eq!(rc[0].local.port(), if behind_nat { 4500 } else { 500 });
        assert_eq!(net.resp.half_open_count(), 0);
        assert!(net.events.iter().any(|e| matches!(
            e,
            Event::IkeSaUp { identity, .. } if identity.contains("10.0.0.2")
        )));
    }
}

#[test]
fn aggressive_mode_wrong_psk_fails() {
    let c = aggressive_client("192.0.2.10", 7, b"wrong horse");
    let cfg = Config {
        allow_aggressive: true,
        ..responder_config()
    };
    let mut net = Net::new(cfg, vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    // The client finds HASH_R wrong and gives up; the responder's half-open SA times out.
    assert_eq!(net.clients[0].state(), InitiatorState::Closed);
    assert!(
        !net.events
            .iter()
            .any(|e| matches!(e, Event::IkeSaUp { .. }))
    );
    net.advance(Duration::from_secs(31));
    assert_eq!(net.resp.ike_sa_count(), 0);
    assert_eq!(net.resp.half_open_count(), 0);
}
