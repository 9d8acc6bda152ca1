//! `sluice-dataplane`: the Sluice data plane.
//!
//! ```text
//! sluice-dataplane --manifests FILE          run the standalone gateway
//! sluice-dataplane agent --operator URL ...  run the gateway configured by the operator
//! sluice-dataplane check --manifests FILE    validate manifests, print the compiled config (no secrets)
//! sluice-dataplane sessions                  print the live session table
//! sluice-dataplane drain                     drain a running data plane
//! ```
//!
//!
//! The in-repo client, load generator and benchmarks are a separate binary, `sluice-client`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sluice_dataplane::cli::{drain, sessions};
use sluice_dataplane::config;
use sluice_dataplane::datapath::codel::CodelParams;
use sluice_dataplane::datapath::l2tp::ControlRate;
use sluice_dataplane::gateway::admission::AdmissionLimits;
use sluice_dataplane::host::{self, nofile, unix_now};
use sluice_dataplane::http::Endpoints;
use sluice_dataplane::http::admin_token::{AdminToken, DEFAULT_TOKEN_FILE};
use sluice_dataplane::mode::agent::channel::TlsReload;
use sluice_dataplane::mode::agent::tls;
use sluice_dataplane::mode::standalone::HostOptions;
use sluice_dataplane::mode::{agent, standalone};
use sluice_telemetry::LogFormat;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-dataplane",
    version,
    about = "Sluice VPN gateway data plane (PPTP and L2TP/IPsec in user space)"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Multi-document YAML with VpnGateway, VpnUser and v1/Secret objects.
    #[arg(long, short = 'f')]
    manifests: Option<PathBuf>,
    /// Which VpnGateway to serve when the file has several.
    #[arg(long)]
    gateway: Option<String>,
    #[command(flatten)]
    host: HostArgs,
    /// Address of the metrics endpoint (/metrics, /healthz, /readyz).
    #[arg(long, alias = "http", default_value = "127.0.0.1:9810")]
    metrics_listen: SocketAddr,
    #[command(flatten)]
    admin: AdminArgs,
    /// How often the manifest file is checked for changes (seconds).
    #[arg(long, default_value_t = 2)]
    watch_interval: u64,
}

/// How this host runs the gateway (both modes).
#[derive(Args, Debug)]
struct HostArgs {
    /// Name of the TUN device.
    #[arg(long, default_value = "sluice0")]
    tun: String,
    /// Use the kernel's TUN offloads (TSO/GSO reads split here, GRO-coalesced writes;
    /// docs/architecture.md). `--tun-offload=false` reads and writes one packet at a time.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tun_offload: bool,
    /// Entries of the TUN device's transmit ring, the queue in front of the sending side
    /// (default: the kernel's 500). Every session's traffic toward its client shares it; a
    /// shorter ring shortens a CUBIC download's standing queue (docs/architecture.md
    /// "Latency under load").
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    tun_txqueuelen: Option<u32>,
    /// Local IPv4 address for the control listener and GRE (default: all).
    #[arg(long)]
    bind: Option<Ipv4Addr>,
    /// Leave net.ipv4.ip_forward alone.
    #[arg(long)]
    no_forwarding: bool,
    /// Bound on concurrent PPTP control connections (stock clients open one per session;
    /// each costs a descriptor: lowered to fit RLIMIT_NOFILE). 60,000 leaves room below the
    /// 65,535 Call IDs for L2TP sessions.
    #[arg(long, default_value_t = 60000)]
    max_control_connections: usize,
    /// Bound on calls per PPTP control connection (stock clients use one).
    #[arg(long, default_value_t = sluice_dataplane::gateway::DEFAULT_MAX_CALLS_PER_CONNECTION)]
    max_calls_per_connection: u16,
    /// L2TP control messages per second accepted from one source address (0: unlimited).
    #[arg(long, default_value_t = ControlRate::default().per_second)]
    l2tp_control_rate: u32,
    /// PPTP control connections from one source address (clients behind one NAT share it).
    #[arg(long, default_value_t = AdmissionLimits::default().control_per_source)]
    max_control_connections_per_source: u32,
    /// Sessions in setup (not yet authenticated) from one source address.
    #[arg(long, default_value_t = AdmissionLimits::default().setups_per_source)]
    max_setups_per_source: u32,
    /// Sessions in setup from all sources together.
    #[arg(long, default_value_t = AdmissionLimits::default().setups_total)]
    max_setups: u32,
    /// Seconds after which a PPTP control connection without a call is closed.
    #[arg(long, default_value_t = sluice_dataplane::control::pptp::NO_CALL_TIMEOUT.as_secs())]
    control_idle_timeout: u64,
    /// Receive threads for GRE and for raw ESP, each with its share of the sessions (by Call
    /// ID and SPI; docs/architecture.md). Default: one per core, at most 8.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=8))]
    rx_threads: Option<u32>,
    /// Queue delay (ms) the receive queues tolerate before CoDel marks or drops inner packets
    /// (RFC 8289; docs/architecture.md "Latency under load"). 0 turns it off.
    #[arg(long, default_value_t = CodelParams::TARGET_MS, value_parser = clap::value_parser!(u64).range(0..=1000))]
    aqm_target_ms: u64,
    /// CoDel's interval (ms): how long the delay must stay above target first.
    #[arg(long, default_value_t = CodelParams::INTERVAL_MS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    aqm_interval_ms: u64,
}

