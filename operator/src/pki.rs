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
/// Lifetime of the CA.
const CA_LIFETIME: Duration = Duration::days(3650);
/// Lifetime of server and agent certificates.
const LEAF_LIFETIME: Duration = Duration::days(365);
/// An agent certificate is re-issued when it expires within this long.
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

impl Ca {
    /// A new self-signed CA (ECDSA P-256).
    pub fn generate(now: OffsetDateTime) -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "sluice-operator control CA");
        dn.push(DnType::OrganizationName, "sluice.dev");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params, now, CA_LIFETIME);
        let cert = params.self_signed(&key)?;
        let pem = Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Ca {
            issuer: Issuer::new(params, key),
            pem,
        })
    }

    /// Loads a CA from its PEM certificate and key (as stored in the CA Secret).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key =
            KeyPair::from_pem(key_pem).map_err(|e| PkiError::Invalid(format!("CA key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
        Ok(Ca {
            issuer,
            pem: Issued {
                cert_pem: cert_pem.to_owned(),
                key_pem: key_pem.to_owned(),
            },
        })
    }

    /// The CA certificate and key.
    pub fn pem(&self) -> &Issued {
        &self.pem
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
        validity(&mut params, now, LEAF_LIFETIME);
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
        validity(&mut params, now, LEAF_LIFETIME);
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
    /// valid for at least [`RENEW_BEFORE`] from `now` (otherwise it is re-issued).
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
        let not_after = cert.validity().not_after.to_datetime();
        cert.verify_signature(Some(ca.public_key())).is_ok()
            && not_after - now > RENEW_BEFORE
            && identity(&cert).as_deref() == Some(gateway_key)
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
