//! MPPE: key derivation (RFC 3079), key change (RFC 3078 §7) and the per-direction
//! encrypt/decrypt state machines (RFC 3078 §3, §8).
//!
//! The data path does no allocation: [`MppeTx::encrypt`] appends to the caller's `Vec` and
//! [`MppeRx::decrypt`] decrypts in place. RC4 is a small reusable struct ([`Rc4`]) so the
//! per-packet rekey of stateless mode costs one key schedule and no allocation.

use sha1::{Digest as _, Sha1};
use zeroize::Zeroize;

/// MPPE header flag A: "flushed", RC4 tables re-initialized before this packet (RFC 3078 §3.1).
pub const FLAG_FLUSHED: u8 = 0x80;
/// MPPE header flag D: packet is encrypted (RFC 3078 §3.1).
pub const FLAG_ENCRYPTED: u8 = 0x10;
/// Coherency count modulus (12 bits).
pub const CCOUNT_SPACE: u16 = 4096;
/// MPPE header length (flags + coherency count).
pub const HEADER_LEN: usize = 2;

/// Effective MPPE key strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyBits {
    /// 40-bit (8-octet key, first 3 octets fixed to D1 26 9E).
    B40,
    /// 56-bit (8-octet key, first octet fixed to D1).
    B56,
    /// 128-bit (16-octet key).
    B128,
}

impl KeyBits {
    /// Key length in octets (8 for 40/56-bit, 16 for 128-bit).
    pub fn key_len(self) -> usize {
        match self {
            KeyBits::B40 | KeyBits::B56 => 8,
            KeyBits::B128 => 16,
        }
    }
    /// Nominal strength in bits.
    pub fn bits(self) -> u16 {
        match self {
            KeyBits::B40 => 40,
            KeyBits::B56 => 56,
            KeyBits::B128 => 128,
        }
    }
}

const SHA_PAD1: [u8; 40] = [0x00; 40];
const SHA_PAD2: [u8; 40] = [0xF2; 40];
/// RFC 3079 §3.4 Magic1.
const MAGIC1: &[u8; 27] = b"This is the MPPE Master Key";
/// RFC 3079 §3.4 Magic2.
const MAGIC2: &[u8; 84] =
    b"On the client side, this is the send key; on the server side, it is the receive key.";
/// RFC 3079 §3.4 Magic3.
const MAGIC3: &[u8; 84] =
    b"On the client side, this is the receive key; on the server side, it is the send key.";

fn first16(d: [u8; 20]) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (o, i) in k.iter_mut().zip(d) {
        *o = i;
    }
    k
}

/// GetMasterKey (RFC 3079 §3.4).
pub fn get_master_key(password_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(password_hash_hash);
    h.update(nt_response);
    h.update(MAGIC1);
    first16(h.finalize().into())
}

/// GetAsymetricStartKey (RFC 3079 §3.4). Returns 16 octets; 40/56-bit keys use the first 8.
pub fn get_asymmetric_start_key(master_key: &[u8; 16], is_send: bool, is_server: bool) -> [u8; 16] {
    let magic = if is_send == is_server { MAGIC3 } else { MAGIC2 };
    let mut h = Sha1::new();
    h.update(master_key);
    h.update(SHA_PAD1);
    h.update(magic);
    h.update(SHA_PAD2);
    first16(h.finalize().into())
}

/// GetNewKeyFromSHA (RFC 3078 §7.3) / Get_Key (RFC 3079 §2.4) over the first `len` octets.
/// `len` is clamped to 16.
pub fn get_new_key_from_sha(start_key: &[u8; 16], session_key: &[u8; 16], len: usize) -> [u8; 16] {
    let len = len.min(16);
    let mut h = Sha1::new();
    h.update(start_key.get(..len).unwrap_or_default());
    h.update(SHA_PAD1);
    h.update(session_key.get(..len).unwrap_or_default());
    h.update(SHA_PAD2);
    let mut out = first16(h.finalize().into());
    if let Some(rest) = out.get_mut(len..) {
        rest.fill(0);
    }
    out
}

/// Get_Start_Key for MS-CHAPv1 (RFC 3079 §2.4): SHA1(hh || hh || challenge), 16 octets.
pub fn mschap_v1_start_key(challenge: &[u8; 8], password_hash_hash: &[u8; 16]) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(password_hash_hash);
    h.update(password_hash_hash);
    h.update(challenge);
    first16(h.finalize().into())
}

/// Reduces the effective key strength (RFC 3079 §3.1/§3.2; RFC 3078 §7.3):
/// 40-bit sets the first three octets to D1 26 9E, 56-bit sets the first octet to D1.
pub fn reduce_key(key: &mut [u8; 16], bits: KeyBits) {
    match bits {
        KeyBits::B40 => {
            key[0] = 0xD1;
            key[1] = 0x26;
            key[2] = 0x9E;
        }
        KeyBits::B56 => key[0] = 0xD1,
        KeyBits::B128 => {}
    }
}

