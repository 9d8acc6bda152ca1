//! The [`Ppp`] engine: phases (RFC 1661 §3), LCP/auth/IPCP/CCP wiring, MPPE data path.

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};

use crate::auth::{ClientAuth, Credential, MppeKeys, ServerAuth};
use crate::ccp::Ccp;
use crate::config::{AuthProto, ClientConfig, Encoding, EncryptionPolicy, ServerConfig};
use crate::error::{Error, Layer, SendError};
use crate::frame::{self, code, proto};
use crate::fsm::{Fsm, Tx};
use crate::ipcp::Ipcp;
use crate::lcp::Lcp;
use crate::mppe::{MppeRx, MppeTx};

mod ccp;
mod input;
mod keepalive;
mod phases;

/// Link phase (RFC 1661 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// LCP negotiation.
    Establish,
    /// PAP/CHAP exchange.
    Authenticate,
    /// NCPs (IPCP, CCP) negotiating.
    Network,
    /// Data may flow (`Event::Up` was emitted).
    Running,
    /// LCP Terminate exchange in progress.
    Terminate,
    /// Finished (`Event::Down` was emitted). Terminal.
    Dead,
}

/// Why the link went down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// Authentication failed (wrong password, unknown user, attempts exhausted, or a
    /// credential that cannot check the method, e.g. PAP given only the NT hash).
    AuthFailed,
    /// Authentication phase exceeded its time bound.
    AuthTimeout,
    /// LCP/IPCP/CCP negotiation failed.
    NegotiationFailed(String),
    /// No traffic from the peer for twice the keepalive interval.
    KeepaliveTimeout,
    /// The peer sent an LCP Terminate-Request.
    PeerTerminated,
    /// [`Ppp::close`] was called.
    LocalClose(String),
    /// Encryption was required but could not be agreed.
    EncryptionRequired,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::AuthFailed => f.write_str("authentication failed"),
            DownReason::AuthTimeout => f.write_str("authentication timeout"),
            DownReason::NegotiationFailed(w) => write!(f, "negotiation failed: {w}"),
            DownReason::KeepaliveTimeout => f.write_str("keepalive timeout"),
            DownReason::PeerTerminated => f.write_str("terminated by peer"),
            DownReason::LocalClose(w) => write!(f, "closed locally: {w}"),
            DownReason::EncryptionRequired => f.write_str("encryption required but not agreed"),
        }
    }
}

/// Something the daemon should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Server: answer with [`Ppp::provide_credential`] (or [`Ppp::provide_secret`]).
    AuthRequest {
        /// User name presented by the peer.
        username: String,
        /// Method in use.
        method: AuthProto,
    },
    /// Server: the peer proved the password. Client: the server accepted us (MS-CHAPv2:
    /// authenticator response verified).
    Authenticated {
        /// User name.
        username: String,
        /// Method used.
        method: AuthProto,
    },
    /// An authentication attempt failed (a final failure is followed by `Down`).
    AuthFailed {
        /// User name.
        username: String,
        /// Method used.
        method: AuthProto,
        /// Failure message (e.g. "E=691 R=0 ...").
        reason: String,
    },
    /// IPCP Opened and, when encryption is negotiated or required, CCP Opened.
    Up {
        /// Our address.
        local: Ipv4Addr,
        /// Peer's address.
        peer: Ipv4Addr,
        /// DNS servers (offered by the server / learned by the client).
        dns: Vec<Ipv4Addr>,
        /// Data encoding.
        encoding: Encoding,
    },
    /// The link is finished. Terminal.
    Down {
        /// Cause.
        reason: DownReason,
    },
}

/// Bound on queued events.
const MAX_EVENTS: usize = 64;
/// Interval between keepalive Echo-Requests.
const ECHO_INTERVAL: Duration = Duration::from_secs(1);
/// Protocol-Rejects allowed per second.
const PROTO_REJ_PER_SEC: u8 = 10;
/// Minimum interval between repeated CCP Reset-Requests while discarding.
const RESET_REQ_INTERVAL: Duration = Duration::from_millis(200);
/// How long a Reset-Ack waits for the flushed data packet it goes out with
/// ([`Ppp::encapsulate_ip`]) before it is sent on its own.
const RESET_ACK_HOLD: Duration = Duration::from_millis(10);
/// Bound on link establishment (LCP, authentication, CCP, IPCP): a peer that never converges,
/// or keeps renegotiating, cannot hold a session and its address forever.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CcpMode {
    Disabled,
    Passive,
    Active,
}

#[derive(Debug)]
enum Role {
    Server(ServerConfig),
    Client(ClientConfig),
}

