//! The cases of `VpnUser`.

use serde_json::{Value, json};

use super::{Kind, Row, What, at, long, routes_rows, row, secret_ref_rows};

pub(super) fn rows(rows: &mut Vec<Row>) {
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
    routes_rows(&mut add);
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
