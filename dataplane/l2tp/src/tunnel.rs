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

use crate::auth::{CHALLENGE_LEN, challenge_response, verify_response};
use crate::channel::{ControlChannel, DEFAULT_PEER_WINDOW, RxVerdict};
use crate::endpoint::{Ctx, Event, Role, SessionState, Transmit, TransmitQueue, TunnelState};
use crate::error::{Error, ParseError};
use crate::header::Packet;
use crate::message::{
    Avps, CdnResult, ControlMessage, ErrorCode, FRAMING_ASYNC, FRAMING_SYNC, Hiding, MessageError,
    MessageType, PROTOCOL_VERSION, ResultCode, StopCcnResult,
};
use crate::session::{PendingCall, Session};

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

fn passed(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| now >= t)
}

/// The HELLO interval in effect: `None` (or zero) disables HELLO.
fn hello_interval(cfg: Option<std::time::Duration>) -> Option<std::time::Duration> {
    cfg.filter(|d| !d.is_zero())
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

    // ---- input ----

    /// A control datagram (header already checked, Tunnel ID ours) from the peer.
    pub fn handle_datagram(&mut self, ctx: &mut Ctx<'_>, datagram: &[u8]) {
        if self.finished {
            return;
        }
        let Ok(packet) = Packet::new_checked(datagram) else {
            return;
        };
        let Some((ns, nr)) = packet.sequence() else {
            return;
        };
        self.last_rx = ctx.now;
        let zlb = packet.payload().is_empty();
        if self.channel.on_receive(ctx.now, ns, nr, zlb, datagram) == RxVerdict::Deliver {
            self.process(ctx, packet.session_id(), packet.payload());
            while let Some(next) = self.channel.pop_ready(ctx.now) {
                if let Ok(p) = Packet::new_checked(next.as_slice()) {
                    self.process(ctx, p.session_id(), p.payload());
                }
            }
        }
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, sid: u16, body: &[u8]) {
        if matches!(self.state, TunnelState::Draining) || self.finished {
            return;
        }
        let secret = ctx.cfg.secret.as_deref();
        match ControlMessage::parse(body, secret) {
            Ok(msg) => self.dispatch(ctx, sid, msg),
            Err(e) => self.on_bad_message(ctx, sid, e),
        }
    }

    fn on_bad_message(&mut self, ctx: &mut Ctx<'_>, sid: u16, e: MessageError) {
        if let ParseError::UnknownMessageType {
            mandatory: false, ..
        } = e.error
        {
            return;
        }
        if self.state == TunnelState::Closing {
            if e.message_type == Some(MessageType::StopCcn) {
                self.on_stopccn(ctx, None);
            }
            return;
        }
        let code = ErrorCode::for_parse_error(&e.error);
        let text = e.to_string();
        match e.message_type {
            Some(MessageType::StopCcn) => self.on_stopccn(ctx, None),
            Some(t) if t.is_session_scoped() && self.is_established() => {
                self.session_message_error(ctx, t, sid, e.assigned_session_id, code, &text);
            }
            _ => self.stop(
                ctx,
                StopCcnResult::GeneralError,
                Some(code),
                &text,
                format!("sent StopCCN: {text}"),
            ),
        }
    }

    /// A malformed session message: CDN for the session it names, if any.
    fn session_message_error(
        &mut self,
        ctx: &mut Ctx<'_>,
        t: MessageType,
        sid: u16,
        assigned: Option<u16>,
        code: ErrorCode,
        text: &str,
    ) {
        if let Some(local) = self.find_session(sid, assigned) {
            if t == MessageType::Cdn {
                self.remove_session(ctx, local, format!("peer sent malformed CDN: {text}"));
            } else {
                self.fail_session(ctx, local, CdnResult::GeneralError, Some(code), text);
            }
            return;
        }
        let Some(peer) = assigned.filter(|p| *p != 0) else {
            return;
        };
        if self.pending.remove(&peer).is_some() {
            ctx.events.push(Event::SessionRequestCancelled {
                tunnel: self.local_id,
                peer_session: peer,
                reason: format!("malformed {t}: {text}"),
            });
        }
        if t != MessageType::Cdn {
            // A new request (ICRQ/OCRQ) we cannot accept: CDN addressed to the peer's session.
            self.send_cdn(ctx, peer, 0, CdnResult::GeneralError, Some(code), text);
        }
    }

    fn find_session(&self, sid: u16, assigned: Option<u16>) -> Option<u16> {
        if sid != 0 && self.sessions.contains_key(&sid) {
            return Some(sid);
        }
        assigned.and_then(|p| self.by_peer_session.get(&p).copied())
    }

    fn fsm_error(&mut self, ctx: &mut Ctx<'_>, t: MessageType) {
        let text = format!("unexpected {t} in state {}", self.state.name());
        self.stop(
            ctx,
            StopCcnResult::FsmError,
            None,
            &text,
            format!("sent StopCCN: {text}"),
        );
    }

    fn dispatch(&mut self, ctx: &mut Ctx<'_>, sid: u16, msg: ControlMessage) {
        use MessageType::*;
        use TunnelState as S;
        let t = msg.message_type;
        match (self.state, t) {
            (S::Closing, StopCcn) => self.on_stopccn(ctx, msg.avps.result_code.as_ref()),
            (S::Closing | S::Draining, _) | (_, Hello) => {}
            (_, StopCcn) => self.on_stopccn(ctx, msg.avps.result_code.as_ref()),
            (S::Idle, Sccrq) => self.on_sccrq(ctx, msg.avps),
            (S::WaitCtlReply, Sccrp) => self.on_sccrp(ctx, msg.avps),
            (S::WaitCtlConn, Scccn) => self.on_scccn(ctx, msg.avps),
            (S::Established, Icrq) => self.on_icrq(ctx, msg.avps),
            (S::Established, Icrp) => self.on_icrp(ctx, sid, msg.avps),
            (S::Established, Iccn) => self.on_iccn(ctx, sid, msg.avps),
            (S::Established, Cdn) => self.on_cdn(ctx, sid, msg.avps),
            (S::Established, Ocrq) => {
                if let Some(peer) = msg.avps.assigned_session_id.filter(|p| *p != 0) {
                    self.send_cdn(
                        ctx,
                        peer,
                        0,
                        CdnResult::PermanentNoFacilities,
                        None,
                        "outgoing calls are not supported",
                    );
                }
            }
            (S::Established, Ocrp | Occn) => {}
            (S::Established, Wen) => {
                if let (true, Some(errors)) =
                    (self.sessions.contains_key(&sid), msg.avps.call_errors)
                {
                    ctx.events.push_info(Event::WanError {
                        tunnel: self.local_id,
                        local_session: sid,
                        errors,
                    });
                }
            }
            (S::Established, Sli) => {
                if let (true, Some(accm)) = (self.sessions.contains_key(&sid), msg.avps.accm) {
                    ctx.events.push_info(Event::SetLinkInfo {
                        tunnel: self.local_id,
                        local_session: sid,
                        send_accm: accm.send,
                        recv_accm: accm.recv,
                    });
                }
            }
            _ => self.fsm_error(ctx, t),
        }
    }

    /// Checks the parameters SCCRQ and SCCRP share; returns a StopCCN to send on failure.
    fn check_start(
        &mut self,
        ctx: &mut Ctx<'_>,
        t: MessageType,
        a: &Avps,
    ) -> Result<(), (StopCcnResult, Option<ErrorCode>, String)> {
        let peer_id = a.assigned_tunnel_id.unwrap_or(0);
        if peer_id == 0 {
            return Err((
                StopCcnResult::GeneralError,
                Some(ErrorCode::BadValue),
                format!("{t} with Assigned Tunnel ID 0"),
            ));
        }
        self.peer_id = peer_id;
        match a.receive_window_size {
            Some(0) => {
                return Err((
                    StopCcnResult::GeneralError,
                    Some(ErrorCode::BadValue),
                    "Receive Window Size 0 is invalid".into(),
                ));
            }
            Some(w) => self.channel.set_peer_window(w),
            None => self.channel.set_peer_window(DEFAULT_PEER_WINDOW),
        }
        if a.protocol_version != Some(PROTOCOL_VERSION) {
            return Err((
                StopCcnResult::UnsupportedVersion,
                Some(ErrorCode::Other(0x0100)),
                "only L2TP protocol version 1.0 is supported".into(),
            ));
        }
        self.peer_hostname = a.host_name.clone().unwrap_or_default();
        self.peer_vendor = a.vendor_name.clone().unwrap_or_default();
        if a.challenge.is_some() && ctx.cfg.secret.is_none() {
            return Err((
                StopCcnResult::NotAuthorized,
                None,
                "tunnel authentication requested but no secret is configured".into(),
            ));
        }
        Ok(())
    }

    fn reject_start(
        &mut self,
        ctx: &mut Ctx<'_>,
        (result, error, text): (StopCcnResult, Option<ErrorCode>, String),
    ) {
        self.stop(ctx, result, error, &text, format!("sent StopCCN: {text}"));
    }

    fn on_sccrq(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
        if let Err(e) = self.check_start(ctx, MessageType::Sccrq, &a) {
            return self.reject_start(ctx, e);
        }
        let mut avps = self.start_avps(ctx);
        if let (Some(ch), Some(secret)) = (&a.challenge, &ctx.cfg.secret) {
            avps.challenge_response = Some(challenge_response(MessageType::Sccrp, secret, ch));
        }
        if ctx.cfg.secret.is_some() {
            let mut ch = [0u8; CHALLENGE_LEN];
            ctx.rng.fill_bytes(&mut ch);
            self.our_challenge = Some(ch);
            avps.challenge = Some(ch.to_vec());
        }
        self.state = TunnelState::WaitCtlConn;
        self.send(ctx, 0, MessageType::Sccrp, avps);
    }

    fn check_response(&self, ctx: &Ctx<'_>, carrier: MessageType, a: &Avps) -> Result<(), String> {
        let (Some(ch), Some(secret)) = (&self.our_challenge, &ctx.cfg.secret) else {
            return Ok(());
        };
        match &a.challenge_response {
            None => Err(format!("{carrier} lacks the Challenge Response")),
            Some(r) if verify_response(carrier, secret, ch, r) => Ok(()),
            Some(_) => Err("tunnel authentication failed (Challenge Response mismatch)".into()),
        }
    }

    fn on_sccrp(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
        if let Err(e) = self.check_start(ctx, MessageType::Sccrp, &a) {
            return self.reject_start(ctx, e);
        }
        if let Err(text) = self.check_response(ctx, MessageType::Sccrp, &a) {
            return self.reject_start(ctx, (StopCcnResult::NotAuthorized, None, text));
        }
        let mut avps = Avps::default();
        if let (Some(ch), Some(secret)) = (&a.challenge, &ctx.cfg.secret) {
            avps.challenge_response = Some(challenge_response(MessageType::Scccn, secret, ch));
        }
        self.send(ctx, 0, MessageType::Scccn, avps);
        self.established(ctx);
        // Sessions opened before the tunnel was up (§7.4.1 wait-tunnel → wait-reply).
        let waiting: Vec<u16> = self
            .sessions
            .values()
            .filter(|s| s.state == SessionState::WaitTunnel)
            .map(|s| s.local_id)
            .collect();
        for local in waiting {
            self.send_icrq(ctx, local);
        }
    }

    fn on_scccn(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
        if let Err(text) = self.check_response(ctx, MessageType::Scccn, &a) {
            return self.reject_start(ctx, (StopCcnResult::NotAuthorized, None, text));
        }
        self.established(ctx);
    }

    fn established(&mut self, ctx: &mut Ctx<'_>) {
        self.state = TunnelState::Established;
        self.setup_deadline = None;
        self.announced = true;
        ctx.events.push(Event::TunnelUp {
            tunnel: self.local_id,
            peer_tunnel: self.peer_id,
            remote: self.remote,
            local: self.local,
            peer_hostname: self.peer_hostname.clone(),
            peer_vendor: self.peer_vendor.clone(),
        });
    }

    // ---- sessions ----

    fn remove_session(&mut self, ctx: &mut Ctx<'_>, local: u16, reason: String) {
        if let Some(s) = self.sessions.remove(&local) {
            if s.peer_id != 0 {
                self.by_peer_session.remove(&s.peer_id);
            }
            ctx.events.push(Event::SessionDown {
                tunnel: self.local_id,
                local_session: local,
                reason,
            });
        }
    }

    /// Ends a session because of a protocol problem: CDN, then `SessionDown`.
    fn fail_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        local: u16,
        result: CdnResult,
        error: Option<ErrorCode>,
        text: &str,
    ) {
        let Some(s) = self.sessions.get(&local) else {
            return;
        };
        let (peer, knows) = (s.peer_id, s.state != SessionState::WaitTunnel);
        if knows {
            self.send_cdn(ctx, peer, local, result, error, text);
        }
        self.remove_session(ctx, local, format!("sent CDN: {text}"));
    }

    fn on_icrq(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
        let Some(peer) = a.assigned_session_id.filter(|p| *p != 0) else {
            return;
        };
        if ctx.cfg.role == Role::Lac {
            return self.send_cdn(
                ctx,
                peer,
                0,
                CdnResult::PermanentNoFacilities,
                None,
                "this LAC does not accept incoming calls",
            );
        }
        if let Some(local) = self.by_peer_session.get(&peer).copied() {
            return self.fail_session(
                ctx,
                local,
                CdnResult::GeneralError,
                Some(ErrorCode::BadValue),
                "ICRQ for an existing session",
            );
        }
        if self.pending.remove(&peer).is_some() {
            ctx.events.push(Event::SessionRequestCancelled {
                tunnel: self.local_id,
                peer_session: peer,
                reason: "peer repeated ICRQ for a pending session".into(),
            });
            return self.send_cdn(
                ctx,
                peer,
                0,
                CdnResult::GeneralError,
                Some(ErrorCode::BadValue),
                "ICRQ for an existing session",
            );
        }
        if self.sessions.len() + self.pending.len() >= ctx.cfg.max_sessions_per_tunnel {
            return self.send_cdn(
                ctx,
                peer,
                0,
                CdnResult::TemporaryNoFacilities,
                Some(ErrorCode::NoResources),
                "session limit reached",
            );
        }
        if self.pending.len() >= ctx.cfg.max_pending_sessions {
            return self.send_cdn(
                ctx,
                peer,
                0,
                CdnResult::TemporaryNoFacilities,
                Some(ErrorCode::NoResources),
                "too many sessions awaiting a decision",
            );
        }
        let serial = a.call_serial_number.unwrap_or(0);
        self.pending.insert(
            peer,
            PendingCall {
                serial,
                deadline: deadline(ctx.now, ctx.cfg.setup_timeout),
            },
        );
        ctx.events.push(Event::SessionRequested {
            tunnel: self.local_id,
            peer_session: peer,
            serial,
            remote: self.remote,
            calling_number: a.calling_number.unwrap_or_default(),
            called_number: a.called_number.unwrap_or_default(),
            sub_address: a.sub_address.unwrap_or_default(),
            bearer_type: a.bearer_type,
            physical_channel_id: a.physical_channel_id,
        });
    }

    fn on_iccn(&mut self, ctx: &mut Ctx<'_>, sid: u16, a: Avps) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.state != SessionState::WaitConnect {
            return self.fail_session(
                ctx,
                sid,
                CdnResult::GeneralError,
                Some(ErrorCode::BadValue),
                "unexpected ICCN",
            );
        }
        s.state = SessionState::Established;
        s.deadline = None;
        s.sequencing = a.sequencing_required;
        s.tx_connect_speed = a.tx_connect_speed.unwrap_or(0);
        let ev = Event::SessionUp {
            tunnel: self.local_id,
            local_session: sid,
            peer_tunnel: self.peer_id,
            peer_session: s.peer_id,
            remote: self.remote,
            local: self.local,
            sequencing: s.sequencing,
            tx_connect_speed: s.tx_connect_speed,
            rx_connect_speed: a.rx_connect_speed,
            framing_type: a.framing_type.unwrap_or(0),
            private_group_id: a.private_group_id,
        };
        ctx.events.push(ev);
    }

    fn on_icrp(&mut self, ctx: &mut Ctx<'_>, sid: u16, a: Avps) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let peer = a.assigned_session_id.unwrap_or(0);
        if s.state != SessionState::WaitReply || peer == 0 {
            return self.fail_session(
                ctx,
                sid,
                CdnResult::GeneralError,
                Some(ErrorCode::BadValue),
                "unexpected ICRP",
            );
        }
        s.peer_id = peer;
        s.state = SessionState::Established;
        s.deadline = None;
        s.sequencing = ctx.cfg.sequencing_required;
        s.tx_connect_speed = ctx.cfg.connect_speed;
        let ev = Event::SessionUp {
            tunnel: self.local_id,
            local_session: sid,
            peer_tunnel: self.peer_id,
            peer_session: peer,
            remote: self.remote,
            local: self.local,
            sequencing: s.sequencing,
            tx_connect_speed: s.tx_connect_speed,
            rx_connect_speed: None,
            framing_type: FRAMING_SYNC,
            private_group_id: None,
        };
        self.by_peer_session.insert(peer, sid);
        let avps = Avps {
            tx_connect_speed: Some(ctx.cfg.connect_speed),
            framing_type: Some(FRAMING_SYNC),
            sequencing_required: ctx.cfg.sequencing_required,
            ..Avps::default()
        };
        self.send(ctx, peer, MessageType::Iccn, avps);
        ctx.events.push(ev);
    }

    fn on_cdn(&mut self, ctx: &mut Ctx<'_>, sid: u16, a: Avps) {
        let why = a
            .result_code
            .as_ref()
            .map_or_else(String::new, |r| r.describe(MessageType::Cdn));
        if let Some(local) = self.find_session(sid, a.assigned_session_id) {
            return self.remove_session(ctx, local, format!("peer sent CDN: {why}"));
        }
        if let Some(peer) = a.assigned_session_id
            && self.pending.remove(&peer).is_some()
        {
            ctx.events.push(Event::SessionRequestCancelled {
                tunnel: self.local_id,
                peer_session: peer,
                reason: format!("peer sent CDN: {why}"),
            });
        }
    }

    fn send_icrq(&mut self, ctx: &mut Ctx<'_>, local: u16) {
        let serial = *ctx.serial;
        *ctx.serial = ctx.serial.wrapping_add(1);
        let Some(s) = self.sessions.get_mut(&local) else {
            return;
        };
        s.state = SessionState::WaitReply;
        s.serial = serial;
        s.deadline = deadline(ctx.now, ctx.cfg.setup_timeout);
        let avps = Avps {
            assigned_session_id: Some(local),
            call_serial_number: Some(serial),
            ..Avps::default()
        };
        self.send(ctx, 0, MessageType::Icrq, avps);
    }

    // ---- API ----

    fn check_local_id(&self, ctx: &Ctx<'_>, local: u16) -> Result<(), Error> {
        if local == 0 {
            return Err(Error::InvalidSessionId);
        }
        if self.sessions.contains_key(&local) {
            return Err(Error::SessionIdInUse(local));
        }
        if self.sessions.len() + self.pending.len() >= ctx.cfg.max_sessions_per_tunnel {
            return Err(Error::TooManySessions);
        }
        Ok(())
    }

    /// LNS: answers a pending ICRQ with ICRP (§7.4.2 idle → wait-connect).
    pub fn accept_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer_session: u16,
        local_session: u16,
    ) -> Result<(), Error> {
        if !self.is_established() {
            return Err(Error::NotEstablished(self.local_id));
        }
        if !self.pending.contains_key(&peer_session) {
            return Err(Error::UnknownSession {
                tunnel: self.local_id,
                session: peer_session,
            });
        }
        if local_session == 0 {
            return Err(Error::InvalidSessionId);
        }
        if self.sessions.contains_key(&local_session) {
            return Err(Error::SessionIdInUse(local_session));
        }
        let Some(p) = self.pending.remove(&peer_session) else {
            return Ok(());
        };
        self.sessions.insert(
            local_session,
            Session {
                local_id: local_session,
                peer_id: peer_session,
                state: SessionState::WaitConnect,
                serial: p.serial,
                deadline: deadline(ctx.now, ctx.cfg.setup_timeout),
                sequencing: false,
                tx_connect_speed: 0,
            },
        );
        self.by_peer_session.insert(peer_session, local_session);
        let avps = Avps {
            assigned_session_id: Some(local_session),
            ..Avps::default()
        };
        self.send(ctx, peer_session, MessageType::Icrp, avps);
        Ok(())
    }

    /// LNS: refuses a pending ICRQ with CDN. Unknown ids are ignored.
    pub fn reject_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        peer_session: u16,
        result: CdnResult,
        message: &str,
    ) {
        if self.pending.remove(&peer_session).is_some() {
            self.send_cdn(ctx, peer_session, 0, result, None, message);
        }
    }

    /// Ends a session from our side with CDN. No `SessionDown` is emitted. Unknown ids are
    /// ignored.
    pub fn close_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        local_session: u16,
        result: CdnResult,
        message: &str,
    ) {
        let Some(s) = self.sessions.remove(&local_session) else {
            return;
        };
        if s.peer_id != 0 {
            self.by_peer_session.remove(&s.peer_id);
        }
        if s.state != SessionState::WaitTunnel && !matches!(self.state, TunnelState::Closing) {
            self.send_cdn(ctx, s.peer_id, local_session, result, None, message);
        }
    }

    /// LAC: opens an incoming-call session (ICRQ now, or once the tunnel is up).
    pub fn open_session(&mut self, ctx: &mut Ctx<'_>, local_session: u16) -> Result<(), Error> {
        if matches!(self.state, TunnelState::Closing | TunnelState::Draining) {
            return Err(Error::NotEstablished(self.local_id));
        }
        self.check_local_id(ctx, local_session)?;
        self.sessions.insert(
            local_session,
            Session {
                local_id: local_session,
                peer_id: 0,
                state: SessionState::WaitTunnel,
                serial: 0,
                deadline: None,
                sequencing: false,
                tx_connect_speed: 0,
            },
        );
        if self.is_established() {
            self.send_icrq(ctx, local_session);
        }
        Ok(())
    }

    /// Sends Set-Link-Info (§6.14) for an established session.
    pub fn set_link_info(
        &mut self,
        ctx: &mut Ctx<'_>,
        local_session: u16,
        send_accm: u32,
        recv_accm: u32,
    ) -> Result<(), Error> {
        let peer = match self.sessions.get(&local_session) {
            Some(s) if s.state == SessionState::Established => s.peer_id,
            _ => {
                return Err(Error::UnknownSession {
                    tunnel: self.local_id,
                    session: local_session,
                });
            }
        };
        let avps = Avps {
            accm: Some(crate::message::Accm {
                send: send_accm,
                recv: recv_accm,
            }),
            ..Avps::default()
        };
        self.send(ctx, peer, MessageType::Sli, avps);
        Ok(())
    }

    /// Resets the HELLO timer (data activity counts as liveness, §5.5).
    pub fn note_activity(&mut self, now: Instant) {
        if now > self.last_rx {
            self.last_rx = now;
        }
    }

    // ---- timers ----

    pub fn handle_timeout(&mut self, ctx: &mut Ctx<'_>) {
        if self.finished {
            return;
        }
        let now = ctx.now;
        self.channel.handle_timeout(now);
        match self.state {
            TunnelState::Idle | TunnelState::WaitCtlReply | TunnelState::WaitCtlConn
                if passed(self.setup_deadline, now) =>
            {
                self.stop(
                    ctx,
                    StopCcnResult::GeneralRequest,
                    None,
                    "tunnel setup timed out",
                    "tunnel setup timed out".into(),
                );
            }
            TunnelState::Established => {
                if self.channel.is_idle()
                    && passed(
                        hello_interval(ctx.cfg.hello_interval)
                            .and_then(|h| deadline(self.last_rx, h)),
                        now,
                    )
                {
                    self.send(ctx, 0, MessageType::Hello, Avps::default());
                }
                if passed(self.session_deadline, now) {
                    self.expire_sessions(ctx);
                }
            }
            TunnelState::Draining if passed(self.drain_until, now) => self.finished = true,
            _ => {}
        }
    }

    fn expire_sessions(&mut self, ctx: &mut Ctx<'_>) {
        let now = ctx.now;
        let expired: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| passed(p.deadline, now))
            .map(|(k, _)| *k)
            .collect();
        for peer in expired {
            self.pending.remove(&peer);
            ctx.events.push(Event::SessionRequestCancelled {
                tunnel: self.local_id,
                peer_session: peer,
                reason: "no decision within setup timeout".into(),
            });
            self.send_cdn(
                ctx,
                peer,
                0,
                CdnResult::Timeout,
                None,
                "session setup timed out",
            );
        }
        let expired: Vec<u16> = self
            .sessions
            .values()
            .filter(|s| passed(s.deadline, now))
            .map(|s| s.local_id)
            .collect();
        for local in expired {
            self.fail_session(
                ctx,
                local,
                CdnResult::Timeout,
                None,
                "session setup timed out",
            );
        }
    }

    /// Bookkeeping after any operation: dead channel, finished close, timer cache.
    pub fn after(&mut self, ctx: &mut Ctx<'_>) {
        if self.channel.is_dead() && !self.finished {
            let text = format!(
                "peer not responding ({} retransmissions unacknowledged)",
                ctx.cfg.max_retransmits
            );
            self.teardown(ctx, text);
            self.finished = true;
        }
        if self.state == TunnelState::Closing && self.channel.is_idle() {
            self.finished = true;
        }
        self.session_deadline = self
            .pending
            .values()
            .filter_map(|p| p.deadline)
            .chain(self.sessions.values().filter_map(|s| s.deadline))
            .min();
    }

    /// Next instant [`Tunnel::handle_timeout`] has work.
    pub fn poll_timeout(&self, hello: Option<std::time::Duration>) -> Option<Instant> {
        if self.finished {
            return None;
        }
        let own = match self.state {
            TunnelState::Idle | TunnelState::WaitCtlReply | TunnelState::WaitCtlConn => {
                self.setup_deadline
            }
            TunnelState::Established => {
                let hello = if self.channel.is_idle() {
                    hello_interval(hello).and_then(|h| deadline(self.last_rx, h))
                } else {
                    None
                };
                [hello, self.session_deadline].into_iter().flatten().min()
            }
            TunnelState::Draining => self.drain_until,
            TunnelState::Closing => None,
        };
        [own, self.channel.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}
