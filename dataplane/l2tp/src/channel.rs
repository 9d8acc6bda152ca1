//! Reliable delivery of control messages for one tunnel (RFC 2661 §5.8, Appendix A), sans-IO.
//!
//! - Ns starts at 0 and counts every non-ZLB message we send; Nr is the next Ns we expect.
//!   Sequence numbers compare modulo 2^16: a received Ns within the 32768 values up to and
//!   including the last received one is a duplicate (§5.8).
//! - Sending: at most `min(cwnd, peer window)` messages are unacknowledged. The peer window is
//!   its Receive Window Size AVP (4 when absent; our use is capped at [`MAX_SEND_WINDOW`]).
//!   `cwnd` follows Appendix A: starts at 1, +1 per acknowledged message below `ssthresh`
//!   (slow start), +1 per `cwnd` acknowledgements above it; a retransmission halves `ssthresh`
//!   (at least 1) and resets `cwnd` to 1. Further messages wait in a queue of at most
//!   [`MAX_SEND_QUEUE`].
//! - Each unacknowledged message has its own timer: first retransmission after
//!   `retransmit_initial` (1 s), then doubling up to `retransmit_cap` (8 s). A message not
//!   acknowledged after `max_retransmits` retransmissions (5) makes the channel dead; with the
//!   defaults that is 1+2+4+8+8+8 = 31 s, the RFC's "full retransmission cycle".
//!   Retransmissions keep their Ns and carry the current Nr.
//! - Receiving: the next expected message is delivered; messages ahead of it but within our
//!   advertised window are buffered (at most `recv_window`) and delivered in order once the gap
//!   fills; messages further ahead are dropped (the peer retransmits). Duplicates are dropped
//!   and acknowledged at once (a lost ZLB must not stall the peer).
//! - Acknowledgement: every message we send carries Nr. When a new message was delivered and
//!   nothing goes back within [`ACK_DELAY`], a ZLB (header only, Ns = next Ns, not consuming a
//!   sequence number) is sent. Out-of-order and duplicate receipts are acknowledged at once, and
//!   so is every second delivered message that nothing acknowledged yet (as TCP acknowledges
//!   every second segment): a peer sending a burst through its window must not wait
//!   [`ACK_DELAY`] per window.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::header::{CONTROL_HEADER_LEN, HeaderRepr, NR_OFFSET, NS_OFFSET, put16};

/// Peer window assumed when the Receive Window Size AVP is absent (§4.4.3).
pub const DEFAULT_PEER_WINDOW: u16 = 4;
/// Most messages we keep unacknowledged, whatever the peer advertises.
pub const MAX_SEND_WINDOW: u16 = 256;
/// Most messages waiting for the send window.
pub const MAX_SEND_QUEUE: usize = 256;
/// Delay before a ZLB acknowledges a delivered message when no reply carries the ack.
pub const ACK_DELAY: Duration = Duration::from_millis(100);

/// Reliability parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// Receive Window Size we advertise (also the out-of-order buffer size; at least 1).
    pub recv_window: u16,
    /// First retransmission timeout (§5.8 recommends 1 s).
    pub retransmit_initial: Duration,
    /// Cap on the back-off interval (§5.8: at least 8 s).
    pub retransmit_cap: Duration,
    /// Retransmissions of one message before the peer is declared dead (§5.8 recommends 5).
    pub max_retransmits: u32,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            recv_window: 16,
            retransmit_initial: Duration::from_secs(1),
            retransmit_cap: Duration::from_secs(8),
            max_retransmits: 5,
        }
    }
}

impl ChannelConfig {
    /// Time from the first transmission of a message until the channel gives up on it.
    pub fn retransmit_cycle(&self) -> Duration {
        let mut interval = self.retransmit_initial;
        let mut total = Duration::ZERO;
        for _ in 0..=self.max_retransmits.min(64) {
            total = total.saturating_add(interval);
            interval = interval.saturating_mul(2).min(self.retransmit_cap);
        }
        total
    }
}

