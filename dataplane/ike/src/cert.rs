//! X.509 certificates and RSA signatures for Main Mode with RSA signature authentication
//! (RFC 2409 §5.1, authentication method 3).
//!
//! - [`Credentials`]: our certificate chain and RSA private key; [`Credentials::sign_hash`]
//!   makes the SIG payload over HASH_I / HASH_R.
//! - [`TrustStore`]: the CA certificates that peers must chain to; its names fill Certificate
//!   Request payloads and [`TrustStore::verify`] validates what a peer sent.
//! - [`PeerCert`]: a verified peer certificate: its SIG check and ID payload match.
//!
//! IKEv1 signs the bare hash: RSA PKCS#1 v1.5 type-1 padding of HASH_I / HASH_R with *no*
//! DigestInfo (RFC 2409 §5.1 leaves the encoding to the signature algorithm; every IKEv1
//! implementation, Windows included, pads the raw PRF output; strongSwan's
//! `SIGN_RSA_EMSA_PKCS1_NULL`).
//!
//! Path validation is the subset of RFC 5280 §6 an IKE gateway needs: signatures (RSA PKCS#1
//! v1.5 with SHA-1/256/384/512; ECDSA P-256/P-384 with SHA-256/384/512), validity at a time
//! the caller passes (no clock here), basicConstraints `cA` and `pathLenConstraint` on every
//! issuer (the anchor included), keyUsage (`keyCertSign` on issuers, `digitalSignature` on
//! the leaf, where the extension is present), refusal of unknown critical extensions, at
//! most [`MAX_PATH`] certificates. Not done: revocation (CRL/OCSP), name constraints (a
//! certificate marking them critical is refused), policy processing, extendedKeyUsage.
//! Names are compared as DER octets.
//!
//! Everything from the network is parsed by the `x509-cert`/`der` crates under hard size
//! limits; no input panics. RSA keys of fewer than 2048 or more than 8192 bits are refused.

use std::fmt;

use rand_core::CryptoRng;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey as RsaPrivateKey, PublicKey as RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use x509_cert::Certificate;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::oid::db::{rfc5280, rfc5912};
use x509_cert::der::{Decode, Reader, SliceReader};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName};
use x509_cert::time::Time;
use zeroize::Zeroizing;

use crate::identity::{Identification, id_type};

/// Largest DER certificate accepted.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// Most intermediate certificates accepted from a peer for one verification.
pub const MAX_INTERMEDIATES: usize = 5;
/// Most certificates in a validated path, leaf and trust anchor included.
pub const MAX_PATH: usize = 5;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 8192;
/// Longest hash accepted by [`Credentials::sign_hash`] and
/// [`PeerCert::verify_hash_signature`] (SHA-512 output).
pub const MAX_HASH_LEN: usize = 64;

