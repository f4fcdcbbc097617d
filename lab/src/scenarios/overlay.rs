//! The end-to-end overlay, configured only through the controller's API
//! (`bridgehead-ctl`): the controller, one gateway (a group of one per
//! physical network; election comes later) with two physical segments and a
//! bare-metal host on each, one Linux hypervisor in host mode with two VMs,
//! one emulated hardware switch (ovs-vtep) with a bare-metal host, programmed
//! by `bridgehead-vtep-sync`, and two logical switches whose tenant IPs
//! overlap.
//!
//! ```text
//!  mgmt 198.18.1.0/24:  ctrl .1 (controller :7480)   hv1 .10   gw1 .20   sw1 .30
//!
//!  vm1 192.0.2.11 ─┐ ls-blue (VNI 5000)         ┌─ phys1 ── bm2 192.0.2.12
//!                  ├ hv1 ── underlay ── gw1 ────┤   (group gg1, VTEP IP .100)
//!  vm2 192.0.2.11 ─┘ ls-red  (VNI 5001)  │      └─ phys2 ── bm3 192.0.2.12
//!     198.18.0.10          198.18.0.0/24 │ 198.18.0.20    (group gg2, VTEP IP .101)
//!                                        │
//!                       sw1 (ovs-vtep, 198.18.0.30) ── p0 ── bm1 192.0.2.13 (ls-blue)
//! ```
//!
//! What is done by hand is only the wiring: namespaces, veths, addresses on
//! the hosts' own NICs, and the two group VTEP IPs on gw1's underlay NIC (the
//! elected member holds a group's IP; with one member per group it simply
//! holds both). Everything else (logical switches, transport nodes, gateway
//! groups, bindings, VM MACs) is created with `bridgehead-ctl`; the daemons
//! (`bridgehead-gateway` on gw1, and on hv1 in host mode) follow the store,
//! program their kernels and write back the MACs they learn, which the other
//! daemon turns into remote MACs.
//!
//! The hardware switch sw1 is an `EmulatedSwitch` (ovs-vtep) with bm1 on its
//! port p0; its transport node (kind hardware_switch) carries its OVSDB
//! target `tcp:198.18.0.30:6640`, and a binding puts p0 (VLAN 0) in ls-blue.
//! Nothing writes its database but `bridgehead-vtep-sync`, which runs in
//! sw1's own namespace with sw1's node token: that namespace has both a
//! management NIC (198.18.1.30, to reach the controller) and the switch's
//! OVSDB listener on its tunnel IP. (The controller's namespace has no
//! underlay address; a separate host on both networks would have to turn TX
//! offload off on its underlay NIC, since its OVSDB connection would cross
//! the switch's userspace datapath.) bm1's MAC, learned by the switch, goes
//! to the store as sw1's LearnedMac, and the kernel VTEPs point it at
//! 198.18.0.30; they flood ls-blue's broadcast and unknown unicast to sw1
//! as to every other VTEP of ls-blue.
//!
//! hv1 and gw1 run no BFD yet, so their transport nodes say so
//! (`--bfd-disabled`): sw1 then does not run BFD on its tunnels toward them
//! (it would report them down and send VNI 0 frames nobody answers). hv1's
//! and gw1's underlay NICs have TX offload off: their traffic to sw1 crosses
//! its userspace datapath (see PEERS.md).

