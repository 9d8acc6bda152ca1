//! The operator's small PKI for the control channel: one CA (kept in a Secret in the
//! operator's namespace), a server certificate for the gRPC Service (issued at start-up),
//! and one client certificate per gateway whose URI SAN names the gateway, so an agent can
//! only ever fetch the configuration (and the password hashes) of its own gateway.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// Prefix of the URI SAN naming a gateway: `spiffe://sluice.dev/ns/<namespace>/vpngateway/<name>`.
const IDENTITY_PREFIX: &str = "spiffe://sluice.dev/ns/";
/// Default lifetime of a CA (`--ca-lifetime`); it is rotated before it ends
/// ([`crate::ca_set`]).
pub const DEFAULT_CA_LIFETIME: Duration = Duration::days(365);
/// Longest lifetime of server and agent certificates; never past their CA's end.
const LEAF_LIFETIME: Duration = Duration::days(365);
/// A certificate is re-issued when it expires within this long, or within a third of its
/// validity when that is shorter (a short-lived CA issues short-lived certificates).
pub const RENEW_BEFORE: Duration = Duration::days(30);
/// Tolerated clock skew between the operator and the nodes.
const BACKDATE: Duration = Duration::hours(1);

/// Why a certificate could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct Issued {
    /// Certificate (PEM).
    pub cert_pem: String,
    /// Private key (PKCS#8 PEM). Never logged.
    pub key_pem: String,
}

impl Drop for Issued {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key_pem);
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The control channel's certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: Issued,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("pem", &self.pem).finish()
    }
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, lifetime: Duration) {
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}

/// `(not_before, not_after)` of a PEM certificate.
pub fn cert_validity(cert_pem: &str) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let der = pem_der(cert_pem)?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let v = cert.validity();
    Some((v.not_before.to_datetime(), v.not_after.to_datetime()))
}

/// The lifetime a certificate valid `not_before..not_after` was issued for (without the
/// back-dating for clock skew).
pub fn lifetime(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Duration {
    (not_after - not_before - BACKDATE).max(Duration::ZERO)
}

/// Whether a certificate valid `not_before..not_after` should be renewed at `now`.
pub fn renewal_due(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let margin = RENEW_BEFORE.min(lifetime(not_before, not_after) / 3);
    not_after - now <= margin
}

impl Ca {
    /// A new self-signed CA (ECDSA P-256) valid for [`DEFAULT_CA_LIFETIME`].
    pub fn generate(now: OffsetDateTime) -> Result<Ca, PkiError> {
        Self::generate_for(now, DEFAULT_CA_LIFETIME)
    }

    /// A new self-signed CA (ECDSA P-256) valid for `lifetime`.
    pub fn generate_for(now: OffsetDateTime, lifetime: Duration) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "sluice-operator control CA");
        dn.push(DnType::OrganizationName, "sluice.dev");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, now, lifetime);
        let cert = params.self_signed(&key)?;
        // As encoded (whole seconds).
        let (not_before, not_after) = cert_validity(&cert.pem())
            .ok_or_else(|| PkiError::Invalid("CA certificate: unreadable validity".into()))?;
        let pem = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Ca {
            issuer: Issuer::new(params, key),
            pem,
            not_before,
            not_after,
        })
    }

    /// Loads a CA from its PEM certificate and key (as stored in the CA Secret).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key =
            KeyPair::from_pem(key_pem).map_err(|e| PkiError::Invalid(format!("CA key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
        let (not_before, not_after) = cert_validity(cert_pem)
            .ok_or_else(|| PkiError::Invalid("CA certificate: unreadable validity".into()))?;
        Ok(Ca {
            issuer,
            pem: Issued {
                cert_pem: cert_pem.to_owned(),
                key_pem: key_pem.to_owned(),
            },
            not_before,
            not_after,
        })
    }

    /// A copy (through its PEM).
    pub fn clone_ca(&self) -> Result<Ca, PkiError> {
        Ca::from_pem(&self.pem.cert_pem, &self.pem.key_pem)
    }

    /// The CA certificate and key.
    pub fn pem(&self) -> &Issued {
        &self.pem
    }

    /// When the CA certificate became valid.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// When the CA certificate ends.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Leaf validity: [`LEAF_LIFETIME`], but never past this CA's end.
    fn leaf_validity(&self, params: &mut CertificateParams, now: OffsetDateTime) {
        validity(params, now, LEAF_LIFETIME);
        params.not_after = params.not_after.min(self.not_after);
    }

    /// A server certificate for the gRPC endpoint, valid for `dns_names`.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        now: OffsetDateTime,
    ) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(dns_names.to_vec())?;
        params.distinguished_name.push(
            DnType::CommonName,
            dns_names.first().map_or("sluice-operator", |n| n),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.leaf_validity(&mut params, now);
        self.sign(params)
    }

    /// A client certificate for the agents of gateway `namespace/name`.
    pub fn issue_agent(&self, gateway_key: &str, now: OffsetDateTime) -> Result<Issued, PkiError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("sluice agent {gateway_key}"));
        let uri = identity_uri(gateway_key)
            .ok_or_else(|| PkiError::Invalid(format!("{gateway_key:?} is not namespace/name")))?;
        params.subject_alt_names = vec![SanType::URI(
            uri.try_into()
                .map_err(|e: rcgen::Error| PkiError::Invalid(e.to_string()))?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.leaf_validity(&mut params, now);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<Issued, PkiError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Whether `cert_pem` is an agent certificate for `gateway_key`, signed by this CA and
    /// not due for renewal ([`renewal_due`]) at `now` (otherwise it is re-issued).
    pub fn agent_cert_current(
        &self,
        cert_pem: &str,
        gateway_key: &str,
        now: OffsetDateTime,
    ) -> bool {
        let Some(der) = pem_der(cert_pem) else {
            return false;
        };
        let Some(ca_der) = pem_der(&self.pem.cert_pem) else {
            return false;
        };
        let (Ok((_, cert)), Ok((_, ca))) = (
            X509Certificate::from_der(&der),
            X509Certificate::from_der(&ca_der),
        ) else {
            return false;
        };
        let v = cert.validity();
        cert.verify_signature(Some(ca.public_key())).is_ok()
            && !renewal_due(v.not_before.to_datetime(), v.not_after.to_datetime(), now)
            && identity(&cert).as_deref() == Some(gateway_key)
    }

    /// Whether this CA signed `cert_pem`.
    pub fn signed(&self, cert_pem: &str) -> bool {
        let (Some(der), Some(ca_der)) = (pem_der(cert_pem), pem_der(&self.pem.cert_pem)) else {
            return false;
        };
        match (
            X509Certificate::from_der(&der),
            X509Certificate::from_der(&ca_der),
        ) {
            (Ok((_, cert)), Ok((_, ca))) => cert.verify_signature(Some(ca.public_key())).is_ok(),
            _ => false,
        }
    }
}

/// The URI SAN for gateway `namespace/name`.
pub fn identity_uri(gateway_key: &str) -> Option<String> {
    let (ns, name) = gateway_key.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| format!("{IDENTITY_PREFIX}{ns}/vpngateway/{name}"))
}

