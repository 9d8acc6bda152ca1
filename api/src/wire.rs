//! Typed values ↔ their `sluice.v1` wire form: IPv4 addresses and prefixes, and IPsec
//! proposals. `compile` writes with the `*_to_wire` functions, the data plane reads with
//! the `*_from_wire` ones; nothing on either side formats or parses strings.
//!
//! Reading fails only on what no typed value can be: an unknown enum number (a newer
//! operator) or a prefix longer than 32.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use sluice_ike::cipher::{AesKeyLen, Cipher};
use sluice_ike::dh::Group;
use sluice_ike::policy::{EspProposal, IkeProposal};
use sluice_ike::prf::HashAlg;
use sluice_ike::sa::{EspAuth, EspCipher};
use sluice_proto::v1 as pb;

/// A wire value no typed value corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// An enum number this build does not know (or `UNSPECIFIED`).
    #[error("unknown {what} {value}")]
    UnknownEnum {
        /// The enum's name.
        what: &'static str,
        /// The number received.
        value: i32,
    },
    /// A cipher that the proposal's kind cannot carry (AES-GCM in a Phase 1 proposal).
    #[error("{cipher:?} is not a Phase 1 cipher")]
    NotAnIkeCipher {
        /// The cipher received.
        cipher: pb::Cipher,
    },
    /// A prefix length above 32.
    #[error("prefix length {0} is longer than 32")]
    PrefixLength(u32),
}

/// An address on the wire.
pub fn ipv4_to_wire(a: Ipv4Addr) -> pb::Ipv4Address {
    pb::Ipv4Address {
        octets: u32::from(a),
    }
}

/// An address from the wire.
pub fn ipv4_from_wire(a: &pb::Ipv4Address) -> Ipv4Addr {
    Ipv4Addr::from(a.octets)
}

/// A network on the wire.
pub fn prefix_to_wire(n: Ipv4Net) -> pb::Ipv4Prefix {
    pb::Ipv4Prefix {
        address: u32::from(n.network()),
        length: u32::from(n.prefix_len()),
    }
}

/// A network from the wire (host bits cleared).
pub fn prefix_from_wire(p: &pb::Ipv4Prefix) -> Result<Ipv4Net, WireError> {
    u8::try_from(p.length)
        .ok()
        .and_then(|len| Ipv4Net::new(Ipv4Addr::from(p.address), len).ok())
        .map(|n| n.trunc())
        .ok_or(WireError::PrefixLength(p.length))
}

fn unknown(what: &'static str, value: i32) -> WireError {
    WireError::UnknownEnum { what, value }
}

fn cipher_to_wire(c: EspCipher) -> pb::Cipher {
    use AesKeyLen::*;
    match c {
        EspCipher::AesCbc(Aes128) => pb::Cipher::Aes128Cbc,
        EspCipher::AesCbc(Aes192) => pb::Cipher::Aes192Cbc,
        EspCipher::AesCbc(Aes256) => pb::Cipher::Aes256Cbc,
        EspCipher::TripleDesCbc => pb::Cipher::TripleDesCbc,
        EspCipher::AesGcm16(Aes128) => pb::Cipher::Aes128Gcm16,
        EspCipher::AesGcm16(Aes192) => pb::Cipher::Aes192Gcm16,
        EspCipher::AesGcm16(Aes256) => pb::Cipher::Aes256Gcm16,
    }
}

