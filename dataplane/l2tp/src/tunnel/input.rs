//! Received control messages: delivery, message-error policy (RFC 2661 §4.1, §7.1), dispatch.

use super::Tunnel;
use crate::channel::RxVerdict;
use crate::endpoint::{Ctx, Event, TunnelState};
use crate::error::ParseError;
use crate::header::Packet;
use crate::message::{
    CdnResult, ControlMessage, ErrorCode, MessageError, MessageType, StopCcnResult,
};

impl Tunnel {
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

    pub(super) fn find_session(&self, sid: u16, assigned: Option<u16>) -> Option<u16> {
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
}
