//! The socket driver on loopback (127.0.0.0/8, no root): real UDP 3784/4784
//! sockets, recvmmsg/sendmmsg, GTSM and fixed source ports. Addresses are
//! derived from the process id so concurrent runs do not collide.

use bfd::config::SessionConfig;
use bfd::manager::{Encap, Manager, ManagerConfig, PeerKey};
use bfd::packet::{Repr, State};
use bfd::udp::{Driver, DriverConfig};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

/// 127.P.Q.host with P.Q from the pid and a per-test salt.
fn addr(salt: u8, host: u8) -> Ipv4Addr {
    let pid = std::process::id();
    Ipv4Addr::new(127, (pid >> 8) as u8 ^ salt, pid as u8, host)
}

fn cfg() -> SessionConfig {
    SessionConfig {
        desired_min_tx: Duration::from_millis(50),
        required_min_rx: Duration::from_millis(50),
        ..Default::default()
    }
}

fn driver(local: Ipv4Addr, peer: Ipv4Addr, seed: u64, port_base: u16) -> Driver {
    let mut m = Manager::new(ManagerConfig {
        seed,
        src_port_base: port_base,
        src_port_count: 4,
        ..Default::default()
    })
    .unwrap();
    let now = Instant::now();
    for encap in [Encap::SingleHop, Encap::MultiHop] {
        m.add_session(
            PeerKey {
                remote: IpAddr::V4(peer),
                local: IpAddr::V4(local),
                encap,
            },
            cfg(),
            now,
        )
        .unwrap();
    }
    Driver::bind(m, DriverConfig::new(local)).unwrap()
}

#[test]
fn two_drivers_bring_sessions_up_over_loopback() {
    let (a_ip, b_ip) = (addr(0x11, 1), addr(0x11, 2));
    let mut a = driver(a_ip, b_ip, 1, 50000);
    let mut b = driver(b_ip, a_ip, 2, 50100);
    let until = Instant::now() + Duration::from_secs(4);
    let tb = std::thread::spawn(move || {
        b.run_until(until).unwrap();
        b
    });
    a.run_until(until).unwrap();
    let b = tb.join().unwrap();
    for d in [&a, &b] {
        let up = d
            .manager()
            .statuses()
            .filter(|(_, s)| s.state == State::Up)
            .count();
        assert_eq!(up, 2, "{:?}", d.manager().counters());
        let c = d.manager().counters();
        assert_eq!(c.malformed + c.no_session + c.ttl + c.rejected, 0, "{c:?}");
        let io = d.io_stats();
        assert!(
            io.recv_packets > 20 && io.send_packets > 20 && io.send_errors == 0,
            "{io:?}"
        );
        for (_, s) in d.manager().statuses() {
            assert_eq!(s.tx_interval, Duration::from_millis(50));
        }
    }
    eprintln!("driver A io: {:?}", a.io_stats());
}

#[test]
fn gtsm_drops_low_ttl_and_packets_leave_from_the_session_port() {
    let (a_ip, fake_ip) = (addr(0x22, 1), addr(0x22, 2));
    let mut m = Manager::new(ManagerConfig {
        seed: 3,
        src_port_base: 50200,
        src_port_count: 2,
        initial_spread: Duration::ZERO,
        ..Default::default()
    })
    .unwrap();
    let peer = PeerKey {
        remote: IpAddr::V4(fake_ip),
        local: IpAddr::V4(a_ip),
        encap: Encap::SingleHop,
    };
    let discr = m.add_session(peer, cfg(), Instant::now()).unwrap();
    let mut a = Driver::bind(m, DriverConfig::new(a_ip)).unwrap();
    // A plain socket plays the remote: it listens where A sends (port 3784).
    let fake = UdpSocket::bind((fake_ip, 3784)).unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    a.run_until(Instant::now() + Duration::from_millis(100))
        .unwrap();
    let mut buf = [0u8; 128];
    let (n, from) = fake.recv_from(&mut buf).unwrap();
    let first = Repr::parse(&buf[..n]).unwrap();
    assert_eq!(first.my_discriminator, discr);
    assert_eq!(from.ip(), IpAddr::V4(a_ip));
    assert!(
        (50200..50202).contains(&from.port()),
        "RFC 5881 §4 source port {}",
        from.port()
    );
    // Our reply with TTL 64 (as a host two hops away would arrive) is dropped...
    let mut reply = first;
    reply.my_discriminator = 77;
    reply.your_discriminator = discr;
    reply.state = State::Down;
    let mut out = [0u8; 64];
    let len = reply.emit(&mut out).unwrap();
    let sender = UdpSocket::bind((fake_ip, 0)).unwrap();
    sender.set_ttl(64).unwrap();
    sender.send_to(&out[..len], (a_ip, 3784)).unwrap();
    a.run_until(Instant::now() + Duration::from_millis(100))
        .unwrap();
    assert_eq!(a.manager().counters().ttl, 1);
    assert_eq!(a.manager().session(discr).unwrap().state(), State::Down);
    // ... and accepted with TTL 255.
    sender.set_ttl(255).unwrap();
    sender.send_to(&out[..len], (a_ip, 3784)).unwrap();
    a.run_until(Instant::now() + Duration::from_millis(100))
        .unwrap();
    assert_eq!(a.manager().counters().received, 1);
    assert_eq!(a.manager().session(discr).unwrap().state(), State::Init);
    // Every later packet keeps the same source port.
    let mut ports = std::collections::HashSet::new();
    a.run_until(Instant::now() + Duration::from_millis(2_500))
        .unwrap();
    fake.set_nonblocking(true).unwrap();
    while let Ok((_, f)) = fake.recv_from(&mut buf) {
        ports.insert(f.port());
    }
    ports.insert(from.port());
    assert_eq!(ports.len(), 1, "{ports:?}");
}

