//! `sluice-operator`.
//!
//! ```text
//! sluice-operator run ...               in a cluster: leader election, controllers, gRPC
//! sluice-operator serve-manifests ...   the gRPC control channel from a manifest file
//! sluice-operator pki ...               write a CA, a server and an agent certificate
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::FutureExt;
use kube::runtime::events::Reporter;
use sluice_api::ManifestFile;
use sluice_operator::ca_set::Policy;
use sluice_operator::controller::{self, Parts};
use sluice_operator::hub::Hub;
use sluice_operator::metrics::Metrics;
use sluice_operator::pki::{Ca, service_dns_names};
use sluice_operator::rotation::{self, Rotation, parse_duration};
use sluice_operator::watch::Scope;
use sluice_operator::workloads::DataplaneSettings;
use sluice_operator::{http, leader, serve, standalone};
use sluice_telemetry::LogFormat;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How long after start-up live-session fields are rewritten even if an agent never reported.
const SESSION_GRACE: Duration = Duration::from_secs(20);
/// Longest wait for the controllers and the control channel to stop once asked to.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Parser, Debug)]
#[command(
    name = "sluice-operator",
    version,
    about = "Sluice VPN gateway operator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format (traces go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run in a cluster (leader election, controllers, gRPC config server).
    Run(RunArgs),
    /// Serve the gRPC control channel from a manifest file (no Kubernetes).
    ServeManifests {
        /// Multi-document YAML with VpnGateway, VpnUser and v1/Secret objects.
        #[arg(long, short = 'f')]
        manifests: PathBuf,
        /// gRPC listen address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        grpc_listen: SocketAddr,
        /// HTTP listen address (/metrics, /healthz, /readyz).
        #[arg(long, default_value = "127.0.0.1:8080")]
        http_listen: SocketAddr,
        /// Directory with ca.crt, ca.key (as written by `pki`); a server certificate for
        /// --server-name is issued from it at start.
        #[arg(long)]
        tls_dir: PathBuf,
        /// DNS name agents use to reach this server.
        #[arg(long, default_value = "localhost")]
        server_name: String,
    },
    /// Write a CA (ca.crt, ca.key) and an agent certificate directory for one gateway.
    Pki {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Gateway (namespace/name) of the agent certificate (written to OUT/agent/).
        #[arg(long)]
        gateway: String,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Namespace the operator runs in (Lease, CA Secret).
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: String,
    /// This replica's pod name (leader identity and label).
    #[arg(long, env = "POD_NAME")]
    pod_name: String,
    /// gRPC listen address.
    #[arg(long, default_value = "0.0.0.0:50051")]
    grpc_listen: SocketAddr,
    /// HTTP listen address (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_listen: SocketAddr,
    /// Service agents dial (selects the leader).
    #[arg(long, default_value = "sluice-grpc")]
    grpc_service: String,
    /// Port of that Service. Data-plane pods dial `https://SERVICE.NAMESPACE.svc:PORT`,
    /// whatever address this replica listens on.
    #[arg(long, default_value_t = 50051)]
    grpc_service_port: u16,
    /// Deployment (in --namespace) of the operator itself. The CA Secret and the leader
    /// Lease get it as their owner, so removing the operator (`helm uninstall`) removes
    /// them too. Empty: they are left alone.
    #[arg(long, env = "SLUICE_OWNER_DEPLOYMENT", default_value = "")]
    owner_deployment: String,
    /// Lease used for leader election.
    #[arg(long, default_value = "sluice-leader")]
    lease_name: String,
    /// Secret (in --namespace) holding the control channel's CA; created when absent.
    /// Annotate it `sluice.dev/rotate=now` to rotate the CA at once.
    #[arg(long, default_value = "sluice-ca")]
    ca_secret: String,
    /// Lifetime of a new control-channel CA (s, m, h or d).
    #[arg(long, default_value = "365d", value_parser = parse_duration)]
    ca_lifetime: time::Duration,
    /// A CA rotation starts this long before the CA ends (at most half its lifetime).
    #[arg(long, default_value = "60d", value_parser = parse_duration)]
    ca_rotate_before: time::Duration,
    /// Least time between two rotation steps, for the kubelet to update the agents'
    /// mounted Secrets.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    ca_propagation: time::Duration,
    /// Namespaces (comma-separated) whose gateways, users, Secrets and data-plane
    /// workloads the operator watches; empty: every namespace.
    #[arg(long, env = "SLUICE_WATCH_NAMESPACES", default_value = "")]
    watch_namespaces: String,
    /// Data-plane container image.
    #[arg(long)]
    dataplane_image: String,
    /// Its pull policy.
    #[arg(long, default_value = "IfNotPresent")]
    dataplane_image_pull_policy: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Traces are exported by the long-running modes only; the exporter needs the runtime.
    let export = !matches!(cli.command, Command::Pki { .. });
    let telemetry = {
        let _rt = rt.enter();
        sluice_telemetry::init("sluice-operator", cli.log_format, export)
    };
    let result = match cli.command {
        Command::Run(args) => rt.block_on(run(args)),
        Command::ServeManifests {
            manifests,
            grpc_listen,
            http_listen,
            tls_dir,
            server_name,
        } => rt.block_on(serve_manifests(
            manifests,
            grpc_listen,
            http_listen,
            &tls_dir,
            server_name,
        )),
        Command::Pki { out, gateway } => write_pki(&out, &gateway),
    };
    drop(telemetry);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(dir: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(dir.join(name))
        .map_err(|e| format!("reading {}: {e}", dir.join(name).display()))
}

fn write(dir: &Path, name: &str, body: &str) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    std::fs::write(dir.join(name), body)
        .map_err(|e| format!("writing {}: {e}", dir.join(name).display()))
}

