//! Test harness: a mocked apiserver (tower-test) that records every request and answers it
//! like a real one would for the calls the operator makes, plus a `Context` with filled caches.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    dead_code
)]

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::client::Body;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};
use sluice_api::{VpnGateway, VpnUser};
use sluice_operator::ca_set::{CaHandle, CaSet};
use sluice_operator::context::{Context, Stores};
use sluice_operator::hub::Hub;
use sluice_operator::metrics::Metrics;
use sluice_operator::pki::Ca;
use sluice_operator::secrets::SecretMeta;
use sluice_operator::workloads::DataplaneSettings;
use tokio::task::JoinHandle;

/// One request the operator made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub uri: String,
    pub body: Value,
}

impl Call {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("")
    }

    /// The `fieldManager` query parameter.
    pub fn manager(&self) -> &str {
        self.uri
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("fieldManager="))
            .unwrap_or("")
    }
}

/// How the mock answers a request: `None` = like the apiserver would (echo the object).
pub type Override = Box<dyn Fn(&Call) -> Option<(StatusCode, Value)> + Send + Sync>;

pub struct Writers {
    pub gateways: Writer<VpnGateway>,
    pub users: Writer<VpnUser>,
    pub secrets: Writer<SecretMeta>,
    pub pods: Writer<Pod>,
    pub nodes: Writer<Node>,
    pub deployments: Writer<Deployment>,
}

pub struct Harness {
    pub ctx: Arc<Context>,
    pub hub: Arc<Hub>,
    pub writers: Writers,
    pub server: JoinHandle<Vec<Call>>,
}

pub fn apply<K: Resource + Clone>(w: &mut Writer<K>, obj: K)
where
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    w.apply_watcher_event(&watcher::Event::Apply(obj));
}

/// Puts `secret` in the cluster as the operator sees it: its metadata in the watch cache,
/// its contents as if read earlier (so no GET is needed while its resourceVersion holds).
pub fn put_secret(writers: &mut Writers, ctx: &Context, secret: Secret) {
    let meta = SecretMeta {
        types: None,
        metadata: secret.metadata.clone(),
        _phantom: Default::default(),
    };
    writers
        .secrets
        .apply_watcher_event(&watcher::Event::Apply(meta));
    ctx.secrets.insert(secret);
}

/// Puts only the metadata of `secret` in the watch cache (its contents need a GET).
pub fn put_secret_meta(writers: &mut Writers, secret: &Secret) {
    let meta = SecretMeta {
        types: None,
        metadata: secret.metadata.clone(),
        _phantom: Default::default(),
    };
    writers
        .secrets
        .apply_watcher_event(&watcher::Event::Apply(meta));
}