/// The sans-IO PPP engine for one session (either role).
#[derive(Debug)]
pub struct Ppp {
    role: Role,
    rng: ChaCha20Rng,
    phase: Phase,
    tx: Tx,
    events: VecDeque<Event>,
    lcp_fsm: Fsm,
    lcp: Lcp,
    ipcp_fsm: Fsm,
    ipcp: Ipcp,
    ccp_fsm: Fsm,
    ccp: Ccp,
    ccp_mode: CcpMode,
    ccp_failed: bool,
    /// Our IPCP waits for CCP (encryption required), as pppd does: a peer that requires MPPE
    /// Terminate-Acks NCP requests until its CCP is open, which would cost a restart period.
    ipcp_deferred: bool,
    /// The link must be Up by then, whatever the peer keeps (re)negotiating.
    setup_deadline: Instant,
    policy: EncryptionPolicy,
    server_auth: Option<ServerAuth>,
    client_auth: Option<ClientAuth>,
    auth_method: Option<AuthProto>,
    username: Option<String>,
    keys: Option<MppeKeys>,
    mppe_tx: Option<MppeTx>,
    mppe_rx: Option<MppeRx>,
    encoding: Encoding,
    up: bool,
    down_reason: Option<DownReason>,
    keepalive: Option<Duration>,
    last_rx: Instant,
    next_echo: Option<Instant>,
    aux_id: u8,
    prej_window: Instant,
    prej_count: u8,
    last_reset_req: Option<Instant>,
    /// The Reset-Ack owed for the peer's last Reset-Request, held for the flushed packet.
    reset_ack: Option<HeldResetAck>,
    resets: MppeResets,
    mtu: u16,
    auth_failures: u8,
}

/// Stateful MPPE repair counters of one link (RFC 3078 §8.2, and gaps recovered without it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MppeRepairs {
    /// Gaps of lost packets our receiver recovered without a reset.
    pub gaps_recovered: u64,
    /// CCP Reset-Requests we sent (our receiver lost sync).
    pub resets_sent: u64,
    /// CCP Reset-Requests the peer sent (its receiver lost sync).
    pub resets_received: u64,
}

/// A CCP Reset-Ack not sent yet (RFC 1962 §2): its Identifier and when it goes out alone.
#[derive(Debug, Clone, Copy)]
struct HeldResetAck {
    id: u8,
    until: Instant,
}

/// The reset counters the engine keeps itself.
#[derive(Debug, Clone, Copy, Default)]
struct MppeResets {
    sent: u64,
    received: u64,
}

fn seeded(seed: [u8; 32]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(seed)
}

impl Ppp {
    /// Server (authenticator) role; LCP Configure-Request is queued at once.
    pub fn server(cfg: ServerConfig, now: Instant, seed: [u8; 32]) -> Ppp {
        let mut rng = seeded(seed);
        let lcp_rng = ChaCha20Rng::from_seed(random32(&mut rng));
        let lcp = Lcp::server(cfg.mru, cfg.mtu, cfg.auth.clone(), lcp_rng);
        let ipcp = Ipcp::Server {
            local: cfg.local_addr,
            send_local: true,
            peer: None,
            dns: cfg.dns.iter().take(2).copied().collect(),
        };
        let ccp = Ccp::new(cfg.mppe);
        let (policy, keepalive, mtu) = (cfg.mppe.policy, cfg.keepalive, cfg.mtu);
        Self::build(
            Role::Server(cfg),
            rng,
            lcp,
            ipcp,
            ccp,
            policy,
            keepalive,
            mtu,
            now,
        )
    }

