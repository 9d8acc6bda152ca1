//! Ties what the operator creates in its own namespace (the CA Secret, the leader Lease) to
//! the operator's Deployment with an owner reference, so the garbage collector removes them
//! when the operator is uninstalled.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

/// The owner reference to `deployment` (not a controller reference: nothing else changes).
pub fn reference(deployment: &Deployment) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: Deployment::api_version(&()).into_owned(),
        kind: Deployment::kind(&()).into_owned(),
        name: deployment.name_any(),
        uid: deployment.uid()?,
        ..OwnerReference::default()
    })
}

/// Adds the owner reference to `owner` (a Deployment in `namespace`) to the CA Secret and the
/// Lease. Best effort: a failure is logged and only means they outlive an uninstall.
pub async fn adopt(client: Client, namespace: &str, owner: &str, secret: &str, lease: &str) {
    let deployment = match Api::<Deployment>::namespaced(client.clone(), namespace)
        .get(owner)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            warn!(error = %e, %owner, "reading the operator's Deployment failed; the CA Secret and the Lease will outlive it");
            return;
        }
    };
    let Some(reference) = reference(&deployment) else {
        return;
    };
    let body = serde_json::json!({ "metadata": { "ownerReferences": [reference] } });
    let pp = PatchParams::default();
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let leases = Api::<Lease>::namespaced(client, namespace);
    for (what, result) in [
        (
            "Secret",
            secrets
                .patch(secret, &pp, &Patch::Merge(&body))
                .await
                .map(|_| ()),
        ),
        (
            "Lease",
            leases
                .patch(lease, &pp, &Patch::Merge(&body))
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Ok(()) => info!(%owner, kind = what, "owned by the operator's Deployment"),
            Err(e) => warn!(error = %e, %owner, kind = what, "setting the owner reference failed"),
        }
    }
}
