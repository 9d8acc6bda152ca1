//! Incoming-call sessions (RFC 2661 §7.4.1 LAC, §7.4.2 LNS): ICRQ/ICRP/ICCN/CDN and their API.

use super::{Tunnel, deadline};
use crate::endpoint::{Ctx, Event, Role, SessionState, TunnelState};
use crate::error::Error;
use crate::message::{Avps, CdnResult, ErrorCode, FRAMING_SYNC, MessageType};
use crate::session::{PendingCall, Session};

impl Tunnel {
    // ---- sessions ----

    pub(super) fn remove_session(&mut self, ctx: &mut Ctx<'_>, local: u16, reason: String) {
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
    pub(super) fn fail_session(
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

    pub(super) fn on_icrq(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
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

    pub(super) fn on_iccn(&mut self, ctx: &mut Ctx<'_>, sid: u16, a: Avps) {
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

    pub(super) fn on_icrp(&mut self, ctx: &mut Ctx<'_>, sid: u16, a: Avps) {
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

    pub(super) fn on_cdn(&mut self, ctx: &mut Ctx<'_>, sid: u16, a: Avps) {
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

    pub(super) fn send_icrq(&mut self, ctx: &mut Ctx<'_>, local: u16) {
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
}
