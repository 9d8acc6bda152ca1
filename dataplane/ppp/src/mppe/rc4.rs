//! RC4 (the keystream MPPE uses, RFC 3078 §2).

use zeroize::Zeroize;

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
