//! One timer structure for all sessions of an event loop: a hashed timing
//! wheel of 1 ms slots (4,096 of them, a 4 s horizon) with an overflow heap
//! for later deadlines.
//!
//! Why not a heap: at tens of thousands of sessions every transmission
//! re-arms a timer, and a binary heap of that size pays a cache miss per
//! level on every push and pop (it was 15 % of the loop in profiles at
//! 10,000 sessions). Here arming appends to a slot and expiry drains slots
//! in order, touching memory sequentially.
//!
//! Deletion is lazy and left to the owner: the wheel hands back every
//! `(key, deadline)` it was given once that deadline passes, including ones
//! the owner has since replaced or cancelled; the owner keeps each key's
//! live deadline (the manager keeps it in the session's own entry, which it
//! looks up anyway) and skips the stale ones. Entries come back in slot
//! order: within one slot (1 ms) in no particular order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Slot width.
pub const TICK: Duration = Duration::from_millis(1);
const TICK_NS: u128 = TICK.as_nanos();
/// Slots in the wheel (a power of two).
pub const SLOTS: usize = 4096;
const WORDS: usize = SLOTS / 64;

/// Deadlines keyed by `K` (a session's local discriminator, typically).
#[derive(Debug, Clone)]
pub struct TimerWheel<K> {
    origin: Instant,
    /// Every tick before this one has been drained.
    cursor: u64,
    slots: Vec<Vec<(K, Instant)>>,
    /// One bit per non-empty slot, to find the next deadline without
    /// walking empty slots.
    occupied: [u64; WORDS],
    /// Deadlines at or beyond `cursor + SLOTS` ticks.
    overflow: BinaryHeap<Reverse<(Instant, K)>>,
    entries: usize,
}

