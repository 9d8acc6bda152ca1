//! Control connection setup: SCCRQ/SCCRP/SCCCN and tunnel authentication (RFC 2661 §7.2, §5.1.1).

use rand_chacha::rand_core::Rng as _;

use super::Tunnel;
use crate::auth::{CHALLENGE_LEN, challenge_response, verify_response};
use crate::channel::DEFAULT_PEER_WINDOW;
use crate::endpoint::{Ctx, Event, SessionState, TunnelState};
use crate::message::{Avps, ErrorCode, MessageType, PROTOCOL_VERSION, StopCcnResult};

impl Tunnel {
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

    pub(super) fn on_sccrq(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
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

    pub(super) fn on_sccrp(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
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

    pub(super) fn on_scccn(&mut self, ctx: &mut Ctx<'_>, a: Avps) {
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
}
