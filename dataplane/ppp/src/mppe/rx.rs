//! The MPPE receiver (RFC 3078 §8): coherency counts, key changes, resynchronisation.

use super::chain::{self, Checkpoints};
use super::keys::{KeyState, inner_protocol};
use super::recover;
use super::{
    CCOUNT_SPACE, Decrypted, FLAG_ENCRYPTED, FLAG_FLUSHED, HEADER_LEN, KeyBits, MppeError,
};

/// Receive side of one MPPE direction.
#[derive(Debug, Clone)]
pub struct MppeRx {
    keys: KeyState,
    stateful: bool,
    /// Coherency count of the last packet accepted.
    ccount: u16,
    /// Stateful: discarding until a flushed packet (after loss).
    discard: bool,
    /// Stateful: gaps recovered without a reset.
    recovered: u64,
    /// Stateless: key changes made so far (the position in the key chain).
    position: u64,
    /// Stateless: checkpoints of the chain ahead, once a packet jumped far (`chain`).
    ahead: Option<Checkpoints>,
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

impl MppeRx {
    /// New receiver from a start key.
    pub fn new(start_key: [u8; 16], bits: KeyBits, stateful: bool) -> Self {
        MppeRx {
            keys: KeyState::new(start_key, bits, !stateful),
            stateful,
            ccount: CCOUNT_SPACE - 1,
            discard: false,
            recovered: 0,
            position: 0,
            ahead: None,
        }
    }

    /// Key-chain steps computed so far.
    #[cfg(test)]
    pub(super) fn keys_steps(&self) -> u64 {
        self.keys.steps
    }

    /// Stateful: gaps of lost packets recovered without a CCP reset (`recover`).
    pub fn recovered(&self) -> u64 {
        self.recovered
    }

    /// True while a stateful receiver waits for a flushed packet.
    pub fn is_discarding(&self) -> bool {
        self.discard
    }

    /// Decrypts one MPPE information field (header + ciphertext) in place.
    ///
    /// Work per packet is bounded: at most 2047 key changes (stateless; after the first far
    /// packet at most 15 more than a near one, `chain`) or 16 (stateful), and
    /// in stateful mode one bounded search for a gap of lost IPv4 packets (`recover`).
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
        let saved = (self.keys.session, self.ccount, self.discard, self.position);
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
            // RFC 3078 §8.1: N = C1 - C2 key changes; far jumps from a checkpoint.
            let (from, to) = (self.position, self.position + u64::from(n));
            if u64::from(n) > chain::STRIDE {
                self.ahead
                    .get_or_insert_with(Checkpoints::new)
                    .advance(&mut self.keys, from, to);
            } else {
                self.keys.advance(n);
            }
            self.position = to;
            self.ccount = got;
        } else {
            let expected = (self.ccount + 1) % CCOUNT_SPACE;
            let recovered = if got != expected && !self.discard && !flushed {
                recover::recover(&self.keys, expected, got, body)
            } else {
                None
            };
            if let Some(keys) = recovered {
                // The lost packets' length was found (`recover`): no reset needed.
                self.keys = keys;
                self.recovered += 1;
            } else if got != expected || self.discard {
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
                // A flushed packet answering a reset: RFC 3078 §8.2 senders re-initialise RC4
                // with the current key, Linux's `ppp_mppe` changes the key. Whichever yields a
                // valid inner protocol is the peer's (the first octets decide, on a copy).
                self.keys.reinit();
                if !self.keys.would_decrypt(body) {
                    self.keys.rekey();
                }
            }
        }

        self.keys.rc4.apply(body);
        let Some((protocol, skip)) = inner_protocol(body) else {
            // Roll back: a forged or corrupted packet must not advance our keys.
            self.keys.session = saved.0;
            self.ccount = saved.1;
            self.discard = saved.2;
            self.position = saved.3;
            match saved_rc4 {
                Some(r) => self.keys.rc4 = r,
                None => self.keys.reinit(),
            }
            return Err(MppeError::BadInnerProtocol);
        };
        let data: &'a [u8] = body.get(skip..).unwrap_or_default();
        Ok(Decrypted { protocol, data })
    }
}
