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

mod client;
mod gateway;
mod user;

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

/// Every constraint of the CRDs' `spec` schemas.
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

/// The kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `VpnGateway`.
    Gateway,
    /// `VpnUser`.
    User,
    /// `VpnClient`.
    Client,
}

impl Kind {
    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gateway => "VpnGateway",
            Kind::User => "VpnUser",
            Kind::Client => "VpnClient",
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
            Kind::Client => json!({
                "apiVersion": "sluice.dev/v1alpha1", "kind": "VpnClient",
                "metadata": {"name": "cases"},
                "spec": {
                    "gatewayRef": {"name": "office"},
                    "protocol": "l2tp",
                    "connectTo": "vpn.example.net:1701",
                    "credentialsSecretRef": {"name": "branch", "usernameKey": "username",
                        "passwordKey": "password"},
                    "authentication": ["mschapv2"],
                    "encryption": "deny",
                    "mppe": {"keyLengths": [128], "stateful": "refuse"},
                    "ipsec": {
                        "preSharedKeySecretRef": {"name": "psk", "key": "psk"},
                        "serverCaSecretRef": {"name": "ca", "key": "ca.crt"},
                        "ikeProposals": ["aes256-sha256-modp2048"],
                        "espProposals": ["aes256gcm16"],
                        "ikeLifetime": "8h", "espLifetime": "1h", "aggressiveMode": false,
                        "ikePort": 500, "nattPort": 4500
                    },
                    "tunnelSecretRef": {"name": "tunnel", "key": "secret"},
                    "allowUnencrypted": false,
                    "routes": ["10.20.0.0/16"],
                    "addDefaultRoute": false,
                    "masquerade": true,
                    "mtu": 1400, "mru": 1400,
                    "keepaliveTimeout": "30s",
                    "reconnect": {"initial": "2s", "max": "5m"},
                    "disabled": false
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
fn duration_rows(
    g: Kind,
    rows: &mut Vec<Row>,
    path: &str,
    rule: &'static str,
    ok: &str,
    bad: &str,
) {
    use What::{Keyword, Rule};
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

/// What a row table's `add` takes: field, constraint, valid patch, invalid patch.
type Add<'a> = dyn FnMut(&str, What, Value, Value) + 'a;

/// Rows of a PPP policy under `prefix` (`spec.pptp`, `spec`): authentication methods,
/// the MPPE policy and MPPE settings.
fn ppp_policy_rows(add: &mut Add<'_>, prefix: &str) {
    use What::{Keyword, Rule};
    let auth = &format!("{prefix}.authentication");
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
        &format!("{prefix}.authentication[*]"),
        Keyword("enum"),
        at(auth, json!(["pap"])),
        at(auth, json!(["eap"])),
    );
    let enc = &format!("{prefix}.encryption");
    add(
        enc,
        Keyword("enum"),
        at(enc, json!("require")),
        at(enc, json!("maybe")),
    );
    let keys = &format!("{prefix}.mppe.keyLengths");
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
        &format!("{prefix}.mppe.keyLengths[*]"),
        Keyword("minimum"),
        at(keys, json!([128])),
        at(keys, json!([-1])),
    );
    let stateful = &format!("{prefix}.mppe.stateful");
    add(
        stateful,
        Keyword("enum"),
        at(stateful, json!("prefer")),
        at(stateful, json!("always")),
    );
}

/// Rows of an IPsec section at `ipsec`: distinct ports, the proposal lists, the ports' range.
fn ipsec_rows(add: &mut Add<'_>, ipsec: &str) {
    use What::{Keyword, Rule};
    add(
        ipsec,
        Rule("nattPort must differ"),
        at(ipsec, json!({"ikePort": 500, "nattPort": 4501})),
        at(ipsec, json!({"ikePort": 4500, "nattPort": 4500})),
    );
    for list in ["ikeProposals", "espProposals"] {
        let path = &format!("{ipsec}.{list}");
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
            &format!("{path}[*]"),
            Keyword("maxLength"),
            at(path, json!([long(200)])),
            at(path, json!([long(201)])),
        );
    }
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
}

/// Rows of `spec.routes` (a list of IPv4 CIDRs).
fn routes_rows(add: &mut Add<'_>) {
    use What::{Keyword, Rule};
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
}

/// The field an apiserver message about `path` names: list items as index 0.
fn field_of(path: &str) -> String {
    path.replace("[*]", "[0]")
}

/// Every case, resolved against the generated CRDs (rule messages in full).
pub fn cases() -> Vec<Case> {
    let mut rows = Vec::new();
    gateway::rows(&mut rows);
    user::rows(&mut rows);
    client::rows(&mut rows);
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
                Kind::Client => serde_json::from_value::<crate::VpnClient>(c.valid.clone())
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            };
            assert!(ok.is_ok(), "{} {}: {ok:?}", c.path, c.what);
            assert_ne!(c.valid, c.invalid, "{} {}", c.path, c.what);
        }
    }
}
