//! The operator binary exports its `reconcile` spans over OTLP/gRPC when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set: `sluice-operator serve-manifests` against a
//! receiver in this test (`sluice-otlp-collector`), on the loopback interface. The
//! batch delay is longer than the test, so the spans arrive only through the flush at
//! a SIGTERM shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_otlp_collector::{Collector, terminate};

const MANIFESTS: &str = "\
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: vpn }
spec:
  ppp: { localAddress: 10.221.0.1, addressPool: 10.221.0.0/24 }
";

#[test]
fn serve_manifests_exports_reconcile_spans_and_flushes_them_at_shutdown() {
    let bin = env!("CARGO_BIN_EXE_sluice-operator");
    let dir = std::env::temp_dir().join(format!("sluice-operator-otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifests = dir.join("manifests.yaml");
    std::fs::write(&manifests, MANIFESTS).unwrap();
    let pki = Command::new(bin)
        .arg("pki")
        .arg("--out")
        .arg(dir.join("pki"))
        .args(["--gateway", "vpn/office"])
        .output()
        .unwrap();
    assert!(
        pki.status.success(),
        "{}",
        String::from_utf8_lossy(&pki.stderr)
    );

    let collector = Collector::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    let log_path = dir.join("operator.log");
    let mut operator = collector
        .export_to_me(&mut Command::new(bin))
        .args(["--log-format", "json", "serve-manifests", "--manifests"])
        .arg(&manifests)
        .args([
            "--grpc-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-dir")
        .arg(dir.join("pki"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log().contains("configuration published") {
        if Instant::now() > deadline || operator.try_wait().unwrap().is_some() {
            let _ = operator.kill();
            panic!("the operator did not publish the configuration: {}", log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        collector.spans().is_empty(),
        "spans arrived before the shutdown flush"
    );

    let status = terminate(&mut operator, Duration::from_secs(20)).unwrap();
    assert!(
        status.success(),
        "the operator exited with {status}: {}",
        log()
    );
    assert!(log().contains("exporting traces over OTLP"), "{}", log());

    let spans = collector.spans();
    let reconcile = spans
        .iter()
        .find(|s| s.name == "reconcile" && s.attr("object") == Some("vpn/office"))
        .unwrap_or_else(|| panic!("no reconcile span of vpn/office: {spans:#?}"));
    assert_eq!(reconcile.service, "sluice-operator");
    assert_eq!(reconcile.attr("kind"), Some("VpnGateway"));
    assert!(reconcile.start_unix_nanos <= reconcile.end_unix_nanos);
    drop(collector);
    let _ = std::fs::remove_dir_all(&dir);
}
