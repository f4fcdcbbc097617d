//! Two BFD sessions in a deterministic simulated network: a virtual clock,
//! per-direction loss and delay from a seeded RNG, and a log of every
//! transmission, delivery and state change to check the RFC 5880 timing
//! rules against.

use bfd::auth::{AuthKey, AuthType};
use bfd::config::SessionConfig;
use bfd::packet::{Diagnostic, Repr, State};
use bfd::session::{Event, Session};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

const A: usize = 0;
const B: usize = 1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One direction of the link.
#[derive(Clone, Copy, Debug)]
struct Path {
    loss: f64,
    delay: Duration,
    /// Extra delay drawn uniformly from 0..=delay_spread (may reorder).
    delay_spread: Duration,
    up: bool,
}

impl Default for Path {
    fn default() -> Self {
        Path {
            loss: 0.0,
            delay: ms(1),
            delay_spread: Duration::ZERO,
            up: true,
        }
    }
}

#[derive(Debug, Clone)]
struct Sent {
    at: Instant,
    from: usize,
    repr: Repr,
}

/// (arrival, tie-break sequence, receiving node, bytes).
type InFlight = (Instant, u64, usize, Vec<u8>);

struct Sim {
    base: Instant,
    now: Instant,
    nodes: [Session; 2],
    /// A stopped node neither runs timers nor sends nor receives.
    alive: [bool; 2],
    paths: [Path; 2], // paths[i]: from node i to the other
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: SmallRng,
    sent: Vec<Sent>,
    /// (time, receiving node) of every delivery the session accepted.
    delivered: Vec<(Instant, usize)>,
    events: Vec<(usize, Event)>,
    discards: usize,
    /// (since, node, negotiated TX interval): every change, as sampled after each step.
    intervals: Vec<(Instant, usize, Duration)>,
}

impl Sim {
    fn new(seed: u64, a: SessionConfig, b: SessionConfig) -> Sim {
        let base = Instant::now();
        let mut rng = SmallRng::seed_from_u64(seed);
        let da = rng.random_range(1..=u32::MAX);
        let db = rng.random_range(1..=u32::MAX);
        let sa = Session::with_rng(a, da, base, SmallRng::seed_from_u64(seed ^ 0xa)).unwrap();
        let sb = Session::with_rng(b, db, base, SmallRng::seed_from_u64(seed ^ 0xb)).unwrap();
        Sim {
            base,
            now: base,
            nodes: [sa, sb],
            alive: [true, true],
            paths: [Path::default(), Path::default()],
            in_flight: BinaryHeap::new(),
            seq: 0,
            rng,
            sent: Vec::new(),
            delivered: Vec::new(),
            events: Vec::new(),
            discards: 0,
            intervals: Vec::new(),
        }
    }

    /// The smallest negotiated TX interval node `n` had at any time in `[from, to]`.
    fn min_interval(&self, n: usize, from: Instant, to: Instant) -> Duration {
        let mine = self.intervals.iter().filter(|(_, i, _)| *i == n);
        // Samples are taken after each step, so the value a packet sent at
        // `from` was scheduled with is the last one sampled before `from`.
        let at_start = mine
            .clone()
            .take_while(|(t, ..)| *t < from)
            .last()
            .map(|(_, _, v)| *v);
        let during = mine
            .filter(|(t, ..)| *t >= from && *t <= to)
            .map(|(_, _, v)| *v);
        at_start
            .into_iter()
            .chain(during)
            .min()
            .unwrap_or(Duration::MAX)
    }

    fn next_time(&self) -> Option<Instant> {
        let timers = (0..2)
            .filter(|&i| self.alive[i])
            .filter_map(|i| self.nodes[i].poll_timeout());
        let net = self.in_flight.peek().map(|Reverse((t, ..))| *t);
        timers.chain(net).min()
    }