use crate::bins;
use crate::lab::{Host, Iface, Lab, Segment};
use crate::peers::ovs_vtep::{EmulatedSwitch, SwitchSpec};
use crate::traffic::ping;
use crate::wait;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Where the controller listens (on ctrl's management NIC).
pub const CONTROLLER_ADDR: &str = "198.18.1.1:7480";
/// The operator's token (admin role).
pub const ADMIN_TOKEN: &str = "bridgehead-lab-admin-token";
/// hv1's tunnel IP.
pub const HV1_IP: &str = "198.18.0.10";
/// gw1's own tunnel IP.
pub const GW1_IP: &str = "198.18.0.20";
/// VTEP IP of gateway group gg1 (phys1, ls-blue).
pub const GG1_IP: &str = "198.18.0.100";
/// VTEP IP of gateway group gg2 (phys2, ls-red).
pub const GG2_IP: &str = "198.18.0.101";
/// ls-blue's VNI.
pub const BLUE_VNI: u32 = 5000;
/// ls-red's VNI.
pub const RED_VNI: u32 = 5001;
/// vm1 (ls-blue on hv1): IP, MAC.
pub const VM1: (&str, &str) = ("192.0.2.11", "02:00:00:00:01:01");
/// vm2 (ls-red on hv1): the same IP as vm1, another switch.
pub const VM2: (&str, &str) = ("192.0.2.11", "02:00:00:00:01:02");
/// bm2 (ls-blue behind gw1 on phys1): IP, MAC.
pub const BM2: (&str, &str) = ("192.0.2.12", "02:00:00:00:02:02");
/// bm3 (ls-red behind gw1 on phys2): the same IP as bm2, another switch.
pub const BM3: (&str, &str) = ("192.0.2.12", "02:00:00:00:02:03");
/// sw1's tunnel IP (on its OVS `br-phy`).
pub const SW1_IP: &str = "198.18.0.30";
/// sw1's OVSDB target, as its transport node in the store says.
pub const SW1_OVSDB: &str = "tcp:198.18.0.30:6640";
/// bm1 (ls-blue behind sw1's port p0): IP, MAC.
pub const BM1: (&str, &str) = ("192.0.2.13", "02:00:00:00:03:01");
/// Where `bridgehead-vtep-sync` serves its metrics (inside sw1's namespace).
pub const VTEP_SYNC_METRICS: &str = "127.0.0.1:9480";

/// A built overlay.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// The controller's host.
    pub ctrl: Host,
    /// The gateway.
    pub gw1: Host,
    /// The hypervisor.
    pub hv1: Host,
    /// VM in ls-blue.
    pub vm1: Host,
    /// VM in ls-red.
    pub vm2: Host,
    /// Bare-metal host in ls-blue (phys1).
    pub bm2: Host,
    /// Bare-metal host in ls-red (phys2).
    pub bm3: Host,
    /// The emulated hardware switch (its namespace also runs vtep-sync).
    pub sw1: EmulatedSwitch,
    /// Bare-metal host in ls-blue behind sw1's port p0.
    pub bm1: Host,
    /// The underlay segment (capture point: one port per VTEP host).
    pub underlay: Segment,
    /// `bridgehead-ctl`.
    pub ctl_bin: PathBuf,
}

impl Overlay {
    /// The controller URL.
    pub fn url(&self) -> String {
        format!("http://{CONTROLLER_ADDR}")
    }

    /// Runs `bridgehead-ctl ARGS` as the operator (inside ctrl).
    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        ctl(&self.ctrl, &self.ctl_bin, args)
    }

    /// The operator's ctl command line, for notes and the demo.
    pub fn ctl_line(&self) -> String {
        format!(
            "BRIDGEHEAD_TOKEN={ADMIN_TOKEN} lab exec ctrl -- {} --server {}",
            self.ctl_bin.display(),
            self.url()
        )
    }

    /// What to try.
    pub fn notes(&self) -> Vec<String> {
        vec![
            format!("store: {} list", self.ctl_line()),
            format!(
                "ls-blue: lab exec vm1 -- ping -c3 {}   (bm2, behind gw1 on phys1)",
                BM2.0
            ),
            format!(
                "ls-red:  lab exec vm2 -- ping -c3 {}   (bm3: same IP, other switch)",
                BM3.0
            ),
            format!(
                "hardware switch: lab exec bm1 -- ping -c3 {}   (bm1 behind sw1 -> vm1 on hv1)",
                VM1.0
            ),
            format!(
                "sw1's database, as vtep-sync wrote it: lab exec sw1 -- vtep-ctl --db={SW1_OVSDB} list-remote-macs ls-blue"
            ),
            format!("vtep-sync metrics: lab exec sw1 -- curl -s {VTEP_SYNC_METRICS}/metrics"),
            "gateway metrics: lab exec gw1 -- curl -s 127.0.0.1:9470/metrics".into(),
            "VNIs on the wire: lab exec underlay -- tcpdump -ni hv1 udp port 4789".into(),
        ]
    }
}

