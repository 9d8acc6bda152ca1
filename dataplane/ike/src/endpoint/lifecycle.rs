//! The end of IKE SAs — expiry, DELETE, closing, shutdown — and what each SA's timers do
//! when they fire: lifetimes, our rekeys and their resends, NAT keep-alives (RFC 3948
//! §2.3) and DPD (RFC 3706).

use std::time::Instant;

use super::Responder;
use super::event::{DownReason, Event, IkeSaId};
use super::ike_sa::{IkeSa, State};
use super::{OWN_RETRANSMIT, SaChange};
use crate::exchange::informational::delete_isakmp;
use crate::payload::kind;

/// Resends of our own Quick Mode message 1 before the rekey is given up.
const MAX_OWN_RETRANSMITS: u8 = 3;

impl Responder {
    /// Removes an IKE SA and its ESP SAs; with `tell_peer`, sends DELETEs first. When it
    /// expires, is deleted by the client or was rekeyed, and a newer SA of the same client
    /// exists, its ESP SAs move there instead (ESP SAs do not depend on the ISAKMP SA that
    /// negotiated them; strongSwan and Windows keep theirs across a Phase 1 rekey).
    pub(super) fn remove(&mut self, id: IkeSaId, reason: DownReason, tell_peer: bool) {
        let heir = match reason {
            DownReason::Expired | DownReason::DeletedByPeer | DownReason::Rekeyed => {
                self.successor(id)
            }
            _ => None,
        };
        if let Some(heir) = heir {
            self.adopt_children(id, heir);
        }
        let spis: Vec<u32> = self
            .sas
            .get(&id)
            .and_then(IkeSa::established)
            .map(|e| e.children.iter().map(|c| c.inbound_spi).collect())
            .unwrap_or_default();
        for spi in spis {
            self.remove_child(id, spi, reason, tell_peer);
        }
        if tell_peer && let Some(sa) = self.sas.get(&id) {
            let d = delete_isakmp((sa.cky_i, sa.cky_r));
            self.send_info(id, |chain| {
                chain.push(kind::D, &d.emit());
            });
        }
        let Some(sa) = self.sas.remove(&id) else {
            return;
        };
        self.journal(SaChange::Removed(id));
        self.mark_proven(sa.started, id);
        // Our Main Mode to replace it has nothing left to replace (only established SAs
        // are replaced: half-open ones, a flood's, skip the scan).
        let orphans: Vec<IkeSaId> = if sa.is_established() {
            self.sas
                .values()
                .filter(|o| o.initiating().is_some_and(|m| m.replaces == id))
                .map(|o| o.id)
                .collect()
        } else {
            Vec::new()
        };
        for o in orphans {
            self.remove(o, DownReason::Closed, false);
        }
        if let Some(t) = sa.filed {
            self.timers.remove(&(t, id));
        }
        if let State::Responding(r) = &sa.state
            && let Some(k) = r.first_message
        {
            self.by_initiator.remove(&k);
        }
        if sa.counts_half_open() {
            self.half_open_done(sa.peer.ip());
        }
        if let Some(n) = self.per_client.get_mut(&sa.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&sa.peer);
            }
        }
        if sa.is_established() || reason == DownReason::HalfOpenTimeout {
            self.event(Event::IkeSaDown {
                id,
                peer: sa.peer,
                reason,
            });
        }
    }

    /// Closes one IKE SA (sending DELETEs).
    pub fn close(&mut self, id: IkeSaId) {
        self.remove(id, DownReason::Closed, true);
    }

    /// Closes every SA, telling each client.
    pub fn shutdown(&mut self) {
        let ids: Vec<IkeSaId> = self.sas.keys().copied().collect();
        for id in ids {
            let established = self.sas.get(&id).is_some_and(IkeSa::is_established);
            self.remove(id, DownReason::Closed, established);
        }
    }

    /// Whatever of SA `id` is due at `now`.
    pub(super) fn sa_timeout(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if matches!(sa.state, State::Initiating(_)) {
            return self.own_main_timeout(now, id);
        }
        let deadline = sa.deadline;
        if let Some(e) = sa.established_mut()
            && !e.superseded
            && deadline > now
            && e.rekey_at.is_some_and(|t| t <= now)
        {
            e.rekey_at = None;
            self.rekey_ike(now, id);
        }
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.deadline <= now {
            let established = sa.is_established();
            let reason = if established {
                DownReason::Expired
            } else {
                DownReason::HalfOpenTimeout
            };
            return self.remove(id, reason, established);
        }
        if !self.phase2_timeout(now, id) {
            return;
        }
        self.keepalive(now, id);
        self.dpd_timeout(now, id);
    }

    /// Quick Modes and ESP SA pairs of SA `id`: forgets unfinished Quick Modes past their
    /// deadline, resends or gives up our own, starts due rekeys and removes expired pairs.
    /// Returns false when the SA is not (or no longer) established.
    fn phase2_timeout(&mut self, now: Instant, id: IkeSaId) -> bool {
        let Some(sa) = self.sas.get_mut(&id) else {
            return false;
        };
        let (l, p) = (sa.local, sa.peer);
        let Some(e) = sa.established_mut() else {
            return false;
        };
        e.quick.retain(|q| q.deadline > now);
        // Our rekeys: resend unanswered ones, forget finished or failed ones (a failed one
        // lets the pair be rekeyed again, by either side, until it expires).
        let mut resend = Vec::new();
        let mut failed = Vec::new();
        e.own_quick.retain_mut(|q| {
            if q.deadline <= now {
                if q.answered.is_none() {
                    failed.push(q.replaces);
                }
                return false;
            }
            if q.answered.is_none() && q.next_retransmit <= now {
                if q.retransmits >= MAX_OWN_RETRANSMITS {
                    failed.push(q.replaces);
                    return false;
                }
                q.retransmits += 1;
                q.next_retransmit = now + OWN_RETRANSMIT * (1 << q.retransmits.min(4));
                resend.push(q.last_tx.clone());
            }
            true
        });
        for c in &mut e.children {
            if failed.contains(&c.inbound_spi) {
                c.rekeying = false;
                c.rekey_at = now + OWN_RETRANSMIT;
            }
        }
        let due: Vec<u32> = e
            .children
            .iter()
            .filter(|c| !c.rekeying && c.rekey_at <= now && c.expires > now)
            .map(|c| c.inbound_spi)
            .collect();
        for out in resend {
            self.stats.retransmits += 1;
            self.send(l, p, &out);
        }
        for spi in due {
            self.rekey_child(now, id, spi);
        }
        // A rekey that could not start now (our Quick Modes at their limit) is tried again
        // shortly; a due time left in the past would make the timer fire without end.
        let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) else {
            return false;
        };
        for c in &mut e.children {
            if !c.rekeying && c.rekey_at <= now {
                c.rekey_at = now + OWN_RETRANSMIT;
            }
        }
        let expired: Vec<u32> = e
            .children
            .iter()
            .filter(|c| c.expires <= now)
            .map(|c| c.inbound_spi)
            .collect();
        for spi in expired {
            self.remove_child(id, spi, DownReason::Expired, true);
        }
        true
    }

    /// A NAT keep-alive when one is due: a single 0xFF octet, no marker (RFC 3948 §2.3),
    /// sent only from the NAT-T port.
    fn keepalive(&mut self, now: Instant, id: IkeSaId) {
        let (interval, natt_port) = (self.config.nat_keepalive, self.config.natt_port);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let (local, peer) = (sa.local, sa.peer);
        let Some(e) = sa.established_mut() else {
            return;
        };
        if let Some(k) = e.next_keepalive.filter(|k| *k <= now) {
            e.next_keepalive = Some(k.max(now) + interval);
            if local.port() == natt_port {
                self.out.send(&mut self.stats, local, peer, vec![0xff]);
            }
        }
    }
}