    /// Processes everything due at exactly `self.now`.
    fn process_now(&mut self) {
        while let Some(Reverse((t, ..))) = self.in_flight.peek() {
            if *t > self.now {
                break;
            }
            let Reverse((_, _, to, bytes)) = self.in_flight.pop().unwrap();
            if !self.alive[to] {
                continue;
            }
            match self.nodes[to].handle_datagram(self.now, &bytes) {
                Ok(()) => self.delivered.push((self.now, to)),
                Err(_) => self.discards += 1,
            }
        }
        for i in 0..2 {
            if !self.alive[i] {
                continue;
            }
            self.nodes[i].handle_timeout(self.now);
            let mut buf = [0u8; 64];
            while let Some(n) = self.nodes[i].poll_transmit_into(self.now, &mut buf) {
                let repr = Repr::parse(&buf[..n]).unwrap();
                self.sent.push(Sent {
                    at: self.now,
                    from: i,
                    repr,
                });
                let p = self.paths[i];
                if !p.up || self.rng.random_bool(p.loss) {
                    continue;
                }
                let spread = if p.delay_spread.is_zero() {
                    Duration::ZERO
                } else {
                    Duration::from_nanos(
                        self.rng.random_range(0..=p.delay_spread.as_nanos() as u64),
                    )
                };
                self.seq += 1;
                self.in_flight.push(Reverse((
                    self.now + p.delay + spread,
                    self.seq,
                    1 - i,
                    buf[..n].to_vec(),
                )));
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events.push((i, e));
            }
            let iv = self.nodes[i].status().tx_interval;
            if self
                .intervals
                .iter()
                .rev()
                .find(|(_, n, _)| *n == i)
                .is_none_or(|(_, _, v)| *v != iv)
            {
                self.intervals.push((self.now, i, iv));
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.process_now();
        let mut steps = 0u64;
        while let Some(t) = self.next_time() {
            if t > end {
                break;
            }
            // A deadline in the past is processed now; time never goes back.
            self.now = self.now.max(t);
            self.process_now();
            steps += 1;
            assert!(steps < 50_000_000, "simulation does not progress");
        }
        self.now = end;
        self.process_now();
    }

    fn state(&self, i: usize) -> State {
        self.nodes[i].state()
    }

    fn transitions(&self, i: usize) -> Vec<(State, State, Diagnostic)> {
        self.events
            .iter()
            .filter(|(n, _)| *n == i)
            .map(|(_, Event::StateChange { from, to, diag, .. })| (*from, *to, *diag))
            .collect()
    }

    fn downs_since(&self, i: usize, since: Instant) -> Vec<(Instant, Diagnostic)> {
        self.events
            .iter()
            .filter(|(n, _)| *n == i)
            .filter_map(|(_, Event::StateChange { to, diag, at, .. })| {
                (*to == State::Down && *at >= since).then_some((*at, *diag))
            })
            .collect()
    }

    fn last_delivery_to(&self, i: usize, before: Instant) -> Option<Instant> {
        self.delivered
            .iter()
            .rev()
            .find(|(t, n)| *n == i && *t <= before)
            .map(|(t, _)| *t)
    }
}

fn cfg(tx_ms: u64, rx_ms: u64, mult: u8) -> SessionConfig {
    SessionConfig {
        desired_min_tx: ms(tx_ms),
        required_min_rx: ms(rx_ms),
        detect_mult: mult,
        ..Default::default()
    }
}

fn up_both(sim: &mut Sim) {
    sim.run_for(ms(5_000));
    assert_eq!((sim.state(A), sim.state(B)), (State::Up, State::Up));
}

/// §6.8.6 allows only these transitions (plus AdminDown, driven by the operator).
fn legal(from: State, to: State) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Down, Init)
            | (Down, Up)
            | (Init, Up)
            | (Init, Down)
            | (Up, Down)
            | (_, AdminDown)
            | (AdminDown, Down)
    )
}

