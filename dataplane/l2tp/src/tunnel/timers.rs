//! Tunnel timers: setup and session timeouts, HELLO (RFC 2661 §5.5, §6.5), draining (§5.7).

use std::time::Instant;

use super::{Tunnel, deadline};
use crate::endpoint::{Ctx, Event, TunnelState};
use crate::message::{Avps, CdnResult, MessageType, StopCcnResult};

fn passed(t: Option<Instant>, now: Instant) -> bool {
    t.is_some_and(|t| now >= t)
}

/// The HELLO interval in effect: `None` (or zero) disables HELLO.
fn hello_interval(cfg: Option<std::time::Duration>) -> Option<std::time::Duration> {
    cfg.filter(|d| !d.is_zero())
}

impl Tunnel {
    // ---- timers ----

    /// Resets the HELLO timer (data activity counts as liveness, §5.5).
    pub fn note_activity(&mut self, now: Instant) {
        if now > self.last_rx {
            self.last_rx = now;
        }
    }

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
