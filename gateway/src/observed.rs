//! What the kernel holds right now, reduced to the fields the diff needs.
//!
//! Filled from netlink dumps by [`crate::kernel`]; built by hand in unit tests.

use std::net::Ipv4Addr;

use crate::desired::is_our_link;
use crate::learning::BridgeFdbEntry;
use crate::mac::MacAddr;

/// The kind of a link as far as reconciliation cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// A VXLAN device, with the parameters we set on creation.
    Vxlan(VxlanParams),
    /// An 802.1Q sub-interface.
    Vlan {
        /// VLAN id.
        id: u16,
    },
    /// Anything else (physical NICs, veths, ...), with the kernel's kind string if any.
    Other(Option<String>),
}

/// VXLAN device parameters that cannot be changed in place (recreate on mismatch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanParams {
    /// VNI.
    pub vni: u32,
    /// Local (source) tunnel address.
    pub local: Option<Ipv4Addr>,
    /// UDP destination port.
    pub port: u16,
    /// Whether the device learns remote MACs from received packets.
    pub learning: bool,
    /// Ifindex of the underlay device it is bound to.
    pub underlay: Option<u32>,
}

/// One link from `RTM_GETLINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLink {
    /// Ifindex.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_IFALIAS`, our ownership mark.
    pub alias: Option<String>,
    /// Kind and kind-specific parameters.
    pub kind: LinkKind,
    /// Ifindex of the bridge this link is a port of.
    pub master: Option<u32>,
    /// `IFLA_LINK`: parent of a VLAN sub-interface.
    pub parent: Option<u32>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// Bridge port flag `neigh_suppress`, when the link is a bridge port.
    pub neigh_suppress: Option<bool>,
}

impl ObservedLink {
    /// Made by Bridgehead ([`is_our_link`]): only such links are ever deleted.
    pub fn is_ours(&self) -> bool {
        is_our_link(&self.name, self.alias.as_deref())
    }

    /// One of our per-VNI bridges.
    pub fn is_our_bridge(&self) -> bool {
        self.kind == LinkKind::Bridge && self.is_ours()
    }
}

/// Where an FDB entry of a VXLAN device sends frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FdbDst {
    /// A remote VTEP's tunnel IP (`dst IP`).
    Ip(Ipv4Addr),
    /// An FDB nexthop group (`nhid N`).
    Nexthop(u32),
}

/// One `NTF_SELF` FDB entry of a VXLAN device (one remote; the kernel dumps
/// a multi-remote entry as one message per remote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedFdb {
    /// Ifindex of the VXLAN device.
    pub ifindex: u32,
    /// The MAC key (all zeros = flood entry).
    pub mac: MacAddr,
    /// Where it points; `None` when the entry has neither dst nor nhid.
    pub dst: Option<FdbDst>,
}

/// One static bridge-level (`master`) FDB entry on a VXLAN port or on a port of
/// our bridges (a VM MAC pin). On the VXLAN port it tells
/// the bridge which port a remote MAC is behind, which ARP suppression needs
/// (the bridge only answers for a MAC its own FDB places on a suppressing port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedPortFdb {
    /// Ifindex of the bridge port (our VXLAN device).
    pub port: u32,
    /// The MAC.
    pub mac: MacAddr,
}

/// One IPv4 neighbour entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedNeigh {
    /// Ifindex of the device it lives on.
    pub ifindex: u32,
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// Link-layer address, if resolved.
    pub mac: Option<MacAddr>,
    /// True for NUD_PERMANENT (what we install).
    pub permanent: bool,
}

/// One nexthop object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedNexthop {
    /// Nexthop id.
    pub id: u32,
    /// `nh_protocol`: ours is [`crate::desired::NEXTHOP_PROTOCOL`].
    pub protocol: u8,
    /// Gateway of a single nexthop.
    pub gateway: Option<Ipv4Addr>,
    /// Member ids of a group (empty for a single nexthop).
    pub group: Vec<u32>,
    /// Whether it is an FDB nexthop (`fdb`).
    pub fdb: bool,
}

/// A consistent-enough picture of the kernel: taken by one dump of each table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// All links.
    pub links: Vec<ObservedLink>,
    /// `NTF_SELF` FDB entries of VXLAN devices.
    pub fdb: Vec<ObservedFdb>,
    /// Static `master` FDB entries of VXLAN ports and of our bridges' ports.
    pub port_fdb: Vec<ObservedPortFdb>,
    /// IPv4 neighbours.
    pub neighbours: Vec<ObservedNeigh>,
    /// Nexthop objects (empty where the kernel has none).
    pub nexthops: Vec<ObservedNexthop>,
    /// Dynamic (learned) bridge FDB entries on any bridge, for [`crate::learning`].
    pub learned: Vec<BridgeFdbEntry>,
}

impl Observed {
    /// Looks a link up by name.
    pub fn link(&self, name: &str) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Looks a link up by ifindex.
    pub fn link_by_index(&self, index: u32) -> Option<&ObservedLink> {
        self.links.iter().find(|l| l.index == index)
    }
}
