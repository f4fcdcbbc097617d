//! The sans-IO heart of the reconciler: (desired, observed) -> ordered actions.
//!
//! Level-based: the plan depends only on the two inputs, never on what we did
//! before, so re-running it after any change (ours or someone else's) converges.
//! Only objects that [`crate::desired::is_our_link`] recognises, FDB/neighbour entries on our
//! devices, and nexthops stamped with [`NEXTHOP_PROTOCOL`] are ever deleted or
//! changed; the one foreign change we make is enslaving (or releasing) a bound
//! physical NIC to (from) our bridge.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use crate::desired::{
    DesiredNode, DesiredSwitch, NEXTHOP_PROTOCOL, NH_MEMBER_BASE, NH_MEMBER_END, Replication,
    VXLAN_PORT, bridge_name, link_alias, nh_group_id, vlan_name, vxlan_name,
};
use crate::mac::MacAddr;
use crate::observed::{
    FdbDst, LinkKind, Observed, ObservedFdb, ObservedLink, ObservedNeigh, ObservedNexthop,
    ObservedPortFdb, VxlanParams,
};

pub use crate::action::Action;

/// Something in the desired state that cannot be realised on this node; the
/// rest of the plan still goes ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The configured underlay device does not exist.
    #[error("underlay device {0} does not exist; VXLAN devices not created")]
    MissingUnderlay(String),
    /// A bound physical NIC does not exist.
    #[error("VNI {vni}: bound port {ifname} does not exist")]
    MissingPort {
        /// Switch.
        vni: u32,
        /// NIC name.
        ifname: String,
    },
    /// A VM port does not exist (yet): normal while its VM is not running.
    #[error("VNI {vni}: VM port {ifname} does not exist (yet)")]
    MissingVmPort {
        /// Switch.
        vni: u32,
        /// Port name.
        ifname: String,
    },
    /// A bound NIC or VM port is already a port of a bridge that is not ours.
    #[error(
        "VNI {vni}: port {ifname} is enslaved to a foreign master (ifindex {master}); not touching it"
    )]
    ForeignMaster {
        /// Switch.
        vni: u32,
        /// NIC name.
        ifname: String,
        /// Ifindex of the foreign master.
        master: u32,
    },
    /// Our deterministic nexthop group id is used by someone else's nexthop.
    #[error("VNI {vni}: nexthop id {id} belongs to someone else; BUM flooding not programmed")]
    NexthopIdTaken {
        /// Switch.
        vni: u32,
        /// The id.
        id: u32,
    },
    /// No free id left in our member nexthop range.
    #[error("no free nexthop id for service node {0}")]
    NexthopIdsExhausted(Ipv4Addr),
}

impl Problem {
    /// True for states that are normal for a while (nothing to warn about).
    pub fn is_expected(&self) -> bool {
        matches!(self, Problem::MissingVmPort { .. })
    }
}

/// The outcome of a diff: actions in a safe order, plus what cannot be done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Apply in this order.
    pub actions: Vec<Action>,
    /// Unrealisable parts of the desired state.
    pub problems: Vec<Problem>,
}

/// Actions collected per phase, concatenated at the end in dependency order.
#[derive(Default)]
struct Phases {
    del_entries: Vec<Action>,
    release_ports: Vec<Action>,
    del_links: Vec<Action>,
    del_groups: Vec<Action>,
    add_members: Vec<Action>,
    set_groups: Vec<Action>,
    del_members: Vec<Action>,
    links: Vec<Action>,
    add_entries: Vec<Action>,
}

