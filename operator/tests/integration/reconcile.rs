//! Reconcile tests against a mocked apiserver (kube-rs `tower-test` pattern): what is applied
//! for a gateway, status patches, finalizer, error paths, and the user status writers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_api::VpnGateway;
use sluice_operator::context::Error;
use sluice_operator::{gateway, user};
use sluice_proto::v1 as pb;

async fn run_gateway(
    h: Harness,
    gw: VpnGateway,
) -> (
    Result<kube::runtime::controller::Action, Error>,
    Vec<Call>,
    Harness2,
) {
    let Harness {
        ctx,
        hub,
        writers,
        server,
    } = h;
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        gateway::reconcile(Arc::new(gw), ctx.clone()),
    )
    .await
    .expect("reconcile hung");
    let compile_errors = ctx.hub.states.compile_errors();
    drop(ctx);
    drop(writers);
    let calls = server.await.unwrap();
    (
        r,
        calls,
        Harness2 {
            hub,
            compile_errors,
        },
    )
}

struct Harness2 {
    hub: Arc<sluice_operator::hub::Hub>,
    compile_errors: std::collections::HashMap<String, String>,
}

fn find<'a>(calls: &'a [Call], path_end: &str) -> &'a Call {
    calls
        .iter()
        .find(|c| c.path().ends_with(path_end))
        .unwrap_or_else(|| {
            panic!(
                "no request to …{path_end}; got {:#?}",
                calls
                    .iter()
                    .map(|c| (&c.method, &c.uri))
                    .collect::<Vec<_>>()
            )
        })
}

#[tokio::test]
async fn the_finalizer_of_earlier_versions_is_removed_first() {
    let gw = gateway(true);
    let base = to_value(&gw);
    // The apiserver answers a merge patch with the whole object.
    let whole: Override =
        Box::new(move |c| (c.method == Method::PATCH).then(|| (StatusCode::OK, base.clone())));
    let h = harness(vec![to_value(&gw)], Some(whole));
    let (r, calls, _) = run_gateway(h, gw).await;
    r.unwrap();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    let c = &calls[0];
    assert_eq!(c.method, Method::PATCH);
    assert_eq!(
        c.path(),
        "/apis/sluice.dev/v1alpha1/namespaces/vpn/vpngateways/office"
    );
    // Other finalizers stay; the resourceVersion makes a concurrent change conflict.
    assert_eq!(
        c.body,
        json!({"metadata": {"finalizers": ["example.com/other"], "resourceVersion": "41"}})
    );
}

