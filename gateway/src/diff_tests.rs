//! Unit tests of the sans-IO diff: no kernel, hand-built snapshots. The same
//! behaviour is checked against a real kernel in `tests/kernel_vtep.rs`.

use std::net::Ipv4Addr;

use crate::desired::*;
use crate::diff::{Action, Problem, diff};
use crate::mac::MacAddr;
use crate::observed::*;

const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
const V20: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 20);
const V30: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 30);
const SN1: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const SN2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 101);

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn source_switch(vni: u32) -> DesiredSwitch {
    DesiredSwitch {
        local_tunnel_ip: None,
        vni,
        replication: Replication::SourceNode {
            remote_vteps: vec![V20, V30],
        },
        remote_macs: vec![
            RemoteMac {
                mac: mac("02:00:00:00:00:21"),
                vtep: V20,
                ip: Some(Ipv4Addr::new(192, 0, 2, 21)),
            },
            RemoteMac {
                mac: mac("02:00:00:00:00:31"),
                vtep: V30,
                ip: None,
            },
        ],
        ports: vec![],
        vm_ports: vec![],
    }
}

fn node(switches: Vec<DesiredSwitch>) -> DesiredNode {
    DesiredNode {
        revision: 0,
        local_tunnel_ip: LOCAL,
        underlay_dev: Some("eth0".into()),
        switches,
    }
}

fn link(index: u32, name: &str, kind: LinkKind) -> ObservedLink {
    ObservedLink {
        index,
        name: name.into(),
        alias: None,
        kind,
        master: None,
        parent: None,
        up: true,
        neigh_suppress: None,
    }
}

fn vx_params(vni: u32) -> VxlanParams {
    VxlanParams {
        vni,
        local: Some(LOCAL),
        port: VXLAN_PORT,
        learning: false,
        underlay: Some(2),
    }
}

/// The kernel state that `source_switch(5000)` converges to.
fn converged_source() -> Observed {
    let mut br = link(10, "bhbr5000", LinkKind::Bridge);
    br.alias = Some(link_alias("bridge", 5000));
    let mut vx = link(11, "bhvx5000", LinkKind::Vxlan(vx_params(5000)));
    vx.alias = Some(link_alias("vxlan", 5000));
    vx.master = Some(10);
    vx.neigh_suppress = Some(true);
    let fdb = |m: MacAddr, ip| ObservedFdb {
        ifindex: 11,
        mac: m,
        dst: Some(FdbDst::Ip(ip)),
    };
    Observed {
        links: vec![
            link(1, "lo", LinkKind::Other(None)),
            link(2, "eth0", LinkKind::Other(Some("veth".into()))),
            br,
            vx,
        ],
        fdb: vec![
            fdb(MacAddr::ZERO, V20),
            fdb(MacAddr::ZERO, V30),
            fdb(mac("02:00:00:00:00:21"), V20),
            fdb(mac("02:00:00:00:00:31"), V30),
        ],
        port_fdb: vec![
            ObservedPortFdb {
                port: 11,
                mac: mac("02:00:00:00:00:21"),
            },
            ObservedPortFdb {
                port: 11,
                mac: mac("02:00:00:00:00:31"),
            },
        ],
        neighbours: vec![ObservedNeigh {
            ifindex: 10,
            ip: Ipv4Addr::new(192, 0, 2, 21),
            mac: Some(mac("02:00:00:00:00:21")),
            permanent: true,
        }],
        nexthops: vec![],
        learned: vec![],
    }
}

fn pos(actions: &[Action], f: impl Fn(&Action) -> bool) -> usize {
    actions
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("action missing in {actions:#?}"))
}

