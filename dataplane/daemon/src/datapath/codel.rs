//! CoDel (RFC 8289), sans-IO: the active queue management of one receive queue. The caller
//! says, for every packet it takes out of the queue, how long the packet waited and what
//! time it is; CoDel answers whether to signal congestion on it (mark CE or drop).
//!
//! A queue that stays above `target` for a whole `interval` is a standing queue (a sender
//! that fills whatever buffer there is), not a burst: CoDel then signals one packet, and
//! more often the longer the queue stays (`interval / sqrt(count)`, §5.6), until a packet
//! waits less than `target` again.

use std::time::Duration;

/// CoDel's two parameters (RFC 8289 §4.2, §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodelParams {
    /// The standing queue delay tolerated (§4.3: 5 ms for Internet traffic).
    pub target: Duration,
    /// How long the delay must stay above `target` before the first signal, and the base of
    /// the control law (§4.2: 100 ms, a worst-case RTT).
    pub interval: Duration,
}

impl CodelParams {
    /// RFC 8289's target for Internet traffic (§4.3), in ms.
    pub const TARGET_MS: u64 = 5;
    /// RFC 8289's interval for the terrestrial Internet (§4.2), in ms.
    pub const INTERVAL_MS: u64 = 100;

    /// The parameters of a command line: `None` (CoDel off) for a target of 0 ms.
    pub fn from_millis(target_ms: u64, interval_ms: u64) -> Option<Self> {
        (target_ms > 0).then(|| CodelParams {
            target: Duration::from_millis(target_ms),
            interval: Duration::from_millis(interval_ms),
        })
    }
}

impl Default for CodelParams {
    fn default() -> Self {
        CodelParams {
            target: Duration::from_millis(Self::TARGET_MS),
            interval: Duration::from_millis(Self::INTERVAL_MS),
        }
    }
}

/// CoDel's state for one queue (RFC 8289 §5.2). Times are nanoseconds on the caller's clock.
#[derive(Clone, Debug)]
pub struct Codel {
    target: u64,
    interval: u64,
    /// When the delay, above `target` since then, will have been so for `interval`
    /// (`first_above_time`); `None` while it is below.
    first_above: Option<u64>,
    /// In the dropping state (`dropping_`).
    dropping: bool,
    /// When the next signal is due in the dropping state (`drop_next_`).
    drop_next: u64,
    /// Signals since the dropping state was entered (`count_`), and at its last entry.
    count: u32,
    last_count: u32,
}

impl Codel {
    pub fn new(params: CodelParams) -> Self {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Codel {
            target: ns(params.target),
            interval: ns(params.interval).max(1),
            first_above: None,
            dropping: false,
            drop_next: 0,
            count: 0,
            last_count: 0,
        }
    }

    /// A packet that waited `sojourn` ns leaves the queue at `now`: `true` to signal
    /// congestion on it (§5.5 `dequeue`, one packet per call: the caller drops or marks it and
    /// asks again for the next).
    pub fn on_dequeue(&mut self, sojourn: u64, now: u64) -> bool {
        let ok_to_drop = self.ok_to_drop(sojourn, now);
        if self.dropping {
            if !ok_to_drop {
                self.dropping = false;
                return false;
            }
            if now < self.drop_next {
                return false;
            }
            self.count = self.count.saturating_add(1);
            self.drop_next = self.control_law(self.drop_next);
            return true;
        }
        if !ok_to_drop {
            return false;
        }
        // Enter the dropping state; if it was left only recently, resume near the rate it had
        // reached rather than from 1 (§5.5).
        self.dropping = true;
        let delta = self.count.saturating_sub(self.last_count);
        let recent = now.saturating_sub(self.drop_next) < self.interval.saturating_mul(16);
        self.count = if delta > 1 && recent { delta } else { 1 };
        self.drop_next = self.control_law(now);
        self.last_count = self.count;
        true
    }

    /// §5.6 `dodequeue`: whether the delay has been above target for at least an interval.
    /// The RFC's second test (a backlog of at most one MTU never drops) is left to the caller,
    /// which knows each datagram's wait but not the socket's backlog.
    fn ok_to_drop(&mut self, sojourn: u64, now: u64) -> bool {
        if sojourn < self.target {
            self.first_above = None;
            return false;
        }
        match self.first_above {
            None => {
                self.first_above = Some(now.saturating_add(self.interval));
                false
            }
            Some(at) => now >= at,
        }
    }

