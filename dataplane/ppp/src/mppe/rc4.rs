//! RC4 (the keystream MPPE uses, RFC 3078 §2).

use zeroize::Zeroize;

/// The identity permutation the key schedule starts from.
// Evaluated at compile time; `n` stays below 256.
#[allow(clippy::indexing_slicing)]
const IDENTITY: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        t[n] = n as u32;
        n += 1;
    }
    t
};

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

    /// Re-runs the key schedule in place (the next `S[n]` loaded ahead of the swap, as in
    /// [`Rc4::apply`]: stateless MPPE runs two schedules per packet).
    pub fn set_key(&mut self, key: &[u8]) {
        match repeat_to_16(key) {
            Some(key) => self.set_key_16(&key),
            None => self.set_key_any(key),
        }
    }

    /// The key schedule for a key repeated to 16 octets (see [`Rc4::set_keys_16`]; about 1.3×
    /// the generic loop here).
    // Indices are u8 into a 256-entry array, or below 16 into a 16-entry one.
    #[allow(clippy::indexing_slicing)]
    fn set_key_16(&mut self, key: &[u8; 16]) {
        self.s = IDENTITY;
        let s = &mut self.s;
        let mut j: u8 = 0;
        let mut next = s[0];
        for n in 0..=255u8 {
            let sn = next;
            j = j
                .wrapping_add(sn as u8)
                .wrapping_add(key[usize::from(n & 15)]);
            let sj = s[usize::from(j)];
            let after = n.wrapping_add(1);
            let ahead = s[usize::from(after)];
            s[usize::from(n)] = sj;
            s[usize::from(j)] = sn;
            next = if j == after { sn } else { ahead };
        }
        self.i = 0;
        self.j = 0;
    }

    /// The key schedule for any key length.
    // Indices are u8 into a 256-entry array: they cannot be out of bounds.
    #[allow(clippy::indexing_slicing)]
    fn set_key_any(&mut self, key: &[u8]) {
        let key: &[u8] = if key.is_empty() { &[0] } else { key };
        self.s = IDENTITY;
        let s = &mut self.s;
        let mut j: u8 = 0;
        let mut next = s[0];
        for (n, &kb) in (0..=255u8).zip(key.iter().cycle()) {
            let sn = next;
            j = j.wrapping_add(sn as u8).wrapping_add(kb);
            let sj = s[usize::from(j)];
            let after = n.wrapping_add(1);
            let ahead = s[usize::from(after)];
            s[usize::from(n)] = sj;
            s[usize::from(j)] = sn;
            next = if j == after { sn } else { ahead };
        }
        self.i = 0;
        self.j = 0;
    }

    /// Runs the key schedules of two states at once: the same result as `a.set_key(ka)` and
    /// `b.set_key(kb)`, in about half their time. One schedule is a chain of dependent loads
    /// (each `j` needs the last); two independent chains interleaved keep the core busy while
    /// either waits (1.8-1.9× on this project's machine). Stateless MPPE's key change needs
    /// two schedules per packet, one of them for the next packet (`keys::Lookahead`). Keys
    /// whose length does not divide 16 (MPPE's are 8 or 16 octets) run one after the other.
    pub fn set_keys(a: &mut Rc4, ka: &[u8], b: &mut Rc4, kb: &[u8]) {
        match (repeat_to_16(ka), repeat_to_16(kb)) {
            (Some(ka), Some(kb)) => Self::set_keys_16(a, &ka, b, &kb),
            _ => {
                a.set_key(ka);
                b.set_key(kb);
            }
        }
    }

    /// [`Rc4::set_keys`] for keys repeated to 16 octets (the schedule cycles the key, so a key
    /// of 1, 2, 4 or 8 octets repeated is the same key). A fixed length lets the compiler see
    /// every index in bounds and unroll; the generic form measured no faster than two
    /// schedules.
    // Indices are u8 into 256-entry arrays, or below 16 into 16-entry ones.
    #[allow(clippy::indexing_slicing)]
    fn set_keys_16(a: &mut Rc4, ka: &[u8; 16], b: &mut Rc4, kb: &[u8; 16]) {
        a.s = IDENTITY;
        b.s = IDENTITY;
        let (sa, sb) = (&mut a.s, &mut b.s);
        let (mut ja, mut jb) = (0u8, 0u8);
        let (mut next_a, mut next_b) = (sa[0], sb[0]);
        for n in 0..=255u8 {
            let k = usize::from(n & 15);
            let after = n.wrapping_add(1);
            let (sna, snb) = (next_a, next_b);
            ja = ja.wrapping_add(sna as u8).wrapping_add(ka[k]);
            jb = jb.wrapping_add(snb as u8).wrapping_add(kb[k]);
            let (sja, sjb) = (sa[usize::from(ja)], sb[usize::from(jb)]);
            let (ahead_a, ahead_b) = (sa[usize::from(after)], sb[usize::from(after)]);
            sa[usize::from(n)] = sja;
            sa[usize::from(ja)] = sna;
            sb[usize::from(n)] = sjb;
            sb[usize::from(jb)] = snb;
            next_a = if ja == after { sna } else { ahead_a };
            next_b = if jb == after { snb } else { ahead_b };
        }
        (a.i, a.j, b.i, b.j) = (0, 0, 0, 0);
    }

    /// XORs the keystream into `buf` (encrypts or decrypts in place).
    ///
    /// Eight keystream octets at a time, XORed as one word, and the next `S[i]` loaded before
    /// this octet's swap is stored (taken from the swap when `j` hit it): the loads no longer
    /// wait for the stores. About 1.5× the plain loop on this project's machines; the output is
    /// the same (RFC 6229 and `rc4` crate tests).
    #[allow(clippy::indexing_slicing)]
    #[inline]
    pub fn apply(&mut self, buf: &mut [u8]) {
        let (mut i, mut j) = (self.i, self.j);
        let s = &mut self.s;
        let mut next = s[usize::from(i.wrapping_add(1))];
        let mut chunks = buf.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let mut ks = [0u8; 8];
            for k in ks.iter_mut() {
                i = i.wrapping_add(1);
                let si = next;
                // Loaded before the swap's stores; the swap itself when `j` hit it.
                let after = i.wrapping_add(1);
                let ahead = s[usize::from(after)];
                *k = keystream_octet(s, i, &mut j, si);
                next = if j == after { si } else { ahead };
            }
            if let Some(word) = chunk.first_chunk_mut::<8>() {
                *word = (u64::from_ne_bytes(*word) ^ u64::from_ne_bytes(ks)).to_ne_bytes();
            }
        }
        for b in chunks.into_remainder() {
            i = i.wrapping_add(1);
            let si = s[usize::from(i)];
            *b ^= keystream_octet(s, i, &mut j, si);
        }
        self.i = i;
        self.j = j;
    }
}

/// `key` repeated to 16 octets when its length divides 16 (an empty key is one zero octet, as
/// in [`Rc4::set_key`]).
fn repeat_to_16(key: &[u8]) -> Option<[u8; 16]> {
    let key: &[u8] = if key.is_empty() { &[0] } else { key };
    if 16 % key.len() != 0 {
        return None;
    }
    let mut out = [0u8; 16];
    for (d, s) in out.iter_mut().zip(key.iter().cycle()) {
        *d = *s;
    }
    Some(out)
}

/// One RC4 output step (PRGA) with `S[i]` already loaded as `si`: swaps `S[i]` and `S[j]`
/// and returns the keystream octet.
#[allow(clippy::indexing_slicing)]
#[inline(always)]
fn keystream_octet(s: &mut [u32; 256], i: u8, j: &mut u8, si: u32) -> u8 {
    *j = j.wrapping_add(si as u8);
    let sj = s[usize::from(*j)];
    s[usize::from(i)] = sj;
    s[usize::from(*j)] = si;
    s[usize::from((si as u8).wrapping_add(sj as u8))] as u8
}
