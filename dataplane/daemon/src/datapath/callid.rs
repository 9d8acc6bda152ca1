//! Node-wide PPTP Call ID allocation (RFC 2637 §2.7: the PAC's Call ID is the
//! GRE key clients use to reach a session). One data-plane process owns GRE for
//! the node, so a process-wide allocator is a node-wide one. Each allocation
//! starts at a random point, so IDs are not predictable from one another (an
//! off-path attacker must not guess the key of the next session) and a
//! just-freed ID is almost never reused while stale GRE packets for it may still
//! be in flight; 0 is never used.

/// Bitmap of the 65,535 usable Call IDs.
pub struct CallIds {
    used: Box<[u64; 1024]>,
    /// xorshift64* state: cheap, seeded from the OS; unpredictability here only needs to
    /// defeat guessing from outside, the IDs are not secrets.
    rng: u64,
    in_use: u32,
}

impl CallIds {
    /// A fresh allocator; pass a random `seed`.
    pub fn new(seed: u64) -> Self {
        CallIds {
            used: Box::new([0; 1024]),
            rng: seed | 1,
            in_use: 0,
        }
    }

    fn next_random(&mut self) -> u16 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16
    }

    fn bit(id: u16) -> (usize, u64) {
        (usize::from(id >> 6), 1u64 << (id & 63))
    }

    fn is_used(&self, id: u16) -> bool {
        let (w, b) = Self::bit(id);
        self.used.get(w).is_some_and(|word| word & b != 0)
    }

    /// Allocates a free Call ID, or `None` when all 65,535 are taken.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.in_use >= u32::from(u16::MAX) {
            return None;
        }
        let mut id = self.next_random().max(1);
        loop {
            if !self.is_used(id) {
                let (w, b) = Self::bit(id);
                if let Some(word) = self.used.get_mut(w) {
                    *word |= b;
                }
                self.in_use += 1;
                return Some(id);
            }
            id = id.wrapping_add(1).max(1);
        }
    }

    /// Frees a Call ID; freeing an unused ID is a no-op.
    pub fn release(&mut self, id: u16) {
        if id != 0 && self.is_used(id) {
            let (w, b) = Self::bit(id);
            if let Some(word) = self.used.get_mut(w) {
                *word &= !b;
            }
            self.in_use -= 1;
        }
    }

    /// IDs currently allocated.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn never_collides_and_never_zero() {
        let mut ids = CallIds::new(65530);
        // Filling the space exercises the scan from a random start past used IDs.
        let mut seen = HashSet::new();
        for _ in 0..65535 {
            let id = ids.allocate().unwrap();
            assert_ne!(id, 0);
            assert!(seen.insert(id));
        }
        assert_eq!(ids.allocate(), None);
        ids.release(7);
        assert_eq!(ids.allocate(), Some(7));
    }

    #[test]
    fn ids_are_spread_and_not_reused_at_once() {
        let mut ids = CallIds::new(0x1234_5678_9abc_def0);
        let a = ids.allocate().unwrap();
        ids.release(a);
        let next: Vec<u16> = (0..64).map(|_| ids.allocate().unwrap()).collect();
        assert!(!next.contains(&a));
        // Not a sequence: consecutive allocations are far apart on average.
        let gaps: u64 = next
            .windows(2)
            .map(|w| u64::from(w[0].abs_diff(w[1])))
            .sum();
        assert!(gaps / 63 > 1000, "{next:?}");
    }
}