fn cipher_from_wire(v: i32) -> Result<EspCipher, WireError> {
    use AesKeyLen::*;
    Ok(match pb::Cipher::try_from(v) {
        Ok(pb::Cipher::Aes128Cbc) => EspCipher::AesCbc(Aes128),
        Ok(pb::Cipher::Aes192Cbc) => EspCipher::AesCbc(Aes192),
        Ok(pb::Cipher::Aes256Cbc) => EspCipher::AesCbc(Aes256),
        Ok(pb::Cipher::TripleDesCbc) => EspCipher::TripleDesCbc,
        Ok(pb::Cipher::Aes128Gcm16) => EspCipher::AesGcm16(Aes128),
        Ok(pb::Cipher::Aes192Gcm16) => EspCipher::AesGcm16(Aes192),
        Ok(pb::Cipher::Aes256Gcm16) => EspCipher::AesGcm16(Aes256),
        Ok(pb::Cipher::Unspecified) | Err(_) => return Err(unknown("cipher", v)),
    })
}

fn ike_cipher_from_wire(v: i32) -> Result<Cipher, WireError> {
    cipher_from_wire(v)?
        .phase1()
        .ok_or_else(|| WireError::NotAnIkeCipher {
            cipher: pb::Cipher::try_from(v).unwrap_or_default(),
        })
}

fn hash_to_wire(h: HashAlg) -> pb::HashAlgorithm {
    match h {
        HashAlg::Md5 => pb::HashAlgorithm::Md5,
        HashAlg::Sha1 => pb::HashAlgorithm::Sha1,
        HashAlg::Sha256 => pb::HashAlgorithm::Sha256,
        HashAlg::Sha384 => pb::HashAlgorithm::Sha384,
        HashAlg::Sha512 => pb::HashAlgorithm::Sha512,
    }
}

fn hash_from_wire(v: i32) -> Result<HashAlg, WireError> {
    Ok(match pb::HashAlgorithm::try_from(v) {
        Ok(pb::HashAlgorithm::Md5) => HashAlg::Md5,
        Ok(pb::HashAlgorithm::Sha1) => HashAlg::Sha1,
        Ok(pb::HashAlgorithm::Sha256) => HashAlg::Sha256,
        Ok(pb::HashAlgorithm::Sha384) => HashAlg::Sha384,
        Ok(pb::HashAlgorithm::Sha512) => HashAlg::Sha512,
        Ok(pb::HashAlgorithm::Unspecified) | Err(_) => return Err(unknown("hash algorithm", v)),
    })
}

fn esp_auth_from_wire(v: i32) -> Result<EspAuth, WireError> {
    hash_from_wire(v).map(EspAuth::with_hash)
}

/// The wire enum's numbers are the IANA Group Description values (`Group::id`).
fn group_to_wire(g: Group) -> i32 {
    i32::from(g.id())
}

fn group_from_wire(v: i32) -> Result<Group, WireError> {
    u16::try_from(v)
        .ok()
        .and_then(Group::from_id)
        .ok_or(unknown("DH group", v))
}

fn all<T>(values: &[i32], f: impl Fn(i32) -> Result<T, WireError>) -> Result<Vec<T>, WireError> {
    values.iter().map(|v| f(*v)).collect()
}

/// A Phase 1 proposal on the wire.
pub fn ike_proposal_to_wire(p: &IkeProposal) -> pb::IkeProposal {
    pb::IkeProposal {
        ciphers: p
            .ciphers
            .iter()
            .map(|c| cipher_to_wire((*c).into()) as i32)
            .collect(),
        hashes: p.hashes.iter().map(|h| hash_to_wire(*h) as i32).collect(),
        groups: p.groups.iter().map(|g| group_to_wire(*g)).collect(),
    }
}

/// A Phase 1 proposal from the wire.
pub fn ike_proposal_from_wire(p: &pb::IkeProposal) -> Result<IkeProposal, WireError> {
    Ok(IkeProposal {
        ciphers: all(&p.ciphers, ike_cipher_from_wire)?,
        hashes: all(&p.hashes, hash_from_wire)?,
        groups: all(&p.groups, group_from_wire)?,
    })
}