/// A driver on `local` with two source ports from `port_base`.
fn two_port_driver(local: Ipv4Addr, seed: u64, port_base: u16) -> Driver {
    let m = Manager::new(ManagerConfig {
        seed,
        src_port_base: port_base,
        src_port_count: 2,
        ..Default::default()
    })
    .unwrap();
    Driver::bind(m, DriverConfig::new(local)).unwrap()
}

#[test]
fn a_daemon_drives_the_loop_through_a_handle() {
    use bfd::control;
    use bfd::packet::Diagnostic;
    use bfd::session::Event;
    let (a_ip, b_ip) = (addr(0x33, 1), addr(0x33, 2));
    let spawn = |local: Ipv4Addr, seed: u64, port_base: u16| {
        let mut d = two_port_driver(local, seed, port_base);
        let (handle, ctl) = control::channel().unwrap();
        let (etx, erx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            d.run(&ctl, &etx).unwrap();
            d.into_manager()
        });
        (handle, erx, t)
    };
    let (ha, ea, ta) = spawn(a_ip, 1, 50300);
    let (hb, _eb, tb) = spawn(b_ip, 2, 50400);
    // Sessions are added to loops that are already running (and idle).
    let da = ha
        .add_session(
            PeerKey {
                remote: IpAddr::V4(b_ip),
                local: IpAddr::V4(a_ip),
                encap: Encap::SingleHop,
            },
            cfg(),
        )
        .unwrap();
    hb.add_session(
        PeerKey {
            remote: IpAddr::V4(a_ip),
            local: IpAddr::V4(b_ip),
            encap: Encap::SingleHop,
        },
        cfg(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut up = false;
    while !up && Instant::now() < deadline {
        if let Ok((d, _, Event::StateChange { to, .. })) =
            ea.recv_timeout(Duration::from_millis(100))
        {
            up = d == da && to == State::Up;
        }
    }
    assert!(up, "A's session came Up");
    let st = ha.statuses().unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].0, da);
    ha.set_params(da, Duration::from_millis(80), Duration::from_millis(80), 3)
        .unwrap();
    assert!(
        ha.set_params(da, Duration::ZERO, Duration::from_millis(80), 3)
            .is_err()
    );
    hb.set_admin_down(
        hb.statuses().unwrap()[0].0,
        Diagnostic::AdministrativelyDown,
    )
    .unwrap();
    let down = std::iter::from_fn(|| ea.recv_timeout(Duration::from_secs(3)).ok()).find_map(
        |(
            _,
            _,
            Event::StateChange {
                to,
                diag,
                remote_diag,
                ..
            },
        )| (to == State::Down).then_some((diag, remote_diag)),
    );
    assert_eq!(
        down,
        Some((
            Diagnostic::NeighborSignaledSessionDown,
            Diagnostic::AdministrativelyDown
        ))
    );
    let c = ha.counters().unwrap();
    assert!(c.received > 0 && c.sent > 0, "{c:?}");
    assert!(ha.remove_session(da).unwrap());
    ha.stop().unwrap();
    drop(hb); // dropping every handle also ends a loop
    assert!(ta.join().unwrap().is_empty());
    assert_eq!(tb.join().unwrap().len(), 1);
    assert!(ha.statuses().is_err(), "the loop is gone");
}

#[test]
fn an_async_task_drives_the_loop_and_streams_events() {
    use bfd::control;
    use bfd::session::Event;
    use futures::StreamExt;
    let (a_ip, b_ip) = (addr(0x44, 1), addr(0x44, 2));
    let spawn = |local: Ipv4Addr, seed: u64, port_base: u16| {
        let mut d = two_port_driver(local, seed, port_base);
        let (handle, ctl) = control::channel().unwrap();
        let (etx, erx) = futures::channel::mpsc::unbounded();
        let t = std::thread::spawn(move || d.run(&ctl, &etx).unwrap());
        (handle, erx, t)
    };
    let (ha, mut ea, ta) = spawn(a_ip, 3, 50500);
    let (hb, _eb, tb) = spawn(b_ip, 4, 50600);
    let key = |local, remote| PeerKey {
        remote: IpAddr::V4(remote),
        local: IpAddr::V4(local),
        encap: Encap::SingleHop,
    };
    futures::executor::block_on(async {
        let da = ha
            .add_session_async(key(a_ip, b_ip), cfg())
            .await
            .unwrap()
            .unwrap();
        hb.add_session_async(key(b_ip, a_ip), cfg())
            .await
            .unwrap()
            .unwrap();
        // The stream yields A's changes until Up.
        loop {
            let (d, _, Event::StateChange { to, .. }) = ea.next().await.unwrap();
            if d == da && to == State::Up {
                break;
            }
        }
        let s = ha.snapshot_async().await.unwrap();
        assert_eq!((s.states.up, s.states.total()), (1, 1));
        assert!(s.counters.received > 0 && s.io.send_packets > 0, "{s:?}");
        assert!(s.lag.count() > 0);
        let st = ha.statuses_async().await.unwrap();
        assert_eq!(st[0].2.state, State::Up);
        assert!(ha.remove_session_async(da).await.unwrap());
    });
    ha.stop().unwrap();
    hb.stop().unwrap();
    ta.join().unwrap();
    tb.join().unwrap();
    assert!(
        futures::executor::block_on(ha.snapshot_async()).is_err(),
        "a stopped loop answers Stopped"
    );
}
