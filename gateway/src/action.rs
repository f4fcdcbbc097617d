//! The kernel changes a plan is made of: one variant per `ip`/`bridge`
//! command the reconciler would otherwise have to run, printed that way too.

use std::fmt;
use std::net::Ipv4Addr;

use crate::desired::VXLAN_PORT;
use crate::mac::MacAddr;
use crate::observed::FdbDst;

/// One kernel change; links are named, not indexed, because a link created
/// earlier in the same plan has no index yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `bridge fdb del MAC dev DEV [dst IP | nhid N] self`.
    DelFdb {
        /// VXLAN device.
        dev: String,
        /// MAC key.
        mac: MacAddr,
        /// The remote to remove (`None`: an entry without one).
        dst: Option<FdbDst>,
    },
    /// `bridge fdb del MAC dev DEV master`.
    DelPortFdb {
        /// Bridge port: our VXLAN device or a VM port.
        dev: String,
        /// MAC.
        mac: MacAddr,
    },
    /// `ip neigh del IP dev DEV`.
    DelNeigh {
        /// Bridge device.
        dev: String,
        /// IPv4 address.
        ip: Ipv4Addr,
    },
    /// `ip link set DEV nomaster`.
    SetNomaster {
        /// The port to release.
        dev: String,
    },
    /// `ip link del NAME`.
    DelLink {
        /// Link name.
        name: String,
    },
    /// `ip nexthop del id ID`.
    DelNexthop {
        /// Nexthop id.
        id: u32,
    },
    /// `ip nexthop add id ID via GW fdb proto bridgehead`.
    AddNexthop {
        /// Nexthop id.
        id: u32,
        /// Service node tunnel IP.
        gateway: Ipv4Addr,
    },
    /// `ip nexthop {add|replace} id ID group A/B/.. fdb`.
    SetNexthopGroup {
        /// Group id.
        id: u32,
        /// Member nexthop ids.
        members: Vec<u32>,
        /// Replace an existing group in place (no FDB churn) instead of creating.
        replace: bool,
    },
    /// `ip link add NAME type bridge`.
    CreateBridge {
        /// Link name.
        name: String,
    },
    /// `ip link add NAME type vxlan id VNI local IP dstport 4789 nolearning [dev UNDERLAY]`.
    CreateVxlan {
        /// Link name.
        name: String,
        /// VNI.
        vni: u32,
        /// Local tunnel IP.
        local: Ipv4Addr,
        /// Underlay device name.
        underlay: Option<String>,
    },
    /// `ip link add NAME link PARENT type vlan id VLAN`.
    CreateVlan {
        /// Link name.
        name: String,
        /// Physical NIC.
        parent: String,
        /// VLAN id.
        vlan: u16,
    },
    /// `ip link set DEV alias ALIAS`: our ownership mark.
    SetAlias {
        /// Link name.
        dev: String,
        /// Alias.
        alias: String,
    },
    /// `ip link set DEV master MASTER`.
    SetMaster {
        /// Port.
        dev: String,
        /// Bridge.
        master: String,
    },
    /// `ip link set DEV up`.
    SetUp {
        /// Link name.
        dev: String,
    },
    /// `ip link set DEV type bridge_slave neigh_suppress on|off`.
    SetNeighSuppress {
        /// Bridge port.
        dev: String,
        /// Desired flag.
        on: bool,
    },
    /// `bridge fdb {append|replace} MAC dev DEV {dst IP|nhid N} self permanent`.
    AddFdb {
        /// VXLAN device.
        dev: String,
        /// MAC key.
        mac: MacAddr,
        /// Remote.
        dst: FdbDst,
        /// True when this moves a MAC to another VTEP (in place, no gap). Unicast
        /// entries are always written with replace semantics; flood entries
        /// (zero MAC) are appended (`dst`) or added (`nhid`).
        moved: bool,
    },
    /// `bridge fdb replace MAC dev DEV master static`.
    AddPortFdb {
        /// Bridge port: our VXLAN device or a VM port.
        dev: String,
        /// MAC.
        mac: MacAddr,
    },
    /// `ip neigh replace IP lladdr MAC dev DEV nud permanent`.
    AddNeigh {
        /// Bridge device.
        dev: String,
        /// IPv4 address.
        ip: Ipv4Addr,
        /// MAC.
        mac: MacAddr,
    },
}

/// How [`Action::AddFdb`] writes its entry, for the kernel request and its
/// printed `bridge` command alike. The vxlan driver refuses NLM_F_REPLACE on
/// the zero (flood) MAC ("Cannot replace non-unicast fdb entries"): extra
/// flood remotes are appended, an nhid flood entry is created exclusively;
/// unicast entries are replaced, so a moved MAC changes in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdbWrite {
    /// `bridge fdb replace` (NLM_F_REPLACE).
    Replace,
    /// `bridge fdb append` (NLM_F_APPEND).
    Append,
    /// `bridge fdb add` (NLM_F_EXCL).
    Add,
}

