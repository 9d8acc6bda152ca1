//! Leader election on a `coordination.k8s.io/v1` Lease. Only the leader reconciles and serves
//! configuration; it labels its own pod `sluice.dev/leader=true`, and the gRPC Service selects
//! that label, so agents always reach the leader.

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::names::LEADER_LABEL;

/// Lease duration (seconds): a dead leader is replaced after at most this long.
pub const LEASE_SECONDS: u64 = 15;
/// Grace before the lease's expiry in which the holder renews (seconds).
pub const GRACE_SECONDS: u64 = 5;

/// A running election: `leading` says whether this replica leads.
pub struct Election {
    /// Whether this replica holds the Lease.
    pub leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Gives the Lease up (if held) so that another replica takes over at once instead of
    /// after the Lease expires. Every clone of `leading` must be gone: the election task
    /// releases when its channel closes.
    pub async fn release(self) {
        drop(self.leading);
        match tokio::time::timeout(std::time::Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => info!("leader Lease released"),
            Ok(Ok(Err(e))) => warn!(error = %e, "releasing the leader Lease failed"),
            Ok(Err(e)) => warn!(error = %e, "the election task failed"),
            Err(_) => warn!("releasing the leader Lease timed out (other receivers alive?)"),
        }
    }
}

/// Starts the election.
pub async fn elect(
    client: Client,
    namespace: &str,
    lease: &str,
    identity: &str,
) -> Result<Election, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, lease)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .with_create_mode(LeaseCreateMode::AutoCreate)
        .build()
        .await?;
    let (leading, task) = manager.watch().await;
    Ok(Election { leading, task })
}

/// Sets or clears the leader label on this replica's pod (best effort, logged).
pub async fn label_pod(client: Client, namespace: &str, pod: &str, leader: bool) {
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let value = if leader {
        serde_json::Value::String("true".into())
    } else {
        serde_json::Value::Null
    };
    let body = serde_json::json!({ "metadata": { "labels": { LEADER_LABEL: value } } });
    if let Err(e) = api
        .patch(pod, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        warn!(error = %e, %pod, leader, "updating the leader label failed");
    }
}
