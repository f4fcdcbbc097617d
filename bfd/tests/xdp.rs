//! The XDP path (bfd::xdp) on real veths: two drivers in two namespaces,
//! each with the steering program on its veth end and AF_XDP sockets, run
//! hundreds of single-hop and multihop sessions; the kernel's UDP layer must
//! see almost none of their packets. Also: the program leaves with its
//! driver, damaged frames are counted and dropped, and tshark reads what the
//! XDP path sends as clean BFD.
#![cfg(feature = "root-tests")]

mod common;

use bfd::packet::State;
use bfd::udp::{Driver, DriverConfig, IoStats};
use bfd::xdp::XdpConfig;
use common::NsPair;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

struct Outcome {
    up: usize,
    flaps: u64,
    io: IoStats,
    counters: bfd::manager::Counters,
    mode: &'static str,
}

fn side(
    ns: String,
    dev: String,
    peers: Vec<(Ipv4Addr, Ipv4Addr)>,
    seed: u64,
    secs: u64,
) -> Outcome {
    common::enter(&ns);
    let m = common::pair_manager(&peers, seed, 50);
    let mut d = Driver::bind(m, DriverConfig::new(Ipv4Addr::UNSPECIFIED)).unwrap();
    d.attach_xdp(XdpConfig::new(&dev)).unwrap();
    d.run_until(Instant::now() + Duration::from_secs(secs))
        .unwrap();
    let mode = d.xdp().unwrap().mode();
    let m = d.manager();
    Outcome {
        up: m.statuses().filter(|(_, s)| s.state == State::Up).count(),
        flaps: m.statuses().map(|(_, s)| s.flaps).sum(),
        io: d.io_stats(),
        counters: m.counters(),
        mode,
    }
}

/// `Udp: InDatagrams` of namespace `ns`: what reached the kernel's UDP layer.
fn udp_in_datagrams(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (head, vals) = (udp.next().unwrap(), udp.next().unwrap());
    head.split_whitespace()
        .zip(vals.split_whitespace())
        .find(|(k, _)| *k == "InDatagrams")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap()
}

fn xdp_attached(ns: &str, dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "link", "show", "dev", dev])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn five_hundred_sessions_per_side_bypass_the_kernel_udp_layer() {
    const HOSTS: u8 = 250;
    let ns = NsPair::new("bfx", "198.18.0.1/24", "198.18.0.2/24");
    full_checksums(&ns);
    let (a_peers, b_peers) = common::one_to_many(&ns, HOSTS);
    let secs = 8;
    let udp_before = (udp_in_datagrams(&ns.a), udp_in_datagrams(&ns.b));
    let (na, nb, da, db) = (
        ns.a.clone(),
        ns.b.clone(),
        ns.dev_a.clone(),
        ns.dev_b.clone(),
    );
    let ta = std::thread::spawn(move || side(na, da, a_peers, 1, secs));
    let tb = std::thread::spawn(move || side(nb, db, b_peers, 2, secs));
    let (a, b) = (ta.join().unwrap(), tb.join().unwrap());
    let udp_after = (udp_in_datagrams(&ns.a), udp_in_datagrams(&ns.b));
    let sessions = 2 * usize::from(HOSTS);
    for (name, o, kernel_udp) in [
        ("A", &a, udp_after.0 - udp_before.0),
        ("B", &b, udp_after.1 - udp_before.1),
    ] {
        eprintln!(
            "{name} ({} XDP): {} up of {sessions}, flaps {}, {:?}, {:?}; kernel UDP datagrams {kernel_udp}",
            o.mode, o.up, o.flaps, o.io, o.counters,
        );
        assert_eq!(o.up, sessions, "{name}");
        assert_eq!(o.flaps, 0, "{name}: a session went down");
        assert_eq!(
            o.counters.malformed + o.counters.no_session + o.counters.ttl + o.counters.rejected,
            0,
            "{name}"
        );
        assert_eq!(o.io.send_errors, 0, "{name}");
        assert_eq!(o.io.xdp.rejected, 0, "{name}");
        // Nearly everything crossed on the XDP path both ways: the kernel
        // sockets carried only the first packets (before ARP resolved) and
        // one per remote every 5 s.
        assert!(o.io.xdp.received * 20 > o.io.recv_packets * 19, "{name}");
        assert!(o.io.xdp.sent * 20 > o.io.send_packets * 19, "{name}");
        assert!(
            kernel_udp * 20 < o.io.recv_packets,
            "{name}: {kernel_udp} via the kernel"
        );
    }
    // The programs left with their drivers.
    assert!(!xdp_attached(&ns.a, &ns.dev_a));
    assert!(!xdp_attached(&ns.b, &ns.dev_b));
}

