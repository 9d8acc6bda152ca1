//! Agent mode before its first configuration: the HTTP endpoint is alive but
//! not ready, and a configuration that does not convert leaves it so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_dataplane::http::{HttpState, serve_listener};
use sluice_dataplane::metrics::Metrics;
use sluice_dataplane::mode::agent::ManagedGateway;
use sluice_dataplane::mode::agent::channel::ConfigSink;
use sluice_dataplane::mode::standalone::HostOptions;
use sluice_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn host() -> HostOptions {
    HostOptions {
        tun: "sluice-test0".into(),
        tun_offload: true,
        tun_txqueuelen: None,
        bind: None,
        endpoints: sluice_dataplane::http::Endpoints {
            metrics: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            admin_token_file: std::env::temp_dir().join("sluice-readiness-token"),
        },
        forwarding: false,
        max_control_connections: 10,
        max_calls_per_connection: 1,
        l2tp_control_rate: Default::default(),
        admission: Default::default(),
        control_idle_timeout: std::time::Duration::from_secs(30),
        rx_shards: 2,
        aqm: Some(Default::default()),
    }
}

#[tokio::test]
async fn not_ready_until_a_configuration_is_applied() {
    let metrics = Arc::new(Metrics::new_agent());
    let state = Arc::new(HttpState::new(metrics.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_listener(state.clone(), listener));
    let sink = ManagedGateway::new(host(), state.clone(), metrics.clone());

    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 503);
    // Session rows and drain live on the admin endpoint only (the `admin_endpoint` module).
    assert_eq!(get(addr, "/sessions").await.0, 404);
    assert_eq!(get(addr, "/drain").await.0, 404);
    let (_, text) = get(addr, "/metrics").await;
    assert!(text.contains("sluice_operator_connected 0"), "{text}");

    // Rejected before anything touches the host: still not ready, counted as rejected.
    let bad = pb::GatewayConfig {
        gateway: "vpn/office".into(),
        version: "v1".into(),
        ..pb::GatewayConfig::default()
    };
    let err = sink.apply(&bad).unwrap_err().to_string();
    assert!(err.contains("ppp settings"), "{err}");
    assert_eq!(sink.applied_version(), None);
    assert!(sink.snapshot().is_empty() && sink.drain_events().is_empty());
    assert_eq!(get(addr, "/readyz").await.0, 503);
    let (_, text) = get(addr, "/metrics").await;
    assert!(
        text.contains("sluice_config_reloads_total{result=\"rejected\"} 1"),
        "{text}"
    );

    sink.set_connected(true);
    let (_, text) = get(addr, "/metrics").await;
    assert!(text.contains("sluice_operator_connected 1"), "{text}");
    assert_eq!(sink.counters(), pb::Counters::default());
}
