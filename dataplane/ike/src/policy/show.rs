//! Proposals written back in the proposal grammar (for `check`, logs and docs), and which
//! of their algorithms are weak.

use std::fmt;

use super::{EspProposal, IkeProposal};
use crate::dh::Group;
use crate::prf::HashAlg;
use crate::sa::{EspAuth, EspCipher};

/// Algorithm words accepted for old clients (Windows falls back to them) that are weak:
/// 3DES (64-bit blocks, RFC 8221 §5 "SHOULD NOT"), SHA-1 as IKE hash/PRF, MD5, and the
/// 1024/1536-bit MODP groups (RFC 8247 §2.4 "MUST NOT"/"SHOULD NOT" for IKEv2; the same
/// arithmetic applies to IKEv1).
pub const WEAK_TOKENS: [&str; 5] = ["3des", "md5", "sha1", "modp1024", "modp1536"];

fn join(f: &mut fmt::Formatter<'_>, words: impl Iterator<Item = &'static str>) -> fmt::Result {
    let all: Vec<&str> = words.collect();
    f.write_str(&all.join("-"))
}

impl fmt::Display for IkeProposal {
    /// `enc…-hash…-group…`, which [`IkeProposal::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(
            f,
            self.ciphers
                .iter()
                .map(|c| c.name())
                .chain(self.hashes.iter().map(|h| HashAlg::name(*h)))
                .chain(self.groups.iter().map(|g| Group::name(*g))),
        )
    }
}

impl fmt::Display for EspProposal {
    /// `enc…[-integrity…][-group…]`, which [`EspProposal::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        join(
            f,
            self.ciphers
                .iter()
                .map(|c| EspCipher::name(*c))
                .chain(self.auths.iter().map(|a| EspAuth::name(*a)))
                .chain(self.groups.iter().map(|g| Group::name(*g))),
        )
    }
}

fn weak(p: &impl fmt::Display, skip: &[&str]) -> Vec<&'static str> {
    let s = p.to_string();
    WEAK_TOKENS
        .into_iter()
        .filter(|w| !skip.contains(w) && s.split('-').any(|t| t == *w))
        .collect()
}

impl IkeProposal {
    /// The weak algorithm words this proposal accepts ([`WEAK_TOKENS`]).
    pub fn weak(&self) -> Vec<&'static str> {
        weak(self, &[])
    }
}

impl EspProposal {
    /// The weak algorithm words this proposal accepts ([`WEAK_TOKENS`] but SHA-1: HMAC-SHA1-96
    /// is still a MUST- for ESP, RFC 8221 §6).
    pub fn weak(&self) -> Vec<&'static str> {
        weak(self, &["sha1"])
    }
}

#[cfg(test)]
mod tests {
    use super::super::{default_esp_proposals, default_ike_proposals};
    use super::*;

    #[test]
    fn proposals_read_back_and_name_their_weak_words() {
        let ike = default_ike_proposals();
        assert_eq!(
            ike.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["aes256-aes192-aes128-3des-sha512-sha384-sha256-sha1-\
              ecp384-ecp256-modp4096-modp3072-modp2048-modp1536-modp1024"]
        );
        for p in &ike {
            assert_eq!(IkeProposal::parse(&p.to_string(), false).as_ref(), Ok(p));
            assert_eq!(p.weak(), ["3des", "sha1", "modp1024", "modp1536"]);
        }
        let esp = default_esp_proposals();
        assert_eq!(
            esp.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "aes256gcm16-aes128gcm16-aes256-aes192-aes128-3des-sha512-sha384-sha256-sha1",
                "aes256gcm16-aes128gcm16-aes256-aes192-aes128-3des-sha512-sha384-sha256-sha1-\
                 ecp384-ecp256-modp4096-modp3072-modp2048-modp1536-modp1024",
            ]
        );
        for p in &esp {
            assert_eq!(EspProposal::parse(&p.to_string(), false).as_ref(), Ok(p));
        }
        assert_eq!(esp[0].weak(), ["3des"]);
        assert_eq!(esp[1].weak(), ["3des", "modp1024", "modp1536"]);
        let modern = IkeProposal::parse("aes256-sha256-modp2048", false);
        assert_eq!(modern.map(|p| p.weak()), Ok(vec![]));
    }
}
