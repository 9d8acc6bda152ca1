//! The persistent dialler (issue 22): one task per `VpnClient`, on the gateway's data path.
//! It dials, reports its [`TunnelStatus`] (the seed's `monitor`: status, uptime, encoding,
//! local and remote address), installs the tunnel's address, routes and source NAT while it
//! is up, and dials again after the back-off of [`policy`](super::policy) when the server
//! goes away or refuses us.
//!
//! [`Diallers::apply`] is hitless: a client whose configuration did not change keeps its
//! tunnel; a changed one redials; server-side sessions are never touched.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::policy::{Backoff, Dialler, Failure, Phase};
use super::{Client, Outcome, SessionParams, run_connection, without};
use crate::config::{ClientConfig, ClientTransport};
use crate::control::pptp::mppe_overhead;
use crate::gateway::Gateway;
use crate::io::netcfg;
use crate::metrics::{ClientPhaseLabels, DialLabels, Metrics, ProtoLabels};
use crate::sync::lock;
use prometheus_client::metrics::gauge::Gauge;

/// How long a call may take to come up before the attempt counts as failed.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping tunnel may take to hang up (LCP Terminate, Call-Clear-Request).
const HANGUP_TIMEOUT: Duration = Duration::from_secs(3);

/// One client tunnel as `sluice-dataplane sessions` and the admin endpoint's `/clients` show
/// it. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// The `VpnClient`, `namespace/name`.
    pub source: String,
    /// `pptp` or `l2tp`.
    pub protocol: String,
    /// `host:port` as configured.
    pub server: String,
    /// Connecting, Connected, BackingOff or Failed.
    pub phase: String,
    /// Seconds since the epoch when the phase began (Connected: the uptime's start).
    pub since_unix: u64,
    /// Our tunnel address (IPCP).
    pub local_address: Option<Ipv4Addr>,
    /// The server's tunnel address.
    pub remote_address: Option<Ipv4Addr>,
    /// The data encoding agreed, e.g. "MPPE 128 bit, stateless".
    pub encoding: Option<String>,
    /// Our Call ID while a call exists.
    pub call_id: Option<u16>,
    /// Why the last attempt failed or the tunnel went down: `Reason: detail`.
    pub last_error: Option<String>,
    /// BackingOff: seconds since the epoch of the next attempt.
    pub retry_at_unix: Option<u64>,
    /// Attempts since the dialler started.
    pub attempts: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The wall-clock time of `at`, an instant in the future or past.
fn wall(at: Instant) -> SystemTime {
    let now = Instant::now();
    if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    }
}

/// Text from the server (CHAP Failure messages, Call-Disconnect-Notify statistics) as it may
/// reach logs and terminals: control characters replaced, at most 256 characters.
fn printable(text: &str) -> String {
    text.chars()
        .take(256)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The running dialler tasks of a gateway, keyed by `VpnClient` (`source`).
#[derive(Default)]
pub struct Diallers {
    running: Mutex<HashMap<String, Running>>,
    /// Numbers the tunnels' nft tables (`sluice_client_N`), never reused.
    next_index: AtomicU32,
}

struct Running {
    config: ClientConfig,
    stop: watch::Sender<bool>,
    status: watch::Receiver<TunnelStatus>,
    task: JoinHandle<()>,
}

impl Diallers {
    /// Starts, restarts or stops dialler tasks so that exactly `clients` run; a client whose
    /// configuration is unchanged keeps its tunnel.
    pub fn apply(&self, gw: &Arc<Gateway>, tun: &str, clients: &[ClientConfig]) {
        let mut running = lock(&self.running);
        let gone: Vec<String> = running
            .iter()
            .filter(|(source, r)| {
                !clients
                    .iter()
                    .any(|c| c.source == **source && *c == r.config)
            })
            .map(|(source, _)| source.clone())
            .collect();
        // A changed client's new task waits for the old one's hang-up, so the old one's
        // clean-up never removes the new tunnel's routes.
        let mut hanging_up = HashMap::new();
        for source in gone {
            if let Some(r) = running.remove(&source) {
                info!(client = %source, "VpnClient removed or changed: hanging up");
                let _ = r.stop.send(true);
                hanging_up.insert(source, r.task);
            }
        }
        for c in clients {
            if running.contains_key(&c.source) {
                continue;
            }
            let index = self
                .next_index
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1);
            let (stop, stop_rx) = watch::channel(false);
            let (status_tx, status) = watch::channel(initial_status(c));
            let task = tokio::spawn(run(
                gw.clone(),
                Host {
                    tun: tun.to_owned(),
                    nft_table: format!("{}{index}", netcfg::CLIENT_SNAT_TABLE),
                },
                c.clone(),
                status_tx,
                stop_rx,
                hanging_up.remove(&c.source),
            ));
            running.insert(
                c.source.clone(),
                Running {
                    config: c.clone(),
                    stop,
                    status,
                    task,
                },
            );
        }
    }

    /// The status of every client tunnel, by `source`.
    pub fn statuses(&self) -> Vec<TunnelStatus> {
        let mut out: Vec<TunnelStatus> = lock(&self.running)
            .values()
            .map(|r| r.status.borrow().clone())
            .collect();
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }

    /// Hangs every tunnel up and waits (bounded) for their tasks.
    pub async fn stop_all(&self) {
        let tasks: Vec<JoinHandle<()>> = lock(&self.running)
            .drain()
            .map(|(_, r)| {
                let _ = r.stop.send(true);
                r.task
            })
            .collect();
        for t in tasks {
            let _ = tokio::time::timeout(HANGUP_TIMEOUT * 2, t).await;
        }
    }
}

