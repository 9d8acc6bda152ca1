//! One tunnel: control connection FSM (RFC 2661 §7.2) and its incoming-call sessions
//! (§7.4.1 LAC, §7.4.2 LNS), on top of a [`ControlChannel`].
//!
//! Policies (see also the [`crate::endpoint`] docs):
//! - Message errors (§4.1, §7.1): an unrecognised or malformed AVP with M=1, an undecodable
//!   hidden AVP with M=1 or a missing required AVP in a session-scoped message (ICRQ, ICRP,
//!   ICCN, CDN, OCRQ, OCRP, OCCN, WEN, SLI) ends that session with CDN (General error, Error
//!   Code 8 for unknown AVPs, 2 for length errors, 3 otherwise); in any other message it ends the
//!   tunnel with StopCCN (same codes). Unknown message types with M=0 are ignored; with M=1 the
//!   tunnel is cleared. A malformed StopCCN still stops the tunnel; a malformed CDN still ends
//!   its session when it can be identified.
//! - Messages in the wrong state (e.g. SCCCN when established) end the tunnel with StopCCN
//!   result 7 (FSM error). Session messages for unknown sessions are ignored (no replies to
//!   stray messages).
//! - Receive Window Size 0 is invalid (§5.8): StopCCN General error / Error Code 3.
//! - Only protocol version 1.0 is accepted; otherwise StopCCN result 5 with Error Code 0x0100
//!   (the highest version supported, Ver in the high octet).
//! - Tunnel authentication (§5.1.1): with a secret configured we always send a Challenge
//!   (SCCRQ as LAC, SCCRP as LNS) and require the matching Challenge Response; a Challenge
//!   received without a secret configured, a missing or wrong response → StopCCN result 4.
//! - Outgoing calls are not supported: OCRQ → CDN result 5 (permanent lack of facilities).
//!   A LAC does not accept ICRQ (CDN result 5).
//! - StopCCN received: acknowledged, all sessions and the tunnel reported down at once, state
//!   kept for one full retransmission cycle to re-acknowledge retransmissions (§5.7).
//!   StopCCN sent: unsent messages are dropped, in-flight ones keep being retransmitted, and the
//!   tunnel ends when everything is acknowledged or the retransmission budget runs out.
//! - HELLO (§5.5, §6.5) after `hello_interval` (`None` disables) without any received control
//!   message or noted data activity, when nothing is outstanding; an unacknowledged message after the retry budget clears the
//!   tunnel without StopCCN (the peer is unreachable).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use rand_chacha::rand_core::Rng as _;

use crate::auth::CHALLENGE_LEN;
use crate::channel::ControlChannel;
use crate::endpoint::{Ctx, Event, Transmit, TransmitQueue, TunnelState};
use crate::message::{
    Avps, CdnResult, ControlMessage, ErrorCode, FRAMING_ASYNC, FRAMING_SYNC, Hiding, MessageType,
    PROTOCOL_VERSION, ResultCode, StopCcnResult,
};
use crate::session::{PendingCall, Session};

mod input;
mod sessions;
mod setup;
mod timers;

/// One tunnel and its sessions.
#[derive(Debug)]
pub(crate) struct Tunnel {
    pub local_id: u16,
    pub peer_id: u16,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub originator: bool,
    pub state: TunnelState,
    pub channel: ControlChannel,
    pub peer_hostname: String,
    pub peer_vendor: String,
    pub tie_breaker: Option<[u8; 8]>,
    pub sessions: BTreeMap<u16, Session>,
    /// Peer Session ID → local Session ID, for sessions whose peer id is known.
    by_peer_session: BTreeMap<u16, u16>,
    /// LNS: ICRQs awaiting accept/reject, by peer Session ID.
    pub pending: BTreeMap<u16, PendingCall>,
    our_challenge: Option<[u8; CHALLENGE_LEN]>,
    setup_deadline: Option<Instant>,
    last_rx: Instant,
    /// The application knows this tunnel (LAC `connect`, or `TunnelUp` emitted).
    announced: bool,
    /// Sessions and tunnel reported down.
    down: bool,
    drain_until: Option<Instant>,
    pub finished: bool,
    session_deadline: Option<Instant>,
}

