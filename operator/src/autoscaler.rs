//! The built-in autoscaler: replicas from the live session counts the agents report
//! (no metrics adapter). Same decision rules as the Kubernetes HPA: a recommendation of
//! ⌈sessions / target⌉ within the bounds, ignored when the load is within a tolerance of
//! the target (hysteresis), applied at once upwards and, downwards, only as far as the
//! highest recommendation of the stabilization window (so a brief dip does not remove a
//! pod whose sessions then have to drain).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Relative distance from the target within which replicas stay as they are.
pub const TOLERANCE: f64 = 0.1;
/// Recommendations kept per gateway (a bound on memory whatever the window).
const MAX_HISTORY: usize = 4096;

/// What `spec.autoscaling` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub target_sessions_per_replica: u32,
    pub scale_down_stabilization: Duration,
}

impl Policy {
    /// The policy of a gateway's `spec.autoscaling`.
    pub fn of(spec: &sluice_api::AutoscalingSpec) -> Policy {
        Policy {
            min_replicas: spec.min_replicas.max(0),
            max_replicas: spec.max_replicas.max(spec.min_replicas).max(1),
            target_sessions_per_replica: spec.target_sessions_per_replica.max(1),
            scale_down_stabilization: Duration::from_secs(spec.scale_down_stabilization_seconds()),
        }
    }

    fn clamp(&self, replicas: i64) -> i32 {
        let r = replicas.clamp(i64::from(self.min_replicas), i64::from(self.max_replicas));
        i32::try_from(r).unwrap_or(self.max_replicas)
    }
}

/// One gateway's recent recommendations.
#[derive(Debug, Default)]
pub struct Recommender {
    history: VecDeque<(Instant, i32)>,
    /// The first observation: until a whole window has been seen (after an operator
    /// restart, agents still reconnecting), replicas never go down.
    since: Option<Instant>,
}

impl Recommender {
    /// The replicas a gateway should run now, with `current` replicas carrying `sessions`.
    pub fn desired(&mut self, now: Instant, policy: &Policy, current: i32, sessions: u64) -> i32 {
        let target = u64::from(policy.target_sessions_per_replica);
        let raw = policy.clamp(i64::try_from(sessions.div_ceil(target)).unwrap_or(i64::MAX));
        // Hysteresis: within the tolerance of the target, the current size is right (as
        // long as it is within the bounds).
        let within = current > 0 && {
            let ratio = sessions as f64 / (f64::from(current) * target as f64);
            (ratio - 1.0).abs() <= TOLERANCE
        };
        let recommendation = if within {
            policy.clamp(i64::from(current))
        } else {
            raw
        };
        if let Some(keep) = now.checked_sub(policy.scale_down_stabilization) {
            while self.history.front().is_some_and(|(t, _)| *t < keep) {
                self.history.pop_front();
            }
        }
        // Recommendations closer together than a 1/1024 of the window share one entry
        // (their highest), so a long window still fits the history bound.
        let bucket = (policy.scale_down_stabilization / 1024).max(Duration::from_secs(1));
        match self.history.back_mut() {
            Some((t, r)) if now.saturating_duration_since(*t) < bucket => {
                *r = (*r).max(recommendation);
            }
            _ => {
                if self.history.len() == MAX_HISTORY {
                    self.history.pop_front();
                }
                self.history.push_back((now, recommendation));
            }
        }
        let since = *self.since.get_or_insert(now);
        if recommendation >= current {
            return recommendation;
        }
        if now.saturating_duration_since(since) < policy.scale_down_stabilization {
            return current;
        }
        // Scale down only to the highest recommendation of the window.
        let highest = self
            .history
            .iter()
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(recommendation);
        policy.clamp(i64::from(highest.min(current)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            min_replicas: 1,
            max_replicas: 5,
            target_sessions_per_replica: 100,
            scale_down_stabilization: Duration::from_secs(600),
        }
    }

    #[test]
    fn replicas_follow_sessions_within_the_bounds() {
        let t = Instant::now();
        let p = policy();
        let mut r = Recommender::default();
        assert_eq!(r.desired(t, &p, 1, 0), 1, "never below minReplicas");
        assert_eq!(r.desired(t, &p, 1, 250), 3, "⌈250 / 100⌉, at once");
        assert_eq!(r.desired(t, &p, 3, 10_000), 5, "never above maxReplicas");
        let zero = Policy {
            min_replicas: 0,
            ..p
        };
        let mut r = Recommender::default();
        assert_eq!(r.desired(t, &zero, 0, 0), 0, "a gateway may scale to zero");
        assert_eq!(r.desired(t, &zero, 0, 1), 1);
    }

    #[test]
    fn load_near_the_target_changes_nothing() {
        let t = Instant::now();
        let p = policy();
        let mut r = Recommender::default();
        // 3 pods, 310 sessions: 3.1 recommended 4 without the tolerance.
        assert_eq!(r.desired(t, &p, 3, 310), 3);
        assert_eq!(r.desired(t, &p, 3, 290), 3);
        assert_eq!(r.desired(t, &p, 3, 331), 4, "beyond 10 %");
    }

    #[test]
    fn no_scale_down_before_a_whole_window_was_seen() {
        // An operator restart: 4 pods, no agent has reported yet.
        let t = Instant::now();
        let p = policy();
        let mut r = Recommender::default();
        assert_eq!(r.desired(t, &p, 4, 0), 4);
        assert_eq!(r.desired(t + Duration::from_secs(30), &p, 4, 350), 4);
        assert_eq!(r.desired(t + Duration::from_secs(599), &p, 4, 0), 4);
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let t = Instant::now();
        let p = policy();
        let mut r = Recommender::default();
        assert_eq!(r.desired(t, &p, 1, 400), 4);
        // The sessions end: the recommendation drops to 1, but the window still holds 4.
        let s = Duration::from_secs;
        assert_eq!(r.desired(t + s(60), &p, 4, 50), 4);
        assert_eq!(r.desired(t + s(300), &p, 4, 150), 4);
        // 10 min after the last recommendation of 4, the highest left is 2 (150 sessions).
        assert_eq!(r.desired(t + s(601), &p, 4, 50), 2);
        assert_eq!(r.desired(t + s(901), &p, 2, 50), 1);
        // Upwards it never waits.
        assert_eq!(r.desired(t + s(902), &p, 1, 500), 5);
    }

    #[test]
    fn a_long_window_keeps_its_peak_within_the_history_bound() {
        let t = Instant::now();
        let p = Policy {
            scale_down_stabilization: Duration::from_secs(24 * 3600),
            ..policy()
        };
        let mut r = Recommender::default();
        assert_eq!(r.desired(t, &p, 1, 500), 5);
        // A reconcile a second for 23 h with little load: the peak of 5 still holds.
        let mut now = t;
        for _ in 0..(23 * 3600) {
            now += Duration::from_secs(1);
            assert_eq!(r.desired(now, &p, 5, 10), 5);
        }
        assert!(r.history.len() <= MAX_HISTORY);
        assert_eq!(
            r.desired(t + Duration::from_secs(24 * 3600 + 90), &p, 5, 10),
            1
        );
    }

    #[test]
    fn a_zero_window_scales_down_at_once() {
        let t = Instant::now();
        let p = Policy {
            scale_down_stabilization: Duration::ZERO,
            ..policy()
        };
        let mut r = Recommender::default();
        assert_eq!(r.desired(t, &p, 1, 400), 4);
        assert_eq!(r.desired(t + Duration::from_secs(1), &p, 4, 50), 1);
    }
}

/// `examples/hpa.yaml` and `examples/keda.yaml`, the alternatives to `spec.autoscaling`:
/// they must target this API's scale subresource and a metric the data plane exports.
#[cfg(test)]
mod examples {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use kube::{CustomResourceExt, Resource};
    use sluice_api::VpnGateway;