fn initial_status(c: &ClientConfig) -> TunnelStatus {
    TunnelStatus {
        source: c.source.clone(),
        protocol: c.transport.protocol().as_str().to_owned(),
        server: format!("{}:{}", c.server_host, c.server_port),
        phase: Phase::Connecting.to_string(),
        since_unix: unix(SystemTime::now()),
        local_address: None,
        remote_address: None,
        encoding: None,
        call_id: None,
        last_error: None,
        retry_at_unix: None,
        attempts: 0,
    }
}

/// What the host gives a tunnel: the TUN device and its own nft table.
struct Host {
    tun: String,
    nft_table: String,
}

/// What was installed on the host for an up tunnel, to remove when it goes down.
struct Installed {
    local: Ipv4Addr,
    routes: Vec<Ipv4Net>,
    pinned: Option<Ipv4Net>,
    snat: bool,
}

/// The networks routed into the tunnel: `spec.routes`, and the two halves of the address
/// space for `addDefaultRoute` (more specific than the host's default, which stays).
fn tunnel_routes(c: &ClientConfig) -> Vec<Ipv4Net> {
    let mut routes = c.routes.clone();
    if c.add_default_route {
        for half in ["0.0.0.0/1", "128.0.0.0/1"] {
            if let Ok(n) = half.parse() {
                routes.push(n);
            }
        }
    }
    routes
}

fn ppp_config(c: &ClientConfig) -> sluice_ppp::ClientConfig {
    let overhead = mppe_overhead(c.ppp.mppe.policy);
    sluice_ppp::ClientConfig {
        username: c.username.clone(),
        password: c.password.expose().to_vec(),
        auth: c.ppp.auth.clone(),
        mppe: c.ppp.mppe,
        mru: c.mru.saturating_add(overhead),
        mtu: c.mtu.saturating_add(overhead),
        request_dns: false,
        keepalive: c.keepalive,
    }
}

/// How an attempt ended.
enum Ended {
    Stopped,
    Failed(Failure),
}

