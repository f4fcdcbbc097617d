//! Desired state of one node's kernel VTEP, and the deterministic names and
//! ownership marks of the kernel objects Bridgehead creates for it.
//!
//! This is deliberately independent of the `api` crate's resource model: the
//! daemon computes a [`DesiredNode`] from the store (logical switches bound to
//! this node, remote MACs, the switch's replication mode and flood list), and
//! the reconciler only ever sees this flattened form.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::mac::MacAddr;

/// VXLAN UDP destination port (IANA, RFC 7348 §5).
pub const VXLAN_PORT: u16 = 4789;

/// Every link Bridgehead creates carries an alias starting with this, so
/// ownership survives restarts without any state of our own.
pub const ALIAS_PREFIX: &str = "bridgehead:";

/// Name prefix of the per-VNI Linux bridge.
pub const BRIDGE_PREFIX: &str = "bhbr";
/// Name prefix of the per-VNI VXLAN device.
pub const VXLAN_PREFIX: &str = "bhvx";
/// Name prefix of the VLAN sub-interfaces Bridgehead creates on a physical NIC.
pub const VLAN_PREFIX: &str = "bhq";

/// Linux limit on interface names (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Largest VNI: 24 bits (RFC 7348 §5).
pub const VNI_MAX: u32 = 0x00ff_ffff;

/// Routing protocol number stamped on our nexthop objects; nexthops have no
/// alias, so this is how we recognise ours (not in /etc/iproute2/rt_protos).
pub const NEXTHOP_PROTOCOL: u8 = 183;

/// Nexthop group ids are `NH_GROUP_BASE + vni`: deterministic, one per switch.
pub const NH_GROUP_BASE: u32 = 0x1000_0000;
/// Member (per service node) nexthop ids are allocated upwards from here.
pub const NH_MEMBER_BASE: u32 = 0x2000_0000;
/// One past the last member id we allocate.
pub const NH_MEMBER_END: u32 = 0x3000_0000;

/// Everything one node's kernel VTEP must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredNode {
    /// Store revision this state was computed at (0 = unknown). Never
    /// diffed against the kernel: it only tells which revision a pass
    /// applied, for the store-lag metric.
    pub revision: u64,
    /// Source address of our VXLAN packets (this node's tunnel IP), unless a
    /// switch names its own.
    pub local_tunnel_ip: Ipv4Addr,
    /// Underlay device the VXLAN devices are bound to (`dev` of `ip link add type vxlan`),
    /// so the tunnel keeps using the right NIC whatever the routing table says.
    pub underlay_dev: Option<String>,
    /// The logical switches present on this node.
    pub switches: Vec<DesiredSwitch>,
}

/// One logical switch (one VNI) on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredSwitch {
    /// Source address of this switch's VXLAN packets when it is not the
    /// node's: a gateway bridges for its group, whose VTEP IP remote VTEPs
    /// know it by (a hardware switch drops VXLAN from an unknown source).
    pub local_tunnel_ip: Option<Ipv4Addr>,
    /// VXLAN network identifier, 1..=16777215.
    pub vni: u32,
    /// How broadcast/unknown/multicast frames leave this node.
    pub replication: Replication,
    /// MACs living behind other VTEPs (or behind a gateway group IP).
    pub remote_macs: Vec<RemoteMac>,
    /// Physical segments bridged into this switch (gateway bindings).
    pub ports: Vec<PortBinding>,
    /// Local VM ports (host mode on a hypervisor).
    pub vm_ports: Vec<VmPort>,
}

/// BUM replication mode of a logical switch, with the flood targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// Send one copy to a service node, flow-hashed over a kernel FDB nexthop group.
    ServiceNode {
        /// Healthy service nodes' tunnel IPs.
        service_nodes: Vec<Ipv4Addr>,
    },
    /// Replicate at the source: one copy per remote VTEP.
    SourceNode {
        /// Every other VTEP that has this switch.
        remote_vteps: Vec<Ipv4Addr>,
    },
}

/// A MAC behind a remote VTEP; the IP (when known) enables ARP suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMac {
    /// The MAC address.
    pub mac: MacAddr,
    /// Tunnel IP of the VTEP (or gateway group) behind which it lives.
    pub vtep: Ipv4Addr,
    /// Its IPv4 address, if the controller knows it.
    pub ip: Option<Ipv4Addr>,
}

/// A physical segment bound into a logical switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    /// The physical NIC.
    pub ifname: String,
    /// 802.1Q VLAN id; 0 binds the untagged NIC itself.
    pub vlan: u16,
}

/// A VM's port on a hypervisor (host mode): a veth or tap the hypervisor
/// creates, attached untagged to the switch's bridge. It may not exist yet
/// (VM not started): it is attached as soon as it appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPort {
    /// The veth/tap name.
    pub ifname: String,
    /// The VM's MACs as declared through the API: pinned on the port with
    /// static bridge entries (never flooded for, never learned elsewhere).
    pub macs: Vec<MacAddr>,
}

