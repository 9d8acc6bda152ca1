//! Anti-replay window (RFC 4303 §3.4.3 and Appendix A2), kept as a ring of
//! 64-bit blocks in the style of RFC 6479 so that sliding the window costs
//! at most one cleared word per 64 sequence numbers, independent of its size.
//!
//! [`ReplayWindow::check`] is a pure, cheap lookup meant to run *before* the
//! ICV is verified; [`ReplayWindow::update`] records a sequence number and
//! must run only *after* the ICV verified (RFC 4303 §3.4.3). 32-bit sequence
//! numbers only (no ESN); 0 is never valid.

use crate::error::ReplayError;

const WORD_BITS: u64 = 64;

/// Sliding bitmap of the sequence numbers received recently.
///
/// A sequence number `s` is acceptable when it is above the highest number
/// received so far, or within `size` of it (`highest − s < size`) and not yet
/// received.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest sequence number recorded; 0 while none has been.
    top: u64,
    /// Window size in sequence numbers (a multiple of 64).
    size: u64,
    /// Ring of blocks; bit `s % 64` of word `(s / 64) & mask` stands for `s`.
    /// Holds at least `size / 64 + 1` words, a power of two.
    bitmap: Box<[u64]>,
    mask: u64,
}

impl ReplayWindow {
    /// Smallest window: RFC 4303 asks for at least 32 (default 64), but at
    /// gigabit rates with multi-queue reordering that is far too small, so
    /// this crate never uses fewer than 1024.
    pub const MIN_SIZE: usize = 1024;
    /// Largest window (128 KiB of bitmap).
    pub const MAX_SIZE: usize = 1 << 20;

    /// A window of `size` sequence numbers, clamped to
    /// [`MIN_SIZE`](Self::MIN_SIZE)..=[`MAX_SIZE`](Self::MAX_SIZE) and rounded
    /// up to a multiple of 64. Allocates once, here.
    #[must_use]
    pub fn new(size: usize) -> Self {
        let size = size
            .clamp(Self::MIN_SIZE, Self::MAX_SIZE)
            .next_multiple_of(64);
        let words = (size / 64 + 1).next_power_of_two();
        Self {
            top: 0,
            size: size as u64,
            bitmap: vec![0u64; words].into_boxed_slice(),
            mask: (words - 1) as u64,
        }
    }

    /// The effective window size (after clamping and rounding).
    #[must_use]
    pub fn size(&self) -> usize {
        // `size` came from a usize and is at most MAX_SIZE.
        usize::try_from(self.size).unwrap_or(Self::MAX_SIZE)
    }

    /// Highest sequence number recorded so far (0 if none).
    #[must_use]
    pub fn highest(&self) -> u32 {
        u32::try_from(self.top).unwrap_or(u32::MAX)
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let word = usize::try_from((seq / WORD_BITS) & self.mask).unwrap_or(0);
        (word, 1u64 << (seq % WORD_BITS))
    }

