//! The sending half of an IKE SA's ESP: where it goes, and which SA seals the next packet.
//!
//! A Quick Mode that replaces an SA pair (a rekey, RFC 2409 §5.5) ends with the initiator's
//! message 3, and its responder installs the new pair only once that message has arrived.
//! When the gateway initiated the rekey, ESP sealed with the new SA right after message 3
//! could overtake it, or outrun a lost message 3 until the client's retransmitted message 2
//! fetches it again, and reach a client that cannot open it yet. So the gateway keeps sealing
//! with the SA it replaced until the new inbound SA has carried an authentic packet from the
//! client (proof that the client has the pair), the replaced pair is deleted or expires, or
//! [`SWITCH_AFTER`] has passed. Both ends keep replaced SAs until they expire or are deleted
//! (and a replaced SA has at least 2^24 sequence numbers left), so nothing is lost meanwhile.
//! The in-repo client answers the gateway's Quick Mode and switches at once: the gateway
//! installed the pair before it sent message 3.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_esp::OutboundSa;

use super::Inbound;

/// Longest time the replaced SA goes on sealing when the client sends nothing on the new one:
/// past one lost message 3 and strongSwan's first retransmission (4 s) of message 2.
pub const SWITCH_AFTER: Duration = Duration::from_secs(5);

/// Fraction (per cent) of a kilobyte lifetime after which the SA is rekeyed.
const SOFT_KB_PERCENT: u64 = 90;

/// Where and how an IKE SA's outbound ESP goes.
pub(super) struct Outbound {
    pub spi: u32,
    pub sa: OutboundSa,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub udp_encap: bool,
    /// Payload octets after which IKE should replace the SA (90 % of its kilobyte lifetime).
    pub soft_bytes: Option<u64>,
    /// The SA this one replaced, while it still seals.
    superseded: Option<Superseded>,
}

/// A replaced outbound SA that seals until the client shows it has the new pair.
struct Superseded {
    spi: u32,
    old: Arc<Mutex<Outbound>>,
    /// The inbound half of the new pair: its first authentic packet ends the overlap.
    new_inbound: Arc<Inbound>,
    until: Instant,
}

impl Outbound {
    pub fn new(
        spi: u32,
        sa: OutboundSa,
        (local, remote): (SocketAddrV4, SocketAddrV4),
        udp_encap: bool,
        lifetime_kb: Option<u64>,
    ) -> Outbound {
        Outbound {
            spi,
            sa,
            local,
            remote,
            udp_encap,
            soft_bytes: lifetime_kb.map(|kb| kb.saturating_mul(1024) / 100 * SOFT_KB_PERCENT),
            superseded: None,
        }
    }

    /// This SA replaces `old` (the IKE SA's outbound SA until now), whose new inbound half is
    /// `new_inbound`: `old` seals until that carries a packet, or for [`SWITCH_AFTER`].
    pub fn supersede(
        &mut self,
        old: Arc<Mutex<Outbound>>,
        new_inbound: Arc<Inbound>,
        now: Instant,
    ) {
        // One overlap at a time: whatever `old` itself replaced is done with.
        let spi = {
            let mut o = old.lock().unwrap_or_else(|p| p.into_inner());
            o.superseded = None;
            o.spi
        };
        self.superseded = Some(Superseded {
            spi,
            old,
            new_inbound,
            until: now + SWITCH_AFTER,
        });
    }

    /// The replaced SA if it still seals the next packet; forgets it once it no longer does.
    /// `now` is read only during an overlap (not once per packet).
    pub fn still_superseded(
        &mut self,
        now: impl FnOnce() -> Instant,
    ) -> Option<Arc<Mutex<Outbound>>> {
        let s = self.superseded.as_ref()?;
        if s.new_inbound.last_rx_ms.load(Ordering::Relaxed) == 0 && now() < s.until {
            return Some(s.old.clone());
        }
        self.superseded = None;
        None
    }

    /// The outbound SA `spi` was deleted: if this one replaced it, this one seals from now on.
    pub fn forget_superseded(&mut self, spi: u32) {
        if self.superseded.as_ref().is_some_and(|s| s.spi == spi) {
            self.superseded = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn outbound(spi: u32) -> Outbound {
        let suite = super::super::test_suite();
        // SPIs 1..=255 are reserved (RFC 4303 §2.1).
        let sa = OutboundSa::new(0x1000 + spi, suite, &[7; 20], [1; 32])
            .unwrap_or_else(|e| panic!("outbound SA: {e}"));
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 4500);
        Outbound::new(0x1000 + spi, sa, (a, a), true, None)
    }

    fn inbound() -> Arc<Inbound> {
        Arc::new(Inbound::for_test())
    }

    #[test]
    fn the_replaced_sa_seals_until_the_new_pair_carries_a_packet() {
        let t0 = Instant::now();
        let old = Arc::new(Mutex::new(outbound(1)));
        let new_in = inbound();
        let mut new = outbound(2);
        new.supersede(old, new_in.clone(), t0);
        let spi =
            |o: Option<Arc<Mutex<Outbound>>>| o.map(|o| o.lock().map_or(0, |o| o.spi - 0x1000));
        assert_eq!(spi(new.still_superseded(|| t0)), Some(1));
        assert_eq!(spi(new.still_superseded(|| t0 + SWITCH_AFTER / 2)), Some(1));
        new_in.last_rx_ms.store(5, Ordering::Relaxed);
        assert_eq!(spi(new.still_superseded(|| t0 + SWITCH_AFTER / 2)), None);
        assert!(new.superseded.is_none(), "forgotten once done");
    }

    #[test]
    fn the_new_sa_seals_after_the_overlap_or_once_the_old_is_deleted() {
        let t0 = Instant::now();
        let mut new = outbound(2);
        new.supersede(Arc::new(Mutex::new(outbound(1))), inbound(), t0);
        assert!(new.still_superseded(|| t0 + SWITCH_AFTER).is_none());

        let mut new = outbound(3);
        new.supersede(Arc::new(Mutex::new(outbound(2))), inbound(), t0);
        new.forget_superseded(0x1009);
        assert!(new.still_superseded(|| t0).is_some());
        new.forget_superseded(0x1002);
        assert!(new.still_superseded(|| t0).is_none());
    }

    #[test]
    fn overlaps_do_not_chain() {
        let t0 = Instant::now();
        let first = Arc::new(Mutex::new(outbound(1)));
        let second = Arc::new(Mutex::new(outbound(2)));
        second
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .supersede(first, inbound(), t0);
        let mut third = outbound(3);
        third.supersede(second.clone(), inbound(), t0);
        let second = second.lock().unwrap_or_else(|p| p.into_inner());
        assert!(second.superseded.is_none());
    }
}
