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

mod aggressive;
mod certificates;
mod exchanges;
mod lifecycle;
mod rekey;