/// Why a certificate, key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The PEM text is malformed.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// No `CERTIFICATE` block in the PEM text.
    #[error("no CERTIFICATE block found")]
    NoCertificate,
    /// No private key block in the PEM text.
    #[error("no PRIVATE KEY or RSA PRIVATE KEY block found")]
    NoPrivateKey,
    /// A certificate exceeds [`MAX_CERT_LEN`].
    #[error("certificate is {0} octets (limit {MAX_CERT_LEN})")]
    TooLarge(usize),
    /// More intermediates than [`MAX_INTERMEDIATES`].
    #[error("{0} intermediate certificates (limit {MAX_INTERMEDIATES})")]
    TooManyIntermediates(usize),
    /// The certificate's DER does not parse.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The subject public key is neither RSA nor ECDSA P-256/P-384.
    #[error("unsupported public key algorithm {0}")]
    UnsupportedKey(String),
    /// The certificate is signed with an algorithm not handled here (RSA-PSS, Ed25519, …).
    #[error("unsupported signature algorithm {0}")]
    UnsupportedSignature(String),
    /// An RSA key outside [`MIN_RSA_BITS`]..=[`MAX_RSA_BITS`].
    #[error("RSA key of {0} bits refused (allowed {MIN_RSA_BITS} to {MAX_RSA_BITS})")]
    RsaKeySize(usize),
    /// A private key that does not parse, or not an RSA key.
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    /// A password-protected private key.
    #[error("encrypted private keys are not supported")]
    EncryptedKey,
    /// The private key is not the one certified by the leaf certificate.
    #[error("private key does not match the certificate")]
    KeyMismatch,
    /// A trust anchor or issuer without basicConstraints `cA=true`.
    #[error("'{0}' is not a CA certificate (basicConstraints)")]
    NotCa(String),
    /// A certificate's notBefore is after the verification time.
    #[error("certificate '{subject}' is not valid before {not_before}")]
    NotYetValid {
        /// Subject, for logs.
        subject: String,
        /// notBefore, RFC 3339.
        not_before: String,
    },
    /// A certificate's notAfter is before the verification time.
    #[error("certificate '{subject}' expired at {not_after}")]
    Expired {
        /// Subject, for logs.
        subject: String,
        /// notAfter, RFC 3339.
        not_after: String,
    },
    /// No trust anchor or supplied intermediate names the certificate's issuer.
    #[error("no trusted CA issued '{subject}' (issuer '{issuer}')")]
    UnknownIssuer {
        /// Subject, for logs.
        subject: String,
        /// Issuer named by the certificate.
        issuer: String,
    },
    /// The issuer's key does not verify the certificate's signature.
    #[error("signature on '{subject}' does not verify with the key of '{issuer}'")]
    BadSignature {
        /// Subject, for logs.
        subject: String,
        /// Issuer whose key was tried.
        issuer: String,
    },
    /// An issuer's pathLenConstraint is exceeded.
    #[error("path length constraint of '{0}' exceeded")]
    PathLen(String),
    /// The path would hold more than [`MAX_PATH`] certificates.
    #[error("certificate path longer than {MAX_PATH}")]
    PathTooLong,
    /// keyUsage is present and lacks a required bit.
    #[error("keyUsage of '{subject}' lacks {needed}")]
    KeyUsage {
        /// Subject, for logs.
        subject: String,
        /// The missing usage.
        needed: &'static str,
    },
    /// A critical extension this module does not process (RFC 5280 §4.2).
    #[error("certificate '{subject}' has unsupported critical extension {oid}")]
    CriticalExtension {
        /// Subject, for logs.
        subject: String,
        /// The extension's OID.
        oid: String,
    },
    /// The hash to sign is empty, too long, or too long for the key.
    #[error("RSA signing failed: {0}")]
    Sign(String),
}

