//! The operator's Prometheus metrics (`/metrics` on the HTTP port).

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::hub::Hub;

/// Labels of a reconcile outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `VpnGateway` or `VpnUser`.
    pub kind: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels naming an object kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `VpnGateway` or `VpnUser`.
    pub kind: &'static str,
}

/// Labels of an agent's answer to a configuration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AckLabels {
    /// `accepted` (ACK) or `rejected` (NACK).
    pub result: &'static str,
}

/// Histogram constructor of the reconcile durations.
type HistogramFn = fn() -> Histogram;

fn reconcile_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

/// Every metric of the operator.
pub struct Metrics {
    registry: Registry,
    /// Open agent streams.
    pub agents_connected: Gauge,
    /// Configuration messages sent to agents.
    pub configs_sent: Counter,
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile durations by kind.
    pub reconcile_duration: Family<KindLabels, Histogram, HistogramFn>,
    /// Agents' answers to configurations, by result.
    pub config_acks: Family<AckLabels, Counter>,
    /// Status subresource patches sent, by kind.
    pub status_writes: Family<KindLabels, Counter>,
    /// `controller.kubernetes.io/pod-deletion-cost` patches of data-plane pods.
    pub deletion_cost_patches: Counter,
    /// Compiles rejected because of the gateway itself.
    pub configs_rejected: Counter,
    /// Whether this replica leads (0/1).
    pub leader: Gauge,
    /// Publish-to-ACK delay of configuration changes.
    pub ack_latency: Histogram,
    /// GETs of single referenced Secrets (contents are never listed or watched).
    pub secret_reads: Counter,
    /// CA rotation steps taken (introduce, switch, drop).
    pub ca_rotations: Counter,
    /// Seconds until the signing CA of the control channel expires.
    pub ca_expiry_seconds: Gauge,
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("sluice_operator");
        let m = Metrics {
            agents_connected: Gauge::default(),
            configs_sent: Counter::default(),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_histogram as HistogramFn),
            config_acks: Family::default(),
            status_writes: Family::default(),
            deletion_cost_patches: Counter::default(),
            configs_rejected: Counter::default(),
            leader: Gauge::default(),
            ack_latency: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            secret_reads: Counter::default(),
            ca_rotations: Counter::default(),
            ca_expiry_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "secret_reads",
            "GETs of single Secrets a VpnGateway or VpnUser references",
            m.secret_reads.clone(),
        );
        registry.register(
            "ca_rotation_steps",
            "Control-channel CA rotation steps taken (introduce, switch, drop)",
            m.ca_rotations.clone(),
        );
        registry.register(
            "ca_expiry_seconds",
            "Seconds until the control channel's signing CA expires",
            m.ca_expiry_seconds.clone(),
        );
        registry.register(
            "agents_connected",
            "Open data-plane agent streams",
            m.agents_connected.clone(),
        );
        registry.register(
            "configs_sent",
            "Configuration snapshots sent to agents",
            m.configs_sent.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            m.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile durations by kind",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "config_acks",
            "Agents' answers to configuration snapshots: accepted (ACK) or rejected (NACK)",
            m.config_acks.clone(),
        );
        registry.register(
            "status_writes",
            "Status subresource patches sent to the apiserver, by kind",
            m.status_writes.clone(),
        );
        registry.register(
            "deletion_cost_patches",
            "controller.kubernetes.io/pod-deletion-cost patches of data-plane pods",
            m.deletion_cost_patches.clone(),
        );
        registry.register(
            "configs_rejected",
            "Gateway configurations rejected by compile (agents keep the previous one)",
            m.configs_rejected.clone(),
        );
        registry.register("leader", "1 while this replica leads", m.leader.clone());
        registry.register(
            "config_ack_latency_seconds",
            "Delay from publishing a configuration to an agent's ACK of it",
            m.ack_latency.clone(),
        );
        // Every label value exists from the start, so rates and alerts see 0, not nothing.
        for kind in ["VpnGateway", "VpnUser"] {
            for result in ["ok", "error"] {
                drop(
                    m.reconciles
                        .get_or_create(&ReconcileLabels { kind, result }),
                );
            }
            drop(m.reconcile_duration.get_or_create(&KindLabels { kind }));
            drop(m.status_writes.get_or_create(&KindLabels { kind }));
        }
        for result in ["accepted", "rejected"] {
            drop(m.config_acks.get_or_create(&AckLabels { result }));
        }
        Arc::new(Metrics { registry, ..m })
    }

    /// Counts a reconcile that took `took`.
    pub fn reconciled(&self, kind: &'static str, ok: bool, took: Duration) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(took.as_secs_f64());
    }

    /// Counts an agent's ACK (`accepted`) or NACK.
    pub fn config_ack(&self, accepted: bool) {
        self.config_acks
            .get_or_create(&AckLabels {
                result: if accepted { "accepted" } else { "rejected" },
            })
            .inc();
    }

    /// Counts a status patch of a `kind` object.
    pub fn status_written(&self, kind: &'static str) {
        self.status_writes.get_or_create(&KindLabels { kind }).inc();
    }

    /// OpenMetrics text, after folding in the hub's ACK delays.
    pub fn encode(&self, hub: &Hub) -> String {
        for s in hub.take_ack_latencies() {
            self.ack_latency.observe(s);
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