#[test]
fn create_from_scratch_in_dependency_order() {
    let mut obs = converged_source();
    obs.links.truncate(2);
    obs.fdb.clear();
    obs.neighbours.clear();
    let plan = diff(&node(vec![source_switch(5000)]), &obs);
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    let a = &plan.actions;
    let br = pos(
        a,
        |x| matches!(x, Action::CreateBridge { name } if name == "bhbr5000"),
    );
    let vx = pos(
        a,
        |x| matches!(x, Action::CreateVxlan { name, vni: 5000, underlay: Some(u), .. } if name == "bhvx5000" && u == "eth0"),
    );
    let enslave = pos(
        a,
        |x| matches!(x, Action::SetMaster { dev, master } if dev == "bhvx5000" && master == "bhbr5000"),
    );
    let suppress = pos(a, |x| {
        matches!(x, Action::SetNeighSuppress { on: true, .. })
    });
    let first_fdb = pos(a, |x| matches!(x, Action::AddFdb { .. }));
    assert!(br < vx && vx < enslave && enslave < suppress && suppress < first_fdb);
    let fdb: Vec<_> = a
        .iter()
        .filter(|x| matches!(x, Action::AddFdb { .. }))
        .collect();
    assert_eq!(fdb.len(), 4, "2 flood remotes + 2 unicast: {fdb:#?}");
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::AddNeigh { .. }))
            .count(),
        1
    );
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::SetAlias { .. }))
            .count(),
        2
    );
}

#[test]
fn converged_state_gives_an_empty_plan() {
    let plan = diff(&node(vec![source_switch(5000)]), &converged_source());
    assert_eq!(plan.actions, vec![]);
}

#[test]
fn foreign_objects_are_never_touched() {
    let mut obs = converged_source();
    obs.links.push(link(20, "br0", LinkKind::Bridge));
    let mut vx0 = link(21, "vxlan0", LinkKind::Vxlan(vx_params(42)));
    vx0.master = Some(20);
    obs.links.push(vx0);
    obs.fdb.push(ObservedFdb {
        ifindex: 21,
        mac: mac("02:00:00:00:00:99"),
        dst: Some(FdbDst::Ip(V20)),
    });
    obs.neighbours.push(ObservedNeigh {
        ifindex: 20,
        ip: Ipv4Addr::new(192, 0, 2, 99),
        mac: None,
        permanent: false,
    });
    obs.nexthops.push(ObservedNexthop {
        id: 1,
        protocol: 3,
        gateway: Some(V20),
        group: vec![],
        fdb: true,
    });
    obs.nexthops.push(ObservedNexthop {
        id: nh_group_id(5000),
        protocol: 3,
        gateway: None,
        group: vec![1],
        fdb: true,
    });
    // Even with nothing desired, only our own objects go.
    let plan = diff(&node(vec![]), &obs);
    for a in &plan.actions {
        let s = a.to_string();
        assert!(
            !s.contains("br0")
                && !s.contains("vxlan0")
                && !s.contains("id 1 ")
                && !s.contains(&nh_group_id(5000).to_string()),
            "{s}"
        );
    }
    assert_eq!(
        plan.actions,
        vec![
            Action::DelLink {
                name: "bhvx5000".into()
            },
            Action::DelLink {
                name: "bhbr5000".into()
            }
        ]
    );
    // A desired service_node switch whose group id is taken reports it instead of stealing it.
    let mut sw = source_switch(5000);
    sw.replication = Replication::ServiceNode {
        service_nodes: vec![SN1],
    };
    let plan = diff(&node(vec![sw]), &obs);
    assert!(
        plan.problems
            .iter()
            .any(|p| p.to_string().contains("belongs to someone else")),
        "{:?}",
        plan.problems
    );
}

#[test]
fn mac_move_is_one_in_place_replace() {
    let mut sw = source_switch(5000);
    sw.remote_macs[1].vtep = V20;
    let plan = diff(&node(vec![sw]), &converged_source());
    assert_eq!(
        plan.actions,
        vec![Action::AddFdb {
            dev: "bhvx5000".into(),
            mac: mac("02:00:00:00:00:31"),
            dst: FdbDst::Ip(V20),
            moved: true
        }]
    );
}

#[test]
fn add_and_remove_macs_and_flood_targets_touch_only_those() {
    let mut sw = source_switch(5000);
    sw.remote_macs.remove(0); // drops the MAC with an IP: neighbour and suppression go too
    sw.remote_macs.push(RemoteMac {
        mac: mac("02:00:00:00:00:41"),
        vtep: V30,
        ip: None,
    });
    sw.replication = Replication::SourceNode {
        remote_vteps: vec![V30],
    };
    let plan = diff(&node(vec![sw]), &converged_source());
    let text: Vec<String> = plan.actions.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        text,
        vec![
            "fdb del 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.20",
            "fdb del 02:00:00:00:00:21 dev bhvx5000 dst 198.18.0.20",
            "fdb del 02:00:00:00:00:21 dev bhvx5000 master",
            "neigh del 192.0.2.21 dev bhbr5000",
            "link set bhvx5000 type bridge_slave neigh_suppress off",
            "fdb replace 02:00:00:00:00:41 dev bhvx5000 dst 198.18.0.30 self permanent",
            "fdb replace 02:00:00:00:00:41 dev bhvx5000 master static",
        ]
    );
}