/// Initial session key from a start (master send/receive) key: GetNewKeyFromSHA(start, start)
/// then strength reduction (RFC 3079 §3.1-§3.3).
pub fn initial_session_key(start_key: &[u8; 16], bits: KeyBits) -> [u8; 16] {
    let mut k = get_new_key_from_sha(start_key, start_key, bits.key_len());
    reduce_key(&mut k, bits);
    k
}

/// RC4 with a reusable state (no allocation on rekey). The state is held as `u32` words,
/// which avoids partial-register stalls and is markedly faster than a byte array on x86-64.
#[derive(Clone)]
pub struct Rc4 {
    s: [u32; 256],
    i: u8,
    j: u8,
}

impl Default for Rc4 {
    fn default() -> Self {
        Self::new(&[0])
    }
}

impl Drop for Rc4 {
    fn drop(&mut self) {
        self.s.zeroize();
        self.i.zeroize();
        self.j.zeroize();
    }
}

impl core::fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Rc4(..)")
    }
}

impl Rc4 {
    /// A fresh RC4 state keyed with `key` (an empty key is treated as one zero octet).
    pub fn new(key: &[u8]) -> Self {
        let mut r = Rc4 {
            s: [0; 256],
            i: 0,
            j: 0,
        };
        r.set_key(key);
        r
    }

    /// Re-runs the key schedule in place.
    // Indices are u8 into a 256-entry array: they cannot be out of bounds.
    #[allow(clippy::indexing_slicing)]
    pub fn set_key(&mut self, key: &[u8]) {
        let key: &[u8] = if key.is_empty() { &[0] } else { key };
        for (n, v) in self.s.iter_mut().enumerate() {
            *v = n as u32;
        }
        let mut j: u8 = 0;
        for (n, &kb) in (0..256usize).zip(key.iter().cycle()) {
            j = j.wrapping_add(self.s[n] as u8).wrapping_add(kb);
            self.s.swap(n, usize::from(j));
        }
        self.i = 0;
        self.j = 0;
    }

    /// XORs the keystream into `buf` (encrypts or decrypts in place).
    #[allow(clippy::indexing_slicing)]
    #[inline]
    pub fn apply(&mut self, buf: &mut [u8]) {
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        for b in buf.iter_mut() {
            i = i.wrapping_add(1);
            let si = s[usize::from(i)];
            j = j.wrapping_add(si as u8);
            let sj = s[usize::from(j)];
            s[usize::from(i)] = sj;
            s[usize::from(j)] = si;
            *b ^= s[usize::from((si as u8).wrapping_add(sj as u8))] as u8;
        }
        self.i = i;
        self.j = j;
    }
}

/// Per-direction key material: the start ("master session") key, the current session key, RC4.
/// `Debug` shows only the strength.
#[derive(Clone)]
struct KeyState {
    bits: KeyBits,
    start: [u8; 16],
    session: [u8; 16],
    rc4: Rc4,
}

impl Drop for KeyState {
    fn drop(&mut self) {
        self.start.zeroize();
        self.session.zeroize();
    }
}

impl core::fmt::Debug for KeyState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyState")
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl KeyState {
    fn new(start: [u8; 16], bits: KeyBits) -> Self {
        let session = initial_session_key(&start, bits);
        let rc4 = Rc4::new(session.get(..bits.key_len()).unwrap_or_default());
        KeyState {
            bits,
            start,
            session,
            rc4,
        }
    }

    /// Key change (RFC 3078 §7.3); leaves RC4 keyed with the new session key.
    fn rekey(&mut self) {
        let len = self.bits.key_len();
        let mut interim = get_new_key_from_sha(&self.start, &self.session, len);
        self.rc4.set_key(interim.get(..len).unwrap_or_default());
        if let Some(k) = interim.get_mut(..len) {
            self.rc4.apply(k);
        }
        self.session = interim;
        reduce_key(&mut self.session, self.bits);
        self.reinit();
    }

    /// Re-initializes RC4 with the current session key (flushed packet).
    fn reinit(&mut self) {
        let len = self.bits.key_len();
        let key = self.session;
        self.rc4.set_key(key.get(..len).unwrap_or_default());
    }
}

