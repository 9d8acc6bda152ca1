//! Pieces shared by the PAC and PNS engines: keepalive timer and bounded output buffer.

use std::time::{Duration, Instant};

use crate::control::ControlMessage;
use crate::error::Error;

/// Most bytes an engine queues for TCP before treating the peer (or caller) as flooding.
///
/// Replies are at most 1.25× the input that caused them (Echo-Reply 20 bytes per 16-byte
/// Echo-Request), so a caller that feeds reads of up to 64 KiB and drains `poll_transmit` after
/// each `handle_input` never reaches it.
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;

/// `now + d`, or `None` ("never") if it overflows.
pub(crate) fn deadline(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

/// Whether an optional deadline has passed.
pub(crate) fn expired(deadline: Option<Instant>, now: Instant) -> bool {
    deadline.is_some_and(|d| now >= d)
}

/// Earliest of two optional instants.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Echo-Request keepalive (§2.5): after `interval` without input send a request; if nothing
/// arrives within `timeout` after it the peer is dead. Any received message counts as liveness.
#[derive(Debug, Clone)]
pub(crate) struct Keepalive {
    interval: Duration,
    timeout: Duration,
    last_rx: Instant,
    outstanding: Option<Option<Instant>>,
    next_id: u32,
}

pub(crate) enum KeepaliveAction {
    Nothing,
    SendEcho(u32),
    Dead,
}

impl Keepalive {
    pub(crate) fn new(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            last_rx: now,
            outstanding: None,
            next_id: 1,
        }
    }

    pub(crate) fn on_rx(&mut self, now: Instant) {
        self.last_rx = now;
        self.outstanding = None;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.outstanding {
            Some(dead_at) => dead_at,
            None => deadline(self.last_rx, self.interval),
        }
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) -> KeepaliveAction {
        match self.outstanding {
            Some(dead_at) if expired(dead_at, now) => KeepaliveAction::Dead,
            Some(_) => KeepaliveAction::Nothing,
            None if expired(deadline(self.last_rx, self.interval), now) => {
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                self.outstanding = Some(deadline(now, self.timeout));
                KeepaliveAction::SendEcho(id)
            }
            None => KeepaliveAction::Nothing,
        }
    }
}

/// Bounded buffer of encoded control messages waiting for the TCP stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outbox {
    buf: Vec<u8>,
}

impl Outbox {
    pub(crate) fn push(&mut self, msg: &ControlMessage) -> Result<(), Error> {
        if self.buf.len() + msg.buffer_len() > MAX_OUTPUT_BYTES {
            return Err(Error::OutputOverflow);
        }
        msg.emit(&mut self.buf);
        Ok(())
    }

    pub(crate) fn take(&mut self) -> Option<Vec<u8>> {
        if self.buf.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.buf))
        }
    }
}
