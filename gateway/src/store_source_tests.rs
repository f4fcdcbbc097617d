//! Unit tests of [`super::compute`] on a small store: the lab's overlay
//! (two logical switches with overlapping tenant IPs, a gateway in two
//! groups, a hypervisor, a hardware switch, a service node).

use super::*;
use api::model::{BfdParams, ElectionParams, GroupMember};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn amac(s: &str) -> ApiMac {
    s.parse().unwrap()
}

fn gmac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn node(name: &str, kind: NodeKind, tunnel_ip: &str) -> TransportNode {
    TransportNode {
        name: name.into(),
        kind,
        tunnel_ip: ip(tunnel_ip),
        bfd: BfdParams::default(),
        ovsdb_target: (kind == NodeKind::HardwareSwitch).then(|| "tcp:198.18.1.30:6640".into()),
    }
}

fn group(name: &str, members: &[&str], vtep_ip: &str, nic: &str) -> GatewayGroup {
    GatewayGroup {
        name: name.into(),
        members: members
            .iter()
            .enumerate()
            .map(|(i, m)| GroupMember {
                node: (*m).into(),
                mep_id: i as u16 + 1,
                priority: 0,
            })
            .collect(),
        vtep_ip: ip(vtep_ip),
        physical_interface: nic.into(),
        election: ElectionParams {
            interval_ms: 100,
            md_level: 0,
            ma_name: name.into(),
        },
    }
}

fn gw_binding(name: &str, ls: &str, group: &str) -> Binding {
    Binding {
        name: name.into(),
        logical_switch: ls.into(),
        attachment: Attachment::GatewayGroup {
            group: group.into(),
        },
        vlan: 0,
    }
}

fn vm(ls: &str, m: &str, ip_: &str, at: &str) -> ApiRemoteMac {
    ApiRemoteMac {
        logical_switch: ls.into(),
        mac: amac(m),
        ip: Some(ip(ip_)),
        transport_node: at.into(),
    }
}

fn learned(reporter: &str, ls: &str, m: &str) -> LearnedMac {
    LearnedMac {
        reporter: reporter.into(),
        logical_switch: ls.into(),
        mac: amac(m),
        ip: None,
    }
}

const VM1: &str = "02:00:00:00:01:01";
const VM2: &str = "02:00:00:00:01:02";
const BM1: &str = "02:00:00:00:02:01";
const BM2: &str = "02:00:00:00:02:02";
const BM3: &str = "02:00:00:00:02:03";

/// ls-blue (5000, source_node): vm1 on hv1, bm2 behind gg1 (phys1), bm1 on sw1 p0.
/// ls-red (5001, source_node): vm2 on hv1, bm3 behind gg2 (phys2).
/// ls-green (5002, service_node): only hv2's vm.
fn store() -> StoreObjects {
    StoreObjects {
        logical_switches: vec![
            LogicalSwitch {
                name: "ls-blue".into(),
                vni: 5000,
                replication: ApiReplication::SourceNode,
            },
            LogicalSwitch {
                name: "ls-red".into(),
                vni: 5001,
                replication: ApiReplication::SourceNode,
            },
            LogicalSwitch {
                name: "ls-green".into(),
                vni: 5002,
                replication: ApiReplication::ServiceNode,
            },
        ],
        transport_nodes: vec![
            node("hv1", NodeKind::Hypervisor, "198.18.0.10"),
            node("hv2", NodeKind::Hypervisor, "198.18.0.11"),
            node("gw1", NodeKind::Gateway, "198.18.0.20"),
            node("sw1", NodeKind::HardwareSwitch, "198.18.0.30"),
            node("sn1", NodeKind::ServiceNode, "198.18.0.40"),
        ],
        gateway_groups: vec![
            group("gg1", &["gw1"], "198.18.0.100", "phys1"),
            group("gg2", &["gw1"], "198.18.0.101", "phys2"),
        ],
        bindings: vec![
            gw_binding("blue-gg1", "ls-blue", "gg1"),
            gw_binding("red-gg2", "ls-red", "gg2"),
            Binding {
                name: "blue-sw1".into(),
                logical_switch: "ls-blue".into(),
                attachment: Attachment::HardwareSwitch {
                    switch: "sw1".into(),
                    port: "p0".into(),
                },
                vlan: 0,
            },
        ],
        remote_macs: vec![
            vm("ls-blue", VM1, "192.0.2.11", "hv1"),
            vm("ls-red", VM2, "192.0.2.11", "hv1"),
            vm("ls-green", "02:00:00:00:03:01", "192.0.2.31", "hv2"),
        ],
        learned_macs: vec![
            learned("gw1", "ls-blue", BM2),
            learned("gw1", "ls-red", BM3),
            learned("sw1", "ls-blue", BM1),
        ],
    }
}

