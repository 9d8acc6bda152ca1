//! `VpnClient` → `ClientTunnel`: the tunnels a gateway's data plane dials out. Each client
//! compiles on its own: one that does not is left out with its errors, and neither the
//! gateway nor its other clients are touched.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Secret;
use sluice_ike::policy::{EspProposal, IkeProposal};
use sluice_proto::v1::{ClientIpsec, ClientTunnel, Service as WireService};

use super::ipsec::{CERTIFICATE_PEM, KEY_PEM, pem_value, pre_shared_key, proposals};
use super::{
    Errors, auth_method, config_version, credential, encryption_policy, parse_net, ppp_policy,
    seconds, seconds_between, stateful_mppe, tunnel_secret_value,
};
use crate::bad_users::Compiled;
use crate::client::{ClientIpsecSpec, VpnClient, VpnClientSpec};
use crate::duration::parse_go_duration;
use crate::error::{ConfigError, ObjectKind, ObjectRef};
use crate::gateway::{DEFAULT_L2TP_PORT, DEFAULT_PPTP_PORT, MAX_MTU, MIN_MTU, VpnGateway};
use crate::object_ref::namespace;
use crate::user::Service;
use crate::wire::{esp_proposal_to_wire, ike_proposal_to_wire, prefix_to_wire};

/// Longest DNS name (RFC 1035 §2.3.4).
const MAX_HOST_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// Compiles the `VpnClient`s of `gateway` (same namespace, `gatewayRef` naming it, not
/// disabled), sorted by `namespace/name`; clients with errors are left out and returned
/// with every error about them.
pub fn compile_clients(
    gateway: &VpnGateway,
    clients: &[VpnClient],
    secrets: &[Secret],
) -> (Vec<ClientTunnel>, BTreeMap<ObjectRef, ConfigError>) {
    let gw_ns = namespace(&gateway.metadata);
    let gw_name = gateway.metadata.name.as_deref().unwrap_or("");
    let mut out = Vec::new();
    let mut left_out = BTreeMap::new();
    for client in clients {
        if namespace(&client.metadata) != gw_ns
            || client.spec.gateway_ref.name != gw_name
            || client.spec.disabled
        {
            continue;
        }
        let object = ObjectRef::of(ObjectKind::VpnClient, &client.metadata);
        let mut errs = Errors {
            list: Vec::new(),
            object: object.clone(),
        };
        let source = format!(
            "{gw_ns}/{}",
            client.metadata.name.as_deref().unwrap_or_default()
        );
        let tunnel = client_tunnel(&mut errs, &client.spec, source, gw_ns, secrets);
        // A missing Secret is one error, not one per key read from it.
        errs.list.dedup();
        if errs.list.is_empty() {
            out.push(tunnel);
        } else {
            left_out.insert(object, ConfigError { errors: errs.list });
        }
    }
    out.sort_by(|a, b| a.source.cmp(&b.source));
    (out, left_out)
}

/// Adds the clients of `gateway` to a compiled configuration (and its left-out objects),
/// and recomputes its `version`.
pub fn with_clients(
    mut compiled: Compiled,
    gateway: &VpnGateway,
    clients: &[VpnClient],
    secrets: &[Secret],
) -> Compiled {
    let (tunnels, left_out) = compile_clients(gateway, clients, secrets);
    compiled.config.clients = tunnels;
    compiled.config.version = config_version(&compiled.config);
    compiled.left_out.extend(left_out);
    compiled
}

