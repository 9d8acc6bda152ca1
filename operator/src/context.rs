//! What every reconcile gets: the client, the shared hub, the caches, the CA.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use sluice_api::{VpnGateway, VpnUser};
use tracing::warn;

use crate::ca_set::CaHandle;
use crate::hub::{Hub, Key};
use crate::metrics::Metrics;
use crate::secrets::{SecretCache, SecretMeta};
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
    #[error("agent TLS Secret of {0}: {1}")]
    AgentTls(String, &'static str),
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
    /// Metadata (never data) of the Secrets in the watched namespaces; contents of
    /// referenced ones are read one by one ([`crate::secrets::fetch`]).
    pub secrets: Store<SecretMeta>,
    /// Data-plane pods.
    pub pods: Store<Pod>,
    /// Nodes (for endpoints).
    pub nodes: Store<Node>,
    /// Data-plane Deployments (for status).
    pub deployments: Store<Deployment>,
}

/// The reflector caches, for [`Synced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// `VpnGateway`s.
    Gateways,
    /// `VpnUser`s.
    Users,
    /// Secrets.
    Secrets,
    /// Data-plane pods.
    Pods,
    /// Nodes.
    Nodes,
    /// Data-plane Deployments.
    Deployments,
}

impl Cache {
    const ALL: [Cache; 6] = [
        Cache::Gateways,
        Cache::Users,
        Cache::Secrets,
        Cache::Pods,
        Cache::Nodes,
        Cache::Deployments,
    ];
}

/// Which caches have their first full list. Until every one has, reconciles are put
/// off (never blocked): judged from a half-filled cache, a user's gateway would seem
/// missing and a gateway would have no pods, so an operator start or a leader change
/// would write status to objects whose state did not change.
#[derive(Debug, Default)]
pub struct Synced([std::sync::atomic::AtomicBool; 6]);

impl Synced {
    /// Every cache counts as listed (tests that fill the caches by hand).
    pub fn all() -> Self {
        let s = Self::default();
        for c in Cache::ALL {
            s.mark(c);
        }
        s
    }

    /// Records that `cache` has its first full list.
    pub fn mark(&self, cache: Cache) {
        if let Some(flag) = self.0.get(cache as usize) {
            flag.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// The caches still waiting for their first list.
    pub fn pending(&self) -> Vec<Cache> {
        Cache::ALL
            .into_iter()
            .filter(|c| {
                !self
                    .0
                    .get(*c as usize)
                    .is_some_and(|f| f.load(std::sync::atomic::Ordering::Acquire))
            })
            .collect()
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
    /// The control channel's CAs.
    pub ca: CaHandle,
    /// Reflector caches.
    pub stores: Stores,
    /// Contents of the referenced Secrets.
    pub secrets: Arc<SecretCache>,
    /// Which of them have their first list.
    pub synced: Arc<Synced>,
    /// Publishes Events; one for the whole operator, so its cache aggregates repeated
    /// Events into series instead of creating a new object each time.
    pub recorder: Recorder,
    /// When each user last got a connected/disconnected Event.
    pub user_events: Mutex<HashMap<Key, Instant>>,
}

impl Context {
    /// Whether every gateway in the cache has an agent Secret written for the current CAs.
    pub fn agents_current(&self) -> bool {
        let want = self.ca.current().fingerprint();
        self.stores
            .gateways
            .state()
            .iter()
            .filter(|g| g.metadata.deletion_timestamp.is_none())
            .all(|g| {
                self.hub.states.read(&crate::hub::key_of(&**g), |s| {
                    s.and_then(|s| s.agent_tls.as_ref()) == Some(&want)
                })
            })
    }

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
        self.hub.states.read(gateway, |s| {
            s.is_some_and(|s| s.workloads_fresh(generation, max_age))
        })
    }

    /// Records that the workloads of `gateway` at `generation` were applied now.
    pub fn workloads_done(&self, gateway: &str, generation: Option<i64>) {
        self.hub.states.update(gateway, |s| {
            s.workloads_applied = Some((generation, Instant::now()));
        });
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
