//! Our own Main Mode: the gateway replaces an IKE SA shortly before it expires (RFC 2409 §5
//! lets either side negotiate a new ISAKMP SA; roles are per exchange, so here we are the
//! initiator and the client the responder). Clients normally go first (strongSwan and
//! Windows rekey well before expiry); this is for SAs whose lifetime we shortened or
//! clients that never rekey.
//!
//! Once the new SA is up, the old one's ESP SA pairs move to it (`Event::ChildSaMoved`) and
//! the old one is deleted with an ISAKMP DELETE only, so the L2TP tunnel inside never
//! notices. strongSwan does the same on its side (it adopts the CHILD_SAs of an IKEv1 SA
//! that a new Main Mode from the same peer and identity replaces). No INITIAL-CONTACT is
//! sent: it would make the client drop its ESP SAs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_core::Rng;
use subtle::ConstantTimeEq;

use super::{
    CERT_X509_SIGNATURE, DownReason, DropReason, Event, IkeSa, IkeSaId, MAX_CERT_REQUESTS,
    NONCE_LEN, OWN_QUICK_RETRANSMIT, Phase, Responder, digest, id_and_proof, nat_seen, shown_nat,
    x509_certs,
};
use crate::dh::KeyPair;
use crate::header::{ExchangeType, Header};
use crate::identity::Identification;
use crate::keys::{AuthHashInput, Phase1Input, SkeyidInput, auth_hash, derive_phase1, phase1_iv};
use crate::message::{Message, PayloadsExt, header, seal_encrypted, seal_plain};
use crate::natt::{PeerVendor, nat_d, vid};
use crate::payload::{ChainBuilder, RawPayload, kind, parse_chain};
use crate::sa::{AuthMethod, IkeTransform, Lifetime, Proposal, SaPayload, protocol};

/// Resends of one of our Main Mode messages before the rekey is given up.
const MAX_RESENDS: u8 = 3;
/// How soon a Phase 1 rekey that failed or could not start is tried again.
const RETRY: Duration = Duration::from_secs(10);
/// The client's NAT-T port when we float there ourselves (RFC 3947 §4).
const PEER_NATT_PORT: u16 = 4500;