#[test]
fn bring_up_goes_down_init_up_on_both_sides() {
    let mut sim = Sim::new(1, cfg(300, 300, 3), cfg(300, 300, 3));
    sim.run_for(ms(3_000));
    for i in [A, B] {
        // Both start together, so each hears the other's Down first.
        assert_eq!(
            sim.transitions(i),
            vec![
                (State::Down, State::Init, Diagnostic::None),
                (State::Init, State::Up, Diagnostic::None)
            ],
            "node {i}"
        );
        let st = sim.nodes[i].status();
        assert_eq!(
            st.remote_discriminator,
            sim.nodes[1 - i].local_discriminator()
        );
        assert_eq!(st.remote_state, State::Up);
    }
    // While not Up the advertised Desired Min TX is at least 1 s (§6.8.3),
    // and the first packets carry Your Discriminator 0 in state Down (§6.8.7).
    let first = &sim.sent[0].repr;
    assert_eq!(
        (first.state, first.your_discriminator, first.desired_min_tx),
        (State::Down, 0, 1_000_000)
    );
    // Once Up, the configured 300 ms is advertised via a Poll Sequence.
    let polled = sim
        .sent
        .iter()
        .find(|s| s.repr.poll)
        .expect("a Poll after Up");
    assert_eq!(polled.repr.desired_min_tx, 300_000);
    assert_eq!(polled.repr.state, State::Up);
}

#[test]
fn one_side_up_late_still_converges() {
    // B starts 2.5 s later: A is Down sending at 1 s, B answers.
    let mut sim = Sim::new(2, cfg(100, 100, 3), cfg(100, 100, 3));
    sim.alive[B] = false;
    sim.run_for(ms(2_500));
    assert_eq!(sim.state(A), State::Down);
    sim.alive[B] = true;
    sim.run_for(ms(3_000));
    assert_eq!((sim.state(A), sim.state(B)), (State::Up, State::Up));
}

#[test]
fn asymmetric_timers_negotiate_per_direction() {
    // A: TX 100 ms, RX 400 ms, x3. B: TX 250 ms, RX 50 ms, x5.
    let mut sim = Sim::new(3, cfg(100, 400, 3), cfg(250, 50, 5));
    up_both(&mut sim);
    sim.run_for(ms(2_000));
    let a = sim.nodes[A].status();
    let b = sim.nodes[B].status();
    // §6.8.7: TX interval = max(own Desired Min TX, remote Required Min RX).
    assert_eq!(a.tx_interval, ms(100)); // max(100, 50)
    assert_eq!(b.tx_interval, ms(400)); // max(250, 400)
    // §6.8.4: Detection Time = remote Detect Mult x max(own Required Min RX, remote Desired Min TX).
    assert_eq!(a.detection_time, ms(5 * 400)); // 5 x max(400, 250)
    assert_eq!(b.detection_time, ms(3 * 100)); // 3 x max(50, 100)
    assert!(!a.poll_in_progress && !b.poll_in_progress);
    // Measured spacing of periodic packets in the last second: 75-100 % of the interval.
    let since = sim.now - ms(1_500);
    for (node, interval) in [(A, 100u64), (B, 400)] {
        let times: Vec<Instant> = sim
            .sent
            .iter()
            .filter(|s| s.from == node && !s.repr.final_ && s.at >= since)
            .map(|s| s.at)
            .collect();
        assert!(times.len() >= 3, "node {node}");
        for w in times.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= ms(interval) * 3 / 4 && gap <= ms(interval),
                "node {node} gap {gap:?}"
            );
        }
    }
}

