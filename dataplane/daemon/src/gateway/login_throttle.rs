//! Password-guessing defence: back-off, never lockout.
//!
//! Every failed login adds to three leaky scores: the (user, source) pair, the source
//! address, and the user. Past a few free failures each score asks for a delay that doubles
//! per further failure; the gateway then answers the next attempt that late (the PPP
//! authenticator waits in `AwaitSecret`, RFC 1994 §4.1 leaves the response time to the
//! authenticator), so a guessing loop slows to a crawl while nothing is refused.
//!
//! The per-user score is what stops guessing spread over many sources, and it is also the
//! one that could slow the real user. So it does not apply to a source the user logged in
//! from successfully in the last [`Limits::trusted_for`], its cap is low, and per user the
//! checks from untrusted sources are spaced out (one at a time): an attempt that would wait
//! longer than [`Limits::max_hold`] is answered "failed" at once, without a password check.
//!
//! Sans-IO: `now` comes in, delays go out. Memory is bounded ([`Limits::max_entries`] per
//! table, decayed entries pruned first).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The knobs (see [`Limits::default`]).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// One failure is forgotten per this interval.
    pub leak: Duration,
    /// Free failures of a (user, source) pair before delays start.
    pub pair_free: u32,
    /// Free failures of a source (all users) before delays start.
    pub source_free: u32,
    /// Free failures of a user (all sources) before delays start.
    pub user_free: u32,
    /// The first delay; each further failure doubles it.
    pub base: Duration,
    /// Cap of the pair and source delays.
    pub max_delay: Duration,
    /// Cap of the per-user delay (it may hit the real user).
    pub max_user_delay: Duration,
    /// Longest an attempt is held; beyond that it fails at once, unchecked.
    pub max_hold: Duration,
    /// How long a successful login trusts its source for that user.
    pub trusted_for: Duration,
    /// Entries per table.
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            leak: Duration::from_secs(30),
            pair_free: 3,
            source_free: 10,
            user_free: 10,
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(16),
            max_user_delay: Duration::from_secs(4),
            // Below the authenticator's 30 s bound, so a held attempt is still answered.
            max_hold: Duration::from_secs(20),
            trusted_for: Duration::from_secs(24 * 3600),
            max_entries: 65_536,
        }
    }
}

/// What to do with one login attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Check the password now.
    Now,
    /// Check it at this instant.
    At(Instant),
    /// Answer "failed" now without checking: the user's queue is full.
    Refuse,
}

/// A leaky failure count.
#[derive(Clone, Copy, Debug)]
struct Score {
    failures: u32,
    /// When `failures` was last brought up to date.
    at: Instant,
}

impl Score {
    fn decayed(self, now: Instant, leak: Duration) -> u32 {
        let leaked = now.saturating_duration_since(self.at).as_nanos() / leak.as_nanos().max(1);
        self.failures
            .saturating_sub(u32::try_from(leaked).unwrap_or(u32::MAX))
    }
}

/// One table of scores.
#[derive(Debug)]
struct Scores<K> {
    map: HashMap<K, Score>,
}

impl<K: Hash + Eq + Clone> Scores<K> {
    fn new() -> Scores<K> {
        Scores {
            map: HashMap::new(),
        }
    }

    fn get(&self, k: &K, now: Instant, limits: &Limits) -> u32 {
        self.map.get(k).map_or(0, |s| s.decayed(now, limits.leak))
    }

    fn add(&mut self, k: &K, now: Instant, limits: &Limits) {
        let current = self.get(k, now, limits);
        if !self.map.contains_key(k) && self.map.len() >= limits.max_entries {
            self.map.retain(|_, s| s.decayed(now, limits.leak) > 0);
            if self.map.len() >= limits.max_entries {
                // Still full of live scores: the newcomer goes untracked (its attempts are
                // still bounded by the per-user spacing and the connection caps).
                return;
            }
        }
        // Capped so the doubling below cannot overflow and decay stays quick.
        let failures = current.saturating_add(1).min(64);
        self.map.insert(k.clone(), Score { failures, at: now });
    }

