use super::keys;
use super::*;
use crate::mschap;
use crate::test_vectors::*;

fn rc4_once(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    Rc4::new(key).apply(&mut v);
    v
}

fn master() -> [u8; 16] {
    let ph = mschap::nt_password_hash(V2_PASSWORD);
    let hh = mschap::hash_nt_password_hash(&ph);
    get_master_key(&hh, &arr(V2_NT_RESPONSE))
}

// RFC 3079 §3.5.1-§3.5.3.
#[test]
fn rfc3079_mschapv2_keys() {
    let mk = master();
    assert_eq!(mk, arr(V2_MASTER_KEY));
    // The RFC's sample "send" key is the server's (IsSend, IsServer) = Magic3.
    let send = get_asymmetric_start_key(&mk, true, true);
    assert_eq!(send, arr(V2_SERVER_SEND_START_KEY));
    // Client receive key equals server send key; client send equals server receive.
    assert_eq!(get_asymmetric_start_key(&mk, false, false), send);
    assert_eq!(
        get_asymmetric_start_key(&mk, true, false),
        get_asymmetric_start_key(&mk, false, true)
    );
    assert_ne!(get_asymmetric_start_key(&mk, true, false), send);

    let k40 = initial_session_key(&send, KeyBits::B40);
    assert_eq!(k40[..8], hex("D1 26 9E C4 9F A6 2E 3E")[..]);
    assert_eq!(
        rc4_once(&k40[..8], b"test message"),
        hex("92 91 37 91 7E 58 03 D6 68 D7 58 98")
    );
    let k56 = initial_session_key(&send, KeyBits::B56);
    assert_eq!(k56[..8], hex("D1 5C 00 C4 9F A6 2E 3E")[..]);
    // RFC 3079 §3.5.2 prints "... A8 42 BC 57 58"; the RFC's own key gives B8 as the last
    // octet (the first eleven octets match), so we check the eleven octets.
    assert_eq!(
        rc4_once(&k56[..8], b"test message")[..11],
        hex("3F 10 68 33 FA 44 8D A8 42 BC 57")[..]
    );
    let k128 = initial_session_key(&send, KeyBits::B128);
    assert_eq!(k128, arr("40 5C B2 24 7A 79 56 E6 E2 11 00 7A E2 7B 22 D4"));
    assert_eq!(
        rc4_once(&k128, b"test message"),
        hex("81 84 83 17 DF 68 84 62 72 FB 5A BE")
    );
}

// RFC 3079 §2.5 (MS-CHAPv1 credentials).
#[test]
fn rfc3079_mschapv1_keys() {
    // §2.5.1/§2.5.2: Get_Key(LmHash, LmHash, 8) then reduction.
    let lm = mschap::lm_password_hash(V2_PASSWORD);
    let mut lm16 = [0u8; 16];
    lm16[..8].copy_from_slice(&lm[..8]);
    let k = get_new_key_from_sha(&lm16, &lm16, 8);
    assert_eq!(k[..8], hex("d8 08 01 53 8c ec 4a 08")[..]);
    let mut k40 = k;
    reduce_key(&mut k40, KeyBits::B40);
    assert_eq!(k40[..8], hex("d1 26 9e 53 8c ec 4a 08")[..]);
    let mut k56 = k;
    reduce_key(&mut k56, KeyBits::B56);
    assert_eq!(k56[..8], hex("d1 08 01 53 8c ec 4a 08")[..]);
    // §2.5.3: Get_Start_Key then Get_Key(16). (The RFC's step 3/4 disagree in one octet,
    // "ac ca" vs "ac c1"; we check step 5, which pins the whole chain.)
    let hh = mschap::hash_nt_password_hash(&mschap::nt_password_hash(V2_PASSWORD));
    let start = mschap_v1_start_key(&arr(V1_CHALLENGE), &hh);
    assert_eq!(start[..7], hex("a8 94 78 50 cf c0 ac")[..]);
    assert_eq!(start[8..], hex("d1 78 9f b6 2d dc dd b0")[..]);
    assert_eq!(
        get_new_key_from_sha(&start, &start, 16),
        arr("59 d1 59 bc 09 f7 6f 1d a2 a8 6a 28 ff ec 0b 1e")
    );
}

