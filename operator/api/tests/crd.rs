//! The generated CRDs carry the names, subresources and columns kubectl users rely on,
//! and their schemas stay structural.

use kube::CustomResourceExt;
use serde_json::Value;
use sluice_api::{VpnGateway, VpnUser};

fn crd_json<T: CustomResourceExt>() -> Value {
    serde_json::to_value(T::crd()).unwrap_or_else(|e| panic!("CRD to JSON: {e}"))
}

/// Structural-schema pitfalls the apiserver rejects: nodes without a single
/// `type`, `anyOf`/`oneOf`/`allOf`/`$ref`, `nullable` enums.
fn assert_structural(schema: &Value, path: &str) {
    let map = schema
        .as_object()
        .unwrap_or_else(|| panic!("{path}: not an object"));
    let ok_untyped = map.contains_key("x-kubernetes-int-or-string")
        || map.contains_key("x-kubernetes-preserve-unknown-fields");
    assert!(
        map.get("type").is_some_and(Value::is_string) || ok_untyped,
        "{path}: needs a single type: {schema}"
    );
    for bad in ["anyOf", "oneOf", "allOf", "$ref"] {
        assert!(!map.contains_key(bad), "{path}: has {bad}");
    }
    if map.contains_key("enum") {
        assert!(!map.contains_key("nullable"), "{path}: nullable enum");
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (k, p) in props {
            assert_structural(p, &format!("{path}.{k}"));
        }
    }
    if let Some(items) = map.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
    if let Some(add @ Value::Object(_)) = map.get("additionalProperties") {
        assert_structural(add, &format!("{path}{{}}"));
    }
}

#[test]
fn gateway_crd() {
    let crd = crd_json::<VpnGateway>();
    assert_eq!(crd["metadata"]["name"], "vpngateways.sluice.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "vgw");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    let scale = &version["subresources"]["scale"];
    assert_eq!(scale["specReplicasPath"], ".spec.replicas");
    assert_eq!(scale["statusReplicasPath"], ".status.replicas");
    assert_eq!(scale["labelSelectorPath"], ".status.selector");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Ready", "Replicas", "Sessions", "Age"]);
    let schema = &version["schema"]["openAPIV3Schema"];
    assert_structural(schema, "");
    let spec = &schema["properties"]["spec"];
    assert_eq!(
        spec["properties"]["pptp"]["properties"]["encryption"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(spec["required"], serde_json::json!(["ppp"]));
}

#[test]
fn user_crd() {
    let crd = crd_json::<VpnUser>();
    assert_eq!(crd["metadata"]["name"], "vpnusers.sluice.dev");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "vuser");
    let version = &crd["spec"]["versions"][0];
    assert!(version["subresources"]["status"].is_object());
    assert!(version["subresources"].get("scale").is_none());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Gateway", "Connected", "Address", "Age"]);
    assert_structural(&version["schema"]["openAPIV3Schema"], "");
}

#[test]
#[ignore = "prints the CRDs"]
fn print_crds() {
    println!(
        "{}",
        serde_json::to_string_pretty(&crd_json::<VpnGateway>()).unwrap()
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&crd_json::<VpnUser>()).unwrap()
    );
}
