//! `controller.kubernetes.io/pod-deletion-cost` on data-plane pods: the ReplicaSet
//! controller removes the pods with the lowest cost first, so the operator keeps each
//! pod's cost equal to its live session count (from the hub). A scale-down (the built-in
//! autoscaler, an HPA, KEDA, `kubectl scale`) or a rolling update then removes the replica
//! with the fewest sessions, and a draining one before any other.
//!
//! Kubernetes warns against updating the annotation often (every update is a pod write
//! the apiserver and every pod watcher see), so a pod is patched only when its value
//! changed, at most once per [`MIN_INTERVAL`], except right before the built-in
//! autoscaler scales down, when every cost is brought up to date first.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use tracing::debug;

use crate::context::{Context, Error};
use crate::hub::{Agent, GatewayView};
use crate::names::GatewayNames;

/// The annotation the ReplicaSet controller ranks pods by (lowest removed first).
pub const ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";
/// Field manager of the annotation patches (JSON merge patches of only this annotation).
pub const FIELD_MANAGER: &str = "sluice-operator-deletion-cost";
/// Cost of a pod whose agent reported draining: below any session count (which is ≥ 0),
/// so a draining pod is the first to go; far from `i32::MIN`, which leaves room for a
/// hand-set lower cost, and readable in `kubectl get pod -o yaml`.
pub const DRAINING_COST: i32 = -1_000_000;
/// Fewest time between two patches of one pod's cost (unless forced).
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);

/// The cost a pod should carry, or `None` when it is not known (no agent stream, or no
/// session snapshot yet, e.g. right after an operator restart): then it is left alone.
pub fn desired(agent: Option<&Agent>) -> Option<i32> {
    let a = agent.filter(|a| a.connected)?;
    if a.draining {
        return Some(DRAINING_COST);
    }
    a.live_sessions()
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// The cost a pod carries now (an unparsable value counts as none).
pub fn current(pod: &Pod) -> Option<i32> {
    pod.annotations().get(ANNOTATION)?.trim().parse().ok()
}

/// One gateway's last patch per pod: the value and when.
#[derive(Debug, Default)]
pub struct Throttle {
    last: HashMap<String, (i32, Instant)>,
}

impl Throttle {
    /// Whether `pod`, carrying `current`, should be patched to `want` at `now`. Not when it
    /// already carries it, or when that value was patched within [`MIN_INTERVAL`] (the
    /// cache has not caught up yet); otherwise at most once per [`MIN_INTERVAL`], or at
    /// once when `force`d.
    pub fn due(
        &self,
        pod: &str,
        current: Option<i32>,
        want: i32,
        now: Instant,
        force: bool,
    ) -> bool {
        if current == Some(want) {
            return false;
        }
        match self.last.get(pod) {
            Some((v, t)) if now.saturating_duration_since(*t) < MIN_INTERVAL => *v != want && force,
            _ => true,
        }
    }

    /// Records a patch of `pod` to `value` at `now`.
    pub fn patched(&mut self, pod: &str, value: i32, now: Instant) {
        self.last.insert(pod.to_owned(), (value, now));
    }

    /// Forgets pods that no longer exist (a bound on memory).
    pub fn retain(&mut self, pods: &BTreeSet<String>) {
        self.last.retain(|p, _| pods.contains(p));
    }
}

/// The patches that bring `pods` (of one gateway) to the costs `view` implies: (pod, cost),
/// by pod name. Pods being deleted are left alone (the ReplicaSet no longer counts them).
pub fn plan(
    throttle: &Throttle,
    pods: &[&Pod],
    view: &GatewayView,
    now: Instant,
    force: bool,
) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let name = p.metadata.name.as_ref()?;
            let want = desired(view.agents.get(name))?;
            throttle
                .due(name, current(p), want, now, force)
                .then(|| (name.clone(), want))
        })
        .collect();
    out.sort();
    out
}

