//! Operator benchmarks (figures are printed, never asserted):
//!
//! 1. 10,000 VpnUsers across 10 gateways: compile time (all gateways, with NT hashing),
//!    snapshot size, memory.
//! 2. Change-to-ACK latency: 100 connected agents (10 per gateway) over mTLS on 127.0.0.1;
//!    one user's password changes; time from the change (compile included) until the
//!    gateway's agents have applied and ACKed the new version. p50/p99 over many changes.
//!
//! `cargo run --release -p sluice-operator --example bench [-- --changes N]`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use prost::Message;
use sluice_api::{VpnGateway, VpnUser};
use sluice_dataplane::config::Runtime;
use sluice_dataplane::mode::agent::channel::{
    AgentOptions, ApplyError, Backoff, ConfigSink, run_agent,
};
use sluice_dataplane::mode::agent::tls::client_config;
use sluice_operator::config::compile_gateway;
use sluice_operator::hub::Hub;
use sluice_operator::metrics::Metrics;
use sluice_operator::pki::Ca;
use sluice_operator::serve::serve_tls;
use sluice_proto::v1 as pb;
use tokio::sync::watch;

const GATEWAYS: usize = 10;
const USERS_PER_GATEWAY: usize = 1000;
const AGENTS_PER_GATEWAY: usize = 10;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

fn gateway(i: usize) -> VpnGateway {
    let y = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: VpnGateway\nmetadata: {{name: gw{i}, namespace: bench}}\n\
         spec: {{ppp: {{localAddress: 10.{i}.0.1, addressPool: 10.{i}.0.0/16}}}}\n"
    );
    sluice_api::parse_manifests(&y)
        .expect("gateway")
        .gateways
        .remove(0)
}

fn user(g: usize, u: usize) -> VpnUser {
    let y = format!(
        "apiVersion: sluice.dev/v1alpha1\nkind: VpnUser\nmetadata: {{name: u{g}-{u}, namespace: bench}}\n\
         spec: {{gatewayRef: {{name: gw{g}}}, passwordSecretRef: {{name: u{g}-{u}}}, routes: [172.{}.{}.0/24]}}\n",
        16 + g,
        u % 250
    );
    sluice_api::parse_manifests(&y)
        .expect("user")
        .users
        .remove(0)
}

fn secret(g: usize, u: usize, generation: usize) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(format!("u{g}-{u}"));
    s.metadata.namespace = Some("bench".into());
    s.data = Some(
        [(
            "password".to_owned(),
            ByteString(format!("password-{g}-{u}-{generation}").into_bytes()),
        )]
        .into(),
    );
    s
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

#[derive(Default)]
struct Sink {
    applied: Mutex<Option<String>>,
    applies: AtomicUsize,
}