#[test]
fn service_node_mode_uses_a_shared_member_per_service_node() {
    let mut a = source_switch(5000);
    a.replication = Replication::ServiceNode {
        service_nodes: vec![SN1, SN2],
    };
    let mut b = source_switch(5001);
    b.remote_macs.clear();
    b.replication = Replication::ServiceNode {
        service_nodes: vec![SN2],
    };
    let plan = diff(&node(vec![a, b]), &converged_source());
    let text: Vec<String> = plan.actions.iter().map(|a| a.to_string()).collect();
    let m1 = NH_MEMBER_BASE;
    let m2 = NH_MEMBER_BASE + 1;
    let g0 = nh_group_id(5000);
    let g1 = nh_group_id(5001);
    for want in [
        format!("nexthop add id {m1} via {SN1} fdb"),
        format!("nexthop add id {m2} via {SN2} fdb"),
        format!("nexthop add id {g0} group {m1}/{m2} fdb"),
        format!("nexthop add id {g1} group {m2} fdb"),
        "fdb del 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.20".to_string(),
        "fdb del 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.30".to_string(),
        format!("fdb add 00:00:00:00:00:00 dev bhvx5000 nhid {g0} self permanent"),
        format!("fdb add 00:00:00:00:00:00 dev bhvx5001 nhid {g1} self permanent"),
    ] {
        assert!(text.contains(&want), "{want} missing from {text:#?}");
    }
    // Flood entries leave before the nhid entry arrives (the kernel refuses to mix).
    let del = text
        .iter()
        .position(|t| t.starts_with("fdb del 00:00"))
        .unwrap();
    let add = text
        .iter()
        .position(|t| t.contains(&format!("nhid {g0}")))
        .unwrap();
    assert!(del < add);
}

fn converged_service(members: &[(u32, Ipv4Addr)]) -> Observed {
    let mut obs = converged_source();
    obs.fdb.retain(|e| !e.mac.is_zero());
    let g = nh_group_id(5000);
    obs.fdb.push(ObservedFdb {
        ifindex: 11,
        mac: MacAddr::ZERO,
        dst: Some(FdbDst::Nexthop(g)),
    });
    for (id, ip) in members {
        obs.nexthops.push(ObservedNexthop {
            id: *id,
            protocol: NEXTHOP_PROTOCOL,
            gateway: Some(*ip),
            group: vec![],
            fdb: true,
        });
    }
    obs.nexthops.push(ObservedNexthop {
        id: g,
        protocol: NEXTHOP_PROTOCOL,
        gateway: None,
        group: members.iter().map(|m| m.0).collect(),
        fdb: true,
    });
    obs
}

#[test]
fn flood_list_change_replaces_the_group_without_fdb_churn() {
    let m1 = NH_MEMBER_BASE;
    let obs = converged_service(&[(m1, SN1)]);
    let mut sw = source_switch(5000);
    sw.replication = Replication::ServiceNode {
        service_nodes: vec![SN1],
    };
    assert_eq!(diff(&node(vec![sw.clone()]), &obs).actions, vec![]);

    // SN1 -> SN2: new member, group replaced in place, old member deleted only afterwards.
    sw.replication = Replication::ServiceNode {
        service_nodes: vec![SN2],
    };
    let plan = diff(&node(vec![sw]), &obs);
    let g = nh_group_id(5000);
    assert_eq!(
        plan.actions,
        vec![
            Action::AddNexthop {
                id: m1 + 1,
                gateway: SN2
            },
            Action::SetNexthopGroup {
                id: g,
                members: vec![m1 + 1],
                replace: true
            },
            Action::DelNexthop { id: m1 },
        ]
    );
}

