//! The MPPE sender (RFC 3078 §3, §7, §8).

use super::keys::KeyState;
use super::{CCOUNT_SPACE, FLAG_ENCRYPTED, FLAG_FLUSHED, HEADER_LEN, KeyBits};

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
            keys: KeyState::new(start_key, bits, !stateful),
            stateful,
            ccount: CCOUNT_SPACE - 1,
            reset_pending: false,
        }
    }

    /// CCP Reset-Request received (RFC 3078 §8.2): the next packet is flushed.
    ///
    /// Receivers disagree on what a flushed packet that is not a flag packet means: RFC 3078
    /// §8.2 (and FreeBSD's `ng_mppc`) re-initialise RC4 with the current session key, Linux's
    /// `ppp_mppe` changes the key. So the stateful sender answers a reset with the next *flag*
    /// packet instead (coherency count `..FF`, RFC 3078 §7.2): the counts in between are
    /// skipped, and a key change before a flag packet is what every receiver does. A receiver
    /// that was not discarding takes the jump as loss and asks again; its next flushed packet
    /// resynchronises it.
    pub fn reset_requested(&mut self) {
        self.reset_pending = true;
    }

    /// Appends the MPPE header and the encryption of `protocol` (2 octets) + `data` to `out`.
    pub fn encrypt(&mut self, protocol: u16, data: &[u8], out: &mut Vec<u8>) {
        self.ccount = (self.ccount + 1) % CCOUNT_SPACE;
        if self.stateful && self.reset_pending {
            // The next flag packet (see `reset_requested`); stays below CCOUNT_SPACE.
            self.ccount |= 0xFF;
        }
        self.reset_pending = false;
        let mut flags = FLAG_ENCRYPTED;
        if !self.stateful || self.ccount & 0xFF == 0xFF {
            // RFC 3078 §7.1: key change before every stateless packet, and (§7.2) before the
            // stateful "flag" packet; both are flushed.
            self.keys.rekey();
            flags |= FLAG_FLUSHED;
        }
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