/// Turns off TX checksum offload on both veth ends: a veth hands a
/// locally sent UDP datagram on with only the pseudo-header sum in its
/// checksum (CHECKSUM_PARTIAL), which the kernel's UDP layer trusts but an
/// XDP reader sees as a wrong checksum. Real NICs fill it in on the wire.
fn full_checksums(ns: &NsPair) {
    for (n, d) in [(&ns.a, &ns.dev_a), (&ns.b, &ns.dev_b)] {
        common::run(&["ip", "netns", "exec", n, "ethtool", "-K", d, "tx", "off"]);
    }
}

/// Runs a driver in `ns` for `secs` (with XDP on `xdp` if given) with one
/// single-hop and one multihop session per pair.
fn run_side(
    ns: String,
    xdp: Option<String>,
    peers: Vec<(Ipv4Addr, Ipv4Addr)>,
    seed: u64,
    ms: u64,
    secs: f64,
) -> Driver {
    common::enter(&ns);
    let m = common::pair_manager(&peers, seed, ms);
    let mut d = Driver::bind(m, DriverConfig::new(Ipv4Addr::UNSPECIFIED)).unwrap();
    if let Some(dev) = xdp {
        d.attach_xdp(XdpConfig::new(&dev)).unwrap();
    }
    d.run_until(Instant::now() + Duration::from_secs_f64(secs))
        .unwrap();
    d
}

fn all_up(d: &Driver) -> bool {
    d.manager()
        .statuses()
        .all(|(_, s)| s.state == State::Up && s.flaps == 0)
}