/// Our certificate (leaf first, then intermediates) and RSA private key. The key is zeroized
/// on drop (by `rsa::PrivateKey`).
pub struct Credentials {
    chain: Vec<Vec<u8>>,
    subject_der: Vec<u8>,
    subject_display: String,
    key: RsaPrivateKey,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("subject", &self.subject_display)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From PEM: the certificate chain (leaf first, then intermediates; other blocks are
    /// ignored) and an unencrypted PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) RSA
    /// key. Errors if the key does not match the leaf's public key. The chain's signatures
    /// are not checked here (there is no trust store); each certificate must parse.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Credentials, CertError> {
        let chain: Vec<Vec<u8>> = pem_blocks(chain_pem)?
            .into_iter()
            .filter(|(label, _)| label.as_str() == "CERTIFICATE")
            .map(|(_, der)| der.to_vec())
            .collect();
        if chain.len() > MAX_PATH {
            return Err(CertError::TooManyIntermediates(
                chain.len().saturating_sub(1),
            ));
        }
        let parsed = chain
            .iter()
            .map(|der| Parsed::parse(der))
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = parsed.first().ok_or(CertError::NoCertificate)?;
        let PubKey::Rsa(leaf_key) = &leaf.key else {
            return Err(CertError::UnsupportedKey(
                "for our certificate (IKEv1 RSA signature authentication needs an RSA key)".into(),
            ));
        };

        let mut key = None;
        for (label, der) in pem_blocks(key_pem)? {
            key = Some(match label.as_str() {
                "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| {
                    CertError::PrivateKey(format!("PKCS#8 (only RSA keys are supported): {e}"))
                })?,
                "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_der(&der)
                    .map_err(|e| CertError::PrivateKey(format!("PKCS#1: {e}")))?,
                "ENCRYPTED PRIVATE KEY" => return Err(CertError::EncryptedKey),
                "EC PRIVATE KEY" => {
                    return Err(CertError::PrivateKey("EC keys are not supported".into()));
                }
                _ => continue,
            });
            break;
        }
        let key = key.ok_or(CertError::NoPrivateKey)?;
        if key.as_public_key() != leaf_key {
            return Err(CertError::KeyMismatch);
        }
        Ok(Credentials {
            subject_der: leaf.subject_der.clone(),
            subject_display: leaf.subject_display.clone(),
            chain,
            key,
        })
    }

    /// The leaf certificate, DER (body of a CERT payload, encoding 4 X.509 Signature).
    pub fn leaf_der(&self) -> &[u8] {
        self.chain.first().map_or(&[], Vec::as_slice)
    }

    /// Every certificate, leaf first, DER.
    pub fn chain_der(&self) -> impl Iterator<Item = &[u8]> {
        self.chain.iter().map(Vec::as_slice)
    }

    /// The leaf's subject Name, DER (the data of an ID_DER_ASN1_DN payload, RFC 2407
    /// §4.6.2.1).
    pub fn subject_dn_der(&self) -> &[u8] {
        &self.subject_der
    }

    /// The leaf's subject for logs, e.g. `CN=vpn.example.test, O=Example`.
    pub fn subject_display(&self) -> &str {
        &self.subject_display
    }

    /// The IKEv1 signature over HASH_I / HASH_R (RFC 2409 §5.1): RSA PKCS#1 v1.5 type-1
    /// padding of the bare hash, no DigestInfo.
    ///
    /// `rng` only blinds the private-key operation (base and exponent blinding against
    /// timing side channels); the signature is deterministic and does not depend on it.
    /// The caller passes it because this crate draws no OS randomness.
    pub fn sign_hash<R: CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        hash: &[u8],
    ) -> Result<Vec<u8>, CertError> {
        if hash.is_empty() || hash.len() > MAX_HASH_LEN {
            return Err(CertError::Sign(format!("hash of {} octets", hash.len())));
        }
        self.key
            .sign_with_rng(rng, Pkcs1v15Sign::new_unprefixed(), hash)
            .map_err(|e| CertError::Sign(e.to_string()))
    }
}

/// CA certificates that peer certificates must chain to.
#[derive(Debug)]
pub struct TrustStore {
    anchors: Vec<Parsed>,
}

impl TrustStore {
    /// From one or more PEM `CERTIFICATE` blocks (other blocks are ignored). Each must be a
    /// CA (basicConstraints `cA=true`, keyUsage `keyCertSign` if keyUsage is present) with a
    /// supported key.
    pub fn from_pem(bundle: &[u8]) -> Result<TrustStore, CertError> {
        let mut anchors = Vec::new();
        for (label, der) in pem_blocks(bundle)? {
            if label.as_str() != "CERTIFICATE" {
                continue;
            }
            let cert = Parsed::parse(&der)?;
            cert.check_can_issue()?;
            anchors.push(cert);
        }
        if anchors.is_empty() {
            return Err(CertError::NoCertificate);
        }
        Ok(TrustStore { anchors })
    }