async fn run(
    gw: Arc<Gateway>,
    host: Host,
    cfg: ClientConfig,
    status: watch::Sender<TunnelStatus>,
    mut stop: watch::Receiver<bool>,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(previous) = previous {
        tokio::select! {
            _ = tokio::time::timeout(HANGUP_TIMEOUT * 2, previous) => {}
            _ = stop.changed() => return,
        }
    }
    let (initial, max) = cfg.reconnect;
    let mut policy = Dialler::new(Backoff { initial, max }, Instant::now());
    let mut gauge = PhaseGauge::new(gw.dp.metrics.clone(), policy.phase());
    if let ClientTransport::L2tp { .. } = cfg.transport {
        let failure = Failure::Local("this version dials PPTP only; L2TP is not built yet".into());
        warn!(client = %cfg.source, "{failure}");
        policy.give_up(Instant::now(), failure);
        publish(&status, &mut gauge, &policy, |_| {});
        let _ = stop.changed().await;
        return;
    }
    loop {
        status.send_modify(|s| s.attempts += 1);
        publish(&status, &mut gauge, &policy, |s| s.retry_at_unix = None);
        let ended = attempt(
            &gw,
            &host,
            &cfg,
            &status,
            &mut gauge,
            &mut policy,
            &mut stop,
        )
        .await;
        match ended {
            Ended::Stopped => return,
            Ended::Failed(failure) => {
                // An attempt that never came up counts as a failed dial; a tunnel that was up
                // counted its dial when it came up.
                if policy.phase() != Phase::Connected {
                    count_dial(&gw.dp.metrics, &cfg, failure.reason(), None);
                }
                info!(client = %cfg.source, reason = failure.reason(), error = %failure, "client tunnel down; backing off");
                let random = getrandom::u32().unwrap_or(u32::MAX / 2);
                let at = policy.failed(Instant::now(), failure, random);
                publish(&status, &mut gauge, &policy, |s| {
                    s.retry_at_unix = Some(unix(wall(at)));
                    s.local_address = None;
                    s.remote_address = None;
                    s.encoding = None;
                    s.call_id = None;
                });
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    _ = stop.changed() => return,
                }
                policy.handle_timeout(Instant::now());
            }
        }
    }
}

/// The tunnel's place in `sluice_client_tunnels{phase}`: moved with each phase change,
/// removed when the dialler ends.
struct PhaseGauge {
    metrics: Arc<Metrics>,
    phase: Phase,
}

impl PhaseGauge {
    fn new(metrics: Arc<Metrics>, phase: Phase) -> PhaseGauge {
        PhaseGauge::gauge(&metrics, phase).inc();
        PhaseGauge { metrics, phase }
    }

    fn gauge(metrics: &Metrics, phase: Phase) -> Gauge {
        let labels = ClientPhaseLabels {
            phase: phase.as_str(),
        };
        metrics.client_tunnels.get_or_create(&labels).clone()
    }

    fn set(&mut self, phase: Phase) {
        if phase != self.phase {
            PhaseGauge::gauge(&self.metrics, self.phase).dec();
            PhaseGauge::gauge(&self.metrics, phase).inc();
            self.phase = phase;
        }
    }
}

impl Drop for PhaseGauge {
    fn drop(&mut self) {
        PhaseGauge::gauge(&self.metrics, self.phase).dec();
    }
}

/// Copies the policy's phase, since and last failure into the status (and the phase into
/// the gauge), then `more`.
fn publish(
    status: &watch::Sender<TunnelStatus>,
    gauge: &mut PhaseGauge,
    policy: &Dialler,
    more: impl FnOnce(&mut TunnelStatus),
) {
    gauge.set(policy.phase());
    status.send_modify(|s| {
        s.phase = policy.phase().to_string();
        s.since_unix = unix(wall(policy.since()));
        s.last_error = policy.last_failure().map(ToString::to_string);
        more(s);
    });
}

/// Counts a dial in `sluice_client_dials_total` (and, when it came up after `setup`, in
/// `sluice_client_setup_duration_seconds`).
fn count_dial(
    metrics: &Metrics,
    cfg: &ClientConfig,
    result: &'static str,
    setup: Option<Duration>,
) {
    let protocol = cfg.transport.protocol();
    metrics
        .client_dials
        .get_or_create(&DialLabels { protocol, result })
        .inc();
    if let Some(setup) = setup {
        metrics
            .client_setup_duration
            .get_or_create(&ProtoLabels { protocol })
            .observe(setup.as_secs_f64());
    }
}