/// Computes the actions that turn `observed` into `desired`.
///
/// Order: stale FDB/neighbour entries first (they may point at nexthops or
/// devices about to go), then ports released and stale links deleted (vlan,
/// vxlan, bridge), stale nexthop groups, new member nexthops, group
/// create/replace, stale members (only after no group uses them, or the
/// kernel would empty and drop a group under a live FDB entry), then links
/// created and wired (bridge before vxlan before enslave), then entries added.
pub fn diff(desired: &DesiredNode, observed: &Observed) -> Plan {
    let ix = Indexed::new(observed);
    let mut ph = Phases::default();
    let mut problems = Vec::new();

    let our_bridges: BTreeSet<u32> = observed
        .links
        .iter()
        .filter(|l| l.is_our_bridge())
        .map(|l| l.index)
        .collect();

    let underlay = match &desired.underlay_dev {
        Some(dev) => match ix.link(dev) {
            Some(l) => Some(Some(l)),
            None => {
                problems.push(Problem::MissingUnderlay(dev.clone()));
                None
            }
        },
        None => Some(None),
    };

    // --- nexthops (ids must be known before FDB entries can name them)
    let nh = plan_nexthops(desired, observed, &mut ph, &mut problems);

    // --- links, per switch
    let mut desired_names = BTreeSet::new();
    let mut untagged_ports: BTreeMap<&str, String> = BTreeMap::new();
    for sw in &desired.switches {
        let br = bridge_name(sw.vni);
        let vx = vxlan_name(sw.vni);
        desired_names.insert(br.clone());
        desired_names.insert(vx.clone());

        let br_obs = ix.link(&br);
        let br_fresh = ensure_link(
            &mut ph,
            br_obs,
            &br,
            &link_alias("bridge", sw.vni),
            |k| *k == LinkKind::Bridge,
            || Action::CreateBridge { name: br.clone() },
        );
        if br_fresh || !br_obs.is_some_and(|l| l.up) {
            ph.links.push(Action::SetUp { dev: br.clone() });
        }
        let br_index = if br_fresh {
            None
        } else {
            br_obs.map(|l| l.index)
        };

        // The vxlan device exists only if its underlay does.
        let vx_obs = ix.link(&vx);
        let mut vx_index = None;
        // Index of the vxlan device if it is already a port of our bridge:
        // only then do its bridge-level FDB entries exist.
        let mut vx_port = None;
        let vx_exists = underlay.is_some() || vx_obs.is_some();
        if let Some(under) = underlay {
            let want = VxlanParams {
                vni: sw.vni,
                local: Some(desired.local_ip_of(sw)),
                port: VXLAN_PORT,
                learning: false,
                underlay: under.map(|l| l.index),
            };
            let vx_fresh = ensure_link(
                &mut ph,
                vx_obs,
                &vx,
                &link_alias("vxlan", sw.vni),
                |k| matches!(k, LinkKind::Vxlan(p) if *p == want),
                || Action::CreateVxlan {
                    name: vx.clone(),
                    vni: sw.vni,
                    local: desired.local_ip_of(sw),
                    underlay: under.map(|l| l.name.clone()),
                },
            );
            let obs = if vx_fresh { None } else { vx_obs };
            let enslaved = obs.is_some_and(|l| l.master.is_some() && l.master == br_index);
            if !enslaved {
                ph.links.push(Action::SetMaster {
                    dev: vx.clone(),
                    master: br.clone(),
                });
            }
            if !obs.is_some_and(|l| l.up) {
                ph.links.push(Action::SetUp { dev: vx.clone() });
            }
            let suppress = sw.remote_macs.iter().any(|m| m.ip.is_some());
            // The flag lives on the bridge port: it is gone once the port is re-enslaved.
            let current = if enslaved {
                obs.and_then(|l| l.neigh_suppress).unwrap_or(false)
            } else {
                false
            };
            if current != suppress {
                ph.links.push(Action::SetNeighSuppress {
                    dev: vx.clone(),
                    on: suppress,
                });
            }
            vx_index = obs.map(|l| l.index);
            vx_port = if enslaved { vx_index } else { None };
        } else if vx_obs.is_some() {
            // Keep an existing device rather than cut traffic over a config typo.
            vx_index = vx_obs.map(|l| l.index);
            vx_port = vx_obs
                .filter(|l| l.master.is_some() && l.master == br_index)
                .map(|l| l.index);
        }

        for p in &sw.ports {
            let Some(nic) = ix.link(&p.ifname) else {
                problems.push(Problem::MissingPort {
                    vni: sw.vni,
                    ifname: p.ifname.clone(),
                });
                continue;
            };
            if p.vlan == 0 {
                untagged_ports.insert(p.ifname.as_str(), br.clone());
                match nic.master {
                    Some(m) if Some(m) == br_index => {}
                    Some(m) if !our_bridges.contains(&m) => problems.push(Problem::ForeignMaster {
                        vni: sw.vni,
                        ifname: p.ifname.clone(),
                        master: m,
                    }),
                    _ => ph.links.push(Action::SetMaster {
                        dev: p.ifname.clone(),
                        master: br.clone(),
                    }),
                }
                continue;
            }
            let name = vlan_name(nic.index, p.vlan);
            desired_names.insert(name.clone());
            let obs = ix.link(&name);
            let fresh = ensure_link(
                &mut ph,
                obs,
                &name,
                &link_alias("vlan", sw.vni),
                |k| {
                    *k == LinkKind::Vlan { id: p.vlan }
                        && obs.is_some_and(|l| l.parent == Some(nic.index))
                },
                || Action::CreateVlan {
                    name: name.clone(),
                    parent: p.ifname.clone(),
                    vlan: p.vlan,
                },
            );
            let obs = if fresh { None } else { obs };
            if !obs.is_some_and(|l| l.master.is_some() && l.master == br_index) {
                ph.links.push(Action::SetMaster {
                    dev: name.clone(),
                    master: br.clone(),
                });
            }
            if !obs.is_some_and(|l| l.up) {
                ph.links.push(Action::SetUp { dev: name.clone() });
            }
        }

        for p in &sw.vm_ports {
            let Some(port) = ix.link(&p.ifname) else {
                problems.push(Problem::MissingVmPort {
                    vni: sw.vni,
                    ifname: p.ifname.clone(),
                });
                continue;
            };
            untagged_ports.insert(p.ifname.as_str(), br.clone());
            let attached = port.master.is_some() && port.master == br_index;
            match port.master {
                _ if attached => {}
                Some(m) if !our_bridges.contains(&m) => {
                    problems.push(Problem::ForeignMaster {
                        vni: sw.vni,
                        ifname: p.ifname.clone(),
                        master: m,
                    });
                    continue;
                }
                _ => ph.links.push(Action::SetMaster {
                    dev: p.ifname.clone(),
                    master: br.clone(),
                }),
            }
            if !port.up {
                ph.links.push(Action::SetUp {
                    dev: p.ifname.clone(),
                });
            }
            // Pins exist only while the port is on this bridge.
            let have: BTreeSet<MacAddr> = if attached {
                ix.port_fdb
                    .get(&port.index)
                    .into_iter()
                    .flatten()
                    .map(|e| e.mac)
                    .collect()
            } else {
                BTreeSet::new()
            };
            let want: BTreeSet<MacAddr> = p.macs.iter().copied().collect();
            for mac in have.difference(&want) {
                ph.del_entries.push(Action::DelPortFdb {
                    dev: p.ifname.clone(),
                    mac: *mac,
                });
            }
            for mac in want.difference(&have) {
                ph.add_entries.push(Action::AddPortFdb {
                    dev: p.ifname.clone(),
                    mac: *mac,
                });
            }
        }

        if vx_exists {
            plan_fdb(sw, &ix, vx_index, nh.groups.get(&sw.vni).copied(), &mut ph);
            plan_port_fdb(sw, &ix, vx_port, &mut ph);
        }
        plan_neighbours(sw, &ix, br_index, &mut ph);
    }

    // --- stale links of ours, and foreign ports left on our bridges
    let mut stale: Vec<&ObservedLink> = observed
        .links
        .iter()
        .filter(|l| l.is_ours() && !desired_names.contains(&l.name))
        .collect();
    // Upper devices before what they sit on: vlan, vxlan, then bridges.
    stale.sort_by_key(|l| match l.kind {
        LinkKind::Bridge => 2,
        LinkKind::Vxlan(_) => 1,
        _ => 0,
    });
    for l in stale {
        ph.del_links.push(Action::DelLink {
            name: l.name.clone(),
        });
    }
    for l in &observed.links {
        let on_ours = l.master.is_some_and(|m| our_bridges.contains(&m));
        if on_ours && !l.is_ours() && !untagged_ports.contains_key(l.name.as_str()) {
            ph.release_ports.push(Action::SetNomaster {
                dev: l.name.clone(),
            });
        }
    }

    let Phases {
        del_entries,
        release_ports,
        del_links,
        del_groups,
        add_members,
        set_groups,
        del_members,
        links,
        add_entries,
    } = ph;
    let actions = [
        del_entries,
        release_ports,
        del_links,
        del_groups,
        add_members,
        set_groups,
        del_members,
        links,
        add_entries,
    ]
    .concat();
    Plan { actions, problems }
}

