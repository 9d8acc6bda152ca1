//! Feeds arbitrary bytes to `InboundSa::decapsulate` for every suite, and to
//! the UDP/4500 classifier.
//!
//! The first input octet picks the suite and whether the SA's SPI is written
//! over the packet's first four octets (so the checks past the SPI are
//! reached). Every so often the input is instead used as the payload of a
//! genuine packet which is then corrupted by the remaining octets, to reach
//! the post-ICV code (decryption, padding, window update).
//!
//! Invariants: no panic; the returned payload lies within the buffer at the
//! reported offset; garbage is never accepted; genuine packets round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_esp::udp_encap::{Udp4500Payload, classify};
use sluice_esp::{AesKeyLen, Cipher, InboundSa, Integrity, OutboundSa, Suite};

const SPI: u32 = 0x0102_0304;

fn suites() -> Vec<Suite> {
    let mut v = Vec::new();
    for i in [
        Integrity::HmacMd5_96,
        Integrity::HmacSha1_96,
        Integrity::HmacSha256_128,
        Integrity::HmacSha384_192,
        Integrity::HmacSha512_256,
    ] {
        for k in [AesKeyLen::Aes128, AesKeyLen::Aes192, AesKeyLen::Aes256] {
            v.extend(Suite::new(Cipher::AesCbc { key_len: k }, Some(i)));
        }
        v.extend(Suite::new(Cipher::TripleDesCbc, Some(i)));
    }
    for k in [AesKeyLen::Aes128, AesKeyLen::Aes192, AesKeyLen::Aes256] {
        v.extend(Suite::new(Cipher::AesGcm16 { key_len: k }, None));
    }
    v
}

fn keymat(suite: Suite, tweak: usize) -> Vec<u8> {
    (0..suite.keymat_len())
        .map(|i| (i * 13 + tweak) as u8)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    match classify(rest) {
        Udp4500Payload::Ike(ike) => assert_eq!(ike.len() + 4, rest.len()),
        Udp4500Payload::Esp(esp) => assert_eq!(esp, rest),
        Udp4500Payload::Keepalive => assert_eq!(rest, [0xFF]),
        Udp4500Payload::Malformed => {}
    }

    let suites = suites();
    let Some(&suite) = suites.get(usize::from(ctl >> 3) % suites.len()) else {
        return;
    };
    if ctl & 0b11 == 0b11 {
        // Genuine packets use one key...
        let km = keymat(suite, 1);
        let (Ok(mut tx), Ok(mut rx)) = (
            OutboundSa::new(SPI, suite, &km, [7; 32]),
            InboundSa::new(SPI, suite, &km, 1024),
        ) else {
            panic!("SA construction failed");
        };
        // A genuine packet carrying `rest`, then corrupted by `rest` itself.
        let mut packet = Vec::new();
        tx.encapsulate(17, rest, &mut packet).expect("encapsulate");
        let pristine = packet.clone();
        for pair in rest.chunks_exact(2).take(4) {
            if let [pos, x] = *pair {
                let i = usize::from(pos) % packet.len();
                packet[i] ^= x;
            }
        }
        let changed = packet != pristine;
        let len = packet.len();
        let result = rx.decapsulate(&mut packet).map(|d| {
            assert_eq!(d.payload_offset, suite.header_len());
            assert!(d.payload_offset + d.payload.len() + suite.icv_len() + 2 <= len);
            d.payload.to_vec()
        });
        let mut again = pristine.clone();
        let second = rx.decapsulate(&mut again).map(|d| d.payload.to_vec());
        if changed {
            assert!(result.is_err(), "corrupted packet accepted");
            // A refused packet must not have moved the replay window.
            assert_eq!(
                second.as_deref(),
                Ok(rest),
                "genuine packet refused after a forgery"
            );
        } else {
            assert_eq!(result.as_deref(), Ok(rest), "genuine packet refused");
            assert!(second.is_err(), "replay accepted");
        }
        return;
    }

    // ...arbitrary bytes are checked against another, so that genuine packets
    // the fuzzer may have learnt from the comparisons above cannot verify:
    // an accepted packet here would be a forgery.
    let Ok(mut rx) = InboundSa::new(SPI, suite, &keymat(suite, 5), 1024) else {
        panic!("SA construction failed");
    };
    let mut packet = rest.to_vec();
    if ctl & 0b100 != 0 && packet.len() >= 4 {
        packet[..4].copy_from_slice(&SPI.to_be_bytes());
    }
    let len = packet.len();
    match rx.decapsulate(&mut packet) {
        Ok(got) => {
            let (offset, plen) = (got.payload_offset, got.payload.len());
            assert!(offset + plen <= len);
            panic!("arbitrary bytes accepted (offset {offset}, len {plen})");
        }
        Err(e) => {
            let _ = e.label();
        }
    }
});
