//! One typed snapshot of a gateway's sessions. The admin endpoint's `/sessions` rows
//! ([`crate::http::admin::SessionInfo`]) and the agent's session reports to the operator
//! (`sluice.v1.Session`) are both rendered from it, so the two never read the link table
//! differently.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use sluice_ppp::{AuthProto, Encoding, Phase};

use crate::datapath::ratelimit::RateLimit;
use crate::gateway::Gateway;
use crate::metrics::Protocol;
pub use crate::metrics::Role;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionPhase {
    /// Still setting up: the PPP link phase (RFC 1661 §3.2) it is in.
    Setup(Phase),
    /// Up (authenticated, network layer open) for `uptime`, since the wall-clock `since`.
    Up {
        /// Time since it came up.
        uptime: Duration,
        /// When it came up.
        since: SystemTime,
    },
}

/// IP traffic of a session, counted on the data path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// IP bytes from the client.
    pub bytes_in: u64,
    /// IP bytes to the client.
    pub bytes_out: u64,
    /// IP packets from the client.
    pub packets_in: u64,
    /// IP packets to the client.
    pub packets_out: u64,
}

/// One session as the gateway knows it at the moment of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Served or dialled.
    pub role: Role,
    /// The authenticated user name (`None` before authentication).
    pub user: Option<String>,
    /// The VpnUser it logged in as, `namespace/name` (empty before authentication).
    pub source: String,
    /// PPTP or L2TP.
    pub protocol: Protocol,
    /// The tunnel address assigned to the client.
    pub address: Option<Ipv4Addr>,
    /// The client's public address.
    pub caller: Ipv4Addr,
    /// Our Call ID (PPTP) or Session ID (L2TP).
    pub call_id: u16,
    /// The client's Call ID or Session ID.
    pub peer_call_id: u16,
    /// Setting up or up.
    pub phase: SessionPhase,
    /// The authentication protocol used, once known.
    pub auth: Option<AuthProto>,
    /// The data encoding agreed (MPPE or none).
    pub encoding: Encoding,
    /// IP traffic so far.
    pub traffic: Traffic,
    /// The user's bandwidth limit, if any.
    pub rate_limit: Option<RateLimit>,
}

impl Session {
    /// The wall-clock time the session came up, if it is up.
    pub fn since(&self) -> Option<SystemTime> {
        match self.phase {
            SessionPhase::Up { since, .. } => Some(since),
            SessionPhase::Setup(_) => None,
        }
    }
}

/// Every session of `gw`, served and dialled, ordered by user name, then Call ID.
pub fn sessions(gw: &Gateway) -> Vec<Session> {
    let mut out: Vec<Session> = gw
        .dp
        .links
        .all()
        .into_iter()
        .map(|l| {
            let st = l.lock();
            Session {
                role: if l.owner.is_some() {
                    Role::Client
                } else {
                    Role::Server
                },
                user: st.username.clone(),
                source: st.source.clone(),
                protocol: l.protocol,
                address: st.address,
                caller: l.peer,
                call_id: l.local_call_id,
                peer_call_id: l.peer_call_id,
                phase: match st.up_at {
                    Some((at, since)) => SessionPhase::Up {
                        uptime: at.elapsed(),
                        since,
                    },
                    None => SessionPhase::Setup(st.ppp.phase()),
                },
                auth: st.auth_method,
                encoding: st.encoding,
                traffic: Traffic {
                    bytes_in: l.stats.rx_bytes.load(Ordering::Relaxed),
                    bytes_out: l.stats.tx_bytes.load(Ordering::Relaxed),
                    packets_in: l.stats.rx_packets.load(Ordering::Relaxed),
                    packets_out: l.stats.tx_packets.load(Ordering::Relaxed),
                },
                rate_limit: st.rate_limit.as_ref().map(|(r, _)| *r),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.user, a.call_id).cmp(&(&b.user, b.call_id)));
    out
}
