#![no_main]
//! Structure-aware: the responder's encrypted phases. A scripted initiator
//! (`sluice_fuzz::ike_peer`) runs Main Mode messages 1–4 with the responder (Phase 1 transform
//! from the first octet; ECP-256 unless MODP-1024 is asked for), so it holds the keys. The
//! input then writes the plaintext of message 5 (a valid IDii + HASH_I with edits, or any
//! payload chain), and of a sequence of Quick Mode (with correct HASH(1) and, when the
//! responder answers, HASH(3)), Informational (DPD, DELETE, notifies, with correct HASH(1)) and
//! raw encrypted messages, with time passing in between. Everything is encrypted with the
//! right key and IV chain before the responder sees it.
//! Invariants: no panic, bounded replies, shutdown leaves no SA behind.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::Ops;
use sluice_fuzz::ike_peer::{
    Chain, delete, dpd_notify, esp_sa, hash_a, hash_then, hashed, header, id, ike_transform,
    keypair, open, public_key, seal, seal_chain,
};
use sluice_ike::dh::Group;
use sluice_ike::header::{ExchangeType, Header};
use sluice_ike::keys::{
    AuthHashInput, Phase1Input, Phase1Keys, SkeyidInput, auth_hash, derive_phase1, phase1_iv,
    phase2_iv,
};
use sluice_ike::message::{PayloadsExt, seal_plain};
use sluice_ike::natt::{NatTVariant, nat_d, vid};
use sluice_ike::notify::{Notify, code};
use sluice_ike::payload::{ChainBuilder, kind, parse_chain};
use sluice_ike::policy::Config;
use sluice_ike::responder::Responder;
use sluice_ike::sa::{Proposal, SaPayload, protocol};

const PSK: &[u8] = b"fuzz";
const CKY_I: [u8; 8] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88];

/// Everything the responder sends; returns the last message. With `SLUICE_FUZZ_TRACE=1`
/// the responder's events are printed (to see how deep an input gets).
fn drain(r: &mut Responder) -> Option<Vec<u8>> {
    let mut last = None;
    while let Some(t) = r.poll_transmit() {
        assert!(t.payload.len() <= 16 * 1024 + 4);
        last = Some(t.payload);
    }
    while let Some(e) = r.poll_event() {
        if sluice_fuzz::trace() {
            eprintln!("responder event: {e:?}");
        }
    }
    last
}

/// The state after Main Mode messages 1–4: the responder and what the scripted peer knows.
/// Computing it costs two Diffie-Hellman operations, so it is made once per transform
/// selector and cloned for each input (the responder is `Clone` under `cfg(fuzzing)`); the
/// responder's RNG seed and the peer's DH secret are fixed, so the snapshot is what the
/// exchange would produce again.
#[derive(Clone)]
struct Phase1 {
    r: Responder,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    keys: Phase1Keys,
    iv: Vec<u8>,
    cky_r: [u8; 8],
    sai_b: Vec<u8>,
    now: Instant,
}

/// Main Mode messages 1–4 for transform selector `sel` (see [`Phase1`]).
fn main_mode_1_to_4(sel: u8) -> Option<Phase1> {
    let t = ike_transform(sel);
    let nat_t = sel & 0x80 != 0;
    let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let client: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let mut r = Responder::new(
        Config {
            psk: Some(PSK.to_vec().into()),
            ..Config::default()
        },
        [7; 32],
    );
    let now = Instant::now();

    // Message 1: SA (+ NAT-T and DPD vendor IDs).
    let sai_b = SaPayload {
        proposals: vec![Proposal {
            number: 1,
            protocol: protocol::ISAKMP,
            spi: vec![],
            transforms: vec![t.to_transform(1, t.lifetime)],
        }],
    }
    .emit();
    let mut c = ChainBuilder::new();
    c.push(kind::SA, &sai_b);
    if nat_t {
        c.push(kind::VID, &NatTVariant::Rfc3947.vendor_id());
    }
    c.push(kind::VID, &vid::DPD);
    r.handle_input(
        now,
        gw,
        client,
        &seal_plain(
            header(CKY_I, [0; 8], ExchangeType::IdentityProtection, 0),
            &c,
        ),
    );
    let m2 = drain(&mut r)?;
    let (h2, _) = Header::parse(&m2).ok()?;
    let cky_r = h2.cky_r;
    if cky_r == [0; 8] {
        return None;
    }

    // Message 3: KE, Ni (+ NAT-D: no NAT).
    let dh = keypair(t.group, sel);
    let ni = vec![0x4e; 16];
    let mut c = ChainBuilder::new();
    c.push(kind::KE, dh.public()).push(kind::NONCE, &ni);
    if nat_t {
        c.push(kind::NAT_D, &nat_d(t.hash, &CKY_I, &cky_r, gw));
        c.push(kind::NAT_D, &nat_d(t.hash, &CKY_I, &cky_r, client));
    }
    r.handle_input(
        now,
        gw,
        client,
        &seal_plain(
            header(CKY_I, cky_r, ExchangeType::IdentityProtection, 0),
            &c,
        ),
    );
    let m4 = drain(&mut r)?;
    let (h4, b4) = Header::parse(&m4).ok()?;
    let chain4 = parse_chain(h4.next_payload, b4).ok()?;
    let (ke, nr) = (chain4.find_kind(kind::KE)?, chain4.find_kind(kind::NONCE)?);
    let gxy = dh.shared_secret(ke.body).ok()?;
    let keys = derive_phase1(&Phase1Input {
        hash: t.hash,
        cipher: t.cipher,
        auth: SkeyidInput::PreSharedKey(PSK),
        ni: &ni,
        nr: nr.body,
        gxy: &gxy,
        cky_i: CKY_I,
        cky_r,
    });
    let gxr = ke.body.to_vec();
    let iv = phase1_iv(t.hash, t.cipher, dh.public(), &gxr);
    Some(Phase1 {
        r,
        gxi: dh.public().to_vec(),
        gxr,
        keys,
        iv,
        cky_r,
        sai_b,
        now,
    })
}

