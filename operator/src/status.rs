//! Pure status builders: what `VpnGateway.status` and `VpnUser.status` should say, from the
//! objects and the hub's view of the agents.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_api::{VpnGateway, VpnGatewayStatus, VpnUser, VpnUserStatus};

use crate::conditions::{Desired, merge};
use crate::hub::{GatewayView, UserView, timestamp};
use crate::names::GatewayNames;

/// Node addresses clients dial: for each ready pod of the gateway that is not `draining`
/// (pod names whose agent reported draining: left out at once, before the pod turns
/// not-ready), its node's ExternalIP, else its InternalIP. Sorted, without duplicates.
pub fn endpoints<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    nodes: &dyn Fn(&str) -> Option<std::sync::Arc<Node>>,
    draining: &BTreeSet<String>,
) -> Vec<String> {
    let mut out: Vec<String> = pods
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.metadata
                    .name
                    .as_ref()
                    .is_none_or(|n| !draining.contains(n))
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .filter_map(|n| {
            let node = nodes(&n)?;
            let addrs = node.status.as_ref()?.addresses.as_ref()?;
            let pick = |t: &str| {
                addrs
                    .iter()
                    .find(|a| a.type_ == t)
                    .map(|a| a.address.clone())
            };
            pick("ExternalIP").or_else(|| pick("InternalIP"))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `VpnGateway.status`.
///
/// * `Ready`: the configuration compiled, every wanted replica is ready and every connected
///   agent runs the current version.
/// * `Progressing`: the Deployment is rolling out or agents have not yet ACKed the current
///   version.
/// * `Degraded`: the configuration was rejected (the agents keep the previous one), or an
///   agent NACKed the current version.
pub fn gateway_status(
    gw: &VpnGateway,
    names: &GatewayNames,
    deployment: Option<&Deployment>,
    endpoints: Vec<String>,
    view: &GatewayView,
    compile_error: Option<&str>,
    now: &Time,
) -> VpnGatewayStatus {
    let wanted = gw.spec.replicas;
    let ds = deployment.and_then(|d| d.status.as_ref());
    let replicas = ds.and_then(|s| s.replicas).unwrap_or(0);
    let ready = ds.and_then(|s| s.ready_replicas).unwrap_or(0);
    let updated = ds.and_then(|s| s.updated_replicas).unwrap_or(0);
    let rolled = deployment.is_some_and(|d| {
        d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation
    }) && updated >= wanted;
    // The Deployment gave up on the rollout (`progressDeadlineSeconds`).
    let stuck = ds
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
        })
        .map(|c| c.message.clone().unwrap_or_default());

    let version = view.version.as_deref();
    let lagging: Vec<&str> = view
        .agents
        .iter()
        .filter(|(_, a)| a.connected && Some(a.applied_version.as_str()) != version)
        .map(|(pod, _)| pod.as_str())
        .collect();
    let nacks: Vec<String> = view
        .agents
        .iter()
        .filter_map(|(pod, a)| {
            let (v, err) = a.nack.as_ref()?;
            (Some(v.as_str()) == version).then(|| format!("pod {pod}: {err}"))
        })
        .collect();

    let degraded = match (compile_error, nacks.is_empty()) {
        (Some(e), _) => Desired::new(
            "Degraded",
            true,
            "ConfigRejected",
            format!("the configuration was rejected; data-plane pods keep the previous one:\n{e}"),
        ),
        (None, false) => Desired::new(
            "Degraded",
            true,
            "ConfigNotApplied",
            format!(
                "data-plane pods rejected configuration {}:\n{}",
                version.unwrap_or(""),
                nacks.join("\n")
            ),
        ),
        (None, true) => match &stuck {
            Some(m) => Desired::new(
                "Degraded",
                true,
                "RolloutStuck",
                format!("the data-plane Deployment made no progress: {m}"),
            ),
            None => Desired::new("Degraded", false, "AsExpected", ""),
        },
    };
    let progressing = if !rolled {
        Desired::new(
            "Progressing",
            true,
            "RollingOut",
            format!("{updated} of {wanted} data-plane pods updated"),
        )
    } else if ready < wanted && stuck.is_none() {
        Desired::new(
            "Progressing",
            true,
            "WaitingForPods",
            format!(
                "{ready} of {wanted} data-plane pods ready (pending pods wait for a node or are starting)"
            ),
        )
    } else if !lagging.is_empty() {
        Desired::new(
            "Progressing",
            true,
            "PushingConfig",
            format!(
                "waiting for {} to apply configuration {}",
                lagging.join(", "),
                version.unwrap_or("")
            ),
        )
    } else {
        Desired::new("Progressing", false, "Stable", "")
    };
    let ready_cond = if version.is_none() {
        Desired::new(
            "Ready",
            false,
            "NoConfig",
            "no valid configuration has been compiled for this gateway yet",
        )
    } else if wanted == 0 {
        Desired::new("Ready", false, "ScaledToZero", "spec.replicas is 0")
    } else if ready < wanted {
        Desired::new(
            "Ready",
            false,
            "ReplicasNotReady",
            format!("{ready} of {wanted} data-plane pods ready"),
        )
    } else if !lagging.is_empty() || !nacks.is_empty() {
        Desired::new(
            "Ready",
            false,
            "ConfigNotApplied",
            "not every data-plane pod runs the current configuration",
        )
    } else {
        Desired::new(
            "Ready",
            true,
            "AllReplicasReady",
            format!(
                "{ready} data-plane pods serve configuration {}",
                version.unwrap_or("")
            ),
        )
    };
    let existing = gw
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    VpnGatewayStatus {
        observed_generation: gw.metadata.generation,
        replicas: Some(replicas),
        ready_replicas: Some(ready),
        draining_replicas: Some(i32::try_from(view.draining_pods().len()).unwrap_or(i32::MAX)),
        selector: Some(names.selector_string()),
        endpoints,
        sessions: if view.sessions_unknown {
            gw.status.as_ref().and_then(|s| s.sessions.clone())
        } else {
            Some(view.sessions.clone())
        },
        config_version: view.version.clone(),
        firewall: firewall(gw),
        conditions: merge(
            existing,
            vec![ready_cond, progressing, degraded],
            gw.metadata.generation,
            now,
        ),
    }
}

/// The flows of the enabled protocols, then the data plane's metrics port: open only to the
/// Prometheus scraper (its admin port is loopback-only and needs no rule).
pub fn firewall(gw: &VpnGateway) -> Vec<sluice_api::FirewallRule> {
    let mut rules = gw.spec.firewall_rules();
    rules.push(sluice_api::FirewallRule {
        protocol: "tcp".into(),
        port: u16::try_from(crate::names::DATAPLANE_HTTP_PORT).ok(),
        purpose: "data-plane metrics and health (/metrics, /healthz, /readyz): allow only from \
                  the Prometheus scraper and the node itself, never from clients or the internet"
            .into(),
    });
    rules
}

/// Why a user is not served, as the user reconciler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserProblem {
    /// The user is disabled.
    Disabled,
    /// The referenced gateway does not exist.
    GatewayMissing(String),
    /// The password Secret (or its key) is absent.
    SecretMissing(String),
    /// The gateway's compile left the user out.
    Rejected(String),
    /// The gateway has not compiled yet.
    Pending,
    /// The gateway serves the user, but none of its data-plane pods is ready.
    GatewayNotReady(String),
}