/// The admin endpoint (both modes).
#[derive(Args, Debug)]
struct AdminArgs {
    /// Address of the admin endpoint (/sessions, /drain): loopback only, bearer token.
    #[arg(long, default_value = "127.0.0.1:9811")]
    admin_listen: SocketAddr,
    /// Where the admin endpoint's token is written at start (mode 0600).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE)]
    admin_token_file: PathBuf,
}

impl AdminArgs {
    fn endpoints(self, metrics: SocketAddr) -> Endpoints {
        Endpoints {
            metrics,
            admin: self.admin_listen,
            admin_token_file: self.admin_token_file,
        }
    }
}

/// How the CLI reaches a running data plane's admin endpoint.
#[derive(Args, Debug)]
struct AdminClientArgs {
    /// The data plane's admin endpoint.
    #[arg(long, default_value = "127.0.0.1:9811")]
    endpoint: SocketAddr,
    /// The token file the data plane wrote (its --admin-token-file).
    #[arg(long, env = "SLUICE_ADMIN_TOKEN_FILE", default_value = DEFAULT_TOKEN_FILE)]
    token_file: PathBuf,
}

impl AdminClientArgs {
    fn token(&self) -> Result<AdminToken, String> {
        AdminToken::read_file(&self.token_file).map_err(|e| e.to_string())
    }
}

impl HostArgs {
    fn options(self, endpoints: Endpoints) -> HostOptions {
        HostOptions {
            tun: self.tun,
            tun_offload: self.tun_offload,
            tun_txqueuelen: self.tun_txqueuelen,
            bind: self.bind,
            endpoints,
            forwarding: !self.no_forwarding,
            max_control_connections: self.max_control_connections,
            max_calls_per_connection: self.max_calls_per_connection,
            l2tp_control_rate: ControlRate {
                per_second: self.l2tp_control_rate,
                burst: self.l2tp_control_rate.saturating_mul(2),
            },
            control_idle_timeout: Duration::from_secs(self.control_idle_timeout.max(1)),
            rx_shards: self
                .rx_threads
                .unwrap_or_else(sluice_dataplane::io::shard::default_count),
            aqm: CodelParams::from_millis(self.aqm_target_ms, self.aqm_interval_ms),
            admission: AdmissionLimits {
                control_per_source: self.max_control_connections_per_source,
                setups_per_source: self.max_setups_per_source,
                setups_total: self.max_setups,
            },
        }
    }
}

