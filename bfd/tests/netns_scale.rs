//! Hundreds of sessions through real kernel sockets: two drivers in two
//! namespaces joined by a veth. A holds 198.18.0.1; B holds 198.18.0.2–251
//! and serves all of them from wildcard sockets (IP_PKTINFO picks the source).
//! Each address pair runs a single-hop and a multihop session: 500 sessions
//! per side at 50 ms. Reports batching and CPU per packet.
#![cfg(feature = "root-tests")]

mod common;

use bfd::packet::State;
use bfd::udp::{Driver, DriverConfig, IoStats};
use common::NsPair;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

const HOSTS: u8 = 250;

fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain data and clock_gettime fills it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Outcome {
    up: usize,
    flaps: u64,
    io: IoStats,
    cpu: Duration,
    counters: bfd::manager::Counters,
}

fn side(
    ns: String,
    local: Ipv4Addr,
    peers: Vec<(Ipv4Addr, Ipv4Addr)>,
    seed: u64,
    secs: u64,
) -> Outcome {
    common::enter(&ns);
    let m = common::pair_manager(&peers, seed, 50);
    let mut d = Driver::bind(m, DriverConfig::new(local)).unwrap();
    let cpu0 = thread_cpu();
    d.run_until(Instant::now() + Duration::from_secs(secs))
        .unwrap();
    let cpu = thread_cpu() - cpu0;
    let m = d.manager();
    Outcome {
        up: m.statuses().filter(|(_, s)| s.state == State::Up).count(),
        flaps: m.statuses().map(|(_, s)| s.flaps).sum(),
        io: d.io_stats(),
        cpu,
        counters: m.counters(),
    }
}

#[test]
fn five_hundred_sessions_per_side_over_a_veth() {
    let ns = NsPair::new("bfs", "198.18.0.1/24", "198.18.0.2/24");
    let (a_peers, b_peers) = common::one_to_many(&ns, HOSTS);
    let secs = 10;
    let (na, nb) = (ns.a.clone(), ns.b.clone());
    let ta = std::thread::spawn(move || side(na, common::ONE, a_peers, 1, secs));
    let tb = std::thread::spawn(move || side(nb, Ipv4Addr::UNSPECIFIED, b_peers, 2, secs));
    let (a, b) = (ta.join().unwrap(), tb.join().unwrap());
    let sessions = 2 * usize::from(HOSTS);
    for (name, o) in [("A", &a), ("B", &b)] {
        eprintln!(
            "{name}: {} up of {sessions}, flaps {}, {:?}, {:?}; {:.1} packets per recvmmsg, {:.1} per sendmmsg, {:.1} µs CPU per packet handled",
            o.up,
            o.flaps,
            o.io,
            o.counters,
            o.io.recv_packets as f64 / o.io.recv_calls.max(1) as f64,
            o.io.send_packets as f64 / o.io.send_calls.max(1) as f64,
            o.cpu.as_secs_f64() * 1e6 / (o.io.recv_packets + o.io.send_packets).max(1) as f64,
        );
        assert_eq!(o.up, sessions, "{name}");
        assert_eq!(o.flaps, 0, "{name}: a session went down under load");
        assert_eq!(
            o.counters.malformed + o.counters.no_session + o.counters.ttl + o.counters.rejected,
            0
        );
        assert_eq!(o.io.send_errors, 0);
    }
}
