//! `compile()`: the one place where manifests become data-plane configuration.
//!
//! Pure: no I/O, no clock, deterministic output (including `version`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Secret;
use prost::Message;
use sha2::{Digest, Sha256};
use sluice_proto::v1::{
    AuthMethod, EncryptionPolicy, GatewayConfig, L2tpSettings, MppeKeyLength, NatSettings,
    PppSettings, PptpSettings, RateLimit, Service, StatefulMppe as WireStateful, User,
};

use crate::duration::{format_go_duration, parse_go_duration};
use crate::error::{ConfigError, FieldError, ObjectKind, ObjectRef};
use crate::gateway::{
    AuthenticationMethod, Encryption, MAX_MTU, MIN_MTU, MppeSpec, StatefulMppe, TunnelSecretRef,
    VpnGateway,
};
use crate::manifest::Manifests;
use crate::object_ref::namespace;
use crate::rate;
use crate::user::{RateLimitSpec, Service as ServiceSpec, VpnUser};
use crate::wire::{ipv4_to_wire, prefix_to_wire};

mod client;
mod ipsec;

pub use client::{compile_clients, with_clients};
use ipsec::ipsec_settings;

/// Longest user name or password: PAP/CHAP carry them with a one-octet length (RFC 1334 §2.2.1).
pub const MAX_CREDENTIAL_BYTES: usize = 255;
/// Longest L2TP tunnel secret.
pub const MAX_TUNNEL_SECRET_BYTES: usize = 1024;
/// Shortest IPsec pre-shared key: whoever runs one Main Mode exchange with a client (posing as
/// the gateway) can test guesses of the PSK offline, so it must not be short.
pub const MIN_PRE_SHARED_KEY_BYTES: usize = 8;
/// Longest IPsec pre-shared key.
pub const MAX_PRE_SHARED_KEY_BYTES: usize = 256;
/// Longest keepalive timeout (and L2TP HELLO interval), in seconds.
pub const MAX_KEEPALIVE_SECONDS: u64 = 3600;
/// Most DNS servers IPCP can offer (RFC 1877: primary and secondary).
pub const MAX_DNS_SERVERS: usize = 2;
/// Longest pool prefix: a /30 leaves two assignable addresses.
pub const MAX_POOL_PREFIX: u8 = 30;

/// Compiles one gateway, its users and their Secrets into a [`GatewayConfig`].
///
/// * Only users with `gatewayRef.name` equal to the gateway's name in the same
///   namespace and not `disabled` are included, sorted by username.
/// * Every default is filled in explicitly; `version` is the SHA-256 (hex) of the
///   encoded config with an empty `version`.
/// * All validation errors are collected (gateway first, then users by username).
///
/// Address rules: the pool's network and broadcast addresses and `localAddress`
/// (which may lie inside the pool) are never assigned; a static `remoteAddress`
/// must lie in the pool or in `staticAddresses`, and implies `maxSessions: 1`.
pub fn compile(
    gateway: &VpnGateway,
    users: &[VpnUser],
    secrets: &[Secret],
) -> Result<GatewayConfig, ConfigError> {
    compile_excluding(gateway, users, secrets, &BTreeSet::new())
}