#[derive(Args, Debug)]
struct AgentArgs {
    /// Operator control endpoint, https://HOST:PORT.
    #[arg(long)]
    operator: String,
    /// The VpnGateway to serve, NAMESPACE/NAME.
    #[arg(long)]
    gateway: String,
    /// Kubernetes node this pod runs on.
    #[arg(long, env = "NODE_NAME")]
    node: String,
    /// Name of this pod.
    #[arg(long, env = "POD_NAME")]
    pod: String,
    /// Directory with ca.crt (the operator's CA), tls.crt and tls.key (this agent's identity);
    /// re-read before every reconnect, so renewed certificates are picked up.
    #[arg(long)]
    tls_dir: PathBuf,
    /// Name the operator's certificate must carry (default: the URL's host).
    #[arg(long)]
    server_name: Option<String>,
    #[command(flatten)]
    host: HostArgs,
    /// Address of the metrics endpoint (/metrics, /healthz, /readyz). Limit who can reach
    /// it (docs/security.md): it is the only management port off the node.
    #[arg(long, alias = "http", default_value = "0.0.0.0:9810")]
    metrics_listen: SocketAddr,
    #[command(flatten)]
    admin: AdminArgs,
    /// How often the session snapshot and counters go to the operator (seconds).
    #[arg(long, default_value_t = 5)]
    report_interval: u64,
}

