//! ESP SA pairs of the IKE SAs: installing a new pair, SPIs, and moving, finding and
//! deleting pairs (RFC 2408 §3.15 DELETE). Pairs outlive the ISAKMP SA that negotiated
//! them: on a Phase 1 rekey they move to the newer SA of the same client.

use std::time::Instant;

use rand_core::Rng;

use super::Responder;
use super::event::{ChildKeys, ChildSa, DownReason, Event, IkeSaId};
use super::ike_sa::{Child, IkeSa};
use crate::exchange::informational::delete_esp;
use crate::keys::SecretBytes;
use crate::payload::kind;

impl Responder {
    /// A new ESP SA pair is up (either side's Quick Mode): older pairs of the IKE SA are
    /// replaced (they run until they expire or are deleted, so packets in flight still
    /// arrive), and the new one is scheduled for our own rekey shortly before it expires.
    pub(super) fn child_up(
        &mut self,
        now: Instant,
        id: IkeSaId,
        mut child: Child,
        (inbound, outbound): (SecretBytes, SecretBytes),
        started: Instant,
    ) {
        child.rekey_at = self.rekey_time(now, child.terms.lifetime);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let (peer, local, udp_encap) = (sa.peer, sa.local, sa.udp_encap());
        let Some(e) = sa.established_mut() else {
            return;
        };
        for old in &mut e.children {
            old.rekeying = true;
        }
        e.last_activity = now;
        let up = ChildSa {
            ike: id,
            peer,
            local,
            udp_encap,
            transform: child.transform,
            inbound: ChildKeys {
                spi: child.inbound_spi,
                keymat: inbound,
            },
            outbound: ChildKeys {
                spi: child.outbound_spi,
                keymat: outbound,
            },
            client_addr: child.client_addr(),
            lifetime: child.terms.lifetime,
            lifetime_kb: child.terms.lifetime_kb,
            setup: now.saturating_duration_since(started),
        };
        e.children.push(child);
        self.stats.child_sas_established += 1;
        self.reschedule(id);
        self.event(Event::ChildSaUp(Box::new(up)));
    }

    /// A fresh inbound SPI: random, above the IANA-reserved 1–255, unused by this SA.
    pub(super) fn new_spi(&mut self, id: IkeSaId) -> u32 {
        loop {
            let spi: u32 = self.rng.next_u32();
            let used = self
                .sas
                .get(&id)
                .and_then(IkeSa::established)
                .is_some_and(|e| {
                    e.children.iter().any(|c| c.inbound_spi == spi)
                        || e.quick.iter().any(|q| q.qm.our_spi == spi)
                        || e.own_quick.iter().any(|q| q.qm.our_spi == spi)
                });
            if spi > 255 && !used {
                return spi;
            }
        }
    }

    /// The IKE SA holding the ESP SA pair with SPI `spi`: `id`, or another of the same
    /// client.
    pub(super) fn child_owner(&self, id: IkeSaId, spi: u32) -> IkeSaId {
        let holds = |sa: &IkeSa| {
            sa.established().is_some_and(|e| {
                e.children
                    .iter()
                    .any(|c| c.outbound_spi == spi || c.inbound_spi == spi)
            })
        };
        let Some(sa) = self.sas.get(&id) else {
            return id;
        };
        if holds(sa) {
            return id;
        }
        let ident = sa.established().map(|e| &e.identity);
        self.sas
            .values()
            .find(|o| {
                o.peer == sa.peer && o.established().map(|e| &e.identity) == ident && holds(o)
            })
            .map_or(id, |o| o.id)
    }

    /// The established SA of the same client and identity that lives longest, other than
    /// `id`: where `id`'s ESP SAs go when it does.
    pub(super) fn successor(&self, id: IkeSaId) -> Option<IkeSaId> {
        let sa = self.sas.get(&id)?;
        let ident = &sa.established()?.identity;
        self.sas
            .values()
            .filter(|o| {
                o.id != id
                    && o.peer == sa.peer
                    && o.established().is_some_and(|e| e.identity == *ident)
            })
            .max_by_key(|o| o.deadline)
            .map(|o| o.id)
    }

    /// Moves every ESP SA pair of `from` to `to`; a rekey `from` had running for one is
    /// dropped (the pair may be rekeyed again under `to`).
    pub(super) fn adopt_children(&mut self, from: IkeSaId, to: IkeSaId) {
        let Some(old) = self.sas.get_mut(&from).and_then(IkeSa::established_mut) else {
            return;
        };
        let mut moved = std::mem::take(&mut old.children);
        for c in &mut moved {
            if old.own_quick.iter().any(|q| q.replaces == c.inbound_spi) {
                c.rekeying = false;
            }
        }
        old.own_quick.clear();
        let spis: Vec<(u32, u32)> = moved
            .iter()
            .map(|c| (c.inbound_spi, c.outbound_spi))
            .collect();
        let Some(new) = self.sas.get_mut(&to).and_then(IkeSa::established_mut) else {
            return;
        };
        new.children.extend(moved);
        for (inbound_spi, outbound_spi) in spis {
            self.event(Event::ChildSaMoved {
                from,
                to,
                inbound_spi,
                outbound_spi,
            });
        }
        self.reschedule(to);
    }

    /// Deletes one ESP SA pair by either SPI; with `tell_peer`, sends DELETE for our inbound SPI.
    pub(super) fn remove_child(
        &mut self,
        id: IkeSaId,
        spi: u32,
        reason: DownReason,
        tell_peer: bool,
    ) {
        let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) else {
            return;
        };
        let Some(pos) = e
            .children
            .iter()
            .position(|c| c.outbound_spi == spi || c.inbound_spi == spi)
        else {
            return;
        };
        let c = e.children.swap_remove(pos);
        if tell_peer {
            let d = delete_esp(c.inbound_spi);
            self.send_info(id, |chain| {
                chain.push(kind::D, &d.emit());
            });
        }
        self.event(Event::ChildSaDown {
            ike: id,
            inbound_spi: c.inbound_spi,
            outbound_spi: c.outbound_spi,
            reason,
        });
    }
}
