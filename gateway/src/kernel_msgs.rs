//! Building and reading the netlink messages of [`crate::kernel`]: requests
//! for FDB/port-FDB/neighbour changes, and dump entries turned into
//! [`crate::observed`] values.

use std::net::Ipv4Addr;

use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVlan, InfoVxlan, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_core::{DefaultNla, Nla};

use crate::learning::{BridgeFdbEntry, EntryOrigin};
use crate::mac::MacAddr;
use crate::observed::{FdbDst, LinkKind, ObservedFdb, ObservedLink, ObservedNeigh, VxlanParams};

/// `NDA_NH_ID`: FDB entry pointing at a nexthop group (not modelled by netlink-packet-route 0.34).
const NDA_NH_ID: u16 = 13;

pub(crate) fn libc_eopnotsupp() -> i32 {
    nix::errno::Errno::EOPNOTSUPP as i32
}

pub(crate) fn fdb_message(ifindex: u32, mac: MacAddr, dst: Option<FdbDst>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    match dst {
        Some(FdbDst::Ip(ip)) => msg
            .attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip))),
        Some(FdbDst::Nexthop(id)) => {
            msg.attributes
                .push(NeighbourAttribute::Other(DefaultNla::new(
                    NDA_NH_ID,
                    id.to_ne_bytes().to_vec(),
                )))
        }
        None => {}
    }
    msg
}

/// A static bridge FDB entry (`master static`): the bridge forwards the MAC to
/// this port without flooding, learning cannot move it, and ARP suppression
/// finds the port.
pub(crate) fn port_fdb_message(port: u32, mac: MacAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = port;
    msg.header.state = NeighbourState::Noarp;
    msg.header.flags = NeighbourFlags::Controller;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
    msg
}

pub(crate) fn neigh_message(ifindex: u32, ip: Ipv4Addr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.ifindex = ifindex;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    msg
}

pub(crate) fn link_from(l: &LinkMessage) -> ObservedLink {
    let mut out = ObservedLink {
        index: l.header.index,
        name: String::new(),
        alias: None,
        kind: LinkKind::Other(None),
        master: None,
        parent: None,
        up: l.header.flags.contains(LinkFlags::Up),
        neigh_suppress: None,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => out.name = n.clone(),
            LinkAttribute::IfAlias(s) => out.alias = Some(s.clone()),
            LinkAttribute::Controller(m) => out.master = Some(*m),
            LinkAttribute::Link(p) => out.parent = Some(*p),
            LinkAttribute::LinkInfo(infos) => link_info(infos, &mut out),
            _ => {}
        }
    }
    out
}

fn link_info(infos: &[LinkInfo], out: &mut ObservedLink) {
    for i in infos {
        match i {
            LinkInfo::Kind(InfoKind::Bridge) => out.kind = LinkKind::Bridge,
            LinkInfo::Kind(k)
                if !matches!(out.kind, LinkKind::Vxlan(_) | LinkKind::Vlan { .. }) =>
            {
                out.kind = LinkKind::Other(Some(k.to_string()))
            }
            LinkInfo::Data(InfoData::Vxlan(v)) => {
                let mut p = VxlanParams {
                    vni: 0,
                    local: None,
                    port: 0,
                    learning: true,
                    underlay: None,
                };
                for x in v {
                    match x {
                        InfoVxlan::Id(id) => p.vni = *id,
                        InfoVxlan::Local(ip) => p.local = Some(*ip),
                        InfoVxlan::Port(port) => p.port = *port,
                        InfoVxlan::Learning(on) => p.learning = *on,
                        InfoVxlan::Link(ix) => p.underlay = Some(*ix),
                        _ => {}
                    }
                }
                out.kind = LinkKind::Vxlan(p);
            }
            LinkInfo::Data(InfoData::Vlan(v)) => {
                let id = v.iter().find_map(|x| {
                    if let InfoVlan::Id(id) = x {
                        Some(*id)
                    } else {
                        None
                    }
                });
                out.kind = LinkKind::Vlan {
                    id: id.unwrap_or(0),
                };
            }
            LinkInfo::PortData(InfoPortData::BridgePort(v)) => {
                out.neigh_suppress = v.iter().find_map(|x| {
                    if let InfoBridgePort::NeighSupress(on) = x {
                        Some(*on)
                    } else {
                        None
                    }
                });
            }
            _ => {}
        }
    }
}

pub(crate) fn fdb_from(n: &NeighbourMessage) -> Option<ObservedFdb> {
    let mut mac = None;
    let mut dst = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(b) => mac = MacAddr::from_slice(b),
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                dst = Some(FdbDst::Ip(*ip))
            }
            // In AF_BRIDGE messages the crate cannot know NDA_DST's family.
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) if b.len() == 4 => {
                dst = Some(FdbDst::Ip(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
            }
            NeighbourAttribute::Other(nla) if nla.kind() == NDA_NH_ID => {
                let mut v = [0u8; 4];
                if nla.value_len() == 4 {
                    nla.emit_value(&mut v);
                    dst = Some(FdbDst::Nexthop(u32::from_ne_bytes(v)));
                }
            }
            _ => {}
        }
    }
    Some(ObservedFdb {
        ifindex: n.header.ifindex,
        mac: mac?,
        dst,
    })
}

/// Reads an AF_BRIDGE FDB entry (dump entry or notification) for the learning
/// tracker. `fdb_to_nud()` in the bridge driver reports local entries as
/// NUD_PERMANENT, `static` ones as NUD_NOARP and learned ones as
/// NUD_REACHABLE or NUD_STALE; the port device's own entries carry NTF_SELF.
pub(crate) fn bridge_fdb_from(n: &NeighbourMessage) -> Option<BridgeFdbEntry> {
    if n.header.family != AddressFamily::Bridge {
        return None;
    }
    let mut mac = None;
    let mut master = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(b) => mac = MacAddr::from_slice(b),
            NeighbourAttribute::Controller(m) => master = Some(*m),
            _ => {}
        }
    }
    let origin = if n.header.flags.contains(NeighbourFlags::Own) {
        EntryOrigin::Device
    } else {
        match n.header.state {
            NeighbourState::Permanent => EntryOrigin::Permanent,
            NeighbourState::Noarp => EntryOrigin::Static,
            _ => EntryOrigin::Learned,
        }
    };
    Some(BridgeFdbEntry {
        port: n.header.ifindex,
        master,
        mac: mac?,
        origin,
    })
}

pub(crate) fn neigh_from(n: &NeighbourMessage) -> Option<ObservedNeigh> {
    let mut ip = None;
    let mut mac = None;
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
            NeighbourAttribute::LinkLayerAddress(b) => mac = MacAddr::from_slice(b),
            _ => {}
        }
    }
    let ip = ip?;
    // The kernel's own NOARP entries (e.g. 224.0.0.22 for IGMP) are not ours to manage.
    if ip.is_multicast() || ip.is_broadcast() {
        return None;
    }
    Some(ObservedNeigh {
        ifindex: n.header.ifindex,
        ip,
        mac,
        permanent: n.header.state == NeighbourState::Permanent,
    })
}
