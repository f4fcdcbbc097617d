//! Referential rules, delete policy, revisions and leases of the state machine.

use std::net::Ipv4Addr;

use super::*;
use crate::model::*;

fn ls(name: &str, vni: u32) -> Object {
    Object::LogicalSwitch(LogicalSwitch {
        name: name.into(),
        vni,
        replication: Replication::ServiceNode,
    })
}

fn node(name: &str, kind: NodeKind, last: u8) -> Object {
    Object::TransportNode(TransportNode {
        name: name.into(),
        kind,
        tunnel_ip: Ipv4Addr::new(198, 18, 0, last),
        bfd: BfdParams::default(),
        ovsdb_target: (kind == NodeKind::HardwareSwitch).then(|| "tcp:198.18.1.2:6640".into()),
    })
}

fn group(name: &str, members: &[&str], last: u8) -> Object {
    Object::GatewayGroup(GatewayGroup {
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
        vtep_ip: Ipv4Addr::new(198, 18, 0, last),
        physical_interface: "eth1".into(),
        election: ElectionParams {
            interval_ms: 100,
            md_level: 0,
            ma_name: "ma".into(),
        },
    })
}

fn hw_binding(name: &str, ls: &str, switch: &str, port: &str, vlan: u16) -> Object {
    Object::Binding(Binding {
        name: name.into(),
        logical_switch: ls.into(),
        attachment: Attachment::HardwareSwitch {
            switch: switch.into(),
            port: port.into(),
        },
        vlan,
    })
}

fn gw_binding(name: &str, ls: &str, group: &str, vlan: u16) -> Object {
    Object::Binding(Binding {
        name: name.into(),
        logical_switch: ls.into(),
        attachment: Attachment::GatewayGroup {
            group: group.into(),
        },
        vlan,
    })
}

fn rmac(ls: &str, mac: &str, node: &str) -> Object {
    Object::RemoteMac(RemoteMac {
        logical_switch: ls.into(),
        mac: mac.parse().unwrap(),
        ip: None,
        transport_node: node.into(),
    })
}

fn create(s: &mut State, o: Object) -> Result<Applied, ApplyError> {
    s.apply(&Command::Create { object: o })
}

fn delete(s: &mut State, kind: Kind, name: &str) -> Result<Applied, ApplyError> {
    s.apply(&Command::Delete {
        key: Key::new(kind, name),
    })
}

fn conflict_fields(r: Result<Applied, ApplyError>) -> Vec<String> {
    match r {
        Err(ApplyError::Conflict(v)) => v.into_iter().map(|e| e.field).collect(),
        other => panic!("expected conflict, got {other:?}"),
    }
}

/// A populated store: ls web (5001), db (5002); hv1, gw1, gw2, tor1; group g1; bindings; remote macs.
fn world() -> State {
    let mut s = State::new();
    for o in [
        ls("web", 5001),
        ls("db", 5002),
        node("hv1", NodeKind::Hypervisor, 1),
        node("gw1", NodeKind::Gateway, 2),
        node("gw2", NodeKind::Gateway, 3),
        node("tor1", NodeKind::HardwareSwitch, 4),
        group("g1", &["gw1", "gw2"], 100),
        hw_binding("b-tor", "web", "tor1", "Ethernet1", 10),
        gw_binding("b-gw", "db", "g1", 0),
        rmac("web", "02:00:00:00:00:01", "hv1"),
        rmac("web", "02:00:00:00:00:02", "hv1"),
    ] {
        create(&mut s, o).unwrap();
    }
    s
}

#[test]
fn revisions_increase_by_one_per_change() {
    let mut s = State::new();
    assert_eq!(s.revision(), 0);
    let a = create(&mut s, ls("a", 1)).unwrap();
    assert_eq!(a.revision, 1);
    assert_eq!(a.events.len(), 1);
    assert_eq!(a.events[0].value.create_revision, 1);
    let b = s.apply(&Command::Put { object: ls("a", 2) }).unwrap();
    assert_eq!(b.revision, 2);
    assert_eq!(b.events[0].value.create_revision, 1);
    assert_eq!(b.events[0].value.mod_revision, 2);
    // A refused command does not consume a revision.
    assert!(create(&mut s, ls("a", 3)).is_err());
    assert_eq!(s.revision(), 2);
    assert_eq!(create(&mut s, ls("b", 3)).unwrap().revision, 3);
}

