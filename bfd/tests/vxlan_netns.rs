//! BFD inside VXLAN through kernel VXLAN devices, between two namespaces:
//! the OVS convention in VNI 0, and RFC 8971 in a Management VNI (Bridgehead
//! to Bridgehead: no other implementation here speaks RFC 8971). tshark
//! checks the wire format on the underlay veth.
#![cfg(feature = "root-tests")]

mod common;

use bfd::config::SessionConfig;
use bfd::manager::{Encap, Manager, ManagerConfig, PeerKey};
use bfd::packet::{Diagnostic, State};
use bfd::udp::{Driver, DriverConfig, IoStats};
use bfd::vxlan::VxlanFlavor;
use common::{Capture, NsPair, add_addr, tshark_fields, vxlan_device};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A capture process, killed and reaped by PID on drop.
fn side(
    ns: String,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    seed: u64,
) -> (usize, bfd::manager::Counters) {
    common::enter(&ns);
    let (mut d, _) = common::vxlan_driver(local, remote, seed, "vx0", VxlanFlavor::OvsVtep);
    d.run_until(Instant::now() + Duration::from_secs(4))
        .unwrap();
    let up = d
        .manager()
        .statuses()
        .filter(|(_, s)| s.state == State::Up)
        .count();
    (up, d.manager().counters())
}

#[test]
fn bfd_in_vni_0_between_two_kernel_vteps() {
    let ns = NsPair::new("bfx", "198.18.0.1/24", "198.18.0.2/24");
    let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    vxlan_device(&ns.a, &ns.dev_a, "vx0", 0, a, b);
    vxlan_device(&ns.b, &ns.dev_b, "vx0", 0, b, a);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("vx.pcap");
    let cap = Capture::start(&ns.b, &ns.dev_b, &pcap, &["udp", "port", "4789"]);
    let (na, nb) = (ns.a.clone(), ns.b.clone());
    let ta = std::thread::spawn(move || side(na, a, b, 1));
    let tb = std::thread::spawn(move || side(nb, b, a, 2));
    let ((up_a, ca), (up_b, cb)) = (ta.join().unwrap(), tb.join().unwrap());
    drop(cap);
    assert_eq!((up_a, up_b), (1, 1), "{ca:?} {cb:?}");
    assert_eq!(
        ca.malformed + ca.no_session + ca.ttl + ca.rejected,
        0,
        "{ca:?}"
    );

    let text = tshark_fields(
        &pcap,
        &[],
        &[
            "vxlan.vni",
            "eth.dst",
            "ip.src",
            "ip.dst",
            "ip.ttl",
            "udp.dstport",
            "bfd.sta",
            "_ws.malformed",
        ],
    );
    // The kernel also sends IPv6 neighbour discovery on vx0: look at BFD rows.
    let rows: Vec<&str> = text
        .lines()
        .filter(|r| r.split('|').nth(6).is_some_and(|s| !s.is_empty()))
        .collect();
    assert!(rows.len() > 20, "{text}");
    assert!(
        text.lines().all(|r| r.split('|').nth(7) == Some("")),
        "malformed: {text}"
    );
    for r in &rows {
        let f: Vec<&str> = r.split('|').collect();
        assert_eq!(f[0], "0", "VNI 0: {r}");
        // Outer then inner values, comma-separated by tshark.
        assert!(f[1].ends_with("00:23:20:00:00:01"), "inner dst MAC: {r}");
        assert!(
            f[2].ends_with(",169.254.1.0") && f[3].ends_with(",169.254.1.1"),
            "inner IPs: {r}"
        );
        assert!(f[4].ends_with(",255"), "inner TTL: {r}");
        assert!(f[5].ends_with(",3784"), "inner port: {r}");
        assert!(f[7].is_empty(), "malformed: {r}");
    }
    assert!(
        rows.iter().any(|r| r.split('|').nth(6) == Some("0x03")),
        "some packets in Up: {text}"
    );
}

/// What one RFC 8971 side saw.
#[derive(Debug)]
struct Seen {
    /// When the session first came Up.
    up_at: Option<Instant>,
    /// When it went Down after that, and why.
    down: Option<(Instant, Diagnostic)>,
    counters: bfd::manager::Counters,
    io: IoStats,
}

