//! Loading manifests into the runtime configuration the data plane applies.
//!
//! The manifests go through `sluice_api::compile` — the same function the
//! operator uses — and the resulting `GatewayConfig` is turned into typed
//! values here once, so the hot path never parses strings.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;
use sluice_api::ObjectRef;
use sluice_api::wire::{ipv4_from_wire, prefix_from_wire};
use sluice_ppp::{AuthProto, EncryptionPolicy, KeyLengths, MppePolicy, StatefulMode};
use sluice_proto::v1 as pb;
use zeroize::Zeroize;

use crate::datapath::ratelimit::RateLimit;
use crate::metrics::Protocol;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The manifests do not parse or compile (every error, one per line).
    #[error("{0}")]
    Manifests(#[from] sluice_api::ConfigError),
    /// A compiled configuration that no runtime value corresponds to (from a newer or
    /// broken operator: `compile` never writes one).
    #[error("compiled config: {0}")]
    Compiled(#[from] CompiledError),
}

/// What [`Runtime::from_proto`] cannot convert.
#[derive(Debug, thiserror::Error)]
pub enum CompiledError {
    #[error("has no {0}")]
    Missing(&'static str),
    #[error("has no {} authentication method", .0.as_str())]
    NoAuthentication(Protocol),
    #[error("has an invalid {what} {value}")]
    Port { what: &'static str, value: u32 },
    #[error("{field}: {source}")]
    Wire {
        field: &'static str,
        source: sluice_api::wire::WireError,
    },
    #[error("user {user:?}: {problem}")]
    Credential {
        user: String,
        problem: CredentialError,
    },
    #[error("spec.l2tp.ipsec.{field}: {source}")]
    Certificates {
        field: &'static str,
        source: sluice_ike::cert::CertError,
    },
    #[error(
        "l2tp is enabled without IPsec (no pre-shared key or certificate) and without \
         allowUnencrypted"
    )]
    L2tpWithoutIpsec,
}

/// A user's credential fields that do not make one credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("NT hash is {0} octets long, 16 expected")]
    NtHashLength(usize),
    #[error("neither a password nor an NT hash is set")]
    Neither,
    #[error("both a password and an NT hash are set")]
    Both,
}

fn wire<T>(
    field: &'static str,
    r: Result<T, sluice_api::wire::WireError>,
) -> Result<T, CompiledError> {
    r.map_err(|source| CompiledError::Wire { field, source })
}

/// A password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An NtPasswordHash (RFC 2759 §8.3: MD4 of the UTF-16LE password) that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct NtHash([u8; 16]);

impl NtHash {
    pub fn expose(&self) -> &[u8; 16] {
        &self.0
    }
}

impl Drop for NtHash {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for NtHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a user's login is checked against: the cleartext password, or only its
/// NT hash (enough for MS-CHAPv1/v2 and their MPPE keys; PAP and CHAP-MD5 fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Password(Secret),
    NtHash(NtHash),
}

impl Credential {
    /// The form the PPP engine takes.
    pub fn as_ppp(&self) -> sluice_ppp::Credential<'_> {
        match self {
            Credential::Password(p) => sluice_ppp::Credential::Password(p.expose()),
            Credential::NtHash(h) => sluice_ppp::Credential::NtHash(h.expose()),
        }
    }

    /// "password set" or "NT hash set", for summaries.
    pub fn describe(&self) -> &'static str {
        match self {
            Credential::Password(_) => "password set",
            Credential::NtHash(_) => "NT hash set",
        }
    }

    /// Exactly one of `password` and `nt_hash` (16 octets) must be set.
    fn from_proto(u: &pb::User) -> Result<Credential, CompiledError> {
        let problem = match (u.password.is_empty(), u.nt_hash.is_empty()) {
            (false, true) => return Ok(Credential::Password(Secret(u.password.clone()))),
            (true, false) => match <[u8; 16]>::try_from(u.nt_hash.as_slice()) {
                Ok(h) => return Ok(Credential::NtHash(NtHash(h))),
                Err(_) => CredentialError::NtHashLength(u.nt_hash.len()),
            },
            (true, true) => CredentialError::Neither,
            (false, false) => CredentialError::Both,
        };
        Err(CompiledError::Credential {
            user: u.username.clone(),
            problem,
        })
    }
}

