//! Engine-pair tests: the in-repo initiator against the responder under simulated time, with
//! an optional NAT (address and port rewriting) between them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_ike::cipher::{AesKeyLen, Cipher};
use sluice_ike::dh::Group;
use sluice_ike::initiator::{
    Initiator, InitiatorConfig, InitiatorEvent, InitiatorState, esp_proposal,
};
use sluice_ike::notify::code;
use sluice_ike::policy::Config;
use sluice_ike::prf::HashAlg;
use sluice_ike::responder::{DownReason, DropReason, Event, Responder};
use sluice_ike::sa::{AuthMethod, EspAuth, EspCipher, EspTransform, IkeTransform, Lifetime};
use zeroize::Zeroizing;

const GW: &str = "198.51.100.1";

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ike(cipher: Cipher, hash: HashAlg, group: Group) -> IkeTransform {
    IkeTransform {
        cipher,
        hash,
        auth: AuthMethod::PreSharedKey,
        group,
        lifetime: Lifetime {
            seconds: Some(28800),
            kilobytes: None,
        },
    }
}

fn responder_config() -> Config {
    Config {
        psk: Some(Zeroizing::new(b"correct horse".to_vec())),
        ..Config::default()
    }
}

fn client(
    ip: &str,
    seed: u8,
    psk: &[u8],
    ike_t: Vec<IkeTransform>,
    esp: Vec<EspTransform>,
) -> Initiator {
    Initiator::new(
        InitiatorConfig {
            psk: Zeroizing::new(psk.to_vec()),
            ike: ike_t,
            esp,
            local: sock(&format!("{ip}:500")),
            local_natt: sock(&format!("{ip}:4500")),
            remote: sock(&format!("{GW}:500")),
            remote_natt_port: 4500,
            nat_t: true,
            dpd: true,
            l2tp_port: 1701,
            retransmit: Duration::from_secs(2),
            aggressive: false,
            certificate: None,
            ca: None,
            unix_time: 0,
        },
        [seed; 32],
    )
}

/// A source NAT: each (client, private address) gets a port on `public`.
struct Nat {
    public: String,
    map: HashMap<SocketAddr, SocketAddr>,
    rev: HashMap<SocketAddr, SocketAddr>,
    next: u16,
}

impl Nat {
    fn new(public: &str) -> Nat {
        Nat {
            public: public.into(),
            map: HashMap::new(),
            rev: HashMap::new(),
            next: 40000,
        }
    }
    fn out(&mut self, private: SocketAddr) -> SocketAddr {
        if let Some(p) = self.map.get(&private) {
            return *p;
        }
        let p = sock(&format!("{}:{}", self.public, self.next));
        self.next += 1;
        self.map.insert(private, p);
        self.rev.insert(p, private);
        p
    }
}

struct Net {
    now: Instant,
    resp: Responder,
    clients: Vec<Initiator>,
    nat: Option<Nat>,
    events: Vec<Event>,
    client_events: Vec<Vec<InitiatorEvent>>,
    /// Drop the next responder datagram to each client index (once).
    drop_next_reply: Vec<bool>,
    /// Stop delivering anything.
    cut: bool,
    /// A responder on client 0's side, for the exchanges the gateway starts as initiator
    /// (its Phase 1 rekeys; strongSwan answers those), with its events.
    peer_resp: Option<Responder>,
    peer_events: Vec<Event>,
}

impl Net {
    fn new(cfg: Config, clients: Vec<Initiator>, nat: Option<Nat>) -> Net {
        let n = clients.len();
        Net {
            now: Instant::now(),
            resp: Responder::new(cfg, [42; 32]),
            clients,
            nat,
            events: Vec::new(),
            client_events: (0..n).map(|_| Vec::new()).collect(),
            drop_next_reply: vec![false; n],
            cut: false,
            peer_resp: None,
            peer_events: Vec::new(),
        }
    }

    /// Delivers a client-side datagram from `local` to the gateway, through the NAT.
    fn deliver_to_gateway(&mut self, local: &SocketAddr, remote: SocketAddr, payload: &[u8]) {
        if self.cut {
            return;
        }
        let src = match &mut self.nat {
            Some(n) => n.out(*local),
            None => *local,
        };
        self.resp.handle_input(self.now, remote, src, payload);
    }

    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Some(t) = self.clients[i].poll_transmit() {
                    moved = true;
                    self.deliver_to_gateway(&t.local, t.remote, &t.payload);
                }
                while let Some(e) = self.clients[i].poll_event() {
                    self.client_events[i].push(e);
                }
            }
            while let Some(t) = self.resp.poll_transmit() {
                moved = true;
                if self.cut {
                    continue;
                }
                let dst = match &self.nat {
                    Some(n) => n.rev.get(&t.remote).copied(),
                    None => Some(t.remote),
                };
                let Some(dst) = dst else { continue };
                if let Some(i) = self.clients.iter().position(|c| {
                    let cfg_ip = dst.ip();
                    c_ip(c) == cfg_ip
                }) {
                    if std::mem::take(&mut self.drop_next_reply[i]) {
                        continue;
                    }
                    self.clients[i].handle_input(self.now, &t.payload);
                    if i == 0
                        && let Some(p) = self.peer_resp.as_mut()
                    {
                        p.handle_input(self.now, dst, t.local, &t.payload);
                    }
                }
            }
            while let Some(t) = self.peer_resp.as_mut().and_then(Responder::poll_transmit) {
                moved = true;
                self.deliver_to_gateway(&t.local, t.remote, &t.payload);
            }
            if let Some(p) = self.peer_resp.as_mut() {
                while let Some(e) = p.poll_event() {
                    self.peer_events.push(e);
                }
            }
            while let Some(e) = self.resp.poll_event() {
                self.events.push(e);
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange does not settle");
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = [
                self.resp.poll_timeout(),
                self.peer_resp.as_ref().and_then(Responder::poll_timeout),
            ]
            .into_iter()
            .chain(self.clients.iter().map(|c| c.poll_timeout()))
            .flatten()
            .filter(|t| *t <= end)
            .min();
            let Some(t) = next else { break };
            self.now = self.now.max(t);
            self.resp.handle_timeout(self.now);
            if let Some(p) = self.peer_resp.as_mut() {
                p.handle_timeout(self.now);
            }
            for c in &mut self.clients {
                c.handle_timeout(self.now);
            }
            self.pump();
        }
        self.now = end;
    }
}

