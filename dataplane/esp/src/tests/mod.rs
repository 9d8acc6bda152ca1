//! Unit tests. They live inside the crate so they can use the test hooks
//! (fixed IVs, a preset sequence counter) needed to reproduce published
//! packets byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

mod proptests;
mod sa;
mod udp;
mod vectors;

use crate::{AesKeyLen, Cipher, InboundSa, Integrity, OutboundSa, Suite};

/// Hex to bytes, ignoring whitespace.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len().is_multiple_of(2), "odd hex length");
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

pub(crate) const AES: [AesKeyLen; 3] = [AesKeyLen::Aes128, AesKeyLen::Aes192, AesKeyLen::Aes256];
pub(crate) const INTEGRITY: [Integrity; 5] = [
    Integrity::HmacMd5_96,
    Integrity::HmacSha1_96,
    Integrity::HmacSha256_128,
    Integrity::HmacSha384_192,
    Integrity::HmacSha512_256,
];

/// Every supported suite (23).
pub(crate) fn all_suites() -> Vec<Suite> {
    let mut v = Vec::new();
    for i in INTEGRITY {
        for k in AES {
            v.push(Suite::new(Cipher::AesCbc { key_len: k }, Some(i)).unwrap());
        }
        v.push(Suite::new(Cipher::TripleDesCbc, Some(i)).unwrap());
    }
    for k in AES {
        v.push(Suite::new(Cipher::AesGcm16 { key_len: k }, None).unwrap());
    }
    v
}

/// Deterministic KEYMAT of the right length (3DES key parts all differ).
pub(crate) fn keymat(suite: Suite) -> Vec<u8> {
    (0..suite.keymat_len()).map(|i| (i * 7 + 3) as u8).collect()
}

pub(crate) const SPI: u32 = 0xc0de_0042;

pub(crate) fn pair(suite: Suite) -> (OutboundSa, InboundSa) {
    let km = keymat(suite);
    (
        OutboundSa::new(SPI, suite, &km, [9; 32]).unwrap(),
        InboundSa::new(SPI, suite, &km, 1024).unwrap(),
    )
}
