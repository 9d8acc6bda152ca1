//! Sluice as a client: the PNS side of PPTP ([`pns`]) and the PPP peer on top of it, for
//! the persistent dialler of `VpnClient`s ([`dialler`], issue 22) and for the in-repo load
//! generator (`sluice-client`, which adds the LAC and the IKE initiator).
//!
//! A [`Client`] is the [`Hooks`] of its calls. The load generator's calls live on its own
//! [`DataPath`]; a dialled call lives on the gateway's, takes its Call ID from the node-wide
//! space and is marked with [`Link::owner`], so the gateway's receive paths hand its PPP
//! events to this client.

pub mod dialler;
mod error;
pub mod pns;
pub mod policy;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use sluice_ppp::{Encoding, Event};
use tokio::sync::mpsc;
use tracing::Span;

use crate::datapath::callid::CallIds;
use crate::datapath::link::{CtlCmd, Link, LinkState, setup_span};
use crate::datapath::{DataPath, Hooks, SourceCheck, drive};
use crate::gateway::Gateway;
use crate::gateway::policy::SessionPhase;
use crate::metrics::{Role, SetupResult};
use crate::sync::lock;

pub use error::DialError;
pub use pns::{SessionParams, run_connection};

/// How one session attempt ended (or that it came up).
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Up {
        /// Our tunnel address (IPCP, RFC 1332 §3.3).
        address: Ipv4Addr,
        /// The server's tunnel address.
        gateway: Ipv4Addr,
        dns: Vec<Ipv4Addr>,
        encoding: Encoding,
        /// The largest IP packet the call carries ([`sluice_ppp::Ppp::ip_mtu`]).
        mtu: u16,
        setup: Duration,
    },
    /// The session did not come up.
    Failed(String),
    /// The server refused our credentials (PPP authentication, RFC 1994 §4.4 / RFC 2759 §6).
    Rejected(String),
    /// The session was up and ended.
    Down(String),
}

/// `nets` less every address of `hole`: a net inside it goes, a net around it is split into
/// the halves beside it (at most one per prefix length between the two).
pub fn without(nets: &[Ipv4Net], hole: Ipv4Net) -> Vec<Ipv4Net> {
    let hole = hole.trunc();
    let mut out = Vec::new();
    for net in nets {
        let mut net = net.trunc();
        if hole.contains(&net) {
            continue;
        }
        if !net.contains(&hole) {
            out.push(net);
            continue;
        }
        while net.prefix_len() < hole.prefix_len() {
            let Ok(mut halves) = net.subnets(net.prefix_len() + 1) else {
                break;
            };
            let (Some(a), Some(b)) = (halves.next(), halves.next()) else {
                break;
            };
            let (inner, outer) = if a.contains(&hole) { (a, b) } else { (b, a) };
            out.push(outer);
            net = inner;
        }
    }
    out
}

/// Where a client's calls live.
enum Home {
    /// Its own data path (the load generator).
    Own {
        dp: Box<DataPath>,
        call_ids: Mutex<CallIds>,
    },
    /// The gateway's data path (a `VpnClient` dialled by this node).
    Gateway {
        gw: Arc<Gateway>,
        /// The networks routed into the tunnel (`spec.routes`, and the two halves of the
        /// address space for `addDefaultRoute`), less the gateway's own pool: bound to the
        /// call once it is up, and the only sources accepted from it besides the server's
        /// tunnel address.
        routes: Vec<Ipv4Net>,
        /// The `VpnClient` (`namespace/name`) and the user name it logs in as, shown with
        /// its calls in the session table.
        source: String,
        username: String,
    },
}

/// The hooks of a client's calls: report outcomes, bind addresses, count delivered packets.
pub struct Client {
    home: Home,
    outcomes: mpsc::UnboundedSender<(u16, Outcome)>,
    /// Packets and bytes delivered when there is no TUN device.
    pub sink_packets: AtomicU64,
    pub sink_bytes: AtomicU64,
    /// Abuse tests: send whatever the TUN device gives, IPv6 included, as IPv4 PPP frames.
    pub send_any_ip: AtomicBool,
}

