//! Property tests: decapsulation never panics and never accepts garbage;
//! round trips hold for arbitrary payloads.

use proptest::prelude::*;

use super::{SPI, all_suites, pair};
use crate::udp_encap::{Udp4500Payload, classify};
use crate::{DecapError, Suite};

fn suite() -> impl Strategy<Value = Suite> {
    proptest::sample::select(all_suites())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes, with the right SPI half of the time so the later
    /// checks are reached, never panic and are never accepted.
    #[test]
    fn decapsulate_arbitrary_bytes(suite in suite(), mut bytes in proptest::collection::vec(any::<u8>(), 0..300), right_spi in any::<bool>()) {
        let (_, mut rx) = pair(suite);
        if right_spi && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(&SPI.to_be_bytes());
        }
        let len = bytes.len();
        let r = rx.decapsulate(&mut bytes).map(|d| d.payload.len());
        prop_assert!(r.is_err());
        // Without the right SPI nothing gets as far as the cryptography.
        if !right_spi || len < 8 {
            prop_assert!(matches!(r, Err(DecapError::WrongSpi { .. } | DecapError::Truncated)), "{:?}", r);
        }
        let _ = classify(&bytes);
    }

    /// Valid packets with random corruption: never a panic, and every
    /// change to the authenticated part is detected.
    #[test]
    fn decapsulate_corrupted_packets(suite in suite(), payload in proptest::collection::vec(any::<u8>(), 0..200),
                                      edits in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4)) {
        let (mut tx, mut rx) = pair(suite);
        let mut p = Vec::new();
        tx.encapsulate(17, &payload, &mut p).unwrap();
        let original = p.clone();
        for (pos, x) in edits {
            let i = pos % p.len();
            p[i] ^= x;
        }
        // Two edits of one octet can cancel out (x ^ x = 0): that packet is not corrupted.
        prop_assume!(p != original);
        prop_assert!(rx.decapsulate(&mut p).is_err());
    }

    #[test]
    fn round_trip(suite in suite(), payload in proptest::collection::vec(any::<u8>(), 0..2000), nh in any::<u8>()) {
        prop_assume!(nh != crate::NEXT_HEADER_DUMMY);
        let (mut tx, mut rx) = pair(suite);
        let mut p = Vec::new();
        tx.encapsulate(nh, &payload, &mut p).unwrap();
        prop_assert_eq!(p.len(), suite.encapsulated_len(payload.len()));
        let got = rx.decapsulate(&mut p).unwrap();
        prop_assert_eq!(got.next_header, nh);
        prop_assert_eq!(&got.payload[..], &payload[..]);
    }

    #[test]
    fn classify_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        match classify(&bytes) {
            Udp4500Payload::Keepalive => prop_assert_eq!(&bytes[..], &[0xFF][..]),
            Udp4500Payload::Ike(ike) => {
                prop_assert_eq!(&bytes[..4], &[0, 0, 0, 0][..]);
                prop_assert_eq!(ike, &bytes[4..]);
            }
            Udp4500Payload::Esp(esp) => {
                prop_assert!(esp.len() >= 8);
                prop_assert_ne!(&bytes[..4], &[0, 0, 0, 0][..]);
            }
            Udp4500Payload::Malformed => {}
        }
    }
}
