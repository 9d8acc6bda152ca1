#![no_main]
//! MPPE receive path (RFC 3078; stateless and stateful, 40/56/128-bit) next to a real sender.
//! Operations: a genuine packet (perhaps corrupted; an IPv4 packet with a valid header or
//! the input's bytes), packets lost on the way (the sender moves on), a forged packet near the
//! receiver's coherency count, and raw bytes with any count. A receiver that reports loss
//! gets the sender to flush (CCP Reset-Request, §8.2); a stateful one may instead recover the
//! gap from the next IPv4 header (`mppe/recover.rs`).
//! Invariants: no panic; a genuine packet the receiver accepts decrypts to what was sent;
//! unless a forged packet happened to decrypt to a valid protocol field (MPPE has no
//! integrity check), the receiver takes the sender's genuine packets again after losses and
//! forgeries (it resynchronizes).
//!
//! Key changes dominate the cost (a SHA-1 and three RC4 key schedules each): a raw packet with
//! a far coherency count costs the receiver up to 2,047 of them (§8.1, rolled back when the
//! packet turns out forged). So raw packets come only in inputs whose first octet has its
//! high nibble set (two at most), and at most 256 packets are lost per input (enough to
//! cross a stateful flag packet, §7.2): the fuzzer keeps its speed for the rest.

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::Ops;
use sluice_ppp::mppe::{KeyBits, MppeError, MppeRx, MppeTx, ones_complement_sum};

/// Raw packets (any coherency count) per input.
const MAX_RAW: u8 = 2;
/// Packets lost per input (a stateless receiver bridges up to 2,047, §8.1).
const MAX_LOST: u16 = 256;

/// An IPv4 packet of `len` octets (20..=276: the search for lost lengths works the same for
/// any size, and short packets keep the fuzzer fast) with a valid header checksum (RFC 791).
fn ipv4(len: usize, fill: u8) -> Vec<u8> {
    let len = len.clamp(20, 276);
    let mut p = vec![fill; len];
    p[..12].copy_from_slice(&[0x45, 0, (len >> 8) as u8, len as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
    p[12..20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    let sum = ones_complement_sum(&p[..20]);
    p[10..12].copy_from_slice(&(!sum).to_be_bytes());
    p
}

/// A protocol number PPP can carry (RFC 1661 §2: high octet even, low octet odd). Others are
/// ambiguous once encrypted: 0x2149 reads as the compressed field 0x21 followed by 0x49.
fn valid_protocol(protocol: u16) -> bool {
    protocol & 0x0100 == 0 && protocol & 1 == 1
}

/// Decrypts a genuine packet carrying `protocol` and `sent`; on loss the sender is asked to
/// flush. True when accepted (and then, for a valid protocol, it must decrypt to what was sent).
fn receive(rx: &mut MppeRx, tx: &mut MppeTx, p: &mut [u8], protocol: u16, sent: &[u8]) -> bool {
    match rx.decrypt(p) {
        Ok(d) => {
            if valid_protocol(protocol) {
                assert_eq!(
                    (d.protocol, d.data),
                    (protocol, sent),
                    "a genuine packet decrypted to something else"
                );
            }
            true
        }
        Err(MppeError::Lost { .. } | MppeError::Discarding) => {
            tx.reset_requested();
            false
        }
        Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let mode = ops.u8();
    let stateful = mode & 1 != 0;
    let bits = match (mode >> 1) & 3 {
        0 => KeyBits::B40,
        1 => KeyBits::B56,
        _ => KeyBits::B128,
    };
    let key = [mode; 16];
    let mut rx = MppeRx::new(key, bits, stateful);
    let mut tx = MppeTx::new(key, bits, stateful);
    let mut raw = 0;
    let mut lost = 0;
    let mut forged_accepted = false;
    let mut rounds = 0;
    while !ops.is_empty() && rounds < 16 {
        rounds += 1;
        let ctl = ops.u8();
        match ctl % 4 {
            0 => {
                // A genuine packet (an IPv4 protocol field or the input's), maybe corrupted.
                let protocol = if ctl & 4 != 0 { ops.u16() } else { 0x0021 };
                let data = if ctl & 16 != 0 {
                    ipv4(usize::from(ops.u8()) + 20, ctl)
                } else {
                    ops.short().to_vec()
                };
                let mut p = Vec::new();
                tx.encrypt(protocol, &data, &mut p);
                if ctl & 8 != 0 {
                    ops.mutate(&mut p, 2);
                    forged_accepted |= rx.decrypt(&mut p).is_ok();
                } else if !forged_accepted {
                    receive(&mut rx, &mut tx, &mut p, protocol, &data);
                } else {
                    let _ = rx.decrypt(&mut p);
                }
            }
            1 => {
                // Lost on the way: the sender moves on by 1..=64 packets.
                let n = u16::from(ctl >> 2) + 1;
                if lost + n > MAX_LOST {
                    continue;
                }
                lost += n;
                for i in 0..n {
                    let mut p = Vec::new();
                    tx.encrypt(0x0021, &ipv4(usize::from(ctl) + usize::from(i), 0), &mut p);
                }
            }
            2 => {
                // Forged: a header near the sender's count (flags from the input), any body.
                let count = (tx.ccount() + u16::from(ops.u8() & 0x1F)) % 4096;
                let flags = ops.u8() & 0xF0;
                let mut p = vec![flags | (count >> 8) as u8, count as u8];
                p.extend_from_slice(ops.short());
                forged_accepted |= rx.decrypt(&mut p).is_ok();
            }
            _ => {
                if mode & 0xF0 != 0xF0 || raw == MAX_RAW {
                    continue;
                }
                raw += 1;
                let mut p = ops.long(1600).to_vec();
                forged_accepted |= rx.decrypt(&mut p).is_ok();
            }
        }
    }
    // Resynchronization: a stateless receiver takes the next genuine packet; a stateful one
    // takes a flushed packet after at most one flag packet's worth (256) of packets.
    if forged_accepted {
        return;
    }
    let mut ok = false;
    let probe = ipv4(20, 0);
    for _ in 0..=256 {
        let mut p = Vec::new();
        tx.encrypt(0x0021, &probe, &mut p);
        if receive(&mut rx, &mut tx, &mut p, 0x0021, &probe) {
            ok = true;
            break;
        }
    }
    assert!(ok, "receiver never resynchronized");
});
