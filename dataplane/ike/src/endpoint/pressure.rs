//! Half-open IKE SAs under pressure, and the SA journal the daemon filters datagrams with.
//!
//! IKEv1 has no stateless cookie exchange (RFC 2408 §2.5.3 only recommends one), so Main
//! Mode message 1 must create state. It creates *cheap* state: no Diffie-Hellman, no nonce,
//! no keys (RFC 2409 §5: KE and nonces travel in messages 3 and 4). Message 3 must carry the
//! responder cookie of our message 2, so a client that sends it has shown it receives at its
//! source address; a spoofed source never does. Until then a half-open SA is *unproven*.
//!
//! When the half-open table (`max_half_open`) or the SA table (`max_ike_sas`) is full, a new
//! message 1 evicts the **oldest unproven** half-open SA instead of being refused. Under a
//! spoofed flood of `R` accepted message 1s per second a real client therefore has
//! `max_half_open / R` seconds to answer message 2, and it keeps its slot once it has.
//! Oldest-first beats a random victim here: a random choice gives the same mean lifetime
//! but an exponential tail, so some real clients would lose their slot within a few
//! arrivals. Only when every half-open SA is proven (or belongs to another limit) is the
//! newcomer refused ([`DropReason::Limit`]).

use std::time::Instant;

use super::Responder;
use super::event::{DownReason, DropReason, IkeSaId};

/// A change to the set of IKE SAs, in order: SA identifiers are the cookies that name them
/// (our responder cookie, or our initiator cookie for a Main Mode we started), so a
/// receiver can tell datagrams of live exchanges from made-up ones without the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaChange {
    /// An IKE SA (half-open or not) now exists.
    Added(IkeSaId),
    /// It is gone.
    Removed(IkeSaId),
}

impl Responder {
    /// Starts (or stops) recording [`SaChange`]s for [`Responder::poll_sa_change`]. The
    /// caller must drain them after every call into the responder (the journal grows with
    /// the SA churn of one call, bounded by the SA limits).
    pub fn track_sa_changes(&mut self, on: bool) {
        self.sa_journal = on.then(Default::default);
    }

    /// The next change to the SA set, when tracking is on.
    pub fn poll_sa_change(&mut self) -> Option<SaChange> {
        self.sa_journal.as_mut()?.pop_front()
    }

    /// Every IKE SA's identifier (to seed a set before tracking changes).
    pub fn sa_ids(&self) -> impl Iterator<Item = IkeSaId> + '_ {
        self.sas.keys().copied()
    }

    /// Half-open SAs whose client has not answered our message 2 yet.
    pub fn unproven_count(&self) -> usize {
        self.unproven.len()
    }

    pub(super) fn journal(&mut self, c: SaChange) {
        if let Some(j) = self.sa_journal.as_mut() {
            j.push_back(c);
        }
    }

    /// Files a new half-open SA (created at `started`) as unproven.
    pub(super) fn mark_unproven(&mut self, started: Instant, id: IkeSaId) {
        self.unproven.insert((started, id));
    }

    /// The client answered with our cookie (message 3), or the SA is going away.
    pub(super) fn mark_proven(&mut self, started: Instant, id: IkeSaId) {
        self.unproven.remove(&(started, id));
    }

    /// Makes room for a new half-open SA by evicting the oldest unproven one; false when
    /// there is none.
    pub(super) fn evict_unproven(&mut self) -> bool {
        let Some(&(_, victim)) = self.unproven.first() else {
            return false;
        };
        self.discard(DropReason::Evicted);
        // No event: nothing was established, and a flood must not turn into log lines.
        self.remove(victim, DownReason::Closed, false);
        true
    }
}
