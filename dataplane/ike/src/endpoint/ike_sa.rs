//! One IKE SA of the endpoint: what every SA has (cookies, addresses, transform, NAT-T,
//! retransmission of its last Phase 1 message, timers), and its state — a Phase 1 exchange
//! in progress (the client's, or our own rekey) or an established ISAKMP SA with its
//! Phase 2 exchanges and ESP SA pairs.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::event::{DropReason, IkeSaId};
use super::timers::TimerTable;
use crate::exchange::informational::Protection;
use crate::exchange::main_mode::{
    InitiatorSentAuth, InitiatorSentKe, InitiatorSentSa, NatSeen, ResponderSentKe, ResponderSentSa,
};
use crate::exchange::{Phase1Sa, aggressive, quick_mode, shown_nat};
use crate::header::ExchangeType;
use crate::identity::Identification;
use crate::keys::Phase1Keys;
use crate::natt::{NatDetection, NatState, NatTVariant, PeerVendor};
use crate::sa::{EspTransform, IkeTransform};

/// Message IDs remembered per SA to refuse replays.
const DONE_MSGIDS: usize = 64;

/// An IKE SA.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct IkeSa {
    pub(super) id: IkeSaId,
    pub(super) cky_i: [u8; 8],
    pub(super) cky_r: [u8; 8],
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    /// Main Mode (identity protection) or Aggressive Mode.
    pub(super) exchange: ExchangeType,
    pub(super) vendor: PeerVendor,
    pub(super) transform: IkeTransform,
    /// NAT situation as the client sees it (decides UDP encapsulation).
    pub(super) nat: NatState,
    /// We really are behind NAT (decides keep-alives).
    pub(super) local_behind_nat: bool,
    pub(super) nat_t: Option<NatTVariant>,
    /// Digest of the last Phase 1 message received (a repeat is answered with `last_tx`).
    pub(super) last_rx: [u8; 20],
    pub(super) last_tx: Vec<u8>,
    pub(super) retransmits: u8,
    /// Half-open deadline, then lifetime expiry.
    pub(super) deadline: Instant,
    pub(super) dpd_seq: u32,
    /// We started its Phase 1: our cookie is CKY-I and names it.
    pub(super) ours: bool,
    /// When the exchange's first message arrived (or we sent ours).
    pub(super) started: Instant,
    /// Its timers, and the instant under which it is filed in the endpoint's index.
    pub(super) timers: TimerTable,
    pub(super) filed: Option<Instant>,
    pub(super) state: State,
}

/// Where an IKE SA stands.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) enum State {
    /// A client's Main or Aggressive Mode (counted half-open).
    Responding(Responding),
    /// Our own Main Mode, to replace an established SA.
    Initiating(Box<Initiating>),
    /// Phase 1 is complete.
    Established(Box<Established>),
    /// Only while [`IkeSa::transition`] moves the state out; never seen by a handler.
    Moving,
}

/// What a Phase 1 whose last message checked out leaves for the established SA.
pub(super) struct Completed {
    pub(super) keys: Phase1Keys,
    /// The IV after the exchange's last encrypted message the state knows of.
    pub(super) iv: Vec<u8>,
    /// The client's key in `by_initiator`.
    pub(super) first_message: Option<(SocketAddr, [u8; 8])>,
    /// With our own Main Mode, the SA it replaces.
    pub(super) replaces: Option<IkeSaId>,
}

impl State {
    /// The keys of a Phase 1 at its last step (Main Mode message 5 or 6 checked,
    /// Aggressive Mode message 3 checked); the state back when it is not there.
    pub(super) fn complete(self) -> Result<Completed, State> {
        match self {
            State::Responding(Responding {
                step,
                first_message,
            }) => {
                let (keys, iv) = match step {
                    RespondingStep::MainSentKe(st) => st.into_keys(),
                    RespondingStep::Aggressive(st) => st.into_keys(),
                    step => {
                        return Err(State::Responding(Responding {
                            step,
                            first_message,
                        }));
                    }
                };
                Ok(Completed {
                    keys,
                    iv,
                    first_message,
                    replaces: None,
                })
            }
            State::Initiating(o) => {
                let o = *o;
                match o.step {
                    InitiatingStep::Auth(st) => {
                        let (keys, iv) = st.into_keys();
                        Ok(Completed {
                            keys,
                            iv,
                            first_message: None,
                            replaces: Some(o.replaces),
                        })
                    }
                    step => Err(State::Initiating(Box::new(Initiating { step, ..o }))),
                }
            }
            other => Err(other),
        }
    }
}

/// A client's Phase 1 in progress.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct Responding {
    pub(super) step: RespondingStep,
    /// Its key in `by_initiator` while message 1 may still be retransmitted.
    pub(super) first_message: Option<(SocketAddr, [u8; 8])>,
}

