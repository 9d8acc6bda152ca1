//! The RFC 1661 §4 option-negotiation automaton shared by LCP, IPCP and CCP.
//!
//! The lower layer is always up (the tunnel exists before the engine), so the Initial and
//! Starting states are not represented. Deviations from the state table, for robustness on
//! lossy/duplicating tunnels:
//! - a reply (Ack/Nak/Reject) is processed only once per request Identifier, so duplicated
//!   replies cannot restart negotiation;
//! - in Opened, a Configure-Request identical to the last one we acked is simply re-acked (our
//!   Ack was lost), instead of restarting the negotiation.

use std::time::{Duration, Instant};

use crate::error::{Error, Layer};
use crate::frame::{self, ConfigOption, code};

/// Restart timer (RFC 1661 §4.6).
pub const RESTART: Duration = Duration::from_secs(3);
/// Max-Configure (RFC 1661 §4.6).
pub const MAX_CONFIGURE: u8 = 10;
/// Max-Terminate (RFC 1661 §4.6).
pub const MAX_TERMINATE: u8 = 2;
/// Max-Failure (RFC 1661 §4.6): Naks we send before turning them into Rejects.
pub const MAX_FAILURE: u8 = 5;
/// Naks/Rejects we accept for one negotiation before giving up (non-convergence bound).
pub const MAX_NAKS_RECEIVED: u8 = 20;

/// Automaton state (RFC 1661 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Closed (administratively closed, lower layer up).
    Closed,
    /// Stopped (waiting passively, or finished).
    Stopped,
    /// Closing (Terminate-Request sent after a close).
    Closing,
    /// Stopping (Terminate-Ack sent after a peer Terminate-Request).
    Stopping,
    /// Req-Sent.
    ReqSent,
    /// Ack-Rcvd.
    AckRcvd,
    /// Ack-Sent.
    AckSent,
    /// Opened.
    Opened,
}

/// Verdict on a peer's Configure-Request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// All options acceptable.
    Ack,
    /// Some options need other values (response holds the Nak'ed options).
    Nak,
    /// Some options unrecognized or unacceptable (response holds them).
    Reject,
}

/// Collects the reply to a peer's Configure-Request (RFC 1661 §5.1-§5.4).
#[derive(Debug, Default)]
pub struct Judge {
    nak: Vec<u8>,
    rej: Vec<u8>,
}

impl Judge {
    /// Rejects option `o` (copied verbatim).
    pub fn reject(&mut self, o: &ConfigOption<'_>) {
        frame::push_option(&mut self.rej, o.kind, o.data);
    }
    /// Naks option `kind` suggesting `data`.
    pub fn nak(&mut self, kind: u8, data: &[u8]) {
        frame::push_option(&mut self.nak, kind, data);
    }
    /// The options Nak'ed so far.
    #[cfg(test)]
    pub(crate) fn nak_options(&self) -> &[u8] {
        &self.nak
    }
    /// Whether anything was Nak'ed or rejected.
    pub fn is_clean(&self) -> bool {
        self.nak.is_empty() && self.rej.is_empty()
    }
    /// Final verdict and reply options (`allow_nak` false after Max-Failure turns Naks into Rejects).
    fn finish(self, request: &[u8], allow_nak: bool, out: &mut Vec<u8>) -> Verdict {
        if !self.rej.is_empty() {
            out.extend_from_slice(&self.rej);
            Verdict::Reject
        } else if !self.nak.is_empty() {
            if allow_nak {
                out.extend_from_slice(&self.nak);
                Verdict::Nak
            } else {
                // Reject the options we would have Nak'ed (RFC 1661 §4.6 Max-Failure).
                let kinds: Vec<u8> = frame::options(&self.nak).map(|o| o.kind).collect();
                for o in frame::options(request).filter(|o| kinds.contains(&o.kind)) {
                    frame::push_option(out, o.kind, o.data);
                }
                Verdict::Reject
            }
        } else {
            out.extend_from_slice(request);
            Verdict::Ack
        }
    }
}

