//! The gateway's login guard: the password-guessing throttle ([`crate::gateway::login_throttle`])
//! with its metrics, and the rate-limited log of failed and refused logins.

use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::info;

use crate::gateway::log_budget::LogBudget;
use crate::gateway::login_throttle::{Limits, LoginThrottle, Verdict};
use crate::metrics::{Metrics, ReasonLabels};
use crate::sync::lock;

/// Window of the failed-login log.
const LOG_WINDOW: Duration = Duration::from_secs(10);
/// Failed logins logged one by one per window; the rest go into one summary line.
const LOG_BURST: u32 = 5;

/// Throttle + log budget of one gateway.
#[derive(Debug)]
pub struct LoginGuard {
    throttle: Mutex<LoginThrottle>,
    log: Mutex<(LogBudget, Option<(String, Ipv4Addr)>)>,
}

impl Default for LoginGuard {
    fn default() -> LoginGuard {
        LoginGuard::new(Limits::default())
    }
}

impl LoginGuard {
    pub fn new(limits: Limits) -> LoginGuard {
        LoginGuard {
            throttle: Mutex::new(LoginThrottle::new(limits)),
            log: Mutex::new((LogBudget::new(LOG_WINDOW, LOG_BURST), None)),
        }
    }

    /// When this attempt's password may be checked; counts held and refused attempts.
    pub fn admit(&self, m: &Metrics, user: &str, source: Ipv4Addr, now: Instant) -> Verdict {
        let v = lock(&self.throttle).admit(user, source, now);
        let reason = match v {
            Verdict::Now => return v,
            Verdict::At(_) => "delayed",
            Verdict::Refuse => "refused",
        };
        m.login_throttled
            .get_or_create(&ReasonLabels { reason })
            .inc();
        v
    }

    /// A failed login.
    pub fn failed(&self, m: &Metrics, user: &str, source: Ipv4Addr, now: Instant) {
        let mut t = lock(&self.throttle);
        t.failed(user, source, now);
        m.login_throttle_entries.set(t.tracked() as i64);
    }

    /// A successful login.
    pub fn succeeded(&self, user: &str, source: Ipv4Addr, now: Instant) {
        lock(&self.throttle).succeeded(user, source, now);
    }

    /// Logs one failed or refused login through the budget: `line` runs for the first few
    /// of a window; the rest are summarised.
    pub fn log(&self, user: &str, source: Ipv4Addr, now: Instant, line: impl FnOnce()) {
        let mut g = lock(&self.log);
        let take = g.0.take(now);
        if let Some(n) = take.summary {
            summary(n, g.1.as_ref());
        }
        g.1 = Some((user.to_owned(), source));
        drop(g);
        if take.log {
            line();
        }
    }

    /// Emits the summary of a window that closed (call periodically).
    pub fn flush(&self, now: Instant) {
        let mut g = lock(&self.log);
        if let Some(n) = g.0.roll(now) {
            summary(n, g.1.as_ref());
        }
    }
}

fn summary(n: u64, last: Option<&(String, Ipv4Addr)>) {
    let (user, caller) = last.map_or(("", None), |(u, s)| (u.as_str(), Some(*s)));
    info!(
        suppressed = n,
        window_s = LOG_WINDOW.as_secs(),
        last_user = %user,
        last_caller = ?caller,
        "more failed logins in the last window were not logged one by one"
    );
}