type Outcomes = mpsc::UnboundedReceiver<(u16, Outcome)>;

impl Client {
    /// A client on its own data path (the load generator).
    pub fn new(dp: DataPath) -> (Arc<Client>, Outcomes) {
        let call_ids = Mutex::new(CallIds::new(crate::host::seed_u64()));
        Client::with_home(Home::Own {
            dp: Box::new(dp),
            call_ids,
        })
    }

    /// A client dialling from the gateway's data path for the `VpnClient` `source` (logging
    /// in as `username`), routing `routes` into its tunnel.
    pub fn dialled(
        gw: Arc<Gateway>,
        routes: Vec<Ipv4Net>,
        source: String,
        username: String,
    ) -> (Arc<Client>, Outcomes) {
        Client::with_home(Home::Gateway {
            gw,
            routes,
            source,
            username,
        })
    }

    fn with_home(home: Home) -> (Arc<Client>, Outcomes) {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = Client {
            home,
            outcomes: tx,
            sink_packets: AtomicU64::new(0),
            sink_bytes: AtomicU64::new(0),
            send_any_ip: AtomicBool::new(false),
        };
        (Arc::new(client), rx)
    }

    fn call_ids(&self) -> &Mutex<CallIds> {
        match &self.home {
            Home::Own { call_ids, .. } => call_ids,
            Home::Gateway { gw, .. } => &gw.call_ids,
        }
    }

    /// A fresh local Call ID / Session ID.
    pub fn allocate_id(&self) -> Option<u16> {
        lock(self.call_ids()).allocate()
    }

    /// Returns an ID that never got a link.
    pub fn release_id(&self, id: u16) {
        lock(self.call_ids()).release(id);
    }

    /// Reports an outcome for a session that has no link.
    pub fn outcome(&self, id: u16, outcome: Outcome) {
        let _ = self.outcomes.send((id, outcome));
    }

    /// Puts a new call on the data path: marked as dialled when it is on the gateway's. Its
    /// setup trace (`session_setup`, role `client`) starts here.
    pub fn insert(self: &Arc<Self>, link: Link) -> Arc<Link> {
        let span = setup_span(Role::Client, link.protocol, link.peer);
        span.record("call_id", link.local_call_id);
        let link = match &self.home {
            Home::Own { .. } => Arc::new(link),
            Home::Gateway { .. } => Arc::new(link.with_owner(self.clone())),
        };
        {
            let mut st = link.lock();
            if let Home::Gateway {
                source, username, ..
            } = &self.home
            {
                span.record("user", username.as_str());
                st.source.clone_from(source);
                st.username = Some(username.clone());
            }
            st.start_setup(span);
        }
        self.dp().links.insert(link.clone());
        link
    }

    /// Ends the call's setup trace with `result`.
    fn end_setup(st: &mut LinkState, result: SetupResult) {
        st.setup_span.record("result", result.as_str());
        st.phase_span = Span::none();
        st.setup_span = Span::none();
    }

    /// Ends a link and reports its outcome. Idempotent.
    pub fn finish(&self, link: &Arc<Link>, st: &mut LinkState, outcome: Outcome) {
        if st.session.is_closed() {
            return;
        }
        st.session = SessionPhase::Closed;
        link.dead.store(true, Ordering::Relaxed);
        let links = &self.dp().links;
        if let Some(a) = st.address.take() {
            links.unbind_address(a, link.local_call_id);
        }
        if matches!(self.home, Home::Gateway { .. }) {
            links.unbind_nets(link.local_call_id);
        }
        links.remove(link.local_call_id);
        self.release_id(link.local_call_id);
        let cause = match &outcome {
            Outcome::Failed(s) | Outcome::Rejected(s) | Outcome::Down(s) => s.clone(),
            Outcome::Up { .. } => String::new(),
        };
        let _ = self.outcomes.send((link.local_call_id, outcome));
        let _ = link.ctl.send(CtlCmd::CallDown {
            local_call_id: link.local_call_id,
            cause,
        });
    }

