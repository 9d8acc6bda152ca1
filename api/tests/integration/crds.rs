//! The committed CRDs are what the types generate, and every schema is one a real apiserver
//! (1.30+) accepts: structural, no unsupported constructs, and the subresources and columns
//! `kubectl` users rely on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use serde_json::Value;
use sluice_api::crdgen;

#[test]
fn committed_crds_match_the_types() {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in crdgen::CRD_DIRS {
        for (name, yaml) in crdgen::crd_files().unwrap() {
            let committed = std::fs::read_to_string(top.join(dir).join(name)).unwrap_or_default();
            assert!(
                committed == yaml,
                "{dir}/{name} is stale: run `cargo run -p sluice-api --bin crdgen` and commit the result"
            );
        }
    }
    let chart = std::fs::read_to_string(top.join(crdgen::CHART_TEMPLATE)).unwrap_or_default();
    assert!(
        chart == crdgen::chart_template().unwrap(),
        "{} is stale: run `cargo run -p sluice-api --bin crdgen` and commit the result",
        crdgen::CHART_TEMPLATE
    );
}

#[test]
fn kubectl_explain_gets_unwrapped_descriptions_and_known_formats() {
    for crd in crdgen::crds().unwrap() {
        let text = crd.to_string();
        for unknown in ["uint8", "uint16", "uint32", "uint64"] {
            assert!(
                !text.contains(&format!("\"format\":\"{unknown}\"")),
                "{unknown}"
            );
        }
        assert!(!text.contains("Auto-generated derived type"));
    }
    let gw = &crdgen::crds().unwrap()[0];
    let d =
        gw["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["drainTimeout"]["description"]
            .as_str()
            .unwrap();
    assert!(!d.contains('\n'), "{d}");
}

/// Collects every violation of the apiserver's structural-schema rules under `s`.
fn walk(s: &Value, path: &str, in_junctor: bool, errors: &mut Vec<String>) {
    let Some(obj) = s.as_object() else {
        errors.push(format!("{path}: schema is not an object"));
        return;
    };
    let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    let int_or_string = flag("x-kubernetes-int-or-string");
    for forbidden in [
        "$ref",
        "definitions",
        "$defs",
        "uniqueItems",
        "patternProperties",
    ] {
        if obj.contains_key(forbidden) {
            errors.push(format!(
                "{path}: `{forbidden}` is not allowed in a CRD schema"
            ));
        }
    }
    if obj.get("additionalProperties") == Some(&Value::Bool(false)) {
        errors.push(format!(
            "{path}: additionalProperties: false is not allowed"
        ));
    }
    if obj.contains_key("additionalProperties") && obj.contains_key("properties") {
        errors.push(format!(
            "{path}: additionalProperties and properties are exclusive"
        ));
    }
    if in_junctor {
        for k in [
            "type",
            "description",
            "default",
            "nullable",
            "additionalProperties",
            "title",
        ] {
            if obj.contains_key(k) {
                errors.push(format!("{path}: `{k}` inside allOf/anyOf/oneOf/not"));
            }
        }
    } else {
        let typ = obj.get("type").and_then(Value::as_str).unwrap_or("");
        if typ.is_empty() && !preserve && !int_or_string {
            errors.push(format!("{path}: no type"));
        }
        if let Some(d) = obj.get("default") {
            let ok = match typ {
                "integer" => d.is_i64() || d.is_u64(),
                "number" => d.is_number(),
                "string" => d.is_string(),
                "boolean" => d.is_boolean(),
                "array" => d.is_array(),
                "object" => d.is_object(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{path}: default {d} does not match type {typ}"));
            }
        }
        if typ == "array" && !obj.contains_key("items") {
            errors.push(format!("{path}: array without items"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk(v, &format!("{path}.{k}"), in_junctor, errors);
        }
    }
    if let Some(items) = obj.get("items") {
        walk(items, &format!("{path}[]"), in_junctor, errors);
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        walk(ap, &format!("{path}{{*}}"), in_junctor, errors);
    }
    for j in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = obj.get(j).and_then(Value::as_array) {
            for (i, v) in list.iter().enumerate() {
                walk(v, &format!("{path}/{j}[{i}]"), true, errors);
            }
        }
    }
    if let Some(not) = obj.get("not") {
        walk(not, &format!("{path}/not"), true, errors);
    }
}

fn crds() -> Vec<Value> {
    crdgen::crds().unwrap()
}

#[test]
fn schemas_are_structural() {
    for crd in crds() {
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        for v in crd["spec"]["versions"].as_array().unwrap() {
            let mut errors = Vec::new();
            walk(&v["schema"]["openAPIV3Schema"], &name, false, &mut errors);
            assert!(
                errors.is_empty(),
                "{name}: non-structural schema:\n{}",
                errors.join("\n")
            );
        }
    }
}

#[test]
fn walker_catches_non_structural_constructs() {
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "untyped": {"description": "x"},
            "untagged": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "ref": {"$ref": "#/definitions/X"},
        }
    });
    let mut errors = Vec::new();
    walk(&bad, "bad", false, &mut errors);
    for expected in [
        "bad.untyped: no type",
        "bad.untagged: no type",
        "bad.untagged/anyOf[0]: `type` inside allOf/anyOf/oneOf/not",
        "bad.ref: `$ref` is not allowed in a CRD schema",
    ] {
        assert!(
            errors.iter().any(|e| e == expected),
            "{expected}: {errors:#?}"
        );
    }
}

