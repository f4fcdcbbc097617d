//! Many sessions in one loop with one deadline structure: the shape the
//! session manager will have, minus sockets. 10,000 sessions (5,000 pairs)
//! over an in-memory zero-loss network must all come Up and stay Up, with
//! the loop waking only for deadlines.

use bfd::config::SessionConfig;
use bfd::deadlines::Deadlines;
use bfd::packet::{MAX_LEN, Repr, State};
use bfd::session::Session;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

#[test]
fn ten_thousand_sessions_one_deadline_heap() {
    const PAIRS: u32 = 5_000;
    let t0 = Instant::now();
    let cfg = SessionConfig {
        desired_min_tx: Duration::from_millis(300),
        required_min_rx: Duration::from_millis(300),
        ..Default::default()
    };
    // Session i's peer is i ^ 1; discriminators are index + 1. Creation is
    // spread over one second so the first packets do not all coincide.
    let mut sessions: Vec<Session> = (0..2 * PAIRS)
        .map(|i| {
            let created =
                t0 + Duration::from_micros(u64::from(i) * 1_000_000 / u64::from(2 * PAIRS));
            Session::new(cfg.clone(), i + 1, created).unwrap()
        })
        .collect();
    let mut deadlines = Deadlines::new();
    for (i, s) in sessions.iter().enumerate() {
        deadlines.set(i as u32, s.poll_timeout());
    }
    // A wire with 1 ms delay: (arrival, destination index, bytes).
    let mut wire: VecDeque<(Instant, u32, [u8; MAX_LEN], usize)> = VecDeque::new();
    let mut now = t0;
    let end = t0 + Duration::from_secs(10);
    let mut packets = 0u64;
    let mut wakeups = 0u64;
    let mut by_state: HashMap<State, usize> = HashMap::new();
    let wall = std::time::Instant::now();
    loop {
        let next_net = wire.front().map(|w| w.0);
        let next = [deadlines.next_deadline(), next_net]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { break };
        if next > end {
            break;
        }
        now = now.max(next);
        wakeups += 1;
        let mut touched = Vec::new();
        while wire.front().is_some_and(|w| w.0 <= now) {
            let (_, to, buf, n) = wire.pop_front().unwrap();
            // Demultiplex as a manager would: Your Discriminator, else (here) the fixed peer.
            let repr = Repr::parse(&buf[..n]).unwrap();
            let idx = if repr.your_discriminator != 0 {
                repr.your_discriminator - 1
            } else {
                to
            };
            assert_eq!(idx, to);
            sessions[idx as usize]
                .handle_datagram(now, &buf[..n])
                .unwrap();
            touched.push(idx);
        }
        while let Some(k) = deadlines.pop_expired(now) {
            touched.push(k);
        }
        for k in touched {
            let s = &mut sessions[k as usize];
            s.handle_timeout(now);
            let mut buf = [0u8; MAX_LEN];
            while let Some(n) = s.poll_transmit_into(now, &mut buf) {
                packets += 1;
                // FIFO order holds because every packet has the same delay.
                wire.push_back((now + Duration::from_millis(1), k ^ 1, buf, n));
            }
            while s.poll_event().is_some() {}
            deadlines.set(k, s.poll_timeout());
        }
    }
    let elapsed = wall.elapsed();
    for s in &sessions {
        *by_state.entry(s.state()).or_default() += 1;
        assert_eq!(s.status().flaps, 0);
        assert_eq!(s.status().tx_interval, Duration::from_millis(300));
    }
    assert_eq!(
        by_state.get(&State::Up),
        Some(&(2 * PAIRS as usize)),
        "{by_state:?}"
    );
    assert!(deadlines.heap_len() <= 2 * deadlines.len() + 64);
    eprintln!(
        "{} sessions, 10 s simulated: {packets} packets, {wakeups} wakeups, {:?} wall ({:.0} packets/s in this build)",
        2 * PAIRS,
        elapsed,
        packets as f64 / elapsed.as_secs_f64()
    );
}
