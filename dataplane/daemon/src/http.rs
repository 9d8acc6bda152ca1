//! The data plane's HTTP endpoint: `/metrics` (Prometheus text), `/sessions`
//! (JSON for `sluice-dataplane sessions`), `/healthz` (the process is alive)
//! and `/readyz` (a configuration is applied: 503 until then).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::gateway::{Gateway, method_name};
use crate::metrics::Metrics;

/// What the endpoint serves: the metrics from the start, the gateway once it runs.
pub struct HttpState {
    metrics: Arc<Metrics>,
    gateway: OnceLock<Arc<Gateway>>,
}

impl HttpState {
    pub fn new(metrics: Arc<Metrics>) -> HttpState {
        HttpState {
            metrics,
            gateway: OnceLock::new(),
        }
    }

    /// Records the running gateway (once; later calls are ignored). Makes `/readyz` succeed.
    pub fn set_gateway(&self, gw: Arc<Gateway>) {
        let _ = self.gateway.set(gw);
    }

    /// The running gateway, once a configuration has been applied.
    pub fn gateway(&self) -> Option<&Arc<Gateway>> {
        self.gateway.get()
    }
}

/// One row of the session table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: String,
    /// "namespace/name" of the VpnUser (empty before authentication).
    #[serde(default)]
    pub source: String,
    pub protocol: String,
    /// Tunnel address assigned to the client.
    pub address: Option<String>,
    /// The client's public address.
    pub caller: String,
    pub call_id: u16,
    pub peer_call_id: u16,
    /// "up", or the setup phase.
    pub state: String,
    pub auth: Option<String>,
    pub encoding: String,
    pub uptime_seconds: u64,
    /// Seconds since the Unix epoch when the session came up.
    pub since: Option<u64>,
    /// IP bytes from the client.
    pub bytes_in: u64,
    /// IP bytes to the client.
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

/// Snapshot of every session of a gateway.
pub fn sessions(gw: &Gateway) -> Vec<SessionInfo> {
    let mut out: Vec<SessionInfo> = gw
        .dp
        .links
        .all()
        .into_iter()
        .map(|l| {
            let st = l.lock();
            SessionInfo {
                user: st.username.clone().unwrap_or_default(),
                source: st.source.clone(),
                protocol: l.protocol.as_str().into(),
                address: st.address.map(|a| a.to_string()),
                caller: l.peer.to_string(),
                call_id: l.local_call_id,
                peer_call_id: l.peer_call_id,
                state: if st.up_at.is_some() {
                    "up".into()
                } else {
                    format!("{:?}", st.ppp.phase()).to_lowercase()
                },
                auth: st.auth_method.map(|m| method_name(m).to_owned()),
                encoding: st.encoding.to_string(),
                uptime_seconds: st.up_at.map(|(t, _)| t.elapsed().as_secs()).unwrap_or(0),
                since: st.up_at.and_then(|(_, w)| {
                    w.duration_since(SystemTime::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs())
                }),
                bytes_in: l.stats.rx_bytes.load(Ordering::Relaxed),
                bytes_out: l.stats.tx_bytes.load(Ordering::Relaxed),
                packets_in: l.stats.rx_packets.load(Ordering::Relaxed),
                packets_out: l.stats.tx_packets.load(Ordering::Relaxed),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.user, a.call_id).cmp(&(&b.user, b.call_id)));
    out
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn sessions_json(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let rows = state.gateway().map(|gw| sessions(gw)).unwrap_or_default();
    match serde_json::to_string(&rows) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

async fn readyz(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    if state.gateway().is_some() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration applied yet",
        )
    }
}

/// Serves the endpoint on `addr` until the process exits.
pub async fn serve(state: Arc<HttpState>, addr: SocketAddr) -> std::io::Result<()> {
    serve_listener(state, tokio::net::TcpListener::bind(addr).await?).await
}

/// Serves the endpoint on a bound listener.
pub async fn serve_listener(
    state: Arc<HttpState>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/sessions", get(sessions_json))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app).await
}

/// Runs [`serve`] in the background, logging when it fails.
pub fn spawn(state: Arc<HttpState>, addr: SocketAddr) {
    tokio::spawn(async move {
        if let Err(e) = serve(state, addr).await {
            tracing::error!(%addr, error = %e, "HTTP endpoint failed");
        }
    });
}