#[tokio::test]
async fn a_gateway_is_compiled_published_applied_and_reported() {
    let gw = gateway(false);
    let mut h = harness(vec![to_value(&gw)], None);
    apply(&mut h.writers.users, user("alice", "alice-pw"));
    apply(&mut h.writers.users, user("bob", "no-such-secret"));
    put_secret(&mut h.writers, &h.ctx, secret("alice-pw", "alice-password"));
    let rx = h.hub.subscribe("vpn/office");
    let (r, calls, h2) = run_gateway(h, gw).await;
    r.unwrap();

    // Server-side apply of every owned object, with the operator's field manager.
    let order: Vec<&str> = calls.iter().map(|c| c.path()).collect();
    assert_eq!(
        order,
        [
            "/api/v1/namespaces/vpn/secrets/office-sluice-agent-tls",
            "/api/v1/namespaces/vpn/serviceaccounts/office-sluice-dataplane",
            "/api/v1/namespaces/vpn/services/office-sluice-metrics",
            "/apis/policy/v1/namespaces/vpn/poddisruptionbudgets/office-sluice",
            "/apis/apps/v1/namespaces/vpn/deployments/office-sluice",
            "/apis/sluice.dev/v1alpha1/namespaces/vpn/vpngateways/office/status",
        ]
    );
    for c in &calls {
        assert_eq!(c.method, Method::PATCH);
        assert!(
            c.manager() == "sluice-operator" && c.uri.contains("force=true"),
            "{}",
            c.uri
        );
        assert!(
            c.body["apiVersion"].is_string(),
            "SSA bodies carry apiVersion: {}",
            c.uri
        );
    }
    for c in &calls[..5] {
        let owner = &c.body["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "VpnGateway");
        assert_eq!(owner["controller"], true);
    }

    // The agent TLS Secret.
    let tls = &find(&calls, "/secrets/office-sluice-agent-tls").body;
    assert_eq!(tls["type"], "kubernetes.io/tls");
    for k in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(tls["data"][k].is_string(), "{k}");
    }

    // The Deployment: hostNetwork, one per node, least privilege, readiness = config applied.
    let d = &find(&calls, "/deployments/office-sluice").body;
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["serviceAccountName"], "office-sluice-dataplane");
    assert_eq!(pod["nodeSelector"], json!({"sluice.dev/edge": "true"}));
    let term =
        &pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        term["labelSelector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "sluice-dataplane"})
    );
    assert_eq!(
        term["namespaceSelector"],
        json!({}),
        "across all gateways and namespaces"
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW"])
    );
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["securityContext"]["privileged"], false);
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--gateway=vpn/office"), "{args:?}");
    assert!(
        args.contains(&"--operator=https://sluice-grpc.sluice-system.svc:50051"),
        "{args:?}"
    );
    assert!(pod["volumes"].to_string().contains("/dev/net/tun"));

    // The configuration: alice only (bob's Secret is missing), NT hash instead of the password.
    let config = rx.borrow().clone().expect("a configuration was published");
    assert_eq!(config.users.len(), 1);
    let alice = &config.users[0];
    assert_eq!(alice.username, "alice");
    assert!(
        alice.password.is_empty(),
        "no cleartext password on the wire"
    );
    assert_eq!(
        alice.nt_hash,
        sluice_ppp::mschap::nt_password_hash(b"alice-password")
    );
    let view = h2.hub.user_view("vpn/office", "vpn/bob");
    let why = view.rejected.expect("bob is reported");
    assert!(
        why.contains("VpnUser/vpn/bob") && why.contains("no-such-secret"),
        "{why}"
    );
    assert!(h2.compile_errors.is_empty());

    // Status.
    let st = &find(&calls, "/vpngateways/office/status").body["status"];
    assert_eq!(
        st["selector"],
        "app.kubernetes.io/name=sluice-dataplane,sluice.dev/gateway=office"
    );
    assert_eq!(st["observedGeneration"], 3);
    assert_eq!(st["configVersion"].as_str(), Some(config.version.as_str()));
    assert_eq!(
        st["firewall"][0],
        json!({"protocol": "tcp", "port": 1723, "purpose": "PPTP control connection"})
    );
    assert_eq!(st["firewall"][1]["protocol"], "gre");
    let cond = |t: &str| {
        st["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond("Ready")["status"], "False");
    assert_eq!(cond("Ready")["reason"], "ReplicasNotReady");
    assert_eq!(cond("Degraded")["status"], "False");
    assert!(
        !calls
            .iter()
            .any(|c| c.body.to_string().contains("alice-password")),
        "no secret in any request but the TLS one"
    );
}

#[tokio::test]
async fn a_rejected_gateway_keeps_the_previous_config_and_shows_degraded() {
    let good = gateway(false);
    let mut h = harness(vec![to_value(&good)], None);
    apply(&mut h.writers.users, user("alice", "alice-pw"));
    put_secret(&mut h.writers, &h.ctx, secret("alice-pw", "alice-password"));
    let hub = h.hub.clone();
    let rx = hub.subscribe("vpn/office");
    let (r, _, _) = run_gateway(h, good.clone()).await;
    r.unwrap();
    let v1 = rx.borrow().clone().unwrap().version.clone();

    // Same hub (the operator keeps running), a spec the schema would let through but compile rejects.
    let mut bad = good.clone();
    bad.spec.pptp.encryption = sluice_api::Encryption::Require;
    bad.spec.pptp.authentication = vec![sluice_api::AuthenticationMethod::Pap];
    let h = harness_with_hub(vec![to_value(&bad)], hub.clone());
    let (r, calls, h2) = run_gateway(h, bad).await;
    r.unwrap();
    assert_eq!(
        rx.borrow().clone().unwrap().version,
        v1,
        "agents keep the previous configuration"
    );
    let ev = calls
        .iter()
        .find(|c| c.path().ends_with("/events"))
        .expect("an Event");
    assert_eq!(ev.body["reason"], "ConfigRejected");
    assert_eq!(ev.body["type"], "Warning");
    assert!(
        ev.body["note"]
            .as_str()
            .unwrap()
            .contains("spec.pptp.encryption")
    );
    let st = &find(&calls, "/vpngateways/office/status").body["status"];
    let degraded = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "ConfigRejected");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("VpnGateway/vpn/office: spec.pptp.encryption")
    );
    assert!(h2.compile_errors.contains_key("vpn/office"));
}

fn harness_with_hub(base: Vec<Value>, hub: Arc<sluice_operator::hub::Hub>) -> Harness {
    let mut h = harness(base, None);
    let ctx = Arc::get_mut(&mut h.ctx).unwrap();
    ctx.hub = hub.clone();
    h.hub = hub;
    h
}