/// An ESP proposal on the wire.
pub fn esp_proposal_to_wire(p: &EspProposal) -> pb::EspProposal {
    pb::EspProposal {
        ciphers: p
            .ciphers
            .iter()
            .map(|c| cipher_to_wire(*c) as i32)
            .collect(),
        integrity: p
            .auths
            .iter()
            .map(|a| hash_to_wire(a.hash()) as i32)
            .collect(),
        pfs_groups: p.groups.iter().map(|g| group_to_wire(*g)).collect(),
    }
}

/// An ESP proposal from the wire.
pub fn esp_proposal_from_wire(p: &pb::EspProposal) -> Result<EspProposal, WireError> {
    Ok(EspProposal {
        ciphers: all(&p.ciphers, cipher_from_wire)?,
        auths: all(&p.integrity, esp_auth_from_wire)?,
        groups: all(&p.pfs_groups, group_from_wire)?,
    })
}

#[cfg(test)]
mod tests {
    use sluice_ike::policy::{AlgorithmClass, ProposalKind, words};

    use super::*;

    #[test]
    fn every_algorithm_round_trips() {
        use AlgorithmClass::*;
        let mut ike = 0;
        for c in words(ProposalKind::Ike, Encryption) {
            for h in words(ProposalKind::Ike, Integrity) {
                for g in words(ProposalKind::Ike, DhGroup) {
                    let p = IkeProposal::parse(&format!("{c}-{h}-{g}"), true)
                        .map_err(|e| e.to_string());
                    let back = p.clone().and_then(|p| {
                        ike_proposal_from_wire(&ike_proposal_to_wire(&p)).map_err(|e| e.to_string())
                    });
                    assert_eq!(back, p, "{c}-{h}-{g}");
                    ike += 1;
                }
            }
        }
        assert_eq!(ike, 4 * 5 * 7);
        for c in words(ProposalKind::Esp, Encryption) {
            for rest in ["-sha256-md5-modp2048-ecp384", ""] {
                let text = if c.contains("gcm") {
                    format!("{c}{}", rest.replace("-sha256-md5", ""))
                } else {
                    format!("{c}{rest}-sha1")
                };
                let p = EspProposal::parse(&text, true).map_err(|e| e.to_string());
                let back = p.clone().and_then(|p| {
                    esp_proposal_from_wire(&esp_proposal_to_wire(&p)).map_err(|e| e.to_string())
                });
                assert_eq!(back, p, "{text}");
            }
        }
    }

    #[test]
    fn unknown_numbers_and_misplaced_ciphers_are_refused() {
        let ike = |ciphers: Vec<i32>, groups: Vec<i32>| {
            ike_proposal_from_wire(&pb::IkeProposal {
                ciphers,
                hashes: vec![pb::HashAlgorithm::Sha1 as i32],
                groups,
            })
        };
        assert_eq!(
            ike(vec![99], vec![14]),
            Err(WireError::UnknownEnum {
                what: "cipher",
                value: 99
            })
        );
        assert_eq!(
            ike(vec![pb::Cipher::Aes128Gcm16 as i32], vec![14]),
            Err(WireError::NotAnIkeCipher {
                cipher: pb::Cipher::Aes128Gcm16
            })
        );
        assert!(
            ike(vec![1], vec![3]).is_err(),
            "group 3 (EC2N) is not supported"
        );
        assert!(ike(vec![1], vec![0]).is_err());
    }

    #[test]
    fn addresses_and_prefixes_round_trip() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(ipv4_to_wire(a).octets, 0x0a00_0001);
        assert_eq!(ipv4_from_wire(&ipv4_to_wire(a)), a);
        for text in ["0.0.0.0/0", "10.1.0.0/16", "192.0.2.7/32"] {
            let n: Ipv4Net = text.parse().unwrap_or_default();
            assert_eq!(prefix_from_wire(&prefix_to_wire(n)), Ok(n));
        }
        let long = pb::Ipv4Prefix {
            address: 0,
            length: 33,
        };
        assert_eq!(prefix_from_wire(&long), Err(WireError::PrefixLength(33)));
    }
}