fn c_ip(c: &Initiator) -> std::net::IpAddr {
    // Clients are told apart by their private IP (the tests give each its own).
    c.local_ip()
}

fn child_up(events: &[InitiatorEvent]) -> Option<(&EspTransform, u32, u32, &[u8], &[u8], bool)> {
    events.iter().find_map(|e| match e {
        InitiatorEvent::ChildUp {
            transform,
            inbound,
            outbound,
            udp_encap,
        } => Some((
            transform,
            inbound.spi,
            outbound.spi,
            &inbound.keymat[..],
            &outbound.keymat[..],
            *udp_encap,
        )),
        _ => None,
    })
}

fn responder_children(events: &[Event]) -> Vec<&sluice_ike::responder::ChildSa> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp(c) => Some(&**c),
            _ => None,
        })
        .collect()
}

/// Establishes one client and checks both ends derived the same keys.
fn establish(ike_t: IkeTransform, esp: EspTransform) -> Net {
    let c = client("192.0.2.10", 1, b"correct horse", vec![ike_t], vec![esp]);
    let mut net = Net::new(responder_config(), vec![c], None);
    net.clients[0].start(net.now);
    net.pump();
    assert_eq!(
        net.clients[0].state(),
        InitiatorState::Established,
        "{ike_t:?} {esp:?}"
    );
    let (t, in_spi, out_spi, in_key, out_key, udp) = child_up(&net.client_events[0]).unwrap();
    let rc = responder_children(&net.events);
    assert_eq!(rc.len(), 1);
    let r = rc[0];
    assert_eq!((r.inbound.spi, r.outbound.spi), (out_spi, in_spi));
    assert_eq!(&r.inbound.keymat[..], out_key);
    assert_eq!(&r.outbound.keymat[..], in_key);
    assert_ne!(in_key, out_key);
    assert_eq!(in_key.len(), esp.keymat_len());
    assert_eq!(r.transform.cipher, t.cipher);
    assert!(!udp && !r.udp_encap);
    assert_eq!(r.client_addr, Some("192.0.2.10".parse().unwrap()));
    // Message 2 announced the inbound SPI before message 3 brought the pair up (the
    // data plane holds ESP that overtakes message 3).
    let expected = net.events.iter().position(|e| {
        matches!(e, Event::ChildSaExpected { inbound_spi, .. } if *inbound_spi == r.inbound.spi)
    });
    let up = net
        .events
        .iter()
        .position(|e| matches!(e, Event::ChildSaUp(_)));
    assert!(expected.is_some() && expected < up, "{:?}", (expected, up));
    net
}

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

/// Both ends' keys of the newest pair agree.
fn newest_pair_agrees(net: &Net) -> (u32, u32) {
    let ups: Vec<_> = net.client_events[0]
        .iter()
        .filter_map(|e| match e {
            InitiatorEvent::ChildUp {
                inbound, outbound, ..
            } => Some((inbound, outbound)),
            _ => None,
        })
        .collect();
    let (c_in, c_out) = ups.last().unwrap();
    let r = *responder_children(&net.events).last().unwrap();
    assert_eq!((r.inbound.spi, r.outbound.spi), (c_out.spi, c_in.spi));
    assert_eq!(&r.inbound.keymat[..], &c_out.keymat[..]);
    assert_eq!(&r.outbound.keymat[..], &c_in.keymat[..]);
    (r.inbound.spi, r.outbound.spi)
}

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

/// A client proposing aes128-sha1-modp2048 and ESP aes128-sha1 with the right PSK.
fn aes_sha1_client(ip: &str, seed: u8) -> Initiator {
    client(
        ip,
        seed,
        b"correct horse",
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
    )
}

/// The IKE SAs that came up, in order.
fn ike_sas_up(events: &[Event]) -> Vec<sluice_ike::responder::IkeSaId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IkeSaUp { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
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

mod certificates {
    use super::*;
    use sluice_ike::cert::{Credentials, TrustStore};
    use std::sync::Arc;

    macro_rules! pem {
        ($name:literal) => {
            include_bytes!(concat!("certs/", $name)).as_slice()
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
            let (_, in_spi, out_spi, in_key, out_key, udp) =
                child_up(&net.client_events[0]).unwrap();
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
}
