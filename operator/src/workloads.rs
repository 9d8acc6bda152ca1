//! Pure builders of the Kubernetes objects a `VpnGateway` owns: the data-plane Deployment,
//! its ServiceAccount, a headless metrics Service, a PodDisruptionBudget and the agent's TLS
//! Secret. Every object carries a controller owner reference to the gateway, so deleting the
//! gateway deletes them.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ExecAction, HTTPGetAction, HostPathVolumeSource, Lifecycle, LifecycleHandler,
    ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sluice_api::{VpnGateway, VpnGatewaySpec};

use crate::names::{
    ADMIN_TOKEN_FILE, AGENT_TLS_DIR, DATAPLANE_ADMIN_PORT, DATAPLANE_HTTP_PORT, DATAPLANE_NAME,
    GatewayNames, NAME_LABEL, RUN_DIR,
};
use crate::pki::Issued;

/// What the operator knows that the gateway spec does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneSettings {
    /// Image of the data-plane container.
    pub image: String,
    /// Its pull policy.
    pub image_pull_policy: String,
    /// URL agents dial (`https://<service>.<namespace>.svc:50051`).
    pub operator_url: String,
    /// OpenTelemetry variables for the data-plane container (the operator's own `OTEL_*`
    /// environment, see [`otel_env`]), so one setting traces both.
    pub otel_env: Vec<(String, String)>,
}

/// The `OTEL_*` variables of `vars` that data-plane pods should share (everything but
/// the service name, which is `sluice-dataplane` there), sorted.
pub fn otel_env(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with("OTEL_") && k != "OTEL_SERVICE_NAME")
        .collect();
    out.sort();
    out
}

fn owner(gw: &VpnGateway) -> Vec<OwnerReference> {
    gw.controller_owner_ref(&()).into_iter().collect()
}

fn meta(gw: &VpnGateway, names: &GatewayNames, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels()),
        owner_references: Some(owner(gw)),
        ..ObjectMeta::default()
    }
}

fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::Int(DATAPLANE_HTTP_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("100m".into())),
            ("memory".to_owned(), Quantity("64Mi".into())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("512Mi".into()),
        )])),
        ..ResourceRequirements::default()
    }
}

/// Seconds a pod gets beyond `spec.drainTimeout` to close its last sessions and exit.
pub const DRAIN_GRACE_SECONDS: i64 = 30;