fn deadline(now: Instant, d: std::time::Duration) -> Option<Instant> {
    now.checked_add(d)
}

fn hide_all(_: u16) -> bool {
    true
}

impl Tunnel {
    fn blank(ctx: &Ctx<'_>, local_id: u16, local: SocketAddr, remote: SocketAddr) -> Self {
        Self {
            local_id,
            peer_id: 0,
            local,
            remote,
            originator: false,
            state: TunnelState::Idle,
            channel: ControlChannel::new(ctx.cfg.channel_config()),
            peer_hostname: String::new(),
            peer_vendor: String::new(),
            tie_breaker: None,
            sessions: BTreeMap::new(),
            by_peer_session: BTreeMap::new(),
            pending: BTreeMap::new(),
            our_challenge: None,
            setup_deadline: deadline(ctx.now, ctx.cfg.setup_timeout),
            last_rx: ctx.now,
            announced: false,
            down: false,
            drain_until: None,
            finished: false,
            session_deadline: None,
        }
    }

    /// Recipient side: waits for the SCCRQ that created it (§7.2.1 idle).
    pub fn new_responder(
        ctx: &Ctx<'_>,
        local_id: u16,
        local: SocketAddr,
        remote: SocketAddr,
        peer_id: u16,
    ) -> Self {
        let mut t = Self::blank(ctx, local_id, local, remote);
        t.peer_id = peer_id;
        t
    }