/// Name of the Linux bridge of a VNI.
pub fn bridge_name(vni: u32) -> String {
    format!("{BRIDGE_PREFIX}{vni}")
}

/// Name of the VXLAN device of a VNI.
pub fn vxlan_name(vni: u32) -> String {
    format!("{VXLAN_PREFIX}{vni}")
}

/// Name of our VLAN sub-interface: keyed by the parent's ifindex because NIC
/// names plus a VLAN id do not fit in 15 characters; hex, so that even
/// `u32::MAX` and VLAN 4094 fit.
pub fn vlan_name(parent_index: u32, vlan: u16) -> String {
    format!("{VLAN_PREFIX}{parent_index:x}.{vlan:x}")
}

/// Alias marking a link as ours, saying what it is for.
pub fn link_alias(role: &str, vni: u32) -> String {
    format!("{ALIAS_PREFIX}{role}:vni={vni}")
}

/// Id of the FDB nexthop group of a service_node switch.
pub fn nh_group_id(vni: u32) -> u32 {
    NH_GROUP_BASE + vni
}

/// True if a link with this name and alias was made by Bridgehead. The name
/// prefix also counts, so a link whose alias could not be set yet (crash
/// between create and set-alias) is still recognised and repaired.
pub fn is_our_link(name: &str, alias: Option<&str>) -> bool {
    alias.is_some_and(|a| a.starts_with(ALIAS_PREFIX))
        || [BRIDGE_PREFIX, VXLAN_PREFIX, VLAN_PREFIX].iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_hexdigit()))
        })
}

