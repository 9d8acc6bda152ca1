//! What every reconcile gets: the client, the shared hub, the caches, the CA.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use sluice_api::{VpnGateway, VpnUser};
use tracing::warn;

use crate::hub::{Hub, Key};
use crate::metrics::Metrics;
use crate::pki::Ca;
use crate::workloads::DataplaneSettings;

/// Fewest seconds between two connected/disconnected Events for one user.
pub const USER_EVENT_INTERVAL: Duration = Duration::from_secs(60);

/// Errors of a reconcile (retried with back-off by the controller).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("certificate: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("object has no {0}")]
    Missing(&'static str),
}

/// Caches kept by reflectors.
#[derive(Clone)]
pub struct Stores {
    /// All `VpnGateway`s.
    pub gateways: Store<VpnGateway>,
    /// All `VpnUser`s.
    pub users: Store<VpnUser>,
    /// All Secrets (user passwords, agent TLS).
    pub secrets: Store<Secret>,
    /// Data-plane pods.
    pub pods: Store<Pod>,
    /// Nodes (for endpoints).
    pub nodes: Store<Node>,
    /// Data-plane Deployments (for status).
    pub deployments: Store<Deployment>,
}

impl Stores {
    /// Waits until every cache has its first full list, so that a reconcile never judges
    /// from a half-filled cache (a user whose gateway seems missing, a gateway with no
    /// pods): after an operator start or a leader change, objects whose state did not change
    /// get no status write. Immediate once the caches are filled.
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.gateways.wait_until_ready(),
            self.users.wait_until_ready(),
            self.secrets.wait_until_ready(),
            self.pods.wait_until_ready(),
            self.nodes.wait_until_ready(),
            self.deployments.wait_until_ready(),
        );
    }
}

/// Shared by all reconciles.
pub struct Context {
    /// Apiserver client.
    pub client: Client,
    /// Configurations and agent reports.
    pub hub: Arc<Hub>,
    /// Operator metrics.
    pub metrics: Arc<Metrics>,
    /// Image and URL of the data plane.
    pub settings: DataplaneSettings,
    /// The control channel's CA.
    pub ca: Arc<Ca>,
    /// Reflector caches.
    pub stores: Stores,
    /// Publishes Events; one for the whole operator, so its cache aggregates repeated
    /// Events into series instead of creating a new object each time.
    pub recorder: Recorder,
    /// Last compile error per gateway (shown in its status).
    pub compile_errors: Mutex<HashMap<Key, String>>,
    /// When each user last got a connected/disconnected Event.
    pub user_events: Mutex<HashMap<Key, Instant>>,
    /// Per gateway: the generation whose workloads were last applied, and when. Reconciles
    /// triggered by agent reports (up to one a second) then only rewrite status.
    pub workloads_applied: Mutex<HashMap<Key, (Option<i64>, Instant)>>,
    /// Per gateway with `spec.autoscaling`: its recent replica recommendations.
    pub autoscalers: Mutex<HashMap<Key, crate::autoscaler::Recommender>>,
    /// Per gateway: when each pod's deletion cost was last patched.
    pub deletion_costs: Mutex<HashMap<Key, crate::deletion_cost::Throttle>>,
}

impl Context {
    /// Publishes an Event about `obj`; failures are logged, never fatal.
    pub async fn event(
        &self,
        obj: &k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
        action: &str,
    ) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(crate::conditions::truncate_to(note, 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, obj).await {
            warn!(error = %e, %reason, "publishing an Event failed");
        }
    }

    /// Whether the workloads of `gateway` at `generation` were applied within `max_age`.
    pub fn workloads_fresh(
        &self,
        gateway: &str,
        generation: Option<i64>,
        max_age: Duration,
    ) -> bool {
        self.workloads_applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(gateway)
            .is_some_and(|(g, t)| *g == generation && t.elapsed() < max_age)
    }

    /// Records that the workloads of `gateway` at `generation` were applied now.
    pub fn workloads_done(&self, gateway: &str, generation: Option<i64>) {
        self.workloads_applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(gateway.to_owned(), (generation, Instant::now()));
    }

    /// Whether a connected/disconnected Event for `user` may be sent now (and records it).
    pub fn user_event_allowed(&self, user: &str) -> bool {
        let mut m = self.user_events.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match m.get(user) {
            Some(t) if now.duration_since(*t) < USER_EVENT_INTERVAL => false,
            _ => {
                m.insert(user.to_owned(), now);
                true
            }
        }
    }
}
