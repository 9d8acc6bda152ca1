//! The IPsec proposal grammar of `spec.l2tp.ipsec.ikeProposals` / `espProposals`
//! (strongSwan style: algorithm tokens separated by `-`).
//!
//! `compile` checks every proposal with [`check_proposal`] and passes it on lower-cased; the
//! data plane parses it again with its own parser. [`ipsec_tokens`] lists the tokens accepted
//! here, per class, so that a data-plane test can check that both parsers agree.
//!
//! A proposal accepts every combination of its algorithms (`aes128-aes256-sha1-modp2048` is
//! AES-128 and AES-256, each with SHA-1 and MODP2048):
//!
//! * IKE (Phase 1): at least one encryption, one integrity/PRF hash and one DH group.
//! * ESP (Phase 2): at least one encryption. Integrity is required when any non-GCM cipher is
//!   listed (it is used with those), and refused when only AES-GCM is listed (GCM
//!   authenticates by itself). DH groups are optional: with groups the proposal means PFS with
//!   one of them, without groups it means no PFS.
//! * `md5` only with `allowMd5: true`; a token may appear once per proposal; at most
//!   [`MAX_PROPOSAL_TOKENS`] tokens per proposal and [`MAX_PROPOSALS`] proposals per list.

/// Most algorithm tokens in one proposal.
pub const MAX_PROPOSAL_TOKENS: usize = 16;
/// Most proposals in `ikeProposals` or `espProposals`.
pub const MAX_PROPOSALS: usize = 16;

const IKE_ENCRYPTION: &[&str] = &["aes128", "aes192", "aes256", "3des"];
const ESP_ENCRYPTION: &[&str] = &[
    "aes128",
    "aes192",
    "aes256",
    "3des",
    "aes128gcm16",
    "aes192gcm16",
    "aes256gcm16",
];
const ESP_AEAD: &[&str] = &["aes128gcm16", "aes192gcm16", "aes256gcm16"];
const INTEGRITY: &[&str] = &["md5", "sha1", "sha256", "sha384", "sha512"];
const DH_GROUPS: &[&str] = &[
    "modp1024", "modp1536", "modp2048", "modp3072", "modp4096", "ecp256", "ecp384",
];

/// The tokens the proposal grammar accepts, per class (all lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpsecTokens {
    /// IKE encryption algorithms (AES-CBC and 3DES-CBC).
    pub ike_encryption: &'static [&'static str],
    /// IKE hash algorithms (integrity and PRF).
    pub ike_integrity: &'static [&'static str],
    /// IKE Diffie-Hellman groups.
    pub ike_dh_groups: &'static [&'static str],
    /// ESP encryption algorithms, AEAD ones included.
    pub esp_encryption: &'static [&'static str],
    /// The AEAD members of `esp_encryption` (AES-GCM with a 16-octet ICV), which take no
    /// integrity algorithm.
    pub esp_aead: &'static [&'static str],
    /// ESP integrity algorithms (HMAC).
    pub esp_integrity: &'static [&'static str],
    /// ESP PFS groups.
    pub esp_dh_groups: &'static [&'static str],
}

/// The tokens accepted in `ikeProposals` and `espProposals`, per class. Every token that
/// [`check_proposal`] accepts is listed here, and nothing else; a data-plane test uses this
/// to check that its own proposal parser understands exactly the same words.
pub fn ipsec_tokens() -> IpsecTokens {
    IpsecTokens {
        ike_encryption: IKE_ENCRYPTION,
        ike_integrity: INTEGRITY,
        ike_dh_groups: DH_GROUPS,
        esp_encryption: ESP_ENCRYPTION,
        esp_aead: ESP_AEAD,
        esp_integrity: INTEGRITY,
        esp_dh_groups: DH_GROUPS,
    }
}

/// Which list a proposal belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalKind {
    /// Phase 1 (ISAKMP SA): `ikeProposals`.
    Ike,
    /// Phase 2 (ESP SA): `espProposals`.
    Esp,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Encryption,
    Aead,
    Integrity,
    Group,
}

fn class(kind: ProposalKind, token: &str) -> Option<Class> {
    let t = ipsec_tokens();
    let (enc, integrity, groups) = match kind {
        ProposalKind::Ike => (t.ike_encryption, t.ike_integrity, t.ike_dh_groups),
        ProposalKind::Esp => (t.esp_encryption, t.esp_integrity, t.esp_dh_groups),
    };
    if kind == ProposalKind::Esp && t.esp_aead.contains(&token) {
        Some(Class::Aead)
    } else if enc.contains(&token) {
        Some(Class::Encryption)
    } else if integrity.contains(&token) {
        Some(Class::Integrity)
    } else if groups.contains(&token) {
        Some(Class::Group)
    } else {
        None
    }
}

