//! Quick Mode at the endpoint (RFC 2409 §5.5): answering a client's (the responder states
//! of [`crate::exchange::quick_mode`]) with our policy — proposal choice, selectors,
//! lifetimes (RESPONDER-LIFETIME, RFC 2407 §4.6.3.1), NAT-OA (RFC 3947 §5.2) — and starting
//! our own to rekey an ESP SA pair (its initiator states, as the in-repo initiator uses).

use std::time::{Duration, Instant};

use super::Handled;
use super::event::{DropReason, Event, IkeSaId};
use super::ike_sa::{Child, IkeSa, OwnQuick, Quick, Terms};
use super::{DEFAULT_LIFETIME, MAX_RETRANSMITS, NONCE_LEN, OWN_RETRANSMIT, Responder};
use crate::exchange::quick_mode::{self, Offer, Request};
use crate::exchange::{Incoming, new_msgid, new_nonce, nonce_ok};
use crate::identity::{Identification, emit_nat_oa};
use crate::message::PayloadsExt;
use crate::notify::{Notify, code};
use crate::payload::{ChainBuilder, RawPayload, kind};
use crate::sa::{Lifetime, SaPayload, encode_attributes, esp_lifetime_attributes, protocol};

/// Quick Mode exchanges not completed within this are dropped.
pub(super) const QUICK_MODE_TIMEOUT: Duration = Duration::from_secs(30);

impl Responder {
    /// A Quick Mode message: the first of a client's, its message 3, a retransmission, or
    /// the answer to one of ours.
    pub(super) fn quick_mode(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let msgid = msg.hdr.message_id;
        let Some(e) = self.sas.get(&id).and_then(IkeSa::established) else {
            return Err(DropReason::Unexpected);
        };
        if e.own_quick.iter().any(|q| q.qm.msgid == msgid) {
            return self.own_quick_reply(id, msg);
        }
        if let Some(q) = e.quick.iter().find(|q| q.qm.msgid == msgid) {
            if q.last_rx == msg.digest() {
                let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
                let (l, p) = (sa.local, sa.peer);
                let Some(q) = sa
                    .established_mut()
                    .and_then(|e| e.quick.iter_mut().find(|q| q.qm.msgid == msgid))
                else {
                    return Err(DropReason::Unexpected);
                };
                if q.retransmits >= MAX_RETRANSMITS {
                    return Err(DropReason::Replay);
                }
                q.retransmits += 1;
                let out = q.last_tx.clone();
                self.stats.retransmits += 1;
                self.send(l, p, &out);
                return Ok(());
            }
            return self.quick_mode_hash3(id, msg);
        }
        if e.done_msgids.contains(&msgid) {
            return Err(DropReason::Replay);
        }
        if e.quick.len() >= self.config.max_quick_modes_per_sa
            || e.children.len() >= self.config.max_child_sas_per_ike_sa
        {
            return Err(DropReason::Limit);
        }
        let Some(p) = self.sas.get(&id).and_then(IkeSa::protection) else {
            return Err(DropReason::Unexpected);
        };
        let m = p.open_first(&msg.hdr, msg.body)?;
        let Ok(chain) = m.payloads() else {
            return Err(DropReason::Malformed);
        };
        // Authenticated: the client may have moved (NAT rebinding).
        self.move_peer(id, msg.local, msg.remote, true);
        let last_block = m.last_block.clone().unwrap_or_default();
        let Err(c) = self.quick_mode_reply(id, msg, &chain, &last_block) else {
            return Ok(());
        };
        let n = Notify {
            protocol: protocol::ESP,
            code: c,
            spi: vec![],
            data: vec![],
        };
        self.send_info(id, |chain| {
            chain.push(kind::N, &n.emit());
        });
        Err(if c == code::INVALID_ID_INFORMATION {
            DropReason::InvalidId
        } else {
            DropReason::NoProposal
        })
    }

