//! compile() from YAML fixtures: defaults, every validation error, determinism.

use sluice_api::NatDetection as NatDetectionSpec;
use sluice_api::wire::{
    esp_proposal_from_wire, ike_proposal_from_wire, ipv4_from_wire, prefix_from_wire,
};
use sluice_api::{
    AuthenticationMethod, ConfigError, Encryption, GatewayConfig, Manifests, compile,
    compile_from_manifests, parse_manifests, redacted,
};
use sluice_proto::v1::{
    self as pb, AuthMethod, EncryptionPolicy, IpsecSettings, MppeKeyLength, NatDetection, Service,
};

/// A compiled address as a manifest writes it ("" when absent).
fn ip(a: Option<&pb::Ipv4Address>) -> String {
    a.map(|a| ipv4_from_wire(a).to_string()).unwrap_or_default()
}

/// A compiled network as a manifest writes it.
fn net(p: &pb::Ipv4Prefix) -> String {
    prefix_from_wire(p).map_or_else(|e| panic!("{e}"), |n| n.to_string())
}

/// Compiled proposals in the proposal grammar.
fn ike_text(list: &[pb::IkeProposal]) -> Vec<String> {
    let text = |p| ike_proposal_from_wire(p).map_or_else(|e| panic!("{e}"), |p| p.to_string());
    list.iter().map(text).collect()
}

fn esp_text(list: &[pb::EspProposal]) -> Vec<String> {
    let text = |p| esp_proposal_from_wire(p).map_or_else(|e| panic!("{e}"), |p| p.to_string());
    list.iter().map(text).collect()
}

fn load(yaml: &str) -> Manifests {
    parse_manifests(yaml).unwrap_or_else(|e| panic!("fixture does not parse:\n{e}"))
}

fn compile_yaml(yaml: &str) -> Result<GatewayConfig, ConfigError> {
    compile_from_manifests(&load(yaml), None)
}

fn error_lines(err: ConfigError) -> Vec<String> {
    err.to_string().lines().map(str::to_owned).collect()
}

fn compile_errors(m: &Manifests) -> Vec<String> {
    match compile_from_manifests(m, None) {
        Ok(c) => panic!("compile should fail: {:?}", redacted(&c)),
        Err(e) => error_lines(e),
    }
}

const DEFAULTS: &str = include_str!("fixtures/defaults.yaml");