/// The snapshot indexed once per diff, so a pass stays linear in the number
/// of objects however many switches there are.
struct Indexed<'a> {
    links: HashMap<&'a str, &'a ObservedLink>,
    fdb: HashMap<u32, Vec<&'a ObservedFdb>>,
    port_fdb: HashMap<u32, Vec<&'a ObservedPortFdb>>,
    neigh: HashMap<u32, Vec<&'a ObservedNeigh>>,
}

impl<'a> Indexed<'a> {
    fn new(o: &'a Observed) -> Self {
        let mut ix = Indexed {
            links: o.links.iter().map(|l| (l.name.as_str(), l)).collect(),
            fdb: HashMap::new(),
            port_fdb: HashMap::new(),
            neigh: HashMap::new(),
        };
        for e in &o.fdb {
            ix.fdb.entry(e.ifindex).or_default().push(e);
        }
        for e in &o.port_fdb {
            ix.port_fdb.entry(e.port).or_default().push(e);
        }
        for n in &o.neighbours {
            ix.neigh.entry(n.ifindex).or_default().push(n);
        }
        ix
    }

    fn link(&self, name: &str) -> Option<&'a ObservedLink> {
        self.links.get(name).copied()
    }
}

/// Makes sure an owned link exists with the right kind and alias. Returns
/// true when it is (re)created by this plan, i.e. its observed state is void.
fn ensure_link(
    ph: &mut Phases,
    obs: Option<&ObservedLink>,
    name: &str,
    alias: &str,
    kind_ok: impl Fn(&LinkKind) -> bool,
    create: impl FnOnce() -> Action,
) -> bool {
    let fresh = match obs {
        Some(l) if kind_ok(&l.kind) => false,
        Some(_) => {
            // Wrong kind or immutable parameters: only a recreate fixes it.
            ph.del_links.push(Action::DelLink {
                name: name.to_string(),
            });
            true
        }
        None => true,
    };
    if fresh {
        ph.links.push(create());
    }
    if fresh || obs.is_some_and(|l| l.alias.as_deref() != Some(alias)) {
        ph.links.push(Action::SetAlias {
            dev: name.to_string(),
            alias: alias.to_string(),
        });
    }
    fresh
}

