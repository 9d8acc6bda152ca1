//! The cases of `VpnClient`.

use serde_json::{Value, json};

use super::{
    Kind, Row, What, at, duration_rows, ipsec_rows, long, ppp_policy_rows, routes_rows, row,
    secret_ref_rows,
};

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
    ppp_policy_rows(&mut add, "spec");
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
    ipsec_rows(&mut add, ipsec);
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
    routes_rows(&mut add);
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
