//! The data plane's management endpoints. Two listeners:
//!
//! * metrics (`--metrics-listen`, reachable by Prometheus and the kubelet): `/metrics`
//!   (OpenMetrics text), `/healthz` (the process is alive), `/readyz` (a configuration is
//!   applied and the gateway is not draining: 503 otherwise);
//! * admin (`--admin-listen`, loopback only, bearer token): `/sessions` and `/drain`, see
//!   [`crate::http::admin`].
//!
//! Both are bounded ([`crate::http::listener`]) so that no client can hold the process's
//! descriptors.

pub mod admin;
pub mod admin_token;
pub mod listener;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use thiserror::Error;
use tokio::net::TcpListener;

use crate::gateway::Gateway;
use crate::http::admin_token::{AdminToken, TokenError};
use crate::http::listener::{BoundedListener, Bounds};
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

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode_with_users(
            state
                .gateway()
                .and_then(|gw| gw.user_series())
                .as_deref()
                .map(|users| users.iter().map(|(u, s)| (u.as_str(), *s))),
        ),
    )
}

async fn readyz(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    match state.gateway() {
        Some(gw) if gw.draining() => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        Some(_) => (StatusCode::OK, "ready"),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration applied yet",
        ),
    }
}

/// The public routes: metrics and probes, nothing that names a user or changes anything.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves the metrics endpoint on a bound listener.
pub async fn serve_listener(
    state: Arc<HttpState>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(
        BoundedListener::new(listener, METRICS_BOUNDS),
        router(state),
    )
    .await
}

/// Bounds of the metrics listener (Prometheus, kubelet probes).
const METRICS_BOUNDS: Bounds = Bounds {
    max_connections: 32,
    lifetime: Duration::from_secs(30),
};
/// Bounds of the admin listener (the CLI, the preStop hook).
const ADMIN_BOUNDS: Bounds = Bounds {
    max_connections: 8,
    lifetime: Duration::from_secs(30),
};

/// Where the management endpoints listen.
#[derive(Clone, Debug)]
pub struct Endpoints {
    /// `/metrics`, `/healthz`, `/readyz`.
    pub metrics: SocketAddr,
    /// `/sessions`, `/drain` (loopback only).
    pub admin: SocketAddr,
    /// Where the admin endpoint's bearer token is written.
    pub admin_token_file: PathBuf,
}

/// Why the management endpoints could not start.
#[derive(Debug, Error)]
pub enum EndpointError {
    #[error("{endpoint} endpoint: binding {addr}: {source}")]
    Bind {
        endpoint: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    NotLoopback(#[from] admin::NotLoopback),
    #[error(transparent)]
    Token(#[from] TokenError),
}

async fn bind(endpoint: &'static str, addr: SocketAddr) -> Result<TcpListener, EndpointError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| EndpointError::Bind {
            endpoint,
            addr,
            source,
        })
}

/// Binds both endpoints, writes a fresh admin token and serves them in the background.
/// Returns the bound addresses (metrics, admin).
pub async fn start(
    state: Arc<HttpState>,
    at: &Endpoints,
) -> Result<(SocketAddr, SocketAddr), EndpointError> {
    admin::check_loopback(at.admin)?;
    let metrics = bind("metrics", at.metrics).await?;
    let admin_listener = bind("admin", at.admin).await?;
    let token = AdminToken::generate();
    token.write_file(&at.admin_token_file)?;
    let bound = (
        metrics.local_addr().unwrap_or(at.metrics),
        admin_listener.local_addr().unwrap_or(at.admin),
    );
    let admin_app = admin::router(state.clone(), Arc::new(token));
    tokio::spawn(async move {
        if let Err(e) = serve_listener(state, metrics).await {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    tokio::spawn(async move {
        let l = BoundedListener::new(admin_listener, ADMIN_BOUNDS);
        if let Err(e) = axum::serve(l, admin_app).await {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    });
    Ok(bound)
}