    fn clear(&mut self, k: &K) {
        self.map.remove(k);
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The delay asked for by `failures` past `free`, doubling from `base` up to `cap`.
fn backoff(failures: u32, free: u32, base: Duration, cap: Duration) -> Duration {
    match failures.checked_sub(free) {
        None | Some(0) => Duration::ZERO,
        Some(n) => base
            .checked_mul(1u32 << (n - 1).min(20))
            .map_or(cap, |d| d.min(cap)),
    }
}

/// The throttle's state.
#[derive(Debug)]
pub struct LoginThrottle {
    limits: Limits,
    pairs: Scores<(String, Ipv4Addr)>,
    sources: Scores<Ipv4Addr>,
    users: Scores<String>,
    /// Last successful login of a (user, source) pair.
    trusted: HashMap<(String, Ipv4Addr), Instant>,
    /// Per user: when the next check from an untrusted source may run.
    user_next: HashMap<String, Instant>,
}

impl LoginThrottle {
    pub fn new(limits: Limits) -> LoginThrottle {
        LoginThrottle {
            limits,
            pairs: Scores::new(),
            sources: Scores::new(),
            users: Scores::new(),
            trusted: HashMap::new(),
            user_next: HashMap::new(),
        }
    }

    fn is_trusted(&self, user: &str, source: Ipv4Addr, now: Instant) -> bool {
        self.trusted
            .get(&(user.to_owned(), source))
            .is_some_and(|t| now.saturating_duration_since(*t) < self.limits.trusted_for)
    }

    /// When the password of this attempt may be checked.
    pub fn admit(&mut self, user: &str, source: Ipv4Addr, now: Instant) -> Verdict {
        let l = self.limits;
        let pair = (user.to_owned(), source);
        let mut delay = backoff(
            self.pairs.get(&pair, now, &l),
            l.pair_free,
            l.base,
            l.max_delay,
        )
        .max(backoff(
            self.sources.get(&source, now, &l),
            l.source_free,
            l.base,
            l.max_delay,
        ));
        if !self.is_trusted(user, source, now) {
            let spacing = backoff(
                self.users.get(&user.to_owned(), now, &l),
                l.user_free,
                l.base,
                l.max_user_delay,
            );
            if !spacing.is_zero() {
                // One check at a time per user: queue behind the last one.
                let next = self
                    .user_next
                    .get(user)
                    .copied()
                    .unwrap_or(now)
                    .max(now + delay);
                if next.saturating_duration_since(now) > l.max_hold {
                    return Verdict::Refuse;
                }
                if self.user_next.len() >= l.max_entries {
                    self.user_next.retain(|_, t| *t > now);
                }
                if self.user_next.len() < l.max_entries || self.user_next.contains_key(user) {
                    self.user_next.insert(user.to_owned(), next + spacing);
                }
                delay = next.saturating_duration_since(now);
            }
        }
        match delay.min(l.max_hold) {
            d if d.is_zero() => Verdict::Now,
            d => Verdict::At(now + d),
        }
    }

    /// A failed login (wrong password, unknown user, or refused unchecked).
    pub fn failed(&mut self, user: &str, source: Ipv4Addr, now: Instant) {
        let l = self.limits;
        self.pairs.add(&(user.to_owned(), source), now, &l);
        self.sources.add(&source, now, &l);
        self.users.add(&user.to_owned(), now, &l);
    }

    /// A successful login: the pair's score is cleared and its source trusted for the user.
    pub fn succeeded(&mut self, user: &str, source: Ipv4Addr, now: Instant) {
        let pair = (user.to_owned(), source);
        self.pairs.clear(&pair);
        if self.trusted.len() >= self.limits.max_entries {
            let keep = self.limits.trusted_for;
            self.trusted
                .retain(|_, t| now.saturating_duration_since(*t) < keep);
        }
        if self.trusted.len() < self.limits.max_entries || self.trusted.contains_key(&pair) {
            self.trusted.insert(pair, now);
        }
    }

    /// Entries tracked (pairs + sources + users), for the metric.
    pub fn tracked(&self) -> usize {
        self.pairs.len() + self.sources.len() + self.users.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ATTACKER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const HOME: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

    fn delay(v: Verdict, now: Instant) -> Duration {
        match v {
            Verdict::Now => Duration::ZERO,
            Verdict::At(t) => t - now,
            Verdict::Refuse => Duration::MAX,
        }
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_up_to_the_cap() {
        let b = |n| backoff(n, 3, Duration::from_secs(1), Duration::from_secs(16));
        let got: Vec<u64> = (0..10).map(|n| b(n).as_secs()).collect();
        assert_eq!(got, [0, 0, 0, 0, 1, 2, 4, 8, 16, 16]);
        assert_eq!(b(64), Duration::from_secs(16));
    }

    #[test]
    fn a_guessing_loop_is_slowed_and_forgiven_over_time() {
        let mut t = LoginThrottle::new(Limits::default());
        let t0 = Instant::now();
        let mut now = t0;
        let mut checked = 0;
        // The attacker answers every challenge at once, for ten minutes.
        while now < t0 + Duration::from_secs(600) {
            match t.admit("alice", ATTACKER, now) {
                Verdict::Now => {}
                Verdict::At(at) => now = at,
                Verdict::Refuse => {
                    t.failed("alice", ATTACKER, now);
                    now += Duration::from_millis(10);
                    continue;
                }
            }
            checked += 1;
            t.failed("alice", ATTACKER, now);
        }
        // Without the throttle: thousands per second. With it: a few per minute.
        assert!(checked < 60, "{checked} passwords checked in 10 min");
        // An hour of silence forgives everything.
        let later = now + Duration::from_secs(3600);
        assert_eq!(t.admit("alice", ATTACKER, later), Verdict::Now);
    }

    #[test]
    fn the_real_user_gets_in_while_an_attacker_guesses_their_password() {
        let mut t = LoginThrottle::new(Limits::default());
        let t0 = Instant::now();
        t.succeeded("alice", HOME, t0);
        let mut now = t0;
        for _ in 0..200 {
            if let Verdict::At(at) = t.admit("alice", ATTACKER, now) {
                now = at;
            }
            t.failed("alice", ATTACKER, now);
        }
        // From a source she used before: no delay at all.
        assert_eq!(t.admit("alice", HOME, now), Verdict::Now);
        // Another user from the attacker's network is untouched by alice's score, only by
        // the source's (the attacker's own address).
        let other = Ipv4Addr::new(192, 0, 2, 1);
        assert_eq!(t.admit("bob", other, now), Verdict::Now);
        // From a new source she waits behind the queue, at most max_hold, or is told to
        // retry; never locked out for longer than the queue.
        let d = delay(t.admit("alice", other, now), now);
        assert!(
            d == Duration::MAX || d <= Limits::default().max_hold,
            "{d:?}"
        );
    }

    #[test]
    fn guesses_spread_over_sources_are_spaced_per_user() {
        let mut t = LoginThrottle::new(Limits::default());
        let now = Instant::now();
        let mut checked_now = 0;
        for i in 0..1000u32 {
            let src = Ipv4Addr::from(0x0a00_0000 + i);
            match t.admit("alice", src, now) {
                Verdict::Now => checked_now += 1,
                Verdict::At(_) | Verdict::Refuse => {}
            }
            t.failed("alice", src, now);
        }
        // The free failures, and the first check past them (it starts the spacing).
        assert!(checked_now <= 12, "{checked_now}");
    }

    #[test]
    fn tables_stay_bounded() {
        let limits = Limits {
            max_entries: 100,
            ..Limits::default()
        };
        let mut t = LoginThrottle::new(limits);
        let now = Instant::now();
        for i in 0..10_000u32 {
            let src = Ipv4Addr::from(i);
            let _ = t.admit(&format!("u{i}"), src, now);
            t.failed(&format!("u{i}"), src, now);
            t.succeeded(&format!("u{i}"), src, now);
        }
        assert!(t.tracked() <= 300, "{}", t.tracked());
        assert!(t.trusted.len() <= 100 && t.user_next.len() <= 100);
    }
}
