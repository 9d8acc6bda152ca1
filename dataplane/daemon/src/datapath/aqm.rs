//! Active queue management of the receive sockets: no bufferbloat in front of a busy
//! receive thread. Each receive thread reads one socket queue (`io::shard`); the kernel
//! timestamps every datagram as it queues it (`SO_TIMESTAMPNS`, `io::batch`), so the thread
//! knows how long each waited, and runs [`Codel`] over the inner IP packets it delivers.
//!
//! A congestion signal goes to the inner packet, as a router on the path would give it:
//! `CE` on an ECN-capable packet (RFC 3168 §5, with the header checksum updated), a drop
//! otherwise. Only inner IP packets about to be written to the TUN device are ever
//! signalled; tunnel and PPP control packets, and the tunnel's own headers, are not. The
//! decision is made after decryption, so stateful MPPE and the ESP replay window see every
//! packet.
//!
//! The state is per thread ([`attach`] in the receive loops, [`dequeued`] per datagram):
//! a thread that never attached (the timer thread, the tests, the fuzz targets) delivers
//! everything.

use std::cell::RefCell;
use std::time::Duration;

use super::codel::{Codel, CodelParams};

/// What becomes of an inner IP packet about to be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// Deliver with `CE` set (ECN-capable; [`mark_ce`]).
    Mark,
    /// Drop (not ECN-capable): counted as `dropped{queue_delay}`.
    Drop,
}

struct Queue {
    codel: Codel,
    /// How long the datagram being handled waited, and when it left the queue (ns).
    sojourn: u64,
    now: u64,
}

thread_local! {
    static QUEUE: RefCell<Option<Queue>> = const { RefCell::new(None) };
}

/// Makes this thread the reader of one managed receive queue (`None`: unmanaged).
pub fn attach(params: Option<CodelParams>) {
    QUEUE.with(|q| {
        *q.borrow_mut() = params.map(|p| Queue {
            codel: Codel::new(p),
            sojourn: 0,
            now: 0,
        })
    });
}

/// The datagram this thread handles next waited `sojourn` in the socket queue (`None`: no
/// timestamp, counted as no wait) and left it at `now_ns` (a monotonic clock).
pub fn dequeued(sojourn: Option<Duration>, now_ns: u64) {
    QUEUE.with(|q| {
        if let Some(q) = q.borrow_mut().as_mut() {
            q.sojourn = sojourn.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
            q.now = now_ns;
        }
    });
}

/// The verdict for `ip`, an inner IPv4 packet of the datagram last noted with [`dequeued`].
pub fn verdict(ip: &[u8]) -> Verdict {
    let signal = QUEUE.with(|q| {
        q.borrow_mut()
            .as_mut()
            .is_some_and(|q| q.codel.on_dequeue(q.sojourn, q.now))
    });
    match (signal, ecn_capable(ip)) {
        (false, _) => Verdict::Deliver,
        (true, true) => Verdict::Mark,
        (true, false) => Verdict::Drop,
    }
}

/// Whether `ip` is an IPv4 packet whose ECN field is ECT(0), ECT(1) or already CE (RFC 3168
/// §5), with a header that can be rewritten.
fn ecn_capable(ip: &[u8]) -> bool {
    header_len(ip).is_some() && ip.get(1).is_some_and(|tos| tos & 0b11 != 0)
}

/// The IPv4 header length of `ip`, if it is an IPv4 packet whose whole header is there.
fn header_len(ip: &[u8]) -> Option<usize> {
    let first = *ip.first()?;
    let len = usize::from(first & 0x0f) * 4;
    (first >> 4 == 4 && len >= 20 && len <= ip.len()).then_some(len)
}

/// `ip` with its ECN field set to CE and its header checksum recomputed (RFC 791 §3.1);
/// `None` if it is not an ECN-capable IPv4 packet.
pub fn mark_ce(ip: &[u8]) -> Option<Vec<u8>> {
    if !ecn_capable(ip) {
        return None;
    }
    let hl = header_len(ip)?;
    let mut out = ip.to_vec();
    *out.get_mut(1)? |= 0b11;
    out.get_mut(10..12)?.copy_from_slice(&[0, 0]);
    let sum = checksum(out.get(..hl)?);
    out.get_mut(10..12)?.copy_from_slice(&sum.to_be_bytes());
    Some(out)
}

/// The Internet checksum (RFC 1071) of `data` (even length: an IPv4 header).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| {
            u32::from(u16::from_be_bytes([
                w.first().copied().unwrap_or(0),
                w.get(1).copied().unwrap_or(0),
            ]))
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/UDP header with TOS `tos` and a valid checksum.
    fn packet(tos: u8) -> Vec<u8> {
        let mut p = vec![
            0x45, tos, 0, 28, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, 10, 200, 0, 2, 10, 200, 0, 1,
            0x30, 0x39, 0x30, 0x39, 0, 8, 0, 0,
        ];
        let sum = checksum(&p[..20]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    #[test]
    fn the_checksum_matches_the_rfc_1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement 220d).
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn ect_packets_are_marked_ce_with_a_valid_checksum() {
        for tos in [0b01, 0b10, 0xb8 | 0b10, 0b11] {
            let p = packet(tos);
            let m = mark_ce(&p).unwrap_or_default();
            assert_eq!(m.len(), p.len());
            assert_eq!(m[1], tos | 0b11, "DSCP kept, ECN = CE");
            assert_eq!(checksum(&m[..20]), 0, "header checksums to zero");
            assert_eq!(m[20..], p[20..]);
        }
    }

    #[test]
    fn not_ect_ipv6_and_truncated_packets_are_not_marked() {
        assert_eq!(mark_ce(&packet(0)), None);
        let mut v6 = packet(0b10);
        v6[0] = 0x60;
        assert_eq!(mark_ce(&v6), None);
        assert_eq!(mark_ce(&packet(0b10)[..19]), None);
        let mut long_ihl = packet(0b10);
        long_ihl[0] = 0x4f;
        assert_eq!(mark_ce(&long_ihl), None);
        assert_eq!(mark_ce(&[]), None);
    }

    #[test]
    fn a_thread_without_a_managed_queue_delivers_everything() {
        let t = std::thread::spawn(|| {
            dequeued(Some(Duration::from_secs(10)), 0);
            assert!((0..1000u64).all(|_| verdict(&packet(0)) == Verdict::Deliver));
        });
        assert!(t.join().is_ok());
    }

    #[test]
    fn a_standing_queue_marks_ect_and_drops_the_rest() {
        let t = std::thread::spawn(|| {
            attach(Some(CodelParams::default()));
            let mut verdicts = Vec::new();
            for i in 0..5_000u64 {
                // A packet every 0.1 ms, each having waited 20 ms; one in three ECN-capable.
                dequeued(Some(Duration::from_millis(20)), i * 100_000);
                verdicts.push(verdict(&packet(if i % 3 == 0 { 0b10 } else { 0 })));
            }
            let first = verdicts.iter().position(|v| *v != Verdict::Deliver);
            assert_eq!(
                first,
                Some(1000),
                "one interval (100 ms) above target first"
            );
            assert!(verdicts.contains(&Verdict::Mark));
            assert!(verdicts.contains(&Verdict::Drop));
            // A packet that waited less than target ends it.
            dequeued(Some(Duration::from_millis(1)), 5_000 * 100_000);
            assert_eq!(verdict(&packet(0)), Verdict::Deliver);
            attach(None);
            dequeued(Some(Duration::from_secs(1)), u64::MAX);
            assert_eq!(verdict(&packet(0)), Verdict::Deliver);
        });
        assert!(t.join().is_ok());
    }
}