    const HPA: &str = include_str!("../../examples/hpa.yaml");
    const KEDA: &str = include_str!("../../examples/keda.yaml");
    const GATEWAYS: &str = include_str!("../../examples/kubernetes.yaml");

    fn check_target(api_version: &str, kind: &str, name: &str) {
        assert_eq!(api_version, VpnGateway::api_version(&()));
        assert_eq!(kind, VpnGateway::kind(&()));
        let crd = VpnGateway::crd();
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.name == VpnGateway::version(&())
                    && v.subresources.as_ref().is_some_and(|s| s.scale.is_some())),
            "the VpnGateway CRD has a scale subresource"
        );
        // The gateway of examples/kubernetes.yaml, which leaves spec.autoscaling out.
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(GATEWAYS).unwrap();
        let gw = docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .expect("the gateway of examples/kubernetes.yaml");
        assert_eq!(gw["metadata"]["namespace"], "vpn");
        assert!(
            gw["spec"].get("autoscaling").is_none(),
            "not both autoscalers at once"
        );
    }

    /// The metric is in the data plane's catalogue (`docs/metrics.md`).
    fn dataplane_exports(metric: &str) {
        let catalogue = include_str!("../../docs/metrics.md");
        assert!(
            catalogue.contains(&format!("| `{metric}` | gauge |")),
            "the data plane exports {metric}"
        );
    }

    #[test]
    fn the_hpa_example_scales_the_gateway_on_sessions_per_pod() {
        let hpa: HorizontalPodAutoscaler = serde_saphyr::from_str(HPA).unwrap();
        assert_eq!(hpa.metadata.namespace.as_deref(), Some("vpn"));
        let spec = hpa.spec.unwrap();
        let t = &spec.scale_target_ref;
        check_target(t.api_version.as_deref().unwrap(), &t.kind, &t.name);
        let metrics = spec.metrics.unwrap();
        let pods = metrics[0].pods.as_ref().unwrap();
        assert_eq!(pods.metric.name, "sluice_sessions_active");
        assert_eq!(pods.target.type_, "AverageValue");
        dataplane_exports(&pods.metric.name);
    }

    #[test]
    fn the_keda_example_scales_the_gateway_on_a_prometheus_sum() {
        let so: serde_json::Value = serde_saphyr::from_str(KEDA).unwrap();
        assert_eq!(so["apiVersion"], "keda.sh/v1alpha1");
        assert_eq!(so["kind"], "ScaledObject");
        assert_eq!(so["metadata"]["namespace"], "vpn");
        let t = &so["spec"]["scaleTargetRef"];
        check_target(
            t["apiVersion"].as_str().unwrap(),
            t["kind"].as_str().unwrap(),
            t["name"].as_str().unwrap(),
        );
        let trigger = &so["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "prometheus");
        let query = trigger["metadata"]["query"].as_str().unwrap();
        assert!(query.starts_with("sum(sluice_sessions_active{"), "{query}");
        // The per-gateway metrics Service the operator creates.
        let names = crate::names::GatewayNames::new("vpn", "office");
        assert!(
            query.contains(&format!("service=\"{}\"", names.metrics_service)),
            "{query}"
        );
        assert!(trigger["metadata"]["threshold"].is_string());
        dataplane_exports("sluice_sessions_active");
    }
}