#[tokio::test]
async fn apiserver_errors_fail_the_reconcile_before_status() {
    for code in [500u16, 409] {
        let gw = gateway(false);
        let h = harness(
            vec![to_value(&gw)],
            Some(Box::new(move |c: &Call| {
                c.path().contains("/deployments/").then(|| {
                    (
                        StatusCode::from_u16(code).unwrap(),
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": "injected", "reason": "InternalError", "code": code}),
                    )
                })
            })),
        );
        let (r, calls, _) = run_gateway(h, gw.clone()).await;
        match r {
            Err(Error::Kube(kube::Error::Api(e))) => assert_eq!(e.code, code),
            other => panic!("expected an API error, got {other:?}"),
        }
        assert!(
            !calls.iter().any(|c| c.path().ends_with("/status")),
            "no status write after a failed apply"
        );
        let h = harness(vec![], None);
        let action = gateway::error_policy(Arc::new(gw), &Error::Missing("x"), h.ctx.clone());
        assert_eq!(
            action,
            kube::runtime::controller::Action::requeue(Duration::from_secs(5))
        );
    }
}

#[tokio::test]
async fn a_deleted_gateway_is_left_alone_and_forgotten_from_the_watch() {
    let mut gw = gateway(false);
    gw.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ));
    let h = harness(vec![to_value(&gw)], None);
    h.hub.publish(
        "vpn/office",
        pb::GatewayConfig {
            version: "v1".into(),
            ..Default::default()
        },
        Default::default(),
        Default::default(),
    );
    let mut rx = h.hub.subscribe("vpn/office");
    gateway::forget(&h.ctx, "vpn/office");
    let (r, calls, h2) = run_gateway(h, gw).await;
    r.unwrap();
    assert!(
        calls.is_empty(),
        "no write for a gateway being deleted: {calls:#?}"
    );
    assert!(h2.hub.gateways().is_empty());
    assert!(
        rx.changed().await.is_err(),
        "agent streams of a deleted gateway end"
    );
}

async fn run_user(
    h: Harness,
    u: sluice_api::VpnUser,
) -> (Result<kube::runtime::controller::Action, Error>, Vec<Call>) {
    let Harness {
        ctx,
        writers,
        server,
        ..
    } = h;
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        user::reconcile(Arc::new(u), ctx.clone()),
    )
    .await
    .expect("reconcile hung");
    drop(ctx);
    drop(writers);
    (r, server.await.unwrap())
}

#[tokio::test]
async fn a_user_without_its_secret_says_so() {
    let u = user("bob", "no-such-secret");
    let mut h = harness(vec![to_value(&u)], None);
    apply(&mut h.writers.gateways, serving_gateway());
    let (r, calls) = run_user(h, u).await;
    r.unwrap();
    let c = find(&calls, "/vpnusers/bob/status");
    assert_eq!(c.manager(), "sluice-operator");
    let conds = c.body["status"]["conditions"].as_array().unwrap();
    let get = |t: &str| conds.iter().find(|c| c["type"] == t).unwrap();
    assert_eq!(get("SecretMissing")["status"], "True");
    assert!(
        get("SecretMissing")["message"]
            .as_str()
            .unwrap()
            .contains("vpn/no-such-secret (spec.passwordSecretRef.name)")
    );
    assert_eq!(get("Ready")["status"], "False");
    assert!(
        c.body["status"].get("connected").is_none(),
        "session fields belong to the other field manager"
    );
}

#[tokio::test]
async fn a_user_without_a_gateway_says_so() {
    let u = user("carol", "carol-pw");
    let mut h = harness(vec![to_value(&u)], None);
    put_secret(&mut h.writers, &h.ctx, secret("carol-pw", "x"));
    let (r, calls) = run_user(h, u).await;
    r.unwrap();
    let conds = find(&calls, "/vpnusers/carol/status").body["status"]["conditions"].clone();
    assert_eq!(conds[0]["type"], "Ready");
    assert_eq!(conds[0]["reason"], "GatewayNotFound");
}

