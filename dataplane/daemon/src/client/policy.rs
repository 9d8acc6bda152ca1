//! The persistent dialler's policy (issue 22, `VpnClient`): which phase a client tunnel is in,
//! when it dials next, and why it is not up. Pure: the caller passes the time, the outcome of
//! each attempt and a random word for the jitter; it dials, and asks again at
//! [`Dialler::poll_timeout`].
//!
//! - A tunnel that fails to come up, or goes down, is dialled again after an exponential,
//!   jittered back-off (`initial` doubling to `max`; [`Backoff`]), so clients that lost one
//!   server do not all return in the same instant.
//! - A tunnel that stayed up for [`STABLE_AFTER`] starts the back-off again from `initial`: a
//!   server restart is followed by a quick reconnect, a server that drops every session at
//!   once is not hammered.
//! - A refused login (wrong password, IKE authentication failed) waits `max` at once (jittered
//!   within its last tenth):
//!   retrying sooner cannot succeed and may lock the account on the server (RRAS, RADIUS
//!   lockout). A new configuration (the Secret changed) dials at once ([`Dialler::reset`]).

use std::fmt;
use std::time::{Duration, Instant};

pub use crate::backoff::Backoff;

/// How long a tunnel must stay up before a later failure backs off from `initial` again.
pub const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Where a client tunnel is (`VpnClient.status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// An attempt is under way (TCP/IKE, control connection, PPP).
    Connecting,
    /// PPP is up; traffic flows.
    Connected,
    /// Waiting before the next attempt.
    BackingOff,
    /// Stopped: the configuration cannot work as written (a new one dials again).
    Failed,
}

impl Phase {
    /// Every phase, in the order a tunnel meets them.
    pub const ALL: [Phase; 4] = [
        Phase::Connecting,
        Phase::Connected,
        Phase::BackingOff,
        Phase::Failed,
    ];

    /// The status and label value: `Connecting`, `Connected`, `BackingOff`, `Failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connecting => "Connecting",
            Phase::Connected => "Connected",
            Phase::BackingOff => "BackingOff",
            Phase::Failed => "Failed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt failed or a tunnel went down; decides the back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server did not answer or refused the connection (TCP, IKE, L2TP control).
    Unreachable(String),
    /// The server refused our credentials (PPP authentication, IKE authentication).
    Rejected(String),
    /// The tunnel was up and ended (server hang-up, keepalive timeout, DPD).
    Dropped(String),
    /// Negotiation failed for another reason (no common proposal, encryption policy).
    Negotiation(String),
    /// The local side cannot dial as configured (no route, TUN device refused).
    Local(String),
}

impl Failure {
    /// The `VpnClient` condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "ServerUnreachable",
            Failure::Rejected(_) => "AuthenticationRejected",
            Failure::Dropped(_) => "TunnelDropped",
            Failure::Negotiation(_) => "NegotiationFailed",
            Failure::Local(_) => "LocalError",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Failure::Unreachable(d)
            | Failure::Rejected(d)
            | Failure::Dropped(d)
            | Failure::Negotiation(d)
            | Failure::Local(d) => d,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason(), self.detail())
    }
}

/// The wait after a refused login: `max`, less up to a tenth of it picked by `random`.
fn refused_delay(max: Duration, random: u32) -> Duration {
    let tenth = u64::try_from((max / 10).as_nanos()).unwrap_or(u64::MAX);
    let less = u128::from(tenth) * u128::from(u32::MAX - random) / u128::from(u32::MAX);
    max.saturating_sub(Duration::from_nanos(u64::try_from(less).unwrap_or(tenth)))
}

/// The dialling state of one client tunnel.
#[derive(Debug, Clone)]
pub struct Dialler {
    backoff: Backoff,
    phase: Phase,
    /// Failed attempts since the tunnel was last stably up (the back-off's exponent).
    failures: u32,
    /// When the current phase began.
    since: Instant,
    /// BackingOff: when to dial again.
    next_dial: Option<Instant>,
    last_failure: Option<Failure>,
}