/// Nexthop ids chosen for this plan.
struct NexthopIds {
    /// vni -> group id, for service_node switches whose group can be programmed.
    groups: BTreeMap<u32, u32>,
}

fn plan_nexthops(
    desired: &DesiredNode,
    observed: &Observed,
    ph: &mut Phases,
    problems: &mut Vec<Problem>,
) -> NexthopIds {
    let ours = |p: u8| p == NEXTHOP_PROTOCOL;
    let by_id: HashMap<u32, &ObservedNexthop> =
        observed.nexthops.iter().map(|n| (n.id, n)).collect();
    let used: BTreeSet<u32> = by_id.keys().copied().collect();

    // Members: one `via IP fdb` nexthop per service node, shared by all groups.
    let mut member_of: BTreeMap<Ipv4Addr, u32> = BTreeMap::new();
    for n in &observed.nexthops {
        if let Some(gw) = n.gateway {
            if ours(n.protocol)
                && n.fdb
                && n.group.is_empty()
                && (NH_MEMBER_BASE..NH_MEMBER_END).contains(&n.id)
            {
                member_of.entry(gw).or_insert(n.id);
            }
        }
    }
    let wanted_ips: BTreeSet<Ipv4Addr> = desired
        .switches
        .iter()
        .filter_map(|s| match &s.replication {
            Replication::ServiceNode { service_nodes } => Some(service_nodes.iter().copied()),
            Replication::SourceNode { .. } => None,
        })
        .flatten()
        .collect();
    let mut keep_members = BTreeSet::new();
    let mut next_free = NH_MEMBER_BASE;
    let mut failed = BTreeSet::new();
    for ip in &wanted_ips {
        if let Some(id) = member_of.get(ip) {
            keep_members.insert(*id);
            continue;
        }
        while next_free < NH_MEMBER_END && used.contains(&next_free) {
            next_free += 1;
        }
        if next_free == NH_MEMBER_END {
            problems.push(Problem::NexthopIdsExhausted(*ip));
            failed.insert(*ip);
            continue;
        }
        ph.add_members.push(Action::AddNexthop {
            id: next_free,
            gateway: *ip,
        });
        member_of.insert(*ip, next_free);
        keep_members.insert(next_free);
        next_free += 1;
    }

    let mut groups = BTreeMap::new();
    let mut keep_groups = BTreeSet::new();
    for sw in &desired.switches {
        let Replication::ServiceNode { service_nodes } = &sw.replication else {
            continue;
        };
        let mut members: Vec<u32> = service_nodes
            .iter()
            .filter(|ip| !failed.contains(*ip))
            .filter_map(|ip| member_of.get(ip).copied())
            .collect();
        members.sort_unstable();
        members.dedup();
        if members.is_empty() {
            continue; // the kernel has no empty groups: no flood entry at all
        }
        let id = nh_group_id(sw.vni);
        match by_id.get(&id) {
            Some(n) if !ours(n.protocol) => {
                problems.push(Problem::NexthopIdTaken { vni: sw.vni, id });
                continue;
            }
            Some(n) if n.group.is_empty() || !n.fdb => {
                // A single nexthop cannot be replaced by a group.
                ph.del_groups.push(Action::DelNexthop { id });
                ph.set_groups.push(Action::SetNexthopGroup {
                    id,
                    members,
                    replace: false,
                });
            }
            Some(n) => {
                let mut have = n.group.clone();
                have.sort_unstable();
                if have != members {
                    ph.set_groups.push(Action::SetNexthopGroup {
                        id,
                        members,
                        replace: true,
                    });
                }
            }
            None => ph.set_groups.push(Action::SetNexthopGroup {
                id,
                members,
                replace: false,
            }),
        }
        keep_groups.insert(id);
        groups.insert(sw.vni, id);
    }

    for n in &observed.nexthops {
        if !ours(n.protocol) || keep_groups.contains(&n.id) || keep_members.contains(&n.id) {
            continue;
        }
        let del = Action::DelNexthop { id: n.id };
        if n.group.is_empty() {
            ph.del_members.push(del)
        } else {
            ph.del_groups.push(del)
        }
    }
    NexthopIds { groups }
}

