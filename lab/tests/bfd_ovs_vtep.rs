//! An Open vSwitch based hardware VTEP monitors a Bridgehead node with BFD
//! inside VXLAN, configured the hardware_vtep way: the `vtep_by_hand`
//! scenario (kernel VTEP hv1 + ovs-vtep emulated switch sw1), BFD enabled on
//! sw1's Tunnel row toward hv1 through `bfd_params` / `bfd_config_remote`
//! with `vtep-ctl`, and Bridgehead's BFD (the `bfd` crate's driver with a
//! VNI 0 device on hv1) answering. The switch must report
//! `Tunnel bfd_status:state=up`, our session must be Up, and once our
//! responder stops the switch must report the tunnel down. tshark must
//! decode every frame we sent with no malformed-packet or expert warning.
//!
//! The VNI 0 device carries no IP address: our frames are built whole on an
//! `AF_PACKET` socket (inner 169.254.1.0 -> 169.254.1.1), and an address
//! would only make hv1's IP stack see the switch's BFD packets too.
//!
//! Run: `cargo test -p lab --features root-tests --test bfd_ovs_vtep` (as root).
#![cfg(feature = "root-tests")]

use anyhow::{Context, Result, bail};
use bfd::config::SessionConfig;
use bfd::control::{self, Handle};
use bfd::manager::{Encap, Manager, ManagerConfig, PeerKey};
use bfd::packet::State;
use bfd::session::Status;
use bfd::udp::{Driver, DriverConfig};
use lab::scenarios::vtep_by_hand::{self, HV1_IP, SW1_IP};
use lab::traffic::capture::Capture;
use lab::{Lab, wait};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Our VNI 0 device on hv1 and its MAC (what the switch sends BFD to).
const DEV: &str = "vxbfd";
const DEV_MAC: &str = "02:00:00:00:bf:d1";