    /// §5.6 `control_law`: the next signal `interval / sqrt(count)` after `t`.
    fn control_law(&self, t: u64) -> u64 {
        let step = self.interval as f64 / f64::from(self.count.max(1)).sqrt();
        t.saturating_add(step as u64)
    }

    /// Whether the queue is in the dropping state.
    #[cfg(test)]
    fn dropping(&self) -> bool {
        self.dropping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn codel() -> Codel {
        Codel::new(CodelParams::default())
    }

    /// Feeds a packet every `gap` ns from `from` to `to`, each having waited `sojourn`;
    /// returns the times of the signals.
    fn run(c: &mut Codel, from: u64, to: u64, gap: u64, sojourn: u64) -> Vec<u64> {
        (0..)
            .map(|i| from + i * gap)
            .take_while(|&t| t < to)
            .filter(|&t| c.on_dequeue(sojourn, t))
            .collect()
    }

    #[test]
    fn a_queue_below_target_is_never_signalled() {
        let mut c = codel();
        assert!(run(&mut c, 0, 10_000 * MS, MS / 10, 4 * MS).is_empty());
        assert!(!c.dropping());
    }

    #[test]
    fn a_burst_shorter_than_an_interval_passes() {
        let mut c = codel();
        // 90 ms of a 50 ms queue, then it drains.
        assert!(run(&mut c, 0, 90 * MS, MS / 10, 50 * MS).is_empty());
        assert!(run(&mut c, 90 * MS, 1_000 * MS, MS / 10, MS).is_empty());
    }

    #[test]
    fn a_standing_queue_is_signalled_after_one_interval_then_ever_faster() {
        let mut c = codel();
        let signals = run(&mut c, 0, 1_000 * MS, MS / 10, 20 * MS);
        // The first at 100 ms (one interval above target), the next 100 ms later
        // (count 1 → 2: interval / sqrt 2 after that), and so on.
        assert_eq!(signals.first(), Some(&(100 * MS)));
        assert_eq!(signals.get(1), Some(&(200 * MS)));
        let gaps: Vec<u64> = signals.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.windows(2).all(|g| g[1] <= g[0] + MS / 10), "{gaps:?}");
        // interval / sqrt(count): after n signals the gap is about 100 ms / sqrt(n).
        let n = signals.len() as f64;
        let last = *gaps.last().unwrap_or(&0) as f64 / MS as f64;
        assert!(
            (last - 100.0 / (n - 1.0).sqrt()).abs() < 1.0,
            "{last} ms after {n}"
        );
        assert!(c.dropping());
    }

    #[test]
    fn one_packet_below_target_ends_the_dropping_state() {
        let mut c = codel();
        assert!(!run(&mut c, 0, 300 * MS, MS, 20 * MS).is_empty());
        assert!(!c.on_dequeue(MS, 300 * MS));
        assert!(!c.dropping());
        // Above target again: a fresh interval must pass first.
        assert!(run(&mut c, 301 * MS, 400 * MS, MS, 20 * MS).is_empty());
    }

    #[test]
    fn a_queue_that_comes_back_soon_resumes_near_its_last_rate() {
        let mut c = codel();
        let first = run(&mut c, 0, 2_000 * MS, MS, 20 * MS).len();
        assert!(first > 5);
        assert!(!c.on_dequeue(0, 2_000 * MS));
        // Back above target 10 ms later: after one interval, signals come at the rate
        // reached before (count resumes from the signals of the last episode), not at 1.
        let again = run(&mut c, 2_010 * MS, 2_500 * MS, MS, 20 * MS);
        let gap = again.get(1).zip(again.first()).map(|(b, a)| b - a);
        assert!(gap.is_some_and(|g| g < 60 * MS), "{again:?}");
    }

    #[test]
    fn time_going_backwards_or_huge_values_do_not_panic() {
        let mut c = codel();
        for (s, t) in [
            (u64::MAX, 0),
            (u64::MAX, u64::MAX),
            (0, u64::MAX),
            (u64::MAX, 5),
        ] {
            let _ = c.on_dequeue(s, t);
        }
        let mut c = Codel::new(CodelParams {
            target: Duration::ZERO,
            interval: Duration::ZERO,
        });
        let _ = run(&mut c, 0, 10 * MS, MS, 0);
    }
}