/// One user as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub username: String,
    pub credential: Credential,
    pub pptp: bool,
    pub l2tp: bool,
    pub remote_address: Option<Ipv4Addr>,
    pub routes: Vec<Ipv4Net>,
    /// 0 = unlimited.
    pub max_sessions: u32,
    pub source: String,
    /// Bandwidth limit of each session (`spec.rateLimit`).
    pub rate_limit: Option<RateLimit>,
}

/// The PPP policy of one protocol: authentication methods and MPPE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PppPolicy {
    pub auth: Vec<AuthProto>,
    pub mppe: MppePolicy,
}

impl PppPolicy {
    fn from_proto(
        protocol: Protocol,
        methods: impl Iterator<Item = pb::AuthMethod>,
        encryption: pb::EncryptionPolicy,
        key_lengths: impl Iterator<Item = pb::MppeKeyLength>,
        stateful: pb::StatefulMppe,
    ) -> Result<PppPolicy, CompiledError> {
        let auth = methods
            .filter_map(|m| match m {
                pb::AuthMethod::Pap => Some(AuthProto::Pap),
                pb::AuthMethod::ChapMd5 => Some(AuthProto::ChapMd5),
                pb::AuthMethod::MschapV1 => Some(AuthProto::MsChapV1),
                pb::AuthMethod::MschapV2 => Some(AuthProto::MsChapV2),
                pb::AuthMethod::Unspecified => None,
            })
            .collect::<Vec<_>>();
        if auth.is_empty() {
            return Err(CompiledError::NoAuthentication(protocol));
        }
        let mut lengths = KeyLengths {
            bits40: false,
            bits56: false,
            bits128: false,
        };
        for l in key_lengths {
            match l {
                pb::MppeKeyLength::Bits40 => lengths.bits40 = true,
                pb::MppeKeyLength::Bits56 => lengths.bits56 = true,
                pb::MppeKeyLength::Bits128 => lengths.bits128 = true,
                pb::MppeKeyLength::Unspecified => {}
            }
        }
        let policy = match encryption {
            pb::EncryptionPolicy::Deny => EncryptionPolicy::Deny,
            pb::EncryptionPolicy::Allow => EncryptionPolicy::Allow,
            pb::EncryptionPolicy::Prefer => EncryptionPolicy::Prefer,
            pb::EncryptionPolicy::Require | pb::EncryptionPolicy::Unspecified => {
                EncryptionPolicy::Require
            }
        };
        Ok(PppPolicy {
            auth,
            mppe: MppePolicy {
                policy,
                key_lengths: lengths,
                stateful: match stateful {
                    pb::StatefulMppe::Refuse => StatefulMode::Refuse,
                    pb::StatefulMppe::Unspecified | pb::StatefulMppe::Allow => StatefulMode::Allow,
                    pb::StatefulMppe::Prefer => StatefulMode::Prefer,
                },
            },
        })
    }
}

/// L2TP network server settings (RFC 2661).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2tpRuntime {
    pub enabled: bool,
    pub port: u16,
    pub ppp: PppPolicy,
    /// Tunnel authentication / hidden-AVP secret.
    pub secret: Option<Secret>,
    /// HELLO after this much control-channel silence (`None`: never).
    pub hello: Option<Duration>,
    pub allow_unencrypted: bool,
    /// IPsec protecting L2TP (`None`: plain L2TP only, which needs `allow_unencrypted`).
    pub ipsec: Option<IpsecRuntime>,
}

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
    pub client_ca: std::sync::Arc<sluice_ike::cert::TrustStore>,
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

impl L2tpRuntime {
    /// Whether L2TP that did not arrive under ESP is accepted: `allowUnencrypted`, or no
    /// IPsec configured (which compile allows only with `allowUnencrypted`).
    pub fn plain_allowed(&self) -> bool {
        self.allow_unencrypted || self.ipsec.is_none()
    }
}

