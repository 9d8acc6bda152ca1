//! The management endpoints as a client on the network sees them: the metrics listener
//! serves no session rows and no drain; the admin listener is loopback-only and answers
//! only with the bearer token the data plane wrote to its token file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::SocketAddr;
use std::sync::Arc;

use sluice_dataplane::http::admin_token::AdminToken;
use sluice_dataplane::http::{self, EndpointError, Endpoints, HttpState};
use sluice_dataplane::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn call(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned(),
    )
}

fn endpoints(name: &str) -> Endpoints {
    Endpoints {
        metrics: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.1:0".parse().unwrap(),
        admin_token_file: std::env::temp_dir()
            .join(format!("sluice-admin-test-{}-{name}", std::process::id()))
            .join("admin-token"),
    }
}

#[tokio::test]
async fn admin_needs_the_token_and_metrics_serve_no_admin_routes() {
    let at = endpoints("token");
    let state = Arc::new(HttpState::new(Arc::new(Metrics::new())));
    let (metrics, admin) = http::start(state, &at).await.unwrap();
    let token = AdminToken::read_file(&at.admin_token_file).unwrap();
    let bearer = format!("Bearer {}", token.as_str());

    // The metrics listener: probes and metrics, nothing else.
    assert_eq!(call(metrics, "GET", "/healthz", None).await.0, 200);
    assert_eq!(call(metrics, "GET", "/metrics", None).await.0, 200);
    for (m, p) in [
        ("GET", "/sessions"),
        ("POST", "/drain?timeout=0"),
        ("GET", "/drain"),
    ] {
        assert_eq!(call(metrics, m, p, Some(&bearer)).await.0, 404, "{m} {p}");
    }

    // The admin listener: 401 without the token, with a wrong one, or another scheme.
    let wrong = format!("Bearer {}", AdminToken::generate().as_str());
    for auth in [
        None,
        Some(wrong.as_str()),
        Some("Basic YWRtaW46YWRtaW4="),
        Some("Bearer "),
    ] {
        for (m, p) in [
            ("GET", "/sessions"),
            ("POST", "/drain?timeout=0"),
            ("GET", "/drain"),
        ] {
            let (status, _) = call(admin, m, p, auth).await;
            assert_eq!(status, 401, "{m} {p} with {auth:?}");
        }
    }
    // With it: the (empty) session table; drain answers that nothing runs yet.
    assert_eq!(
        call(admin, "GET", "/sessions", Some(&bearer)).await,
        (200, "[]".into())
    );
    assert_eq!(
        call(admin, "POST", "/drain?timeout=0", Some(&bearer))
            .await
            .0,
        503
    );
    std::fs::remove_dir_all(at.admin_token_file.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn admin_refuses_to_listen_beyond_loopback() {
    let mut at = endpoints("loopback");
    at.admin = "0.0.0.0:0".parse().unwrap();
    let state = Arc::new(HttpState::new(Arc::new(Metrics::new())));
    let err = http::start(state, &at).await.unwrap_err();
    assert!(matches!(err, EndpointError::NotLoopback(_)), "{err}");
    assert!(err.to_string().contains("loopback only"), "{err}");
}