    /// Ends every call of this client still on the data path (its control task was cut
    /// short): their Call IDs return to the pool, their bindings go.
    pub fn finish_all(&self, reason: &str) {
        let me: *const Client = self;
        for link in self.dp().links.all() {
            let mine = link
                .owner
                .as_ref()
                .is_some_and(|o| std::ptr::addr_eq(Arc::as_ptr(o), me));
            if mine {
                let mut st = link.lock();
                self.finish(&link, &mut st, Outcome::Down(reason.to_owned()));
            }
        }
    }

    /// Closes a link gracefully (LCP Terminate; Down follows).
    pub fn close(&self, link: &Arc<Link>, reason: &str) {
        let now = Instant::now();
        let mut st = link.lock();
        if !st.session.is_closed() {
            st.ppp.close(now, reason);
            drive(self, link, &mut st, now);
        }
    }

    /// A dialled server chooses both tunnel addresses (IPCP, RFC 1332 §3.3); the ones this
    /// node cannot take without harm are refused: not unicast, equal, inside the gateway's
    /// pool or its own address, or already a session's.
    fn check_addresses(&self, local: Ipv4Addr, peer: Ipv4Addr) -> Result<(), String> {
        let Home::Gateway { gw, .. } = &self.home else {
            return Ok(());
        };
        let cfg = gw.config();
        for (which, a) in [("our", local), ("its", peer)] {
            let unusable = a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_link_local();
            let why = if unusable {
                "is not a unicast address"
            } else if cfg.pool.contains(&a) || a == cfg.local_address {
                "belongs to this gateway's own address pool"
            } else {
                continue;
            };
            return Err(format!(
                "the server assigned {which} tunnel address {a}, which {why}"
            ));
        }
        if local == peer {
            return Err(format!("the server assigned {local} to both ends"));
        }
        if gw.dp.links.by_address(peer).is_some() {
            return Err(format!(
                "the server's tunnel address {peer} is already another session's"
            ));
        }
        Ok(())
    }

    /// Binds a call that came up: our address (load generator: the TUN device's packets
    /// leave by their source), or the server's address and the routed networks (dialled:
    /// the gateway routes by destination).
    fn bind(&self, link: &Arc<Link>, st: &mut LinkState, local: Ipv4Addr, peer: Ipv4Addr) {
        match &self.home {
            Home::Own { dp, .. } => {
                st.address = Some(local);
                dp.links.bind_address(local, link.clone());
            }
            Home::Gateway { gw, routes, .. } => {
                st.address = Some(peer);
                st.routes.clone_from(routes);
                gw.dp.links.bind_address(peer, link.clone());
                for r in routes {
                    gw.dp.links.bind_net(*r, link.clone());
                }
            }
        }
    }
}

impl Hooks for Client {
    fn dp(&self) -> &DataPath {
        match &self.home {
            Home::Own { dp, .. } => dp,
            Home::Gateway { gw, .. } => &gw.dp,
        }
    }

