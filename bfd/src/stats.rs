//! Aggregates kept by the event loop for metrics: sessions by state and how
//! late deadlines are served. Bounded in size whatever the session count, and
//! updated incrementally, so a scrape never walks 50,000 sessions.

use crate::manager::Counters;
use crate::packet::State;
use crate::udp::IoStats;
use std::time::Duration;

/// How many sessions are in each state, maintained on every state change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Sessions in AdminDown.
    pub admin_down: u64,
    /// Sessions in Down.
    pub down: u64,
    /// Sessions in Init.
    pub init: u64,
    /// Sessions in Up.
    pub up: u64,
}

impl StateCounts {
    fn slot(&mut self, s: State) -> &mut u64 {
        match s {
            State::AdminDown => &mut self.admin_down,
            State::Down => &mut self.down,
            State::Init => &mut self.init,
            State::Up => &mut self.up,
        }
    }

    /// Sessions in state `s`.
    pub fn get(&self, s: State) -> u64 {
        match s {
            State::AdminDown => self.admin_down,
            State::Down => self.down,
            State::Init => self.init,
            State::Up => self.up,
        }
    }

    /// A session appeared in state `s`.
    pub(crate) fn add(&mut self, s: State) {
        *self.slot(s) += 1;
    }

    /// A session in state `s` went away.
    pub(crate) fn remove(&mut self, s: State) {
        let v = self.slot(s);
        *v = v.saturating_sub(1);
    }

    /// A session changed state.
    pub(crate) fn moved(&mut self, from: State, to: State) {
        self.remove(from);
        self.add(to);
    }

    /// All sessions.
    pub fn total(&self) -> u64 {
        self.admin_down + self.down + self.init + self.up
    }
}

/// Upper bounds of the lag buckets, µs: from well under the driver's 1 ms
/// coalescing up to a second (a loop that late has lost sessions already).
pub const LAG_BOUNDS_MICROS: [u64; 12] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
];

/// Histogram of how late each session deadline was served (now - deadline
/// when the loop ran it): the event-loop lag that eats into detection times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LagHistogram {
    /// Non-cumulative counts per bucket of [`LAG_BOUNDS_MICROS`], plus one
    /// for everything above the last bound.
    pub counts: [u64; LAG_BOUNDS_MICROS.len() + 1],
    /// Sum of all observations, µs.
    pub sum_micros: u64,
}

impl LagHistogram {
    /// Records one served deadline.
    pub fn observe(&mut self, lag: Duration) {
        let us = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        let i = LAG_BOUNDS_MICROS.partition_point(|&b| b < us);
        self.counts[i] += 1;
        self.sum_micros = self.sum_micros.saturating_add(us);
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Observations in buckets wholly above `d` (bounds are bucket
    /// granularity: with `d` a bound, exactly those later than `d`).
    pub fn later_than(&self, d: Duration) -> u64 {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let first = LAG_BOUNDS_MICROS.partition_point(|&b| b < us) + 1;
        self.counts.iter().skip(first).sum()
    }

    /// Largest bucket bound below which `q` (0..=1) of the observations fall,
    /// or `None` past the last bound (or without observations).
    pub fn quantile_bound(&self, q: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let want = (q.clamp(0.0, 1.0) * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want.max(1) {
                return LAG_BOUNDS_MICROS.get(i).map(|&b| Duration::from_micros(b));
            }
        }
        None
    }
}

/// Everything a metrics scrape needs, taken in one turn of the loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Packet, drop, flap and detection counters of the manager.
    pub counters: Counters,
    /// Sessions by state.
    pub states: StateCounts,
    /// Deadline lag.
    pub lag: LagHistogram,
    /// Socket-layer counters (send errors, batching).
    pub io: IoStats,
}

impl Snapshot {
    /// Packets dropped, by reason: the values of
    /// `bfd_packets_dropped_total{reason}` in the order of
    /// [`crate::metrics::DROP_REASONS`].
    pub fn drops(&self) -> [u64; 7] {
        let c = &self.counters;
        [
            c.malformed,
            c.no_session,
            c.ttl,
            c.rejected,
            self.io.send_errors,
            self.io.vxlan_rejected,
            self.io.xdp.rejected,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_than_counts_the_buckets_above_a_bound() {
        let mut h = LagHistogram::default();
        for ms in [1, 80, 100, 101, 300, 2000] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.later_than(Duration::from_millis(100)), 3);
        assert_eq!(h.later_than(Duration::from_millis(250)), 2);
        assert_eq!(h.later_than(Duration::from_millis(1000)), 1);
        assert_eq!(h.later_than(Duration::ZERO), 6);
    }

    #[test]
    fn lag_buckets_are_upper_inclusive() {
        let mut h = LagHistogram::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(5));
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[LAG_BOUNDS_MICROS.len()], 1);
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum_micros, 5_000_201);
        assert_eq!(h.quantile_bound(0.5), Some(Duration::from_micros(250)));
        assert_eq!(h.quantile_bound(1.0), None);
    }

    #[test]
    fn state_counts_follow_moves() {
        let mut s = StateCounts::default();
        s.add(State::Down);
        s.add(State::Down);
        s.moved(State::Down, State::Up);
        assert_eq!((s.down, s.up, s.total()), (1, 1, 2));
        s.remove(State::Up);
        s.remove(State::Up);
        assert_eq!((s.up, s.total()), (0, 1));
    }
}
