//! `VpnClient`: defaults, the IPsec part, field errors, a bad client left out on its own,
//! secrets kept out of `redacted`.

use sluice_api::{ObjectKind, ObjectRef, compile_manifests};

use super::*;

/// The gateway and user of `defaults.yaml`, plus two clients and their Secrets.
fn with_clients(clients: &str) -> String {
    format!(
        "{DEFAULTS}
---
apiVersion: v1
kind: Secret
metadata: {{name: branch-login}}
stringData: {{username: branch, password: BRANCH-PASSWORD}}
---
apiVersion: v1
kind: Secret
metadata: {{name: branch-psk}}
stringData: {{psk: PRE-SHARED-KEY-0123}}
{clients}"
    )
}

const PPTP_CLIENT: &str = "
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: hq}
spec:
  gatewayRef: {name: office}
  protocol: pptp
  connectTo: vpn.example.net
  credentialsSecretRef: {name: branch-login}
  routes: [10.20.0.0/16]
";

const L2TP_CLIENT: &str = "
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: lab}
spec:
  gatewayRef: {name: office}
  protocol: l2tp
  connectTo: 192.0.2.10
  credentialsSecretRef: {name: branch-login}
  ipsec:
    preSharedKeySecretRef: {name: branch-psk}
    ikeProposals: [aes256-sha256-modp2048]
    espProposals: [aes128gcm16, aes128-sha1]
  reconnect: {initial: 1s, max: 1m}
";

#[test]
fn a_pptp_client_gets_explicit_defaults() {
    let c = compile_yaml(&with_clients(PPTP_CLIENT)).unwrap();
    let [t] = c.clients.as_slice() else {
        panic!("one client: {:?}", redacted(&c).clients)
    };
    assert_eq!(t.source, "default/hq");
    assert_eq!(t.protocol, Service::Pptp as i32);
    assert_eq!(
        (t.server_host.as_str(), t.server_port),
        ("vpn.example.net", 1723)
    );
    assert_eq!(t.username, "branch");
    assert_eq!(t.password, b"BRANCH-PASSWORD");
    assert_eq!(t.authentication, [AuthMethod::MschapV2 as i32]);
    assert_eq!(t.encryption, EncryptionPolicy::Require as i32);
    assert_eq!(t.mppe_key_lengths, [MppeKeyLength::Bits128 as i32]);
    assert!(t.ipsec.is_none() && t.tunnel_secret.is_empty());
    assert_eq!(
        t.routes.iter().map(net).collect::<Vec<_>>(),
        ["10.20.0.0/16"]
    );
    assert!(t.masquerade && !t.add_default_route);
    assert_eq!(
        (t.mtu, t.mru, t.keepalive_timeout_seconds),
        (1400, 1400, 30)
    );
    assert_eq!(
        (t.reconnect_initial_ms, t.reconnect_max_ms),
        (2_000, 300_000)
    );
    // Secrets never reach a printable copy.
    let r = redacted(&c);
    assert!(r.clients[0].password.is_empty());
}

#[test]
fn an_l2tp_client_carries_its_ipsec_policy() {
    let c = compile_yaml(&with_clients(L2TP_CLIENT)).unwrap();
    let t = &c.clients[0];
    assert_eq!(t.protocol, Service::L2tp as i32);
    assert_eq!(
        (t.server_host.as_str(), t.server_port),
        ("192.0.2.10", 1701)
    );
    assert_eq!(
        t.encryption,
        EncryptionPolicy::Deny as i32,
        "IPsec encrypts"
    );
    let ipsec = t.ipsec.as_ref().unwrap();
    assert_eq!(ipsec.pre_shared_key, b"PRE-SHARED-KEY-0123");
    assert_eq!(ike_text(&ipsec.ike_proposals), ["aes256-sha256-modp2048"]);
    assert_eq!(
        esp_text(&ipsec.esp_proposals),
        ["aes128gcm16", "aes128-sha1"]
    );
    assert_eq!((ipsec.ike_port, ipsec.natt_port), (500, 4500));
    assert_eq!(
        (ipsec.ike_lifetime_seconds, ipsec.esp_lifetime_seconds),
        (8 * 3600, 3600)
    );
    assert!(!ipsec.aggressive_mode);
    assert_eq!(
        (t.reconnect_initial_ms, t.reconnect_max_ms),
        (1_000, 60_000)
    );
    assert!(
        redacted(&c).clients[0]
            .ipsec
            .as_ref()
            .unwrap()
            .pre_shared_key
            .is_empty()
    );
}

