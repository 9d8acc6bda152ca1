//! `sluice-operator serve-manifests`: the control channel without Kubernetes. Gateways, users
//! and Secrets come from a manifest file (the same YAML `kubectl apply` takes), compiled by
//! the same code as in the cluster; reloaded when the file changes or on SIGHUP. Used by the
//! end-to-end tests (real agents, real sessions, operator restarts) and for trying the agent
//! mode on one machine.

use std::collections::BTreeSet;
use std::time::Instant;

use kube::ResourceExt;
use tracing::{error, info, warn};

use crate::config::compile_gateway;
use crate::hub::Hub;
use crate::metrics::Metrics;

/// Compiles every gateway of `text` and publishes the ones that compile. A gateway that
/// does not compile keeps its previous configuration. Returns the keys published.
/// Each gateway's compile counts as a `VpnGateway` reconcile in the metrics.
pub fn publish_manifests(
    hub: &Hub,
    metrics: &Metrics,
    text: &str,
) -> Result<Vec<String>, sluice_api::ConfigError> {
    let m = sluice_api::parse_manifests(text)?;
    let mut published = Vec::new();
    for gw in &m.gateways {
        let key = format!("{}/{}", gw.namespace().unwrap_or_default(), gw.name_any());
        let _span = tracing::info_span!("reconcile", kind = "VpnGateway", object = %key).entered();
        let started = Instant::now();
        let compiled = compile_gateway(gw, &m.users, &m.secrets);
        metrics.reconciled("VpnGateway", compiled.is_ok(), started.elapsed());
        match compiled {
            Ok(c) => {
                for (user, why) in &c.rejected_users {
                    warn!(gateway = %key, %user, "user left out of the configuration:\n{why}");
                }
                let included: BTreeSet<String> =
                    c.config.users.iter().map(|u| u.source.clone()).collect();
                let version = c.config.version.clone();
                if hub.publish(&key, c.config, c.rejected_users, included) {
                    info!(gateway = %key, %version, "configuration published");
                }
                published.push(key);
            }
            Err(e) => {
                metrics.configs_rejected.inc();
                error!(gateway = %key, "configuration rejected, agents keep the previous one:\n{e}")
            }
        }
    }
    Ok(published)
}
