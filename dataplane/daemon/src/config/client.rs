//! The tunnels this data plane dials out (`VpnClient`s), typed once from
//! `pb::ClientTunnel`. A client that does not convert (certificates that do not parse, a
//! port out of range) is left out on its own; the gateway and the other clients stay.

use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use sluice_ike::policy::{self as ike, EspProposal, IkeProposal};
use sluice_proto::v1 as pb;

use super::ipsec::proposals_from_wire;
use super::{CertificateField, CompiledError, IpsecCertificates, PppPolicy, Secret, prefixes};
use crate::metrics::Protocol;

/// One tunnel to dial and keep up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `namespace/name` of the `VpnClient`: the key its state is reported under.
    pub source: String,
    /// The server's DNS name or IPv4 address, resolved at each attempt.
    pub server_host: String,
    /// The server's PPTP control port (TCP) or L2TP port (UDP).
    pub server_port: u16,
    pub username: String,
    pub password: Secret,
    /// What we agree to: authentication methods and MPPE.
    pub ppp: PppPolicy,
    pub transport: ClientTransport,
    /// Networks routed into the tunnel while it is up.
    pub routes: Vec<Ipv4Net>,
    /// Everything into the tunnel (two /1 routes).
    pub add_default_route: bool,
    /// SNAT local traffic entering the tunnel to the tunnel address.
    pub masquerade: bool,
    pub mtu: u16,
    pub mru: u16,
    /// Silence before LCP echoes start (`None`: never).
    pub keepalive: Option<Duration>,
    /// First and longest wait between attempts.
    pub reconnect: (Duration, Duration),
}

/// How the PPP frames travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientTransport {
    /// PPTP (RFC 2637): TCP control connection and enhanced GRE.
    Pptp,
    /// L2TPv2 (RFC 2661) over UDP, inside IPsec unless `ipsec` is `None`.
    L2tp {
        /// Tunnel authentication secret (RFC 2661 §5.1.1).
        tunnel_secret: Option<Secret>,
        ipsec: Option<ClientIpsec>,
    },
}

/// IKEv1 as initiator and transport-mode ESP for UDP 1701 (RFC 3193).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIpsec {
    pub auth: IkeAuth,
    /// What we propose, most preferred first (the engine's defaults when none were given).
    pub ike: Vec<IkeProposal>,
    pub esp: Vec<EspProposal>,
    pub ike_lifetime: Duration,
    pub esp_lifetime: Duration,
    /// Aggressive Mode (RFC 2409 §5.4) instead of Main Mode.
    pub aggressive: bool,
    pub ike_port: u16,
    pub natt_port: u16,
}

/// How Main Mode authenticates us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeAuth {
    PreSharedKey(Secret),
    /// RSA signatures (RFC 2409 §5.1): our chain and key, the server's CAs.
    Certificates(IpsecCertificates),
}