fn hello(pod: &str) -> pb::Hello {
    pb::Hello {
        gateway: "vpn/office".into(),
        node: format!("node-{pod}"),
        pod: pod.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn live_sessions_reach_the_user_status_with_an_event() {
    let u = user("alice", "alice-pw");
    let mut h = harness(vec![to_value(&u)], None);
    apply(&mut h.writers.gateways, serving_gateway());
    put_secret(&mut h.writers, &h.ctx, secret("alice-pw", "x"));
    h.hub.publish(
        "vpn/office",
        pb::GatewayConfig {
            version: "v1".into(),
            ..Default::default()
        },
        Default::default(),
        ["vpn/alice".to_owned()].into(),
    );
    let s = h.hub.agent_connected("vpn/office", &hello("p1"));
    h.hub.agent_report(
        "vpn/office",
        "p1",
        s,
        pb::SessionReport {
            has_snapshot: true,
            sessions: vec![pb::Session {
                username: "alice".into(),
                source: "vpn/alice".into(),
                protocol: "pptp".into(),
                address: "10.200.0.2".into(),
                caller_address: "198.51.100.7".into(),
                since_unix: 1_780_000_000,
                bytes_in: 10,
                bytes_out: 20,
                encoding: "MPPE 128 bit, stateless".into(),
            }],
            events: vec![pb::SessionEvent {
                kind: pb::SessionEventKind::Up as i32,
                username: "alice".into(),
                source: "vpn/alice".into(),
                time_unix: 1_780_000_000,
                ..Default::default()
            }],
            counters: None,
            draining: false,
        },
    );
    let (r, calls) = run_user(h, u).await;
    r.unwrap();
    let conds = calls
        .iter()
        .find(|c| c.manager() == "sluice-operator")
        .unwrap();
    assert_eq!(conds.body["status"]["conditions"][0]["status"], "True");
    let live = calls
        .iter()
        .find(|c| c.manager() == "sluice-operator-sessions")
        .expect("a sessions patch");
    let st = &live.body["status"];
    assert_eq!(st["connected"], true);
    assert_eq!(st["address"], "10.200.0.2");
    assert_eq!(st["protocol"], "pptp");
    assert_eq!(st["sessions"][0]["node"], "node-p1");
    assert_eq!(st["sessions"][0]["encoding"], "MPPE 128 bit, stateless");
    assert_eq!(st["lastLogin"], "2026-05-28T20:26:40Z");
    assert!(
        st.get("conditions").is_none(),
        "conditions belong to the other field manager"
    );
    let ev = calls
        .iter()
        .find(|c| c.path().ends_with("/events"))
        .expect("a Connected event");
    assert_eq!(ev.body["reason"], "Connected");
}

#[tokio::test]
async fn an_operator_restart_does_not_flip_users_to_disconnected() {
    // The hub of a fresh operator (long grace): an agent connected but has not reported yet.
    let u = {
        let mut u = user("alice", "alice-pw");
        u.status = Some(sluice_api::VpnUserStatus {
            connected: Some(true),
            ..Default::default()
        });
        u
    };
    let mut h = harness(vec![to_value(&u)], None);
    let (hub, _d) = sluice_operator::hub::Hub::new(Duration::from_secs(3600));
    Arc::get_mut(&mut h.ctx).unwrap().hub = hub.clone();
    apply(&mut h.writers.gateways, serving_gateway());
    put_secret(&mut h.writers, &h.ctx, secret("alice-pw", "x"));
    hub.agent_connected("vpn/office", &hello("p1"));
    let (r, calls) = run_user(h, u).await;
    r.unwrap();
    assert!(
        !calls
            .iter()
            .any(|c| c.manager() == "sluice-operator-sessions"),
        "{calls:#?}"
    );
}

#[tokio::test]
async fn a_report_triggered_reconcile_only_rewrites_status() {
    let gw = gateway(false);
    let Harness {
        ctx,
        hub,
        mut writers,
        server,
    } = harness(vec![to_value(&gw)], None);
    apply(&mut writers.users, user("alice", "alice-pw"));
    put_secret(&mut writers, &ctx, secret("alice-pw", "alice-password"));
    // The agent TLS Secret is current: it is not issued again.
    let names = sluice_operator::workloads::names_of(&gw);
    let cas = ctx.ca.current();
    let issued = cas
        .signing
        .issue_agent("vpn/office", time::OffsetDateTime::now_utc())
        .unwrap();
    put_secret(
        &mut writers,
        &ctx,
        sluice_operator::workloads::agent_tls_secret(&gw, &names, &issued, &cas.bundle()),
    );
    gateway::reconcile(Arc::new(gw.clone()), ctx.clone())
        .await
        .unwrap();
    // An agent reports a session: the gateway's status changes, its spec does not.
    let s = hub.agent_connected("vpn/office", &hello("p1"));
    hub.agent_report(
        "vpn/office",
        "p1",
        s,
        pb::SessionReport {
            has_snapshot: true,
            sessions: vec![pb::Session {
                username: "alice".into(),
                source: "vpn/alice".into(),
                protocol: "pptp".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    gateway::reconcile(Arc::new(gw), ctx.clone()).await.unwrap();
    drop(ctx);
    drop(writers);
    let calls = server.await.unwrap();
    let paths: Vec<&str> = calls
        .iter()
        .map(|c| c.path().rsplit('/').next().unwrap_or(""))
        .collect();
    assert_eq!(
        paths,
        [
            "office-sluice-dataplane",
            "office-sluice-metrics",
            "office-sluice",
            "office-sluice",
            "status",
            "status"
        ],
        "{paths:?}"
    );
    assert_eq!(
        calls[5].body["status"]["sessions"],
        json!({"total": 1, "pptp": 1, "l2tp": 0})
    );
}

fn ipsec_gateway() -> VpnGateway {
    let mut gw = gateway(false);
    gw.spec.l2tp.enabled = true;
    gw.spec.l2tp.ipsec.pre_shared_key_secret_ref = Some(sluice_api::PreSharedKeySecretRef {
        name: "vpn-psk".into(),
        key: "psk".into(),
    });
    gw
}

fn psk_secret(value: &str) -> k8s_openapi::api::core::v1::Secret {
    let mut s = secret("vpn-psk", "");
    s.data = Some(
        [(
            "psk".to_owned(),
            k8s_openapi::ByteString(value.as_bytes().to_vec()),
        )]
        .into(),
    );
    s
}

#[tokio::test]
async fn an_l2tp_ipsec_gateway_opens_ike_natt_and_esp_and_never_shows_its_key() {
    const PSK: &str = "PSK-FOR-THE-RECONCILE-TEST";
    let gw = ipsec_gateway();
    let mut h = harness(vec![to_value(&gw)], None);
    apply(&mut h.writers.users, user("alice", "alice-pw"));
    put_secret(&mut h.writers, &h.ctx, secret("alice-pw", "alice-password"));
    put_secret(&mut h.writers, &h.ctx, psk_secret(PSK));
    let rx = h.hub.subscribe("vpn/office");
    let (r, calls, h2) = run_gateway(h, gw).await;
    r.unwrap();
    assert!(h2.compile_errors.is_empty(), "{:?}", h2.compile_errors);

    // The agents get the key (over mTLS), and the IPsec settings with their defaults.
    let config = rx.borrow().clone().expect("a configuration was published");
    let ipsec = config.l2tp.as_ref().unwrap().ipsec.clone().unwrap();
    assert_eq!(ipsec.pre_shared_key, PSK.as_bytes());
    assert_eq!((ipsec.ike_port, ipsec.natt_port), (500, 4500));

    // Status: IKE, NAT-T and ESP; no UDP 1701 (L2TP travels inside ESP).
    let st = &find(&calls, "/vpngateways/office/status").body["status"];
    let flows: Vec<String> = st["firewall"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}/{}", r["protocol"].as_str().unwrap(), r["port"]))
        .collect();
    assert_eq!(
        flows,
        [
            "tcp/1723", "gre/null", "udp/500", "udp/4500", "esp/null", "tcp/9810"
        ]
    );
    let metrics = st["firewall"][5]["purpose"].as_str().unwrap();
    assert!(
        metrics.contains("only from the Prometheus scraper"),
        "{metrics}"
    );

    // The Deployment serves UDP 500 and 4500 and may bind the privileged port.
    let d = &find(&calls, "/deployments/office-sluice").body;
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    let ports: Vec<String> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}/{}",
                p["name"].as_str().unwrap(),
                p["containerPort"],
                p["protocol"].as_str().unwrap()
            )
        })
        .collect();
    let metrics = format!(
        "metrics:{}/TCP",
        sluice_operator::names::DATAPLANE_HTTP_PORT
    );
    assert_eq!(
        ports,
        [
            "pptp:1723/TCP",
            "l2tp:1701/UDP",
            "ike:500/UDP",
            "ipsec-natt:4500/UDP",
            metrics.as_str(),
        ]
    );
    assert_eq!(
        c["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"])
    );
    assert!(
        !calls.iter().any(|c| c.body.to_string().contains(PSK)),
        "the pre-shared key is in no request to the apiserver"
    );
}

#[tokio::test]
async fn a_short_pre_shared_key_rejects_the_gateway_without_showing_it() {
    const PSK: &str = "SHORT12";
    let gw = ipsec_gateway();
    let mut h = harness(vec![to_value(&gw)], None);
    put_secret(&mut h.writers, &h.ctx, psk_secret(PSK));
    let (r, calls, h2) = run_gateway(h, gw).await;
    r.unwrap();
    let why = h2.compile_errors.get("vpn/office").expect("rejected");
    assert!(
        why.contains("spec.l2tp.ipsec.preSharedKeySecretRef") && why.contains("at least 8"),
        "{why}"
    );
    let st = &find(&calls, "/vpngateways/office/status").body["status"];
    assert!(
        st["conditions"]
            .to_string()
            .contains("spec.l2tp.ipsec.preSharedKeySecretRef"),
        "{st}"
    );
    assert!(
        !calls.iter().any(|c| c.body.to_string().contains(PSK)),
        "the pre-shared key is in no status, Event or object"
    );
}

fn report_sessions(hub: &sluice_operator::hub::Hub, pod: &str, n: usize) {
    report(hub, pod, n, false);
}

/// A fresh agent stream of `pod` whose first report carries `n` sessions.
fn report(hub: &sluice_operator::hub::Hub, pod: &str, n: usize, draining: bool) {
    let s = hub.agent_connected("vpn/office", &hello(pod));
    hub.agent_report(
        "vpn/office",
        pod,
        s,
        pb::SessionReport {
            has_snapshot: true,
            sessions: (0..n)
                .map(|i| pb::Session {
                    username: "alice".into(),
                    source: "vpn/alice".into(),
                    protocol: "pptp".into(),
                    address: format!("10.200.0.{}", i + 2),
                    ..Default::default()
                })
                .collect(),
            draining,
            ..Default::default()
        },
    );
}

fn autoscaled_gateway() -> VpnGateway {
    let mut gw = gateway(false);
    gw.spec.autoscaling = Some(sluice_api::AutoscalingSpec {
        min_replicas: 1,
        max_replicas: 4,
        target_sessions_per_replica: 2,
        scale_down_stabilization: "10m".into(),
    });
    gw
}

#[tokio::test]
async fn the_autoscaler_scales_up_at_once_through_the_scale_subresource() {
    let gw = autoscaled_gateway();
    let h = harness(vec![to_value(&gw)], None);
    // 2 replicas carry 5 sessions: ⌈5 / 2⌉ = 3.
    report_sessions(&h.hub, "p1", 3);
    report_sessions(&h.hub, "p2", 2);
    let (r, calls, _) = run_gateway(h, gw).await;
    r.unwrap();
    let scale = find(&calls, "/vpngateways/office/scale");
    assert_eq!(scale.method, Method::PATCH);
    assert_eq!(scale.body, json!({"spec": {"replicas": 3}}));
    assert!(
        scale
            .uri
            .to_string()
            .contains("fieldManager=sluice-autoscaler"),
        "{}",
        scale.uri
    );
}

#[tokio::test]
async fn the_autoscaler_does_not_scale_down_right_after_a_restart() {
    // No agent has reported yet (the operator just started): replicas stay.
    let gw = autoscaled_gateway();
    let h = harness(vec![to_value(&gw)], None);
    let (r, calls, _) = run_gateway(h, gw).await;
    r.unwrap();
    assert!(
        !calls.iter().any(|c| c.path().ends_with("/scale")),
        "{:?}",
        calls.iter().map(|c| c.path()).collect::<Vec<_>>()
    );
}

/// The pod-deletion-cost patches among `calls`: (index, pod, cost).
fn cost_patches(calls: &[Call]) -> Vec<(usize, String, String)> {
    calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.path().starts_with("/api/v1/namespaces/vpn/pods/"))
        .map(|(i, c)| {
            assert_eq!(c.method, Method::PATCH);
            assert_eq!(c.manager(), "sluice-operator-deletion-cost", "{}", c.uri);
            assert!(!c.uri.contains("force"), "a merge patch: {}", c.uri);
            let annotations = c.body["metadata"]["annotations"].as_object().unwrap();
            assert_eq!(
                c.body,
                json!({"metadata": {"annotations": annotations.clone()}}),
                "only the annotation"
            );
            assert_eq!(annotations.len(), 1);
            let cost = annotations[sluice_operator::deletion_cost::ANNOTATION]
                .as_str()
                .unwrap()
                .to_owned();
            (i, c.path().rsplit('/').next().unwrap().to_owned(), cost)
        })
        .collect()
}