/// Protocol-specific option handling plugged into [`Fsm`].
pub trait Negotiator {
    /// Appends our Configure-Request options.
    fn request_options(&mut self, out: &mut Vec<u8>);
    /// Our request was acked.
    fn acked(&mut self, opts: &[u8]);
    /// Our request was Nak'ed or rejected; `Err` ends the negotiation.
    fn nak_or_reject(&mut self, opts: &[u8], reject: bool) -> Result<(), &'static str>;
    /// Judges the peer's request; `Err(())` means "silently discard" (e.g. not ready yet).
    fn judge(&mut self, opts: &[u8], judge: &mut Judge) -> Result<(), ()>;
    /// The peer's request (as acked) becomes effective.
    fn peer_acked(&mut self, _opts: &[u8]) {}
}

/// Layer transitions reported to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerEvent {
    /// This-Layer-Up.
    Up,
    /// This-Layer-Down (left Opened).
    Down,
    /// This-Layer-Finished, with the cause.
    Finished(&'static str),
}

/// Output queue bound shared by the engine.
pub const MAX_TX_QUEUE: usize = 64;

/// Bounded queue of frames to transmit.
#[derive(Debug, Default)]
pub struct Tx {
    frames: std::collections::VecDeque<Vec<u8>>,
    /// Frames dropped because the queue was full.
    pub dropped: u64,
}

impl Tx {
    /// Queues a frame (dropped when the queue is full).
    pub fn push(&mut self, frame: Vec<u8>) {
        if self.frames.len() >= MAX_TX_QUEUE {
            self.dropped += 1;
        } else {
            self.frames.push_back(frame);
        }
    }
    /// Queues a control packet.
    pub fn control(&mut self, protocol: u16, code: u8, id: u8, data: &[u8]) {
        self.push(frame::control_frame(protocol, code, id, data));
    }
    /// Next frame.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }
    /// Queue length.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.frames.len()
    }
}

/// One instance of the automaton.
#[derive(Debug)]
pub struct Fsm {
    protocol: u16,
    layer: Layer,
    state: State,
    next_id: u8,
    req_id: u8,
    awaiting_reply: bool,
    last_request: Vec<u8>,
    last_acked_peer: Option<Vec<u8>>,
    restart_count: u8,
    naks_sent: u8,
    /// Identifier of the last request we Nak'ed or rejected: its retransmission (same Identifier,
    /// our reply was lost) is answered again without counting towards Max-Failure.
    last_naked_id: Option<u8>,
    naks_received: u8,
    timer: Option<Instant>,
    term_id: u8,
    /// Requests sent again on the restart timer (RFC 1661 §4.6).
    retransmits: u64,
}

impl Fsm {
    /// New automaton in Stopped (not yet opened). `first_id` seeds the Identifier sequence.
    pub fn new(protocol: u16, layer: Layer, first_id: u8) -> Self {
        Fsm {
            protocol,
            layer,
            state: State::Stopped,
            next_id: first_id,
            req_id: 0,
            awaiting_reply: false,
            last_request: Vec::new(),
            last_acked_peer: None,
            restart_count: 0,
            naks_sent: 0,
            last_naked_id: None,
            naks_received: 0,
            timer: None,
            term_id: 0,
            retransmits: 0,
        }
    }

    /// Configure- and Terminate-Requests sent again because the restart timer expired.
    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// True in Opened.
    pub fn is_opened(&self) -> bool {
        self.state == State::Opened
    }

    /// Restart timer deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn take_id(&mut self) -> u8 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Active open: sends a Configure-Request (irc, scr → Req-Sent).
    pub fn open(&mut self, now: Instant, neg: &mut dyn Negotiator, tx: &mut Tx) {
        self.restart_count = MAX_CONFIGURE;
        self.naks_received = 0;
        self.naks_sent = 0;
        self.last_naked_id = None;
        self.send_request(now, neg, tx);
        self.state = State::ReqSent;
    }