#[test]
fn subresources_names_and_columns() {
    let [gw, user, client] = <[Value; 3]>::try_from(crds()).unwrap();
    let gv = &gw["spec"]["versions"][0];
    assert_eq!(gv["subresources"]["status"], serde_json::json!({}));
    assert_eq!(
        gv["subresources"]["scale"],
        serde_json::json!({
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector"
        })
    );
    assert_eq!(
        gw["spec"]["names"]["shortNames"],
        serde_json::json!(["vgw"])
    );
    let cols = |v: &Value| -> Vec<String> {
        v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_uppercase())
            .collect()
    };
    assert_eq!(
        cols(gv),
        [
            "READY",
            "REPLICAS",
            "DRAINING",
            "SESSIONS",
            "ENDPOINTS",
            "AGE"
        ]
    );
    // `kubectl get -o wide` only.
    assert_eq!(gv["additionalPrinterColumns"][2]["priority"], 1);
    let spec = &gv["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["ppp"]));
    assert_eq!(
        spec["properties"]["pptp"]["properties"]["encryption"]["enum"],
        serde_json::json!(["deny", "allow", "prefer", "require"])
    );
    let ipsec = &spec["properties"]["l2tp"]["properties"]["ipsec"];
    assert_eq!(
        ipsec["properties"]["natDetection"]["enum"],
        serde_json::json!(["honest", "parrot", "forceEncapsulation"])
    );
    assert_eq!(ipsec["properties"]["natDetection"]["type"], "string");
    assert_eq!(
        ipsec["properties"]["preSharedKeySecretRef"]["properties"]["key"]["default"],
        "psk"
    );
    for (field, default) in [
        ("ikeLifetime", serde_json::json!("8h")),
        ("espLifetime", serde_json::json!("1h")),
        ("ikePort", serde_json::json!(500)),
        ("nattPort", serde_json::json!(4500)),
        ("natDetection", serde_json::json!("honest")),
        ("allowMd5", serde_json::json!(false)),
    ] {
        assert_eq!(ipsec["properties"][field]["default"], default, "{field}");
    }
    assert_eq!(
        ipsec["properties"]["dpd"]["default"],
        serde_json::json!({"delay": "30s", "timeout": "150s"})
    );
    for list in ["ikeProposals", "espProposals"] {
        assert_eq!(ipsec["properties"][list]["maxItems"], 16, "{list}");
    }
    let uv = &user["spec"]["versions"][0];
    assert_eq!(uv["subresources"]["status"], serde_json::json!({}));
    assert!(uv["subresources"].get("scale").is_none());
    assert_eq!(
        user["spec"]["names"]["shortNames"],
        serde_json::json!(["vuser"])
    );
    assert_eq!(
        cols(uv),
        ["GATEWAY", "CONNECTED", "ADDRESS", "PROTOCOL", "AGE"]
    );
    let cv = &client["spec"]["versions"][0];
    assert_eq!(cv["subresources"]["status"], serde_json::json!({}));
    assert!(cv["subresources"].get("scale").is_none());
    assert_eq!(
        client["spec"]["names"]["shortNames"],
        serde_json::json!(["vcl"])
    );
    assert_eq!(
        cols(cv),
        [
            "PHASE", "SERVER", "ADDRESS", "ENCODING", "NODE", "ERROR", "AGE"
        ]
    );
    let spec = &cv["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["required"],
        serde_json::json!([
            "connectTo",
            "credentialsSecretRef",
            "gatewayRef",
            "protocol"
        ])
    );
    // An optional enum's `null` is the schema's `nullable`, not an enum value.
    let phase = &cv["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["phase"];
    assert_eq!(
        phase["enum"],
        serde_json::json!([
            "Connecting",
            "Connected",
            "BackingOff",
            "Failed",
            "Disabled"
        ])
    );
    assert_eq!(phase["nullable"], true);
}