#[test]
fn switching_to_source_node_removes_group_after_its_fdb_entry() {
    let m1 = NH_MEMBER_BASE;
    let obs = converged_service(&[(m1, SN1)]);
    let plan = diff(&node(vec![source_switch(5000)]), &obs);
    let text: Vec<String> = plan.actions.iter().map(|a| a.to_string()).collect();
    let g = nh_group_id(5000);
    assert_eq!(
        text,
        vec![
            format!("fdb del 00:00:00:00:00:00 dev bhvx5000 nhid {g}"),
            format!("nexthop del id {g}"),
            format!("nexthop del id {m1}"),
            "fdb append 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.20 self permanent".to_string(),
            "fdb append 00:00:00:00:00:00 dev bhvx5000 dst 198.18.0.30 self permanent".to_string(),
        ]
    );
}

#[test]
fn wrong_vxlan_parameters_recreate_the_device_and_its_entries() {
    let mut obs = converged_source();
    if let LinkKind::Vxlan(p) = &mut obs.links[3].kind {
        p.learning = true;
    }
    let plan = diff(&node(vec![source_switch(5000)]), &obs);
    let a = &plan.actions;
    let del = pos(
        a,
        |x| matches!(x, Action::DelLink { name } if name == "bhvx5000"),
    );
    let create = pos(a, |x| matches!(x, Action::CreateVxlan { .. }));
    assert!(del < create);
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::AddFdb { .. }))
            .count(),
        4
    );
    assert!(
        !a.iter().any(|x| matches!(x, Action::DelFdb { .. })),
        "entries vanish with the device"
    );
}

#[test]
fn a_switch_sourced_from_a_group_ip_uses_it_and_rejects_it_as_a_target() {
    // A gateway bridges this switch for its group: VXLAN from the group VTEP IP.
    let mut sw = source_switch(5000);
    sw.local_tunnel_ip = Some(SN1);
    let plan = diff(&node(vec![sw.clone()]), &converged_source());
    assert!(plan.actions.iter().any(|x| matches!(
        x,
        Action::CreateVxlan { local, .. } if *local == SN1
    )));
    // The node's own IP is a legal flood target of such a switch; its own source is not.
    sw.replication = Replication::SourceNode {
        remote_vteps: vec![LOCAL, SN1],
    };
    let errs = node(vec![sw]).validate();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].problem.contains(&SN1.to_string()));
}

#[test]
fn tampering_is_repaired() {
    // Released from the bridge (which also clears the port flag), lost its alias, taken down.
    let mut obs = converged_source();
    obs.port_fdb.clear();
    obs.links[3].master = None;
    obs.links[3].neigh_suppress = None;
    obs.links[3].alias = None;
    obs.links[3].up = false;
    let plan = diff(&node(vec![source_switch(5000)]), &obs);
    let text: Vec<String> = plan.actions.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        text,
        vec![
            "link set bhvx5000 alias bridgehead:vxlan:vni=5000",
            "link set bhvx5000 master bhbr5000",
            "link set bhvx5000 up",
            "link set bhvx5000 type bridge_slave neigh_suppress on",
            // Releasing the port flushed its bridge FDB entries.
            "fdb replace 02:00:00:00:00:21 dev bhvx5000 master static",
            "fdb replace 02:00:00:00:00:31 dev bhvx5000 master static",
        ]
    );
}

#[test]
fn ports_untagged_tagged_and_foreign() {
    let mut obs = converged_source();
    obs.links
        .push(link(3, "eth1", LinkKind::Other(Some("veth".into()))));
    let mut eth2 = link(4, "eth2", LinkKind::Other(Some("veth".into())));
    eth2.master = Some(99); // someone else's bridge
    obs.links.push(eth2);
    let mut stray = link(5, "eth3", LinkKind::Other(None));
    stray.master = Some(10); // on our bridge but not bound
    obs.links.push(stray);
    let mut sw = source_switch(5000);
    sw.ports = vec![
        PortBinding {
            ifname: "eth1".into(),
            vlan: 0,
        },
        PortBinding {
            ifname: "eth2".into(),
            vlan: 0,
        },
        PortBinding {
            ifname: "eth0".into(),
            vlan: 100,
        },
        PortBinding {
            ifname: "nope".into(),
            vlan: 0,
        },
    ];
    let plan = diff(&node(vec![sw]), &obs);
    let text: Vec<String> = plan.actions.iter().map(|a| a.to_string()).collect();
    let vname = vlan_name(2, 100);
    assert_eq!(
        text,
        vec![
            "link set eth3 nomaster".to_string(),
            "link set eth1 master bhbr5000".to_string(),
            format!("link add {vname} link eth0 type vlan id 100"),
            format!("link set {vname} alias bridgehead:vlan:vni=5000"),
            format!("link set {vname} master bhbr5000"),
            format!("link set {vname} up"),
        ]
    );
    let problems: Vec<String> = plan.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("eth2") && problems[0].contains("foreign master"));
    assert!(problems[1].contains("nope"));
}

