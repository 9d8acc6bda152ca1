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

mod client;
mod l2tp;
