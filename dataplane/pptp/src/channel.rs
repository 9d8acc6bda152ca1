//! Per-call enhanced GRE data channel state (RFC 2637 §4.2–§4.4), sans-IO.
//!
//! Sequence and acknowledgement numbers are 32-bit and compared with serial-number arithmetic.
//! Receive: a packet is accepted when its sequence number is newer than the last accepted one
//! (gaps are fine: PPP/MPPE copes with loss); equal → duplicate, older → out of window.
//!
//! Transmit never waits for the peer's window. §4.4 asks a sender to stop when its unacknowledged
//! packets reach the peer's receive window, but the stacks deployed do not: the Linux kernel's
//! `pptp` module records the peer's acknowledgements and never limits sending, and pptp-linux
//! and pptpd ignore the window they are given (FreeBSD's mpd5 is the one stack found to enforce
//! it). A sender that honours the window stalls against them (their acknowledgements are sparse:
//! the kernel sends no ack-only packets), and a packet held
//! back or dropped at this layer is a loss that stateful MPPE cannot survive. So data always goes
//! out; packets beyond the peer's window are counted ([`ChannelStats::tx_beyond_window`]), and a
//! window of 0 means "unlimited". Acknowledgements ride on the next data packet, go out at once
//! after half of our advertised window, or after [`ACK_DELAY`] as an ack-only packet from
//! [`GreChannel::poll_ack_only`]; a peer that does enforce our window never waits on us for
//! longer than that.

use std::time::{Duration, Instant};

use crate::gre::GreRepr;

/// How long a pending acknowledgement waits for a data packet to ride on before an ack-only
/// packet is due (§4.4 leaves the policy to the implementation; 100 ms keeps peers' windows open).
pub const ACK_DELAY: Duration = Duration::from_millis(100);

/// Default number of accepted packets after which an acknowledgement is sent at once: half of
/// the receive window we advertise by default (64), so a peer honouring that window never stalls
/// waiting for [`ACK_DELAY`].
pub const DEFAULT_ACK_EVERY: u32 = 32;

/// `a` is newer than `b` in 32-bit serial-number arithmetic.
pub fn seq_gt(a: u32, b: u32) -> bool {
    // Reinterpreting the difference as signed is the serial-number comparison.
    (a.wrapping_sub(b) as i32) > 0
}

/// What to do with a received GRE packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxVerdict {
    /// New data: deliver the payload to PPP.
    Accept,
    /// Same sequence number as the last accepted packet: drop.
    Duplicate,
    /// Older than the last accepted packet (late or replayed): drop.
    OutOfWindow,
    /// No payload; only the acknowledgement was processed.
    AckOnly,
}

/// Counters of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelStats {
    /// Data packets accepted.
    pub rx_accepted: u64,
    /// Duplicates dropped.
    pub rx_duplicate: u64,
    /// Late packets dropped.
    pub rx_out_of_window: u64,
    /// Ack-only packets received.
    pub rx_ack_only: u64,
    /// Data packets sent.
    pub tx_data: u64,
    /// Ack-only packets sent.
    pub tx_ack_only: u64,
    /// Data packets sent while the peer's advertised window was already full (sent anyway;
    /// see the module documentation).
    pub tx_beyond_window: u64,
}

/// The header [`GreChannel::write_header`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The header.
    pub repr: GreRepr,
    /// The peer's advertised window was already full (the packet goes out all the same).
    pub beyond_window: bool,
}

/// GRE state of one call.
#[derive(Debug, Clone)]
pub struct GreChannel {
    peer_call_id: u16,
    peer_recv_window: u16,
    next_tx_seq: u32,
    /// Highest of our sequence numbers the peer acknowledged (initially "one before the first").
    peer_acked: u32,
    rx_last: Option<u32>,
    /// Set while an acknowledgement of `rx_last` is owed.
    ack_due: Option<Instant>,
    /// Packets accepted since the last acknowledgement went out.
    rx_unacked: u32,
    /// Acknowledge at once after this many accepted packets.
    ack_every: u32,
    stats: ChannelStats,
}

impl GreChannel {
    /// A channel sending to `peer_call_id` with the peer's advertised receive window.
    pub fn new(peer_call_id: u16, peer_recv_window: u16, now: Instant) -> Self {
        let _ = now;
        Self {
            peer_call_id,
            peer_recv_window,
            next_tx_seq: 0,
            peer_acked: u32::MAX,
            rx_last: None,
            ack_due: None,
            rx_unacked: 0,
            ack_every: DEFAULT_ACK_EVERY,
            stats: ChannelStats::default(),
        }
    }