#[test]
fn defaults_are_filled_explicitly() {
    let c = compile_yaml(DEFAULTS).unwrap();
    assert_eq!(c.gateway, "default/office");
    let pptp = c.pptp.as_ref().unwrap();
    assert!(pptp.enabled);
    assert_eq!(pptp.port, 1723);
    assert_eq!(pptp.authentication, [AuthMethod::MschapV2 as i32]);
    assert_eq!(pptp.encryption, EncryptionPolicy::Require as i32);
    assert_eq!(pptp.mppe_key_lengths, [MppeKeyLength::Bits128 as i32]);
    assert_eq!(pptp.mppe_stateful(), sluice_proto::v1::StatefulMppe::Allow);
    let ppp = c.ppp.as_ref().unwrap();
    assert_eq!((ppp.mtu, ppp.mru), (1400, 1400));
    assert_eq!(ppp.keepalive_timeout_seconds, 30);
    assert_eq!(ip(ppp.local_address.as_ref()), "10.200.0.1");
    assert_eq!(net(ppp.address_pool.as_ref().unwrap()), "10.200.0.0/24");
    assert!(ppp.dns_servers.is_empty() && ppp.static_addresses.is_empty());
    assert!(!c.nat.as_ref().unwrap().masquerade);
    assert_eq!(c.max_sessions, 0);
    assert_eq!(c.users.len(), 1);
    let u = &c.users[0];
    assert_eq!(u.username, "jack");
    assert_eq!(u.password, b"pass");
    assert_eq!(u.services, [Service::Pptp as i32, Service::L2tp as i32]);
    assert_eq!(u.remote_address, None);
    assert!(u.routes.is_empty());
    assert_eq!(u.max_sessions, 0);
    assert_eq!(u.source, "default/jack");
    assert_eq!(c.version.len(), 64);
    assert!(c.version.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn standalone_example_compiles() {
    let text = include_str!("../../../examples/standalone.yaml");
    let mut m = load(text);
    assert_eq!(
        (m.gateways.len(), m.users.len(), m.secrets.len()),
        (1, 2, 3)
    );
    let c = compile_from_manifests(&m, Some("office")).unwrap();
    assert_eq!(
        c,
        compile_from_manifests(&m, Some("default/office")).unwrap()
    );
    let names: Vec<&str> = c.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert_eq!(c.users[0].password, b"Alice-change-me!");
    assert_eq!(c.users[1].password, b"B0b-change-me!");
    assert_eq!(ip(c.users[1].remote_address.as_ref()), "10.200.0.50");
    assert_eq!(c.users[1].max_sessions, 1);
    let ppp = c.ppp.unwrap();
    assert_eq!(
        ppp.dns_servers,
        [sluice_api::wire::ipv4_to_wire([10, 200, 0, 1].into())]
    );
    assert_eq!(c.pptp.unwrap().encryption, EncryptionPolicy::Require as i32);
    // L2TP/IPsec is on in the example, with its pre-shared key.
    let ipsec = c.l2tp.unwrap().ipsec.unwrap();
    assert_eq!(ipsec.pre_shared_key, b"Change-me-to-a-long-random-key!");
    assert_eq!((ipsec.ike_port, ipsec.natt_port), (500, 4500));
    // Switched off, no IPsec settings are sent.
    m.gateways[0].spec.l2tp.enabled = false;
    let c = compile_from_manifests(&m, None).unwrap();
    assert_eq!(c.l2tp.unwrap().ipsec, None);
}

#[test]
fn gateway_errors_are_all_collected() {
    let m = load(include_str!("fixtures/errors_gateway.yaml"));
    assert_eq!(
        compile_errors(&m),
        [
            "VpnGateway/office: spec.pptp.port must be between 1 and 65535",
            "VpnGateway/office: spec.pptp.authentication[2] pap is listed twice",
            "VpnGateway/office: spec.pptp.encryption require needs mschapv1 or mschapv2 in spec.pptp.authentication (MPPE keys come from MS-CHAP)",
            "VpnGateway/office: spec.pptp.mppe.keyLengths[1] 64 is not one of 40, 56, 128",
            "VpnGateway/office: spec.pptp.mppe.keyLengths[2] 128 is listed twice",
            "VpnGateway/office: spec.ppp.mtu 1500 is outside 576..=1436",
            "VpnGateway/office: spec.ppp.mru 500 is outside 576..=1436",
            "VpnGateway/office: spec.ppp.keepaliveTimeout \"2h\" is longer than 1h",
            "VpnGateway/office: spec.ppp.localAddress 10.200.0.0 is the network or broadcast address of pool 10.200.0.0/24",
            "VpnGateway/office: spec.ppp.dnsServers lists 3 servers, at most 2 are allowed",
            "VpnGateway/office: spec.ppp.staticAddresses[0] 10.200.0.128/25 overlaps pool 10.200.0.0/24",
            "VpnGateway/office: spec.ppp.staticAddresses[1] 10.99.0.1/24 has host bits set (did you mean 10.99.0.0/24?)",
            "VpnGateway/office: spec.ppp.staticAddresses[2] \"nope\" is not an IPv4 CIDR such as 10.0.0.0/24",
            "VpnGateway/office: spec.replicas -1 must not be negative",
        ]
    );
}

#[test]
fn user_errors_are_all_collected() {
    let m = load(include_str!("fixtures/errors_users.yaml"));
    assert_eq!(
        compile_errors(&m),
        [
            "VpnUser/alice: spec.remoteAddress 10.9.0.5 is outside pool 10.200.0.0/24 and not listed in spec.ppp.staticAddresses".to_owned(),
            "VpnUser/bob: spec.maxSessions is 2 but must be 1 with a static spec.remoteAddress (one address serves one session)".to_owned(),
            "VpnUser/dave: spec.username \"bob\" is also used by VpnUser/bob".to_owned(),
            "VpnUser/carol: spec.remoteAddress 10.200.0.50 is also assigned to VpnUser/bob".to_owned(),
            "VpnUser/erin: spec.passwordSecretRef Secret \"erin-missing\" not found".to_owned(),
            "VpnUser/frank: spec.passwordSecretRef Secret \"frank\" has no key \"pw\"".to_owned(),
            "VpnUser/grace: spec.passwordSecretRef password in Secret \"grace\" key \"password\" is empty".to_owned(),
            "VpnUser/heidi: spec.services must list at least one service (use spec.disabled to disable a user)".to_owned(),
            "VpnUser/heidi: spec.routes[0] 10.200.0.0/16 overlaps pool 10.200.0.0/24".to_owned(),
            "VpnUser/heidi: spec.routes[2] 192.168.1.1/24 has host bits set (did you mean 192.168.1.0/24?)".to_owned(),
            "VpnUser/ivan: spec.remoteAddress 10.200.0.1 is the gateway's spec.ppp.localAddress".to_owned(),
            "VpnUser/judy: spec.username is 256 bytes long, at most 255 are allowed".to_owned(),
            "VpnUser/judy: spec.passwordSecretRef password in Secret \"judy\" key \"password\" contains NUL".to_owned(),
        ]
    );
}

/// One gateway change → the exact error it must produce.
fn gateway_variant(edit: impl FnOnce(&mut sluice_api::VpnGatewaySpec)) -> Vec<String> {
    let mut m = load(DEFAULTS);
    edit(&mut m.gateways[0].spec);
    compile_errors(&m)
}

#[test]
fn gateway_field_errors() {
    type Edit = Box<dyn FnOnce(&mut sluice_api::VpnGatewaySpec)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|s| s.ppp.address_pool = "10.200.0.0/31".into()),
            "spec.ppp.addressPool 10.200.0.0/31 is too small (the prefix must be /30 or shorter)",
        ),
        (
            Box::new(|s| s.ppp.address_pool = "10.200.0.0".into()),
            "spec.ppp.addressPool \"10.200.0.0\" is not an IPv4 CIDR such as 10.0.0.0/24",
        ),
        (
            Box::new(|s| s.ppp.local_address = "10.200.0.256".into()),
            "spec.ppp.localAddress \"10.200.0.256\" is not an IPv4 address",
        ),
        (
            Box::new(|s| s.ppp.local_address = "10.200.0.255".into()),
            "spec.ppp.localAddress 10.200.0.255 is the network or broadcast address of pool 10.200.0.0/24",
        ),
        (
            Box::new(|s| s.ppp.keepalive_timeout = "30".into()),
            "spec.ppp.keepaliveTimeout \"30\" is missing a unit (ns, us, ms, s, m, h) (expected a duration such as 30s or 1m30s)",
        ),
        (
            Box::new(|s| s.ppp.keepalive_timeout = "1.5s".into()),
            "spec.ppp.keepaliveTimeout \"1.5s\" must be a whole number of seconds",
        ),
        (
            Box::new(|s| {
                s.autoscaling = Some(sluice_api::AutoscalingSpec {
                    min_replicas: 1,
                    max_replicas: 4,
                    target_sessions_per_replica: 0,
                    scale_down_stabilization: "10m".into(),
                })
            }),
            "spec.autoscaling.targetSessionsPerReplica must be at least 1",
        ),
        (
            Box::new(|s| s.drain_timeout = "25h".into()),
            "spec.drainTimeout \"25h\" is longer than 24h",
        ),
        (
            Box::new(|s| s.ppp.dns_servers = vec!["dns.example".into()]),
            "spec.ppp.dnsServers[0] \"dns.example\" is not an IPv4 address",
        ),
        (
            Box::new(|s| s.pptp.authentication.clear()),
            "spec.pptp.authentication must list at least one method",
        ),
        (
            Box::new(|s| s.pptp.mppe.key_lengths.clear()),
            "spec.pptp.mppe.keyLengths must list at least one of 40, 56, 128",
        ),
        (
            Box::new(|s| {
                s.pptp.authentication = vec![AuthenticationMethod::Chap];
                s.pptp.encryption = Encryption::Prefer;
            }),
            "spec.pptp.encryption prefer needs mschapv1 or mschapv2 in spec.pptp.authentication (MPPE keys come from MS-CHAP)",
        ),
    ];
    for (edit, want) in cases {
        assert_eq!(
            gateway_variant(edit),
            [format!("VpnGateway/office: {want}")]
        );
    }
    // Allowed: no MS-CHAP when encryption is not asked for.
    let mut m = load(DEFAULTS);
    let pptp = &mut m.gateways[0].spec.pptp;
    pptp.authentication = vec![AuthenticationMethod::Pap];
    pptp.encryption = Encryption::Allow;
    pptp.enabled = false;
    let c = compile_from_manifests(&m, None).unwrap();
    assert_eq!(c.pptp.unwrap().authentication, [AuthMethod::Pap as i32]);
}