fn write_pki(out: &Path, gateway: &str) -> Result<(), String> {
    let now = time::OffsetDateTime::now_utc();
    let ca = Ca::generate(now).map_err(|e| e.to_string())?;
    let agent = ca.issue_agent(gateway, now).map_err(|e| e.to_string())?;
    write(out, "ca.crt", &ca.pem().cert_pem)?;
    write(out, "ca.key", &ca.pem().key_pem)?;
    let agent_dir = out.join("agent");
    write(&agent_dir, "ca.crt", &ca.pem().cert_pem)?;
    write(&agent_dir, "tls.crt", &agent.cert_pem)?;
    write(&agent_dir, "tls.key", &agent.key_pem)?;
    println!(
        "wrote {}/ca.{{crt,key}} and {}/{{ca.crt,tls.crt,tls.key}}",
        out.display(),
        agent_dir.display()
    );
    Ok(())
}

async fn terminated() {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

async fn serve_manifests(
    manifests: PathBuf,
    grpc_listen: SocketAddr,
    http_listen: SocketAddr,
    tls_dir: &Path,
    server_name: String,
) -> Result<(), String> {
    let ca = Ca::from_pem(&read(tls_dir, "ca.crt")?, &read(tls_dir, "ca.key")?)
        .map_err(|e| e.to_string())?;
    let server = ca
        .issue_server(&[server_name], time::OffsetDateTime::now_utc())
        .map_err(|e| e.to_string())?;
    let (hub, _dirty) = Hub::new(SESSION_GRACE);
    let metrics = Metrics::new();
    let text = std::fs::read_to_string(&manifests)
        .map_err(|e| format!("reading {}: {e}", manifests.display()))?;
    standalone::publish_manifests(&hub, &metrics, &text).map_err(|e| e.to_string())?;
    {
        let (m, h) = (metrics.clone(), hub.clone());
        tokio::spawn(async move {
            if let Err(e) = http::serve(http_listen, m, h).await {
                error!(error = %e, "HTTP endpoint failed");
            }
        });
    }
    let (_leader_tx, leader_rx) = watch::channel(true);
    let listener = tokio::net::TcpListener::bind(grpc_listen)
        .await
        .map_err(|e| format!("listening on {grpc_listen}: {e}"))?;
    let grpc = serve::serve_tls(
        listener,
        &server,
        &ca.pem().cert_pem,
        hub.clone(),
        leader_rx,
        metrics.clone(),
        terminated(),
    );
    let reload = async {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        let mut file = ManifestFile::new(&manifests);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = hup.recv() => {}
                _ = tick.tick() => if !file.changed() { continue; },
            }
            file.mark_read();
            match std::fs::read_to_string(&manifests) {
                Ok(text) => {
                    if let Err(e) = standalone::publish_manifests(&hub, &metrics, &text) {
                        error!("manifests rejected, keeping the previous configuration:\n{e}");
                    }
                }
                Err(e) => error!(error = %e, "reading manifests failed"),
            }
        }
    };
    info!(%grpc_listen, "serving the control channel from {}", manifests.display());
    tokio::select! {
        r = grpc => r.map_err(|e| e.to_string()),
        () = reload => Ok(()),
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to the apiserver: {e}"))?;
    let metrics = Metrics::new();
    let (hub, dirty) = Hub::new(SESSION_GRACE);
    {
        let (m, h, addr) = (metrics.clone(), hub.clone(), args.http_listen);
        tokio::spawn(async move {
            if let Err(e) = http::serve(addr, m, h).await {
                error!(error = %e, "HTTP endpoint failed");
            }
        });
    }
    leader::label_pod(client.clone(), &args.namespace, &args.pod_name, false).await;
    let election = leader::elect(
        client.clone(),
        &args.namespace,
        &args.lease_name,
        &args.pod_name,
    )
    .await
    .map_err(|e| format!("leader election: {e}"))?;
    let mut leading = election.leading.clone();
    info!(lease = %args.lease_name, "waiting to lead");
    let became_leader = tokio::select! {
        r = leading.wait_for(|l| *l) => { r.map_err(|e| e.to_string())?; true }
        () = terminated() => false,
    };
    if !became_leader {
        drop(leading);
        election.release().await;
        return Ok(());
    }
    info!(pod = %args.pod_name, "leading");
    metrics.leader.set(1);
    leader::label_pod(client.clone(), &args.namespace, &args.pod_name, true).await;

    let policy = Policy {
        lifetime: args.ca_lifetime,
        rotate_before: args.ca_rotate_before,
        propagation: args.ca_propagation,
    };
    let cas = rotation::load_or_create(client.clone(), &args.namespace, &args.ca_secret, &policy)
        .await
        .map_err(|e| e.to_string())?;
    if !args.owner_deployment.is_empty() {
        sluice_operator::owner::adopt(
            client.clone(),
            &args.namespace,
            &args.owner_deployment,
            &args.ca_secret,
            &args.lease_name,
        )
        .await;
    }
    let started = Rotation::start(
        client.clone(),
        &args.namespace,
        &args.ca_secret,
        policy,
        service_dns_names(&args.grpc_service, &args.namespace),
        cas,
    )
    .map_err(|e| e.to_string())?;
    let scope = Scope::parse(&args.watch_namespaces);
    info!(?scope, "watching");

    // Ends on SIGTERM or when leadership is lost; every task below stops on it.
    let stop = {
        let mut leading = leading.clone();
        async move {
            tokio::select! {
                () = terminated() => {}
                _ = leading.wait_for(|l| !*l) => warn!("leadership lost"),
            }
        }
        .boxed()
        .shared()
    };
    let grpc = {
        let (hub, metrics, tls, stop) = (
            hub.clone(),
            metrics.clone(),
            started.tls.clone(),
            stop.clone(),
        );
        let leading = leading.clone();
        let addr = args.grpc_listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listening on {addr}: {e}"))?;
        tokio::spawn(async move {
            if let Err(e) =
                serve::serve_tls_dynamic(listener, tls, hub, leading, metrics, stop).await
            {
                error!(error = %e, "gRPC server failed");
            }
        })
    };
    let settings = DataplaneSettings {
        image: args.dataplane_image.clone(),
        image_pull_policy: args.dataplane_image_pull_policy.clone(),
        operator_url: format!(
            "https://{}.{}.svc:{}",
            args.grpc_service, args.namespace, args.grpc_service_port
        ),
        otel_env: sluice_operator::workloads::otel_env(std::env::vars()),
    };
    let controllers = controller::run(
        Parts {
            client: client.clone(),
            hub,
            dirty,
            metrics,
            settings,
            ca: started.ca,
            scope,
            rotation: Some(started.rotation),
            reporter: Reporter {
                controller: "sluice-operator".into(),
                instance: Some(args.pod_name.clone()),
            },
        },
        stop.clone(),
    );
    tokio::pin!(controllers);
    let controllers_done = tokio::select! {
        () = &mut controllers => true,
        () = stop.clone() => false,
    };
    // The controllers finish their running reconciles and the gRPC server closes the
    // agents' streams; both are bounded, so a stuck one cannot keep the Lease past the
    // pod's grace period.
    let grpc_abort = grpc.abort_handle();
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        if !controllers_done {
            (&mut controllers).await;
        }
        info!("controllers stopped");
        let _ = grpc.await;
        info!("control channel closed");
    })
    .await;
    if finished.is_err() {
        warn!(grace = ?SHUTDOWN_GRACE, "shutdown did not finish in time; stopping anyway");
        grpc_abort.abort();
    }
    leader::label_pod(client, &args.namespace, &args.pod_name, false).await;
    let still_leading = *leading.borrow();
    drop((leading, stop));
    election.release().await;
    if still_leading {
        Ok(())
    } else {
        Err("leadership lost; exiting so that a fresh replica takes over".into())
    }
}