/// Brings the deletion costs of the gateway's `pods` up to date (`force`: ignoring the
/// throttle). Returns how many pods were patched. A pod that is gone meanwhile is skipped.
pub async fn sync(
    ctx: &Context,
    names: &GatewayNames,
    pods: &[Arc<Pod>],
    force: bool,
) -> Result<usize, Error> {
    let pods: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
    let key = names.key();
    let view = ctx.hub.gateway_view(&key);
    if view.sessions_unknown {
        // Right after a start, before the agents have reported: the costs on the pods are
        // the best knowledge there is.
        return Ok(0);
    }
    let now = Instant::now();
    let todo = {
        let pod_names: BTreeSet<String> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        ctx.hub.states.update(&key, |s| {
            s.deletion_costs.retain(&pod_names);
            plan(&s.deletion_costs, &pods, &view, now, force)
        })
    };
    if todo.is_empty() {
        return Ok(0);
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    let mut patched = 0;
    for (pod, cost) in todo {
        let body = serde_json::json!({"metadata": {"annotations": {ANNOTATION: cost.to_string()}}});
        match api.patch(&pod, &pp, &Patch::Merge(&body)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
        debug!(gateway = %key, %pod, cost, "pod deletion cost updated");
        ctx.metrics.deletion_cost_patches.inc();
        ctx.hub
            .states
            .update(&key, |s| s.deletion_costs.patched(&pod, cost, now));
        patched += 1;
    }
    Ok(patched)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn agent(sessions: usize, draining: bool, snapshot: bool) -> Agent {
        Agent {
            connected: true,
            draining,
            snapshot_seen: snapshot,
            sessions: vec![Default::default(); sessions],
            ..Agent::default()
        }
    }

    fn pod(name: &str, cost: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        if let Some(c) = cost {
            p.metadata.annotations = Some([(ANNOTATION.to_owned(), c.to_owned())].into());
        }
        p
    }

    #[test]
    fn the_cost_is_the_session_count_and_draining_is_lowest() {
        assert_eq!(desired(Some(&agent(5, false, true))), Some(5));
        assert_eq!(desired(Some(&agent(0, false, true))), Some(0));
        assert_eq!(desired(Some(&agent(3, true, true))), Some(DRAINING_COST));
        assert_eq!(
            desired(Some(&agent(3, false, false))),
            None,
            "no snapshot yet"
        );
        assert_eq!(desired(None), None, "no agent");
        let gone = Agent {
            connected: false,
            ..agent(1, false, true)
        };
        assert_eq!(desired(Some(&gone)), None);
        assert_eq!(current(&pod("p", Some(" 7 "))), Some(7));
        assert_eq!(current(&pod("p", Some("x"))), None);
        assert_eq!(current(&pod("p", None)), None);
    }

    #[test]
    fn patches_are_throttled_unless_forced() {
        let t = Instant::now();
        let mut th = Throttle::default();
        assert!(th.due("p", None, 5, t, false), "a new pod at once");
        assert!(!th.due("p", Some(5), 5, t, false), "unchanged");
        th.patched("p", 5, t);
        assert!(
            !th.due("p", None, 5, t, true),
            "the cache lags our own patch"
        );
        let soon = t + Duration::from_secs(10);
        assert!(!th.due("p", Some(5), 6, soon, false), "throttled");
        assert!(
            th.due("p", Some(5), 6, soon, true),
            "forced before a scale-down"
        );
        assert!(th.due("p", Some(5), 6, t + MIN_INTERVAL, false));
        th.retain(&BTreeSet::new());
        assert!(
            th.due("p", Some(5), 6, soon, false),
            "a forgotten pod is new"
        );
    }

    #[test]
    fn a_plan_skips_unknown_unchanged_and_deleted_pods() {
        let mut view = GatewayView::default();
        view.agents.insert("a".into(), agent(5, false, true));
        view.agents.insert("b".into(), agent(1, false, true));
        view.agents.insert("c".into(), agent(2, false, false));
        view.agents.insert("d".into(), agent(0, true, true));
        let mut deleted = pod("e", None);
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        view.agents.insert("e".into(), agent(9, false, true));
        let pods = [
            pod("a", None),
            pod("b", Some("1")),
            pod("c", None),
            pod("d", Some("4")),
            deleted,
            pod("unknown", None),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&Throttle::default(), &refs, &view, Instant::now(), false);
        assert_eq!(p, [("a".to_owned(), 5), ("d".to_owned(), DRAINING_COST)]);
    }
}
