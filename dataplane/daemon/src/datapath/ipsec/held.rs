//! ESP that overtakes Quick Mode message 3.
//!
//! A client installs its ESP SAs when it receives our Quick Mode message 2 and sends its
//! first L2TP message (SCCRQ) right after message 3 (RFC 2409 §5.5). ESP goes straight to
//! the receive thread, message 3 through the IKE thread, so the ESP packet can arrive while
//! its SPI is still unknown; dropped, it costs the client a retransmission (about 1 s).
//!
//! The IKE thread therefore announces the SPI of each message 2 it sends
//! ([`sluice_ike::responder::Event::ChildSaExpected`]). ESP for such an SPI is copied here
//! and passed on once the pair is installed. Only SPIs we just handed out are held (an
//! off-path sender cannot know them), for [`HOLD`] at most, [`PER_SPI`] packets each and
//! [`MAX_SPIS`] SPIs in all: a held packet is still checked against the SA's keys when it
//! is released.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// How long ESP for an announced SPI is held (covers a lost message 3 and its retransmission
/// after our message 2's first resend).
pub const HOLD: Duration = Duration::from_secs(3);
/// Packets held per SPI, at most.
pub const PER_SPI: usize = 4;
/// SPIs announced at once, at most (Quick Modes in flight on a busy gateway).
pub const MAX_SPIS: usize = 4096;
/// Largest packet held (an SCCRQ with hidden AVPs is a few hundred bytes).
pub const MAX_PACKET: usize = 2048;

/// One held ESP packet and where it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldPacket {
    /// The ESP packet (from the SPI on).
    pub esp: Vec<u8>,
    /// The client's address (and NAT-T port, or 0 for raw ESP).
    pub outer: SocketAddrV4,
    /// Our address it was sent to.
    pub local: Ipv4Addr,
}

/// What [`Held::hold`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Kept until its SA is installed.
    Held,
    /// The SPI is announced but its share is used up (or the packet is too large).
    Full,
    /// Not an announced SPI (or its time is up): an unknown SPI.
    NotExpected,
}

/// Announced SPIs and their held packets.
#[derive(Debug, Default)]
pub struct Held {
    spis: HashMap<u32, Waiting>,
}

#[derive(Debug)]
struct Waiting {
    until: Instant,
    packets: Vec<HeldPacket>,
}

impl Held {
    /// Announces `spi` (Quick Mode message 2 sent at `now`). Returns the number of packets
    /// dropped by pruning SPIs whose time was up. A full table ignores the announcement.
    pub fn expect(&mut self, spi: u32, now: Instant) -> usize {
        let pruned = self.prune(now);
        if self.spis.len() < MAX_SPIS || self.spis.contains_key(&spi) {
            self.spis.insert(
                spi,
                Waiting {
                    until: now + HOLD,
                    packets: Vec::new(),
                },
            );
        }
        pruned
    }

    /// Keeps a copy of `esp` (from `outer` to `local`) if `spi` is announced and its share
    /// is not used up. Nothing is copied otherwise.
    pub fn hold(
        &mut self,
        spi: u32,
        esp: &[u8],
        (outer, local): (SocketAddrV4, Ipv4Addr),
        now: Instant,
    ) -> HoldOutcome {
        let Some(w) = self.spis.get_mut(&spi).filter(|w| w.until > now) else {
            return HoldOutcome::NotExpected;
        };
        if w.packets.len() >= PER_SPI || esp.len() > MAX_PACKET {
            return HoldOutcome::Full;
        }
        w.packets.push(HeldPacket {
            esp: esp.to_vec(),
            outer,
            local,
        });
        HoldOutcome::Held
    }

    /// The packets held for `spi`, in arrival order, and forgets the SPI (its SA is
    /// installed, or the exchange failed).
    pub fn release(&mut self, spi: u32) -> Vec<HeldPacket> {
        self.spis
            .remove(&spi)
            .map(|w| w.packets)
            .unwrap_or_default()
    }

    /// Forgets SPIs whose time is up; returns how many packets they held.
    pub fn prune(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        self.spis.retain(|_, w| {
            let keep = w.until > now;
            if !keep {
                dropped += w.packets.len();
            }
            keep
        });
        dropped
    }

    /// SPIs announced and not yet released or pruned.
    pub fn len(&self) -> usize {
        self.spis.len()
    }

    /// No SPI is announced.
    pub fn is_empty(&self) -> bool {
        self.spis.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> (SocketAddrV4, Ipv4Addr) {
        (
            SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 10), 4500),
            Ipv4Addr::new(198, 51, 100, 1),
        )
    }

    fn packet(n: u8) -> HeldPacket {
        let (outer, local) = from();
        HeldPacket {
            esp: vec![n; 64],
            outer,
            local,
        }
    }

    /// Offers packet `n` (64 bytes of `n`) for `spi`.
    fn offer(h: &mut Held, spi: u32, n: u8, now: Instant) -> HoldOutcome {
        h.hold(spi, &[n; 64], from(), now)
    }

    #[test]
    fn only_announced_spis_are_held_and_released_in_order() {
        let now = Instant::now();
        let mut h = Held::default();
        assert_eq!(offer(&mut h, 7, 1, now), HoldOutcome::NotExpected);
        h.expect(7, now);
        assert_eq!(offer(&mut h, 7, 1, now), HoldOutcome::Held);
        assert_eq!(offer(&mut h, 7, 2, now), HoldOutcome::Held);
        assert_eq!(offer(&mut h, 8, 3, now), HoldOutcome::NotExpected);
        assert_eq!(h.release(7), vec![packet(1), packet(2)]);
        assert!(h.is_empty());
        assert_eq!(offer(&mut h, 7, 4, now), HoldOutcome::NotExpected);
        assert!(h.release(7).is_empty());
    }

    #[test]
    fn each_spi_holds_a_few_small_packets_for_a_short_time() {
        let now = Instant::now();
        let mut h = Held::default();
        h.expect(7, now);
        for n in 0..PER_SPI as u8 {
            assert_eq!(offer(&mut h, 7, n, now), HoldOutcome::Held);
        }
        assert_eq!(offer(&mut h, 7, 9, now), HoldOutcome::Full);
        h.expect(9, now);
        let big = [0; MAX_PACKET + 1];
        assert_eq!(h.hold(9, &big, from(), now), HoldOutcome::Full);
        // Time is up: nothing more is held, and pruning reports what was dropped.
        assert_eq!(offer(&mut h, 9, 1, now + HOLD), HoldOutcome::NotExpected);
        assert_eq!(h.prune(now + HOLD), PER_SPI);
        assert!(h.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_expired_spis_make_room() {
        let now = Instant::now();
        let mut h = Held::default();
        for spi in 0..MAX_SPIS as u32 {
            h.expect(spi, now);
        }
        h.expect(u32::MAX, now);
        assert_eq!(h.len(), MAX_SPIS);
        assert_eq!(offer(&mut h, u32::MAX, 1, now), HoldOutcome::NotExpected);
        h.expect(u32::MAX, now + HOLD);
        assert_eq!(h.len(), 1);
        assert_eq!(offer(&mut h, u32::MAX, 1, now + HOLD), HoldOutcome::Held);
    }
}