    /// Tells the channel the receive window we advertised (OCRP/OCRQ), so acknowledgements go
    /// out after half of it at the latest: the peer's window never fills while we have data
    /// for it to send (§4.4 leaves acknowledgement timing to the implementation).
    pub fn set_recv_window(&mut self, window: u16) {
        self.ack_every = u32::from(window / 2).max(1);
    }

    /// The call id put into outgoing headers.
    pub fn peer_call_id(&self) -> u16 {
        self.peer_call_id
    }

    /// Counters.
    pub fn stats(&self) -> &ChannelStats {
        &self.stats
    }

    /// The peer's advertised receive window; `None` when it advertised 0 (no limit).
    pub fn window(&self) -> Option<u32> {
        (self.peer_recv_window != 0).then_some(u32::from(self.peer_recv_window))
    }

    /// Packets sent and not yet acknowledged.
    pub fn unacked(&self) -> u32 {
        self.next_tx_seq
            .wrapping_sub(1)
            .wrapping_sub(self.peer_acked)
    }

    /// Highest sequence number accepted from the peer.
    pub fn last_received(&self) -> Option<u32> {
        self.rx_last
    }

    /// Processes a received header; the caller has matched its call id to this channel.
    pub fn on_receive(&mut self, now: Instant, repr: &GreRepr) -> RxVerdict {
        if let Some(ack) = repr.ack {
            self.process_ack(ack);
        }
        let Some(seq) = repr.seq else {
            self.stats.rx_ack_only += 1;
            return RxVerdict::AckOnly;
        };
        match self.rx_last {
            Some(last) if seq == last => {
                self.stats.rx_duplicate += 1;
                RxVerdict::Duplicate
            }
            Some(last) if !seq_gt(seq, last) => {
                self.stats.rx_out_of_window += 1;
                RxVerdict::OutOfWindow
            }
            _ => {
                self.rx_last = Some(seq);
                self.rx_unacked = self.rx_unacked.saturating_add(1);
                if self.rx_unacked >= self.ack_every {
                    self.ack_due = Some(now);
                } else if self.ack_due.is_none() {
                    self.ack_due = Some(now.checked_add(ACK_DELAY).unwrap_or(now));
                }
                self.stats.rx_accepted += 1;
                RxVerdict::Accept
            }
        }
    }

    fn process_ack(&mut self, ack: u32) {
        let highest_sent = self.next_tx_seq.wrapping_sub(1);
        // Ignore stale acks and acks for packets never sent.
        if seq_gt(ack, self.peer_acked) && !seq_gt(ack, highest_sent) {
            self.peer_acked = ack;
        }
    }

    /// Appends the header of the next data packet (sequence number, piggybacked ack) to `out`;
    /// the caller appends `payload_len` payload bytes after it. Never refuses (module docs).
    pub fn write_header(&mut self, payload_len: u16, out: &mut Vec<u8>) -> Sent {
        let beyond_window = self.window().is_some_and(|w| self.unacked() >= w);
        if beyond_window {
            self.stats.tx_beyond_window += 1;
        }
        let ack = if self.ack_due.take().is_some() {
            self.rx_unacked = 0;
            self.rx_last
        } else {
            None
        };
        let repr = GreRepr {
            call_id: self.peer_call_id,
            seq: Some(self.next_tx_seq),
            ack,
            payload_len,
        };
        self.next_tx_seq = self.next_tx_seq.wrapping_add(1);
        self.stats.tx_data += 1;
        repr.emit_vec(out);
        Sent {
            repr,
            beyond_window,
        }
    }

    /// When [`GreChannel::poll_ack_only`] next has something to send.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ack_due
    }

    /// Timer hook for symmetry with the other engines; the due ack is taken by `poll_ack_only`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    /// An ack-only header (no payload) when an acknowledgement has waited [`ACK_DELAY`].
    pub fn poll_ack_only(&mut self, now: Instant) -> Option<GreRepr> {
        let due = self.ack_due?;
        if now < due {
            return None;
        }
        self.ack_due = None;
        self.rx_unacked = 0;
        let ack = self.rx_last?;
        self.stats.tx_ack_only += 1;
        Some(GreRepr {
            call_id: self.peer_call_id,
            seq: None,
            ack: Some(ack),
            payload_len: 0,
        })
    }
}
