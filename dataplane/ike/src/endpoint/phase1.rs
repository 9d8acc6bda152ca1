//! The client's Phase 1 at the endpoint: admitting message 1 (limits, proposal choice,
//! half-open bookkeeping), driving the responder states of [`crate::exchange::main_mode`]
//! and [`crate::exchange::aggressive`], and completing an IKE SA (RFC 2409 §5).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_core::Rng;

use super::Handled;
use super::event::{DownReason, DropReason, Event, IkeSaId};
use super::ike_sa::{Established, IkeSa, Responding, RespondingStep, State};
use super::{DEFAULT_LIFETIME, MAX_CERT_REQUESTS, NONCE_LEN, Responder, SaChange};
use crate::cert::PeerCert;
use crate::exchange::aggressive::{self, Message3Error};
use crate::exchange::main_mode::{self, NatAnswer, ResponderKeying, ResponderSentSa};
use crate::exchange::{Incoming, cert_requests, hash_eq, initial_contact, nonce_ok, vendor_of};
use crate::header::ExchangeType;
use crate::identity::Identification;
use crate::keys::Phase1Keys;
use crate::natt::NatDetection;
use crate::notify::code;
use crate::payload::{kind, parse_chain};
use crate::sa::{AuthMethod, SaPayload};

/// CERT payloads accepted from a client (its leaf and intermediates).
const MAX_CLIENT_CERTS: usize = 6;

/// Why a peer's certificate was refused (RFC 2409 §5.1).
#[derive(Debug)]
pub(super) enum CertRefusal {
    /// We have no CA to check it against.
    NoClientCa,
    /// The peer sent none.
    NoCertificate,
    /// It does not chain to our CAs, or is not valid now.
    Invalid(crate::cert::CertError),
    /// The peer's ID does not name it.
    IdMismatch {
        /// The ID, printable.
        id: String,
        /// The certificate's subject.
        subject: String,
    },
    /// Its key did not make the signature.
    BadSignature {
        /// The certificate's subject.
        subject: String,
    },
}

impl fmt::Display for CertRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertRefusal::NoClientCa => write!(f, "no client CA configured"),
            CertRefusal::NoCertificate => write!(f, "the client sent no X.509 certificate"),
            CertRefusal::Invalid(e) => write!(f, "client certificate refused: {e}"),
            CertRefusal::IdMismatch { id, subject } => {
                write!(f, "ID {id} does not name the certificate of {subject}")
            }
            CertRefusal::BadSignature { subject } => {
                write!(f, "SIG_I of {subject} does not verify")
            }
        }
    }
}

/// How a Phase 1 exchange ended, for [`Responder::phase1_done`].
pub(super) struct Phase1End {
    /// The peer's authenticated identity.
    pub(super) identity: Identification,
    /// The peer certificate's subject, with signatures (for logs).
    pub(super) peer_subject: Option<String>,
    /// The last block of the last encrypted Phase 1 message, when there was one after the
    /// state's own IV.
    pub(super) iv: Option<Vec<u8>>,
    /// The peer sent INITIAL-CONTACT.
    pub(super) initial_contact: bool,
    /// Our last message (Main Mode message 6), to send and to resend.
    pub(super) reply: Option<Vec<u8>>,
}

