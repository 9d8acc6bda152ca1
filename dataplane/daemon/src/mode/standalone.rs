//! Running a gateway on this host: [`start`] turns a [`Runtime`] into a serving
//! gateway (both modes), [`reconfigure`] applies a new one hitlessly, [`stop`]
//! ends it. [`run`] is the standalone mode: manifests in, reloads on SIGHUP and
//! when the manifest file changes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_api::ManifestFile;
use tokio::net::TcpListener;
use tokio::signal::unix::SignalKind;
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::config::{self, Runtime};
use crate::control::{ike, lns, pptp};
use crate::datapath::ipsec::{self, IpsecIo};
use crate::datapath::l2tp::{ControlRate, L2tpIo, l2tp_rx_loop};
use crate::datapath::{DataPath, gre_rx_loop, timer_loop, tun_rx_loop};
use crate::gateway::Gateway;
use crate::gateway::admission::{Admission, AdmissionLimits};
use crate::gateway::events::EventQueue;
use crate::host::nofile;
use crate::host::spawn;
use crate::http::{self, Endpoints, HttpState};
use crate::io::netcfg;
use crate::io::udpsock::UdpPort;
use crate::metrics::{Metrics, ResultLabels};
use crate::mode::StartError;
use crate::mode::start_error::signal;

/// How this host runs a gateway, whatever the configuration says.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub tun: String,
    /// Open the TUN device with the kernel's offloads (`io::tun`).
    pub tun_offload: bool,
    /// The TUN device's transmit ring (`None`: the kernel's default).
    pub tun_txqueuelen: Option<u32>,
    /// Local address for the control listener and the GRE socket (default: all).
    pub bind: Option<Ipv4Addr>,
    /// Where the metrics and admin endpoints listen.
    pub endpoints: Endpoints,
    pub forwarding: bool,
    pub max_control_connections: usize,
    /// Calls per PPTP control connection (and sessions per L2TP tunnel).
    pub max_calls_per_connection: u16,
    /// Per-source budget of L2TP control messages.
    pub l2tp_control_rate: ControlRate,
    /// Per-source caps before authentication.
    pub admission: AdmissionLimits,
    /// PPTP control connections without a call are closed after this.
    pub control_idle_timeout: Duration,
    /// Receive threads for GRE and raw ESP, each with its share of the sessions (`io::shard`).
    pub rx_shards: u32,
    /// CoDel on the receive queues (`datapath::aqm`), or none.
    pub aqm: Option<crate::datapath::codel::CodelParams>,
}

impl HostOptions {
    /// Where the PPTP control listener binds.
    pub fn listen_addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from((self.bind.unwrap_or(Ipv4Addr::UNSPECIFIED), port))
    }

    /// Logs that the gateway serves (the e2e suites wait for this line).
    pub fn log_ready(&self, gw: &Gateway) {
        let cfg = gw.config();
        let listen = self.listen_addr(cfg.pptp_port);
        if cfg.l2tp.enabled {
            let l2tp = self.listen_addr(cfg.l2tp.port);
            info!(%listen, %l2tp, tun = %self.tun, metrics = %self.endpoints.metrics, admin = %self.endpoints.admin, version = %cfg.version, "gateway ready");
        } else {
            info!(%listen, tun = %self.tun, metrics = %self.endpoints.metrics, admin = %self.endpoints.admin, version = %cfg.version, "gateway ready");
        }
    }
}

/// Options of the standalone gateway.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub manifests: PathBuf,
    pub gateway: Option<String>,
    pub host: HostOptions,
    /// How often the manifest file is checked for changes.
    pub watch_interval: Duration,
}