/// What happened to a received message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// In order: process it now, then drain [`ControlChannel::pop_ready`].
    Deliver,
    /// Ahead of the next expected message, buffered for in-order delivery.
    Buffered,
    /// Already received: dropped, acknowledgement scheduled.
    Duplicate,
    /// Beyond our receive window (or buffer full): dropped.
    OutOfWindow,
    /// A ZLB: only its Nr was used.
    Zlb,
}

/// Counters of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelStats {
    /// Messages sent for the first time.
    pub tx_messages: u64,
    /// Retransmissions.
    pub retransmits: u64,
    /// ZLBs sent.
    pub tx_zlb: u64,
    /// Messages delivered in order.
    pub rx_delivered: u64,
    /// Duplicates dropped.
    pub rx_duplicates: u64,
    /// Messages dropped beyond the window.
    pub rx_out_of_window: u64,
}

#[derive(Debug, Clone)]
struct InFlight {
    ns: u16,
    datagram: Vec<u8>,
    retransmits: u32,
    interval: Duration,
    deadline: Instant,
    resend: bool,
}

/// Control-channel state of one tunnel.
#[derive(Debug, Clone)]
pub struct ControlChannel {
    cfg: ChannelConfig,
    next_ns: u16,
    next_nr: u16,
    peer_window: u16,
    cwnd: u16,
    ssthresh: u16,
    ca_acks: u16,
    in_flight: VecDeque<InFlight>,
    queue: VecDeque<Vec<u8>>,
    reorder: BTreeMap<u16, Vec<u8>>,
    ack_due: Option<Instant>,
    /// Messages delivered since anything we sent carried Nr.
    unacked: u16,
    dead: bool,
    stats: ChannelStats,
}

/// `a - b` as a signed distance in 16-bit sequence space.
fn distance(a: u16, b: u16) -> i32 {
    i32::from(a.wrapping_sub(b) as i16)
}

impl ControlChannel {
    /// A fresh channel (Ns = Nr = 0, peer window [`DEFAULT_PEER_WINDOW`]).
    pub fn new(mut cfg: ChannelConfig) -> Self {
        cfg.recv_window = cfg.recv_window.max(1);
        Self {
            cfg,
            next_ns: 0,
            next_nr: 0,
            peer_window: DEFAULT_PEER_WINDOW,
            cwnd: 1,
            ssthresh: DEFAULT_PEER_WINDOW,
            ca_acks: 0,
            in_flight: VecDeque::new(),
            queue: VecDeque::new(),
            reorder: BTreeMap::new(),
            ack_due: None,
            unacked: 0,
            dead: false,
            stats: ChannelStats::default(),
        }
    }

    /// Sets the peer's Receive Window Size. 0 is invalid (§5.8); callers reject it, and here it
    /// is treated as 1 so the channel can still deliver a StopCCN.
    pub fn set_peer_window(&mut self, window: u16) {
        self.peer_window = window.clamp(1, MAX_SEND_WINDOW);
        self.ssthresh = self.peer_window;
        self.cwnd = self.cwnd.min(self.peer_window);
    }

    /// Counters.
    pub fn stats(&self) -> &ChannelStats {
        &self.stats
    }

    /// The peer window in use.
    pub fn peer_window(&self) -> u16 {
        self.peer_window
    }

    /// Current send window: `min(cwnd, peer window)`.
    pub fn send_window(&self) -> u16 {
        self.cwnd.min(self.peer_window).max(1)
    }