#[test]
fn poll_final_holds_tx_increase_and_rx_decrease_until_final() {
    let mut sim = Sim::new(4, cfg(100, 400, 3), cfg(250, 50, 3));
    up_both(&mut sim);
    sim.run_for(ms(1_000));
    let before = sim.nodes[A].status();
    assert_eq!(
        (before.tx_interval, before.detection_time),
        (ms(100), ms(3 * 400))
    );
    let changed_at = sim.now;
    let sent_before = sim.sent.len();
    // Increase TX 100 -> 300 ms and decrease RX 400 -> 100 ms.
    sim.nodes[A].set_params(ms(300), ms(100), 3).unwrap();
    let during = sim.nodes[A].status();
    assert!(during.poll_in_progress);
    // §6.8.3: the increased TX interval waits for the Final ...
    assert_eq!(during.tx_interval, ms(100));
    // ... and the Detection Time keeps the old, larger Required Min RX.
    assert_eq!(during.detection_time, ms(3 * 400));
    sim.run_for(ms(2_000));
    let after = sim.nodes[A].status();
    assert!(!after.poll_in_progress);
    assert_eq!(after.tx_interval, ms(300));
    assert_eq!(after.detection_time, ms(3 * 250)); // 3 x max(100, 250)
    // B follows: its TX is max(250, 100) and its detection uses A's new 300 ms.
    let b = sim.nodes[B].status();
    assert_eq!((b.tx_interval, b.detection_time), (ms(250), ms(3 * 300)));

    let log = &sim.sent[sent_before..];
    assert!(
        log.iter().all(|s| !(s.repr.poll && s.repr.final_)),
        "P and F together (§6.5)"
    );
    let polls: Vec<&Sent> = log.iter().filter(|s| s.from == A && s.repr.poll).collect();
    assert!(!polls.is_empty());
    // Every Poll carries the new values; B answers each received one at once.
    for p in &polls {
        assert_eq!(
            (p.repr.desired_min_tx, p.repr.required_min_rx),
            (300_000, 100_000)
        );
    }
    let final_ = log
        .iter()
        .find(|s| s.from == B && s.repr.final_)
        .expect("B sent a Final");
    assert_eq!(
        final_.at,
        polls[0].at + ms(1),
        "Final goes out on receipt, not on B's timer"
    );
    // A's periodic packets between the change and the Final's arrival keep the old spacing.
    let final_arrival = final_.at + ms(1);
    let a_times: Vec<Instant> = log
        .iter()
        .filter(|s| s.from == A && !s.repr.final_)
        .map(|s| s.at)
        .collect();
    for w in a_times.windows(2) {
        let gap = w[1] - w[0];
        if w[1] <= final_arrival {
            assert!(gap <= ms(100), "interval grew before the Final: {gap:?}");
        } else if w[0] > final_arrival {
            assert!(
                gap >= ms(225) && gap <= ms(300),
                "new interval not applied: {gap:?}"
            );
        }
    }
    // No Poll after the Final arrived.
    assert!(polls.iter().all(|p| p.at < final_arrival));
    assert!(changed_at < final_arrival);
}

#[test]
fn tx_decrease_and_rx_increase_apply_at_once() {
    let mut sim = Sim::new(5, cfg(300, 100, 3), cfg(100, 100, 3));
    up_both(&mut sim);
    sim.nodes[A].set_params(ms(100), ms(300), 3).unwrap();
    let st = sim.nodes[A].status();
    assert!(st.poll_in_progress);
    assert_eq!(st.tx_interval, ms(100));
    assert_eq!(st.detection_time, ms(3 * 300));
    sim.run_for(ms(1_000));
    assert!(!sim.nodes[A].status().poll_in_progress);
    assert_eq!(sim.nodes[B].status().tx_interval, ms(300));
}

#[test]
fn changes_during_a_poll_start_a_second_poll() {
    let mut sim = Sim::new(6, cfg(100, 100, 3), cfg(100, 100, 3));
    up_both(&mut sim);
    sim.paths[A].up = false; // the first Polls are lost
    sim.nodes[A].set_params(ms(200), ms(100), 3).unwrap();
    sim.run_for(ms(150));
    sim.nodes[A].set_params(ms(200), ms(150), 3).unwrap();
    sim.paths[A].up = true;
    sim.run_for(ms(2_000));
    let st = sim.nodes[A].status();
    assert!(!st.poll_in_progress);
    assert_eq!(st.tx_interval, ms(200));
    assert_eq!(sim.nodes[B].status().tx_interval, ms(150));
    let poll_values: Vec<(u32, u32)> = sim
        .sent
        .iter()
        .filter(|s| s.from == A && s.repr.poll)
        .map(|s| (s.repr.desired_min_tx, s.repr.required_min_rx))
        .collect();
    assert!(poll_values.contains(&(200_000, 100_000)) && poll_values.contains(&(200_000, 150_000)));
    // Values of the first sequence never reappear after the second began.
    let second = poll_values
        .iter()
        .position(|v| *v == (200_000, 150_000))
        .unwrap();
    assert!(
        poll_values[second..]
            .iter()
            .all(|v| *v == (200_000, 150_000))
    );
    assert_eq!((sim.state(A), sim.state(B)), (State::Up, State::Up));
}

