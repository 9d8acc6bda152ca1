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
    /// Stateless mode: each key change also prepares the next one ([`Lookahead`]).
    stateless: bool,
    lookahead: Option<Box<Lookahead>>,
    /// Key-chain steps computed (tests measure the work with it).
    #[cfg(test)]
    pub(super) steps: u64,
}

/// The next key change prepared with this one (stateless MPPE changes the key before every
/// packet, RFC 3078 §7.1). A change runs two RC4 key schedules: the interim key's
/// (GetNewKeyFromSHA, §7.3) and the new session key's. The interim schedule of change n + 1
/// depends only on session key n, so it runs together with session key n's schedule
/// ([`Rc4::set_keys`]): a change in order costs one paired schedule instead of two.
#[derive(Clone, Default)]
struct Lookahead {
    /// The session key it was made from: it serves only while the session key is that one
    /// (a jump over lost packets or a rolled-back packet moves the key another way).
    from: [u8; 16],
    /// GetNewKeyFromSHA(start, `from`), and RC4 keyed with it.
    interim: [u8; 16],
    rc4: Rc4,
}

impl Drop for Lookahead {
    fn drop(&mut self) {
        self.from.zeroize();
        self.interim.zeroize();
    }
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
    /// The key state of one direction; `stateless` (RFC 3078 §7.1: a key change before every
    /// packet) prepares each next key change with the current one.
    pub(super) fn new(start: [u8; 16], bits: KeyBits, stateless: bool) -> Self {
        let session = initial_session_key(&start, bits);
        let rc4 = Rc4::new(session.get(..bits.key_len()).unwrap_or_default());
        KeyState {
            bits,
            start,
            session,
            rc4,
            stateless,
            lookahead: None,
            #[cfg(test)]
            steps: 0,
        }
    }

    /// Key change (RFC 3078 §7.3); leaves RC4 keyed with the new session key.
    pub(super) fn rekey(&mut self) {
        let len = self.bits.key_len();
        match self.lookahead.as_deref_mut() {
            Some(la) if la.from == self.session => {
                // The interim key and its RC4 were made with the last change.
                #[cfg(test)]
                {
                    self.steps += 1;
                }
                let mut next = la.interim;
                if let Some(k) = next.get_mut(..len) {
                    la.rc4.apply(k);
                }
                reduce_key(&mut next, self.bits);
                self.session = next;
                next.zeroize();
            }
            _ => {
                self.next_session();
                if !self.stateless {
                    self.reinit();
                    return;
                }
            }
        }
        let la = self.lookahead.get_or_insert_with(Box::default);
        la.from = self.session;
        la.interim = get_new_key_from_sha(&self.start, &self.session, len);
        Rc4::set_keys(
            &mut self.rc4,
            self.session.get(..len).unwrap_or_default(),
            &mut la.rc4,
            la.interim.get(..len).unwrap_or_default(),
        );
    }

    /// `n` key changes in a row (RC4 is keyed once, with the last session key).
    pub(super) fn advance(&mut self, n: u16) {
        if n == 1 {
            self.rekey();
            return;
        }
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