/// The condition part of `VpnUser.status` (`Ready`, `SecretMissing`, `observedGeneration`).
pub fn user_conditions(user: &VpnUser, problem: Option<&UserProblem>, now: &Time) -> VpnUserStatus {
    let secret_missing = match problem {
        Some(UserProblem::SecretMissing(m)) => {
            Desired::new("SecretMissing", true, "SecretNotFound", m.clone())
        }
        _ => Desired::new("SecretMissing", false, "SecretFound", ""),
    };
    let ready = match problem {
        None => Desired::new("Ready", true, "Configured", "the user can log in"),
        Some(UserProblem::Disabled) => {
            Desired::new("Ready", false, "Disabled", "spec.disabled is true")
        }
        Some(UserProblem::GatewayMissing(m)) => {
            Desired::new("Ready", false, "GatewayNotFound", m.clone())
        }
        Some(UserProblem::SecretMissing(m)) => {
            Desired::new("Ready", false, "SecretNotFound", m.clone())
        }
        Some(UserProblem::Rejected(m)) => Desired::new("Ready", false, "ConfigRejected", m.clone()),
        Some(UserProblem::GatewayNotReady(m)) => {
            Desired::new("Ready", false, "GatewayNotReady", m.clone())
        }
        Some(UserProblem::Pending) => Desired::new(
            "Ready",
            false,
            "GatewayNotConfigured",
            "the gateway has no valid configuration yet",
        ),
    };
    let existing = user
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    VpnUserStatus {
        observed_generation: user.metadata.generation,
        conditions: merge(
            existing,
            vec![ready, secret_missing],
            user.metadata.generation,
            now,
        ),
        ..VpnUserStatus::default()
    }
}