/// The step of a client's Phase 1.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) enum RespondingStep {
    /// Main Mode message 2 sent.
    MainSentSa(ResponderSentSa),
    /// Main Mode message 4 sent.
    MainSentKe(Box<ResponderSentKe>),
    /// Aggressive Mode message 2 sent.
    Aggressive(Box<aggressive::ResponderSent>),
}

/// Our own Main Mode in progress (RFC 2409 §5 with roles reversed).
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct Initiating {
    /// The IKE SA it replaces.
    pub(super) replaces: IkeSaId,
    /// The identity the client authenticated with there: the new SA must have the same.
    pub(super) expect: Identification,
    pub(super) resends: u8,
    pub(super) next_retransmit: Instant,
    pub(super) step: InitiatingStep,
}

/// The step of our own Main Mode.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) enum InitiatingStep {
    /// Message 1 sent: waiting for the SA of message 2.
    Sa(InitiatorSentSa),
    /// Message 3 sent: waiting for the KE of message 4.
    Ke(InitiatorSentKe),
    /// Message 5 sent: waiting for the authentication of message 6.
    Auth(Box<InitiatorSentAuth>),
}

/// An established ISAKMP SA.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct Established {
    pub(super) keys: Phase1Keys,
    /// The last CBC block of Phase 1 (Phase 2 IVs derive from it).
    pub(super) iv: Vec<u8>,
    pub(super) identity: Identification,
    /// Lifetime in effect.
    pub(super) lifetime: Duration,
    pub(super) quick: Vec<Quick>,
    pub(super) own_quick: Vec<OwnQuick>,
    pub(super) children: Vec<Child>,
    pub(super) done_msgids: VecDeque<u32>,
    pub(super) last_activity: Instant,
    pub(super) dpd_outstanding: bool,
    pub(super) next_keepalive: Option<Instant>,
    /// When we start our own Main Mode to replace it, unless the client has by then.
    pub(super) rekey_at: Option<Instant>,
    /// A newer IKE SA of the same client exists, or our Main Mode to make one is running.
    pub(super) superseded: bool,
}

/// A client's Quick Mode we answered (RFC 2409 §5.5, us as responder).
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct Quick {
    pub(super) qm: quick_mode::Responder,
    pub(super) terms: Terms,
    pub(super) last_rx: [u8; 20],
    pub(super) last_tx: Vec<u8>,
    pub(super) retransmits: u8,
    pub(super) deadline: Instant,
    /// When its first message arrived.
    pub(super) started: Instant,
}

/// A Quick Mode we started to rekey an ESP SA pair (RFC 2409 §5.5, us as initiator).
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct OwnQuick {
    pub(super) qm: quick_mode::Initiator,
    /// The pair it replaces (our inbound SPI).
    pub(super) replaces: u32,
    pub(super) last_tx: Vec<u8>,
    /// Digest of the client's message 2 once answered (a repeat gets message 3 again).
    pub(super) answered: Option<[u8; 20]>,
    pub(super) retransmits: u8,
    pub(super) next_retransmit: Instant,
    pub(super) deadline: Instant,
    /// When we sent its first message.
    pub(super) started: Instant,
}

/// A pair of ESP SAs.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct Child {
    pub(super) inbound_spi: u32,
    pub(super) outbound_spi: u32,
    pub(super) expires: Instant,
    /// When we replace it with our own Quick Mode unless the client has by then.
    pub(super) rekey_at: Instant,
    /// A newer pair exists, or our Quick Mode to make one is running.
    pub(super) rekeying: bool,
    pub(super) transform: EspTransform,
    pub(super) terms: Terms,
}

/// What an ESP SA pair is agreed for besides its transform: selectors and lifetimes.
#[derive(Clone)]
pub(super) struct Terms {
    /// The selectors as the client sent them (IDci, IDcr): its address, and our own rekey.
    pub(super) ids: Option<(Identification, Identification)>,
    /// Lifetime in effect.
    pub(super) lifetime: Duration,
    /// Kilobyte lifetime in effect.
    pub(super) lifetime_kb: Option<u64>,
}

impl Child {
    /// A pair that came up at `now` with SPIs (inbound, outbound).
    pub(super) fn new(
        now: Instant,
        (inbound_spi, outbound_spi): (u32, u32),
        transform: EspTransform,
        terms: Terms,
    ) -> Child {
        Child {
            inbound_spi,
            outbound_spi,
            expires: now + terms.lifetime,
            rekey_at: now,
            rekeying: false,
            transform,
            terms,
        }
    }

    /// The client's address from its Quick Mode ID (checked to be a single address).
    pub(super) fn client_addr(&self) -> Option<IpAddr> {
        self.terms
            .ids
            .as_ref()
            .and_then(|(client, _)| client.single_address())
    }
}