fn ctl(ctrl: &Host, bin: &std::path::Path, args: &[&str]) -> Result<String> {
    let bin = bin.to_str().context("ctl path")?;
    let url = format!("http://{CONTROLLER_ADDR}");
    let mut argv = vec![bin, "--server", &url, "--token", ADMIN_TOKEN];
    argv.extend_from_slice(args);
    ctrl.run(&argv)
}

/// A host that sends nothing on its own: no IPv6 (router solicitations, MLD)
/// and no IGMP reports for link-local groups (which every interface, even a
/// bridge without an address, sends when it comes up). Captures and
/// learned-MAC lists then hold only what the lab sends.
fn quiet_host(lab: &Lab, name: &str) -> Result<Host> {
    let h = lab.add_host(name)?;
    for s in [
        "net.ipv6.conf.all.disable_ipv6=1",
        "net.ipv6.conf.default.disable_ipv6=1",
        "net.ipv4.igmp_link_local_mcast_reports=0",
    ] {
        h.run(&["sysctl", "-qw", s])?;
    }
    Ok(h)
}

/// A segment whose bridge never speaks: IPv6 is off before `br0` exists
/// (an IPv6 bridge sends solicitations with its own MAC, which the gateway
/// would learn and report as a host).
fn quiet_segment(lab: &Lab, name: &str) -> Result<Segment> {
    Segment::in_host(quiet_host(lab, name)?)
}

/// Tokens for the operator and each daemon (node role: writes only its own
/// observed state).
fn tokens_file(lab: &Lab) -> Result<PathBuf> {
    let mut t =
        format!("[[tokens]]\nname = \"operator\"\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n");
    for node in ["gw1", "hv1", "sw1"] {
        t.push_str(&format!(
            "\n[[tokens]]\nname = \"{node}-daemon\"\nrole = \"node\"\nnode = \"{node}\"\ntoken = \"{}\"\n",
            node_token(node)
        ));
    }
    let path = lab.run_dir().join("tokens.toml");
    std::fs::write(&path, t)?;
    Ok(path)
}

/// The token a node's daemon runs with.
pub fn node_token(node: &str) -> String {
    format!("bridgehead-lab-{node}-node-token")
}

