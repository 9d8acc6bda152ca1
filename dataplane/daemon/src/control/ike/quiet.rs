//! Rate-limited logging of the IKE events an attacker can drive: half-open timeouts,
//! evictions, refused datagrams and failed authentications become one summary line per
//! interval with counts (a few failed authentications are still logged one by one).

use std::time::{Duration, Instant};

/// Summary interval.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Failed authentications logged one by one per interval; the rest are only counted.
pub const AUTH_LINES: u32 = 5;

/// Counts of one interval, by name, for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub half_open_timeouts: u64,
    pub auth_failures: u64,
    pub auth_failures_not_logged: u64,
    /// Drop counters that grew (reason, increase), in reason order.
    pub drops: Vec<(&'static str, u64)>,
}

impl Summary {
    /// Something worth a line happened.
    pub fn any(&self) -> bool {
        self.half_open_timeouts > 0 || self.auth_failures_not_logged > 0 || !self.drops.is_empty()
    }

    /// The drops as `reason=n ...` for the log line.
    pub fn drops_text(&self) -> String {
        let parts: Vec<String> = self.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
        parts.join(" ")
    }
}

/// The interval's counters.
#[derive(Debug)]
pub struct Quiet {
    since: Instant,
    now: Summary,
    auth_logged: u32,
    /// Drop totals at the start of the interval.
    seen: Vec<(&'static str, u64)>,
}

impl Quiet {
    pub fn new(now: Instant) -> Quiet {
        Quiet {
            since: now,
            now: Summary::default(),
            auth_logged: 0,
            seen: Vec::new(),
        }
    }

    pub fn half_open_timeout(&mut self) {
        self.now.half_open_timeouts += 1;
    }

    /// A failed authentication: true when it may be logged on its own line.
    pub fn auth_failed(&mut self) -> bool {
        self.now.auth_failures += 1;
        if self.auth_logged < AUTH_LINES {
            self.auth_logged += 1;
            true
        } else {
            self.now.auth_failures_not_logged += 1;
            false
        }
    }

    /// Whether the interval is over (call [`Quiet::tick`] then).
    pub fn due(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= INTERVAL
    }

    /// At the end of an interval: its summary (drop totals passed in are compared with the
    /// previous interval's), and a new interval starts. `None` before the interval is over.
    pub fn tick(
        &mut self,
        now: Instant,
        drop_totals: impl IntoIterator<Item = (&'static str, u64)>,
    ) -> Option<Summary> {
        if !self.due(now) {
            return None;
        }
        let totals: Vec<(&'static str, u64)> = drop_totals.into_iter().collect();
        let mut s = std::mem::take(&mut self.now);
        for (reason, n) in &totals {
            let before = self
                .seen
                .iter()
                .find(|(r, _)| r == reason)
                .map_or(0, |(_, b)| *b);
            if *n > before {
                s.drops.push((reason, n - before));
            }
        }
        s.drops.sort_unstable();
        self.seen = totals;
        self.since = now;
        self.auth_logged = 0;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_summary_per_interval_with_the_increases() {
        let t0 = Instant::now();
        let mut q = Quiet::new(t0);
        for _ in 0..1000 {
            q.half_open_timeout();
        }
        let logged = (0..100).filter(|_| q.auth_failed()).count();
        assert_eq!(logged, AUTH_LINES as usize);
        assert_eq!(
            q.tick(t0 + Duration::from_secs(1), [("ike_limit", 3)]),
            None
        );
        let s = q
            .tick(t0 + INTERVAL, [("ike_limit", 3), ("ike_rate_global", 0)])
            .unwrap_or_default();
        assert_eq!(s.half_open_timeouts, 1000);
        assert_eq!((s.auth_failures, s.auth_failures_not_logged), (100, 95));
        assert_eq!(s.drops, vec![("ike_limit", 3)]);
        assert_eq!(s.drops_text(), "ike_limit=3");
        assert!(s.any());
        // The next interval reports only what grew, and nothing when nothing did.
        let s = q
            .tick(t0 + INTERVAL * 2, [("ike_limit", 3)])
            .unwrap_or_default();
        assert!(!s.any());
        assert!(q.auth_failed(), "a new interval logs again");
    }
}