    /// The anchors' subject Names, DER: the bodies of Certificate Request payloads (RFC 2408
    /// §3.10, certificate type 4 X.509 Signature).
    pub fn ca_names(&self) -> Vec<Vec<u8>> {
        self.anchors.iter().map(|a| a.subject_der.clone()).collect()
    }

    /// Verifies a peer's leaf certificate, with the intermediates it sent (any order; unused
    /// or unparseable ones are ignored), up to a trust anchor, at `now_unix` (seconds since
    /// the epoch). Trust anchors are preferred to intermediates at every step.
    pub fn verify(
        &self,
        leaf_der: &[u8],
        intermediates: &[&[u8]],
        now_unix: u64,
    ) -> Result<PeerCert, CertError> {
        if intermediates.len() > MAX_INTERMEDIATES {
            return Err(CertError::TooManyIntermediates(intermediates.len()));
        }
        let leaf = Parsed::parse(leaf_der)?;
        if let Some(ku) = &leaf.key_usage
            && !ku.digital_signature()
        {
            return Err(CertError::KeyUsage {
                subject: leaf.subject_display.clone(),
                needed: "digitalSignature",
            });
        }
        leaf.check_time(now_unix)?;
        // An intermediate that does not parse is skipped (peers send extras); its error is
        // reported if no path is found.
        let mut bad_intermediate = None;
        let pool: Vec<Parsed> = intermediates
            .iter()
            .filter_map(|der| {
                Parsed::parse(der)
                    .map_err(|e| bad_intermediate.get_or_insert(e))
                    .ok()
            })
            .collect();
        let mut used = vec![false; pool.len()];

        let mut cur = &leaf;
        // Certificates in the path so far, and intermediate CAs below the next issuer.
        let mut path = 1usize;
        let mut cas_below = 0usize;
        loop {
            if path >= MAX_PATH {
                return Err(CertError::PathTooLong);
            }
            let mut first_err = None;
            for anchor in self
                .anchors
                .iter()
                .filter(|a| a.subject_der == cur.issuer_der)
            {
                match anchor.check_issued(cur, cas_below, now_unix) {
                    Ok(()) => return Ok(PeerCert::new(leaf)),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            let mut next = None;
            for (i, cand) in pool.iter().enumerate() {
                if used.get(i).copied().unwrap_or(true) || cand.subject_der != cur.issuer_der {
                    continue;
                }
                match cand.check_issued(cur, cas_below, now_unix) {
                    Ok(()) => {
                        next = Some(i);
                        break;
                    }
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            let Some((i, issuer)) = next.and_then(|i| pool.get(i).map(|c| (i, c))) else {
                return Err(first_err.or(bad_intermediate).unwrap_or_else(|| {
                    CertError::UnknownIssuer {
                        subject: cur.subject_display.clone(),
                        issuer: cur.issuer_display.clone(),
                    }
                }));
            };
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            if issuer.subject_der != issuer.issuer_der {
                cas_below += 1;
            }
            path += 1;
            cur = issuer;
        }
    }
}

/// A peer certificate that [`TrustStore::verify`] accepted.
#[derive(Debug)]
pub struct PeerCert {
    cert: Parsed,
}

impl PeerCert {
    fn new(cert: Parsed) -> PeerCert {
        PeerCert { cert }
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.cert.der
    }

    /// The subject Name, DER.
    pub fn subject_dn_der(&self) -> &[u8] {
        &self.cert.subject_der
    }

    /// The subject for logs, most specific attribute first: `CN=alice, O=Example`.
    pub fn subject_display(&self) -> String {
        self.cert.subject_display.clone()
    }

    /// Checks an IKEv1 SIG payload over `hash` (HASH_I or HASH_R). For an RSA key: PKCS#1
    /// v1.5 type-1 padding of the bare hash, no DigestInfo (as [`Credentials::sign_hash`]
    /// makes), compared in constant time by the `rsa` crate. For an ECDSA key: the RFC 4754
    /// §7 encoding, r ‖ s of the curve's size, over the hash as given.
    pub fn verify_hash_signature(&self, hash: &[u8], sig: &[u8]) -> bool {
        if hash.is_empty() || hash.len() > MAX_HASH_LEN {
            return false;
        }
        match &self.cert.key {
            PubKey::Rsa(k) => k.verify(Pkcs1v15Sign::new_unprefixed(), hash, sig).is_ok(),
            PubKey::P256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                p256::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(hash, &s).is_ok())
            }
            PubKey::P384(k) => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                p384::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_prehash(hash, &s).is_ok())
            }
        }
    }

