//! Loading manifests into the runtime configuration the data plane applies.
//!
//! The manifests go through `sluice_api::compile` — the same function the
//! operator uses — and the resulting `GatewayConfig` is turned into typed
//! values here once, so the hot path never parses strings.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;
use sluice_api::ObjectRef;
use sluice_api::wire::{ipv4_from_wire, prefix_from_wire};
use sluice_ppp::{AuthProto, EncryptionPolicy, KeyLengths, MppePolicy, StatefulMode};
use sluice_proto::v1 as pb;

use crate::datapath::ratelimit::RateLimit;
use crate::metrics::Protocol;

mod client;
mod credential;
mod ipsec;

pub use client::{
    ClientConfig, ClientConfigError, ClientIpsec, ClientLeftOut, ClientTransport, IkeAuth,
};
pub use credential::{Credential, CredentialError, NtHash, Secret};
pub use ipsec::{CertificateField, IpsecCertificates, IpsecRuntime};

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

fn wire<T>(
    field: &'static str,
    r: Result<T, sluice_api::wire::WireError>,
) -> Result<T, CompiledError> {
    r.map_err(|source| CompiledError::Wire { field, source })
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

impl L2tpRuntime {
    /// Whether L2TP that did not arrive under ESP is accepted: `allowUnencrypted`, or no
    /// IPsec configured (which compile allows only with `allowUnencrypted`).
    pub fn plain_allowed(&self) -> bool {
        self.allow_unencrypted || self.ipsec.is_none()
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
    /// Tunnels to dial out (`VpnClient`s), by source. This version does not dial them yet
    /// (issue 22, docs/client-mode.md).
    pub clients: Vec<ClientConfig>,
    /// Compiled clients that did not convert, each left out on its own.
    pub clients_left_out: Vec<ClientLeftOut>,
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
        let (clients, clients_left_out) = client::clients_from_proto(&c.clients);
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
            clients,
            clients_left_out,
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
    Ok(Loaded {
        runtime: Runtime::from_proto(&compiled.config)?,
        left_out: compiled.left_out,
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
mod tests;
