//! Network namespaces for the root-only tests: two namespaces joined by a
//! veth, names unique per process and call, removed on drop (also on panic).
#![allow(dead_code)] // each test file uses a different part

use bfd::config::SessionConfig;
use bfd::manager::{Encap, Manager, ManagerConfig, PeerKey};
use bfd::udp::{Driver, DriverConfig};
use bfd::vxlan::VxlanFlavor;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs a command and fails the test with its stderr if it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds address `cidr` to device `dev` in namespace `ns`.
pub fn add_addr(ns: &str, cidr: &str, dev: &str) {
    run(&["ip", "-n", ns, "addr", "add", cidr, "dev", dev]);
}

/// Side A's address in [`one_to_many`]: 198.18.0.1 on its veth end.
pub const ONE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// (local, remote) address pairs of one side's sessions.
pub type Pairs = Vec<(Ipv4Addr, Ipv4Addr)>;

/// One address on A (198.18.0.1) against `hosts` on B (198.18.0.2.. on its
/// veth end; `ns` was made with .1 and .2, the others are added here):
/// A's (local, remote) pairs and B's, one per B address.
pub fn one_to_many(ns: &NsPair, hosts: u8) -> (Pairs, Pairs) {
    for h in 3..=hosts + 1 {
        add_addr(&ns.b, &format!("198.18.0.{h}/24"), &ns.dev_b);
    }
    let bs = (2..=hosts + 1).map(|h| Ipv4Addr::new(198, 18, 0, h));
    (
        bs.clone().map(|b| (ONE, b)).collect(),
        bs.map(|b| (b, ONE)).collect(),
    )
}

/// Decodes `pcap` with tshark (`options` before the field list) and
/// returns one line per frame: `fields` separated by `|`. Fails the test if
/// tshark fails.
pub fn tshark_fields(pcap: &std::path::Path, options: &[&str], fields: &[&str]) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(options);
    cmd.args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces `a` and `b`, veth `dev_a` in `a` to `dev_b` in `b`.
pub struct NsPair {
    /// First namespace.
    pub a: String,
    /// Second namespace.
    pub b: String,
    /// The veth end in `a`.
    pub dev_a: String,
    /// The veth end in `b`.
    pub dev_b: String,
}

impl NsPair {
    /// Creates the pair with `ip_a`/`ip_b` (CIDR) on the veth ends, links and lo up.
    pub fn new(tag: &str, ip_a: &str, ip_b: &str) -> NsPair {
        let id = format!(
            "{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let p = NsPair {
            a: format!("{tag}a{id}"),
            b: format!("{tag}b{id}"),
            dev_a: format!("va{id}"),
            dev_b: format!("vb{id}"),
        };
        run(&["ip", "netns", "add", &p.a]);
        run(&["ip", "netns", "add", &p.b]);
        run(&[
            "ip", "link", "add", &p.dev_a, "netns", &p.a, "type", "veth", "peer", "name", &p.dev_b,
            "netns", &p.b,
        ]);
        for (ns, dev, ip) in [(&p.a, &p.dev_a, ip_a), (&p.b, &p.dev_b, ip_b)] {
            run(&["ip", "-n", ns, "addr", "add", ip, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        p
    }
}

impl Drop for NsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread into namespace `ns` (a network namespace is per thread).
pub fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
    // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
    assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
}

/// Adds VXLAN device `name` with `vni` from `l` toward `r` over `dev` in
/// namespace `n`, IPv6 off so only our frames ride the VNI, and sets it up.
pub fn vxlan_device(n: &str, dev: &str, name: &str, vni: u32, l: Ipv4Addr, r: Ipv4Addr) {
    run(&[
        "ip",
        "-n",
        n,
        "link",
        "add",
        name,
        "type",
        "vxlan",
        "id",
        &vni.to_string(),
        "remote",
        &r.to_string(),
        "local",
        &l.to_string(),
        "dstport",
        "4789",
        "dev",
        dev,
    ]);
    run(&[
        "ip",
        "netns",
        "exec",
        n,
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv6.conf.{name}.disable_ipv6=1"),
    ]);
    run(&["ip", "-n", n, "link", "set", name, "up"]);
}

/// A driver (in the calling thread's namespace) with one 100 ms × 3 BFD
/// session from `local` to `remote` inside VXLAN device `dev` of `flavor`;
/// returns it with the session's discriminator.
pub fn vxlan_driver(
    local: Ipv4Addr,
    remote: Ipv4Addr,
    seed: u64,
    dev: &str,
    flavor: VxlanFlavor,
) -> (Driver, u32) {
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
    let discr = m.add_session(peer, cfg, Instant::now()).unwrap();
    let mut d = Driver::bind(m, DriverConfig::new(local)).unwrap();
    d.attach_vxlan(dev, peer, flavor).unwrap();
    (d, discr)
}

/// Sends raw Ethernet `frames` on device `dev` of namespace `ns` (this
/// thread enters it) through a packet socket of our own, as a misbehaving
/// peer would.
pub fn inject(ns: &str, dev: &str, frames: &[Vec<u8>]) {
    enter(ns);
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(ifindex, 0);
    // SAFETY: plain socket(2); closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0);
    for f in frames {
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = 0x0800u16.to_be();
        sll.sll_ifindex = ifindex as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&f[..6]);
        // SAFETY: sends `f` to a sockaddr_ll of the size we pass.
        let rc = unsafe {
            libc::sendto(
                fd,
                f.as_ptr().cast(),
                f.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, f.len() as isize, "{}", std::io::Error::last_os_error());
    }
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(fd) };
}

/// tcpdump writing the frames of `dev` in namespace `ns` that match
/// `filter` to a pcap file; stopped (by its PID) on drop.
pub struct Capture(std::process::Child);

impl Capture {
    /// Starts the capture, giving tcpdump half a second to start.
    pub fn start(ns: &str, dev: &str, pcap: &std::path::Path, filter: &[&str]) -> Capture {
        let c = Command::new("ip")
            .args(["netns", "exec", ns, "tcpdump", "-i", dev, "-w"])
            .arg(pcap)
            .args(["-U", "--immediate-mode"])
            .args(filter)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        Capture(c)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A manager with one single-hop and one multihop session per (local,
/// remote) pair, every `ms` milliseconds, on 8 source ports.
pub fn pair_manager(peers: &[(Ipv4Addr, Ipv4Addr)], seed: u64, ms: u64) -> Manager {
    let cfg = SessionConfig {
        desired_min_tx: Duration::from_millis(ms),
        required_min_rx: Duration::from_millis(ms),
        ..Default::default()
    };
    let mut m = Manager::new(ManagerConfig {
        seed,
        src_port_count: 8,
        ..Default::default()
    })
    .unwrap();
    let now = Instant::now();
    for (l, r) in peers {
        for encap in [Encap::SingleHop, Encap::MultiHop] {
            let key = PeerKey {
                remote: IpAddr::V4(*r),
                local: IpAddr::V4(*l),
                encap,
            };
            m.add_session(key, cfg.clone(), now).unwrap();
        }
    }
    m
}

/// tshark options that verify IP and UDP checksums and read UDP 4784 as BFD.
pub const TSHARK_CHECKED_BFD: [&str; 6] = [
    "-o",
    "udp.check_checksum:TRUE",
    "-o",
    "ip.check_checksum:TRUE",
    "-d",
    "udp.port==4784,bfd",
];