fn plan_fdb(
    sw: &DesiredSwitch,
    index: &Indexed<'_>,
    vx_index: Option<u32>,
    group: Option<u32>,
    ph: &mut Phases,
) {
    let dev = vxlan_name(sw.vni);
    let mut want: BTreeMap<MacAddr, BTreeSet<FdbDst>> = BTreeMap::new();
    for m in &sw.remote_macs {
        want.entry(m.mac).or_default().insert(FdbDst::Ip(m.vtep));
    }
    let flood: BTreeSet<FdbDst> = match &sw.replication {
        Replication::SourceNode { remote_vteps } => {
            remote_vteps.iter().map(|ip| FdbDst::Ip(*ip)).collect()
        }
        Replication::ServiceNode { .. } => group.map(FdbDst::Nexthop).into_iter().collect(),
    };
    if !flood.is_empty() {
        want.insert(MacAddr::ZERO, flood);
    }

    let mut have: BTreeMap<MacAddr, Vec<Option<FdbDst>>> = BTreeMap::new();
    if let Some(ix) = vx_index {
        for e in index.fdb.get(&ix).into_iter().flatten() {
            have.entry(e.mac).or_default().push(e.dst);
        }
    }

    for (mac, dsts) in &have {
        let wanted = want.get(mac);
        // A unicast MAC that moved: replace its single remote in place.
        if !mac.is_zero() {
            if let (Some(w), [Some(old)]) = (wanted, dsts.as_slice()) {
                if w.len() == 1 && !w.contains(old) {
                    continue; // handled as a replace below
                }
            }
        }
        for d in dsts {
            if !d.is_some_and(|d| wanted.is_some_and(|w| w.contains(&d))) {
                ph.del_entries.push(Action::DelFdb {
                    dev: dev.clone(),
                    mac: *mac,
                    dst: *d,
                });
            }
        }
    }
    for (mac, dsts) in &want {
        let cur = have.get(mac);
        let moved = !mac.is_zero()
            && dsts.len() == 1
            && cur.is_some_and(|c| c.len() == 1 && c[0].is_some_and(|d| !dsts.contains(&d)));
        for d in dsts {
            if !cur.is_some_and(|c| c.contains(&Some(*d))) {
                ph.add_entries.push(Action::AddFdb {
                    dev: dev.clone(),
                    mac: *mac,
                    dst: *d,
                    moved,
                });
            }
        }
    }
}

