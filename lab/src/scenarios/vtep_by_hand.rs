//! A Linux kernel VXLAN host and an emulated hardware switch carrying one
//! logical switch (VNI 5000), configured by hand with `vtep-ctl` and `bridge
//! fdb`: the reference the controller-driven scenarios are measured against.
//!
//! ```text
//!   vm1 192.0.2.11 ── hv1 (kernel VTEP 198.18.0.10) ─┐
//!                                                    ├─ underlay 198.18.0.0/24
//!   bm1 192.0.2.21 ── sw1 (ovs-vtep    198.18.0.30) ─┘
//! ```

use crate::lab::{Host, Iface, Lab};
use crate::peers::kernel_vtep::KernelVtep;
use crate::peers::ovs_vtep::{EmulatedSwitch, SwitchSpec};
use crate::traffic::ping;
use crate::wait;
use anyhow::{Context, Result};
use std::time::Duration;

/// VNI of the logical switch.
pub const VNI: u32 = 5000;
/// hv1's tunnel IP.
pub const HV1_IP: &str = "198.18.0.10";
/// sw1's tunnel IP.
pub const SW1_IP: &str = "198.18.0.30";
/// vm1 address and MAC.
pub const VM1: (&str, &str) = ("192.0.2.11", "02:00:00:00:00:11");
/// bm1 address and MAC.
pub const BM1: (&str, &str) = ("192.0.2.21", "02:00:00:00:00:21");

/// The built scenario.
#[derive(Debug, Clone)]
pub struct VtepByHand {
    /// The kernel VTEP host.
    pub hv1: Host,
    /// The VM behind hv1.
    pub vm1: Host,
    /// The emulated switch.
    pub sw1: EmulatedSwitch,
    /// The bare-metal host behind sw1's port p0.
    pub bm1: Host,
    /// The underlay segment's namespace (capture point).
    pub underlay: Host,
    /// The kernel VTEP.
    pub vtep: KernelVtep,
}

impl VtepByHand {
    /// What to try.
    pub fn notes(&self) -> Vec<String> {
        vec![
            format!(
                "overlay ping vm1 -> bm1 across VXLAN {VNI}: lab exec vm1 -- ping -c3 {}",
                BM1.0
            ),
            format!(
                "switch database: lab exec hv1 -- vtep-ctl --db={} list-remote-macs ls0",
                self.sw1.db_target()
            ),
            "see the VNI on the wire: lab exec underlay -- tcpdump -ni hv1 udp port 4789"
                .to_string(),
        ]
    }
}

/// Builds the scenario and waits until vm1 reaches bm1.
pub fn build(lab: &Lab) -> Result<VtepByHand> {
    let v = wire(lab)?;
    program_switch_by_hand(&v)?;
    lab.note(format!(
        "vtep: vm1 {} on hv1 {HV1_IP}; bm1 {} on sw1 {SW1_IP} port p0; VNI {VNI}",
        VM1.0, BM1.0
    ))?;
    wait::until(
        "overlay ping vm1 -> bm1 (ovs-vtep acts within seconds)",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || ping::reachable(&v.vm1, BM1.0),
    )
    .context("the hand-configured overlay does not carry traffic")?;
    Ok(v)
}

/// Everything but the controller's part: the underlay, hv1 with vm1 on a
/// hand-made kernel VTEP (flooding to and knowing bm1 behind sw1), and sw1
/// with bm1 on p0 but no logical switch, binding or remote MAC. Tests of a
/// controller (vtep-sync) start from here.
pub fn wire(lab: &Lab) -> Result<VtepByHand> {
    let underlay_seg = lab.add_segment("underlay")?;
    let hv1 = lab.add_host("hv1")?;
    lab.attach(
        &hv1,
        &underlay_seg,
        &Iface::new("eth0", &format!("{HV1_IP}/24")).no_tx_offload(),
    )?;
    let sw1h = lab.add_host("sw1")?;
    // sw1's underlay NIC gets no address: it becomes a port of OVS br-phy.
    lab.attach(&sw1h, &underlay_seg, &Iface::bare("eth0"))?;

    let sw1 = EmulatedSwitch::start(lab, &sw1h, SwitchSpec::new("sw1", &format!("{SW1_IP}/24")))?;
    wait::until(
        "underlay hv1 -> sw1",
        Duration::from_secs(10),
        Duration::from_millis(200),
        || ping::reachable(&hv1, SW1_IP),
    )?;
    let bm1 = lab.add_host("bm1")?;
    sw1.add_bare_metal(
        lab,
        "p0",
        &bm1,
        &Iface::new("eth0", &format!("{}/24", BM1.0))
            .mac(BM1.1)
            .mtu(1450),
    )?;

    let vtep = KernelVtep::create(&hv1, VNI, HV1_IP, "eth0", "vxlan0", "br0")?;
    let vm1 = vtep.add_vm(lab, "vm1", "vm1p", VM1.1, &format!("{}/24", VM1.0))?;
    vtep.flood_to(SW1_IP)?;
    vtep.remote_mac(BM1.1, SW1_IP)?;
    Ok(VtepByHand {
        hv1,
        vm1,
        sw1,
        bm1,
        underlay: underlay_seg.host.clone(),
        vtep,
    })
}

/// The controller's part, by hand, over the switch's TCP OVSDB target as a
/// remote controller would.
fn program_switch_by_hand(v: &VtepByHand) -> Result<()> {
    let db = format!("--db={}", v.sw1.db_target());
    let vc = |args: &[&str]| -> Result<String> {
        let mut argv = vec!["vtep-ctl", db.as_str()];
        argv.extend_from_slice(args);
        v.hv1.run(&argv)
    };
    vc(&[
        "add-ls",
        "ls0",
        "--",
        "set",
        "Logical_Switch",
        "ls0",
        &format!("tunnel_key={VNI}"),
    ])?;
    vc(&["bind-ls", "sw1", "p0", "0", "ls0"])?;
    vc(&["add-ucast-remote", "ls0", VM1.1, HV1_IP])?;
    vc(&["add-mcast-remote", "ls0", "unknown-dst", HV1_IP])?;
    Ok(())
}
