//! BFD inside VXLAN (OVS convention) through kernel VNI 0 devices, between
//! two namespaces; tshark checks the wire format on the underlay veth.
#![cfg(feature = "root-tests")]

mod common;

use bfd::config::SessionConfig;
use bfd::manager::{Encap, Manager, ManagerConfig, PeerKey};
use bfd::packet::State;
use bfd::udp::{Driver, DriverConfig};
use common::{NsPair, run};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A capture process, killed and reaped by PID on drop.
struct Capture(Child);

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn side(
    ns: String,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    seed: u64,
) -> (usize, bfd::manager::Counters) {
    common::enter(&ns);
    let mut m = Manager::new(ManagerConfig {
        seed,
        ..Default::default()
    })
    .unwrap();
    let cfg = SessionConfig {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        ..Default::default()
    };
    let peer = PeerKey {
        remote: IpAddr::V4(remote),
        local: IpAddr::V4(local),
        encap: Encap::Vxlan,
    };
    m.add_session(peer, cfg, Instant::now()).unwrap();
    let mut d = Driver::bind(m, DriverConfig::new(local)).unwrap();
    d.attach_vxlan("vx0", peer).unwrap();
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
    for (n, dev, l, r) in [(&ns.a, &ns.dev_a, a, b), (&ns.b, &ns.dev_b, b, a)] {
        run(&[
            "ip",
            "-n",
            n,
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            "0",
            "remote",
            &r.to_string(),
            "local",
            &l.to_string(),
            "dstport",
            "4789",
            "dev",
            dev,
        ]);
        run(&["ip", "-n", n, "link", "set", "vx0", "up"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("vx.pcap");
    let cap = Capture(
        Command::new("ip")
            .args(["netns", "exec", &ns.b, "tcpdump", "-i", &ns.dev_b, "-w"])
            .arg(&pcap)
            .args(["-U", "udp", "port", "4789"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500)); // let the capture start
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

    let out = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args([
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "vxlan.vni",
            "-e",
            "eth.dst",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
        ])
        .args([
            "-e",
            "ip.ttl",
            "-e",
            "udp.dstport",
            "-e",
            "bfd.sta",
            "-e",
            "_ws.malformed",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
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