fn plan_port_fdb(sw: &DesiredSwitch, index: &Indexed<'_>, vx_port: Option<u32>, ph: &mut Phases) {
    let dev = vxlan_name(sw.vni);
    let want: BTreeSet<MacAddr> = sw.remote_macs.iter().map(|m| m.mac).collect();
    let mut have = BTreeSet::new();
    if let Some(ix) = vx_port {
        for e in index.port_fdb.get(&ix).into_iter().flatten() {
            have.insert(e.mac);
            if !want.contains(&e.mac) {
                ph.del_entries.push(Action::DelPortFdb {
                    dev: dev.clone(),
                    mac: e.mac,
                });
            }
        }
    }
    for mac in want.difference(&have) {
        ph.add_entries.push(Action::AddPortFdb {
            dev: dev.clone(),
            mac: *mac,
        });
    }
}

fn plan_neighbours(
    sw: &DesiredSwitch,
    index: &Indexed<'_>,
    br_index: Option<u32>,
    ph: &mut Phases,
) {
    let dev = bridge_name(sw.vni);
    let want: BTreeMap<Ipv4Addr, MacAddr> = sw
        .remote_macs
        .iter()
        .filter_map(|m| m.ip.map(|ip| (ip, m.mac)))
        .collect();
    let mut have = BTreeMap::new();
    if let Some(ix) = br_index {
        for n in index.neigh.get(&ix).into_iter().flatten() {
            have.insert(n.ip, n);
            if !want.contains_key(&n.ip) {
                ph.del_entries.push(Action::DelNeigh {
                    dev: dev.clone(),
                    ip: n.ip,
                });
            }
        }
    }
    for (ip, mac) in want {
        let ok = have
            .get(&ip)
            .is_some_and(|n| n.mac == Some(mac) && n.permanent);
        if !ok {
            ph.add_entries.push(Action::AddNeigh {
                dev: dev.clone(),
                ip,
                mac,
            });
        }
    }
}