    /// Messages sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Messages waiting for the window.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Nothing unacknowledged and nothing queued.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty() && self.queue.is_empty()
    }

    /// A message exhausted its retransmissions: the peer is unreachable.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Next Ns to be assigned.
    pub fn next_ns(&self) -> u16 {
        self.next_ns
    }

    /// Next Ns expected from the peer (the Nr we send).
    pub fn next_nr(&self) -> u16 {
        self.next_nr
    }

    /// Queues a complete control datagram (its Ns/Nr are filled in when sent). Fails when
    /// [`MAX_SEND_QUEUE`] messages already wait.
    pub fn send(&mut self, datagram: Vec<u8>) -> Result<(), Vec<u8>> {
        if self.queue.len() >= MAX_SEND_QUEUE || datagram.len() < CONTROL_HEADER_LEN {
            return Err(datagram);
        }
        self.queue.push_back(datagram);
        Ok(())
    }

    /// Drops messages not yet sent (before a StopCCN: unsent messages would only delay it).
    /// Messages in flight keep being retransmitted so the peer can deliver in order.
    pub fn drop_unsent(&mut self) {
        self.queue.clear();
    }

    /// Forgets everything unacknowledged or unsent (after receiving StopCCN: the channel only
    /// keeps acknowledging retransmissions).
    pub fn abandon(&mut self) {
        self.queue.clear();
        self.in_flight.clear();
        self.reorder.clear();
    }

    /// Processes a received control message with header `ns`/`nr`; `datagram` is the whole
    /// message, kept if it must be buffered. `zlb` when it has no AVPs.
    pub fn on_receive(
        &mut self,
        now: Instant,
        ns: u16,
        nr: u16,
        zlb: bool,
        datagram: &[u8],
    ) -> RxVerdict {
        self.process_nr(nr);
        if zlb {
            return RxVerdict::Zlb;
        }
        let d = distance(ns, self.next_nr);
        if d == 0 {
            self.next_nr = self.next_nr.wrapping_add(1);
            self.stats.rx_delivered += 1;
            self.delivered(now);
            RxVerdict::Deliver
        } else if d < 0 || d == i32::from(i16::MIN) {
            // Within the 32768 values up to the last received one: duplicate (§5.8).
            self.stats.rx_duplicates += 1;
            self.schedule_ack(now);
            RxVerdict::Duplicate
        } else if d < i32::from(self.cfg.recv_window)
            && (self.reorder.contains_key(&ns)
                || self.reorder.len() < usize::from(self.cfg.recv_window))
        {
            self.reorder.entry(ns).or_insert_with(|| datagram.to_vec());
            self.schedule_ack(now);
            RxVerdict::Buffered
        } else {
            self.stats.rx_out_of_window += 1;
            RxVerdict::OutOfWindow
        }
    }

    /// The next buffered message that is now in order, if any.
    pub fn pop_ready(&mut self, now: Instant) -> Option<Vec<u8>> {
        let m = self.reorder.remove(&self.next_nr)?;
        self.next_nr = self.next_nr.wrapping_add(1);
        self.stats.rx_delivered += 1;
        self.delivered(now);
        Some(m)
    }

    fn schedule_ack(&mut self, at: Instant) {
        self.ack_due = Some(self.ack_due.map_or(at, |d| d.min(at)));
    }

    /// A message was delivered: acknowledge it after [`ACK_DELAY`] unless a reply carries the
    /// ack first, or at once when it is the second one waiting.
    fn delivered(&mut self, now: Instant) {
        self.unacked = self.unacked.saturating_add(1);
        let at = if self.unacked >= 2 {
            now
        } else {
            now.checked_add(ACK_DELAY).unwrap_or(now)
        };
        self.schedule_ack(at);
    }

    fn process_nr(&mut self, nr: u16) {
        let Some(first) = self.in_flight.front() else {
            return;
        };
        // Nr acknowledges everything before it; valid only within (first.ns ..= next_ns].
        let acked = distance(nr, first.ns);
        if acked <= 0 || acked > distance(self.next_ns, first.ns) {
            return;
        }
        for _ in 0..acked {
            if self.in_flight.pop_front().is_none() {
                break;
            }
            if self.cwnd < self.ssthresh {
                self.cwnd += 1;
            } else {
                self.ca_acks += 1;
                if self.ca_acks >= self.cwnd {
                    self.ca_acks = 0;
                    self.cwnd += 1;
                }
            }
            self.cwnd = self.cwnd.min(self.peer_window);
        }
    }

    /// Runs retransmission timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dead {
            return;
        }
        let mut congested = false;
        for m in self.in_flight.iter_mut() {
            if m.resend || now < m.deadline {
                continue;
            }
            if m.retransmits >= self.cfg.max_retransmits {
                self.dead = true;
                return;
            }
            m.retransmits += 1;
            m.interval = m
                .interval
                .saturating_mul(2)
                .min(self.cfg.retransmit_cap.max(self.cfg.retransmit_initial));
            m.deadline = now.checked_add(m.interval).unwrap_or(now);
            m.resend = true;
            congested = true;
        }
        if congested {
            self.ssthresh = (self.cwnd / 2).max(1);
            self.cwnd = 1;
            self.ca_acks = 0;
        }
    }

    /// When [`ControlChannel::handle_timeout`] or [`ControlChannel::poll_transmit`] next has
    /// work (earliest retransmission or delayed ack). `None` when dead.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        let rtx = self
            .in_flight
            .iter()
            .filter(|m| !m.resend)
            .map(|m| m.deadline)
            .min();
        match (rtx, self.ack_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next datagram to send: a due retransmission, a queued message the window allows, or
    /// a due ZLB addressed to `peer_tunnel`.
    pub fn poll_transmit(&mut self, now: Instant, peer_tunnel: u16) -> Option<Vec<u8>> {
        if self.dead {
            return None;
        }
        let nr = self.next_nr;
        if let Some(m) = self.in_flight.iter_mut().find(|m| m.resend) {
            m.resend = false;
            put16(&mut m.datagram, NR_OFFSET, nr);
            self.stats.retransmits += 1;
            self.ack_due = None;
            self.unacked = 0;
            return Some(m.datagram.clone());
        }
        if self.in_flight.len() < usize::from(self.send_window())
            && let Some(mut datagram) = self.queue.pop_front()
        {
            let ns = self.next_ns;
            self.next_ns = self.next_ns.wrapping_add(1);
            put16(&mut datagram, NS_OFFSET, ns);
            put16(&mut datagram, NR_OFFSET, nr);
            let out = datagram.clone();
            self.in_flight.push_back(InFlight {
                ns,
                datagram,
                retransmits: 0,
                interval: self.cfg.retransmit_initial,
                deadline: now.checked_add(self.cfg.retransmit_initial).unwrap_or(now),
                resend: false,
            });
            self.stats.tx_messages += 1;
            self.ack_due = None;
            self.unacked = 0;
            return Some(out);
        }
        if self.ack_due.is_some_and(|d| d <= now) {
            self.ack_due = None;
            self.unacked = 0;
            self.stats.tx_zlb += 1;
            let mut zlb = Vec::with_capacity(CONTROL_HEADER_LEN);
            HeaderRepr::control(peer_tunnel, 0, self.next_ns, nr).emit(&mut zlb, 0);
            return Some(zlb);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn msg() -> Vec<u8> {
        let mut v = Vec::new();
        HeaderRepr::control(7, 0, 0, 0).emit(&mut v, 8);
        v.extend_from_slice(&[0x80, 8, 0, 0, 0, 0, 0, 6]);
        v
    }

    fn ns_of(d: &[u8]) -> u16 {
        u16::from_be_bytes([d[8], d[9]])
    }

    #[test]
    fn window_slow_start_and_retransmit_budget() {
        let t0 = Instant::now();
        let mut c = ControlChannel::new(ChannelConfig::default());
        c.set_peer_window(4);
        for _ in 0..6 {
            c.send(msg()).unwrap();
        }
        // cwnd starts at 1.
        assert_eq!(ns_of(&c.poll_transmit(t0, 7).unwrap()), 0);
        assert!(c.poll_transmit(t0, 7).is_none());
        c.on_receive(t0, 0, 1, true, &[]);
        assert_eq!(c.send_window(), 2);
        assert_eq!(ns_of(&c.poll_transmit(t0, 7).unwrap()), 1);
        assert_eq!(ns_of(&c.poll_transmit(t0, 7).unwrap()), 2);
        assert!(c.poll_transmit(t0, 7).is_none());
        // Bogus ack beyond what was sent is ignored.
        c.on_receive(t0, 0, 9, true, &[]);
        assert_eq!(c.in_flight(), 2);
        // Let everything time out: 1+2+4+8+8+8 = 31 s.
        let mut now = t0;
        let mut sent = 0;
        while !c.is_dead() {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
            while c.poll_transmit(now, 7).is_some() {
                sent += 1;
            }
        }
        assert_eq!(now - t0, Duration::from_secs(31));
        assert_eq!(sent, 10);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn receive_order_duplicates_and_window() {
        let t0 = Instant::now();
        let mut c = ControlChannel::new(ChannelConfig {
            recv_window: 4,
            ..Default::default()
        });
        assert_eq!(c.on_receive(t0, 1, 0, false, b"one"), RxVerdict::Buffered);
        assert_eq!(
            c.on_receive(t0, 4, 0, false, b"four"),
            RxVerdict::OutOfWindow
        );
        assert_eq!(c.on_receive(t0, 0, 0, false, b"zero"), RxVerdict::Deliver);
        assert_eq!(c.pop_ready(t0).unwrap(), b"one");
        assert!(c.pop_ready(t0).is_none());
        assert_eq!(c.next_nr(), 2);
        assert_eq!(c.on_receive(t0, 1, 0, false, b"one"), RxVerdict::Duplicate);
        // Old values far back are duplicates too (§5.8 example: last 15 → 32784..65535).
        assert_eq!(
            c.on_receive(t0, 32770, 0, false, b"x"),
            RxVerdict::Duplicate
        );
        // A duplicate is acknowledged at once with a ZLB carrying Nr = 2, Ns = 0.
        let zlb = c.poll_transmit(t0, 9).unwrap();
        assert_eq!(zlb.len(), CONTROL_HEADER_LEN);
        assert_eq!(&zlb[8..12], &[0, 0, 0, 2]);
    }

    #[test]
    fn ack_is_delayed_for_one_message_and_immediate_for_the_second() {
        let t0 = Instant::now();
        let mut c = ControlChannel::new(ChannelConfig::default());
        assert_eq!(c.on_receive(t0, 0, 0, false, b"a"), RxVerdict::Deliver);
        assert!(c.poll_transmit(t0, 9).is_none());
        assert_eq!(c.poll_timeout(), Some(t0 + ACK_DELAY));
        assert_eq!(c.on_receive(t0, 1, 0, false, b"b"), RxVerdict::Deliver);
        let zlb = c.poll_transmit(t0, 9).unwrap();
        assert_eq!(&zlb[8..12], &[0, 0, 0, 2]);
        // The counter restarts after an acknowledgement.
        assert_eq!(c.on_receive(t0, 2, 0, false, b"c"), RxVerdict::Deliver);
        assert!(c.poll_transmit(t0, 9).is_none());
    }

    #[test]
    fn sequence_wraps() {
        let t0 = Instant::now();
        let mut c = ControlChannel::new(ChannelConfig::default());
        c.next_nr = 65535;
        assert_eq!(c.on_receive(t0, 65535, 0, false, b"a"), RxVerdict::Deliver);
        assert_eq!(c.on_receive(t0, 0, 0, false, b"b"), RxVerdict::Deliver);
        assert_eq!(
            c.on_receive(t0, 65535, 0, false, b"a"),
            RxVerdict::Duplicate
        );
        c.next_ns = 65535;
        c.send(msg()).unwrap();
        c.send(msg()).unwrap();
        c.set_peer_window(4);
        c.cwnd = 4;
        assert_eq!(ns_of(&c.poll_transmit(t0, 1).unwrap()), 65535);
        assert_eq!(ns_of(&c.poll_transmit(t0, 1).unwrap()), 0);
        c.on_receive(t0, 0, 1, true, &[]);
        assert!(c.is_idle());
    }
}