/// [`compile`] as if the users in `excluded` were not there (the bad-user policy's rounds).
pub(crate) fn compile_excluding(
    gateway: &VpnGateway,
    users: &[VpnUser],
    secrets: &[Secret],
    excluded: &BTreeSet<ObjectRef>,
) -> Result<GatewayConfig, ConfigError> {
    let gw_name = gateway.metadata.name.as_deref().unwrap_or("");
    let gw_ns = namespace(&gateway.metadata);
    let gw_ref = ObjectRef::of(ObjectKind::VpnGateway, &gateway.metadata);
    let mut errs = Errors {
        list: Vec::new(),
        object: gw_ref.clone(),
    };
    let spec = &gateway.spec;

    // --- spec.pptp
    let pptp = &spec.pptp;
    if pptp.port == 0 {
        errs.push("spec.pptp.port", "must be between 1 and 65535");
    }
    let pptp_keys = ppp_policy(
        &mut errs,
        "spec.pptp",
        &pptp.authentication,
        pptp.encryption,
        &pptp.mppe,
    );

    // --- spec.l2tp
    let l2tp = &spec.l2tp;
    let mut l2tp_keys = Vec::new();
    let mut tunnel_secret = Vec::new();
    let mut hello = 0;
    let mut ipsec = None;
    if l2tp.enabled {
        if l2tp.port == 0 {
            errs.push("spec.l2tp.port", "must be between 1 and 65535");
        }
        if l2tp.ipsec.pre_shared_key_secret_ref.is_none()
            && l2tp.ipsec.certificate_secret_ref.is_none()
            && !l2tp.allow_unencrypted
        {
            errs.push(
                "spec.l2tp.ipsec.preSharedKeySecretRef",
                "is required (or spec.l2tp.ipsec.certificateSecretRef): L2TP is served only \
                 inside IPsec unless spec.l2tp.allowUnencrypted is set (L2TP alone encrypts \
                 nothing)",
            );
        }
        l2tp_keys = ppp_policy(
            &mut errs,
            "spec.l2tp",
            &l2tp.authentication,
            l2tp.encryption,
            &l2tp.mppe,
        );
        hello = seconds(&mut errs, "spec.l2tp.helloInterval", &l2tp.hello_interval);
        if let Some(r) = &l2tp.tunnel_secret_ref {
            tunnel_secret =
                tunnel_secret_value(&mut errs, "spec.l2tp.tunnelSecretRef", gw_ns, secrets, r);
        }
        ipsec = ipsec_settings(&mut errs, spec, gw_ns, secrets);
    }

    // --- spec.ppp
    let ppp = &spec.ppp;
    for (field, value) in [("spec.ppp.mtu", ppp.mtu), ("spec.ppp.mru", ppp.mru)] {
        if !(MIN_MTU..=MAX_MTU).contains(&value) {
            errs.push(field, format!("{value} is outside {MIN_MTU}..={MAX_MTU}"));
        }
    }
    let keepalive = seconds(
        &mut errs,
        "spec.ppp.keepaliveTimeout",
        &ppp.keepalive_timeout,
    );
    let local = parse_ip(&mut errs, "spec.ppp.localAddress", &ppp.local_address);
    let pool = parse_net(&mut errs, "spec.ppp.addressPool", &ppp.address_pool);
    let pool = pool.filter(|p| {
        if p.prefix_len() > MAX_POOL_PREFIX {
            errs.push(
                "spec.ppp.addressPool",
                format!("{p} is too small (the prefix must be /{MAX_POOL_PREFIX} or shorter)"),
            );
            false
        } else {
            true
        }
    });
    if let (Some(local), Some(pool)) = (local, pool)
        && (local == pool.network() || local == pool.broadcast())
    {
        errs.push(
            "spec.ppp.localAddress",
            format!("{local} is the network or broadcast address of pool {pool}"),
        );
    }
    if ppp.dns_servers.len() > MAX_DNS_SERVERS {
        errs.push(
            "spec.ppp.dnsServers",
            format!(
                "lists {} servers, at most {MAX_DNS_SERVERS} are allowed",
                ppp.dns_servers.len()
            ),
        );
    }
    for (i, dns) in ppp.dns_servers.iter().enumerate() {
        parse_ip(&mut errs, &format!("spec.ppp.dnsServers[{i}]"), dns);
    }
    let mut static_nets = Vec::new();
    for (i, s) in ppp.static_addresses.iter().enumerate() {
        let field = format!("spec.ppp.staticAddresses[{i}]");
        if let Some(net) = parse_net(&mut errs, &field, s) {
            if let Some(pool) = pool
                && overlaps(net, pool)
            {
                errs.push(field, format!("{net} overlaps pool {pool}"));
            } else {
                static_nets.push(net);
            }
        }
    }
    if spec.replicas < 0 {
        errs.push(
            "spec.replicas",
            format!("{} must not be negative", spec.replicas),
        );
    }
    seconds_between(
        &mut errs,
        "spec.drainTimeout",
        &spec.drain_timeout,
        0,
        crate::MAX_DRAIN_TIMEOUT_SECONDS,
    );
    if let Some(a) = &spec.autoscaling {
        let p = "spec.autoscaling";
        if a.min_replicas < 0 {
            errs.push(
                format!("{p}.minReplicas"),
                "must not be negative".to_owned(),
            );
        }
        if a.max_replicas < 1 || a.max_replicas < a.min_replicas {
            errs.push(
                format!("{p}.maxReplicas"),
                format!(
                    "{} must be at least 1 and at least minReplicas",
                    a.max_replicas
                ),
            );
        }
        if a.target_sessions_per_replica == 0 {
            errs.push(
                format!("{p}.targetSessionsPerReplica"),
                "must be at least 1".to_owned(),
            );
        }
        seconds_between(
            &mut errs,
            &format!("{p}.scaleDownStabilization"),
            &a.scale_down_stabilization,
            0,
            crate::MAX_DRAIN_TIMEOUT_SECONDS,
        );
    }

    // --- users
    let mut mine: Vec<(String, &VpnUser)> = users
        .iter()
        .filter(|u| {
            namespace(&u.metadata) == gw_ns
                && u.spec.gateway_ref.name == gw_name
                && !u.spec.disabled
                && (excluded.is_empty() || !excluded.contains(&ObjectRef::of_user(u)))
        })
        .map(|u| {
            let username = u
                .spec
                .username
                .clone()
                .unwrap_or_else(|| u.metadata.name.clone().unwrap_or_default());
            (username, u)
        })
        .collect();
    mine.sort_by(|(a, ua), (b, ub)| {
        a.cmp(b)
            .then_with(|| ua.metadata.name.cmp(&ub.metadata.name))
    });

    let mut out_users = Vec::with_capacity(mine.len());
    let mut usernames: BTreeMap<&str, String> = BTreeMap::new();
    let mut statics: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for (username, user) in &mine {
        let name = user.metadata.name.as_deref().unwrap_or("");
        errs.object = ObjectRef::of_user(user);
        let s = &user.spec;

        if username.is_empty() {
            errs.push("spec.username", "must not be empty");
        } else if username.len() > MAX_CREDENTIAL_BYTES {
            errs.push(
                "spec.username",
                format!(
                    "is {} bytes long, at most {MAX_CREDENTIAL_BYTES} are allowed",
                    username.len()
                ),
            );
        } else if username.contains('\0') {
            errs.push("spec.username", "must not contain NUL");
        } else if let Some(other) = usernames.get(username.as_str()) {
            errs.push(
                "spec.username",
                format!("{username:?} is also used by {other}"),
            );
        } else {
            usernames.insert(username, errs.object.to_string());
        }

        let password = password(&mut errs, user, gw_ns, secrets);

        if s.services.is_empty() {
            errs.push(
                "spec.services",
                "must list at least one service (use spec.disabled to disable a user)",
            );
        }
        let mut services: Vec<i32> = Vec::new();
        for svc in &s.services {
            let svc = match svc {
                ServiceSpec::Pptp => Service::Pptp,
                ServiceSpec::L2tp => Service::L2tp,
            } as i32;
            if !services.contains(&svc) {
                services.push(svc);
            }
        }

        let mut max_sessions = s.max_sessions.unwrap_or(0);
        let mut remote_address = None;
        if let Some(ra) = &s.remote_address {
            if let Some(ip) = parse_ip(&mut errs, "spec.remoteAddress", ra) {
                check_static(&mut errs, ip, local, pool, &static_nets, &mut statics);
                remote_address = Some(ipv4_to_wire(ip));
            }
            match s.max_sessions {
                None => max_sessions = 1,
                Some(1) => {}
                Some(n) => errs.push(
                    "spec.maxSessions",
                    format!("is {n} but must be 1 with a static spec.remoteAddress (one address serves one session)"),
                ),
            }
        }

        let mut routes = Vec::new();
        for (i, r) in s.routes.iter().enumerate() {
            let field = format!("spec.routes[{i}]");
            if let Some(net) = parse_net(&mut errs, &field, r) {
                if let Some(pool) = pool
                    && overlaps(net, pool)
                {
                    errs.push(field, format!("{net} overlaps pool {pool}"));
                } else if let Some(local) = local
                    && net.contains(&local)
                {
                    errs.push(
                        field,
                        format!("{net} contains spec.ppp.localAddress {local} of {gw_ref}"),
                    );
                } else {
                    routes.push(prefix_to_wire(net));
                }
            }
        }

        let rate_limit = s.rate_limit.as_ref().and_then(|r| rate_limit(&mut errs, r));

        out_users.push(User {
            username: username.clone(),
            password,
            services,
            remote_address,
            routes,
            max_sessions,
            source: format!("{gw_ns}/{name}"),
            nt_hash: Vec::new(),
            rate_limit,
        });
    }

    if !errs.list.is_empty() {
        return Err(ConfigError { errors: errs.list });
    }

    let mut config = GatewayConfig {
        gateway: format!("{gw_ns}/{gw_name}"),
        version: String::new(),
        pptp: Some(PptpSettings {
            enabled: pptp.enabled,
            port: u32::from(pptp.port),
            authentication: pptp
                .authentication
                .iter()
                .map(|m| auth_method(*m) as i32)
                .collect(),
            encryption: encryption_policy(pptp.encryption) as i32,
            mppe_key_lengths: pptp_keys,
            mppe_stateful: stateful_mppe(pptp.mppe.stateful) as i32,
        }),
        l2tp: Some(L2tpSettings {
            enabled: l2tp.enabled,
            port: u32::from(l2tp.port),
            authentication: l2tp
                .authentication
                .iter()
                .map(|m| auth_method(*m) as i32)
                .collect(),
            encryption: encryption_policy(l2tp.encryption) as i32,
            mppe_key_lengths: l2tp_keys,
            mppe_stateful: stateful_mppe(l2tp.mppe.stateful) as i32,
            tunnel_secret,
            hello_interval_seconds: hello,
            allow_unencrypted: l2tp.allow_unencrypted,
            ipsec,
        }),
        ppp: Some(PppSettings {
            mtu: ppp.mtu,
            mru: ppp.mru,
            keepalive_timeout_seconds: keepalive,
            local_address: local.map(ipv4_to_wire),
            address_pool: pool.map(prefix_to_wire),
            dns_servers: ppp
                .dns_servers
                .iter()
                .filter_map(|d| d.trim().parse::<Ipv4Addr>().ok())
                .map(ipv4_to_wire)
                .collect(),
            static_addresses: static_nets.iter().copied().map(prefix_to_wire).collect(),
        }),
        nat: Some(NatSettings {
            masquerade: spec.nat.masquerade,
        }),
        max_sessions: spec.max_sessions,
        users: out_users,
        per_user_metrics: spec.metrics.per_user,
        // Clients compile on their own (`compile_clients`).
        clients: Vec::new(),
    };
    config.version = config_version(&config);
    Ok(config)
}