    fn is_set(&self, seq: u64) -> bool {
        let (word, bit) = self.slot(seq);
        self.bitmap.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Whether `seq` would be accepted. Does not change the window.
    ///
    /// # Errors
    /// [`ReplayError::Zero`], [`ReplayError::TooOld`] (left of the window) or
    /// [`ReplayError::Replayed`].
    pub fn check(&self, seq: u32) -> Result<(), ReplayError> {
        let seq = u64::from(seq);
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        if self.is_set(seq) {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }

    /// Records `seq`, sliding the window right if it is the new highest.
    /// Call only for packets whose ICV verified.
    ///
    /// # Errors
    /// As [`check`](Self::check); the window is left unchanged then.
    pub fn update(&mut self, seq: u32) -> Result<(), ReplayError> {
        self.check(seq)?;
        let seq = u64::from(seq);
        if seq > self.top {
            let old_block = self.top / WORD_BITS;
            let new_block = seq / WORD_BITS;
            if new_block - old_block > self.mask {
                self.bitmap.fill(0);
            } else {
                for block in old_block + 1..=new_block {
                    let (word, _) = self.slot(block * WORD_BITS);
                    if let Some(w) = self.bitmap.get_mut(word) {
                        *w = 0;
                    }
                }
            }
            self.top = seq;
        }
        let (word, bit) = self.slot(seq);
        if let Some(w) = self.bitmap.get_mut(word) {
            *w |= bit;
        }
        Ok(())
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("size", &self.size)
            .field("highest", &self.top)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The obvious model: every accepted number, and the highest.
    struct Model {
        seen: BTreeSet<u32>,
        highest: u32,
        size: u64,
    }

    impl Model {
        fn check(&self, seq: u32) -> Result<(), ReplayError> {
            if seq == 0 {
                Err(ReplayError::Zero)
            } else if seq > self.highest {
                Ok(())
            } else if u64::from(self.highest - seq) >= self.size {
                Err(ReplayError::TooOld)
            } else if self.seen.contains(&seq) {
                Err(ReplayError::Replayed)
            } else {
                Ok(())
            }
        }

        fn update(&mut self, seq: u32) -> Result<(), ReplayError> {
            self.check(seq)?;
            self.seen.insert(seq);
            self.highest = self.highest.max(seq);
            Ok(())
        }
    }

    #[test]
    fn size_is_clamped_and_rounded() {
        assert_eq!(ReplayWindow::new(0).size(), 1024);
        assert_eq!(ReplayWindow::new(64).size(), 1024);
        assert_eq!(ReplayWindow::new(1025).size(), 1088);
        assert_eq!(ReplayWindow::new(4096).size(), 4096);
        assert_eq!(ReplayWindow::new(usize::MAX).size(), ReplayWindow::MAX_SIZE);
    }

    #[test]
    fn zero_is_never_valid() {
        let mut w = ReplayWindow::new(1024);
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        assert_eq!(w.update(0), Err(ReplayError::Zero));
        w.update(5).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::Zero));
    }

    #[test]
    fn duplicates_and_window_edge() {
        let mut w = ReplayWindow::new(1024);
        w.update(1).unwrap();
        assert_eq!(w.check(1), Err(ReplayError::Replayed));
        w.update(2000).unwrap();
        // 2000 - 977 = 1023 < 1024: inside; 2000 - 976 = 1024: outside.
        assert_eq!(w.check(977), Ok(()));
        assert_eq!(w.check(976), Err(ReplayError::TooOld));
        assert_eq!(w.check(1), Err(ReplayError::TooOld));
        assert_eq!(w.check(2000), Err(ReplayError::Replayed));
        assert_eq!(w.check(1999), Ok(()));
        assert_eq!(w.check(2001), Ok(()));
        w.update(977).unwrap();
        assert_eq!(w.update(977), Err(ReplayError::Replayed));
        assert_eq!(w.highest(), 2000);
    }

    #[test]
    fn slides_over_reused_ring_slots() {
        let mut w = ReplayWindow::new(1024);
        for s in 1..=5000u32 {
            w.update(s).unwrap();
        }
        // Everything in the window is marked, nothing stale was left behind
        // in ring words that were reused.
        for s in 5000 - 1023..=5000 {
            assert_eq!(w.check(s), Err(ReplayError::Replayed), "{s}");
        }
        assert_eq!(w.check(5000 - 1024), Err(ReplayError::TooOld));
        // A big jump clears the whole ring.
        w.update(1_000_000).unwrap();
        for s in 1_000_000 - 1023..1_000_000 {
            assert_eq!(w.check(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn top_of_sequence_space() {
        let mut w = ReplayWindow::new(1024);
        w.update(u32::MAX).unwrap();
        assert_eq!(w.check(u32::MAX), Err(ReplayError::Replayed));
        assert_eq!(w.check(u32::MAX - 1), Ok(()));
        assert_eq!(w.check(u32::MAX - 1024), Err(ReplayError::TooOld));
        assert_eq!(w.highest(), u32::MAX);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Check(u32),
        Update(u32),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        // Sequence numbers near a slowly rising base, plus occasional far
        // jumps and extreme values, so every branch of the window is hit.
        let step = prop_oneof![
            8 => (0u32..3000).prop_map(|d| (false, d)),
            1 => any::<u32>().prop_map(|d| (true, d)),
        ];
        proptest::collection::vec((step, any::<bool>()), 1..400).prop_map(|steps| {
            let mut base = 0u32;
            steps
                .into_iter()
                .map(|((absolute, d), update)| {
                    let seq = if absolute {
                        d
                    } else {
                        base = base.saturating_add(d / 16);
                        base.saturating_add(d).saturating_sub(1500)
                    };
                    if update {
                        Op::Update(seq)
                    } else {
                        Op::Check(seq)
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn matches_reference_model(size in 0usize..5000, ops in ops()) {
            let mut w = ReplayWindow::new(size);
            let mut m = Model { seen: BTreeSet::new(), highest: 0, size: w.size() as u64 };
            for op in ops {
                match op {
                    Op::Check(s) => prop_assert_eq!(w.check(s), m.check(s), "check {}", s),
                    Op::Update(s) => prop_assert_eq!(w.update(s), m.update(s), "update {}", s),
                }
                prop_assert_eq!(w.highest(), m.highest);
            }
        }
    }
}
