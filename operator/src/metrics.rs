//! The operator's Prometheus metrics (`/metrics` on the HTTP port).

use std::sync::Arc;

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

/// Every metric of the operator.
pub struct Metrics {
    registry: Registry,
    /// Open agent streams.
    pub agents_connected: Gauge,
    /// Configuration messages sent to agents.
    pub configs_sent: Counter,
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Compiles rejected because of the gateway itself.
    pub configs_rejected: Counter,
    /// Whether this replica leads (0/1).
    pub leader: Gauge,
    /// Publish-to-ACK delay of configuration changes.
    pub ack_latency: Histogram,
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("sluice_operator");
        let m = Metrics {
            agents_connected: Gauge::default(),
            configs_sent: Counter::default(),
            reconciles: Family::default(),
            configs_rejected: Counter::default(),
            leader: Gauge::default(),
            ack_latency: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            registry: Registry::default(),
        };
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
        Arc::new(Metrics { registry, ..m })
    }

    /// Counts a reconcile.
    pub fn reconciled(&self, kind: &'static str, ok: bool) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind,
                result: if ok { "ok" } else { "error" },
            })
            .inc();
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