/// `spec.rateLimit` → the data plane's buckets (errors name the field).
fn rate_limit(errs: &mut Errors, r: &RateLimitSpec) -> Option<RateLimit> {
    let mut rate = |field: &str, v: &Option<String>| match v.as_deref().map(rate::parse_rate) {
        None => Some(0),
        Some(Ok(bps)) => Some(bps),
        Some(Err(e)) => {
            errs.push(field, e.to_string());
            None
        }
    };
    let down = rate("spec.rateLimit.down", &r.down);
    let up = rate("spec.rateLimit.up", &r.up);
    let burst = match r.burst.as_deref().map(rate::parse_burst) {
        None => Some(None),
        Some(Ok(b)) => Some(Some(b)),
        Some(Err(e)) => {
            errs.push("spec.rateLimit.burst", e.to_string());
            None
        }
    };
    let (down, up, burst) = (down?, up?, burst?);
    if down == 0 && up == 0 {
        errs.push("spec.rateLimit", "needs down, up or both");
        return None;
    }
    Some(RateLimit {
        down_bits_per_second: down,
        up_bits_per_second: up,
        burst_bytes: burst.unwrap_or_else(|| rate::default_burst(down.max(up))),
    })
}

/// Picks a gateway from parsed manifests and compiles it with all its users, clients and
/// Secrets; any error (a client's too) fails the whole.
///
/// `gateway` is `name` or `namespace/name`; `None` picks the only gateway.
pub fn compile_from_manifests(
    m: &Manifests,
    gateway: Option<&str>,
) -> Result<GatewayConfig, ConfigError> {
    let gw = pick_gateway(m, gateway)?;
    let mut config = compile(gw, &m.users, &m.secrets)?;
    let (clients, bad) = compile_clients(gw, &m.clients, &m.secrets);
    if !bad.is_empty() {
        return Err(ConfigError {
            errors: bad.into_values().flat_map(|e| e.errors).collect(),
        });
    }
    config.clients = clients;
    config.version = config_version(&config);
    Ok(config)
}

