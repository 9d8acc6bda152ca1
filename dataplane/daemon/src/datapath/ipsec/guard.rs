//! Admission of IKE datagrams on the receive threads, before they are queued for the IKE
//! thread (docs/security.md, "IKE under flood").
//!
//! Datagrams are told apart by their ISAKMP cookies (RFC 2408 §3.1), with no parsing beyond
//! the first 16 octets:
//!
//! - **Known**: the responder cookie (or, for a Main Mode the gateway started, the
//!   initiator cookie) names a live IKE SA. Only someone who received our message 2 knows
//!   it, so spoofed sources cannot reach this class. Each SA has its own token bucket and
//!   the datagrams go to the known queue, which the IKE thread serves first: established
//!   peers and exchanges past message 2 are not slowed by floods from anyone else.
//! - **New**: a zero responder cookie (Main or Aggressive Mode message 1). A token bucket per
//!   source address, then a global budget, then a queue of its own. Aggressive Mode (when
//!   enabled) does Diffie-Hellman on its first message, so it has a smaller budget too.
//! - Any other cookie pair is dropped here as `ike_unknown_sa`.
//!
//! The set of live SAs comes from the responder's journal ([`IkeGuard::apply`]); the IKE
//! thread applies it before it sends the replies that reveal a new cookie.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_ike::responder::SaChange;
use tokio::sync::mpsc;

use super::IkeDatagram;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

/// Rate (per second) and burst of one kind of bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(r: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: r.burst,
            last: now,
        }
    }

    fn refill(&mut self, r: Rate, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * r.per_second).min(r.burst);
        self.last = self.last.max(now);
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, r: Rate, now: Instant) -> bool {
        self.refill(r, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again at `now` (its owner has been quiet long enough to be forgotten).
    pub fn idle(&self, r: Rate, now: Instant) -> bool {
        let mut b = *self;
        b.refill(r, now);
        b.tokens >= r.burst
    }
}

/// The admission limits. Defaults: [`Limits::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// New exchanges (message 1s) per source address.
    pub new_per_source: Rate,
    /// New exchanges from everyone together.
    pub new_global: Rate,
    /// Aggressive Mode message 1s from everyone together (each costs a Diffie-Hellman).
    pub aggressive_global: Rate,
    /// Datagrams per live IKE SA.
    pub per_sa: Rate,
    /// Source addresses with a bucket of their own; past this (after forgetting idle ones)
    /// new sources are held to the global budget only.
    pub max_sources: usize,
    /// New exchanges waiting for the IKE thread, at most.
    pub new_queue: usize,
}

impl Default for Limits {
    /// 10 message 1s/s per address (burst 20): the responder keeps at most 5 half-open SAs
    /// per address anyway. 10,000/s in total (burst 2,000): a message 1 costs the IKE
    /// thread microseconds (no Diffie-Hellman), and with 4,096 half-open slots a real client
    /// still has 0.4 s to answer message 2 at that rate. 200 Aggressive Mode message 1s/s
    /// (burst 100): a fifth of one core's MODP2048 rate. 50 datagrams/s per live SA
    /// (burst 100): a Main Mode, Quick Modes, DPD and rekeys need a handful.
    fn default() -> Limits {
        Limits {
            new_per_source: Rate {
                per_second: 10.0,
                burst: 20.0,
            },
            new_global: Rate {
                per_second: 10_000.0,
                burst: 2_000.0,
            },
            aggressive_global: Rate {
                per_second: 200.0,
                burst: 100.0,
            },
            per_sa: Rate {
                per_second: 50.0,
                burst: 100.0,
            },
            max_sources: 65_536,
            new_queue: 1024,
        }
    }
}

/// Where an admitted datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Part of a live IKE SA's exchanges: the known queue.
    Known,
    /// A first message: the new-exchange queue.
    New,
}

