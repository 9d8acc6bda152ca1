//! The one policy for users that do not compile (`compile_leaving_out_bad_users`): the
//! operator and the standalone data plane both serve the good users and leave out the bad.

use sluice_api::{ObjectKind, ObjectRef, compile_manifests, parse_manifests};

const GOOD: &str = include_str!("fixtures/defaults.yaml");

const BAD_USERS: &str = "
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: {name: erin, namespace: default}
spec: {gatewayRef: {name: office}, passwordSecretRef: {name: erin-missing}}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: {name: zoe}
spec: {gatewayRef: {name: office}, passwordSecretRef: {name: jack-password}, username: jack,
       remoteAddress: 10.9.0.5}
";

fn user(name: &str) -> ObjectRef {
    ObjectRef {
        kind: ObjectKind::VpnUser,
        namespace: "default".into(),
        name: name.into(),
    }
}

#[test]
fn bad_users_are_left_out_with_every_error_and_the_others_served() {
    let m = parse_manifests(&format!("{GOOD}{BAD_USERS}")).unwrap();
    let c = compile_manifests(&m, None).unwrap();
    let served: Vec<&str> = c.config.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(served, ["jack"]);
    assert_eq!(
        c.left_out.keys().cloned().collect::<Vec<_>>(),
        [user("erin"), user("zoe")]
    );
    let zoe: Vec<String> = c.left_out[&user("zoe")]
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        zoe,
        [
            "VpnUser/zoe: spec.username \"jack\" is also used by VpnUser/jack",
            "VpnUser/zoe: spec.remoteAddress 10.9.0.5 is outside pool 10.200.0.0/24 and not \
             listed in spec.ppp.staticAddresses",
        ]
    );
    assert_eq!(user("zoe").key(), "default/zoe");
    // The same config as compiling the good users alone.
    let alone = compile_manifests(&parse_manifests(GOOD).unwrap(), None).unwrap();
    assert_eq!(alone.config, c.config);
    assert!(alone.left_out.is_empty());
}

#[test]
fn a_bad_gateway_still_rejects_everything() {
    let text = format!("{GOOD}{BAD_USERS}").replace("addressPool: 10.200.0.0/24", "addressPool: x");
    let e = compile_manifests(&parse_manifests(&text).unwrap(), None).unwrap_err();
    let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        ["VpnGateway/office: spec.ppp.addressPool \"x\" is not an IPv4 CIDR such as 10.0.0.0/24"]
    );
}
