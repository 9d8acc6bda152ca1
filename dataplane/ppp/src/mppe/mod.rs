//! MPPE: key derivation (RFC 3079), key change (RFC 3078 §7) and the per-direction
//! encrypt/decrypt state machines (RFC 3078 §3, §8).
//!
//! The data path does no allocation: [`MppeTx::encrypt`] appends to the caller's `Vec` and
//! [`MppeRx::decrypt`] decrypts in place. RC4 is a small reusable struct ([`Rc4`]) so the
//! per-packet rekey of stateless mode costs one key schedule and no allocation.

use sha1::{Digest as _, Sha1};

mod chain;
mod keys;
mod rc4;
mod recover;
mod rx;
mod tx;

pub use rc4::Rc4;
pub use recover::{MAX_BODY, MAX_RECOVERED_GAP, ones_complement_sum};
pub use rx::MppeRx;
pub use tx::MppeTx;

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

#[cfg(test)]
mod tests;