/// Errors of the MPPE receive path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MppeError {
    /// Frame shorter than the MPPE header plus one octet.
    #[error("MPPE packet too short")]
    TooShort,
    /// D bit clear (MPPC-only / unencrypted packet), not supported.
    #[error("MPPE packet without the encrypted bit")]
    NotEncrypted,
    /// Stateless: coherency count not ahead of the last one (duplicate or late).
    #[error("MPPE coherency count {got} not ahead of {last} (duplicate or reordered)")]
    Stale {
        /// The packet's coherency count.
        got: u16,
        /// The count of the last packet accepted.
        last: u16,
    },
    /// Stateful: loss detected; a CCP Reset-Request must be sent, packet dropped.
    #[error("MPPE packet loss detected (coherency count {got}, expected {expected})")]
    Lost {
        /// The packet's coherency count.
        got: u16,
        /// The count that was due.
        expected: u16,
    },
    /// Stateful: waiting for a flushed packet after a Reset-Request.
    #[error("MPPE waiting for a flushed packet")]
    Discarding,
    /// Decrypted inner protocol field is invalid (wrong key or forged packet); state rolled back.
    #[error("MPPE decryption produced an invalid protocol field")]
    BadInnerProtocol,
}

/// Decrypted contents of one MPPE packet: the inner protocol and its information field.
#[derive(Debug, PartialEq, Eq)]
pub struct Decrypted<'a> {
    /// Inner PPP protocol (e.g. 0x0021 IPv4); a compressed 1-octet field is expanded.
    pub protocol: u16,
    /// Inner information field, decrypted in place.
    pub data: &'a [u8],
}

/// Transmit side of one MPPE direction.
#[derive(Debug, Clone)]
pub struct MppeTx {
    keys: KeyState,
    stateful: bool,
    /// Coherency count of the last packet sent.
    ccount: u16,
    /// Set by a CCP Reset-Request: next packet is flushed.
    reset_pending: bool,
}

impl MppeTx {
    /// New sender from a start key (see [`get_asymmetric_start_key`]).
    pub fn new(start_key: [u8; 16], bits: KeyBits, stateful: bool) -> Self {
        MppeTx {
            keys: KeyState::new(start_key, bits),
            stateful,
            ccount: CCOUNT_SPACE - 1,
            reset_pending: false,
        }
    }

    /// CCP Reset-Request received (RFC 3078 §8.2): flush before the next packet.
    pub fn reset_requested(&mut self) {
        self.reset_pending = true;
    }

    /// Appends the MPPE header and the encryption of `protocol` (2 octets) + `data` to `out`.
    pub fn encrypt(&mut self, protocol: u16, data: &[u8], out: &mut Vec<u8>) {
        self.ccount = (self.ccount + 1) % CCOUNT_SPACE;
        let mut flags = FLAG_ENCRYPTED;
        if !self.stateful {
            // RFC 3078 §7.1: key change before every packet; every packet flushed.
            self.keys.rekey();
            flags |= FLAG_FLUSHED;
        } else if self.ccount & 0xFF == 0xFF {
            // RFC 3078 §7.2: key change before the "flag" packet.
            self.keys.rekey();
            flags |= FLAG_FLUSHED;
        } else if self.reset_pending {
            // RFC 3078 §8.2: re-initialize RC4 with the current key, set FLUSHED.
            self.keys.reinit();
            flags |= FLAG_FLUSHED;
        }
        self.reset_pending = false;
        let [hi, lo] = self.ccount.to_be_bytes();
        out.reserve(HEADER_LEN + 2 + data.len());
        out.push(flags | (hi & 0x0F));
        out.push(lo);
        let start = out.len();
        out.extend_from_slice(&protocol.to_be_bytes());
        out.extend_from_slice(data);
        if let Some(body) = out.get_mut(start..) {
            self.keys.rc4.apply(body);
        }
    }

    /// Coherency count of the last packet sent.
    pub fn ccount(&self) -> u16 {
        self.ccount
    }
}

/// Receive side of one MPPE direction.
#[derive(Debug, Clone)]
pub struct MppeRx {
    keys: KeyState,
    stateful: bool,
    /// Coherency count of the last packet accepted.
    ccount: u16,
    /// Stateful: discarding until a flushed packet (after loss).
    discard: bool,
}

/// Counts flag packets (low octet 0xFF) among the `n` coherency counts following `from`.
fn flag_packets_between(from: u16, n: u16) -> u16 {
    // Counts c in (from, from+n) exclusive of the endpoint, modulo 4096.
    let mut count = 0;
    let mut c = from;
    for _ in 1..n {
        c = (c + 1) % CCOUNT_SPACE;
        if c & 0xFF == 0xFF {
            count += 1;
        }
    }
    count
}

/// Plausibility check of a decrypted inner protocol field (RFC 3078 §3: only protocols
/// 0x0021..=0x00FA are encrypted). The 1-octet compressed form is accepted for IPv4 (0x21)
/// when followed by an IPv4 version nibble. This lets a receiver detect (and roll back) most
/// forged or undecryptable packets.
fn valid_inner(protocol: u16, compressed: bool, next: Option<u8>) -> bool {
    if compressed {
        protocol == 0x21 && next.is_some_and(|b| b >> 4 == 4)
    } else {
        (0x0021..=0x00FA).contains(&protocol) && protocol & 1 == 1
    }
}

