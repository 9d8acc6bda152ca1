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
        }
    }

    fn pump(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            for i in 0..self.clients.len() {
                while let Some(t) = self.clients[i].poll_transmit() {
                    moved = true;
                    if self.cut {
                        continue;
                    }
                    let src = match &mut self.nat {
                        Some(n) => n.out(t.local),
                        None => t.local,
                    };
                    self.resp.handle_input(self.now, t.remote, src, &t.payload);
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
            let next = [self.resp.poll_timeout()]
                .into_iter()
                .chain(self.clients.iter().map(|c| c.poll_timeout()))
                .flatten()
                .filter(|t| *t <= end)
                .min();
            let Some(t) = next else { break };
            self.now = self.now.max(t);
            self.resp.handle_timeout(self.now);
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