/// A harness whose apiserver answers `requests` calls, then stops (returning them).
/// `base` is what a status subresource patch of a `VpnGateway`/`VpnUser` returns around
/// the patched status.
pub fn harness(base: Vec<Value>, override_: Option<Override>) -> Harness {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let server = tokio::spawn(async move {
        let mut calls = Vec::new();
        while let Ok(Some((req, send))) =
            tokio::time::timeout(Duration::from_secs(2), handle.next_request()).await
        {
            let method = req.method().clone();
            let uri = req.uri().to_string();
            let bytes = req.into_body().collect_bytes().await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let call = Call { method, uri, body };
            let (status, reply) = override_
                .as_ref()
                .and_then(|f| f(&call))
                .unwrap_or_else(|| answer(&call, &base));
            calls.push(call);
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
        calls
    });
    let (gateways, gw_w) = reflector::store();
    let (users, user_w) = reflector::store();
    let (secrets, secret_w) = reflector::store();
    let (pods, pod_w) = reflector::store();
    let (nodes, node_w) = reflector::store();
    let (deployments, deployment_w) = reflector::store();
    let (hub, _dirty) = Hub::new(Duration::ZERO);
    let now = time::OffsetDateTime::now_utc();
    let ctx = Arc::new(Context {
        client: client.clone(),
        hub: hub.clone(),
        metrics: Metrics::new(),
        settings: DataplaneSettings {
            image: "sluice:test".into(),
            image_pull_policy: "IfNotPresent".into(),
            operator_url: "https://sluice-grpc.sluice-system.svc:50051".into(),
            otel_env: Vec::new(),
        },
        ca: CaHandle::fixed(CaSet::new(Ca::generate(now).unwrap(), now)),
        secrets: Default::default(),
        stores: Stores {
            gateways,
            users,
            secrets,
            pods,
            nodes,
            deployments,
        },
        recorder: kube::runtime::events::Recorder::new(
            client.clone(),
            Reporter {
                controller: "sluice-operator".into(),
                instance: Some("test".into()),
            },
        ),
        user_events: Default::default(),
        synced: Arc::new(sluice_operator::context::Synced::all()),
    });
    Harness {
        ctx,
        hub,
        writers: Writers {
            gateways: gw_w,
            users: user_w,
            secrets: secret_w,
            pods: pod_w,
            nodes: node_w,
            deployments: deployment_w,
        },
        server,
    }
}

fn answer(call: &Call, base: &[Value]) -> (StatusCode, Value) {
    let path = call.path();
    if path.ends_with("/status") {
        let name = path
            .trim_end_matches("/status")
            .rsplit('/')
            .next()
            .unwrap_or("");
        let mut obj = base
            .iter()
            .find(|b| b["metadata"]["name"] == name)
            .cloned()
            .unwrap_or(json!({}));
        obj["status"] = call.body["status"].clone();
        return (StatusCode::OK, obj);
    }
    if path.ends_with("/scale") {
        // The scale subresource answers with a Scale (autoscaling/v1).
        let name = path
            .trim_end_matches("/scale")
            .rsplit('/')
            .next()
            .unwrap_or("");
        return (
            StatusCode::OK,
            json!({
                "apiVersion": "autoscaling/v1",
                "kind": "Scale",
                "metadata": {"name": name},
                "spec": call.body["spec"].clone(),
            }),
        );
    }
    if call.method == Method::PATCH && call.body.is_array() {
        // JSON patch (finalizer add/remove): answer with the base object, patched.
        let name = path.rsplit('/').next().unwrap_or("");
        let mut obj = base
            .iter()
            .find(|b| b["metadata"]["name"] == name)
            .cloned()
            .unwrap_or(json!({}));
        let patch: json_patch_lite::Patch = call.body.clone();
        json_patch_lite::apply(&mut obj, &patch);
        return (StatusCode::OK, obj);
    }
    (StatusCode::OK, call.body.clone())
}

/// Just enough JSON patch (RFC 6902 add/remove/test on object paths) for finalizers.
pub mod json_patch_lite {
    use serde_json::Value;
    pub type Patch = Value;
    pub fn apply(obj: &mut Value, patch: &Patch) {
        for op in patch.as_array().into_iter().flatten() {
            let path: Vec<&str> = op["path"]
                .as_str()
                .unwrap_or("")
                .split('/')
                .skip(1)
                .collect();
            let Some((last, parents)) = path.split_last() else {
                continue;
            };
            let mut cur = &mut *obj;
            for p in parents {
                cur = &mut cur[*p];
            }
            match op["op"].as_str() {
                Some("add") => {
                    if *last == "-" {
                        if let Some(a) = cur.as_array_mut() {
                            a.push(op["value"].clone());
                        }
                    } else {
                        cur[*last] = op["value"].clone();
                    }
                }
                Some("remove") => {
                    if let Ok(i) = last.parse::<usize>() {
                        if let Some(a) = cur.as_array_mut() {
                            a.remove(i);
                        }
                    } else if let Some(o) = cur.as_object_mut() {
                        o.remove(*last);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Parses one object from YAML.
pub fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_saphyr::from_str(s).unwrap()
}

/// The test gateway; `legacy` adds the finalizer earlier versions set.
pub fn gateway(legacy: bool) -> VpnGateway {
    let mut gw: VpnGateway = yaml(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: {name: office, namespace: vpn, uid: 0f0e0d0c-0000-4000-8000-000000000001, generation: 3}
spec:
  replicas: 2
  nodeSelector: {sluice.dev/edge: "true"}
  ppp: {localAddress: 10.200.0.1, addressPool: 10.200.0.0/24, dnsServers: [10.200.0.1]}
"#,
    );
    if legacy {
        gw.metadata.finalizers = Some(vec![
            "example.com/other".to_owned(),
            sluice_operator::gateway::LEGACY_FINALIZER.to_owned(),
        ]);
        gw.metadata.resource_version = Some("41".into());
    }
    gw
}

/// The test gateway with two ready data-plane pods in its status.
pub fn serving_gateway() -> VpnGateway {
    let mut gw = gateway(false);
    gw.status = Some(sluice_api::VpnGatewayStatus {
        ready_replicas: Some(2),
        ..Default::default()
    });
    gw
}

pub fn user(name: &str, secret: &str) -> VpnUser {
    yaml(&format!(
        r#"
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: {{name: {name}, namespace: vpn, uid: 0f0e0d0c-0000-4000-8000-0000000000{n:02}, generation: 1}}
spec:
  gatewayRef: {{name: office}}
  passwordSecretRef: {{name: {secret}}}
"#,
        n = name.len()
    ))
}

pub fn secret(name: &str, password: &str) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.namespace = Some("vpn".into());
    s.data = Some(
        [(
            "password".to_owned(),
            k8s_openapi::ByteString(password.as_bytes().to_vec()),
        )]
        .into(),
    );
    s
}

pub fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap()
}

/// A running, ready data-plane pod of gateway `office` on `node`, with `cost` as its
/// pod-deletion-cost annotation.
pub fn dataplane_pod(name: &str, node: &str, cost: Option<&str>) -> Pod {
    let mut p: Pod = yaml(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: vpn
  labels: {{app.kubernetes.io/name: sluice-dataplane, sluice.dev/gateway: office}}
spec:
  nodeName: {node}
  containers: [{{name: dataplane, image: "sluice:test"}}]
status:
  phase: Running
  conditions: [{{type: Ready, status: "True"}}]
"#
    ));
    if let Some(c) = cost {
        p.metadata.annotations = Some(
            [(
                sluice_operator::deletion_cost::ANNOTATION.to_owned(),
                c.to_owned(),
            )]
            .into(),
        );
    }
    p
}

/// A node with an ExternalIP.
pub fn node(name: &str, external_ip: &str) -> Node {
    yaml(&format!(
        r#"
apiVersion: v1
kind: Node
metadata: {{name: {name}}}
status:
  addresses: [{{type: InternalIP, address: 10.0.0.9}}, {{type: ExternalIP, address: "{external_ip}"}}]
"#
    ))
}
