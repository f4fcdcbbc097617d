//! The session manager with a virtual clock: two managers joined by an
//! in-memory network, many sessions each, demultiplexing, GTSM and counters.

use bfd::config::SessionConfig;
use bfd::manager::{Datagram, DropReason, Encap, Manager, ManagerConfig, PeerKey};
use bfd::packet::{Diagnostic, State};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + n))
}

fn cfg() -> SessionConfig {
    SessionConfig {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        ..Default::default()
    }
}

/// Two managers, `n` sessions: A at 198.18.0.1 to B's addresses 198.18.0.2...
struct Pair {
    m: [Manager; 2],
    now: Instant,
    /// TTL the network delivers with (GTSM tests lower it).
    ttl: u8,
    drops: Vec<DropReason>,
}

impl Pair {
    fn new(n: u32, encap: Encap) -> Pair {
        let now = Instant::now();
        let mut a = Manager::new(ManagerConfig {
            seed: 1,
            ..Default::default()
        })
        .unwrap();
        let mut b = Manager::new(ManagerConfig {
            seed: 2,
            ..Default::default()
        })
        .unwrap();
        for i in 0..n {
            a.add_session(
                PeerKey {
                    remote: ip(2 + i),
                    local: ip(1),
                    encap,
                },
                cfg(),
                now,
            )
            .unwrap();
            b.add_session(
                PeerKey {
                    remote: ip(1),
                    local: ip(2 + i),
                    encap,
                },
                cfg(),
                now,
            )
            .unwrap();
        }
        Pair {
            m: [a, b],
            now,
            ttl: 255,
            drops: Vec::new(),
        }
    }

    /// Runs with zero network delay until `d` has passed.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let mut moved = false;
            for i in 0..2 {
                self.m[i].handle_timeout(self.now);
                while let Some(t) = self.m[i].poll_transmit() {
                    moved = true;
                    assert!((49152..=65535).contains(&t.src_port));
                    assert_eq!(t.ttl, 255);
                    let dg = Datagram {
                        remote: t.peer.local,
                        local: t.peer.remote,
                        ttl: Some(self.ttl),
                        encap: t.peer.encap,
                        payload: t.bytes(),
                    };
                    if let Err(e) = self.m[1 - i].handle_datagram(self.now, &dg) {
                        self.drops.push(e);
                    }
                }
            }
            if moved {
                continue;
            }
            let next = self.m.iter_mut().filter_map(|m| m.poll_timeout()).min();
            match next {
                Some(t) if t <= end => self.now = self.now.max(t),
                _ => break,
            }
        }
        self.now = end;
    }

    fn up(&self, i: usize) -> usize {
        self.m[i]
            .statuses()
            .filter(|(_, s)| s.state == State::Up)
            .count()
    }
}

#[test]
fn a_thousand_sessions_come_up_through_shared_demux() {
    let mut p = Pair::new(1_000, Encap::SingleHop);
    p.run_for(Duration::from_secs(5));
    assert_eq!((p.up(0), p.up(1)), (1_000, 1_000));
    assert!(p.drops.is_empty(), "{:?}", &p.drops[..p.drops.len().min(5)]);
    let c = p.m[0].counters();
    assert!(c.sent > 0 && c.received > 0 && c.malformed + c.no_session + c.ttl + c.rejected == 0);
    // Every session saw exactly Down -> Init -> Up (or Down -> Up) once.
    let mut ups = 0;
    while let Some((_, _, bfd::session::Event::StateChange { to, .. })) = p.m[0].poll_event() {
        ups += usize::from(to == State::Up);
    }
    assert_eq!(ups, 1_000);
    // Source ports are spread over the pool and fixed per session.
    let ports: std::collections::HashSet<u16> = (0..50)
        .filter_map(|_| p.m[0].poll_transmit())
        .map(|t| t.src_port)
        .collect();
    assert!(ports.iter().all(|p| (49152..49168).contains(p)));
}

#[test]
fn each_encapsulation_is_its_own_session() {
    let now = Instant::now();
    let mut m = Manager::new(ManagerConfig::default()).unwrap();
    let k = |encap| PeerKey {
        remote: ip(2),
        local: ip(1),
        encap,
    };
    let a = m.add_session(k(Encap::SingleHop), cfg(), now).unwrap();
    let b = m.add_session(k(Encap::MultiHop), cfg(), now).unwrap();
    let c = m.add_session(k(Encap::Vxlan), cfg(), now).unwrap();
    assert!(a != b && b != c && a != c);
    assert!(
        m.add_session(k(Encap::SingleHop), cfg(), now).is_err(),
        "duplicate"
    );
    assert_eq!(m.lookup(&k(Encap::MultiHop)), Some(b));
    assert_eq!(Encap::MultiHop.dst_port(), 4784);
    assert_eq!(Encap::SingleHop.dst_port(), 3784);
    assert!(m.remove_session(b));
    assert!(!m.remove_session(b));
    assert_eq!(m.lookup(&k(Encap::MultiHop)), None);
    assert_eq!(m.len(), 2);
}

