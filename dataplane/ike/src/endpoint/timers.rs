//! Timers: each IKE SA has a small table of timer kinds, and the endpoint files every SA
//! under its earliest one, so [`Responder::poll_timeout`] is the first entry of one
//! ordered index and [`Responder::handle_timeout`] runs only the SAs that are due.

use std::time::Instant;

use super::Responder;
use super::event::IkeSaId;
use super::ike_sa::{IkeSa, State};
use crate::policy::Config;

/// What an IKE SA waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The half-open deadline, then the lifetime.
    Deadline,
    /// Our own Main Mode's next resend.
    Phase1Resend,
    /// Our own Main Mode to replace it (RFC 2409 §5: either side may).
    IkeRekey,
    /// The earliest Quick Mode deadline, our Quick Mode resends included.
    Phase2,
    /// The earliest ESP SA pair expiry or rekey.
    Children,
    /// The next DPD probe, or declaring the peer dead (RFC 3706 §5.5).
    Dpd,
    /// The next NAT keep-alive (RFC 3948 §2.3).
    Keepalive,
}

impl Timer {
    const COUNT: usize = 7;
}

/// When each timer of an IKE SA fires (`None`: not armed).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TimerTable {
    data: [Option<Instant>; Timer::COUNT],
}

impl TimerTable {
    /// Arms (or with `None` stops) `timer`.
    pub(super) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        if let Some(slot) = self.data.get_mut(timer as usize) {
            *slot = at;
        }
    }

    /// The earliest armed timer.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.data.iter().flatten().min().copied()
    }

    /// The table of `sa` as its state and `config` make it.
    fn of(sa: &IkeSa, config: &Config) -> TimerTable {
        let mut t = TimerTable::default();
        t.set(Timer::Deadline, Some(sa.deadline));
        match &sa.state {
            State::Initiating(o) => t.set(Timer::Phase1Resend, Some(o.next_retransmit)),
            State::Established(e) => {
                let live = !e.superseded;
                t.set(Timer::IkeRekey, e.rekey_at.filter(|_| live));
                let quick = e.quick.iter().map(|q| q.deadline);
                let own = e.own_quick.iter().flat_map(|q| {
                    let resend = q.answered.is_none().then_some(q.next_retransmit);
                    [Some(q.deadline), resend].into_iter().flatten()
                });
                t.set(Timer::Phase2, quick.chain(own).min());
                let children = e.children.iter().flat_map(|c| {
                    let rekey = (!c.rekeying).then_some(c.rekey_at);
                    [Some(c.expires), rekey].into_iter().flatten()
                });
                t.set(Timer::Children, children.min());
                if let Some(delay) = config.dpd_delay.filter(|_| live && sa.vendor.dpd) {
                    let wait = if e.dpd_outstanding {
                        config.dpd_timeout
                    } else {
                        delay
                    };
                    t.set(Timer::Dpd, Some(e.last_activity + wait));
                }
                t.set(Timer::Keepalive, e.next_keepalive);
            }
            State::Responding(_) | State::Moving => {}
        }
        t
    }
}

impl Responder {
    /// Recomputes the timers of SA `id` and files it under the earliest.
    pub(super) fn reschedule(&mut self, id: IkeSaId) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        sa.timers = TimerTable::of(sa, &self.config);
        let next = sa.timers.next_timeout();
        if sa.filed == next {
            return;
        }
        if let Some(t) = sa.filed {
            self.timers.remove(&(t, id));
        }
        if let Some(t) = next {
            self.timers.insert((t, id));
        }
        sa.filed = next;
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Every SA's timer is due at most a few times per call; the bound keeps a timer that
        // failed to move forward from spinning here (the rest waits for the next call).
        let mut budget = self.timers.len().saturating_mul(4).saturating_add(64);
        while let Some(&(t, id)) = self.timers.first() {
            if t > now || budget == 0 {
                break;
            }
            budget -= 1;
            self.timers.remove(&(t, id));
            if let Some(sa) = self.sas.get_mut(&id) {
                sa.filed = None;
            }
            self.sa_timeout(now, id);
            self.reschedule(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_earliest_armed_timer_is_next() {
        let now = Instant::now();
        let mut t = TimerTable::default();
        assert_eq!(t.next_timeout(), None);
        t.set(Timer::Deadline, Some(now + Duration::from_secs(30)));
        t.set(Timer::Dpd, Some(now + Duration::from_secs(10)));
        t.set(Timer::Keepalive, Some(now + Duration::from_secs(20)));
        assert_eq!(t.next_timeout(), Some(now + Duration::from_secs(10)));
        t.set(Timer::Dpd, None);
        assert_eq!(t.next_timeout(), Some(now + Duration::from_secs(20)));
    }
}
