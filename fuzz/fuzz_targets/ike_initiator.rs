#![no_main]
//! The IKE initiator (the in-repo client's) facing a real responder whose datagrams the input
//! may replace or corrupt. Operations: pass datagrams through unchanged (both ways), inject a
//! datagram, corrupt the responder's next one, let time pass, start Quick Mode, DPD, delete.
//! Main Mode or Aggressive Mode and the proposals come from the first octet (ECP-256 unless
//! MODP-1024 is asked for). For the encrypted phases with chosen plaintext see
//! `ike_initiator_phases`. Invariants: no panic, bounded output.
//!
//! Each exchange costs both engines Diffie-Hellman operations, so the state after an input's
//! leading pass-through operations (the undisturbed handshake so far) is made once per
//! selector pair and count and cloned (both engines are `Clone` under `cfg(fuzzing)`, their
//! RNG seeds fixed): the fuzzer spends its time on what follows.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::Ops;
use sluice_fuzz::ike_peer::ike_transform;
use sluice_ike::cipher::AesKeyLen;
use sluice_ike::dh::Group;
use sluice_ike::initiator::{Initiator, InitiatorConfig, esp_proposal};
use sluice_ike::policy::Config;
use sluice_ike::responder::Responder;
use sluice_ike::sa::{EspAuth, EspCipher};

/// The two engines and the clock.
#[derive(Clone)]
struct Pair {
    init: Initiator,
    resp: Responder,
    now: Instant,
}

/// Leading pass-through operations whose result is cached (Main Mode, Quick Mode and more).
const MAX_PREFIX: u8 = 6;
/// Cached states at most.
const MAX_SNAPSHOTS: usize = 8192;

thread_local! {
    static PREFIX: RefCell<HashMap<(u8, u8, u8), Pair>> = RefCell::new(HashMap::new());
}

fn start(sel: u8, sel2: u8) -> Pair {
    let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let client: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let pfs = (sel2 & 2 != 0).then_some(Group::Ecp256);
    let now = Instant::now();
    let mut init = Initiator::new(
        InitiatorConfig {
            psk: b"fuzz".to_vec().into(),
            ike: vec![ike_transform(sel)],
            esp: vec![esp_proposal(
                EspCipher::AesCbc(AesKeyLen::Aes128),
                Some(EspAuth::HmacSha1),
                pfs,
            )],
            local: client,
            local_natt: "192.0.2.1:4500".parse().unwrap(),
            remote: gw,
            remote_natt_port: 4500,
            nat_t: sel2 & 4 != 0,
            dpd: sel2 & 8 != 0,
            l2tp_port: 1701,
            retransmit: Duration::from_secs(2),
            aggressive: sel2 & 1 != 0,
            certificate: None,
            ca: None,
            unix_time: 0,
        },
        [sel; 32],
    );
    let resp = Responder::new(
        Config {
            psk: Some(
                if sel2 & 0x10 != 0 {
                    b"wrong".to_vec()
                } else {
                    b"fuzz".to_vec()
                }
                .into(),
            ),
            allow_aggressive: true,
            ..Config::default()
        },
        [sel2; 32],
    );
    init.start(now);
    Pair { init, resp, now }
}

/// The state after `k` pass-through operations, from the cache when it is there.
fn prefix(sel: u8, sel2: u8, k: u8) -> Pair {
    if let Some(p) = PREFIX.with(|c| c.borrow().get(&(sel, sel2, k)).cloned()) {
        return p;
    }
    let p = if k == 0 {
        start(sel, sel2)
    } else {
        let mut p = prefix(sel, sel2, k - 1);
        step(&mut p, 0, &mut Ops::new(&[]));
        p
    };
    PREFIX.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < MAX_SNAPSHOTS {
            c.insert((sel, sel2, k), p.clone());
        }
    });
    p
}

/// One operation.
fn step(p: &mut Pair, op: u8, ops: &mut Ops) {
    let Pair { init, resp, now } = p;
    match op % 8 {
        0 | 1 => {
            while let Some(t) = init.poll_transmit() {
                resp.handle_input(*now, t.remote, t.local, &t.payload);
            }
            while let Some(t) = resp.poll_transmit() {
                init.handle_input(*now, &t.payload);
            }
        }
        2 => init.handle_input(*now, ops.long(2048)),
        3 => {
            if let Some(t) = resp.poll_transmit() {
                let mut b = t.payload;
                ops.mutate(&mut b, 4);
                init.handle_input(*now, &b);
            }
        }
        4 => {
            *now += Duration::from_millis(u64::from(ops.u16()) * 50);
            init.handle_timeout(*now);
            resp.handle_timeout(*now);
        }
        5 => init.start_quick_mode(*now),
        6 => init.send_dpd(*now, ops.u32()),
        _ => init.delete(*now),
    }
    while init.poll_event().is_some() {}
    while resp.poll_event().is_some() {}
    let _ = init.poll_timeout();
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    // Bits 4–5 of `sel` and 5–7 of `sel2` choose nothing.
    let sel = ops.u8() & 0xCF;
    let sel2 = ops.u8() & 0x1F;
    let mut k = 0;
    let mut next = None;
    while k < MAX_PREFIX && !ops.is_empty() {
        let op = ops.u8();
        if op % 8 > 1 {
            next = Some(op);
            break;
        }
        k += 1;
    }
    let mut p = prefix(sel, sel2, k);
    let mut rounds = u32::from(k);
    // A new Quick Mode costs both engines DH operations with PFS: at most two per input.
    let mut quick_modes = if sel2 & 2 != 0 { 2u8 } else { u8::MAX };
    while let Some(op) = next.take().or_else(|| (!ops.is_empty()).then(|| ops.u8())) {
        if rounds == 64 {
            break;
        }
        rounds += 1;
        if op % 8 == 5 {
            if quick_modes == 0 {
                continue;
            }
            quick_modes -= 1;
        }
        step(&mut p, op, &mut ops);
    }
    let mut n = 0;
    while let Some(t) = p.init.poll_transmit() {
        assert!(t.payload.len() <= 16 * 1024 + 4);
        n += 1;
        assert!(n < 1024);
    }
});