#[test]
fn an_xdp_side_and_a_kernel_socket_side_interoperate_and_tshark_reads_our_frames() {
    let ns = NsPair::new("bfk", "198.18.0.1/24", "198.18.0.2/24");
    full_checksums(&ns);
    let (a_peers, b_peers) = common::one_to_many(&ns, 4);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("b.pcap");
    // B's kernel sees every frame A's XDP path sends (taps run before the
    // IP layer); A's own device does not show them (AF_XDP skips its taps).
    let cap = common::Capture::start(
        &ns.b,
        &ns.dev_b,
        &pcap,
        &["udp", "and", "src", "198.18.0.1"],
    );
    let (na, nb, da) = (ns.a.clone(), ns.b.clone(), ns.dev_a.clone());
    let ta = std::thread::spawn(move || run_side(na, Some(da), a_peers, 1, 50, 4.0));
    let tb = std::thread::spawn(move || run_side(nb, None, b_peers, 2, 50, 4.0));
    let (a, b) = (ta.join().unwrap(), tb.join().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    drop(cap);
    let (ia, ib) = (a.io_stats(), b.io_stats());
    eprintln!("A (XDP) {ia:?}\nB (sockets) {ib:?}");
    assert!(all_up(&a) && all_up(&b), "A {ia:?} B {ib:?}");
    assert_eq!(a.manager().len(), 8);
    assert_eq!(ia.xdp.rejected, 0);
    // B's sockets took what A's XDP path built: checksums and all.
    assert!(ia.xdp.sent > 200 && ia.xdp.received > 200, "{ia:?}");
    assert_eq!(b.manager().counters().malformed, 0);
    let text = common::tshark_fields(
        &pcap,
        &common::TSHARK_CHECKED_BFD,
        &[
            "bfd.version",
            "_ws.expert.severity",
            "_ws.malformed",
            "ip.checksum.status",
            "udp.checksum.status",
            "ip.ttl",
            "udp.srcport",
            "udp.dstport",
        ],
    );
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert!(rows.len() > 200, "{} frames captured", rows.len());
    for row in &rows {
        let line = row.join("|");
        assert_eq!(row[0], "1", "not BFD: {line}");
        assert!(row[1].is_empty(), "expert info: {line}");
        assert!(row[2].is_empty(), "malformed: {line}");
        assert_eq!((row[3], row[4]), ("1", "1"), "checksums: {line}");
        assert_eq!(row[5], "255", "GTSM: {line}");
        let sport: u16 = row[6].parse().unwrap();
        assert!(sport >= 49152, "source port {line}");
        assert!(row[7] == "3784" || row[7] == "4784", "{line}");
    }
}

#[test]
fn damaged_frames_are_counted_and_dropped_and_sessions_stay_up() {
    let ns = NsPair::new("bfd", "198.18.0.1/24", "198.18.0.2/24");
    full_checksums(&ns);
    let (a_ip, b_ip) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    let b_mac = mac_of(&ns.b, &ns.dev_b);
    let good = |dst: Ipv4Addr| {
        let r = bfd::wire::UdpIpv4Repr {
            src_mac: [2, 0, 0, 0, 0, 0x55],
            dst_mac: b_mac,
            src_ip: a_ip,
            dst_ip: dst,
            ttl: 255,
            src_port: 49999,
            dst_port: 3784,
        };
        let mut buf = vec![0u8; 128];
        let n = r
            .emit(
                &[
                    0x20, 0x40, 3, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
                true,
                &mut buf,
            )
            .unwrap();
        buf.truncate(n);
        buf
    };
    let mut bad = Vec::new();
    let mut f = good(b_ip);
    *f.last_mut().unwrap() ^= 0xff; // UDP checksum
    bad.push(f);
    let mut f = good(b_ip);
    f[14 + 10] ^= 0xff; // IPv4 header checksum
    bad.push(f);
    let mut f = good(b_ip);
    f[14 + 20 + 4] = 0x40; // UDP length past the datagram
    bad.push(f);
    let mut f = good(b_ip);
    f[14 + 3] -= 4; // IPv4 total length shorter than the UDP length
    bad.push(f);
    // A good frame to an address that is not B's: the program leaves it to
    // the kernel (not counted by us at all).
    let stray = good(Ipv4Addr::new(198, 18, 0, 99));
    let (na, nb, da, db) = (
        ns.a.clone(),
        ns.b.clone(),
        ns.dev_a.clone(),
        ns.dev_b.clone(),
    );
    let ta = std::thread::spawn(move || run_side(na, Some(da), vec![(a_ip, b_ip)], 1, 50, 3.0));
    let tb = std::thread::spawn(move || run_side(nb, Some(db), vec![(b_ip, a_ip)], 2, 50, 3.0));
    std::thread::sleep(Duration::from_millis(1500));
    let n_bad = bad.len() as u64;
    let mut frames = bad;
    frames.push(stray);
    let nsa = ns.a.clone();
    let dev = ns.dev_a.clone();
    std::thread::spawn(move || common::inject(&nsa, &dev, &frames))
        .join()
        .unwrap();
    let (a, b) = (ta.join().unwrap(), tb.join().unwrap());
    let ib = b.io_stats();
    eprintln!("B {ib:?} {:?}", b.manager().counters());
    assert!(all_up(&a) && all_up(&b));
    assert_eq!(ib.xdp.rejected, n_bad, "{ib:?}");
    assert_eq!(b.manager().counters().malformed, 0);
    assert_eq!(b.manager().counters().no_session, 0);
}

fn mac_of(ns: &str, dev: &str) -> [u8; 6] {
    let out = Command::new("ip")
        .args(["-n", ns, "-br", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    bfd::xdp::nexthop::parse_mac(text.split_whitespace().nth(2).unwrap()).unwrap()
}

/// `/sys/class/net/<dev>/statistics/<counter>` inside `ns`.
fn link_counter(ns: &str, dev: &str, counter: &str) -> u64 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/statistics/{counter}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A turn that runs late has more to send than the transmit ring holds
/// (at 50,000 sessions a 50 ms late turn has 9,000 packets, the ring
/// 4,096): the port sends what it queued and goes on instead of dropping
/// the rest. Here 1,000 frames through a 256-frame ring (the fewest a
/// queue gets), in one flush.
#[test]
fn a_burst_larger_than_the_transmit_ring_is_sent_whole() {
    const BURST: u64 = 1000;
    let ns = NsPair::new("bft", "198.18.0.1/24", "198.18.0.2/24");
    let (a_ip, b_ip) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    let b_mac = mac_of(&ns.b, &ns.dev_b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let b_ip_s = b_ip.to_string();
    common::run(&[
        "ip",
        "-n",
        &ns.a,
        "neigh",
        "replace",
        &b_ip_s,
        "lladdr",
        &b_mac,
        "dev",
        &ns.dev_a,
        "nud",
        "permanent",
    ]);
    let rx_before = link_counter(&ns.b, &ns.dev_b, "rx_packets");
    let (na, da) = (ns.a.clone(), ns.dev_a.clone());
    let stats = std::thread::spawn(move || {
        common::enter(&na);
        let mut config = XdpConfig::new(&da);
        config.tx_frames = bfd::xdp::MIN_TX_FRAMES;
        let mut port = bfd::xdp::XdpPort::attach(config).unwrap();
        let mut t = bfd::manager::Transmit {
            discr: 1,
            peer: bfd::manager::PeerKey {
                remote: b_ip.into(),
                local: a_ip.into(),
                encap: bfd::manager::Encap::MultiHop,
            },
            src_port: 49152,
            ttl: 255,
            payload: [0; bfd::packet::MAX_LEN],
            len: 24,
        };
        t.payload[..4].copy_from_slice(&[0x20, 0x40, 3, 24]);
        let now = Instant::now();
        // The first packet to a remote goes through the kernel (it keeps
        // the neighbour entry confirmed); every later one is a frame.
        assert!(!port.queue(&t, now));
        for _ in 0..BURST {
            assert!(port.queue(&t, now));
        }
        port.flush();
        port.stats()
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let received = link_counter(&ns.b, &ns.dev_b, "rx_packets") - rx_before;
    eprintln!("{stats:?}; B received {received}");
    assert_eq!(stats.sent, BURST, "{stats:?}");
    assert_eq!(stats.tx_full, 0, "{stats:?}");
    assert!(
        stats.doorbells >= BURST / u64::from(bfd::xdp::MIN_TX_FRAMES),
        "{stats:?}"
    );
    assert!(received >= BURST, "B received {received} of {BURST}");
}