    /// Whether an ID payload names this certificate: ID_DER_ASN1_DN equal (as DER) to the
    /// subject; ID_FQDN equal, ignoring ASCII case, to a dNSName subjectAltName;
    /// ID_USER_FQDN likewise to an rfc822Name; ID_IPV4_ADDR / ID_IPV6_ADDR equal to an
    /// iPAddress. Other ID types never match.
    pub fn matches_id(&self, id: &Identification) -> bool {
        let c = &self.cert;
        let data = id.data.as_slice();
        match id.id_type {
            id_type::DER_ASN1_DN => !data.is_empty() && data == c.subject_der.as_slice(),
            id_type::FQDN => c
                .dns
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(data)),
            id_type::USER_FQDN => c
                .email
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(data)),
            id_type::IPV4_ADDR if data.len() == 4 => c.ip.iter().any(|a| a.as_slice() == data),
            id_type::IPV6_ADDR if data.len() == 16 => c.ip.iter().any(|a| a.as_slice() == data),
            _ => false,
        }
    }
}

/// A subject public key.
enum PubKey {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl fmt::Debug for PubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PubKey::Rsa(k) => write!(f, "RSA-{}", k.n().bit_width_vartime()),
            PubKey::P256(_) => f.write_str("ECDSA-P256"),
            PubKey::P384(_) => f.write_str("ECDSA-P384"),
        }
    }
}

/// A certificate signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigAlg {
    RsaSha1,
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SigAlg {
    fn from_oid(oid: ObjectIdentifier) -> Result<SigAlg, CertError> {
        Ok(match oid {
            rfc5912::SHA_1_WITH_RSA_ENCRYPTION => SigAlg::RsaSha1,
            rfc5912::SHA_256_WITH_RSA_ENCRYPTION => SigAlg::RsaSha256,
            rfc5912::SHA_384_WITH_RSA_ENCRYPTION => SigAlg::RsaSha384,
            rfc5912::SHA_512_WITH_RSA_ENCRYPTION => SigAlg::RsaSha512,
            rfc5912::ECDSA_WITH_SHA_256 => SigAlg::EcdsaSha256,
            rfc5912::ECDSA_WITH_SHA_384 => SigAlg::EcdsaSha384,
            rfc5912::ECDSA_WITH_SHA_512 => SigAlg::EcdsaSha512,
            other => return Err(CertError::UnsupportedSignature(oid_name(other))),
        })
    }
}

/// A parsed certificate with what validation needs.
struct Parsed {
    der: Vec<u8>,
    tbs: Vec<u8>,
    issuer_der: Vec<u8>,
    subject_der: Vec<u8>,
    issuer_display: String,
    subject_display: String,
    sig_alg: SigAlg,
    signature: Vec<u8>,
    key: PubKey,
    not_before: Time,
    not_after: Time,
    basic: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
    dns: Vec<String>,
    email: Vec<String>,
    ip: Vec<Vec<u8>>,
}

