#![no_main]
//! Structure-aware: the initiator's (the in-repo client's) encrypted phases. A scripted
//! responder (`sluice_fuzz::ike_peer`) answers Main Mode messages 1 and 3 (transform, NAT-T and
//! PFS from the first octet), so it holds the keys; the input then writes the plaintext of
//! message 6 (IDir + a correct HASH_R with edits, or any payload chain) and of a sequence of
//! Quick Mode replies (correct HASH(2)), gateway-initiated Quick Modes (HASH(1), then HASH(3)
//! after the client's answer), Informational messages (DPD, DELETE, notifies) and raw
//! encrypted messages, with client actions (rekey, DPD, delete) and time in between.
//! Invariants: no panic, bounded output.

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
use sluice_ike::cipher::AesKeyLen;
use sluice_ike::dh::Group;
use sluice_ike::header::{ExchangeType, Header};
use sluice_ike::initiator::{Initiator, InitiatorConfig, esp_proposal};
use sluice_ike::keys::{
    AuthHashInput, Phase1Input, Phase1Keys, SkeyidInput, auth_hash, derive_phase1, phase1_iv,
    phase2_iv,
};
use sluice_ike::message::{PayloadsExt, seal_plain};
use sluice_ike::natt::{NatTVariant, nat_d, vid};
use sluice_ike::payload::{ChainBuilder, kind, parse_chain};
use sluice_ike::sa::{EspAuth, EspCipher, IkeTransform, SaPayload, protocol};

const PSK: &[u8] = b"fuzz";
const CKY_R: [u8; 8] = [0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22];

/// The initiator's datagrams, marker stripped (events printed with `SLUICE_FUZZ_TRACE=1`).
fn drain(i: &mut Initiator) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = i.poll_transmit() {
        assert!(t.payload.len() <= 16 * 1024 + 4);
        let p = match t.payload.split_first_chunk::<4>() {
            Some((&[0, 0, 0, 0], rest)) => rest.to_vec(),
            _ => t.payload,
        };
        out.push(p);
    }
    while let Some(e) = i.poll_event() {
        if sluice_fuzz::trace() {
            eprintln!("initiator event: {e:?}");
        }
    }
    out
}

/// The state after Main Mode messages 1–5: the initiator and what the scripted responder
/// knows. Two Diffie-Hellman operations make it, so it is made once per selector pair and
/// cloned for each input (the initiator is `Clone` under `cfg(fuzzing)`; its RNG seed and the
/// peer's DH secret are fixed). An input that mutates message 2 gets a fresh exchange.
#[derive(Clone)]
struct Phase1 {
    init: Initiator,
    cky_i: [u8; 8],
    sai_b: Vec<u8>,
    chosen: IkeTransform,
    gxi: Vec<u8>,
    gxr: Vec<u8>,
    keys: Phase1Keys,
    iv: Vec<u8>,
    now: Instant,
}

/// Snapshots kept at most (selector pairs), a few KiB each.
const MAX_SNAPSHOTS: usize = 8192;

thread_local! {
    static PHASE1: RefCell<HashMap<(u8, u8), Option<Phase1>>> = RefCell::new(HashMap::new());
}

