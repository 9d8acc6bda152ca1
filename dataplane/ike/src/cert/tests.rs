//! Unit tests of certificate parsing, path validation and signatures.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::testutil::hex;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// Known answers from tests/vectors/make_certs.sh (`openssl pkeyutl -sign`, raw PKCS#1
// type-1 padding with no digest) over tests/certs/gateway.key.
include!("../../tests/vectors/rsa_sign_hash.rs");

/// 2026-01-01T00:00:00Z; the good certificates are valid 2025-01-01 .. 2045-01-01.
const NOW: u64 = 1_767_225_600;

macro_rules! cert {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/certs/", $name))
    };
}

fn der(pem: &[u8]) -> Vec<u8> {
    let blocks = pem_blocks(pem).unwrap();
    assert_eq!(blocks.len(), 1);
    blocks[0].1.to_vec()
}

fn store(pem: &[u8]) -> TrustStore {
    TrustStore::from_pem(pem).unwrap()
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

fn gateway() -> Credentials {
    Credentials::from_pem(cert!("gateway-chain.pem"), cert!("gateway.key")).unwrap()
}

fn verify_alice() -> PeerCert {
    store(cert!("ca.pem"))
        .verify(&der(cert!("alice.pem")), &[&der(cert!("int.pem"))], NOW)
        .unwrap()
}

fn id(id_type: u8, data: &[u8]) -> Identification {
    Identification {
        id_type,
        protocol: 0,
        port: 0,
        data: data.to_vec(),
    }
}

#[test]
fn chain_leaf_and_intermediate_verifies() {
    let ca = store(cert!("ca.pem"));
    let int = der(cert!("int.pem"));
    let gw = ca.verify(&der(cert!("gateway.pem")), &[&int], NOW).unwrap();
    assert_eq!(gw.subject_display(), "CN=vpn.example.test, O=Example");
    assert_eq!(gw.der(), der(cert!("gateway.pem")).as_slice());
    let alice = verify_alice();
    assert_eq!(alice.subject_display(), "CN=alice, O=Example");
    // Any order, unrelated extras ignored.
    let other = der(cert!("other-ca.pem"));
    let deep = der(cert!("deep1.pem"));
    ca.verify(&der(cert!("alice.pem")), &[&other, &deep, &int], NOW)
        .unwrap();
    // An intermediate can itself be the anchor.
    store(cert!("int.pem"))
        .verify(&der(cert!("alice.pem")), &[], NOW)
        .unwrap();
    // An unparseable extra is skipped; alone, its error is what is reported.
    ca.verify(&der(cert!("alice.pem")), &[b"junk", &int], NOW)
        .unwrap();
    let err = ca
        .verify(&der(cert!("alice.pem")), &[b"junk"], NOW)
        .unwrap_err();
    assert!(matches!(err, CertError::Malformed(_)), "{err}");
    // SHA-1 signed (legacy peers).
    ca.verify(&der(cert!("alice-sha1.pem")), &[&int], NOW)
        .unwrap();
}

#[test]
fn missing_intermediate_or_unknown_ca() {
    let ca = store(cert!("ca.pem"));
    let err = ca.verify(&der(cert!("alice.pem")), &[], NOW).unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "no trusted CA issued 'CN=alice, O=Example' \
         (issuer 'CN=Sluice Test Intermediate CA, O=Sluice Test')"
    );
    let err = ca
        .verify(&der(cert!("other-client.pem")), &[], NOW)
        .unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer { .. }), "{err}");
    // With both CAs in the bundle, both verify.
    let mut bundle = cert!("ca.pem").to_vec();
    bundle.extend_from_slice(cert!("other-ca.pem"));
    let both = store(&bundle);
    assert_eq!(both.ca_names().len(), 2);
    both.verify(&der(cert!("other-client.pem")), &[], NOW)
        .unwrap();
    both.verify(&der(cert!("alice.pem")), &[&der(cert!("int.pem"))], NOW)
        .unwrap();
}