    /// Message 1 (HASH(1) checked) → message 2, or the notify code that refuses it.
    fn quick_mode_reply(
        &mut self,
        id: IkeSaId,
        msg: &Incoming<'_>,
        chain: &[RawPayload<'_>],
        last_block: &[u8],
    ) -> Result<(), u16> {
        let (now, msgid) = (msg.now, msg.hdr.message_id);
        let sa_p = chain.find_kind(kind::SA).ok_or(code::PAYLOAD_MALFORMED)?;
        let nonce = chain
            .find_kind(kind::NONCE)
            .ok_or(code::PAYLOAD_MALFORMED)?;
        if !nonce_ok(nonce.body) {
            return Err(code::PAYLOAD_MALFORMED);
        }
        let proposal = SaPayload::parse(sa_p.body).map_err(|_| code::PAYLOAD_MALFORMED)?;
        let ids = chain.all_kind(kind::ID);
        let (idci, idcr) = match ids.as_slice() {
            [] => (None, None),
            [i, r] => (
                Some(Identification::parse(i.body).map_err(|_| code::INVALID_ID_INFORMATION)?),
                Some(Identification::parse(r.body).map_err(|_| code::INVALID_ID_INFORMATION)?),
            ),
            _ => return Err(code::INVALID_ID_INFORMATION),
        };
        let sa = self.sas.get(&id).ok_or(code::INVALID_COOKIE)?;
        let udp_encap = sa.udp_encap();
        let (p, t, et) = self
            .config
            .choose_esp(&proposal, udp_encap)
            .ok_or(code::NO_PROPOSAL_CHOSEN)?;
        // Selectors: the client's single address; our side must be the L2TP port (or any).
        let l2tp = self.config.l2tp_port;
        if let (Some(i), Some(r)) = (&idci, &idcr) {
            i.single_address().ok_or(code::INVALID_ID_INFORMATION)?;
            r.single_address().ok_or(code::INVALID_ID_INFORMATION)?;
            let proto_ok = |x: &Identification| x.protocol == 0 || x.protocol == 17;
            if !proto_ok(i) || !proto_ok(r) || !(r.port == 0 || r.port == l2tp || l2tp == 0) {
                return Err(code::INVALID_ID_INFORMATION);
            }
        }
        let peer_spi = p
            .spi
            .as_slice()
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| code::INVALID_SPI)?;
        let (pfs_public, pfs_gxy) =
            quick_mode::pfs_answer(&mut self.rng, et.group, chain.find_kind(kind::KE))
                .ok_or(code::INVALID_KEY_INFORMATION)?;
        let our_spi = self.new_spi(id);
        let nr = new_nonce(&mut self.rng, NONCE_LEN);
        let proposed = et
            .lifetime
            .seconds
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let lifetime = proposed.min(self.config.esp_lifetime);
        let lifetime_kb = match (et.lifetime.kilobytes, self.config.esp_lifetime_kb) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let shortened = lifetime < proposed || lifetime_kb != et.lifetime.kilobytes;
        let reply_sa = quick_mode::chosen_sa(p, t, our_spi);
        let sa = self.sas.get(&id).ok_or(code::INVALID_COOKIE)?;
        let prot = sa.protection().ok_or(code::INVALID_COOKIE)?;
        let mut rest = ChainBuilder::new();
        rest.push(kind::SA, &reply_sa).push(kind::NONCE, &nr);
        if let Some(pk) = &pfs_public {
            rest.push(kind::KE, pk);
        }
        if let (Some(i), Some(r)) = (&idci, &idcr) {
            rest.push(kind::ID, &i.emit()).push(kind::ID, &r.emit());
        }
        if shortened {
            let mut data = Vec::new();
            encode_attributes(
                &esp_lifetime_attributes(Lifetime {
                    seconds: Some(lifetime.as_secs()),
                    kilobytes: lifetime_kb,
                }),
                &mut data,
            );
            let n = Notify {
                protocol: protocol::ESP,
                code: code::RESPONDER_LIFETIME,
                spi: p.spi.clone(),
                data,
            };
            rest.push(kind::N, &n.emit());
        }
        if udp_encap && let Some(v) = sa.nat_t {
            rest.push(v.nat_oa_kind(), &emit_nat_oa(sa.peer.ip()));
            rest.push(v.nat_oa_kind(), &emit_nat_oa(sa.local.ip()));
        }
        let req = Request {
            msgid,
            ni: nonce.body,
            peer_spi,
            transform: et,
            iv: last_block,
        };
        let (qm, out) = quick_mode::Responder::answer(&prot, req, (our_spi, nr), pfs_gxy, rest)
            .map_err(|_| code::PAYLOAD_MALFORMED)?;
        let q = Quick {
            qm,
            terms: Terms {
                ids: idci.zip(idcr),
                lifetime,
                lifetime_kb,
            },
            last_rx: msg.digest(),
            last_tx: out.clone(),
            retransmits: 0,
            deadline: now + QUICK_MODE_TIMEOUT,
            started: now,
        };
        let (local, peer) = (sa.local, sa.peer);
        if let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) {
            e.quick.push(q);
            e.last_activity = now;
        }
        self.reschedule(id);
        self.event(Event::ChildSaExpected {
            ike: id,
            inbound_spi: our_spi,
        });
        self.send(local, peer, &out);
        Ok(())
    }

    /// Message 3 (HASH(3)) of a client's Quick Mode: the new pair is up.
    fn quick_mode_hash3(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let msgid = msg.hdr.message_id;
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let (e, p) = sa.phase2()?;
        let Some(q) = e.quick.iter().find(|q| q.qm.msgid == msgid) else {
            return Err(DropReason::Unexpected);
        };
        q.qm.check_hash3(&p, &msg.hdr, msg.body)?;
        let keymat = q.qm.keymat(&e.keys);
        self.move_peer(id, msg.local, msg.remote, true);
        let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) else {
            return Err(DropReason::Unexpected);
        };
        let Some(pos) = e.quick.iter().position(|q| q.qm.msgid == msgid) else {
            return Err(DropReason::Unexpected);
        };
        let q = e.quick.swap_remove(pos);
        e.remember(msgid);
        let now = msg.now;
        let spis = (q.qm.our_spi, q.qm.peer_spi);
        let child = Child::new(now, spis, q.qm.transform, q.terms);
        self.child_up(now, id, child, keymat, q.started);
        Ok(())
    }

    /// Starts our own Quick Mode to replace the ESP SA pair with inbound or outbound SPI
    /// `spi` (its lifetime is running out, or the data path reports its sequence-number or
    /// volume soft limit). Nothing happens when a replacement exists or is being made.
    pub fn rekey_child(&mut self, now: Instant, id: IkeSaId, spi: u32) {
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(e) = sa.established() else { return };
        if e.own_quick.len() >= self.config.max_quick_modes_per_sa {
            return;
        }
        let Some(old) = e
            .children
            .iter()
            .find(|c| (c.inbound_spi == spi || c.outbound_spi == spi) && !c.rekeying)
        else {
            return;
        };
        let (transform, ids, replaces) = (old.transform, old.terms.ids.clone(), old.inbound_spi);
        let (local, peer) = (sa.local, sa.peer);
        let nat_oa = sa.nat_t.filter(|_| sa.udp_encap());
        let used: Vec<u32> = e
            .done_msgids
            .iter()
            .copied()
            .chain(e.quick.iter().map(|q| q.qm.msgid))
            .collect();
        let msgid = new_msgid(&mut self.rng, |m| used.contains(&m));
        let our_spi = self.new_spi(id);
        let offer = Offer {
            transforms: vec![transform.to_transform(1, transform.lifetime)],
            pfs: transform.group,
            // Our selectors first now that we initiate: IDci = ours, IDcr = the client's.
            ids: ids.map(|(client, ours)| (ours.emit(), client.emit())),
            nat_oa: nat_oa.map(|v| (v, local.ip(), peer.ip())),
        };
        let Some(p) = self.sas.get(&id).and_then(IkeSa::protection) else {
            return;
        };
        let Ok((qm, out)) =
            quick_mode::Initiator::start(&mut self.rng, &p, (msgid, our_spi), NONCE_LEN, offer)
        else {
            return;
        };
        let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) else {
            return;
        };
        if let Some(c) = e.children.iter_mut().find(|c| c.inbound_spi == replaces) {
            c.rekeying = true;
        }
        e.own_quick.push(OwnQuick {
            qm,
            replaces,
            last_tx: out.clone(),
            answered: None,
            retransmits: 0,
            next_retransmit: now + OWN_RETRANSMIT,
            deadline: now + QUICK_MODE_TIMEOUT,
            started: now,
        });
        self.stats.rekeys_started += 1;
        self.reschedule(id);
        self.send(local, peer, &out);
    }

    /// The client's answer to our Quick Mode (HASH(2), SA, Nr, [KE], [IDci, IDcr]) →
    /// message 3 and the new pair.
    fn own_quick_reply(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let msgid = msg.hdr.message_id;
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let (e, p) = sa.phase2()?;
        let Some(q) = e.own_quick.iter().find(|q| q.qm.msgid == msgid) else {
            return Err(DropReason::Unexpected);
        };
        if let Some(d) = q.answered {
            // Our message 3 was lost: the client repeats message 2.
            if d == msg.digest() && q.retransmits < MAX_RETRANSMITS {
                let (l, p, out) = (sa.local, sa.peer, q.last_tx.clone());
                if let Some(q) = self
                    .sas
                    .get_mut(&id)
                    .and_then(IkeSa::established_mut)
                    .and_then(|e| e.own_quick.iter_mut().find(|q| q.qm.msgid == msgid))
                {
                    q.retransmits += 1;
                }
                self.stats.retransmits += 1;
                self.send(l, p, &out);
                return Ok(());
            }
            return Err(DropReason::Replay);
        }
        let m = q.qm.open_answer(&p, &msg.hdr, msg.body)?;
        let Ok(chain) = m.payloads() else {
            return Err(DropReason::Malformed);
        };
        let Some(old) = e.children.iter().find(|c| c.inbound_spi == q.replaces) else {
            return Err(DropReason::Unexpected);
        };
        let answer = quick_mode::Initiator::answer(&chain).and_then(|a| {
            let (et, ot) = (&a.transform, &old.transform);
            let same =
                (et.cipher, et.auth, et.mode, et.group) == (ot.cipher, ot.auth, ot.mode, ot.group);
            let pfs = match (q.qm.has_pfs(), chain.find_kind(kind::KE)) {
                (false, _) => None,
                (true, Some(ke)) => Some(q.qm.pfs_secret(ke.body)?),
                (true, None) => return None,
            };
            (same && nonce_ok(a.nr) && a.peer_spi > 255).then(|| (a.nr.to_vec(), a.peer_spi, pfs))
        });
        let Some((nr, peer_spi, pfs)) = answer else {
            return Err(DropReason::NoProposal);
        };
        let last = m.last_block.clone().unwrap_or_default();
        let Ok(out) = q.qm.finish(&p, &nr, &last) else {
            return Ok(());
        };
        let len = old.transform.keymat_len();
        let keymat = q.qm.keymat(&e.keys, pfs.as_ref(), &nr, peer_spi, len);
        let now = msg.now;
        let started = q.started;
        let child = Child::new(
            now,
            (q.qm.our_spi, peer_spi),
            old.transform,
            old.terms.clone(),
        );
        self.move_peer(id, msg.local, msg.remote, true);
        let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
        let (l, p) = (sa.local, sa.peer);
        let Some(e) = sa.established_mut() else {
            return Err(DropReason::Unexpected);
        };
        if let Some(q) = e.own_quick.iter_mut().find(|q| q.qm.msgid == msgid) {
            q.answered = Some(msg.digest());
            q.last_tx = out.clone();
            q.retransmits = 0;
        }
        e.remember(msgid);
        self.send(l, p, &out);
        self.stats.rekeys_completed += 1;
        self.child_up(now, id, child, keymat, started);
        Ok(())
    }
}
