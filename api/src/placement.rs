//! Where tunnels end: the names MACs and bindings are placed behind
//! (transport nodes and gateway groups) resolved to underlay VTEP IPs.
//!
//! vtep-sync (for hardware switches) and the gateway daemon (for Linux
//! nodes) both compute their tunnels from the same store, and a MAC must
//! lead every one of them to the same address, so the rule lives here once:
//!
//! - a gateway group terminates at its VTEP IP (held by its elected leader);
//! - a gateway that is a member of a group bound to the logical switch
//!   terminates that switch's traffic at the group's VTEP IP, not its own
//!   (the first such group by name, so that every node picks the same one);
//! - any other node terminates at its own tunnel IP.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::model::{Attachment, Binding, GatewayGroup, NodeKind, TransportNode};

/// Name lookups over one store snapshot.
#[derive(Debug)]
pub struct Placement<'a> {
    nodes: BTreeMap<&'a str, &'a TransportNode>,
    groups: BTreeMap<&'a str, &'a GatewayGroup>,
    /// Logical switch -> gateway groups bound to it, by name.
    ls_groups: BTreeMap<&'a str, BTreeSet<&'a str>>,
}

impl<'a> Placement<'a> {
    /// Indexes the nodes, groups and bindings of a snapshot.
    pub fn new(
        nodes: &'a [TransportNode],
        groups: &'a [GatewayGroup],
        bindings: &'a [Binding],
    ) -> Self {
        let mut ls_groups: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for b in bindings {
            if let Attachment::GatewayGroup { group } = &b.attachment {
                ls_groups
                    .entry(b.logical_switch.as_str())
                    .or_default()
                    .insert(group.as_str());
            }
        }
        Placement {
            nodes: nodes.iter().map(|n| (n.name.as_str(), n)).collect(),
            groups: groups.iter().map(|g| (g.name.as_str(), g)).collect(),
            ls_groups,
        }
    }

    /// The transport node called `name`.
    pub fn node(&self, name: &str) -> Option<&'a TransportNode> {
        self.nodes.get(name).copied()
    }

    /// The gateway group called `name`.
    pub fn group(&self, name: &str) -> Option<&'a GatewayGroup> {
        self.groups.get(name).copied()
    }

    /// The VTEP IP where a binding's traffic enters the overlay: the
    /// switch's tunnel IP, or the group's VTEP IP. `None` if what it names
    /// does not exist.
    pub fn binding_ip(&self, b: &Binding) -> Option<Ipv4Addr> {
        match &b.attachment {
            Attachment::HardwareSwitch { switch, .. } => self.node(switch).map(|n| n.tunnel_ip),
            Attachment::GatewayGroup { group } => self.group(group).map(|g| g.vtep_ip),
        }
    }

    /// The VTEP IP behind which `name` (a node or a group) terminates
    /// traffic of logical switch `ls` (see the module text). `None` if
    /// `name` is neither.
    pub fn ip_of(&self, name: &str, ls: &str) -> Option<Ipv4Addr> {
        if let Some(g) = self.group(name) {
            return Some(g.vtep_ip);
        }
        let node = self.node(name)?;
        if node.kind == NodeKind::Gateway {
            let serving = self.ls_groups.get(ls).and_then(|bound| {
                bound
                    .iter()
                    .filter_map(|g| self.group(g))
                    .find(|g| g.members.iter().any(|m| m.node == name))
            });
            if let Some(g) = serving {
                return Some(g.vtep_ip);
            }
        }
        Some(node.tunnel_ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BfdParams, ElectionParams, GroupMember};

    fn node(name: &str, kind: NodeKind, ip: [u8; 4]) -> TransportNode {
        TransportNode {
            name: name.into(),
            kind,
            tunnel_ip: ip.into(),
            bfd: BfdParams::default(),
            ovsdb_target: None,
        }
    }

    fn group(name: &str, members: &[&str], ip: [u8; 4]) -> GatewayGroup {
        GatewayGroup {
            name: name.into(),
            members: members
                .iter()
                .zip(1..)
                .map(|(m, id)| GroupMember {
                    node: (*m).into(),
                    mep_id: id,
                    priority: 0,
                })
                .collect(),
            vtep_ip: ip.into(),
            physical_interface: "eth1".into(),
            election: ElectionParams {
                interval_ms: 1000,
                md_level: 0,
                ma_name: name.into(),
            },
        }
    }

    fn bind_group(name: &str, ls: &str, group: &str) -> Binding {
        Binding {
            name: name.into(),
            logical_switch: ls.into(),
            attachment: Attachment::GatewayGroup {
                group: group.into(),
            },
            vlan: 10,
        }
    }

    #[test]
    fn names_resolve_to_the_vtep_ip_that_terminates_the_switch() {
        let nodes = [
            node("gw1", NodeKind::Gateway, [198, 18, 0, 11]),
            node("gw2", NodeKind::Gateway, [198, 18, 0, 12]),
            node("hv1", NodeKind::Hypervisor, [198, 18, 0, 21]),
            node("tor1", NodeKind::HardwareSwitch, [198, 18, 0, 31]),
        ];
        let groups = [
            group("zz", &["gw1"], [198, 18, 0, 102]),
            group("aa", &["gw1", "gw2"], [198, 18, 0, 101]),
            group("other", &["gw2"], [198, 18, 0, 103]),
        ];
        let bindings = [
            bind_group("b1", "web", "zz"),
            bind_group("b2", "web", "aa"),
            Binding {
                name: "b3".into(),
                logical_switch: "web".into(),
                attachment: Attachment::HardwareSwitch {
                    switch: "tor1".into(),
                    port: "p1".into(),
                },
                vlan: 0,
            },
            bind_group("b4", "web", "missing"),
        ];
        let p = Placement::new(&nodes, &groups, &bindings);
        let ip = |a: [u8; 4]| Some(Ipv4Addr::from(a));
        // A group: its VTEP IP, whatever the switch.
        assert_eq!(p.ip_of("other", "web"), ip([198, 18, 0, 103]));
        // A gateway in two groups bound to the switch: the first by name.
        assert_eq!(p.ip_of("gw1", "web"), ip([198, 18, 0, 101]));
        // A gateway whose only group is not bound to the switch: its own IP.
        assert_eq!(p.ip_of("gw2", "db"), ip([198, 18, 0, 12]));
        assert_eq!(p.ip_of("gw1", "db"), ip([198, 18, 0, 11]));
        // Hypervisors and switches: their own IP.
        assert_eq!(p.ip_of("hv1", "web"), ip([198, 18, 0, 21]));
        assert_eq!(p.ip_of("tor1", "web"), ip([198, 18, 0, 31]));
        assert_eq!(p.ip_of("nobody", "web"), None);
        // Bindings: the switch's IP, the group's IP, or nothing.
        let got: Vec<_> = bindings.iter().map(|b| p.binding_ip(b)).collect();
        assert_eq!(
            got,
            [
                ip([198, 18, 0, 102]),
                ip([198, 18, 0, 101]),
                ip([198, 18, 0, 31]),
                None
            ]
        );
    }
}