/// The data-plane Deployment.
///
/// * `hostNetwork` (clients dial the node; GRE has no ports to map), DNS
///   `ClusterFirstWithHostNet`;
/// * required pod anti-affinity on `app.kubernetes.io/name=sluice-dataplane` across all
///   gateways: at most one Sluice data-plane pod per node, the node's only GRE owner; hence
///   `maxSurge: 0` (a surge pod could never schedule next to the one it replaces);
/// * capabilities `NET_ADMIN` and `NET_RAW` only (TUN, routes, raw GRE), not privileged, read-only root
///   filesystem, `/dev/net/tun` from the host, no service-account token (the pod never talks
///   to the apiserver: its config arrives over the mTLS control channel);
/// * readiness = "has applied a configuration and is not draining" (`/readyz`), liveness
///   `/healthz`;
/// * `/metrics` and the probes on [`DATAPLANE_HTTP_PORT`]; `/sessions` and `/drain` on the
///   loopback-only admin port with a bearer token in an emptyDir at [`RUN_DIR`];
/// * a pod being removed drains first: its preStop hook runs `sluice-dataplane drain --wait`
///   (no new sessions, exit once none is left, the rest closed at `spec.drainTimeout`), and
///   `terminationGracePeriodSeconds` leaves it that long plus [`DRAIN_GRACE_SECONDS`].
pub fn deployment(gw: &VpnGateway, names: &GatewayNames, s: &DataplaneSettings) -> Deployment {
    let spec = &gw.spec;
    let drain_timeout = spec.drain_timeout_seconds();
    let args = vec![
        "agent".to_owned(),
        format!("--operator={}", s.operator_url),
        format!("--gateway={}", names.key()),
        format!("--tls-dir={AGENT_TLS_DIR}"),
        format!("--metrics-listen=0.0.0.0:{DATAPLANE_HTTP_PORT}"),
        format!("--admin-listen=127.0.0.1:{DATAPLANE_ADMIN_PORT}"),
        format!("--admin-token-file={ADMIN_TOKEN_FILE}"),
    ];
    let container = Container {
        name: "dataplane".into(),
        image: Some(s.image.clone()),
        image_pull_policy: Some(s.image_pull_policy.clone()),
        command: Some(vec!["/usr/local/bin/sluice-dataplane".into()]),
        args: Some(args),
        env: Some(
            [
                env_from_field("NODE_NAME", "spec.nodeName"),
                env_from_field("POD_NAME", "metadata.name"),
            ]
            .into_iter()
            .chain(s.otel_env.iter().map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                ..EnvVar::default()
            }))
            .collect(),
        ),
        ports: Some(container_ports(spec)),
        readiness_probe: Some(http_probe("/readyz", 5, 1)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "/usr/local/bin/sluice-dataplane".into(),
                        "drain".into(),
                        format!("--endpoint=127.0.0.1:{DATAPLANE_ADMIN_PORT}"),
                        format!("--token-file={ADMIN_TOKEN_FILE}"),
                        format!("--timeout={drain_timeout}"),
                        "--wait".into(),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(SecurityContext {
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_user: Some(0),
            capabilities: Some(Capabilities {
                add: Some(capabilities(spec)),
                drop: Some(vec!["ALL".into()]),
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "tun".into(),
                mount_path: "/dev/net/tun".into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "agent-tls".into(),
                mount_path: AGENT_TLS_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "run".into(),
                mount_path: RUN_DIR.into(),
                ..VolumeMount::default()
            },
        ]),
        ..Container::default()
    };
    let anti_affinity = PodAntiAffinity {
        required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAME_LABEL.to_owned(),
                    DATAPLANE_NAME.to_owned(),
                )])),
                ..LabelSelector::default()
            }),
            namespace_selector: Some(LabelSelector::default()),
            topology_key: "kubernetes.io/hostname".into(),
            ..PodAffinityTerm::default()
        }]),
        ..PodAntiAffinity::default()
    };
    let pod = PodSpec {
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        service_account_name: Some(names.service_account.clone()),
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(
            i64::try_from(drain_timeout)
                .unwrap_or(i64::MAX)
                .saturating_add(DRAIN_GRACE_SECONDS),
        ),
        containers: vec![container],
        affinity: Some(Affinity {
            pod_anti_affinity: Some(anti_affinity),
            ..Affinity::default()
        }),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        volumes: Some(vec![
            Volume {
                name: "tun".into(),
                host_path: Some(HostPathVolumeSource {
                    path: "/dev/net/tun".into(),
                    type_: Some("CharDevice".into()),
                }),
                ..Volume::default()
            },
            Volume {
                name: "agent-tls".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(names.tls_secret.clone()),
                    default_mode: Some(0o400),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            // The admin token (the root filesystem is read-only); memory-backed, so the
            // token never touches the node's disk.
            Volume {
                name: "run".into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: Some(Quantity("1Mi".into())),
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    Deployment {
        metadata: meta(gw, names, &names.deployment),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(names.labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The data-plane pods' ServiceAccount (no token is mounted).
pub fn service_account(gw: &VpnGateway, names: &GatewayNames) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(gw, names, &names.service_account),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

/// Headless Service over the data-plane pods' metrics port (for Prometheus discovery).
pub fn metrics_service(gw: &VpnGateway, names: &GatewayNames) -> Service {
    Service {
        metadata: meta(gw, names, &names.metrics_service),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(names.selector()),
            ports: Some(vec![ServicePort {
                name: Some("metrics".into()),
                port: DATAPLANE_HTTP_PORT,
                target_port: Some(IntOrString::String("metrics".into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// At most one data-plane pod down at a time through voluntary disruptions.
pub fn pdb(gw: &VpnGateway, names: &GatewayNames) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(gw, names, &names.pdb),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(names.selector()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// The agent's TLS Secret: its client certificate and key, and the CA that signs the
/// operator's server certificate.
pub fn agent_tls_secret(
    gw: &VpnGateway,
    names: &GatewayNames,
    agent: &Issued,
    ca_cert_pem: &str,
) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: meta(gw, names, &names.tls_secret),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), bytes(&agent.cert_pem)),
            ("tls.key".to_owned(), bytes(&agent.key_pem)),
            ("ca.crt".to_owned(), bytes(ca_cert_pem)),
        ])),
        ..Secret::default()
    }
}

/// The gateway's `namespace/name` names, from the object.
pub fn names_of(gw: &VpnGateway) -> GatewayNames {
    GatewayNames::new(&gw.namespace().unwrap_or_default(), &gw.name_any())
}

/// Ports the data-plane container serves (informational with host networking, but shown by
/// `kubectl describe` and used by tools that read them).
fn container_ports(spec: &VpnGatewaySpec) -> Vec<ContainerPort> {
    let port = |name: &str, port: i32, protocol: &str| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some(protocol.into()),
        ..ContainerPort::default()
    };
    let mut ports = vec![port("pptp", i32::from(spec.pptp.port), "TCP")];
    if spec.l2tp.enabled {
        ports.push(port("l2tp", i32::from(spec.l2tp.port), "UDP"));
    }
    if spec.l2tp.ipsec_enabled() {
        ports.push(port("ike", i32::from(spec.l2tp.ipsec.ike_port), "UDP"));
        ports.push(port(
            "ipsec-natt",
            i32::from(spec.l2tp.ipsec.natt_port),
            "UDP",
        ));
    }
    ports.push(port("metrics", DATAPLANE_HTTP_PORT, "TCP"));
    ports
}

/// The data-plane container's capabilities: `NET_ADMIN` (TUN, routes, nftables) and `NET_RAW`
/// (raw GRE and ESP sockets), plus `NET_BIND_SERVICE` only when a served port is below 1024
/// (IKE's UDP 500 by default): every capability is dropped, and root without it cannot bind
/// privileged ports.
fn capabilities(spec: &VpnGatewaySpec) -> Vec<String> {
    let mut caps = vec!["NET_ADMIN".to_owned(), "NET_RAW".to_owned()];
    let privileged = |p: u16| p < 1024;
    let mut served = Vec::new();
    if spec.pptp.enabled {
        served.push(spec.pptp.port);
    }
    if spec.l2tp.enabled {
        served.push(spec.l2tp.port);
    }
    if spec.l2tp.ipsec_enabled() {
        served.extend([spec.l2tp.ipsec.ike_port, spec.l2tp.ipsec.natt_port]);
    }
    if served.into_iter().any(privileged) {
        caps.push("NET_BIND_SERVICE".to_owned());
    }
    caps
}

#[cfg(test)]
mod tests {
    use sluice_api::{NatDetection, PreSharedKeySecretRef};

    use super::*;

    fn gateway(edit: impl FnOnce(&mut VpnGatewaySpec)) -> VpnGateway {
        let mut gw: VpnGateway = serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "VpnGateway",
            "metadata": {"name": "office", "namespace": "vpn", "uid": "u-1"},
            "spec": {"ppp": {"localAddress": "10.200.0.1", "addressPool": "10.200.0.0/24"}}
        }))
        .expect("a valid gateway");
        edit(&mut gw.spec);
        gw
    }

    fn l2tp_ipsec(s: &mut VpnGatewaySpec) {
        s.l2tp.enabled = true;
        s.l2tp.ipsec.pre_shared_key_secret_ref = Some(PreSharedKeySecretRef {
            name: "vpn-psk".into(),
            key: "psk".into(),
        });
    }

    /// `(name, port, protocol)` of the container ports and the added capabilities.
    fn ports_and_caps(gw: &VpnGateway) -> (Vec<(String, i32, String)>, Vec<String>) {
        let names = names_of(gw);
        let s = DataplaneSettings {
            image: "sluice:test".into(),
            image_pull_policy: "IfNotPresent".into(),
            operator_url: "https://sluice-grpc.sluice-system.svc:50051".into(),
            otel_env: Vec::new(),
        };
        let d = deployment(gw, &names, &s);
        let pod = d.spec.and_then(|s| s.template.spec).unwrap_or_default();
        let c = pod.containers.into_iter().next().unwrap_or_default();
        let ports = c
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                (
                    p.name.unwrap_or_default(),
                    p.container_port,
                    p.protocol.unwrap_or_default(),
                )
            })
            .collect();
        let caps = c
            .security_context
            .and_then(|s| s.capabilities)
            .and_then(|c| c.add)
            .unwrap_or_default();
        (ports, caps)
    }

    fn pod_of(gw: &VpnGateway) -> PodSpec {
        let s = DataplaneSettings {
            image: "sluice:test".into(),
            image_pull_policy: "IfNotPresent".into(),
            operator_url: "https://sluice-grpc.sluice-system.svc:50051".into(),
            otel_env: Vec::new(),
        };
        deployment(gw, &names_of(gw), &s)
            .spec
            .and_then(|s| s.template.spec)
            .unwrap_or_default()
    }

    #[test]
    fn data_plane_pods_share_the_operators_otel_settings() {
        let env = otel_env([
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                "http://collector:4317".into(),
            ),
            ("OTEL_SERVICE_NAME".into(), "sluice-operator".into()),
            ("PATH".into(), "/bin".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES".into(),
                "k8s.cluster.name=eu".into(),
            ),
        ]);
        let gw = gateway(|_| {});
        let s = DataplaneSettings {
            image: "sluice:test".into(),
            image_pull_policy: "IfNotPresent".into(),
            operator_url: "https://sluice-grpc.sluice-system.svc:50051".into(),
            otel_env: env,
        };
        let pod = deployment(&gw, &names_of(&gw), &s)
            .spec
            .and_then(|s| s.template.spec)
            .unwrap_or_default();
        let c = pod.containers.into_iter().next().unwrap_or_default();
        let env: Vec<(String, Option<String>)> = c
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        assert_eq!(
            env,
            [
                ("NODE_NAME".to_owned(), None),
                ("POD_NAME".into(), None),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    Some("http://collector:4317".into())
                ),
                (
                    "OTEL_RESOURCE_ATTRIBUTES".into(),
                    Some("k8s.cluster.name=eu".into())
                ),
            ]
        );
    }

    #[test]
    fn pods_drain_before_they_stop() {
        for (timeout, secs) in [(None, 3600), (Some("15m"), 900), (Some("0s"), 0)] {
            let pod = pod_of(&gateway(|s| {
                if let Some(t) = timeout {
                    s.drain_timeout = t.into();
                }
            }));
            assert_eq!(
                pod.termination_grace_period_seconds,
                Some(secs + DRAIN_GRACE_SECONDS)
            );
            let c = pod.containers.into_iter().next().unwrap_or_default();
            let hook = c
                .lifecycle
                .and_then(|l| l.pre_stop)
                .and_then(|h| h.exec)
                .and_then(|e| e.command)
                .unwrap_or_default();
            assert_eq!(
                hook,
                [
                    "/usr/local/bin/sluice-dataplane".to_owned(),
                    "drain".into(),
                    format!("--endpoint=127.0.0.1:{DATAPLANE_ADMIN_PORT}"),
                    "--token-file=/run/sluice/admin-token".into(),
                    format!("--timeout={secs}"),
                    "--wait".into(),
                ]
            );
        }
    }

    #[test]
    fn admin_endpoint_is_loopback_only_with_a_token_on_a_writable_volume() {
        let pod = pod_of(&gateway(|_| {}));
        let c = pod.containers.first().cloned().unwrap_or_default();
        let args = c.args.clone().unwrap_or_default();
        for want in [
            "--metrics-listen=0.0.0.0:9810",
            "--admin-listen=127.0.0.1:9811",
            "--admin-token-file=/run/sluice/admin-token",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
        }
        // Probes stay on the metrics port; the admin port is no container port.
        for probe in [&c.readiness_probe, &c.liveness_probe] {
            let port = probe
                .as_ref()
                .and_then(|p| p.http_get.as_ref())
                .map(|g| g.port.clone());
            assert_eq!(port, Some(IntOrString::Int(DATAPLANE_HTTP_PORT)));
        }
        assert!(
            !c.ports
                .unwrap_or_default()
                .iter()
                .any(|p| p.container_port == DATAPLANE_ADMIN_PORT)
        );
        // /run/sluice is a writable memory-backed emptyDir (the root is read-only).
        let mount = c
            .volume_mounts
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.mount_path == "/run/sluice");
        assert_eq!(mount.as_ref().map(|m| m.read_only), Some(None));
        let vol = pod
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|v| Some(&v.name) == mount.as_ref().map(|m| &m.name));
        let medium = vol.and_then(|v| v.empty_dir).and_then(|e| e.medium);
        assert_eq!(medium.as_deref(), Some("Memory"));
        assert_eq!(
            c.security_context.and_then(|s| s.read_only_root_filesystem),
            Some(true)
        );
    }

    fn p(name: &str, port: i32, proto: &str) -> (String, i32, String) {
        (name.into(), port, proto.into())
    }

    #[test]
    fn pptp_only_needs_no_bind_capability() {
        let (ports, caps) = ports_and_caps(&gateway(|_| {}));
        assert_eq!(
            ports,
            [
                p("pptp", 1723, "TCP"),
                p("metrics", DATAPLANE_HTTP_PORT, "TCP")
            ]
        );
        assert_eq!(caps, ["NET_ADMIN", "NET_RAW"]);
    }

    #[test]
    fn l2tp_ipsec_serves_ike_and_natt() {
        let (ports, caps) = ports_and_caps(&gateway(l2tp_ipsec));
        assert_eq!(
            ports,
            [
                p("pptp", 1723, "TCP"),
                p("l2tp", 1701, "UDP"),
                p("ike", 500, "UDP"),
                p("ipsec-natt", 4500, "UDP"),
                p("metrics", DATAPLANE_HTTP_PORT, "TCP"),
            ]
        );
        // UDP 500 is a privileged port.
        assert_eq!(caps, ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]);
        // Unprivileged ports need no extra capability.
        let (ports, caps) = ports_and_caps(&gateway(|s| {
            l2tp_ipsec(s);
            s.l2tp.ipsec.ike_port = 10500;
            s.l2tp.ipsec.natt_port = 14500;
            s.l2tp.ipsec.nat_detection = NatDetection::ForceEncapsulation;
        }));
        assert!(ports.contains(&p("ike", 10500, "UDP")), "{ports:?}");
        assert!(ports.contains(&p("ipsec-natt", 14500, "UDP")), "{ports:?}");
        assert_eq!(caps, ["NET_ADMIN", "NET_RAW"]);
    }

    #[test]
    fn plain_l2tp_has_no_ipsec_ports() {
        let (ports, caps) = ports_and_caps(&gateway(|s| {
            s.l2tp.enabled = true;
            s.l2tp.allow_unencrypted = true;
        }));
        assert!(
            !ports
                .iter()
                .any(|(n, _, _)| n == "ike" || n == "ipsec-natt"),
            "{ports:?}"
        );
        assert!(ports.contains(&p("l2tp", 1701, "UDP")));
        assert_eq!(caps, ["NET_ADMIN", "NET_RAW"]);
        // A privileged PPTP port needs the capability as well.
        let (_, caps) = ports_and_caps(&gateway(|s| s.pptp.port = 723));
        assert_eq!(caps, ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]);
    }

    #[test]
    fn a_disabled_l2tp_opens_nothing_even_with_a_key() {
        let (ports, _) = ports_and_caps(&gateway(|s| {
            l2tp_ipsec(s);
            s.l2tp.enabled = false;
        }));
        assert_eq!(ports.len(), 2, "{ports:?}");
    }
}