    /// Client (peer) role; LCP Configure-Request is queued at once.
    pub fn client(cfg: ClientConfig, now: Instant, seed: [u8; 32]) -> Ppp {
        let mut rng = seeded(seed);
        let lcp_rng = ChaCha20Rng::from_seed(random32(&mut rng));
        let lcp = Lcp::client(cfg.mru, cfg.mtu, cfg.auth.clone(), lcp_rng);
        let dns = if cfg.request_dns {
            [Some(Ipv4Addr::UNSPECIFIED), Some(Ipv4Addr::UNSPECIFIED)]
        } else {
            [None, None]
        };
        let ipcp = Ipcp::Client {
            local: Ipv4Addr::UNSPECIFIED,
            send_local: true,
            dns,
            remote: None,
        };
        let ccp = Ccp::new(cfg.mppe);
        let (policy, keepalive, mtu) = (cfg.mppe.policy, cfg.keepalive, cfg.mtu);
        Self::build(
            Role::Client(cfg),
            rng,
            lcp,
            ipcp,
            ccp,
            policy,
            keepalive,
            mtu,
            now,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        role: Role,
        mut rng: ChaCha20Rng,
        lcp: Lcp,
        ipcp: Ipcp,
        ccp: Ccp,
        policy: EncryptionPolicy,
        keepalive: Option<Duration>,
        mtu: u16,
        now: Instant,
    ) -> Ppp {
        let ids = rng.next_u32().to_be_bytes();
        let mut p = Ppp {
            role,
            rng,
            phase: Phase::Establish,
            tx: Tx::default(),
            events: VecDeque::new(),
            lcp_fsm: Fsm::new(proto::LCP, Layer::Lcp, ids[0]),
            lcp,
            ipcp_fsm: Fsm::new(proto::IPCP, Layer::Ipcp, ids[1]),
            ipcp,
            ccp_fsm: Fsm::new(proto::CCP, Layer::Ccp, ids[2]),
            ccp,
            ccp_mode: CcpMode::Disabled,
            ccp_failed: false,
            ipcp_deferred: false,
            policy,
            server_auth: None,
            client_auth: None,
            auth_method: None,
            username: None,
            keys: None,
            mppe_tx: None,
            mppe_rx: None,
            encoding: Encoding::None,
            up: false,
            setup_deadline: now + SETUP_TIMEOUT,
            down_reason: None,
            keepalive,
            last_rx: now,
            next_echo: None,
            aux_id: ids[3],
            prej_window: now,
            prej_count: 0,
            last_reset_req: None,
            reset_ack: None,
            resets: MppeResets::default(),
            mtu,
            auth_failures: 0,
        };
        if let Role::Client(c) = &p.role {
            p.username = Some(c.username.clone());
        }
        p.lcp_fsm.open(now, &mut p.lcp, &mut p.tx);
        p
    }

    fn next_aux_id(&mut self) -> u8 {
        self.aux_id = self.aux_id.wrapping_add(1);
        self.aux_id
    }

    fn emit(&mut self, ev: Event) {
        if self.events.len() < MAX_EVENTS || matches!(ev, Event::Down { .. }) {
            self.events.push_back(ev);
        }
    }

    // ----- public API -----

    /// Feeds one received PPP frame. `Ok(Some(ip))` is an IPv4 datagram for the host (decrypted
    /// in place when MPPE is up); `Ok(None)` means consumed or dropped by policy.
    pub fn handle_input<'a>(
        &mut self,
        now: Instant,
        frame: &'a mut [u8],
    ) -> Result<Option<&'a [u8]>, Error> {
        if self.phase == Phase::Dead {
            return Ok(None);
        }
        let (protocol, info) = frame::parse(frame)?;
        self.last_rx = now;
        match protocol {
            proto::IPV4 => {
                if self.up && self.mppe_rx.is_none() {
                    Ok(Some(info))
                } else {
                    Ok(None)
                }
            }
            proto::COMP => self.handle_mppe(now, info),
            proto::LCP => self.handle_lcp(now, info).map(|()| None),
            proto::PAP | proto::CHAP => self.handle_auth(now, protocol, info).map(|()| None),
            proto::IPCP => self.handle_ipcp(now, info).map(|()| None),
            proto::CCP => self.handle_ccp(now, info).map(|()| None),
            other => {
                self.protocol_reject(now, other, info);
                Err(Error::UnknownProtocol(other))
            }
        }
    }

    /// Appends one PPP frame carrying `ip` (MPPE-encrypted when CCP is Opened) to `out`.
    ///
    /// A CCP Reset-Ack the engine holds is queued for [`Ppp::poll_transmit`] first: the
    /// caller sends what `poll_transmit` returns before this frame, so the Ack travels with the
    /// flushed packet it announces, behind every packet encrypted before the reset (a Linux
    /// receiver that saw the Ack first would ask for another reset on each of them).
    pub fn encapsulate_ip(&mut self, ip: &[u8], out: &mut Vec<u8>) -> Result<(), SendError> {
        if !self.up || self.phase != Phase::Running {
            return Err(SendError::NotReady);
        }
        let limit = usize::from(self.lcp.peer_mru.min(self.mtu));
        match &mut self.mppe_tx {
            Some(tx) => {
                let max = limit.saturating_sub(crate::mppe::HEADER_LEN + 2);
                if ip.len() > max {
                    return Err(SendError::TooBig { len: ip.len(), max });
                }
                if let Some(ack) = self.reset_ack.take() {
                    self.tx.control(proto::CCP, code::RESET_ACK, ack.id, &[]);
                }
                frame::emit_header(proto::COMP, out);
                tx.encrypt(proto::IPV4, ip, out);
            }
            None => {
                if ip.len() > limit {
                    return Err(SendError::TooBig {
                        len: ip.len(),
                        max: limit,
                    });
                }
                out.reserve(frame::HEADER_LEN + ip.len());
                frame::emit_header(proto::IPV4, out);
                out.extend_from_slice(ip);
            }
        }
        Ok(())
    }

    /// Runs timers that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Dead {
            return;
        }
        let ev = self
            .lcp_fsm
            .handle_timeout(now, &mut self.lcp, &mut self.tx);
        self.on_lcp_event(now, ev, 0);
        let ev = self
            .ipcp_fsm
            .handle_timeout(now, &mut self.ipcp, &mut self.tx);
        self.on_ipcp_event(now, ev);
        let ev = self
            .ccp_fsm
            .handle_timeout(now, &mut self.ccp, &mut self.tx);
        self.on_ccp_event(now, ev);
        if let Some(a) = &mut self.server_auth {
            let r = a.handle_timeout(now, &mut self.tx);
            self.on_auth_result(now, r);
        }
        if let Some(a) = &mut self.client_auth {
            let r = a.handle_timeout(now, &mut self.tx);
            self.on_auth_result(now, r);
        }
        self.keepalive_tick(now);
        if let Some(ack) = self.reset_ack.take_if(|a| now >= a.until) {
            self.tx.control(proto::CCP, code::RESET_ACK, ack.id, &[]);
        }
        if !self.up && now >= self.setup_deadline {
            self.close_link(
                now,
                DownReason::NegotiationFailed(format!(
                    "link not up within {} s",
                    SETUP_TIMEOUT.as_secs()
                )),
            );
        }
    }

    /// Earliest pending timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Dead {
            return None;
        }
        let auth = self
            .server_auth
            .as_ref()
            .and_then(|a| a.poll_timeout())
            .or_else(|| self.client_auth.as_ref().and_then(|a| a.poll_timeout()));
        [
            self.lcp_fsm.poll_timeout(),
            self.ipcp_fsm.poll_timeout(),
            self.ccp_fsm.poll_timeout(),
            auth,
            self.keepalive_deadline(),
            self.reset_ack.map(|a| a.until),
            (!self.up && !matches!(self.phase, Phase::Terminate)).then_some(self.setup_deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Next control frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Server, after `Event::AuthRequest`: the user's password or NT hash, or `None` for
    /// unknown users. PAP and CHAP-MD5 given only the NT hash fail (`AuthFailed`, then `Down`).
    pub fn provide_credential(&mut self, now: Instant, credential: Option<Credential<'_>>) {
        if let Some(a) = &mut self.server_auth {
            let r = a.provide_credential(now, credential, &mut self.rng, &mut self.tx);
            self.on_auth_result(now, r);
        }
    }

    /// Server, after `Event::AuthRequest`: the user's cleartext password, or `None` for
    /// unknown users ([`Ppp::provide_credential`] with [`Credential::Password`]).
    pub fn provide_secret(&mut self, now: Instant, secret: Option<&[u8]>) {
        self.provide_credential(now, secret.map(Credential::Password));
    }

    /// Server: the address to give the peer in IPCP.
    pub fn set_peer_address(&mut self, addr: Ipv4Addr) {
        if let Ipcp::Server { peer, .. } = &mut self.ipcp {
            *peer = Some(addr);
        }
    }

    /// Administrative close: LCP Terminate-Request (bounded), then `Event::Down`.
    pub fn close(&mut self, now: Instant, reason: &str) {
        self.close_link(now, DownReason::LocalClose(reason.to_owned()));
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Negotiated data encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The largest IP packet [`Ppp::encapsulate_ip`] accepts now: the peer's MRU (RFC 1661
    /// §6.1) or our MTU, whichever is smaller, less the MPPE header and protocol field when
    /// MPPE is on (RFC 3078 §3).
    pub fn ip_mtu(&self) -> u16 {
        let limit = self.lcp.peer_mru.min(self.mtu);
        match self.mppe_tx {
            Some(_) => limit.saturating_sub((crate::mppe::HEADER_LEN + 2) as u16),
            None => limit,
        }
    }

    /// Peer's IPv4 address (server: assigned; client: the server's).
    pub fn peer_address(&self) -> Option<Ipv4Addr> {
        self.ipcp.remote()
    }

    /// Server: the user name presented by the peer; client: our user name.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// True while data may flow.
    pub fn is_up(&self) -> bool {
        self.up && self.phase == Phase::Running
    }

    /// Authentication method agreed in LCP, if any.
    pub fn auth_method(&self) -> Option<AuthProto> {
        self.auth_method
    }

    /// Frames dropped because the transmit queue was full.
    pub fn dropped_transmits(&self) -> u64 {
        self.tx.dropped
    }

    /// Stateful MPPE repairs so far (all zero in stateless mode).
    pub fn mppe_repairs(&self) -> MppeRepairs {
        MppeRepairs {
            gaps_recovered: self.mppe_rx.as_ref().map_or(0, MppeRx::recovered),
            resets_sent: self.resets.sent,
            resets_received: self.resets.received,
        }
    }

    /// LCP, IPCP and CCP requests retransmitted on their restart timers.
    pub fn retransmits(&self) -> u64 {
        self.lcp_fsm.retransmits() + self.ipcp_fsm.retransmits() + self.ccp_fsm.retransmits()
    }
}

fn random32(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}
