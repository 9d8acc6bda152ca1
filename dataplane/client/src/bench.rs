//! `sluice-client bench`: the figures issue #2 asks for. Everything here
//! prints numbers; nothing asserts them.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use sluice_ppp::{
    AuthProto, ClientConfig, EncryptionPolicy, Event, KeyLengths, MppePolicy, Ppp, ServerConfig,
    StatefulMode,
};

use crate::ClientError;
use crate::cli::{self, ClientArgs};
use sluice_dataplane::cli::sessions;
use sluice_dataplane::datapath::Hooks;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Which,
}

#[derive(clap::Subcommand, Debug)]
pub enum Which {
    /// MPPE data path in memory (gateway receive + transmit per packet), next to raw RC4.
    Engine {
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
    /// Full session setups per second against a running gateway.
    Setups(ClientArgs),
    /// Concurrent idle sessions: gateway memory per session.
    Idle {
        #[command(flatten)]
        client: ClientArgs,
        /// PID of the gateway process (its RSS is read from /proc).
        #[arg(long)]
        gateway_pid: u32,
        /// Seconds to hold the sessions before measuring.
        #[arg(long, default_value_t = 3)]
        settle: u64,
    },
    /// Cost of metrics and tracing on the data path: 1400-byte packets/s with both on
    /// and off, alternating rounds in one run (issue #7 target: < 3 % difference).
    Observability {
        /// Seconds of transmit per round.
        #[arg(long, default_value_t = 0.5)]
        seconds: f64,
        /// Rounds of each (on, off); medians are reported.
        #[arg(long, default_value_t = 7)]
        rounds: u32,
    },
    /// Packets through one tunnel (client → gateway → TUN), measured at the gateway.
    Throughput {
        #[command(flatten)]
        client: ClientArgs,
        /// IP packet size in bytes.
        #[arg(long, default_value_t = 1400)]
        size: usize,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// The gateway's metrics endpoint (to read what it received; the gateway should
        /// carry no other session).
        #[arg(long)]
        gateway_metrics: SocketAddr,
    },
}

pub async fn run(args: BenchArgs) -> Result<(), ClientError> {
    match args.which {
        Which::Engine { seconds } => {
            engine(seconds);
            Ok(())
        }
        Which::Setups(c) => setups(c).await,
        Which::Observability { seconds, rounds } => {
            observability(seconds, rounds);
            Ok(())
        }
        Which::Idle {
            client,
            gateway_pid,
            settle,
        } => idle(client, gateway_pid, settle).await,
        Which::Throughput {
            client,
            size,
            seconds,
            gateway_metrics,
        } => throughput(client, size, seconds, gateway_metrics).await,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

async fn setups(args: ClientArgs) -> Result<(), ClientError> {
    let mut running = cli::start(&args)?;
    let mut report = running.open(&args).await?;
    running.shutdown().await;
    report.setup_times.sort();
    println!(
        "setups: {} ok, {} failed in {:.3} s → {:.0} setups/s (concurrency {}); setup latency p50 {} ms, p99 {} ms",
        report.up,
        report.failed,
        report.elapsed.as_secs_f64(),
        f64::from(report.up) / report.elapsed.as_secs_f64(),
        args.concurrency,
        percentile(&report.setup_times, 0.5).as_millis(),
        percentile(&report.setup_times, 0.99).as_millis(),
    );
    if let Some(f) = report.first_failure {
        println!("first failure: {f}");
    }
    Ok(())
}

/// `/proc/PID/FILE` and its path.
fn read_proc(pid: u32, file: &str) -> Result<(String, String), ClientError> {
    let path = format!("/proc/{pid}/{file}");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok((text, path)),
        Err(source) => Err(ClientError::Proc { path, source }),
    }
}

fn rss_kib(pid: u32) -> Result<u64, ClientError> {
    let (status, path) = read_proc(pid, "status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or(ClientError::NoRss(path))
}

/// User + system CPU time of process `pid`, all threads (`/proc/PID/stat` fields 14 and 15,
/// in USER_HZ ticks: 100 per second on every Linux ABI, proc(5)).
fn cpu_seconds(pid: u32) -> Result<f64, ClientError> {
    let (stat, path) = read_proc(pid, "stat")?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let ticks: Option<Vec<u64>> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(11).take(2))
        .map(|f| f.map(|v| v.parse().ok()).collect::<Option<Vec<u64>>>())
        .unwrap_or_default();
    match ticks.as_deref() {
        Some([user, system]) => Ok((user + system) as f64 / 100.0),
        _ => Err(ClientError::NoCpuTimes(path)),
    }
}

async fn idle(args: ClientArgs, pid: u32, settle: u64) -> Result<(), ClientError> {
    let before = rss_kib(pid)?;
    let mut running = cli::start(&args)?;
    let report = running.open(&args).await?;
    let (cpu0, t0) = (cpu_seconds(pid)?, Instant::now());
    tokio::time::sleep(Duration::from_secs(settle)).await;
    let cpu = (cpu_seconds(pid)? - cpu0) / t0.elapsed().as_secs_f64();
    let after = rss_kib(pid)?;
    println!(
        "idle: {} sessions up ({} failed) in {:.1} s; gateway RSS {} KiB → {} KiB: {:.1} KiB per session; gateway CPU over {} s idle (keep-alives, timers): {:.2} % of a core",
        report.up,
        report.failed,
        report.elapsed.as_secs_f64(),
        before,
        after,
        (after.saturating_sub(before)) as f64 / f64::from(report.up.max(1)),
        settle,
        cpu * 100.0
    );
    running.shutdown().await;
    Ok(())
}

async fn throughput(
    args: ClientArgs,
    size: usize,
    seconds: f64,
    gateway_metrics: SocketAddr,
) -> Result<(), ClientError> {
    let mut a = args.clone();
    a.sessions = 1;
    a.quiet = true;
    let mut running = cli::start(&a)?;
    let report = running.open(&a).await?;
    if report.up != 1 {
        return Err(ClientError::NotUp(report.first_failure.unwrap_or_default()));
    }
    let client = running.client.clone();
    let link =
        (client.dp().links.all().into_iter().next()).ok_or(ClientError::NoSession("link"))?;
    let (src, dst) = {
        let st = link.lock();
        let address = st.address.ok_or(ClientError::NoSession("address"))?;
        (address, gateway_address(&st))
    };
    let before = gateway_rx(gateway_metrics)?;
    let packet = udp_packet(src, dst, size.clamp(28, 1400));
    let dur = Duration::from_secs_f64(seconds);
    let sent = tokio::task::spawn_blocking(move || {
        let mut scratch = sluice_dataplane::datapath::TxScratch::default();
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < dur {
            for _ in 0..64 {
                let now = Instant::now();
                let mut st = link.lock();
                if sluice_dataplane::datapath::send_ip(
                    client.dp(),
                    &link,
                    &mut st,
                    &packet,
                    now,
                    &mut scratch,
                ) {
                    sent += 1;
                }
            }
        }
        (sent, start.elapsed())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = gateway_rx(gateway_metrics)?;
    let (sent, elapsed) = sent;
    let got = after.0.saturating_sub(before.0);
    let bytes = after.1.saturating_sub(before.1);
    let secs = elapsed.as_secs_f64();
    println!(
        "throughput {size} B: client sent {:.0} pkt/s; gateway decrypted and wrote to TUN {:.0} pkt/s = {:.1} Mbit/s ({:.1}% of sent)",
        sent as f64 / secs,
        got as f64 / secs,
        bytes as f64 * 8.0 / secs / 1e6,
        100.0 * got as f64 / (sent.max(1)) as f64
    );
    running.shutdown().await;
    Ok(())
}

fn gateway_address(st: &sluice_dataplane::datapath::link::LinkState) -> Ipv4Addr {
    st.ppp
        .peer_address()
        .unwrap_or(Ipv4Addr::new(10, 200, 0, 1))
}

/// (packets, bytes) of IP the gateway received through tunnels, from its metrics.
fn gateway_rx(endpoint: SocketAddr) -> Result<(u64, u64), ClientError> {
    let text = sessions::request(endpoint, None, "GET", "/metrics")?;
    let value = |name: &'static str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .ok_or(ClientError::NoMetric { endpoint, name })
    };
    Ok((
        value("sluice_tunnel_packets_total{direction=\"rx\"}")?,
        value("sluice_tunnel_bytes_total{direction=\"rx\"}")?,
    ))
}

/// An IPv4/UDP packet to the discard port.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, size: usize) -> Vec<u8> {
    let mut p = vec![0u8; size];
    let len = size as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum = 0u32;
    for c in p[..20].chunks_exact(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&9u16.to_be_bytes());
    p[24..26].copy_from_slice(&(len - 20).to_be_bytes());
    p
}

/// A server/client engine pair negotiated up to MPPE in memory.
pub fn engine_pair(bits: u16, stateful: bool) -> Option<(Ppp, Ppp)> {
    let keys = KeyLengths {
        bits40: bits == 40,
        bits56: bits == 56,
        bits128: bits == 128,
    };
    let mppe = MppePolicy {
        policy: EncryptionPolicy::Require,
        key_lengths: keys,
        stateful: if stateful {
            StatefulMode::Prefer
        } else {
            StatefulMode::Refuse
        },
    };
    let now = Instant::now();
    let mut server = Ppp::server(
        ServerConfig {
            auth: vec![AuthProto::MsChapV2],
            mppe,
            mru: 1500,
            mtu: 1500,
            local_addr: Ipv4Addr::new(10, 200, 0, 1),
            dns: vec![],
            keepalive: None,
            max_auth_attempts: 3,
            auth_timeout: Duration::from_secs(30),
            name: "bench".into(),
        },
        now,
        [1; 32],
    );
    let mut client = Ppp::client(
        ClientConfig {
            username: "bench".into(),
            password: b"bench-password".to_vec(),
            auth: vec![AuthProto::MsChapV2],
            mppe,
            mru: 1500,
            mtu: 1500,
            request_dns: false,
            keepalive: None,
        },
        now,
        [2; 32],
    );
    let (mut s_up, mut c_up) = (false, false);
    for _ in 0..200 {
        while let Some(mut f) = server.poll_transmit() {
            let _ = client.handle_input(now, &mut f);
        }
        while let Some(mut f) = client.poll_transmit() {
            let _ = server.handle_input(now, &mut f);
        }
        while let Some(ev) = server.poll_event() {
            match ev {
                Event::AuthRequest { .. } => server.provide_secret(now, Some(b"bench-password")),
                Event::Authenticated { .. } => {
                    server.set_peer_address(Ipv4Addr::new(10, 200, 0, 2))
                }
                Event::Up { .. } => s_up = true,
                _ => {}
            }
        }
        while let Some(ev) = client.poll_event() {
            if let Event::Up { .. } = ev {
                c_up = true;
            }
        }
        if s_up && c_up {
            return Some((server, client));
        }
    }
    None
}

/// Calls `f` repeatedly for `dur`; returns calls per second.
fn rate(dur: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// In-memory data path per packet, both directions, next to raw RC4.
pub fn engine(seconds: f64) {
    use rc4::{KeyInit, StreamCipher};
    let dur = Duration::from_secs_f64(seconds);
    println!("# in-memory MPPE data path (one core), {seconds} s per row");
    for size in [64usize, 1400] {
        let mut buf = vec![0u8; size];
        // Raw RC4 as MPPE uses it (sluice_ppp::mppe::Rc4): keystream only, no rekey.
        let mut ours = sluice_ppp::mppe::Rc4::new(&[7u8; 16]);
        let rc4_pps = rate(dur, || ours.apply(&mut buf));
        // The RustCrypto `rc4` crate on the same buffer, for reference.
        let crate_pps = match rc4::Rc4::new_from_slice(&[7u8; 16]) {
            Ok(mut theirs) => rate(dur, || theirs.apply_keystream(&mut buf)),
            Err(_) => 0.0,
        };
        println!(
            "raw rc4 (sluice)   {size:>5} B: {:>10.0} pkt/s {:>8.1} Mbit/s",
            rc4_pps,
            rc4_pps * size as f64 * 8.0 / 1e6
        );
        println!(
            "raw rc4 (rc4 crate){size:>5} B: {:>10.0} pkt/s {:>8.1} Mbit/s",
            crate_pps,
            crate_pps * size as f64 * 8.0 / 1e6
        );
        for stateful in [false, true] {
            let Some((mut server, mut client)) = engine_pair(128, stateful) else {
                println!("engine pair did not come up");
                return;
            };
            let ip = udp_packet(
                Ipv4Addr::new(10, 200, 0, 2),
                Ipv4Addr::new(10, 200, 0, 1),
                size.max(28),
            );
            let mut out = Vec::with_capacity(2048);
            // gateway receive: client encrypts (not timed), gateway decrypts (timed)
            let mut frames = Vec::new();
            for _ in 0..4096 {
                out.clear();
                let _ = client.encapsulate_ip(&ip, &mut out);
                frames.push(out.clone());
            }
            let now = Instant::now();
            let start = Instant::now();
            let mut rx = 0u64;
            let mut work = frames.clone();
            for (f, w) in frames.iter().zip(work.iter_mut()) {
                w.copy_from_slice(f);
                if let Ok(Some(_)) = server.handle_input(now, w) {
                    rx += 1;
                }
            }
            let rx_pps = rx as f64 / start.elapsed().as_secs_f64();
            // gateway transmit: encrypt (timed)
            let start = Instant::now();
            let mut tx = 0u64;
            while start.elapsed() < dur {
                for _ in 0..256 {
                    out.clear();
                    if server.encapsulate_ip(&ip, &mut out).is_ok() {
                        tx += 1;
                    }
                }
            }
            let tx_pps = tx as f64 / start.elapsed().as_secs_f64();
            let mode = if stateful { "stateful " } else { "stateless" };
            println!(
                "mppe-128 {mode} {size:>5} B: rx {:>10.0} pkt/s {:>8.1} Mbit/s | tx {:>10.0} pkt/s {:>8.1} Mbit/s | tx/raw-rc4 {:.2}",
                rx_pps,
                rx_pps * size as f64 * 8.0 / 1e6,
                tx_pps,
                tx_pps * size as f64 * 8.0 / 1e6,
                tx_pps / rc4_pps
            );
        }
    }
}

/// Cost of metrics and tracing on the data path: gateway receive (MPPE-128 decrypt + the
/// data path's per-packet accounting) and transmit (encrypt + accounting) of 1400-byte
/// packets, with the accounting and a tracing subscriber with the OpenTelemetry layer
/// ("on") and without ("off"), alternating rounds in one run.
pub fn observability(seconds: f64, rounds: u32) {
    use sluice_dataplane::datapath::count;
    use sluice_dataplane::datapath::link::LinkStats;
    use sluice_dataplane::metrics::{Direction, Metrics};

    const SIZE: usize = 1400;
    const FRAMES: usize = 32768;
    let Some((mut server, mut client)) = engine_pair(128, false) else {
        println!("engine pair did not come up");
        return;
    };
    let ip = udp_packet(
        Ipv4Addr::new(10, 200, 0, 2),
        Ipv4Addr::new(10, 200, 0, 1),
        SIZE,
    );
    let metrics = Metrics::new();
    let stats = LinkStats::default();
    // Tracing on: the binaries' subscriber stack with an OpenTelemetry layer (its spans
    // are dropped); the data path emits no per-packet span or event, so this measures
    // the cost of having it installed.
    let provider = sluice_telemetry::opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(sluice_telemetry::otel_layer(&provider, "bench"))
    };
    let dispatch = tracing::Dispatch::new(subscriber);
    let dur = Duration::from_secs_f64(seconds);
    let mut out = Vec::with_capacity(2048);
    let (mut rx_off, mut rx_on, mut tx_off, mut tx_on) = (vec![], vec![], vec![], vec![]);
    println!(
        "# data path with metrics + tracing on vs off, MPPE-128 stateless, {SIZE} B, {rounds} rounds of {seconds} s per direction, one core"
    );
    for round in 0..rounds * 2 {
        let on = round % 2 == 1;
        // Receive: frames from the client (not timed), decrypted and counted (timed).
        let mut frames: Vec<Vec<u8>> = (0..FRAMES)
            .map(|_| {
                out.clear();
                let _ = client.encapsulate_ip(&ip, &mut out);
                out.clone()
            })
            .collect();
        let now = Instant::now();
        let run = |server: &mut Ppp, frames: &mut Vec<Vec<u8>>| {
            let start = Instant::now();
            let mut n = 0u64;
            for f in frames.iter_mut() {
                if let Ok(Some(ip)) = server.handle_input(now, f) {
                    if on {
                        count(&metrics, &stats, Direction::Rx, ip.len());
                    }
                    n += 1;
                }
            }
            n as f64 / start.elapsed().as_secs_f64()
        };
        let rx = if on {
            tracing::dispatcher::with_default(&dispatch, || run(&mut server, &mut frames))
        } else {
            run(&mut server, &mut frames)
        };
        let mut send = || {
            out.clear();
            if server.encapsulate_ip(&ip, &mut out).is_ok() && on {
                count(&metrics, &stats, Direction::Tx, ip.len());
            }
        };
        let tx = if on {
            tracing::dispatcher::with_default(&dispatch, || rate(dur, &mut send))
        } else {
            rate(dur, &mut send)
        };
        if on {
            rx_on.push(rx);
            tx_on.push(tx);
        } else {
            rx_off.push(rx);
            tx_off.push(tx);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    for (dir, off, on) in [
        ("rx", &mut rx_off, &mut rx_on),
        ("tx", &mut tx_off, &mut tx_on),
    ] {
        let (off, on) = (median(off), median(on));
        println!(
            "{dir}: off {off:>10.0} pkt/s | on {on:>10.0} pkt/s | difference {:+.2} % (target < 3 %)",
            (on - off) / off * 100.0
        );
    }
    let _ = provider.shutdown();
}
