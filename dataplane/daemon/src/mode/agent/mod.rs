//! Agent mode: the gateway configured by the operator. The HTTP endpoint is up
//! from the start (`/readyz` 503 until the first configuration is applied);
//! the first configuration starts the gateway, later ones are applied like a
//! standalone reload. SIGTERM/SIGINT shut down as in standalone mode.

pub mod channel;
pub mod tls;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sluice_ppp::AuthProto;
use sluice_proto::v1 as pb;
use tokio::signal::unix::SignalKind;
use tonic::transport::ClientTlsConfig;
use tracing::info;

use crate::config::Runtime;
use crate::gateway::events::{self, EventQueue};
use crate::gateway::method_name;
use crate::gateway::snapshot::{self, Session};
use crate::http::{self, HttpState};
use crate::metrics::{MethodLabels, Metrics, Protocol, SetupLabels, SetupResult};
use crate::mode::StartError;
use crate::mode::agent::channel::{AgentOptions, ApplyError, ConfigSink, TlsReload, run_agent};
use crate::mode::standalone::{self, HostOptions};
use crate::mode::start_error::signal;

/// Options of agent mode.
pub struct AgentModeOptions {
    /// Operator URL (`https://…`).
    pub operator: String,
    pub tls: ClientTlsConfig,
    /// Re-reads the TLS files before each reconnect (renewed certificates).
    pub tls_reload: Option<TlsReload>,
    /// "namespace/name" of the VpnGateway.
    pub gateway: String,
    pub node: String,
    pub pod: String,
    pub host: HostOptions,
    pub report_interval: Duration,
}

/// The gateway as the agent's [`ConfigSink`]; it starts at the first configuration.
pub struct ManagedGateway {
    host: HostOptions,
    state: Arc<HttpState>,
    metrics: Arc<Metrics>,
    applying: Mutex<()>,
}

impl ManagedGateway {
    /// `state` is the HTTP endpoint's: the gateway is published there once running.
    pub fn new(host: HostOptions, state: Arc<HttpState>, metrics: Arc<Metrics>) -> ManagedGateway {
        ManagedGateway {
            host,
            state,
            metrics,
            applying: Mutex::new(()),
        }
    }

    fn apply_runtime(&self, cfg: Runtime) -> Result<(), StartError> {
        if let Some(gw) = self.state.gateway() {
            standalone::reconfigure(gw, &self.host, cfg);
            return Ok(());
        }
        let queue = EventQueue::new(
            events::DEFAULT_CAPACITY,
            self.metrics.events_dropped.clone(),
        );
        let gw = standalone::start(&self.host, cfg, self.metrics.clone(), Some(queue))?;
        self.host.log_ready(&gw);
        self.state.set_gateway(gw);
        Ok(())
    }
}

impl ConfigSink for ManagedGateway {
    fn apply(&self, config: &pb::GatewayConfig) -> Result<(), ApplyError> {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let result = Runtime::from_proto(config)
            .map_err(|e| StartError::Config(e.into()))
            .and_then(|cfg| self.apply_runtime(cfg));
        standalone::count_apply(&self.metrics, result.is_ok());
        Ok(result?)
    }

    fn applied_version(&self) -> Option<String> {
        self.state.gateway().map(|gw| gw.config().version.clone())
    }