#[test]
fn removed_switch_goes_vxlan_first_and_missing_underlay_blocks_creation() {
    let plan = diff(&node(vec![]), &converged_source());
    assert_eq!(
        plan.actions,
        vec![
            Action::DelLink {
                name: "bhvx5000".into()
            },
            Action::DelLink {
                name: "bhbr5000".into()
            }
        ]
    );
    let mut n = node(vec![source_switch(5001)]);
    n.underlay_dev = Some("eth9".into());
    let plan = diff(&n, &Observed::default());
    assert!(plan.problems.iter().any(|p| p.to_string().contains("eth9")));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateVxlan { .. } | Action::AddFdb { .. }))
    );
}

fn with_vm(macs: &[&str]) -> DesiredSwitch {
    let mut sw = source_switch(5000);
    sw.vm_ports = vec![VmPort {
        ifname: "tap1".into(),
        macs: macs.iter().map(|m| mac(m)).collect(),
    }];
    sw
}

fn text(actions: &[Action]) -> Vec<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

#[test]
fn vm_port_is_attached_and_its_macs_pinned() {
    let mut obs = converged_source();
    let mut tap = link(30, "tap1", LinkKind::Other(Some("tun".into())));
    tap.up = false;
    obs.links.push(tap);
    let plan = diff(&node(vec![with_vm(&["02:00:00:00:77:01"])]), &obs);
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    assert_eq!(
        text(&plan.actions),
        vec![
            "link set tap1 master bhbr5000",
            "link set tap1 up",
            "fdb replace 02:00:00:00:77:01 dev tap1 master static",
        ]
    );

    // Attached and pinned: nothing to do; a pin changed: only that pin.
    let mut obs = converged_source();
    let mut tap = link(30, "tap1", LinkKind::Other(Some("tun".into())));
    tap.master = Some(10);
    obs.links.push(tap);
    obs.port_fdb.push(ObservedPortFdb {
        port: 30,
        mac: mac("02:00:00:00:77:01"),
    });
    let plan = diff(&node(vec![with_vm(&["02:00:00:00:77:01"])]), &obs);
    assert_eq!(plan.actions, vec![]);
    let plan = diff(&node(vec![with_vm(&["02:00:00:00:77:02"])]), &obs);
    assert_eq!(
        text(&plan.actions),
        vec![
            "fdb del 02:00:00:00:77:01 dev tap1 master",
            "fdb replace 02:00:00:00:77:02 dev tap1 master static",
        ]
    );

    // No longer desired: released, never deleted (the hypervisor owns it).
    let plan = diff(&node(vec![source_switch(5000)]), &obs);
    assert_eq!(text(&plan.actions), vec!["link set tap1 nomaster"]);
}

#[test]
fn missing_vm_port_is_expected_and_foreign_master_is_left_alone() {
    let plan = diff(&node(vec![with_vm(&[])]), &converged_source());
    assert_eq!(plan.actions, vec![]);
    assert_eq!(
        plan.problems,
        vec![Problem::MissingVmPort {
            vni: 5000,
            ifname: "tap1".into()
        }]
    );
    assert!(plan.problems[0].is_expected());

    let mut obs = converged_source();
    obs.links.push(link(40, "virbr0", LinkKind::Bridge));
    let mut tap = link(30, "tap1", LinkKind::Other(None));
    tap.master = Some(40);
    obs.links.push(tap);
    let plan = diff(&node(vec![with_vm(&["02:00:00:00:77:01"])]), &obs);
    assert_eq!(plan.actions, vec![]);
    assert!(matches!(
        plan.problems[..],
        [Problem::ForeignMaster { master: 40, .. }]
    ));
    assert!(!plan.problems[0].is_expected());
}
