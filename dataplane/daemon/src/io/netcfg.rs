//! Host network configuration around the TUN device: its address, the pool
//! route, per-session routes, forwarding and optional masquerade. Uses the
//! `ip` and `nft` tools (iproute2, nftables); session routes are applied by one
//! background task so the data path never waits for them.

use std::net::Ipv4Addr;
use std::process::Command;

use ipnet::Ipv4Net;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::tun::Tun;

/// Errors preparing the host network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("running `{cmd}`: {error}")]
    Spawn { cmd: String, error: std::io::Error },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("creating TUN device {name}: {error}")]
    Tun { name: String, error: std::io::Error },
}

fn run(program: &str, args: &[&str]) -> Result<(), NetError> {
    output(program, args).map(drop)
}

/// Runs a command; its standard output when it succeeds.
fn output(program: &str, args: &[&str]) -> Result<String, NetError> {
    let cmd = format!("{program} {}", args.join(" "));
    debug!(%cmd, "net config");
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| NetError::Spawn {
            cmd: cmd.clone(),
            error,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Failed {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Creates the TUN device, with the kernel's offloads when `offload` (`io::tun`) and a ring
/// of `tx_queue_len` entries (the kernel's default, 500, when `None`), addresses it (when
/// `local` is given) and brings it up.
pub fn create_tun(
    name: &str,
    mtu: u16,
    local: Option<Ipv4Addr>,
    offload: bool,
    tx_queue_len: Option<u32>,
) -> Result<Tun, NetError> {
    let mut builder = tun_rs::DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .offload(offload);
    if let Some(len) = tx_queue_len {
        builder = builder.tx_queue_len(len);
    }
    let dev = builder.build_sync().map_err(|error| NetError::Tun {
        name: name.to_owned(),
        error,
    })?;
    if let Some(local) = local {
        set_address(name, local)?;
    }
    run("ip", &["link", "set", "dev", name, "up"])?;
    Ok(Tun::new(dev))
}

/// Gives the TUN device its (point-to-point style) /32 address.
pub fn set_address(dev: &str, addr: Ipv4Addr) -> Result<(), NetError> {
    run(
        "ip",
        &["addr", "replace", &format!("{addr}/32"), "dev", dev],
    )
}

/// Routes `net` into the TUN device (replacing any existing route).
pub fn route_replace(dev: &str, net: Ipv4Net) -> Result<(), NetError> {
    run("ip", &["route", "replace", &net.to_string(), "dev", dev])
}

/// Removes a route into the TUN device; a missing route is not an error.
pub fn route_delete(dev: &str, net: Ipv4Net) {
    if let Err(e) = run("ip", &["route", "del", &net.to_string(), "dev", dev]) {
        debug!(error = %e, "route delete");
    }
}

/// Removes an address from the TUN device; a missing address is not an error.
pub fn address_delete(dev: &str, addr: Ipv4Addr) {
    if let Err(e) = run("ip", &["addr", "del", &format!("{addr}/32"), "dev", dev]) {
        debug!(error = %e, "address delete");
    }
}

/// Routes `net` into the TUN device with `src` as the source the host picks for it (a
/// dialled tunnel's own address, so host traffic needs no NAT) and `mtu` as the path MTU
/// (what the tunnel carries: larger packets get ICMP "fragmentation needed" at once).
pub fn route_replace_from(
    dev: &str,
    net: Ipv4Net,
    src: Ipv4Addr,
    mtu: u16,
) -> Result<(), NetError> {
    let (net, src, mtu) = (net.to_string(), src.to_string(), mtu.to_string());
    run(
        "ip",
        &[
            "route", "replace", &net, "dev", dev, "src", &src, "mtu", &mtu,
        ],
    )
}

/// Pins the host route to `dest` as it is now (`ip route get`: gateway and device), so a
/// default route into a tunnel does not capture the tunnel's own packets. Returns the
/// pinned route, to delete with [`route_unpin`]; `None` when a host route to `dest` exists
/// already (someone else's, left alone).
pub fn route_pin(dest: Ipv4Addr) -> Result<Option<Ipv4Net>, NetError> {
    let host = Ipv4Net::from(dest).to_string();
    if !output("ip", &["-o", "route", "show", "exact", &host])?.is_empty() {
        return Ok(None);
    }
    let dest_text = dest.to_string();
    let route = output("ip", &["-o", "route", "get", &dest_text])?;
    let field = |name: &str| {
        let mut words = route.split_whitespace();
        words.find(|w| *w == name).and(words.next())
    };
    let Some(dev) = field("dev") else {
        return Err(NetError::Failed {
            cmd: format!("ip -o route get {dest}"),
            stderr: format!("no device in {route:?}"),
        });
    };
    match field("via") {
        Some(via) => run("ip", &["route", "add", &host, "via", via, "dev", dev])?,
        None => run("ip", &["route", "add", &host, "dev", dev])?,
    }
    Ok(Some(Ipv4Net::from(dest)))
}

/// Removes a route [`route_pin`] installed.
pub fn route_unpin(net: Ipv4Net) {
    if let Err(e) = run("ip", &["route", "del", &net.to_string()]) {
        debug!(error = %e, "route unpin");
    }
}

/// Prefix of the nft tables of dialled tunnels' source NAT (`sluice_client_N`).
pub const CLIENT_SNAT_TABLE: &str = "sluice_client_";

/// What a dialled tunnel's source NAT rewrites: traffic into the TUN device toward `nets`
/// (except the gateway's own `pool`, whose sessions share the device) from any source but
/// `local` leaves as `local`.
#[derive(Debug, Clone, Copy)]
pub struct ClientSnat<'a> {
    pub local: Ipv4Addr,
    pub nets: &'a [Ipv4Net],
    pub pool: Ipv4Net,
}

/// Installs (or, with `None`, removes) a dialled tunnel's source NAT. One nft table per
/// tunnel (`table`), replaced as a whole.
pub fn set_client_snat(
    table: &str,
    dev: &str,
    snat: Option<ClientSnat<'_>>,
) -> Result<(), NetError> {
    let mut script = format!("add table ip {table}\ndelete table ip {table}\n");
    if let Some(ClientSnat { local, nets, pool }) = snat {
        let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
        script.push_str(&format!(
            "table ip {table} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{dev}\" ip daddr {{ {} }} ip daddr != {pool} ip saddr != {local} snat to {local}\n  }}\n}}\n",
            nets.join(", ")
        ));
    }
    run_with_stdin("nft", &["-f", "-"], &script)
}

/// Deletes the source-NAT tables of dialled tunnels a previous run left (it was killed
/// before it could hang up); called once at start.
pub fn delete_stale_client_snat() {
    let Ok(text) = output("nft", &["list", "tables", "ip"]) else {
        return;
    };
    let stale = text
        .lines()
        .filter_map(|l| l.strip_prefix("table ip "))
        .filter(|t| t.starts_with(CLIENT_SNAT_TABLE));
    for table in stale {
        if let Err(e) = run("nft", &["delete", "table", "ip", table]) {
            debug!(error = %e, "deleting a stale client SNAT table");
        }
    }
}

/// Turns on IPv4 forwarding in this network namespace.
pub fn enable_forwarding() -> Result<(), NetError> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|error| NetError::Spawn {
        cmd: "write /proc/sys/net/ipv4/ip_forward".into(),
        error,
    })
}

