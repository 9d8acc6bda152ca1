//! Our own Main Mode: the gateway replaces an IKE SA shortly before it expires (RFC 2409 §5
//! lets either side negotiate a new ISAKMP SA; roles are per exchange, so here we are the
//! initiator and the client the responder). Clients normally go first (strongSwan and
//! Windows rekey well before expiry); this is for SAs whose lifetime we shortened or
//! clients that never rekey. The messages are those of the in-repo initiator: both drive
//! the initiator states of [`crate::exchange::main_mode`].
//!
//! Once the new SA is up, the old one's ESP SA pairs move to it (`Event::ChildSaMoved`) and
//! the old one is deleted with an ISAKMP DELETE only, so the L2TP tunnel inside never
//! notices. strongSwan does the same on its side (it adopts the CHILD_SAs of an IKEv1 SA
//! that a new Main Mode from the same peer and identity replaces). No INITIAL-CONTACT is
//! sent: it would make the client drop its ESP SAs.

use std::time::{Duration, Instant};

use rand_core::Rng;

use super::Handled;
use super::event::{DownReason, DropReason, Event, IkeSaId};
use super::ike_sa::{IkeSa, Initiating, InitiatingStep, State};
use super::phase1::Phase1End;
use super::{MAX_CERT_REQUESTS, NONCE_LEN, OWN_RETRANSMIT, Responder, SaChange};
use crate::exchange::main_mode::{self, InitiatorSentSa, Message6Error, OwnProof, SendAuthError};
use crate::exchange::{Incoming, cert_requests, chosen_ike, hash_eq, nonce_ok, own_id, vendor_of};
use crate::identity::Identification;
use crate::keys::SkeyidInput;
use crate::message::PayloadsExt;
use crate::payload::{RawPayload, parse_chain};
use crate::sa::{AuthMethod, IkeTransform, Lifetime};

/// Resends of one of our Main Mode messages before the rekey is given up.
const MAX_RESENDS: u8 = 3;
/// How soon a Phase 1 rekey that failed or could not start is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// The client's NAT-T port when we float there ourselves (RFC 3947 §4).
const PEER_NATT_PORT: u16 = 4500;
/// CERT payloads accepted from the client (its leaf and intermediates).
const MAX_CLIENT_CERTS: usize = 6;

/// Same algorithms (the lifetime may differ).
fn same_suite(a: &IkeTransform, b: &IkeTransform) -> bool {
    (a.cipher, a.hash, a.auth, a.group) == (b.cipher, b.hash, b.auth, b.group)
}