impl fmt::Debug for Parsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject_display)
            .field("issuer", &self.issuer_display)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Parsed {
    fn parse(der: &[u8]) -> Result<Parsed, CertError> {
        if der.len() > MAX_CERT_LEN {
            return Err(CertError::TooLarge(der.len()));
        }
        let malformed = |e: x509_cert::der::Error| CertError::Malformed(e.to_string());
        let cert = Certificate::from_der(der).map_err(malformed)?;
        let raw = RawParts::split(der).map_err(malformed)?;
        let tbs = cert.tbs_certificate();
        let subject_display = display_name(tbs.subject());

        if cert.signature_algorithm() != tbs.signature() {
            return Err(CertError::Malformed(
                "signatureAlgorithm differs from the TBS signature field".into(),
            ));
        }
        let sig_alg = SigAlg::from_oid(cert.signature_algorithm().oid)?;
        let signature = cert
            .signature()
            .as_bytes()
            .ok_or_else(|| CertError::Malformed("signature has unused bits".into()))?
            .to_vec();
        let key = parse_spki(tbs.subject_public_key_info())?;

        let mut basic = None;
        let mut key_usage = None;
        let (mut dns, mut email, mut ip) = (Vec::new(), Vec::new(), Vec::new());
        for ext in tbs.extensions().map_or(&[][..], Vec::as_slice) {
            let value = ext.extn_value.as_bytes();
            match ext.extn_id {
                rfc5280::ID_CE_BASIC_CONSTRAINTS => {
                    basic = Some(BasicConstraints::from_der(value).map_err(malformed)?);
                }
                rfc5280::ID_CE_KEY_USAGE => {
                    key_usage = Some(KeyUsage::from_der(value).map_err(malformed)?);
                }
                rfc5280::ID_CE_SUBJECT_ALT_NAME => {
                    for name in SubjectAltName::from_der(value).map_err(malformed)?.0 {
                        match name {
                            GeneralName::DnsName(n) => dns.push(n.to_string()),
                            GeneralName::Rfc822Name(n) => email.push(n.to_string()),
                            GeneralName::IpAddress(a) => ip.push(a.as_bytes().to_vec()),
                            _ => {}
                        }
                    }
                }
                // Understood well enough to accept when critical: EKU is not enforced (IKE
                // has no universal purpose OID), policies impose nothing without an initial
                // policy set, key identifiers are hints.
                rfc5280::ID_CE_EXT_KEY_USAGE
                | rfc5280::ID_CE_CERTIFICATE_POLICIES
                | rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER
                | rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER => {}
                oid if ext.critical => {
                    return Err(CertError::CriticalExtension {
                        subject: subject_display,
                        oid: oid_name(oid),
                    });
                }
                _ => {}
            }
        }

        Ok(Parsed {
            der: der.to_vec(),
            tbs: raw.tbs.to_vec(),
            issuer_der: raw.issuer.to_vec(),
            subject_der: raw.subject.to_vec(),
            issuer_display: display_name(tbs.issuer()),
            subject_display,
            sig_alg,
            signature,
            key,
            not_before: tbs.validity().not_before,
            not_after: tbs.validity().not_after,
            basic,
            key_usage,
            dns,
            email,
            ip,
        })
    }

    /// Checks that this certificate may issue others (basicConstraints, keyUsage).
    fn check_can_issue(&self) -> Result<(), CertError> {
        if !self.basic.as_ref().is_some_and(|b| b.ca) {
            return Err(CertError::NotCa(self.subject_display.clone()));
        }
        if let Some(ku) = &self.key_usage
            && !ku.key_cert_sign()
        {
            return Err(CertError::KeyUsage {
                subject: self.subject_display.clone(),
                needed: "keyCertSign",
            });
        }
        Ok(())
    }

    /// Checks that this certificate, as the issuer of `child` with `cas_below` intermediate
    /// CAs between it and the leaf, is valid and signed `child`.
    fn check_issued(&self, child: &Parsed, cas_below: usize, now: u64) -> Result<(), CertError> {
        self.check_can_issue()?;
        if let Some(max) = self.basic.as_ref().and_then(|b| b.path_len_constraint)
            && cas_below > usize::from(max)
        {
            return Err(CertError::PathLen(self.subject_display.clone()));
        }
        if !self
            .key
            .verifies(child.sig_alg, &child.tbs, &child.signature)
        {
            return Err(CertError::BadSignature {
                subject: child.subject_display.clone(),
                issuer: self.subject_display.clone(),
            });
        }
        self.check_time(now)
    }

    fn check_time(&self, now: u64) -> Result<(), CertError> {
        if now < self.not_before.to_unix_duration().as_secs() {
            return Err(CertError::NotYetValid {
                subject: self.subject_display.clone(),
                not_before: self.not_before.to_date_time().to_string(),
            });
        }
        if now > self.not_after.to_unix_duration().as_secs() {
            return Err(CertError::Expired {
                subject: self.subject_display.clone(),
                not_after: self.not_after.to_date_time().to_string(),
            });
        }
        Ok(())
    }
}

