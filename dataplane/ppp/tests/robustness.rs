//! Random and mutated frames into both roles in every phase: no panic, bounded output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::time::Duration;

use common::*;
use sluice_ppp::*;

use AuthProto::*;
use EncryptionPolicy::*;

const PREFIXES: &[&[u8]] = &[
    &[0xFF, 0x03, 0xC0, 0x21],
    &[0xFF, 0x03, 0xC0, 0x23],
    &[0xFF, 0x03, 0xC2, 0x23],
    &[0xFF, 0x03, 0x80, 0x21],
    &[0xFF, 0x03, 0x80, 0xFD],
    &[0xFF, 0x03, 0x00, 0xFD],
    &[0xFF, 0x03, 0x00, 0x21],
    &[0xC0, 0x21],
    &[0x21],
    &[0xFD],
    &[0xFF, 0x03, 0x80, 0x57],
    &[],
];

fn random_frame(rng: &mut XorShift, log: &[(bool, Vec<u8>)]) -> Vec<u8> {
    match rng.next() % 4 {
        0 if !log.is_empty() => {
            // Mutate a real frame.
            let mut f = log[(rng.next() as usize) % log.len()].1.clone();
            let flips = 1 + rng.next() % 4;
            for _ in 0..flips {
                if f.is_empty() {
                    break;
                }
                let i = (rng.next() as usize) % f.len();
                f[i] ^= 1 << (rng.next() % 8);
            }
            if rng.chance(200) {
                let cut = (rng.next() as usize) % (f.len() + 1);
                f.truncate(cut);
            }
            if rng.chance(100) {
                let n = (rng.next() % 40) as usize;
                f.extend(rng.bytes(n));
            }
            f
        }
        1 if !log.is_empty() => {
            // Replay a real frame unchanged (duplicates, out of phase).
            log[(rng.next() as usize) % log.len()].1.clone()
        }
        _ => {
            // Valid-looking header + random control packet or body.
            let mut f = PREFIXES[(rng.next() as usize) % PREFIXES.len()].to_vec();
            let code = (rng.next() % 17) as u8;
            let id = rng.next() as u8;
            let body_len = (rng.next() % 64) as usize;
            let mut body = rng.bytes(body_len);
            if rng.chance(700) && body.len() >= 2 {
                // Make some options well-formed.
                body[1] = (2 + rng.next() % (body.len() as u64 - 1)) as u8;
            }
            let len = if rng.chance(800) {
                body_len + 4
            } else {
                rng.next() as usize % 80
            };
            f.push(code);
            f.push(id);
            f.extend_from_slice(&(len as u16).to_be_bytes());
            f.extend(body);
            f
        }
    }
}

/// Feeds `n` random frames to one side of `p`, checking bounds.
fn hammer(p: &mut Pair, to_server: bool, n: usize, rng: &mut XorShift) {
    let log = p.log.clone();
    for i in 0..n {
        let mut f = random_frame(rng, &log);
        let now = p.now;
        let side = if to_server {
            &mut p.server
        } else {
            &mut p.client
        };
        let _ = side.handle_input(now, &mut f);
        if i % 50 == 0 {
            p.now += Duration::from_millis(700);
            let now = p.now;
            let side = if to_server {
                &mut p.server
            } else {
                &mut p.client
            };
            side.handle_timeout(now);
            if side.phase() == Phase::Authenticate {
                match rng.next() % 3 {
                    0 => side.provide_secret(now, Some(b"s3cret")),
                    1 => {
                        let hash = mschap::nt_password_hash(b"s3cret");
                        side.provide_credential(now, Some(Credential::NtHash(&hash)));
                    }
                    _ => side.provide_secret(now, None),
                }
            }
            side.set_peer_address(PEER_IP);
        }
        let side = if to_server {
            &mut p.server
        } else {
            &mut p.client
        };
        let mut frames = 0;
        while side.poll_transmit().is_some() {
            frames += 1;
        }
        assert!(frames <= 64, "unbounded output: {frames}");
        let mut events = 0;
        while side.poll_event().is_some() {
            events += 1;
        }
        assert!(events <= 64);
        let mut out = Vec::new();
        let _ = side.encapsulate_ip(&[0x45; 60], &mut out);
        if let Some(t) = side.poll_timeout() {
            assert!(t >= p.now - Duration::from_secs(3600));
        }
    }
}

fn fresh(_: &Pair) -> bool {
    true
}
fn past_lcp(p: &Pair) -> bool {
    p.server.phase() != Phase::Establish
}
fn network(p: &Pair) -> bool {
    p.server.phase() == Phase::Network || p.both_up()
}
fn running(p: &Pair) -> bool {
    p.both_up()
}
const PHASES: [fn(&Pair) -> bool; 4] = [fresh, past_lcp, network, running];

#[test]
fn random_frames_into_both_roles_in_every_phase() {
    let mut rng = XorShift(0xDEAD_BEEF_1234_5678);
    let combos = [
        (MsChapV2, Require, Require, false),
        (MsChapV1, Prefer, Allow, false),
        (MsChapV2, Require, Require, true),
        (ChapMd5, Prefer, Prefer, false),
        (Pap, Allow, Deny, false),
    ];
    for (k, (auth, sp, cp, stateful)) in combos.into_iter().enumerate() {
        for (ph, reach) in PHASES.iter().enumerate() {
            for to_server in [true, false] {
                let mut s = server_cfg(vec![auth], sp);
                let mut c = client_cfg(vec![auth], cp, "s3cret");
                if stateful {
                    s.mppe.stateful = StatefulMode::Allow;
                    c.mppe.stateful = StatefulMode::Prefer;
                }
                c.keepalive = Some(Duration::from_secs(5));
                let mut p = Pair::new(s, c, (k * 10 + ph) as u8);
                p.run_until(Duration::from_secs(60), reach);
                if p.both_up() {
                    p.exchange(5, 80);
                }
                hammer(&mut p, to_server, 1500, &mut rng);
                // Timers keep working and eventually settle or stay bounded.
                for _ in 0..200 {
                    if !p.tick() {
                        break;
                    }
                    p.flush();
                }
            }
        }
    }
}

#[test]
fn pure_noise_into_fresh_engines() {
    let mut rng = XorShift(0x0123_4567_89AB_CDEF);
    for seed in 0..4u8 {
        let mut p = Pair::new(
            server_cfg(vec![MsChapV2, Pap], Prefer),
            client_cfg(vec![MsChapV2, Pap], Prefer, "s3cret"),
            seed,
        );
        for _ in 0..3000 {
            let len = (rng.next() % 200) as usize;
            let mut f = rng.bytes(len);
            let now = p.now;
            let _ = p.server.handle_input(now, &mut f);
            let mut f = rng.bytes(len);
            let _ = p.client.handle_input(now, &mut f);
            while p.server.poll_transmit().is_some() {}
            while p.client.poll_transmit().is_some() {}
        }
        // They can still negotiate afterwards if not dead.
        if p.server.phase() != Phase::Dead && p.client.phase() != Phase::Dead {
            assert!(p.bring_up());
        }
    }
}