fn client_tunnel(
    errs: &mut Errors,
    spec: &VpnClientSpec,
    source: String,
    ns: &str,
    secrets: &[Secret],
) -> ClientTunnel {
    let (server_host, server_port) = server(errs, spec);
    let r = &spec.credentials_secret_ref;
    const CRED: &str = "spec.credentialsSecretRef";
    let username = credential(
        errs,
        CRED,
        ns,
        secrets,
        &r.name,
        &r.username_key,
        "user name",
    );
    let password = credential(
        errs,
        CRED,
        ns,
        secrets,
        &r.name,
        &r.password_key,
        "password",
    );
    let encryption = spec.encryption();
    let mppe_key_lengths = ppp_policy(errs, "spec", &spec.authentication, encryption, &spec.mppe);

    let mut tunnel_secret = Vec::new();
    let mut ipsec = None;
    match spec.protocol {
        Service::Pptp => {
            if spec.ipsec.is_some() || spec.tunnel_secret_ref.is_some() || spec.allow_unencrypted {
                errs.push(
                    "spec.protocol",
                    "pptp takes no spec.ipsec, spec.tunnelSecretRef or spec.allowUnencrypted \
                     (they are for l2tp)",
                );
            }
        }
        Service::L2tp => {
            if let Some(r) = &spec.tunnel_secret_ref {
                tunnel_secret = tunnel_secret_value(errs, "spec.tunnelSecretRef", ns, secrets, r);
            }
            match &spec.ipsec {
                Some(i) => ipsec = Some(client_ipsec(errs, i, ns, secrets, server_port)),
                None if spec.allow_unencrypted => {}
                None => errs.push(
                    "spec.ipsec",
                    "is required with protocol l2tp, unless spec.allowUnencrypted is true \
                     (L2TP alone encrypts nothing)",
                ),
            }
        }
    }

    for (field, value) in [("spec.mtu", spec.mtu), ("spec.mru", spec.mru)] {
        if !(MIN_MTU..=MAX_MTU).contains(&value) {
            errs.push(field, format!("{value} is outside {MIN_MTU}..={MAX_MTU}"));
        }
    }
    let routes = spec
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| parse_net(errs, &format!("spec.routes[{i}]"), c))
        .map(prefix_to_wire)
        .collect();
    let keepalive = seconds(errs, "spec.keepaliveTimeout", &spec.keepalive_timeout);
    let initial = millis(errs, "spec.reconnect.initial", &spec.reconnect.initial, 1);
    let max = millis(errs, "spec.reconnect.max", &spec.reconnect.max, 24);
    if let (Some(initial), Some(max)) = (initial, max)
        && initial > max
    {
        errs.push(
            "spec.reconnect.initial",
            format!(
                "{:?} is longer than spec.reconnect.max ({:?})",
                spec.reconnect.initial, spec.reconnect.max
            ),
        );
    }

    ClientTunnel {
        source,
        protocol: match spec.protocol {
            Service::Pptp => WireService::Pptp,
            Service::L2tp => WireService::L2tp,
        } as i32,
        server_host,
        server_port: u32::from(server_port),
        username: String::from_utf8(username).unwrap_or_default(),
        password,
        authentication: spec
            .authentication
            .iter()
            .map(|m| auth_method(*m) as i32)
            .collect(),
        encryption: encryption_policy(encryption) as i32,
        mppe_key_lengths,
        mppe_stateful: stateful_mppe(spec.mppe.stateful) as i32,
        tunnel_secret,
        ipsec,
        routes,
        add_default_route: spec.add_default_route,
        masquerade: spec.masquerade,
        mtu: spec.mtu,
        mru: spec.mru,
        keepalive_timeout_seconds: keepalive,
        reconnect_initial_ms: initial.unwrap_or(0),
        reconnect_max_ms: max.unwrap_or(0),
    }
}

/// `spec.connectTo` → host and port (the protocol's default when absent).
fn server(errs: &mut Errors, spec: &VpnClientSpec) -> (String, u16) {
    const F: &str = "spec.connectTo";
    let default_port = match spec.protocol {
        Service::Pptp => DEFAULT_PPTP_PORT,
        Service::L2tp => DEFAULT_L2TP_PORT,
    };
    let text = spec.connect_to.as_str();
    let (host, port) = match text.rsplit_once(':') {
        None => (text, Some(default_port)),
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0 && port.bytes().all(|b| b.is_ascii_digit())),
        ),
    };
    let Some(port) = port else {
        errs.push(
            F,
            format!("{text:?} has no port from 1 to 65535 after the colon"),
        );
        return (String::new(), 0);
    };
    if host.parse::<Ipv4Addr>().is_err() && !is_dns_name(host) {
        errs.push(
            F,
            format!(
                "{host:?} is neither an IPv4 address nor a DNS name (letters, digits, hyphens \
                 and dots; labels of at most {MAX_LABEL_LEN} characters)"
            ),
        );
    }
    (host.to_owned(), port)
}

/// A host name as RFC 1123 §2.1 allows: dot-separated labels of letters, digits and
/// hyphens, neither starting nor ending with a hyphen; not all-numeric at the top.
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    // A dotted all-numeric name is a mistyped IPv4 address, not a host.
    let numeric_top = host
        .rsplit('.')
        .next()
        .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && !numeric_top
}

/// A Go duration from 1 s to `max_hours` hours, in milliseconds.
fn millis(errs: &mut Errors, field: &str, text: &str, max_hours: u64) -> Option<u32> {
    let range = 1000..=u128::from(max_hours) * 3_600_000;
    match parse_go_duration(text) {
        Ok(d) if range.contains(&d.as_millis()) => u32::try_from(d.as_millis()).ok(),
        Ok(_) => {
            errs.push(
                field,
                format!("{text:?} is not between 1s and {max_hours}h"),
            );
            None
        }
        Err(why) => {
            errs.push(
                field,
                format!("{text:?} {why} (expected a duration such as 2s or 5m)"),
            );
            None
        }
    }
}

