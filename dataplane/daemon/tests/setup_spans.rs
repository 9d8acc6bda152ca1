//! Tracing of session setups: one PPTP setup against an in-process gateway produces a
//! `session_setup` span whose children are the phases `control`, `lcp`, `auth`, `ncp`,
//! in that order, collected with OpenTelemetry's in-memory exporter through the same
//! layer the binaries export over OTLP with.
//!
//! Runs in a network namespace of its own (`unshare(CLONE_NEWNET)` on the test thread:
//! the runtime's threads and the client process inherit it), so the gateway's TUN device
//! and sockets never touch the host's network. Needs root; skipped otherwise.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sluice_dataplane::l2tp_path::ControlRate;
use sluice_dataplane::server::{self, HostOptions, ServeOptions};
use tracing_subscriber::layer::SubscriberExt;

const MANIFESTS: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  ppp: { localAddress: 10.220.0.1, addressPool: 10.220.0.0/24 }
---
apiVersion: v1
kind: Secret
metadata: { name: alice, namespace: default }
stringData: { password: alice-secret }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: alice, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: alice }
";

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[test]
fn pptp_setup_produces_the_phase_spans_in_order() {
    // SAFETY: plain libc calls without pointers.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root (network namespace, TUN device, raw GRE socket)");
        return;
    }
    // SAFETY: as above; affects this thread and what it starts from now on.
    assert_eq!(
        unsafe { libc::unshare(libc::CLONE_NEWNET) },
        0,
        "unshare(CLONE_NEWNET)"
    );
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(up.is_ok_and(|s| s.success()), "ip link set lo up");

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(sluice_telemetry::otel_layer(
        &provider,
        "sluice-dataplane-test",
    ));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = std::env::temp_dir().join(format!("sluice-spans-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifests = dir.join("manifests.yaml");
    std::fs::write(&manifests, MANIFESTS).unwrap();
    let opts = ServeOptions {
        manifests,
        gateway: None,
        host: HostOptions {
            tun: "sluice0".into(),
            bind: None,
            http: SocketAddr::from((Ipv4Addr::LOCALHOST, 9810)),
            forwarding: false,
            max_control_connections: 16,
            max_calls_per_connection: 16,
            l2tp_control_rate: ControlRate::default(),
        },
        watch_interval: Duration::from_secs(60),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(async move {
        if let Err(e) = server::run(opts).await {
            eprintln!("gateway: {e}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, 1723)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    let out = Command::new(env!("CARGO_BIN_EXE_sluice-dataplane"))
        .args(["client", "--server", "127.0.0.1", "--user", "alice"])
        .args([
            "--password",
            "alice-secret",
            "--duration",
            "0",
            "--timeout",
            "15",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The root span ends when the network phase is up (the simple exporter exports it then).
    let deadline = Instant::now() + Duration::from_secs(10);
    let (root, spans) = loop {
        let spans = exporter.get_finished_spans().unwrap();
        if let Some(root) = spans
            .iter()
            .find(|s| s.name == "session_setup" && attr(s, "result").as_deref() == Some("ok"))
        {
            break (root.clone(), spans);
        }
        assert!(
            Instant::now() < deadline,
            "no finished session_setup span: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(attr(&root, "protocol").as_deref(), Some("pptp"));
    assert_eq!(attr(&root, "user").as_deref(), Some("alice"));
    assert_eq!(attr(&root, "caller").as_deref(), Some("127.0.0.1"));
    assert!(attr(&root, "call_id").is_some());
    let mut phases: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_context.span_id())
        .collect();
    phases.sort_by_key(|s| s.start_time);
    let names: Vec<&str> = phases.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["control", "lcp", "auth", "ncp"]);
    for pair in phases.windows(2) {
        assert!(
            pair[0].end_time <= pair[1].start_time,
            "{} ends after {} starts",
            pair[0].name,
            pair[1].name
        );
    }
    for p in &phases {
        assert!(root.start_time <= p.start_time && p.end_time <= root.end_time);
        assert_eq!(p.span_context.trace_id(), root.span_context.trace_id());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