fn hv1_local() -> LocalConfig {
    LocalConfig {
        underlay_dev: Some("eth0".into()),
        vm_ports: [(gmac(VM1), "vm1".to_string()), (gmac(VM2), "vm2".into())]
            .into_iter()
            .collect(),
    }
}

fn switch(c: &Computed, vni: u32) -> &DesiredSwitch {
    c.desired
        .switches
        .iter()
        .find(|s| s.vni == vni)
        .unwrap_or_else(|| panic!("VNI {vni} not present: {:#?}", c.desired))
}

fn remote(s: &DesiredSwitch) -> Vec<(String, Ipv4Addr, Option<Ipv4Addr>)> {
    s.remote_macs
        .iter()
        .map(|m| (m.mac.to_string(), m.vtep, m.ip))
        .collect()
}

#[test]
fn hypervisor_in_host_mode() {
    let c = compute("hv1", &store(), &hv1_local(), 42).unwrap();
    assert!(c.skipped.is_empty(), "{:#?}", c.skipped);
    assert_eq!(c.desired.revision, 42);
    assert_eq!(c.desired.local_tunnel_ip, ip("198.18.0.10"));
    assert_eq!(c.desired.underlay_dev.as_deref(), Some("eth0"));
    // Only the switches with a VM of hv1: not ls-green.
    let vnis: Vec<u32> = c.desired.switches.iter().map(|s| s.vni).collect();
    assert_eq!(vnis, [5000, 5001]);
    assert_eq!(c.switch_names[&5000], "ls-blue");

    let blue = switch(&c, 5000);
    assert_eq!(blue.local_tunnel_ip, None);
    assert_eq!(
        blue.vm_ports,
        [VmPort {
            ifname: "vm1".into(),
            macs: vec![gmac(VM1)]
        }]
    );
    // bm1 behind the hardware switch, bm2 behind gw1's group (not gw1's own IP).
    assert_eq!(
        remote(blue),
        [
            (BM1.into(), ip("198.18.0.30"), None),
            (BM2.into(), ip("198.18.0.100"), None)
        ]
    );
    assert_eq!(
        blue.replication,
        Replication::SourceNode {
            remote_vteps: vec![ip("198.18.0.30"), ip("198.18.0.100")]
        }
    );
    // ls-red: the other group's IP, and nothing of ls-blue.
    let red = switch(&c, 5001);
    assert_eq!(remote(red), [(BM3.into(), ip("198.18.0.101"), None)]);
    assert_eq!(
        red.replication,
        Replication::SourceNode {
            remote_vteps: vec![ip("198.18.0.101")]
        }
    );
    assert!(c.desired.validate().is_empty());
}