    fn send_request(&mut self, now: Instant, neg: &mut dyn Negotiator, tx: &mut Tx) {
        let mut opts = Vec::with_capacity(self.last_request.len());
        neg.request_options(&mut opts);
        // A retransmission of unchanged options keeps its Identifier (RFC 1661 §5.1 allows it),
        // so a reply delayed past the restart timer is still accepted.
        if !(self.awaiting_reply && opts == self.last_request) {
            self.req_id = self.take_id();
        }
        self.last_request = opts;
        self.awaiting_reply = true;
        tx.control(
            self.protocol,
            code::CONF_REQ,
            self.req_id,
            &self.last_request,
        );
        self.restart_count = self.restart_count.saturating_sub(1);
        self.timer = Some(now + RESTART);
    }

    fn send_terminate(&mut self, now: Instant, tx: &mut Tx) {
        self.term_id = self.take_id();
        tx.control(self.protocol, code::TERM_REQ, self.term_id, &[]);
        self.restart_count = self.restart_count.saturating_sub(1);
        self.timer = Some(now + RESTART);
    }

    /// Administrative close: Terminate-Request (bounded) → Closing. Returns `Down` if it was Opened.
    pub fn close(&mut self, now: Instant, tx: &mut Tx) -> Option<LayerEvent> {
        match self.state {
            State::Closed | State::Closing => None,
            State::Stopped => {
                self.state = State::Closed;
                self.timer = None;
                None
            }
            State::Stopping => {
                self.state = State::Closing;
                None
            }
            State::ReqSent | State::AckRcvd | State::AckSent | State::Opened => {
                let was_open = self.state == State::Opened;
                self.restart_count = MAX_TERMINATE;
                self.send_terminate(now, tx);
                self.state = State::Closing;
                was_open.then_some(LayerEvent::Down)
            }
        }
    }

    /// Stops the automaton silently (used when the whole link goes down).
    pub fn kill(&mut self) {
        self.state = State::Closed;
        self.timer = None;
    }

    /// Marks the layer finished without a Terminate exchange (e.g. Protocol-Rejected).
    pub fn finish(&mut self) -> Option<LayerEvent> {
        let was_open = self.state == State::Opened;
        self.state = State::Stopped;
        self.timer = None;
        if was_open {
            Some(LayerEvent::Down)
        } else {
            Some(LayerEvent::Finished("rejected by peer"))
        }
    }