impl FdbWrite {
    /// The write for an entry keyed `mac` toward `dst`.
    pub fn of(mac: MacAddr, dst: FdbDst) -> FdbWrite {
        match dst {
            _ if !mac.is_zero() => FdbWrite::Replace,
            FdbDst::Ip(_) => FdbWrite::Append,
            FdbDst::Nexthop(_) => FdbWrite::Add,
        }
    }

    /// The `bridge fdb` verb.
    pub fn verb(self) -> &'static str {
        match self {
            FdbWrite::Replace => "replace",
            FdbWrite::Append => "append",
            FdbWrite::Add => "add",
        }
    }
}

impl Action {
    /// A short, bounded label for metrics (`netlink_errors_total{op=..}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::DelFdb { .. } => "del_fdb",
            Action::DelPortFdb { .. } => "del_port_fdb",
            Action::DelNeigh { .. } => "del_neigh",
            Action::SetNomaster { .. } => "set_nomaster",
            Action::DelLink { .. } => "del_link",
            Action::DelNexthop { .. } => "del_nexthop",
            Action::AddNexthop { .. } => "add_nexthop",
            Action::SetNexthopGroup { .. } => "set_nexthop_group",
            Action::CreateBridge { .. } => "create_bridge",
            Action::CreateVxlan { .. } => "create_vxlan",
            Action::CreateVlan { .. } => "create_vlan",
            Action::SetAlias { .. } => "set_alias",
            Action::SetMaster { .. } => "set_master",
            Action::SetUp { .. } => "set_up",
            Action::SetNeighSuppress { .. } => "set_neigh_suppress",
            Action::AddFdb { .. } => "add_fdb",
            Action::AddPortFdb { .. } => "add_port_fdb",
            Action::AddNeigh { .. } => "add_neigh",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dst = |d: &FdbDst| match d {
            FdbDst::Ip(ip) => format!("dst {ip}"),
            FdbDst::Nexthop(id) => format!("nhid {id}"),
        };
        match self {
            Action::DelFdb { dev, mac, dst: d } => {
                write!(
                    f,
                    "fdb del {mac} dev {dev} {}",
                    d.as_ref().map(dst).unwrap_or_default()
                )
            }
            Action::DelPortFdb { dev, mac } => write!(f, "fdb del {mac} dev {dev} master"),
            Action::AddPortFdb { dev, mac } => {
                write!(f, "fdb replace {mac} dev {dev} master static")
            }
            Action::DelNeigh { dev, ip } => write!(f, "neigh del {ip} dev {dev}"),
            Action::SetNomaster { dev } => write!(f, "link set {dev} nomaster"),
            Action::DelLink { name } => write!(f, "link del {name}"),
            Action::DelNexthop { id } => write!(f, "nexthop del id {id}"),
            Action::AddNexthop { id, gateway } => {
                write!(f, "nexthop add id {id} via {gateway} fdb")
            }
            Action::SetNexthopGroup {
                id,
                members,
                replace,
            } => {
                let m: Vec<String> = members.iter().map(|m| m.to_string()).collect();
                let verb = if *replace { "replace" } else { "add" };
                write!(f, "nexthop {verb} id {id} group {} fdb", m.join("/"))
            }
            Action::CreateBridge { name } => write!(f, "link add {name} type bridge"),
            Action::CreateVxlan {
                name,
                vni,
                local,
                underlay,
            } => write!(
                f,
                "link add {name} type vxlan id {vni} local {local} dstport {VXLAN_PORT} nolearning{}",
                underlay
                    .as_ref()
                    .map(|u| format!(" dev {u}"))
                    .unwrap_or_default()
            ),
            Action::CreateVlan { name, parent, vlan } => {
                write!(f, "link add {name} link {parent} type vlan id {vlan}")
            }
            Action::SetAlias { dev, alias } => write!(f, "link set {dev} alias {alias}"),
            Action::SetMaster { dev, master } => write!(f, "link set {dev} master {master}"),
            Action::SetUp { dev } => write!(f, "link set {dev} up"),
            Action::SetNeighSuppress { dev, on } => {
                write!(
                    f,
                    "link set {dev} type bridge_slave neigh_suppress {}",
                    if *on { "on" } else { "off" }
                )
            }
            Action::AddFdb {
                dev, mac, dst: d, ..
            } => {
                let verb = FdbWrite::of(*mac, *d).verb();
                write!(f, "fdb {verb} {mac} dev {dev} {} self permanent", dst(d))
            }
            Action::AddNeigh { dev, ip, mac } => {
                write!(f, "neigh replace {ip} lladdr {mac} dev {dev} nud permanent")
            }
        }
    }
}