/// Brings a gateway up from `cfg`: TUN device, pool route, forwarding,
/// masquerade, raw GRE socket, data-path threads and the PPTP listener.
/// Everything that can fail is done before any thread starts. Must run inside
/// the tokio runtime (the listener's accept loop is a task). The caller serves
/// HTTP and logs [`HostOptions::log_ready`].
pub fn start(
    host: &HostOptions,
    cfg: Runtime,
    metrics: Arc<Metrics>,
    events: Option<EventQueue>,
) -> Result<Arc<Gateway>, StartError> {
    if !cfg.pptp_enabled {
        warn!("spec.pptp.enabled is false: the gateway accepts no PPTP calls");
    }
    warn_plain_l2tp(&cfg);
    let tun = netcfg::create_tun(
        &host.tun,
        cfg.mtu,
        Some(cfg.local_address),
        host.tun_offload,
        host.tun_txqueuelen,
    )?;
    netcfg::route_replace(&host.tun, cfg.pool)?;
    if host.forwarding {
        netcfg::enable_forwarding()?;
    }
    netcfg::set_masquerade(&host.tun, cfg.pool, cfg.masquerade)?;
    let mut dp = DataPath::new(host.bind, Some(Arc::new(tun)), metrics, host.rx_shards)
        .map_err(StartError::GreSocket)?;
    dp.aqm = host.aqm;
    let listen = host.listen_addr(cfg.pptp_port);
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(TcpListener::from_std)
        .map_err(|source| StartError::Listen {
            addr: listen,
            source,
        })?;

    let routes = netcfg::spawn_route_task(host.tun.clone());
    let mut gw = Gateway::new(dp, cfg, Some(routes), crate::host::seed_u64());
    gw.max_calls_per_connection = host.max_calls_per_connection.max(1);
    gw.admission = Admission::new(host.admission);
    gw.control_idle_timeout = host.control_idle_timeout;
    gw.events = events;
    let gw = Arc::new(gw);
    if let Err(e) = spawn_threads(&gw) {
        gw.dp.stop.store(true, Ordering::Relaxed);
        return Err(e);
    }
    spawn_accept_loop(gw.clone(), listener, host.max_control_connections);
    spawn_log_flush(gw.clone());
    netcfg::delete_stale_client_snat();
    gw.diallers.apply(&gw, &host.tun, &gw.config().clients);
    if gw.config().l2tp.enabled
        && let Err(e) = start_l2tp(&gw, host)
    {
        gw.dp.stop.store(true, Ordering::Relaxed);
        return Err(e);
    }
    Ok(gw)
}

/// Logs the warning plain L2TP deserves (RFC 2661 §9.2, §9.4: L2TP itself encrypts nothing;
/// packet-level security comes from IPsec).
fn warn_plain_l2tp(cfg: &Runtime) {
    if cfg.l2tp.enabled && cfg.l2tp.allow_unencrypted {
        warn!(
            port = cfg.l2tp.port,
            "spec.l2tp.allowUnencrypted is true: L2TP is served WITHOUT IPsec; sessions are \
             not encrypted unless MPPE is negotiated (spec.l2tp.encryption)"
        );
    }
}

/// Opens the L2TP UDP port and starts its receive thread and control task
/// (once; later calls do nothing).
pub fn start_l2tp(gw: &Arc<Gateway>, host: &HostOptions) -> Result<(), StartError> {
    if gw.dp.l2tp.get().is_some() {
        return Ok(());
    }
    let port = gw.config().l2tp.port;
    let sock = UdpPort::open(host.bind, port, Duration::from_millis(200)).map_err(|source| {
        StartError::L2tpPort {
            port,
            bind: host.bind.unwrap_or(Ipv4Addr::UNSPECIFIED),
            source,
        }
    })?;
    let (io, control) = L2tpIo::new(sock, host.l2tp_control_rate);
    if gw.dp.l2tp.set(io).is_err() {
        return Ok(());
    }
    let g = gw.clone();
    spawn("sluice-l2tp-rx", move || l2tp_rx_loop(g))?;
    tokio::spawn(lns::run(
        gw.clone(),
        control,
        gw.l2tp_shutdown.subscribe(),
        lns::Limits {
            tunnels: host.max_control_connections.max(1),
            sessions_per_tunnel: usize::from(host.max_calls_per_connection.max(1)),
        },
    ));
    start_ipsec(gw, host)
}

/// Opens the IKE and NAT-T ports and the raw ESP socket and starts their receive threads
/// and the IKE task, when the configuration protects L2TP with IPsec (once; the ports are
/// fixed until restart).
pub fn start_ipsec(gw: &Arc<Gateway>, host: &HostOptions) -> Result<(), StartError> {
    let cfg = gw.config();
    let Some(ipsec) = &cfg.l2tp.ipsec else {
        return Ok(());
    };
    if gw.dp.ipsec.get().is_some() {
        return Ok(());
    }
    let (io, rx) = IpsecIo::open(
        host.bind,
        ipsec.ike_port,
        ipsec.natt_port,
        cfg.l2tp.port,
        ipsec::Role::Gateway,
        host.rx_shards,
    )
    .map_err(|source| StartError::IpsecSockets {
        ike: ipsec.ike_port,
        natt: ipsec.natt_port,
        bind: host.bind.unwrap_or(Ipv4Addr::UNSPECIFIED),
        source,
    })?;
    if gw.dp.ipsec.set(io).is_err() {
        return Ok(());
    }
    let g = gw.clone();
    spawn("sluice-ike-rx", move || ipsec::ike_rx_loop(g))?;
    let shards = host.rx_shards.max(1) as usize;
    for (shard, (esp, natt)) in ESP_RX.iter().zip(NATT_RX).enumerate().take(shards) {
        let g = gw.clone();
        spawn(esp, move || ipsec::esp_raw_rx_loop(g, shard))?;
        let g = gw.clone();
        spawn(natt, move || ipsec::natt_rx_loop(g, shard))?;
    }
    tokio::spawn(ike::run(gw.clone(), rx, gw.l2tp_shutdown.subscribe()));
    info!(
        ike = ipsec.ike_port,
        natt = ipsec.natt_port,
        plain_l2tp = cfg.l2tp.allow_unencrypted,
        "L2TP/IPsec: IKEv1 responder and ESP fast path started"
    );
    Ok(())
}