#[test]
fn create_existing_is_conflict() {
    let mut s = world();
    assert_eq!(conflict_fields(create(&mut s, ls("web", 7))), ["name"]);
}

#[test]
fn invalid_object_is_refused_with_every_field() {
    let mut s = State::new();
    match create(&mut s, ls("bad name", 0)) {
        Err(ApplyError::Invalid(v)) => {
            assert_eq!(v.len(), 2);
            assert_eq!(v[0].field, "name");
            assert_eq!(v[1].field, "vni");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn vni_unique() {
    let mut s = world();
    assert_eq!(conflict_fields(create(&mut s, ls("other", 5001))), ["vni"]);
    // Re-putting the same switch with its own VNI is fine.
    s.apply(&Command::Put {
        object: ls("web", 5001),
    })
    .unwrap();
}

#[test]
fn tunnel_ips_unique_across_nodes_and_groups() {
    let mut s = world();
    assert_eq!(
        conflict_fields(create(&mut s, node("hv2", NodeKind::Hypervisor, 1))),
        ["tunnel_ip"]
    );
    assert_eq!(
        conflict_fields(create(&mut s, node("hv2", NodeKind::Hypervisor, 100))),
        ["tunnel_ip"]
    );
    assert_eq!(
        conflict_fields(create(&mut s, group("g2", &["gw1"], 2))),
        ["vtep_ip"]
    );
    // Replacing a node with its own IP is fine.
    s.apply(&Command::Put {
        object: node("hv1", NodeKind::Hypervisor, 1),
    })
    .unwrap();
}

#[test]
fn group_members_must_exist_and_be_gateways() {
    let mut s = world();
    assert_eq!(
        conflict_fields(create(&mut s, group("g2", &["gw1", "nope", "hv1"], 101))),
        ["members[1].node", "members[2].node"]
    );
}

#[test]
fn binding_references() {
    let mut s = world();
    // Unknown logical switch and unknown switch are both reported.
    assert_eq!(
        conflict_fields(create(&mut s, hw_binding("x", "nope", "tor9", "p", 1))),
        ["logical_switch", "attachment.switch"]
    );
    // A hypervisor is not a hardware switch.
    assert_eq!(
        conflict_fields(create(&mut s, hw_binding("x", "web", "hv1", "p", 1))),
        ["attachment.switch"]
    );
    assert_eq!(
        conflict_fields(create(&mut s, gw_binding("x", "web", "g9", 1))),
        ["attachment.group"]
    );
    // (attachment, vlan) is unique...
    assert_eq!(
        conflict_fields(create(
            &mut s,
            hw_binding("x", "db", "tor1", "Ethernet1", 10)
        )),
        ["vlan"]
    );
    assert_eq!(
        conflict_fields(create(&mut s, gw_binding("x", "web", "g1", 0))),
        ["vlan"]
    );
    // ...but another vlan or port is fine.
    create(&mut s, hw_binding("x", "db", "tor1", "Ethernet1", 11)).unwrap();
    create(&mut s, hw_binding("y", "db", "tor1", "Ethernet2", 10)).unwrap();
}

#[test]
fn remote_mac_references() {
    let mut s = world();
    assert_eq!(
        conflict_fields(create(&mut s, rmac("nope", "02:00:00:00:00:09", "ghost"))),
        ["logical_switch", "transport_node"]
    );
}

#[test]
fn node_kind_change_refused_while_relied_on() {
    let mut s = world();
    assert_eq!(
        conflict_fields(s.apply(&Command::Put {
            object: node("gw1", NodeKind::Hypervisor, 2)
        })),
        ["kind"]
    );
    let mut tor = node("tor1", NodeKind::Gateway, 4);
    if let Object::TransportNode(n) = &mut tor {
        n.ovsdb_target = None;
    }
    assert_eq!(
        conflict_fields(s.apply(&Command::Put { object: tor })),
        ["kind"]
    );
}

#[test]
fn delete_policy() {
    let mut s = world();
    // Logical switch with a binding: refused.
    assert_eq!(
        conflict_fields(delete(&mut s, Kind::LogicalSwitch, "web")),
        ["bindings"]
    );
    // Transport nodes still used: refused, each reason named.
    assert_eq!(
        conflict_fields(delete(&mut s, Kind::TransportNode, "tor1")),
        ["bindings"]
    );
    assert_eq!(
        conflict_fields(delete(&mut s, Kind::TransportNode, "gw1")),
        ["gateway_groups"]
    );
    assert_eq!(
        conflict_fields(delete(&mut s, Kind::TransportNode, "hv1")),
        ["remote_macs"]
    );
    assert_eq!(
        conflict_fields(delete(&mut s, Kind::GatewayGroup, "g1")),
        ["bindings"]
    );
    // Unknown: 404.
    assert!(matches!(
        delete(&mut s, Kind::LogicalSwitch, "nope"),
        Err(ApplyError::NotFound(_))
    ));
    // Unbinding, then deleting the switch cascades its remote MACs in one revision.
    delete(&mut s, Kind::Binding, "b-tor").unwrap();
    let rev = s.revision();
    let a = delete(&mut s, Kind::LogicalSwitch, "web").unwrap();
    assert_eq!(a.revision, rev + 1);
    let keys: Vec<_> = a.events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "remote-macs/web/02:00:00:00:00:01",
            "remote-macs/web/02:00:00:00:00:02",
            "logical-switches/web"
        ]
    );
    assert!(a.events.iter().all(|e| e.event_type == EventType::Delete));
    assert_eq!(s.list(Kind::RemoteMac).count(), 0);
    // Now hv1 and tor1 are free.
    delete(&mut s, Kind::TransportNode, "hv1").unwrap();
    delete(&mut s, Kind::TransportNode, "tor1").unwrap();
    delete(&mut s, Kind::Binding, "b-gw").unwrap();
    delete(&mut s, Kind::GatewayGroup, "g1").unwrap();
    delete(&mut s, Kind::TransportNode, "gw1").unwrap();
}

#[test]
fn desired_and_observed_commands_do_not_mix() {
    let mut s = world();
    let obs = Object::SwitchStatus(SwitchStatus {
        switch: "tor1".into(),
        connected: true,
        faults: vec![],
        ..Default::default()
    });
    assert!(matches!(
        create(&mut s, obs.clone()),
        Err(ApplyError::Invalid(_))
    ));
    let g = s
        .apply(&Command::GrantLease {
            ttl_ms: 1000,
            now_ms: 0,
            owner: None,
        })
        .unwrap();
    let id = g.lease.unwrap().id;
    assert!(matches!(
        s.apply(&Command::PutObserved {
            object: ls("z", 9),
            lease: id
        }),
        Err(ApplyError::Invalid(_))
    ));
    assert!(matches!(
        s.apply(&Command::PutObserved {
            object: obs.clone(),
            lease: id + 1
        }),
        Err(ApplyError::NotFound(_))
    ));
    s.apply(&Command::PutObserved {
        object: obs,
        lease: id,
    })
    .unwrap();
}

fn observed(i: u8) -> Object {
    Object::LearnedMac(LearnedMac {
        reporter: "tor1".into(),
        logical_switch: "web".into(),
        mac: MacAddr([2, 0, 0, 0, 1, i]),
        ip: None,
    })
}

#[test]
fn leases_expire_with_their_observed_state() {
    let mut s = world();
    let grant = |s: &mut State, ttl| {
        s.apply(&Command::GrantLease {
            ttl_ms: ttl,
            now_ms: 1_000,
            owner: None,
        })
        .unwrap()
        .lease
        .unwrap()
    };
    let l1 = grant(&mut s, 1_000);
    let l2 = grant(&mut s, 5_000);
    assert_ne!(l1.id, l2.id);
    let rev = s.revision();
    // Grant does not make a revision.
    assert_eq!(s.revision(), rev);
    for i in 0..3 {
        s.apply(&Command::PutObserved {
            object: observed(i),
            lease: l1.id,
        })
        .unwrap();
    }
    s.apply(&Command::PutObserved {
        object: observed(9),
        lease: l2.id,
    })
    .unwrap();
    // Not due yet.
    let a = s.apply(&Command::ExpireLeases { now_ms: 1_999 }).unwrap();
    assert!(a.events.is_empty());
    // Renew pushes the expiry.
    let r = s
        .apply(&Command::RenewLease {
            id: l1.id,
            now_ms: 1_500,
        })
        .unwrap();
    assert_eq!(r.lease.unwrap().expires_at_ms, 2_500);
    assert!(
        s.apply(&Command::ExpireLeases { now_ms: 2_000 })
            .unwrap()
            .events
            .is_empty()
    );
    let before = s.revision();
    let a = s.apply(&Command::ExpireLeases { now_ms: 2_500 }).unwrap();
    assert_eq!(a.revision, before + 1);
    assert_eq!(a.events.len(), 3);
    assert!(a.events.iter().all(|e| e.event_type == EventType::Delete));
    assert!(s.lease(l1.id).is_none());
    assert_eq!(s.list(Kind::LearnedMac).count(), 1);
    assert!(matches!(
        s.apply(&Command::RenewLease {
            id: l1.id,
            now_ms: 3_000
        }),
        Err(ApplyError::NotFound(_))
    ));
    // Revoke removes the rest.
    let a = s.apply(&Command::RevokeLease { id: l2.id }).unwrap();
    assert_eq!(a.events.len(), 1);
    assert_eq!(s.list(Kind::LearnedMac).count(), 0);
}

#[test]
fn moving_observed_key_to_another_lease_detaches_it() {
    let mut s = State::new();
    let grant = |s: &mut State| {
        s.apply(&Command::GrantLease {
            ttl_ms: 1_000,
            now_ms: 0,
            owner: None,
        })
        .unwrap()
        .lease
        .unwrap()
        .id
    };
    let a = grant(&mut s);
    let b = grant(&mut s);
    for lease in [a, b] {
        s.apply(&Command::PutObserved {
            object: observed(1),
            lease,
        })
        .unwrap();
    }
    // Revoking a must not delete the object now held by b.
    assert!(
        s.apply(&Command::RevokeLease { id: a })
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(s.list(Kind::LearnedMac).count(), 1);
}

#[test]
fn refresh_gives_full_ttl() {
    let mut s = State::new();
    let l = s
        .apply(&Command::GrantLease {
            ttl_ms: 1_000,
            now_ms: 0,
            owner: None,
        })
        .unwrap()
        .lease
        .unwrap();
    s.apply(&Command::RefreshLeases { now_ms: 10_000 }).unwrap();
    assert_eq!(s.lease(l.id).unwrap().expires_at_ms, 11_000);
}

#[test]
fn lease_ttl_bounds() {
    let mut s = State::new();
    for ttl in [0, MIN_LEASE_TTL_MS - 1, MAX_LEASE_TTL_MS + 1] {
        assert!(matches!(
            s.apply(&Command::GrantLease {
                ttl_ms: ttl,
                now_ms: 0,
                owner: None,
            }),
            Err(ApplyError::Invalid(_))
        ));
    }
}

#[test]
fn image_round_trip_is_identical_and_deterministic() {
    let mut s = world();
    let l = s
        .apply(&Command::GrantLease {
            ttl_ms: 1_000,
            now_ms: 0,
            owner: None,
        })
        .unwrap()
        .lease
        .unwrap();
    s.apply(&Command::PutObserved {
        object: observed(1),
        lease: l.id,
    })
    .unwrap();
    let copy = State::from_image(
        serde_json::from_str(&serde_json::to_string(&s.to_image()).unwrap()).unwrap(),
    );
    assert_eq!(copy, s);
    // Determinism: replaying the same commands on two states gives the same result.
    let mut a = copy.clone();
    let mut b = s.clone();
    for c in [
        Command::ExpireLeases { now_ms: 5_000 },
        Command::Create {
            object: ls("new", 77),
        },
    ] {
        assert_eq!(a.apply(&c), b.apply(&c));
    }
    assert_eq!(a, b);
}