/// Runs one RFC 8971 session in `ns` until `until`, in 5 ms slices so the
/// state changes are timed closely.
fn rfc8971_side(ns: String, local: Ipv4Addr, remote: Ipv4Addr, seed: u64, until: Instant) -> Seen {
    common::enter(&ns);
    let flavor = VxlanFlavor::Rfc8971 {
        management_vni: MGMT_VNI,
    };
    let (mut d, _) = common::vxlan_driver(local, remote, seed, "vx0", flavor);
    let mut seen = Seen {
        up_at: None,
        down: None,
        counters: Default::default(),
        io: Default::default(),
    };
    while Instant::now() < until {
        d.run_until(Instant::now() + Duration::from_millis(5))
            .unwrap();
        let (_, s) = d.manager().statuses().next().unwrap();
        match (s.state, seen.up_at, seen.down) {
            (State::Up, None, _) => seen.up_at = Some(Instant::now()),
            (State::Down, Some(_), None) => seen.down = Some((Instant::now(), s.local_diag)),
            _ => {}
        }
    }
    seen.counters = d.manager().counters();
    seen.io = d.io_stats();
    seen
}

const MGMT_VNI: u32 = 777;

/// RFC 8971 inner frames from `src` that B must refuse: `bad` of them fail
/// the MAC or 127/8 checks (B's `vxlan_rejected`), `ttl` fail GTSM (B's
/// manager `ttl` counter).
fn bad_frames(src: Ipv4Addr) -> (Vec<Vec<u8>>, u64, u64) {
    let bfd = {
        let r = bfd::packet::Repr {
            diag: Diagnostic::None,
            state: State::Down,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x5555,
            your_discriminator: 0,
            desired_min_tx: 1_000_000,
            required_min_rx: 1_000_000,
            required_min_echo_rx: 0,
            auth: None,
        };
        let mut b = [0u8; 24];
        r.emit(&mut b).unwrap();
        b
    };
    let good = bfd::vxlan::rfc8971_inner([0x02, 0, 0, 0, 0, 0x66], src, 49999);
    let frame = |r: bfd::wire::UdpIpv4Repr| {
        let mut buf = [0u8; 128];
        let n = r.emit(&bfd, true, &mut buf).unwrap();
        buf[..n].to_vec()
    };
    let wrong_mac = bfd::wire::UdpIpv4Repr {
        dst_mac: bfd::vxlan::BFD_DST_MAC,
        ..good
    };
    let not_loopback = bfd::wire::UdpIpv4Repr {
        dst_ip: bfd::vxlan::SWITCH_BFD_IP,
        ..good
    };
    let low_ttl = bfd::wire::UdpIpv4Repr { ttl: 254, ..good };
    (
        vec![frame(wrong_mac), frame(not_loopback), frame(low_ttl)],
        2,
        1,
    )
}

