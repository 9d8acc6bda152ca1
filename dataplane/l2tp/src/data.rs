//! Optional sequencing of data messages for one session (RFC 2661 §5.4).
//!
//! Data messages are never retransmitted; sequence numbers only let the receiver drop stale
//! (late or duplicated) packets. Gaps are tolerated: PPP copes with loss. Nr is reserved on data
//! messages: we send 0 and ignore it on receipt (§3.1).
//!
//! Who sends Ns: if the LAC sent Sequencing Required in ICCN, both sides always send it.
//! Otherwise the LNS decides (§5.4): as the LNS we start sending Ns as soon as received data
//! carries it (and never stop, which the RFC allows); as the LAC we follow the LNS: sequence
//! numbers in received data turn ours on, their absence turns ours off. The Ns counter continues
//! where it left off when re-enabled.

use crate::endpoint::Role;

/// Verdict on a received data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqVerdict {
    /// Deliver to PPP.
    Accept,
    /// Ns not newer than the last accepted one: drop.
    Stale,
}

/// Per-session data sequencing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSequencer {
    role: Role,
    required: bool,
    tx_enabled: bool,
    next_ns: u16,
    last_rx: Option<u16>,
    stale: u64,
}

impl DataSequencer {
    /// State for a session in `role`; `required` when Sequencing Required was in ICCN.
    pub fn new(role: Role, required: bool) -> Self {
        Self {
            role,
            required,
            tx_enabled: required,
            next_ns: 0,
            last_rx: None,
            stale: 0,
        }
    }

    /// Whether outgoing data messages carry Ns/Nr now.
    pub fn tx_enabled(&self) -> bool {
        self.tx_enabled
    }

    /// Turns our sequencing on or off (the LNS's prerogative, §5.4); ignored when required.
    pub fn set_tx_enabled(&mut self, on: bool) {
        self.tx_enabled = on || self.required;
    }

    /// (Ns, Nr) for the next outgoing data message, or `None` when sequencing is off.
    pub fn next_tx(&mut self) -> Option<(u16, u16)> {
        if !self.tx_enabled {
            return None;
        }
        let ns = self.next_ns;
        self.next_ns = self.next_ns.wrapping_add(1);
        Some((ns, 0))
    }

    /// Classifies a received data message by its Ns (`None` when S=0) and updates who sends
    /// sequence numbers.
    pub fn on_receive(&mut self, ns: Option<u16>) -> SeqVerdict {
        let Some(ns) = ns else {
            if self.role == Role::Lac && !self.required {
                self.tx_enabled = false;
            }
            return SeqVerdict::Accept;
        };
        self.tx_enabled = true;
        match self.last_rx {
            Some(last) if (ns.wrapping_sub(last) as i16) <= 0 => {
                self.stale += 1;
                SeqVerdict::Stale
            }
            _ => {
                self.last_rx = Some(ns);
                SeqVerdict::Accept
            }
        }
    }

    /// Stale packets dropped so far.
    pub fn stale_count(&self) -> u64 {
        self.stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lns_follows_peer_and_drops_stale() {
        let mut s = DataSequencer::new(Role::Lns, false);
        assert_eq!(s.next_tx(), None);
        assert_eq!(s.on_receive(None), SeqVerdict::Accept);
        assert_eq!(s.on_receive(Some(5)), SeqVerdict::Accept);
        assert_eq!(s.next_tx(), Some((0, 0)));
        assert_eq!(s.on_receive(Some(5)), SeqVerdict::Stale);
        assert_eq!(s.on_receive(Some(3)), SeqVerdict::Stale);
        assert_eq!(s.on_receive(Some(9)), SeqVerdict::Accept);
        assert_eq!(s.on_receive(Some(65535)), SeqVerdict::Stale);
        // LNS keeps sequencing even if the LAC stops.
        assert_eq!(s.on_receive(None), SeqVerdict::Accept);
        assert_eq!(s.next_tx(), Some((1, 0)));
        assert_eq!(s.stale_count(), 3);
    }

    #[test]
    fn lac_follows_lns_unless_required() {
        let mut s = DataSequencer::new(Role::Lac, false);
        s.on_receive(Some(0));
        assert_eq!(s.next_tx(), Some((0, 0)));
        s.on_receive(None);
        assert_eq!(s.next_tx(), None);
        s.on_receive(Some(1));
        assert_eq!(s.next_tx(), Some((1, 0)));

        let mut r = DataSequencer::new(Role::Lac, true);
        r.on_receive(None);
        assert_eq!(r.next_tx(), Some((0, 0)));
        // Wrap-around is newer.
        let mut w = DataSequencer::new(Role::Lns, true);
        assert_eq!(w.on_receive(Some(65535)), SeqVerdict::Accept);
        assert_eq!(w.on_receive(Some(0)), SeqVerdict::Accept);
    }
}