/// Why a compiled client does not convert.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("names no protocol")]
    Protocol,
    #[error("has an invalid {what} {value}")]
    Port { what: &'static str, value: u32 },
    #[error("has neither a pre-shared key nor a certificate for IPsec")]
    NoIpsecAuthentication,
    #[error("spec.ipsec.{field}: {source}")]
    Certificates {
        field: &'static str,
        source: sluice_ike::cert::CertError,
    },
    #[error(transparent)]
    Compiled(#[from] CompiledError),
}

/// A client left out of the running configuration, with why.
#[derive(Debug, Clone)]
pub struct ClientLeftOut {
    pub source: String,
    pub error: Arc<ClientConfigError>,
}

fn port(what: &'static str, value: u32) -> Result<u16, ClientConfigError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(ClientConfigError::Port { what, value })
}

/// Proto3 zero is "not set": `default`.
fn port_or(what: &'static str, value: u32, default: u16) -> Result<u16, ClientConfigError> {
    if value == 0 {
        Ok(default)
    } else {
        port(what, value)
    }
}

fn seconds_or(value: u32, default: Duration) -> Duration {
    if value == 0 {
        default
    } else {
        Duration::from_secs(u64::from(value))
    }
}

impl ClientConfig {
    /// Converts one compiled client.
    pub fn from_proto(t: &pb::ClientTunnel) -> Result<ClientConfig, ClientConfigError> {
        let (protocol, transport) = match pb::Service::try_from(t.protocol) {
            Ok(pb::Service::Pptp) => (Protocol::Pptp, ClientTransport::Pptp),
            Ok(pb::Service::L2tp) => (
                Protocol::L2tp,
                ClientTransport::L2tp {
                    tunnel_secret: (!t.tunnel_secret.is_empty())
                        .then(|| Secret(t.tunnel_secret.clone())),
                    ipsec: t.ipsec.as_ref().map(ClientIpsec::from_proto).transpose()?,
                },
            ),
            Ok(pb::Service::Unspecified) | Err(_) => return Err(ClientConfigError::Protocol),
        };
        let ppp = PppPolicy::from_proto(
            protocol,
            t.authentication(),
            t.encryption(),
            t.mppe_key_lengths(),
            t.mppe_stateful(),
        )?;
        let clamp16 = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        Ok(ClientConfig {
            source: t.source.clone(),
            server_host: t.server_host.clone(),
            server_port: port("server port", t.server_port)?,
            username: t.username.clone(),
            password: Secret(t.password.clone()),
            ppp,
            transport,
            routes: prefixes("client routes", &t.routes)?,
            add_default_route: t.add_default_route,
            masquerade: t.masquerade,
            mtu: clamp16(t.mtu),
            mru: clamp16(t.mru),
            keepalive: (t.keepalive_timeout_seconds > 0)
                .then(|| Duration::from_secs(u64::from(t.keepalive_timeout_seconds))),
            reconnect: (
                Duration::from_millis(u64::from(t.reconnect_initial_ms.max(1))),
                Duration::from_millis(u64::from(
                    t.reconnect_max_ms.max(t.reconnect_initial_ms).max(1),
                )),
            ),
        })
    }

    /// `pptp to vpn.example.net:1723`, for summaries.
    pub fn describe(&self) -> String {
        let protocol = match &self.transport {
            ClientTransport::Pptp => "pptp",
            ClientTransport::L2tp { ipsec: Some(_), .. } => "l2tp/ipsec",
            ClientTransport::L2tp { ipsec: None, .. } => "l2tp",
        };
        format!("{protocol} to {}:{}", self.server_host, self.server_port)
    }
}

impl ClientTransport {
    /// The tunnel protocol (the metrics' `protocol` label).
    pub fn protocol(&self) -> Protocol {
        match self {
            ClientTransport::Pptp => Protocol::Pptp,
            ClientTransport::L2tp { .. } => Protocol::L2tp,
        }
    }
}

impl ClientIpsec {
    fn from_proto(p: &pb::ClientIpsec) -> Result<ClientIpsec, ClientConfigError> {
        let auth = if !p.certificate_chain.is_empty() {
            let certs =
                IpsecCertificates::from_pem(&p.certificate_chain, &p.private_key, &p.server_ca)
                    .map_err(|(field, source)| ClientConfigError::Certificates {
                        field: match field {
                            CertificateField::Own => "certificateSecretRef",
                            CertificateField::PeerCa => "serverCaSecretRef",
                        },
                        source,
                    })?;
            IkeAuth::Certificates(certs)
        } else if !p.pre_shared_key.is_empty() {
            IkeAuth::PreSharedKey(Secret(p.pre_shared_key.clone()))
        } else {
            return Err(ClientConfigError::NoIpsecAuthentication);
        };
        let (ike_list, esp_list) = proposals_from_wire(&p.ike_proposals, &p.esp_proposals)?;
        Ok(ClientIpsec {
            auth,
            ike: ike_list,
            esp: esp_list,
            ike_lifetime: seconds_or(p.ike_lifetime_seconds, ike::DEFAULT_IKE_LIFETIME),
            esp_lifetime: seconds_or(p.esp_lifetime_seconds, ike::DEFAULT_ESP_LIFETIME),
            aggressive: p.aggressive_mode,
            ike_port: port_or("IKE port", p.ike_port, ike::DEFAULT_IKE_PORT)?,
            natt_port: port_or("NAT-T port", p.natt_port, ike::DEFAULT_NATT_PORT)?,
        })
    }
}

/// Converts every compiled client; those that do not convert are left out, each with why.
pub fn clients_from_proto(list: &[pb::ClientTunnel]) -> (Vec<ClientConfig>, Vec<ClientLeftOut>) {
    let mut clients = Vec::new();
    let mut left_out = Vec::new();
    for t in list {
        match ClientConfig::from_proto(t) {
            Ok(c) => clients.push(c),
            Err(e) => left_out.push(ClientLeftOut {
                source: t.source.clone(),
                error: Arc::new(e),
            }),
        }
    }
    (clients, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pptp() -> pb::ClientTunnel {
        pb::ClientTunnel {
            source: "default/hq".into(),
            protocol: pb::Service::Pptp as i32,
            server_host: "vpn.example.net".into(),
            server_port: 1723,
            username: "branch".into(),
            password: b"BRANCH-PASSWORD".to_vec(),
            authentication: vec![pb::AuthMethod::MschapV2 as i32],
            encryption: pb::EncryptionPolicy::Require as i32,
            mppe_key_lengths: vec![pb::MppeKeyLength::Bits128 as i32],
            routes: vec![pb::Ipv4Prefix {
                address: 0x0a14_0000,
                length: 16,
            }],
            masquerade: true,
            mtu: 1400,
            mru: 1400,
            keepalive_timeout_seconds: 30,
            reconnect_initial_ms: 2_000,
            reconnect_max_ms: 300_000,
            ..pb::ClientTunnel::default()
        }
    }

    fn l2tp(ipsec: pb::ClientIpsec) -> pb::ClientTunnel {
        pb::ClientTunnel {
            source: "default/lab".into(),
            protocol: pb::Service::L2tp as i32,
            server_port: 1701,
            encryption: pb::EncryptionPolicy::Deny as i32,
            ipsec: Some(ipsec),
            ..pptp()
        }
    }

    fn certs(f: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../ike/tests/certs/");
        std::fs::read(format!("{dir}{f}")).unwrap_or_default()
    }

    #[test]
    fn a_pptp_client_converts() {
        let c = ClientConfig::from_proto(&pptp()).map_err(|e| e.to_string());
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.describe(), "pptp to vpn.example.net:1723");
        assert_eq!(c.transport, ClientTransport::Pptp);
        assert_eq!(c.password.expose(), b"BRANCH-PASSWORD");
        assert_eq!(format!("{:?}", c.password), "<redacted>");
        let routes: Vec<String> = c.routes.iter().map(ToString::to_string).collect();
        assert_eq!(routes, ["10.20.0.0/16"]);
        assert_eq!(c.keepalive, Some(Duration::from_secs(30)));
        assert_eq!(
            c.reconnect,
            (Duration::from_secs(2), Duration::from_secs(300))
        );
        assert_eq!((c.mtu, c.mru), (1400, 1400));
    }

    #[test]
    fn an_l2tp_client_gets_the_engine_defaults_for_what_was_not_set() {
        let t = l2tp(pb::ClientIpsec {
            pre_shared_key: b"PRE-SHARED-KEY".to_vec(),
            ..pb::ClientIpsec::default()
        });
        let c = ClientConfig::from_proto(&t).map_err(|e| e.to_string());
        let Ok(c) = c else { panic!("{c:?}") };
        assert_eq!(c.describe(), "l2tp/ipsec to vpn.example.net:1701");
        let ClientTransport::L2tp {
            ipsec: Some(i),
            tunnel_secret: None,
        } = &c.transport
        else {
            panic!("{:?}", c.transport)
        };
        assert_eq!(
            i.auth,
            IkeAuth::PreSharedKey(Secret(b"PRE-SHARED-KEY".to_vec()))
        );
        assert_eq!(i.ike, ike::default_ike_proposals());
        assert_eq!(i.esp, ike::default_esp_proposals());
        assert_eq!((i.ike_port, i.natt_port), (500, 4500));
        assert_eq!(i.ike_lifetime, ike::DEFAULT_IKE_LIFETIME);
    }

    #[test]
    fn certificates_parse_or_leave_only_their_client_out() {
        let good = l2tp(pb::ClientIpsec {
            certificate_chain: certs("gateway-chain.pem"),
            private_key: certs("gateway.key"),
            server_ca: certs("ca.pem"),
            ..pb::ClientIpsec::default()
        });
        let bad = pb::ClientTunnel {
            source: "default/bad".into(),
            ipsec: Some(pb::ClientIpsec {
                server_ca: b"-----BEGIN CERTIFICATE-----\nnot base64\n".to_vec(),
                ..good.ipsec.clone().unwrap_or_default()
            }),
            ..good.clone()
        };
        let (clients, left_out) = clients_from_proto(&[pptp(), good, bad]);
        let sources: Vec<_> = clients.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(sources, ["default/hq", "default/lab"]);
        assert!(matches!(
            &clients[1].transport,
            ClientTransport::L2tp {
                ipsec: Some(ClientIpsec {
                    auth: IkeAuth::Certificates(_),
                    ..
                }),
                ..
            }
        ));
        let [out] = left_out.as_slice() else {
            panic!("{left_out:?}")
        };
        assert_eq!(out.source, "default/bad");
        assert!(
            out.error
                .to_string()
                .starts_with("spec.ipsec.serverCaSecretRef: "),
            "{}",
            out.error
        );
    }

    #[test]
    fn what_compile_never_writes_is_refused() {
        let err = |t: pb::ClientTunnel| ClientConfig::from_proto(&t).err().map(|e| e.to_string());
        assert_eq!(
            err(pb::ClientTunnel {
                protocol: 0,
                ..pptp()
            })
            .as_deref(),
            Some("names no protocol")
        );
        assert_eq!(
            err(pb::ClientTunnel {
                server_port: 70_000,
                ..pptp()
            })
            .as_deref(),
            Some("has an invalid server port 70000")
        );
        assert_eq!(
            err(l2tp(pb::ClientIpsec::default())).as_deref(),
            Some("has neither a pre-shared key nor a certificate for IPsec")
        );
        assert!(
            err(pb::ClientTunnel {
                authentication: vec![],
                ..pptp()
            })
            .is_some()
        );
    }
}