fn rate(down: Option<&str>, up: Option<&str>, burst: Option<&str>) -> sluice_api::RateLimitSpec {
    sluice_api::RateLimitSpec {
        down: down.map(Into::into),
        up: up.map(Into::into),
        burst: burst.map(Into::into),
    }
}

#[test]
fn rate_limits_and_per_user_metrics_reach_the_config() {
    let mut m = load(DEFAULTS);
    m.users[0].spec.rate_limit = Some(rate(Some("10M"), Some("2.5M"), None));
    m.gateways[0].spec.metrics.per_user = true;
    let c = compile_from_manifests(&m, None).unwrap();
    assert!(c.per_user_metrics);
    let r = c.users[0].rate_limit.unwrap();
    assert_eq!(
        (r.down_bits_per_second, r.up_bits_per_second),
        (10_000_000, 2_500_000)
    );
    assert_eq!(r.burst_bytes, 125_000, "100 ms at the faster rate");
    m.users[0].spec.rate_limit = Some(rate(None, Some("64k"), Some("1M")));
    let r = compile_from_manifests(&m, None).unwrap().users[0]
        .rate_limit
        .unwrap();
    assert_eq!(
        (r.down_bits_per_second, r.up_bits_per_second, r.burst_bytes),
        (0, 64_000, 1_000_000)
    );
}

#[test]
fn user_field_errors() {
    type Edit = Box<dyn FnOnce(&mut Manifests)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|m| m.users[0].spec.remote_address = Some("10.200.0.0".into())),
            "VpnUser/jack: spec.remoteAddress 10.200.0.0 is the network or broadcast address of pool 10.200.0.0/24",
        ),
        (
            Box::new(|m| m.users[0].spec.remote_address = Some("10.200.0.x".into())),
            "VpnUser/jack: spec.remoteAddress \"10.200.0.x\" is not an IPv4 address",
        ),
        (
            Box::new(|m| m.users[0].spec.remote_address = Some("10.200.0.9".into())),
            "", // static address inside the pool: fine, maxSessions becomes 1
        ),
        (
            Box::new(|m| {
                m.users[0].spec.remote_address = Some("10.200.0.9".into());
                m.users[0].spec.max_sessions = Some(0);
            }),
            "VpnUser/jack: spec.maxSessions is 0 but must be 1 with a static spec.remoteAddress (one address serves one session)",
        ),
        (
            Box::new(|m| m.users[0].spec.username = Some("ja\0ck".into())),
            "VpnUser/jack: spec.username must not contain NUL",
        ),
        (
            Box::new(|m| m.users[0].spec.username = Some(String::new())),
            "VpnUser/jack: spec.username must not be empty",
        ),
        (
            Box::new(|m| m.users[0].spec.routes = vec!["not-a-net".into()]),
            "VpnUser/jack: spec.routes[0] \"not-a-net\" is not an IPv4 CIDR such as 10.0.0.0/24",
        ),
        (
            Box::new(|m| {
                m.gateways[0].spec.ppp.local_address = "172.16.0.1".into();
                m.users[0].spec.routes = vec!["172.16.0.0/12".into()];
            }),
            "VpnUser/jack: spec.routes[0] 172.16.0.0/12 contains spec.ppp.localAddress 172.16.0.1 of VpnGateway/office",
        ),
        (
            Box::new(|m| {
                let data = m.secrets[0].data.as_mut().unwrap();
                data.insert("password".into(), k8s_openapi::ByteString(vec![b'p'; 256]));
            }),
            "VpnUser/jack: spec.passwordSecretRef password in Secret \"jack-password\" key \"password\" is 256 bytes long, at most 255 are allowed",
        ),
        (
            Box::new(|m| {
                let data = m.secrets[0].data.as_mut().unwrap();
                data.insert("password".into(), k8s_openapi::ByteString(vec![0xff, 0xfe]));
            }),
            "VpnUser/jack: spec.passwordSecretRef password in Secret \"jack-password\" key \"password\" is not valid UTF-8 (MS-CHAP hashes the Unicode password)",
        ),
        (
            Box::new(|m| m.secrets[0].metadata.namespace = Some("elsewhere".into())),
            "VpnUser/jack: spec.passwordSecretRef Secret \"jack-password\" not found",
        ),
        (
            Box::new(|m| m.users[0].spec.rate_limit = Some(rate(Some("7k"), None, None))),
            "VpnUser/jack: spec.rateLimit.down \"7k\" must be from 8k to 100G bits per second",
        ),
        (
            Box::new(|m| m.users[0].spec.rate_limit = Some(rate(None, Some("1M/s"), None))),
            "VpnUser/jack: spec.rateLimit.up \"1M/s\" is not a number with an optional k, M or G suffix, such as 10M",
        ),
        (
            Box::new(|m| m.users[0].spec.rate_limit = Some(rate(Some("1M"), None, Some("100")))),
            "VpnUser/jack: spec.rateLimit.burst \"100\" must be from 3k to 1G bytes",
        ),
        (
            Box::new(|m| m.users[0].spec.rate_limit = Some(rate(None, None, None))),
            "VpnUser/jack: spec.rateLimit needs down, up or both",
        ),
    ];
    for (edit, want) in cases {
        let mut m = load(DEFAULTS);
        edit(&mut m);
        match compile_from_manifests(&m, None) {
            Ok(c) if want.is_empty() => assert_eq!(c.users[0].max_sessions, 1),
            Ok(_) => panic!("expected {want}"),
            Err(e) => assert_eq!(error_lines(e), [want.to_owned()]),
        }
    }
}

