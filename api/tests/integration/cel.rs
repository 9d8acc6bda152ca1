//! The CRDs' CEL rules (`x-kubernetes-validations`), evaluated client-side with kube's CEL
//! implementation of the Kubernetes extension libraries: what the apiserver rejects at
//! `kubectl apply`, with a message naming the field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use kube::core::cel::{validate_cel, validate_cel_update};
use serde_json::{Value, json};
use sluice_api::{VpnGateway, VpnUser};

fn gateway(patch: Value) -> VpnGateway {
    let mut v = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "VpnGateway",
        "metadata": {"name": "office", "namespace": "vpn"},
        "spec": {
            "ppp": {
                "localAddress": "10.200.0.1",
                "addressPool": "10.200.0.0/24",
                "dnsServers": ["10.200.0.53"],
                "staticAddresses": ["10.201.0.0/24"],
                "keepaliveTimeout": "1m30s"
            },
            "pptp": {"authentication": ["mschapv2"], "mppe": {"keyLengths": [128, 40]}}
        }
    });
    merge(&mut v["spec"], patch);
    serde_json::from_value(v).unwrap()
}

fn user(patch: Value) -> VpnUser {
    let mut v = json!({
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "VpnUser",
        "metadata": {"name": "jack", "namespace": "vpn"},
        "spec": {
            "gatewayRef": {"name": "office"},
            "passwordSecretRef": {"name": "jack"},
            "remoteAddress": "10.201.0.7",
            "routes": ["192.168.50.0/24"]
        }
    });
    merge(&mut v["spec"], patch);
    serde_json::from_value(v).unwrap()
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

fn messages<E: std::fmt::Display>(r: Result<(), E>) -> String {
    match r {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

/// Every `(patch, message)` case is rejected with a message containing `message`.
fn assert_rejected<T, const N: usize>(build: fn(Value) -> T, cases: [(Value, &str); N])
where
    T: kube::CustomResourceExt + serde::Serialize,
{
    for (patch, expected) in cases {
        let msg = messages(validate_cel(&build(patch.clone())));
        assert!(
            msg.contains(expected),
            "{patch}: expected {expected:?}, got {msg:?}"
        );
    }
}

#[test]
fn valid_objects_pass() {
    assert_eq!(messages(validate_cel(&gateway(json!({})))), "");
    assert_eq!(messages(validate_cel(&user(json!({})))), "");
    // The example manifests pass as well.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standalone.yaml"),
    )
    .unwrap();
    let m = sluice_api::parse_manifests(&text).unwrap();
    for g in &m.gateways {
        assert_eq!(messages(validate_cel(g)), "");
    }
    for u in &m.users {
        assert_eq!(messages(validate_cel(u)), "");
    }
}

#[test]
fn gateway_rules_name_the_field() {
    let cases = [
        (
            json!({"ppp": {"localAddress": "10.200.0.300"}}),
            "spec.ppp.localAddress must be an IPv4 address",
        ),
        (
            json!({"ppp": {"localAddress": "fd00::1"}}),
            "spec.ppp.localAddress must be an IPv4 address",
        ),
        (
            json!({"ppp": {"addressPool": "10.200.0.0"}}),
            "spec.ppp.addressPool must be an IPv4 CIDR",
        ),
        (
            json!({"ppp": {"addressPool": "10.200.0.0/31"}}),
            "spec.ppp.addressPool must be an IPv4 CIDR",
        ),
        (
            json!({"ppp": {"localAddress": "10.200.0.0"}}),
            "spec.ppp.localAddress must not be the network address",
        ),
        (
            json!({"ppp": {"dnsServers": ["dns.example"]}}),
            "spec.ppp.dnsServers must be IPv4 addresses",
        ),
        (
            json!({"ppp": {"staticAddresses": ["10.200.0.128/25"]}}),
            "spec.ppp.staticAddresses must not overlap",
        ),
        (
            json!({"ppp": {"staticAddresses": ["10.0.0.0/8"]}}),
            "spec.ppp.staticAddresses must not overlap",
        ),
        (
            json!({"ppp": {"staticAddresses": ["nope"]}}),
            "spec.ppp.staticAddresses must be IPv4 CIDRs",
        ),
        (
            json!({"ppp": {"keepaliveTimeout": "2h"}}),
            "spec.ppp.keepaliveTimeout must be a duration",
        ),
        (
            json!({"ppp": {"keepaliveTimeout": "30"}}),
            "spec.ppp.keepaliveTimeout must be a duration",
        ),
        (
            json!({"pptp": {"mppe": {"keyLengths": [64]}}}),
            "spec.pptp.mppe.keyLengths: mppe.keyLengths may only contain",
        ),
        (
            json!({"pptp": {"authentication": ["mschapv2", "mschapv2"]}}),
            "spec.pptp.authentication must not list",
        ),
        (
            json!({"autoscaling": {"minReplicas": 3, "maxReplicas": 2, "targetSessionsPerReplica": 100}}),
            "spec.autoscaling.minReplicas must not exceed maxReplicas",
        ),
        (
            json!({"autoscaling": {"maxReplicas": 2, "targetSessionsPerReplica": 100, "scaleDownStabilization": "2d"}}),
            "spec.autoscaling.scaleDownStabilization must be a duration",
        ),
        (
            json!({"drainTimeout": "25h"}),
            "spec.drainTimeout must be a duration from 0s to 24h",
        ),
        (
            json!({"drainTimeout": "3600"}),
            "spec.drainTimeout must be a duration from 0s to 24h",
        ),
    ];
    assert_rejected(gateway, cases);
}

fn ipsec(patch: Value) -> Value {
    let mut v = json!({
        "l2tp": {"enabled": true, "ipsec": {"preSharedKeySecretRef": {"name": "vpn-psk"}}}
    });
    merge(&mut v["l2tp"]["ipsec"], patch);
    v
}

#[test]
fn ipsec_settings_pass() {
    let full = ipsec(json!({
        "ikeProposals": ["aes256-sha256-modp2048", "AES128-SHA1-MODP2048"],
        "espProposals": ["aes256gcm16", "aes128-sha1", "aes256-sha256-modp2048"],
        "ikeLifetime": "24h",
        "espLifetime": "1m",
        "espLifetimeKilobytes": 1000000,
        "natDetection": "forceEncapsulation",
        "dpd": {"delay": "0s", "timeout": "1h"},
        "allowMd5": true,
        "ikePort": 10500,
        "nattPort": 14500
    }));
    for g in [gateway(ipsec(json!({}))), gateway(full)] {
        assert_eq!(messages(validate_cel(&g)), "");
    }
    for (ike, esp) in [("5m", "8h"), ("8h", "1h"), ("1h30m", "45m")] {
        let g = gateway(ipsec(json!({"ikeLifetime": ike, "espLifetime": esp})));
        assert_eq!(messages(validate_cel(&g)), "", "{ike} {esp}");
    }
}

#[test]
fn ipsec_rules_name_the_field() {
    let cases = [
        (
            ipsec(json!({"ikeLifetime": "59s"})),
            "spec.l2tp.ipsec.ikeLifetime must be a duration from 1m to 24h",
        ),
        (
            ipsec(json!({"ikeLifetime": "25h"})),
            "spec.l2tp.ipsec.ikeLifetime must be a duration from 1m to 24h",
        ),
        (
            ipsec(json!({"ikeLifetime": "8"})),
            "spec.l2tp.ipsec.ikeLifetime must be a duration from 1m to 24h",
        ),
        (
            ipsec(json!({"espLifetime": "30s"})),
            "spec.l2tp.ipsec.espLifetime must be a duration from 1m to 8h",
        ),
        (
            ipsec(json!({"espLifetime": "8h1m"})),
            "spec.l2tp.ipsec.espLifetime must be a duration from 1m to 8h",
        ),
        (
            ipsec(json!({"dpd": {"delay": "2h"}})),
            "spec.l2tp.ipsec.dpd.delay must be a duration of at most 1h",
        ),
        (
            ipsec(json!({"dpd": {"timeout": "61m"}})),
            "spec.l2tp.ipsec.dpd.timeout must be a duration of at most 1h",
        ),
        (
            ipsec(json!({"dpd": {"delay": "30s", "timeout": "30s"}})),
            "spec.l2tp.ipsec.dpd.timeout must be longer than spec.l2tp.ipsec.dpd.delay",
        ),
        (
            ipsec(json!({"dpd": {"delay": "200s"}})),
            "spec.l2tp.ipsec.dpd.timeout must be longer than spec.l2tp.ipsec.dpd.delay",
        ),
        (
            ipsec(json!({"ikePort": 4500})),
            "spec.l2tp.ipsec.nattPort must differ from spec.l2tp.ipsec.ikePort",
        ),
        (
            ipsec(json!({"ikeProposals": ["aes128 sha1 modp2048"]})),
            "spec.l2tp.ipsec.ikeProposals must be proposals",
        ),
        (
            ipsec(json!({"espProposals": ["aes128--sha1"]})),
            "spec.l2tp.ipsec.espProposals must be proposals",
        ),
        (
            ipsec(json!({"espProposals": [""]})),
            "spec.l2tp.ipsec.espProposals must be proposals",
        ),
    ];
    assert_rejected(gateway, cases);
}

#[test]
fn user_rules_name_the_field() {
    let cases = [
        (
            json!({"remoteAddress": "10.201.0.300"}),
            "spec.remoteAddress must be an IPv4 address",
        ),
        (
            json!({"routes": ["192.168.50.0/33"]}),
            "spec.routes must be IPv4 CIDRs",
        ),
        (
            json!({"services": ["pptp", "pptp"]}),
            "spec.services must not list",
        ),
        (
            json!({"rateLimit": {}}),
            "spec.rateLimit needs down, up or both",
        ),
        (
            json!({"rateLimit": {"down": "10 Mbit"}}),
            "spec.rateLimit.down must be a number",
        ),
        (
            json!({"rateLimit": {"up": "2m"}}),
            "spec.rateLimit.up must be a number",
        ),
        (
            json!({"rateLimit": {"down": "1M", "burst": "-1"}}),
            "spec.rateLimit.burst must be a number of bytes",
        ),
    ];
    assert_rejected(user, cases);
    let ok = user(json!({"rateLimit": {"down": "10M", "up": "1.5M", "burst": "64k"}}));
    assert_eq!(messages(validate_cel(&ok)), "");
}

#[test]
fn gateway_ref_is_immutable() {
    let old = user(json!({}));
    assert_eq!(messages(validate_cel_update(&old, &old)), "");
    let moved = user(json!({"gatewayRef": {"name": "branch"}}));
    let msg = messages(validate_cel_update(&moved, &old));
    assert!(msg.contains("spec.gatewayRef is immutable"), "{msg}");
}
