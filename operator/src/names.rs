//! Names and labels of the objects the operator creates for a `VpnGateway`.

use std::collections::BTreeMap;

/// Label every data-plane object carries; pod anti-affinity keys on it, so at most one
/// Sluice data-plane pod (of any gateway) runs per node: the node's single GRE owner.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Value of [`NAME_LABEL`] on data-plane objects.
pub const DATAPLANE_NAME: &str = "sluice-dataplane";
/// Label naming the gateway (same namespace) an object belongs to.
pub const GATEWAY_LABEL: &str = "sluice.dev/gateway";
/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "sluice-operator";
/// Field manager of the live-session fields of `VpnUser.status` (a separate manager, so
/// session updates and condition updates never remove each other's fields).
pub const SESSIONS_FIELD_MANAGER: &str = "sluice-operator-sessions";
/// Label the leading operator replica puts on its own pod; the gRPC Service selects it.
pub const LEADER_LABEL: &str = "sluice.dev/leader";
/// Port of the data plane's HTTP endpoint (`/metrics`, `/readyz`, `/healthz`).
pub const DATAPLANE_HTTP_PORT: i32 = 9810;
/// Port of the data plane's admin endpoint (`/sessions`, `/drain`): loopback only, and
/// each request needs the bearer token the daemon writes to [`ADMIN_TOKEN_FILE`].
pub const DATAPLANE_ADMIN_PORT: i32 = 9811;
/// Writable directory of the data-plane container (an emptyDir: the root is read-only).
pub const RUN_DIR: &str = "/run/sluice";
/// The admin token the daemon writes at start (mode 0600) and `drain` reads.
pub const ADMIN_TOKEN_FILE: &str = "/run/sluice/admin-token";
/// Where the agent's TLS Secret is mounted in data-plane pods.
pub const AGENT_TLS_DIR: &str = "/etc/sluice/tls";

/// Names of the objects derived from one gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayNames {
    /// Namespace of the gateway (and of everything below).
    pub namespace: String,
    /// The gateway's name.
    pub gateway: String,
    /// Deployment of data-plane pods.
    pub deployment: String,
    /// ServiceAccount of the data-plane pods.
    pub service_account: String,
    /// Headless Service for metrics scraping.
    pub metrics_service: String,
    /// PodDisruptionBudget.
    pub pdb: String,
    /// Secret with the agent's client certificate.
    pub tls_secret: String,
}

impl GatewayNames {
    /// Derives every name from the gateway's namespace and name.
    pub fn new(namespace: &str, gateway: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            gateway: gateway.to_owned(),
            deployment: format!("{gateway}-sluice"),
            service_account: format!("{gateway}-sluice-dataplane"),
            metrics_service: format!("{gateway}-sluice-metrics"),
            pdb: format!("{gateway}-sluice"),
            tls_secret: format!("{gateway}-sluice-agent-tls"),
        }
    }

    /// `namespace/name` of the gateway: its key in the hub and in the agent's Hello.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.gateway)
    }

    /// Labels that select this gateway's data-plane pods.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME_LABEL.to_owned(), DATAPLANE_NAME.to_owned()),
            (GATEWAY_LABEL.to_owned(), self.gateway.clone()),
        ])
    }

    /// [`Self::selector`] as a label-selector string (`VpnGateway.status.selector`).
    pub fn selector_string(&self) -> String {
        self.selector()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Labels on every object derived from this gateway.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.selector();
        l.insert("app.kubernetes.io/instance".into(), self.gateway.clone());
        l.insert("app.kubernetes.io/part-of".into(), "sluice".into());
        l.insert(
            "app.kubernetes.io/managed-by".into(),
            FIELD_MANAGER.to_owned(),
        );
        l
    }
}
