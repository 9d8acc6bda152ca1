//! Property tests of `compile`: any accepted manifest set compiles to a configuration that
//! keeps the address rules, and every rejected one names an object and a field.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use proptest::prelude::*;
use sluice_api::wire::{ipv4_from_wire, prefix_from_wire};
use sluice_api::{compile_from_manifests, parse_manifests};

fn ip() -> impl Strategy<Value = String> {
    prop_oneof![
        // Mostly inside or next to 10.200.0.0/24 so that clashes happen.
        (0u8..=255).prop_map(|d| format!("10.200.0.{d}")),
        (0u8..=3, 0u8..=255).prop_map(|(c, d)| format!("10.201.{c}.{d}")),
        Just("10.200.0".to_owned()),
        Just("::1".to_owned()),
        Just("300.1.1.1".to_owned()),
    ]
}

fn cidr() -> impl Strategy<Value = String> {
    prop_oneof![
        (16u8..=32).prop_map(|p| format!("10.200.0.0/{p}")),
        (20u8..=32).prop_map(|p| format!("10.201.0.0/{p}")),
        Just("10.200.0.1/24".to_owned()),
        Just("10.0.0.0/8".to_owned()),
        Just("nonsense".to_owned()),
    ]
}

fn auth() -> impl Strategy<Value = Vec<&'static str>> {
    proptest::collection::vec(
        prop_oneof![
            Just("pap"),
            Just("chap"),
            Just("mschapv1"),
            Just("mschapv2")
        ],
        0..4,
    )
}

#[derive(Debug, Clone)]
struct UserCase {
    name: String,
    username: Option<String>,
    secret: bool,
    remote: Option<String>,
    routes: Vec<String>,
    max_sessions: Option<u32>,
    disabled: bool,
    gateway: &'static str,
}

fn user_case() -> impl Strategy<Value = UserCase> {
    (
        prop_oneof![Just("alice"), Just("bob"), Just("carol"), Just("dave")],
        proptest::option::weighted(
            0.15,
            prop_oneof![
                Just("alice".to_owned()),
                Just("x".repeat(300)),
                Just(String::new())
            ],
        ),
        proptest::bool::weighted(0.9),
        proptest::option::weighted(0.3, ip()),
        prop_oneof![3 => Just(Vec::new()), 1 => proptest::collection::vec(cidr(), 0..3)],
        proptest::option::of(0u32..3),
        proptest::bool::weighted(0.1),
        prop_oneof![Just("office"), Just("office"), Just("elsewhere")],
    )
        .prop_map(
            |(name, username, secret, remote, routes, max_sessions, disabled, gateway)| UserCase {
                name: name.to_owned(),
                username,
                secret,
                remote,
                routes,
                max_sessions,
                disabled,
                gateway,
            },
        )
}

#[allow(clippy::too_many_arguments)]
fn manifest(
    pool: &str,
    local: &str,
    mtu: u32,
    keepalive: &str,
    auth: &[&str],
    encryption: &str,
    keys: &[u32],
    statics: &[String],
    dns: &[String],
    users: &[UserCase],
) -> String {
    let mut y = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: VpnGateway\nmetadata: {{name: office}}\nspec:\n  \
         pptp:\n    authentication: {auth:?}\n    encryption: {encryption}\n    mppe: {{keyLengths: {keys:?}}}\n  \
         ppp:\n    mtu: {mtu}\n    keepaliveTimeout: {keepalive:?}\n    localAddress: {local:?}\n    \
         addressPool: {pool:?}\n    staticAddresses: {statics:?}\n    dnsServers: {dns:?}\n"
    );
    let mut seen = BTreeSet::new();
    for u in users {
        if !seen.insert(u.name.clone()) {
            continue;
        }
        y.push_str(&format!(
            "---\napiVersion: sluice.dev/v1alpha1\nkind: VpnUser\nmetadata: {{name: {}}}\nspec:\n  \
             gatewayRef: {{name: {}}}\n  passwordSecretRef: {{name: {}-pw}}\n  disabled: {}\n  routes: {:?}\n",
            u.name, u.gateway, u.name, u.disabled, u.routes
        ));
        if let Some(n) = &u.username {
            y.push_str(&format!("  username: {n:?}\n"));
        }
        if let Some(r) = &u.remote {
            y.push_str(&format!("  remoteAddress: {r:?}\n"));
        }
        if let Some(m) = u.max_sessions {
            y.push_str(&format!("  maxSessions: {m}\n"));
        }
        if u.secret {
            y.push_str(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {}-pw}}\nstringData: {{password: pw-{}}}\n",
                u.name, u.name
            ));
        }
    }
    y
}