/// Bridgehead's BFD on hv1: a driver thread inside hv1's namespace, stopped
/// (without AdminDown, like a crash) by `stop` or on drop.
struct Responder {
    handle: Handle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Responder {
    fn start(ns: &str, peer: PeerKey, cfg: SessionConfig) -> Result<Responder> {
        let (handle, ctl) = control::channel()?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || -> std::io::Result<()> {
            let setup = || -> Result<Driver> {
                let f = std::fs::File::open(&path)?;
                // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
                if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns {path}: {}", std::io::Error::last_os_error());
                }
                let mut m = Manager::new(ManagerConfig {
                    seed: 7,
                    ..Default::default()
                })?;
                m.add_session(peer, cfg, Instant::now())?;
                let IpAddr::V4(local) = peer.local else {
                    bail!("IPv4 only")
                };
                let mut d = Driver::bind(m, DriverConfig::new(local))?;
                d.attach_vxlan(DEV, peer, bfd::vxlan::VxlanFlavor::OvsVtep)?;
                Ok(d)
            };
            let mut d = match setup() {
                Ok(d) => d,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = ready_tx.send(Ok(()));
            let (etx, _erx) = std::sync::mpsc::channel();
            d.run(&ctl, &etx)
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .context("responder thread did not start")??;
        Ok(Responder {
            handle,
            thread: Some(thread),
        })
    }

    fn status(&self) -> Option<Status> {
        self.handle.statuses().ok()?.first().map(|(_, _, s)| *s)
    }

    fn stop(&mut self) {
        let _ = self.handle.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn ovs_vtep_monitors_a_bridgehead_node_with_bfd_in_vxlan() -> Result<()> {
    let lab = Lab::new("t-bfd-vtep")?;
    let v = vtep_by_hand::build(&lab)?;

    // hv1: a VNI 0 device toward sw1 beside the VNI 5000 one (same UDP port).
    v.hv1.run(&[
        "ip",
        "link",
        "add",
        DEV,
        "address",
        DEV_MAC,
        "type",
        "vxlan",
        "id",
        "0",
        "remote",
        SW1_IP,
        "local",
        HV1_IP,
        "dstport",
        "4789",
        "dev",
        "eth0",
        "nolearning",
    ])?;
    // No IPv6 on it: link-local chatter (NS, MLD, RS) would ride VNI 0 into the switch.
    v.hv1.run(&[
        "sysctl",
        "-qw",
        &format!("net.ipv6.conf.{DEV}.disable_ipv6=1"),
    ])?;
    v.hv1.run(&["ip", "link", "set", DEV, "up"])?;

    // Every frame hv1 puts on the underlay toward the switch's VXLAN port.
    let cap = Capture::start(
        &lab,
        &v.underlay,
        "hv1",
        &format!("udp port 4789 and src host {HV1_IP}"),
    )?;

    let peer = PeerKey {
        remote: IpAddr::V4(SW1_IP.parse::<Ipv4Addr>()?),
        local: IpAddr::V4(HV1_IP.parse::<Ipv4Addr>()?),
        encap: Encap::Vxlan,
    };
    let cfg = SessionConfig {
        desired_min_tx: Duration::from_millis(300),
        required_min_rx: Duration::from_millis(300),
        ..Default::default()
    };
    let mut us = Responder::start(&v.hv1.ns, peer, cfg)?;

    // ovs-vtep creates the Tunnel row toward hv1 (hv1 has a remote MAC on sw1).
    let tunnel = wait::until_some(
        "ovs-vtep to create the Tunnel row",
        Duration::from_secs(20),
        Duration::from_millis(250),
        || {
            let out = v
                .sw1
                .vtep_ctl(&["--columns=_uuid", "--bare", "find", "Tunnel"])
                .ok()?;
            out.lines()
                .next()
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
        },
    )?;
    v.sw1.vtep_ctl(&[
        "set",
        "Tunnel",
        &tunnel,
        "bfd_params:enable=true",
        "bfd_params:min_rx=300",
        "bfd_params:min_tx=300",
        "bfd_config_remote:bfd_dst_ip=169.254.1.0",
        &format!("bfd_config_remote:bfd_dst_mac=\"{DEV_MAC}\""),
    ])?;
    let get = |key: &str| -> String {
        v.sw1
            .vtep_ctl(&["--if-exists", "get", "Tunnel", &tunnel, key])
            .map(|s| s.trim().trim_matches('"').to_owned())
            .unwrap_or_default()
    };

    let took = wait::until(
        "Tunnel bfd_status state=up, forwarding=true, remote_state=up and our session Up",
        Duration::from_secs(30),
        Duration::from_millis(200),
        // ovs-vtep copies the three keys from OVS on its own poll, so
        // `state` can read up one poll before `forwarding` does.
        || {
            get("bfd_status:state") == "up"
                && get("bfd_status:forwarding") == "true"
                && get("bfd_status:remote_state") == "up"
                && us.status().is_some_and(|s| s.state == State::Up)
        },
    )
    .with_context(|| {
        format!(
            "switch: {}\nus: {:?}",
            v.sw1.vtep_ctl(&["list", "Tunnel"]).unwrap_or_default(),
            us.status()
        )
    })?;
    eprintln!("switch and Bridgehead Up after {took:?}");
    let s = us.status().context("our session")?;
    assert_ne!(s.remote_discriminator, 0);
    assert_eq!(s.tx_interval, Duration::from_millis(300));
    // The switch's own BFD daemon agrees on the discriminators.
    let show = v
        .sw1
        .host
        .command(&["ovs-appctl", "bfd/show"])
        .envs(v.sw1.env())
        .output()?;
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.contains(&format!(
            "Remote Discriminator: {:#x}",
            s.local_discriminator
        )),
        "{show}"
    );

    // Run Up a while so the capture holds the steady state too.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get("bfd_status:state"), "up");

    // Our responder stops (no AdminDown): the switch detects it.
    let stopped = Instant::now();
    us.stop();
    wait::until(
        "Tunnel bfd_status state=down and forwarding=false",
        Duration::from_secs(15),
        Duration::from_millis(200),
        || get("bfd_status:state") == "down" && get("bfd_status:forwarding") == "false",
    )
    .with_context(|| v.sw1.vtep_ctl(&["list", "Tunnel"]).unwrap_or_default())?;
    eprintln!(
        "switch reported the tunnel down {:?} after our responder stopped",
        stopped.elapsed()
    );
    let diag = get("bfd_status:diagnostic");
    assert!(
        diag.contains("Control Detection Time Expired"),
        "diagnostic {diag:?}"
    );

    let pcap = cap.stop(&lab)?;
    let ours = pcap.fields(
        "bfd",
        &[
            "vxlan.vni",
            "eth.dst",
            "ip.src",
            "ip.dst",
            "ip.ttl",
            "udp.dstport",
            "bfd.sta",
        ],
    )?;
    assert!(ours.len() >= 10, "only {} BFD frames captured", ours.len());
    for f in &ours {
        // Outer and inner fields repeat (occurrence=a): check the inner ones.
        assert_eq!(f[0], "0", "VNI: {f:?}");
        assert!(f[1].ends_with("00:23:20:00:00:01"), "inner dst MAC: {f:?}");
        assert!(
            f[2].ends_with("169.254.1.0") && f[3].ends_with("169.254.1.1"),
            "{f:?}"
        );
        assert!(f[4].ends_with("255"), "inner TTL: {f:?}");
        assert!(f[5].ends_with("3784"), "{f:?}");
    }
    assert!(
        ours.iter().any(|f| f[6] == "0x03"),
        "no Up packet decoded: {ours:?}"
    );
    let bad = pcap.problems()?;
    assert!(
        bad.is_empty(),
        "tshark flags our frames:\n{}",
        bad.join("\n")
    );
    assert_eq!(
        pcap.count("vxlan.vni == 0")?,
        ours.len(),
        "hv1 sent something else on VNI 0"
    );

    let st = lab.state();
    let rep = lab.teardown();
    assert!(rep.is_clean(), "{:?} ({:?})", rep.errors, st.id);
    Ok(())
}