impl PubKey {
    /// Whether this key verifies `sig` over `tbs` with `alg`.
    fn verifies(&self, alg: SigAlg, tbs: &[u8], sig: &[u8]) -> bool {
        match (self, alg) {
            (PubKey::Rsa(k), SigAlg::RsaSha1) => rsa_verify::<Sha1>(k, tbs, sig),
            (PubKey::Rsa(k), SigAlg::RsaSha256) => rsa_verify::<Sha256>(k, tbs, sig),
            (PubKey::Rsa(k), SigAlg::RsaSha384) => rsa_verify::<Sha384>(k, tbs, sig),
            (PubKey::Rsa(k), SigAlg::RsaSha512) => rsa_verify::<Sha512>(k, tbs, sig),
            (PubKey::P256(k), _) => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let Some(digest) = ecdsa_digest(alg, tbs) else {
                    return false;
                };
                p256::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok())
            }
            (PubKey::P384(k), _) => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                let Some(digest) = ecdsa_digest(alg, tbs) else {
                    return false;
                };
                p384::ecdsa::Signature::from_der(sig)
                    .is_ok_and(|s| k.verify_prehash(&digest, &s).is_ok())
            }
            (PubKey::Rsa(_), _) => false,
        }
    }
}

fn rsa_verify<D: Digest + x509_cert::der::oid::AssociatedOid>(
    key: &RsaPublicKey,
    tbs: &[u8],
    sig: &[u8],
) -> bool {
    key.verify(Pkcs1v15Sign::new::<D>(), &D::digest(tbs), sig)
        .is_ok()
}

fn ecdsa_digest(alg: SigAlg, tbs: &[u8]) -> Option<Vec<u8>> {
    match alg {
        SigAlg::EcdsaSha256 => Some(Sha256::digest(tbs).to_vec()),
        SigAlg::EcdsaSha384 => Some(Sha384::digest(tbs).to_vec()),
        SigAlg::EcdsaSha512 => Some(Sha512::digest(tbs).to_vec()),
        _ => None,
    }
}

fn parse_spki(spki: &x509_cert::SubjectPublicKeyInfo) -> Result<PubKey, CertError> {
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| CertError::Malformed("subjectPublicKey has unused bits".into()))?;
    match spki.algorithm.oid {
        rfc5912::RSA_ENCRYPTION => {
            let pk = rsa::pkcs1::RsaPublicKeyRef::from_der(bits)
                .map_err(|e| CertError::Malformed(format!("RSA public key: {e}")))?;
            let n = pk.modulus.as_bytes();
            let n_bits = n.first().map_or(0, |&b| {
                (n.len() * 8).saturating_sub(b.leading_zeros() as usize)
            });
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&n_bits) {
                return Err(CertError::RsaKeySize(n_bits));
            }
            RsaPublicKey::try_from(pk)
                .map(PubKey::Rsa)
                .map_err(|e| CertError::Malformed(format!("RSA public key: {e}")))
        }
        rfc5912::ID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            let bad = |e: p256::ecdsa::Error| CertError::Malformed(format!("EC public key: {e}"));
            match curve {
                Some(rfc5912::SECP_256_R_1) => p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                    .map(PubKey::P256)
                    .map_err(bad),
                Some(rfc5912::SECP_384_R_1) => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                    .map(PubKey::P384)
                    .map_err(bad),
                Some(other) => Err(CertError::UnsupportedKey(format!(
                    "EC curve {}",
                    oid_name(other)
                ))),
                None => Err(CertError::UnsupportedKey(
                    "EC key without a named curve".into(),
                )),
            }
        }
        other => Err(CertError::UnsupportedKey(oid_name(other))),
    }
}

