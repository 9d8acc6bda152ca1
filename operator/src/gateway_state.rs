//! What the reconcilers keep about each gateway between two reconciles, in one record per
//! gateway (held by the [`crate::hub::Hub`]), so forgetting a deleted gateway is one removal
//! and no map can be left behind.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::autoscaler::Recommender;
use crate::deletion_cost::Throttle;
use crate::hub::Key;

/// One gateway's reconcile bookkeeping.
#[derive(Debug, Default)]
pub struct GatewayState {
    /// [`crate::ca_set::CaSet::fingerprint`] of the CAs its agent Secret was last written
    /// for (a CA rotation waits until every gateway's is current).
    pub agent_tls: Option<String>,
    /// The last compile error (shown in its status), while the spec does not compile.
    pub compile_error: Option<String>,
    /// The generation whose workloads were last applied, and when: reconciles triggered by
    /// agent reports (up to one a second) then only rewrite status.
    pub workloads_applied: Option<(Option<i64>, Instant)>,
    /// Its recent replica recommendations (`spec.autoscaling`).
    pub autoscaler: Recommender,
    /// When each of its pods' deletion cost was last patched.
    pub deletion_costs: Throttle,
    /// What its last compile read, and when: while nothing of it changes, a reconcile
    /// (an agent report, a status write, a pod event) only rewrites status.
    pub compiled: Option<(CompileInputs, Instant)>,
}

/// The versions of everything a gateway's compile reads: the gateway's and its users'
/// spec generations (status writes do not change them) and the referenced Secrets'
/// resource versions (from the metadata watch; `-` for a missing Secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileInputs(pub Vec<(String, String)>);

impl GatewayState {
    /// Whether the last compile read exactly `inputs`, within `max_age`.
    pub fn compiled_fresh(&self, inputs: &CompileInputs, max_age: Duration) -> bool {
        self.compiled
            .as_ref()
            .is_some_and(|(i, t)| i == inputs && t.elapsed() < max_age)
    }

    /// Whether the workloads of `generation` were applied within `max_age`.
    pub fn workloads_fresh(&self, generation: Option<i64>, max_age: Duration) -> bool {
        self.workloads_applied
            .is_some_and(|(g, t)| g == generation && t.elapsed() < max_age)
    }
}

/// Every gateway's [`GatewayState`].
#[derive(Debug, Default)]
pub struct GatewayStates(Mutex<HashMap<Key, GatewayState>>);

impl GatewayStates {
    /// Runs `f` on the state of `gateway` (a fresh one if it has none yet).
    pub fn update<R>(&self, gateway: &str, f: impl FnOnce(&mut GatewayState) -> R) -> R {
        let mut all = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(gateway.to_owned()).or_default())
    }

    /// Reads the state of `gateway` (`None`: nothing recorded).
    pub fn read<R>(&self, gateway: &str, f: impl FnOnce(Option<&GatewayState>) -> R) -> R {
        f(self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(gateway))
    }

    /// Forgets `gateway` (deleted).
    pub fn forget(&self, gateway: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(gateway);
    }

    /// The compile error of every gateway that has one.
    pub fn compile_errors(&self) -> HashMap<Key, String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(k, s)| Some((k.clone(), s.compile_error.clone()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_gateway_and_forgetting_drops_all_of_it() {
        let states = GatewayStates::default();
        states.update("vpn/office", |s| {
            s.compile_error = Some("spec.pool: overlaps".into());
            s.agent_tls = Some("ab12".into());
            s.workloads_applied = Some((Some(3), Instant::now()));
        });
        assert!(states.read("vpn/office", |s| {
            s.is_some_and(|s| s.workloads_fresh(Some(3), Duration::from_secs(60)))
        }));
        assert!(!states.read("vpn/office", |s| {
            s.is_some_and(|s| s.workloads_fresh(Some(4), Duration::from_secs(60)))
        }));
        assert_eq!(
            states.compile_errors(),
            HashMap::from([("vpn/office".to_owned(), "spec.pool: overlaps".to_owned())])
        );
        let inputs = CompileInputs(vec![("VpnGateway vpn/office".into(), "uid 1".into())]);
        states.update("vpn/office", |s| {
            s.compiled = Some((inputs.clone(), Instant::now()))
        });
        let fresh = |i: &CompileInputs| {
            states.read("vpn/office", |s| {
                s.is_some_and(|s| s.compiled_fresh(i, Duration::from_secs(60)))
            })
        };
        assert!(fresh(&inputs));
        assert!(!fresh(&CompileInputs(vec![(
            "VpnGateway vpn/office".into(),
            "uid 2".into()
        )])));
        states.forget("vpn/office");
        assert!(states.read("vpn/office", |s| s.is_none()));
        assert!(states.compile_errors().is_empty());
    }
}