    fn on_event(&self, link: &Arc<Link>, st: &mut LinkState, ev: Event, now: Instant) {
        match ev {
            Event::Up {
                local,
                peer,
                dns,
                encoding,
            } => {
                // In the client, "local" is our address and "peer" the server's.
                if let Err(why) = self.check_addresses(local, peer) {
                    st.down_reason = Some(why.clone());
                    st.ppp.close(now, &why);
                    return;
                }
                self.bind(link, st, local, peer);
                Client::end_setup(st, SetupResult::Ok);
                st.encoding = encoding;
                st.up_at = Some((now, std::time::SystemTime::now()));
                let _ = self.outcomes.send((
                    link.local_call_id,
                    Outcome::Up {
                        address: local,
                        gateway: peer,
                        dns,
                        encoding,
                        mtu: st.ppp.ip_mtu(),
                        setup: now.saturating_duration_since(link.created),
                    },
                ));
            }
            Event::AuthFailed { reason, .. } => {
                st.refusal = Some(format!("authentication failed: {reason}"));
            }
            Event::Down { reason } => {
                if st.up_at.is_none() {
                    let result = match st.refusal {
                        Some(_) => SetupResult::AuthFailed,
                        None => SetupResult::NegotiationFailed,
                    };
                    Client::end_setup(st, result);
                }
                let outcome = match (st.refusal.take(), st.down_reason.take()) {
                    (Some(refused), _) => Outcome::Rejected(refused),
                    (None, text) if st.up_at.is_some() => {
                        Outcome::Down(text.unwrap_or_else(|| reason.to_string()))
                    }
                    (None, text) => Outcome::Failed(text.unwrap_or_else(|| reason.to_string())),
                };
                self.finish(link, st, outcome);
            }
            Event::AuthRequest { .. } | Event::Authenticated { .. } => {}
        }
    }

    fn accept_source(&self, st: &LinkState, ip: &[u8]) -> SourceCheck {
        match self.home {
            // The load generator accepts what its gateway sends.
            Home::Own { .. } => SourceCheck::Allowed,
            // A dialled server may send from its tunnel address and the routed networks
            // only: it must not inject packets as any host of this site.
            Home::Gateway { .. } => crate::datapath::check_source(st, ip),
        }
    }

    fn tun_accepts(&self, ip: &[u8]) -> bool {
        self.send_any_ip.load(Ordering::Relaxed) || ip.first().map(|b| b >> 4) == Some(4)
    }

    fn route(&self, ip: &[u8]) -> Option<Arc<Link>> {
        // Packets from the TUN device leave through the session owning their source; with a
        // single session (a client routing a network behind it) every source uses it, and
        // the gateway decides what it accepts.
        let src = ip.get(12..16)?;
        let src = Ipv4Addr::new(*src.first()?, *src.get(1)?, *src.get(2)?, *src.get(3)?);
        let links = &self.dp().links;
        links.by_address(src).or_else(|| links.sole_bound())
    }

    fn deliver(&self, _link: &Link, ip: &[u8]) {
        self.sink_packets.fetch_add(1, Ordering::Relaxed);
        self.sink_bytes
            .fetch_add(ip.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(text: &[&str]) -> Vec<Ipv4Net> {
        text.iter().filter_map(|t| t.parse().ok()).collect()
    }

    #[test]
    fn without_cuts_the_hole_out_and_nothing_else() {
        let Ok(pool) = "10.202.0.0/24".parse::<Ipv4Net>() else {
            panic!("pool")
        };
        let halves = without(&nets(&["0.0.0.0/1", "128.0.0.0/1"]), pool);
        assert_eq!(halves.len(), 24, "{halves:?}");
        let covered = |a: Ipv4Addr| halves.iter().any(|n| n.contains(&a));
        for a in [[10, 202, 0, 0], [10, 202, 0, 1], [10, 202, 0, 255]] {
            assert!(!covered(a.into()), "{a:?}");
        }
        for a in [
            [0, 0, 0, 0],
            [10, 201, 255, 255],
            [10, 202, 1, 0],
            [127, 255, 255, 255],
            [200, 1, 2, 3],
        ] {
            assert!(covered(a.into()), "{a:?}");
        }
        // Disjoint nets stay, nets inside the hole go.
        assert_eq!(
            without(&nets(&["192.168.10.0/24", "10.202.0.128/25"]), pool),
            nets(&["192.168.10.0/24"])
        );
    }
}