static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static REJECTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn accepted_configs_keep_the_rules_and_rejections_name_a_field(
        pool in prop_oneof![6 => Just("10.200.0.0/24".to_owned()), 1 => cidr()],
        local in prop_oneof![6 => Just("10.200.0.1".to_owned()), 1 => ip()],
        mtu in prop_oneof![6 => Just(1400u32), 1 => 500u32..1600],
        keepalive in prop_oneof![6 => Just("30s"), 1 => Just("0s"), 1 => Just("1h1s"), 1 => Just("1.5s"), 1 => Just("soon")],
        auth in prop_oneof![4 => Just(vec!["mschapv2"]), 1 => auth()],
        encryption in prop_oneof![1 => Just("deny"), 1 => Just("allow"), 1 => Just("prefer"), 4 => Just("require")],
        keys in prop_oneof![4 => Just(vec![128u32]), 1 => proptest::collection::vec(prop_oneof![Just(40u32), Just(56), Just(128), Just(129)], 0..4)],
        statics in prop_oneof![3 => Just(Vec::new()), 1 => proptest::collection::vec(cidr(), 0..2)],
        dns in prop_oneof![3 => Just(vec!["10.200.0.1".to_owned()]), 1 => proptest::collection::vec(ip(), 0..3)],
        users in proptest::collection::vec(user_case(), 0..6),
    ) {
        let text = manifest(&pool, &local, mtu, keepalive, &auth, encryption, &keys, &statics, &dns, &users);
        let m = parse_manifests(&text).expect("generated manifests parse");
        match compile_from_manifests(&m, None) {
            Err(e) => {
                REJECTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                prop_assert!(!e.errors.is_empty());
                for err in &e.errors {
                    prop_assert!(matches!(&err.object, sluice_api::Subject::Object(_)), "{err}");
                    prop_assert!(!err.field.is_empty(), "error names no field: {err}");
                    prop_assert!(!err.to_string().contains("pw-"), "a password leaked: {err}");
                }
            }
            Ok(c) => {
                ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let ppp = c.ppp.clone().unwrap();
                let pool: Ipv4Net = prefix_from_wire(ppp.address_pool.as_ref().unwrap()).unwrap();
                let local: Ipv4Addr = ipv4_from_wire(ppp.local_address.as_ref().unwrap());
                prop_assert!(pool.prefix_len() <= 30);
                let ranges: Vec<Ipv4Net> = ppp.static_addresses.iter().map(|s| prefix_from_wire(s).unwrap()).collect();
                let mut names = BTreeSet::new();
                let mut addrs = BTreeSet::new();
                for u in &c.users {
                    prop_assert!(names.insert(u.username.clone()), "duplicate user {}", u.username);
                    prop_assert!(!u.password.is_empty());
                    if let Some(a) = &u.remote_address {
                        let a = ipv4_from_wire(a);
                        prop_assert!(addrs.insert(a), "static address {a} given twice");
                        prop_assert!(a != local && a != pool.network() && a != pool.broadcast());
                        prop_assert!(pool.contains(&a) || ranges.iter().any(|r| r.contains(&a)));
                        prop_assert_eq!(u.max_sessions, 1);
                    }
                    for r in &u.routes {
                        let r = prefix_from_wire(r).unwrap();
                        prop_assert!(!r.contains(&local));
                    }
                }
                let mut sorted: Vec<_> = c.users.iter().map(|u| u.username.clone()).collect();
                sorted.sort();
                prop_assert_eq!(sorted, c.users.iter().map(|u| u.username.clone()).collect::<Vec<_>>());
                // Deterministic: the same input gives the same version.
                let again = compile_from_manifests(&m, None).unwrap();
                prop_assert_eq!(again.version, c.version);
            }
        }
    }
}

#[test]
fn both_outcomes_are_exercised() {
    accepted_configs_keep_the_rules_and_rejections_name_a_field();
    let (a, r) = (
        ACCEPTED.load(std::sync::atomic::Ordering::Relaxed),
        REJECTED.load(std::sync::atomic::Ordering::Relaxed),
    );
    eprintln!("accepted {a}, rejected {r}");
    assert!(
        a >= 10 && r >= 10,
        "the generator must produce both (accepted {a}, rejected {r})"
    );
}
