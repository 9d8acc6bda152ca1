//! `sluice-client`: open one or many sessions against a gateway,
//! report each outcome, optionally carry a TUN device for real traffic.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use sluice_ppp::{AuthProto, ClientConfig, EncryptionPolicy, KeyLengths, MppePolicy, StatefulMode};
use tokio::sync::{mpsc, watch};

use crate::ClientError;
use crate::ipsec::{self, IpsecParams};
use crate::lac::{self, LacCmd, LacParams};
use sluice_dataplane::client::{Client, Outcome, SessionParams, run_connection};
use sluice_dataplane::datapath::Hooks;
use sluice_dataplane::datapath::codel::CodelParams;
use sluice_dataplane::datapath::l2tp::{ControlRate, L2tpIo, l2tp_rx_loop};
use sluice_dataplane::datapath::{DataPath, gre_rx_loop, timer_loop, tun_rx_loop};
use sluice_dataplane::host::spawn;
use sluice_dataplane::io::netcfg;
use sluice_dataplane::io::udpsock::UdpPort;
use sluice_dataplane::metrics::Metrics;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum AuthArg {
    Pap,
    Chap,
    Mschapv1,
    Mschapv2,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolArg {
    Pptp,
    L2tp,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum EncryptionArg {
    Deny,
    Allow,
    Prefer,
    Require,
}

/// Options of the in-repo client.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Gateway address, HOST[:PORT] (default port 1723 for PPTP, 1701 for L2TP).
    #[arg(long)]
    pub server: String,
    /// Tunnel protocol.
    #[arg(long, value_enum, default_value = "pptp")]
    pub protocol: ProtocolArg,
    /// L2TP tunnel secret (tunnel authentication, RFC 2661 §5.1.1).
    #[arg(long)]
    pub tunnel_secret: Option<String>,
    /// Send hidden AVPs (RFC 2661 §4.3; needs --tunnel-secret).
    #[arg(long, requires = "tunnel_secret")]
    pub hide_avps: bool,
    /// Ask for sequenced L2TP data messages (Sequencing Required).
    #[arg(long)]
    pub sequencing: bool,
    /// L2TP/IPsec: the IKE pre-shared key (L2TP then travels only inside ESP).
    #[arg(long, group = "ipsec")]
    pub ipsec_psk: Option<String>,
    /// L2TP/IPsec with RSA signatures: our certificate chain (PEM file, leaf first).
    #[arg(long, group = "ipsec", requires_all = ["ipsec_key", "ipsec_ca"], conflicts_with = "ipsec_psk")]
    pub ipsec_cert: Option<String>,
    /// L2TP/IPsec: the private key of --ipsec-cert (PEM file).
    #[arg(long, requires = "ipsec_cert")]
    pub ipsec_key: Option<String>,
    /// L2TP/IPsec: the CAs the gateway's certificate must chain to (PEM file).
    #[arg(long, requires = "ipsec_cert")]
    pub ipsec_ca: Option<String>,
    /// L2TP/IPsec: the Phase 1 proposal, `cipher-hash-group` (default aes256-sha1-modp2048).
    #[arg(long, default_value = "", requires = "ipsec")]
    pub ike_proposal: String,
    /// L2TP/IPsec: the ESP proposal, `cipher[-integrity][-group]` (default aes128-sha1).
    #[arg(long, default_value = "", requires = "ipsec")]
    pub esp_proposal: String,
    /// L2TP/IPsec: IKEv1 Aggressive Mode instead of Main Mode (gateways refuse it unless
    /// `allowAggressiveMode` is set).
    #[arg(long, requires = "ipsec_psk")]
    pub ike_aggressive: bool,
    #[arg(long)]
    pub user: String,
    /// Password (or use --password-file).
    #[arg(long, conflicts_with = "password_file")]
    pub password: Option<String>,
    #[arg(long)]
    pub password_file: Option<std::path::PathBuf>,
    /// Sessions to open.
    #[arg(long, default_value_t = 1)]
    pub sessions: u32,
    /// Calls per PPTP control connection, or sessions per L2TP tunnel.
    #[arg(long, default_value_t = 1)]
    pub calls_per_connection: u16,
    /// Session setups in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: u32,
    /// Carry the (single) session's traffic on this TUN device.
    #[arg(long)]
    pub tun: Option<String>,
    /// Open the TUN device with the kernel's offloads (as the gateway does by default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tun_offload: bool,
    /// Queue delay (ms) the receive queue tolerates before CoDel marks or drops inner packets
    /// (as the gateway's `--aqm-target-ms`); 0 turns it off.
    #[arg(long, default_value_t = CodelParams::TARGET_MS, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub aqm_target_ms: u64,
    /// CoDel's interval (ms), as the gateway's `--aqm-interval-ms`.
    #[arg(long, default_value_t = CodelParams::INTERVAL_MS, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub aqm_interval_ms: u64,
    /// Entries of the TUN device's transmit ring (the kernel's default is 500). The ring is
    /// the queue in front of the client's sending side, which CoDel cannot see (no
    /// timestamps): with offloads an entry is a super-segment of up to 64 KiB, and a short
    /// ring keeps a CUBIC upload's queue short (docs/architecture.md "Latency under load").
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub tun_txqueuelen: u32,
    /// Networks to route into the tunnel (with --tun).
    #[arg(long)]
    pub route: Vec<Ipv4Net>,
    /// Authentication methods the client accepts.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mschapv2")]
    pub auth: Vec<AuthArg>,
    /// MPPE policy (default: require for PPTP, deny for L2TP).
    #[arg(long, value_enum)]
    pub encryption: Option<EncryptionArg>,
    /// MPPE key lengths the client accepts.
    #[arg(long, value_delimiter = ',', default_value = "128")]
    pub mppe_bits: Vec<u16>,
    /// Ask for stateful MPPE instead of stateless.
    #[arg(long)]
    pub mppe_stateful: bool,
    /// Keep sessions up this many seconds (default: until SIGINT/SIGTERM; 0: close at once).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Give up on setups after this many seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Local address for the GRE / L2TP socket.
    #[arg(long)]
    pub bind: Option<Ipv4Addr>,
    /// Print only the summary, not a line per session.
    #[arg(long)]
    pub quiet: bool,
    /// Abuse tests only: send anything the TUN device gives (IPv6 included) into the tunnel,
    /// as a hostile client would.
    #[arg(long, hide = true)]
    pub test_send_any_ip: bool,
}

impl ClientArgs {
    pub fn server_addr(&self) -> Result<SocketAddr, ClientError> {
        let port = match self.protocol {
            ProtocolArg::Pptp => 1723,
            ProtocolArg::L2tp => 1701,
        };
        let with_port = if self.server.contains(':') {
            self.server.clone()
        } else {
            format!("{}:{port}", self.server)
        };
        with_port
            .to_socket_addrs()
            .map_err(|source| ClientError::Resolve {
                server: self.server.clone(),
                source,
            })?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| ClientError::NoIpv4Address(self.server.clone()))
    }

    pub fn ppp_config(&self) -> Result<ClientConfig, ClientError> {
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => p.clone().into_bytes(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|source| ClientError::PasswordFile {
                    path: f.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .as_bytes()
                .to_vec(),
            (None, None) => return Err(ClientError::NoPassword),
        };
        let encryption = match self.encryption {
            Some(EncryptionArg::Deny) => EncryptionPolicy::Deny,
            Some(EncryptionArg::Allow) => EncryptionPolicy::Allow,
            Some(EncryptionArg::Prefer) => EncryptionPolicy::Prefer,
            Some(EncryptionArg::Require) => EncryptionPolicy::Require,
            None if self.protocol == ProtocolArg::L2tp => EncryptionPolicy::Deny,
            None => EncryptionPolicy::Require,
        };
        Ok(ClientConfig {
            username: self.user.clone(),
            password,
            auth: self
                .auth
                .iter()
                .map(|a| match a {
                    AuthArg::Pap => AuthProto::Pap,
                    AuthArg::Chap => AuthProto::ChapMd5,
                    AuthArg::Mschapv1 => AuthProto::MsChapV1,
                    AuthArg::Mschapv2 => AuthProto::MsChapV2,
                })
                .collect(),
            mppe: MppePolicy {
                policy: encryption,
                key_lengths: KeyLengths {
                    bits40: self.mppe_bits.contains(&40),
                    bits56: self.mppe_bits.contains(&56),
                    bits128: self.mppe_bits.contains(&128),
                },
                stateful: if self.mppe_stateful {
                    StatefulMode::Prefer
                } else {
                    StatefulMode::Refuse
                },
            },
            // IP MTU 1400 plus MPPE's 4 bytes when it may be used, as the gateway does.
            mru: 1400 + sluice_dataplane::control::pptp::mppe_overhead(encryption),
            mtu: 1400 + sluice_dataplane::control::pptp::mppe_overhead(encryption),
            request_dns: true,
            keepalive: None,
        })
    }
}

/// What a batch of setups achieved.
#[derive(Debug, Default)]
pub struct Report {
    pub up: u32,
    pub failed: u32,
    pub elapsed: Duration,
    pub setup_times: Vec<Duration>,
    pub first_failure: Option<String>,
}

/// The LAC task of an L2TP client and its request queue.
type LacHandle = (
    mpsc::UnboundedSender<LacCmd>,
    tokio::task::JoinHandle<Result<(), ClientError>>,
);

/// A running client: its hooks, threads and stop switch.
pub struct Running {
    pub client: Arc<Client>,
    pub stop: watch::Sender<bool>,
    pub tasks: tokio::task::JoinSet<Result<(), ClientError>>,
    /// L2TP: the LAC task and its requests.
    lac: Option<LacHandle>,
    outcomes: tokio::sync::mpsc::UnboundedReceiver<(u16, Outcome)>,
    pub tun: Option<String>,
    pub routes: Vec<Ipv4Net>,
}

/// Starts the client's data path threads.
pub fn start(args: &ClientArgs) -> Result<Running, ClientError> {
    let tun = match &args.tun {
        Some(name) => Some(Arc::new(netcfg::create_tun(
            name,
            1400,
            None,
            args.tun_offload,
            Some(args.tun_txqueuelen),
        )?)),
        None => None,
    };
    let mut dp = DataPath::new(args.bind, tun, Arc::new(Metrics::new()), 1)
        .map_err(ClientError::GreSocket)?;
    dp.aqm = CodelParams::from_millis(args.aqm_target_ms, args.aqm_interval_ms);
    let (client, outcomes) = Client::new(dp);
    client
        .send_any_ip
        .store(args.test_send_any_ip, std::sync::atomic::Ordering::Relaxed);
    let c = client.clone();
    spawn("gre-rx", move || gre_rx_loop(c, 0))?;
    let c = client.clone();
    spawn("tun-rx", move || tun_rx_loop(c))?;
    let c = client.clone();
    spawn("timers", move || timer_loop(c, Duration::from_millis(20)))?;
    let (stop, _) = watch::channel(false);
    let lac = match args.protocol {
        ProtocolArg::Pptp => None,
        ProtocolArg::L2tp => Some(start_lac(&client, args, &stop)?),
    };
    Ok(Running {
        client,
        stop,
        tasks: tokio::task::JoinSet::new(),
        lac,
        outcomes,
        tun: args.tun.clone(),
        routes: args.route.clone(),
    })
}

/// Opens the client's L2TP port, its receive thread and the LAC task.
fn start_lac(
    client: &Arc<Client>,
    args: &ClientArgs,
    stop: &watch::Sender<bool>,
) -> Result<LacHandle, ClientError> {
    let SocketAddr::V4(server) = args.server_addr()? else {
        return Err(sluice_dataplane::client::DialError::NotIpv4("L2TP").into());
    };
    let sock =
        UdpPort::open(args.bind, 0, Duration::from_millis(200)).map_err(ClientError::L2tpSocket)?;
    let (io, control) = L2tpIo::new(
        sock,
        ControlRate {
            per_second: 0,
            burst: 0,
        },
    );
    if client.dp().l2tp.set(io).is_err() {
        return Err(ClientError::AlreadyOpen("L2TP socket"));
    }
    let c = client.clone();
    spawn("l2tp-rx", move || l2tp_rx_loop(c))?;
    let params = LacParams {
        server,
        ppp: args.ppp_config()?,
        secret: args.tunnel_secret.clone().map(String::into_bytes),
        hide_avps: args.hide_avps,
        sequencing: args.sequencing,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let certificate = match (&args.ipsec_cert, &args.ipsec_key, &args.ipsec_ca) {
        (Some(c), Some(k), Some(ca)) => Some(IpsecParams::load_certificate(c, k, ca)?),
        _ => None,
    };
    let ipsec = (args.ipsec_psk.is_some() || certificate.is_some()).then(|| IpsecParams {
        psk: args.ipsec_psk.clone().unwrap_or_default().into_bytes(),
        ike: args.ike_proposal.clone(),
        esp: args.esp_proposal.clone(),
        bind: args.bind,
        ike_port: 500,
        natt_port: 4500,
        aggressive: args.ike_aggressive,
        certificate,
    });
    if ipsec.is_some() {
        // Nothing from the gateway is accepted outside ESP.
        client
            .dp()
            .l2tp_plain
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
    let local_port = client.dp().l2tp.get().map_or(0, |io| io.port());
    let (c, stop_rx, timeout) = (
        client.clone(),
        stop.subscribe(),
        Duration::from_secs(args.timeout),
    );
    let task = tokio::spawn(async move {
        let ike = match ipsec {
            Some(p) => Some(ipsec::establish(c.clone(), p, server, local_port, timeout).await?),
            None => None,
        };
        let r = lac::run(c, params, control.control, rx, stop_rx).await;
        if let Some(ike) = ike {
            ike.close().await;
        }
        r
    });
    Ok((tx, task))
}

impl Running {
    /// Opens `args.sessions` sessions, `args.concurrency` setups at a time,
    /// and waits for every outcome (or the timeout).
    pub async fn open(&mut self, args: &ClientArgs) -> Result<Report, ClientError> {
        let params = SessionParams {
            server: args.server_addr()?,
            ppp: args.ppp_config()?,
            calls: args.calls_per_connection.max(1),
        };
        let per_conn = u32::from(params.calls);
        let total = args.sessions;
        let mut report = Report::default();
        let start = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
        let mut spawned = 0u32;
        let mut done = 0u32;
        while done < total {
            while spawned < total && spawned.saturating_sub(done) < args.concurrency.max(per_conn) {
                let mut p = params.clone();
                p.calls = total.saturating_sub(spawned).min(per_conn) as u16;
                spawned += u32::from(p.calls);
                match &self.lac {
                    Some((lac, _)) => {
                        let _ = lac.send(LacCmd::Open { sessions: p.calls });
                    }
                    None => {
                        let conn = run_connection(self.client.clone(), p, self.stop.subscribe());
                        self.tasks
                            .spawn(async move { conn.await.map_err(ClientError::from) });
                    }
                }
            }
            tokio::select! {
                Some((call, outcome)) = self.outcomes.recv() => {
                    // A setup ends once, Up or Failed; a later Down of an Up session is no
                    // second outcome.
                    if !matches!(outcome, Outcome::Down(_)) {
                        done = done.saturating_add(1);
                    }
                    self.report(call, &outcome, args.quiet, &mut report).await;
                }
                joined = lac_finished(&mut self.lac) => {
                    let why = match joined {
                        Ok(Ok(())) => "the L2TP client stopped".to_owned(),
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                    };
                    let missing = total.saturating_sub(done);
                    report.failed += missing;
                    if !args.quiet { println!("FAILED reason={why:?}"); }
                    report.first_failure.get_or_insert(why);
                    break;
                }
                Some(joined) = self.tasks.join_next() => {
                    if let Ok(Err(e)) = joined {
                        // A connection that failed before any call: count its calls.
                        let e = e.to_string();
                        done = done.saturating_add(per_conn.min(total.saturating_sub(done)));
                        report.failed += per_conn;
                        if !args.quiet { println!("FAILED reason={e:?}"); }
                        report.first_failure.get_or_insert(e);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let missing = total.saturating_sub(done);
                    report.failed += missing;
                    report.first_failure.get_or_insert(format!("{missing} setups timed out"));
                    break;
                }
            }
        }
        report.elapsed = start.elapsed();
        Ok(report)
    }

    async fn report(&mut self, call: u16, outcome: &Outcome, quiet: bool, report: &mut Report) {
        match outcome {
            Outcome::Up {
                address,
                gateway,
                dns,
                encoding,
                setup,
                ..
            } => {
                report.up += 1;
                report.setup_times.push(*setup);
                if !quiet {
                    let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
                    println!(
                        "UP call={call} address={address} gateway={gateway} dns={} encoding=\"{encoding}\" setup_ms={}",
                        dns.join(","),
                        setup.as_millis()
                    );
                }
                if let Some(tun) = self.tun.clone()
                    && let Err(e) = self.configure_tun(&tun, *address, *gateway)
                {
                    println!("TUN-ERROR {e}");
                }
            }
            Outcome::Failed(reason) | Outcome::Rejected(reason) => {
                report.failed += 1;
                if !quiet {
                    println!("FAILED call={call} reason={reason:?}");
                }
                report.first_failure.get_or_insert(reason.clone());
            }
            Outcome::Down(reason) => {
                if !quiet {
                    println!("DOWN call={call} reason={reason:?}");
                }
            }
        }
    }

    fn configure_tun(
        &self,
        tun: &str,
        address: Ipv4Addr,
        gateway: Ipv4Addr,
    ) -> Result<(), ClientError> {
        netcfg::set_address(tun, address)?;
        netcfg::route_replace(tun, Ipv4Net::from(gateway))?;
        for r in &self.routes {
            netcfg::route_replace(tun, *r)?;
        }
        Ok(())
    }

    /// Prints later outcomes (sessions dropped by the gateway) until `until`.
    pub async fn hold(&mut self, until: Option<Duration>) {
        let sleep = async {
            match until {
                Some(d) => tokio::time::sleep(d).await,
                None => {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                    }
                }
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                Some((call, outcome)) = self.outcomes.recv() => {
                    let mut r = Report::default();
                    self.report(call, &outcome, false, &mut r).await;
                }
            }
        }
    }

    /// Closes every session gracefully and waits (bounded) for the connections to end.
    pub async fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.join_next().await.is_some() {}
            if let Some((_, task)) = &mut self.lac {
                let _ = task.await;
            }
        })
        .await;
        self.tasks.abort_all();
        if let Some((_, task)) = self.lac.take() {
            task.abort();
        }
        self.client
            .dp()
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Entry point of `sluice-client`.
pub async fn run(args: ClientArgs) -> Result<(), ClientError> {
    let mut running = start(&args)?;
    let report = running.open(&args).await?;
    println!(
        "SUMMARY up={} failed={} elapsed_ms={}",
        report.up,
        report.failed,
        report.elapsed.as_millis()
    );
    if report.failed == 0 {
        running.hold(args.duration.map(Duration::from_secs)).await;
    }
    running.shutdown().await;
    match report.first_failure {
        None => Ok(()),
        Some(first) => Err(ClientError::SessionsFailed {
            failed: report.failed,
            total: args.sessions,
            first,
        }),
    }
}

/// Waits for the LAC task to end (never, for PPTP or once it was awaited).
async fn lac_finished(
    lac: &mut Option<LacHandle>,
) -> Result<Result<(), ClientError>, tokio::task::JoinError> {
    match lac {
        Some((_, task)) if !task.is_finished() => {
            let r = task.await;
            *lac = None;
            r
        }
        _ => std::future::pending().await,
    }
}