#[test]
fn rc4_matches_rc4_crate_and_rfc6229() {
    use ::rc4::{KeyInit, StreamCipher};
    // RFC 6229 §2, key 0x0102030405, first 16 keystream octets.
    let mut ks = [0u8; 16];
    Rc4::new(&[1, 2, 3, 4, 5]).apply(&mut ks);
    assert_eq!(ks, arr("b2 39 63 05 f0 3d c0 27 cc c3 52 4a 0a 11 18 a8"));
    for len in [5usize, 8, 16, 32] {
        let key: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5A).collect();
        let mut a = vec![0u8; 3000];
        Rc4::new(&key).apply(&mut a);
        let mut b = vec![0u8; 3000];
        ::rc4::Rc4::new_from_slice(&key)
            .unwrap()
            .apply_keystream(&mut b);
        assert_eq!(a, b);
    }
}

/// Two key schedules run together ([`Rc4::set_keys`]) give the states two `set_key` calls
/// give: the RFC 6229 key, MPPE's key lengths, keys of different lengths, an empty key, and
/// states that were keyed and used before.
#[test]
fn paired_key_schedules_match_single_ones() {
    let keys: Vec<Vec<u8>> = vec![
        vec![1, 2, 3, 4, 5],
        (0..8).map(|b: u8| b.wrapping_mul(91) ^ 0x33).collect(),
        (0..16).map(|b: u8| b.wrapping_mul(37) ^ 0x5A).collect(),
        vec![0xFF; 16],
        vec![],
        (0..32).collect(),
    ];
    for ka in &keys {
        for kb in &keys {
            let (mut a, mut b) = (Rc4::new(b"used"), Rc4::new(b"before"));
            a.apply(&mut [0u8; 77]);
            Rc4::set_keys(&mut a, ka, &mut b, kb);
            let (mut want_a, mut want_b) = (Rc4::new(ka), Rc4::new(kb));
            let mut got = [[0u8; 300]; 2];
            let mut want = [[0u8; 300]; 2];
            a.apply(&mut got[0]);
            b.apply(&mut got[1]);
            want_a.apply(&mut want[0]);
            want_b.apply(&mut want[1]);
            assert_eq!(got, want, "{ka:?} / {kb:?}");
        }
    }
}

/// The keystream is the same however the buffer is cut into calls (the unrolled loop carries
/// its look-ahead across calls and lengths that are not multiples of 8).
#[test]
fn rc4_keystream_is_independent_of_call_boundaries() {
    use ::rc4::{KeyInit, StreamCipher};
    let key = [0x0Bu8, 0xAD, 0xC0, 0xDE, 0x01, 0x02, 0x03, 0x04];
    let mut want = vec![0u8; 5000];
    ::rc4::Rc4::new_from_slice(&key)
        .unwrap()
        .apply_keystream(&mut want);
    for cuts in [
        &[1usize, 7, 8, 9, 15, 16, 17][..],
        &[3],
        &[8],
        &[64, 1, 1, 1],
        &[1400, 3],
    ] {
        let mut got = vec![0u8; 5000];
        let mut rc4 = Rc4::new(&key);
        let (mut at, mut k) = (0, 0);
        while at < got.len() {
            let n = cuts[k % cuts.len()].min(got.len() - at);
            rc4.apply(&mut got[at..at + n]);
            at += n;
            k += 1;
        }
        assert_eq!(got, want, "cuts {cuts:?}");
    }
}

fn pair(bits: KeyBits, stateful: bool) -> (MppeTx, MppeRx) {
    let k = arr::<16>("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB");
    (
        MppeTx::new(k, bits, stateful),
        MppeRx::new(k, bits, stateful),
    )
}

fn roundtrip(tx: &mut MppeTx, rx: &mut MppeRx, payload: &[u8]) -> Result<Vec<u8>, MppeError> {
    let mut out = Vec::new();
    tx.encrypt(0x0021, payload, &mut out);
    let d = rx.decrypt(&mut out)?;
    assert_eq!(d.protocol, 0x0021);
    Ok(d.data.to_vec())
}