impl ConfigSink for Sink {
    fn apply(&self, config: &pb::GatewayConfig) -> Result<(), ApplyError> {
        // What the real agent does before swapping the config in: the typed conversion.
        let rt = Runtime::from_proto(config).map_err(|e| e.to_string())?;
        std::hint::black_box(rt);
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = Some(config.version.clone());
        self.applies.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn applied_version(&self) -> Option<String> {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn snapshot(&self) -> Vec<pb::Session> {
        Vec::new()
    }
    fn drain_events(&self) -> Vec<pb::SessionEvent> {
        Vec::new()
    }
    fn counters(&self) -> pb::Counters {
        pb::Counters::default()
    }
}

fn publish(hub: &Hub, gw: &VpnGateway, users: &[VpnUser], secrets: &[Secret]) -> String {
    let c = compile_gateway(gw, users, secrets).unwrap_or_else(|e| panic!("{e}"));
    let key = format!("bench/{}", gw.metadata.name.as_deref().unwrap_or(""));
    let included: BTreeSet<String> = c.config.users.iter().map(|u| u.source.clone()).collect();
    let v = c.config.version.clone();
    hub.publish(&key, c.config, c.rejected_users, included);
    v
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let changes: usize = std::env::args()
        .skip_while(|a| a != "--changes")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);

    // --- 1. compile
    let rss0 = rss_kib();
    let gateways: Vec<VpnGateway> = (0..GATEWAYS).map(gateway).collect();
    let users: Vec<Vec<VpnUser>> = (0..GATEWAYS)
        .map(|g| (0..USERS_PER_GATEWAY).map(|u| user(g, u)).collect())
        .collect();
    let mut secrets: Vec<Vec<Secret>> = (0..GATEWAYS)
        .map(|g| (0..USERS_PER_GATEWAY).map(|u| secret(g, u, 0)).collect())
        .collect();
    let rss_objects = rss_kib();
    let mut times = Vec::new();
    let mut compiled = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        compiled = (0..GATEWAYS)
            .map(|g| compile_gateway(&gateways[g], &users[g], &secrets[g]).expect("compiles"))
            .collect();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let rss_compiled = rss_kib();
    let sizes: Vec<usize> = compiled.iter().map(|c| c.config.encoded_len()).collect();
    let total: usize = sizes.iter().sum();
    println!(
        "== compile: {GATEWAYS} gateways x {USERS_PER_GATEWAY} users = {} VpnUsers",
        GATEWAYS * USERS_PER_GATEWAY
    );
    println!(
        "compile all gateways: median {:.1} ms (min {:.1}, max {:.1}; 5 runs)",
        pct(&mut times.clone(), 0.5),
        pct(&mut times.clone(), 0.0),
        pct(&mut times, 1.0)
    );
    println!(
        "snapshot size: {} bytes per gateway ({:.1} KiB), {:.1} bytes per user, {:.2} MiB in total",
        sizes[0],
        sizes[0] as f64 / 1024.0,
        sizes[0] as f64 / USERS_PER_GATEWAY as f64,
        total as f64 / 1048576.0
    );
    println!(
        "memory: objects {:.1} MiB, compiled configs {:.1} MiB (RSS deltas)",
        (rss_objects - rss0) as f64 / 1024.0,
        rss_compiled.saturating_sub(rss_objects) as f64 / 1024.0
    );
    drop(compiled);

    // --- 2. change-to-ACK with 100 agent streams
    let now = time::OffsetDateTime::now_utc();
    let ca = Ca::generate(now).expect("ca");
    let server = ca
        .issue_server(&["localhost".into()], now)
        .expect("server cert");
    let (hub, _dirty) = Hub::new(Duration::ZERO);
    for g in 0..GATEWAYS {
        publish(&hub, &gateways[g], &users[g], &secrets[g]);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (_leader_tx, leader) = watch::channel(true);
    let (stop_tx, stop_rx) = watch::channel(false);
    {
        let (hub, ca_pem) = (hub.clone(), ca.pem().cert_pem.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = serve_tls(
                listener,
                &server,
                &ca_pem,
                hub,
                leader,
                Metrics::new(),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await;
        });
    }
    let mut sinks: Vec<Vec<Arc<Sink>>> = Vec::new();
    for g in 0..GATEWAYS {
        let cert = ca
            .issue_agent(&format!("bench/gw{g}"), now)
            .expect("agent cert");
        let mut row = Vec::new();
        for a in 0..AGENTS_PER_GATEWAY {
            let sink = Arc::new(Sink::default());
            let tls = client_config(
                ca.pem().cert_pem.as_bytes(),
                cert.cert_pem.as_bytes(),
                cert.key_pem.as_bytes(),
                "localhost",
            );
            let mut o = AgentOptions::new(
                format!("https://localhost:{port}"),
                Some(tls),
                format!("bench/gw{g}"),
                format!("node-{g}-{a}"),
                format!("pod-{g}-{a}"),
            );
            o.backoff = Backoff {
                initial: Duration::from_millis(50),
                max: Duration::from_millis(500),
            };
            let s: Arc<dyn ConfigSink> = sink.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let _ = run_agent(o, s, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            });
            row.push(sink);
        }
        sinks.push(row);
    }
    let t = Instant::now();
    while !(0..GATEWAYS).all(|g| {
        let v = hub.gateway_view(&format!("bench/gw{g}")).version;
        sinks[g].iter().all(|s| s.applied_version() == v)
    }) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "\n== change-to-ACK: {} agent streams ({AGENTS_PER_GATEWAY} per gateway), mTLS on 127.0.0.1",
        GATEWAYS * AGENTS_PER_GATEWAY
    );
    println!(
        "initial sync of all agents: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let _ = hub.take_ack_latencies();

    let mut to_all = Vec::new();
    for i in 0..changes {
        let g = i % GATEWAYS;
        let u = (i * 7) % USERS_PER_GATEWAY;
        let key = format!("bench/gw{g}");
        let t0 = Instant::now();
        secrets[g][u] = secret(g, u, i + 1);
        let v = publish(&hub, &gateways[g], &users[g], &secrets[g]);
        loop {
            let view = hub.gateway_view(&key);
            if view
                .agents
                .values()
                .filter(|a| a.applied_version == v)
                .count()
                == AGENTS_PER_GATEWAY
            {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        to_all.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let mut per_agent: Vec<f64> = hub
        .take_ack_latencies()
        .into_iter()
        .map(|s| s * 1e3)
        .collect();
    println!("{changes} single-user changes (one password each, round-robin over the gateways):");
    println!(
        "  change -> all {AGENTS_PER_GATEWAY} agents of the gateway ACKed (compile included): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&mut to_all.clone(), 0.5),
        pct(&mut to_all.clone(), 0.99),
        pct(&mut to_all, 1.0)
    );
    println!(
        "  publish -> ACK per agent ({} ACKs): p50 {:.1} ms, p99 {:.1} ms",
        per_agent.len(),
        pct(&mut per_agent.clone(), 0.5),
        pct(&mut per_agent, 0.99)
    );
    println!(
        "  operator RSS with 100 streams: {:.1} MiB",
        rss_kib() as f64 / 1024.0
    );
    let _ = stop_tx.send(true);
}