#[test]
fn objects_outside_default_namespace_are_named_with_it() {
    let mut m = load(DEFAULTS);
    m.gateways[0].metadata.namespace = Some("vpn".into());
    m.users[0].metadata.namespace = Some("vpn".into());
    // The Secret stayed in "default", so it is not found.
    assert_eq!(
        compile_errors(&m),
        ["VpnUser/vpn/jack: spec.passwordSecretRef Secret \"jack-password\" not found"]
    );
}

#[test]
fn secret_data_and_string_data() {
    let c = compile_yaml(include_str!("fixtures/secrets.yaml")).unwrap();
    assert_eq!(c.gateway, "vpn/office");
    let pw: Vec<&[u8]> = c.users.iter().map(|u| u.password.as_slice()).collect();
    assert_eq!(pw, ["pässwört".as_bytes(), b"new", b"x"]);
    assert_eq!(c.users[0].source, "vpn/u1");
}

#[test]
fn compile_reads_unmerged_string_data_too() {
    // Objects from the apiserver have no stringData; hand-built ones might.
    let mut m = load(DEFAULTS);
    let s = &mut m.secrets[0];
    let data = s.data.take().unwrap();
    s.string_data = Some(
        data.into_keys()
            .map(|k| (k, "from-string-data".into()))
            .collect(),
    );
    let c = compile(&m.gateways[0], &m.users, &m.secrets).unwrap();
    assert_eq!(c.users[0].password, b"from-string-data");
}

#[test]
fn compile_is_deterministic() {
    let a = compile_yaml(DEFAULTS).unwrap();
    let b = compile_yaml(DEFAULTS).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.version, b.version);
    let changed = compile_yaml(&DEFAULTS.replace("password: pass", "password: pass2")).unwrap();
    assert_ne!(a.version, changed.version);
    // Input order does not matter.
    let text = include_str!("../../../examples/standalone.yaml");
    let mut m = load(text);
    let v1 = compile_from_manifests(&m, None).unwrap();
    m.users.reverse();
    m.secrets.reverse();
    assert_eq!(compile_from_manifests(&m, None).unwrap(), v1);
}

#[test]
fn users_sorted_by_username() {
    let mut yaml = String::from(DEFAULTS);
    for name in ["zed", "amy", "mike"] {
        yaml.push_str(&format!(
            "---\napiVersion: sluice.dev/v1alpha1\nkind: VpnUser\nmetadata: {{name: {name}}}\n\
             spec: {{gatewayRef: {{name: office}}, passwordSecretRef: {{name: jack-password}}}}\n"
        ));
    }
    let c = compile_yaml(&yaml).unwrap();
    let names: Vec<&str> = c.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["amy", "jack", "mike", "zed"]);
}

#[test]
fn gateway_selection() {
    let one = load(DEFAULTS);
    assert!(compile_from_manifests(&one, Some("office")).is_ok());
    assert_eq!(
        error_lines(compile_from_manifests(&one, Some("nope")).unwrap_err()),
        ["input: has no VpnGateway named \"nope\""]
    );
    let none = Manifests::default();
    assert_eq!(
        error_lines(compile_from_manifests(&none, None).unwrap_err()),
        ["input: has no VpnGateway"]
    );
    let mut two = load(DEFAULTS);
    let mut other = two.gateways[0].clone();
    other.metadata.namespace = Some("vpn".into());
    two.gateways.push(other);
    assert_eq!(
        error_lines(compile_from_manifests(&two, None).unwrap_err()),
        [
            "input: has 2 matching VpnGateways (default/office, vpn/office); name one as namespace/name"
        ]
    );
    assert!(compile_from_manifests(&two, Some("vpn/office")).is_ok());
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    let secret = "TOP-SECRET-VALUE";
    let long = secret.repeat(20);
    let yaml = DEFAULTS.replace("password: pass", &format!("password: {long}"));
    let m = load(&yaml);
    let err = compile_from_manifests(&m, None).unwrap_err();
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));
    assert!(!format!("{m:?}").contains(secret));
    let ok =
        compile_yaml(&DEFAULTS.replace("password: pass", &format!("password: {secret}"))).unwrap();
    let shown = format!("{:?}", redacted(&ok));
    assert!(!shown.contains(secret) && !shown.contains(&format!("{:?}", secret.as_bytes())));
    // Parse errors in Secret data do not quote the value either.
    let bad = DEFAULTS.replace(
        "stringData:\n  password: pass",
        &format!("data:\n  password: \"{secret}!\""),
    );
    let err = parse_manifests(&bad).unwrap_err().to_string();
    assert_eq!(
        err,
        "Secret/jack-password: data.password is invalid (value not shown)"
    );
}

#[test]
fn l2tp_is_off_by_default_and_defaults_are_explicit() {
    let c = compile_yaml(DEFAULTS).unwrap();
    let l2tp = c.l2tp.as_ref().unwrap();
    assert!(!l2tp.enabled);
    assert_eq!(l2tp.port, 1701);
    assert!(l2tp.tunnel_secret.is_empty());
    let m = load(DEFAULTS);
    assert_eq!(m.gateways[0].spec.firewall_rules().len(), 2);
}

const L2TP: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata:
  name: office
spec:
  l2tp:
    enabled: true
    allowUnencrypted: true
    tunnelSecretRef: {name: l2tp-secret}
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
---
apiVersion: v1
kind: Secret
metadata:
  name: l2tp-secret
stringData:
  secret: TUNNEL-SECRET
";

#[test]
fn l2tp_enabled_compiles_with_secret_and_defaults() {
    let c = compile_yaml(L2TP).unwrap();
    let l2tp = c.l2tp.as_ref().unwrap();
    assert!(l2tp.enabled && l2tp.allow_unencrypted);
    assert_eq!(l2tp.port, 1701);
    assert_eq!(l2tp.authentication, [AuthMethod::MschapV2 as i32]);
    assert_eq!(l2tp.encryption, EncryptionPolicy::Deny as i32);
    assert_eq!(l2tp.tunnel_secret, b"TUNNEL-SECRET");
    assert_eq!(l2tp.hello_interval_seconds, 60);
    let shown = format!("{:?}", redacted(&c));
    assert!(!shown.contains("TUNNEL-SECRET"), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", b"TUNNEL-SECRET")),
        "{shown}"
    );
    let rules = load(L2TP).gateways[0].spec.firewall_rules();
    assert!(
        rules
            .iter()
            .any(|r| r.protocol == "udp" && r.port == Some(1701)),
        "{rules:?}"
    );
}

