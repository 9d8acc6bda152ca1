#![no_main]
//! Arbitrary message sequences into the responder: the input is split into datagrams
//! (2-octet length prefixes), each delivered from one of a few client addresses on port 500 or
//! the NAT-T port, with time advancing between them; timers run after each one. Invariants:
//! no panic, bounded replies, and shutdown leaves no SA behind.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_ike::policy::Config;
use sluice_ike::responder::Responder;

fuzz_target!(|data: &[u8]| {
    let cfg = Config {
        psk: Some(b"fuzz".to_vec().into()),
        ..Config::default()
    };
    let mut r = Responder::new(cfg, [7; 32]);
    let mut now = Instant::now();
    let gw500: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let gw4500: SocketAddr = "198.51.100.1:4500".parse().unwrap();
    let mut rest = data;
    let mut n = 0u32;
    while let Some((&[a, b], tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes([a & 0x3f, b]));
        let (msg, tail) = tail.split_at(len.min(tail.len()));
        let client: SocketAddr = format!("192.0.2.{}:{}", 1 + (a >> 6), 500 + u16::from(b & 1))
            .parse()
            .unwrap();
        let local = if b & 2 == 0 { gw500 } else { gw4500 };
        r.handle_input(now, local, client, msg);
        while let Some(t) = r.poll_transmit() {
            assert!(t.payload.len() <= 16 * 1024 + 4);
        }
        while r.poll_event().is_some() {}
        now += Duration::from_millis(u64::from(b) * 37);
        r.handle_timeout(now);
        n += 1;
        if n > 64 {
            break;
        }
        rest = tail;
    }
    r.shutdown();
    while r.poll_transmit().is_some() {}
    assert_eq!(r.ike_sa_count(), 0);
});
