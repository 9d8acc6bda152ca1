//! One valid and one invalid object for every CEL rule and schema constraint of the CRDs'
//! `spec`s, to be sent through a real apiserver (`e2e/kube/`): the valid object must be
//! accepted, the invalid one rejected with a message naming the field (for a CEL rule: the
//! rule's own message).
//!
//! [`constraints`] lists what the generated schemas enforce; a unit test checks that
//! [`cases`] covers exactly that list, so a new rule or limit cannot go untested.
//! `status` is left out: only the operator writes it, through the status subresource.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::crdgen;

/// Schema keywords the apiserver enforces on a value.
const KEYWORDS: [&str; 9] = [
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
    "enum",
    "pattern",
];

/// What one constraint is: `(kind, path, what)`, where `path` is the field (`[*]` for list
/// items) and `what` a schema keyword or `rule: MESSAGE` for a CEL rule.
pub type Constraint = (String, String, String);

fn walk(kind: &str, s: &Value, path: &str, out: &mut BTreeSet<Constraint>) {
    let mut add = |what: String| {
        out.insert((kind.to_owned(), path.to_owned(), what));
    };
    for k in KEYWORDS {
        if s.get(k).is_some() {
            add(k.to_owned());
        }
    }
    if s.get("format").is_some() && s.get("type").and_then(Value::as_str) == Some("string") {
        add("format".to_owned());
    }
    for rule in s
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let message = rule.get("message").and_then(Value::as_str).unwrap_or("");
        add(format!("rule: {message}"));
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(kind, v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = s.get("items") {
        walk(kind, items, &format!("{path}[*]"), out);
    }
    if let Some(values) = s.get("additionalProperties").filter(|v| v.is_object()) {
        walk(kind, values, &format!("{path}{{*}}"), out);
    }
}

/// Every constraint of both CRDs' `spec` schemas.
pub fn constraints() -> Result<BTreeSet<Constraint>, crdgen::CrdError> {
    let mut out = BTreeSet::new();
    for crd in crdgen::crds()? {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
        for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
            let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
            walk(kind, spec, "spec", &mut out);
        }
    }
    Ok(out)
}

/// The two kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `VpnGateway`.
    Gateway,
    /// `VpnUser`.
    User,
}

impl Kind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gateway => "VpnGateway",
            Kind::User => "VpnUser",
        }
    }

    /// A valid object of this kind with every optional part present, so every rule runs.
    pub fn base(self) -> Value {
        match self {
            Kind::Gateway => json!({
                "apiVersion": "sluice.dev/v1alpha1", "kind": "VpnGateway",
                "metadata": {"name": "cases"},
                "spec": {
                    "replicas": 1,
                    "maxSessions": 0,
                    "drainTimeout": "1h",
                    "autoscaling": {"minReplicas": 1, "maxReplicas": 3,
                        "targetSessionsPerReplica": 100, "scaleDownStabilization": "10m"},
                    "tolerations": [{"key": "edge", "operator": "Exists", "effect": "NoSchedule"}],
                    "pptp": {"port": 1723, "authentication": ["mschapv2"], "encryption": "require",
                        "mppe": {"keyLengths": [128], "stateful": "allow"}},
                    "l2tp": {
                        "enabled": true, "port": 1701, "authentication": ["mschapv2"],
                        "encryption": "deny", "mppe": {"keyLengths": [128], "stateful": "refuse"},
                        "helloInterval": "60s",
                        "tunnelSecretRef": {"name": "tunnel", "key": "secret"},
                        "ipsec": {
                            "preSharedKeySecretRef": {"name": "psk", "key": "psk"},
                            "certificateSecretRef": {"name": "gateway-tls"},
                            "clientCaSecretRef": {"name": "clients", "key": "ca.crt"},
                            "ikeProposals": ["aes256-sha256-modp2048"],
                            "espProposals": ["aes256gcm16"],
                            "ikeLifetime": "8h", "espLifetime": "1h", "espLifetimeKilobytes": 0,
                            "natDetection": "honest", "dpd": {"delay": "30s", "timeout": "150s"},
                            "ikePort": 500, "nattPort": 4500
                        }
                    },
                    "ppp": {"mtu": 1400, "mru": 1400, "keepaliveTimeout": "30s",
                        "localAddress": "10.200.0.1", "addressPool": "10.200.0.0/24",
                        "dnsServers": ["10.200.0.1"], "staticAddresses": ["10.201.0.0/24"]}
                }
            }),
            Kind::User => json!({
                "apiVersion": "sluice.dev/v1alpha1", "kind": "VpnUser",
                "metadata": {"name": "cases"},
                "spec": {
                    "gatewayRef": {"name": "office"},
                    "username": "cases",
                    "passwordSecretRef": {"name": "cases", "key": "password"},
                    "services": ["pptp", "l2tp"],
                    "remoteAddress": "10.201.0.7",
                    "routes": ["192.168.50.0/24"],
                    "maxSessions": 1,
                    "rateLimit": {"down": "10M", "up": "2M", "burst": "64k"}
                }
            }),
        }
    }
}

