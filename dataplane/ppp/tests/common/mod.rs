//! In-memory client ↔ server harness with a simulated clock, loss, duplication, reordering.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use sluice_ppp::*;

pub struct XorShift(pub u64);
impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);

/// Impairments applied to frames in flight (per mille).
#[derive(Clone, Copy, Default)]
pub struct Impair {
    pub loss_ctrl: u64,
    pub loss_data: u64,
    pub dup_data: u64,
    pub reorder_data: u64,
}

pub struct Pair {
    pub now: Instant,
    pub client: Ppp,
    pub server: Ppp,
    pub users: HashMap<String, Vec<u8>>,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    pub rng: XorShift,
    pub impair: Impair,
    /// Deliver nothing client → server while set (silence).
    pub cut_client_to_server: bool,
    /// Answer AuthRequest events (false: never provide the secret).
    pub answer_auth: bool,
    /// Answer with the NT hash of the user's password (RFC 2759 §8.3), not the password.
    pub answer_with_nt_hash: bool,
    /// Received IP datagrams (at client, at server).
    pub got_at_client: Vec<Vec<u8>>,
    pub got_at_server: Vec<Vec<u8>>,
    held: Option<(bool, Vec<u8>)>,
    /// Every frame handed to `send` (direction: true = to server).
    pub log: Vec<(bool, Vec<u8>)>,
}

pub fn server_cfg(auth: Vec<AuthProto>, policy: EncryptionPolicy) -> ServerConfig {
    ServerConfig {
        auth,
        mppe: MppePolicy {
            policy,
            key_lengths: KeyLengths::ALL,
            stateful: StatefulMode::Refuse,
        },
        mru: 1400,
        mtu: 1400,
        local_addr: LOCAL_IP,
        dns: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(8, 8, 8, 8)],
        keepalive: Some(Duration::from_secs(10)),
        max_auth_attempts: 3,
        auth_timeout: Duration::from_secs(30),
        name: "sluice".into(),
    }
}

pub fn client_cfg(auth: Vec<AuthProto>, policy: EncryptionPolicy, password: &str) -> ClientConfig {
    ClientConfig {
        username: "alice".into(),
        password: password.as_bytes().to_vec(),
        auth,
        mppe: MppePolicy {
            policy,
            key_lengths: KeyLengths::ALL,
            stateful: StatefulMode::Refuse,
        },
        mru: 1400,
        mtu: 1400,
        request_dns: true,
        keepalive: None,
    }
}

fn is_data(frame: &[u8]) -> bool {
    // FF 03 00 21 / FF 03 00 FD
    frame.len() >= 4 && frame[2] == 0 && (frame[3] == 0x21 || frame[3] == 0xFD)
}

impl Pair {
    pub fn new(s: ServerConfig, c: ClientConfig, seed: u8) -> Pair {
        let now = Instant::now();
        let mut users = HashMap::new();
        users.insert("alice".to_string(), b"s3cret".to_vec());
        Pair {
            now,
            server: Ppp::server(s, now, [seed; 32]),
            client: Ppp::client(c, now, [seed.wrapping_add(100); 32]),
            users,
            client_events: Vec::new(),
            server_events: Vec::new(),
            rng: XorShift(0x9E37_79B9_7F4A_7C15 ^ u64::from(seed)),
            impair: Impair::default(),
            cut_client_to_server: false,
            answer_auth: true,
            answer_with_nt_hash: false,
            got_at_client: Vec::new(),
            got_at_server: Vec::new(),
            held: None,
            log: Vec::new(),
        }
    }

    fn deliver(&mut self, to_server: bool, mut frame: Vec<u8>) {
        let now = self.now;
        let dst = if to_server {
            &mut self.server
        } else {
            &mut self.client
        };
        if let Ok(Some(ip)) = dst.handle_input(now, &mut frame) {
            let ip = ip.to_vec();
            if to_server {
                self.got_at_server.push(ip);
            } else {
                self.got_at_client.push(ip);
            }
        }
    }

    fn send(&mut self, to_server: bool, frame: Vec<u8>) {
        if self.log.len() < 10_000 {
            self.log.push((to_server, frame.clone()));
        }
        if to_server && self.cut_client_to_server {
            return;
        }
        let data = is_data(&frame);
        let imp = self.impair;
        if data {
            if self.rng.chance(imp.loss_data) {
                return;
            }
            if self.rng.chance(imp.reorder_data) && self.held.is_none() {
                self.held = Some((to_server, frame));
                return;
            }
            let dup = self.rng.chance(imp.dup_data);
            if dup {
                self.deliver(to_server, frame.clone());
            }
            self.deliver(to_server, frame);
            if let Some((dir, f)) = self.held.take() {
                self.deliver(dir, f);
            }
        } else {
            if self.rng.chance(imp.loss_ctrl) {
                return;
            }
            self.deliver(to_server, frame);
        }
    }