#[test]
fn gateway_bridges_each_group_with_its_vtep_ip() {
    let local = LocalConfig {
        underlay_dev: Some("eth0".into()),
        ..LocalConfig::default()
    };
    let c = compute("gw1", &store(), &local, 7).unwrap();
    assert!(c.skipped.is_empty(), "{:#?}", c.skipped);
    let vnis: Vec<u32> = c.desired.switches.iter().map(|s| s.vni).collect();
    assert_eq!(vnis, [5000, 5001]);
    let blue = switch(&c, 5000);
    assert_eq!(blue.local_tunnel_ip, Some(ip("198.18.0.100")));
    assert_eq!(
        blue.ports,
        [PortBinding {
            ifname: "phys1".into(),
            vlan: 0
        }]
    );
    assert!(blue.vm_ports.is_empty());
    // Its own learned MAC (bm2) is the kernel bridge's business, not a remote MAC.
    assert_eq!(
        remote(blue),
        [
            (VM1.into(), ip("198.18.0.10"), Some(ip("192.0.2.11"))),
            (BM1.into(), ip("198.18.0.30"), None)
        ]
    );
    assert_eq!(
        blue.replication,
        Replication::SourceNode {
            remote_vteps: vec![ip("198.18.0.10"), ip("198.18.0.30")]
        }
    );
    let red = switch(&c, 5001);
    assert_eq!(red.local_tunnel_ip, Some(ip("198.18.0.101")));
    assert_eq!(red.ports[0].ifname, "phys2");
    // Overlapping tenant IPs stay per switch: vm2 has vm1's IP, in ls-red.
    assert_eq!(
        remote(red),
        [(VM2.into(), ip("198.18.0.10"), Some(ip("192.0.2.11")))]
    );
    assert!(c.desired.validate().is_empty());
}

#[test]
fn fellow_group_member_and_group_reporters_resolve_to_the_group() {
    let mut s = store();
    s.transport_nodes
        .push(node("gw2", NodeKind::Gateway, "198.18.0.21"));
    s.gateway_groups[0].members.push(GroupMember {
        node: "gw2".into(),
        mep_id: 2,
        priority: 0,
    });
    // gw2 learned a host on the shared physical segment; a reporter may also be a group.
    s.learned_macs
        .push(learned("gw2", "ls-blue", "02:00:00:00:02:09"));
    s.learned_macs
        .push(learned("gg2", "ls-red", "02:00:00:00:02:0a"));
    let c = compute("gw1", &s, &LocalConfig::default(), 1).unwrap();
    assert!(
        !remote(switch(&c, 5000))
            .iter()
            .any(|(m, ..)| m == "02:00:00:00:02:09"),
        "a fellow member's MAC is on our own segment"
    );
    assert!(
        !remote(switch(&c, 5001))
            .iter()
            .any(|(m, ..)| m == "02:00:00:00:02:0a")
    );
    let h = compute("hv1", &s, &hv1_local(), 1).unwrap();
    assert!(remote(switch(&h, 5000)).contains(&(
        "02:00:00:00:02:09".into(),
        ip("198.18.0.100"),
        None
    )));
    assert!(remote(switch(&h, 5001)).contains(&(
        "02:00:00:00:02:0a".into(),
        ip("198.18.0.101"),
        None
    )));
}

#[test]
fn service_node_replication_floods_to_service_nodes() {
    let c = compute("hv2", &store(), &LocalConfig::default(), 1).unwrap();
    let green = switch(&c, 5002);
    assert_eq!(
        green.replication,
        Replication::ServiceNode {
            service_nodes: vec![ip("198.18.0.40")]
        }
    );
    // No --vm-port for its VM: the switch is present, the MAC reported.
    assert!(green.vm_ports.is_empty());
    assert!(
        c.skipped.iter().any(|l| l.contains("no local port")),
        "{:#?}",
        c.skipped
    );
}