/// The gateway (`namespace/name`) a DER client certificate was issued for.
pub fn identity_from_der(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    identity(&cert)
}

fn identity(cert: &X509Certificate<'_>) -> Option<String> {
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::URI(uri) => {
            let rest = uri.strip_prefix(IDENTITY_PREFIX)?;
            let (ns, name) = rest.split_once("/vpngateway/")?;
            (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
                .then(|| format!("{ns}/{name}"))
        }
        _ => None,
    })
}

/// The DER bytes of the first PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(block.contents)
}

/// The DNS names a server certificate for Service `service` in `namespace` covers.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc.cluster.local"),
        "localhost".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn agent_certificate_names_its_gateway() {
        let now = OffsetDateTime::now_utc();
        let ca = Ca::generate(now).unwrap();
        let agent = ca.issue_agent("vpn/office", now).unwrap();
        let der = pem_der(&agent.cert_pem).unwrap();
        assert_eq!(identity_from_der(&der).as_deref(), Some("vpn/office"));
        assert!(ca.agent_cert_current(&agent.cert_pem, "vpn/office", now));
        assert!(!ca.agent_cert_current(&agent.cert_pem, "vpn/other", now));
        // Close to expiry: renewed.
        assert!(!ca.agent_cert_current(&agent.cert_pem, "vpn/office", now + Duration::days(340)));
        // Another CA's certificate is not accepted.
        let other = Ca::generate(now).unwrap();
        assert!(!other.agent_cert_current(&agent.cert_pem, "vpn/office", now));
        // The CA survives a round trip through its Secret.
        let again = Ca::from_pem(&ca.pem().cert_pem, &ca.pem().key_pem).unwrap();
        let agent2 = again.issue_agent("vpn/office", now).unwrap();
        assert!(ca.agent_cert_current(&agent2.cert_pem, "vpn/office", now));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_short_lived_ca_issues_leaves_that_end_with_it() {
        let now = OffsetDateTime::now_utc();
        let ca = Ca::generate_for(now, Duration::minutes(10)).unwrap();
        assert_eq!(
            ca.not_after() - ca.not_before(),
            Duration::minutes(10) + BACKDATE
        );
        let agent = ca.issue_agent("vpn/office", now).unwrap();
        let (_, end) = cert_validity(&agent.cert_pem).unwrap();
        assert_eq!(end, ca.not_after());
        // Renewal is relative to the validity: current now, due near the end, never
        // due right after issuance.
        assert!(ca.agent_cert_current(&agent.cert_pem, "vpn/office", now));
        assert!(!ca.agent_cert_current(&agent.cert_pem, "vpn/office", now + Duration::minutes(8)));
        let server = ca.issue_server(&["x".into()], now).unwrap();
        assert_eq!(cert_validity(&server.cert_pem).unwrap().1, ca.not_after());
        assert!(ca.signed(&server.cert_pem));
        assert!(!Ca::generate(now).unwrap().signed(&server.cert_pem));
        // The default CA lives a year, not ten.
        let long = Ca::generate(now).unwrap();
        assert!(long.not_after() - now <= DEFAULT_CA_LIFETIME);
    }

    #[test]
    fn identity_uri_needs_namespace_and_name() {
        assert_eq!(
            identity_uri("a/b").as_deref(),
            Some("spiffe://sluice.dev/ns/a/vpngateway/b")
        );
        assert_eq!(identity_uri("ab"), None);
        assert_eq!(identity_uri("/b"), None);
        assert_eq!(identity_uri("a/b/c"), None);
    }
}