/// Kill B at T. RFC 5880 §6.8.4: A declares Down exactly one Detection Time
/// after the last packet it received. B's last packet left at some s with
/// T - I_B < s <= T (§6.8.7: consecutive packets are at most the negotiated
/// interval I_B apart; jitter only shortens), and arrived s + d. Hence
///   T + d + DT - I_B < down <= T + d + DT.
#[test]
fn detection_time_is_exactly_as_rfc_computes() {
    for seed in 0..50u64 {
        let mut sim = Sim::new(100 + seed, cfg(100, 200, 3), cfg(150, 50, 4));
        let d = ms(3);
        sim.paths = [Path {
            delay: d,
            ..Default::default()
        }; 2];
        up_both(&mut sim);
        // Kill at a seed-dependent moment so the phase of B's timer varies.
        sim.run_for(Duration::from_micros(1_000_000 + seed * 7_919));
        let dt = sim.nodes[A].status().detection_time;
        let i_b = sim.nodes[B].status().tx_interval;
        assert_eq!(dt, ms(4 * 200)); // B's mult 4 x max(A's RX 200, B's TX 150)
        assert_eq!(i_b, ms(200)); // max(B's TX 150, A's RX 200)
        let t_kill = sim.now;
        sim.alive[B] = false;
        sim.run_for(ms(2_000));
        let downs = sim.downs_since(A, t_kill);
        assert_eq!(downs.len(), 1, "seed {seed}");
        let (down, diag) = downs[0];
        assert_eq!(diag, Diagnostic::ControlDetectionTimeExpired);
        let last = sim.last_delivery_to(A, down).unwrap();
        assert_eq!(
            down,
            last + dt,
            "seed {seed}: exactly one Detection Time after the last packet"
        );
        assert!(
            down > t_kill + d + dt - i_b && down <= t_kill + d + dt,
            "seed {seed}: down at {:?}",
            down - t_kill
        );
        // §6.8.1: the remote discriminator is forgotten after a silent Detection Time.
        assert_eq!(sim.nodes[A].status().remote_discriminator, 0);
        // Down again means the slow 1 s rate (§6.8.3).
        assert_eq!(sim.nodes[A].status().tx_interval, ms(1_000));
    }
}

#[test]
fn detect_mult_one_uses_the_tighter_jitter_and_still_holds() {
    let mut sim = Sim::new(7, cfg(50, 50, 1), cfg(50, 50, 1));
    up_both(&mut sim);
    let since = sim.now;
    sim.run_for(ms(10_000));
    assert!(sim.downs_since(A, since).is_empty() && sim.downs_since(B, since).is_empty());
    let times: Vec<Instant> = sim
        .sent
        .iter()
        .filter(|s| s.from == A && !s.repr.final_ && s.at >= since)
        .map(|s| s.at)
        .collect();
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        // §6.8.7: with Detect Mult 1, 75 % to 90 % of the interval.
        assert!(
            gap >= Duration::from_micros(37_500) && gap <= ms(45),
            "{gap:?}"
        );
    }
}

#[test]
fn recovery_after_the_link_returns() {
    let mut sim = Sim::new(8, cfg(100, 100, 3), cfg(100, 100, 3));
    up_both(&mut sim);
    let cut = sim.now;
    sim.paths[A].up = false;
    sim.paths[B].up = false;
    sim.run_for(ms(3_000));
    assert_eq!((sim.state(A), sim.state(B)), (State::Down, State::Down));
    for i in [A, B] {
        assert_eq!(
            sim.downs_since(i, cut),
            vec![(
                sim.downs_since(i, cut)[0].0,
                Diagnostic::ControlDetectionTimeExpired
            )]
        );
    }
    let healed = sim.now;
    sim.paths[A].up = true;
    sim.paths[B].up = true;
    sim.run_for(ms(3_000));
    assert_eq!((sim.state(A), sim.state(B)), (State::Up, State::Up));
    for i in [A, B] {
        let st = sim.nodes[i].status();
        assert_eq!(st.flaps, 1);
        assert!(
            st.last_state_change > healed && st.last_state_change <= healed + ms(2_100),
            "node {i}"
        );
        assert_eq!(st.tx_interval, ms(100));
        assert_eq!(st.local_diag, Diagnostic::None);
    }
}