/// The encoded TBSCertificate, issuer and subject, as they appear in the certificate (the
/// signature covers these octets; names are compared as these octets).
struct RawParts<'a> {
    tbs: &'a [u8],
    issuer: &'a [u8],
    subject: &'a [u8],
}

impl<'a> RawParts<'a> {
    fn split(der: &'a [u8]) -> Result<RawParts<'a>, x509_cert::der::Error> {
        let mut r = SliceReader::new(der)?;
        let tbs = r.sequence(|r| {
            let tbs = r.tlv_bytes()?;
            r.tlv_bytes()?; // signatureAlgorithm
            r.tlv_bytes()?; // signatureValue
            Ok::<_, x509_cert::der::Error>(tbs)
        })?;
        r.finish()?;
        let mut r = SliceReader::new(tbs)?;
        let (issuer, subject) = r.sequence(|r| {
            if r.peek_byte() == Some(0xa0) {
                r.tlv_bytes()?; // [0] EXPLICIT version
            }
            r.tlv_bytes()?; // serialNumber
            r.tlv_bytes()?; // signature
            let issuer = r.tlv_bytes()?;
            r.tlv_bytes()?; // validity
            let subject = r.tlv_bytes()?;
            while !r.is_finished() {
                r.tlv_bytes()?;
            }
            Ok::<_, x509_cert::der::Error>((issuer, subject))
        })?;
        r.finish()?;
        Ok(RawParts {
            tbs,
            issuer,
            subject,
        })
    }
}

/// `CN=alice, O=Example`: RDNs most specific first (RFC 4514 order), comma-space separated.
fn display_name(name: &x509_cert::name::Name) -> String {
    let mut parts: Vec<String> = name.iter_rdn().map(|rdn| rdn.to_string()).collect();
    parts.reverse();
    if parts.is_empty() {
        return "(empty name)".into();
    }
    // Names come from the network and end up in logs.
    parts
        .join(", ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn oid_name(oid: ObjectIdentifier) -> String {
    match x509_cert::der::oid::db::DB.by_oid(&oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_string(),
    }
}

/// A PEM block: label and decoded contents (zeroized on drop: it may be a private key).
type PemBlock = (String, Zeroizing<Vec<u8>>);

/// The PEM blocks of `input`, skipping any text between them.
fn pem_blocks(input: &[u8]) -> Result<Vec<PemBlock>, CertError> {
    let text = std::str::from_utf8(input).map_err(|_| CertError::Pem("not ASCII text".into()))?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((_, after)) = rest.split_once("-----BEGIN ") {
        let (label, _) = after
            .split_once("-----")
            .ok_or_else(|| CertError::Pem("unterminated BEGIN line".into()))?;
        let end = format!("-----END {label}-----");
        let (body, tail) = after
            .split_once(end.as_str())
            .ok_or_else(|| CertError::Pem(format!("no END line for {label}")))?;
        let block = Zeroizing::new(format!("-----BEGIN {body}{end}\n"));
        let (_, der) = x509_cert::der::pem::decode_vec(block.as_bytes())
            .map_err(|e| CertError::Pem(format!("{label}: {e}")))?;
        out.push((label.to_string(), Zeroizing::new(der)));
        rest = tail;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
