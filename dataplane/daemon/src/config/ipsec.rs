//! The IKEv1/ESP settings of a gateway, typed once from `pb::IpsecSettings`.

use std::fmt;
use std::time::Duration;

use sluice_ike::policy::{self, EspProposal, IkeProposal};
use sluice_proto::v1 as pb;

use super::{CompiledError, Secret, wire};

/// IKEv1 / ESP settings of a gateway (from `spec.l2tp.ipsec`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecRuntime {
    /// Main Mode pre-shared key.
    pub psk: Secret,
    pub ike: Vec<sluice_ike::policy::IkeProposal>,
    pub esp: Vec<sluice_ike::policy::EspProposal>,
    pub ike_lifetime: Duration,
    pub esp_lifetime: Duration,
    pub esp_lifetime_kb: Option<u64>,
    pub nat_detection: sluice_ike::natt::NatDetection,
    pub dpd_delay: Option<Duration>,
    pub dpd_timeout: Duration,
    pub ike_port: u16,
    pub natt_port: u16,
    /// Answer Aggressive Mode (off by default).
    pub allow_aggressive: bool,
    /// RSA-signature authentication (our chain and key, the client CAs).
    pub certificates: Option<IpsecCertificates>,
}

/// Parsed certificate material, compared across reloads by the PEM it came from.
#[derive(Clone)]
pub struct IpsecCertificates {
    source: Secret,
    pub credentials: std::sync::Arc<sluice_ike::cert::Credentials>,
    /// The CAs the other end's certificate must chain to (clients' for a gateway, the
    /// server's for a client tunnel).
    pub peer_ca: std::sync::Arc<sluice_ike::cert::TrustStore>,
}

/// Which certificate input did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateField {
    /// Our chain and key.
    Own,
    /// The CAs of the other end.
    PeerCa,
}

impl IpsecCertificates {
    /// Parses our PEM chain (leaf first) and key, and the other end's CAs.
    pub fn from_pem(
        chain: &[u8],
        key: &[u8],
        peer_ca: &[u8],
    ) -> Result<IpsecCertificates, (CertificateField, sluice_ike::cert::CertError)> {
        let credentials = sluice_ike::cert::Credentials::from_pem(chain, key)
            .map_err(|e| (CertificateField::Own, e))?;
        let ca = sluice_ike::cert::TrustStore::from_pem(peer_ca)
            .map_err(|e| (CertificateField::PeerCa, e))?;
        Ok(IpsecCertificates {
            source: Secret([chain, key, peer_ca].concat()),
            credentials: std::sync::Arc::new(credentials),
            peer_ca: std::sync::Arc::new(ca),
        })
    }
}

impl PartialEq for IpsecCertificates {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for IpsecCertificates {}

impl fmt::Debug for IpsecCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpsecCertificates")
            .field("subject", &self.credentials.subject_display())
            .finish_non_exhaustive()
    }
}

impl IpsecRuntime {
    pub(super) fn from_proto(p: &pb::IpsecSettings) -> Result<IpsecRuntime, CompiledError> {
        use sluice_ike::natt::NatDetection;
        use sluice_ike::policy as ike;
        let (ike_proposals, esp_proposals) =
            proposals_from_wire(&p.ike_proposals, &p.esp_proposals)?;
        // Proto3 zero is "not set": the engine's defaults, defined once in sluice_ike::policy.
        let secs = |v: u32, default: Duration| {
            if v == 0 {
                default
            } else {
                Duration::from_secs(u64::from(v))
            }
        };
        let port = |what, v: u32, default: u16| match v {
            0 => Ok(default),
            v => u16::try_from(v).map_err(|_| CompiledError::Port { what, value: v }),
        };
        let certificates = if p.certificate_chain.is_empty() {
            None
        } else {
            let certs =
                IpsecCertificates::from_pem(&p.certificate_chain, &p.private_key, &p.client_ca);
            Some(
                certs.map_err(|(field, source)| CompiledError::Certificates {
                    field: match field {
                        CertificateField::Own => "certificateSecretRef",
                        CertificateField::PeerCa => "clientCaSecretRef",
                    },
                    source,
                })?,
            )
        };
        Ok(IpsecRuntime {
            psk: Secret(p.pre_shared_key.clone()),
            ike: ike_proposals,
            esp: esp_proposals,
            ike_lifetime: secs(p.ike_lifetime_seconds, ike::DEFAULT_IKE_LIFETIME),
            esp_lifetime: secs(p.esp_lifetime_seconds, ike::DEFAULT_ESP_LIFETIME),
            esp_lifetime_kb: (p.esp_lifetime_kilobytes > 0).then_some(p.esp_lifetime_kilobytes),
            nat_detection: match p.nat_detection() {
                pb::NatDetection::Parrot => NatDetection::Parrot,
                pb::NatDetection::ForceEncapsulation => NatDetection::ParrotForceEncapsulation,
                pb::NatDetection::Unspecified | pb::NatDetection::Honest => NatDetection::Honest,
            },
            dpd_delay: (p.dpd_delay_seconds > 0)
                .then(|| Duration::from_secs(u64::from(p.dpd_delay_seconds))),
            dpd_timeout: secs(p.dpd_timeout_seconds, ike::DEFAULT_DPD_TIMEOUT),
            ike_port: port("IKE port", p.ike_port, ike::DEFAULT_IKE_PORT)?,
            natt_port: port("NAT-T port", p.natt_port, ike::DEFAULT_NATT_PORT)?,
            allow_aggressive: p.allow_aggressive_mode,
            certificates,
        })
    }

    /// The IKE responder configuration (limits stay at the engine's defaults).
    pub fn responder_config(&self, l2tp_port: u16) -> sluice_ike::policy::Config {
        sluice_ike::policy::Config {
            psk: (!self.psk.expose().is_empty())
                .then(|| zeroize::Zeroizing::new(self.psk.expose().to_vec())),
            certificate: self.certificates.as_ref().map(|c| c.credentials.clone()),
            client_ca: self.certificates.as_ref().map(|c| c.peer_ca.clone()),
            ike: self.ike.clone(),
            esp: self.esp.clone(),
            ike_lifetime: self.ike_lifetime,
            esp_lifetime: self.esp_lifetime,
            esp_lifetime_kb: self.esp_lifetime_kb,
            nat_detection: self.nat_detection,
            dpd_delay: self.dpd_delay,
            dpd_timeout: self.dpd_timeout,
            l2tp_port,
            natt_port: self.natt_port,
            allow_aggressive: self.allow_aggressive,
            ..sluice_ike::policy::Config::default()
        }
    }
}

/// Proposal lists off the wire; an empty list stands for the engine's defaults
/// (`sluice_ike::policy`, defined there once).
pub(super) fn proposals_from_wire(
    ike: &[pb::IkeProposal],
    esp: &[pb::EspProposal],
) -> Result<(Vec<IkeProposal>, Vec<EspProposal>), CompiledError> {
    use sluice_api::wire::{esp_proposal_from_wire, ike_proposal_from_wire};
    let ike = if ike.is_empty() {
        policy::default_ike_proposals()
    } else {
        wire(
            "ike_proposals",
            ike.iter().map(ike_proposal_from_wire).collect(),
        )?
    };
    let esp = if esp.is_empty() {
        policy::default_esp_proposals()
    } else {
        wire(
            "esp_proposals",
            esp.iter().map(esp_proposal_from_wire).collect(),
        )?
    };
    Ok((ike, esp))
}