/// One constraint's test: `valid` must be accepted and `invalid` rejected with a message
/// containing `expect`. With `update`, `valid` is created first and `invalid` is an update
/// of it (transition rules such as immutability).
#[derive(Debug, Clone)]
pub struct Case {
    /// Kind of object.
    pub kind: Kind,
    /// The field (as in [`Constraint`]).
    pub path: String,
    /// The keyword or `rule: MESSAGE`.
    pub what: String,
    /// An accepted object.
    pub valid: Value,
    /// A rejected object.
    pub invalid: Value,
    /// Whether `invalid` is an update of `valid`.
    pub update: bool,
    /// What the apiserver's message must contain.
    pub expect: String,
}

impl Case {
    /// One JSON line for `crdgen --cases`.
    pub fn to_json(&self) -> String {
        json!({
            "kind": self.kind.name(),
            "id": format!("{} {}", self.path, self.what),
            "valid": self.valid,
            "invalid": self.invalid,
            "update": self.update,
            "expect": self.expect,
        })
        .to_string()
    }
}

/// JSON merge patch (RFC 7396): `null` removes a key.
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                if v.is_null() {
                    a.remove(k);
                } else {
                    merge(a.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn object(kind: Kind, spec_patch: &Value) -> Value {
    let mut v = kind.base();
    merge(&mut v["spec"], spec_patch);
    v
}

/// A `what` in the table: a keyword, or `rule` plus a piece of the rule's message.
enum What {
    Keyword(&'static str),
    Rule(&'static str),
}

struct Row {
    kind: Kind,
    path: String,
    what: What,
    valid: Value,
    invalid: Value,
    update: bool,
}

fn row(kind: Kind, path: &str, what: What, valid: Value, invalid: Value) -> Row {
    Row {
        kind,
        path: path.to_owned(),
        what,
        valid,
        invalid,
        update: false,
    }
}

/// `n` copies of `v` as a JSON list.
fn many(v: Value, n: usize) -> Value {
    Value::Array(vec![v; n])
}

/// `n` distinct proposals.
fn proposals(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!(format!("aes{i}"))).collect())
}

/// Distinct /24s, `n` of them.
fn cidrs(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!(format!("10.202.{i}.0/24"))).collect())
}

fn long(n: usize) -> String {
    "a".repeat(n)
}

/// A patch that sets `path` (dotted, below `spec`) to `value`.
fn at(path: &str, value: Value) -> Value {
    path.trim_start_matches("spec.")
        .rsplit('.')
        .fold(value, |v, key| json!({ key: v }))
}

/// Rows of a secret reference's `name` (and `key`) length limits.
fn secret_ref_rows(kind: Kind, rows: &mut Vec<Row>, paths: &[&str]) {
    use What::Keyword;
    for path in paths {
        rows.push(row(
            kind,
            path,
            Keyword("maxLength"),
            at(path, json!(long(253))),
            at(path, json!(long(254))),
        ));
    }
}

/// Rows for a Go-duration field: its length limit and its rule (`ok`, `bad` values).
fn duration_rows(rows: &mut Vec<Row>, path: &str, rule: &'static str, ok: &str, bad: &str) {
    use What::{Keyword, Rule};
    let g = Kind::Gateway;
    rows.push(row(
        g,
        path,
        Keyword("maxLength"),
        at(path, json!(ok)),
        at(path, json!(format!("{}s", "1".repeat(32)))),
    ));
    rows.push(row(
        g,
        path,
        Rule(rule),
        at(path, json!(ok)),
        at(path, json!(bad)),
    ));
}

