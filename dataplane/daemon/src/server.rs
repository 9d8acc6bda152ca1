//! Standalone gateway: manifests in, a running PPTP gateway out. Reloads on
//! SIGHUP and when the manifest file changes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

use crate::config::{self, Runtime};
use crate::datapath::{DataPath, gre_rx_loop, timer_loop, tun_rx_loop};
use crate::gateway::Gateway;
use crate::metrics::{Metrics, ResultLabels};
use crate::{control, http, netcfg};

/// Options of the standalone gateway.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub manifests: PathBuf,
    pub gateway: Option<String>,
    pub tun: String,
    /// Local address for the control listener and the GRE socket (default: all).
    pub bind: Option<Ipv4Addr>,
    pub http: SocketAddr,
    pub forwarding: bool,
    pub max_control_connections: usize,
    /// Calls per PPTP control connection.
    pub max_calls_per_connection: u16,
    /// How often the manifest file is checked for changes.
    pub watch_interval: Duration,
}

fn file_stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Runs the gateway until SIGTERM/SIGINT.
pub async fn run(opts: ServeOptions) -> Result<(), String> {
    let cfg =
        config::load_file(&opts.manifests, opts.gateway.as_deref()).map_err(|e| e.to_string())?;
    if !cfg.pptp_enabled {
        warn!("spec.pptp.enabled is false: the gateway accepts no PPTP calls");
    }
    let tun = netcfg::create_tun(&opts.tun, cfg.mtu, Some(cfg.local_address))
        .map_err(|e| e.to_string())?;
    netcfg::route_replace(&opts.tun, cfg.pool).map_err(|e| e.to_string())?;
    if opts.forwarding {
        netcfg::enable_forwarding().map_err(|e| e.to_string())?;
    }
    netcfg::set_masquerade(&opts.tun, cfg.pool, cfg.masquerade).map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    let dp = DataPath::new(opts.bind, Some(Arc::new(tun)), metrics.clone())
        .map_err(|e| format!("opening the raw GRE socket: {e} (needs CAP_NET_RAW)"))?;
    let routes = netcfg::spawn_route_task(opts.tun.clone());
    let call_id_seed = control::seed_u64();
    let port = cfg.pptp_port;
    let mut gw = Gateway::new(dp, cfg, Some(routes), call_id_seed);
    gw.max_calls_per_connection = opts.max_calls_per_connection.max(1);
    let gw = Arc::new(gw);

    for (name, f) in [
        ("sluice-gre-rx", gre_rx_loop::<Gateway> as fn(Arc<Gateway>)),
        ("sluice-tun-rx", tun_rx_loop::<Gateway>),
    ] {
        let g = gw.clone();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || f(g))
            .map_err(|e| e.to_string())?;
    }
    {
        let g = gw.clone();
        std::thread::Builder::new()
            .name("sluice-timers".into())
            .spawn(move || timer_loop(g, Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
    }

    let listen = SocketAddr::from((opts.bind.unwrap_or(Ipv4Addr::UNSPECIFIED), port));
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listening on {listen}: {e}"))?;
    let permits = Arc::new(Semaphore::new(opts.max_control_connections));
    {
        let gw = gw.clone();
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
                tokio::spawn(control::serve(gw.clone(), stream, peer, permit));
            }
        });
    }
    {
        let gw = gw.clone();
        let addr = opts.http;
        tokio::spawn(async move {
            if let Err(e) = http::serve(gw, addr).await {
                error!(%addr, error = %e, "HTTP endpoint failed");
            }
        });
    }
    info!(%listen, tun = %opts.tun, http = %opts.http, version = %gw.config().version, "gateway ready");

    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    let mut stamp = file_stamp(&opts.manifests);
    let mut tick = tokio::time::interval(opts.watch_interval);
    loop {
        let reason = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            _ = tick.tick() => {
                let now = file_stamp(&opts.manifests);
                if now == stamp || now.is_none() { continue; }
                "manifest file changed"
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        };
        stamp = file_stamp(&opts.manifests);
        reload(&gw, &opts, reason);
    }
    info!(
        sessions = gw.dp.links.len(),
        "shutting down: closing sessions"
    );
    for link in gw.dp.links.all() {
        gw.close(&link, "gateway shutting down");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.dp.stop.store(true, Ordering::Relaxed);
    let _ = netcfg::set_masquerade(&opts.tun, gw.config().pool, false);
    Ok(())
}

fn reload(gw: &Arc<Gateway>, opts: &ServeOptions, why: &str) {
    info!(reason = why, "reloading configuration");
    match config::load_file(&opts.manifests, opts.gateway.as_deref()) {
        Ok(new) => {
            apply_host_changes(gw, opts, &new);
            gw.apply(new);
            gw.dp
                .metrics
                .reloads
                .get_or_create(&ResultLabels { result: "ok" })
                .inc();
        }
        Err(e) => {
            error!("configuration rejected, keeping the running one:\n{e}");
            gw.dp
                .metrics
                .reloads
                .get_or_create(&ResultLabels { result: "rejected" })
                .inc();
        }
    }
}

fn apply_host_changes(gw: &Gateway, opts: &ServeOptions, new: &Runtime) {
    let old = gw.config();
    if old.pool != new.pool {
        netcfg::route_delete(&opts.tun, old.pool);
        if let Err(e) = netcfg::route_replace(&opts.tun, new.pool) {
            error!(error = %e, "installing the new pool route failed");
        }
    }
    if (old.masquerade != new.masquerade || old.pool != new.pool)
        && let Err(e) = netcfg::set_masquerade(&opts.tun, new.pool, new.masquerade)
    {
        error!(error = %e, "updating masquerade failed");
    }
    if old.local_address != new.local_address || old.mtu != new.mtu {
        warn!("spec.ppp.localAddress / mtu changes apply to the TUN device after restart");
    }
}