/// nftables table owned by Sluice (replaced as a whole on every change).
const NFT_TABLE: &str = "sluice";

/// Installs (or removes, with `enabled = false`) masquerade of `pool` toward
/// every interface but the TUN device. One nft transaction replaces Sluice's
/// table as a whole, so the rules are never half applied.
pub fn set_masquerade(dev: &str, pool: Ipv4Net, enabled: bool) -> Result<(), NetError> {
    let mut script = format!("add table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\n");
    if enabled {
        script.push_str(&format!(
            "table ip {NFT_TABLE} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    ip saddr {pool} oifname != \"{dev}\" masquerade\n  }}\n}}\n"
        ));
    }
    run_with_stdin("nft", &["-f", "-"], &script)
}

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Result<(), NetError> {
    use std::io::Write;
    let cmd = format!("{program} {}", args.join(" "));
    debug!(%cmd, "net config");
    let spawn_err = |error| NetError::Spawn {
        cmd: cmd.clone(),
        error,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Failed {
            cmd,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// A route change for the background route task.
#[derive(Debug)]
pub enum RouteCmd {
    Add(Ipv4Net),
    Del(Ipv4Net),
}

/// Spawns the task that applies session routes in order.
pub fn spawn_route_task(dev: String) -> mpsc::UnboundedSender<RouteCmd> {
    let (tx, mut rx) = mpsc::unbounded_channel::<RouteCmd>();
    std::thread::Builder::new()
        .name("sluice-routes".into())
        .spawn(move || {
            while let Some(cmd) = rx.blocking_recv() {
                match cmd {
                    RouteCmd::Add(net) => {
                        if let Err(e) = route_replace(&dev, net) {
                            warn!(route = %net, error = %e, "installing session route failed");
                        }
                    }
                    RouteCmd::Del(net) => route_delete(&dev, net),
                }
            }
        })
        .ok();
    tx
}