#[test]
fn l2tp_field_errors() {
    type Edit = Box<dyn FnOnce(&mut sluice_api::VpnGatewaySpec)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|s| s.l2tp.allow_unencrypted = false),
            "spec.l2tp.ipsec.preSharedKeySecretRef is required (or spec.l2tp.ipsec.certificateSecretRef): L2TP is served only inside IPsec unless spec.l2tp.allowUnencrypted is set (L2TP alone encrypts nothing)",
        ),
        (
            Box::new(|s| s.l2tp.port = 0),
            "spec.l2tp.port must be between 1 and 65535",
        ),
        (
            Box::new(|s| s.l2tp.hello_interval = "2h".into()),
            "spec.l2tp.helloInterval \"2h\" is longer than 1h",
        ),
        (
            Box::new(|s| s.l2tp.authentication.clear()),
            "spec.l2tp.authentication must list at least one method",
        ),
        (
            Box::new(|s| {
                s.l2tp.authentication = vec![AuthenticationMethod::Chap];
                s.l2tp.encryption = Encryption::Require;
            }),
            "spec.l2tp.encryption require needs mschapv1 or mschapv2 in spec.l2tp.authentication (MPPE keys come from MS-CHAP)",
        ),
        (
            Box::new(|s| {
                if let Some(r) = &mut s.l2tp.tunnel_secret_ref {
                    r.name = "nope".into();
                }
            }),
            "spec.l2tp.tunnelSecretRef Secret \"nope\" not found",
        ),
        (
            Box::new(|s| {
                if let Some(r) = &mut s.l2tp.tunnel_secret_ref {
                    r.key = "other".into();
                }
            }),
            "spec.l2tp.tunnelSecretRef Secret \"l2tp-secret\" has no key \"other\"",
        ),
    ];
    for (edit, want) in cases {
        let mut m = load(L2TP);
        edit(&mut m.gateways[0].spec);
        assert_eq!(compile_errors(&m), [format!("VpnGateway/office: {want}")]);
    }
    // A disabled L2TP section is not checked.
    let mut m = load(L2TP);
    m.gateways[0].spec.l2tp.enabled = false;
    m.gateways[0].spec.l2tp.allow_unencrypted = false;
    assert!(compile_from_manifests(&m, None).is_ok());
}

#[test]
fn l2tp_without_ipsec_has_no_ipsec_settings_and_ignores_them() {
    let c = compile_yaml(L2TP).unwrap();
    assert_eq!(c.l2tp.unwrap().ipsec, None);
    // Without a pre-shared key the ipsec fields are unused and not checked.
    let mut m = load(L2TP);
    let ipsec = &mut m.gateways[0].spec.l2tp.ipsec;
    ipsec.ike_proposals = vec!["nonsense".into()];
    ipsec.ike_port = 1701;
    ipsec.ike_lifetime = "1y".into();
    assert_eq!(
        compile_from_manifests(&m, None)
            .unwrap()
            .l2tp
            .unwrap()
            .ipsec,
        None
    );
    // A disabled L2TP section is not checked, with or without IPsec.
    let mut m = load(L2TP_IPSEC);
    m.gateways[0].spec.l2tp.enabled = false;
    m.secrets.clear();
    let c = compile_from_manifests(&m, None).unwrap();
    assert_eq!(c.l2tp.unwrap().ipsec, None);
}

const L2TP_IPSEC: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata:
  name: office
spec:
  l2tp:
    enabled: true
    ipsec:
      preSharedKeySecretRef: {name: vpn-psk}
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
---
apiVersion: v1
kind: Secret
metadata:
  name: vpn-psk
stringData:
  psk: PRE-SHARED-KEY-123
";

#[test]
fn ipsec_compiles_with_psk_and_explicit_defaults() {
    let c = compile_yaml(L2TP_IPSEC).unwrap();
    let l2tp = c.l2tp.as_ref().unwrap();
    assert!(l2tp.enabled && !l2tp.allow_unencrypted);
    let ipsec = l2tp.ipsec.as_ref().unwrap();
    assert_eq!(
        *ipsec,
        IpsecSettings {
            pre_shared_key: b"PRE-SHARED-KEY-123".to_vec(),
            ike_proposals: vec![],
            esp_proposals: vec![],
            ike_lifetime_seconds: 8 * 3600,
            esp_lifetime_seconds: 3600,
            esp_lifetime_kilobytes: 0,
            nat_detection: NatDetection::Honest as i32,
            dpd_delay_seconds: 30,
            dpd_timeout_seconds: 150,
            ike_port: 500,
            natt_port: 4500,
            allow_md5: false,
            allow_aggressive_mode: false,
            certificate_chain: vec![],
            private_key: vec![],
            client_ca: vec![],
        }
    );
    // The pre-shared key changes the version, like every other input.
    let other =
        compile_yaml(&L2TP_IPSEC.replace("PRE-SHARED-KEY-123", "PRE-SHARED-KEY-456")).unwrap();
    assert_ne!(c.version, other.version);
}