#[test]
fn validity_period() {
    let ca = store(cert!("ca.pem"));
    let int = der(cert!("int.pem"));
    let err = ca
        .verify(&der(cert!("expired.pem")), &[&int], NOW)
        .unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "certificate 'CN=expired, O=Example' expired at 2021-01-01T00:00:00Z"
    );
    // 2023-11-14: before every good certificate's notBefore.
    let err = ca
        .verify(&der(cert!("alice.pem")), &[&int], 1_700_000_000)
        .unwrap_err();
    assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");
    // 2046: everything has expired.
    let err = ca
        .verify(&der(cert!("alice.pem")), &[&int], 2_400_000_000)
        .unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
    // The bounds themselves are inclusive.
    ca.verify(&der(cert!("alice.pem")), &[&int], 1_735_689_600)
        .unwrap();
    ca.verify(&der(cert!("alice.pem")), &[&int], 2_366_841_600)
        .unwrap();
    ca.verify(&der(cert!("alice.pem")), &[&int], 2_366_841_601)
        .unwrap_err();
}

#[test]
fn tampered_certificate_refused() {
    let ca = store(cert!("ca.pem"));
    let int = der(cert!("int.pem"));
    let good = der(cert!("alice.pem"));
    // Last octet of the signature.
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    let err = ca.verify(&bad, &[&int], NOW).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");
    // A signed octet: the subject's CN "alice" becomes "alicf".
    let pos = good.windows(5).position(|w| w == b"alice").unwrap();
    let mut bad = good.clone();
    bad[pos + 4] = b'f';
    let err = ca.verify(&bad, &[&int], NOW).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");
    // An intermediate whose signature is broken.
    let mut bad_int = int.clone();
    *bad_int.last_mut().unwrap() ^= 0x80;
    let err = ca.verify(&good, &[&bad_int], NOW).unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");
}

#[test]
fn leaf_used_as_ca_refused() {
    let ca = store(cert!("ca.pem"));
    let chain = [der(cert!("alice.pem")), der(cert!("int.pem"))];
    let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let err = ca
        .verify(&der(cert!("mallory.pem")), &chain, NOW)
        .unwrap_err();
    assert_eq!(err, CertError::NotCa("CN=alice, O=Example".into()));
    // Nor may a leaf be a trust anchor.
    let err = TrustStore::from_pem(cert!("alice.pem")).unwrap_err();
    assert_eq!(err, CertError::NotCa("CN=alice, O=Example".into()));
}

#[test]
fn path_length_bounds() {
    let ca = store(cert!("ca.pem"));
    // int has pathlen:0, so the CA under it may not issue.
    let chain = [der(cert!("sub.pem")), der(cert!("int.pem"))];
    let chain: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
    let err = ca
        .verify(&der(cert!("sub-leaf.pem")), &chain, NOW)
        .unwrap_err();
    assert_eq!(
        err,
        CertError::PathLen("CN=Sluice Test Intermediate CA, O=Sluice Test".into())
    );
    let deep = [
        der(cert!("deep4.pem")),
        der(cert!("deep3.pem")),
        der(cert!("deep2.pem")),
        der(cert!("deep1.pem")),
    ];
    let deep: Vec<&[u8]> = deep.iter().map(Vec::as_slice).collect();
    // leaf + 3 intermediates + anchor = 5.
    ca.verify(&der(cert!("deep-ok.pem")), &deep, NOW).unwrap();
    // leaf + 4 intermediates + anchor = 6.
    let err = ca
        .verify(&der(cert!("deep-long.pem")), &deep, NOW)
        .unwrap_err();
    assert_eq!(err, CertError::PathTooLong);
    // More intermediates than accepted at all.
    let six = vec![deep[0]; 6];
    let err = ca.verify(&der(cert!("alice.pem")), &six, NOW).unwrap_err();
    assert_eq!(err, CertError::TooManyIntermediates(6));
}

