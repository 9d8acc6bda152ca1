//! Phase transitions (RFC 1661 §3.2) on LCP, authentication and IPCP events, and link teardown.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::{CcpMode, DownReason, Event, Phase, Ppp, Role};
use crate::auth::{AuthResult, ClientAuth, ServerAuth};
use crate::config::{AuthProto, EncryptionPolicy};
use crate::frame::code;
use crate::fsm::{LayerEvent, State};

impl Ppp {
    // ----- layer events -----

    pub(super) fn on_lcp_event(&mut self, now: Instant, ev: Option<LayerEvent>, pkt_code: u8) {
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

    pub(super) fn on_auth_result(&mut self, now: Instant, r: Option<AuthResult>) {
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
    pub(super) fn open_deferred_ipcp(&mut self, now: Instant) {
        if std::mem::take(&mut self.ipcp_deferred) {
            self.ipcp_fsm.open(now, &mut self.ipcp, &mut self.tx);
        }
    }

    pub(super) fn on_ipcp_event(&mut self, now: Instant, ev: Option<LayerEvent>) {
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

    /// Emits `Up` once IPCP is Opened and CCP is settled.
    pub(super) fn check_up(&mut self, now: Instant) {
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
    pub(super) fn close_link(&mut self, now: Instant, reason: DownReason) {
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

    pub(super) fn go_dead(&mut self, reason: DownReason) {
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
}