impl Responder {
    /// Main Mode message 1 (HDR, SA, VID*) → message 2; Aggressive Mode message 1
    /// (HDR, SA, KE, Ni, IDii, VID*) → message 2 when the configuration allows it.
    pub(super) fn first_message(&mut self, msg: &Incoming<'_>) -> Handled {
        let (hdr, remote) = (&msg.hdr, msg.remote);
        match hdr.exchange {
            ExchangeType::IdentityProtection => {}
            ExchangeType::Aggressive if self.config.allow_aggressive => {}
            ExchangeType::Aggressive => {
                self.notify_plain(msg, [0; 8], code::INVALID_EXCHANGE_TYPE);
                return Err(DropReason::AggressiveRefused);
            }
            _ => return Err(DropReason::Unexpected),
        }
        if hdr.message_id != 0 || hdr.encrypted() {
            return Err(DropReason::Malformed);
        }
        if let Some(&id) = self.by_initiator.get(&(remote, hdr.cky_i)) {
            if self
                .sas
                .get(&id)
                .is_some_and(|sa| sa.last_rx == msg.digest())
            {
                return self.retransmit(id);
            }
            return Err(DropReason::Unexpected);
        }
        let per_ip = self.half_open_by_ip.get(&remote.ip()).copied().unwrap_or(0);
        let per_client = self.per_client.get(&remote).copied().unwrap_or(0);
        if per_ip >= self.config.max_half_open_per_ip
            || per_client >= self.config.max_ike_sas_per_client
        {
            return Err(DropReason::Limit);
        }
        let Ok(chain) = parse_chain(hdr.next_payload, msg.body) else {
            return Err(DropReason::Malformed);
        };
        let Some(sa_p) = chain.first().filter(|p| p.kind == kind::SA) else {
            return Err(DropReason::Malformed);
        };
        let Ok(sa_payload) = SaPayload::parse(sa_p.body) else {
            return Err(DropReason::Malformed);
        };
        let vendor = vendor_of(&chain);
        let Some(choice) = self.config.choose_ike(&sa_payload) else {
            self.notify_plain(msg, [0; 8], code::NO_PROPOSAL_CHOSEN);
            return Err(DropReason::NoProposal);
        };
        // A full table makes room by evicting the oldest unanswered message 1 (see
        // `pressure`); only a table of proven exchanges refuses the newcomer.
        while self.half_open >= self.config.max_half_open
            || self.sas.len() >= self.config.max_ike_sas
        {
            if !self.evict_unproven() {
                return Err(DropReason::Limit);
            }
        }
        let cky_r = self.fresh_cookie();
        let id = IkeSaId(u64::from_be_bytes(cky_r));
        let dpd_seq = self.rng.next_u32() >> 1;
        let mut sa = IkeSa::new(
            id,
            (hdr.cky_i, cky_r),
            (remote, msg.local),
            choice.transform,
            (msg.now, msg.now + self.config.half_open_timeout),
            State::Responding(Responding {
                step: RespondingStep::MainSentSa(ResponderSentSa::new(sa_p.body.to_vec())),
                first_message: Some((remote, hdr.cky_i)),
            }),
        );
        sa.dpd_seq = dpd_seq;
        sa.exchange = hdr.exchange;
        sa.vendor = vendor;
        sa.nat_t = vendor.nat_t;
        sa.last_rx = msg.digest();
        let sa_reply = choice.reply.emit();
        let facts = sa.phase1();
        let answer = if hdr.exchange == ExchangeType::Aggressive {
            let keying = aggressive::ResponderKeying {
                sa_reply: &sa_reply,
                psk: self.config.psk.as_deref().map(Vec::as_slice),
                nonce_len: NONCE_LEN,
                vendor,
                force_encap: self.config.nat_detection == NatDetection::ParrotForceEncapsulation,
            };
            let sa_facts = (sa_p.body, chain.as_slice());
            Some(
                aggressive::ResponderSent::answer(
                    &mut self.rng,
                    &facts,
                    sa_facts,
                    sa.nat_t,
                    &keying,
                )
                .map(|(st, out)| {
                    sa.state = State::Responding(Responding {
                        step: RespondingStep::Aggressive(Box::new(st)),
                        first_message: Some((remote, hdr.cky_i)),
                    });
                    out
                }),
            )
        } else {
            None
        };
        self.admit(sa);
        let out = match answer {
            Some(Ok(out)) => out,
            Some(Err(why)) => {
                // Admitted and gone at once: the journal sees both.
                self.remove(id, DownReason::Closed, false);
                return Err(why);
            }
            None => ResponderSentSa::message2(&facts, &sa_reply, &vendor),
        };
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.last_tx = out.clone();
        }
        self.send(msg.local, remote, &out);
        Ok(())
    }

    /// Files a client's new half-open SA: the journal, the unproven list, the half-open and
    /// per-client counts, its timers.
    fn admit(&mut self, sa: IkeSa) {
        let (id, remote, cky_i, started) = (sa.id, sa.peer, sa.cky_i, sa.started);
        self.sas.insert(id, sa);
        self.journal(SaChange::Added(id));
        self.mark_unproven(started, id);
        self.by_initiator.insert((remote, cky_i), id);
        *self.half_open_by_ip.entry(remote.ip()).or_default() += 1;
        self.half_open += 1;
        *self.per_client.entry(remote).or_default() += 1;
        self.reschedule(id);
    }

    /// Main Mode message 3 (HDR, KE, Ni, NAT-D*) → message 4.
    pub(super) fn main_mode_ke(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let Ok(chain) = parse_chain(msg.hdr.next_payload, msg.body) else {
            return Err(DropReason::Malformed);
        };
        let Some((ke, nonce)) = main_mode::key_exchange(&chain) else {
            return Err(DropReason::Malformed);
        };
        if !nonce_ok(nonce.body) {
            return Err(DropReason::Malformed);
        }
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        if msg.remote != sa.peer {
            return Err(DropReason::Unexpected);
        }
        let Some(RespondingStep::MainSentSa(st)) = sa.responding() else {
            return Err(DropReason::Unexpected);
        };
        let signatures = sa.transform.auth == AuthMethod::RsaSignature;
        let crs = match (&self.config.client_ca, signatures) {
            (Some(ca), true) => cert_requests(ca, MAX_CERT_REQUESTS),
            _ => Vec::new(),
        };
        let detection = self.config.nat_detection;
        let keying = ResponderKeying {
            nonce_len: NONCE_LEN,
            psk: self.config.psk.as_deref().map(Vec::as_slice),
            signatures,
            cert_requests: &crs,
            nat: sa.nat_t.map(|variant| NatAnswer { variant, detection }),
        };
        let answer = st.answer(
            &mut self.rng,
            &sa.phase1(),
            &chain,
            (ke.body, nonce.body),
            &keying,
        );
        let (next, out, seen) = answer?;
        let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
        sa.apply_nat(seen, detection);
        sa.set_responding(RespondingStep::MainSentKe(Box::new(next)));
        sa.last_rx = msg.digest();
        sa.last_tx = out.clone();
        sa.retransmits = 0;
        let (local, peer, started) = (sa.local, sa.peer, sa.started);
        self.mark_proven(started, id);
        self.send(local, peer, &out);
        Ok(())
    }

    /// Main Mode message 5 (HDR*, IDii, HASH_I | CERT*, SIG_I) → message 6.
    pub(super) fn main_mode_auth(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let Some(RespondingStep::MainSentKe(st)) = sa.responding() else {
            return Err(DropReason::Unexpected);
        };
        let signatures = sa.transform.auth == AuthMethod::RsaSignature;
        let m5 = st.open(&msg.hdr, msg.body, signatures)?;
        let parsed = m5.proof.and_then(|p| {
            let ident = Identification::parse(&p.id_b).ok()?;
            Some((p, ident))
        });
        let Some((proof, ident)) = parsed else {
            // Garbage after decryption almost always means the pre-shared keys differ.
            let reason = "message 5 did not decrypt (pre-shared key mismatch?)";
            return self.refuse_phase1(id, msg, reason.into(), code::AUTHENTICATION_FAILED);
        };
        let initial_contact = m5
            .message
            .payloads()
            .is_ok_and(|chain| initial_contact(&chain));
        let expect = st.hash_i(&sa.phase1(), &proof.id_b);
        let verdict = if signatures {
            let certs = proof.certs.get(..MAX_CLIENT_CERTS).unwrap_or(&proof.certs);
            self.check_certificate(certs, &ident, &expect, &proof.proof)
                .map(|p| Some(p.subject_display()))
                .map_err(|why| (why.to_string(), code::AUTHENTICATION_FAILED))
        } else if hash_eq(&expect, &proof.proof) {
            Ok(None)
        } else {
            Err(("HASH_I mismatch".to_owned(), code::INVALID_HASH_INFORMATION))
        };
        let peer_subject = match verdict {
            Ok(p) => p,
            Err((reason, notify)) => return self.refuse_phase1(id, msg, reason, notify),
        };
        self.move_peer(id, msg.local, msg.remote, false);
        let credentials = self.config.certificate.clone().filter(|_| signatures);
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let Some(RespondingStep::MainSentKe(st)) = sa.responding() else {
            return Err(DropReason::Unexpected);
        };
        let last = m5.message.last_block.clone().unwrap_or_default();
        let Some((out, iv)) = st.finish(&mut self.rng, &sa.phase1(), credentials.as_deref(), &last)
        else {
            return Ok(());
        };
        if let Some(sa) = self.sas.get_mut(&id) {
            sa.last_rx = msg.digest();
        }
        let end = Phase1End {
            identity: ident,
            peer_subject,
            iv: Some(iv),
            initial_contact,
            reply: Some(out),
        };
        self.phase1_done(msg.now, id, end);
        Ok(())
    }

    /// Aggressive Mode message 3: HDR[*], HASH_I, NAT-D*.
    pub(super) fn aggressive_auth(&mut self, id: IkeSaId, msg: &Incoming<'_>) -> Handled {
        let sa = self.sas.get(&id).ok_or(DropReason::UnknownSa)?;
        let Some(RespondingStep::Aggressive(st)) = sa.responding() else {
            return Err(DropReason::Unexpected);
        };
        let m3 = match st.check(&sa.phase1(), (&msg.hdr, msg.body, msg.bytes), sa.nat_t) {
            Ok(m3) => m3,
            Err(Message3Error::Malformed) => return Err(DropReason::Malformed),
            Err(Message3Error::HashMismatch) => {
                let reason = "HASH_I mismatch (Aggressive Mode)";
                return self.refuse_phase1(id, msg, reason.into(), code::INVALID_HASH_INFORMATION);
            }
        };
        let identity = st.identity().clone();
        let detection = self.config.nat_detection;
        let sa = self.sas.get_mut(&id).ok_or(DropReason::UnknownSa)?;
        sa.apply_nat(Some(m3.nat), detection);
        sa.last_rx = msg.digest();
        self.move_peer(id, msg.local, msg.remote, false);
        let end = Phase1End {
            identity,
            peer_subject: None,
            iv: m3.last_block,
            initial_contact: m3.initial_contact,
            reply: None,
        };
        self.phase1_done(msg.now, id, end);
        Ok(())
    }

    /// The client failed to authenticate: reported, told (RFC 2408 §5), forgotten, and
    /// counted.
    fn refuse_phase1(
        &mut self,
        id: IkeSaId,
        msg: &Incoming<'_>,
        reason: String,
        notify: u16,
    ) -> Handled {
        let cky_r = self.sas.get(&id).map_or([0; 8], |sa| sa.cky_r);
        self.event(Event::AuthFailed {
            peer: msg.remote,
            reason,
        });
        self.notify_plain(msg, cky_r, notify);
        self.remove(id, DownReason::Closed, false);
        Err(DropReason::AuthFailed)
    }

    /// Phase 1 is complete (after Main Mode message 5 with `reply` = message 6, after
    /// Aggressive Mode message 3, or after message 6 of our own Main Mode): the SA is
    /// established and no longer half-open.
    pub(super) fn phase1_done(&mut self, now: Instant, id: IkeSaId, end: Phase1End) {
        let ike_lifetime = self.config.ike_lifetime;
        let keepalive = self.config.nat_keepalive;
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        let life = sa
            .transform
            .lifetime
            .seconds
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        let lifetime = life.min(ike_lifetime);
        let next_keepalive = (sa.local_behind_nat && sa.nat.any()).then(|| now + keepalive);
        let ident = end.identity.clone();
        let shown = end.peer_subject.clone().unwrap_or_else(|| ident.display());
        let done = sa.transition(|old| match old.complete() {
            Ok(c) => {
                let iv = end.iv.unwrap_or(c.iv);
                let est = established(c.keys, iv, end.identity, (now, lifetime, next_keepalive));
                let done = (c.first_message, c.replaces);
                (State::Established(Box::new(est)), Some(done))
            }
            Err(old) => (old, None),
        });
        let Some((first_message, replaces)) = done else {
            return;
        };
        let was_half_open = replaces.is_none();
        if let Some(out) = &end.reply {
            sa.last_tx = out.clone();
        }
        sa.retransmits = 0;
        sa.deadline = now + lifetime;
        let main_mode = sa.exchange == ExchangeType::IdentityProtection;
        let peer_ip = sa.peer.ip();
        let (peer, local, nat, transform) = (sa.peer, sa.local, sa.nat, sa.transform);
        let (started, setup) = (sa.started, now.saturating_duration_since(sa.started));
        if let Some(k) = first_message {
            self.by_initiator.remove(&k);
        }
        self.mark_proven(started, id);
        if was_half_open {
            self.half_open_done(peer_ip);
        }
        // Our own Main Mode replaces it shortly before it expires (one we start ourselves
        // is Main Mode, so not for SAs a client made by Aggressive Mode).
        let rekey_at = main_mode.then(|| self.rekey_time(now, lifetime));
        if let Some(e) = self.sas.get_mut(&id).and_then(IkeSa::established_mut) {
            e.rekey_at = rekey_at;
        }
        self.stats.ike_sas_established += 1;
        self.reschedule(id);
        if let Some(out) = end.reply {
            self.send(local, peer, &out);
        }
        self.event(Event::IkeSaUp {
            id,
            peer,
            local,
            identity: shown,
            nat,
            transform,
            setup,
        });
        let same_client = |o: &IkeSa, by_ip: bool| {
            o.id != id
                && (if by_ip {
                    o.peer.ip() == peer.ip()
                } else {
                    o.peer == peer
                })
                && o.established().is_some_and(|e| e.identity == ident)
        };
        if end.initial_contact {
            // RFC 2407 §4.6.3.3: the client lost its state; SAs of the same identity from the
            // same public address are stale (clients behind one NAT have distinct private IDs).
            let stale: Vec<IkeSaId> = self
                .sas
                .values()
                .filter(|o| same_client(o, true))
                .map(|o| o.id)
                .collect();
            for s in stale {
                self.remove(s, DownReason::Replaced, false);
            }
        }
        // Older SAs of the same client and identity are being replaced: they neither rekey
        // nor probe any more, and their ESP SAs move here when they go.
        for o in self.sas.values_mut() {
            if same_client(o, false)
                && let Some(e) = o.established_mut()
            {
                e.superseded = true;
            }
        }
        if let Some(old) = replaces {
            // Our own Main Mode: the SA it replaces hands its ESP SAs over and is deleted
            // (only the ISAKMP SA: the pairs live on under `id`).
            self.stats.ike_rekeys_completed += 1;
            self.remove(old, DownReason::Rekeyed, true);
        }
    }

    /// When to rekey an SA with `lifetime` established at `now`: a margin before it expires,
    /// less up to half the margin again of jitter (so SAs made together do not rekey
    /// together).
    pub(super) fn rekey_time(&mut self, now: Instant, lifetime: Duration) -> Instant {
        let margin = rekey_margin(lifetime);
        let jitter_ms = u64::try_from(margin.as_millis() / 2).unwrap_or(0).max(1);
        let jitter = Duration::from_millis(self.rng.next_u64() % jitter_ms);
        now + lifetime.saturating_sub(margin + jitter)
    }

    /// RFC 2409 §5.1 with signatures: the peer's certificate chains to one of our CAs and
    /// is valid now, names the peer's ID, and its key signed `hash`.
    pub(super) fn check_certificate(
        &self,
        certs: &[Vec<u8>],
        ident: &Identification,
        hash: &[u8],
        sig: &[u8],
    ) -> Result<PeerCert, CertRefusal> {
        let ca = self
            .config
            .client_ca
            .as_ref()
            .ok_or(CertRefusal::NoClientCa)?;
        let Some((leaf, rest)) = certs.split_first() else {
            return Err(CertRefusal::NoCertificate);
        };
        let intermediates: Vec<&[u8]> = rest.iter().map(Vec::as_slice).collect();
        let peer = ca
            .verify(leaf, &intermediates, self.unix_time)
            .map_err(CertRefusal::Invalid)?;
        if !peer.matches_id(ident) {
            return Err(CertRefusal::IdMismatch {
                id: ident.display(),
                subject: peer.subject_display(),
            });
        }
        if !peer.verify_hash_signature(hash, sig) {
            return Err(CertRefusal::BadSignature {
                subject: peer.subject_display(),
            });
        }
        Ok(peer)
    }

    pub(super) fn half_open_done(&mut self, ip: IpAddr) {
        self.half_open = self.half_open.saturating_sub(1);
        if let Some(n) = self.half_open_by_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.half_open_by_ip.remove(&ip);
            }
        }
    }

    /// Follows an authenticated message from a new address or port.
    pub(super) fn move_peer(
        &mut self,
        id: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
        announce: bool,
    ) {
        let Some(sa) = self.sas.get_mut(&id) else {
            return;
        };
        if sa.peer == remote && sa.local == local {
            return;
        }
        let old = sa.peer;
        let was_half_open = sa.counts_half_open();
        sa.peer = remote;
        sa.local = local;
        if let Some(n) = self.per_client.get_mut(&old) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(&old);
            }
        }
        *self.per_client.entry(remote).or_default() += 1;
        if was_half_open && old.ip() != remote.ip() {
            if let Some(n) = self.half_open_by_ip.get_mut(&old.ip()) {
                *n = n.saturating_sub(1);
            }
            *self.half_open_by_ip.entry(remote.ip()).or_default() += 1;
        }
        if announce {
            self.event(Event::PeerMoved {
                id,
                peer: remote,
                local,
            });
        }
    }
}

/// A newly established ISAKMP SA: `keys`, the Phase 1 IV, the peer's identity, and
/// (established at, lifetime, first NAT keep-alive).
fn established(
    keys: Phase1Keys,
    iv: Vec<u8>,
    identity: Identification,
    (now, lifetime, next_keepalive): (Instant, Duration, Option<Instant>),
) -> Established {
    Established {
        keys,
        iv,
        identity,
        lifetime,
        quick: Vec::new(),
        own_quick: Vec::new(),
        children: Vec::new(),
        done_msgids: std::collections::VecDeque::new(),
        last_activity: now,
        dpd_outstanding: false,
        next_keepalive,
        rekey_at: None,
        superseded: false,
    }
}

/// How long before an SA expires we rekey it ourselves (plus up to half as much jitter):
/// late enough that clients, which rekey earlier (strongSwan 9–18 min before expiry with
/// its defaults, Windows at about 90 %), normally go first.
pub(super) fn rekey_margin(lifetime: Duration) -> Duration {
    (lifetime / 30).clamp(Duration::from_secs(10), Duration::from_secs(120))
}
