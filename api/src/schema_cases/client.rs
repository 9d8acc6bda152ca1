//! The cases of `VpnClient`.

use serde_json::{Value, json};

use super::{Kind, Row, What, at, cidrs, duration_rows, long, proposals, row, secret_ref_rows};

pub(super) fn rows(rows: &mut Vec<Row>) {
    use What::{Keyword, Rule};
    let c = Kind::Client;
    let mut add = |path: &str, what: What, valid: Value, invalid: Value| {
        rows.push(row(c, path, what, valid, invalid))
    };
    add(
        "spec",
        Rule("are for protocol l2tp only"),
        json!({"protocol": "pptp", "ipsec": null, "tunnelSecretRef": null}),
        json!({"protocol": "pptp", "tunnelSecretRef": null}),
    );
    add(
        "spec",
        Rule("is required with protocol l2tp"),
        json!({"ipsec": null, "allowUnencrypted": true}),
        json!({"ipsec": null}),
    );
    add(
        "spec.protocol",
        Keyword("enum"),
        json!({"protocol": "l2tp"}),
        json!({"protocol": "sstp"}),
    );
    let host = long(253);
    add(
        "spec.connectTo",
        Keyword("minLength"),
        json!({"connectTo": "a"}),
        json!({"connectTo": ""}),
    );
    add(
        "spec.connectTo",
        Keyword("maxLength"),
        json!({"connectTo": format!("{host}:65535")}),
        json!({"connectTo": format!("{host}a:65535")}),
    );
    add(
        "spec.connectTo",
        Rule("connectTo must be host or host:port"),
        json!({"connectTo": "192.0.2.1:1723"}),
        json!({"connectTo": "vpn.example.net:65536"}),
    );
    let auth = "spec.authentication";
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
        "spec.authentication[*]",
        Keyword("enum"),
        at(auth, json!(["pap"])),
        at(auth, json!(["eap"])),
    );
    add(
        "spec.encryption",
        Keyword("enum"),
        json!({"encryption": "require"}),
        json!({"encryption": "maybe"}),
    );
    let keys = "spec.mppe.keyLengths";
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
        "spec.mppe.keyLengths[*]",
        Keyword("minimum"),
        at(keys, json!([128])),
        at(keys, json!([-1])),
    );
    add(
        "spec.mppe.stateful",
        Keyword("enum"),
        at("spec.mppe.stateful", json!("prefer")),
        at("spec.mppe.stateful", json!("always")),
    );
    let ipsec = "spec.ipsec";
    add(
        ipsec,
        Rule("exactly one of preSharedKeySecretRef and certificateSecretRef"),
        at(
            ipsec,
            json!({"preSharedKeySecretRef": null, "certificateSecretRef": {"name": "tls"}}),
        ),
        at(ipsec, json!({"certificateSecretRef": {"name": "tls"}})),
    );
    add(
        ipsec,
        Rule("certificateSecretRef needs"),
        at(
            ipsec,
            json!({"preSharedKeySecretRef": null, "certificateSecretRef": {"name": "tls"}}),
        ),
        at(
            ipsec,
            json!({"preSharedKeySecretRef": null, "certificateSecretRef": {"name": "tls"},
                "serverCaSecretRef": null}),
        ),
    );
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
    // The certificate's reference needs the pre-shared key's out of the way.
    let cert = |name: String| {
        at(
            ipsec,
            json!({"preSharedKeySecretRef": null, "certificateSecretRef": {"name": name}}),
        )
    };
    add(
        "spec.ipsec.certificateSecretRef.name",
        Keyword("maxLength"),
        cert(long(253)),
        cert(long(254)),
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
        json!({"routes": ["0.0.0.0/0"]}),
        json!({"routes": ["10.20.0.1"]}),
    );
    add(
        "spec.routes[*]",
        Keyword("maxLength"),
        json!({"routes": ["192.168.100.0/24"]}),
        json!({"routes": ["192.168.100.0000/24"]}),
    );
    for unit in ["mtu", "mru"] {
        add(
            &format!("spec.{unit}"),
            Keyword("minimum"),
            json!({ unit: 576 }),
            json!({ unit: 575 }),
        );
        add(
            &format!("spec.{unit}"),
            Keyword("maximum"),
            json!({ unit: 1436 }),
            json!({ unit: 1437 }),
        );
    }
    add(
        "spec.reconnect",
        Rule("initial must not exceed"),
        json!({"reconnect": {"initial": "1m", "max": "1m"}}),
        json!({"reconnect": {"initial": "2m", "max": "1m"}}),
    );
    for (path, rule, ok, bad) in [
        (
            "spec.keepaliveTimeout",
            "keepaliveTimeout must be a duration",
            "0s",
            "2h",
        ),
        (
            "spec.ipsec.ikeLifetime",
            "ikeLifetime must be a duration",
            "24h",
            "30s",
        ),
        (
            "spec.ipsec.espLifetime",
            "espLifetime must be a duration",
            "1m",
            "8h1s",
        ),
        (
            "spec.reconnect.initial",
            "initial must be a duration",
            "1s",
            "500ms",
        ),
        ("spec.reconnect.max", "max must be a duration", "24h", "25h"),
    ] {
        duration_rows(c, rows, path, rule, ok, bad);
    }
    secret_ref_rows(
        c,
        rows,
        &[
            "spec.gatewayRef.name",
            "spec.credentialsSecretRef.name",
            "spec.credentialsSecretRef.usernameKey",
            "spec.credentialsSecretRef.passwordKey",
            "spec.tunnelSecretRef.name",
            "spec.tunnelSecretRef.key",
            "spec.ipsec.preSharedKeySecretRef.name",
            "spec.ipsec.preSharedKeySecretRef.key",
            "spec.ipsec.serverCaSecretRef.name",
            "spec.ipsec.serverCaSecretRef.key",
        ],
    );
}
