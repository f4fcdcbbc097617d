//! One deadline structure for all sessions of an event loop: a binary heap
//! with lazy deletion. Every session has at most one live deadline (its
//! `poll_timeout()`); re-arming pushes a new entry and leaves the old one to be
//! skipped when it surfaces, so each update is O(log n) with no search.
//! Stale entries are bounded by compacting when they outnumber live ones.

use crate::fasthash::FastMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::time::Instant;

/// Deadlines keyed by `K` (a session's local discriminator, typically).
#[derive(Debug, Clone)]
pub struct Deadlines<K> {
    heap: BinaryHeap<Reverse<(Instant, u64, K)>>,
    /// The live deadline of each key and the generation of its heap entry.
    live: FastMap<K, (Instant, u64)>,
    generation: u64,
}

impl<K: Copy + Eq + Hash + Ord> Default for Deadlines<K> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            live: FastMap::default(),
            generation: 0,
        }
    }
}

impl<K: Copy + Eq + Hash + Ord> Deadlines<K> {
    /// An empty structure.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or with `None` cancels) `key`'s deadline, replacing any earlier one.
    pub fn set(&mut self, key: K, at: Option<Instant>) {
        match (at, self.live.entry(key)) {
            (None, Entry::Occupied(e)) => {
                e.remove();
            }
            (None, Entry::Vacant(_)) => return,
            // Unchanged: no new heap entry, so a busy loop re-setting the same
            // `poll_timeout()` costs one hash lookup.
            (Some(t), Entry::Occupied(e)) if e.get().0 == t => return,
            (Some(t), e) => {
                self.generation += 1;
                let g = self.generation;
                match e {
                    Entry::Occupied(mut o) => {
                        o.insert((t, g));
                    }
                    Entry::Vacant(v) => {
                        v.insert((t, g));
                    }
                }
                self.heap.push(Reverse((t, g, key)));
            }
        }
        self.maybe_compact();
    }

    /// `key`'s live deadline.
    pub fn get(&self, key: K) -> Option<Instant> {
        self.live.get(&key).map(|(t, _)| *t)
    }

    /// The earliest live deadline: what the loop's single sleep waits for.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((t, ..))| *t)
    }

    /// Removes and returns a key whose deadline is at or before `now`, earliest
    /// first; call until `None`. The key has no deadline afterwards.
    pub fn pop_expired(&mut self, now: Instant) -> Option<K> {
        self.pop_expired_at(now).map(|(k, _)| k)
    }

    /// Like [`Deadlines::pop_expired`], with the deadline that expired, so
    /// the caller can measure how late it is served.
    pub fn pop_expired_at(&mut self, now: Instant) -> Option<(K, Instant)> {
        self.drop_stale_top();
        let Reverse((t, _, key)) = *self.heap.peek()?;
        if t > now {
            return None;
        }
        self.heap.pop();
        self.live.remove(&key);
        Some((key, t))
    }

    /// Keys with a live deadline.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// No live deadlines.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Heap entries including stale ones, for tests and metrics.
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    fn is_live(&self, t: Instant, g: u64, key: K) -> bool {
        self.live
            .get(&key)
            .is_some_and(|&(lt, lg)| lt == t && lg == g)
    }

    fn drop_stale_top(&mut self) {
        while let Some(&Reverse((t, g, key))) = self.heap.peek() {
            if self.is_live(t, g, key) {
                return;
            }
            self.heap.pop();
        }
    }

    fn maybe_compact(&mut self) {
        // Keep the heap within a constant factor of the live set.
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live.len() {
            let live = &self.live;
            let entries: Vec<_> = live
                .iter()
                .map(|(k, &(t, g))| Reverse((t, g, *k)))
                .collect();
            self.heap = BinaryHeap::from(entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn earliest_first_and_rearm_replaces() {
        let t0 = Instant::now();
        let mut d = Deadlines::new();
        d.set(1u32, Some(t0 + Duration::from_millis(30)));
        d.set(2, Some(t0 + Duration::from_millis(10)));
        d.set(3, Some(t0 + Duration::from_millis(20)));
        d.set(2, Some(t0 + Duration::from_millis(40))); // pushed back
        d.set(3, None); // cancelled
        assert_eq!(d.len(), 2);
        assert_eq!(d.next_deadline(), Some(t0 + Duration::from_millis(30)));
        assert_eq!(d.pop_expired(t0 + Duration::from_millis(29)), None);
        assert_eq!(d.pop_expired(t0 + Duration::from_millis(100)), Some(1));
        assert_eq!(d.pop_expired(t0 + Duration::from_millis(100)), Some(2));
        assert_eq!(d.pop_expired(t0 + Duration::from_millis(100)), None);
        assert!(d.is_empty());
        assert_eq!(d.next_deadline(), None);
    }

    #[test]
    fn setting_the_same_deadline_adds_nothing() {
        let t0 = Instant::now();
        let mut d = Deadlines::new();
        for _ in 0..1000 {
            d.set(7u32, Some(t0));
        }
        assert_eq!(d.heap_len(), 1);
    }

    #[test]
    fn stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut d = Deadlines::new();
        for round in 0..100u64 {
            for k in 0..1000u32 {
                d.set(
                    k,
                    Some(t0 + Duration::from_micros(round * 1000 + u64::from(k))),
                );
            }
        }
        assert_eq!(d.len(), 1000);
        assert!(d.heap_len() <= 2001, "{}", d.heap_len());
    }

    #[test]
    fn matches_a_naive_model_under_random_operations() {
        let t0 = Instant::now();
        let mut rng = SmallRng::seed_from_u64(42);
        let mut d = Deadlines::new();
        let mut model: BTreeMap<u32, Instant> = BTreeMap::new();
        let mut now = t0;
        for _ in 0..200_000 {
            match rng.random_range(0..10) {
                0..=5 => {
                    let k = rng.random_range(0..500u32);
                    let t = now + Duration::from_micros(rng.random_range(0..10_000));
                    d.set(k, Some(t));
                    model.insert(k, t);
                }
                6 => {
                    let k = rng.random_range(0..500u32);
                    d.set(k, None);
                    model.remove(&k);
                }
                _ => {
                    now += Duration::from_micros(rng.random_range(0..2_000));
                    let want_next = model.values().min().copied();
                    assert_eq!(d.next_deadline(), want_next);
                    while let Some(k) = d.pop_expired(now) {
                        let t = model.remove(&k).expect("popped a key the model lacks");
                        assert!(t <= now);
                        // Earliest first: nothing left in the model is earlier.
                        assert!(model.values().all(|&o| o >= t));
                    }
                    assert!(model.values().all(|&t| t > now));
                }
            }
            assert_eq!(d.len(), model.len());
        }
    }
}
