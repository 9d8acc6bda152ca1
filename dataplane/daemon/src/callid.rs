//! Node-wide PPTP Call ID allocation (RFC 2637 §2.7: the PAC's Call ID is the
//! GRE key clients use to reach a session). One data-plane process owns GRE for
//! the node, so a process-wide allocator is a node-wide one. IDs are handed out
//! from a moving cursor so a just-freed ID is not reused while stale GRE
//! packets for it may still be in flight; 0 is never used.

/// Bitmap of the 65,535 usable Call IDs.
pub struct CallIds {
    used: Box<[u64; 1024]>,
    cursor: u16,
    in_use: u32,
}

impl CallIds {
    /// A fresh allocator starting at `start` (pass a random value).
    pub fn new(start: u16) -> Self {
        CallIds {
            used: Box::new([0; 1024]),
            cursor: start.max(1),
            in_use: 0,
        }
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
        loop {
            let id = self.cursor;
            self.cursor = self.cursor.wrapping_add(1).max(1);
            if !self.is_used(id) {
                let (w, b) = Self::bit(id);
                if let Some(word) = self.used.get_mut(w) {
                    *word |= b;
                }
                self.in_use += 1;
                return Some(id);
            }
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
    fn freed_ids_are_not_reused_at_once() {
        let mut ids = CallIds::new(1);
        let a = ids.allocate().unwrap();
        ids.release(a);
        assert_ne!(ids.allocate().unwrap(), a);
    }
}