#[test]
fn ipsec_fields_reach_the_config() {
    let yaml = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      preSharedKeySecretRef: {name: vpn-psk, key: other}\n\
         \x20     ikeProposals: [AES256-SHA256-MODP2048, aes128-aes256-sha1-modp2048-modp1024]\n\
         \x20     espProposals: [aes256gcm16, aes128-sha1, aes256-sha256-modp2048]\n\
         \x20     ikeLifetime: 2h30m\n\
         \x20     espLifetime: 45m\n\
         \x20     espLifetimeKilobytes: 4000000\n\
         \x20     natDetection: forceEncapsulation\n\
         \x20     dpd: {delay: 0s, timeout: 2m}\n\
         \x20     allowMd5: true\n\
         \x20     allowAggressiveMode: true\n\
         \x20     ikePort: 5000\n\
         \x20     nattPort: 5001\n",
    ) + "  other: base64-or-not-this-is-long-enough\n";
    let c = compile_yaml(&yaml).unwrap();
    let ipsec = c.l2tp.unwrap().ipsec.unwrap();
    assert_eq!(ipsec.pre_shared_key, b"base64-or-not-this-is-long-enough");
    assert_eq!(
        ike_text(&ipsec.ike_proposals),
        [
            "aes256-sha256-modp2048",
            "aes128-aes256-sha1-modp2048-modp1024"
        ]
    );
    assert_eq!(
        esp_text(&ipsec.esp_proposals),
        ["aes256gcm16", "aes128-sha1", "aes256-sha256-modp2048"]
    );
    assert_eq!(
        (ipsec.ike_lifetime_seconds, ipsec.esp_lifetime_seconds),
        (9000, 2700)
    );
    assert_eq!(ipsec.esp_lifetime_kilobytes, 4_000_000);
    assert_eq!(ipsec.nat_detection(), NatDetection::ForceEncapsulation);
    assert_eq!(
        (ipsec.dpd_delay_seconds, ipsec.dpd_timeout_seconds),
        (0, 120)
    );
    assert!(ipsec.allow_md5);
    assert!(ipsec.allow_aggressive_mode);
    assert_eq!((ipsec.ike_port, ipsec.natt_port), (5000, 5001));
    for (mode, want) in [
        ("parrot", NatDetection::Parrot),
        ("honest", NatDetection::Honest),
    ] {
        let c = compile_yaml(&yaml.replace("forceEncapsulation", mode)).unwrap();
        assert_eq!(c.l2tp.unwrap().ipsec.unwrap().nat_detection(), want);
    }
}

#[test]
fn psk_from_secret_data_and_allow_unencrypted_together() {
    let mut m = load(L2TP_IPSEC);
    let s = &mut m.secrets[0];
    s.string_data = None;
    s.data = Some(
        [(
            "psk".to_owned(),
            k8s_openapi::ByteString(b"\x00\xffbinary-key".to_vec()),
        )]
        .into_iter()
        .collect(),
    );
    m.gateways[0].spec.l2tp.allow_unencrypted = true;
    let c = compile_from_manifests(&m, None).unwrap();
    let l2tp = c.l2tp.unwrap();
    // Both: IPsec is offered, and plain L2TP is accepted too.
    assert!(l2tp.allow_unencrypted);
    assert_eq!(l2tp.ipsec.unwrap().pre_shared_key, b"\x00\xffbinary-key");
}

#[test]
fn psk_never_appears_in_redacted_config_or_errors() {
    let c = compile_yaml(L2TP_IPSEC).unwrap();
    let shown = format!("{:?}", redacted(&c));
    assert!(!shown.contains("PRE-SHARED-KEY-123"), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", b"PRE-SHARED-KEY-123")),
        "{shown}"
    );
    assert_eq!(
        redacted(&c).l2tp.unwrap().ipsec.unwrap().pre_shared_key,
        Vec::<u8>::new()
    );
    // The rest of the IPsec settings survive redaction.
    assert_eq!(redacted(&c).l2tp.unwrap().ipsec.unwrap().ike_port, 500);
    // Rejected keys are described by length, never shown.
    for bad in ["SHORTK", &"LONG-SECRET-".repeat(30)] {
        let err = compile_yaml(&L2TP_IPSEC.replace("PRE-SHARED-KEY-123", bad)).unwrap_err();
        assert!(!err.to_string().contains(&bad[..6]), "{err}");
        assert!(!format!("{err:?}").contains(&bad[..6]), "{err:?}");
    }
}

#[test]
fn psk_errors() {
    type Edit = Box<dyn FnOnce(&mut Manifests)>;
    let set = |v: &[u8]| -> Edit {
        let v = String::from_utf8(v.to_vec()).unwrap();
        Box::new(move |m: &mut Manifests| {
            m.secrets[0].string_data = Some([("psk".to_owned(), v)].into_iter().collect());
        })
    };
    let cases: Vec<(Edit, &str)> = vec![
        (
            set(b""),
            "spec.l2tp.ipsec.preSharedKeySecretRef pre-shared key in Secret \"vpn-psk\" key \"psk\" is empty",
        ),
        (
            set(b"1234567"),
            "spec.l2tp.ipsec.preSharedKeySecretRef pre-shared key in Secret \"vpn-psk\" key \"psk\" is 7 bytes long, at least 8 are needed: anyone who poses as the gateway to one client can test guesses of a pre-shared key offline, so use a long random one",
        ),
        (
            set(&[b'k'; 257]),
            "spec.l2tp.ipsec.preSharedKeySecretRef pre-shared key in Secret \"vpn-psk\" key \"psk\" is 257 bytes long, at most 256 are allowed",
        ),
        (
            Box::new(|m| m.secrets.clear()),
            "spec.l2tp.ipsec.preSharedKeySecretRef Secret \"vpn-psk\" not found",
        ),
        (
            Box::new(|m| m.secrets[0].metadata.namespace = Some("elsewhere".into())),
            "spec.l2tp.ipsec.preSharedKeySecretRef Secret \"vpn-psk\" not found",
        ),
        (
            Box::new(|m| {
                if let Some(r) = &mut m.gateways[0].spec.l2tp.ipsec.pre_shared_key_secret_ref {
                    r.key = "key".into();
                }
            }),
            "spec.l2tp.ipsec.preSharedKeySecretRef Secret \"vpn-psk\" has no key \"key\"",
        ),
        (
            Box::new(|m| m.gateways[0].spec.l2tp.ipsec.pre_shared_key_secret_ref = None),
            "spec.l2tp.ipsec.preSharedKeySecretRef is required (or spec.l2tp.ipsec.certificateSecretRef): L2TP is served only inside IPsec unless spec.l2tp.allowUnencrypted is set (L2TP alone encrypts nothing)",
        ),
    ];
    for (edit, want) in cases {
        let mut m = load(L2TP_IPSEC);
        edit(&mut m);
        assert_eq!(compile_errors(&m), [format!("VpnGateway/office: {want}")]);
    }
    // The limits themselves are accepted.
    for len in [8, 256] {
        let mut m = load(L2TP_IPSEC);
        set(&vec![b'k'; len])(&mut m);
        let c = compile_from_manifests(&m, None).unwrap();
        assert_eq!(c.l2tp.unwrap().ipsec.unwrap().pre_shared_key.len(), len);
    }
}

