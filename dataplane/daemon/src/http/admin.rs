//! The admin endpoint: `/sessions` (JSON for `sluice-dataplane sessions`) and `/drain` (GET:
//! the drain status; POST `?timeout=SECONDS`: start draining, or bring the deadline forward,
//! see [`Gateway::start_drain`]; JSON [`DrainStatus`] either way).
//!
//! It listens on loopback only and answers only requests with the bearer token of
//! [`crate::http::admin_token`]; anything else gets 401 and nothing more. Session rows name users
//! and their addresses, and a drain ends every session of the node: neither is for the
//! network the metrics port faces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::info;

use crate::gateway::snapshot::{self, Session, SessionPhase};
use crate::gateway::{Gateway, method_name};
use crate::http::HttpState;
use crate::http::admin_token::AdminToken;

/// Why the admin endpoint cannot listen where it was asked to.
#[derive(Debug, Error)]
#[error(
    "the admin endpoint (/sessions, /drain) listens on loopback only, not {0}; use 127.0.0.1:PORT"
)]
pub struct NotLoopback(pub SocketAddr);

/// Checks that `addr` is a loopback address.
pub fn check_loopback(addr: SocketAddr) -> Result<(), NotLoopback> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(NotLoopback(addr))
    }
}

/// One row of the session table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionInfo {
    /// `server` (a session this node serves) or `client` (a call it dialled, `VpnClient`).
    #[serde(default = "server_role")]
    pub role: String,
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
    /// The session's bandwidth limit as `down/up` bits per second (`10M/2M`, `-` for an
    /// unlimited direction), when the user has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<String>,
}

fn server_role() -> String {
    snapshot::Role::Server.as_str().to_owned()
}

/// Every session of a gateway as table rows.
pub fn sessions(gw: &Gateway) -> Vec<SessionInfo> {
    snapshot::sessions(gw)
        .iter()
        .map(SessionInfo::from)
        .collect()
}

impl From<&Session> for SessionInfo {
    fn from(s: &Session) -> Self {
        let (state, uptime) = match s.phase {
            SessionPhase::Up { uptime, .. } => ("up".to_owned(), uptime.as_secs()),
            SessionPhase::Setup(phase) => (format!("{phase:?}").to_lowercase(), 0),
        };
        SessionInfo {
            role: s.role.as_str().to_owned(),
            user: s.user.clone().unwrap_or_default(),
            source: s.source.clone(),
            protocol: s.protocol.as_str().into(),
            address: s.address.map(|a| a.to_string()),
            caller: s.caller.to_string(),
            call_id: s.call_id,
            peer_call_id: s.peer_call_id,
            state,
            auth: s.auth.map(|m| method_name(m).to_owned()),
            encoding: s.encoding.to_string(),
            uptime_seconds: uptime,
            since: s.since().and_then(|w| {
                w.duration_since(SystemTime::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs())
            }),
            bytes_in: s.traffic.bytes_in,
            bytes_out: s.traffic.bytes_out,
            packets_in: s.traffic.packets_in,
            packets_out: s.traffic.packets_out,
            rate_limit: s.rate_limit.map(|r| r.display()),
        }
    }
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

/// What `/drain` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainStatus {
    pub draining: bool,
    /// Sessions still up or in setup.
    pub sessions: usize,
    /// Seconds until the remaining sessions are closed anyway (while draining).
    pub remaining_seconds: Option<u64>,
}

/// Default drain timeout of `POST /drain` without `?timeout=`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest drain timeout accepted (a week).
const MAX_DRAIN_TIMEOUT: u64 = 7 * 24 * 3600;

/// The `timeout` of a `/drain` query string, in seconds.
fn drain_timeout(query: Option<&str>) -> Result<Duration, String> {
    let Some(v) = query
        .unwrap_or_default()
        .split('&')
        .find_map(|kv| kv.strip_prefix("timeout="))
    else {
        return Ok(DEFAULT_DRAIN_TIMEOUT);
    };
    match v.parse::<u64>() {
        Ok(s) if s <= MAX_DRAIN_TIMEOUT => Ok(Duration::from_secs(s)),
        _ => Err(format!(
            "timeout must be whole seconds from 0 to {MAX_DRAIN_TIMEOUT}, not {v:?}"
        )),
    }
}

fn drain_status(gw: &Gateway) -> DrainStatus {
    DrainStatus {
        draining: gw.draining(),
        sessions: gw.dp.links.served(),
        remaining_seconds: gw
            .drain_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()).as_secs()),
    }
}

fn json_response<T: Serialize>(v: &T) -> axum::response::Response {
    match serde_json::to_string(v) {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn drain_get(State(state): State<Arc<HttpState>>) -> axum::response::Response {
    match state.gateway() {
        Some(gw) => json_response(&drain_status(gw)),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration applied yet",
        )
            .into_response(),
    }
}

async fn drain_post(State(state): State<Arc<HttpState>>, uri: Uri) -> axum::response::Response {
    let timeout = match drain_timeout(uri.query()) {
        Ok(t) => t,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let Some(gw) = state.gateway() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration applied yet",
        )
            .into_response();
    };
    let was = gw.drain_deadline();
    let deadline = gw.start_drain(Instant::now(), timeout);
    if was != Some(deadline) {
        info!(
            sessions = gw.dp.links.served(),
            timeout_s = timeout.as_secs(),
            "draining: refusing new sessions, exiting once none is left or at the timeout"
        );
    }
    json_response(&drain_status(gw))
}

/// The client tunnels this node dials (`VpnClient`s), with their dialler's status.
async fn clients_json(State(state): State<Arc<HttpState>>) -> axum::response::Response {
    let rows = state
        .gateway()
        .map(|gw| gw.diallers.statuses())
        .unwrap_or_default();
    json_response(&rows)
}

/// The admin routes, behind the token check.
pub fn router(state: Arc<HttpState>, token: Arc<AdminToken>) -> Router {
    Router::new()
        .route("/sessions", get(sessions_json))
        .route("/clients", get(clients_json))
        .route("/drain", get(drain_get).post(drain_post))
        .layer(middleware::from_fn_with_state(token, authorize))
        .with_state(state)
}

/// Lets a request through only with `Authorization: Bearer <token>`.
async fn authorize(State(token): State<Arc<AdminToken>>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| token.accepts(v.as_bytes()));
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "the admin endpoint needs the token of --admin-token-file\n",
        )
            .into_response();
    }
    next.run(req).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn drain_timeout_from_the_query_string() {
        assert_eq!(drain_timeout(None), Ok(DEFAULT_DRAIN_TIMEOUT));
        assert_eq!(drain_timeout(Some("")), Ok(DEFAULT_DRAIN_TIMEOUT));
        assert_eq!(drain_timeout(Some("timeout=0")), Ok(Duration::ZERO));
        assert_eq!(
            drain_timeout(Some("x=1&timeout=90")),
            Ok(Duration::from_secs(90))
        );
        for bad in ["timeout=", "timeout=-1", "timeout=1h", "timeout=604801"] {
            let e = drain_timeout(Some(bad)).unwrap_err();
            assert!(e.contains("timeout must be whole seconds"), "{bad}: {e}");
        }
    }
}
