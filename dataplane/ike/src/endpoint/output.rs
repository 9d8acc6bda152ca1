//! The endpoint's bounded output: datagrams to send and events for the data plane.
//!
//! Both queues hold at most [`MAX_QUEUE`] entries between two drains by the caller. Past
//! that, new datagrams are dropped (the peers retransmit), and so are informational events
//! ([`Event::AuthFailed`], [`Event::ChildSaExpected`]), counted in [`Stats::events_dropped`]. An SA event (an IKE or
//! ESP SA up, down or moved) is never dropped: it first evicts the oldest informational
//! event, and is queued beyond the bound when there is none (the SA limits bound how many
//! one call can make).

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::event::{Event, Stats, Transmit};

/// Largest number of queued datagrams (and of events, but see the module docs).
pub(super) const MAX_QUEUE: usize = 8192;

/// Queued datagrams and events.
#[derive(Default)]
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct Output {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

/// An event the data plane must apply to its SA state (others are for logs and metrics).
fn changes_sas(e: &Event) -> bool {
    !matches!(e, Event::AuthFailed { .. } | Event::ChildSaExpected { .. })
}

impl Output {
    /// Queues `payload` from `local` to `remote` unless the queue is full.
    pub(super) fn send(
        &mut self,
        stats: &mut Stats,
        local: SocketAddr,
        remote: SocketAddr,
        payload: Vec<u8>,
    ) {
        if self.transmits.len() >= MAX_QUEUE {
            return;
        }
        stats.tx += 1;
        self.transmits.push_back(Transmit {
            local,
            remote,
            payload,
        });
    }

    /// Whether another datagram fits.
    pub(super) fn has_room(&self) -> bool {
        self.transmits.len() < MAX_QUEUE
    }

    /// Queues an event (see the module docs for a full queue).
    pub(super) fn event(&mut self, stats: &mut Stats, e: Event) {
        if self.events.len() < MAX_QUEUE {
            return self.events.push_back(e);
        }
        if !changes_sas(&e) {
            stats.events_dropped += 1;
            return;
        }
        if let Some(pos) = self.events.iter().position(|q| !changes_sas(q)) {
            self.events.remove(pos);
            stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    /// The next datagram.
    pub(super) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub(super) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::responder::{DownReason, IkeSaId};

    fn auth_failed() -> Event {
        Event::AuthFailed {
            peer: SocketAddr::from(([192, 0, 2, 1], 500)),
            reason: "test".into(),
        }
    }

    fn child_down(spi: u32) -> Event {
        Event::ChildSaDown {
            ike: IkeSaId(1),
            inbound_spi: spi,
            outbound_spi: spi,
            reason: DownReason::Expired,
        }
    }

    #[test]
    fn sa_events_are_never_dropped_and_informational_ones_are_counted() {
        let (mut out, mut stats) = (Output::default(), Stats::default());
        for _ in 0..MAX_QUEUE {
            out.event(&mut stats, auth_failed());
        }
        // Full: an SA event evicts the oldest informational one; another informational
        // one is dropped.
        out.event(&mut stats, child_down(7));
        out.event(&mut stats, auth_failed());
        assert_eq!(stats.events_dropped, 2);
        let events: Vec<Event> = std::iter::from_fn(|| out.poll_event()).collect();
        assert_eq!(events.len(), MAX_QUEUE);
        assert!(matches!(
            events.last(),
            Some(Event::ChildSaDown { inbound_spi: 7, .. })
        ));
        // A queue of SA events only grows past the bound rather than lose one.
        for spi in 0..=u32::try_from(MAX_QUEUE).unwrap_or(u32::MAX) {
            out.event(&mut stats, child_down(spi));
        }
        assert_eq!(
            std::iter::from_fn(|| out.poll_event()).count(),
            MAX_QUEUE + 1
        );
        assert_eq!(stats.events_dropped, 2);
    }

    #[test]
    fn datagrams_past_the_bound_are_not_queued() {
        let (mut out, mut stats) = (Output::default(), Stats::default());
        let a = SocketAddr::from(([192, 0, 2, 1], 500));
        for _ in 0..=MAX_QUEUE {
            out.send(&mut stats, a, a, vec![1]);
        }
        assert_eq!(stats.tx, u64::try_from(MAX_QUEUE).unwrap_or(u64::MAX));
        assert!(!out.has_room());
    }
}