/// Main Mode messages 1–5 for selectors `sel`/`sel2`; `mutate` edits message 2.
fn main_mode_1_to_5(sel: u8, sel2: u8, mutate: Option<&mut Ops>) -> Option<Phase1> {
    let t = ike_transform(sel);
    let nat_t = sel & 0x80 != 0;
    let behind_nat = nat_t && sel2 & 1 != 0;
    let pfs = (sel2 & 2 != 0).then_some(Group::Ecp256);
    let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let client: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let now = Instant::now();
    let mut init = Initiator::new(
        InitiatorConfig {
            psk: PSK.to_vec().into(),
            ike: vec![t, ike_transform(sel2 >> 2)],
            esp: vec![
                esp_proposal(
                    EspCipher::AesCbc(AesKeyLen::Aes128),
                    Some(EspAuth::HmacSha1),
                    pfs,
                ),
                esp_proposal(EspCipher::AesGcm16(AesKeyLen::Aes256), None, pfs),
            ],
            local: client,
            local_natt: "192.0.2.1:4500".parse().unwrap(),
            remote: gw,
            remote_natt_port: 4500,
            nat_t: true,
            dpd: true,
            l2tp_port: 1701,
            retransmit: Duration::from_secs(2),
            aggressive: false,
            certificate: None,
            ca: None,
            unix_time: 0,
        },
        [sel; 32],
    );
    // Message 1 → message 2: the client's first transform, or the one the input picks.
    init.start(now);
    let m1 = drain(&mut init).pop()?;
    let (h1, b1) = Header::parse(&m1).ok()?;
    let cky_i = h1.cky_i;
    let chain1 = parse_chain(h1.next_payload, b1).ok()?;
    let sa_p = chain1.find_kind(kind::SA)?;
    let sai_b = sa_p.body.to_vec();
    let mut sa = SaPayload::parse(&sai_b).ok()?;
    let pick = usize::from(sel2 >> 7);
    let p = sa.proposals.first_mut()?;
    if p.transforms.len() > 1 {
        p.transforms = vec![p.transforms[pick % p.transforms.len()].clone()];
    }
    let chosen = p
        .transforms
        .first()
        .and_then(|t| sluice_ike::sa::IkeTransform::from_transform(t).ok())?;
    sa.proposals.truncate(1);
    let mut c = ChainBuilder::new();
    c.push(kind::SA, &sa.emit());
    if nat_t {
        c.push(kind::VID, &NatTVariant::Rfc3947.vendor_id());
    }
    c.push(kind::VID, &vid::DPD);
    let mut m2 = seal_plain(
        header(cky_i, CKY_R, ExchangeType::IdentityProtection, 0),
        &c,
    );
    if let Some(ops) = mutate {
        ops.mutate(&mut m2, 4);
    }
    init.handle_input(now, &m2);

    // Message 3 → message 4 (+ NAT-D: honest, or showing the client behind a NAT).
    let m3 = drain(&mut init).pop()?;
    let (h3, b3) = Header::parse(&m3).ok()?;
    let chain3 = parse_chain(h3.next_payload, b3).ok()?;
    let (ke, ni) = (chain3.find_kind(kind::KE)?, chain3.find_kind(kind::NONCE)?);
    let gxi = ke.body.to_vec();
    let ni = ni.body.to_vec();
    let dh = keypair(chosen.group, sel2);
    let gxy = dh.shared_secret(&gxi).ok()?;
    let nr = vec![0x52; 16];
    let mut c = ChainBuilder::new();
    c.push(kind::KE, dh.public()).push(kind::NONCE, &nr);
    if nat_t {
        let seen = if behind_nat {
            "203.0.113.7:40000".parse().unwrap()
        } else {
            client
        };
        c.push(kind::NAT_D, &nat_d(chosen.hash, &cky_i, &CKY_R, seen));
        c.push(kind::NAT_D, &nat_d(chosen.hash, &cky_i, &CKY_R, gw));
    }
    init.handle_input(
        now,
        &seal_plain(
            header(cky_i, CKY_R, ExchangeType::IdentityProtection, 0),
            &c,
        ),
    );
    let keys = derive_phase1(&Phase1Input {
        hash: chosen.hash,
        cipher: chosen.cipher,
        auth: SkeyidInput::PreSharedKey(PSK),
        ni: &ni,
        nr: &nr,
        gxy: &gxy,
        cky_i,
        cky_r: CKY_R,
    });
    let iv = phase1_iv(chosen.hash, chosen.cipher, &gxi, dh.public());

    // Message 5 (the client's IDii + HASH_I), then message 6: the input's plaintext.
    let m5 = drain(&mut init).pop()?;
    let m5 = open(&m5, &keys, &iv)?;
    Some(Phase1 {
        init,
        cky_i,
        sai_b,
        chosen,
        gxi,
        gxr: dh.public().to_vec(),
        keys,
        iv: m5.last_block.unwrap_or_default(),
        now,
    })
}

