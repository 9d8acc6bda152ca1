//! The cases of `VpnGateway`.

use serde_json::{Value, json};

use super::{
    Kind, Row, What, at, cidrs, duration_rows, ipsec_rows, many, ppp_policy_rows, row,
    secret_ref_rows,
};

pub(super) fn rows(rows: &mut Vec<Row>) {
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
        ppp_policy_rows(&mut add, &format!("spec.{proto}"));
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
    add(
        "spec.l2tp.ipsec.natDetection",
        Keyword("enum"),
        at(ipsec, json!({"natDetection": "parrot"})),
        at(ipsec, json!({"natDetection": "lie"})),
    );
    ipsec_rows(&mut add, ipsec);
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
        g,
        rows,
        "spec.drainTimeout",
        "drainTimeout must be a duration",
        "24h",
        "25h",
    );
    duration_rows(
        g,
        rows,
        "spec.autoscaling.scaleDownStabilization",
        "scaleDownStabilization must be a duration",
        "0s",
        "10 minutes",
    );
    duration_rows(
        g,
        rows,
        "spec.l2tp.helloInterval",
        "helloInterval must be a duration",
        "1h",
        "61m",
    );
    duration_rows(
        g,
        rows,
        "spec.l2tp.ipsec.dpd.delay",
        "dpd.delay must be a duration",
        "10s",
        "2h",
    );
    duration_rows(
        g,
        rows,
        "spec.l2tp.ipsec.dpd.timeout",
        "dpd.timeout must be a duration",
        "1h",
        "1h1s",
    );
    duration_rows(
        g,
        rows,
        "spec.l2tp.ipsec.ikeLifetime",
        "ikeLifetime must be a duration",
        "1m",
        "59s",
    );
    duration_rows(
        g,
        rows,
        "spec.l2tp.ipsec.espLifetime",
        "espLifetime must be a duration",
        "8h",
        "9h",
    );
    duration_rows(
        g,
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