/// One attempt: resolve, dial, stay up until the call ends or the dialler stops.
async fn attempt(
    gw: &Arc<Gateway>,
    host: &Host,
    cfg: &ClientConfig,
    status: &watch::Sender<TunnelStatus>,
    gauge: &mut PhaseGauge,
    policy: &mut Dialler,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let server = tokio::select! {
        r = resolve(&cfg.server_host, cfg.server_port) => match r {
            Ok(s) => s,
            Err(why) => return Ended::Failed(Failure::Unreachable(why)),
        },
        _ = stop.changed() => return Ended::Stopped,
    };
    let dialled = Instant::now();
    let routes = tunnel_routes(cfg);
    // The gateway's pool is its sessions', even under a default route into the tunnel.
    let pool = gw.config().pool;
    let (client, mut outcomes) = Client::dialled(
        gw.clone(),
        without(&routes, pool),
        cfg.source.clone(),
        cfg.username.clone(),
    );
    let (conn_stop, conn_stop_rx) = watch::channel(false);
    let params = SessionParams {
        server,
        ppp: ppp_config(cfg),
        calls: 1,
    };
    let mut conn = tokio::spawn(run_connection(client.clone(), params, conn_stop_rx));
    let setup_deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut installed: Option<Installed> = None;
    let ended = loop {
        tokio::select! {
            Some((call_id, outcome)) = outcomes.recv() => match outcome {
                Outcome::Up { address, gateway, encoding, mtu, .. } => {
                    let now = Instant::now();
                    count_dial(&gw.dp.metrics, cfg, "connected", Some(now.saturating_duration_since(dialled)));
                    policy.connected(now);
                    info!(client = %cfg.source, %server, local = %address, remote = %gateway, %encoding, mtu, "client tunnel up");
                    let up = Up { local: address, remote: gateway, mtu };
                    installed = install(host, cfg, &routes, server, up, pool).await;
                    publish(status, gauge, policy, |s| {
                        s.local_address = Some(address);
                        s.remote_address = Some(gateway);
                        s.encoding = Some(encoding.to_string());
                        s.call_id = Some(call_id);
                    });
                }
                Outcome::Failed(why) => break Ended::Failed(Failure::Negotiation(printable(&why))),
                Outcome::Rejected(why) => break Ended::Failed(Failure::Rejected(printable(&why))),
                Outcome::Down(why) => break Ended::Failed(Failure::Dropped(printable(&why))),
            },
            r = &mut conn => {
                let why = match r {
                    Ok(Ok(())) => "the control connection closed".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                return finish(host, installed, if policy.phase() == Phase::Connected {
                    Failure::Dropped(why)
                } else {
                    Failure::Unreachable(why)
                }).await;
            }
            () = tokio::time::sleep_until(setup_deadline), if policy.phase() != Phase::Connected => {
                break Ended::Failed(Failure::Unreachable(format!("no session within {}s", SETUP_TIMEOUT.as_secs())));
            }
            _ = stop.changed() => break Ended::Stopped,
        }
    };
    let _ = conn_stop.send(true);
    if tokio::time::timeout(HANGUP_TIMEOUT, &mut conn)
        .await
        .is_err()
    {
        // The server did not let go in time (or TCP still connects): cut the connection
        // and take back what its task held.
        conn.abort();
        let _ = conn.await;
        client.finish_all("hung up");
    }
    match ended {
        Ended::Stopped => {
            uninstall(host, installed).await;
            Ended::Stopped
        }
        Ended::Failed(f) => finish(host, installed, f).await,
    }
}

async fn finish(host: &Host, installed: Option<Installed>, failure: Failure) -> Ended {
    uninstall(host, installed).await;
    Ended::Failed(failure)
}

/// The first IPv4 address of `host:port`.
async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("resolving {host}: {e}"))?;
    addrs
        .into_iter()
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{host} has no IPv4 address"))
}

/// Gives the host the tunnel: our address on the TUN device, the routes with it as their
/// source, the pinned route to the server under a default route, and the source NAT.
/// The tunnel as PPP brought it up.
#[derive(Debug, Clone, Copy)]
struct Up {
    local: Ipv4Addr,
    remote: Ipv4Addr,
    mtu: u16,
}

async fn install(
    host: &Host,
    cfg: &ClientConfig,
    routes: &[Ipv4Net],
    server: SocketAddr,
    up: Up,
    pool: Ipv4Net,
) -> Option<Installed> {
    let tun = host.tun.clone();
    let table = host.nft_table.clone();
    let routes = routes.to_vec();
    let default = cfg.add_default_route;
    let masquerade = cfg.masquerade;
    let source = cfg.source.clone();
    let SocketAddr::V4(server) = server else {
        return None;
    };
    tokio::task::spawn_blocking(move || {
        let warn_on = |what: &str, r: Result<(), netcfg::NetError>| {
            if let Err(e) = r {
                warn!(client = %source, error = %e, "{what} failed");
            }
        };
        let pinned = if default {
            netcfg::route_pin(*server.ip())
                .map_err(|e| warn!(client = %source, error = %e, "pinning the route to the server failed"))
                .ok()
                .flatten()
        } else {
            None
        };
        warn_on("adding the tunnel address", netcfg::set_address(&tun, up.local));
        let mut all = vec![Ipv4Net::from(up.remote)];
        all.extend(routes.iter().copied());
        for net in &all {
            warn_on(
                "installing a tunnel route",
                netcfg::route_replace_from(&tun, *net, up.local, up.mtu),
            );
        }
        let snat = masquerade && !routes.is_empty();
        if snat {
            let rule = netcfg::ClientSnat {
                local: up.local,
                nets: &routes,
                pool,
            };
            warn_on(
                "installing the tunnel's source NAT",
                netcfg::set_client_snat(&table, &tun, Some(rule)),
            );
        }
        Installed {
            local: up.local,
            routes: all,
            pinned,
            snat,
        }
    })
    .await
    .ok()
}

