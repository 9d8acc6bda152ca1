//! Reconnect delays: exponential with jitter, so agents that lost the operator (and client
//! tunnels that lost their server) together do not all come back in the same instant.

use std::time::Duration;

/// Exponential back-off between reconnect attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry (before jitter).
    pub initial: Duration,
    /// Upper bound of the delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Delay before retry number `attempt` (0 = first): `initial · 2^attempt`,
    /// capped at `max`, scaled by a factor in [½, 1] picked by `random`.
    pub fn delay(&self, attempt: u32, random: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let half = base / 2;
        let half_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let extra = u128::from(half_nanos) * u128::from(random) / u128::from(u32::MAX);
        half + Duration::from_nanos(u64::try_from(extra).unwrap_or(half_nanos))
    }

    /// [`Backoff::delay`] with OS randomness.
    pub fn jittered(&self, attempt: u32) -> Duration {
        self.delay(attempt, getrandom::u32().unwrap_or(u32::MAX / 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_from_initial_up_to_max() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, u32::MAX), 500 * MS);
        assert_eq!(b.delay(1, u32::MAX), 1000 * MS);
        assert_eq!(b.delay(2, u32::MAX), 2000 * MS);
        assert_eq!(b.delay(6, u32::MAX), 30_000 * MS);
        assert_eq!(b.delay(u32::MAX, u32::MAX), 30_000 * MS);
    }

    #[test]
    fn jitter_stays_within_half_and_full() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, 0), 250 * MS);
        for attempt in 0..10 {
            for random in [0, 1, u32::MAX / 3, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
                let full = b.delay(attempt, u32::MAX);
                let d = b.delay(attempt, random);
                assert!(d >= full / 2 && d <= full, "{attempt} {random} {d:?}");
            }
        }
    }
}
