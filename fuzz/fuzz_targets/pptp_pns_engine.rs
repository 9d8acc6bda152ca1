#![no_main]
//! The PNS (client) side of a PPTP control connection, facing a real PAC whose messages the
//! input may replace or corrupt. Each operation: pass the PAC's output through unchanged,
//! inject bytes, corrupt the PAC's next message, let time pass, or open/clear calls.
//! Invariants: no panic, bounded calls and output, nothing after the connection closed.

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::Ops;
use sluice_pptp::{ControlConnection, ControlEvent, PacConfig, Pns, PnsConfig, PnsEvent};

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let t0 = Instant::now();
    let mut now = t0;
    let mut pns = Pns::new(PnsConfig::default(), t0);
    let mut pac = ControlConnection::new(
        PacConfig {
            max_calls: 4,
            ..Default::default()
        },
        t0,
    );
    let mut next_local = 1u16;
    let mut closed = false;
    let mut rounds = 0;
    while !ops.is_empty() && rounds < 256 {
        rounds += 1;
        match ops.u8() % 8 {
            0 | 1 => {
                // Both directions unchanged.
                while let Some(b) = pns.poll_transmit() {
                    let _ = pac.handle_input(now, &b);
                }
                while let Some(b) = pac.poll_transmit() {
                    let _ = pns.handle_input(now, &b);
                }
            }
            2 => {
                let _ = pns.handle_input(now, ops.short());
            }
            3 => {
                // The PAC's next message, corrupted.
                if let Some(mut b) = pac.poll_transmit() {
                    ops.mutate(&mut b, 4);
                    let _ = pns.handle_input(now, &b);
                }
            }
            4 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 20);
                pns.handle_timeout(now);
                pac.handle_timeout(now);
            }
            5 => {
                let id = ops.u16();
                let _ = pns.open_call(now, id, u16::from(ops.u8()));
            }
            6 => match ops.u8() % 3 {
                0 => {
                    let _ = pns.clear_call(now, ops.u16());
                }
                1 => {
                    let _ = pns.set_link_info(now, ops.u16(), ops.u32(), ops.u32());
                }
                _ => pns.shutdown(now),
            },
            _ => {
                // The PAC's next message split at a point of the input's choosing.
                if let Some(b) = pac.poll_transmit() {
                    let at = usize::from(ops.u8()).min(b.len());
                    let _ = pns.handle_input(now, &b[..at]);
                    let _ = pns.handle_input(now, &b[at..]);
                }
            }
        }
        while let Some(ev) = pac.poll_event() {
            if let ControlEvent::CallRequested { peer_call_id, .. } = ev {
                let _ = pac.accept_call(now, peer_call_id, next_local);
                next_local = next_local.wrapping_add(1).max(1);
            }
        }
        while let Some(ev) = pns.poll_event() {
            assert!(!closed, "event after Closed: {ev:?}");
            if let PnsEvent::Closed { .. } = ev {
                closed = true;
            }
        }
        if closed {
            assert!(pns.is_closed());
            assert_eq!(pns.call_count(), 0);
        }
        assert!(pns.call_count() <= 256);
        let _ = pns.poll_timeout();
    }
});
