//! Many sessions in two managers over an in-memory network with 1 ms of
//! delay and a virtual clock: 10,000 sessions per side must all come Up and
//! stay Up for 20 simulated seconds, every deadline served on time (the
//! manager's lag histogram), with the loop waking only for deadlines and
//! packets. The sockets-and-kernel version of this is `bfd-bench`.

use bfd::config::SessionConfig;
use bfd::manager::{Datagram, Encap, Manager, ManagerConfig, PeerKey};
use bfd::packet::{MAX_LEN, State};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const SESSIONS: u32 = 10_000;
const DELAY: Duration = Duration::from_millis(1);
/// Like the socket loop: wake this much after the earliest deadline so
/// nearby ones share the wake-up.
const COALESCE: Duration = Duration::from_millis(1);

fn addr(side: u8, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(
        (u32::from(side) << 24) | (i / 200) << 8 | (i % 200),
    ))
}

/// A datagram in flight: arrival, destination side, the datagram's fields.
struct InFlight {
    at: Instant,
    to: usize,
    remote: IpAddr,
    local: IpAddr,
    payload: [u8; MAX_LEN],
    len: usize,
}

#[test]
fn ten_thousand_sessions_per_side_stay_up_for_twenty_simulated_seconds() {
    let t0 = Instant::now();
    let cfg = SessionConfig {
        desired_min_tx: Duration::from_millis(300),
        required_min_rx: Duration::from_millis(300),
        ..Default::default()
    };
    let mut m: Vec<Manager> = (0..2)
        .map(|seed| {
            Manager::new(ManagerConfig {
                seed,
                initial_spread: Duration::from_secs(1),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    for i in 0..SESSIONS {
        for side in 0..2u8 {
            let peer = PeerKey {
                local: addr(10 + side, i),
                remote: addr(11 - side, i),
                encap: Encap::MultiHop,
            };
            m[usize::from(side)]
                .add_session(peer, cfg.clone(), t0)
                .unwrap();
        }
    }
    let mut wire: VecDeque<InFlight> = VecDeque::new();
    let mut now = t0;
    let end = t0 + Duration::from_secs(20);
    let mut wakeups = 0u64;
    let mut all_up_at = None;
    let wall = std::time::Instant::now();
    loop {
        for (i, mgr) in m.iter_mut().enumerate() {
            mgr.handle_timeout(now);
            while let Some(t) = mgr.poll_transmit() {
                wire.push_back(InFlight {
                    at: now + DELAY,
                    to: 1 - i,
                    remote: t.peer.local,
                    local: t.peer.remote,
                    payload: t.payload,
                    len: t.len,
                });
            }
        }
        if all_up_at.is_none()
            && m.iter()
                .all(|x| x.state_counts().get(State::Up) == SESSIONS as u64)
        {
            all_up_at = Some(now - t0);
        }
        let next = [
            m[0].poll_timeout(),
            m[1].poll_timeout(),
            wire.front().map(|w| w.at),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next.filter(|&n| n <= end) else {
            break;
        };
        now = now.max(next + COALESCE);
        wakeups += 1;
        // Same delay for every packet: the wire stays in arrival order.
        while wire.front().is_some_and(|w| w.at <= now) {
            let w = wire.pop_front().unwrap();
            let d = Datagram {
                remote: w.remote,
                local: w.local,
                ttl: Some(255),
                encap: Encap::MultiHop,
                payload: &w.payload[..w.len],
            };
            m[w.to].handle_datagram(now, &d).unwrap();
        }
    }
    let up_after = all_up_at.expect("all sessions Up");
    assert!(
        up_after < Duration::from_secs(5),
        "all Up after {up_after:?}"
    );
    for x in &m {
        let c = x.counters();
        assert_eq!(x.state_counts().get(State::Up), u64::from(SESSIONS));
        assert_eq!(c.flaps, 0, "{c:?}");
        assert_eq!(c.malformed + c.no_session + c.ttl + c.rejected, 0, "{c:?}");
        // Each session sends every 225–300 ms (§6.8.7 jitter).
        let per_session = c.sent as f64 / f64::from(SESSIONS) / 20.0;
        assert!(
            (3.2..=4.6).contains(&per_session),
            "{per_session} pps/session"
        );
        // Every deadline served within the coalescing delay (plus the
        // 1 ms the wire may have added to a packet that re-armed it).
        let lag = x.lag();
        assert!(
            lag.quantile_bound(1.0)
                .is_some_and(|b| b <= Duration::from_micros(2_500)),
            "{lag:?}"
        );
    }
    eprintln!(
        "{} sessions per side, 20 s simulated: all Up after {up_after:?}, {} packets, {wakeups} wake-ups, {:?} wall",
        SESSIONS,
        m[0].counters().sent + m[1].counters().sent,
        wall.elapsed()
    );
}
