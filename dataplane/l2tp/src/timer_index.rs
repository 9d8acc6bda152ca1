//! The endpoint's timer index: each tunnel's next deadline, ordered, so the earliest deadline
//! and the tunnels due are found in O(log n) instead of by visiting every tunnel (quinn keeps
//! its timers the same way).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Deadlines by tunnel; at most one per tunnel.
#[derive(Debug, Default)]
pub(crate) struct TimerIndex {
    order: BTreeSet<(Instant, u16)>,
    by_tunnel: BTreeMap<u16, Instant>,
}

impl TimerIndex {
    /// Sets (`Some`) or clears (`None`) tunnel `id`'s deadline.
    pub(crate) fn set(&mut self, id: u16, at: Option<Instant>) {
        if self.by_tunnel.get(&id).copied() == at {
            return;
        }
        if let Some(old) = self.by_tunnel.remove(&id) {
            self.order.remove(&(old, id));
        }
        if let Some(at) = at {
            self.by_tunnel.insert(id, at);
            self.order.insert((at, id));
        }
    }

    /// The earliest deadline.
    pub(crate) fn first(&self) -> Option<Instant> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Removes and returns the tunnels whose deadline is at or before `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<u16> {
        let mut due = Vec::new();
        while let Some(&(at, id)) = self.order.first() {
            if at > now {
                break;
            }
            self.order.pop_first();
            self.by_tunnel.remove(&id);
            due.push(id);
        }
        due
    }

    /// Tunnels with a deadline.
    #[cfg(test)]
    fn len(&self) -> usize {
        debug_assert_eq!(self.order.len(), self.by_tunnel.len());
        self.by_tunnel.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn earliest_first_one_entry_per_tunnel_and_due_ones_taken_once() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut idx = TimerIndex::default();
        assert_eq!(idx.first(), None);
        idx.set(1, Some(at(300)));
        idx.set(2, Some(at(100)));
        idx.set(3, Some(at(200)));
        idx.set(2, Some(at(400))); // moved later: the old entry goes
        assert_eq!((idx.first(), idx.len()), (Some(at(200)), 3));
        idx.set(3, None);
        idx.set(9, None); // unknown: nothing
        assert_eq!((idx.first(), idx.len()), (Some(at(300)), 2));
        assert_eq!(idx.take_due(at(299)), Vec::<u16>::new());
        idx.set(5, Some(at(300)));
        assert_eq!(idx.take_due(at(350)), vec![1, 5]);
        assert_eq!(idx.take_due(at(350)), Vec::<u16>::new());
        assert_eq!((idx.first(), idx.len()), (Some(at(400)), 1));
    }
}