#[test]
fn rfc8971_in_a_management_vni_between_two_kernel_vteps() {
    let ns = NsPair::new("bf8", "198.18.0.1/24", "198.18.0.2/24");
    let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    vxlan_device(&ns.a, &ns.dev_a, "vx0", MGMT_VNI, a, b);
    vxlan_device(&ns.b, &ns.dev_b, "vx0", MGMT_VNI, b, a);
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("rfc8971.pcap");
    let cap = Capture::start(&ns.b, &ns.dev_b, &pcap, &["udp", "port", "4789"]);
    // A stops at 3 s; B keeps listening and must declare A down within its
    // Detection Time (3 x 100 ms).
    let start = Instant::now();
    let (stop_a, stop_b) = (
        start + Duration::from_secs(3),
        start + Duration::from_secs(4),
    );
    let (na, nb) = (ns.a.clone(), ns.b.clone());
    let ta = std::thread::spawn(move || rfc8971_side(na, a, b, 1, stop_a));
    let tb = std::thread::spawn(move || rfc8971_side(nb, b, a, 2, stop_b));
    // Mid-run, frames B must refuse arrive from A's side of the tunnel.
    std::thread::sleep(Duration::from_millis(1500));
    let (bad, want_rejected, want_ttl) = bad_frames(a);
    let nsa = ns.a.clone();
    std::thread::spawn(move || common::inject(&nsa, "vx0", &bad))
        .join()
        .unwrap();
    let (sa, sb) = (ta.join().unwrap(), tb.join().unwrap());
    drop(cap);
    assert!(sa.up_at.is_some() && sb.up_at.is_some(), "{sa:?} {sb:?}");
    assert!(sa.down.is_none(), "A stayed Up until it stopped: {sa:?}");
    let (down_at, diag) = sb.down.expect("B goes Down after A stops");
    assert_eq!(diag, Diagnostic::ControlDetectionTimeExpired, "{sb:?}");
    let after = down_at.saturating_duration_since(stop_a);
    eprintln!(
        "B Down {after:?} after A stopped; A {:?}; B {:?}",
        sa.io, sb.io
    );
    // Detection Time 300 ms after A's last packet (sent up to 100 ms before
    // A stopped), plus the loop's 5 ms slices and scheduling slack.
    assert!(
        after <= Duration::from_millis(400),
        "Down {after:?} after A stopped: {sb:?}"
    );
    assert!(down_at > stop_a, "{sb:?}");
    // Each refused frame is counted once, where its check belongs.
    assert_eq!(sb.io.vxlan_rejected, want_rejected, "{sb:?}");
    assert_eq!(sb.counters.ttl, want_ttl, "{sb:?}");
    assert_eq!(sa.io.vxlan_rejected + sa.counters.ttl, 0, "{sa:?}");
    for s in [&sa, &sb] {
        let c = &s.counters;
        assert_eq!(c.malformed + c.no_session + c.rejected, 0, "{s:?}");
        assert_eq!(s.io.send_errors, 0, "{s:?}");
        assert!(
            s.io.send_packets >= 20 && s.io.send_calls <= s.io.send_packets,
            "{s:?}"
        );
    }

    let text = tshark_fields(
        &pcap,
        &[],
        &[
            "vxlan.vni",
            "eth.dst",
            "ip.src",
            "ip.dst",
            "ip.ttl",
            "udp.dstport",
            "bfd.sta",
            "_ws.malformed",
            "_ws.expert.severity",
            "bfd.my_discriminator",
        ],
    );
    // IPv6 is off on vx0: every frame in the VNI is BFD; leave out the
    // three injected ones (BFD discriminator 0x5555).
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|r| r.split('|').collect::<Vec<_>>())
        .filter(|f| f.get(9).is_none_or(|d| !d.contains("0x00005555")))
        .collect();
    assert_eq!(text.lines().count(), rows.len() + 3, "{text}");
    assert!(rows.len() > 40, "{text}");
    for f in &rows {
        assert_eq!(f[0], "777", "management VNI: {f:?}");
        // Outer then inner values, comma-separated by tshark.
        assert!(f[1].ends_with(",00:00:5e:00:52:02"), "inner dst MAC: {f:?}");
        let inner_src = f[2].rsplit(',').next().unwrap();
        assert!(
            inner_src == "198.18.0.1" || inner_src == "198.18.0.2",
            "{f:?}"
        );
        assert!(
            f[2].starts_with(inner_src),
            "inner source = outer source: {f:?}"
        );
        assert!(f[3].ends_with(",127.0.0.1"), "inner dst: {f:?}");
        assert!(f[4].ends_with(",255"), "inner TTL: {f:?}");
        assert!(f[5].ends_with(",3784"), "inner port: {f:?}");
        assert!(!f[6].is_empty(), "BFD decoded: {f:?}");
        assert!(f[7].is_empty(), "malformed: {f:?}");
        // No expert info at Warning (0x00600000) or Error (0x00800000).
        assert!(
            !f[8].split(',').any(|v| v == "6291456" || v == "8388608"),
            "expert warning: {f:?}"
        );
    }
    assert!(
        rows.iter().any(|f| f[6] == "0x03"),
        "some packets in Up: {text}"
    );
}

/// Runs sessions toward every `(device, remote, flavor)` of `links` from
/// `local` in `ns` for `run_for`, with `coalesce` of timer coalescing; returns
/// how many came Up and the I/O counters.
fn many_links(
    ns: String,
    local: Ipv4Addr,
    links: Vec<(String, Ipv4Addr, Ipv4Addr, VxlanFlavor)>,
    coalesce: Duration,
    run_for: Duration,
) -> (usize, bfd::manager::Counters, IoStats) {
    common::enter(&ns);
    let mut m = Manager::new(ManagerConfig::default()).unwrap();
    let cfg = SessionConfig {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        ..Default::default()
    };
    let keys: Vec<PeerKey> = links
        .iter()
        .map(|(_, l, r, _)| PeerKey {
            remote: IpAddr::V4(*r),
            local: IpAddr::V4(*l),
            encap: Encap::Vxlan,
        })
        .collect();
    for k in &keys {
        m.add_session(*k, cfg.clone(), Instant::now()).unwrap();
    }
    let mut d = Driver::bind(
        m,
        DriverConfig {
            coalesce,
            ..DriverConfig::new(local)
        },
    )
    .unwrap();
    for ((dev, _, _, flavor), k) in links.iter().zip(&keys) {
        d.attach_vxlan(dev, *k, *flavor).unwrap();
    }
    d.run_until(Instant::now() + run_for).unwrap();
    let up = d
        .manager()
        .statuses()
        .filter(|(_, s)| s.state == State::Up)
        .count();
    (up, d.manager().counters(), d.io_stats())
}

