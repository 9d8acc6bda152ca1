//! Log lines an attacker can drive (failed logins, refused connections) are rate-limited:
//! the first few per window are logged as they come, the rest are counted and reported as
//! one summary line when the window closes.

use std::time::{Duration, Instant};

/// One kind of attacker-driven log line.
#[derive(Debug)]
pub struct LogBudget {
    window: Duration,
    burst: u32,
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

/// What to do with one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Take {
    /// Log this event on its own line.
    pub log: bool,
    /// Events suppressed in the window that just closed: log a summary first.
    pub summary: Option<u64>,
}

impl LogBudget {
    pub fn new(window: Duration, burst: u32) -> LogBudget {
        LogBudget {
            window,
            burst,
            start: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// Accounts one event at `now`.
    pub fn take(&mut self, now: Instant) -> Take {
        let summary = self.roll(now);
        self.start.get_or_insert(now);
        let log = self.used < self.burst;
        if log {
            self.used += 1;
        } else {
            self.suppressed += 1;
        }
        Take { log, summary }
    }

    /// Closes the window if it is over; returns the count to summarise, if any. Call it
    /// periodically too, so a summary comes out after the events stop.
    pub fn roll(&mut self, now: Instant) -> Option<u64> {
        let start = self.start?;
        if now.saturating_duration_since(start) < self.window {
            return None;
        }
        self.start = None;
        self.used = 0;
        Some(std::mem::take(&mut self.suppressed)).filter(|n| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_one_summary_per_window() {
        let mut b = LogBudget::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        let logged: Vec<bool> = (0..1000).map(|_| b.take(t0).log).collect();
        assert_eq!(logged.iter().filter(|l| **l).count(), 3);
        assert_eq!(b.roll(t0 + Duration::from_secs(5)), None);
        let next = b.take(t0 + Duration::from_secs(11));
        assert_eq!(
            next,
            Take {
                log: true,
                summary: Some(997)
            }
        );
        assert_eq!(b.roll(t0 + Duration::from_secs(30)), None);
    }
}
