//! The desired state of one transport node, computed from the store's
//! objects: a pure function, so what a node does is decided by data alone.
//!
//! Which logical switches are present on the node:
//!
//! - **gateway** (kind `gateway`): every logical switch with a binding to a
//!   gateway group this node is a member of. The bound physical segment is
//!   the group's `physical_interface` with the binding's VLAN, and the
//!   switch's VXLAN source address is the *group* VTEP IP (remote VTEPs know
//!   the gateway by it; the elected member holds it). A logical switch bound
//!   to two of this gateway's groups keeps the first group by name.
//! - **hypervisor** (kind `hypervisor`, host mode): every logical switch with a
//!   `RemoteMac` whose `transport_node` is this node: those are the node's VM
//!   MACs, declared through the API. Which local port (veth/tap) a VM MAC sits
//!   on is the hypervisor's business, not the store's: the daemon's
//!   [`LocalConfig::vm_ports`] maps MAC → interface name (flag
//!   `--vm-port MAC=IFNAME`). A VM MAC without a mapping still makes its
//!   switch present (flooding and remote MACs are programmed) and is reported.
//!
//! Remote MACs of a present switch: the `RemoteMac`s of other nodes, then the
//! `LearnedMac`s other nodes reported (in (switch, MAC, reporter) order, so
//! every node resolves a MAC learned twice the same way; placed MACs win),
//! each pointing at its node's tunnel IP, or at the group VTEP IP for a
//! gateway that is a member of a group bound to that switch (and for a
//! reporter that names a group). A MAC that resolves to this node's own
//! source address lives on our side (learned by a fellow group member, or
//! ours) and is left to the kernel bridge.
//!
//! Flood targets: `service_node` → every service node's tunnel IP;
//! `source_node` → every other VTEP of the switch (hardware switches and
//! gateway groups bound to it, nodes that host or reported MACs in it).
//!
//! Everything in the output passes [`DesiredNode::validate`] by construction:
//! what would not (an IP given for two MACs, a VM port name used in two
//! switches, tagged and untagged bindings on one NIC) is dropped and listed in
//! [`Computed::skipped`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use api::model::{
    Attachment, Binding, GatewayGroup, LearnedMac, LogicalSwitch, MacAddr as ApiMac, NodeKind,
    Object, RemoteMac as ApiRemoteMac, Replication as ApiReplication, TransportNode,
};
use api::placement::Placement;

use crate::desired::{DesiredNode, DesiredSwitch, PortBinding, RemoteMac, Replication, VmPort};
use crate::mac::MacAddr;

/// The store objects a node's desired state depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreObjects {
    /// Desired logical switches.
    pub logical_switches: Vec<LogicalSwitch>,
    /// Desired transport nodes.
    pub transport_nodes: Vec<TransportNode>,
    /// Desired gateway groups.
    pub gateway_groups: Vec<GatewayGroup>,
    /// Desired bindings.
    pub bindings: Vec<Binding>,
    /// Desired VM MAC placements.
    pub remote_macs: Vec<ApiRemoteMac>,
    /// Observed learned MACs of every reporter.
    pub learned_macs: Vec<LearnedMac>,
}

impl StoreObjects {
    /// Sorts store objects by kind; kinds this computation does not read are ignored.
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = &'a Object>) -> StoreObjects {
        let mut s = StoreObjects::default();
        for o in objects {
            match o {
                Object::LogicalSwitch(x) => s.logical_switches.push(x.clone()),
                Object::TransportNode(x) => s.transport_nodes.push(x.clone()),
                Object::GatewayGroup(x) => s.gateway_groups.push(x.clone()),
                Object::Binding(x) => s.bindings.push(x.clone()),
                Object::RemoteMac(x) => s.remote_macs.push(x.clone()),
                Object::LearnedMac(x) => s.learned_macs.push(x.clone()),
                _ => {}
            }
        }
        s
    }
}

/// What only the node itself knows: its NICs and VM ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalConfig {
    /// Underlay NIC the VXLAN devices are bound to.
    pub underlay_dev: Option<String>,
    /// Host mode: VM MAC → the local veth/tap it sits behind.
    pub vm_ports: BTreeMap<MacAddr, String>,
}

/// A node's desired state and what was left out of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// What the reconciler applies.
    pub desired: DesiredNode,
    /// VNI → logical switch name, to name the MACs this node learns.
    pub switch_names: BTreeMap<u32, String>,
    /// One line per object (or part) that was not used, and why.
    pub skipped: Vec<String>,
}

/// The node cannot be served at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComputeError {
    /// No transport node of this name (yet): nothing is programmed.
    #[error("no transport node named {0:?} in the store")]
    UnknownNode(String),
    /// This daemon serves hypervisors and gateways only.
    #[error(
        "transport node {name:?} is a {kind:?}; bridgehead-gateway serves hypervisors and gateways"
    )]
    NotServed {
        /// The node.
        name: String,
        /// Its kind.
        kind: NodeKind,
    },
}

