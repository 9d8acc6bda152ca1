//! The links' timers in a hashed timing wheel (Varghese & Lauck, "Hashed and Hierarchical
//! Timing Wheels", 1987): the timer thread touches only the links whose deadline falls in
//! the ticks that passed, not every link every tick. At 50,000 idle sessions a scan costs
//! 2.5 million link visits a second at a 20 ms tick; the wheel visits each entry once per
//! lap ([`SLOTS`] ticks) until it is due.
//!
//! An entry is (Call ID, deadline). A link may have stale entries (its deadline moved): the
//! link's `scheduled` word names the one entry that counts ([`crate::datapath::link`]), so
//! stale ones are skipped when they come up, and a deadline that moved *later* needs no new
//! entry (the early one re-files itself when it comes up).

/// Slots of the wheel: one lap is `SLOTS` ticks (20.48 s at 20 ms).
pub const SLOTS: usize = 1024;

/// Deadlines by tick, in nanoseconds of the data path's clock.
#[derive(Debug)]
pub struct Wheel {
    slots: Vec<Vec<(u16, u64)>>,
    tick_ns: u64,
    /// The first tick not yet expired.
    cursor: u64,
    len: usize,
}

impl Wheel {
    /// An empty wheel with ticks of `tick_ns` nanoseconds (at least 1).
    pub fn new(tick_ns: u64) -> Wheel {
        Wheel {
            slots: vec![Vec::new(); SLOTS],
            tick_ns: tick_ns.max(1),
            cursor: 0,
            len: 0,
        }
    }

    fn slot(&mut self, tick: u64) -> &mut Vec<(u16, u64)> {
        // The remainder is below SLOTS = `slots.len()`.
        &mut self.slots[(tick % SLOTS as u64) as usize]
    }

    /// Files link `id`'s deadline `at` (a deadline in a tick already expired comes up in the
    /// next tick).
    pub fn insert(&mut self, id: u16, at: u64) {
        let tick = (at / self.tick_ns).max(self.cursor);
        self.slot(tick).push((id, at));
        self.len += 1;
    }

    /// Moves every entry due by `now` (its tick has passed or is the current one) to `due`.
    /// Entries a tick early are possible; the caller checks the link's own deadline.
    pub fn expire(&mut self, now: u64, due: &mut Vec<(u16, u64)>) {
        let now_tick = now / self.tick_ns;
        if now_tick < self.cursor {
            return;
        }
        // After a stall longer than a lap every slot is visited once.
        let visits = (now_tick - self.cursor + 1).min(SLOTS as u64);
        let tick_ns = self.tick_ns;
        for t in self.cursor..self.cursor + visits {
            let before = due.len();
            self.slot(t).retain(|&(id, at)| {
                if at / tick_ns <= now_tick {
                    due.push((id, at));
                    false
                } else {
                    true
                }
            });
            self.len -= due.len() - before;
        }
        self.cursor = now_tick + 1;
    }

    /// Entries filed (stale ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn expire(w: &mut Wheel, now: u64) -> Vec<(u16, u64)> {
        let mut due = Vec::new();
        w.expire(now, &mut due);
        due.sort_unstable();
        due
    }

    #[test]
    fn entries_come_up_in_the_tick_of_their_deadline() {
        let mut w = Wheel::new(20 * MS);
        w.insert(1, 50 * MS);
        w.insert(2, 10 * MS);
        w.insert(3, 61 * MS);
        assert_eq!(expire(&mut w, 19 * MS), vec![(2, 10 * MS)]);
        assert!(expire(&mut w, 39 * MS).is_empty());
        // Tick 2 (40–59 ms): due a tick early is allowed; the caller checks the link.
        assert_eq!(expire(&mut w, 45 * MS), vec![(1, 50 * MS)]);
        assert_eq!(expire(&mut w, 70 * MS), vec![(3, 61 * MS)]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadlines_laps_ahead_wait_for_their_lap() {
        let mut w = Wheel::new(20 * MS);
        let lap = SLOTS as u64 * 20 * MS;
        w.insert(7, 3 * lap + 5 * MS);
        let mut t = 0;
        while t < 3 * lap {
            assert!(expire(&mut w, t).is_empty(), "at {t}");
            t += 20 * MS;
        }
        assert_eq!(
            expire(&mut w, 3 * lap + 5 * MS),
            vec![(7, 3 * lap + 5 * MS)]
        );
    }

    #[test]
    fn a_past_deadline_and_a_long_stall_lose_nothing() {
        let mut w = Wheel::new(20 * MS);
        assert!(expire(&mut w, 100 * MS).is_empty());
        w.insert(1, 10 * MS);
        assert!(
            expire(&mut w, 101 * MS).is_empty(),
            "tick 5 was expired already"
        );
        assert_eq!(expire(&mut w, 120 * MS), vec![(1, 10 * MS)]);
        for id in 0..100u16 {
            w.insert(id, 200 * MS + u64::from(id) * 300 * MS);
        }
        assert_eq!(w.len(), 100);
        // The timer thread was stalled for three laps: everything comes up at once.
        let due = expire(&mut w, 200 * MS + 3 * SLOTS as u64 * 20 * MS);
        assert_eq!(due.len(), 100);
        assert!(w.is_empty());
    }
}