/// Four RFC 8971 links from one instance (one device per Management VNI:
/// the kernel allows one device per VNI and port in a namespace) plus one
/// OVS-convention link: the frames of one flush leave in one `sendmmsg`
/// whatever their device, so with 30 ms coalescing the calls are fewer than
/// the frames.
#[test]
fn frames_of_many_devices_share_a_sendmmsg() {
    let ns = NsPair::new("bfm", "198.18.0.1/24", "198.18.0.2/24");
    let a = Ipv4Addr::new(198, 18, 0, 1);
    let mut links_a = Vec::new();
    let mut links_b = Vec::new();
    for k in 0..5u8 {
        let b = Ipv4Addr::new(198, 18, 0, 10 + k);
        add_addr(&ns.b, &format!("{b}/24"), &ns.dev_b);
        let (vni, flavor) = if k == 4 {
            (0, VxlanFlavor::OvsVtep)
        } else {
            let vni = 800 + u32::from(k);
            (
                vni,
                VxlanFlavor::Rfc8971 {
                    management_vni: vni,
                },
            )
        };
        let dev = format!("vx{k}");
        vxlan_device(&ns.a, &ns.dev_a, &dev, vni, a, b);
        vxlan_device(&ns.b, &ns.dev_b, &dev, vni, b, a);
        links_a.push((dev.clone(), a, b, flavor));
        links_b.push((dev, b, a, flavor));
    }
    let (na, nb) = (ns.a.clone(), ns.b.clone());
    let (coalesce, run_for) = (Duration::from_millis(30), Duration::from_secs(4));
    let ta = std::thread::spawn(move || many_links(na, a, links_a, coalesce, run_for));
    let tb = std::thread::spawn(move || {
        many_links(nb, Ipv4Addr::UNSPECIFIED, links_b, coalesce, run_for)
    });
    let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
    eprintln!("A {ra:?}\nB {rb:?}");
    for (up, c, io) in [&ra, &rb] {
        assert_eq!(*up, 5, "{c:?} {io:?}");
        assert_eq!(c.malformed + c.no_session + c.ttl + c.rejected, 0, "{c:?}");
        assert_eq!((io.send_errors, io.vxlan_rejected), (0, 0), "{io:?}");
        assert!(io.send_packets > 60, "{io:?}");
        assert!(io.send_calls < io.send_packets, "batched: {io:?}");
    }
}

/// A `bfd run` process in a namespace, killed and reaped by PID on drop
/// (`ip netns exec` execs the command, so the child is `bfd` itself).
struct Daemon {
    child: Child,
    tag: String,
    socket: std::path::PathBuf,
    log: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(ns: &str, dir: &std::path::Path, tag: &str, config: &str) -> Daemon {
        let path = dir.join(format!("{tag}.toml"));
        std::fs::write(&path, config).unwrap();
        let socket = dir.join(format!("{tag}.sock"));
        let log = dir.join(format!("{tag}.log"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_bfd"),
                "run",
                "--config",
            ])
            .arg(&path)
            .arg("--status-socket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            tag: tag.to_owned(),
            socket,
            log,
        }
    }

    /// State and local discriminator of the only session, once `bfd status`
    /// answers.
    fn state(&self) -> Option<(String, u32)> {
        let out = Command::new(env!("CARGO_BIN_EXE_bfd"))
            .args(["status", "--json", "--status-socket"])
            .arg(&self.socket)
            .output()
            .unwrap();
        let r: bfd::report::StatusReport = serde_json::from_slice(&out.stdout).ok()?;
        r.sessions
            .first()
            .map(|s| (s.state.clone(), s.local_discriminator))
    }

