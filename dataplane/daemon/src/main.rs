//! `sluice-dataplane`: the Sluice data plane.
//!
//! ```text
//! sluice-dataplane --manifests FILE          run the standalone gateway
//! sluice-dataplane check --manifests FILE    validate manifests, print the compiled config (no secrets)
//! sluice-dataplane sessions                  print the live session table
//! sluice-dataplane client --server ADDR ...  in-repo PPTP client (tests, load)
//! sluice-dataplane bench ...                 benchmarks
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use sluice_dataplane::{bench, client_cli, config, server, sessions_cmd};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-dataplane",
    version,
    about = "Sluice VPN gateway data plane (PPTP in user space)"
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

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Multi-document YAML with VpnGateway, VpnUser and v1/Secret objects.
    #[arg(long, short = 'f')]
    manifests: Option<PathBuf>,
    /// Which VpnGateway to serve when the file has several.
    #[arg(long)]
    gateway: Option<String>,
    /// Name of the TUN device.
    #[arg(long, default_value = "sluice0")]
    tun: String,
    /// Local IPv4 address for the control listener and GRE (default: all).
    #[arg(long)]
    bind: Option<Ipv4Addr>,
    /// Address of the HTTP endpoint (/metrics, /sessions, /healthz).
    #[arg(long, default_value = "127.0.0.1:9810")]
    http: SocketAddr,
    /// Leave net.ipv4.ip_forward alone.
    #[arg(long)]
    no_forwarding: bool,
    /// Bound on concurrent PPTP control connections.
    #[arg(long, default_value_t = 20000)]
    max_control_connections: usize,
    /// Bound on calls per PPTP control connection (stock clients use one).
    #[arg(long, default_value_t = sluice_dataplane::gateway::DEFAULT_MAX_CALLS_PER_CONNECTION)]
    max_calls_per_connection: u16,
    /// How often the manifest file is checked for changes (seconds).
    #[arg(long, default_value_t = 2)]
    watch_interval: u64,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate manifests and print the compiled configuration (passwords redacted).
    Check {
        #[arg(long, short = 'f')]
        manifests: PathBuf,
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Print the live session table of a running data plane.
    Sessions {
        /// The data plane's HTTP endpoint.
        #[arg(long, default_value = "127.0.0.1:9810")]
        endpoint: SocketAddr,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// In-repo PPTP client: open sessions against a gateway.
    Client(client_cli::ClientArgs),
    /// Benchmarks (figures are printed, never asserted).
    Bench(bench::BenchArgs),
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        None => {
            let Some(manifests) = cli.serve.manifests else {
                eprintln!("error: --manifests FILE is required (see --help)");
                return ExitCode::from(2);
            };
            let opts = server::ServeOptions {
                manifests,
                gateway: cli.serve.gateway,
                tun: cli.serve.tun,
                bind: cli.serve.bind,
                http: cli.serve.http,
                forwarding: !cli.serve.no_forwarding,
                max_control_connections: cli.serve.max_control_connections,
                max_calls_per_connection: cli.serve.max_calls_per_connection,
                watch_interval: Duration::from_secs(cli.serve.watch_interval.max(1)),
            };
            runtime().and_then(|rt| rt.block_on(server::run(opts)))
        }
        Some(Command::Check { manifests, gateway }) => {
            config::load_file(&manifests, gateway.as_deref())
                .map(|cfg| print!("{}", config::summary(&cfg)))
                .map_err(|e| e.to_string())
        }
        Some(Command::Sessions { endpoint, json }) => {
            sessions_cmd::fetch(endpoint).and_then(|rows| {
                if json {
                    serde_json::to_string_pretty(&rows)
                        .map(|s| println!("{s}"))
                        .map_err(|e| e.to_string())
                } else {
                    print!("{}", sessions_cmd::render(&rows));
                    Ok(())
                }
            })
        }
        Some(Command::Client(args)) => runtime().and_then(|rt| rt.block_on(client_cli::run(args))),
        Some(Command::Bench(args)) => runtime().and_then(|rt| rt.block_on(bench::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