/// The gateway `gateway` names (`name` or `namespace/name`; `None`: the only one).
pub(crate) fn pick_gateway<'m>(
    m: &'m Manifests,
    gateway: Option<&str>,
) -> Result<&'m VpnGateway, ConfigError> {
    let input_err = |msg: String| ConfigError::single(FieldError::new("input", "", msg));
    let chosen: Vec<&VpnGateway> = match gateway {
        None => m.gateways.iter().collect(),
        Some(want) => m
            .gateways
            .iter()
            .filter(|g| {
                let name = g.metadata.name.as_deref().unwrap_or("");
                match want.split_once('/') {
                    Some((ns, n)) => namespace(&g.metadata) == ns && name == n,
                    None => name == want,
                }
            })
            .collect(),
    };
    match chosen.as_slice() {
        [gw] => Ok(gw),
        [] => Err(input_err(match gateway {
            Some(want) => format!("has no VpnGateway named {want:?}"),
            None => "has no VpnGateway".to_owned(),
        })),
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|g| {
                    format!(
                        "{}/{}",
                        namespace(&g.metadata),
                        g.metadata.name.as_deref().unwrap_or("")
                    )
                })
                .collect();
            Err(input_err(format!(
                "has {} matching VpnGateways ({}); name one as namespace/name",
                many.len(),
                names.join(", ")
            )))
        }
    }
}