fn only(patches: &[(usize, String, String)]) -> Vec<(&str, &str)> {
    patches
        .iter()
        .map(|(_, p, c)| (p.as_str(), c.as_str()))
        .collect()
}

#[tokio::test]
async fn pods_carry_their_session_count_as_deletion_cost_patched_only_on_change() {
    let gw = gateway(false);
    let Harness {
        ctx,
        hub,
        mut writers,
        server,
    } = harness(vec![to_value(&gw)], None);
    apply(&mut writers.pods, dataplane_pod("pod-a", "node-a", None));
    apply(
        &mut writers.pods,
        dataplane_pod("pod-b", "node-b", Some("0")),
    );
    // Already right: never patched.
    apply(
        &mut writers.pods,
        dataplane_pod("pod-c", "node-c", Some("2")),
    );
    // Its agent has not reported yet: left alone.
    apply(&mut writers.pods, dataplane_pod("pod-d", "node-d", None));
    report_sessions(&hub, "pod-a", 5);
    report_sessions(&hub, "pod-b", 1);
    report_sessions(&hub, "pod-c", 2);
    let gw = Arc::new(gw);
    gateway::reconcile(gw.clone(), ctx.clone()).await.unwrap();
    let first = ctx.metrics.encode(&hub);
    // Nothing changed (the pod cache still shows the old values: the hub remembers).
    gateway::reconcile(gw.clone(), ctx.clone()).await.unwrap();
    // pod-b's count changes within a minute of its last patch: throttled.
    report_sessions(&hub, "pod-b", 3);
    gateway::reconcile(gw.clone(), ctx.clone()).await.unwrap();
    let metrics = ctx.metrics.clone();
    drop(ctx);
    drop(writers);
    let calls = server.await.unwrap();
    assert_eq!(
        only(&cost_patches(&calls)),
        [("pod-a", "5"), ("pod-b", "1")],
        "{:#?}",
        calls.iter().map(|c| c.path()).collect::<Vec<_>>()
    );

    // /metrics after the first reconcile, and after all three.
    for needle in [
        "sluice_operator_reconciles_total{kind=\"VpnGateway\",result=\"ok\"} 1\n",
        "sluice_operator_reconcile_duration_seconds_count{kind=\"VpnGateway\"} 1\n",
        "sluice_operator_status_writes_total{kind=\"VpnGateway\"} 1\n",
        "sluice_operator_deletion_cost_patches_total 2\n",
        "sluice_operator_config_acks_total{result=\"rejected\"} 0\n",
        "sluice_operator_agents_connected 0\n",
        "sluice_operator_configs_sent_total 0\n",
    ] {
        assert!(first.contains(needle), "{needle} not in\n{first}");
    }
    let all = metrics.encode(&hub);
    for needle in [
        "sluice_operator_reconciles_total{kind=\"VpnGateway\",result=\"ok\"} 3\n",
        "sluice_operator_reconcile_duration_seconds_count{kind=\"VpnGateway\"} 3\n",
        "sluice_operator_reconciles_total{kind=\"VpnUser\",result=\"error\"} 0\n",
        "sluice_operator_deletion_cost_patches_total 2\n",
    ] {
        assert!(all.contains(needle), "{needle} not in\n{all}");
    }
}

