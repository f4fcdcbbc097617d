//! Host mode: the same loop on two "hypervisors", each with VM ports (veths
//! whose other end is a VM namespace) in two logical switches. VM MACs are
//! declared (pinned on their ports); traffic crosses VXLAN within a switch
//! and never between switches.
//!
//! Run: `cargo test -p gateway --features root-tests --test host_mode` (as root).
#![cfg(feature = "root-tests")]

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use gateway::learning::LearnEvent;
use gateway::{DesiredNode, DesiredSwitch, MacAddr, RemoteMac, Replication, VmPort};
use support::{Ns, Running, run, wait_for};

const HV1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const HV2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);

/// A VM: its namespace, port name on the hypervisor, MAC, IP, switch.
struct Vm {
    port: &'static str,
    mac: &'static str,
    ip: &'static str,
    vni: u32,
}

const VM1: Vm = Vm {
    port: "vm1",
    mac: "02:00:00:00:05:01",
    ip: "192.0.2.1",
    vni: 5000,
};
const VM2: Vm = Vm {
    port: "vm2",
    mac: "02:00:00:00:05:02",
    ip: "192.0.2.2",
    vni: 5001,
};
const VM3: Vm = Vm {
    port: "vm3",
    mac: "02:00:00:00:05:03",
    ip: "192.0.2.3",
    vni: 5000,
};
const VM4: Vm = Vm {
    port: "vm4",
    mac: "02:00:00:00:05:04",
    ip: "192.0.2.4",
    vni: 5001,
};

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// The desired state of a hypervisor with `local` VMs, the others behind `peer`.
fn node(me: Ipv4Addr, peer: Ipv4Addr, local: &[&Vm], remote: &[&Vm]) -> DesiredNode {
    let switch = |vni: u32| DesiredSwitch {
        local_tunnel_ip: None,
        vni,
        replication: Replication::SourceNode {
            remote_vteps: vec![peer],
        },
        remote_macs: remote
            .iter()
            .filter(|v| v.vni == vni)
            .map(|v| RemoteMac {
                mac: mac(v.mac),
                vtep: peer,
                ip: Some(v.ip.parse().unwrap()),
            })
            .collect(),
        ports: vec![],
        vm_ports: local
            .iter()
            .filter(|v| v.vni == vni)
            .map(|v| VmPort {
                ifname: v.port.into(),
                macs: vec![mac(v.mac)],
            })
            .collect(),
    };
    DesiredNode {
        revision: 0,
        local_tunnel_ip: me,
        underlay_dev: Some("eth0".into()),
        switches: vec![switch(5000), switch(5001)],
    }
}

/// Starts a VM: a namespace whose `eth0` is the peer of port `vm.port` in `hv`.
fn boot(hv: &Ns, vm: &Vm) -> Ns {
    let ns = Ns::new("vm");
    run(&[
        "ip", "link", "add", vm.port, "netns", &hv.name, "type", "veth", "peer", "name", "eth0",
        "netns", &ns.name,
    ]);
    ns.ip(&[
        "link", "set", "eth0", "address", vm.mac, "mtu", "1450", "up",
    ]);
    ns.ip(&["addr", "add", &format!("{}/24", vm.ip), "dev", "eth0"]);
    ns
}

fn pings(from: &Ns, to: &Vm) -> bool {
    from.try_exec(&["ping", "-c", "2", "-i", "0.2", "-W", "1", to.ip])
}

fn attached(hv: &Ns, vm: &Vm) -> bool {
    let br = format!("bhbr{}", vm.vni);
    hv.link(vm.port).is_some_and(|l| l["master"] == br.as_str())
}

fn pinned(hv: &Ns, vm: &Vm) -> bool {
    hv.fdb(vm.port)
        .iter()
        .any(|e| e["mac"] == vm.mac && e["state"] == "static")
}

#[test]
fn vms_in_two_switches_on_two_hypervisors() {
    let hv1 = Ns::new("hv");
    let hv2 = Ns::new("hv");
    run(&[
        "ip", "link", "add", "eth0", "netns", &hv1.name, "type", "veth", "peer", "name", "eth0",
        "netns", &hv2.name,
    ]);
    for (hv, addr) in [(&hv1, "198.18.0.10/24"), (&hv2, "198.18.0.20/24")] {
        hv.ip(&["addr", "add", addr, "dev", "eth0"]);
        hv.ip(&["link", "set", "eth0", "up"]);
    }
    let vm1 = boot(&hv1, &VM1);
    let vm2 = boot(&hv1, &VM2);
    let _vm3 = boot(&hv2, &VM3);
    // VM4 is not running yet: its port does not exist.

    let d1 = node(HV1, HV2, &[&VM1, &VM2], &[&VM3, &VM4]);
    let d2 = node(HV2, HV1, &[&VM3, &VM4], &[&VM1, &VM2]);
    let mut r1 = Running::start(&hv1, d1.clone());
    let mut r2 = Running::start(&hv2, d2);
    let limit = Duration::from_secs(5);
    wait_for("hv1 VM ports attached and pinned", limit, || {
        attached(&hv1, &VM1) && attached(&hv1, &VM2) && pinned(&hv1, &VM1) && pinned(&hv1, &VM2)
    });
    wait_for("hv2 VM3 attached", limit, || {
        attached(&hv2, &VM3) && pinned(&hv2, &VM3)
    });
    // Missing VM port is normal, not a failure.
    let rep = r2.reports.borrow().clone();
    assert!(rep.failed.is_empty(), "{:#?}", rep.failed);

    // VM4 boots: the loop attaches its port on the link notification.
    let vm4 = boot(&hv2, &VM4);
    let t = wait_for("VM4 attached once its port appears", limit, || {
        attached(&hv2, &VM4) && pinned(&hv2, &VM4)
    });
    eprintln!("late VM port attached and pinned {t:?} after it appeared");

    assert!(pings(&vm1, &VM3), "VM1 -> VM3 (switch 5000) across VXLAN");
    assert!(pings(&vm2, &VM4), "VM2 -> VM4 (switch 5001) across VXLAN");
    assert!(pings(&vm4, &VM2), "VM4 -> VM2");
    assert!(!pings(&vm2, &VM3), "switch 5001 must not reach switch 5000");
    assert!(!pings(&vm1, &VM4), "switch 5000 must not reach switch 5001");

    // Declared (pinned) VM MACs are not "learned".
    for r in [&mut r1, &mut r2] {
        while let Some(ev) = r.next_event(Duration::from_millis(50)) {
            if let LearnEvent::Learned { mac: m, .. } = &ev {
                assert!(
                    ![VM1.mac, VM2.mac, VM3.mac, VM4.mac].contains(&m.to_string().as_str()),
                    "declared VM MAC reported learned: {ev:?}"
                );
            }
        }
    }

    // VM1 leaves this hypervisor: its port is released, not deleted.
    let mut d1b = d1;
    d1b.switches[0].vm_ports.clear();
    r1.set(d1b);
    wait_for("VM1 port released", limit, || {
        hv1.link(VM1.port)
            .is_some_and(|l| l.get("master").is_none())
    });
    assert!(!pinned(&hv1, &VM1));
    assert!(attached(&hv1, &VM2));
    for r in [&r1, &r2] {
        let rep = r.reports.borrow().clone();
        assert!(rep.failed.is_empty(), "{:#?}", rep.failed);
    }
    drop((r1, r2, vm4));
}
