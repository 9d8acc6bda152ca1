//! Tests of the runtime configuration.

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
        include_str!("../../../../examples/standalone.yaml"),
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
        include_str!("../../../../examples/standalone.yaml"),
        "\n---\napiVersion: sluice.dev/v1alpha1\nkind: VpnClient\nmetadata: {name: hq}\n",
        "spec: {gatewayRef: {name: office}, protocol: pptp, connectTo: 192.0.2.1,\n",
        "       credentialsSecretRef: {name: alice-password, usernameKey: password}}\n",
        "---\napiVersion: sluice.dev/v1alpha1\nkind: VpnClient\nmetadata: {name: lab}\n",
        "spec: {gatewayRef: {name: office}, protocol: l2tp, connectTo: 192.0.2.2,\n",
        "       credentialsSecretRef: {name: alice-password}}\n",
    );
    let loaded = load_str(text, None).map_err(|e| e.to_string());
    let clients: Result<Vec<String>, _> = loaded.as_ref().map(|l| {
        let rt = &l.runtime;
        rt.clients
            .iter()
            .map(|c| format!("{}: {}", c.source, c.describe()))
            .collect()
    });
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
