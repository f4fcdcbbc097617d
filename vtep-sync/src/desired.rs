//! What one hardware switch should hold, as plain data, and the pure
//! function that derives it from the controller's resource model.
//!
//! The desired state says nothing about OVSDB rows or UUIDs: it is keyed by
//! names, MACs and IPs, so that the planner ([`crate::plan`]) can match it
//! against whatever rows the switch happens to have (after a restart, a
//! reconnect, or a switch that was wiped).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use api::model::{
    Attachment, BfdParams, Binding, GatewayGroup, LearnedMac, LogicalSwitch, MacAddr, NodeKind,
    RemoteMac, Replication, TransportNode,
};
use api::placement::Placement;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Everything the controller wants on one switch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredState {
    /// The switch's own tunnel IPs; never used as a remote locator.
    #[serde(default)]
    pub local_tunnel_ips: BTreeSet<Ipv4Addr>,
    /// Logical switches bound on this switch, by name.
    #[serde(default)]
    pub logical_switches: BTreeMap<String, DesiredLogicalSwitch>,
    /// Port name -> VLAN (0 = untagged) -> logical switch name.
    #[serde(default)]
    pub bindings: BTreeMap<String, BTreeMap<u16, String>>,
    /// Remote tunnel IP -> `Tunnel.bfd_params` for tunnels toward it.
    #[serde(default)]
    pub tunnel_bfd: BTreeMap<Ipv4Addr, BTreeMap<String, String>>,
}

/// One logical switch as this switch should see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DesiredLogicalSwitch {
    /// VXLAN VNI (`Logical_Switch.tunnel_key`).
    pub vni: u32,
    /// Replication mode the store asks for; the planner may fall back to
    /// service_node when the switch reports it cannot do source_node.
    pub replication: Replication,
    /// MACs that live elsewhere: MAC -> where.
    #[serde(default)]
    pub remote_macs: BTreeMap<MacAddr, RemoteTarget>,
    /// Service node tunnel IPs: the unknown-dst locators in service_node mode.
    #[serde(default)]
    pub service_nodes: BTreeSet<Ipv4Addr>,
    /// Every other VTEP of the logical switch: the unknown-dst locators in source_node mode.
    #[serde(default)]
    pub peers: BTreeSet<Ipv4Addr>,
}

impl DesiredLogicalSwitch {
    /// The unknown-dst locator set for the given effective replication mode.
    pub fn flood_set(&self, mode: Replication) -> &BTreeSet<Ipv4Addr> {
        match mode {
            Replication::ServiceNode => &self.service_nodes,
            Replication::SourceNode => &self.peers,
        }
    }
}

/// Where a remote MAC lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteTarget {
    /// Remote VTEP IP (`Physical_Locator.dst_ip`).
    pub locator: Ipv4Addr,
    /// IP for ARP suppression (`ipaddr`), if known.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
}

/// The store's objects a desired state is computed from (desired and observed).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreView<'a> {
    /// Desired logical switches.
    pub logical_switches: &'a [LogicalSwitch],
    /// Desired transport nodes.
    pub transport_nodes: &'a [TransportNode],
    /// Desired gateway groups.
    pub gateway_groups: &'a [GatewayGroup],
    /// Desired bindings.
    pub bindings: &'a [Binding],
    /// Desired remote (VM) MACs.
    pub remote_macs: &'a [RemoteMac],
    /// Observed learned MACs (from switches' `Ucast_Macs_Local` and gateways' FDBs).
    pub learned_macs: &'a [LearnedMac],
}

/// Why no desired state can be computed for a switch.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DesiredError {
    /// No transport node has this name.
    #[error("no transport node named {0:?}")]
    UnknownSwitch(String),
    /// The transport node is not a hardware switch.
    #[error("transport node {0:?} is not a hardware_switch")]
    NotAHardwareSwitch(String),
}

/// The result of [`compute`]: the state plus the store's dangling references
/// that were skipped (the store validates references, so these are rare and
/// worth a log line, not a failure of the whole switch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Computed {
    /// The desired state.
    pub state: DesiredState,
    /// One line per skipped object.
    pub skipped: Vec<String>,
}