    /// Waits for state `want` of a session other than discriminator `not`;
    /// returns when it was seen and the session's discriminator.
    fn wait_state(&self, want: &str, not: u32, within: Duration) -> (Instant, u32) {
        let end = Instant::now() + within;
        let mut last = None;
        while Instant::now() < end {
            last = self.state();
            if let Some((st, d)) = &last {
                if st == want && *d != not {
                    return (Instant::now(), *d);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "never {want}, last {last:?}; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

/// The `bfd` command with `vxlan_flavor = "rfc8971"` in its file: two
/// processes over Management VNI 777 devices come Up; a SIGHUP reload to
/// `vxlan_flavor = "ovs"` on VNI 0 devices replaces the sessions and their
/// links, and they come Up again in that convention; when one process is
/// killed the other declares it Down within the Detection Time. A capture
/// shows each phase's frames in its flavour's shape, both ways.
#[test]
fn bfd_run_processes_speak_rfc8971_from_their_config_files() {
    let ns = NsPair::new("bfr", "198.18.0.1/24", "198.18.0.2/24");
    let (a, b) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
    for (n, dev, l, r) in [(&ns.a, &ns.dev_a, a, b), (&ns.b, &ns.dev_b, b, a)] {
        vxlan_device(n, dev, "vxm", MGMT_VNI, l, r);
        vxlan_device(n, dev, "vx0", 0, l, r);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |l: Ipv4Addr, r: Ipv4Addr, flavor: &str| {
        format!(
            "[[peer]]\nname = \"mgmt\"\nlocal = \"{l}\"\nremote = \"{r}\"\nmode = \"vxlan\"\n\
             tx_interval_ms = 100\nrx_interval_ms = 100\nmultiplier = 3\n{flavor}\n"
        )
    };
    let rfc8971 =
        format!("vxlan_flavor = \"rfc8971\"\nmanagement_vni = {MGMT_VNI}\nvxlan_device = \"vxm\"");
    let ovs = "vxlan_flavor = \"ovs\"\nvxlan_device = \"vx0\"";
    let pcap = dir.path().join("run.pcap");
    let cap = Capture::start(&ns.b, &ns.dev_b, &pcap, &["udp", "port", "4789"]);
    let mut da = Daemon::start(&ns.a, dir.path(), "a", &config(a, b, &rfc8971));
    let db = Daemon::start(&ns.b, dir.path(), "b", &config(b, a, &rfc8971));
    let (_, old_a) = da.wait_state("up", 0, Duration::from_secs(10));
    let (_, old_b) = db.wait_state("up", 0, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));

    // Reload both to the OVS convention on the VNI 0 devices.
    for (d, l, r) in [(&da, a, b), (&db, b, a)] {
        std::fs::write(
            dir.path().join(format!("{}.toml", d.tag)),
            config(l, r, ovs),
        )
        .unwrap();
        // SAFETY: signals our own child by PID.
        assert_eq!(unsafe { libc::kill(d.child.id() as i32, libc::SIGHUP) }, 0);
    }
    da.wait_state("up", old_a, Duration::from_secs(10));
    db.wait_state("up", old_b, Duration::from_secs(10));

    let decode = || tshark_fields(&pcap, &[], &["vxlan.vni", "eth.dst", "ip.dst", "bfd.sta"]);
    let wanted = [
        (a, "RFC 8971", "127.0.0.1"),
        (a, "OVS", "169.254.1.1"),
        (b, "RFC 8971", "127.0.0.1"),
        (b, "OVS", "169.254.1.1"),
    ];
    let has = |text: &str, dst: Ipv4Addr, inner: &str| {
        text.lines()
            .any(|r| r.contains(&format!("|{dst},{inner}|0x03")))
    };
    // Stop capturing once every phase's Up packets are in the file (the
    // status socket can report Up before that side's first Up packet is
    // captured), or after 5 s; the assertions below then say what is missing.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let text = decode();
        if wanted.iter().all(|(dst, _, inner)| has(&text, *dst, inner)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cap);
    let text = decode();
    for r in text.lines() {
        let rfc =
            r.starts_with("777|") && r.contains(",00:00:5e:00:52:02|") && r.contains(",127.0.0.1|");
        let ovs =
            r.starts_with("0|") && r.contains(",00:23:20:00:00:01|") && r.contains(",169.254.1.1|");
        assert!(rfc || ovs, "{r}: {text}");
    }
    for (dst, what, inner) in wanted {
        assert!(has(&text, dst, inner), "{what} Up packets to {dst}: {text}");
    }

    let _ = da.child.kill();
    let _ = da.child.wait();
    let killed = Instant::now();
    let (down, _) = db.wait_state("down", 0, Duration::from_secs(3));
    // Detection Time 300 ms, plus the 20 ms status polling and a status
    // round trip.
    let after = down - killed;
    eprintln!("bfd run: B Down {after:?} after A was killed");
    assert!(after <= Duration::from_millis(450), "{after:?}");
}
