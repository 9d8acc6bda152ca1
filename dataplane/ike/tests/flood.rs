//! The responder under a spoofed Main Mode flood: half-open eviction (oldest unanswered
//! message 1 first), proven exchanges keep their slot, and the SA journal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_ike::cipher::{AesKeyLen, Cipher};
use sluice_ike::dh::Group;
use sluice_ike::initiator::{Initiator, InitiatorConfig, InitiatorState, esp_proposal};
use sluice_ike::policy::Config;
use sluice_ike::prf::HashAlg;
use sluice_ike::responder::{DropReason, IkeSaId, Responder, SaChange, Transmit};
use sluice_ike::sa::{AuthMethod, EspAuth, EspCipher, IkeTransform, Lifetime};
use zeroize::Zeroizing;

const GW: &str = "198.51.100.1";
const PSK: &[u8] = b"correct horse";

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(max_half_open: usize) -> Config {
    Config {
        psk: Some(Zeroizing::new(PSK.to_vec())),
        max_half_open,
        ..Config::default()
    }
}

fn client(ip: &str, seed: u8) -> Initiator {
    Initiator::new(
        InitiatorConfig {
            psk: Zeroizing::new(PSK.to_vec()),
            ike: vec![IkeTransform {
                cipher: Cipher::AesCbc(AesKeyLen::Aes128),
                hash: HashAlg::Sha1,
                auth: AuthMethod::PreSharedKey,
                group: Group::Modp2048,
                lifetime: Lifetime {
                    seconds: Some(28800),
                    kilobytes: None,
                },
            }],
            esp: vec![esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes128),
                Some(EspAuth::HmacSha1),
                None,
            )],
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

/// Spoofed Main Mode message 1s: a real client's first message with a fresh initiator
/// cookie each, from 1,000 made-up sources (5 per address, as in the netns abuse test).
struct Flood {
    template: Vec<u8>,
    sent: u64,
}

impl Flood {
    fn new(now: Instant) -> Flood {
        let mut c = client("203.0.113.9", 99);
        c.start(now);
        let template = c.poll_transmit().unwrap().payload;
        Flood { template, sent: 0 }
    }

    /// The next spoofed datagram: (source, payload).
    fn next(&mut self) -> (SocketAddr, Vec<u8>) {
        let n = self.sent;
        self.sent += 1;
        let mut m = self.template.clone();
        m[..8].copy_from_slice(&(n + 1).to_be_bytes());
        let host = n % 1000;
        let src = sock(&format!(
            "198.18.{}.{}:{}",
            host / 250,
            1 + host % 250,
            1024 + (n / 1000) % 60000
        ));
        (src, m)
    }
}

/// A responder, one real client at 192.0.2.10 and a flood of `rate` message 1s per second.
struct Bench {
    now: Instant,
    resp: Responder,
    real: Initiator,
    flood: Flood,
    /// Replies to spoofed sources (they go nowhere).
    lost: u64,
    /// Hold the responder's replies to the real client instead of delivering them.
    hold: bool,
    held: Vec<Transmit>,
}

impl Bench {
    fn new(cfg: Config) -> Bench {
        let now = Instant::now();
        Bench {
            now,
            resp: Responder::new(cfg, [42; 32]),
            real: client("192.0.2.10", 1),
            flood: Flood::new(now),
            lost: 0,
            hold: false,
            held: Vec::new(),
        }
    }

    /// Sends `n` spoofed message 1s spaced for `rate` per second, moving time on.
    fn flood(&mut self, n: u64, rate: u64) {
        let gap = Duration::from_secs(1) / u32::try_from(rate).unwrap();
        for _ in 0..n {
            let (src, m) = self.flood.next();
            self.resp
                .handle_input(self.now, sock(&format!("{GW}:500")), src, &m);
            self.now += gap;
            self.resp.handle_timeout(self.now);
            self.real.handle_timeout(self.now);
            self.exchange();
        }
    }

    /// Delivers what is queued between the real client and the responder.
    fn exchange(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.real.poll_transmit() {
                moved = true;
                self.resp
                    .handle_input(self.now, t.remote, t.local, &t.payload);
            }
            while let Some(t) = self.resp.poll_transmit() {
                if t.remote.ip() == self.real.local_ip() {
                    moved = true;
                    if self.hold {
                        self.held.push(t);
                    } else {
                        self.real.handle_input(self.now, &t.payload);
                    }
                } else {
                    self.lost += 1;
                }
            }
            while self.resp.poll_event().is_some() {}
            while self.real.poll_event().is_some() {}
            if !moved {
                return;
            }
        }
    }

    fn release(&mut self) {
        self.hold = false;
        for t in std::mem::take(&mut self.held) {
            self.real.handle_input(self.now, &t.payload);
        }
        self.exchange();
    }

    fn drops(&self, why: DropReason) -> u64 {
        self.resp.stats().drops.get(&why).copied().unwrap_or(0)
    }
}

