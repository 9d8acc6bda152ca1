//! What the responder endpoint reports: datagrams to send, SA events for the data plane,
//! drop reasons and counters.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::keys::SecretBytes;
use crate::natt::NatState;
use crate::sa::{EspTransform, IkeTransform};

/// Identifies one IKE SA of a responder (derived from our cookie).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IkeSaId(pub u64);

/// A UDP datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Our address and port to send from (500 or the NAT-T port).
    pub local: SocketAddr,
    /// The client's address and port.
    pub remote: SocketAddr,
    /// The UDP payload (with the non-ESP marker when sent on the NAT-T port).
    pub payload: Vec<u8>,
}

/// Keys of one direction of an ESP SA.
#[cfg_attr(fuzzing, derive(Clone))]
pub struct ChildKeys {
    /// SPI (inbound: ours; outbound: the client's).
    pub spi: u32,
    /// KEYMAT: encryption key then integrity key (RFC 2409 §5.5).
    pub keymat: SecretBytes,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChildKeys {{ spi: {:#010x}, keymat: <redacted> }}",
            self.spi
        )
    }
}

/// A negotiated pair of ESP SAs in transport mode.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
pub struct ChildSa {
    /// The IKE SA it was negotiated under.
    pub ike: IkeSaId,
    /// The client's outer address and port (where UDP-encapsulated ESP goes).
    pub peer: SocketAddr,
    /// Our address and port.
    pub local: SocketAddr,
    /// UDP encapsulation (RFC 3948) rather than raw IP protocol 50.
    pub udp_encap: bool,
    /// The negotiated transform.
    pub transform: EspTransform,
    /// Our inbound SA.
    pub inbound: ChildKeys,
    /// Our outbound SA.
    pub outbound: ChildKeys,
    /// The client's address from its Quick Mode ID (its private address behind NAT).
    pub client_addr: Option<IpAddr>,
    /// Lifetime in effect.
    pub lifetime: Duration,
    /// Kilobyte lifetime in effect.
    pub lifetime_kb: Option<u64>,
    /// From the Quick Mode's first message to its completion (Phase 2 setup time).
    pub setup: Duration,
}

/// Why an SA went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// The client sent a DELETE.
    DeletedByPeer,
    /// Its lifetime ran out.
    Expired,
    /// DPD found the client dead.
    DeadPeer,
    /// INITIAL-CONTACT from the same client identity replaced it.
    Replaced,
    /// The responder is shutting down or the SA was closed locally.
    Closed,
    /// Main Mode did not complete in time.
    HalfOpenTimeout,
    /// A newer IKE SA of the same client took over (its ESP SAs moved there).
    Rekeyed,
}