/// Builds the overlay and waits until every host reaches every other host of
/// its logical switch.
pub fn build(lab: &Lab) -> Result<Overlay> {
    let controller = bins::locate(bins::CONTROLLER)?;
    let ctl_bin = bins::locate(bins::CTL)?;
    let gateway = bins::locate(bins::GATEWAY)?;
    let vtep_sync = bins::locate(bins::VTEP_SYNC)?;

    // --- wiring
    let mgmt = quiet_segment(lab, "mgmt")?;
    let underlay = quiet_segment(lab, "underlay")?;
    let phys1 = quiet_segment(lab, "phys1")?;
    let phys2 = quiet_segment(lab, "phys2")?;
    let ctrl = quiet_host(lab, "ctrl")?;
    lab.attach(&ctrl, &mgmt, &Iface::new("eth0", "198.18.1.1/24"))?;
    let gw1 = quiet_host(lab, "gw1")?;
    lab.attach(&gw1, &mgmt, &Iface::new("mgmt0", "198.18.1.20/24"))?;
    lab.attach(
        &gw1,
        &underlay,
        &Iface::new("eth0", &format!("{GW1_IP}/24")).no_tx_offload(),
    )?;
    for ip in [GG1_IP, GG2_IP] {
        gw1.run(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
    }
    lab.attach(&gw1, &phys1, &Iface::bare("phys1"))?;
    lab.attach(&gw1, &phys2, &Iface::bare("phys2"))?;
    let hv1 = quiet_host(lab, "hv1")?;
    lab.attach(&hv1, &mgmt, &Iface::new("mgmt0", "198.18.1.10/24"))?;
    lab.attach(
        &hv1,
        &underlay,
        &Iface::new("eth0", &format!("{HV1_IP}/24")).no_tx_offload(),
    )?;
    let tenant =
        |(ip, mac): (&str, &str)| Iface::new("eth0", &format!("{ip}/24")).mac(mac).mtu(1450);
    let bm2 = quiet_host(lab, "bm2")?;
    lab.attach(&bm2, &phys1, &tenant(BM2))?;
    let bm3 = quiet_host(lab, "bm3")?;
    lab.attach(&bm3, &phys2, &tenant(BM3))?;
    // VMs: a veth whose hypervisor end (named after the VM) the daemon attaches.
    let vm1 = quiet_host(lab, "vm1")?;
    lab.veth(&vm1, &tenant(VM1), &hv1, &Iface::bare("vm1"))?;
    let vm2 = quiet_host(lab, "vm2")?;
    lab.veth(&vm2, &tenant(VM2), &hv1, &Iface::bare("vm2"))?;
    // sw1: its underlay NIC gets no address (it becomes a port of OVS
    // br-phy, which holds the tunnel IP); its management NIC reaches the
    // controller.
    let sw1h = quiet_host(lab, "sw1")?;
    lab.attach(&sw1h, &mgmt, &Iface::new("mgmt0", "198.18.1.30/24"))?;
    lab.attach(&sw1h, &underlay, &Iface::bare("eth0"))?;
    let sw1 = EmulatedSwitch::start(lab, &sw1h, SwitchSpec::new("sw1", &format!("{SW1_IP}/24")))?;
    let bm1 = quiet_host(lab, "bm1")?;
    sw1.add_bare_metal(lab, "p0", &bm1, &tenant(BM1))?;

    // --- the controller
    let data = lab.run_dir().join("controller-data");
    let tokens = tokens_file(lab)?;
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    lab.spawn(
        Some(&ctrl),
        "ctrl/controller",
        &[
            &s(&controller),
            "--data-dir",
            &s(&data),
            "--listen",
            CONTROLLER_ADDR,
            "--tokens",
            &s(&tokens),
        ],
        &[("RUST_LOG", "info")],
    )?;
    wait::until(
        "the controller to answer",
        Duration::from_secs(20),
        Duration::from_millis(100),
        || ctl(&ctrl, &ctl_bin, &["list"]).is_ok(),
    )
    .or_else(|e| lab.check_alive("ctrl/controller").and(Err(e)))?;

    // --- the daemons: started before their configuration exists; they
    // follow the store and act once it describes them.
    let url = format!("http://{CONTROLLER_ADDR}");
    let gw_token = node_token("gw1");
    lab.spawn(
        Some(&gw1),
        "gw1/gateway",
        &[
            &s(&gateway),
            "--controller",
            &url,
            "--token",
            &gw_token,
            "--node",
            "gw1",
            "--underlay-dev",
            "eth0",
        ],
        &[("RUST_LOG", "info")],
    )?;
    let hv_token = node_token("hv1");
    let vm1_port = format!("{}=vm1", VM1.1);
    let vm2_port = format!("{}=vm2", VM2.1);
    lab.spawn(
        Some(&hv1),
        "hv1/gateway",
        &[
            &s(&gateway),
            "--controller",
            &url,
            "--token",
            &hv_token,
            "--node",
            "hv1",
            "--underlay-dev",
            "eth0",
            "--vm-port",
            &vm1_port,
            "--vm-port",
            &vm2_port,
        ],
        &[("RUST_LOG", "info")],
    )?;

    let sw_token = node_token("sw1");
    lab.spawn(
        Some(&sw1h),
        "sw1/vtep-sync",
        &[
            &s(&vtep_sync),
            "--controller",
            &url,
            "--token",
            &sw_token,
            "--switch",
            "sw1",
            "--name",
            "sw1-vtep-sync",
            "--metrics-listen",
            VTEP_SYNC_METRICS,
        ],
        &[("RUST_LOG", "info")],
    )?;

    // --- configuration, through the API only
    let c = |args: &[&str]| ctl(&ctrl, &ctl_bin, args);
    let blue_vni = BLUE_VNI.to_string();
    let red_vni = RED_VNI.to_string();
    for (name, vni) in [("ls-blue", &blue_vni), ("ls-red", &red_vni)] {
        c(&[
            "create",
            "logical-switch",
            "--name",
            name,
            "--vni",
            vni,
            "--replication",
            "source_node",
        ])?;
    }
    // No BFD on the kernel VTEPs yet: tunnels toward them run none.
    for (name, kind, ip) in [("hv1", "hypervisor", HV1_IP), ("gw1", "gateway", GW1_IP)] {
        c(&[
            "create",
            "transport-node",
            "--name",
            name,
            "--node-kind",
            kind,
            "--tunnel-ip",
            ip,
            "--bfd-disabled",
        ])?;
    }
    c(&[
        "create",
        "transport-node",
        "--name",
        "sw1",
        "--node-kind",
        "hardware_switch",
        "--tunnel-ip",
        SW1_IP,
        "--ovsdb-target",
        SW1_OVSDB,
    ])?;
    for (group, ip, nic, ls) in [
        ("gg1", GG1_IP, "phys1", "ls-blue"),
        ("gg2", GG2_IP, "phys2", "ls-red"),
    ] {
        c(&[
            "create",
            "gateway-group",
            "--name",
            group,
            "--member",
            "gw1:1",
            "--vtep-ip",
            ip,
            "--physical-interface",
            nic,
            "--ma-name",
            group,
        ])?;
        c(&[
            "create",
            "binding",
            "--name",
            &format!("{ls}-{group}"),
            "--logical-switch",
            ls,
            "--group",
            group,
            "--vlan",
            "0",
        ])?;
    }
    for (ls, (ip, mac)) in [("ls-blue", VM1), ("ls-red", VM2)] {
        c(&[
            "create",
            "remote-mac",
            "--logical-switch",
            ls,
            "--mac",
            mac,
            "--ip",
            ip,
            "--transport-node",
            "hv1",
        ])?;
    }

    // sw1's port p0, untagged, in ls-blue: vtep-sync creates the logical
    // switch on sw1 and binds it; hv1 and gw1 flood to sw1 from then on.
    c(&[
        "create",
        "binding",
        "--name",
        "ls-blue-sw1-p0",
        "--logical-switch",
        "ls-blue",
        "--switch",
        "sw1",
        "--port",
        "p0",
        "--vlan",
        "0",
    ])?;

    let o = Overlay {
        ctrl,
        gw1,
        hv1,
        vm1,
        vm2,
        bm2,
        bm3,
        sw1,
        bm1,
        underlay,
        ctl_bin,
    };
    lab.note(format!(
        "overlay: controller {} (admin token {ADMIN_TOKEN}); ls-blue {BLUE_VNI}: vm1 {} on hv1, bm2 {} behind gw1/phys1, bm1 {} behind sw1/p0 (ovs-vtep, {SW1_OVSDB}, vtep-sync); ls-red {RED_VNI}: vm2 {} on hv1, bm3 {} behind gw1/phys2",
        o.url(),
        VM1.0,
        BM2.0,
        BM1.0,
        VM2.0,
        BM3.0
    ))?;
    for (from, to, what) in [
        (&o.vm1, BM2.0, "vm1 -> bm2 (ls-blue)"),
        (&o.vm2, BM3.0, "vm2 -> bm3 (ls-red)"),
        (&o.bm2, VM1.0, "bm2 -> vm1 (ls-blue)"),
        (&o.bm3, VM2.0, "bm3 -> vm2 (ls-red)"),
        // ovs-vtep polls its database once a second: allow it a few.
        (&o.bm1, VM1.0, "bm1 -> vm1 (ls-blue, across sw1)"),
        (&o.vm1, BM1.0, "vm1 -> bm1 (ls-blue, across sw1)"),
        (&o.bm1, BM2.0, "bm1 -> bm2 (ls-blue, sw1 to gw1)"),
    ] {
        wait::until(
            what,
            Duration::from_secs(30),
            Duration::from_millis(200),
            || ping::reachable(from, to),
        )
        .or_else(|e| {
            for p in [
                "gw1/gateway",
                "hv1/gateway",
                "ctrl/controller",
                "sw1/vtep-sync",
                "sw1/ovs-vtep",
            ] {
                lab.check_alive(p)?;
            }
            Err(e)
        })?;
    }
    Ok(o)
}