#[test]
fn stateless_roundtrip_loss_and_wrap() {
    for bits in [KeyBits::B40, KeyBits::B56, KeyBits::B128] {
        let (mut tx, mut rx) = pair(bits, false);
        for i in 0..5000u32 {
            let p = i.to_be_bytes();
            let mut out = Vec::new();
            tx.encrypt(0x0021, &p, &mut out);
            assert_eq!(out[0] & 0xF0, FLAG_FLUSHED | FLAG_ENCRYPTED);
            if i % 7 == 3 {
                continue; // lost
            }
            let d = rx.decrypt(&mut out).unwrap();
            assert_eq!(d.data, &p);
        }
    }
}

/// The stateless key state's prepared key changes (`keys::Lookahead`) give the keys and
/// keystreams of the plain chain (one full key change at a time), through changes in order,
/// jumps over lost packets and rolled-back keys, at every strength.
#[test]
fn prepared_key_changes_follow_the_plain_chain() {
    for bits in [KeyBits::B40, KeyBits::B56, KeyBits::B128] {
        let mut prepared = keys::KeyState::new(test_key(), bits, true);
        let mut plain = keys::KeyState::new(test_key(), bits, false);
        let mut saved = prepared.session;
        for step in 0..600u32 {
            match step % 50 {
                17 => {
                    prepared.advance(3);
                    plain.advance(3);
                }
                29 => {
                    // A rolled-back packet: the key goes back, then on.
                    prepared.session = saved;
                    plain.session = saved;
                    prepared.reinit();
                    plain.reinit();
                }
                _ => {
                    saved = prepared.session;
                    prepared.rekey();
                    plain.rekey();
                }
            }
            assert_eq!(prepared.session, plain.session, "{bits:?} step {step}");
            let (mut a, mut b) = ([0u8; 24], [0u8; 24]);
            prepared.rc4.clone().apply(&mut a);
            plain.rc4.clone().apply(&mut b);
            assert_eq!(a, b, "{bits:?} step {step}");
        }
        assert_eq!(prepared.steps, plain.steps);
    }
}

#[test]
fn stateless_duplicate_and_late_are_dropped() {
    let (mut tx, mut rx) = pair(KeyBits::B128, false);
    let mut a = Vec::new();
    tx.encrypt(0x0021, b"one", &mut a);
    let mut b = Vec::new();
    tx.encrypt(0x0021, b"two", &mut b);
    let mut b2 = b.clone();
    assert_eq!(rx.decrypt(&mut b).unwrap().data, b"two");
    assert!(matches!(rx.decrypt(&mut b2), Err(MppeError::Stale { .. })));
    assert!(matches!(rx.decrypt(&mut a), Err(MppeError::Stale { .. })));
    assert_eq!(roundtrip(&mut tx, &mut rx, b"three").unwrap(), b"three");
}

#[test]
fn forged_packet_does_not_desync() {
    let (mut tx, mut rx) = pair(KeyBits::B128, false);
    assert_eq!(roundtrip(&mut tx, &mut rx, b"x").unwrap(), b"x");
    // Forged packet far ahead, garbage body.
    let mut forged = vec![0x90, 0x00, 0x00, 0x00, 0x00, 0x00];
    forged[0] |= 0x07;
    let _ = rx.decrypt(&mut forged);
    assert_eq!(roundtrip(&mut tx, &mut rx, b"y").unwrap(), b"y");
    let (mut tx, mut rx) = pair(KeyBits::B128, true);
    assert_eq!(roundtrip(&mut tx, &mut rx, b"x").unwrap(), b"x");
    let mut forged = vec![0x10, 0x01, 0xAA, 0xBB, 0xCC];
    let _ = rx.decrypt(&mut forged);
    assert_eq!(roundtrip(&mut tx, &mut rx, b"y").unwrap(), b"y");
}

#[test]
fn stateful_roundtrip_across_flag_packets() {
    for bits in [KeyBits::B40, KeyBits::B128] {
        let (mut tx, mut rx) = pair(bits, true);
        for i in 0..9000u32 {
            let p = i.to_le_bytes();
            assert_eq!(roundtrip(&mut tx, &mut rx, &p).unwrap(), p);
        }
    }
}