    /// Restart-timer expiry (TO+ / TO−).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        neg: &mut dyn Negotiator,
        tx: &mut Tx,
    ) -> Option<LayerEvent> {
        match self.timer {
            Some(t) if now >= t => {}
            _ => return None,
        }
        self.timer = None;
        let expired = self.restart_count == 0;
        match self.state {
            State::Closing | State::Stopping => {
                if expired {
                    self.state = if self.state == State::Closing {
                        State::Closed
                    } else {
                        State::Stopped
                    };
                    Some(LayerEvent::Finished("terminate timeout"))
                } else {
                    self.retransmits += 1;
                    self.send_terminate(now, tx);
                    None
                }
            }
            State::ReqSent | State::AckRcvd | State::AckSent => {
                if expired {
                    self.state = State::Stopped;
                    Some(LayerEvent::Finished(
                        "no reply to Configure-Request (Max-Configure)",
                    ))
                } else {
                    self.retransmits += 1;
                    self.send_request(now, neg, tx);
                    if self.state == State::AckRcvd {
                        self.state = State::ReqSent;
                    }
                    None
                }
            }
            State::Closed | State::Stopped | State::Opened => None,
        }
    }

    /// Handles codes 1-7. Other codes are the caller's business.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        pkt: &frame::ControlPacket<'_>,
        neg: &mut dyn Negotiator,
        tx: &mut Tx,
    ) -> Result<Option<LayerEvent>, Error> {
        match pkt.code {
            code::CONF_REQ => self.rcv_request(now, pkt, neg, tx),
            code::CONF_ACK => self.rcv_ack(now, pkt, neg),
            code::CONF_NAK | code::CONF_REJ => self.rcv_nak(now, pkt, neg, tx),
            code::TERM_REQ => Ok(self.rcv_term_req(now, pkt.id, tx)),
            code::TERM_ACK => Ok(self.rcv_term_ack(now, neg, tx)),
            code::CODE_REJ => {
                // A rejected code 1-7 is fatal (RXJ−); anything else is ignorable (RXJ+).
                match pkt.data.first() {
                    Some(c) if (1..=7).contains(c) => Ok(self.finish()),
                    _ => Ok(None),
                }
            }
            _ => Err(Error::unexpected(self.layer, "unknown code")),
        }
    }

    fn rcv_request(
        &mut self,
        now: Instant,
        pkt: &frame::ControlPacket<'_>,
        neg: &mut dyn Negotiator,
        tx: &mut Tx,
    ) -> Result<Option<LayerEvent>, Error> {
        frame::check_options(pkt.data, self.layer)?;
        match self.state {
            State::Closed => {
                tx.control(self.protocol, code::TERM_ACK, pkt.id, &[]);
                return Ok(None);
            }
            State::Closing | State::Stopping => return Ok(None),
            State::Opened if self.last_acked_peer.as_deref() == Some(pkt.data) => {
                tx.control(self.protocol, code::CONF_ACK, pkt.id, pkt.data);
                return Ok(None);
            }
            _ => {}
        }
        let mut judge = Judge::default();
        if neg.judge(pkt.data, &mut judge).is_err() {
            return Ok(None);
        }
        let mut reply = Vec::new();
        let verdict = judge.finish(pkt.data, self.naks_sent < MAX_FAILURE, &mut reply);
        let mut event = None;
        match self.state {
            State::Stopped => {
                // Passive open (RFC 1661 Stopped + RCR: irc, scr, sca/scn).
                self.restart_count = MAX_CONFIGURE;
                self.naks_received = 0;
                self.send_request(now, neg, tx);
                self.state = State::ReqSent;
            }
            State::Opened => {
                // Renegotiation (tld, scr).
                event = Some(LayerEvent::Down);
                self.restart_count = MAX_CONFIGURE;
                self.naks_received = 0;
                self.send_request(now, neg, tx);
                self.state = State::ReqSent;
            }
            _ => {}
        }
        match verdict {
            Verdict::Ack => {
                self.naks_sent = 0;
                self.last_naked_id = None;
                tx.control(self.protocol, code::CONF_ACK, pkt.id, &reply);
                neg.peer_acked(pkt.data);
                self.last_acked_peer = Some(pkt.data.to_vec());
                match self.state {
                    State::AckRcvd => {
                        self.state = State::Opened;
                        self.timer = None;
                        event = Some(LayerEvent::Up);
                    }
                    State::ReqSent | State::AckSent => self.state = State::AckSent,
                    _ => {}
                }
            }
            Verdict::Nak | Verdict::Reject => {
                if self.last_naked_id != Some(pkt.id) {
                    self.naks_sent = self.naks_sent.saturating_add(1);
                }
                self.last_naked_id = Some(pkt.id);
                let c = if verdict == Verdict::Nak {
                    code::CONF_NAK
                } else {
                    code::CONF_REJ
                };
                tx.control(self.protocol, c, pkt.id, &reply);
                if self.state == State::AckSent {
                    self.state = State::ReqSent;
                }
            }
        }
        Ok(event)
    }

    fn reply_matches(&self, id: u8) -> bool {
        self.awaiting_reply && id == self.req_id
    }

    fn rcv_ack(
        &mut self,
        _now: Instant,
        pkt: &frame::ControlPacket<'_>,
        neg: &mut dyn Negotiator,
    ) -> Result<Option<LayerEvent>, Error> {
        if !self.reply_matches(pkt.id) {
            return Ok(None); // stale or duplicate: silently discarded
        }
        if pkt.data != self.last_request.as_slice() {
            return Err(Error::malformed(
                self.layer,
                "Configure-Ack options differ from request",
            ));
        }
        match self.state {
            State::ReqSent => {
                self.awaiting_reply = false;
                self.restart_count = MAX_CONFIGURE;
                neg.acked(pkt.data);
                self.state = State::AckRcvd;
                Ok(None)
            }
            State::AckSent => {
                self.awaiting_reply = false;
                neg.acked(pkt.data);
                self.state = State::Opened;
                self.timer = None;
                Ok(Some(LayerEvent::Up))
            }
            _ => Ok(None),
        }
    }

    fn rcv_nak(
        &mut self,
        now: Instant,
        pkt: &frame::ControlPacket<'_>,
        neg: &mut dyn Negotiator,
        tx: &mut Tx,
    ) -> Result<Option<LayerEvent>, Error> {
        if !self.reply_matches(pkt.id) {
            return Ok(None);
        }
        frame::check_options(pkt.data, self.layer)?;
        match self.state {
            State::ReqSent | State::AckSent => {}
            _ => return Ok(None),
        }
        self.awaiting_reply = false;
        self.naks_received = self.naks_received.saturating_add(1);
        let reject = pkt.code == code::CONF_REJ;
        if reject && !options_subset(pkt.data, &self.last_request) {
            return Err(Error::malformed(
                self.layer,
                "Configure-Reject of options not requested",
            ));
        }
        if self.naks_received > MAX_NAKS_RECEIVED {
            self.state = State::Stopped;
            self.timer = None;
            return Ok(Some(LayerEvent::Finished("negotiation did not converge")));
        }
        if let Err(why) = neg.nak_or_reject(pkt.data, reject) {
            self.state = State::Stopped;
            self.timer = None;
            return Ok(Some(LayerEvent::Finished(why)));
        }
        self.restart_count = MAX_CONFIGURE;
        self.send_request(now, neg, tx);
        Ok(None)
    }

    fn rcv_term_req(&mut self, _now: Instant, id: u8, tx: &mut Tx) -> Option<LayerEvent> {
        tx.control(self.protocol, code::TERM_ACK, id, &[]);
        match self.state {
            State::Opened => {
                // tld, zrc, sta → Stopping (one restart period, then Finished).
                self.restart_count = 0;
                self.timer = Some(_now + RESTART);
                self.state = State::Stopping;
                Some(LayerEvent::Down)
            }
            State::AckRcvd | State::AckSent => {
                self.state = State::ReqSent;
                None
            }
            _ => None,
        }
    }

    fn rcv_term_ack(
        &mut self,
        now: Instant,
        neg: &mut dyn Negotiator,
        tx: &mut Tx,
    ) -> Option<LayerEvent> {
        match self.state {
            State::Closing => {
                self.state = State::Closed;
                self.timer = None;
                Some(LayerEvent::Finished("terminated"))
            }
            State::Stopping => {
                self.state = State::Stopped;
                self.timer = None;
                Some(LayerEvent::Finished("terminated"))
            }
            State::AckRcvd => {
                self.state = State::ReqSent;
                None
            }
            State::Opened => {
                self.restart_count = MAX_CONFIGURE;
                self.send_request(now, neg, tx);
                self.state = State::ReqSent;
                Some(LayerEvent::Down)
            }
            _ => None,
        }
    }
}