impl MppeRx {
    /// New receiver from a start key.
    pub fn new(start_key: [u8; 16], bits: KeyBits, stateful: bool) -> Self {
        MppeRx {
            keys: KeyState::new(start_key, bits),
            stateful,
            ccount: CCOUNT_SPACE - 1,
            discard: false,
        }
    }

    /// True while a stateful receiver waits for a flushed packet.
    pub fn is_discarding(&self) -> bool {
        self.discard
    }

    /// Decrypts one MPPE information field (header + ciphertext) in place.
    ///
    /// Work per packet is bounded: at most 2047 key changes (stateless) or 16 (stateful).
    /// When the decrypted protocol field is invalid the key state is rolled back, so forged
    /// packets cannot desynchronize the receiver.
    pub fn decrypt<'a>(&mut self, packet: &'a mut [u8]) -> Result<Decrypted<'a>, MppeError> {
        let ([b0, b1], body) = packet
            .split_first_chunk_mut::<HEADER_LEN>()
            .map(|(h, b)| (*h, b))
            .ok_or(MppeError::TooShort)?;
        if body.is_empty() {
            return Err(MppeError::TooShort);
        }
        if b0 & FLAG_ENCRYPTED == 0 {
            return Err(MppeError::NotEncrypted);
        }
        let flushed = b0 & FLAG_FLUSHED != 0;
        let got = (u16::from(b0 & 0x0F) << 8) | u16::from(b1);
        let saved = (self.keys.session, self.ccount, self.discard);
        let saved_rc4 = if self.stateful {
            Some(self.keys.rc4.clone())
        } else {
            None
        };

        if !self.stateful {
            let n = got.wrapping_sub(self.ccount) % CCOUNT_SPACE;
            if n == 0 || n > CCOUNT_SPACE / 2 {
                return Err(MppeError::Stale {
                    got,
                    last: self.ccount,
                });
            }
            // RFC 3078 §8.1: N = C1 - C2 key changes.
            for _ in 0..n {
                self.keys.rekey();
            }
            self.ccount = got;
        } else {
            let expected = (self.ccount + 1) % CCOUNT_SPACE;
            if got != expected || self.discard {
                if !flushed {
                    let first = !self.discard;
                    self.discard = true;
                    return Err(if first {
                        MppeError::Lost { got, expected }
                    } else {
                        MppeError::Discarding
                    });
                }
                // Resynchronize on a flushed packet: one key change per missed flag packet.
                let n = got.wrapping_sub(self.ccount) % CCOUNT_SPACE;
                for _ in 0..flag_packets_between(self.ccount, n) {
                    self.keys.rekey();
                }
                self.discard = false;
            }
            self.ccount = got;
            if got & 0xFF == 0xFF {
                // RFC 3078 §7.2: key change before decrypting the flag packet.
                self.keys.rekey();
            } else if flushed {
                self.keys.reinit();
            }
        }

        self.keys.rc4.apply(body);
        let first = body.first().copied().unwrap_or(0);
        let (protocol, skip) = if first & 1 == 1 {
            (u16::from(first), 1)
        } else {
            match body.get(1) {
                Some(&second) => (u16::from_be_bytes([first, second]), 2),
                None => (0, 1),
            }
        };
        if !valid_inner(protocol, skip == 1, body.get(skip).copied()) {
            // Roll back: a forged or corrupted packet must not advance our keys.
            self.keys.session = saved.0;
            self.ccount = saved.1;
            self.discard = saved.2;
            match saved_rc4 {
                Some(r) => self.keys.rc4 = r,
                None => self.keys.reinit(),
            }
            return Err(MppeError::BadInnerProtocol);
        }
        let data: &'a [u8] = body.get(skip..).unwrap_or_default();
        Ok(Decrypted { protocol, data })
    }
}

#[cfg(test)]
mod tests {
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
        use rc4::{KeyInit, StreamCipher};
        // RFC 6229 §2, key 0x0102030405, first 16 keystream octets.
        let mut ks = [0u8; 16];
        Rc4::new(&[1, 2, 3, 4, 5]).apply(&mut ks);
        assert_eq!(ks, arr("b2 39 63 05 f0 3d c0 27 cc c3 52 4a 0a 11 18 a8"));
        for len in [5usize, 8, 16, 32] {
            let key: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37) ^ 0x5A).collect();
            let mut a = vec![0u8; 3000];
            Rc4::new(&key).apply(&mut a);
            let mut b = vec![0u8; 3000];
            rc4::Rc4::new_from_slice(&key)
                .unwrap()
                .apply_keystream(&mut b);
            assert_eq!(a, b);
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
}