impl IpsecRuntime {
    fn from_proto(p: &pb::IpsecSettings) -> Result<IpsecRuntime, CompiledError> {
        use sluice_api::wire::{esp_proposal_from_wire, ike_proposal_from_wire};
        use sluice_ike::natt::NatDetection;
        use sluice_ike::policy as ike;
        let ike_proposals = if p.ike_proposals.is_empty() {
            ike::default_ike_proposals()
        } else {
            let list = p.ike_proposals.iter().map(ike_proposal_from_wire);
            wire("ike_proposals", list.collect())?
        };
        let esp_proposals = if p.esp_proposals.is_empty() {
            ike::default_esp_proposals()
        } else {
            let list = p.esp_proposals.iter().map(esp_proposal_from_wire);
            wire("esp_proposals", list.collect())?
        };
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
        let cert_err = |field, source| CompiledError::Certificates { field, source };
        let certificates = if p.certificate_chain.is_empty() {
            None
        } else {
            let creds =
                sluice_ike::cert::Credentials::from_pem(&p.certificate_chain, &p.private_key)
                    .map_err(|e| cert_err("certificateSecretRef", e))?;
            let ca = sluice_ike::cert::TrustStore::from_pem(&p.client_ca)
                .map_err(|e| cert_err("clientCaSecretRef", e))?;
            Some(IpsecCertificates {
                source: Secret([&p.certificate_chain[..], &p.private_key, &p.client_ca].concat()),
                credentials: std::sync::Arc::new(creds),
                client_ca: std::sync::Arc::new(ca),
            })
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
            client_ca: self.certificates.as_ref().map(|c| c.client_ca.clone()),
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

impl UserEntry {
    /// Whether `spec.services` lets this user log in over `protocol`.
    pub fn may_use(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Pptp => self.pptp,
            Protocol::L2tp => self.l2tp,
        }
    }
}

/// Typed, validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub gateway: String,
    pub version: String,
    pub pptp_enabled: bool,
    pub pptp_port: u16,
    pub pptp: PppPolicy,
    pub l2tp: L2tpRuntime,
    pub mtu: u16,
    pub mru: u16,
    pub keepalive: Option<Duration>,
    pub local_address: Ipv4Addr,
    pub pool: Ipv4Net,
    pub dns: Vec<Ipv4Addr>,
    pub static_ranges: Vec<Ipv4Net>,
    pub masquerade: bool,
    /// 0 = unlimited.
    pub max_sessions: u32,
    pub users: HashMap<String, UserEntry>,
    /// Export per-user series (`spec.metrics.perUser`).
    pub per_user_metrics: bool,
}

fn prefixes(field: &'static str, list: &[pb::Ipv4Prefix]) -> Result<Vec<Ipv4Net>, CompiledError> {
    wire(field, list.iter().map(prefix_from_wire).collect())
}

impl Runtime {
    /// Converts a compiled `GatewayConfig` (from `compile` or from the operator).
    pub fn from_proto(c: &pb::GatewayConfig) -> Result<Runtime, CompiledError> {
        let pptp = c.pptp.clone().unwrap_or_default();
        let l2tp = c.l2tp.clone().unwrap_or_default();
        let ppp = c
            .ppp
            .clone()
            .ok_or(CompiledError::Missing("ppp settings"))?;
        let pptp_policy = PppPolicy::from_proto(
            Protocol::Pptp,
            pptp.authentication(),
            pptp.encryption(),
            pptp.mppe_key_lengths(),
            pptp.mppe_stateful(),
        )?;
        let ipsec = match &l2tp.ipsec {
            Some(p)
                if l2tp.enabled
                    && !(p.pre_shared_key.is_empty() && p.certificate_chain.is_empty()) =>
            {
                Some(IpsecRuntime::from_proto(p)?)
            }
            _ => None,
        };
        if l2tp.enabled && !l2tp.allow_unencrypted && ipsec.is_none() {
            return Err(CompiledError::L2tpWithoutIpsec);
        }
        let l2tp_policy = if l2tp.enabled {
            PppPolicy::from_proto(
                Protocol::L2tp,
                l2tp.authentication(),
                l2tp.encryption(),
                l2tp.mppe_key_lengths(),
                l2tp.mppe_stateful(),
            )?
        } else {
            pptp_policy.clone()
        };
        let mut users = HashMap::new();
        for u in &c.users {
            let entry = UserEntry {
                username: u.username.clone(),
                credential: Credential::from_proto(u)?,
                pptp: u.services().any(|s| s == pb::Service::Pptp),
                l2tp: u.services().any(|s| s == pb::Service::L2tp),
                remote_address: u.remote_address.as_ref().map(ipv4_from_wire),
                routes: prefixes("user routes", &u.routes)?,
                max_sessions: u.max_sessions,
                source: u.source.clone(),
                rate_limit: u.rate_limit.as_ref().and_then(|r| {
                    let limit = RateLimit {
                        down_bps: r.down_bits_per_second,
                        up_bps: r.up_bits_per_second,
                        burst_bytes: r.burst_bytes.max(1),
                    };
                    (limit.down_bps > 0 || limit.up_bps > 0).then_some(limit)
                }),
            };
            users.insert(u.username.clone(), entry);
        }
        let port = |what, p: u32| {
            u16::try_from(p)
                .ok()
                .filter(|p| *p != 0)
                .ok_or(CompiledError::Port { what, value: p })
        };
        let clamp16 = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        Ok(Runtime {
            gateway: c.gateway.clone(),
            version: c.version.clone(),
            pptp_enabled: pptp.enabled,
            pptp_port: port("pptp port", pptp.port)?,
            pptp: pptp_policy,
            l2tp: L2tpRuntime {
                enabled: l2tp.enabled,
                port: if l2tp.enabled {
                    port("l2tp port", l2tp.port)?
                } else {
                    sluice_api::DEFAULT_L2TP_PORT
                },
                ppp: l2tp_policy,
                secret: (!l2tp.tunnel_secret.is_empty())
                    .then(|| Secret(l2tp.tunnel_secret.clone())),
                hello: (l2tp.hello_interval_seconds > 0)
                    .then(|| Duration::from_secs(u64::from(l2tp.hello_interval_seconds))),
                allow_unencrypted: l2tp.allow_unencrypted,
                ipsec,
            },
            mtu: clamp16(ppp.mtu),
            mru: clamp16(ppp.mru),
            keepalive: (ppp.keepalive_timeout_seconds > 0)
                .then(|| Duration::from_secs(u64::from(ppp.keepalive_timeout_seconds))),
            local_address: ipv4_from_wire(
                ppp.local_address
                    .as_ref()
                    .ok_or(CompiledError::Missing("local address"))?,
            ),
            pool: wire(
                "address pool",
                prefix_from_wire(
                    ppp.address_pool
                        .as_ref()
                        .ok_or(CompiledError::Missing("address pool"))?,
                ),
            )?,
            dns: ppp.dns_servers.iter().map(ipv4_from_wire).collect(),
            static_ranges: prefixes("static addresses", &ppp.static_addresses)?,
            masquerade: c.nat.as_ref().is_some_and(|n| n.masquerade),
            max_sessions: c.max_sessions,
            users,
            per_user_metrics: c.per_user_metrics,
        })
    }