#[test]
fn a_real_client_completes_main_mode_under_a_spoofed_flood() {
    // 5,000 message 1s per second from 1,000 sources: the table is full within 0.2 s.
    let mut b = Bench::new(Config {
        psk: Some(Zeroizing::new(PSK.to_vec())),
        ..Config::default()
    });
    let max = b.resp.config().max_half_open;
    b.flood(5000, 5000);
    assert_eq!(b.resp.half_open_count(), max, "the flood fills the table");
    assert!(b.drops(DropReason::Evicted) > 0);
    assert_eq!(b.drops(DropReason::Limit), 0, "nobody is refused");
    let started = b.now;
    b.real.start(b.now);
    // The flood goes on while the client answers (each reply costs 1 ms of flood).
    for _ in 0..50 {
        b.flood(5, 5000);
        if b.real.state() == InitiatorState::Established {
            break;
        }
    }
    assert_eq!(b.real.state(), InitiatorState::Established);
    assert!(b.now - started < Duration::from_secs(1));
    assert_eq!(b.resp.half_open_count(), max);
    assert!(b.lost >= 5000, "every spoofed source got its message 2");
}

#[test]
fn a_client_that_answered_keeps_its_slot() {
    let mut b = Bench::new(config(8));
    b.hold = true;
    b.real.start(b.now);
    b.exchange(); // message 1 → message 2 held
    assert_eq!(b.held.len(), 1);
    assert_eq!(b.resp.unproven_count(), 1);
    let msg2 = b.held.remove(0);
    b.real.handle_input(b.now, &msg2.payload); // message 3 → responder, message 4 held
    b.exchange();
    assert_eq!(b.resp.unproven_count(), 0, "message 3 proved the client");
    assert_eq!(b.resp.half_open_count(), 1);
    b.flood(100, 5000);
    assert_eq!(b.resp.half_open_count(), 8);
    assert_eq!(b.resp.unproven_count(), 7);
    assert_eq!(b.drops(DropReason::Evicted), 100 - 7);
    b.release();
    assert_eq!(b.real.state(), InitiatorState::Established);
}

#[test]
fn a_table_of_proven_exchanges_refuses_newcomers() {
    let mut b = Bench::new(config(1));
    b.hold = true;
    b.real.start(b.now);
    b.exchange();
    let msg2 = b.held.remove(0);
    b.real.handle_input(b.now, &msg2.payload);
    b.exchange();
    assert_eq!((b.resp.half_open_count(), b.resp.unproven_count()), (1, 0));
    b.flood(10, 5000);
    assert_eq!(b.drops(DropReason::Limit), 10);
    assert_eq!(b.drops(DropReason::Evicted), 0);
    assert_eq!(b.lost, 0, "a refused message 1 gets no reply");
    b.release();
    assert_eq!(b.real.state(), InitiatorState::Established);
    assert_eq!(b.resp.half_open_count(), 0);
}

/// The responder cookie of a message 2 (bytes 8..16 of the ISAKMP header, RFC 2408 §3.1).
fn cky_r(t: &Transmit) -> IkeSaId {
    IkeSaId(u64::from_be_bytes(t.payload[8..16].try_into().unwrap()))
}

#[test]
fn the_oldest_unanswered_message_1_is_evicted_first_and_journalled() {
    let mut r = Responder::new(config(3), [7; 32]);
    r.track_sa_changes(true);
    let mut flood = Flood::new(Instant::now());
    let mut now = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (src, m) = flood.next();
        r.handle_input(now, sock(&format!("{GW}:500")), src, &m);
        ids.push(cky_r(&r.poll_transmit().unwrap()));
        now += Duration::from_millis(1);
    }
    let changes: Vec<SaChange> = std::iter::from_fn(|| r.poll_sa_change()).collect();
    assert_eq!(
        changes,
        vec![
            SaChange::Added(ids[0]),
            SaChange::Added(ids[1]),
            SaChange::Added(ids[2]),
            SaChange::Removed(ids[0]),
            SaChange::Added(ids[3]),
        ]
    );
    let mut live: Vec<IkeSaId> = r.sa_ids().collect();
    live.sort();
    let mut want = ids[1..].to_vec();
    want.sort();
    assert_eq!(live, want);
    // Timeouts are journalled too, and leave the table empty.
    r.handle_timeout(now + r.config().half_open_timeout);
    assert_eq!(std::iter::from_fn(|| r.poll_sa_change()).count(), 3);
    assert_eq!((r.half_open_count(), r.unproven_count()), (0, 0));
    r.track_sa_changes(false);
    assert_eq!(r.poll_sa_change(), None);
}