#[test]
fn admin_down_is_signalled_and_not_a_failure() {
    let mut sim = Sim::new(9, cfg(100, 100, 3), cfg(100, 100, 3));
    up_both(&mut sim);
    let t = sim.now;
    sim.nodes[A].set_admin_down(sim.now, Diagnostic::AdministrativelyDown);
    sim.run_for(ms(10_000));
    assert_eq!(sim.state(A), State::AdminDown);
    assert_eq!(sim.state(B), State::Down);
    // B went Down because A said so (diag 3), and it sees A's reason (7).
    let b_down = sim
        .events
        .iter()
        .find_map(
            |(
                n,
                Event::StateChange {
                    to,
                    diag,
                    remote_diag,
                    at,
                    ..
                },
            )| {
                (*n == B && *to == State::Down && *at > t).then_some((*diag, *remote_diag, *at))
            },
        )
        .unwrap();
    assert_eq!(b_down.0, Diagnostic::NeighborSignaledSessionDown);
    assert_eq!(b_down.1, Diagnostic::AdministrativelyDown);
    // The very next scheduled packet carried AdminDown: well within B's Detection Time.
    assert!(b_down.2 - t <= ms(100) + ms(1), "{:?}", b_down.2 - t);
    // B never moved on to Init: an AdminDown peer does not bring it up.
    assert_eq!(sim.transitions(B).last().unwrap().1, State::Down);
    // §6.8.16: A signalled for at least one (remote) Detection Time, then stopped.
    let admin_pkts: Vec<Instant> = sim
        .sent
        .iter()
        .filter(|s| s.from == A && s.repr.state == State::AdminDown)
        .map(|s| s.at)
        .collect();
    assert!(admin_pkts.len() >= 3, "{}", admin_pkts.len());
    assert!(*admin_pkts.last().unwrap() - t >= ms(2_000));
    assert!(
        sim.sent
            .iter()
            .filter(|s| s.from == A && s.at > t + ms(5_000))
            .count()
            == 0
    );
    assert!(sim.sent.iter().all(
        |s| s.repr.state != State::AdminDown || s.repr.diag == Diagnostic::AdministrativelyDown
    ));
    // And back.
    sim.nodes[A].set_admin_up(sim.now);
    sim.run_for(ms(5_000));
    assert_eq!((sim.state(A), sim.state(B)), (State::Up, State::Up));
}

#[test]
fn authenticated_sessions_come_up_and_reject_a_wrong_key() {
    for t in [
        AuthType::SimplePassword,
        AuthType::KeyedMd5,
        AuthType::MeticulousKeyedMd5,
        AuthType::KeyedSha1,
        AuthType::MeticulousKeyedSha1,
    ] {
        let key = AuthKey::new(t, 3, b"tunnel-key").unwrap();
        let mk = |k: &AuthKey| SessionConfig {
            auth: Some(k.clone()),
            ..cfg(100, 100, 3)
        };
        let mut sim = Sim::new(10, mk(&key), mk(&key));
        sim.paths[A].loss = 0.2; // sequence window must survive losses
        up_both(&mut sim);
        sim.run_for(ms(20_000));
        // 20 % loss may cost a Down now and then (mult 3); what matters is that
        // no packet that arrived was refused by the sequence window.
        assert_eq!(sim.discards, 0, "{t:?}");
        sim.paths[A].loss = 0.0;
        sim.run_for(ms(5_000));
        assert_eq!(
            (sim.state(A), sim.state(B)),
            (State::Up, State::Up),
            "{t:?}"
        );

        let other = AuthKey::new(t, 3, b"tunnel-kez").unwrap();
        let mut bad = Sim::new(11, mk(&key), mk(&other));
        bad.run_for(ms(5_000));
        assert_eq!(
            (bad.state(A), bad.state(B)),
            (State::Down, State::Down),
            "{t:?}"
        );
        assert!(bad.discards > 0);
    }
}

#[test]
fn replayed_meticulous_packet_is_rejected() {
    let key = AuthKey::new(AuthType::MeticulousKeyedSha1, 1, b"k").unwrap();
    let c = SessionConfig {
        auth: Some(key),
        ..cfg(100, 100, 3)
    };
    let base = Instant::now();
    let mut a = Session::new(c.clone(), 1, base).unwrap();
    let mut b = Session::new(c, 2, base).unwrap();
    let mut buf = [0u8; 64];
    let n = a.poll_transmit_into(base, &mut buf).unwrap();
    b.handle_datagram(base, &buf[..n]).unwrap();
    assert!(
        b.handle_datagram(base, &buf[..n]).is_err(),
        "replay accepted"
    );
    // Unauthenticated input is refused on an authenticated session.
    let plain = Repr::parse(&buf[..24]).err();
    assert!(plain.is_some());
}