/// `spec.ipsec`: the key or certificate, proposals (no MD5: a client picks its own), ports.
fn client_ipsec(
    errs: &mut Errors,
    ipsec: &ClientIpsecSpec,
    ns: &str,
    secrets: &[Secret],
    l2tp_port: u16,
) -> ClientIpsec {
    const P: &str = "spec.ipsec";
    let mut out = ClientIpsec::default();
    match (
        &ipsec.pre_shared_key_secret_ref,
        &ipsec.certificate_secret_ref,
    ) {
        (Some(r), None) => {
            out.pre_shared_key =
                pre_shared_key(errs, &format!("{P}.preSharedKeySecretRef"), ns, secrets, r);
        }
        (None, Some(c)) => {
            let f = format!("{P}.certificateSecretRef");
            out.certificate_chain =
                pem_value(errs, &f, ns, secrets, &c.name, "tls.crt", CERTIFICATE_PEM);
            out.private_key = pem_value(errs, &f, ns, secrets, &c.name, "tls.key", KEY_PEM);
            match &ipsec.server_ca_secret_ref {
                Some(ca) => {
                    let f = format!("{P}.serverCaSecretRef");
                    out.server_ca =
                        pem_value(errs, &f, ns, secrets, &ca.name, &ca.key, CERTIFICATE_PEM);
                }
                None => errs.push(
                    format!("{P}.serverCaSecretRef"),
                    "is required with certificateSecretRef: the CAs the server's certificate \
                     must chain to",
                ),
            }
            if ipsec.aggressive_mode {
                errs.push(
                    format!("{P}.aggressiveMode"),
                    "needs preSharedKeySecretRef (Aggressive Mode is used with a pre-shared key \
                     only)",
                );
            }
        }
        _ => errs.push(
            P,
            "needs exactly one of preSharedKeySecretRef and certificateSecretRef",
        ),
    }
    const NO_MD5: &str = "a client never proposes MD5";
    out.ike_proposals = proposals(
        errs,
        &format!("{P}.ikeProposals"),
        &ipsec.ike_proposals,
        NO_MD5,
        |p| IkeProposal::parse(p, false).map(|p| ike_proposal_to_wire(&p)),
    );
    out.esp_proposals = proposals(
        errs,
        &format!("{P}.espProposals"),
        &ipsec.esp_proposals,
        NO_MD5,
        |p| EspProposal::parse(p, false).map(|p| esp_proposal_to_wire(&p)),
    );
    out.ike_lifetime_seconds = seconds_between(
        errs,
        &format!("{P}.ikeLifetime"),
        &ipsec.ike_lifetime,
        60,
        24 * 3600,
    )
    .unwrap_or(0);
    out.esp_lifetime_seconds = seconds_between(
        errs,
        &format!("{P}.espLifetime"),
        &ipsec.esp_lifetime,
        60,
        8 * 3600,
    )
    .unwrap_or(0);
    out.aggressive_mode = ipsec.aggressive_mode;
    for (field, port) in [("ikePort", ipsec.ike_port), ("nattPort", ipsec.natt_port)] {
        if port == 0 {
            errs.push(format!("{P}.{field}"), "must be between 1 and 65535");
        }
    }
    if ipsec.ike_port == ipsec.natt_port {
        errs.push(
            format!("{P}.nattPort"),
            "must differ from spec.ipsec.ikePort",
        );
    }
    if l2tp_port == ipsec.ike_port || l2tp_port == ipsec.natt_port {
        errs.push(
            "spec.connectTo",
            format!("port {l2tp_port} is the L2TP port, and also an IPsec port of spec.ipsec"),
        );
    }
    out.ike_port = u32::from(ipsec.ike_port);
    out.natt_port = u32::from(ipsec.natt_port);
    out
}

#[cfg(test)]
mod tests {
    use super::is_dns_name;

    #[test]
    fn dns_names() {
        for ok in [
            "vpn.example.net",
            "vpn",
            "a-b.c",
            "x1.example.net.",
            "1x.example",
        ] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a.example",
            "a-.example",
            "a..b",
            "a_b.example",
            "10.0.0.256",
            "1.2",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
        assert!(is_dns_name(&format!("{}.net", "a".repeat(63))));
        assert!(!is_dns_name(&format!("{}.net", "a".repeat(64))));
    }
}