impl<K: Copy + Ord> TimerWheel<K> {
    /// An empty wheel whose tick 0 starts at `origin`.
    pub fn new(origin: Instant) -> Self {
        TimerWheel {
            origin,
            cursor: 0,
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            occupied: [0; WORDS],
            overflow: BinaryHeap::new(),
            entries: 0,
        }
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let ns = at.saturating_duration_since(self.origin).as_nanos() / TICK_NS;
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    fn put(&mut self, tick: u64, key: K, at: Instant) {
        let i = (tick % SLOTS as u64) as usize;
        self.slots[i].push((key, at));
        self.occupied[i / 64] |= 1 << (i % 64);
    }

    /// Arms `key` for `at`. An earlier entry of the same key stays in the
    /// wheel and comes back too: the owner decides which one is live.
    pub fn insert(&mut self, key: K, at: Instant) {
        self.entries += 1;
        // A deadline already past fires with the next drain.
        let tick = self.tick_of(at).max(self.cursor);
        if tick - self.cursor < SLOTS as u64 {
            self.put(tick, key, at);
        } else {
            self.overflow.push(Reverse((at, key)));
        }
    }

    /// Entries held, stale ones included.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The first occupied slot at or after the cursor, as a tick.
    fn first_occupied(&self) -> Option<u64> {
        let start = (self.cursor % SLOTS as u64) as usize;
        // Walk the words from the cursor's, wrapping once; the cursor's word
        // is looked at twice (its bits at/after the cursor, then before).
        for step in 0..=WORDS {
            let w = (start / 64 + step) % WORDS;
            let mut bits = self.occupied[w];
            if step == 0 {
                bits &= !0u64 << (start % 64);
            } else if step == WORDS {
                bits &= !(!0u64 << (start % 64));
            }
            if bits != 0 {
                let slot = w * 64 + bits.trailing_zeros() as usize;
                let ahead = (slot + SLOTS - start) % SLOTS;
                return Some(self.cursor + ahead as u64);
            }
        }
        None
    }

    /// The earliest deadline held (possibly a stale one: the owner then
    /// wakes, finds nothing live, and asks again).
    pub fn next_deadline(&self) -> Option<Instant> {
        // The overflow is only pulled in by a drain, so after the cursor
        // moved a later insert can sit in a slot beyond an overflow entry.
        let in_wheel = self.first_occupied().and_then(|tick| {
            let slot = &self.slots[(tick % SLOTS as u64) as usize];
            slot.iter().map(|&(_, at)| at).min()
        });
        let in_overflow = self.overflow.peek().map(|Reverse((at, _))| *at);
        match (in_wheel, in_overflow) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves overflow entries that now fall within the horizon into slots.
    fn pull_overflow(&mut self) {
        while let Some(&Reverse((at, key))) = self.overflow.peek() {
            let tick = self.tick_of(at).max(self.cursor);
            if tick - self.cursor >= SLOTS as u64 {
                return;
            }
            self.overflow.pop();
            self.put(tick, key, at);
        }
    }

    /// Appends every entry whose deadline is at or before `now` to `out`,
    /// slot by slot, and forgets them.
    pub fn drain_expired(&mut self, now: Instant, out: &mut Vec<(K, Instant)>) {
        let now_tick = self.tick_of(now);
        loop {
            self.pull_overflow();
            let Some(tick) = self.first_occupied() else {
                // Nothing within the horizon: jump, then look at the overflow.
                if now_tick <= self.cursor {
                    return;
                }
                self.cursor = now_tick;
                if self.overflow.is_empty() {
                    return;
                }
                continue;
            };
            if tick > now_tick {
                // Ticks before it are empty: skip them (never past now, and
                // never back, should `now` be older than the cursor).
                self.cursor = self.cursor.max(now_tick);
                self.pull_overflow();
                return;
            }
            let i = (tick % SLOTS as u64) as usize;
            let before = out.len();
            if tick < now_tick {
                out.append(&mut self.slots[i]);
            } else {
                // The slot `now` is in: only what is due already.
                self.slots[i].retain(|&e| {
                    if e.1 <= now {
                        out.push(e);
                        false
                    } else {
                        true
                    }
                });
            }
            self.entries -= out.len() - before;
            if self.slots[i].is_empty() {
                self.occupied[i / 64] &= !(1 << (i % 64));
            }
            if tick == now_tick {
                self.cursor = now_tick;
                return;
            }
            self.cursor = tick + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(w: &mut TimerWheel<u32>, now: Instant) -> Vec<(u32, Instant)> {
        let mut out = Vec::new();
        w.drain_expired(now, &mut out);
        out
    }

    #[test]
    fn fires_at_or_after_the_deadline_in_slot_order() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        w.insert(1u32, t0 + ms(30));
        w.insert(2, t0 + ms(10));
        w.insert(3, t0 + ms(20));
        assert_eq!(w.next_deadline(), Some(t0 + ms(10)));
        assert!(drain(&mut w, t0 + ms(9)).is_empty());
        assert_eq!(
            drain(&mut w, t0 + ms(25)),
            vec![(2, t0 + ms(10)), (3, t0 + ms(20))]
        );
        assert_eq!(w.next_deadline(), Some(t0 + ms(30)));
        assert_eq!(drain(&mut w, t0 + ms(100)), vec![(1, t0 + ms(30))]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn never_early_within_the_current_slot() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let at = t0 + ms(5) + Duration::from_micros(700);
        w.insert(9u32, at);
        assert!(drain(&mut w, at - Duration::from_micros(1)).is_empty());
        assert_eq!(w.len(), 1);
        assert_eq!(drain(&mut w, at), vec![(9, at)]);
    }

    #[test]
    fn past_deadlines_fire_at_once_and_far_ones_go_through_the_overflow() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        assert!(drain(&mut w, t0 + ms(50)).is_empty());
        w.insert(1u32, t0); // already past
        let far = t0 + Duration::from_secs(60);
        w.insert(2, far);
        assert_eq!(w.next_deadline(), Some(t0));
        assert_eq!(drain(&mut w, t0 + ms(50)), vec![(1, t0)]);
        assert_eq!(w.next_deadline(), Some(far));
        assert!(drain(&mut w, far - ms(1)).is_empty());
        assert_eq!(drain(&mut w, far + ms(3)), vec![(2, far)]);
    }

    #[test]
    fn long_idle_jumps_instead_of_walking() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0);
        let later = t0 + Duration::from_secs(3600);
        assert!(drain(&mut w, later).is_empty());
        w.insert(4u32, later + ms(2));
        assert_eq!(drain(&mut w, later + ms(2)), vec![(4, later + ms(2))]);
    }

    /// Against a model that keeps every entry: the wheel returns each
    /// entry once, never before its deadline, and by the first drain at or
    /// after it; slots come out in order.
    #[test]
    fn matches_a_model_under_random_operations() {
        let t0 = Instant::now();
        let mut rng = SmallRng::seed_from_u64(7);
        let mut w = TimerWheel::new(t0);
        let mut model: BTreeMap<(Instant, u32), usize> = BTreeMap::new();
        let mut now = t0;
        let mut next_key = 0u32;
        for _ in 0..100_000 {
            if rng.random_range(0..10) < 6 {
                // Mostly near deadlines, some past the horizon, some past.
                let at = match rng.random_range(0..20) {
                    0 => now + Duration::from_millis(rng.random_range(4_000..20_000)),
                    1 => {
                        now - Duration::from_micros(
                            rng.random_range(0..3_000)
                                .min(now.duration_since(t0).as_micros() as u64),
                        )
                    }
                    _ => now + Duration::from_micros(rng.random_range(0..1_000_000)),
                };
                next_key += 1;
                w.insert(next_key, at);
                *model.entry((at, next_key)).or_default() += 1;
            } else {
                now += Duration::from_micros(rng.random_range(0..20_000));
                for (k, at) in drain(&mut w, now) {
                    assert!(at <= now, "fired early");
                    let c = model.get_mut(&(at, k)).expect("unknown entry");
                    *c -= 1;
                    if *c == 0 {
                        model.remove(&(at, k));
                    }
                }
                assert!(model.keys().all(|&(at, _)| at > now), "missed a due entry");
                assert_eq!(w.next_deadline(), model.keys().next().map(|&(at, _)| at));
            }
            assert_eq!(w.len(), model.values().sum::<usize>());
        }
    }
}