/// Names of the receive shards' threads (`io::shard`: at most 8).
const GRE_RX: [&str; 8] = [
    "sluice-gre-rx0",
    "sluice-gre-rx1",
    "sluice-gre-rx2",
    "sluice-gre-rx3",
    "sluice-gre-rx4",
    "sluice-gre-rx5",
    "sluice-gre-rx6",
    "sluice-gre-rx7",
];
const ESP_RX: [&str; 8] = [
    "sluice-esp-rx0",
    "sluice-esp-rx1",
    "sluice-esp-rx2",
    "sluice-esp-rx3",
    "sluice-esp-rx4",
    "sluice-esp-rx5",
    "sluice-esp-rx6",
    "sluice-esp-rx7",
];

const NATT_RX: [&str; 8] = [
    "sluice-natt-rx0",
    "sluice-natt-rx1",
    "sluice-natt-rx2",
    "sluice-natt-rx3",
    "sluice-natt-rx4",
    "sluice-natt-rx5",
    "sluice-natt-rx6",
    "sluice-natt-rx7",
];

fn spawn_threads(gw: &Arc<Gateway>) -> Result<(), StartError> {
    for (shard, name) in GRE_RX.iter().enumerate().take(gw.dp.gre_shard_count()) {
        let g = gw.clone();
        spawn(name, move || gre_rx_loop(g, shard))?;
    }
    let g = gw.clone();
    spawn("sluice-tun-rx", move || tun_rx_loop(g))?;
    let g = gw.clone();
    spawn("sluice-timers", move || {
        timer_loop(g, Duration::from_millis(20))
    })?;
    Ok(())
}

/// Emits the failed-login summary of a window even when no further failure comes.
fn spawn_log_flush(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        while !gw.dp.stop.load(Ordering::Relaxed) {
            every.tick().await;
            gw.login.flush(Instant::now());
        }
    });
}

fn spawn_accept_loop(gw: Arc<Gateway>, listener: TcpListener, max_connections: usize) {
    let max_connections = match nofile::get() {
        Ok(limit) => {
            let cap = nofile::control_connection_cap(max_connections, limit).max(1);
            if cap < max_connections {
                warn!(
                    configured = max_connections,
                    cap,
                    nofile = limit.soft,
                    "the descriptor limit caps PPTP control connections below --max-control-connections"
                );
            }
            cap
        }
        Err(_) => max_connections,
    };
    let permits = Arc::new(Semaphore::new(max_connections));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                gw.dp.metrics.dropped("control_connection_limit");
                drop(stream);
                continue;
            };
            let SocketAddr::V4(peer) = peer else {
                continue; // PPTP over IPv6 is not supported (the listener is IPv4).
            };
            let slot = match gw.admission.control_connection(*peer.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    gw.dp.metrics.dropped(refusal.as_str());
                    drop(stream);
                    continue;
                }
            };
            tokio::spawn(pptp::serve(gw.clone(), stream, peer, permit, slot));
        }
    });
}

/// Applies a new configuration to a running gateway: host changes (pool
/// route, masquerade, the L2TP port when L2TP is newly enabled) first, then
/// [`Gateway::apply`].
pub fn reconfigure(gw: &Arc<Gateway>, host: &HostOptions, new: Runtime) {
    apply_host_changes(gw, &host.tun, &new);
    let l2tp = new.l2tp.enabled;
    if l2tp && !gw.config().l2tp.enabled {
        warn_plain_l2tp(&new);
    }
    let clients = new.clients.clone();
    gw.apply(new);
    gw.diallers.apply(gw, &host.tun, &clients);
    if l2tp && let Err(e) = start_l2tp(gw, host).and_then(|()| start_ipsec(gw, host)) {
        error!(error = %e, "starting L2TP failed");
    }
}