fn scaled_down_gateway() -> VpnGateway {
    let mut gw = autoscaled_gateway();
    if let Some(a) = gw.spec.autoscaling.as_mut() {
        a.scale_down_stabilization = "0s".into();
    }
    gw
}

#[tokio::test]
async fn before_the_autoscaler_scales_down_every_pod_cost_is_made_fresh() {
    let gw = scaled_down_gateway();
    let Harness {
        ctx,
        hub,
        mut writers,
        server,
    } = harness(vec![to_value(&gw)], None);
    apply(&mut writers.pods, dataplane_pod("pod-a", "node-a", None));
    apply(&mut writers.pods, dataplane_pod("pod-b", "node-b", None));
    // 2 replicas, 4 sessions, 2 per replica: as it should be.
    report_sessions(&hub, "pod-a", 2);
    report_sessions(&hub, "pod-b", 2);
    let gw = Arc::new(gw);
    gateway::reconcile(gw.clone(), ctx.clone()).await.unwrap();
    // Sessions end: one replica is enough. Both costs changed seconds after their last
    // patch (throttled), but the scale-down must not remove pod-a, which still has one.
    report_sessions(&hub, "pod-a", 1);
    report_sessions(&hub, "pod-b", 0);
    gateway::reconcile(gw, ctx.clone()).await.unwrap();
    drop(ctx);
    drop(writers);
    let calls = server.await.unwrap();
    let patches = cost_patches(&calls);
    assert_eq!(
        only(&patches),
        [
            ("pod-a", "2"),
            ("pod-b", "2"),
            ("pod-a", "1"),
            ("pod-b", "0")
        ]
    );
    let scales: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.path().ends_with("/vpngateways/office/scale"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(scales.len(), 1, "one scale-down");
    assert_eq!(calls[scales[0]].body, json!({"spec": {"replicas": 1}}));
    assert!(
        patches.iter().all(|(i, _, _)| *i < scales[0]),
        "fresh costs first, then /scale: {:?}",
        calls.iter().map(|c| c.path()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_draining_pod_leaves_the_endpoints_at_once_and_is_removed_first() {
    let gw = gateway(false);
    let mut h = harness(vec![to_value(&gw)], None);
    apply(&mut h.writers.pods, dataplane_pod("pod-a", "node-a", None));
    apply(&mut h.writers.pods, dataplane_pod("pod-b", "node-b", None));
    apply(&mut h.writers.nodes, node("node-a", "203.0.113.1"));
    apply(&mut h.writers.nodes, node("node-b", "203.0.113.2"));
    report(&h.hub, "pod-a", 4, false);
    // pod-b still has sessions and is still Ready, but it drains.
    report(&h.hub, "pod-b", 1, true);
    let (r, calls, _) = run_gateway(h, gw).await;
    r.unwrap();
    let st = &find(&calls, "/vpngateways/office/status").body["status"];
    assert_eq!(st["endpoints"], json!(["203.0.113.1"]));
    assert_eq!(st["sessions"]["total"], 5);
    let draining = sluice_operator::deletion_cost::DRAINING_COST.to_string();
    assert_eq!(
        only(&cost_patches(&calls)),
        [("pod-a", "4"), ("pod-b", draining.as_str())]
    );
}

/// Secrets are read one by one, only those the gateway and its users reference, and not
/// again while their resourceVersion holds; an unrelated Secret is never read.
#[tokio::test]
async fn only_referenced_secrets_are_read_and_only_once() {
    let gw = gateway(false);
    let mut pw = secret("alice-pw", "alice-password");
    pw.metadata.resource_version = Some("7".into());
    let body = to_value(&pw);
    let answer: Override = Box::new(move |c| {
        (c.method == Method::GET && c.path().ends_with("/secrets/alice-pw"))
            .then(|| (StatusCode::OK, body.clone()))
    });
    let Harness {
        ctx,
        hub: _,
        mut writers,
        server,
    } = harness(vec![to_value(&gw)], Some(answer));
    apply(&mut writers.users, user("alice", "alice-pw"));
    put_secret_meta(&mut writers, &pw);
    let mut unrelated = secret("tls-of-another-app", "private");
    unrelated.metadata.resource_version = Some("3".into());
    put_secret_meta(&mut writers, &unrelated);
    let rx = ctx.hub.subscribe("vpn/office");
    for _ in 0..2 {
        gateway::reconcile(Arc::new(gw.clone()), ctx.clone())
            .await
            .unwrap();
    }
    assert_eq!(rx.borrow().as_ref().map(|c| c.users.len()), Some(1));
    assert_eq!(ctx.secrets.len(), 2, "alice-pw and the agent TLS Secret");
    drop(ctx);
    drop(writers);
    let calls = server.await.unwrap();
    let gets: Vec<&str> = calls
        .iter()
        .filter(|c| c.method == Method::GET)
        .map(|c| c.path())
        .collect();
    assert_eq!(
        gets,
        ["/api/v1/namespaces/vpn/secrets/alice-pw"],
        "{calls:#?}"
    );
}

#[tokio::test]
async fn a_reconcile_with_nothing_new_to_compile_only_rewrites_status() {
    let gw = gateway(false);
    let mut pw = secret("alice-pw", "alice-password");
    pw.metadata.resource_version = Some("7".into());
    let mut h = harness(vec![to_value(&gw)], None);
    apply(&mut h.writers.users, user("alice", "alice-pw"));
    put_secret(&mut h.writers, &h.ctx, pw.clone());
    let hub = h.hub.clone();
    let rx = hub.subscribe("vpn/office");
    let (r, _, _) = run_gateway(h, gw.clone()).await;
    r.unwrap();
    let v1 = rx.borrow().clone().unwrap().version.clone();

    // An agent report (same gateway, users and Secret versions): status is written, but
    // nothing is read or compiled again. The Secret's contents differ here under the same
    // resourceVersion, which a compile would turn into a new configuration.
    let mut h = harness_with_hub(vec![to_value(&gw)], hub.clone());
    apply(&mut h.writers.users, user("alice", "alice-pw"));
    let mut changed = secret("alice-pw", "another-password");
    changed.metadata.resource_version = Some("7".into());
    put_secret(&mut h.writers, &h.ctx, changed.clone());
    let (r, calls, _) = run_gateway(h, gw.clone()).await;
    r.unwrap();
    find(&calls, "/vpngateways/office/status");
    assert_eq!(rx.borrow().clone().unwrap().version, v1, "not recompiled");

    // A new resourceVersion of the Secret: compiled and published again.
    changed.metadata.resource_version = Some("8".into());
    let mut h = harness_with_hub(vec![to_value(&gw)], hub.clone());
    apply(&mut h.writers.users, user("alice", "alice-pw"));
    put_secret(&mut h.writers, &h.ctx, changed);
    let (r, _, _) = run_gateway(h, gw).await;
    r.unwrap();
    let config = rx.borrow().clone().unwrap();
    assert_ne!(config.version, v1, "recompiled after the Secret changed");
    assert_eq!(
        config.users[0].nt_hash,
        sluice_ppp::mschap::nt_password_hash(b"another-password")
    );
}