#[test]
fn clients_of_other_gateways_and_disabled_ones_are_not_dialled() {
    let others = "
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: elsewhere}
spec: {gatewayRef: {name: other}, protocol: pptp, connectTo: a.example,
       credentialsSecretRef: {name: branch-login}}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: paused}
spec: {gatewayRef: {name: office}, protocol: pptp, connectTo: a.example,
       credentialsSecretRef: {name: branch-login}, disabled: true}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: other-namespace, namespace: lab}
spec: {gatewayRef: {name: office}, protocol: pptp, connectTo: a.example,
       credentialsSecretRef: {name: branch-login}}
";
    let c = compile_yaml(&with_clients(&format!("{PPTP_CLIENT}{others}"))).unwrap();
    let sources: Vec<_> = c.clients.iter().map(|t| t.source.as_str()).collect();
    assert_eq!(sources, ["default/hq"]);
}

const BAD_CLIENTS: &str = "
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: bad-port}
spec: {gatewayRef: {name: office}, protocol: pptp, connectTo: 'vpn.example.net:0',
       credentialsSecretRef: {name: missing}, routes: [10.20.0.1/16]}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: bad-l2tp}
spec:
  gatewayRef: {name: office}
  protocol: l2tp
  connectTo: 10.0.0.999
  credentialsSecretRef: {name: branch-login, usernameKey: user}
  ipsec: {preSharedKeySecretRef: {name: branch-psk}, ikeProposals: [aes128-md5-modp2048]}
  reconnect: {initial: 2m, max: 1m}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: pptp-with-ipsec}
spec:
  gatewayRef: {name: office}
  protocol: pptp
  connectTo: vpn.example.net
  credentialsSecretRef: {name: branch-login}
  ipsec: {preSharedKeySecretRef: {name: branch-psk}}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: {name: plain-l2tp}
spec: {gatewayRef: {name: office}, protocol: l2tp, connectTo: vpn.example.net,
       credentialsSecretRef: {name: branch-login}, authentication: [pap]}
";

#[test]
fn every_client_error_names_its_field() {
    let m = load(&with_clients(BAD_CLIENTS));
    assert_eq!(
        compile_errors(&m),
        [
            "VpnClient/bad-l2tp: spec.connectTo \"10.0.0.999\" is neither an IPv4 address nor a DNS name (letters, digits, hyphens and dots; labels of at most 63 characters)",
            "VpnClient/bad-l2tp: spec.credentialsSecretRef Secret \"branch-login\" has no key \"user\"",
            "VpnClient/bad-l2tp: spec.ipsec.ikeProposals[0] uses md5, which is refused: MD5 is broken (practical collisions); a client never proposes MD5",
            "VpnClient/bad-l2tp: spec.reconnect.initial \"2m\" is longer than spec.reconnect.max (\"1m\")",
            "VpnClient/bad-port: spec.connectTo \"vpn.example.net:0\" has no port from 1 to 65535 after the colon",
            "VpnClient/bad-port: spec.credentialsSecretRef Secret \"missing\" not found",
            "VpnClient/bad-port: spec.routes[0] 10.20.0.1/16 has host bits set (did you mean 10.20.0.0/16?)",
            "VpnClient/plain-l2tp: spec.ipsec is required with protocol l2tp, unless spec.allowUnencrypted is true (L2TP alone encrypts nothing)",
            "VpnClient/pptp-with-ipsec: spec.protocol pptp takes no spec.ipsec, spec.tunnelSecretRef or spec.allowUnencrypted (they are for l2tp)",
        ]
    );
}

#[test]
fn a_bad_client_is_left_out_and_the_rest_is_served() {
    let m = load(&with_clients(&format!("{PPTP_CLIENT}{BAD_CLIENTS}")));
    let compiled = compile_manifests(&m, None).unwrap();
    assert_eq!(compiled.config.users.len(), 1, "the gateway's user stays");
    let sources: Vec<_> = compiled
        .config
        .clients
        .iter()
        .map(|t| t.source.as_str())
        .collect();
    assert_eq!(sources, ["default/hq"]);
    let left: Vec<_> = compiled.left_out.keys().map(|r| r.name.as_str()).collect();
    assert_eq!(
        left,
        ["bad-l2tp", "bad-port", "plain-l2tp", "pptp-with-ipsec"]
    );
    let err = &compiled.left_out[&ObjectRef {
        kind: ObjectKind::VpnClient,
        namespace: "default".into(),
        name: "plain-l2tp".into(),
    }];
    assert!(err.to_string().contains("spec.ipsec"), "{err}");
    // The configuration's version covers its clients.
    let without = compile_manifests(&load(DEFAULTS), None).unwrap();
    assert_ne!(without.config.version, compiled.config.version);
}
