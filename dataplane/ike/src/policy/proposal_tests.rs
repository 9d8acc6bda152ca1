#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

fn check(kind: ProposalKind, p: &str, allow_md5: bool) -> Result<(), String> {
    match kind {
        ProposalKind::Ike => IkeProposal::parse(p, allow_md5).map(|_| ()),
        ProposalKind::Esp => EspProposal::parse(p, allow_md5).map(|_| ()),
    }
    .map_err(|e| e.to_string())
}

fn ike(p: &str) -> Result<(), String> {
    check(ProposalKind::Ike, p, false)
}

fn esp(p: &str) -> Result<(), String> {
    check(ProposalKind::Esp, p, false)
}

#[test]
fn good_proposals() {
    for p in [
        "aes256-sha256-modp2048",
        "3des-sha1-modp1024",
        "AES256-SHA256-MODP2048",
        "aes128-aes256-sha1-sha256-modp2048-modp1024",
        "modp2048-sha1-aes128",
        "aes192-sha384-modp1536-modp3072-modp4096-ecp256",
    ] {
        assert_eq!(ike(p), Ok(()), "{p}");
    }
    for p in [
        "aes256gcm16",
        "aes128gcm16-aes192gcm16-aes256gcm16",
        "3des-sha1",
        "aes256-sha256-modp2048",
        "aes256gcm16-modp2048",
        "aes256gcm16-aes128-sha1",
        "AES128-SHA256-ECP256",
    ] {
        assert_eq!(esp(p), Ok(()), "{p}");
    }
    let p = IkeProposal::parse("aes128-AES256-sha1-modp2048-ecp256", false).unwrap();
    assert_eq!(p.ciphers.len(), 2);
    assert_eq!(p.groups, vec![Group::Modp2048, Group::Ecp256]);
    let e = EspProposal::parse("aes256gcm16", false).unwrap();
    assert!(e.auths.is_empty() && e.groups.is_empty());
    let pfs = EspProposal::parse("aes256-sha256-modp2048", false).unwrap();
    assert_eq!(pfs.groups, vec![Group::Modp2048]);
}

#[test]
fn unknown_words_list_what_is_accepted() {
    assert_eq!(
        ike("aes512-sha1-modp2048"),
        Err(
            "unknown algorithm \"aes512\" (IKE proposals accept aes128 aes192 aes256 3des \
             md5 sha1 sha256 sha384 sha512 modp1024 modp1536 modp2048 modp3072 modp4096 \
             ecp256 ecp384)"
                .into()
        )
    );
    assert_eq!(
        ike("aes128gcm16-sha1-modp2048"),
        Err(
            "unknown algorithm \"aes128gcm16\" (AES-GCM is an ESP algorithm; IKEv1 has no \
             AEAD ciphers)"
                .into()
        )
    );
    assert!(esp("aes128-sha1-x25519").unwrap_err().starts_with(
        "unknown algorithm \"x25519\" (ESP proposals accept aes128 aes192 aes256 3des aes128gcm16"
    ));
    assert!(esp(" aes128-sha1").unwrap_err().contains("\" aes128\""));
    assert!(ike("aes128_sha1_modp2048").is_err());
}