    /// Originator side: queues SCCRQ (§7.2.1 idle → wait-ctl-reply).
    pub fn new_originator(
        ctx: &mut Ctx<'_>,
        local_id: u16,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Self {
        let mut t = Self::blank(ctx, local_id, local, remote);
        t.originator = true;
        t.announced = true;
        t.state = TunnelState::WaitCtlReply;
        let mut avps = t.start_avps(ctx);
        if ctx.cfg.secret.is_some() {
            let mut ch = [0u8; CHALLENGE_LEN];
            ctx.rng.fill_bytes(&mut ch);
            t.our_challenge = Some(ch);
            avps.challenge = Some(ch.to_vec());
        }
        if ctx.cfg.send_tie_breaker {
            let mut tb = [0u8; 8];
            ctx.rng.fill_bytes(&mut tb);
            t.tie_breaker = Some(tb);
            avps.tie_breaker = Some(tb);
        }
        t.send(ctx, 0, MessageType::Sccrq, avps);
        t
    }

    /// AVPs common to SCCRQ and SCCRP (§6.1, §6.2). Bearer Capabilities are not sent: we place
    /// no outgoing calls (§4.4.3).
    fn start_avps(&self, ctx: &Ctx<'_>) -> Avps {
        Avps {
            protocol_version: Some(PROTOCOL_VERSION),
            host_name: Some(if ctx.cfg.hostname.is_empty() {
                "sluice".into()
            } else {
                ctx.cfg.hostname.clone()
            }),
            framing_capabilities: Some(FRAMING_SYNC | FRAMING_ASYNC),
            assigned_tunnel_id: Some(self.local_id),
            receive_window_size: Some(ctx.cfg.recv_window.max(1)),
            firmware_revision: Some(ctx.cfg.firmware_revision),
            vendor_name: Some(ctx.cfg.vendor.clone()),
            ..Avps::default()
        }
    }

    pub fn is_established(&self) -> bool {
        self.state == TunnelState::Established
    }

    /// Whether the tunnel is still being set up (counts against `max_pending_tunnels`).
    pub fn in_setup(&self) -> bool {
        matches!(
            self.state,
            TunnelState::Idle | TunnelState::WaitCtlReply | TunnelState::WaitCtlConn
        )
    }

    // ---- output ----

    fn send(&mut self, ctx: &mut Ctx<'_>, session_id: u16, message_type: MessageType, avps: Avps) {
        let msg = ControlMessage { message_type, avps };
        let mut rv = [0u8; 16];
        let hiding = match &ctx.cfg.secret {
            Some(secret) if ctx.cfg.hide_avps => {
                ctx.rng.fill_bytes(&mut rv);
                Some(Hiding {
                    secret,
                    random_vector: &rv,
                    hide: hide_all,
                })
            }
            _ => None,
        };
        let datagram = msg.to_datagram(self.peer_id, session_id, 0, 0, hiding.as_ref());
        if self.channel.send(datagram).is_err() && message_type != MessageType::StopCcn {
            self.stop(
                ctx,
                StopCcnResult::GeneralError,
                Some(ErrorCode::NoResources),
                "control message queue overflow",
                "control message queue overflow (peer does not acknowledge)".into(),
            );
        }
    }

    fn send_cdn(
        &mut self,
        ctx: &mut Ctx<'_>,
        header_session: u16,
        assigned: u16,
        result: CdnResult,
        error: Option<ErrorCode>,
        message: &str,
    ) {
        let avps = Avps {
            result_code: Some(ResultCode {
                result: result.into(),
                error: error.map(u16::from),
                message: message.into(),
            }),
            assigned_session_id: Some(assigned),
            ..Avps::default()
        };
        self.send(ctx, header_session, MessageType::Cdn, avps);
    }

    /// Moves due datagrams to the endpoint's transmit queue.
    pub fn flush(&mut self, now: Instant, out: &mut TransmitQueue) {
        while let Some(payload) = self.channel.poll_transmit(now, self.peer_id) {
            out.push(Transmit {
                local: self.local,
                remote: self.remote,
                payload,
            });
        }
    }

    // ---- teardown ----

    /// Reports every session and (if known to the application) the tunnel down, once.
    fn teardown(&mut self, ctx: &mut Ctx<'_>, reason: String) {
        if self.down {
            return;
        }
        self.down = true;
        for local in self.sessions.keys() {
            ctx.events.push(Event::SessionDown {
                tunnel: self.local_id,
                local_session: *local,
                reason: format!("tunnel down: {reason}"),
            });
        }
        for peer in self.pending.keys() {
            ctx.events.push(Event::SessionRequestCancelled {
                tunnel: self.local_id,
                peer_session: *peer,
                reason: format!("tunnel down: {reason}"),
            });
        }
        self.sessions.clear();
        self.pending.clear();
        self.by_peer_session.clear();
        if self.announced {
            ctx.events.push(Event::TunnelDown {
                tunnel: self.local_id,
                reason,
            });
        }
    }

    /// Sends StopCCN and closes (§5.7, §7.2.1). `reason` goes into the events.
    pub fn stop(
        &mut self,
        ctx: &mut Ctx<'_>,
        result: StopCcnResult,
        error: Option<ErrorCode>,
        message: &str,
        reason: String,
    ) {
        if matches!(self.state, TunnelState::Closing | TunnelState::Draining) || self.finished {
            return;
        }
        self.teardown(ctx, reason);
        self.channel.drop_unsent();
        self.state = TunnelState::Closing;
        let avps = Avps {
            result_code: Some(ResultCode {
                result: result.into(),
                error: error.map(u16::from),
                message: message.into(),
            }),
            assigned_tunnel_id: Some(self.local_id),
            ..Avps::default()
        };
        self.send(ctx, 0, MessageType::StopCcn, avps);
    }

    /// Silently discards the tunnel (tie breaker lost, §4.4.3).
    pub fn discard(&mut self, ctx: &mut Ctx<'_>, reason: String) {
        self.teardown(ctx, reason);
        self.channel.abandon();
        self.finished = true;
    }

    fn on_stopccn(&mut self, ctx: &mut Ctx<'_>, result: Option<&ResultCode>) {
        let why = result.map_or_else(
            || "malformed StopCCN".to_string(),
            |r| r.describe(MessageType::StopCcn),
        );
        self.teardown(ctx, format!("peer sent StopCCN: {why}"));
        self.channel.abandon();
        self.state = TunnelState::Draining;
        self.drain_until = deadline(ctx.now, ctx.cfg.channel_config().retransmit_cycle());
    }
}
