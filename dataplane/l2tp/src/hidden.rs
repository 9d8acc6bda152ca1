//! Hidden AVP values (RFC 2661 §4.3).
//!
//! The cleartext value is wrapped in the Hidden AVP Subformat (2-octet Length of Original
//! Value, the value, optional padding) and XORed 16 octets at a time with
//! `b1 = MD5(Attribute Type (2 octets) ‖ secret ‖ Random Vector)`, then
//! `bi = MD5(secret ‖ c(i-1))` where `c(i-1)` is the previous ciphertext block. A short last
//! block is XORed with the first octets of its hash only; the AVP length is not padded to 16.
//! The Random Vector is the value of the last Random Vector AVP before the hidden AVP.

use md5::{Digest as _, Md5};

use crate::avp::MAX_VALUE_LEN;
use crate::error::ParseError;

fn xor_stream(attribute: u16, secret: &[u8], random_vector: &[u8], data: &mut [u8], hiding: bool) {
    let mut h = Md5::new();
    h.update(attribute.to_be_bytes());
    h.update(secret);
    h.update(random_vector);
    let mut b: [u8; 16] = h.finalize().into();
    for chunk in data.chunks_mut(16) {
        let mut cipher = [0u8; 16];
        for ((d, k), c) in chunk.iter_mut().zip(b.iter()).zip(cipher.iter_mut()) {
            if hiding {
                *d ^= k;
                *c = *d;
            } else {
                *c = *d;
                *d ^= k;
            }
        }
        let mut h = Md5::new();
        h.update(secret);
        h.update(cipher.get(..chunk.len()).unwrap_or_default());
        b = h.finalize().into();
    }
}

/// Hides `value` of AVP `attribute`: returns the hidden Attribute Value (subformat XORed).
/// `padding` octets (random, chosen by the caller) are appended to obscure the length; the
/// result is cut to [`MAX_VALUE_LEN`].
pub fn hide(
    attribute: u16,
    secret: &[u8],
    random_vector: &[u8],
    value: &[u8],
    padding: &[u8],
) -> Vec<u8> {
    let value = value
        .get(..value.len().min(MAX_VALUE_LEN - 2))
        .unwrap_or_default();
    let mut sub = Vec::with_capacity(2 + value.len() + padding.len());
    sub.extend_from_slice(&(value.len() as u16).to_be_bytes());
    sub.extend_from_slice(value);
    sub.extend_from_slice(padding);
    sub.truncate(MAX_VALUE_LEN);
    xor_stream(attribute, secret, random_vector, &mut sub, true);
    sub
}

/// Recovers the cleartext value of a hidden AVP.
///
/// Fails with [`ParseError::BadHiddenAvp`] when the subformat is shorter than 2 octets or its
/// Length of Original Value exceeds the remaining octets (typically a wrong secret).
pub fn unhide(
    attribute: u16,
    secret: &[u8],
    random_vector: &[u8],
    hidden: &[u8],
) -> Result<Vec<u8>, ParseError> {
    let mut sub = hidden.to_vec();
    xor_stream(attribute, secret, random_vector, &mut sub, false);
    let (len, rest) = sub
        .split_first_chunk::<2>()
        .ok_or(ParseError::BadHiddenAvp(attribute))?;
    let len = usize::from(u16::from_be_bytes(*len));
    rest.get(..len)
        .map(<[u8]>::to_vec)
        .ok_or(ParseError::BadHiddenAvp(attribute))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_various_lengths() {
        for n in [0usize, 1, 13, 14, 15, 16, 30, 31, 32, 100, 1015] {
            let value: Vec<u8> = (0..n).map(|i| i as u8).collect();
            for pad in [&[][..], &[9u8; 7][..]] {
                let h = hide(9, b"secret", b"0123456789abcdef", &value, pad);
                assert_eq!(h.len(), (2 + n + pad.len()).min(MAX_VALUE_LEN));
                let v = unhide(9, b"secret", b"0123456789abcdef", &h).unwrap();
                assert_eq!(v, value.get(..n.min(MAX_VALUE_LEN - 2)).unwrap());
            }
        }
    }

    #[test]
    fn too_short_and_lying_length() {
        assert_eq!(
            unhide(9, b"s", b"rv", &[1]),
            Err(ParseError::BadHiddenAvp(9))
        );
        let h = hide(9, b"s", b"rv", &[1, 2], &[]);
        assert!(
            unhide(9, b"other", b"rv", &h).is_err()
                || unhide(9, b"other", b"rv", &h).unwrap() != [1, 2]
        );
    }
}