async fn uninstall(host: &Host, installed: Option<Installed>) {
    let Some(i) = installed else { return };
    let tun = host.tun.clone();
    let table = host.nft_table.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if i.snat {
            let _ = netcfg::set_client_snat(&table, &tun, None);
        }
        for net in &i.routes {
            netcfg::route_delete(&tun, *net);
        }
        netcfg::address_delete(&tun, i.local);
        if let Some(p) = i.pinned {
            netcfg::route_unpin(p);
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::sessions::render_clients;

    fn client(extra: &str) -> ClientConfig {
        let text = format!(
            "{}\n---\napiVersion: sluice.dev/v1alpha1\nkind: VpnClient\nmetadata: {{name: hq}}\n\
             spec: {{gatewayRef: {{name: office}}, protocol: pptp, connectTo: 192.0.2.1,\n\
             credentialsSecretRef: {{name: alice-password, usernameKey: password}},\n\
             routes: [10.20.0.0/16]{extra}}}\n",
            include_str!("../../../../examples/standalone.yaml")
        );
        let loaded = crate::config::load_str(&text, None).map_err(|e| e.to_string());
        let c = loaded.map(|l| l.runtime.clients.first().cloned());
        let Ok(Some(c)) = c else { panic!("{c:?}") };
        c
    }

    #[test]
    fn a_default_route_is_two_halves_next_to_the_routes() {
        let nets = |c: &ClientConfig| -> Vec<String> {
            tunnel_routes(c).iter().map(ToString::to_string).collect()
        };
        assert_eq!(nets(&client("")), ["10.20.0.0/16"]);
        assert_eq!(
            nets(&client(", addDefaultRoute: true")),
            ["10.20.0.0/16", "0.0.0.0/1", "128.0.0.0/1"]
        );
    }

    #[test]
    fn the_ppp_peer_gets_the_spec_and_room_for_mppe() {
        let c = client(", mtu: 1300, mru: 1350");
        let p = ppp_config(&c);
        assert_eq!(p.username, c.username);
        assert_eq!(p.password, c.password.expose());
        assert_eq!((p.mtu, p.mru), (1304, 1354));
        assert!(!p.request_dns);
        assert_eq!(p.auth, [sluice_ppp::AuthProto::MsChapV2]);
        assert_eq!(p.mppe.policy, sluice_ppp::EncryptionPolicy::Require);
    }

    #[test]
    fn the_monitor_shows_phase_uptime_addresses_and_the_reason() {
        let up = TunnelStatus {
            phase: "Connected".into(),
            since_unix: 1_000,
            local_address: Some(Ipv4Addr::new(10, 201, 0, 2)),
            remote_address: Some(Ipv4Addr::new(10, 201, 0, 1)),
            encoding: Some("MPPE 128 bit, stateless".into()),
            ..initial_status(&client(""))
        };
        let down = TunnelStatus {
            phase: "BackingOff".into(),
            retry_at_unix: Some(1_090),
            last_error: Some("AuthenticationRejected: E=691".into()),
            ..initial_status(&client(""))
        };
        let text = render_clients(&[up, down], 1_083);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].contains("Connected"), "{text}");
        assert!(lines[1].contains("1m23s"), "{text}");
        assert!(lines[1].contains("10.201.0.2"), "{text}");
        assert!(lines[1].contains("MPPE 128 bit, stateless"), "{text}");
        assert!(lines[2].contains("BackingOff (retry in 7s)"), "{text}");
        assert!(lines[2].contains("AuthenticationRejected"), "{text}");
        // The status never carries the password.
        let json = serde_json::to_string(&initial_status(&client(""))).unwrap_or_default();
        assert!(
            !json.contains("password") && !json.contains("alice"),
            "{json}"
        );
    }
}