/// Per §6.8.4 a Down with diag 1 is justified iff no packet was accepted in
/// the Detection Time before it. Checks every Down of a run against that.
fn assert_every_detection_down_justified(sim: &Sim, node: usize, dt: Duration) {
    for (at, diag) in sim.downs_since(node, sim.base) {
        if diag != Diagnostic::ControlDetectionTimeExpired {
            continue;
        }
        let last = sim
            .last_delivery_to(node, at)
            .expect("down before any packet");
        assert_eq!(
            at - last,
            dt,
            "node {node}: Down {:?} after last packet",
            at - last
        );
    }
}

/// Counts gaps of at least `dt` between consecutive accepted packets while the
/// receiver was Up, i.e. the Downs the RFC demands.
fn gaps_at_least(sim: &Sim, node: usize, dt: Duration, from: Instant) -> usize {
    let times: Vec<Instant> = sim
        .delivered
        .iter()
        .filter(|(t, n)| *n == node && *t >= from)
        .map(|(t, _)| *t)
        .collect();
    times.windows(2).filter(|w| w[1] - w[0] >= dt).count()
}

#[test]
fn ten_percent_loss_with_mult_3_never_downs_without_cause() {
    // Independent 10 % loss with Detect Mult 3 *does* take sessions down now
    // and then: a Detection Time (3 x 300 ms) fits about 3.4 packets of the
    // jittered 225-300 ms spacing, so 3 consecutive losses (p = 0.001 per
    // packet) end it. What must never happen is a Down without that cause, or
    // a missing Down when it did happen. Over an hour of simulated time per seed.
    let mut total_downs = 0;
    let mut total_packets = 0;
    for seed in 0..4u64 {
        let mut sim = Sim::new(200 + seed, cfg(300, 300, 3), cfg(300, 300, 3));
        sim.paths = [Path {
            loss: 0.10,
            delay: ms(2),
            delay_spread: ms(1),
            up: true,
        }; 2];
        up_both(&mut sim);
        let from = sim.now;
        sim.run_for(Duration::from_secs(3_600));
        for n in [A, B] {
            assert_every_detection_down_justified(&sim, n, ms(900));
            let downs = sim
                .downs_since(n, from)
                .iter()
                .filter(|(_, d)| *d == Diagnostic::ControlDetectionTimeExpired)
                .count();
            // A Down is followed by a fresh bring-up, whose own first gaps are
            // at the slow rate; count only Downs from Up for the comparison.
            let from_up = sim
                .events
                .iter()
                .filter(
                    |(
                        i,
                        Event::StateChange {
                            from: f,
                            to,
                            at,
                            diag,
                            ..
                        },
                    )| {
                        *i == n
                            && *f == State::Up
                            && *to == State::Down
                            && *diag == Diagnostic::ControlDetectionTimeExpired
                            && *at >= from
                    },
                )
                .count();
            assert!(
                from_up <= gaps_at_least(&sim, n, ms(900), from),
                "seed {seed} node {n}"
            );
            total_downs += downs;
        }
        total_packets += sim.sent.iter().filter(|s| s.at >= from).count();
    }
    // Each detection needs 3 consecutive losses (p^3 = 0.001 per packet sent);
    // the other side then follows with diag 3, not counted here. Bounds are
    // generous: the point is that the rate is what loss alone explains.
    let expected = total_packets as f64 * 0.001;
    eprintln!(
        "10% loss, mult 3: {total_downs} detection Downs over {total_packets} packets (p^3 predicts {expected:.0})"
    );
    assert!((total_downs as f64) < expected * 2.0 && (total_downs as f64) > expected / 2.0);
}