#[test]
fn key_usage_critical_extensions_and_key_size() {
    let ca = store(cert!("ca.pem"));
    let int = der(cert!("int.pem"));
    let err = ca
        .verify(&der(cert!("enc-only.pem")), &[&int], NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CertError::KeyUsage {
                needed: "digitalSignature",
                ..
            }
        ),
        "{err}"
    );
    let err = ca
        .verify(&der(cert!("critext.pem")), &[&int], NOW)
        .unwrap_err();
    assert!(
        matches!(&err, CertError::CriticalExtension { oid, .. } if oid == "1.3.6.1.4.1.55555.1"),
        "{err}"
    );
    let err = ca
        .verify(&der(cert!("small.pem")), &[&int], NOW)
        .unwrap_err();
    assert_eq!(err, CertError::RsaKeySize(1024));
    let err = Credentials::from_pem(cert!("small.pem"), cert!("small.key")).unwrap_err();
    assert_eq!(err, CertError::RsaKeySize(1024));
    let err = ca
        .verify(&vec![0x30; MAX_CERT_LEN + 1], &[], NOW)
        .unwrap_err();
    assert_eq!(err, CertError::TooLarge(MAX_CERT_LEN + 1));
}

#[test]
fn ecdsa_chains() {
    let ec = store(cert!("ec-ca.pem"));
    let peer = ec.verify(&der(cert!("ec-client.pem")), &[], NOW).unwrap();
    assert_eq!(peer.subject_display(), "CN=ec-client, O=Example");
    // An RSA leaf under a P-384 CA, signed ecdsa-with-SHA384.
    store(cert!("p384-ca.pem"))
        .verify(&der(cert!("bob.pem")), &[], NOW)
        .unwrap();
    // RFC 4754 signature (r ‖ s) with the client's P-256 key.
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let key_der = &pem_blocks(cert!("ec-client.key")).unwrap()[0].1;
    let sk = p256::ecdsa::SigningKey::from_pkcs8_der(key_der).unwrap();
    let hash = Sha256::digest(b"HASH_I");
    let sig: p256::ecdsa::Signature = sk.sign_prehash(&hash).unwrap();
    assert!(peer.verify_hash_signature(&hash, &sig.to_bytes()));
    assert!(!peer.verify_hash_signature(&Sha256::digest(b"HASH_R"), &sig.to_bytes()));
    // The ECDSA CA does not vouch for RSA-CA certificates, and vice versa.
    let err = ec
        .verify(&der(cert!("alice.pem")), &[&der(cert!("int.pem"))], NOW)
        .unwrap_err();
    assert!(matches!(err, CertError::UnknownIssuer { .. }), "{err}");
}

#[test]
fn credentials_from_pem() {
    let gw = gateway();
    assert_eq!(gw.chain_der().count(), 2);
    assert_eq!(gw.leaf_der(), der(cert!("gateway.pem")).as_slice());
    assert_eq!(
        gw.chain_der().nth(1).unwrap(),
        der(cert!("int.pem")).as_slice()
    );
    assert_eq!(gw.subject_display(), "CN=vpn.example.test, O=Example");
    assert!(!format!("{gw:?}").contains("key:"));
    // PKCS#1 key.
    let alice = Credentials::from_pem(cert!("alice.pem"), cert!("alice.key")).unwrap();
    assert_eq!(alice.subject_dn_der(), verify_alice().subject_dn_der());
    // Mismatched key.
    let err = Credentials::from_pem(cert!("gateway-chain.pem"), cert!("alice.key")).unwrap_err();
    assert_eq!(err, CertError::KeyMismatch);
    assert_eq!(
        err.to_string(),
        "private key does not match the certificate"
    );
    // Missing pieces and unsupported forms.
    let err = Credentials::from_pem(b"", cert!("alice.key")).unwrap_err();
    assert_eq!(err, CertError::NoCertificate);
    let err = Credentials::from_pem(cert!("alice.pem"), cert!("alice.pem")).unwrap_err();
    assert_eq!(err, CertError::NoPrivateKey);
    let enc = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let err = Credentials::from_pem(cert!("alice.pem"), enc).unwrap_err();
    assert_eq!(err, CertError::EncryptedKey);
    let err = Credentials::from_pem(cert!("ec-client.pem"), cert!("ec-client.key")).unwrap_err();
    assert!(matches!(err, CertError::UnsupportedKey(_)), "{err}");
    let err = Credentials::from_pem(b"-----BEGIN CERTIFICATE-----\n!!\n", b"").unwrap_err();
    assert!(matches!(err, CertError::Pem(_)), "{err}");
}

