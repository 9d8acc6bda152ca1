//! Agent mode's control channel: one `sluice.v1.Control/Connect` stream to the
//! operator. The agent says `Hello`, applies every configuration it is sent
//! through a [`ConfigSink`] and answers each with an ACK or NACK, and reports
//! session events (batched, every `event_interval`) and a full session snapshot
//! with counters (on connect and every `report_interval`). Every report says
//! whether the pod is draining; a full report goes out at the first event tick
//! after draining starts, so the operator stops advertising the pod at once.
//! When the stream breaks it reconnects with back-off; the sink keeps serving
//! its last good configuration meanwhile and is never asked to drop anything.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sluice_proto::v1 as pb;
use sluice_proto::v1::agent_message::Body;
use sluice_proto::v1::control_client::ControlClient;
use sluice_proto::v1::operator_message;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{ClientTlsConfig, Endpoint};
use tracing::{debug, info, warn};

pub use crate::backoff::Backoff;

/// Why a sink refused a configuration: each sink's own typed error; its text (which must
/// not contain secrets) goes back to the operator as the NACK.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync>;

/// What the agent drives: the gateway, or a fake in tests.
pub trait ConfigSink: Send + Sync {
    /// Applies a full configuration. On error the previous one stays in force.
    fn apply(&self, config: &pb::GatewayConfig) -> Result<(), ApplyError>;
    /// Version of the configuration in force, if any.
    fn applied_version(&self) -> Option<String>;
    /// Every live (network phase up) session.
    fn snapshot(&self) -> Vec<pb::Session>;
    /// Session events since the last call, oldest first.
    fn drain_events(&self) -> Vec<pb::SessionEvent>;
    /// Cumulative counters since the process started.
    fn counters(&self) -> pb::Counters;
    /// The control stream opened (`true`) or broke (`false`).
    fn set_connected(&self, _connected: bool) {}
    /// Whether the gateway is draining (refuses new sessions, exits once empty).
    fn draining(&self) -> bool {
        false
    }
}

/// Builds fresh TLS settings (e.g. re-reads renewed certificate files).
pub type TlsReload = Arc<dyn Fn() -> Result<ClientTlsConfig, super::tls::TlsError> + Send + Sync>;

/// Settings of [`run_agent`].
pub struct AgentOptions {
    /// Operator URL: `https://…` with `tls`, `http://…` (tests only) without.
    pub endpoint: String,
    /// mTLS settings ([`super::tls::client_config`]); `None` means plaintext.
    pub tls: Option<ClientTlsConfig>,
    /// Called before every reconnect so renewed certificates are picked up; on
    /// error the previous settings stay.
    pub tls_reload: Option<TlsReload>,
    /// "namespace/name" of the VpnGateway this agent serves.
    pub gateway: String,
    pub node: String,
    pub pod: String,
    /// How often a full session snapshot and counters are sent.
    pub report_interval: Duration,
    /// How often queued session events are sent.
    pub event_interval: Duration,
    pub backoff: Backoff,
}

impl AgentOptions {
    /// Options with the default intervals (snapshot every 5 s, events every 250 ms)
    /// and back-off (0.5 s doubling to 30 s).
    pub fn new(
        endpoint: impl Into<String>,
        tls: Option<ClientTlsConfig>,
        gateway: impl Into<String>,
        node: impl Into<String>,
        pod: impl Into<String>,
    ) -> AgentOptions {
        AgentOptions {
            endpoint: endpoint.into(),
            tls,
            tls_reload: None,
            gateway: gateway.into(),
            node: node.into(),
            pod: pod.into(),
            report_interval: Duration::from_secs(5),
            event_interval: Duration::from_millis(250),
            backoff: Backoff::default(),
        }
    }
}