#[test]
fn ipsec_field_errors() {
    type Edit = Box<dyn FnOnce(&mut sluice_api::VpnGatewaySpec)>;
    let ike = |v: &[&str]| -> Edit {
        let v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
        Box::new(move |s| s.l2tp.ipsec.ike_proposals = v)
    };
    let esp = |v: &[&str]| -> Edit {
        let v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
        Box::new(move |s| s.l2tp.ipsec.esp_proposals = v)
    };
    let cases: Vec<(Edit, &str)> = vec![
        (
            ike(&["aes256-sha256-modp2048", "aes512-sha1-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[1] unknown algorithm \"aes512\" (IKE proposals accept aes128 aes192 aes256 3des md5 sha1 sha256 sha384 sha512 modp1024 modp1536 modp2048 modp3072 modp4096 ecp256 ecp384)",
        ),
        (
            ike(&["aes128gcm16-sha256-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[0] unknown algorithm \"aes128gcm16\" (AES-GCM is an ESP algorithm; IKEv1 has no AEAD ciphers)",
        ),
        (
            ike(&["aes128-sha1"]),
            "spec.l2tp.ipsec.ikeProposals[0] has no DH group (one of modp1024, modp1536, modp2048, modp3072, modp4096, ecp256, ecp384)",
        ),
        (
            ike(&["aes128-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[0] has no integrity algorithm (one of md5, sha1, sha256, sha384, sha512)",
        ),
        (
            ike(&["sha1-modp2048"]),
            "spec.l2tp.ipsec.ikeProposals[0] has no encryption algorithm (one of aes128, aes192, aes256, 3des)",
        ),
        (
            ike(&["aes128-md5-modp1024"]),
            "spec.l2tp.ipsec.ikeProposals[0] uses md5, which is refused: MD5 is broken (practical collisions); set spec.l2tp.ipsec.allowMd5 to accept it",
        ),
        (
            ike(&["aes128-sha1-modp2048", "AES128-SHA1-MODP2048"]),
            "spec.l2tp.ipsec.ikeProposals[1] repeats spec.l2tp.ipsec.ikeProposals[0]",
        ),
        (ike(&[""]), "spec.l2tp.ipsec.ikeProposals[0] is empty"),
        (
            ike(&["aes128-sha1-modp2048"; 17]),
            "spec.l2tp.ipsec.ikeProposals lists 17 proposals, at most 16 are allowed",
        ),
        (
            esp(&["aes128gcm16-sha1"]),
            "spec.l2tp.ipsec.espProposals[0] lists an integrity algorithm with only AES-GCM ciphers: GCM authenticates by itself, so GCM-only proposals take none",
        ),
        (
            esp(&["aes256gcm16", "aes128"]),
            "spec.l2tp.ipsec.espProposals[1] has no integrity algorithm (one of md5, sha1, sha256, sha384, sha512), which non-GCM ciphers need",
        ),
        (
            esp(&["aes128-md5"]),
            "spec.l2tp.ipsec.espProposals[0] uses md5, which is refused: MD5 is broken (practical collisions); set spec.l2tp.ipsec.allowMd5 to accept it",
        ),
        (
            esp(&["aes128-sha1-sha1"]),
            "spec.l2tp.ipsec.espProposals[0] lists sha1 twice",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_lifetime = "59s".into()),
            "spec.l2tp.ipsec.ikeLifetime \"59s\" is shorter than 1m",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_lifetime = "24h1s".into()),
            "spec.l2tp.ipsec.ikeLifetime \"24h1s\" is longer than 24h",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.esp_lifetime = "59s".into()),
            "spec.l2tp.ipsec.espLifetime \"59s\" is shorter than 1m",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.esp_lifetime = "9h".into()),
            "spec.l2tp.ipsec.espLifetime \"9h\" is longer than 8h",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.esp_lifetime = "1.5h".into()),
            "", // 5400 s: fractions are fine when they come to whole seconds
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.delay = "1h1m".into()),
            "spec.l2tp.ipsec.dpd.delay \"1h1m\" is longer than 1h",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.delay = "2.5s".into()),
            "spec.l2tp.ipsec.dpd.delay \"2.5s\" must be a whole number of seconds",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.timeout = "30s".into()),
            "spec.l2tp.ipsec.dpd.timeout \"30s\" must be longer than spec.l2tp.ipsec.dpd.delay (\"30s\")",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.timeout = "0s".into()),
            "spec.l2tp.ipsec.dpd.timeout \"0s\" is shorter than 1s",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.dpd.timeout = "soon".into()),
            "spec.l2tp.ipsec.dpd.timeout \"soon\" expects a number before each unit (expected a duration such as 30s or 1m30s)",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_port = 0),
            "spec.l2tp.ipsec.ikePort must be between 1 and 65535",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.natt_port = 0),
            "spec.l2tp.ipsec.nattPort must be between 1 and 65535",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.natt_port = 500),
            "spec.l2tp.ipsec.nattPort 500 is also spec.l2tp.ipsec.ikePort",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.ike_port = 1701),
            "spec.l2tp.ipsec.ikePort 1701 is also spec.l2tp.port",
        ),
        (
            Box::new(|s| s.l2tp.port = 4500),
            "spec.l2tp.ipsec.nattPort 4500 is also spec.l2tp.port",
        ),
        (
            Box::new(|s| s.l2tp.ipsec.natt_port = 1723),
            "spec.l2tp.ipsec.nattPort 1723 is also spec.pptp.port",
        ),
        (
            Box::new(|s| {
                s.pptp.enabled = false;
                s.l2tp.ipsec.natt_port = 1723;
            }),
            "", // a disabled PPTP's port is free
        ),
    ];
    for (edit, want) in cases {
        let mut m = load(L2TP_IPSEC);
        edit(&mut m.gateways[0].spec);
        if want.is_empty() {
            compile_from_manifests(&m, None).unwrap();
        } else {
            assert_eq!(compile_errors(&m), [format!("VpnGateway/office: {want}")]);
        }
    }
    // allowMd5 accepts MD5 in both lists.
    let mut m = load(L2TP_IPSEC);
    let ipsec = &mut m.gateways[0].spec.l2tp.ipsec;
    ipsec.allow_md5 = true;
    ipsec.ike_proposals = vec!["3des-md5-modp1024".into()];
    ipsec.esp_proposals = vec!["3des-md5".into()];
    let c = compile_from_manifests(&m, None).unwrap();
    assert!(c.l2tp.unwrap().ipsec.unwrap().allow_md5);
    // Every problem is reported, not just the first.
    let mut m = load(L2TP_IPSEC);
    let ipsec = &mut m.gateways[0].spec.l2tp.ipsec;
    ipsec.ike_proposals = vec!["x".into()];
    ipsec.esp_proposals = vec!["y".into()];
    ipsec.ike_lifetime = "30s".into();
    ipsec.natt_port = 500;
    assert_eq!(compile_errors(&m).len(), 4);
}