    /// Whether this configuration serves `protocol` at all.
    pub fn serves(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Pptp => self.pptp_enabled,
            Protocol::L2tp => self.l2tp.enabled,
        }
    }

    /// Addresses the pool must never hand out dynamically.
    pub fn reserved_addresses(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        std::iter::once(self.local_address)
            .chain(self.users.values().filter_map(|u| u.remote_address))
    }
}

/// A configuration loaded from manifests.
#[derive(Debug)]
pub struct Loaded {
    pub runtime: Runtime,
    /// Users and clients left out because their own fields are wrong, each with every error
    /// about it (`sluice_api`'s one policy for bad objects: the others are served, as with
    /// the operator).
    pub left_out: BTreeMap<ObjectRef, sluice_api::ConfigError>,
    /// The `VpnClient`s that compiled, as `namespace/name: protocol to host:port`. This
    /// version does not dial them yet (issue 22, docs/client-mode.md).
    pub clients: Vec<String>,
}

/// Reads, parses and compiles a manifest file into a runtime config.
pub fn load_file(path: &Path, gateway: Option<&str>) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text, gateway)
}

/// Parses and compiles manifest text into a runtime config.
pub fn load_str(text: &str, gateway: Option<&str>) -> Result<Loaded, LoadError> {
    let manifests = sluice_api::parse_manifests(text)?;
    let compiled = sluice_api::compile_manifests(&manifests, gateway)?;
    let clients = compiled
        .config
        .clients
        .iter()
        .map(|t| {
            let protocol = match pb::Service::try_from(t.protocol) {
                Ok(pb::Service::L2tp) if t.ipsec.is_some() => "l2tp/ipsec",
                Ok(pb::Service::L2tp) => "l2tp",
                _ => "pptp",
            };
            format!(
                "{}: {protocol} to {}:{}",
                t.source, t.server_host, t.server_port
            )
        })
        .collect();
    Ok(Loaded {
        runtime: Runtime::from_proto(&compiled.config)?,
        left_out: compiled.left_out,
        clients,
    })
}