impl Responder {
    /// Starts our own Main Mode to replace the IKE SA `id` (its lifetime is running out),
    /// with the transform and identity it was made with. Nothing happens when a newer SA of
    /// the client exists or is being made, or when `id` came from Aggressive Mode.
    pub fn rekey_ike(&mut self, now: Instant, id: IkeSaId) {
        let Some(old) = self.sas.get(&id) else { return };
        let Some(e) = old.established() else { return };
        if e.superseded
            || old.exchange != crate::header::ExchangeType::IdentityProtection
            || old.deadline <= now
        {
            return;
        }
        let expect = e.identity.clone();
        let usable = match old.transform.auth {
            AuthMethod::PreSharedKey => self.config.psk.is_some(),
            AuthMethod::RsaSignature => {
                self.config.certificate.is_some() && self.config.client_ca.is_some()
            }
        };
        let per_client = self.per_client.get(&old.peer).copied().unwrap_or(0);
        if !usable
            || per_client >= self.config.max_ike_sas_per_client
            || self.sas.len() >= self.config.max_ike_sas
        {
            return self.retry_later(now, id);
        }
        let (peer, local, transform, lifetime) = (old.peer, old.local, old.transform, e.lifetime);
        let (nat_t, dpd, nat, local_behind_nat) =
            (old.nat_t, old.vendor.dpd, old.nat, old.local_behind_nat);
        let cky_i = self.fresh_cookie();
        let new_id = IkeSaId(u64::from_be_bytes(cky_i));
        let proposal = transform.to_transform(
            1,
            Lifetime {
                seconds: Some(lifetime.as_secs()),
                kilobytes: None,
            },
        );
        let (st, msg) = InitiatorSentSa::start(cky_i, vec![proposal], nat_t, dpd);
        let mut sa = IkeSa::new(
            new_id,
            (cky_i, [0; 8]),
            (peer, local),
            transform,
            (now, now + self.config.half_open_timeout),
            State::Initiating(Box::new(Initiating {
                replaces: id,
                expect,
                resends: 0,
                next_retransmit: now,
                step: InitiatingStep::Sa(st),
            })),
        );
        sa.dpd_seq = self.rng.next_u32() >> 1;
        sa.nat_t = nat_t;
        sa.nat = nat;
        sa.local_behind_nat = local_behind_nat;
        self.sas.insert(new_id, sa);
        self.journal(SaChange::Added(new_id));
        *self.per_client.entry(peer).or_default() += 1;
        if let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) {
            e.superseded = true;
        }
        self.stats.ike_rekeys_started += 1;
        self.reschedule(id);
        self.send_own(now, new_id, msg);
    }

    /// Sends (and remembers for resending) our next Main Mode message.
    fn send_own(&mut self, now: Instant, id: IkeSaId, msg: Vec<u8>) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if let State::Initiating(o) = &mut sa.state {
            o.resends = 0;
            o.next_retransmit = now + OWN_RETRANSMIT;
        }
        let (local, peer) = (sa.local, sa.peer);
        sa.last_tx = msg;
        let out = sa.last_tx.clone();
        self.reschedule(id);
        self.send(local, peer, &out);
    }

    /// Timers of a Main Mode we started: resend, or give up at the limit or the deadline.
    pub(super) fn own_main_timeout(&mut self, now: Instant, id: IkeSaId) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let deadline = sa.deadline;
        let State::Initiating(o) = &mut sa.state else {
            return;
        };
        if deadline <= now || (o.next_retransmit <= now && o.resends >= MAX_RESENDS) {
            return self.own_main_failed(now, id);
        }
        if o.next_retransmit > now {
            return;
        }
        o.resends += 1;
        o.next_retransmit = now + OWN_RETRANSMIT * (1 << o.resends.min(4));
        let (local, peer, out) = (sa.local, sa.peer, sa.last_tx.clone());
        self.stats.retransmits += 1;
        self.send(local, peer, &out);
    }

    /// Our Main Mode failed: forget it; the SA it was to replace tries again shortly.
    fn own_main_failed(&mut self, now: Instant, id: IkeSaId) {
        let replaces = self
            .sas
            .get(&id)
            .and_then(IkeSa::initiating)
            .map(|o| o.replaces);
        self.remove(id, DownReason::Closed, false);
        if let Some(old) = replaces {
            if let Some(e) = self.sas.get_mut(&old).and_then(IkeSa::established_mut) {
                e.superseded = false;
            }
            self.retry_later(now, old);
        }
    }

    fn retry_later(&mut self, now: Instant, id: IkeSaId) {
        if let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) {
            e.rekey_at = Some(now + RETRY);
        }
        self.reschedule(id);
    }

    /// The payloads of the client's message 2 or 4. Nothing is authenticated before message
    /// 6, so only the client's address may answer.
    fn own_reply<'a>(
        &self,
        id: IkeSaId,
        msg: &Incoming<'a>,
    ) -> Result<Vec<RawPayload<'a>>, DropReason> {
        if self.sas.get(&id).is_some_and(|sa| sa.peer != msg.remote) {
            return Err(DropReason::Unexpected);
        }
        parse_chain(msg.hdr.next_payload, msg.body).map_err(|_| DropReason::Malformed)
    }

    /// Main Mode message 2 (HDR, SA, VID*) → message 3 (HDR, KE, Ni, [CR*], NAT-D*).
    pub(super) fn own_main_sa(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let chain = self.own_reply(id, msg)?;
        let chosen = chosen_ike(&chain);
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        if !chosen.is_some_and(|c| same_suite(&c, &sa.transform)) {
            self.own_main_failed(msg.now, id);
            return Err(DropReason::NoProposal);
        }
        let Some(InitiatingStep::Sa(st)) = sa.initiating_step() else {
            return Err(DropReason::Unexpected);
        };
        let vendor = vendor_of(&chain);
        let signatures = sa.transform.auth == AuthMethod::RsaSignature;
        let crs = match (&self.config.client_ca, signatures) {
            (Some(ca), true) => cert_requests(ca, MAX_CERT_REQUESTS),
            _ => Vec::new(),
        };
        let nat_t = vendor.nat_t.filter(|_| sa.nat_t.is_some());
        let mut facts = sa.phase1();
        facts.cky_r = msg.hdr.cky_r;
        let (next, out) = st.send_ke(&mut self.rng, &facts, NONCE_LEN, &crs, nat_t);
        let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
        sa.cky_r = msg.hdr.cky_r;
        sa.vendor = vendor;
        sa.nat_t = nat_t;
        sa.set_initiating(InitiatingStep::Ke(next));
        sa.last_rx = msg.digest();
        self.send_own(msg.now, id, out);
        Ok(())
    }

    /// Main Mode message 4 (HDR, KE, Nr, [CR*], NAT-D*) → message 5 (HDR*, IDii, HASH_I or
    /// CERT* + SIG_I).
    pub(super) fn own_main_ke(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let chain = self.own_reply(id, msg)?;
        let Some((ke, nr)) = main_mode::key_exchange(&chain) else {
            return Err(DropReason::Malformed);
        };
        if !nonce_ok(nr.body) {
            return Err(DropReason::Malformed);
        }
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let Some(InitiatingStep::Ke(st)) = sa.initiating_step() else {
            return Err(DropReason::Unexpected);
        };
        let credentials = match sa.transform.auth {
            AuthMethod::RsaSignature => self.config.certificate.clone(),
            AuthMethod::PreSharedKey => None,
        };
        let psk = self.config.psk.as_deref();
        let auth = match (&credentials, psk) {
            (Some(_), _) => Some(SkeyidInput::Signature),
            (None, Some(p)) if sa.transform.auth == AuthMethod::PreSharedKey => {
                Some(SkeyidInput::PreSharedKey(p))
            }
            _ => None,
        };
        let facts = sa.phase1();
        let nat = sa
            .nat_t
            .map(|v| facts.nat_seen(&chain.all_kind(v.nat_d_kind())));
        let idii = own_id(credentials.as_deref(), sa.local.ip());
        let own = OwnProof {
            auth,
            id_b: &idii,
            credentials: credentials.as_deref(),
        };
        let (next, out) = match st.send_auth(&mut self.rng, &facts, (ke.body, nr.body), &own) {
            Ok(r) => r,
            Err(SendAuthError::BadKe) => return Err(DropReason::Malformed),
            Err(SendAuthError::NoCredentials | SendAuthError::Seal) => {
                self.own_main_failed(msg.now, id);
                return Ok(());
            }
        };
        let (natt_port, detection) = (self.config.natt_port, self.config.nat_detection);
        let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
        sa.apply_nat(nat, detection);
        sa.set_initiating(InitiatingStep::Auth(Box::new(next)));
        sa.last_rx = msg.digest();
        // RFC 3947 §4: with a NAT in between, message 5 on goes to the NAT-T ports (an SA
        // that had floated already is there).
        let (mut local, mut peer) = (sa.local, sa.peer);
        if sa.udp_encap() && local.port() != natt_port {
            local.set_port(natt_port);
            peer.set_port(PEER_NATT_PORT);
        }
        self.move_peer(id, local, peer, false);
        self.send_own(msg.now, id, out);
        Ok(())
    }

    /// Main Mode message 6 (HDR*, IDir, HASH_R or CERT* + SIG_R): the new SA is up.
    pub(super) fn own_main_auth(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let Some(Initiating {
            step: InitiatingStep::Auth(st),
            expect,
            ..
        }) = sa.initiating()
        else {
            return Err(DropReason::Unexpected);
        };
        let signatures = sa.transform.auth == AuthMethod::RsaSignature;
        let verdict = match st.open(&sa.phase1(), &msg.hdr, msg.body, signatures) {
            Err(Message6Error::Undecryptable) => return Err(DropReason::Malformed),
            Err(Message6Error::Garbled) => {
                Err("message 6 did not decrypt (pre-shared key mismatch?)".to_owned())
            }
            Ok((m, proof, hash_r)) => match Identification::parse(&proof.id_b) {
                Err(_) => Err("IDir does not parse".to_owned()),
                Ok(ident) if ident != *expect => Err(format!(
                    "the client answered as {}, not as {}",
                    ident.display(),
                    expect.display()
                )),
                Ok(ident) if signatures => {
                    let certs = proof.certs.get(..MAX_CLIENT_CERTS).unwrap_or(&proof.certs);
                    self.check_certificate(certs, &ident, &hash_r, &proof.proof)
                        .map(|p| (m, ident, Some(p.subject_display())))
                        .map_err(|why| why.to_string())
                }
                Ok(ident) if hash_eq(&hash_r, &proof.proof) => Ok((m, ident, None)),
                Ok(_) => Err("HASH_R mismatch".to_owned()),
            },
        };
        match verdict {
            Err(reason) => {
                self.event(Event::AuthFailed {
                    peer: msg.remote,
                    reason: format!("our Phase 1 rekey: {reason}"),
                });
                self.own_main_failed(msg.now, id);
                Err(DropReason::AuthFailed)
            }
            Ok((m, identity, peer_subject)) => {
                if let Some(sa) = self.sas.get_mut(&id) {
                    sa.last_rx = msg.digest();
                }
                self.move_peer(id, msg.local, msg.remote, false);
                let end = Phase1End {
                    identity,
                    peer_subject,
                    iv: m.last_block,
                    initial_contact: false,
                    reply: None,
                };
                self.phase1_done(msg.now, id, end);
                Ok(())
            }
        }
    }
}