/// What the data plane must act on.
#[derive(Debug)]
#[cfg_attr(fuzzing, derive(Clone))]
pub enum Event {
    /// Main Mode completed.
    IkeSaUp {
        /// The SA.
        id: IkeSaId,
        /// Client address and port.
        peer: SocketAddr,
        /// Our address and port.
        local: SocketAddr,
        /// The client's Phase 1 identity, printable.
        identity: String,
        /// NAT situation as the client will see it.
        nat: NatState,
        /// The negotiated Phase 1 transform.
        transform: IkeTransform,
        /// From the exchange's first message to its completion (Phase 1 setup time).
        setup: Duration,
    },
    /// Our Quick Mode message 2 is about to go out (RFC 2409 §5.5). The client installs
    /// its SAs when it receives it and may send ESP with `inbound_spi` before its
    /// message 3 has been processed here: the data plane may hold such packets briefly and
    /// pass them on after the [`Event::ChildSaUp`] of the same SPI. Informational: it can
    /// be dropped from a full queue, and no `ChildSaUp` may follow (a lost exchange).
    ChildSaExpected {
        /// The IKE SA.
        ike: IkeSaId,
        /// The inbound SPI we chose.
        inbound_spi: u32,
    },
    /// Quick Mode completed: install both ESP SAs.
    ChildSaUp(Box<ChildSa>),
    /// Remove these ESP SAs.
    ChildSaDown {
        /// The IKE SA.
        ike: IkeSaId,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// Our outbound SPI.
        outbound_spi: u32,
        /// Why.
        reason: DownReason,
    },
    /// The IKE SA is gone (its ESP SAs have their own `ChildSaDown` first).
    IkeSaDown {
        /// The SA.
        id: IkeSaId,
        /// Client address and port.
        peer: SocketAddr,
        /// Why.
        reason: DownReason,
    },
    /// An ESP SA pair now belongs to another IKE SA of the same client (Phase 1 was
    /// rekeyed: RFC 2409 ESP SAs outlive the ISAKMP SA they were negotiated under).
    ChildSaMoved {
        /// The IKE SA it belonged to.
        from: IkeSaId,
        /// The IKE SA it belongs to now.
        to: IkeSaId,
        /// Our inbound SPI.
        inbound_spi: u32,
        /// Our outbound SPI.
        outbound_spi: u32,
    },
    /// The client's address or port changed (authenticated): move its ESP SAs.
    PeerMoved {
        /// The SA.
        id: IkeSaId,
        /// New client address and port.
        peer: SocketAddr,
        /// Our address and port it now talks to.
        local: SocketAddr,
    },
    /// Authentication failed (wrong pre-shared key or hash).
    AuthFailed {
        /// Client address and port.
        peer: SocketAddr,
        /// What failed.
        reason: String,
    },
}

/// Why a datagram was dropped (each has a counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Header or payloads failed to parse.
    Malformed,
    /// Cookies match no SA.
    UnknownSa,
    /// A message the SA's state does not expect.
    Unexpected,
    /// Too many half-open SAs from this address, or in total, or SAs for this client.
    Limit,
    /// No acceptable proposal.
    NoProposal,
    /// Aggressive Mode (not enabled).
    AggressiveRefused,
    /// Hash or pre-shared key mismatch.
    AuthFailed,
    /// A replayed or retransmitted message we had already answered too often.
    Replay,
    /// A Quick Mode selector we do not serve.
    InvalidId,
    /// An unanswered half-open SA was evicted to make room for a new Main Mode (counted per
    /// evicted SA; see `endpoint::pressure`).
    Evicted,
}

impl DropReason {
    /// A metrics label (`ike_` + the reason in snake case).
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Malformed => "ike_malformed",
            DropReason::UnknownSa => "ike_unknown_sa",
            DropReason::Unexpected => "ike_unexpected",
            DropReason::Limit => "ike_limit",
            DropReason::NoProposal => "ike_no_proposal",
            DropReason::AggressiveRefused => "ike_aggressive_refused",
            DropReason::AuthFailed => "ike_auth_failed",
            DropReason::Replay => "ike_replay",
            DropReason::InvalidId => "ike_invalid_id",
            DropReason::Evicted => "ike_half_open_evicted",
        }
    }
}

/// Counters.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Datagrams accepted.
    pub rx: u64,
    /// Datagrams queued for sending.
    pub tx: u64,
    /// Replies resent because the client retransmitted.
    pub retransmits: u64,
    /// Drops by reason.
    pub drops: std::collections::BTreeMap<DropReason, u64>,
    /// IKE SAs established.
    pub ike_sas_established: u64,
    /// ESP SA pairs established.
    pub child_sas_established: u64,
    /// Quick Modes we started to rekey an ESP SA pair.
    pub rekeys_started: u64,
    /// Of those, completed.
    pub rekeys_completed: u64,
    /// Main Modes we started to replace an IKE SA before it expires.
    pub ike_rekeys_started: u64,
    /// Of those, completed.
    pub ike_rekeys_completed: u64,
    /// Informational events ([`Event::AuthFailed`], [`Event::ChildSaExpected`]) dropped
    /// because the event queue was full; SA events are never dropped.
    pub events_dropped: u64,
}