/// A human-readable summary of a runtime config, without secrets.
pub fn summary(c: &Runtime) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "gateway:        {}", c.gateway);
    let _ = writeln!(s, "version:        {}", c.version);
    let _ = writeln!(
        s,
        "pptp:           {} on tcp/{}",
        if c.pptp_enabled {
            "enabled"
        } else {
            "disabled"
        },
        c.pptp_port
    );
    let _ = writeln!(s, "authentication: {:?}", c.pptp.auth);
    let _ = writeln!(s, "encryption:     {:?}", c.pptp.mppe);
    if c.l2tp.enabled {
        let _ = writeln!(
            s,
            "l2tp:           enabled on udp/{}{}, tunnel secret {}, hello {:?}",
            c.l2tp.port,
            match (c.l2tp.allow_unencrypted, c.l2tp.ipsec.is_some()) {
                (true, false) => " (unencrypted: no IPsec)",
                (true, true) => " (IPsec, and plain L2TP also accepted)",
                _ => " (only inside IPsec)",
            },
            if c.l2tp.secret.is_some() {
                "set"
            } else {
                "none"
            },
            c.l2tp.hello
        );
        match &c.l2tp.ipsec {
            Some(i) => {
                let _ = writeln!(
                    s,
                    "  ipsec:          IKEv1 on udp/{} + NAT-T udp/{}, {} IKE and {} ESP proposals, \
                     lifetimes {:?}/{:?}, NAT-D {:?}, DPD {:?}/{:?}",
                    i.ike_port,
                    i.natt_port,
                    i.ike.len(),
                    i.esp.len(),
                    i.ike_lifetime,
                    i.esp_lifetime,
                    i.nat_detection,
                    i.dpd_delay,
                    i.dpd_timeout
                );
                // Every proposal, with the weak algorithms it accepts (docs/security.md).
                let weak = |w: Vec<&str>| {
                    if w.is_empty() {
                        String::new()
                    } else {
                        format!("   (weak: {})", w.join(", "))
                    }
                };
                let default = |yes: bool| if yes { " (default list)" } else { "" };
                let _ = writeln!(
                    s,
                    "  ike proposals:{}",
                    default(i.ike == sluice_ike::policy::default_ike_proposals())
                );
                for p in &i.ike {
                    let _ = writeln!(s, "    {p}{}", weak(p.weak()));
                }
                let _ = writeln!(
                    s,
                    "  esp proposals:{}",
                    default(i.esp == sluice_ike::policy::default_esp_proposals())
                );
                for p in &i.esp {
                    let _ = writeln!(s, "    {p}{}", weak(p.weak()));
                }
            }
            None => {
                let _ = writeln!(s, "  ipsec:          none");
            }
        }
        let _ = writeln!(s, "  authentication: {:?}", c.l2tp.ppp.auth);
        let _ = writeln!(s, "  encryption:     {:?}", c.l2tp.ppp.mppe);
    } else {
        let _ = writeln!(s, "l2tp:           disabled");
    }
    let _ = writeln!(s, "mtu/mru:        {}/{}", c.mtu, c.mru);
    let _ = writeln!(s, "keepalive:      {:?}", c.keepalive);
    let _ = writeln!(s, "local address:  {}", c.local_address);
    let _ = writeln!(s, "address pool:   {}", c.pool);
    let _ = writeln!(s, "dns:            {:?}", c.dns);
    let _ = writeln!(s, "masquerade:     {}", c.masquerade);
    let _ = writeln!(
        s,
        "max sessions:   {}",
        if c.max_sessions == 0 {
            "unlimited".to_owned()
        } else {
            c.max_sessions.to_string()
        }
    );
    let mut users: Vec<_> = c.users.values().collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let _ = writeln!(s, "users:          {}", users.len());
    for u in users {
        let _ = writeln!(
            s,
            "  {} ({}; pptp={} l2tp={} address={} routes={:?} maxSessions={})",
            u.username,
            u.credential.describe(),
            u.pptp,
            u.l2tp,
            u.remote_address
                .map(|a| a.to_string())
                .unwrap_or_else(|| "pool".into()),
            u.routes.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            u.max_sessions
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(user: pb::User) -> pb::GatewayConfig {
        pb::GatewayConfig {
            gateway: "vpn/office".into(),
            version: "v1".into(),
            pptp: Some(pb::PptpSettings {
                enabled: true,
                port: 1723,
                authentication: vec![pb::AuthMethod::MschapV2 as i32],
                encryption: pb::EncryptionPolicy::Require as i32,
                mppe_key_lengths: vec![pb::MppeKeyLength::Bits128 as i32],
                mppe_stateful: pb::StatefulMppe::Refuse as i32,
            }),
            l2tp: None,
            ppp: Some(pb::PppSettings {
                mtu: 1400,
                mru: 1400,
                keepalive_timeout_seconds: 30,
                local_address: Some(sluice_api::wire::ipv4_to_wire([10, 200, 0, 1].into())),
                address_pool: Some(pb::Ipv4Prefix {
                    address: u32::from(Ipv4Addr::new(10, 200, 0, 0)),
                    length: 24,
                }),
                dns_servers: vec![],
                static_addresses: vec![],
            }),
            nat: None,
            max_sessions: 0,
            users: vec![user],
            per_user_metrics: false,
            clients: vec![],
        }
    }

    fn user(password: &[u8], nt_hash: &[u8]) -> pb::User {
        pb::User {
            username: "alice".into(),
            password: password.to_vec(),
            services: vec![pb::Service::Pptp as i32],
            source: "vpn/alice".into(),
            nt_hash: nt_hash.to_vec(),
            ..pb::User::default()
        }
    }

    fn credential(password: &[u8], nt_hash: &[u8]) -> Result<Credential, String> {
        Runtime::from_proto(&config(user(password, nt_hash)))
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.users
                    .get("alice")
                    .map(|u| u.credential.clone())
                    .ok_or_else(|| "user missing".to_owned())
            })
    }

    #[test]
    fn password_only_is_a_password() {
        assert_eq!(
            credential(b"secret", b""),
            Ok(Credential::Password(Secret(b"secret".to_vec())))
        );
    }

    #[test]
    fn nt_hash_only_is_an_nt_hash() {
        assert_eq!(
            credential(b"", &[7; 16]),
            Ok(Credential::NtHash(NtHash([7; 16])))
        );
    }

    #[test]
    fn nt_hash_must_be_16_octets() {
        for len in [1, 15, 17, 32] {
            let err = credential(b"", &vec![7; len]).err().unwrap_or_default();
            assert!(err.contains("\"alice\""), "{err}");
            assert!(err.contains(&format!("{len} octets")), "{err}");
        }
    }

    #[test]
    fn neither_or_both_is_rejected() {
        let neither = credential(b"", b"").err().unwrap_or_default();
        assert!(neither.contains("neither"), "{neither}");
        let both = credential(b"secret", &[7; 16]).err().unwrap_or_default();
        assert!(both.contains("both"), "{both}");
    }

    #[test]
    fn credentials_never_print() {
        for c in [
            Credential::Password(Secret(b"hunter2".to_vec())),
            Credential::NtHash(NtHash([0xab; 16])),
        ] {
            let shown = format!("{c:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("171"),
                "{shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }

    #[test]
    fn summary_names_the_credential_kind() {
        let rt = Runtime::from_proto(&config(user(b"", &[1; 16])));
        let text = rt.map(|rt| summary(&rt)).unwrap_or_default();
        assert!(text.contains("alice (NT hash set;"), "{text}");
    }

    #[test]
    fn standalone_serves_good_users_and_leaves_out_bad_ones() {
        let text = concat!(
            include_str!("../../../examples/standalone.yaml"),
            "\n---\napiVersion: sluice.dev/v1alpha1\nkind: VpnUser\nmetadata: {name: eve}\n",
            "spec: {gatewayRef: {name: office}, passwordSecretRef: {name: eve-missing}}\n"
        );
        let loaded = load_str(text, None).map_err(|e| e.to_string());
        let loaded = loaded.as_ref();
        let mut names: Vec<&str> = loaded
            .map(|l| l.runtime.users.keys().map(String::as_str).collect())
            .unwrap_or_default();
        names.sort_unstable();
        assert_eq!(names, ["alice", "bob"]);
        let left_out: Vec<String> = loaded
            .map(|l| l.left_out.values().map(ToString::to_string).collect())
            .unwrap_or_default();
        assert_eq!(
            left_out,
            ["VpnUser/eve: spec.passwordSecretRef Secret \"eve-missing\" not found"]
        );
    }

    #[test]
    fn compiled_clients_are_listed_and_bad_ones_left_out() {
        let text = concat!(
            include_str!("../../../examples/standalone.yaml"),
            "\n---\napiVersion: sluice.dev/v1alpha1\nkind: VpnClient\nmetadata: {name: hq}\n",
            "spec: {gatewayRef: {name: office}, protocol: pptp, connectTo: 192.0.2.1,\n",
            "       credentialsSecretRef: {name: alice-password, usernameKey: password}}\n",
            "---\napiVersion: sluice.dev/v1alpha1\nkind: VpnClient\nmetadata: {name: lab}\n",
            "spec: {gatewayRef: {name: office}, protocol: l2tp, connectTo: 192.0.2.2,\n",
            "       credentialsSecretRef: {name: alice-password}}\n",
        );
        let loaded = load_str(text, None).map_err(|e| e.to_string());
        let clients = loaded.as_ref().map(|l| l.clients.clone());
        assert_eq!(
            clients,
            Ok(vec!["default/hq: pptp to 192.0.2.1:1723".to_owned()])
        );
        let left_out: Vec<String> = loaded
            .as_ref()
            .map(|l| l.left_out.keys().map(ToString::to_string).collect())
            .unwrap_or_default();
        assert_eq!(left_out, ["VpnClient/lab"]);
    }

    #[test]
    fn bad_ipsec_certificates_are_refused_naming_the_field() {
        let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../ike/tests/certs/");
        let read = |f: &str| std::fs::read(format!("{certs}{f}")).unwrap_or_default();
        let settings = |chain: Vec<u8>, key: Vec<u8>, ca: Vec<u8>| pb::IpsecSettings {
            certificate_chain: chain,
            private_key: key,
            client_ca: ca,
            ..pb::IpsecSettings::default()
        };
        let good = IpsecRuntime::from_proto(&settings(
            read("gateway-chain.pem"),
            read("gateway.key"),
            read("ca.pem"),
        ))
        .map_err(|e| e.to_string());
        let good = good.as_ref().map(|r| r.certificates.is_some());
        assert_eq!(good, Ok(true));
        let mismatch = IpsecRuntime::from_proto(&settings(
            read("gateway-chain.pem"),
            read("alice.key"),
            read("ca.pem"),
        ))
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(
            mismatch
                .as_ref()
                .is_err_and(|e| e.contains("spec.l2tp.ipsec.certificateSecretRef")),
            "{mismatch:?}"
        );
        let bad_ca = IpsecRuntime::from_proto(&settings(
            read("gateway-chain.pem"),
            read("gateway.key"),
            read("alice.pem"),
        ))
        .map(|_| ())
        .map_err(|e| e.to_string());
        assert!(
            bad_ca
                .as_ref()
                .is_err_and(|e| e.contains("spec.l2tp.ipsec.clientCaSecretRef")),
            "{bad_ca:?}"
        );
    }
}
