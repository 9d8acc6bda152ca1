//! Tracing of session setups: one PPTP setup produces a `session_setup` span whose
//! children are the phases `control`, `lcp`, `auth`, `ncp`, in that order.
//!
//! * `in_process_*`: an in-process gateway, spans collected with OpenTelemetry's
//!   in-memory exporter through the same layer the binaries export over OTLP with.
//! * `binary_*`: the real `sluice-dataplane` binary, configured only by the standard
//!   `OTEL_*` environment, exports over OTLP/gRPC to a receiver in this test
//!   (`sluice-otlp-collector`). The batch delay is longer than the test, so the
//!   spans arrive only through the flush at a SIGTERM shutdown.
//!
//! Each test runs in a network namespace of its own (`unshare(CLONE_NEWNET)` on the
//! test thread: the runtime's threads and the processes it starts inherit it), so the
//! gateway's TUN device and sockets never touch the host's network. Needs root, so both
//! are `#[ignore]`d; `e2e/test-all.sh` runs them as root:
//! `cargo test --workspace --release --test integration -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sluice_dataplane::datapath::l2tp::ControlRate;
use sluice_dataplane::http::Endpoints;
use sluice_dataplane::mode::standalone::{self, HostOptions, ServeOptions};
use sluice_otlp_collector::{Collector, ReceivedSpan, terminate};
use tracing_subscriber::layer::SubscriberExt;

const MANIFESTS: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  ppp: { localAddress: 10.220.0.1, addressPool: 10.220.0.0/24 }
  l2tp:
    enabled: true
    ipsec:
      preSharedKeySecretRef: { name: vpn, key: psk }
      natDetection: forceEncapsulation
---
apiVersion: v1
kind: Secret
metadata: { name: vpn, namespace: default }
stringData: { psk: correct-horse-battery }
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

/// The parts of a span the checks look at, from either exporter.
#[derive(Debug)]
struct Span {
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    start: u128,
    end: u128,
    result: Option<String>,
    protocol: Option<String>,
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn attr(s: &SpanData, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

impl From<&SpanData> for Span {
    fn from(s: &SpanData) -> Self {
        Span {
            name: s.name.to_string(),
            trace: s.span_context.trace_id().to_bytes().to_vec(),
            id: s.span_context.span_id().to_bytes().to_vec(),
            parent: s.parent_span_id.to_bytes().to_vec(),
            start: nanos(s.start_time),
            end: nanos(s.end_time),
            result: attr(s, "result"),
            protocol: attr(s, "protocol"),
        }
    }
}

impl From<&ReceivedSpan> for Span {
    fn from(s: &ReceivedSpan) -> Self {
        Span {
            name: s.name.clone(),
            trace: s.trace_id.clone(),
            id: s.span_id.clone(),
            parent: s.parent_span_id.clone(),
            start: u128::from(s.start_unix_nanos),
            end: u128::from(s.end_unix_nanos),
            result: s.attr("result").map(str::to_owned),
            protocol: s.attr("protocol").map(str::to_owned),
        }
    }
}

/// Checks the successful `session_setup` span of `protocol` and its phase children: `control`,
/// `lcp`, `auth`, `ncp`, in order, without overlap, inside the root, in its trace.
/// Returns the root's index.
fn check_phases(spans: &[Span], protocol: &str) -> usize {
    let Some(root) = spans.iter().position(|s| {
        s.name == "session_setup"
            && s.result.as_deref() == Some("ok")
            && s.protocol.as_deref() == Some(protocol)
    }) else {
        panic!("no finished {protocol} session_setup span with result=ok: {spans:#?}");
    };
    let r = &spans[root];
    let mut phases: Vec<&Span> = spans.iter().filter(|s| s.parent == r.id).collect();
    phases.sort_by_key(|s| s.start);
    let names: Vec<&str> = phases.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["control", "lcp", "auth", "ncp"]);
    for pair in phases.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "{} ends after {} starts",
            pair[0].name,
            pair[1].name
        );
    }
    for p in &phases {
        assert!(
            r.start <= p.start && p.end <= r.end,
            "{} outside the root",
            p.name
        );
        assert_eq!(p.trace, r.trace);
    }
    root
}

/// Moves this thread into a new network namespace with `lo` up. The tests are
/// `#[ignore]`d because of it: `e2e/test-all.sh` runs them as root with `--ignored`.
fn private_netns() {
    // SAFETY: plain libc calls without pointers.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root (network namespace, TUN device, raw GRE socket): run as root with --ignored"
    );
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
}

/// A scratch directory holding the manifests.
fn manifests(test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("sluice-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("manifests.yaml");
    std::fs::write(&file, MANIFESTS).unwrap();
    (dir, file)
}

fn wait_for_listener() {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, 1723)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client network namespace behind a veth pair: 10.230.0.2 there, 10.230.0.1 here
/// (the IPsec client needs UDP 500 and 4500 of its own). Removed when dropped.
struct ClientNetns(String);

impl ClientNetns {
    fn new() -> Self {
        let name = format!("sluice-spans-{}", std::process::id());
        let ip = |args: &[&str]| {
            let ok = Command::new("ip").args(args).status();
            assert!(ok.is_ok_and(|s| s.success()), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let ns = ClientNetns(name);
        let n = ns.0.as_str();
        ip(&[
            "link", "add", "sp0", "type", "veth", "peer", "name", "sp1", "netns", n,
        ]);
        ip(&["addr", "add", "10.230.0.1/24", "dev", "sp0"]);
        ip(&["link", "set", "sp0", "up"]);
        ip(&["-n", n, "addr", "add", "10.230.0.2/24", "dev", "sp1"]);
        ip(&["-n", n, "link", "set", "sp1", "up"]);
        ip(&["-n", n, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for ClientNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The in-repo client's binary (crate `sluice-client`), built next to this package's.
fn client_bin() -> PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_sluice-dataplane"))
        .with_file_name("sluice-client");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build [--release] -p sluice-client)",
        bin.display()
    );
    bin
}

/// One session with the in-repo client (PPTP over the loopback unless told otherwise),
/// hung up as soon as it is up.
fn one_session(netns: Option<&ClientNetns>, server: &str, extra: &[&str]) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.0]).arg(client_bin());
            c
        }
        None => Command::new(client_bin()),
    };
    let out = cmd
        .args(["--server", server, "--user", "alice"])
        .args(extra)
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
}

