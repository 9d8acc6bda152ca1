//! The [`Ppp`] engine: phases (RFC 1661 §3), LCP/auth/IPCP/CCP wiring, MPPE data path.

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{Rng as _, SeedableRng as _};

use crate::auth::{AuthResult, ClientAuth, Credential, MppeKeys, ServerAuth};
use crate::ccp::Ccp;
use crate::config::{AuthProto, ClientConfig, Encoding, EncryptionPolicy, ServerConfig};
use crate::error::{Error, Layer, SendError};
use crate::frame::{self, ControlPacket, code, proto};
use crate::fsm::{Fsm, LayerEvent, State, Tx};
use crate::ipcp::Ipcp;
use crate::lcp::Lcp;
use crate::mppe::{MppeError, MppeRx, MppeTx};

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

    // ----- input dispatch -----

    fn handle_lcp(&mut self, now: Instant, info: &[u8]) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Lcp)?;
        if self.phase == Phase::Terminate {
            // Only the terminate exchange matters now.
            if matches!(pkt.code, code::TERM_REQ | code::TERM_ACK) {
                let ev = self
                    .lcp_fsm
                    .handle_packet(now, &pkt, &mut self.lcp, &mut self.tx)?;
                self.on_lcp_event(now, ev, pkt.code);
            }
            return Ok(());
        }
        match pkt.code {
            1..=7 => {
                let ev = self
                    .lcp_fsm
                    .handle_packet(now, &pkt, &mut self.lcp, &mut self.tx)?;
                self.on_lcp_event(now, ev, pkt.code);
                Ok(())
            }
            code::PROTO_REJ => {
                if !self.lcp_fsm.is_opened() {
                    return Err(Error::unexpected(
                        Layer::Lcp,
                        "Protocol-Reject before Opened",
                    ));
                }
                let rejected = pkt
                    .data
                    .first_chunk::<2>()
                    .map(|b| u16::from_be_bytes(*b))
                    .ok_or(Error::malformed(Layer::Lcp, "short Protocol-Reject"))?;
                match rejected {
                    proto::CCP => {
                        let ev = self.ccp_fsm.finish();
                        self.on_ccp_event(now, ev);
                    }
                    proto::IPCP => self.close_link(
                        now,
                        DownReason::NegotiationFailed("peer rejected IPCP".to_owned()),
                    ),
                    proto::COMP if self.mppe_tx.is_some() => self.close_link(
                        now,
                        DownReason::NegotiationFailed("peer rejected MPPE data".to_owned()),
                    ),
                    _ => {}
                }
                Ok(())
            }
            code::ECHO_REQ => {
                if !self.lcp_fsm.is_opened() {
                    return Ok(());
                }
                let magic = pkt
                    .data
                    .first_chunk::<4>()
                    .map(|b| u32::from_be_bytes(*b))
                    .ok_or(Error::malformed(Layer::Lcp, "short Echo-Request"))?;
                if magic == self.lcp.magic && magic != 0 {
                    return Err(Error::unexpected(
                        Layer::Lcp,
                        "Echo-Request with our magic (loop)",
                    ));
                }
                let max = usize::from(self.lcp.peer_mru).saturating_sub(4);
                let mut data = Vec::with_capacity(pkt.data.len().min(max));
                data.extend_from_slice(&self.lcp.magic.to_be_bytes());
                let rest = pkt.data.get(4..).unwrap_or_default();
                data.extend_from_slice(
                    rest.get(..rest.len().min(max.saturating_sub(4)))
                        .unwrap_or_default(),
                );
                self.tx.control(proto::LCP, code::ECHO_REPLY, pkt.id, &data);
                Ok(())
            }
            code::ECHO_REPLY | code::DISCARD_REQ | code::IDENTIFICATION | code::TIME_REMAINING => {
                Ok(())
            }
            _ => {
                self.code_reject(proto::LCP, info);
                Err(Error::unexpected(Layer::Lcp, "unknown code"))
            }
        }
    }

    fn code_reject(&mut self, protocol: u16, info: &[u8]) {
        let max = usize::from(self.lcp.peer_mru).saturating_sub(4);
        let rejected = info.get(..info.len().min(max)).unwrap_or_default();
        let id = self.next_aux_id();
        self.tx.control(protocol, code::CODE_REJ, id, rejected);
    }

    fn protocol_reject(&mut self, now: Instant, protocol: u16, info: &[u8]) {
        if !self.lcp_fsm.is_opened() || self.phase == Phase::Terminate {
            return;
        }
        if now.saturating_duration_since(self.prej_window) >= Duration::from_secs(1) {
            self.prej_window = now;
            self.prej_count = 0;
        }
        if self.prej_count >= PROTO_REJ_PER_SEC {
            return;
        }
        self.prej_count += 1;
        let max = usize::from(self.lcp.peer_mru).saturating_sub(6);
        let mut data = Vec::with_capacity(2 + info.len().min(max));
        data.extend_from_slice(&protocol.to_be_bytes());
        data.extend_from_slice(info.get(..info.len().min(max)).unwrap_or_default());
        let id = self.next_aux_id();
        self.tx.control(proto::LCP, code::PROTO_REJ, id, &data);
    }

    fn handle_auth(&mut self, now: Instant, protocol: u16, info: &[u8]) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Auth)?;
        if self.phase != Phase::Authenticate
            && self.phase != Phase::Network
            && self.phase != Phase::Running
        {
            return Err(Error::unexpected(
                Layer::Auth,
                "authentication packet outside its phase",
            ));
        }
        let r = if let Some(a) = &mut self.server_auth {
            a.handle_packet(protocol, &pkt, &mut self.tx)?
        } else if let Some(a) = &mut self.client_auth {
            a.handle_packet(now, protocol, &pkt, &mut self.rng, &mut self.tx)?
        } else {
            return Err(Error::unexpected(
                Layer::Auth,
                "no authentication was negotiated",
            ));
        };
        self.on_auth_result(now, r);
        Ok(())
    }

    fn in_network(&self) -> bool {
        matches!(self.phase, Phase::Network | Phase::Running)
    }

    fn handle_ipcp(&mut self, now: Instant, info: &[u8]) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Ipcp)?;
        if !self.in_network() {
            return Ok(()); // RFC 1661 §3.4: NCP packets before the Network phase are discarded
        }
        if !(1..=7).contains(&pkt.code) {
            self.code_reject(proto::IPCP, info);
            return Err(Error::unexpected(Layer::Ipcp, "unknown code"));
        }
        self.open_deferred_ipcp(now);
        let ev = self
            .ipcp_fsm
            .handle_packet(now, &pkt, &mut self.ipcp, &mut self.tx)?;
        self.on_ipcp_event(now, ev);
        Ok(())
    }

    fn handle_ccp(&mut self, now: Instant, info: &[u8]) -> Result<(), Error> {
        let pkt = ControlPacket::parse(info, Layer::Ccp)?;
        if !self.in_network() {
            return Ok(());
        }
        if self.ccp_mode == CcpMode::Disabled {
            self.protocol_reject(now, proto::CCP, info);
            return Ok(());
        }
        match pkt.code {
            1..=7 => {
                let ev = self
                    .ccp_fsm
                    .handle_packet(now, &pkt, &mut self.ccp, &mut self.tx)?;
                self.on_ccp_event(now, ev);
                Ok(())
            }
            code::RESET_REQ => {
                if let Some(tx) = &mut self.mppe_tx {
                    // RFC 1962 §2: acknowledge, then flush; the Reset-Ack is queued ahead of
                    // any later data packet (Linux decrypts nothing until it has it).
                    tx.reset_requested();
                    self.resets.received += 1;
                    self.tx.control(proto::CCP, code::RESET_ACK, pkt.id, &[]);
                }
                Ok(())
            }
            code::RESET_ACK => Ok(()),
            _ => {
                self.code_reject(proto::CCP, info);
                Err(Error::unexpected(Layer::Ccp, "unknown code"))
            }
        }
    }

    fn handle_mppe<'a>(
        &mut self,
        now: Instant,
        info: &'a mut [u8],
    ) -> Result<Option<&'a [u8]>, Error> {
        let Some(rx) = self.mppe_rx.as_mut() else {
            return Err(Error::unexpected(
                Layer::Mppe,
                "MPPE data without CCP Opened",
            ));
        };
        match rx.decrypt(info) {
            Ok(d) => {
                if self.up && d.protocol == proto::IPV4 {
                    Ok(Some(d.data))
                } else {
                    Ok(None)
                }
            }
            Err(e) => {
                let send_reset = match e {
                    MppeError::Lost { .. } => true,
                    MppeError::Discarding => self
                        .last_reset_req
                        .is_none_or(|t| now.saturating_duration_since(t) >= RESET_REQ_INTERVAL),
                    _ => false,
                };
                if send_reset {
                    self.last_reset_req = Some(now);
                    self.resets.sent += 1;
                    let id = self.next_aux_id();
                    self.tx.control(proto::CCP, code::RESET_REQ, id, &[]);
                }
                Err(e.into())
            }
        }
    }

    // ----- layer events -----

    fn on_lcp_event(&mut self, now: Instant, ev: Option<LayerEvent>, pkt_code: u8) {
        let Some(ev) = ev else { return };
        match ev {
            LayerEvent::Up => {
                if self.phase == Phase::Establish {
                    self.on_lcp_up(now);
                }
            }
            LayerEvent::Down => {
                if pkt_code == code::TERM_REQ {
                    let reason = if self.phase == Phase::Authenticate && self.auth_failures > 0 {
                        DownReason::AuthFailed
                    } else {
                        DownReason::PeerTerminated
                    };
                    self.go_dead(reason);
                } else {
                    self.close_link(
                        now,
                        DownReason::NegotiationFailed("LCP renegotiation".to_owned()),
                    );
                }
            }
            LayerEvent::Finished(why) => {
                let reason = self
                    .down_reason
                    .take()
                    .unwrap_or_else(|| DownReason::NegotiationFailed(format!("LCP: {why}")));
                self.go_dead(reason);
            }
        }
    }

    fn on_lcp_up(&mut self, now: Instant) {
        self.phase = Phase::Authenticate;
        self.next_echo = None;
        let method = self.lcp.agreed_auth;
        self.auth_method = method;
        let Some(method) = method else {
            self.enter_network(now);
            return;
        };
        match &self.role {
            Role::Server(c) => {
                self.server_auth = Some(ServerAuth::start(
                    now,
                    method,
                    &c.name,
                    c.max_auth_attempts,
                    c.auth_timeout,
                    &mut self.rng,
                    &mut self.tx,
                ));
            }
            Role::Client(c) => {
                self.client_auth = Some(ClientAuth::start(
                    now,
                    method,
                    &c.username,
                    &c.password,
                    &mut self.rng,
                    &mut self.tx,
                ));
            }
        }
    }

    fn on_auth_result(&mut self, now: Instant, r: Option<AuthResult>) {
        let Some(r) = r else { return };
        let method = self.auth_method.unwrap_or(AuthProto::Pap);
        match r {
            AuthResult::NeedSecret { username } => {
                self.username = Some(username.clone());
                self.emit(Event::AuthRequest { username, method });
            }
            AuthResult::Success { username, keys } => {
                if self.phase != Phase::Authenticate {
                    return;
                }
                self.keys = keys;
                self.username = Some(username.clone());
                self.emit(Event::Authenticated { username, method });
                self.enter_network(now);
            }
            AuthResult::Failure {
                username,
                reason,
                fatal,
            } => {
                let timeout = reason == "authentication timeout";
                self.auth_failures = self.auth_failures.saturating_add(1);
                self.emit(Event::AuthFailed {
                    username,
                    method,
                    reason,
                });
                if fatal {
                    self.close_link(
                        now,
                        if timeout {
                            DownReason::AuthTimeout
                        } else {
                            DownReason::AuthFailed
                        },
                    );
                }
            }
        }
    }

    fn enter_network(&mut self, now: Instant) {
        self.phase = Phase::Network;
        self.ccp_mode = match (self.policy, self.keys.is_some()) {
            (EncryptionPolicy::Deny, _) => CcpMode::Disabled,
            (EncryptionPolicy::Require, false) => {
                self.close_link(now, DownReason::EncryptionRequired);
                return;
            }
            (_, false) => CcpMode::Disabled,
            (EncryptionPolicy::Allow, true) => CcpMode::Passive,
            (EncryptionPolicy::Prefer | EncryptionPolicy::Require, true) => CcpMode::Active,
        };
        if self.ccp_mode == CcpMode::Active && self.policy == EncryptionPolicy::Require {
            self.ipcp_deferred = true;
        } else {
            self.ipcp_fsm.open(now, &mut self.ipcp, &mut self.tx);
        }
        if self.ccp_mode == CcpMode::Active {
            self.ccp_fsm.open(now, &mut self.ccp, &mut self.tx);
        }
    }

    /// Opens a deferred IPCP: once CCP is up, or as soon as the peer starts IPCP itself.
    fn open_deferred_ipcp(&mut self, now: Instant) {
        if std::mem::take(&mut self.ipcp_deferred) {
            self.ipcp_fsm.open(now, &mut self.ipcp, &mut self.tx);
        }
    }

    fn on_ipcp_event(&mut self, now: Instant, ev: Option<LayerEvent>) {
        match ev {
            None => {}
            Some(LayerEvent::Up) => self.check_up(now),
            Some(LayerEvent::Down) => self.close_link(
                now,
                DownReason::NegotiationFailed("IPCP went down".to_owned()),
            ),
            Some(LayerEvent::Finished(why)) => {
                // close_link ignores calls while terminating or dead.
                self.close_link(now, DownReason::NegotiationFailed(format!("IPCP: {why}")));
            }
        }
    }

    fn on_ccp_event(&mut self, now: Instant, ev: Option<LayerEvent>) {
        match ev {
            None => {}
            Some(LayerEvent::Up) => {
                let (Some(choice), Some(keys)) = (self.ccp.agreed(), self.keys) else {
                    self.close_link(
                        now,
                        DownReason::NegotiationFailed(
                            "MPPE options differ per direction".to_owned(),
                        ),
                    );
                    return;
                };
                let stateful = !choice.stateless;
                self.mppe_tx = Some(MppeTx::new(keys.send, choice.bits, stateful));
                self.mppe_rx = Some(MppeRx::new(keys.recv, choice.bits, stateful));
                self.encoding = Encoding::Mppe {
                    bits: choice.bits.bits(),
                    stateful,
                };
                self.open_deferred_ipcp(now);
                self.check_up(now);
            }
            Some(LayerEvent::Down) => self.close_link(
                now,
                DownReason::NegotiationFailed("CCP went down".to_owned()),
            ),
            Some(LayerEvent::Finished(_)) => {
                if self.phase == Phase::Terminate || self.phase == Phase::Dead {
                    return;
                }
                self.ccp_failed = true;
                if self.policy == EncryptionPolicy::Require {
                    self.close_link(now, DownReason::EncryptionRequired);
                } else {
                    self.check_up(now);
                }
            }
        }
    }

    /// Emits `Up` once IPCP is Opened and CCP is settled.
    fn check_up(&mut self, now: Instant) {
        if self.up || self.phase != Phase::Network || !self.ipcp_fsm.is_opened() {
            return;
        }
        let ccp_settled = match self.ccp_mode {
            CcpMode::Disabled => true,
            CcpMode::Passive => {
                self.ccp_fsm.is_opened()
                    || self.ccp_failed
                    || self.ccp_fsm.state() == State::Stopped
            }
            CcpMode::Active => self.ccp_fsm.is_opened() || self.ccp_failed,
        };
        if !ccp_settled {
            return;
        }
        if self.policy == EncryptionPolicy::Require && self.mppe_tx.is_none() {
            self.close_link(now, DownReason::EncryptionRequired);
            return;
        }
        self.up = true;
        self.phase = Phase::Running;
        let (local, peer, dns) = (
            self.ipcp.local(),
            self.ipcp.remote().unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.ipcp.dns(),
        );
        self.emit(Event::Up {
            local,
            peer,
            dns,
            encoding: self.encoding,
        });
    }

    /// Starts an orderly LCP termination; `Down(reason)` follows when it completes.
    fn close_link(&mut self, now: Instant, reason: DownReason) {
        if matches!(self.phase, Phase::Terminate | Phase::Dead) {
            return;
        }
        self.up = false;
        self.phase = Phase::Terminate;
        self.ipcp_fsm.kill();
        self.ccp_fsm.kill();
        self.server_auth = None;
        self.client_auth = None;
        self.down_reason = Some(reason);
        let _ = self.lcp_fsm.close(now, &mut self.tx);
        if self.lcp_fsm.state() != State::Closing {
            let reason = self
                .down_reason
                .take()
                .unwrap_or(DownReason::LocalClose(String::new()));
            self.go_dead(reason);
        }
    }

    fn go_dead(&mut self, reason: DownReason) {
        if self.phase == Phase::Dead {
            return;
        }
        self.up = false;
        self.phase = Phase::Dead;
        self.lcp_fsm.kill();
        self.ipcp_fsm.kill();
        self.ccp_fsm.kill();
        self.server_auth = None;
        self.client_auth = None;
        self.mppe_tx = None;
        self.mppe_rx = None;
        self.down_reason = None;
        self.emit(Event::Down { reason });
    }

    // ----- keepalive -----

    fn keepalive_deadline(&self) -> Option<Instant> {
        let k = self.keepalive?;
        if !self.lcp_fsm.is_opened() || self.phase == Phase::Terminate {
            return None;
        }
        let first = self.last_rx + k;
        let dead = self.last_rx + k * 2;
        match self.next_echo {
            Some(e) if e >= first => Some(e.min(dead)),
            _ => Some(first),
        }
    }

    fn keepalive_tick(&mut self, now: Instant) {
        let Some(k) = self.keepalive else { return };
        if !self.lcp_fsm.is_opened() || self.phase == Phase::Terminate || self.phase == Phase::Dead
        {
            return;
        }
        let silence = now.saturating_duration_since(self.last_rx);
        if silence >= k * 2 {
            // Best-effort Terminate-Request, then down at once.
            let id = self.next_aux_id();
            self.tx.control(proto::LCP, code::TERM_REQ, id, &[]);
            self.go_dead(DownReason::KeepaliveTimeout);
            return;
        }
        if silence >= k
            && self
                .next_echo
                .is_none_or(|e| now >= e || e < self.last_rx + k)
        {
            let id = self.next_aux_id();
            self.tx.control(
                proto::LCP,
                code::ECHO_REQ,
                id,
                &self.lcp.magic.to_be_bytes(),
            );
            self.next_echo = Some(now + ECHO_INTERVAL);
        }
    }
}

fn random32(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut s = [0u8; 32];
    rng.fill_bytes(&mut s);
    s
}