/// [`main_mode_1_to_5`] from the snapshot cache, or fresh when message 2 is mutated.
fn phase1(sel: u8, sel2: u8, ops: &mut Ops) -> Option<Phase1> {
    // Bit 6 of `sel2` (and then the next octet) asks for a mutated message 2; the other bits
    // choose transforms, NAT, PFS, the pick and the DH seed (bits 4–5 of `sel` choose nothing).
    let mutate = sel2 & 0x40 != 0 && ops.u8() & 1 != 0;
    let (sel, sel2) = (sel & 0xCF, sel2 & 0xBF);
    if mutate {
        return main_mode_1_to_5(sel, sel2, Some(ops));
    }
    PHASE1.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(p) = c.get(&(sel, sel2)) {
            return p.clone();
        }
        let p = main_mode_1_to_5(sel, sel2, None);
        if c.len() < MAX_SNAPSHOTS {
            c.insert((sel, sel2), p.clone());
        }
        p
    })
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let sel = ops.u8();
    let sel2 = ops.u8();
    let nat_t = sel & 0x80 != 0;
    let behind_nat = nat_t && sel2 & 1 != 0;
    let pfs = (sel2 & 2 != 0).then_some(Group::Ecp256);
    let gw: SocketAddr = "198.51.100.1:500".parse().unwrap();
    let client: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let Some(Phase1 {
        mut init,
        cky_i,
        sai_b,
        chosen,
        gxi,
        gxr,
        keys,
        mut iv,
        mut now,
    }) = phase1(sel, sel2, &mut ops)
    else {
        return;
    };
    // Our messages, with the non-ESP marker once the client has moved to the NAT-T port.
    let framed = |m: Vec<u8>| {
        if behind_nat {
            [&[0u8; 4][..], &m].concat()
        } else {
            m
        }
    };

    let mode = ops.u8();
    let hdr6 = header(cky_i, CKY_R, ExchangeType::IdentityProtection, 0);
    let (m6, last) = if mode % 4 == 3 {
        let first = ops.u8();
        let body = ops.long(2048);
        seal(hdr6, first, body, &keys, &iv)
    } else {
        let idir = if mode % 4 == 1 {
            ops.short().to_vec()
        } else {
            id(gw.ip(), 0, 0)
        };
        let hash_r = auth_hash(
            chosen.hash,
            &keys.skeyid,
            &AuthHashInput {
                gx_self: &gxr,
                gx_peer: &gxi,
                cky_self: CKY_R,
                cky_peer: cky_i,
                sai_b: &sai_b,
                id_b: &idir,
            },
        );
        let mut chain = Chain::default();
        chain.push(kind::ID, idir).push(kind::HASH, hash_r.to_vec());
        if mode % 4 == 2 {
            chain.edit(&mut ops);
        }
        seal_chain(hdr6, &chain.builder(), &keys, &iv)
    };
    iv = last;
    init.handle_input(now, &framed(m6));

    // The client's Quick Mode message 1 awaiting our answer, and its ESP SPI.
    let mut pending: Option<Vec<u8>> = None;
    let mut spi_i: Vec<u8> = vec![0; 4];
    let note = |msgs: Vec<Vec<u8>>, pending: &mut Option<Vec<u8>>| {
        for m in msgs {
            if let Ok((h, _)) = Header::parse(&m)
                && h.exchange == ExchangeType::QuickMode
            {
                *pending = Some(m);
            }
        }
    };
    note(drain(&mut init), &mut pending);

    // With PFS every Quick Mode costs the client two DH operations: at most two of them
    // per input (further PFS Quick Mode steps are skipped), which keeps the target fast.
    let mut pfs_budget = if pfs.is_some() { 2u8 } else { u8::MAX };
    let mut rounds = 0;
    while !ops.is_empty() && rounds < 32 {
        rounds += 1;
        let op = ops.u8();
        if matches!(op % 8, 0 | 1 | 3 | 6) && pfs.is_some() {
            if pfs_budget == 0 {
                continue;
            }
            pfs_budget -= 1;
        }
        match op % 8 {
            0 | 1 => {
                // Answer the client's Quick Mode: its SA with our SPI, Nr, [KE], its IDs;
                // HASH(2) correct unless forged.
                let Some(q1) = pending.take() else { continue };
                let Ok((hq, _)) = Header::parse(&q1) else {
                    continue;
                };
                let msgid = hq.message_id;
                let Some(q) = open(
                    &q1,
                    &keys,
                    &phase2_iv(chosen.hash, chosen.cipher, &iv, msgid),
                ) else {
                    continue;
                };
                let Ok(chain) = q.payloads() else { continue };
                let (Some(sa_p), Some(qni)) =
                    (chain.find_kind(kind::SA), chain.find_kind(kind::NONCE))
                else {
                    continue;
                };
                let Ok(mut sa) = SaPayload::parse(sa_p.body) else {
                    continue;
                };
                if let Some(p) = sa.proposals.first_mut() {
                    spi_i = p.spi.clone();
                    p.spi = 0x2000_0001u32.to_be_bytes().to_vec();
                    p.transforms.truncate(1);
                }
                sa.proposals.truncate(1);
                let (first, body) = if op & 0x20 != 0 {
                    // The input's payload bytes (e.g. a real gateway's answer), HASH(2) over them.
                    let first = ops.u8();
                    let rest = ops.long(2048);
                    let h2 = hash_a(&keys, &[&msgid.to_be_bytes(), qni.body, rest]);
                    hash_then(&h2, first, rest)
                } else {
                    let mut rest = Chain::default();
                    rest.push(kind::SA, sa.emit())
                        .push(kind::NONCE, vec![0x53; 16]);
                    if let (Some(_), Some(g)) = (chain.find_kind(kind::KE), pfs) {
                        rest.push(kind::KE, public_key(g, op));
                    }
                    for i in chain.all_kind(kind::ID) {
                        rest.push(kind::ID, i.body.to_vec());
                    }
                    if op & 0x40 != 0 {
                        rest.edit(&mut ops);
                    }
                    let rb = rest.builder();
                    let h2 = if op & 0x80 != 0 {
                        ops.short().to_vec()
                    } else {
                        hash_a(&keys, &[&msgid.to_be_bytes(), qni.body, rb.bytes()])
                    };
                    let mut c = ChainBuilder::new();
                    c.push(kind::HASH, &h2).append(rb);
                    (c.first(), c.bytes().to_vec())
                };
                let (m, _) = seal(
                    header(cky_i, CKY_R, ExchangeType::QuickMode, msgid),
                    first,
                    &body,
                    &keys,
                    &q.last_block.unwrap_or_default(),
                );
                init.handle_input(now, &framed(m));
                note(drain(&mut init), &mut pending);
            }
            2 => {
                // Informational with HASH(1).
                let msgid = ops.u32() | 1;
                let sel = ops.u8();
                if sel & 0x80 != 0 {
                    let first = ops.u8();
                    let rest = ops.long(1024);
                    let h = hash_a(&keys, &[&msgid.to_be_bytes(), rest]);
                    let (first, body) = hash_then(&h, first, rest);
                    let qiv = phase2_iv(chosen.hash, chosen.cipher, &iv, msgid);
                    let (m, _) = seal(
                        header(cky_i, CKY_R, ExchangeType::Informational, msgid),
                        first,
                        &body,
                        &keys,
                        &qiv,
                    );
                    init.handle_input(now, &framed(m));
                    note(drain(&mut init), &mut pending);
                    continue;
                }
                let mut rest = Chain::default();
                match sel % 4 {
                    0 => rest.push(kind::N, dpd_notify(cky_i, CKY_R, false, ops.u32())),
                    1 => rest.push(kind::N, dpd_notify(cky_i, CKY_R, true, ops.u32())),
                    2 => rest.push(kind::D, delete(protocol::ESP, spi_i.clone())),
                    _ => rest.push(kind::D, delete(protocol::ISAKMP, [cky_i, CKY_R].concat())),
                };
                rest.edit(&mut ops);
                let c = hashed(&keys, msgid, &rest.builder(), None);
                let qiv = phase2_iv(chosen.hash, chosen.cipher, &iv, msgid);
                let (m, _) = seal_chain(
                    header(cky_i, CKY_R, ExchangeType::Informational, msgid),
                    &c,
                    &keys,
                    &qiv,
                );
                init.handle_input(now, &framed(m));
                note(drain(&mut init), &mut pending);
            }
            3 => {
                // A Quick Mode the gateway starts (its rekey): HASH(1), then HASH(3).
                let msgid = ops.u32() | 1;
                let qni = vec![0x54; 16];
                let mut rest = Chain::default();
                rest.push(kind::SA, esp_sa(0x3000_0000 | msgid, pfs))
                    .push(kind::NONCE, qni.clone());
                if let Some(g) = pfs {
                    rest.push(kind::KE, public_key(g, op));
                }
                rest.push(kind::ID, id(gw.ip(), 17, 1701))
                    .push(kind::ID, id(client.ip(), 17, 1701));
                if op & 0x40 != 0 {
                    rest.edit(&mut ops);
                }
                let c = hashed(&keys, msgid, &rest.builder(), None);
                let qiv = phase2_iv(chosen.hash, chosen.cipher, &iv, msgid);
                let (m, last) = seal_chain(
                    header(cky_i, CKY_R, ExchangeType::QuickMode, msgid),
                    &c,
                    &keys,
                    &qiv,
                );
                init.handle_input(now, &framed(m));
                for reply in drain(&mut init) {
                    let Some(m2) = open(&reply, &keys, &last) else {
                        continue;
                    };
                    if m2.header.message_id != msgid {
                        pending = Some(reply);
                        continue;
                    }
                    let Ok(chain) = m2.payloads() else { continue };
                    let Some(nr) = chain.find_kind(kind::NONCE) else {
                        continue;
                    };
                    let h3 = hash_a(&keys, &[&[0], &msgid.to_be_bytes(), &qni, nr.body]);
                    let mut c = ChainBuilder::new();
                    c.push(kind::HASH, &h3);
                    let (m3, _) = seal_chain(
                        header(cky_i, CKY_R, ExchangeType::QuickMode, msgid),
                        &c,
                        &keys,
                        &m2.last_block.clone().unwrap_or_default(),
                    );
                    init.handle_input(now, &framed(m3));
                }
                note(drain(&mut init), &mut pending);
            }
            4 => {
                let exch = ExchangeType::from_value(ops.u8());
                let msgid = ops.u32();
                let first = ops.u8();
                let body = ops.long(2048);
                let qiv = if msgid == 0 {
                    iv.clone()
                } else {
                    phase2_iv(chosen.hash, chosen.cipher, &iv, msgid)
                };
                let (m, _) = seal(header(cky_i, CKY_R, exch, msgid), first, body, &keys, &qiv);
                init.handle_input(now, &framed(m));
                note(drain(&mut init), &mut pending);
            }
            5 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 50);
                init.handle_timeout(now);
                note(drain(&mut init), &mut pending);
            }
            6 => {
                match ops.u8() % 3 {
                    0 => init.start_quick_mode(now),
                    1 => init.send_dpd(now, ops.u32()),
                    _ => init.delete(now),
                }
                note(drain(&mut init), &mut pending);
            }
            _ => {
                init.handle_input(now, ops.long(2048));
                note(drain(&mut init), &mut pending);
            }
        }
        let _ = init.poll_timeout();
        let _ = init.state();
    }
});
