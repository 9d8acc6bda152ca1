//! LCP keepalive: Echo-Requests on silence, link down after twice the interval (RFC 1661 §5.8).

use std::time::Instant;

use super::{DownReason, ECHO_INTERVAL, Phase, Ppp};
use crate::frame::{code, proto};

impl Ppp {
    // ----- keepalive -----

    pub(super) fn keepalive_deadline(&self) -> Option<Instant> {
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

    pub(super) fn keepalive_tick(&mut self, now: Instant) {
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