/// A copy of `config` with every password replaced by an empty value, safe to `Debug`-print.
///
/// `GatewayConfig`'s derived `Debug` shows passwords: never print it directly.
pub fn redacted(config: &GatewayConfig) -> GatewayConfig {
    let mut c = config.clone();
    for u in &mut c.users {
        u.password.clear();
        u.nt_hash.clear();
    }
    if let Some(l2tp) = &mut c.l2tp {
        l2tp.tunnel_secret.clear();
        if let Some(ipsec) = &mut l2tp.ipsec {
            ipsec.pre_shared_key.clear();
            ipsec.private_key.clear();
        }
    }
    for t in &mut c.clients {
        t.password.clear();
        t.tunnel_secret.clear();
        if let Some(ipsec) = &mut t.ipsec {
            ipsec.pre_shared_key.clear();
            ipsec.private_key.clear();
        }
    }
    c
}

/// Checks one protocol's PPP authentication list and MPPE settings (under `prefix`);
/// returns the accepted key lengths, strongest first.
fn ppp_policy(
    errs: &mut Errors,
    prefix: &str,
    authentication: &[AuthenticationMethod],
    encryption: Encryption,
    mppe: &MppeSpec,
) -> Vec<i32> {
    if authentication.is_empty() {
        errs.push(
            format!("{prefix}.authentication"),
            "must list at least one method",
        );
    }
    let mut seen_auth = HashSet::new();
    for (i, m) in authentication.iter().enumerate() {
        if !seen_auth.insert(*m) {
            errs.push(
                format!("{prefix}.authentication[{i}]"),
                format!("{} is listed twice", auth_name(*m)),
            );
        }
    }
    let has_mschap = authentication.iter().any(|m| m.is_mschap());
    if matches!(encryption, Encryption::Require | Encryption::Prefer)
        && !has_mschap
        && !authentication.is_empty()
    {
        errs.push(
            format!("{prefix}.encryption"),
            format!(
                "{} needs mschapv1 or mschapv2 in {prefix}.authentication (MPPE keys come from MS-CHAP)",
                encryption_name(encryption)
            ),
        );
    }
    if mppe.key_lengths.is_empty() {
        errs.push(
            format!("{prefix}.mppe.keyLengths"),
            "must list at least one of 40, 56, 128",
        );
    }
    let mut key_lengths = Vec::new();
    for (i, &len) in mppe.key_lengths.iter().enumerate() {
        let field = format!("{prefix}.mppe.keyLengths[{i}]");
        if ![40, 56, 128].contains(&len) {
            errs.push(field, format!("{len} is not one of 40, 56, 128"));
        } else if key_lengths.contains(&len) {
            errs.push(field, format!("{len} is listed twice"));
        } else {
            key_lengths.push(len);
        }
    }
    key_lengths.sort_unstable_by(|a, b| b.cmp(a));
    key_lengths
        .into_iter()
        .filter_map(|bits| match bits {
            40 => Some(MppeKeyLength::Bits40 as i32),
            56 => Some(MppeKeyLength::Bits56 as i32),
            128 => Some(MppeKeyLength::Bits128 as i32),
            _ => None,
        })
        .collect()
}