/// State of a Main Mode we started.
#[cfg_attr(fuzzing, derive(Clone))]
pub(super) struct OwnMain {
    /// The IKE SA it replaces.
    pub(super) replaces: IkeSaId,
    /// The identity the client authenticated with there: the new SA must have the same.
    expect: Identification,
    dh: Option<KeyPair>,
    resends: u8,
    pub(super) next_retransmit: Instant,
    /// Set once the new SA is up (the old one is then removed).
    done: bool,
}

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
        if old.phase != Phase::Established
            || old.superseded
            || old.exchange != ExchangeType::IdentityProtection
            || old.deadline <= now
        {
            return;
        }
        let Some(expect) = old.identity.clone() else {
            return;
        };
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
        let (peer, local, transform, lifetime) = (old.peer, old.local, old.transform, old.lifetime);
        let (nat_t, dpd, nat, local_behind_nat) =
            (old.nat_t, old.vendor.dpd, old.nat, old.local_behind_nat);
        let cky_i = self.fresh_cookie();
        let new_id = IkeSaId(u64::from_be_bytes(cky_i));
        let sai_b = SaPayload {
            proposals: vec![Proposal {
                number: 1,
                protocol: protocol::ISAKMP,
                spi: vec![],
                transforms: vec![transform.to_transform(
                    1,
                    Lifetime {
                        seconds: Some(lifetime.as_secs()),
                        kilobytes: None,
                    },
                )],
            }],
        }
        .emit();
        let mut c = ChainBuilder::new();
        c.push(kind::SA, &sai_b);
        if let Some(v) = nat_t {
            c.push(kind::VID, &v.vendor_id());
        }
        if dpd {
            c.push(kind::VID, &vid::DPD);
        }
        let msg = seal_plain(
            header(cky_i, [0; 8], ExchangeType::IdentityProtection, 0),
            &c,
        );
        let mut sa = IkeSa::new(
            new_id,
            (cky_i, [0; 8]),
            (peer, local),
            transform,
            sai_b,
            now,
            now + self.config.half_open_timeout,
        );
        sa.phase = Phase::SentSa;
        sa.dpd_seq = self.rng.next_u32() >> 1;
        sa.nat_t = nat_t;
        sa.nat = nat;
        sa.local_behind_nat = local_behind_nat;
        sa.lifetime = lifetime;
        sa.own = Some(OwnMain {
            replaces: id,
            expect,
            dh: None,
            resends: 0,
            next_retransmit: now,
            done: false,
        });
        self.sas.insert(new_id, sa);
        self.journal(super::SaChange::Added(new_id));
        *self.per_client.entry(peer).or_default() += 1;
        if let Some(old) = self.sas.get_mut(&id) {
            old.superseded = true;
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
        if let Some(o) = sa.own.as_mut() {
            o.resends = 0;
            o.next_retransmit = now + OWN_QUICK_RETRANSMIT;
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
        let Some(o) = sa.own.as_mut() else { return };
        if sa.deadline <= now || (o.next_retransmit <= now && o.resends >= MAX_RESENDS) {
            return self.own_main_failed(now, id);
        }
        if o.next_retransmit > now {
            return;
        }
        o.resends += 1;
        o.next_retransmit = now + OWN_QUICK_RETRANSMIT * (1 << o.resends.min(4));
        let (local, peer, out) = (sa.local, sa.peer, sa.last_tx.clone());
        self.stats.retransmits += 1;
        self.send(local, peer, &out);
    }

    /// Our Main Mode failed: forget it; the SA it was to replace tries again shortly.
    fn own_main_failed(&mut self, now: Instant, id: IkeSaId) {
        let replaces = self
            .sas
            .get(&id)
            .and_then(|s| s.own.as_ref())
            .map(|o| o.replaces);
        self.remove(id, DownReason::Closed, false);
        if let Some(old) = replaces {
            if let Some(sa) = self.sas.get_mut(&old) {
                sa.superseded = false;
            }
            self.retry_later(now, old);
        }
    }

    fn retry_later(&mut self, now: Instant, id: IkeSaId) {
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.rekey_at = Some(now + RETRY);
        }
        self.reschedule(id);
    }

    /// The payloads of the client's message 2 or 4. Nothing is authenticated before message
    /// 6, so only the client's address may answer; `None` (counted) otherwise or when the
    /// payloads do not parse.
    fn own_reply<'a>(
        &mut self,
        id: IkeSaId,
        remote: SocketAddr,
        hdr: &Header,
        body: &'a [u8],
    ) -> Option<Vec<RawPayload<'a>>> {
        if self.sas.get(&id).is_some_and(|sa| sa.peer != remote) {
            self.discard(DropReason::Unexpected);
            return None;
        }
        let chain = parse_chain(hdr.next_payload, body).ok();
        if chain.is_none() {
            self.discard(DropReason::Malformed);
        }
        chain
    }

    /// Main Mode message 2 (HDR, SA, VID*) → message 3 (HDR, KE, Ni, [CR*], NAT-D*).
    pub(super) fn own_main_sa(
        &mut self,
        now: Instant,
        id: IkeSaId,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let Some(chain) = self.own_reply(id, remote, hdr, body) else {
            return;
        };
        let chosen = chain
            .find_kind(kind::SA)
            .and_then(|p| SaPayload::parse(p.body).ok())
            .and_then(|sa| {
                let t = sa.proposals.first()?.transforms.first()?;
                IkeTransform::from_transform(t).ok()
            });
        let Some(sa) = self.sas.get(&id) else { return };
        if !chosen.is_some_and(|c| same_suite(&c, &sa.transform)) {
            self.discard(DropReason::NoProposal);
            return self.own_main_failed(now, id);
        }
        let mut vendor = PeerVendor::default();
        for v in chain.all_kind(kind::VID) {
            vendor.note(v.body);
        }
        let signatures = sa.transform.auth == AuthMethod::RsaSignature;
        let cert_requests: Vec<Vec<u8>> = match (&self.config.client_ca, signatures) {
            (Some(ca), true) => ca
                .ca_names()
                .into_iter()
                .take(MAX_CERT_REQUESTS)
                .map(|dn| [&[CERT_X509_SIGNATURE][..], &dn].concat())
                .collect(),
            _ => Vec::new(),
        };
        let dh = KeyPair::generate(sa.transform.group, &mut self.rng);
        let mut ni = vec![0u8; NONCE_LEN];
        self.rng.fill_bytes(&mut ni);
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        sa.cky_r = hdr.cky_r;
        sa.vendor = vendor;
        sa.nat_t = vendor.nat_t.filter(|_| sa.nat_t.is_some());
        let mut c = ChainBuilder::new();
        c.push(kind::KE, dh.public()).push(kind::NONCE, &ni);
        for cr in &cert_requests {
            c.push(kind::CR, cr);
        }
        if let Some(v) = sa.nat_t {
            // RFC 3947 §3.2: the client's address first, then ours.
            let h = sa.transform.hash;
            c.push(v.nat_d_kind(), &nat_d(h, &sa.cky_i, &sa.cky_r, sa.peer))
                .push(v.nat_d_kind(), &nat_d(h, &sa.cky_i, &sa.cky_r, sa.local));
        }
        let out = seal_plain(
            header(sa.cky_i, sa.cky_r, ExchangeType::IdentityProtection, 0),
            &c,
        );
        sa.gxi = dh.public().to_vec();
        sa.ni = ni;
        sa.phase = Phase::SentKe;
        sa.last_rx = digest(msg);
        if let Some(o) = sa.own.as_mut() {
            o.dh = Some(dh);
        }
        self.send_own(now, id, out);
    }

    /// Main Mode message 4 (HDR, KE, Nr, [CR*], NAT-D*) → message 5 (HDR*, IDii, HASH_I or
    /// CERT* + SIG_I).
    pub(super) fn own_main_ke(
        &mut self,
        now: Instant,
        id: IkeSaId,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let Some(chain) = self.own_reply(id, remote, hdr, body) else {
            return;
        };
        let (Some(ke), Some(nr)) = (chain.find_kind(kind::KE), chain.find_kind(kind::NONCE)) else {
            return self.discard(DropReason::Malformed);
        };
        if !(8..=256).contains(&nr.body.len()) {
            return self.discard(DropReason::Malformed);
        }
        let Some(sa) = self.sas.get(&id) else { return };
        let Some(dh) = sa.own.as_ref().and_then(|o| o.dh.as_ref()) else {
            return;
        };
        let Ok(gxy) = dh.shared_secret(ke.body) else {
            return self.discard(DropReason::Malformed);
        };
        let credentials = match sa.transform.auth {
            AuthMethod::RsaSignature => self.config.certificate.clone(),
            AuthMethod::PreSharedKey => None,
        };
        let psk = self.config.psk.clone();
        let auth = match (&credentials, &psk) {
            (Some(_), _) => SkeyidInput::Signature,
            (None, Some(p)) if sa.transform.auth == AuthMethod::PreSharedKey => {
                SkeyidInput::PreSharedKey(p)
            }
            _ => return self.own_main_failed(now, id),
        };
        let keys = derive_phase1(&Phase1Input {
            hash: sa.transform.hash,
            cipher: sa.transform.cipher,
            auth,
            ni: &sa.ni,
            nr: nr.body,
            gxy: &gxy,
            cky_i: sa.cky_i,
            cky_r: sa.cky_r,
        });
        let nat = sa
            .nat_t
            .map(|v| nat_seen(sa, &chain.all_kind(v.nat_d_kind())));
        let detection = self.config.nat_detection;
        let idii = super::own_id(credentials.as_deref(), sa.local.ip());
        let hash_i = auth_hash(
            keys.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &sa.gxi,
                gx_peer: ke.body,
                cky_self: sa.cky_i,
                cky_peer: sa.cky_r,
                sai_b: &sa.sai_b,
                id_b: &idii,
            },
        );
        let Some(c) = id_and_proof(&mut self.rng, credentials.as_deref(), &idii, &hash_i) else {
            return self.own_main_failed(now, id);
        };
        let iv = phase1_iv(keys.hash, keys.cipher, &sa.gxi, ke.body);
        let Ok((out, last)) = seal_encrypted(
            header(sa.cky_i, sa.cky_r, ExchangeType::IdentityProtection, 0),
            &c,
            keys.cipher,
            &keys.enc_key,
            &iv,
        ) else {
            return self.own_main_failed(now, id);
        };
        let natt_port = self.config.natt_port;
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        match nat {
            Some(Some((local_behind, peer_behind))) => {
                sa.local_behind_nat = local_behind;
                sa.nat = shown_nat(detection, local_behind, peer_behind);
            }
            Some(None) => sa.nat_t = None,
            None => {}
        }
        sa.gxr = ke.body.to_vec();
        sa.iv = last;
        sa.keys = Some(keys);
        sa.phase = Phase::SentAuth;
        sa.last_rx = digest(msg);
        // RFC 3947 §4: with a NAT in between, message 5 on goes to the NAT-T ports (an SA
        // that had floated already is there).
        let (mut local, mut peer) = (sa.local, sa.peer);
        if sa.nat.any() && sa.nat_t.is_some() && local.port() != natt_port {
            local.set_port(natt_port);
            peer.set_port(PEER_NATT_PORT);
        }
        self.move_peer(id, local, peer, false);
        self.send_own(now, id, out);
    }

    /// Main Mode message 6 (HDR*, IDir, HASH_R or CERT* + SIG_R): the new SA is up.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn own_main_auth(
        &mut self,
        now: Instant,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        hdr: &Header,
        body: &[u8],
        msg: &[u8],
    ) {
        let Some(sa) = self.sas.get(&id) else { return };
        let (Some(keys), Some(own)) = (sa.keys.as_ref(), sa.own.as_ref()) else {
            return;
        };
        let Ok(m) = Message::decrypt(*hdr, body, keys.cipher, &keys.enc_key, &sa.iv) else {
            return self.discard(DropReason::Malformed);
        };
        let signatures = sa.transform.auth == AuthMethod::RsaSignature;
        let parsed = m.payloads().ok().and_then(|chain| {
            let id_p = chain.find_kind(kind::ID)?;
            let proof = chain.find_kind(if signatures { kind::SIG } else { kind::HASH })?;
            Some((id_p.body.to_vec(), proof.body.to_vec(), x509_certs(&chain)))
        });
        let verdict = match parsed {
            None => Err("message 6 did not decrypt (pre-shared key mismatch?)".to_owned()),
            Some((idr_b, proof, certs)) => {
                let expect = auth_hash(
                    keys.hash,
                    &keys.skeyid,
                    &AuthHashInput {
                        gx_self: &sa.gxr,
                        gx_peer: &sa.gxi,
                        cky_self: sa.cky_r,
                        cky_peer: sa.cky_i,
                        sai_b: &sa.sai_b,
                        id_b: &idr_b,
                    },
                );
                match Identification::parse(&idr_b) {
                    Err(_) => Err("IDir does not parse".to_owned()),
                    Ok(ident) if ident != own.expect => Err(format!(
                        "the client answered as {}, not as {}",
                        ident.display(),
                        own.expect.display()
                    )),
                    Ok(ident) if signatures => self
                        .check_certificate(&certs, &ident, &expect, &proof)
                        .map(|p| (ident, Some(p.subject_display()))),
                    Ok(ident) => {
                        if bool::from(expect.as_slice().ct_eq(&proof)) {
                            Ok((ident, None))
                        } else {
                            Err("HASH_R mismatch".to_owned())
                        }
                    }
                }
            }
        };
        match verdict {
            Err(reason) => {
                self.discard(DropReason::AuthFailed);
                self.event(Event::AuthFailed {
                    peer: remote,
                    reason: format!("our Phase 1 rekey: {reason}"),
                });
                self.own_main_failed(now, id)
            }
            Ok((ident, subject)) => {
                let last = m.last_block.clone();
                let Some(sa) = self.sas.get_mut(&id) else {
                    return;
                };
                if let Some(l) = last {
                    sa.iv = l;
                }
                sa.identity = Some(ident);
                sa.peer_subject = subject;
                sa.last_rx = digest(msg);
                self.move_peer(id, local, remote, false);
                self.phase1_done(now, id, false, None);
            }
        }
    }

    /// After a Main Mode we started completed: the SA it replaces hands its ESP SAs over
    /// and is deleted (only the ISAKMP SA: the pairs live on under `id`).
    pub(super) fn own_main_done(&mut self, id: IkeSaId) {
        let Some(o) = self.sas.get_mut(&id).and_then(|sa| sa.own.as_mut()) else {
            return;
        };
        if o.done {
            return;
        }
        o.done = true;
        o.dh = None;
        let old = o.replaces;
        self.stats.ike_rekeys_completed += 1;
        self.remove(old, DownReason::Rekeyed, true);
    }
}
