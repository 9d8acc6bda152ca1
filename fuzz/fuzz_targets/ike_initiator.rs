#![no_main]
//! The IKE initiator (the in-repo client's) facing a real responder whose datagrams the input
//! may replace or corrupt. Operations: pass datagrams through unchanged (both ways), inject a
//! datagram, corrupt the responder's next one, let time pass, start Quick Mode, DPD, delete.
//! Main Mode or Aggressive Mode and the proposals come from the first octet (ECP-256 unless
//! MODP-1024 is asked for). For the encrypted phases with chosen plaintext see
//! `ike_initiator_phases`. Invariants: no panic, bounded output.

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

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let sel = ops.u8();
    let sel2 = ops.u8();
    let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let client: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let pfs = (sel2 & 2 != 0).then_some(Group::Ecp256);
    let mut now = Instant::now();
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
    let mut resp = Responder::new(
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
    let mut rounds = 0;
    while !ops.is_empty() && rounds < 64 {
        rounds += 1;
        match ops.u8() % 8 {
            0 | 1 => {
                while let Some(t) = init.poll_transmit() {
                    resp.handle_input(now, t.remote, t.local, &t.payload);
                }
                while let Some(t) = resp.poll_transmit() {
                    init.handle_input(now, &t.payload);
                }
            }
            2 => init.handle_input(now, ops.long(2048)),
            3 => {
                if let Some(t) = resp.poll_transmit() {
                    let mut b = t.payload;
                    ops.mutate(&mut b, 4);
                    init.handle_input(now, &b);
                }
            }
            4 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 50);
                init.handle_timeout(now);
                resp.handle_timeout(now);
            }
            5 => init.start_quick_mode(now),
            6 => init.send_dpd(now, ops.u32()),
            _ => init.delete(now),
        }
        while init.poll_event().is_some() {}
        while resp.poll_event().is_some() {}
        let _ = init.poll_timeout();
    }
    let mut n = 0;
    while let Some(t) = init.poll_transmit() {
        assert!(t.payload.len() <= 16 * 1024 + 4);
        n += 1;
        assert!(n < 1024);
    }
});