    fn snapshot(&self) -> Vec<pb::Session> {
        self.state
            .gateway()
            .map(|gw| {
                snapshot::sessions(gw)
                    .iter()
                    .filter(|s| s.role == snapshot::Role::Server)
                    .filter_map(session)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn drain_events(&self) -> Vec<pb::SessionEvent> {
        self.state
            .gateway()
            .and_then(|gw| gw.events.as_ref())
            .map(EventQueue::drain)
            .unwrap_or_default()
    }

    fn counters(&self) -> pb::Counters {
        counters(&self.metrics)
    }

    fn draining(&self) -> bool {
        self.state.gateway().is_some_and(|gw| gw.draining())
    }

    fn set_connected(&self, connected: bool) {
        self.metrics.operator_connected.set(i64::from(connected));
    }
}

/// A live session as the operator sees it (`None` while it is still setting up).
fn session(s: &Session) -> Option<pb::Session> {
    let since = s.since()?.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Some(pb::Session {
        username: s.user.clone().unwrap_or_default(),
        source: s.source.clone(),
        protocol: s.protocol.as_str().into(),
        address: s.address.map(|a| a.to_string()).unwrap_or_default(),
        caller_address: s.caller.to_string(),
        since_unix: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        bytes_in: s.traffic.bytes_in,
        bytes_out: s.traffic.bytes_out,
        encoding: s.encoding.to_string(),
    })
}

/// Cumulative counters, read from the metrics.
pub fn counters(m: &Metrics) -> pb::Counters {
    let setups = |result| {
        [Protocol::Pptp, Protocol::L2tp]
            .into_iter()
            .map(|protocol| {
                m.setups
                    .get(&SetupLabels { protocol, result })
                    .map_or(0, |c| c.get())
            })
            .sum::<u64>()
    };
    let auth_failures = [
        AuthProto::Pap,
        AuthProto::ChapMd5,
        AuthProto::MsChapV1,
        AuthProto::MsChapV2,
    ]
    .into_iter()
    .map(|p| {
        m.auth_failures
            .get(&MethodLabels {
                method: method_name(p),
            })
            .map_or(0, |c| c.get())
    })
    .sum();
    let active = m.sessions_up.get();
    pb::Counters {
        setups_ok: setups(SetupResult::Ok),
        setups_failed: SetupResult::ALL
            .into_iter()
            .filter(|r| *r != SetupResult::Ok)
            .map(setups)
            .sum(),
        auth_failures,
        bytes_in: m.rx_bytes.get(),
        bytes_out: m.tx_bytes.get(),
        active_sessions: u32::try_from(active.max(0)).unwrap_or(u32::MAX),
    }
}

/// Why agent mode stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentModeError {
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("{0}")]
    Agent(#[from] crate::mode::agent::channel::AgentError),
}

/// Runs agent mode until SIGTERM/SIGINT.
pub async fn run(opts: AgentModeOptions) -> Result<(), AgentModeError> {
    let metrics = Arc::new(Metrics::new_agent());
    let state = Arc::new(HttpState::new(metrics.clone()));
    http::start(state.clone(), &opts.host.endpoints)
        .await
        .map_err(StartError::from)?;
    let sink = Arc::new(ManagedGateway::new(
        opts.host.clone(),
        state.clone(),
        metrics,
    ));

    let mut term = signal("SIGTERM", SignalKind::terminate())?;
    let mut int = signal("SIGINT", SignalKind::interrupt())?;
    let mut hup = signal("SIGHUP", SignalKind::hangup())?;
    let drained = standalone::drained(state.clone());
    let shutdown = async move {
        tokio::pin!(drained);
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                () = &mut drained => break,
                _ = hup.recv() => info!("SIGHUP ignored: in agent mode the configuration comes from the operator"),
            }
        }
    };
    info!(
        operator = %opts.operator,
        gateway = %opts.gateway,
        metrics = %opts.host.endpoints.metrics,
        admin = %opts.host.endpoints.admin,
        "agent mode: waiting for the configuration from the operator"
    );
    let mut agent = AgentOptions::new(
        opts.operator,
        Some(opts.tls),
        opts.gateway,
        opts.node,
        opts.pod,
    );
    agent.report_interval = opts.report_interval;
    agent.tls_reload = opts.tls_reload;
    run_agent(agent, sink, shutdown).await?;
    if let Some(gw) = state.gateway() {
        standalone::stop(gw, &opts.host.tun).await;
    }
    Ok(())
}