#[test]
fn ipsec_firewall_rules() {
    let fw = |edit: &dyn Fn(&mut sluice_api::VpnGatewaySpec)| {
        let mut m = load(L2TP_IPSEC);
        edit(&mut m.gateways[0].spec);
        m.gateways[0]
            .spec
            .firewall_rules()
            .into_iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r.protocol,
                    r.port.map(|p| p.to_string()).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
    };
    // IPsec only: L2TP (UDP 1701) travels inside ESP.
    assert_eq!(
        fw(&|_| {}),
        ["tcp/1723", "gre/", "udp/500", "udp/4500", "esp/"]
    );
    // allowUnencrypted adds plain L2TP.
    assert_eq!(
        fw(&|s| s.l2tp.allow_unencrypted = true),
        [
            "tcp/1723", "gre/", "udp/1701", "udp/500", "udp/4500", "esp/"
        ]
    );
    // forceEncapsulation: every client sends ESP in UDP, no IP protocol 50.
    assert_eq!(
        fw(&|s| {
            s.pptp.enabled = false;
            s.l2tp.ipsec.nat_detection = NatDetectionSpec::ForceEncapsulation;
            s.l2tp.ipsec.ike_port = 10500;
            s.l2tp.ipsec.natt_port = 14500;
        }),
        ["udp/10500", "udp/14500"]
    );
    assert_eq!(
        fw(&|s| s.l2tp.ipsec.nat_detection = NatDetectionSpec::Parrot),
        ["tcp/1723", "gre/", "udp/500", "udp/4500", "esp/"]
    );
    // Without a pre-shared key there is no IPsec to let in; L2TP off: nothing.
    assert_eq!(
        fw(&|s| {
            s.l2tp.allow_unencrypted = true;
            s.l2tp.ipsec.pre_shared_key_secret_ref = None;
        }),
        ["tcp/1723", "gre/", "udp/1701"]
    );
    assert_eq!(fw(&|s| s.l2tp.enabled = false), ["tcp/1723", "gre/"]);
}

#[test]
fn secret_names_list_what_the_gateway_reads() {
    let mut m = load(L2TP_IPSEC);
    assert_eq!(m.gateways[0].spec.secret_names(), ["vpn-psk"]);
    m.gateways[0].spec.l2tp.tunnel_secret_ref = Some(sluice_api::TunnelSecretRef {
        name: "l2tp-secret".into(),
        key: "secret".into(),
    });
    assert_eq!(
        m.gateways[0].spec.secret_names(),
        ["l2tp-secret", "vpn-psk"]
    );
    m.gateways[0].spec.l2tp.tunnel_secret_ref = Some(sluice_api::TunnelSecretRef {
        name: "vpn-psk".into(),
        key: "secret".into(),
    });
    assert_eq!(m.gateways[0].spec.secret_names(), ["vpn-psk"]);
    assert!(load(DEFAULTS).gateways[0].spec.secret_names().is_empty());
}

const CERT_SECRET: &str = "\
---
apiVersion: v1
kind: Secret
metadata:
  name: vpn-cert
type: kubernetes.io/tls
stringData:
  tls.crt: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"
  tls.key: \"-----BEGIN PRIVATE KEY-----\\nSECRETKEYBYTES\\n-----END PRIVATE KEY-----\\n\"
  ca.crt: \"-----BEGIN CERTIFICATE-----\\nMIIC\\n-----END CERTIFICATE-----\\n\"
";

#[test]
fn ipsec_certificates_reach_the_config_and_the_key_is_redacted() {
    // Certificates alone are enough to serve L2TP/IPsec.
    let yaml = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: vpn-cert}\n      clientCaSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET;
    let c = compile_yaml(&yaml).unwrap();
    let ipsec = c.l2tp.as_ref().unwrap().ipsec.as_ref().unwrap();
    assert!(ipsec.pre_shared_key.is_empty());
    assert!(
        ipsec
            .certificate_chain
            .starts_with(b"-----BEGIN CERTIFICATE-----")
    );
    assert!(ipsec.client_ca.ends_with(b"-----END CERTIFICATE-----\n"));
    assert!(!ipsec.private_key.is_empty());
    let shown = redacted(&c).l2tp.unwrap().ipsec.unwrap();
    assert!(shown.private_key.is_empty());
    assert!(!format!("{:?}", redacted(&c)).contains("SECRETKEYBYTES"));
}

#[test]
fn ipsec_certificate_errors_name_the_field() {
    let only_cert = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET;
    let err = compile_yaml(&only_cert).unwrap_err().to_string();
    assert!(
        err.contains("spec.l2tp.ipsec.clientCaSecretRef") && err.contains("required"),
        "{err}"
    );
    let missing = L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: nope}\n      clientCaSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET;
    let err = compile_yaml(&missing).unwrap_err().to_string();
    assert!(
        err.contains("spec.l2tp.ipsec.certificateSecretRef") && err.contains("\"nope\" not found"),
        "{err}"
    );
    let not_pem = (L2TP_IPSEC.replace(
        "      preSharedKeySecretRef: {name: vpn-psk}\n",
        "      certificateSecretRef: {name: vpn-cert}\n      clientCaSecretRef: {name: vpn-cert}\n",
    ) + CERT_SECRET)
        .replace("BEGIN PRIVATE KEY", "BEGIN NOTHING");
    let err = compile_yaml(&not_pem).unwrap_err().to_string();
    assert!(
        err.contains("spec.l2tp.ipsec.certificateSecretRef") && err.contains("tls.key"),
        "{err}"
    );
    assert!(!err.contains("SECRETKEYBYTES"), "{err}");
}
