//! RSA signatures with X.509 certificates (RFC 2409 §5.1), direct and behind NAT.

use super::*;
use sluice_ike::cert::{Credentials, TrustStore};
use std::sync::Arc;

macro_rules! pem {
    ($name:literal) => {
        include_bytes!(concat!("../certs/", $name)).as_slice()
    };
}
/// 2026-12-01: inside the fixtures' 2025–2045 validity.
const NOW: u64 = 1_796_083_200;

fn gateway_creds() -> Arc<Credentials> {
    Arc::new(Credentials::from_pem(pem!("gateway-chain.pem"), pem!("gateway.key")).unwrap())
}

fn ca() -> Arc<TrustStore> {
    Arc::new(TrustStore::from_pem(pem!("ca.pem")).unwrap())
}

fn rsa_ike() -> IkeTransform {
    IkeTransform {
        auth: AuthMethod::RsaSignature,
        ..ike(
            Cipher::AesCbc(AesKeyLen::Aes256),
            HashAlg::Sha256,
            Group::Modp2048,
        )
    }
}

fn cert_client(chain: &[u8], key: &[u8], seed: u8) -> Initiator {
    let mut chain_pem = chain.to_vec();
    chain_pem.extend_from_slice(pem!("int.pem"));
    let creds = Arc::new(Credentials::from_pem(&chain_pem, key).unwrap());
    Initiator::new(
        InitiatorConfig {
            psk: Zeroizing::new(Vec::new()),
            ike: vec![rsa_ike()],
            esp: vec![esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes128),
                Some(EspAuth::HmacSha1),
                None,
            )],
            local: sock("10.0.0.2:500"),
            local_natt: sock("10.0.0.2:4500"),
            remote: sock(&format!("{GW}:500")),
            remote_natt_port: 4500,
            nat_t: true,
            dpd: true,
            l2tp_port: 1701,
            retransmit: Duration::from_secs(2),
            aggressive: false,
            certificate: Some(creds),
            ca: Some(ca()),
            unix_time: NOW,
        },
        [seed; 32],
    )
}

fn cert_responder(unix_time: u64) -> Responder {
    let mut r = Responder::new(
        Config {
            psk: None,
            certificate: Some(gateway_creds()),
            client_ca: Some(ca()),
            ..Config::default()
        },
        [42; 32],
    );
    r.set_unix_time(unix_time);
    r
}

#[test]
fn rsa_signatures_authenticate_both_ends() {
    for nat in [None, Some(Nat::new("203.0.113.7"))] {
        let behind_nat = nat.is_some();
        let c = cert_client(pem!("alice.pem"), pem!("alice.key"), 11);
        let mut net = Net::new(Config::default(), vec![c], nat);
        net.resp = cert_responder(NOW);
        net.clients[0].start(net.now);
        net.pump();
        assert!(
            net.clients[0].cert_requested(),
            "CR for our CA in message 4"
        );
        assert_eq!(net.clients[0].state(), InitiatorState::Established);
        let identity = net
            .events
            .iter()
            .find_map(|e| match e {
                Event::IkeSaUp {
                    identity,
                    transform,
                    ..
                } => Some((identity.clone(), transform.auth)),
                _ => None,
            })
            .unwrap();
        assert!(identity.0.contains("CN=alice"), "{identity:?}");
        assert_eq!(identity.1, AuthMethod::RsaSignature);
        let (_, in_spi, out_spi, in_key, out_key, udp) = child_up(&net.client_events[0]).unwrap();
        let rc = responder_children(&net.events);
        assert_eq!((rc[0].inbound.spi, rc[0].outbound.spi), (out_spi, in_spi));
        assert_eq!(&rc[0].inbound.keymat[..], out_key);
        assert_eq!(&rc[0].outbound.keymat[..], in_key);
        assert_eq!(udp, behind_nat);
    }
}

#[test]
fn responder_rekeys_phase_1_with_signatures() {
    let c = cert_client(pem!("alice.pem"), pem!("alice.key"), 13);
    let mut net = Net::new(Config::default(), vec![c], None);
    net.resp = cert_responder(NOW);
    net.resp.set_config(Config {
        ike_lifetime: Duration::from_secs(300),
        ..net.resp.config().clone()
    });
    // Alice's side answers our Main Mode with her certificate and checks ours.
    let mut chain = pem!("alice.pem").to_vec();
    chain.extend_from_slice(pem!("int.pem"));
    let mut alice = Responder::new(
        Config {
            psk: None,
            certificate: Some(Arc::new(
                Credentials::from_pem(&chain, pem!("alice.key")).unwrap(),
            )),
            client_ca: Some(ca()),
            ..Config::default()
        },
        [9; 32],
    );
    alice.set_unix_time(NOW);
    net.peer_resp = Some(alice);
    net.clients[0].start(net.now);
    net.pump();
    let (in_spi, _) = newest_pair_agrees(&net);
    net.advance(Duration::from_secs(291));
    assert_eq!(net.resp.stats().ike_rekeys_completed, 1);
    let up = net
        .events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaUp { id, identity, .. } => Some((*id, identity.clone())),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(up.len(), 2);
    assert!(up[1].1.contains("CN=alice"), "{up:?}");
    assert!(net.events.iter().any(|e| matches!(
        e,
        Event::ChildSaMoved { to, inbound_spi, .. } if *to == up[1].0 && *inbound_spi == in_spi
    )));
    assert!(net.peer_events.iter().any(|e| matches!(
        e,
        Event::IkeSaUp { identity, .. } if identity.contains("vpn.example.test")
    )));
}

fn refused(client_ca: &[u8], unix_time: u64) -> String {
    let c = cert_client(pem!("alice.pem"), pem!("alice.key"), 12);
    let mut net = Net::new(Config::default(), vec![c], None);
    let mut r = Responder::new(
        Config {
            psk: None,
            certificate: Some(gateway_creds()),
            client_ca: Some(Arc::new(TrustStore::from_pem(client_ca).unwrap())),
            ..Config::default()
        },
        [42; 32],
    );
    r.set_unix_time(unix_time);
    net.resp = r;
    net.clients[0].start(net.now);
    net.pump();
    assert_ne!(net.clients[0].state(), InitiatorState::Established);
    assert!(
        net.client_events[0]
            .iter()
            .any(|e| matches!(e, InitiatorEvent::Notified(code::AUTHENTICATION_FAILED)))
    );
    assert_eq!(net.resp.ike_sa_count(), 0);
    assert_eq!(net.resp.half_open_count(), 0);
    net.events
        .iter()
        .find_map(|e| match e {
            Event::AuthFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .unwrap()
}

#[test]
fn bad_client_certificates_are_refused_with_a_reason() {
    let unknown = refused(pem!("other-ca.pem"), NOW);
    assert!(unknown.contains("client certificate refused"), "{unknown}");
    // The fixtures are valid 2025-01-01 .. 2045-01-01.
    let expired = refused(pem!("ca.pem"), 2_366_841_600 + 86_400);
    assert!(expired.contains("expired"), "{expired}");
    let early = refused(pem!("ca.pem"), 1_700_000_000);
    assert!(
        early.contains("not yet valid") || early.contains("valid"),
        "{early}"
    );
}

#[test]
fn signatures_are_not_offered_without_a_certificate() {
    let c = cert_client(pem!("alice.pem"), pem!("alice.key"), 13);
    let mut net = Net::new(responder_config(), vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    assert!(
        net.client_events[0]
            .iter()
            .any(|e| matches!(e, InitiatorEvent::Notified(code::NO_PROPOSAL_CHOSEN)))
    );
}
