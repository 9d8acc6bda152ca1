//! parse_manifests(): strict loading, error messages, limits, robustness.

use sluice_api::{MAX_DOCUMENTS, MAX_INPUT_BYTES, compile_from_manifests, parse_manifests};

fn errors(yaml: &str) -> Vec<String> {
    match parse_manifests(yaml) {
        Ok(m) => panic!("expected an error, got {m:?}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

#[test]
fn namespaces_default_and_lists_expand() {
    let m = parse_manifests(include_str!("fixtures/errors_users.yaml")).unwrap();
    assert_eq!(m.gateways.len(), 1);
    assert_eq!(m.secrets.len(), 4);
    assert_eq!(m.users.len(), 13);
    assert_eq!(m.gateways[0].metadata.namespace.as_deref(), Some("default"));
    assert!(
        m.secrets
            .iter()
            .all(|s| s.metadata.namespace.as_deref() == Some("default"))
    );
    let peggy = m
        .users
        .iter()
        .find(|u| u.metadata.name.as_deref() == Some("peggy"))
        .unwrap();
    assert_eq!(peggy.metadata.namespace.as_deref(), Some("other"));
}

#[test]
fn string_data_is_merged_over_data() {
    let m = parse_manifests(include_str!("fixtures/secrets.yaml")).unwrap();
    let both = &m.secrets[1];
    assert!(both.string_data.is_none());
    let data = both.data.as_ref().unwrap();
    assert_eq!(data["password"].0, b"new");
    assert_eq!(data["other"].0, b"x");
    assert_eq!(
        m.secrets[0].data.as_ref().unwrap()["password"].0,
        "pässwört".as_bytes()
    );
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    assert_eq!(
        errors(include_str!("fixtures/unknown_field.yaml")),
        [
            "VpnGateway/office: metadata.lables is not a known field",
            "VpnGateway/office: spec.ppp.keepAliveTimeout is not a known field",
            "VpnUser/team/jack: spec.gatewayRef.namespace is not a known field",
            "VpnUser/team/jack: spec.route is not a known field",
            "Secret/team/jack-password: strinData is not a known field",
        ]
    );
}

#[test]
fn unknown_kinds_name_the_document() {
    assert_eq!(
        errors(include_str!("fixtures/unknown_kind.yaml")),
        [
            "document 2 (line 9): has unsupported kind \"Deployment\" (apiVersion \"apps/v1\"); expected VpnGateway, VpnUser or VpnClient (sluice.dev/v1alpha1), Secret or List (v1)",
            "document 3 (line 13): has unsupported kind \"VpnUser\" (apiVersion \"sluice.dev/v1beta1\"); expected VpnGateway, VpnUser or VpnClient (sluice.dev/v1alpha1), Secret or List (v1)",
        ]
    );
    assert_eq!(
        errors("- a\n- b\n---\nfoo: bar\n"),
        [
            "document 1 (line 1): is not a mapping (a Kubernetes object)",
            "document 2 (line 4): has no apiVersion and kind",
        ]
    );
    // Lists do not nest.
    assert_eq!(
        errors("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n"),
        [
            "document 1 (line 1) item 0: has unsupported kind \"List\" (apiVersion \"v1\"); expected VpnGateway, VpnUser or VpnClient (sluice.dev/v1alpha1), Secret or List (v1)"
        ]
    );
}

#[test]
fn yaml_syntax_errors_have_line_and_column() {
    let e = errors(include_str!("fixtures/syntax.yaml"));
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("input: YAML error: "), "{e:?}");
    assert!(e[0].contains("line 7"), "{e:?}");
    assert!(e[0].contains("column"), "{e:?}");
    let e = errors("a: b\n  c: d: e\n");
    assert!(e[0].contains("line 2, column 4"), "{e:?}");
}

#[test]
fn type_errors_name_the_field() {
    let yaml = "apiVersion: sluice.dev/v1alpha1\nkind: VpnGateway\nmetadata: {name: gw}\n\
                spec:\n  pptp: {authentication: [mschapv2, ntlm]}\n  ppp: {localAddress: a, addressPool: b}\n";
    assert_eq!(
        errors(yaml),
        [
            "VpnGateway/gw: spec.pptp.authentication[1] is invalid: unknown variant `ntlm`, expected one of `pap`, `chap`, `mschapv1`, `mschapv2`"
        ]
    );
    let yaml =
        "apiVersion: sluice.dev/v1alpha1\nkind: VpnGateway\nmetadata: {name: gw}\nspec: {}\n";
    assert_eq!(
        errors(yaml),
        ["VpnGateway/gw: spec is invalid: missing field `ppp`"]
    );
    let yaml =
        "apiVersion: sluice.dev/v1alpha1\nkind: VpnUser\nmetadata: {namespace: x}\nspec: {}\n";
    assert_eq!(
        errors(yaml),
        ["document 1 (line 1): VpnUser: metadata.name is required"]
    );
}

#[test]
fn duplicate_objects_are_refused() {
    let doc = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n";
    let yaml = format!(
        "{doc}---\n{doc}---\n{}",
        doc.replace("{name: s}", "{name: s, namespace: other}")
    );
    assert_eq!(
        errors(&yaml),
        ["Secret/s: is defined more than once (document 2 (line 5))"]
    );
}

#[test]
fn empty_input_is_empty() {
    for text in ["", "---\n", "# nothing\n---\n---\n", "~\n"] {
        let m = parse_manifests(text).unwrap();
        assert!(m.gateways.is_empty() && m.users.is_empty() && m.secrets.is_empty());
    }
}

#[test]
fn limits() {
    let big = format!("# {}\n", "x".repeat(MAX_INPUT_BYTES));
    assert_eq!(
        errors(&big),
        [format!(
            "input: is {} bytes, more than the limit of {MAX_INPUT_BYTES} bytes",
            big.len()
        )]
    );
    let doc = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n---\n";
    let many = doc.repeat(MAX_DOCUMENTS + 1);
    assert!(many.len() < MAX_INPUT_BYTES);
    let e = errors(&many);
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("input: YAML error"), "{e:?}");
    // A List can't smuggle in more objects than documents allowed.
    let mut list = String::from("apiVersion: v1\nkind: List\nitems:\n");
    for i in 0..=MAX_DOCUMENTS {
        list.push_str(&format!(
            "- {{apiVersion: v1, kind: Secret, metadata: {{name: s{i}}}}}\n"
        ));
    }
    assert_eq!(
        errors(&list),
        [format!("input: has more than {MAX_DOCUMENTS} objects")]
    );
    // Alias expansion ("billion laughs") is bounded.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let p = if i == 0 {
            "a".to_string()
        } else {
            format!("a{}", i - 1)
        };
        bomb.push_str(&format!(
            "a{i}: &a{i} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        ));
    }
    assert!(parse_manifests(&bomb).is_err());
}

/// Deterministic xorshift mutations of real manifests: never a panic.
#[test]
fn mutated_inputs_never_panic() {
    let seeds = [
        include_str!("../../../examples/standalone.yaml"),
        include_str!("fixtures/errors_users.yaml"),
        include_str!("fixtures/errors_gateway.yaml"),
        include_str!("fixtures/secrets.yaml"),
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b" \n:-{}[],'\"&*!|>#%@`0123456789abcdefxyz./\t\\";
    for i in 0..3000 {
        let seed = seeds[i % seeds.len()].as_bytes();
        let mut bytes = seed.to_vec();
        for _ in 0..(1 + next() % 8) {
            let pos = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 => bytes[pos] = alphabet[(next() as usize) % alphabet.len()],
                1 => bytes.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                2 => {
                    bytes.remove(pos);
                }
                _ => {
                    let len = ((next() as usize) % 64).min(bytes.len() - pos);
                    let chunk = bytes[pos..pos + len].to_vec();
                    let at = (next() as usize) % bytes.len();
                    bytes.splice(at..at, chunk);
                }
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(m) = parse_manifests(&text) {
            let _ = compile_from_manifests(&m, None);
        }
    }
}

#[test]
fn ipsec_fields_are_strict_too() {
    let gw = |ipsec: &str| {
        format!(
            "apiVersion: sluice.dev/v1alpha1\nkind: VpnGateway\nmetadata: {{name: gw}}\n\
             spec:\n  l2tp: {{enabled: true, ipsec: {ipsec}}}\n  \
             ppp: {{localAddress: 10.200.0.1, addressPool: 10.200.0.0/24}}\n"
        )
    };
    assert_eq!(
        errors(&gw("{ikeProposal: [aes128-sha1-modp2048]}")),
        ["VpnGateway/gw: spec.l2tp.ipsec.ikeProposal is not a known field"]
    );
    assert_eq!(
        errors(&gw("{dpd: {interval: 30s}}")),
        ["VpnGateway/gw: spec.l2tp.ipsec.dpd.interval is not a known field"]
    );
    assert_eq!(
        errors(&gw("{natDetection: force}")),
        [
            "VpnGateway/gw: spec.l2tp.ipsec.natDetection is invalid: unknown variant `force`, expected one of `honest`, `parrot`, `forceEncapsulation`"
        ]
    );
    assert_eq!(
        errors(&gw("{ikePort: 70000}")),
        [
            "VpnGateway/gw: spec.l2tp.ipsec.ikePort is invalid: invalid value: integer `70000`, expected u16"
        ]
    );
    let m = parse_manifests(&gw(
        "{natDetection: parrot, preSharedKeySecretRef: {name: k}}",
    ))
    .unwrap();
    let ipsec = &m.gateways[0].spec.l2tp.ipsec;
    assert_eq!(ipsec.nat_detection, sluice_api::NatDetection::Parrot);
    assert_eq!(ipsec.pre_shared_key_secret_ref.as_ref().unwrap().key, "psk");
}
