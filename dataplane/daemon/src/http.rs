//! The data plane's HTTP endpoint: `/metrics` (Prometheus text), `/sessions`
//! (JSON for `sluice-dataplane sessions`), `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::gateway::{Gateway, method_name};

/// One row of the session table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    pub user: String,
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
                protocol: "pptp".into(),
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

async fn metrics(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.dp.metrics.encode(),
    )
}

async fn sessions_json(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    match serde_json::to_string(&sessions(&gw)) {
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

/// Serves the endpoint until the process exits.
pub async fn serve(gw: Arc<Gateway>, addr: SocketAddr) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/sessions", get(sessions_json))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(gw);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
