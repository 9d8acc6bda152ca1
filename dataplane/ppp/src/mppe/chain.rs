//! Checkpoints of a stateless receiver's key chain, so that packets whose coherency count is
//! far ahead cost little more than near ones.
//!
//! A stateless receiver changes the key once per coherency count it moves (RFC 3078 §8.1), so
//! a packet 2,047 counts ahead costs 2,047 key changes. When such a packet is forged (its
//! inner protocol does not decrypt), the receiver rolls back, and the next forged packet costs
//! the same again: about 1,800 times a genuine packet. The chain of session keys ahead is the
//! same whatever the packets are, so the receiver keeps every `STRIDE`-th key it computes
//! ahead of its position (absolute key-change numbers, zeroized on drop). A far packet then
//! starts from the nearest checkpoint: after the first one, at most `STRIDE - 1` key changes
//! each. Allocated only when a packet jumps more than `STRIDE` counts.

use zeroize::Zeroize;

use super::keys::KeyState;

/// Key changes between checkpoints.
pub(super) const STRIDE: u64 = 16;
/// Checkpoints kept: the 2,048 key changes ahead of the receiver.
const SLOTS: usize = 2048 / STRIDE as usize;

/// One checkpoint: the session key after `position` key changes.
#[derive(Clone, Copy, Default)]
struct Slot {
    position: u64,
    session: [u8; 16],
}

/// Checkpoints of the chain ahead, in a ring indexed by `position / STRIDE`.
#[derive(Clone)]
pub(super) struct Checkpoints {
    slots: Box<[Slot; SLOTS]>,
}

impl Drop for Checkpoints {
    fn drop(&mut self) {
        for s in self.slots.iter_mut() {
            s.session.zeroize();
        }
    }
}

impl core::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Checkpoints(..)")
    }
}

impl Checkpoints {
    pub(super) fn new() -> Self {
        Checkpoints {
            slots: Box::new([Slot::default(); SLOTS]),
        }
    }

    fn slot(&mut self, position: u64) -> Option<&mut Slot> {
        let i = usize::try_from(position / STRIDE).ok()? % SLOTS;
        self.slots.get_mut(i)
    }

    /// Moves `keys`, which stand at key change number `from`, to number `to` (> `from`),
    /// starting at the nearest checkpoint and recording the ones it passes.
    pub(super) fn advance(&mut self, keys: &mut KeyState, from: u64, to: u64) {
        let mut at = from;
        // The nearest checkpoint at or before `to`, if it is ahead of `from`.
        let mut cp = to - to % STRIDE;
        while cp > from {
            if let Some(s) = self.slot(cp).filter(|s| s.position == cp) {
                keys.session = s.session;
                at = cp;
                break;
            }
            cp = cp.saturating_sub(STRIDE);
        }
        while at < to {
            let next = (at - at % STRIDE + STRIDE).min(to);
            keys.advance_session(u16::try_from(next - at).unwrap_or(u16::MAX));
            at = next;
            if at.is_multiple_of(STRIDE) {
                let session = keys.session;
                if let Some(s) = self.slot(at) {
                    *s = Slot {
                        position: at,
                        session,
                    };
                }
            }
        }
        keys.reinit();
    }
}
