//! IKEv1 handshake throughput of the responder: complete Main Mode + Quick Mode exchanges
//! (PSK, transport mode, no NAT) between the in-repo initiator and the responder, per DH
//! group. Only the time spent inside `Responder::handle_input` is counted (the initiator's
//! own DH work is the clients' cost, not the gateway's), so the figure is what one responder
//! — one core, as the data plane runs it — completes per second.
//!
//! `cargo run --release -p sluice-ike --example ike_bench [handshakes-per-group]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_ike::cipher::{AesKeyLen, Cipher};
use sluice_ike::dh::Group;
use sluice_ike::initiator::{Initiator, InitiatorConfig, InitiatorState, esp_proposal};
use sluice_ike::policy::Config;
use sluice_ike::prf::HashAlg;
use sluice_ike::responder::Responder;
use sluice_ike::sa::{AuthMethod, EspAuth, EspCipher, IkeTransform, Lifetime};
use zeroize::Zeroizing;

const PSK: &[u8] = b"benchmark pre-shared key";

fn initiator(n: u32, group: Group) -> Initiator {
    // Every client its own address (and so its own half-open budget).
    let ip = format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
    let sock = |port: u16| format!("{ip}:{port}").parse::<SocketAddr>().unwrap();
    Initiator::new(
        InitiatorConfig {
            psk: Zeroizing::new(PSK.to_vec()),
            ike: vec![IkeTransform {
                cipher: Cipher::AesCbc(AesKeyLen::Aes128),
                hash: HashAlg::Sha1,
                auth: AuthMethod::PreSharedKey,
                group,
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
            local: sock(500),
            local_natt: sock(4500),
            remote: "198.51.100.1:500".parse().unwrap(),
            remote_natt_port: 4500,
            nat_t: true,
            dpd: true,
            l2tp_port: 1701,
            retransmit: Duration::from_secs(10),
            aggressive: false,
            certificate: None,
            ca: None,
            unix_time: 0,
        },
        [(n % 251) as u8; 32],
    )
}

/// Runs `count` handshakes; returns the responder's busy time.
fn run(group: Group, count: u32) -> Duration {
    let mut resp = Responder::new(
        Config {
            psk: Some(Zeroizing::new(PSK.to_vec())),
            max_ike_sas: count as usize + 16,
            ..Config::default()
        },
        [7; 32],
    );
    let now = Instant::now();
    let mut busy = Duration::ZERO;
    for n in 0..count {
        let mut c = initiator(n, group);
        c.start(now);
        for _ in 0..16 {
            let mut moved = false;
            while let Some(t) = c.poll_transmit() {
                moved = true;
                let t0 = Instant::now();
                resp.handle_input(now, t.remote, t.local, &t.payload);
                busy += t0.elapsed();
            }
            while let Some(t) = resp.poll_transmit() {
                moved = true;
                c.handle_input(now, &t.payload);
            }
            while resp.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
        assert_eq!(c.state(), InitiatorState::Established, "{group:?}");
    }
    busy
}

fn main() {
    let count: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    println!(
        "IKEv1 Main Mode (PSK, aes128-sha1) + Quick Mode (aes128-sha1, no PFS), responder only, one core"
    );
    println!(
        "{:<10} {:>10} {:>14} {:>14}",
        "group", "handshakes", "ms/handshake", "handshakes/s"
    );
    for group in [
        Group::Modp1024,
        Group::Modp1536,
        Group::Modp2048,
        Group::Modp3072,
        Group::Modp4096,
        Group::Ecp256,
        Group::Ecp384,
    ] {
        // Bigger groups get fewer rounds so the run stays short.
        let n = match group {
            Group::Modp3072 => count / 2,
            Group::Modp4096 => count / 4,
            _ => count,
        }
        .max(4);
        let busy = run(group, n);
        let per = busy.as_secs_f64() / f64::from(n);
        println!(
            "{:<10} {:>10} {:>14.3} {:>14.0}",
            group.name(),
            n,
            per * 1e3,
            1.0 / per
        );
    }
}