/// Checks one proposal (compared case-insensitively). The error is phrased to follow the
/// field name, e.g. `unknown algorithm "aes512" (...)`.
pub fn check_proposal(kind: ProposalKind, proposal: &str, allow_md5: bool) -> Result<(), String> {
    let t = ipsec_tokens();
    let lower = proposal.to_ascii_lowercase();
    if lower.is_empty() {
        return Err("is empty".into());
    }
    let tokens: Vec<&str> = lower.split('-').collect();
    if tokens.len() > MAX_PROPOSAL_TOKENS {
        return Err(format!(
            "has {} algorithms, at most {MAX_PROPOSAL_TOKENS} are allowed",
            tokens.len()
        ));
    }
    let mut seen: Vec<&str> = Vec::with_capacity(tokens.len());
    let (mut enc, mut aead, mut integrity, mut groups) = (false, false, false, false);
    for tok in tokens {
        if tok.is_empty() {
            return Err("has an empty algorithm (separate algorithms with single dashes)".into());
        }
        let Some(c) = class(kind, tok) else {
            let (name, all) = match kind {
                ProposalKind::Ike => ("IKE", [t.ike_encryption, t.ike_integrity, t.ike_dh_groups]),
                ProposalKind::Esp => ("ESP", [t.esp_encryption, t.esp_integrity, t.esp_dh_groups]),
            };
            let hint = if kind == ProposalKind::Ike && t.esp_aead.contains(&tok) {
                " (AES-GCM is an ESP algorithm; IKEv1 has no AEAD ciphers)".to_owned()
            } else {
                format!(" ({name} proposals accept {})", all.concat().join(" "))
            };
            return Err(format!("unknown algorithm {tok:?}{hint}"));
        };
        if seen.contains(&tok) {
            return Err(format!("lists {tok} twice"));
        }
        seen.push(tok);
        if tok == "md5" && !allow_md5 {
            return Err(
                "uses md5, which is refused: MD5 is broken (practical collisions); \
                 set spec.l2tp.ipsec.allowMd5 to accept it"
                    .into(),
            );
        }
        match c {
            Class::Encryption => enc = true,
            Class::Aead => aead = true,
            Class::Integrity => integrity = true,
            Class::Group => groups = true,
        }
    }
    let list = |l: &[&str]| l.join(", ");
    match kind {
        ProposalKind::Ike => {
            if !enc {
                return Err(format!(
                    "has no encryption algorithm (one of {})",
                    list(t.ike_encryption)
                ));
            }
            if !integrity {
                return Err(format!(
                    "has no integrity algorithm (one of {})",
                    list(t.ike_integrity)
                ));
            }
            if !groups {
                return Err(format!(
                    "has no DH group (one of {})",
                    list(t.ike_dh_groups)
                ));
            }
        }
        ProposalKind::Esp => {
            if !enc && !aead {
                return Err(format!(
                    "has no encryption algorithm (one of {})",
                    list(t.esp_encryption)
                ));
            }
            if enc && !integrity {
                return Err(format!(
                    "has no integrity algorithm (one of {}), which non-GCM ciphers need",
                    list(t.esp_integrity)
                ));
            }
            if !enc && integrity {
                return Err(
                    "lists an integrity algorithm with only AES-GCM ciphers: GCM authenticates \
                     by itself, so GCM-only proposals take none"
                        .into(),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(p: &str) -> Result<(), String> {
        check_proposal(ProposalKind::Ike, p, false)
    }

    fn esp(p: &str) -> Result<(), String> {
        check_proposal(ProposalKind::Esp, p, false)
    }

    #[test]
    fn good_ike_proposals() {
        for p in [
            "aes256-sha256-modp2048",
            "aes128-sha1-modp2048",
            "3des-sha1-modp1024",
            "aes256-sha512-ecp384",
            "AES256-SHA256-MODP2048",
            "aes128-aes256-sha1-sha256-modp2048-modp1024",
            "modp2048-sha1-aes128",
            "aes192-sha384-modp1536-modp3072-modp4096-ecp256",
        ] {
            assert_eq!(ike(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn good_esp_proposals() {
        for p in [
            "aes256gcm16",
            "aes128gcm16-aes192gcm16-aes256gcm16",
            "aes128-sha1",
            "3des-sha1",
            "aes256-sha256-modp2048",
            "aes256gcm16-modp2048",
            "aes256gcm16-aes128-sha1",
            "AES128-SHA256-ECP256",
        ] {
            assert_eq!(esp(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn unknown_tokens() {
        let e = ike("aes512-sha1-modp2048").unwrap_err();
        assert!(e.starts_with("unknown algorithm \"aes512\" (IKE proposals accept aes128 aes192 aes256 3des md5 sha1"), "{e}");
        assert!(
            ike("aes128gcm16-sha1-modp2048")
                .unwrap_err()
                .contains("IKEv1 has no AEAD")
        );
        assert!(
            esp("aes128-sha1-x25519")
                .unwrap_err()
                .starts_with("unknown algorithm \"x25519\" (ESP proposals accept")
        );
        assert!(esp("des-sha1").unwrap_err().contains("\"des\""));
        assert!(esp(" aes128-sha1").unwrap_err().contains("\" aes128\""));
        assert!(ike("aes128_sha1_modp2048").is_err());
    }

    #[test]
    fn empty_and_malformed() {
        assert_eq!(ike(""), Err("is empty".into()));
        for p in [
            "aes128--sha1-modp2048",
            "-aes128-sha1-modp2048",
            "aes128-sha1-modp2048-",
        ] {
            assert!(
                ike(p).unwrap_err().contains("has an empty algorithm"),
                "{p}"
            );
        }
        assert_eq!(
            ike("aes128-aes128-sha1-modp2048"),
            Err("lists aes128 twice".into())
        );
        assert_eq!(esp("aes128-sha1-SHA1"), Err("lists sha1 twice".into()));
    }

    #[test]
    fn class_rules() {
        assert!(
            ike("sha1-modp2048")
                .unwrap_err()
                .starts_with("has no encryption algorithm")
        );
        assert!(
            ike("aes128-modp2048")
                .unwrap_err()
                .starts_with("has no integrity algorithm")
        );
        assert!(
            ike("aes128-sha1")
                .unwrap_err()
                .starts_with("has no DH group")
        );
        assert!(
            esp("sha1")
                .unwrap_err()
                .starts_with("has no encryption algorithm")
        );
        assert!(
            esp("modp2048")
                .unwrap_err()
                .starts_with("has no encryption algorithm")
        );
        assert!(
            esp("aes128")
                .unwrap_err()
                .starts_with("has no integrity algorithm")
        );
        assert!(
            esp("aes256gcm16-aes128")
                .unwrap_err()
                .starts_with("has no integrity algorithm")
        );
        assert!(
            esp("aes128gcm16-sha1")
                .unwrap_err()
                .contains("GCM-only proposals take none")
        );
    }

    #[test]
    fn md5_needs_allow_md5() {
        for (kind, p) in [
            (ProposalKind::Ike, "aes128-md5-modp1024"),
            (ProposalKind::Esp, "aes128-md5"),
        ] {
            let e = check_proposal(kind, p, false).unwrap_err();
            assert!(e.contains("MD5 is broken") && e.contains("allowMd5"), "{e}");
            assert_eq!(check_proposal(kind, p, true), Ok(()));
        }
        assert!(
            check_proposal(ProposalKind::Esp, "aes128gcm16-md5", true)
                .unwrap_err()
                .contains("GCM-only")
        );
    }

    #[test]
    fn token_limit() {
        // 4 + 5 + 7 = 16 distinct IKE tokens: the limit exactly.
        let all: Vec<&str> = [IKE_ENCRYPTION, INTEGRITY, DH_GROUPS].concat();
        assert_eq!(all.len(), MAX_PROPOSAL_TOKENS);
        assert_eq!(
            check_proposal(ProposalKind::Ike, &all.join("-"), true),
            Ok(())
        );
        let e = check_proposal(
            ProposalKind::Esp,
            &format!("{}-aes128gcm16", all.join("-")),
            true,
        )
        .unwrap_err();
        assert_eq!(e, "has 17 algorithms, at most 16 are allowed");
    }

    #[test]
    fn tokens_cover_exactly_what_is_accepted() {
        let t = ipsec_tokens();
        for enc in t.ike_encryption {
            for i in t.ike_integrity {
                for g in t.ike_dh_groups {
                    assert_eq!(
                        check_proposal(ProposalKind::Ike, &format!("{enc}-{i}-{g}"), true),
                        Ok(())
                    );
                }
            }
        }
        for enc in t.esp_encryption {
            let p = if t.esp_aead.contains(enc) {
                (*enc).to_owned()
            } else {
                format!("{enc}-sha256")
            };
            assert_eq!(check_proposal(ProposalKind::Esp, &p, false), Ok(()), "{p}");
        }
        for a in t.esp_aead {
            assert!(t.esp_encryption.contains(a));
        }
        for i in t.esp_integrity {
            assert_eq!(
                check_proposal(ProposalKind::Esp, &format!("aes128-{i}"), true),
                Ok(())
            );
        }
        for g in t.esp_dh_groups {
            assert_eq!(
                check_proposal(ProposalKind::Esp, &format!("aes256gcm16-{g}"), true),
                Ok(())
            );
        }
        // Nineteen distinct words in all, as the data plane's grammar has.
        let mut words: Vec<&str> = [
            t.ike_encryption,
            t.ike_integrity,
            t.ike_dh_groups,
            t.esp_encryption,
            t.esp_integrity,
            t.esp_dh_groups,
        ]
        .concat();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), 19);
    }
}