/// Every option in `sub` appears (same type and data) in `full`.
fn options_subset(sub: &[u8], full: &[u8]) -> bool {
    frame::options(sub).all(|o| frame::options(full).any(|f| f == o))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A negotiator that wants option 1 = [x] and accepts peer option 1 only with value 7.
    struct Simple {
        want: u8,
    }
    impl Negotiator for Simple {
        fn request_options(&mut self, out: &mut Vec<u8>) {
            frame::push_option(out, 1, &[self.want]);
        }
        fn acked(&mut self, _: &[u8]) {}
        fn nak_or_reject(&mut self, opts: &[u8], _: bool) -> Result<(), &'static str> {
            if let Some(o) = frame::options(opts).next() {
                self.want = o.data.first().copied().unwrap_or(0);
            }
            Ok(())
        }
        fn judge(&mut self, opts: &[u8], j: &mut Judge) -> Result<(), ()> {
            for o in frame::options(opts) {
                if o.kind != 1 {
                    j.reject(&o);
                } else if o.data != [7] {
                    j.nak(1, &[7]);
                }
            }
            Ok(())
        }
    }

    fn deliver(
        now: Instant,
        from: &mut Tx,
        to: &mut Fsm,
        neg: &mut Simple,
        out: &mut Tx,
    ) -> Vec<LayerEvent> {
        let mut ev = Vec::new();
        while let Some(mut f) = from.pop() {
            let (_, info) = frame::parse(&mut f).unwrap();
            let pkt = frame::ControlPacket::parse(info, Layer::Lcp).unwrap();
            if let Some(e) = to.handle_packet(now, &pkt, neg, out).unwrap() {
                ev.push(e);
            }
        }
        ev
    }

    #[test]
    fn two_automata_converge_via_nak() {
        let now = Instant::now();
        let (mut a, mut b) = (
            Fsm::new(0xC021, Layer::Lcp, 1),
            Fsm::new(0xC021, Layer::Lcp, 100),
        );
        let (mut na, mut nb) = (Simple { want: 3 }, Simple { want: 7 });
        let (mut ta, mut tb) = (Tx::default(), Tx::default());
        a.open(now, &mut na, &mut ta);
        b.open(now, &mut nb, &mut tb);
        for _ in 0..10 {
            deliver(now, &mut ta, &mut b, &mut nb, &mut tb);
            deliver(now, &mut tb, &mut a, &mut na, &mut ta);
        }
        assert!(a.is_opened() && b.is_opened());
        assert_eq!(na.want, 7);
    }

    #[test]
    fn max_configure_finishes() {
        let mut now = Instant::now();
        let mut a = Fsm::new(0xC021, Layer::Lcp, 1);
        let mut na = Simple { want: 7 };
        let mut ta = Tx::default();
        a.open(now, &mut na, &mut ta);
        let mut finished = None;
        for _ in 0..20 {
            now += RESTART;
            if let Some(e) = a.handle_timeout(now, &mut na, &mut ta) {
                finished = Some(e);
                break;
            }
        }
        assert!(matches!(finished, Some(LayerEvent::Finished(_))));
        assert_eq!(ta.len(), MAX_CONFIGURE as usize);
    }

    /// Reply codes to an unacceptable Configure-Request sent with each of `ids`.
    fn replies_to_bad_requests(ids: impl IntoIterator<Item = u8>) -> Vec<u8> {
        let now = Instant::now();
        let mut b = Fsm::new(0xC021, Layer::Lcp, 1);
        let mut nb = Simple { want: 7 };
        let mut tb = Tx::default();
        b.open(now, &mut nb, &mut tb);
        let _ = tb.pop();
        let req = [1u8, 3, 3];
        ids.into_iter()
            .map(|id| {
                let pkt = frame::ControlPacket {
                    code: code::CONF_REQ,
                    id,
                    data: &req,
                };
                b.handle_packet(now, &pkt, &mut nb, &mut tb).unwrap();
                let mut f = tb.pop().unwrap();
                let (_, info) = frame::parse(&mut f).unwrap();
                info[0]
            })
            .collect()
    }

    #[test]
    fn naks_become_rejects_after_max_failure() {
        let codes = replies_to_bad_requests(0..8);
        assert_eq!(&codes[..5], &[code::CONF_NAK; 5]);
        assert_eq!(&codes[5..], &[code::CONF_REJ; 3]);
    }

    /// A retransmitted request (same Identifier: our Nak was lost) is Nak'ed again without
    /// counting towards Max-Failure.
    #[test]
    fn retransmissions_do_not_count_towards_max_failure() {
        let codes = replies_to_bad_requests(std::iter::repeat_n(9, 12));
        assert_eq!(codes, [code::CONF_NAK; 12]);
    }
}
