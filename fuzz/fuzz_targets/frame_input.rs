#![no_main]
//! Arbitrary frames into a server engine (first byte of each chunk picks an action).

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_ppp::{Ppp, ServerConfig};

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut ppp = Ppp::server(ServerConfig::default(), now, [7; 32]);
    // Frames are separated by 0x7E; a chunk starting with 0x00 advances time instead.
    for chunk in data.split(|&b| b == 0x7E) {
        let mut f = chunk.to_vec();
        match f.first() {
            Some(0) => {
                now += Duration::from_millis(1500);
                ppp.handle_timeout(now);
                ppp.provide_secret(now, Some(b"pw"));
                ppp.set_peer_address([10, 0, 0, 2].into());
            }
            _ => {
                let _ = ppp.handle_input(now, &mut f);
            }
        }
        while ppp.poll_transmit().is_some() {}
        while ppp.poll_event().is_some() {}
        let mut out = Vec::new();
        let _ = ppp.encapsulate_ip(&[0x45; 40], &mut out);
    }
});