#[test]
fn gtsm_single_hop_requires_ttl_255() {
    let mut p = Pair::new(3, Encap::SingleHop);
    p.ttl = 254;
    p.run_for(Duration::from_secs(3));
    assert_eq!((p.up(0), p.up(1)), (0, 0));
    assert!(
        p.drops
            .iter()
            .all(|d| matches!(d, DropReason::Ttl { ttl: Some(254) }))
    );
    assert!(p.m[1].counters().ttl > 0);
    p.ttl = 255;
    p.run_for(Duration::from_secs(3));
    assert_eq!((p.up(0), p.up(1)), (3, 3));
}

#[test]
fn gtsm_multihop_uses_the_configured_minimum() {
    let now = Instant::now();
    let mut m = Manager::new(ManagerConfig {
        multihop_min_ttl: 250,
        ..Default::default()
    })
    .unwrap();
    let peer = PeerKey {
        remote: ip(2),
        local: ip(1),
        encap: Encap::MultiHop,
    };
    m.add_session(peer, cfg(), now).unwrap();
    let mut other = bfd::session::Session::new(cfg(), 99, now).unwrap();
    let mut buf = [0u8; 64];
    let n = other.poll_transmit_into(now, &mut buf).unwrap();
    let dg = |ttl| Datagram {
        remote: ip(2),
        local: ip(1),
        ttl: Some(ttl),
        encap: Encap::MultiHop,
        payload: &buf[..n],
    };
    assert!(matches!(
        m.handle_datagram(now, &dg(249)),
        Err(DropReason::Ttl { .. })
    ));
    assert!(m.handle_datagram(now, &dg(250)).is_ok());
}

#[test]
fn demux_rules_of_6_8_6() {
    let now = Instant::now();
    let mut m = Manager::new(ManagerConfig::default()).unwrap();
    let peer = PeerKey {
        remote: ip(2),
        local: ip(1),
        encap: Encap::SingleHop,
    };
    let discr = m.add_session(peer, cfg(), now).unwrap();
    let mut remote = bfd::session::Session::new(cfg(), 7, now).unwrap();
    let mut buf = [0u8; 64];
    let n = remote.poll_transmit_into(now, &mut buf).unwrap();
    // Your Discriminator 0 from an unknown address: no session.
    let d = Datagram {
        remote: ip(3),
        local: ip(1),
        ttl: Some(255),
        encap: Encap::SingleHop,
        payload: &buf[..n],
    };
    assert!(matches!(
        m.handle_datagram(now, &d),
        Err(DropReason::UnknownPeer(_))
    ));
    // From the right address: delivered by address.
    let d = Datagram { remote: ip(2), ..d };
    assert_eq!(m.handle_datagram(now, &d), Ok(discr));
    // A nonzero Your Discriminator that names nobody.
    let mut wrong = buf;
    wrong[8..12].copy_from_slice(&12345u32.to_be_bytes());
    wrong[1] = 0xc0; // Up, so Your Discriminator must be nonzero anyway
    let d2 = Datagram {
        payload: &wrong[..n],
        ..d
    };
    assert_eq!(
        m.handle_datagram(now, &d2),
        Err(DropReason::UnknownDiscriminator(12345))
    );
    // The right discriminator from the wrong address.
    let mut spoof = wrong;
    spoof[8..12].copy_from_slice(&discr.to_be_bytes());
    let d3 = Datagram {
        remote: ip(9),
        payload: &spoof[..n],
        ..d
    };
    assert_eq!(
        m.handle_datagram(now, &d3),
        Err(DropReason::PeerMismatch { discr })
    );
    // Garbage.
    let d4 = Datagram {
        payload: &buf[..5],
        ..d
    };
    assert!(matches!(
        m.handle_datagram(now, &d4),
        Err(DropReason::Malformed(_))
    ));
    let c = m.counters();
    assert_eq!(
        (c.received, c.no_session, c.rejected, c.malformed),
        (1, 2, 1, 1)
    );
}

#[test]
fn admin_down_and_params_through_the_manager() {
    let mut p = Pair::new(10, Encap::Vxlan);
    p.run_for(Duration::from_secs(4));
    assert_eq!(p.up(1), 10);
    let (discr, _) = {
        let peer = PeerKey {
            remote: ip(2),
            local: ip(1),
            encap: Encap::Vxlan,
        };
        (p.m[0].lookup(&peer).unwrap(), peer)
    };
    p.m[0]
        .set_params(
            discr,
            p.now,
            Duration::from_millis(300),
            Duration::from_millis(300),
            3,
        )
        .unwrap();
    p.run_for(Duration::from_secs(2));
    assert_eq!(
        p.m[0].session(discr).unwrap().status().tx_interval,
        Duration::from_millis(300)
    );
    let now = p.now;
    p.m[0].set_admin_down(discr, now, Diagnostic::AdministrativelyDown);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.up(1), 9);
    p.m[0].set_admin_up(discr, p.now);
    p.run_for(Duration::from_secs(4));
    assert_eq!(p.up(1), 10);
    assert!(
        Manager::new(ManagerConfig {
            src_port_base: 3784,
            ..Default::default()
        })
        .is_err()
    );
}