thread_local! {
    static PHASE1: RefCell<HashMap<u8, Option<Phase1>>> = RefCell::new(HashMap::new());
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let sel = ops.u8();
    let t = ike_transform(sel);
    let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let client: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let Some(Phase1 {
        mut r,
        gxi,
        gxr,
        keys,
        mut iv,
        cky_r,
        sai_b,
        mut now,
    }) = PHASE1.with(|c| {
        c.borrow_mut()
            .entry(sel)
            .or_insert_with(|| main_mode_1_to_4(sel))
            .clone()
    })
    else {
        return;
    };

    // Message 5: the input's plaintext.
    let mode = ops.u8();
    let hdr5 = header(CKY_I, cky_r, ExchangeType::IdentityProtection, 0);
    let (m5, last) = if mode % 4 == 3 {
        // Any payload chain.
        let first = ops.u8();
        let body = ops.long(2048);
        seal(hdr5, first, body, &keys, &iv)
    } else {
        // IDii (ours, or the input's), HASH_I over it (or the input's), edits.
        let idii = if mode % 4 == 1 {
            ops.short().to_vec()
        } else {
            id(client.ip(), 0, 0)
        };
        let hash_i = auth_hash(
            t.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &gxi,
                gx_peer: &gxr,
                cky_self: CKY_I,
                cky_peer: cky_r,
                sai_b: &sai_b,
                id_b: &idii,
            },
        );
        let mut chain = Chain::default();
        chain.push(kind::ID, idii).push(kind::HASH, hash_i.to_vec());
        if mode & 4 != 0 {
            chain.push(
                kind::N,
                Notify {
                    protocol: protocol::ISAKMP,
                    code: code::INITIAL_CONTACT,
                    spi: [CKY_I, cky_r].concat(),
                    data: vec![],
                }
                .emit(),
            );
        }
        if mode % 4 == 2 {
            chain.edit(&mut ops);
        }
        seal_chain(hdr5, &chain.builder(), &keys, &iv)
    };
    iv = last;
    r.handle_input(now, gw, client, &m5);
    let Some(m6) = drain(&mut r) else {
        r.shutdown();
        drain(&mut r);
        assert_eq!(r.ike_sa_count(), 0);
        return;
    };
    if let Some(m) = open(&m6, &keys, &iv) {
        iv = m.last_block.unwrap_or_default();
    }

    // Phase 2 and Informational exchanges.
    let mut spi_r: Vec<u8> = vec![0; 4];
    let mut rounds = 0;
    let mut pfs_done = false;
    while !ops.is_empty() && rounds < 32 {
        rounds += 1;
        let op = ops.u8();
        let msgid = ops.u32() | 1;
        match op % 6 {
            0 | 1 => {
                // Quick Mode message 1: the template (edited by the input) or, with bit 2,
                // the input's payload bytes (e.g. a real client's); HASH(1) correct unless
                // the input forges it.
                // PFS in a quarter of them, at most one per input (it costs the responder
                // two DH operations; the peer's KE value is cached), and always with HASH(3),
                // so it completes.
                let pfs = (op & 0x18 == 0x18 && !pfs_done).then_some(Group::Ecp256);
                pfs_done |= pfs.is_some();
                let qdh = pfs.map(|g| public_key(g, op));
                let mut qni = vec![0x51; 16];
                let (first, body) = if op & 0x04 != 0 {
                    let first = ops.u8();
                    let rest = ops.long(2048);
                    if let Ok(c) = parse_chain(first, rest)
                        && let Some(n) = c.find_kind(kind::NONCE)
                    {
                        qni = n.body.to_vec();
                    }
                    let h = hash_a(&keys, &[&msgid.to_be_bytes(), rest]);
                    hash_then(&h, first, rest)
                } else {
                    let mut rest = Chain::default();
                    rest.push(kind::SA, esp_sa(0x1000_0000 | msgid, pfs))
                        .push(kind::NONCE, qni.clone());
                    if let Some(d) = &qdh {
                        rest.push(kind::KE, d.clone());
                    }
                    if op & 0x20 == 0 {
                        rest.push(kind::ID, id(client.ip(), 17, 1701))
                            .push(kind::ID, id(gw.ip(), 17, 1701));
                    }
                    if op & 0x40 != 0 {
                        rest.edit(&mut ops);
                    }
                    let forged = (op & 0x80 != 0).then(|| ops.short().to_vec());
                    let c = hashed(&keys, msgid, &rest.builder(), forged.as_deref());
                    (c.first(), c.bytes().to_vec())
                };
                let qiv = phase2_iv(t.hash, t.cipher, &iv, msgid);
                let (m, last) = seal(
                    header(CKY_I, cky_r, ExchangeType::QuickMode, msgid),
                    first,
                    &body,
                    &keys,
                    &qiv,
                );
                r.handle_input(now, gw, client, &m);
                let Some(reply) = drain(&mut r) else { continue };
                // Quick Mode message 2 → message 3 with HASH(3).
                let Some(m2) = open(&reply, &keys, &last) else {
                    continue;
                };
                if m2.header.exchange != ExchangeType::QuickMode {
                    continue;
                }
                let Ok(chain) = m2.payloads() else { continue };
                let Some(nr) = chain.find_kind(kind::NONCE) else {
                    continue;
                };
                if let Some(sa) = chain
                    .find_kind(kind::SA)
                    .and_then(|p| SaPayload::parse(p.body).ok())
                    && let Some(p) = sa.proposals.first()
                {
                    spi_r = p.spi.clone();
                }
                let h3 = hash_a(&keys, &[&[0], &msgid.to_be_bytes(), &qni, nr.body]);
                let mut c = ChainBuilder::new();
                c.push(kind::HASH, &h3);
                if op & 8 != 0 {
                    let (m3, _) = seal_chain(
                        header(CKY_I, cky_r, ExchangeType::QuickMode, msgid),
                        &c,
                        &keys,
                        &m2.last_block.unwrap_or_default(),
                    );
                    r.handle_input(now, gw, client, &m3);
                    drain(&mut r);
                }
            }
            2 => {
                // Informational with HASH(1): DPD, DELETE of the ESP or IKE SA, or anything.
                let sel = ops.u8();
                if sel & 0x80 != 0 {
                    // The input's payload bytes (e.g. a real client's DELETE) with HASH(1).
                    let first = ops.u8();
                    let rest = ops.long(1024);
                    let h = hash_a(&keys, &[&msgid.to_be_bytes(), rest]);
                    let (first, body) = hash_then(&h, first, rest);
                    let qiv = phase2_iv(t.hash, t.cipher, &iv, msgid);
                    let (m, _) = seal(
                        header(CKY_I, cky_r, ExchangeType::Informational, msgid),
                        first,
                        &body,
                        &keys,
                        &qiv,
                    );
                    r.handle_input(now, gw, client, &m);
                    drain(&mut r);
                    continue;
                }
                let mut rest = Chain::default();
                match sel % 4 {
                    0 => rest.push(kind::N, dpd_notify(CKY_I, cky_r, false, ops.u32())),
                    1 => rest.push(kind::N, dpd_notify(CKY_I, cky_r, true, ops.u32())),
                    2 => rest.push(kind::D, delete(protocol::ESP, spi_r.clone())),
                    _ => rest.push(kind::D, delete(protocol::ISAKMP, [CKY_I, cky_r].concat())),
                };
                rest.edit(&mut ops);
                let c = hashed(&keys, msgid, &rest.builder(), None);
                let qiv = phase2_iv(t.hash, t.cipher, &iv, msgid);
                let (m, _) = seal_chain(
                    header(CKY_I, cky_r, ExchangeType::Informational, msgid),
                    &c,
                    &keys,
                    &qiv,
                );
                r.handle_input(now, gw, client, &m);
                drain(&mut r);
            }
            3 => {
                // Any exchange type and plaintext, encrypted with that message ID's IV.
                let exch = ExchangeType::from_value(ops.u8());
                let first = ops.u8();
                let body = ops.long(2048);
                let qiv = phase2_iv(t.hash, t.cipher, &iv, msgid);
                let (m, _) = seal(header(CKY_I, cky_r, exch, msgid), first, body, &keys, &qiv);
                r.handle_input(now, gw, client, &m);
                drain(&mut r);
            }
            4 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 50);
                r.handle_timeout(now);
                drain(&mut r);
            }
            _ => {
                // A datagram in clear, perhaps on the NAT-T port.
                let local = if op & 8 != 0 {
                    "198.51.100.1:4500".parse().unwrap()
                } else {
                    gw
                };
                r.handle_input(now, local, client, ops.long(2048));
                drain(&mut r);
            }
        }
    }
    r.shutdown();
    drain(&mut r);
    assert_eq!(r.ike_sa_count(), 0);
});