impl Dialler {
    /// A dialler that dials at once (phase Connecting).
    pub fn new(backoff: Backoff, now: Instant) -> Dialler {
        Dialler {
            backoff,
            phase: Phase::Connecting,
            failures: 0,
            since: now,
            next_dial: None,
            last_failure: None,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// When the current phase began (Connected: the tunnel's uptime starts here).
    pub fn since(&self) -> Instant {
        self.since
    }

    /// The last failure (kept while Connected, for `status.lastError`).
    pub fn last_failure(&self) -> Option<&Failure> {
        self.last_failure.as_ref()
    }

    /// The attempt under way came up.
    pub fn connected(&mut self, now: Instant) {
        self.enter(Phase::Connecting, Phase::Connected, now);
    }

    /// The attempt under way failed, or the tunnel went down: backs off. `random` picks the
    /// jitter. Returns when to dial again.
    pub fn failed(&mut self, now: Instant, failure: Failure, random: u32) -> Instant {
        let stable = self.phase == Phase::Connected
            && now.saturating_duration_since(self.since) >= STABLE_AFTER;
        if stable {
            self.failures = 0;
        }
        let delay = match failure {
            // The password will not fix itself: the longest wait at once, jittered only
            // within its last tenth so the server sees at most one attempt per `max`.
            Failure::Rejected(_) => refused_delay(self.backoff.max, random),
            _ => self.backoff.delay(self.failures, random),
        };
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(failure);
        self.phase = Phase::BackingOff;
        self.since = now;
        let at = now + delay;
        self.next_dial = Some(at);
        at
    }

    /// The configuration cannot work as written: no more attempts until [`Dialler::reset`].
    pub fn give_up(&mut self, now: Instant, failure: Failure) {
        self.last_failure = Some(failure);
        self.phase = Phase::Failed;
        self.since = now;
        self.next_dial = None;
    }

    /// A new configuration (reload, a changed Secret): dial at once, back-off forgotten.
    pub fn reset(&mut self, now: Instant) {
        self.failures = 0;
        self.next_dial = None;
        self.phase = Phase::Connecting;
        self.since = now;
    }

    /// When [`Dialler::handle_timeout`] must next be called (BackingOff only).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_dial
    }

    /// Returns true when it is time to dial (the phase is then Connecting).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        match self.next_dial {
            Some(at) if now >= at => {
                self.next_dial = None;
                self.enter(Phase::BackingOff, Phase::Connecting, now);
                true
            }
            _ => false,
        }
    }

    fn enter(&mut self, from: Phase, to: Phase, now: Instant) {
        if self.phase == from {
            self.phase = to;
            self.since = now;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn backoff() -> Backoff {
        Backoff {
            initial: 2 * S,
            max: 60 * S,
        }
    }

    /// `random` = u32::MAX: the delay without jitter (the jitter only shortens it, to ½).
    const NO_JITTER: u32 = u32::MAX;

    #[test]
    fn failures_back_off_doubling_and_a_stable_tunnel_starts_over() {
        let t0 = Instant::now();
        let mut d = Dialler::new(backoff(), t0);
        assert_eq!(d.phase(), Phase::Connecting);
        assert_eq!(d.poll_timeout(), None);
        let unreachable = || Failure::Unreachable("connect: refused".into());
        let at = d.failed(t0, unreachable(), NO_JITTER);
        assert_eq!((d.phase(), at), (Phase::BackingOff, t0 + 2 * S));
        assert!(!d.handle_timeout(t0 + S), "not before its time");
        assert!(d.handle_timeout(at));
        assert_eq!(d.phase(), Phase::Connecting);
        assert_eq!(d.failed(at, unreachable(), NO_JITTER), at + 4 * S);
        let t = at + 4 * S;
        assert!(d.handle_timeout(t));
        // Up, but only briefly: the next failure keeps doubling.
        d.connected(t);
        assert_eq!(d.phase(), Phase::Connected);
        let dropped = || Failure::Dropped("hang-up".into());
        assert_eq!(d.failed(t + S, dropped(), NO_JITTER), t + S + 8 * S);
        let t = t + 9 * S;
        assert!(d.handle_timeout(t));
        // Up for STABLE_AFTER: a server restart is followed by a quick reconnect.
        d.connected(t);
        let down = t + STABLE_AFTER;
        assert_eq!(d.failed(down, dropped(), NO_JITTER), down + 2 * S);
        assert_eq!(d.last_failure(), Some(&dropped()));
        assert_eq!(
            d.last_failure().unwrap().to_string(),
            "TunnelDropped: hang-up"
        );
    }

    #[test]
    fn the_delay_never_passes_max_and_jitter_only_shortens_it() {
        let t0 = Instant::now();
        let mut d = Dialler::new(backoff(), t0);
        for n in 0..100 {
            let at = d.failed(t0, Failure::Unreachable(String::new()), n * 40_000_000);
            assert!(at <= t0 + 60 * S, "attempt {n}");
            assert!(d.handle_timeout(at));
        }
        let at = d.failed(t0, Failure::Unreachable(String::new()), 0);
        assert_eq!(at, t0 + 30 * S, "half of max with the most jitter");
    }

    #[test]
    fn a_refused_login_waits_the_longest_and_a_new_config_dials_at_once() {
        let t0 = Instant::now();
        let mut d = Dialler::new(backoff(), t0);
        let rejected = Failure::Rejected("MS-CHAPv2 E=691".into());
        assert_eq!(rejected.reason(), "AuthenticationRejected");
        assert_eq!(d.failed(t0, rejected.clone(), NO_JITTER), t0 + 60 * S);
        // Jitter never brings it below nine tenths of `max`.
        assert_eq!(d.failed(t0, rejected.clone(), 0), t0 + 54 * S);
        assert_eq!(d.failed(t0, rejected, u32::MAX / 2), t0 + 57 * S);
        assert_eq!(d.phase(), Phase::BackingOff);
        d.reset(t0 + S);
        assert_eq!((d.phase(), d.poll_timeout()), (Phase::Connecting, None));
        assert_eq!(
            d.failed(t0 + S, Failure::Unreachable(String::new()), NO_JITTER),
            t0 + 3 * S
        );
    }

    #[test]
    fn given_up_stays_failed_until_reset() {
        let t0 = Instant::now();
        let mut d = Dialler::new(backoff(), t0);
        d.give_up(t0, Failure::Local("no TUN device".into()));
        assert_eq!((d.phase(), d.poll_timeout()), (Phase::Failed, None));
        assert!(!d.handle_timeout(t0 + 3600 * S));
        d.connected(t0);
        assert_eq!(
            d.phase(),
            Phase::Failed,
            "only an attempt under way comes up"
        );
        d.reset(t0);
        assert_eq!(d.phase(), Phase::Connecting);
    }
}