impl AgentArgs {
    fn options(self) -> Result<agent::AgentModeOptions, String> {
        if !self.operator.starts_with("https://") {
            return Err(format!(
                "--operator {:?}: the control channel is mTLS, use https://",
                self.operator
            ));
        }
        let server_name = match self.server_name {
            Some(n) => n,
            None => tls::url_host(&self.operator)
                .ok_or_else(|| format!("--operator {:?} has no host", self.operator))?,
        };
        let tls = tls::load_dir(&self.tls_dir, &server_name).map_err(|e| e.to_string())?;
        let dir = self.tls_dir.clone();
        let reload: TlsReload = Arc::new(move || tls::load_dir(&dir, &server_name));
        Ok(agent::AgentModeOptions {
            operator: self.operator,
            tls,
            tls_reload: Some(reload),
            gateway: self.gateway,
            node: self.node,
            pod: self.pod,
            host: self.host.options(self.admin.endpoints(self.metrics_listen)),
            report_interval: Duration::from_secs(self.report_interval.max(1)),
        })
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway configured by the operator over mTLS gRPC (Kubernetes).
    Agent(Box<AgentArgs>),
    /// Validate manifests and print the compiled configuration (passwords redacted).
    Check {
        #[arg(long, short = 'f')]
        manifests: PathBuf,
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Print the live session table of a running data plane.
    Sessions {
        #[command(flatten)]
        admin: AdminClientArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the tunnels this data plane dials as a client (`VpnClient`s): status, uptime,
    /// encoding, local and remote address, last error. `sessions` shows them too.
    Clients {
        #[command(flatten)]
        admin: AdminClientArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Drain a running data plane: refuse new sessions, exit once none is left or at
    /// --timeout (then the rest are closed properly). The data-plane pod's preStop hook.
    Drain {
        #[command(flatten)]
        admin: AdminClientArgs,
        /// Seconds after which the remaining sessions are closed (a later, shorter drain
        /// brings the deadline forward).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// Wait until the data plane has drained (or the timeout passed).
        #[arg(long)]
        wait: bool,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Runs a long-lived mode: logs, and OTLP trace export when the environment asks for it.
fn serve<E: std::fmt::Display, F: std::future::Future<Output = Result<(), E>>>(
    format: LogFormat,
    mode: impl FnOnce() -> Result<F, String>,
) -> Result<(), String> {
    let rt = runtime()?;
    let telemetry = {
        let _rt = rt.enter();
        sluice_telemetry::init("sluice-dataplane", format, true)
    };
    let result = host_checks()
        .and_then(|()| mode())
        .and_then(|f| rt.block_on(f).map_err(|e| e.to_string()));
    drop(telemetry);
    result
}

/// Prints `rows` as pretty JSON (`--json`) or as `table` renders them.
fn print_rows<T: serde::Serialize>(
    rows: &[T],
    json: bool,
    table: impl FnOnce(&[T]) -> String,
) -> Result<(), String> {
    if json {
        let text = serde_json::to_string_pretty(rows).map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        print!("{}", table(rows));
    }
    Ok(())
}

/// Start-up checks of a gateway process: secure randomness, and the descriptor limit raised
/// as far as the host allows.
/// `check` fails when users or clients would be left out: they are listed with every error
/// (the gateway itself would run with the others).
fn check_left_out(loaded: &config::Loaded) -> Result<(), String> {
    let rt = &loaded.runtime;
    for c in &rt.clients {
        let note = match c.transport {
            config::ClientTransport::Pptp => "",
            config::ClientTransport::L2tp { .. } => {
                " (not dialled by this version: L2TP dialling is still to come)"
            }
        };
        println!("client:         {}: {}{note}", c.source, c.describe());
    }
    if loaded.left_out.is_empty() && rt.clients_left_out.is_empty() {
        return Ok(());
    }
    let mut lines = vec![format!(
        "{} object(s) would be left out (the gateway serves the others):",
        loaded.left_out.len() + rt.clients_left_out.len()
    )];
    lines.extend(loaded.left_out.values().map(ToString::to_string));
    lines.extend(
        rt.clients_left_out
            .iter()
            .map(|c| format!("VpnClient {}: {}", c.source, c.error)),
    );
    Err(lines.join("\n"))
}

fn host_checks() -> Result<(), String> {
    host::check().map_err(|e| e.to_string())?;
    match nofile::raise() {
        Ok(l) => tracing::info!(
            soft = l.soft,
            hard = l.hard,
            "descriptor limit (RLIMIT_NOFILE)"
        ),
        Err(e) => tracing::warn!(error = %e, "could not raise the descriptor limit"),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    // Long-lived modes install the subscriber in serve(), inside the runtime (OTLP needs it).
    if !matches!(cli.command, None | Some(Command::Agent(_))) {
        let _ = sluice_telemetry::init("sluice-dataplane", format, false);
    }
    let result = match cli.command {
        None => {
            let Some(manifests) = cli.serve.manifests else {
                eprintln!("error: --manifests FILE is required (see --help)");
                return ExitCode::from(2);
            };
            let opts = standalone::ServeOptions {
                manifests,
                gateway: cli.serve.gateway,
                host: cli
                    .serve
                    .host
                    .options(cli.serve.admin.endpoints(cli.serve.metrics_listen)),
                watch_interval: Duration::from_secs(cli.serve.watch_interval.max(1)),
            };
            serve(format, || Ok(standalone::run(opts)))
        }
        Some(Command::Agent(args)) => serve(format, || args.options().map(agent::run)),
        Some(Command::Check { manifests, gateway }) => {
            config::load_file(&manifests, gateway.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|loaded| {
                    print!("{}", config::summary(&loaded.runtime));
                    check_left_out(&loaded)
                })
        }
        Some(Command::Sessions { admin, json }) => admin.token().and_then(|token| {
            let rows = sessions::fetch(admin.endpoint, &token).map_err(|e| e.to_string())?;
            print_rows(&rows, json, |rows| {
                let mut text = sessions::render(rows);
                // Older data planes have no /clients: the session table alone.
                if let Ok(clients) = sessions::fetch_clients(admin.endpoint, &token)
                    && !clients.is_empty()
                {
                    text.push('\n');
                    text.push_str(&sessions::render_clients(&clients, unix_now()));
                }
                text
            })
        }),
        Some(Command::Clients { admin, json }) => admin.token().and_then(|token| {
            let rows =
                sessions::fetch_clients(admin.endpoint, &token).map_err(|e| e.to_string())?;
            print_rows(&rows, json, |rows| {
                sessions::render_clients(rows, unix_now())
            })
        }),
        Some(Command::Drain {
            admin,
            timeout,
            wait,
        }) => admin.token().and_then(|token| {
            drain::run(admin.endpoint, &token, Duration::from_secs(timeout), wait)
                .map_err(|e| e.to_string())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