#[test]
fn stateful_loss_recovers_via_reset() {
    let (mut tx, mut rx) = pair(KeyBits::B128, true);
    for i in 0..3000u32 {
        let p = i.to_le_bytes();
        let mut out = Vec::new();
        tx.encrypt(0x0021, &p, &mut out);
        // Lose a burst that includes a flag packet (ccount 0x1FF) and others.
        if (500..800).contains(&i) || i % 97 == 5 {
            continue;
        }
        match rx.decrypt(&mut out) {
            Ok(d) => assert_eq!(d.data, &p),
            Err(MppeError::Lost { .. }) => tx.reset_requested(),
            Err(MppeError::Discarding) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(!rx.is_discarding());
    assert_eq!(roundtrip(&mut tx, &mut rx, b"ok").unwrap(), b"ok");
}

#[test]
fn stateful_loss_of_whole_key_epochs() {
    let (mut tx, mut rx) = pair(KeyBits::B56, true);
    assert_eq!(roundtrip(&mut tx, &mut rx, b"a").unwrap(), b"a");
    let mut out = Vec::new();
    for _ in 0..1000 {
        out.clear();
        tx.encrypt(0x0021, b"lost", &mut out);
    }
    out.clear();
    tx.encrypt(0x0021, b"b", &mut out);
    assert!(matches!(rx.decrypt(&mut out), Err(MppeError::Lost { .. })));
    tx.reset_requested();
    assert_eq!(roundtrip(&mut tx, &mut rx, b"c").unwrap(), b"c");
}

#[test]
fn compressed_inner_protocol_accepted() {
    let (mut tx, mut rx) = pair(KeyBits::B128, false);
    // Build a packet whose inner protocol field is compressed to one octet (0x21).
    let mut out = Vec::new();
    let mut tx2 = tx.clone();
    tx.encrypt(0x0021, b"ab", &mut out);
    // Recreate with the same keystream: encrypt [0x21, 'a', 'b'] manually.
    let mut manual = Vec::new();
    tx2.encrypt(0x21ab, b"", &mut manual); // placeholder to advance identical state
    let mut ks = manual.clone();
    // keystream = ciphertext ^ plaintext for the first 2 octets
    ks[2] ^= 0x21;
    ks[3] ^= 0xab;
    let mut pkt = vec![manual[0], manual[1], 0x21 ^ ks[2], 0x45 ^ ks[3]];
    let d = rx.decrypt(&mut pkt).unwrap();
    assert_eq!(d.protocol, 0x21);
    assert_eq!(d.data, [0x45]);
    let _ = out;
}

#[test]
fn short_and_unencrypted_rejected() {
    let (_, mut rx) = pair(KeyBits::B128, false);
    assert_eq!(rx.decrypt(&mut []), Err(MppeError::TooShort));
    assert_eq!(rx.decrypt(&mut [0x90, 0]), Err(MppeError::TooShort));
    assert_eq!(rx.decrypt(&mut [0x80, 0, 1]), Err(MppeError::NotEncrypted));
}

/// The Linux kernel's `ppp_mppe` receiver in stateful mode, as a model: loss enters a discard
/// state left only on a flushed packet, one key change per flag boundary crossed, and a key
/// change on *every* flushed packet (where RFC 3078 §8.2 re-initialises).
struct LinuxRx {
    keys: keys::KeyState,
    ccount: u16,
    discard: bool,
}

impl LinuxRx {
    fn new(bits: KeyBits) -> Self {
        LinuxRx {
            keys: keys::KeyState::new(test_key(), bits, false),
            ccount: CCOUNT_SPACE - 1,
            discard: false,
        }
    }

    /// The payload after the protocol field, or `None` where Linux returns DECOMP_ERROR (and
    /// its pppd sends a CCP Reset-Request).
    fn decrypt(&mut self, pkt: &[u8]) -> Option<Vec<u8>> {
        let flushed = pkt[0] & FLAG_FLUSHED != 0;
        let got = (u16::from(pkt[0] & 0x0F) << 8) | u16::from(pkt[1]);
        if !self.discard {
            self.ccount = (self.ccount + 1) % CCOUNT_SPACE;
            if got != self.ccount {
                self.discard = true;
                return None;
            }
        } else {
            if !flushed {
                return None;
            }
            while got & !0xFF != self.ccount & !0xFF {
                self.keys.rekey();
                self.ccount = (self.ccount + 256) % CCOUNT_SPACE;
            }
            self.discard = false;
            self.ccount = got;
        }
        if flushed {
            self.keys.rekey();
        }
        let mut body = pkt[HEADER_LEN..].to_vec();
        self.keys.rc4.apply(&mut body);
        assert_eq!(
            body[..2],
            [0x00, 0x21],
            "Linux would hand garbage to the stack"
        );
        Some(body[2..].to_vec())
    }
}

/// The Linux kernel's `ppp_mppe` sender in stateful mode: a CCP Reset-Request makes the next
/// packet flushed, after a key change.
struct LinuxTx {
    keys: keys::KeyState,
    ccount: u16,
    reset: bool,
}

impl LinuxTx {
    fn new(bits: KeyBits) -> Self {
        LinuxTx {
            keys: keys::KeyState::new(test_key(), bits, false),
            ccount: CCOUNT_SPACE - 1,
            reset: false,
        }
    }

    fn encrypt(&mut self, data: &[u8]) -> Vec<u8> {
        self.ccount = (self.ccount + 1) % CCOUNT_SPACE;
        let mut flags = FLAG_ENCRYPTED;
        if self.ccount & 0xFF == 0xFF || self.reset {
            self.keys.rekey();
            flags |= FLAG_FLUSHED;
        }
        self.reset = false;
        let [hi, lo] = self.ccount.to_be_bytes();
        let mut out = vec![flags | hi, lo, 0x00, 0x21];
        out.extend_from_slice(data);
        self.keys.rc4.apply(&mut out[HEADER_LEN..]);
        out
    }
}

fn test_key() -> [u8; 16] {
    arr::<16>("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB")
}

/// Deterministic loss: about one packet in `n`, in bursts now and then.
fn lost(i: u32, n: u32) -> bool {
    let h = i.wrapping_mul(0x9E37_79B9).rotate_left(13);
    h.is_multiple_of(n) || (h % 997 == 1) || (2000..2300).contains(&i)
}

/// A Reset-Request takes effect `rtt` packets after the loss that caused it.
const RTT: u32 = 7;

#[test]
fn linux_sender_resynchronises_with_our_receiver() {
    for bits in [KeyBits::B40, KeyBits::B128] {
        let mut tx = LinuxTx::new(bits);
        let mut rx = MppeRx::new(test_key(), bits, true);
        let (mut delivered, mut reset_at) = (0u32, None);
        for i in 0..6000u32 {
            if reset_at == Some(i) {
                tx.reset = true;
                reset_at = None;
            }
            let p = i.to_be_bytes();
            let mut pkt = tx.encrypt(&p);
            if lost(i, 50) {
                continue;
            }
            match rx.decrypt(&mut pkt) {
                Ok(d) => {
                    assert_eq!(d.data, p, "wrong plaintext accepted at {i}");
                    delivered += 1;
                }
                Err(MppeError::Lost { .. } | MppeError::Discarding) => {
                    reset_at.get_or_insert(i + RTT);
                }
                Err(e) => panic!("packet {i}: {e}"),
            }
        }
        assert!(!rx.is_discarding());
        assert!(delivered > 4800, "{bits:?}: {delivered} of 6000");
    }
}

#[test]
fn our_sender_resynchronises_linux_and_rfc_receivers() {
    for bits in [KeyBits::B56, KeyBits::B128] {
        let mut tx = MppeTx::new(test_key(), bits, true);
        let mut linux = LinuxRx::new(bits);
        let mut tx_rfc = MppeTx::new(test_key(), bits, true);
        let mut ours = MppeRx::new(test_key(), bits, true);
        let (mut delivered, mut reset_at) = (0u32, Vec::new());
        let (mut ours_delivered, mut ours_reset_at) = (0u32, None);
        for i in 0..6000u32 {
            // Linux's pppd repeats its Reset-Request while no Reset-Ack came; a repeat that
            // arrives after the receiver recovered must not break it.
            if reset_at.contains(&i) {
                tx.reset_requested();
            }
            if ours_reset_at == Some(i) {
                tx_rfc.reset_requested();
                ours_reset_at = None;
            }
            let p = i.to_be_bytes();
            let mut pkt = Vec::new();
            tx.encrypt(0x0021, &p, &mut pkt);
            let mut pkt_rfc = Vec::new();
            tx_rfc.encrypt(0x0021, &p, &mut pkt_rfc);
            if lost(i, 40) {
                continue;
            }
            match linux.decrypt(&pkt) {
                Some(d) => {
                    assert_eq!(d, p);
                    delivered += 1;
                }
                None if reset_at.iter().all(|&r| r <= i) => {
                    reset_at = vec![i + RTT, i + 3 * RTT];
                }
                None => {}
            }
            match ours.decrypt(&mut pkt_rfc) {
                Ok(d) => {
                    assert_eq!(d.data, p);
                    ours_delivered += 1;
                }
                Err(_) => {
                    ours_reset_at.get_or_insert(i + RTT);
                }
            }
        }
        // Stateful MPPE loses about a round trip of packets per loss (here 4 % loss and a
        // burst of 300); a repeated Reset-Request that lands after recovery costs another.
        assert!(
            delivered > 3500,
            "{bits:?}: Linux receiver {delivered} of 6000"
        );
        assert!(ours_delivered > 4300, "{bits:?}: {ours_delivered} of 6000");
    }
}

#[test]
fn reset_jumps_to_the_next_flag_packet() {
    let mut tx = MppeTx::new(test_key(), KeyBits::B128, true);
    let mut out = Vec::new();
    for _ in 0..0x105 {
        out.clear();
        tx.encrypt(0x0021, b"x", &mut out);
    }
    assert_eq!(tx.ccount(), 0x104);
    tx.reset_requested();
    out.clear();
    tx.encrypt(0x0021, b"x", &mut out);
    assert_eq!(tx.ccount(), 0x1FF);
    assert_eq!(out[0] & FLAG_FLUSHED, FLAG_FLUSHED);
    // The count wraps after the last flag packet of the space.
    for _ in 0..0xE00 {
        tx.encrypt(0x0021, b"x", &mut out);
    }
    assert_eq!(tx.ccount(), 0xFFF);
    tx.reset_requested();
    tx.encrypt(0x0021, b"x", &mut out);
    assert_eq!(tx.ccount(), 0x0FF);
}

/// An IPv4 packet of `len` octets (valid header and checksum) numbered `n`.
fn ipv4_packet(n: u32, len: usize) -> Vec<u8> {
    let len = len.max(24);
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let sum = ones_complement_sum(&p[..20]);
    p[10..12].copy_from_slice(&(!sum).to_be_bytes());
    p[20..24].copy_from_slice(&n.to_be_bytes());
    p
}

/// Lost IPv4 packets cost nothing but themselves: the receiver finds where the keystream
/// stands (`recover`) without a reset, across flag packets too; longer gaps fall back to the
/// RFC 3078 §8.2 reset.
#[test]
fn stateful_gaps_of_ipv4_are_recovered_without_a_reset() {
    for bits in [KeyBits::B40, KeyBits::B128] {
        let mut tx = MppeTx::new(test_key(), bits, true);
        let mut rx = MppeRx::new(test_key(), bits, true);
        let (mut delivered, mut arrived, mut resets, mut long_gaps) = (0u32, 0u32, 0u32, 0u32);
        let mut i = 0u32;
        while i < 5000 {
            let len = 20 + (i.wrapping_mul(2_654_435_761) % 1380) as usize;
            let ip = ipv4_packet(i, len);
            let mut pkt = Vec::new();
            tx.encrypt(0x0021, &ip, &mut pkt);
            // Gaps of 1 to 8 packets, one in 1 500 of 12 (beyond the bound).
            let gap = match i % 37 {
                5 => 1 + (i / 37) % 8,
                _ if i % 1500 == 700 => 12,
                _ => 0,
            };
            if gap > 0 {
                long_gaps += u32::from(gap > MAX_RECOVERED_GAP.into());
                for _ in 1..gap {
                    tx.encrypt(0x0021, &ipv4_packet(i, len / 2 + 20), &mut Vec::new());
                }
                i += gap;
                continue;
            }
            arrived += 1;
            match rx.decrypt(&mut pkt) {
                Ok(d) => {
                    assert_eq!(d.data, ip, "packet {i}");
                    delivered += 1;
                }
                Err(MppeError::Lost { .. }) => {
                    resets += 1;
                    tx.reset_requested();
                }
                Err(MppeError::Discarding) => {}
                Err(e) => panic!("packet {i}: {e}"),
            }
            i += 1;
        }
        assert!(
            rx.recovered() > 100,
            "{bits:?}: {} recovered",
            rx.recovered()
        );
        assert!(long_gaps > 0);
        assert_eq!(
            resets, long_gaps,
            "{bits:?}: only the 12-packet gaps need a reset"
        );
        // Every packet that arrived was delivered but the one after each long gap (the reset
        // takes effect at once here, so nothing else is discarded).
        assert_eq!(delivered, arrived - resets, "{bits:?}");
    }
}

/// A forged packet with a count a few ahead does not move a stateful receiver that finds no
/// IPv4 header for it; the genuine next packet still decrypts.
#[test]
fn forged_gap_is_not_recovered() {
    let mut tx = MppeTx::new(test_key(), KeyBits::B128, true);
    let mut rx = MppeRx::new(test_key(), KeyBits::B128, true);
    let mut pkt = Vec::new();
    tx.encrypt(0x0021, &ipv4_packet(1, 100), &mut pkt);
    rx.decrypt(&mut pkt).unwrap();
    for seed in 0..200u32 {
        let mut forged = vec![0x10, 0x03];
        forged.extend((0..120u32).map(|b| (b.wrapping_mul(31) ^ seed.wrapping_mul(97)) as u8));
        let before = rx.recovered();
        let _ = rx.decrypt(&mut forged);
        assert_eq!(rx.recovered(), before);
    }
}

/// Far jumps (up to 2,047 counts, across the 12-bit wrap) decrypt the same with checkpoints.
#[test]
fn stateless_far_jumps_decrypt() {
    let mut tx = MppeTx::new(test_key(), KeyBits::B128, false);
    let mut rx = MppeRx::new(test_key(), KeyBits::B128, false);
    let jumps = [1u32, 17, 2047, 3, 500, 16, 33, 2000, 1, 1999, 64, 1024, 1];
    for (round, jump) in jumps.iter().cycle().take(40).enumerate() {
        let mut pkt = Vec::new();
        for _ in 0..*jump {
            pkt.clear();
            tx.encrypt(0x0021, &(round as u32).to_be_bytes(), &mut pkt);
        }
        let d = rx.decrypt(&mut pkt).unwrap();
        assert_eq!(
            d.data,
            (round as u32).to_be_bytes(),
            "round {round}, jump {jump}"
        );
    }
}

/// Forged packets far ahead cost the full chain once, then at most a stride each; the genuine
/// next packet still decrypts.
#[test]
fn forged_far_packets_cost_a_stride_after_the_first() {
    let mut tx = MppeTx::new(test_key(), KeyBits::B128, false);
    let mut rx = MppeRx::new(test_key(), KeyBits::B128, false);
    assert_eq!(roundtrip(&mut tx, &mut rx, b"x").unwrap(), b"x");
    let forge = |count: u16| {
        let [hi, lo] = count.to_be_bytes();
        vec![0x90 | hi, lo, 0xAA, 0xBB, 0xCC, 0xDD]
    };
    let first = rx.keys_steps();
    let _ = rx.decrypt(&mut forge(2047));
    assert!(rx.keys_steps() - first >= 2000);
    for count in (20..2048u16).step_by(7) {
        let before = rx.keys_steps();
        if rx.decrypt(&mut forge(count)).is_ok() {
            // One forged body in about 600 passes the protocol check (MPPE has no integrity);
            // the receiver then stands at its count, which is another test.
            return;
        }
        assert!(
            rx.keys_steps() - before < chain::STRIDE,
            "count {count}: {} steps",
            rx.keys_steps() - before
        );
    }
    assert_eq!(roundtrip(&mut tx, &mut rx, b"y").unwrap(), b"y");
}
