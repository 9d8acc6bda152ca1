//! Informational exchanges at the endpoint (RFC 2409 §5.7): DELETE (RFC 2408 §3.15),
//! notifies, and DPD (RFC 3706): answering R-U-THERE and probing an idle client.

use std::time::Instant;

use super::Handled;
use super::Responder;
use super::event::{DownReason, DropReason, IkeSaId};
use super::ike_sa::IkeSa;
use crate::exchange::informational::{r_u_there, r_u_there_ack};
use crate::exchange::{Incoming, new_msgid};
use crate::message::PayloadsExt;
use crate::notify::{Delete, Notify, code};
use crate::payload::{ChainBuilder, kind};
use crate::sa::protocol;

impl Responder {
    /// An Informational message of the client: HDR*, HASH(1), N/D.
    pub(super) fn informational(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let msgid = msg.hdr.message_id;
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let (e, p) = sa.phase2()?;
        if e.done_msgids.contains(&msgid) {
            return Err(DropReason::Replay);
        }
        let cookies = [sa.cky_i, sa.cky_r].concat();
        let m = p.open_first(&msg.hdr, msg.body)?;
        let Ok(chain) = m.payloads() else {
            return Err(DropReason::Malformed);
        };
        let notifies: Vec<Notify> = chain
            .all_kind(kind::N)
            .iter()
            .filter_map(|p| Notify::parse(p.body).ok())
            .collect();
        let deletes: Vec<Delete> = chain
            .all_kind(kind::D)
            .iter()
            .filter_map(|p| Delete::parse(p.body).ok())
            .collect();
        self.move_peer(id, msg.local, msg.remote, true);
        if let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) {
            e.remember(msgid);
            e.last_activity = msg.now;
            e.dpd_outstanding = false;
        }
        for n in notifies {
            if n.code == code::R_U_THERE {
                let ack = r_u_there_ack(n);
                self.send_info(id, |c| {
                    c.push(kind::N, &ack.emit());
                });
            }
        }
        for d in deletes {
            match d.protocol {
                protocol::ISAKMP if d.spis.contains(&cookies) => {
                    self.remove(id, DownReason::DeletedByPeer, false);
                    return Ok(());
                }
                protocol::ESP => {
                    for spi in &d.spis {
                        let Ok(spi) = <[u8; 4]>::try_from(spi.as_slice()) else {
                            continue;
                        };
                        let spi = u32::from_be_bytes(spi);
                        // After a Phase 1 rekey the client may delete a pair under the
                        // other of its IKE SAs.
                        let owner = self.child_owner(id, spi);
                        self.remove_child(owner, spi, DownReason::DeletedByPeer, false);
                    }
                }
                _ => {}
            }
        }
        self.reschedule(id);
        Ok(())
    }

    /// Sends a protected Informational message built by `fill` (RFC 2409 §5.7).
    pub(super) fn send_info(&mut self, id: IkeSaId, fill: impl FnOnce(&mut ChainBuilder)) {
        let msgid = new_msgid(&mut self.rng, |_| false);
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(p) = sa.protection() else { return };
        let mut rest = ChainBuilder::new();
        fill(&mut rest);
        let Some(out) = p.informational(msgid, rest) else {
            return;
        };
        let (local, peer) = (sa.local, sa.peer);
        self.send(local, peer, &out);
    }

    /// DPD (RFC 3706 §5.5): declares an idle client dead after `dpd_timeout` without an
    /// answer, or sends it R-U-THERE after `dpd_delay` idle. Returns false when it is gone.
    pub(super) fn dpd_timeout(&mut self, now: Instant, id: IkeSaId) -> bool {
        let (delay, timeout) = (self.config.dpd_delay, self.config.dpd_timeout);
        let Some(sa) = self.sas.get_mut(&id) else {
            return false;
        };
        let dpd = sa.vendor.dpd;
        let Some(e) = sa.established_mut() else {
            return true;
        };
        let Some(delay) = delay.filter(|_| !e.superseded && dpd) else {
            return true;
        };
        if e.dpd_outstanding && now >= e.last_activity + timeout {
            self.remove(id, DownReason::DeadPeer, false);
            return false;
        }
        if !e.dpd_outstanding && now >= e.last_activity + delay {
            e.dpd_outstanding = true;
            sa.dpd_seq = sa.dpd_seq.wrapping_add(1);
            let seq = sa.dpd_seq;
            let n = r_u_there((sa.cky_i, sa.cky_r), seq);
            self.send_info(id, |c| {
                c.push(kind::N, &n.emit());
            });
        }
        true
    }
}