fn gateway_rows(rows: &mut Vec<Row>) {
    use What::{Keyword, Rule};
    let g = Kind::Gateway;
    let mut add = |path: &str, what: What, valid: Value, invalid: Value| {
        rows.push(row(g, path, what, valid, invalid))
    };
    add(
        "spec.autoscaling",
        Rule("minReplicas must not exceed"),
        json!({"autoscaling": {"minReplicas": 3, "maxReplicas": 3}}),
        json!({"autoscaling": {"minReplicas": 4, "maxReplicas": 3}}),
    );
    add(
        "spec.autoscaling.maxReplicas",
        Keyword("minimum"),
        json!({"autoscaling": {"minReplicas": 0, "maxReplicas": 1}}),
        json!({"autoscaling": {"minReplicas": 0, "maxReplicas": 0}}),
    );
    add(
        "spec.autoscaling.minReplicas",
        Keyword("minimum"),
        json!({"autoscaling": {"minReplicas": 0}}),
        json!({"autoscaling": {"minReplicas": -1}}),
    );
    add(
        "spec.autoscaling.targetSessionsPerReplica",
        Keyword("minimum"),
        json!({"autoscaling": {"targetSessionsPerReplica": 1}}),
        json!({"autoscaling": {"targetSessionsPerReplica": 0}}),
    );
    add(
        "spec.maxSessions",
        Keyword("minimum"),
        json!({"maxSessions": 0}),
        json!({"maxSessions": -1}),
    );
    add(
        "spec.replicas",
        Keyword("minimum"),
        json!({"replicas": 0}),
        json!({"replicas": -1}),
    );
    add(
        "spec.tolerations",
        Keyword("maxItems"),
        json!({"tolerations": many(json!({"operator": "Exists"}), 64)}),
        json!({"tolerations": many(json!({"operator": "Exists"}), 65)}),
    );
    for proto in ["pptp", "l2tp"] {
        let path = |field: &str| format!("spec.{proto}.{field}");
        let auth = &path("authentication");
        add(
            auth,
            Keyword("minItems"),
            at(auth, json!(["chap"])),
            at(auth, json!([])),
        );
        add(
            auth,
            Keyword("maxItems"),
            at(auth, json!(["pap", "chap", "mschapv1", "mschapv2"])),
            at(auth, json!(["pap", "chap", "mschapv1", "mschapv2", "pap"])),
        );
        add(
            auth,
            Rule("must not list a method twice"),
            at(auth, json!(["mschapv2", "mschapv1"])),
            at(auth, json!(["mschapv2", "mschapv2"])),
        );
        add(
            &path("authentication[*]"),
            Keyword("enum"),
            at(auth, json!(["pap"])),
            at(auth, json!(["eap"])),
        );
        let enc = &path("encryption");
        add(
            enc,
            Keyword("enum"),
            at(enc, json!("prefer")),
            at(enc, json!("maybe")),
        );
        let keys = &path("mppe.keyLengths");
        add(
            keys,
            Keyword("minItems"),
            at(keys, json!([40])),
            at(keys, json!([])),
        );
        add(
            keys,
            Keyword("maxItems"),
            at(keys, json!([40, 56, 128])),
            at(keys, json!([40, 56, 128, 128])),
        );
        add(
            keys,
            Rule("may only contain 40, 56 and 128"),
            at(keys, json!([56])),
            at(keys, json!([64])),
        );
        add(
            &path("mppe.keyLengths[*]"),
            Keyword("minimum"),
            at(keys, json!([128])),
            at(keys, json!([-1])),
        );
        let stateful = &path("mppe.stateful");
        add(
            stateful,
            Keyword("enum"),
            at(stateful, json!("prefer")),
            at(stateful, json!("always")),
        );
        let port = &path("port");
        add(
            port,
            Keyword("minimum"),
            at(port, json!(1)),
            at(port, json!(0)),
        );
        add(
            port,
            Keyword("maximum"),
            at(port, json!(65535)),
            at(port, json!(65536)),
        );
    }
    let ipsec = "spec.l2tp.ipsec";
    add(
        ipsec,
        Rule("nattPort must differ"),
        at(ipsec, json!({"ikePort": 500, "nattPort": 4501})),
        at(ipsec, json!({"ikePort": 4500, "nattPort": 4500})),
    );
    add(
        "spec.l2tp.ipsec.dpd",
        Rule("timeout must be longer"),
        at(ipsec, json!({"dpd": {"delay": "30s", "timeout": "31s"}})),
        at(ipsec, json!({"dpd": {"delay": "30s", "timeout": "30s"}})),
    );
    add(
        "spec.l2tp.ipsec.espLifetimeKilobytes",
        Keyword("minimum"),
        at(ipsec, json!({"espLifetimeKilobytes": 1})),
        at(ipsec, json!({"espLifetimeKilobytes": -1})),
    );
    for list in ["ikeProposals", "espProposals"] {
        let path = &format!("{ipsec}.{list}");
        let item = &format!("{path}[*]");
        add(
            path,
            Keyword("maxItems"),
            at(path, proposals(16)),
            at(path, proposals(17)),
        );
        add(
            path,
            Rule("must be proposals such as"),
            at(path, json!(["aes128-sha1"])),
            at(path, json!(["aes128 sha1"])),
        );
        add(
            item,
            Keyword("maxLength"),
            at(path, json!([long(200)])),
            at(path, json!([long(201)])),
        );
    }
    add(
        "spec.l2tp.ipsec.natDetection",
        Keyword("enum"),
        at(ipsec, json!({"natDetection": "parrot"})),
        at(ipsec, json!({"natDetection": "lie"})),
    );
    for port in ["ikePort", "nattPort"] {
        let path = &format!("{ipsec}.{port}");
        // Each valid value keeps the two ports apart.
        let (lo, hi) = if port == "ikePort" {
            (json!({"ikePort": 1}), json!({"ikePort": 65535}))
        } else {
            (json!({"nattPort": 1}), json!({"nattPort": 65535}))
        };
        add(
            path,
            Keyword("minimum"),
            at(ipsec, lo),
            at(ipsec, json!({ port: 0 })),
        );
        add(
            path,
            Keyword("maximum"),
            at(ipsec, hi),
            at(ipsec, json!({ port: 65536 })),
        );
    }
    let ppp = "spec.ppp";
    add(
        ppp,
        Rule("must not be the network address"),
        at(ppp, json!({"localAddress": "10.200.0.254"})),
        at(ppp, json!({"localAddress": "10.200.0.0"})),
    );
    add(
        ppp,
        Rule("must not overlap"),
        at(ppp, json!({"staticAddresses": ["10.200.1.0/24"]})),
        at(ppp, json!({"staticAddresses": ["10.200.0.128/25"]})),
    );
    add(
        "spec.ppp.addressPool",
        Keyword("maxLength"),
        at(ppp, json!({"addressPool": "10.200.0.0/24"})),
        at(ppp, json!({"addressPool": "010.200.000.000/24"})),
    );
    add(
        "spec.ppp.addressPool",
        Rule("addressPool must be an IPv4 CIDR"),
        at(ppp, json!({"addressPool": "10.200.0.0/30"})),
        at(ppp, json!({"addressPool": "10.200.0.0/31"})),
    );
    add(
        "spec.ppp.dnsServers",
        Keyword("maxItems"),
        at(ppp, json!({"dnsServers": ["10.0.0.1", "10.0.0.2"]})),
        at(
            ppp,
            json!({"dnsServers": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}),
        ),
    );
    add(
        "spec.ppp.dnsServers",
        Rule("dnsServers must be IPv4"),
        at(ppp, json!({"dnsServers": ["192.0.2.53"]})),
        at(ppp, json!({"dnsServers": ["dns.example"]})),
    );
    add(
        "spec.ppp.dnsServers[*]",
        Keyword("maxLength"),
        at(ppp, json!({"dnsServers": ["192.168.100.100"]})),
        at(ppp, json!({"dnsServers": ["192.168.100.1000"]})),
    );
    add(
        "spec.ppp.localAddress",
        Keyword("maxLength"),
        at(ppp, json!({"localAddress": "10.200.0.1"})),
        at(ppp, json!({"localAddress": "010.200.000.0001"})),
    );
    add(
        "spec.ppp.localAddress",
        Rule("localAddress must be an IPv4"),
        at(ppp, json!({"localAddress": "10.200.0.2"})),
        at(ppp, json!({"localAddress": "fe80::1"})),
    );
    for unit in ["mtu", "mru"] {
        let path = &format!("{ppp}.{unit}");
        add(
            path,
            Keyword("minimum"),
            at(ppp, json!({ unit: 576 })),
            at(ppp, json!({ unit: 575 })),
        );
        add(
            path,
            Keyword("maximum"),
            at(ppp, json!({ unit: 1436 })),
            at(ppp, json!({ unit: 1437 })),
        );
    }
    add(
        "spec.ppp.staticAddresses",
        Keyword("maxItems"),
        at(ppp, json!({"staticAddresses": cidrs(64)})),
        at(ppp, json!({"staticAddresses": cidrs(65)})),
    );
    add(
        "spec.ppp.staticAddresses",
        Rule("staticAddresses must be IPv4 CIDRs"),
        at(ppp, json!({"staticAddresses": ["10.202.0.0/16"]})),
        at(ppp, json!({"staticAddresses": ["10.202.0.1"]})),
    );
    add(
        "spec.ppp.staticAddresses[*]",
        Keyword("maxLength"),
        at(ppp, json!({"staticAddresses": ["100.100.100.0/24"]})),
        at(ppp, json!({"staticAddresses": ["100.100.100.0000/24"]})),
    );
    duration_rows(
        rows,
        "spec.drainTimeout",
        "drainTimeout must be a duration",
        "24h",
        "25h",
    );
    duration_rows(
        rows,
        "spec.autoscaling.scaleDownStabilization",
        "scaleDownStabilization must be a duration",
        "0s",
        "10 minutes",
    );
    duration_rows(
        rows,
        "spec.l2tp.helloInterval",
        "helloInterval must be a duration",
        "1h",
        "61m",
    );
    duration_rows(
        rows,
        "spec.l2tp.ipsec.dpd.delay",
        "dpd.delay must be a duration",
        "10s",
        "2h",
    );
    duration_rows(
        rows,
        "spec.l2tp.ipsec.dpd.timeout",
        "dpd.timeout must be a duration",
        "1h",
        "1h1s",
    );
    duration_rows(
        rows,
        "spec.l2tp.ipsec.ikeLifetime",
        "ikeLifetime must be a duration",
        "1m",
        "59s",
    );
    duration_rows(
        rows,
        "spec.l2tp.ipsec.espLifetime",
        "espLifetime must be a duration",
        "8h",
        "9h",
    );
    duration_rows(
        rows,
        "spec.ppp.keepaliveTimeout",
        "keepaliveTimeout must be a duration",
        "1m30s",
        "-1s",
    );
    secret_ref_rows(
        g,
        rows,
        &[
            "spec.l2tp.tunnelSecretRef.name",
            "spec.l2tp.tunnelSecretRef.key",
            "spec.l2tp.ipsec.preSharedKeySecretRef.name",
            "spec.l2tp.ipsec.preSharedKeySecretRef.key",
            "spec.l2tp.ipsec.certificateSecretRef.name",
            "spec.l2tp.ipsec.clientCaSecretRef.name",
            "spec.l2tp.ipsec.clientCaSecretRef.key",
        ],
    );
}

