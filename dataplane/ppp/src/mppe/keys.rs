//! Per-direction MPPE key state: key changes (RFC 3078 §7.3) and flushes (§8.2).

use zeroize::Zeroize;

use super::{KeyBits, Rc4, get_new_key_from_sha, initial_session_key, reduce_key};

/// Per-direction key material: the start ("master session") key, the current session key, RC4.
/// `Debug` shows only the strength.
#[derive(Clone)]
pub(super) struct KeyState {
    bits: KeyBits,
    start: [u8; 16],
    pub(super) session: [u8; 16],
    pub(super) rc4: Rc4,
    /// Key-chain steps computed (tests measure the work with it).
    #[cfg(test)]
    pub(super) steps: u64,
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
    pub(super) fn new(start: [u8; 16], bits: KeyBits) -> Self {
        let session = initial_session_key(&start, bits);
        let rc4 = Rc4::new(session.get(..bits.key_len()).unwrap_or_default());
        KeyState {
            bits,
            start,
            session,
            rc4,
            #[cfg(test)]
            steps: 0,
        }
    }

    /// Key change (RFC 3078 §7.3); leaves RC4 keyed with the new session key.
    pub(super) fn rekey(&mut self) {
        self.advance(1);
    }

    /// `n` key changes in a row (RC4 is keyed once, with the last session key).
    pub(super) fn advance(&mut self, n: u16) {
        self.advance_session(n);
        self.reinit();
    }

    /// `n` steps of the key chain without keying RC4 for use (call [`KeyState::reinit`] after).
    pub(super) fn advance_session(&mut self, n: u16) {
        for _ in 0..n {
            self.next_session();
        }
    }

    /// One step of the key chain (RFC 3078 §7.3): the next session key; RC4 is left keyed
    /// with the interim key.
    fn next_session(&mut self) {
        #[cfg(test)]
        {
            self.steps += 1;
        }
        let len = self.bits.key_len();
        let mut interim = get_new_key_from_sha(&self.start, &self.session, len);
        self.rc4.set_key(interim.get(..len).unwrap_or_default());
        if let Some(k) = interim.get_mut(..len) {
            self.rc4.apply(k);
        }
        self.session = interim;
        reduce_key(&mut self.session, self.bits);
        interim.zeroize();
    }

    /// Re-initializes RC4 with the current session key (flushed packet).
    pub(super) fn reinit(&mut self) {
        let len = self.bits.key_len();
        let key = self.session;
        self.rc4.set_key(key.get(..len).unwrap_or_default());
    }

    /// Whether the current RC4 state turns `body` into a valid inner protocol field; works on a
    /// copy of the state and of the first three octets.
    pub(super) fn would_decrypt(&self, body: &[u8]) -> bool {
        let mut head = [0u8; 3];
        let n = body.len().min(head.len());
        let (Some(dst), Some(src)) = (head.get_mut(..n), body.get(..n)) else {
            return false;
        };
        dst.copy_from_slice(src);
        self.rc4.clone().apply(dst);
        inner_protocol(dst).is_some()
    }
}

/// The inner protocol of a decrypted body and the length of its field, when plausible
/// (RFC 3078 §3: only protocols 0x0021..=0x00FA are encrypted). The 1-octet compressed form
/// is accepted for IPv4 (0x21) when followed by an IPv4 version nibble. This lets a receiver
/// detect (and roll back) most forged or undecryptable packets.
pub(super) fn inner_protocol(body: &[u8]) -> Option<(u16, usize)> {
    match *body {
        [0x21, next, ..] if next >> 4 == 4 => Some((0x21, 1)),
        [hi, lo, ..] if hi & 1 == 0 => {
            let protocol = u16::from_be_bytes([hi, lo]);
            ((0x0021..=0x00FA).contains(&protocol) && protocol & 1 == 1).then_some((protocol, 2))
        }
        _ => None,
    }
}