/// Drop reasons of the receive side (`sluice_dropped_packets_total{reason}`), counted by
/// the guard too (for the IKE thread's summary line).
pub const DROP_REASONS: [&str; 8] = [
    "ike_rate_source",
    "ike_rate_global",
    "ike_rate_aggressive",
    "ike_rate_sa",
    "ike_unknown_sa",
    "ike_new_queue_full",
    "ike_queue_full",
    "ike_malformed",
];

/// How often idle buckets are forgotten (when their tables are full).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

struct State {
    /// Cookies of live IKE SAs (from the responder's journal).
    known: HashSet<u64>,
    per_sa: HashMap<u64, TokenBucket>,
    per_source: HashMap<Ipv4Addr, TokenBucket>,
    global: TokenBucket,
    aggressive: TokenBucket,
    last_prune: Instant,
}

/// The admission state shared by the receive threads and the IKE thread.
pub struct IkeGuard {
    limits: Limits,
    state: Mutex<State>,
    new_tx: mpsc::Sender<IkeDatagram>,
    /// Drops by [`DROP_REASONS`] index.
    drops: [AtomicU64; DROP_REASONS.len()],
}

/// Exchange type of Aggressive Mode (RFC 2408 §3.1).
const AGGRESSIVE: u8 = 4;

/// The two cookies and the exchange type of an ISAKMP header (RFC 2408 §3.1): CKY-I,
/// CKY-R, next payload, version, exchange type.
fn header(msg: &[u8]) -> Option<(u64, u64, u8)> {
    let (i, rest) = msg.split_first_chunk::<8>()?;
    let (r, rest) = rest.split_first_chunk::<8>()?;
    let &[_, _, exchange] = rest.first_chunk::<3>()?;
    Some((u64::from_be_bytes(*i), u64::from_be_bytes(*r), exchange))
}

impl IkeGuard {
    /// A guard with `limits`, and the receiving end of its new-exchange queue.
    pub fn new(limits: Limits, now: Instant) -> (IkeGuard, mpsc::Receiver<IkeDatagram>) {
        let (tx, rx) = mpsc::channel(limits.new_queue.max(1));
        (
            IkeGuard {
                limits,
                state: Mutex::new(State {
                    known: HashSet::new(),
                    per_sa: HashMap::new(),
                    per_source: HashMap::new(),
                    global: TokenBucket::new(limits.new_global, now),
                    aggressive: TokenBucket::new(limits.aggressive_global, now),
                    last_prune: now,
                }),
                new_tx: tx,
                drops: Default::default(),
            },
            rx,
        )
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies the responder's SA changes (before the replies that name new SAs are sent).
    pub fn apply(&self, changes: impl IntoIterator<Item = SaChange>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for c in changes {
            match c {
                SaChange::Added(id) => {
                    s.known.insert(id.0);
                }
                SaChange::Removed(id) => {
                    s.known.remove(&id.0);
                    s.per_sa.remove(&id.0);
                }
            }
        }
    }

    /// Live IKE SAs the guard knows.
    pub fn known_count(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .known
            .len()
    }

    /// Classifies an ISAKMP message (without the non-ESP marker) from `src`, charging its
    /// bucket; `Err` is the drop reason.
    pub fn admit(&self, msg: &[u8], src: Ipv4Addr, now: Instant) -> Result<Class, &'static str> {
        let Some((cky_i, cky_r, exchange)) = header(msg) else {
            return Err("ike_malformed");
        };
        let l = &self.limits;
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        if cky_r != 0 {
            let id = if s.known.contains(&cky_r) {
                cky_r
            } else if s.known.contains(&cky_i) {
                cky_i
            } else {
                return Err("ike_unknown_sa");
            };
            let b = s
                .per_sa
                .entry(id)
                .or_insert_with(|| TokenBucket::new(l.per_sa, now));
            return if b.take(l.per_sa, now) {
                Ok(Class::Known)
            } else {
                Err("ike_rate_sa")
            };
        }
        if s.per_source.len() >= l.max_sources
            && !s.per_source.contains_key(&src)
            && now.saturating_duration_since(s.last_prune) >= PRUNE_EVERY
        {
            s.last_prune = now;
            s.per_source.retain(|_, b| !b.idle(l.new_per_source, now));
        }
        let fits = s.per_source.len() < l.max_sources;
        let within = match s.per_source.get_mut(&src) {
            Some(b) => b.take(l.new_per_source, now),
            None => {
                if fits {
                    let mut b = TokenBucket::new(l.new_per_source, now);
                    b.take(l.new_per_source, now);
                    s.per_source.insert(src, b);
                }
                // Else the table is full of busy sources: the global budget alone decides.
                true
            }
        };
        if !within {
            return Err("ike_rate_source");
        }
        if exchange == AGGRESSIVE && !s.aggressive.take(l.aggressive_global, now) {
            return Err("ike_rate_aggressive");
        }
        if s.global.take(l.new_global, now) {
            Ok(Class::New)
        } else {
            Err("ike_rate_global")
        }
    }