fn user_rows(rows: &mut Vec<Row>) {
    use What::{Keyword, Rule};
    let u = Kind::User;
    let mut add = |path: &str, what: What, valid: Value, invalid: Value| {
        rows.push(row(u, path, what, valid, invalid))
    };
    add(
        "spec.maxSessions",
        Keyword("minimum"),
        json!({"maxSessions": 0}),
        json!({"maxSessions": -1}),
    );
    add(
        "spec.rateLimit",
        Rule("needs down, up or both"),
        json!({"rateLimit": {"down": null, "up": "1M", "burst": null}}),
        json!({"rateLimit": {"down": null, "up": null}}),
    );
    for (field, ok, bad) in [
        ("down", "1.5G", "10 Mbit/s"),
        ("up", "800k", "1T"),
        ("burst", "64k", "-1"),
    ] {
        let path = &format!("spec.rateLimit.{field}");
        add(
            path,
            Keyword("maxLength"),
            at(path, json!("1".repeat(24))),
            at(path, json!("1".repeat(25))),
        );
        add(
            path,
            Rule("must be a number"),
            at(path, json!(ok)),
            at(path, json!(bad)),
        );
    }
    add(
        "spec.remoteAddress",
        Keyword("maxLength"),
        json!({"remoteAddress": "10.201.100.100"}),
        json!({"remoteAddress": "010.201.100.0100"}),
    );
    add(
        "spec.remoteAddress",
        Rule("remoteAddress must be an IPv4"),
        json!({"remoteAddress": "10.201.0.8"}),
        json!({"remoteAddress": "10.201.0.8/32"}),
    );
    add(
        "spec.routes",
        Keyword("maxItems"),
        json!({"routes": cidrs(64)}),
        json!({"routes": cidrs(65)}),
    );
    add(
        "spec.routes",
        Rule("routes must be IPv4 CIDRs"),
        json!({"routes": ["192.168.0.0/16"]}),
        json!({"routes": ["2001:db8::/32"]}),
    );
    add(
        "spec.routes[*]",
        Keyword("maxLength"),
        json!({"routes": ["192.168.100.0/24"]}),
        json!({"routes": ["192.168.100.0000/24"]}),
    );
    add(
        "spec.services",
        Keyword("maxItems"),
        json!({"services": ["l2tp", "pptp"]}),
        json!({"services": ["l2tp", "pptp", "pptp"]}),
    );
    add(
        "spec.services",
        Rule("must not list a service twice"),
        json!({"services": ["l2tp"]}),
        json!({"services": ["l2tp", "l2tp"]}),
    );
    add(
        "spec.services[*]",
        Keyword("enum"),
        json!({"services": ["pptp"]}),
        json!({"services": ["sstp"]}),
    );
    add(
        "spec.username",
        Keyword("minLength"),
        json!({"username": "a"}),
        json!({"username": ""}),
    );
    add(
        "spec.username",
        Keyword("maxLength"),
        json!({"username": long(255)}),
        json!({"username": long(256)}),
    );
    rows.push(Row {
        update: true,
        ..row(
            u,
            "spec.gatewayRef",
            Rule("gatewayRef is immutable"),
            json!({}),
            json!({"gatewayRef": {"name": "elsewhere"}}),
        )
    });
    secret_ref_rows(
        u,
        rows,
        &[
            "spec.gatewayRef.name",
            "spec.passwordSecretRef.name",
            "spec.passwordSecretRef.key",
        ],
    );
}