#[test]
fn sign_hash_known_answers() {
    let gw = gateway();
    for (input, want) in [(SIGN_IN20, SIGN_OUT20), (SIGN_IN32, SIGN_OUT32)] {
        let sig = gw.sign_hash(&mut rng(), &hex(input)).unwrap();
        assert_eq!(sig, hex(want));
    }
    // Blinding randomness does not change the signature.
    let a = gw.sign_hash(&mut ChaCha20Rng::from_seed([1; 32]), &hex(SIGN_IN20));
    let b = gw.sign_hash(&mut ChaCha20Rng::from_seed([2; 32]), &hex(SIGN_IN20));
    assert_eq!(a.unwrap(), b.unwrap());
    assert!(gw.sign_hash(&mut rng(), &[]).is_err());
    assert!(gw.sign_hash(&mut rng(), &[0; 65]).is_err());
}

#[test]
fn sign_verify_round_trip() {
    let ca = store(cert!("ca.pem"));
    let gw = gateway();
    let chain: Vec<&[u8]> = gw.chain_der().skip(1).collect();
    let peer = ca.verify(gw.leaf_der(), &chain, NOW).unwrap();
    for len in [16, 20, 32, 48, 64] {
        let hash: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
        let sig = gw.sign_hash(&mut rng(), &hash).unwrap();
        assert_eq!(sig.len(), 256);
        assert!(peer.verify_hash_signature(&hash, &sig));
        // Wrong hash, flipped signature bit, truncated signature.
        let mut other = hash.clone();
        other[0] ^= 1;
        assert!(!peer.verify_hash_signature(&other, &sig));
        assert!(!peer.verify_hash_signature(&hash[..len - 1], &sig));
        let mut bad = sig.clone();
        bad[100] ^= 4;
        assert!(!peer.verify_hash_signature(&hash, &bad));
        assert!(!peer.verify_hash_signature(&hash, &sig[1..]));
        // Alice's certificate does not verify the gateway's signature.
        assert!(!verify_alice().verify_hash_signature(&hash, &sig));
    }
    assert!(!peer.verify_hash_signature(&[], &[]));
    // A DigestInfo-wrapped PKCS#1 signature (what TLS or X.509 would make) is not an
    // IKEv1 signature.
    let hash = Sha256::digest(b"x");
    let key =
        RsaPrivateKey::from_pkcs8_der(&pem_blocks(cert!("gateway.key")).unwrap()[0].1).unwrap();
    let wrapped = key
        .sign_with_rng(&mut rng(), Pkcs1v15Sign::new::<Sha256>(), &hash)
        .unwrap();
    assert!(!peer.verify_hash_signature(&hash, &wrapped));
}

#[test]
fn ca_names_are_subject_dns() {
    let ca = store(cert!("ca.pem"));
    let names = ca.ca_names();
    assert_eq!(names.len(), 1);
    let root = Parsed::parse(&der(cert!("ca.pem"))).unwrap();
    assert_eq!(names[0], root.subject_der);
    assert_eq!(
        Certificate::from_der(&der(cert!("ca.pem")))
            .unwrap()
            .tbs_certificate()
            .subject(),
        &x509_cert::name::Name::from_der(&names[0]).unwrap()
    );
    let int = Parsed::parse(&der(cert!("int.pem"))).unwrap();
    assert_eq!(int.issuer_der, names[0]);
    assert_ne!(int.subject_der, names[0]);
}