/// A Go duration of whole seconds, at most one hour (0 on error, which is reported).
fn seconds(errs: &mut Errors, field: &str, text: &str) -> u32 {
    seconds_between(errs, field, text, 0, MAX_KEEPALIVE_SECONDS).unwrap_or(0)
}

/// A Go duration of whole seconds in `min..=max` (`None` on error, which is reported).
pub(super) fn seconds_between(
    errs: &mut Errors,
    field: &str,
    text: &str,
    min: u64,
    max: u64,
) -> Option<u32> {
    match parse_go_duration(text) {
        Err(why) => {
            errs.push(
                field,
                format!("{text:?} {why} (expected a duration such as 30s or 1m30s)"),
            );
            None
        }
        Ok(d) if d.subsec_nanos() != 0 => {
            errs.push(field, format!("{text:?} must be a whole number of seconds"));
            None
        }
        Ok(d) if d.as_secs() > max => {
            errs.push(
                field,
                format!("{text:?} is longer than {}", format_go_duration(max)),
            );
            None
        }
        Ok(d) if d.as_secs() < min => {
            errs.push(
                field,
                format!("{text:?} is shorter than {}", format_go_duration(min)),
            );
            None
        }
        Ok(d) => u32::try_from(d.as_secs()).ok(),
    }
}

/// SHA-256 (hex) of the encoded config with an empty `version`.
fn config_version(config: &GatewayConfig) -> String {
    let mut c = config.clone();
    c.version.clear();
    let digest = Sha256::digest(c.encode_to_vec());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) struct Errors {
    list: Vec<FieldError>,
    object: ObjectRef,
}

impl Errors {
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.list
            .push(FieldError::new(self.object.clone(), field, message));
    }
}

fn parse_ip(errs: &mut Errors, field: &str, s: &str) -> Option<Ipv4Addr> {
    match s.parse::<Ipv4Addr>() {
        Ok(ip) => Some(ip),
        Err(_) => {
            errs.push(field, format!("{s:?} is not an IPv4 address"));
            None
        }
    }
}

