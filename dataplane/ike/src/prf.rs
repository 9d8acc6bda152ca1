//! Hash and pseudo-random functions of Phase 1 (RFC 2409 §4, Appendix A "Hash Algorithm").
//!
//! IKEv1 negotiates a hash; its HMAC (RFC 2104) is the PRF when no PRF attribute is negotiated,
//! which is the case for every mainstream client.

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

/// Largest output of any supported hash (SHA-512).
pub const MAX_HASH_LEN: usize = 64;

/// Phase 1 hash algorithm (RFC 2409 Appendix A class 2; SHA-2 values from the IANA registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// 1: MD5. Only when a manifest explicitly allows it.
    Md5,
    /// 2: SHA-1.
    Sha1,
    /// 4: SHA2-256.
    Sha256,
    /// 5: SHA2-384.
    Sha384,
    /// 6: SHA2-512.
    Sha512,
}

impl HashAlg {
    /// The attribute value of class 2 (Hash Algorithm).
    pub fn id(self) -> u16 {
        match self {
            HashAlg::Md5 => 1,
            HashAlg::Sha1 => 2,
            HashAlg::Sha256 => 4,
            HashAlg::Sha384 => 5,
            HashAlg::Sha512 => 6,
        }
    }

    /// The algorithm for an attribute value, if supported.
    pub fn from_id(id: u16) -> Option<HashAlg> {
        Some(match id {
            1 => HashAlg::Md5,
            2 => HashAlg::Sha1,
            4 => HashAlg::Sha256,
            5 => HashAlg::Sha384,
            6 => HashAlg::Sha512,
            _ => return None,
        })
    }

    /// Output length in octets.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Md5 => 16,
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Name as strongSwan and most logs spell it.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Md5 => "md5",
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// The plain hash of the concatenation of `parts` (used for the Phase 1 IV, §B, and
    /// NAT-D, RFC 3947 §3.2).
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            HashAlg::Md5 => run::<Md5>(parts),
            HashAlg::Sha1 => run::<Sha1>(parts),
            HashAlg::Sha256 => run::<Sha256>(parts),
            HashAlg::Sha384 => run::<Sha384>(parts),
            HashAlg::Sha512 => run::<Sha512>(parts),
        }
    }

    /// HMAC(key, parts…) — the negotiated PRF (RFC 2409 §4: "prf(key, msg)").
    pub fn prf(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
            // HMAC accepts keys of any length (RFC 2104 §2), so this cannot fail.
            let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else {
                return Zeroizing::new(Vec::new());
            };
            for p in parts {
                m.update(p);
            }
            Zeroizing::new(m.finalize().into_bytes().to_vec())
        }
        match self {
            HashAlg::Md5 => run::<Hmac<Md5>>(key, parts),
            HashAlg::Sha1 => run::<Hmac<Sha1>>(key, parts),
            HashAlg::Sha256 => run::<Hmac<Sha256>>(key, parts),
            HashAlg::Sha384 => run::<Hmac<Sha384>>(key, parts),
            HashAlg::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::hex;

    /// RFC 2202 §2 test case 1 (HMAC-MD5) and §3 test case 1 (HMAC-SHA-1).
    #[test]
    fn rfc2202_case1() {
        let key = [0x0bu8; 16];
        assert_eq!(
            *HashAlg::Md5.prf(&key, &[b"Hi There"]),
            hex("9294727a3638bb1c13f48ef8158bfc9d")
        );
        let key = [0x0bu8; 20];
        assert_eq!(
            *HashAlg::Sha1.prf(&key, &[b"Hi ", b"There"]),
            hex("b617318655057264e28bc0b6fb378c8ef146be00")
        );
    }

    /// RFC 4231 §4.3 test case 2 ("Jefe"), HMAC-SHA-256/384/512.
    #[test]
    fn rfc4231_case2() {
        let data: &[&[u8]] = &[b"what do ya want ", b"for nothing?"];
        assert_eq!(
            *HashAlg::Sha256.prf(b"Jefe", data),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            *HashAlg::Sha384.prf(b"Jefe", data),
            hex(concat!(
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e",
                "8e2240ca5e69e2c78b3239ecfab21649"
            ))
        );
        assert_eq!(
            *HashAlg::Sha512.prf(b"Jefe", data),
            hex(concat!(
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554",
                "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
            ))
        );
    }

    #[test]
    fn ids_round_trip() {
        for h in [
            HashAlg::Md5,
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            assert_eq!(HashAlg::from_id(h.id()), Some(h));
            assert_eq!(h.hash(&[b"abc"]).len(), h.output_len());
            assert_eq!(h.prf(b"k", &[b"abc"]).len(), h.output_len());
        }
        assert_eq!(HashAlg::from_id(3), None);
    }
}