#[test]
fn id_matching() {
    let ca = store(cert!("ca.pem"));
    let int = der(cert!("int.pem"));
    let gw = ca.verify(&der(cert!("gateway.pem")), &[&int], NOW).unwrap();
    let alice = verify_alice();

    assert!(gw.matches_id(&id(id_type::DER_ASN1_DN, gateway().subject_dn_der())));
    assert!(!gw.matches_id(&id(id_type::DER_ASN1_DN, alice.subject_dn_der())));
    assert!(alice.matches_id(&id(id_type::DER_ASN1_DN, alice.subject_dn_der())));
    assert!(!alice.matches_id(&id(id_type::DER_ASN1_DN, b"")));

    assert!(gw.matches_id(&id(id_type::FQDN, b"vpn.example.test")));
    assert!(gw.matches_id(&id(id_type::FQDN, b"VPN.Example.TEST")));
    assert!(!gw.matches_id(&id(id_type::FQDN, b"vpn.example.tes")));
    assert!(!gw.matches_id(&id(id_type::FQDN, b"other.example.test")));
    assert!(!alice.matches_id(&id(id_type::FQDN, b"vpn.example.test")));

    assert!(alice.matches_id(&id(id_type::USER_FQDN, b"alice@example.test")));
    assert!(alice.matches_id(&id(id_type::USER_FQDN, b"Alice@Example.test")));
    assert!(!alice.matches_id(&id(id_type::USER_FQDN, b"bob@example.test")));
    assert!(!alice.matches_id(&id(id_type::FQDN, b"alice@example.test")));
    // The CN is not an FQDN SAN.
    assert!(!alice.matches_id(&id(id_type::FQDN, b"alice")));

    let ip = |a: IpAddr| Identification::address(a, 0, 0);
    assert!(gw.matches_id(&ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)))));
    assert!(!gw.matches_id(&ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)))));
    assert!(!gw.matches_id(&ip(IpAddr::V6(Ipv6Addr::LOCALHOST))));
    assert!(!alice.matches_id(&ip(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)))));
    // An IPv4 address given as a 16-octet ID_IPV6_ADDR does not match.
    let mapped = Ipv4Addr::new(198, 51, 100, 1).to_ipv6_mapped().octets();
    assert!(!gw.matches_id(&id(id_type::IPV6_ADDR, &mapped)));

    assert!(!gw.matches_id(&id(id_type::KEY_ID, b"vpn.example.test")));
    assert!(!gw.matches_id(&id(
        id_type::IPV4_ADDR_SUBNET,
        &[198, 51, 100, 1, 255, 255, 255, 255]
    )));
}

#[test]
fn trust_store_pem_errors() {
    assert_eq!(
        TrustStore::from_pem(b"").unwrap_err(),
        CertError::NoCertificate
    );
    assert_eq!(
        TrustStore::from_pem(cert!("gateway.key")).unwrap_err(),
        CertError::NoCertificate
    );
    let err = TrustStore::from_pem(&[0xff, 0xfe]).unwrap_err();
    assert!(matches!(err, CertError::Pem(_)), "{err}");
    // Text around blocks (as `openssl x509 -text` leaves) is skipped.
    let mut noisy = b"Certificate:\n    Data: ...\n".to_vec();
    noisy.extend_from_slice(cert!("ca.pem"));
    noisy.extend_from_slice(b"trailing words\n");
    assert_eq!(store(&noisy).ca_names().len(), 1);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics(
        leaf in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        inter in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
    ) {
        let ca = store(cert!("ca.pem"));
        proptest::prop_assert!(ca.verify(&leaf, &[&inter], NOW).is_err());
        let _ = TrustStore::from_pem(&leaf);
        let _ = Credentials::from_pem(&leaf, &inter);
    }

    #[test]
    fn mutated_certificate_never_panics(pos in 0usize..2048, val in proptest::prelude::any::<u8>(), cut in 0usize..2048) {
        let ca = store(cert!("ca.pem"));
        let int = der(cert!("int.pem"));
        let good = der(cert!("alice.pem"));
        let mut bad = good.clone();
        let pos = pos % bad.len();
        bad[pos] = val;
        let ok = ca.verify(&bad, &[&int], NOW).is_ok();
        proptest::prop_assert_eq!(ok, bad == good);
        bad.truncate(cut % good.len());
        proptest::prop_assert!(ca.verify(&bad, &[&int], NOW).is_err());
        proptest::prop_assert!(ca.verify(&good, &[&bad], NOW).is_err());
    }

    #[test]
    fn random_signatures_refused(sig in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let peer = verify_alice();
        proptest::prop_assert!(!peer.verify_hash_signature(&[1; 20], &sig));
    }
}