#[test]
fn first_packets_of_a_burst_of_sessions_are_spread() {
    let now = Instant::now();
    let spread = Duration::from_millis(250);
    let mut m = Manager::new(ManagerConfig {
        initial_spread: spread,
        ..Default::default()
    })
    .unwrap();
    for i in 0..1_000 {
        m.add_session(
            PeerKey {
                remote: ip(2 + i),
                local: ip(1),
                encap: Encap::SingleHop,
            },
            cfg(),
            now,
        )
        .unwrap();
    }
    assert_eq!(m.pending_transmits(), 0, "nothing goes out at creation");
    let mut per_slot = [0usize; 5]; // 50 ms slots
    let mut t = now;
    while t <= now + spread {
        m.handle_timeout(t);
        while m.poll_transmit().is_some() {
            per_slot[((t - now).as_millis() / 50).min(4) as usize] += 1;
        }
        t += Duration::from_millis(1);
    }
    assert_eq!(per_slot.iter().sum::<usize>(), 1_000);
    assert!(
        per_slot.iter().all(|&n| (120..=280).contains(&n)),
        "{per_slot:?}"
    );
}

#[test]
fn aggregates_for_metrics_follow_state_changes_without_a_walk() {
    let mut p = Pair::new(10, Encap::SingleHop);
    let s = p.m[0].state_counts();
    assert_eq!((s.down, s.up, s.total()), (10, 0, 10));
    p.run_for(Duration::from_secs(5));
    let s = p.m[0].state_counts();
    assert_eq!((s.down, s.init, s.up), (0, 0, 10));
    let c = p.m[0].counters();
    assert_eq!((c.flaps, c.detections), (0, 0));
    assert!(c.state_changes >= 10);
    // A virtual clock serves every deadline on time: all lag in the first bucket.
    let lag = p.m[0].lag();
    assert!(lag.count() > 0);
    assert_eq!(lag.counts[0], lag.count());

    // Silence from B: A's sessions all detect the failure (diag 1).
    let end = p.now + Duration::from_secs(2);
    while let Some(t) = p.m[0].poll_timeout().filter(|t| *t <= end) {
        p.m[0].handle_timeout(t);
        while p.m[0].poll_transmit().is_some() {}
    }
    let s = p.m[0].state_counts();
    assert_eq!((s.down, s.up), (10, 0));
    let c = p.m[0].counters();
    assert_eq!((c.flaps, c.detections), (10, 10));

    // Removing a session takes it out of the state counts; counters stay.
    let (d, _) = p.m[0]
        .statuses_by_discr()
        .map(|(d, k, _)| (d, k))
        .next()
        .unwrap();
    assert!(p.m[0].remove_session(d));
    assert_eq!(p.m[0].state_counts().total(), 9);
    assert_eq!(p.m[0].counters().flaps, 10);
}

#[test]
fn a_retired_session_signals_admin_down_then_goes() {
    let mut p = Pair::new(1, Encap::SingleHop);
    p.run_for(Duration::from_secs(5));
    assert_eq!((p.up(0), p.up(1)), (1, 1));
    let (d, key) = p.m[0]
        .statuses_by_discr()
        .map(|(d, k, _)| (d, k))
        .next()
        .unwrap();
    let now = p.now;
    assert!(p.m[0].retire_session(d, now, Diagnostic::AdministrativelyDown));
    assert_eq!(p.m[0].retiring(), 1);
    // The addresses are free at once: a new session for them is another one.
    assert_eq!(p.m[0].lookup(&key), None);
    let fresh = p.m[0].add_session(key, cfg(), now).unwrap();
    assert_ne!(fresh, d);
    assert!(p.m[0].remove_session(fresh));
    // B hears AdminDown: Down with diag 3, not a detection.
    p.run_for(Duration::from_millis(500));
    let (_, s) = p.m[1].statuses().next().unwrap();
    assert_eq!(
        (s.state, s.local_diag, s.remote_diag),
        (
            State::Down,
            Diagnostic::NeighborSignaledSessionDown,
            Diagnostic::AdministrativelyDown
        )
    );
    // After a Detection Time of signalling (3 x 1 s at the slow rate) it is gone.
    p.run_for(Duration::from_secs(4));
    assert!(p.m[0].session(d).is_none());
    assert_eq!((p.m[0].retiring(), p.m[0].len()), (0, 0));
    assert_eq!(p.m[0].state_counts().total(), 0);
    assert_eq!(p.m[1].counters().detections, 0);
}