/// Closes every session (LCP Terminate + Call-Disconnect-Notify), stops the
/// data-path threads and removes the masquerade rule.
pub async fn stop(gw: &Arc<Gateway>, tun: &str) {
    gw.diallers.stop_all().await;
    info!(
        sessions = gw.dp.links.served(),
        "shutting down: closing sessions"
    );
    for link in gw.dp.links.all() {
        gw.close(&link, "gateway shutting down");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // StopCCN to every L2TP tunnel; the control task ends once they are acknowledged.
    let _ = gw.l2tp_shutdown.send(true);
    if gw.dp.l2tp.get().is_some() {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    gw.dp.stop.store(true, Ordering::Relaxed);
    let _ = netcfg::set_masquerade(tun, gw.config().pool, false);
}

/// Runs the standalone gateway until SIGTERM/SIGINT.
pub async fn run(opts: ServeOptions) -> Result<(), StartError> {
    let loaded = config::load_file(&opts.manifests, opts.gateway.as_deref())?;
    let metrics = Arc::new(Metrics::new());
    note_left_out(&loaded, &metrics);
    let gw = start(&opts.host, loaded.runtime, metrics.clone(), None)?;
    let state = Arc::new(HttpState::new(metrics));
    state.set_gateway(gw.clone());
    http::start(state.clone(), &opts.host.endpoints).await?;
    opts.host.log_ready(&gw);

    let mut hup = signal("SIGHUP", SignalKind::hangup())?;
    let mut term = signal("SIGTERM", SignalKind::terminate())?;
    let mut int = signal("SIGINT", SignalKind::interrupt())?;
    let mut file = ManifestFile::new(&opts.manifests);
    let mut tick = tokio::time::interval(opts.watch_interval);
    let drained = drained(state.clone());
    tokio::pin!(drained);
    loop {
        let reason = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            _ = tick.tick() => {
                if !file.changed() { continue; }
                "manifest file changed"
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            () = &mut drained => break,
        };
        file.mark_read();
        reload(&gw, &opts, reason);
    }
    stop(&gw, &opts.host.tun).await;
    Ok(())
}

/// Resolves once the gateway (when there is one) finished draining: no session left, or
/// its drain deadline passed (checked every second).
pub async fn drained(state: Arc<HttpState>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        every.tick().await;
        if let Some(why) = state
            .gateway()
            .and_then(|gw| gw.drain_finished(Instant::now()))
        {
            info!(reason = why, "drain finished");
            return;
        }
    }
}

/// Counts a configuration apply (`ok`) or refusal (`rejected`).
pub fn count_apply(metrics: &Metrics, ok: bool) {
    let result = if ok { "ok" } else { "rejected" };
    metrics
        .reloads
        .get_or_create(&ResultLabels { result })
        .inc();
}

fn reload(gw: &Arc<Gateway>, opts: &ServeOptions, why: &str) {
    info!(reason = why, "reloading configuration");
    match config::load_file(&opts.manifests, opts.gateway.as_deref()) {
        Ok(new) => {
            note_left_out(&new, &gw.dp.metrics);
            reconfigure(gw, &opts.host, new.runtime);
            count_apply(&gw.dp.metrics, true);
        }
        Err(e) => {
            error!("configuration rejected, keeping the running one:\n{e}");
            count_apply(&gw.dp.metrics, false);
        }
    }
}

/// Logs each user or client the configuration left out, with every error about it (errors
/// name fields, never secret values), and counts the users in
/// `sluice_config_users_left_out`.
fn note_left_out(loaded: &config::Loaded, metrics: &Metrics) {
    for (object, errors) in &loaded.left_out {
        warn!(%object, "left out of the configuration:\n{errors}");
    }
    for c in &loaded.runtime.clients_left_out {
        warn!(client = %c.source, error = %c.error, "VpnClient left out of the configuration");
    }
    let users = loaded
        .left_out
        .keys()
        .filter(|r| r.kind == sluice_api::ObjectKind::VpnUser)
        .count();
    metrics
        .users_left_out
        .set(i64::try_from(users).unwrap_or(i64::MAX));
}

fn apply_host_changes(gw: &Gateway, tun: &str, new: &Runtime) {
    let old = gw.config();
    if old.pool != new.pool {
        netcfg::route_delete(tun, old.pool);
        if let Err(e) = netcfg::route_replace(tun, new.pool) {
            error!(error = %e, "installing the new pool route failed");
        }
    }
    if (old.masquerade != new.masquerade || old.pool != new.pool)
        && let Err(e) = netcfg::set_masquerade(tun, new.pool, new.masquerade)
    {
        error!(error = %e, "updating masquerade failed");
    }
    if old.local_address != new.local_address || old.mtu != new.mtu {
        warn!("spec.ppp.localAddress / mtu changes apply to the TUN device after restart");
    }
}