fn parse_net(errs: &mut Errors, field: &str, s: &str) -> Option<Ipv4Net> {
    match s.parse::<Ipv4Net>() {
        Ok(net) if net.trunc() == net => Some(net),
        Ok(net) => {
            errs.push(
                field,
                format!("{s} has host bits set (did you mean {}?)", net.trunc()),
            );
            None
        }
        Err(_) => {
            errs.push(
                field,
                format!("{s:?} is not an IPv4 CIDR such as 10.0.0.0/24"),
            );
            None
        }
    }
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_static(
    errs: &mut Errors,
    ip: Ipv4Addr,
    local: Option<Ipv4Addr>,
    pool: Option<Ipv4Net>,
    static_nets: &[Ipv4Net],
    statics: &mut BTreeMap<Ipv4Addr, String>,
) {
    const F: &str = "spec.remoteAddress";
    if local == Some(ip) {
        errs.push(F, format!("{ip} is the gateway's spec.ppp.localAddress"));
        return;
    }
    match pool {
        Some(pool) if ip == pool.network() || ip == pool.broadcast() => {
            errs.push(
                F,
                format!("{ip} is the network or broadcast address of pool {pool}"),
            );
            return;
        }
        Some(pool) if !pool.contains(&ip) && !static_nets.iter().any(|n| n.contains(&ip)) => {
            errs.push(
                F,
                format!("{ip} is outside pool {pool} and not listed in spec.ppp.staticAddresses"),
            );
            return;
        }
        // Inside the pool or a static range; or the pool is invalid and already reported.
        _ => {}
    }
    if let Some(other) = statics.get(&ip) {
        errs.push(F, format!("{ip} is also assigned to {other}"));
    } else {
        statics.insert(ip, errs.object.to_string());
    }
}

/// Reads one key of a Secret in `ns` (`stringData` wins over `data`, as on the apiserver);
/// reports a missing Secret or key under `field`. Errors never show the value.
pub(super) fn secret_value(
    errs: &mut Errors,
    field: &str,
    ns: &str,
    secrets: &[Secret],
    name: &str,
    key: &str,
) -> Option<Vec<u8>> {
    let Some(secret) = secrets
        .iter()
        .find(|s| namespace(&s.metadata) == ns && s.metadata.name.as_deref() == Some(name))
    else {
        errs.push(field, format!("Secret {name:?} not found"));
        return None;
    };
    let value = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|s| s.as_bytes().to_vec())
        .or_else(|| {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|b| b.0.clone())
        });
    if value.is_none() {
        errs.push(field, format!("Secret {name:?} has no key {key:?}"));
    }
    value
}

/// One Secret value read by [`sized_secret`].
pub(super) struct SizedSecret {
    pub value: Vec<u8>,
    /// What it is and where it came from, for error messages (never the value).
    pub what: String,
    /// Non-empty and at most the size allowed (else the error is reported already).
    pub sound: bool,
}

/// Reads `key` of Secret `name` as the `label` it holds (a password, a pre-shared key…;
/// `None`: just the Secret's key) and checks that it is non-empty and at most `max` bytes.
/// `None` when the Secret or key is missing (reported). Errors never show the value.
pub(super) fn sized_secret(
    errs: &mut Errors,
    field: &str,
    ns: &str,
    secrets: &[Secret],
    (name, key): (&str, &str),
    label: Option<&str>,
    max: usize,
) -> Option<SizedSecret> {
    let value = secret_value(errs, field, ns, secrets, name, key)?;
    let what = match label {
        Some(label) => format!("{label} in Secret {name:?} key {key:?}"),
        None => format!("Secret {name:?} key {key:?}"),
    };
    let sound = sized(errs, field, &what, &value, max);
    Some(SizedSecret { value, what, sound })
}

