//! KEYMAT splitting (RFC 2409 §5.5: the encryption key first, then the
//! authentication key; RFC 4106 §8.1: the AES-GCM key is followed by the
//! 4-octet salt) and SPI / key sanity checks.

use subtle::ConstantTimeEq;

use crate::error::KeyError;
use crate::suite::{Cipher, Integrity, Suite};

pub(crate) enum SplitKeys<'a> {
    Cbc {
        enc: &'a [u8],
        integrity: Integrity,
        integ_key: &'a [u8],
    },
    Gcm {
        key: &'a [u8],
        salt: [u8; 4],
    },
}

/// SPI 0 is reserved for local use, 1..=255 by IANA (RFC 4303 §2.1).
pub(crate) const fn check_spi(spi: u32) -> Result<(), KeyError> {
    if spi <= 255 {
        Err(KeyError::ReservedSpi(spi))
    } else {
        Ok(())
    }
}

pub(crate) fn split_keymat(suite: Suite, keymat: &[u8]) -> Result<SplitKeys<'_>, KeyError> {
    let wrong = KeyError::KeymatLength {
        expected: suite.keymat_len(),
        actual: keymat.len(),
    };
    if keymat.len() != suite.keymat_len() {
        return Err(wrong);
    }
    let key_len = suite.cipher().key_len();
    let (key, rest) = keymat.split_at_checked(key_len).ok_or(wrong)?;
    match (suite.cipher(), suite.integrity()) {
        (Cipher::AesGcm16 { .. }, None) => {
            let salt = <[u8; 4]>::try_from(rest).map_err(|_| wrong)?;
            Ok(SplitKeys::Gcm { key, salt })
        }
        (cipher, Some(integrity)) => {
            if cipher == Cipher::TripleDesCbc {
                check_tdes_key(key)?;
            }
            Ok(SplitKeys::Cbc {
                enc: key,
                integrity,
                integ_key: rest,
            })
        }
        // `Suite::new` makes the other combinations unrepresentable.
        _ => Err(wrong),
    }
}

/// DES-EDE3 with K1 = K2 or K2 = K3 is single DES.
fn check_tdes_key(key: &[u8]) -> Result<(), KeyError> {
    let mut parts = key.chunks_exact(8);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(k1), Some(k2), Some(k3)) => {
            // Parity bits (the low bit of each octet) carry no key material.
            let eq = |a: &[u8], b: &[u8]| {
                let strip = |x: &[u8]| {
                    let mut v = [0u8; 8];
                    for (d, s) in v.iter_mut().zip(x) {
                        *d = s & 0xfe;
                    }
                    v
                };
                bool::from(strip(a).ct_eq(&strip(b)))
            };
            if eq(k1, k2) || eq(k2, k3) {
                Err(KeyError::WeakTripleDesKey)
            } else {
                Ok(())
            }
        }
        _ => Err(KeyError::WeakTripleDesKey),
    }
}