#[test]
fn ten_percent_loss_with_mult_5_holds_for_an_hour() {
    // With Detect Mult 5 a Down needs >= 5 consecutive losses (p <= 1e-5).
    let mut sim = Sim::new(300, cfg(300, 300, 5), cfg(300, 300, 5));
    sim.paths = [Path {
        loss: 0.10,
        delay: ms(2),
        delay_spread: ms(1),
        up: true,
    }; 2];
    up_both(&mut sim);
    let from = sim.now;
    sim.run_for(Duration::from_secs(3_600));
    assert!(sim.downs_since(A, from).is_empty() && sim.downs_since(B, from).is_empty());
    assert_eq!((sim.state(A), sim.state(B)), (State::Up, State::Up));
}

#[test]
fn property_random_networks_and_parameters() {
    for seed in 0..200u64 {
        let mut r = SmallRng::seed_from_u64(seed);
        let mut pick = |lo: u64, hi: u64| r.random_range(lo..=hi);
        let ca = cfg(pick(20, 400), pick(20, 400), pick(1, 5) as u8);
        let cb = cfg(pick(20, 400), pick(20, 400), pick(1, 5) as u8);
        let loss = pick(0, 20) as f64 / 100.0;
        let delay = ms(pick(0, 15));
        let spread = ms(pick(0, 5));
        let mut sim = Sim::new(seed, ca.clone(), cb.clone());
        sim.paths = [Path {
            loss,
            delay,
            delay_spread: spread,
            up: true,
        }; 2];
        sim.run_for(ms(20_000));
        // Mid-run parameter change on A.
        let new_tx = ms(pick(20, 400));
        sim.nodes[A]
            .set_params(new_tx, ca.required_min_rx, ca.detect_mult)
            .unwrap();
        sim.run_for(ms(20_000));

        // Invariants over the whole run.
        assert!(
            sim.sent.iter().all(|s| !(s.repr.poll && s.repr.final_)),
            "seed {seed}"
        );
        for n in [A, B] {
            let mut prev = State::Down;
            for (from, to, _) in sim.transitions(n) {
                assert_eq!(from, prev, "seed {seed}");
                assert!(legal(from, to), "seed {seed}: {from:?} -> {to:?}");
                prev = to;
            }
            // Any Detection-Time Down: nothing accepted for exactly a Detection Time before.
            for (at, diag) in sim.downs_since(n, sim.base) {
                if diag == Diagnostic::ControlDetectionTimeExpired {
                    let last = sim.last_delivery_to(n, at).unwrap();
                    let gap = at - last;
                    assert!(
                        gap >= ms(20),
                        "seed {seed}: down {gap:?} after the last packet"
                    );
                    assert!(
                        sim.delivered
                            .iter()
                            .all(|(t, i)| *i != n || *t <= last || *t >= at)
                    );
                }
            }
            // Packets never closer than 75 % of the sender's negotiated interval.
            // (An interval that grows leaves the already scheduled packet in
            // place, so the floor is the smallest interval in force between them.)
            let mine: Vec<&Sent> = sim
                .sent
                .iter()
                .filter(|s| s.from == n && !s.repr.final_)
                .collect();
            for w in mine.windows(2) {
                let floor = sim.min_interval(n, w[0].at, w[1].at) * 3 / 4;
                assert!(
                    w[1].at - w[0].at >= floor,
                    "seed {seed} node {n}: {:?} < {floor:?}",
                    w[1].at - w[0].at
                );
            }
        }

        // Heal the network: both must be Up with the negotiated values.
        sim.paths = [Path::default(); 2];
        sim.run_for(ms(10_000));
        assert_eq!(
            (sim.state(A), sim.state(B)),
            (State::Up, State::Up),
            "seed {seed}"
        );
        let a = sim.nodes[A].status();
        let b = sim.nodes[B].status();
        assert_eq!(a.tx_interval, new_tx.max(cb.required_min_rx), "seed {seed}");
        assert_eq!(
            b.tx_interval,
            cb.desired_min_tx.max(ca.required_min_rx),
            "seed {seed}"
        );
        assert_eq!(
            a.detection_time,
            ca.required_min_rx.max(cb.desired_min_tx) * u32::from(cb.detect_mult),
            "seed {seed}"
        );
        assert_eq!(
            b.detection_time,
            cb.required_min_rx.max(new_tx) * u32::from(ca.detect_mult),
            "seed {seed}"
        );
    }
}