#[test]
fn conflicts_are_dropped_not_made_invalid() {
    let mut s = store();
    // Placed wins over learned; a VM MAC of ours learned elsewhere is ignored.
    s.learned_macs.push(learned("sw1", "ls-blue", VM2));
    s.learned_macs.push(learned("sw1", "ls-blue", VM1));
    s.remote_macs.push(vm("ls-blue", BM1, "192.0.2.21", "hv2"));
    // Two MACs claiming one IP in one switch: the second loses its IP only.
    s.remote_macs
        .push(vm("ls-blue", "02:00:00:00:04:01", "192.0.2.21", "hv2"));
    // Same port name for a VM in another switch.
    let mut local = hv1_local();
    local.vm_ports.insert(gmac(VM2), "vm1".into());
    let c = compute("hv1", &s, &local, 1).unwrap();
    assert!(
        c.desired.validate().is_empty(),
        "{:?}",
        c.desired.validate()
    );
    let blue = switch(&c, 5000);
    let r = remote(blue);
    assert!(r.contains(&(BM1.into(), ip("198.18.0.11"), Some(ip("192.0.2.21")))));
    assert!(r.contains(&("02:00:00:00:04:01".into(), ip("198.18.0.11"), None)));
    assert!(r.contains(&(VM2.into(), ip("198.18.0.30"), None)));
    assert!(!r.iter().any(|(m, ..)| m == VM1));
    assert!(switch(&c, 5001).vm_ports.is_empty());
    for what in [
        "VM MAC of this node",
        "already given",
        "already serves VNI 5000",
    ] {
        assert!(
            c.skipped.iter().any(|l| l.contains(what)),
            "{what}: {:#?}",
            c.skipped
        );
    }
}

#[test]
fn switch_bound_to_two_groups_of_one_gateway_keeps_the_first() {
    let mut s = store();
    s.bindings.push(gw_binding("blue-gg2", "ls-blue", "gg2"));
    let c = compute("gw1", &s, &LocalConfig::default(), 1).unwrap();
    let blue = switch(&c, 5000);
    assert_eq!(blue.local_tunnel_ip, Some(ip("198.18.0.100")));
    assert_eq!(blue.ports.len(), 1);
    assert!(c.skipped.iter().any(|l| l.contains("already bridged here")));
    assert!(c.desired.validate().is_empty());
}

#[test]
fn tagged_and_untagged_on_one_nic_keep_the_untagged() {
    let mut s = store();
    s.logical_switches.push(LogicalSwitch {
        name: "ls-tagged".into(),
        vni: 5003,
        replication: ApiReplication::SourceNode,
    });
    let mut b = gw_binding("tagged-gg1", "ls-tagged", "gg1");
    b.vlan = 10;
    s.bindings.push(b);
    let c = compute("gw1", &s, &LocalConfig::default(), 1).unwrap();
    assert!(switch(&c, 5003).ports.is_empty());
    assert!(
        c.desired.validate().is_empty(),
        "{:?}",
        c.desired.validate()
    );
}

#[test]
fn unknown_or_foreign_nodes_are_errors() {
    assert_eq!(
        compute("nobody", &store(), &LocalConfig::default(), 1),
        Err(ComputeError::UnknownNode("nobody".into()))
    );
    assert!(matches!(
        compute("sw1", &store(), &LocalConfig::default(), 1),
        Err(ComputeError::NotServed {
            kind: NodeKind::HardwareSwitch,
            ..
        })
    ));
    // A node with nothing on it is fine: no switches.
    let mut s = store();
    s.transport_nodes
        .push(node("hv9", NodeKind::Hypervisor, "198.18.0.19"));
    let c = compute("hv9", &s, &LocalConfig::default(), 1).unwrap();
    assert!(c.desired.switches.is_empty());
}

#[test]
fn from_objects_sorts_by_kind() {
    let s = store();
    let objs: Vec<Object> = s
        .logical_switches
        .iter()
        .cloned()
        .map(Object::LogicalSwitch)
        .chain(s.transport_nodes.iter().cloned().map(Object::TransportNode))
        .chain(s.gateway_groups.iter().cloned().map(Object::GatewayGroup))
        .chain(s.bindings.iter().cloned().map(Object::Binding))
        .chain(s.remote_macs.iter().cloned().map(Object::RemoteMac))
        .chain(s.learned_macs.iter().cloned().map(Object::LearnedMac))
        .chain([Object::SwitchStatus(api::model::SwitchStatus {
            switch: "sw1".into(),
            connected: true,
            faults: vec![],
            ..Default::default()
        })])
        .collect();
    assert_eq!(StoreObjects::from_objects(&objs), s);
}