/// The field an apiserver message about `path` names: list items as index 0.
fn field_of(path: &str) -> String {
    path.replace("[*]", "[0]")
}

/// Every case, resolved against the generated CRDs (rule messages in full).
pub fn cases() -> Vec<Case> {
    let mut rows = Vec::new();
    gateway_rows(&mut rows);
    user_rows(&mut rows);
    let all = constraints().unwrap_or_default();
    rows.into_iter()
        .map(|r| {
            let (what, expect) = match r.what {
                What::Keyword(k) => (k.to_owned(), field_of(&r.path)),
                What::Rule(piece) => {
                    let message = all
                        .iter()
                        .filter(|(kind, path, _)| kind == r.kind.name() && *path == r.path)
                        .filter_map(|(_, _, w)| w.strip_prefix("rule: "))
                        .find(|m| m.contains(piece))
                        .unwrap_or(piece)
                        .to_owned();
                    (format!("rule: {message}"), message)
                }
            };
            Case {
                kind: r.kind,
                path: r.path,
                what,
                valid: object(r.kind, &r.valid),
                invalid: object(r.kind, &r.invalid),
                update: r.update,
                expect,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_constraint_has_exactly_one_case() {
        let wanted = constraints().unwrap();
        let mut seen = BTreeSet::new();
        for c in cases() {
            let id = (c.kind.name().to_owned(), c.path.clone(), c.what.clone());
            assert!(wanted.contains(&id), "case for no constraint: {id:?}");
            assert!(seen.insert(id.clone()), "two cases for {id:?}");
        }
        let missing: Vec<_> = wanted.difference(&seen).collect();
        assert!(
            missing.is_empty(),
            "constraints without a case (add them to schema_cases.rs): {missing:#?}"
        );
    }

    #[test]
    fn valid_objects_deserialize_and_differ_from_invalid_ones() {
        for c in cases() {
            let ok = match c.kind {
                Kind::Gateway => serde_json::from_value::<crate::VpnGateway>(c.valid.clone())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Kind::User => serde_json::from_value::<crate::VpnUser>(c.valid.clone())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            assert!(ok.is_ok(), "{} {}: {ok:?}", c.path, c.what);
            assert_ne!(c.valid, c.invalid, "{} {}", c.path, c.what);
        }
    }
}
