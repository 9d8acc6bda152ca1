//! Per-session bandwidth limits (`VpnUser.spec.rateLimit`): a token bucket per direction,
//! checked on the fast path under the link's lock (no extra hop).
//!
//! * From the client (`up`) packets beyond the bucket are dropped (policing, as `tc police`
//!   does on ingress): they already crossed the client's uplink.
//! * Toward the client (`down`) packets beyond the bucket wait in a short per-session queue
//!   (shaping, as `tc tbf` does on egress; at most 50 ms at the rate) and leave when tokens
//!   are back, so TCP sees delay rather than bursts of loss; only a full queue drops. The
//!   data path's timer thread (20 ms tick) releases them, so when backlogged the bucket may
//!   hold up to 50 ms of tokens whatever `burst` says.
//!
//! Both act before encryption toward the client and after decryption from it, so stateful
//! MPPE and the sequence spaces are not disturbed.

use std::collections::VecDeque;

/// Nanoseconds per second: bucket contents are kept in byte-nanoseconds so the refill
/// is exact integer arithmetic.
const NS: u128 = 1_000_000_000;

/// Queue of a shaped direction: this much time at the rate...
const QUEUE_NANOS: u64 = 50_000_000;
/// ...within these bounds (bytes).
const MIN_QUEUE: u64 = 16 * 1024;
const MAX_QUEUE: u64 = 8 * 1024 * 1024;

/// A token bucket of `burst` bytes refilled at `rate` bytes per second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    /// Bytes per second.
    rate: u64,
    /// Capacity in byte-nanoseconds.
    cap: u128,
    /// Contents in byte-nanoseconds.
    tokens: u128,
    /// Time of the last refill (the data path's clock, nanoseconds).
    last: u64,
}

impl TokenBucket {
    /// A full bucket: `bits_per_second` (≥ 8), `burst` bytes, starting at `now_ns`.
    pub fn new(bits_per_second: u64, burst: u64, now_ns: u64) -> TokenBucket {
        let cap = u128::from(burst.max(1)) * NS;
        TokenBucket {
            rate: (bits_per_second / 8).max(1),
            cap,
            tokens: cap,
            last: now_ns,
        }
    }

    /// Takes `bytes` from the bucket if it holds them; `false` means drop the packet.
    pub fn allow(&mut self, now_ns: u64, bytes: usize) -> bool {
        self.take(now_ns, bytes, self.cap)
    }

    /// Refills up to `cap` (byte-nanoseconds), then takes `bytes` if there are enough.
    fn take(&mut self, now_ns: u64, bytes: usize, cap: u128) -> bool {
        if now_ns > self.last {
            let refill = u128::from(now_ns - self.last) * u128::from(self.rate);
            self.tokens = self.tokens.saturating_add(refill).min(cap);
            self.last = now_ns;
        }
        let need = bytes as u128 * NS;
        if self.tokens >= need {
            self.tokens -= need;
            true
        } else {
            false
        }
    }

    /// Bits per second.
    pub fn bits_per_second(&self) -> u64 {
        self.rate.saturating_mul(8)
    }

    /// The bucket's capacity while packets wait: at least the queue's time at the rate, so
    /// a coarse release timer does not lower the rate.
    fn backlog_cap(&self) -> u128 {
        self.cap
            .max(u128::from(QUEUE_NANOS) * u128::from(self.rate))
    }

    /// When `bytes` will fit (data-path clock, nanoseconds).
    fn ready_at(&self, bytes: usize) -> u64 {
        let need = (bytes as u128 * NS).saturating_sub(self.tokens);
        let wait = need.div_ceil(u128::from(self.rate));
        self.last
            .saturating_add(u64::try_from(wait).unwrap_or(u64::MAX))
    }
}

/// A shaped direction: its bucket and the packets waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaper {
    bucket: TokenBucket,
    queue: VecDeque<Vec<u8>>,
    queued: u64,
    limit: u64,
}

/// What became of a packet offered to a [`Shaper`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it now.
    Send,
    /// It waits in the queue ([`SessionLimit::pop_down`] hands it out later).
    Queued,
    /// The queue is full: drop it.
    Dropped,
}

impl Shaper {
    fn new(bucket: TokenBucket) -> Shaper {
        let limit = (u128::from(QUEUE_NANOS) * u128::from(bucket.rate) / NS) as u64;
        Shaper {
            bucket,
            queue: VecDeque::new(),
            queued: 0,
            limit: limit.clamp(MIN_QUEUE, MAX_QUEUE),
        }
    }

    fn admit(&mut self, now_ns: u64, packet: &[u8]) -> Admit {
        if self.queue.is_empty() && self.bucket.allow(now_ns, packet.len()) {
            return Admit::Send;
        }
        let len = packet.len() as u64;
        if self.queued + len > self.limit {
            return Admit::Dropped;
        }
        self.queued += len;
        self.queue.push_back(packet.to_vec());
        Admit::Queued
    }

    fn pop(&mut self, now_ns: u64) -> Option<Vec<u8>> {
        let len = self.queue.front()?.len();
        let cap = self.bucket.backlog_cap();
        if !self.bucket.take(now_ns, len, cap) {
            return None;
        }
        let p = self.queue.pop_front()?;
        self.queued -= p.len() as u64;
        Some(p)
    }

    fn next_release(&self) -> Option<u64> {
        self.queue.front().map(|p| self.bucket.ready_at(p.len()))
    }
}

/// The limits of one session, by direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionLimit {
    /// Toward the client (shaped).
    pub down: Option<Shaper>,
    /// From the client (policed).
    pub up: Option<TokenBucket>,
}