fn mac(m: ApiMac) -> MacAddr {
    MacAddr(m.0)
}

/// One present switch while it is being built.
struct Building<'a> {
    ls: &'a LogicalSwitch,
    /// Source address override (the group VTEP IP of a gateway).
    local: Option<Ipv4Addr>,
    group: Option<&'a str>,
    ports: Vec<PortBinding>,
    /// Host mode: this node's VM MACs in the switch.
    vm_macs: BTreeSet<MacAddr>,
}

/// Computes the desired state of transport node `node` at store `revision`.
pub fn compute(
    node: &str,
    v: &StoreObjects,
    local: &LocalConfig,
    revision: u64,
) -> Result<Computed, ComputeError> {
    let me = v
        .transport_nodes
        .iter()
        .find(|n| n.name == node)
        .ok_or_else(|| ComputeError::UnknownNode(node.to_string()))?;
    if !matches!(me.kind, NodeKind::Gateway | NodeKind::Hypervisor) {
        return Err(ComputeError::NotServed {
            name: node.to_string(),
            kind: me.kind,
        });
    }
    let ix = Placement::new(&v.transport_nodes, &v.gateway_groups, &v.bindings);
    let lss: BTreeMap<&str, &LogicalSwitch> = v
        .logical_switches
        .iter()
        .map(|l| (l.name.as_str(), l))
        .collect();
    let mut skipped = Vec::new();
    let mut present: BTreeMap<&str, Building> = BTreeMap::new();

    // --- which switches are here
    let mut bindings: Vec<&Binding> = v.bindings.iter().collect();
    bindings.sort_by(|a, b| a.name.cmp(&b.name));
    let mut my_groups: Vec<&GatewayGroup> = v
        .gateway_groups
        .iter()
        .filter(|g| g.members.iter().any(|m| m.node == node))
        .collect();
    my_groups.sort_by(|a, b| a.name.cmp(&b.name));
    if me.kind == NodeKind::Gateway {
        for g in &my_groups {
            for b in &bindings {
                if !matches!(&b.attachment, Attachment::GatewayGroup { group } if *group == g.name)
                {
                    continue;
                }
                let Some(ls) = lss.get(b.logical_switch.as_str()) else {
                    skipped.push(format!(
                        "binding {}: unknown logical switch {:?}",
                        b.name, b.logical_switch
                    ));
                    continue;
                };
                let entry = present.entry(ls.name.as_str()).or_insert_with(|| Building {
                    ls,
                    local: Some(g.vtep_ip),
                    group: Some(g.name.as_str()),
                    ports: Vec::new(),
                    vm_macs: BTreeSet::new(),
                });
                if entry.group != Some(g.name.as_str()) {
                    skipped.push(format!(
                        "binding {}: logical switch {} is already bridged here for group {}",
                        b.name,
                        ls.name,
                        entry.group.unwrap_or("?")
                    ));
                    continue;
                }
                entry.ports.push(PortBinding {
                    ifname: g.physical_interface.clone(),
                    vlan: b.vlan,
                });
            }
        }
    } else {
        for m in &v.remote_macs {
            if m.transport_node != node {
                continue;
            }
            let Some(ls) = lss.get(m.logical_switch.as_str()) else {
                skipped.push(format!(
                    "VM MAC {}/{}: unknown logical switch",
                    m.logical_switch, m.mac
                ));
                continue;
            };
            present
                .entry(ls.name.as_str())
                .or_insert_with(|| Building {
                    ls,
                    local: None,
                    group: None,
                    ports: Vec::new(),
                    vm_macs: BTreeSet::new(),
                })
                .vm_macs
                .insert(mac(m.mac));
        }
    }

    // --- remote MACs and flood targets per switch
    let service_nodes: BTreeSet<Ipv4Addr> = v
        .transport_nodes
        .iter()
        .filter(|n| n.kind == NodeKind::ServiceNode)
        .map(|n| n.tunnel_ip)
        .collect();
    let mut learned: Vec<&LearnedMac> = v.learned_macs.iter().collect();
    learned.sort_by(|a, b| {
        (&a.logical_switch, a.mac, &a.reporter).cmp(&(&b.logical_switch, b.mac, &b.reporter))
    });
    let mut switches = Vec::new();
    let mut switch_names = BTreeMap::new();
    let mut vm_port_owner: BTreeMap<String, u32> = BTreeMap::new();
    let mut by_vni: Vec<Building> = present.into_values().collect();
    by_vni.sort_by_key(|b| b.ls.vni);
    // VLAN 0 binds the whole NIC: tagged bindings on it cannot coexist.
    let untagged: BTreeSet<String> = by_vni
        .iter()
        .flat_map(|b| &b.ports)
        .filter(|p| p.vlan == 0)
        .map(|p| p.ifname.clone())
        .collect();
    for b in by_vni {
        let ls = b.ls;
        let my_ip = b.local.unwrap_or(me.tunnel_ip);
        let mut peers: BTreeSet<Ipv4Addr> = BTreeSet::new();
        for bd in v.bindings.iter().filter(|bd| bd.logical_switch == ls.name) {
            peers.extend(ix.binding_ip(bd));
        }
        let mut remote: BTreeMap<MacAddr, (Ipv4Addr, Option<Ipv4Addr>)> = BTreeMap::new();
        let placed = v
            .remote_macs
            .iter()
            .filter(|m| m.logical_switch == ls.name && m.transport_node != node)
            .map(|m| (m.mac, m.ip, m.transport_node.as_str(), "remote MAC"));
        let reported = learned
            .iter()
            .filter(|m| m.logical_switch == ls.name && m.reporter != node)
            .map(|m| (m.mac, m.ip, m.reporter.as_str(), "learned MAC"));
        for (m, ip, at, what) in placed.chain(reported) {
            let Some(vtep) = ix.ip_of(at, &ls.name) else {
                skipped.push(format!(
                    "{what} {}/{m}: unknown transport node {at:?}",
                    ls.name
                ));
                continue;
            };
            if vtep == my_ip {
                continue;
            }
            peers.insert(vtep);
            if b.vm_macs.contains(&mac(m)) {
                skipped.push(format!(
                    "{what} {}/{m} behind {at}: it is a VM MAC of this node",
                    ls.name
                ));
                continue;
            }
            remote.entry(mac(m)).or_insert((vtep, ip));
        }
        peers.remove(&my_ip);
        let mut ips = BTreeSet::new();
        let remote_macs = remote
            .into_iter()
            .map(|(m, (vtep, ip))| {
                let ip = ip.filter(|ip| {
                    let fresh = ips.insert(*ip);
                    if !fresh {
                        skipped.push(format!(
                            "{}/{m}: IP {ip} already given for another MAC; not suppressing ARP for it",
                            ls.name
                        ));
                    }
                    fresh
                });
                RemoteMac { mac: m, vtep, ip }
            })
            .collect();
        let replication = match ls.replication {
            ApiReplication::ServiceNode => Replication::ServiceNode {
                service_nodes: service_nodes
                    .iter()
                    .copied()
                    .filter(|ip| *ip != my_ip)
                    .collect(),
            },
            ApiReplication::SourceNode => Replication::SourceNode {
                remote_vteps: peers.into_iter().collect(),
            },
        };
        // VM ports, grouped by interface; one interface serves one switch.
        let mut vm_ports: BTreeMap<String, Vec<MacAddr>> = BTreeMap::new();
        for m in &b.vm_macs {
            let Some(ifname) = local.vm_ports.get(m) else {
                skipped.push(format!(
                    "VM MAC {}/{m}: no local port declared for it (--vm-port {m}=IFNAME)",
                    ls.name
                ));
                continue;
            };
            match vm_port_owner.get(ifname) {
                Some(vni) if *vni != ls.vni => {
                    skipped.push(format!(
                        "VM MAC {}/{m}: port {ifname} already serves VNI {vni}",
                        ls.name
                    ));
                    continue;
                }
                _ => {}
            }
            vm_port_owner.insert(ifname.clone(), ls.vni);
            vm_ports.entry(ifname.clone()).or_default().push(*m);
        }
        let mut ports = b.ports;
        ports.retain(|p| {
            let keep = p.vlan == 0 || !untagged.contains(&p.ifname);
            if !keep {
                skipped.push(format!(
                    "{}: VLAN {} on {}: the NIC is bound untagged",
                    ls.name, p.vlan, p.ifname
                ));
            }
            keep
        });
        switch_names.insert(ls.vni, ls.name.clone());
        switches.push(DesiredSwitch {
            local_tunnel_ip: b.local,
            vni: ls.vni,
            replication,
            remote_macs,
            ports,
            vm_ports: vm_ports
                .into_iter()
                .map(|(ifname, macs)| VmPort { ifname, macs })
                .collect(),
        });
    }
    let desired = DesiredNode {
        revision,
        local_tunnel_ip: me.tunnel_ip,
        underlay_dev: local.underlay_dev.clone(),
        switches,
    };
    skipped.extend(desired.validate().into_iter().map(|e| e.to_string()));
    Ok(Computed {
        desired,
        switch_names,
        skipped,
    })
}

#[cfg(test)]
#[path = "store_source_tests.rs"]
mod tests;