/// One problem in a desired state, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct DesiredError {
    /// Path of the offending field, e.g. `switches[vni=5000].remote_macs[02:..]`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl DesiredNode {
    /// Source address of switch `sw`'s VXLAN packets.
    pub fn local_ip_of(&self, sw: &DesiredSwitch) -> Ipv4Addr {
        sw.local_tunnel_ip.unwrap_or(self.local_tunnel_ip)
    }

    /// True when both describe the same kernel state (the revision aside).
    pub fn same_state(&self, other: &DesiredNode) -> bool {
        self.local_tunnel_ip == other.local_tunnel_ip
            && self.underlay_dev == other.underlay_dev
            && self.switches == other.switches
    }

    /// Reports every problem at once, so an operator fixes them in one go.
    pub fn validate(&self) -> Vec<DesiredError> {
        let mut errs = Vec::new();
        let mut err = |field: String, problem: &str| {
            errs.push(DesiredError {
                field,
                problem: problem.to_string(),
            })
        };
        if let Some(dev) = &self.underlay_dev {
            if dev.is_empty() || dev.len() > IFNAME_MAX {
                err("underlay_dev".into(), "not a valid interface name");
            }
        }
        let mut vnis = BTreeSet::new();
        let mut bound: BTreeMap<(&str, u16), u32> = BTreeMap::new();
        let mut untagged_nics = BTreeSet::new();
        let mut tagged_nics = BTreeSet::new();
        for sw in &self.switches {
            let at = format!("switches[vni={}]", sw.vni);
            if sw.vni == 0 || sw.vni > VNI_MAX {
                err(format!("{at}.vni"), "must be 1..=16777215");
            }
            if !vnis.insert(sw.vni) {
                err(format!("{at}.vni"), "duplicate VNI");
            }
            let targets = match &sw.replication {
                Replication::ServiceNode { service_nodes } => service_nodes,
                Replication::SourceNode { remote_vteps } => remote_vteps,
            };
            let local = sw.local_tunnel_ip.unwrap_or(self.local_tunnel_ip);
            let mut seen = BTreeSet::new();
            for t in targets {
                if !seen.insert(*t) {
                    err(format!("{at}.replication"), &format!("{t} listed twice"));
                }
                if *t == local {
                    err(
                        format!("{at}.replication"),
                        &format!("{t} is this node's own tunnel IP"),
                    );
                }
            }
            let mut macs = BTreeSet::new();
            let mut ips = BTreeSet::new();
            for m in &sw.remote_macs {
                let f = format!("{at}.remote_macs[{}]", m.mac);
                if m.mac.is_zero() || m.mac.0[0] & 1 == 1 {
                    err(f.clone(), "must be a unicast, non-zero MAC");
                }
                if !macs.insert(m.mac) {
                    err(f.clone(), "duplicate MAC");
                }
                if let Some(ip) = m.ip {
                    if !ips.insert(ip) {
                        err(f, &format!("IP {ip} given for two MACs"));
                    }
                }
            }
            for p in &sw.ports {
                let f = format!("{at}.ports[{}.{}]", p.ifname, p.vlan);
                if p.ifname.is_empty() || p.ifname.len() > IFNAME_MAX {
                    err(f.clone(), "not a valid interface name");
                }
                if p.vlan > 4094 {
                    err(f.clone(), "VLAN id must be 0..=4094");
                }
                if let Some(other) = bound.insert((p.ifname.as_str(), p.vlan), sw.vni) {
                    err(f.clone(), &format!("already bound to VNI {other}"));
                }
                if p.vlan == 0 {
                    untagged_nics.insert(p.ifname.as_str());
                } else {
                    tagged_nics.insert(p.ifname.as_str());
                }
            }
        }
        let mut vm_names: BTreeMap<&str, u32> = BTreeMap::new();
        for sw in &self.switches {
            let at = format!("switches[vni={}]", sw.vni);
            let remote: BTreeSet<MacAddr> = sw.remote_macs.iter().map(|m| m.mac).collect();
            let mut pinned = BTreeSet::new();
            for p in &sw.vm_ports {
                let f = format!("{at}.vm_ports[{}]", p.ifname);
                if p.ifname.is_empty() || p.ifname.len() > IFNAME_MAX {
                    err(f.clone(), "not a valid interface name");
                }
                if let Some(other) = vm_names.insert(p.ifname.as_str(), sw.vni) {
                    err(f.clone(), &format!("already a VM port of VNI {other}"));
                }
                if bound.keys().any(|(nic, _)| *nic == p.ifname)
                    || self.underlay_dev.as_deref() == Some(p.ifname.as_str())
                {
                    err(f.clone(), "also used as a physical binding or the underlay");
                }
                for m in &p.macs {
                    let fm = format!("{f}.macs[{m}]");
                    if m.is_zero() || m.0[0] & 1 == 1 {
                        err(fm.clone(), "must be a unicast, non-zero MAC");
                    }
                    if !pinned.insert(*m) {
                        err(fm.clone(), "duplicate VM MAC in this switch");
                    }
                    if remote.contains(m) {
                        err(fm, "also declared as a remote MAC of this switch");
                    }
                }
            }
        }
        for nic in untagged_nics.intersection(&tagged_nics) {
            err(
                format!("ports[{nic}]"),
                "VLAN 0 binds the whole port: do not mix it with tagged bindings",
            );
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_fit_ifnamsiz() {
        assert_eq!(bridge_name(VNI_MAX), "bhbr16777215");
        assert!(vxlan_name(VNI_MAX).len() <= IFNAME_MAX);
        assert_eq!(vlan_name(u32::MAX, 4094), "bhqffffffff.ffe");
    }

    #[test]
    fn ownership_by_alias_or_prefix() {
        assert!(is_our_link("bhvx5000", None));
        assert!(is_our_link("anything", Some("bridgehead:vxlan:vni=1")));
        assert!(!is_our_link("br0", None));
        assert!(!is_our_link("bhfoo", Some("other")));
    }

    #[test]
    fn validate_reports_every_problem() {
        let node = DesiredNode {
            revision: 0,
            local_tunnel_ip: "198.18.0.10".parse().unwrap(),
            underlay_dev: None,
            switches: vec![
                DesiredSwitch {
                    local_tunnel_ip: None,
                    vni: 0,
                    replication: Replication::SourceNode {
                        remote_vteps: vec!["198.18.0.10".parse().unwrap()],
                    },
                    remote_macs: vec![RemoteMac {
                        mac: mac("01:00:5e:00:00:01"),
                        vtep: "198.18.0.20".parse().unwrap(),
                        ip: None,
                    }],
                    ports: vec![PortBinding {
                        ifname: "eth1".into(),
                        vlan: 0,
                    }],
                    vm_ports: vec![VmPort {
                        ifname: "eth1".into(),
                        macs: vec![mac("02:00:00:00:00:01"), mac("02:00:00:00:00:01")],
                    }],
                },
                DesiredSwitch {
                    local_tunnel_ip: None,
                    vni: 0,
                    replication: Replication::ServiceNode {
                        service_nodes: vec![],
                    },
                    remote_macs: vec![],
                    ports: vec![PortBinding {
                        ifname: "eth1".into(),
                        vlan: 5000,
                    }],
                    vm_ports: vec![VmPort {
                        ifname: "eth1".into(),
                        macs: vec![],
                    }],
                },
            ],
        };
        let errs = node.validate();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter().any(|e| e.contains("must be 1..=16777215")),
            "{text:?}"
        );
        assert!(text.iter().any(|e| e.contains("duplicate VNI")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("own tunnel IP")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("unicast")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("0..=4094")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("do not mix")), "{text:?}");
        assert!(
            text.iter().any(|e| e.contains("already a VM port")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("physical binding")),
            "{text:?}"
        );
        assert!(
            text.iter().any(|e| e.contains("duplicate VM MAC")),
            "{text:?}"
        );
    }
}