impl SessionLimit {
    /// Offers an IP packet toward the client to the shaper.
    pub fn admit_down(&mut self, now_ns: u64, packet: &[u8]) -> Admit {
        match &mut self.down {
            None => Admit::Send,
            Some(s) => s.admit(now_ns, packet),
        }
    }

    /// The next queued packet toward the client whose tokens are there.
    pub fn pop_down(&mut self, now_ns: u64) -> Option<Vec<u8>> {
        self.down.as_mut()?.pop(now_ns)
    }

    /// When the next queued packet can leave (data-path clock, nanoseconds).
    pub fn next_release(&self) -> Option<u64> {
        self.down.as_ref()?.next_release()
    }

    /// Whether `bytes` from the client fit the limit (taken from the bucket if so).
    pub fn allow_up(&mut self, now_ns: u64, bytes: usize) -> bool {
        self.up.as_mut().is_none_or(|b| b.allow(now_ns, bytes))
    }
}

/// A configured limit (`0`: that direction is unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub down_bps: u64,
    pub up_bps: u64,
    pub burst_bytes: u64,
}

impl RateLimit {
    /// Fresh (full) buckets for a session starting now.
    pub fn buckets(&self, now_ns: u64) -> SessionLimit {
        let bucket = |bps: u64| (bps > 0).then(|| TokenBucket::new(bps, self.burst_bytes, now_ns));
        SessionLimit {
            down: bucket(self.down_bps).map(Shaper::new),
            up: bucket(self.up_bps),
        }
    }

    /// `down/up` for the sessions table, e.g. `10M/2M` (`-` for an unlimited direction).
    pub fn display(&self) -> String {
        format!("{}/{}", si(self.down_bps), si(self.up_bps))
    }
}

/// A bit rate with an SI suffix, as users write it (`-` for none).
fn si(bps: u64) -> String {
    match bps {
        0 => "-".into(),
        b if b % 1_000_000_000 == 0 => format!("{}G", b / 1_000_000_000),
        b if b % 1_000_000 == 0 => format!("{}M", b / 1_000_000),
        b if b % 1_000 == 0 => format!("{}k", b / 1_000),
        b => b.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_rate() {
        // 8 Mbit/s = 1 MB/s, bucket 10 000 bytes.
        let mut b = TokenBucket::new(8_000_000, 10_000, 0);
        assert!((0..6).all(|_| b.allow(0, 1500)));
        assert!(!b.allow(0, 1500), "burst spent: 1000 bytes left");
        // 1 ms refills 1000 bytes.
        assert!(b.allow(MS / 2, 1500));
        assert!(!b.allow(MS, 1000), "500 bytes left");
        assert!(b.allow(MS + MS / 2, 1000));
        // A long pause refills no more than the bucket.
        let mut sent = 0;
        while b.allow(10_000 * MS, 1000) {
            sent += 1000;
        }
        assert_eq!(sent, 10_000);
    }

    #[test]
    fn long_run_rate_is_the_limit() {
        let mut b = TokenBucket::new(10_000_000, 3_000, 0);
        let mut bytes = 0u64;
        // Offer 1400-byte packets every 0.1 ms (112 Mbit/s) for 1 s.
        for i in 0..10_000u64 {
            if b.allow(i * MS / 10, 1400) {
                bytes += 1400;
            }
        }
        let bps = bytes * 8;
        assert!((9_900_000..=10_100_000).contains(&bps), "{bps}");
    }

    #[test]
    fn clock_going_back_is_harmless() {
        let mut b = TokenBucket::new(8_000, 3_000, 5 * MS);
        assert!(b.allow(MS, 3_000));
        assert!(!b.allow(0, 1));
    }

    #[test]
    fn display() {
        let r = RateLimit {
            down_bps: 10_000_000,
            up_bps: 0,
            burst_bytes: 3000,
        };
        assert_eq!(r.display(), "10M/-");
        assert!(r.buckets(0).up.is_none());
        assert_eq!(
            r.buckets(0).down.map(|s| s.bucket.bits_per_second()),
            Some(10_000_000)
        );
    }

    #[test]
    fn shaper_queues_in_order_and_releases_at_the_rate() {
        // 8 Mbit/s = 1 MB/s: 1000 bytes per ms; bucket 3000 bytes; queue 50 ms = 50 000 bytes.
        let r = RateLimit {
            down_bps: 8_000_000,
            up_bps: 0,
            burst_bytes: 3_000,
        };
        let mut l = r.buckets(0);
        assert_eq!(l.admit_down(0, &[1; 1500]), Admit::Send);
        assert_eq!(l.admit_down(0, &[2; 1500]), Admit::Send);
        assert_eq!(l.admit_down(0, &[3; 1500]), Admit::Queued);
        // Behind a queued packet even a small one waits (order is kept).
        assert_eq!(l.admit_down(0, &[4; 10]), Admit::Queued);
        assert_eq!(l.next_release(), Some(1_500_000));
        assert_eq!(l.pop_down(MS), None);
        assert_eq!(l.pop_down(1_500_000).map(|p| p[0]), Some(3));
        assert_eq!(l.pop_down(1_510_000).map(|p| p[0]), Some(4));
        assert_eq!(l.next_release(), None);
        // The queue holds 50 ms at the rate; beyond it packets are dropped.
        let mut admitted = 0;
        while l.admit_down(2 * MS, &[5; 1000]) == Admit::Queued {
            admitted += 1;
        }
        assert_eq!(admitted, 50);
        // A coarse timer (20 ms later) releases 20 ms worth at once, not just `burst`.
        let mut released = 0;
        while l.pop_down(22 * MS).is_some() {
            released += 1;
        }
        assert_eq!(released, 20);
    }
}