#[test]
fn empty_repeated_and_malformed() {
    assert_eq!(ike(""), Err("is empty".into()));
    for p in [
        "aes128--sha1-modp2048",
        "-aes128-sha1-modp2048",
        "aes128-sha1-modp2048-",
    ] {
        assert_eq!(
            ike(p),
            Err("has an empty algorithm (separate algorithms with single dashes)".into()),
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
    let missing = |p: Result<(), String>, what: &str| {
        assert!(p.as_ref().unwrap_err().starts_with(what), "{p:?}");
    };
    missing(
        ike("sha1-modp2048"),
        "has no encryption algorithm (one of aes128, aes192, aes256, 3des)",
    );
    missing(
        ike("aes128-modp2048"),
        "has no integrity algorithm (one of md5, sha1, sha256, sha384, sha512)",
    );
    missing(
        ike("aes128-sha1"),
        "has no DH group (one of modp1024, modp1536, modp2048, modp3072, modp4096, ecp256, ecp384)",
    );
    missing(esp("sha1"), "has no encryption algorithm (one of aes128");
    missing(esp("modp2048"), "has no encryption algorithm");
    missing(
        esp("aes128"),
        "has no integrity algorithm (one of md5, sha1, sha256, sha384, sha512), which non-GCM \
         ciphers need",
    );
    missing(esp("aes256gcm16-aes128"), "has no integrity algorithm");
    assert_eq!(
        EspProposal::parse("aes128gcm16-sha1", false),
        Err(ProposalError::IntegrityWithAead)
    );
}

#[test]
fn md5_needs_permission() {
    for (kind, p) in [
        (ProposalKind::Ike, "aes128-md5-modp1024"),
        (ProposalKind::Esp, "aes128-md5"),
    ] {
        assert_eq!(
            check(kind, p, false),
            Err("uses md5, which is refused: MD5 is broken (practical collisions)".into())
        );
        assert_eq!(check(kind, p, true), Ok(()));
    }
    assert!(
        check(ProposalKind::Esp, "aes128gcm16-md5", true)
            .unwrap_err()
            .contains("GCM-only")
    );
}

#[test]
fn word_limit() {
    // Every ESP word once: 7 + 5 + 7 = 19, the limit exactly.
    let all: Vec<&str> = [
        AlgorithmClass::Encryption,
        AlgorithmClass::Integrity,
        AlgorithmClass::DhGroup,
    ]
    .into_iter()
    .flat_map(|c| words(ProposalKind::Esp, c))
    .collect();
    assert_eq!(all.len(), MAX_PROPOSAL_TOKENS);
    assert_eq!(check(ProposalKind::Esp, &all.join("-"), true), Ok(()));
    assert_eq!(
        check(
            ProposalKind::Esp,
            &format!("{}-aes128", all.join("-")),
            true
        ),
        Err("has 20 algorithms, at most 19 are allowed".into())
    );
}

#[test]
fn every_word_of_each_class_is_accepted() {
    use AlgorithmClass::*;
    use ProposalKind::*;
    for e in words(Ike, Encryption) {
        for i in words(Ike, Integrity) {
            for g in words(Ike, DhGroup) {
                assert_eq!(check(Ike, &format!("{e}-{i}-{g}"), true), Ok(()));
            }
        }
    }
    for e in words(Esp, Encryption) {
        let p = if e.contains("gcm") {
            e.to_owned()
        } else {
            format!("{e}-sha256")
        };
        assert_eq!(check(Esp, &p, false), Ok(()), "{p}");
    }
    for i in words(Esp, Integrity) {
        assert_eq!(check(Esp, &format!("aes128-{i}"), true), Ok(()));
    }
    for g in words(Esp, DhGroup) {
        assert_eq!(check(Esp, &format!("aes256gcm16-{g}"), true), Ok(()));
    }
}

fn word() -> impl Strategy<Value = String> {
    let known: Vec<&'static str> = TOKENS.iter().map(|t| t.name()).collect();
    prop_oneof![
        8 => proptest::sample::select(known).prop_map(str::to_owned),
        1 => proptest::sample::select(vec!["AES128", "Sha256", "MODP2048", "AES256GCM16"])
            .prop_map(str::to_owned),
        1 => proptest::sample::select(vec!["aes512", "des", "", "x25519", "aes128gcm8", "sha"])
            .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, .. ProptestConfig::default() })]

    /// The parsers agree with a model of the grammar written from the module documentation.
    #[test]
    fn grammar_matches_its_model(
        list in proptest::collection::vec(word(), 0..20),
        esp in proptest::bool::ANY,
        allow_md5 in proptest::bool::ANY,
    ) {
        use AlgorithmClass::*;
        let kind = if esp { ProposalKind::Esp } else { ProposalKind::Ike };
        let text = list.join("-");
        let lower: Vec<String> = list.iter().map(|s| s.to_ascii_lowercase()).collect();
        let of = |c| words(kind, c);
        let has = |c| lower.iter().any(|x| of(c).contains(&x.as_str()));
        let known = lower.iter().all(|x| {
            [Encryption, Integrity, DhGroup].into_iter().any(|c| of(c).contains(&x.as_str()))
        });
        let mut distinct = lower.clone();
        distinct.sort();
        distinct.dedup();
        let non_gcm = lower
            .iter()
            .any(|x| of(Encryption).contains(&x.as_str()) && !x.contains("gcm"));
        let classes_ok = if esp {
            has(Encryption) && (non_gcm == has(Integrity))
        } else {
            has(Encryption) && has(Integrity) && has(DhGroup)
        };
        let model = !text.is_empty()
            && lower.len() <= MAX_PROPOSAL_TOKENS
            && known
            && distinct.len() == lower.len()
            && (allow_md5 || !lower.iter().any(|x| x == "md5"))
            && classes_ok;
        let got = check(kind, &text, allow_md5);
        prop_assert_eq!(got.is_ok(), model, "{:?} {:?}: {:?}", kind, text, got);
    }
}
