//! `sluice-dataplane drain`: tells a running data plane to drain (no new sessions, exit once
//! none is left or at the timeout) and, with `--wait`, waits until it has. Kubernetes runs it
//! as the data-plane pod's preStop hook.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::cli::CliError;
use crate::cli::sessions::request;
use crate::http::admin::DrainStatus;
use crate::http::admin_token::AdminToken;

/// Starts draining `endpoint`'s gateway; with `wait`, polls until no session is left or the
/// process is gone (it exits once drained), at most `timeout` plus a grace period.
pub fn run(
    endpoint: SocketAddr,
    token: &AdminToken,
    timeout: Duration,
    wait: bool,
) -> Result<(), CliError> {
    let status = post(endpoint, token, timeout)?;
    println!(
        "draining: {} session(s) left, closed anyway in {} s",
        status.sessions,
        status.remaining_seconds.unwrap_or(0)
    );
    if !wait {
        return Ok(());
    }
    let give_up = Instant::now() + timeout + Duration::from_secs(30);
    let mut last = status.sessions;
    while Instant::now() < give_up {
        std::thread::sleep(Duration::from_secs(1));
        match request(endpoint, Some(token), "GET", "/drain") {
            // The process exits once drained: a refused connection means done.
            Err(_) => {
                println!("drained: the data plane has stopped");
                return Ok(());
            }
            Ok(body) => {
                let s = decode(&body)?;
                if s.sessions != last {
                    println!("draining: {} session(s) left", s.sessions);
                    last = s.sessions;
                }
            }
        }
    }
    Err(CliError::NotDrained(timeout.as_secs() + 30))
}

fn decode(body: &str) -> Result<DrainStatus, CliError> {
    serde_json::from_str(body).map_err(|source| CliError::Decode {
        what: "the drain status",
        source,
    })
}

fn post(
    endpoint: SocketAddr,
    token: &AdminToken,
    timeout: Duration,
) -> Result<DrainStatus, CliError> {
    let body = request(
        endpoint,
        Some(token),
        "POST",
        &format!("/drain?timeout={}", timeout.as_secs()),
    )?;
    decode(&body)
}