    /// Counts a drop of the receive side; returns `why` for the metrics.
    pub fn count(&self, why: &'static str) -> &'static str {
        if let Some(i) = DROP_REASONS.iter().position(|r| *r == why)
            && let Some(c) = self.drops.get(i)
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        why
    }

    /// Drops counted so far, by reason.
    pub fn drop_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DROP_REASONS
            .iter()
            .zip(&self.drops)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
    }

    /// Queues a first message for the IKE thread; false when its queue is full.
    pub fn queue_new(&self, d: IkeDatagram) -> bool {
        self.new_tx.try_send(d).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_ike::responder::IkeSaId;

    fn msg(cky_i: u64, cky_r: u64) -> Vec<u8> {
        let mut m = cky_i.to_be_bytes().to_vec();
        m.extend_from_slice(&cky_r.to_be_bytes());
        m.extend_from_slice(&[1, 0x10, 2, 0, 0, 0, 0, 0, 0, 0, 0, 28]);
        m
    }

    fn ip(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(0xc612_0000 + n)
    }

    #[test]
    fn bucket_refills_at_its_rate_up_to_its_burst() {
        let r = Rate {
            per_second: 10.0,
            burst: 3.0,
        };
        let t0 = Instant::now();
        let mut b = TokenBucket::new(r, t0);
        assert!((0..3).all(|_| b.take(r, t0)));
        assert!(!b.take(r, t0));
        assert!(!b.take(r, t0 + Duration::from_millis(50)));
        assert!(b.take(r, t0 + Duration::from_millis(110)));
        assert!(!b.idle(r, t0 + Duration::from_millis(200)));
        assert!(b.idle(r, t0 + Duration::from_secs(10)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..10).filter(|_| b.take(r, later)).count(), 3);
    }

    #[test]
    fn one_source_is_held_to_its_own_bucket() {
        let t0 = Instant::now();
        let (g, _rx) = IkeGuard::new(Limits::default(), t0);
        let burst = Limits::default().new_per_source.burst as usize;
        let m = msg(7, 0);
        let passed = (0..100)
            .filter(|_| g.admit(&m, ip(1), t0) == Ok(Class::New))
            .count();
        assert_eq!(passed, burst);
        assert_eq!(g.admit(&m, ip(1), t0), Err("ike_rate_source"));
        assert_eq!(g.admit(&m, ip(2), t0), Ok(Class::New), "others are not");
        // 10/s: one more after 100 ms.
        assert_eq!(
            g.admit(&m, ip(1), t0 + Duration::from_millis(101)),
            Ok(Class::New)
        );
    }

    #[test]
    fn many_sources_share_the_global_budget() {
        let t0 = Instant::now();
        let l = Limits {
            new_global: Rate {
                per_second: 1000.0,
                burst: 100.0,
            },
            ..Limits::default()
        };
        let (g, _rx) = IkeGuard::new(l, t0);
        let m = msg(7, 0);
        let passed = (0..1000)
            .filter(|n| g.admit(&m, ip(*n), t0) == Ok(Class::New))
            .count();
        assert_eq!(passed, 100);
        assert_eq!(g.admit(&m, ip(5000), t0), Err("ike_rate_global"));
    }

    #[test]
    fn aggressive_mode_has_a_smaller_budget() {
        let t0 = Instant::now();
        let (g, _rx) = IkeGuard::new(Limits::default(), t0);
        let mut am = msg(7, 0);
        am[18] = AGGRESSIVE;
        let burst = Limits::default().aggressive_global.burst as usize;
        let passed = (0..1000)
            .filter(|n| g.admit(&am, ip(*n), t0).is_ok())
            .count();
        assert_eq!(passed, burst);
        assert_eq!(g.admit(&am, ip(5000), t0), Err("ike_rate_aggressive"));
        assert_eq!(g.admit(&msg(7, 0), ip(5000), t0), Ok(Class::New));
    }

    #[test]
    fn live_sas_are_not_throttled_by_a_flood() {
        let t0 = Instant::now();
        let l = Limits {
            new_global: Rate {
                per_second: 10.0,
                burst: 10.0,
            },
            ..Limits::default()
        };
        let (g, _rx) = IkeGuard::new(l, t0);
        g.apply([SaChange::Added(IkeSaId(42)), SaChange::Added(IkeSaId(43))]);
        assert_eq!(g.known_count(), 2);
        // The flood uses up every new-exchange budget…
        for n in 0..1000 {
            let _ = g.admit(&msg(n, 0), ip(n as u32), t0);
        }
        assert_eq!(g.admit(&msg(1, 0), ip(9999), t0), Err("ike_rate_global"));
        // …while an SA's own traffic (responder cookie, or ours as initiator) still passes.
        assert_eq!(g.admit(&msg(5, 42), ip(1), t0), Ok(Class::Known));
        assert_eq!(g.admit(&msg(43, 9), ip(1), t0), Ok(Class::Known));
        // Made-up cookies never get in, and an SA has a bucket of its own.
        assert_eq!(g.admit(&msg(5, 44), ip(1), t0), Err("ike_unknown_sa"));
        let per_sa = Limits::default().per_sa.burst as usize;
        let passed = (0..1000)
            .filter(|_| g.admit(&msg(5, 42), ip(1), t0).is_ok())
            .count();
        assert_eq!(passed, per_sa - 1);
        assert_eq!(g.admit(&msg(5, 42), ip(1), t0), Err("ike_rate_sa"));
        g.apply([SaChange::Removed(IkeSaId(42))]);
        assert_eq!(g.admit(&msg(5, 42), ip(1), t0), Err("ike_unknown_sa"));
        assert_eq!(g.admit(&[0; 10], ip(1), t0), Err("ike_malformed"));
    }

    #[test]
    fn the_source_table_is_bounded_and_forgets_idle_sources() {
        let t0 = Instant::now();
        let l = Limits {
            max_sources: 4,
            ..Limits::default()
        };
        let (g, _rx) = IkeGuard::new(l, t0);
        let m = msg(1, 0);
        for n in 0..10 {
            assert_eq!(g.admit(&m, ip(n), t0), Ok(Class::New));
        }
        let table = |g: &IkeGuard| g.state.lock().map(|s| s.per_source.len()).unwrap_or(0);
        assert_eq!(table(&g), 4);
        // Past the table, a source is held to the global budget only.
        assert!((0..50).all(|_| g.admit(&m, ip(9), t0).is_ok()));
        // Idle sources are forgotten (at most once a second) to make room.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(g.admit(&m, ip(20), later), Ok(Class::New));
        assert_eq!(table(&g), 1);
    }
}