#[test]
#[ignore = "needs root: network namespace, TUN, raw sockets (e2e/test-all.sh runs it)"]
fn in_process_setup_produces_the_phase_spans_in_order() {
    private_netns();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(sluice_telemetry::otel_layer(
        &provider,
        "sluice-dataplane-test",
    ));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let (dir, manifests) = manifests("spans");
    let opts = ServeOptions {
        manifests,
        gateway: None,
        host: HostOptions {
            tun: "sluice0".into(),
            tun_offload: true,
            tun_txqueuelen: None,
            bind: None,
            endpoints: Endpoints {
                metrics: SocketAddr::from((Ipv4Addr::LOCALHOST, 9810)),
                admin: SocketAddr::from((Ipv4Addr::LOCALHOST, 9811)),
                admin_token_file: dir.join("admin-token"),
            },
            forwarding: false,
            max_control_connections: 16,
            max_calls_per_connection: 16,
            l2tp_control_rate: ControlRate::default(),
            admission: Default::default(),
            control_idle_timeout: Duration::from_secs(30),
            rx_shards: 1,
            aqm: None,
        },
        watch_interval: Duration::from_secs(60),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(async move {
        if let Err(e) = standalone::run(opts).await {
            eprintln!("gateway: {e}");
        }
    });
    wait_for_listener();
    one_session(None, "127.0.0.1", &[]);

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
    let spans: Vec<Span> = spans.iter().map(Span::from).collect();
    check_phases(&spans, "pptp");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs root: network namespace, TUN, raw sockets (e2e/test-all.sh runs it)"]
fn binary_exports_setup_spans_over_otlp_and_flushes_them_at_shutdown() {
    private_netns();
    let collector = Collector::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let (dir, manifests) = manifests("otlp");
    let log = std::fs::File::create(dir.join("gateway.log")).unwrap();
    let mut gateway = collector
        .export_to_me(&mut Command::new(env!("CARGO_BIN_EXE_sluice-dataplane")))
        .arg("--manifests")
        .arg(&manifests)
        .env("SLUICE_ADMIN_TOKEN_FILE", dir.join("admin-token"))
        .args([
            "--tun",
            "sluice0",
            "--no-forwarding",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_listener();
    one_session(None, "127.0.0.1", &[]);
    let client_ns = ClientNetns::new();
    let ipsec = ["--protocol", "l2tp", "--ipsec-psk", "correct-horse-battery"];
    one_session(Some(&client_ns), "10.230.0.1", &ipsec);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        collector.spans().is_empty(),
        "spans arrived before the shutdown flush"
    );

    let status = terminate(&mut gateway, Duration::from_secs(20)).unwrap();
    let log = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    assert!(status.success(), "gateway exited with {status}: {log}");
    assert!(log.contains("exporting traces over OTLP"), "{log}");

    let received = collector.spans();
    assert!(
        received.iter().all(|s| s.service == "sluice-dataplane"),
        "service.name: {received:#?}"
    );
    let spans: Vec<Span> = received.iter().map(Span::from).collect();
    let root = &received[check_phases(&spans, "pptp")];
    assert_eq!(root.attr("protocol"), Some("pptp"));
    assert_eq!(root.attr("user"), Some("alice"));
    assert_eq!(root.attr("caller"), Some("127.0.0.1"));
    assert!(
        root.parent_span_id.is_empty(),
        "session_setup is a root span"
    );

    // L2TP/IPsec: the session's setup, and the IKE phases as a trace of their own.
    let l2tp = &received[check_phases(&spans, "l2tp")];
    let by_name = |n: &str| {
        received
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("no {n} span: {received:#?}"))
    };
    let (p1, p2) = (by_name("ike_phase1"), by_name("ike_phase2"));
    assert!(p1.parent_span_id.is_empty());
    assert_eq!(p1.attr("auth"), Some("psk"));
    assert!(p1.attr("cipher").is_some() && p1.attr("group").is_some());
    assert_eq!(
        p1.attr("client_behind_nat"),
        Some("true"),
        "forceEncapsulation"
    );
    assert_eq!(
        p2.parent_span_id, p1.span_id,
        "Quick Mode in its IKE SA's trace"
    );
    assert_eq!(p2.trace_id, p1.trace_id);
    assert_eq!(p2.attr("udp_encap"), Some("true"));
    assert!(p1.start_unix_nanos < p1.end_unix_nanos && p1.end_unix_nanos <= p2.end_unix_nanos);
    assert!(
        p2.end_unix_nanos <= l2tp.start_unix_nanos,
        "IKE completes before L2TP starts"
    );
    let psk_shown = received
        .iter()
        .any(|s| s.attributes.values().any(|v| v.contains("correct-horse")));
    assert!(!psk_shown, "a secret in a span attribute");
    drop(collector);
    let _ = std::fs::remove_dir_all(&dir);
}
