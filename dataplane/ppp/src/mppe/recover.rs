//! Stateful MPPE loss recovery without a CCP reset.
//!
//! In stateful mode (RFC 3078 §3.2) the RC4 state runs on across packets, so after a lost
//! packet a receiver no longer knows where the keystream stands: §8.2 makes it discard
//! everything and ask for a flushed packet with a CCP Reset-Request, which costs a round trip
//! of packets for every loss. That loss amplification is what collapses TCP through a stateful
//! session.
//!
//! The only thing the receiver is missing is the total length of the lost packets' encrypted
//! bodies. When the packet after the gap carries IPv4 (the encrypted protocol field and the
//! IPv4 header are at its start), that length can be found: for each candidate length the first
//! octets are decrypted with the keystream that far ahead, and a candidate is taken only when
//! the protocol field is IPv4, the header's version, header length and total length match the
//! packet and its header checksum (RFC 791 §3.1) is right. A wrong candidate passes all of that
//! with a probability below 2⁻⁴⁰; there are at most `MAX_RECOVERED_GAP × MAX_BODY` of them.
//! Nothing is sent and nothing changes for the peer.
//!
//! The work is bounded: one keystream of at most `MAX_RECOVERED_GAP × MAX_BODY` octets plus the
//! packet, and a few octet comparisons per candidate. When no candidate fits, the receiver falls
//! back to §8.2.

use super::keys::KeyState;
use super::{CCOUNT_SPACE, Rc4};

/// Most consecutive lost packets recovered without a reset.
pub const MAX_RECOVERED_GAP: u16 = 8;
/// Longest encrypted body of a lost packet considered: a 2-octet protocol field and a
/// 1500-octet packet.
pub const MAX_BODY: usize = 1502;
/// Shortest encrypted body: a compressed protocol field and one octet.
const MIN_BODY: usize = 2;
/// Decrypted octets needed to check a candidate: the protocol field and a full IPv4 header.
const PROBE: usize = 2 + 60;

/// Finds the keystream position for `body`, sent with coherency count `got`, when the packets
/// from `expected` up to `got` (exclusive) were lost. `keys` is the receiver's state after the
/// last packet it accepted. Returns the key state with RC4 at the packet's first octet.
pub(super) fn recover(keys: &KeyState, expected: u16, got: u16, body: &[u8]) -> Option<KeyState> {
    let missing = got.wrapping_sub(expected) % CCOUNT_SPACE;
    if missing == 0 || missing > MAX_RECOVERED_GAP || got & 0xFF == 0xFF {
        return None;
    }
    let mut keys = keys.clone();
    // A lost flag packet (RFC 3078 §7.2) changed the key and restarted RC4: only the packets
    // from the last lost flag packet on moved the keystream.
    let mut after_flag = missing;
    for i in 0..missing {
        let c = (expected + i) % CCOUNT_SPACE;
        if c & 0xFF == 0xFF {
            keys.rekey();
            after_flag = missing - i;
        }
    }
    let lost = usize::from(after_flag);
    let probe_len = body.len().min(PROBE);
    let (lo, hi) = (lost * MIN_BODY, lost * MAX_BODY);
    let mut stream = vec![0u8; hi + probe_len];
    keys.rc4.clone().apply(&mut stream);
    let probe = body.get(..probe_len)?;
    let skip = (lo..=hi).find(|&skip| {
        stream
            .get(skip..skip + probe_len)
            .is_some_and(|ks| plausible_ipv4(probe, ks, body.len()))
    })?;
    stream.fill(0);
    skip_keystream(&mut keys.rc4, skip);
    Some(keys)
}

/// Advances RC4 by `n` octets.
fn skip_keystream(rc4: &mut Rc4, n: usize) {
    let mut scratch = [0u8; 256];
    let mut left = n;
    while left > 0 {
        let step = left.min(scratch.len());
        if let Some(chunk) = scratch.get_mut(..step) {
            rc4.apply(chunk);
        }
        left -= step;
    }
}

/// Whether `cipher` XOR `ks` starts with an IPv4 protocol field and a valid IPv4 header for a
/// body of `body_len` octets. The cheap tests come first: most candidates fail on an octet.
fn plausible_ipv4(cipher: &[u8], ks: &[u8], body_len: usize) -> bool {
    let at = |i: usize| match (cipher.get(i), ks.get(i)) {
        (Some(c), Some(k)) => Some(c ^ k),
        _ => None,
    };
    // The protocol field: 00 21, or 21 compressed (RFC 1661 §6.5).
    let field = match (at(0), at(1)) {
        (Some(0x00), Some(0x21)) => 2,
        (Some(0x21), _) => 1,
        _ => return false,
    };
    let (Some(v_ihl), Some(len_hi), Some(len_lo)) = (at(field), at(field + 2), at(field + 3))
    else {
        return false;
    };
    let header_len = usize::from(v_ihl & 0x0F) * 4;
    if v_ihl >> 4 != 4 || header_len < 20 {
        return false;
    }
    if usize::from(u16::from_be_bytes([len_hi, len_lo])) + field != body_len {
        return false;
    }
    let mut header = [0u8; 60];
    let Some(header) = header.get_mut(..header_len) else {
        return false;
    };
    for (i, h) in header.iter_mut().enumerate() {
        match at(field + i) {
            Some(b) => *h = b,
            None => return false,
        }
    }
    ones_complement_sum(header) == 0xFFFF
}

/// The ones'-complement sum of 16-bit words (RFC 1071); 0xFFFF over a header with a correct
/// checksum, whose checksum field is the complement of the sum with the field zero.
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| match *w {
            [a, b] => u32::from(u16::from_be_bytes([a, b])),
            [a] => u32::from(a) << 8,
            _ => 0,
        })
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}
