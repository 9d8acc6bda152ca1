//! `sluice-dataplane sessions`: the session table, like MikroTik's monitor.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::cli::CliError;
use crate::client::dialler::TunnelStatus;
use crate::http::admin::SessionInfo;
use crate::http::admin_token::AdminToken;

/// Fetches `/sessions` from a running data plane's admin endpoint.
pub fn fetch(endpoint: SocketAddr, token: &AdminToken) -> Result<Vec<SessionInfo>, CliError> {
    let body = request(endpoint, Some(token), "GET", "/sessions")?;
    serde_json::from_str(&body).map_err(|source| CliError::Decode {
        what: "the session list",
        source,
    })
}

/// Fetches `/clients` (the tunnels this node dials) from a running data plane.
pub fn fetch_clients(
    endpoint: SocketAddr,
    token: &AdminToken,
) -> Result<Vec<TunnelStatus>, CliError> {
    let body = request(endpoint, Some(token), "GET", "/clients")?;
    serde_json::from_str(&body).map_err(|source| CliError::Decode {
        what: "the client tunnel list",
        source,
    })
}

/// One HTTP/1.1 request to a running data plane's endpoint (with the admin token for the
/// admin endpoint); the body of a 200 answer.
pub fn request(
    endpoint: SocketAddr,
    token: Option<&AdminToken>,
    method: &str,
    path: &str,
) -> Result<String, CliError> {
    let mut s = TcpStream::connect_timeout(&endpoint, Duration::from_secs(3))
        .map_err(|source| CliError::Connect { endpoint, source })?;
    let io = |source| CliError::Io { endpoint, source };
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\n{}Content-Length: 0\r\n\
         Connection: close\r\n\r\n",
        token.map_or(String::new(), |t| format!(
            "Authorization: Bearer {}\r\n",
            t.as_str()
        ))
    )
    .map_err(io)?;
    let mut resp = Vec::new();
    s.take(64 << 20).read_to_end(&mut resp).map_err(io)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or(CliError::Malformed(endpoint))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(CliError::Status {
            endpoint,
            status: head.lines().next().unwrap_or_default().to_owned(),
            body: body.trim().to_owned(),
        });
    }
    Ok(body.to_owned())
}

/// Human-readable byte count.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Uptime as MikroTik prints it: 1d2h3m4s.
pub fn uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if d > 0 {
        out.push_str(&format!("{d}d"));
    }
    if d > 0 || h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if d > 0 || h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{s}s"));
    out
}

/// Renders the table.
pub fn render(rows: &[SessionInfo]) -> String {
    let header = [
        "ROLE",
        "USER",
        "PROTOCOL",
        "ADDRESS",
        "CALLER",
        "STATE",
        "UPTIME",
        "BYTES-IN",
        "BYTES-OUT",
        "RATE-LIMIT",
        "ENCODING",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        table.push(vec![
            r.role.clone(),
            if r.user.is_empty() {
                "-".into()
            } else {
                r.user.clone()
            },
            r.protocol.clone(),
            r.address.clone().unwrap_or_else(|| "-".into()),
            r.caller.clone(),
            r.state.clone(),
            uptime(r.uptime_seconds),
            bytes(r.bytes_in),
            bytes(r.bytes_out),
            r.rate_limit.clone().unwrap_or_else(|| "-".into()),
            r.encoding.clone(),
        ]);
    }
    columns(&table)
}

/// Renders the client tunnels as the seed's `monitor` does: status, uptime, encoding, local
/// and remote address, and why the last attempt failed.
pub fn render_clients(rows: &[TunnelStatus], now_unix: u64) -> String {
    let header = [
        "CLIENT", "PROTOCOL", "SERVER", "STATUS", "UPTIME", "LOCAL", "REMOTE", "ENCODING", "ERROR",
    ];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let dash = || "-".to_owned();
    for r in rows {
        let connected = r.phase == "Connected";
        let status = match r.retry_at_unix {
            Some(at) if !connected => {
                format!("{} (retry in {}s)", r.phase, at.saturating_sub(now_unix))
            }
            _ => r.phase.clone(),
        };
        table.push(vec![
            r.source.clone(),
            r.protocol.clone(),
            r.server.clone(),
            status,
            if connected {
                uptime(now_unix.saturating_sub(r.since_unix))
            } else {
                dash()
            },
            r.local_address.map_or_else(dash, |a| a.to_string()),
            r.remote_address.map_or_else(dash, |a| a.to_string()),
            r.encoding.clone().unwrap_or_else(dash),
            r.last_error.clone().unwrap_or_else(dash),
        ]);
    }
    columns(&table)
}

/// Left-aligned columns, two spaces apart.
fn columns(table: &[Vec<String>]) -> String {
    let width = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..width)
        .map(|c| table.iter().map(|row| row[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(3723), "1h2m3s");
        assert_eq!(uptime(90061), "1d1h1m1s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