/// Why the agent could not run at all (connection failures are retried, not returned).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid operator URL {url:?}: {why}")]
    Endpoint { url: String, why: String },
    #[error("operator URL {0:?} must be https:// when TLS is configured")]
    PlaintextWithTls(String),
    #[error("operator URL {0:?} is https:// but no TLS configuration was given")]
    MissingTls(String),
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// Why one control stream ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("connecting: {0}")]
    Connect(String),
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("the operator closed the stream")]
    Closed,
    #[error("the outgoing stream closed")]
    Outbox,
}

/// Bound on messages waiting to go to the operator.
const OUTBOX: usize = 64;
/// Largest configuration accepted (many users); the operator's bound.
const MAX_CONFIG_MESSAGE: usize = 256 * 1024 * 1024;
/// Largest report sent (a snapshot of many sessions); the operator's bound.
const MAX_REPORT_MESSAGE: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An error and its sources, for messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn build_endpoint(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Endpoint, AgentError> {
    let url = url.to_owned();
    let ep = Endpoint::from_shared(url.clone())
        .map_err(|e| AgentError::Endpoint {
            url: url.clone(),
            why: chain(&e),
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    // tonic speaks plaintext to an http:// URL even with TLS configured: refuse that.
    let https = ep.uri().scheme_str() == Some("https");
    match (tls, https) {
        (Some(tls), true) => ep
            .tls_config(tls.clone())
            .map_err(|e| AgentError::Tls(chain(&e))),
        (None, false) => Ok(ep),
        (Some(_), false) => Err(AgentError::PlaintextWithTls(url)),
        (None, true) => Err(AgentError::MissingTls(url)),
    }
}

/// Runs the control channel until `shutdown` completes, reconnecting with
/// back-off whenever the stream breaks. Returns early only when the options
/// cannot work at all.
pub async fn run_agent<F>(
    opts: AgentOptions,
    sink: Arc<dyn ConfigSink>,
    shutdown: F,
) -> Result<(), AgentError>
where
    F: Future<Output = ()>,
{
    let mut endpoint = build_endpoint(&opts.endpoint, opts.tls.as_ref())?;
    tokio::pin!(shutdown);
    let mut attempt: u32 = 0;
    loop {
        let mut established = false;
        let ended = tokio::select! {
            () = &mut shutdown => break,
            r = stream(&endpoint, &opts, &*sink, &mut established) => r,
        };
        sink.set_connected(false);
        if established {
            attempt = 0;
        }
        let delay = opts.backoff.jittered(attempt);
        attempt = attempt.saturating_add(1);
        warn!(
            operator = %opts.endpoint,
            error = %ended,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            serving = %sink.applied_version().unwrap_or_else(|| "no configuration yet".into()),
            "control stream to the operator is down"
        );
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(delay) => {}
        }
        if let Some(reload) = &opts.tls_reload {
            match reload()
                .map_err(|e| AgentError::Tls(e.to_string()))
                .and_then(|tls| build_endpoint(&opts.endpoint, Some(&tls)))
            {
                Ok(fresh) => endpoint = fresh,
                Err(e) => {
                    warn!(error = %e, "reloading TLS settings failed; keeping the previous ones")
                }
            }
        }
    }
    sink.set_connected(false);
    info!("agent stopped");
    Ok(())
}

fn hello(opts: &AgentOptions, sink: &dyn ConfigSink) -> pb::AgentMessage {
    pb::AgentMessage {
        body: Some(Body::Hello(pb::Hello {
            gateway: opts.gateway.clone(),
            node: opts.node.clone(),
            pod: opts.pod.clone(),
            applied_version: sink.applied_version().unwrap_or_default(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        })),
    }
}

/// Events plus the full snapshot and counters, and the drain state `draining`.
fn full_report(sink: &dyn ConfigSink, draining: bool) -> pb::AgentMessage {
    let events = sink.drain_events();
    pb::AgentMessage {
        body: Some(Body::Report(pb::SessionReport {
            events,
            has_snapshot: true,
            sessions: sink.snapshot(),
            counters: Some(sink.counters()),
            draining,
        })),
    }
}

/// Answers one configuration: the same version again is ACKed as it stands.
fn handle_config(
    opts: &AgentOptions,
    sink: &dyn ConfigSink,
    config: &pb::GatewayConfig,
) -> pb::ConfigAck {
    let version = config.version.clone();
    let result: Result<(), ApplyError> = if config.gateway != opts.gateway {
        Err(format!(
            "configuration is for gateway {:?}, this agent serves {:?}",
            config.gateway, opts.gateway
        )
        .into())
    } else if sink.applied_version().as_deref() == Some(version.as_str()) {
        debug!(%version, "configuration already in force");
        Ok(())
    } else {
        sink.apply(config)
    };
    match result {
        Ok(()) => pb::ConfigAck {
            version,
            accepted: true,
            error: String::new(),
        },
        Err(error) => {
            warn!(%version, %error, "configuration rejected, keeping the running one");
            pb::ConfigAck {
                version,
                accepted: false,
                error: error.to_string(),
            }
        }
    }
}

async fn send(
    tx: &mpsc::Sender<pb::AgentMessage>,
    msg: pb::AgentMessage,
) -> Result<(), StreamError> {
    tx.send(msg).await.map_err(|_| StreamError::Outbox)
}

/// One control stream, from connecting until it breaks.
async fn stream(
    endpoint: &Endpoint,
    opts: &AgentOptions,
    sink: &dyn ConfigSink,
    established: &mut bool,
) -> StreamError {
    match stream_inner(endpoint, opts, sink, established).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn stream_inner(
    endpoint: &Endpoint,
    opts: &AgentOptions,
    sink: &dyn ConfigSink,
    established: &mut bool,
) -> Result<Infallible, StreamError> {
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| StreamError::Connect(chain(&e)))?;
    let (tx, rx) = mpsc::channel(OUTBOX);
    send(&tx, hello(opts, sink)).await?;
    let mut inbound = ControlClient::new(channel)
        .max_decoding_message_size(MAX_CONFIG_MESSAGE)
        .max_encoding_message_size(MAX_REPORT_MESSAGE)
        .connect(ReceiverStream::new(rx))
        .await?
        .into_inner();
    *established = true;
    sink.set_connected(true);
    info!(
        operator = %opts.endpoint,
        applied_version = %sink.applied_version().unwrap_or_default(),
        "connected to the operator"
    );
    let mut draining = sink.draining();
    send(&tx, full_report(sink, draining)).await?;

    let mut events = tokio::time::interval(opts.event_interval);
    events.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut snapshots =
        tokio::time::interval_at(Instant::now() + opts.report_interval, opts.report_interval);
    snapshots.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = inbound.message() => match msg? {
                None => return Err(StreamError::Closed),
                Some(pb::OperatorMessage { body: Some(operator_message::Body::Config(config)) }) => {
                    let ack = handle_config(opts, sink, &config);
                    send(&tx, pb::AgentMessage { body: Some(Body::Ack(ack)) }).await?;
                }
                Some(pb::OperatorMessage { body: None }) => debug!("ignoring an empty operator message"),
            },
            _ = events.tick() => {
                let now_draining = sink.draining();
                if now_draining != draining {
                    // Draining started: tell the operator now, not at the next snapshot.
                    draining = now_draining;
                    info!(draining, "drain state changed; reporting it to the operator");
                    send(&tx, full_report(sink, draining)).await?;
                } else {
                    let events = sink.drain_events();
                    if !events.is_empty() {
                        let report = pb::SessionReport { events, draining, ..pb::SessionReport::default() };
                        send(&tx, pb::AgentMessage { body: Some(Body::Report(report)) }).await?;
                    }
                }
            }
            _ = snapshots.tick() => {
                draining = sink.draining();
                send(&tx, full_report(sink, draining)).await?;
            }
        }
    }
}
