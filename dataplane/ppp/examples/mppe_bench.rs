//! MPPE throughput: `cargo run --release -p sluice-ppp --example mppe_bench`.
//!
//! Prints packets/s and MB/s for 64 B and 1400 B datagrams, stateless and stateful, for
//! encrypt (MppeTx), decrypt (MppeRx), the full engine path (encapsulate_ip + handle_input),
//! and raw `rc4` crate throughput with a per-packet key schedule for comparison; and what a
//! forged stateless packet with a far coherency count costs the receiver (RFC 3078 §8.1: up
//! to 2,047 key changes, rolled back when its inner protocol field turns out invalid).

use std::time::{Duration, Instant};

use rc4::{KeyInit, StreamCipher};
use sluice_ppp::mppe::{KeyBits, MppeRx, MppeTx, Rc4};

const RUN: Duration = Duration::from_millis(700);

fn report(label: &str, size: usize, n: u64, dt: Duration) {
    let pps = n as f64 / dt.as_secs_f64();
    println!(
        "{label:<44} {size:>5} B  {:>10.0} pkts/s  {:>8.1} MB/s",
        pps,
        pps * size as f64 / 1e6
    );
}

fn bench(mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    (n, start.elapsed())
}

fn main() {
    let key = [0x5Au8; 16];
    for size in [64usize, 1400] {
        let mut ip = vec![0u8; size];
        ip[0] = 0x45;
        for stateful in [false, true] {
            let mode = if stateful { "stateful" } else { "stateless" };
            let mut tx = MppeTx::new(key, KeyBits::B128, stateful);
            let mut out = Vec::with_capacity(size + 16);
            let (n, dt) = bench(|| {
                out.clear();
                tx.encrypt(0x0021, &ip, &mut out);
            });
            report(&format!("MPPE-128 encrypt ({mode})"), size, n, dt);

            // Pre-encrypt a batch, then time decryption (copy + decrypt in place).
            let mut tx = MppeTx::new(key, KeyBits::B128, stateful);
            let mut rx = MppeRx::new(key, KeyBits::B128, stateful);
            let batch: Vec<Vec<u8>> = (0..4000)
                .map(|_| {
                    let mut o = Vec::new();
                    tx.encrypt(0x0021, &ip, &mut o);
                    o
                })
                .collect();
            let mut buf = vec![0u8; size + 16];
            let start = Instant::now();
            let mut ok = 0u64;
            for p in &batch {
                let b = &mut buf[..p.len()];
                b.copy_from_slice(p);
                if rx.decrypt(b).is_ok() {
                    ok += 1;
                }
            }
            report(
                &format!("MPPE-128 decrypt ({mode})"),
                size,
                ok,
                start.elapsed(),
            );
        }
        forged_far_count(key, size);
        let mut rc = Rc4::new(&key);
        let mut buf = ip.clone();
        let (n, dt) = bench(|| {
            rc.set_key(&key);
            rc.apply(&mut buf);
        });
        report("sluice Rc4 (key schedule + apply)", size, n, dt);
        let (n, dt) = bench(|| {
            let mut c = rc4::Rc4::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
            c.apply_keystream(&mut buf);
        });
        report("rc4 crate (new_from_slice + apply)", size, n, dt);
        let mut c = rc4::Rc4::new_from_slice(&key).unwrap_or_else(|_| unreachable!());
        let (n, dt) = bench(|| c.apply_keystream(&mut buf));
        report("rc4 crate (apply only)", size, n, dt);
    }
}

/// A stateless receiver facing forged packets whose coherency count is 2,047 ahead (the
/// most it accepts): each costs the key changes up to that count, then a rollback.
fn forged_far_count(key: [u8; 16], size: usize) {
    let mut rx = MppeRx::new(key, KeyBits::B128, false);
    let mut forged = vec![0x5Cu8; size + 4];
    // Encrypted + flushed, count 2047 ahead of the receiver's start (4095): 2046.
    forged[0] = 0x90 | 0x07;
    forged[1] = 0xFE;
    let mut buf = forged.clone();
    let (n, dt) = bench(|| {
        buf.copy_from_slice(&forged);
        let _ = rx.decrypt(&mut buf);
    });
    report("forged far-count packet (stateless)", size, n, dt);
}
