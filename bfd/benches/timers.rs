//! The timer structure of the BFD event loop under the BFD workload, side
//! by side: the lazy-deletion binary heap the manager used before (the
//! baseline, kept here) and the timing wheel it uses now. N sessions each
//! re-arm 225–300 ms after every expiry (§6.8.7 jitter on a 300 ms
//! interval); the loop wakes every millisecond, like the socket loop with
//! its 1 ms coalescing, for 30 simulated seconds.
//!
//! `cargo bench -p bfd --bench timers`

use bfd::fasthash::FastMap;
use bfd::timer_wheel::TimerWheel;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// The baseline: a heap of (deadline, generation, key) plus each key's
/// live (deadline, generation), stale entries skipped when they surface.
#[derive(Default)]
struct LazyHeap {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    live: FastMap<u32, (Instant, u64)>,
    generation: u64,
}

impl LazyHeap {
    fn set(&mut self, key: u32, at: Instant) {
        self.generation += 1;
        self.live.insert(key, (at, self.generation));
        self.heap.push(Reverse((at, self.generation, key)));
    }

    fn pop_expired(&mut self, now: Instant) -> Option<u32> {
        while let Some(&Reverse((t, g, k))) = self.heap.peek() {
            if self.live.get(&k) != Some(&(t, g)) {
                self.heap.pop();
                continue;
            }
            if t > now {
                return None;
            }
            self.heap.pop();
            self.live.remove(&k);
            return Some(k);
        }
        None
    }
}

fn rearm(rng: &mut SmallRng, now: Instant) -> Instant {
    now + Duration::from_micros(rng.random_range(225_000..=300_000))
}

const SIMULATED: Duration = Duration::from_secs(30);
const STEP: Duration = Duration::from_millis(1);

/// Returns (expiries, wall time).
fn run_heap(n: u32, t0: Instant) -> (u64, Duration) {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut h = LazyHeap::default();
    for k in 0..n {
        h.set(k, t0 + Duration::from_micros(rng.random_range(0..300_000)));
    }
    let mut fired = 0u64;
    let wall = Instant::now();
    let mut now = t0;
    while now < t0 + SIMULATED {
        now += STEP;
        while let Some(k) = h.pop_expired(now) {
            fired += 1;
            h.set(k, rearm(&mut rng, now));
        }
    }
    (fired, wall.elapsed())
}

fn run_wheel(n: u32, t0: Instant) -> (u64, Duration) {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut w = TimerWheel::new(t0);
    // The owner's record of each key's live deadline, as the manager keeps it.
    let mut armed: Vec<Option<Instant>> = vec![None; n as usize];
    for k in 0..n {
        let at = t0 + Duration::from_micros(rng.random_range(0..300_000));
        armed[k as usize] = Some(at);
        w.insert(k, at);
    }
    let mut fired = 0u64;
    let mut out = Vec::new();
    let wall = Instant::now();
    let mut now = t0;
    while now < t0 + SIMULATED {
        now += STEP;
        w.drain_expired(now, &mut out);
        for &(k, at) in &out {
            if armed[k as usize] != Some(at) {
                continue;
            }
            fired += 1;
            let next = rearm(&mut rng, now);
            armed[k as usize] = Some(next);
            w.insert(k, next);
        }
        out.clear();
    }
    (fired, wall.elapsed())
}

fn main() {
    println!("BFD timer structure, 300 ms jittered re-arms, 1 ms wake-ups, 30 s simulated:");
    println!(
        "{:>8} {:<10} {:>12} {:>10} {:>14}",
        "sessions", "structure", "expiries", "ns/expiry", "% of a core*"
    );
    for n in [1_000u32, 10_000, 50_000, 200_000] {
        let t0 = Instant::now();
        for (name, (fired, wall)) in [("heap", run_heap(n, t0)), ("wheel", run_wheel(n, t0))] {
            let ns = wall.as_nanos() as f64 / fired as f64;
            println!(
                "{n:>8} {name:<10} {fired:>12} {ns:>10.0} {:>14.2}",
                wall.as_secs_f64() / SIMULATED.as_secs_f64() * 100.0
            );
        }
    }
    println!("* wall time per simulated second: the CPU the structure alone needs live");
}