/// The live-session part of `VpnUser.status`. `lastLogin`/`lastAuthFailure` keep what the
/// status already says when the operator has seen nothing newer (they outlive restarts).
pub fn user_sessions(user: &VpnUser, view: &UserView) -> VpnUserStatus {
    let old = user.status.clone().unwrap_or_default();
    let first = view.sessions.first();
    let last_login = match (view.last_login.map(timestamp), old.last_login) {
        (Some(new), Some(old)) => Some(new.max(old)),
        (new, old) => new.or(old),
    };
    let last_auth_failure = match (view.last_failure.clone(), old.last_auth_failure) {
        (Some(new), Some(old)) => Some(if new.time >= old.time { new } else { old }),
        (new, old) => new.or(old),
    };
    VpnUserStatus {
        connected: Some(!view.sessions.is_empty()),
        address: first.map(|s| s.address.clone()),
        protocol: first.map(|s| s.protocol.clone()),
        sessions: view.sessions.clone(),
        last_login,
        last_auth_failure,
        ..VpnUserStatus::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::sync::Arc;

    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeStatus, PodCondition, PodSpec, PodStatus};

    use super::*;
    use crate::hub::Agent;

    fn gw() -> VpnGateway {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "VpnGateway",
            "metadata": {"name": "office", "namespace": "vpn", "generation": 4},
            "spec": {"replicas": 2, "ppp": {"localAddress": "10.200.0.1", "addressPool": "10.200.0.0/24"}}
        }))
        .unwrap()
    }

    fn deployment(ready: i32) -> Deployment {
        let mut d = Deployment::default();
        d.metadata.generation = Some(2);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: Some(2),
            ready_replicas: Some(ready),
            updated_replicas: Some(2),
            ..DeploymentStatus::default()
        });
        d
    }

    fn view(applied: [&str; 2], nack: Option<&str>) -> GatewayView {
        let mut v = GatewayView {
            version: Some("v2".into()),
            ..GatewayView::default()
        };
        for (i, a) in applied.iter().enumerate() {
            v.agents.insert(
                format!("p{i}"),
                Agent {
                    connected: true,
                    applied_version: (*a).into(),
                    nack: nack
                        .filter(|_| i == 1)
                        .map(|e| ("v2".to_owned(), e.to_owned())),
                    ..Agent::default()
                },
            );
        }
        v
    }

    fn cond<'a>(
        s: &'a VpnGatewayStatus,
        t: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn t0() -> Time {
        Time(jiff::Timestamp::from_second(1_780_000_000).unwrap())
    }

    #[test]
    fn ready_when_every_pod_serves_the_current_version() {
        let g = gw();
        let names = GatewayNames::new("vpn", "office");
        let s = gateway_status(
            &g,
            &names,
            Some(&deployment(2)),
            vec![],
            &view(["v2", "v2"], None),
            None,
            &t0(),
        );
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Progressing").status, "False");
        assert_eq!(cond(&s, "Degraded").status, "False");
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.draining_replicas, Some(0));
    }

    #[test]
    fn draining_agents_are_counted() {
        let mut v = view(["v2", "v2"], None);
        if let Some(a) = v.agents.get_mut("p1") {
            a.draining = true;
        }
        let names = GatewayNames::new("vpn", "office");
        let s = gateway_status(&gw(), &names, Some(&deployment(2)), vec![], &v, None, &t0());
        assert_eq!(s.draining_replicas, Some(1));
        // A disconnected agent's last report does not count.
        if let Some(a) = v.agents.get_mut("p1") {
            a.connected = false;
        }
        let s = gateway_status(&gw(), &names, Some(&deployment(2)), vec![], &v, None, &t0());
        assert_eq!(s.draining_replicas, Some(0));
    }

    #[test]
    fn a_nack_is_degraded_and_a_lagging_pod_is_progressing() {
        let g = gw();
        let names = GatewayNames::new("vpn", "office");
        let s = gateway_status(
            &g,
            &names,
            Some(&deployment(2)),
            vec![],
            &view(["v2", "v1"], Some("bad pool")),
            None,
            &t0(),
        );
        let d = cond(&s, "Degraded");
        assert_eq!(
            (d.status.as_str(), d.reason.as_str()),
            ("True", "ConfigNotApplied")
        );
        assert!(d.message.contains("pod p1: bad pool"), "{}", d.message);
        assert_eq!(cond(&s, "Progressing").reason, "PushingConfig");
        assert_eq!(cond(&s, "Ready").reason, "ConfigNotApplied");
        let s = gateway_status(
            &g,
            &names,
            Some(&deployment(1)),
            vec![],
            &view(["v2", "v2"], None),
            Some("VpnGateway/vpn/office: spec.ppp.mtu …"),
            &t0(),
        );
        assert_eq!(cond(&s, "Degraded").reason, "ConfigRejected");
        assert_eq!(cond(&s, "Ready").reason, "ReplicasNotReady");
    }

    #[test]
    fn endpoints_prefer_external_addresses_of_ready_pods() {
        let pod = |node: &str, ready: &str| Pod {
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
            ..Pod::default()
        };
        let node = |addrs: &[(&str, &str)]| {
            Arc::new(Node {
                status: Some(NodeStatus {
                    addresses: Some(
                        addrs
                            .iter()
                            .map(|(t, a)| NodeAddress {
                                type_: (*t).into(),
                                address: (*a).into(),
                            })
                            .collect(),
                    ),
                    ..NodeStatus::default()
                }),
                ..Node::default()
            })
        };
        let lookup = |n: &str| match n {
            "a" => Some(node(&[
                ("InternalIP", "10.0.0.1"),
                ("ExternalIP", "203.0.113.1"),
            ])),
            "b" => Some(node(&[("InternalIP", "10.0.0.2")])),
            "c" => Some(node(&[("ExternalIP", "203.0.113.3")])),
            _ => None,
        };
        let pods = [
            pod("a", "True"),
            pod("b", "True"),
            pod("c", "False"),
            pod("gone", "True"),
            pod("a", "True"),
        ];
        let none = BTreeSet::new();
        assert_eq!(
            endpoints(pods.iter(), &lookup, &none),
            ["10.0.0.2", "203.0.113.1"]
        );
        // A ready pod whose agent reported draining is left out at once.
        let mut named = pods.clone();
        for (i, p) in named.iter_mut().enumerate() {
            p.metadata.name = Some(format!("p{i}"));
        }
        let draining = BTreeSet::from(["p1".to_owned()]);
        assert_eq!(endpoints(named.iter(), &lookup, &draining), ["203.0.113.1"]);
    }
}