impl IkeSa {
    /// A new SA in `state`: cookies (CKY-I, CKY-R), (peer, local) and the Phase 1
    /// transform; every other field starts empty.
    pub(super) fn new(
        id: IkeSaId,
        (cky_i, cky_r): ([u8; 8], [u8; 8]),
        (peer, local): (SocketAddr, SocketAddr),
        transform: IkeTransform,
        (now, deadline): (Instant, Instant),
        state: State,
    ) -> IkeSa {
        IkeSa {
            id,
            cky_i,
            cky_r,
            peer,
            local,
            exchange: ExchangeType::IdentityProtection,
            vendor: PeerVendor::default(),
            transform,
            nat: NatState::default(),
            local_behind_nat: false,
            nat_t: None,
            last_rx: [0; 20],
            last_tx: Vec::new(),
            retransmits: 0,
            deadline,
            dpd_seq: 0,
            ours: matches!(state, State::Initiating(_)),
            started: now,
            timers: TimerTable::default(),
            filed: None,
            state,
        }
    }

    /// What its Phase 1 exchange needs to know of it.
    pub(super) fn phase1(&self) -> Phase1Sa {
        Phase1Sa {
            cky_i: self.cky_i,
            cky_r: self.cky_r,
            local: self.local,
            peer: self.peer,
            transform: self.transform,
        }
    }

    /// Counted against the half-open limits: a client's Phase 1 not yet complete (our
    /// own Main Modes are not).
    pub(super) fn counts_half_open(&self) -> bool {
        matches!(self.state, State::Responding(_))
    }

    /// Phase 1 is complete.
    pub(super) fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// The established SA.
    pub(super) fn established(&self) -> Option<&Established> {
        match &self.state {
            State::Established(e) => Some(e),
            _ => None,
        }
    }

    /// The established SA, mutably.
    pub(super) fn established_mut(&mut self) -> Option<&mut Established> {
        match &mut self.state {
            State::Established(e) => Some(e),
            _ => None,
        }
    }

    /// Our own Main Mode in progress.
    pub(super) fn initiating(&self) -> Option<&Initiating> {
        match &self.state {
            State::Initiating(o) => Some(o),
            _ => None,
        }
    }

    /// The protection of its Phase 2 and Informational messages, once established.
    pub(super) fn protection(&self) -> Option<Protection<'_>> {
        let e = self.established()?;
        Some(Protection {
            keys: &e.keys,
            phase1_iv: &e.iv,
            cky_i: self.cky_i,
            cky_r: self.cky_r,
        })
    }

    /// The established SA and the protection of its Phase 2 and Informational messages;
    /// `Unexpected` before Phase 1 is complete.
    pub(super) fn phase2(&self) -> Result<(&Established, Protection<'_>), DropReason> {
        match (self.established(), self.protection()) {
            (Some(e), Some(p)) => Ok((e, p)),
            _ => Err(DropReason::Unexpected),
        }
    }

    /// The step of a client's Phase 1 in progress.
    pub(super) fn responding(&self) -> Option<&RespondingStep> {
        match &self.state {
            State::Responding(r) => Some(&r.step),
            _ => None,
        }
    }

    /// The step of our own Main Mode in progress.
    pub(super) fn initiating_step(&self) -> Option<&InitiatingStep> {
        self.initiating().map(|o| &o.step)
    }

    /// Moves a client's Phase 1 on to `step`.
    pub(super) fn set_responding(&mut self, step: RespondingStep) {
        if let State::Responding(r) = &mut self.state {
            r.step = step;
        }
    }

    /// Moves our own Main Mode on to `step`.
    pub(super) fn set_initiating(&mut self, step: InitiatingStep) {
        if let State::Initiating(o) = &mut self.state {
            o.step = step;
        }
    }

    /// Replaces the state with what `f` makes of it.
    pub(super) fn transition<T>(&mut self, f: impl FnOnce(State) -> (State, T)) -> T {
        let old = std::mem::replace(&mut self.state, State::Moving);
        let (new, t) = f(old);
        self.state = new;
        t
    }

    /// Applies what the peer's NAT-D showed.
    pub(super) fn apply_nat(&mut self, seen: NatSeen, detection: NatDetection) {
        match seen {
            Some(Some((local_behind, peer_behind))) => {
                self.local_behind_nat = local_behind;
                self.nat = shown_nat(detection, local_behind, peer_behind);
            }
            Some(None) => self.nat_t = None,
            None => {}
        }
    }

    /// UDP encapsulation of its ESP SAs (RFC 3948): NAT-T negotiated and a NAT seen.
    pub(super) fn udp_encap(&self) -> bool {
        self.nat.any() && self.nat_t.is_some()
    }
}

impl Established {
    /// Notes a finished exchange's Message ID (a replay of it is refused).
    pub(super) fn remember(&mut self, msgid: u32) {
        if self.done_msgids.len() == DONE_MSGIDS {
            self.done_msgids.pop_front();
        }
        self.done_msgids.push_back(msgid);
    }
}