    fn pump_events(&mut self) {
        let now = self.now;
        while let Some(ev) = self.server.poll_event() {
            match &ev {
                Event::AuthRequest { username, .. } if self.answer_auth => {
                    let secret = self.users.get(username).cloned();
                    if self.answer_with_nt_hash {
                        let hash = secret.as_deref().map(mschap::nt_password_hash);
                        self.server
                            .provide_credential(now, hash.as_ref().map(Credential::NtHash));
                    } else {
                        self.server.provide_secret(now, secret.as_deref());
                    }
                }
                Event::Authenticated { .. } => self.server.set_peer_address(PEER_IP),
                _ => {}
            }
            self.server_events.push(ev);
        }
        while let Some(ev) = self.client.poll_event() {
            self.client_events.push(ev);
        }
    }

    /// Moves frames until nothing is in flight; returns whether anything moved.
    pub fn flush(&mut self) -> bool {
        let mut moved = false;
        for _ in 0..10_000 {
            let mut any = false;
            while let Some(f) = self.client.poll_transmit() {
                any = true;
                self.send(true, f);
            }
            while let Some(f) = self.server.poll_transmit() {
                any = true;
                self.send(false, f);
            }
            self.pump_events();
            if !any {
                break;
            }
            moved = true;
        }
        moved
    }

    /// Advances the clock to the next timer and runs it; false when no timer is pending.
    pub fn tick(&mut self) -> bool {
        let next = [self.client.poll_timeout(), self.server.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = next else { return false };
        if t > self.now {
            self.now = t;
        }
        let now = self.now;
        self.client.handle_timeout(now);
        self.server.handle_timeout(now);
        self.pump_events();
        true
    }

    /// Runs until `done` holds or `limit` of simulated time passes.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Pair) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            self.flush();
            if done(self) {
                return true;
            }
            if self.now >= end || !self.tick() {
                self.flush();
                return done(self);
            }
        }
    }

    pub fn both_up(&self) -> bool {
        self.client.is_up() && self.server.is_up()
    }

    pub fn bring_up(&mut self) -> bool {
        self.run_until(Duration::from_secs(120), |p| p.both_up())
    }

    pub fn server_down(&self) -> Option<&DownReason> {
        down_of(&self.server_events)
    }

    pub fn client_down(&self) -> Option<&DownReason> {
        down_of(&self.client_events)
    }

    /// Sends `n` datagrams each way through the engines; returns (sent, received) counts.
    pub fn exchange(&mut self, n: usize, len: usize) -> (usize, usize) {
        let before = (self.got_at_server.len(), self.got_at_client.len());
        for i in 0..n {
            let mut ip = vec![0u8; len.max(20)];
            ip[0] = 0x45;
            ip[4..8].copy_from_slice(&(i as u32).to_be_bytes());
            let mut out = Vec::new();
            self.client.encapsulate_ip(&ip, &mut out).unwrap();
            // A held Reset-Ack goes out ahead of the frame (`Ppp::encapsulate_ip`).
            while let Some(f) = self.client.poll_transmit() {
                self.send(true, f);
            }
            self.send(true, out);
            let mut out = Vec::new();
            ip[1] = 1;
            self.server.encapsulate_ip(&ip, &mut out).unwrap();
            while let Some(f) = self.server.poll_transmit() {
                self.send(false, f);
            }
            self.send(false, out);
            self.flush();
        }
        (
            2 * n,
            self.got_at_server.len() - before.0 + self.got_at_client.len() - before.1,
        )
    }
}

pub fn down_of(events: &[Event]) -> Option<&DownReason> {
    events.iter().find_map(|e| match e {
        Event::Down { reason } => Some(reason),
        _ => None,
    })
}

pub fn up_of(events: &[Event]) -> Option<(Ipv4Addr, Ipv4Addr, Vec<Ipv4Addr>, Encoding)> {
    events.iter().find_map(|e| match e {
        Event::Up {
            local,
            peer,
            dns,
            encoding,
        } => Some((*local, *peer, dns.clone(), *encoding)),
        _ => None,
    })
}