/// Reads an L2TP tunnel secret (non-empty, bounded); errors never show the value.
pub(super) fn tunnel_secret_value(
    errs: &mut Errors,
    field: &str,
    ns: &str,
    secrets: &[Secret],
    r: &TunnelSecretRef,
) -> Vec<u8> {
    let key = (r.name.as_str(), r.key.as_str());
    let s = sized_secret(
        errs,
        field,
        ns,
        secrets,
        key,
        Some("tunnel secret"),
        MAX_TUNNEL_SECRET_BYTES,
    );
    s.map_or_else(Vec::new, |s| s.value)
}

/// Whether a Secret's value (`what`) holds 1 to `max` bytes; reports why not under `field`
/// (its length, never the value).
pub(super) fn sized(errs: &mut Errors, field: &str, what: &str, value: &[u8], max: usize) -> bool {
    if value.is_empty() {
        errs.push(field, format!("{what} is empty"));
        false
    } else if value.len() > max {
        errs.push(
            field,
            format!(
                "{what} is {} bytes long, at most {max} are allowed",
                value.len()
            ),
        );
        false
    } else {
        true
    }
}

/// Reads the user's password from its Secret; errors never show the value.
fn password(errs: &mut Errors, user: &VpnUser, ns: &str, secrets: &[Secret]) -> Vec<u8> {
    const F: &str = "spec.passwordSecretRef";
    let r = &user.spec.password_secret_ref;
    credential(errs, F, ns, secrets, &r.name, &r.key, "password")
}

/// Reads a PPP user name or password (`what`) from a Secret: non-empty, at most
/// [`MAX_CREDENTIAL_BYTES`], no NUL, UTF-8 (MS-CHAP hashes the Unicode password). Errors
/// never show the value.
pub(super) fn credential(
    errs: &mut Errors,
    field: &str,
    ns: &str,
    secrets: &[Secret],
    name: &str,
    key: &str,
    what: &str,
) -> Vec<u8> {
    let s = sized_secret(
        errs,
        field,
        ns,
        secrets,
        (name, key),
        Some(what),
        MAX_CREDENTIAL_BYTES,
    );
    let Some(SizedSecret { value, what, sound }) = s else {
        return Vec::new();
    };
    if sound && value.contains(&0) {
        errs.push(field, format!("{what} contains NUL"));
    } else if sound && std::str::from_utf8(&value).is_err() {
        errs.push(
            field,
            format!("{what} is not valid UTF-8 (MS-CHAP hashes the Unicode password)"),
        );
    }
    value
}

fn auth_method(m: AuthenticationMethod) -> AuthMethod {
    match m {
        AuthenticationMethod::Pap => AuthMethod::Pap,
        AuthenticationMethod::Chap => AuthMethod::ChapMd5,
        AuthenticationMethod::Mschapv1 => AuthMethod::MschapV1,
        AuthenticationMethod::Mschapv2 => AuthMethod::MschapV2,
    }
}

fn auth_name(m: AuthenticationMethod) -> &'static str {
    match m {
        AuthenticationMethod::Pap => "pap",
        AuthenticationMethod::Chap => "chap",
        AuthenticationMethod::Mschapv1 => "mschapv1",
        AuthenticationMethod::Mschapv2 => "mschapv2",
    }
}

fn encryption_policy(e: Encryption) -> EncryptionPolicy {
    match e {
        Encryption::Deny => EncryptionPolicy::Deny,
        Encryption::Allow => EncryptionPolicy::Allow,
        Encryption::Prefer => EncryptionPolicy::Prefer,
        Encryption::Require => EncryptionPolicy::Require,
    }
}

fn stateful_mppe(s: StatefulMppe) -> WireStateful {
    match s {
        StatefulMppe::Refuse => WireStateful::Refuse,
        StatefulMppe::Allow => WireStateful::Allow,
        StatefulMppe::Prefer => WireStateful::Prefer,
    }
}

fn encryption_name(e: Encryption) -> &'static str {
    match e {
        Encryption::Deny => "deny",
        Encryption::Allow => "allow",
        Encryption::Prefer => "prefer",
        Encryption::Require => "require",
    }
}
