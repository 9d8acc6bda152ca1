#![no_main]
//! Arbitrary byte chunks and clock steps into a PAC control connection.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_pptp::{ControlConnection, ControlEvent, PacConfig};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let mut now = t0;
    let mut pac = ControlConnection::new(
        PacConfig {
            max_calls: 4,
            ..Default::default()
        },
        t0,
    );
    let mut rest = data;
    let mut next_local = 1u16;
    // Each round: [len][step] then `len` bytes of TCP input.
    while let [len, step, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, tail) = tail.split_at(n);
        rest = tail;
        now += Duration::from_secs(u64::from(*step));
        let _ = pac.handle_input(now, chunk);
        pac.handle_timeout(now);
        while let Some(ev) = pac.poll_event() {
            if let ControlEvent::CallRequested { peer_call_id, .. } = ev {
                let _ = pac.accept_call(now, peer_call_id, next_local);
                next_local = next_local.wrapping_add(1);
            }
        }
        while pac.poll_transmit().is_some() {}
        let _ = pac.poll_timeout();
        assert!(pac.calls().count() <= 4);
    }
});