/// `Tunnel.bfd_params` for BFD parameters from the store (vtep(5) keys).
///
/// `detect_mult` has no hardware_vtep key; switches use their own (OVS: 3).
pub fn bfd_params(p: &BfdParams) -> BTreeMap<String, String> {
    if !p.enabled {
        return BTreeMap::from([("enable".to_owned(), "false".to_owned())]);
    }
    BTreeMap::from([
        ("enable".to_owned(), "true".to_owned()),
        ("min_rx".to_owned(), p.min_rx_ms.to_string()),
        ("min_tx".to_owned(), p.min_tx_ms.to_string()),
    ])
}

/// BFD parameters for tunnels toward a group: those of its first member (by name).
fn group_bfd(r: &Placement<'_>, g: &GatewayGroup) -> BfdParams {
    g.members
        .iter()
        .filter_map(|m| r.node(&m.node))
        .min_by(|a, b| a.name.cmp(&b.name))
        .map(|n| n.bfd)
        .unwrap_or_default()
}
/// Computes the desired state of the hardware switch named `switch`.
pub fn compute(switch: &str, v: &StoreView<'_>) -> Result<Computed, DesiredError> {
    let me = v
        .transport_nodes
        .iter()
        .find(|n| n.name == switch)
        .ok_or_else(|| DesiredError::UnknownSwitch(switch.to_owned()))?;
    if me.kind != NodeKind::HardwareSwitch {
        return Err(DesiredError::NotAHardwareSwitch(switch.to_owned()));
    }
    let r = Placement::new(v.transport_nodes, v.gateway_groups, v.bindings);
    let mut out = Computed::default();
    let st = &mut out.state;
    st.local_tunnel_ips.insert(me.tunnel_ip);
    let lss: BTreeMap<&str, &LogicalSwitch> = v
        .logical_switches
        .iter()
        .map(|l| (l.name.as_str(), l))
        .collect();
    let service_nodes: BTreeSet<Ipv4Addr> = v
        .transport_nodes
        .iter()
        .filter(|n| n.kind == NodeKind::ServiceNode)
        .map(|n| n.tunnel_ip)
        .collect();

    // Bindings on this switch decide which logical switches it carries.
    for b in v.bindings {
        let Attachment::HardwareSwitch { switch: s, port } = &b.attachment else {
            continue;
        };
        if s != switch {
            continue;
        }
        let Some(ls) = lss.get(b.logical_switch.as_str()) else {
            out.skipped.push(format!(
                "binding {}: unknown logical switch {:?}",
                b.name, b.logical_switch
            ));
            continue;
        };
        st.bindings
            .entry(port.clone())
            .or_default()
            .insert(b.vlan, ls.name.clone());
        st.logical_switches
            .entry(ls.name.clone())
            .or_insert_with(|| DesiredLogicalSwitch {
                vni: ls.vni,
                replication: ls.replication,
                remote_macs: BTreeMap::new(),
                service_nodes: service_nodes.clone(),
                peers: BTreeSet::new(),
            });
    }

    // Peers: every other VTEP of each bound logical switch.
    for b in v.bindings {
        let Some(d) = st.logical_switches.get_mut(&b.logical_switch) else {
            continue;
        };
        match r.binding_ip(b) {
            Some(ip) => {
                d.peers.insert(ip);
            }
            None => out
                .skipped
                .push(format!("binding {}: unknown attachment", b.name)),
        }
    }

    // Operator-placed VM MACs win over learned ones.
    for m in v.remote_macs {
        let Some(d) = st.logical_switches.get_mut(&m.logical_switch) else {
            continue;
        };
        if m.transport_node == switch {
            continue;
        }
        let Some(ip) = r.ip_of(&m.transport_node, &m.logical_switch) else {
            out.skipped.push(format!(
                "remote MAC {}/{}: unknown transport node {:?}",
                m.logical_switch, m.mac, m.transport_node
            ));
            continue;
        };
        d.peers.insert(ip);
        d.remote_macs.insert(
            m.mac,
            RemoteTarget {
                locator: ip,
                ip: m.ip,
            },
        );
    }
    // Learned MACs in a deterministic order so a MAC learned in two places
    // resolves the same way on every instance.
    let mut learned: Vec<&LearnedMac> = v.learned_macs.iter().collect();
    learned.sort_by(|a, b| {
        (&a.logical_switch, a.mac, &a.reporter).cmp(&(&b.logical_switch, b.mac, &b.reporter))
    });
    for m in learned {
        let Some(d) = st.logical_switches.get_mut(&m.logical_switch) else {
            continue;
        };
        if m.reporter == switch {
            continue;
        }
        let Some(ip) = r.ip_of(&m.reporter, &m.logical_switch) else {
            out.skipped.push(format!(
                "learned MAC {}/{}: unknown reporter {:?}",
                m.logical_switch, m.mac, m.reporter
            ));
            continue;
        };
        d.peers.insert(ip);
        d.remote_macs.entry(m.mac).or_insert(RemoteTarget {
            locator: ip,
            ip: m.ip,
        });
    }
    for d in st.logical_switches.values_mut() {
        d.peers.remove(&me.tunnel_ip);
        d.remote_macs.retain(|_, t| t.locator != me.tunnel_ip);
    }

    // BFD toward every VTEP this switch may tunnel to.
    let mut remotes: BTreeSet<Ipv4Addr> = BTreeSet::new();
    for d in st.logical_switches.values() {
        remotes.extend(&d.peers);
        remotes.extend(&d.service_nodes);
        remotes.extend(d.remote_macs.values().map(|t| t.locator));
    }
    for ip in remotes {
        let params = if let Some(n) = v.transport_nodes.iter().find(|n| n.tunnel_ip == ip) {
            n.bfd
        } else if let Some(g) = v.gateway_groups.iter().find(|g| g.vtep_ip == ip) {
            group_bfd(&r, g)
        } else {
            continue;
        };
        st.tunnel_bfd.insert(ip, bfd_params(&params));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::model::{ElectionParams, GroupMember};

    fn node(name: &str, kind: NodeKind, ip: [u8; 4]) -> TransportNode {
        TransportNode {
            name: name.into(),
            kind,
            tunnel_ip: ip.into(),
            bfd: BfdParams::default(),
            ovsdb_target: (kind == NodeKind::HardwareSwitch).then(|| "unix:/x".into()),
        }
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    struct Fixture {
        lss: Vec<LogicalSwitch>,
        nodes: Vec<TransportNode>,
        groups: Vec<GatewayGroup>,
        bindings: Vec<Binding>,
        remote: Vec<RemoteMac>,
        learned: Vec<LearnedMac>,
    }

    impl Fixture {
        fn view(&self) -> StoreView<'_> {
            StoreView {
                logical_switches: &self.lss,
                transport_nodes: &self.nodes,
                gateway_groups: &self.groups,
                bindings: &self.bindings,
                remote_macs: &self.remote,
                learned_macs: &self.learned,
            }
        }
    }

    fn fixture() -> Fixture {
        let mut hv2 = node("hv2", NodeKind::Hypervisor, [198, 18, 0, 12]);
        hv2.bfd = BfdParams {
            enabled: false,
            ..BfdParams::default()
        };
        Fixture {
            lss: vec![
                LogicalSwitch {
                    name: "web".into(),
                    vni: 5001,
                    replication: Replication::SourceNode,
                },
                LogicalSwitch {
                    name: "db".into(),
                    vni: 5002,
                    replication: Replication::ServiceNode,
                },
                LogicalSwitch {
                    name: "unbound".into(),
                    vni: 5003,
                    replication: Replication::ServiceNode,
                },
            ],
            nodes: vec![
                node("tor1", NodeKind::HardwareSwitch, [198, 18, 0, 1]),
                node("tor2", NodeKind::HardwareSwitch, [198, 18, 0, 2]),
                node("hv1", NodeKind::Hypervisor, [198, 18, 0, 11]),
                hv2,
                node("gw1", NodeKind::Gateway, [198, 18, 0, 21]),
                node("gw2", NodeKind::Gateway, [198, 18, 0, 22]),
                node("sn1", NodeKind::ServiceNode, [198, 18, 0, 31]),
            ],
            groups: vec![GatewayGroup {
                name: "g1".into(),
                members: vec![
                    GroupMember {
                        node: "gw1".into(),
                        mep_id: 1,
                        priority: 0,
                    },
                    GroupMember {
                        node: "gw2".into(),
                        mep_id: 2,
                        priority: 0,
                    },
                ],
                vtep_ip: [198, 18, 0, 100].into(),
                physical_interface: "eth1".into(),
                election: ElectionParams {
                    interval_ms: 100,
                    md_level: 0,
                    ma_name: "g1".into(),
                },
            }],
            bindings: vec![
                Binding {
                    name: "b1".into(),
                    logical_switch: "web".into(),
                    attachment: Attachment::HardwareSwitch {
                        switch: "tor1".into(),
                        port: "p1".into(),
                    },
                    vlan: 10,
                },
                Binding {
                    name: "b2".into(),
                    logical_switch: "db".into(),
                    attachment: Attachment::HardwareSwitch {
                        switch: "tor1".into(),
                        port: "p1".into(),
                    },
                    vlan: 20,
                },
                Binding {
                    name: "b3".into(),
                    logical_switch: "web".into(),
                    attachment: Attachment::HardwareSwitch {
                        switch: "tor2".into(),
                        port: "p9".into(),
                    },
                    vlan: 0,
                },
                Binding {
                    name: "b4".into(),
                    logical_switch: "web".into(),
                    attachment: Attachment::GatewayGroup { group: "g1".into() },
                    vlan: 7,
                },
                Binding {
                    name: "b5".into(),
                    logical_switch: "unbound".into(),
                    attachment: Attachment::HardwareSwitch {
                        switch: "tor2".into(),
                        port: "p9".into(),
                    },
                    vlan: 5,
                },
            ],
            remote: vec![
                RemoteMac {
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:00:01"),
                    ip: Some([192, 0, 2, 1].into()),
                    transport_node: "hv1".into(),
                },
                RemoteMac {
                    logical_switch: "db".into(),
                    mac: mac("02:00:00:00:00:02"),
                    ip: None,
                    transport_node: "hv2".into(),
                },
                RemoteMac {
                    logical_switch: "unbound".into(),
                    mac: mac("02:00:00:00:00:03"),
                    ip: None,
                    transport_node: "hv2".into(),
                },
            ],
            learned: vec![
                // Behind the gateway group: points at the group IP.
                LearnedMac {
                    reporter: "gw2".into(),
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:01:01"),
                    ip: None,
                },
                // Behind another switch.
                LearnedMac {
                    reporter: "tor2".into(),
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:02:01"),
                    ip: Some([192, 0, 2, 50].into()),
                },
                // Learned by this switch itself: local, never remote.
                LearnedMac {
                    reporter: "tor1".into(),
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:03:01"),
                    ip: None,
                },
                // Also placed by the operator: the operator wins.
                LearnedMac {
                    reporter: "tor2".into(),
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:00:01"),
                    ip: None,
                },
            ],
        }
    }

    #[test]
    fn computes_bound_switches_macs_flood_sets_and_bfd() {
        let f = fixture();
        let c = compute("tor1", &f.view()).unwrap();
        assert!(c.skipped.is_empty(), "{:?}", c.skipped);
        let st = &c.state;
        assert_eq!(
            st.local_tunnel_ips,
            BTreeSet::from([Ipv4Addr::new(198, 18, 0, 1)])
        );
        assert_eq!(
            st.logical_switches.keys().collect::<Vec<_>>(),
            ["db", "web"]
        );
        assert_eq!(
            st.bindings["p1"],
            BTreeMap::from([(10, "web".to_owned()), (20, "db".to_owned())])
        );
        let web = &st.logical_switches["web"];
        assert_eq!(web.vni, 5001);
        assert_eq!(web.replication, Replication::SourceNode);
        let ips = |v: &[[u8; 4]]| {
            v.iter()
                .map(|a| Ipv4Addr::from(*a))
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(
            web.peers,
            ips(&[[198, 18, 0, 2], [198, 18, 0, 11], [198, 18, 0, 100]])
        );
        assert_eq!(web.service_nodes, ips(&[[198, 18, 0, 31]]));
        assert_eq!(web.flood_set(Replication::SourceNode), &web.peers);
        let t = |ip: [u8; 4], addr: Option<[u8; 4]>| RemoteTarget {
            locator: ip.into(),
            ip: addr.map(Into::into),
        };
        assert_eq!(
            web.remote_macs,
            BTreeMap::from([
                (
                    mac("02:00:00:00:00:01"),
                    t([198, 18, 0, 11], Some([192, 0, 2, 1]))
                ),
                (mac("02:00:00:00:01:01"), t([198, 18, 0, 100], None)),
                (
                    mac("02:00:00:00:02:01"),
                    t([198, 18, 0, 2], Some([192, 0, 2, 50]))
                ),
            ])
        );
        let db = &st.logical_switches["db"];
        assert_eq!(db.peers, ips(&[[198, 18, 0, 12]]));
        assert_eq!(db.flood_set(Replication::ServiceNode), &db.service_nodes);
        // BFD: on by default, off for hv2, group IP takes gw1's params.
        assert_eq!(
            st.tunnel_bfd[&Ipv4Addr::new(198, 18, 0, 11)]["enable"],
            "true"
        );
        assert_eq!(
            st.tunnel_bfd[&Ipv4Addr::new(198, 18, 0, 11)]["min_rx"],
            "1000"
        );
        assert_eq!(
            st.tunnel_bfd[&Ipv4Addr::new(198, 18, 0, 12)]["enable"],
            "false"
        );
        assert_eq!(
            st.tunnel_bfd[&Ipv4Addr::new(198, 18, 0, 100)]["enable"],
            "true"
        );
        assert!(st.tunnel_bfd.contains_key(&Ipv4Addr::new(198, 18, 0, 31)));
        assert!(!st.tunnel_bfd.contains_key(&Ipv4Addr::new(198, 18, 0, 1)));
    }

    #[test]
    fn other_switch_sees_its_own_view() {
        let f = fixture();
        let st = compute("tor2", &f.view()).unwrap().state;
        assert_eq!(
            st.logical_switches.keys().collect::<Vec<_>>(),
            ["unbound", "web"]
        );
        let web = &st.logical_switches["web"];
        // tor2's own learned MAC is local to it; tor1 is a peer.
        assert!(!web.remote_macs.contains_key(&mac("02:00:00:00:02:01")));
        assert!(web.peers.contains(&Ipv4Addr::new(198, 18, 0, 1)));
        // tor1 learned 03:01 (local on tor1): remote on tor2, behind tor1.
        assert_eq!(
            web.remote_macs[&mac("02:00:00:00:03:01")].locator,
            Ipv4Addr::new(198, 18, 0, 1)
        );
    }

    #[test]
    fn errors_and_skips() {
        let mut f = fixture();
        assert_eq!(
            compute("nope", &f.view()).unwrap_err(),
            DesiredError::UnknownSwitch("nope".into())
        );
        assert_eq!(
            compute("hv1", &f.view()).unwrap_err(),
            DesiredError::NotAHardwareSwitch("hv1".into())
        );
        f.remote.push(RemoteMac {
            logical_switch: "web".into(),
            mac: mac("02:00:00:00:09:09"),
            ip: None,
            transport_node: "ghost".into(),
        });
        f.bindings.push(Binding {
            name: "dangling".into(),
            logical_switch: "gone".into(),
            attachment: Attachment::HardwareSwitch {
                switch: "tor1".into(),
                port: "p2".into(),
            },
            vlan: 1,
        });
        let c = compute("tor1", &f.view()).unwrap();
        assert_eq!(c.skipped.len(), 2, "{:?}", c.skipped);
        assert!(!c.state.bindings.contains_key("p2"));
    }

    #[test]
    fn desired_state_json_round_trip() {
        let f = fixture();
        let st = compute("tor1", &f.view()).unwrap().state;
        let j = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<DesiredState>(&j).unwrap(), st);
    }
}
