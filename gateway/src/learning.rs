//! Learned MACs on the local side of our bridges: which hosts the kernel
//! bridge has seen behind a physical NIC (gateway mode) or a VM port (host
//! mode), for the store's learned-MAC objects.
//!
//! Sans-IO: fed with bridge FDB dumps (level: the whole truth at one moment)
//! and `RTM_NEWNEIGH`/`RTM_DELNEIGH` notifications (edges, for latency), it
//! emits [`LearnEvent`]s. A MAC counts as learned on switch `vni` while the
//! bridge of `vni` holds a *dynamic* entry for it on a non-VXLAN port. Our own
//! static entries, the bridge's permanent (local) entries, the VXLAN device's
//! own `self` entries and anything learned on the VXLAN port (that MAC lives
//! behind a remote VTEP) do not count; a MAC moving to one of those is
//! withdrawn, as is a MAC whose port leaves the bridge.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::desired::BRIDGE_PREFIX;
use crate::mac::MacAddr;
use crate::observed::{LinkKind, ObservedLink};

/// How an AF_BRIDGE FDB entry came to be, as far as learning cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryOrigin {
    /// Learned from a frame's source (or `extern_learn`): NUD_REACHABLE/STALE.
    Learned,
    /// `static` (NUD_NOARP): installed by us or an operator.
    Static,
    /// `permanent` (NUD_PERMANENT): the bridge's own local addresses.
    Permanent,
    /// An `NTF_SELF` entry of the port device itself (the VXLAN FDB), not the bridge's.
    Device,
}

/// One AF_BRIDGE FDB entry, reduced to what the tracker reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeFdbEntry {
    /// Ifindex of the bridge port (`ndm_ifindex`).
    pub port: u32,
    /// `NDA_MASTER`: the bridge, when the message says.
    pub master: Option<u32>,
    /// The MAC.
    pub mac: MacAddr,
    /// What kind of entry it is.
    pub origin: EntryOrigin,
}

/// What the tracker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnEvent {
    /// `mac` is now learned on switch `vni` behind local port `port` (also sent
    /// again when it moves to another local port).
    Learned {
        /// Switch.
        vni: u32,
        /// The MAC.
        mac: MacAddr,
        /// Name of the local port it was learned on.
        port: String,
    },
    /// `mac` is no longer learned locally on switch `vni` (aged out, moved
    /// behind the tunnel, pinned statically, or its port left the bridge).
    Withdrawn {
        /// Switch.
        vni: u32,
        /// The MAC.
        mac: MacAddr,
    },
}

/// What a bridge port is to us.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PortRole {
    /// Local side: a physical NIC, VLAN sub-interface or VM port.
    Local { vni: u32, name: String },
    /// The VXLAN device: MACs behind it are remote.
    Tunnel,
}

/// Our bridges and their ports, from one link dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Bridge ifindex -> VNI.
    bridges: HashMap<u32, u32>,
    /// Port ifindex -> role.
    ports: HashMap<u32, PortRole>,
}

impl Topology {
    /// Reads our bridges (`bhbr<vni>`) and their ports from a link list.
    pub fn from_links(links: &[ObservedLink]) -> Topology {
        let bridges: HashMap<u32, u32> = links
            .iter()
            .filter(|l| l.is_our_bridge())
            .filter_map(|l| Some((l.index, bridge_vni(&l.name)?)))
            .collect();
        let ports = links
            .iter()
            .filter_map(|l| {
                let vni = *bridges.get(&l.master?)?;
                let role = if matches!(l.kind, LinkKind::Vxlan(_)) {
                    PortRole::Tunnel
                } else {
                    PortRole::Local {
                        vni,
                        name: l.name.clone(),
                    }
                };
                Some((l.index, role))
            })
            .collect();
        Topology { bridges, ports }
    }

    /// The switch an entry belongs to: by its bridge when the message names it,
    /// else by its port's bridge.
    fn vni_of(&self, e: &BridgeFdbEntry) -> Option<u32> {
        match e.master {
            Some(m) => self.bridges.get(&m).copied(),
            None => match self.ports.get(&e.port)? {
                PortRole::Local { vni, .. } => Some(*vni),
                PortRole::Tunnel => None,
            },
        }
    }
}

/// VNI of one of our bridges, from its deterministic name.
fn bridge_vni(name: &str) -> Option<u32> {
    name.strip_prefix(BRIDGE_PREFIX)?.parse().ok()
}

/// Where a learned MAC sits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Spot {
    port: u32,
    name: String,
}

/// The learned-MAC set of this node, and the events that changed it.
#[derive(Debug, Default)]
pub struct LearnedMacs {
    topo: Topology,
    learned: BTreeMap<(u32, MacAddr), Spot>,
    events: VecDeque<LearnEvent>,
}

impl LearnedMacs {
    /// An empty tracker: nothing is known to be learned yet.
    pub fn new() -> LearnedMacs {
        LearnedMacs::default()
    }

    /// Number of MACs currently learned (all switches).
    pub fn len(&self) -> usize {
        self.learned.len()
    }

    /// True when nothing is learned.
    pub fn is_empty(&self) -> bool {
        self.learned.is_empty()
    }

    /// Current set as (vni, mac, port name), ordered by (vni, mac).
    pub fn iter(&self) -> impl Iterator<Item = (u32, MacAddr, &str)> {
        self.learned
            .iter()
            .map(|((vni, mac), s)| (*vni, *mac, s.name.as_str()))
    }

    /// Next event, oldest first.
    pub fn poll_event(&mut self) -> Option<LearnEvent> {
        self.events.pop_front()
    }

    /// If `e` is a dynamic entry on a local port of one of our bridges: (vni, spot).
    fn eligible(&self, e: &BridgeFdbEntry) -> Option<(u32, Spot)> {
        if e.origin != EntryOrigin::Learned || e.mac.is_zero() || e.mac.0[0] & 1 == 1 {
            return None;
        }
        let vni = self.topo.vni_of(e)?;
        match self.topo.ports.get(&e.port)? {
            PortRole::Local { vni: pv, name } if *pv == vni => Some((
                vni,
                Spot {
                    port: e.port,
                    name: name.clone(),
                },
            )),
            _ => None,
        }
    }

    fn learn(&mut self, vni: u32, mac: MacAddr, spot: Spot) {
        if self.learned.get(&(vni, mac)) == Some(&spot) {
            return;
        }
        self.events.push_back(LearnEvent::Learned {
            vni,
            mac,
            port: spot.name.clone(),
        });
        self.learned.insert((vni, mac), spot);
    }

    fn withdraw(&mut self, vni: u32, mac: MacAddr) {
        if self.learned.remove(&(vni, mac)).is_some() {
            self.events.push_back(LearnEvent::Withdrawn { vni, mac });
        }
    }

    /// New bridge/port layout (after a link dump). MACs whose port is no longer
    /// a local port of their switch's bridge are withdrawn; learning on a new
    /// port is picked up by the next dump or notification.
    pub fn set_topology(&mut self, topo: Topology) {
        self.topo = topo;
        let gone: Vec<(u32, MacAddr)> = self
            .learned
            .iter()
            .filter(|((vni, _), s)| {
                !matches!(self.topo.ports.get(&s.port), Some(PortRole::Local { vni: v, .. }) if v == vni)
            })
            .map(|(k, _)| *k)
            .collect();
        for (vni, mac) in gone {
            self.withdraw(vni, mac);
        }
    }

    /// A full FDB dump (every AF_BRIDGE entry, or at least every non-`self`
    /// one): the learned set becomes exactly what it shows.
    pub fn on_dump<'a>(&mut self, entries: impl IntoIterator<Item = &'a BridgeFdbEntry>) {
        let mut now: BTreeMap<(u32, MacAddr), Spot> = BTreeMap::new();
        for e in entries {
            if let Some((vni, spot)) = self.eligible(e) {
                now.insert((vni, e.mac), spot);
            }
        }
        let gone: Vec<(u32, MacAddr)> = self
            .learned
            .keys()
            .filter(|k| !now.contains_key(k))
            .copied()
            .collect();
        for (vni, mac) in gone {
            self.withdraw(vni, mac);
        }
        for ((vni, mac), spot) in now {
            self.learn(vni, mac, spot);
        }
    }

    /// `RTM_NEWNEIGH` for an AF_BRIDGE entry.
    pub fn on_new(&mut self, e: &BridgeFdbEntry) {
        if e.origin == EntryOrigin::Device {
            return; // the port device's own table, not the bridge's
        }
        match self.eligible(e) {
            Some((vni, spot)) => self.learn(vni, e.mac, spot),
            // The bridge now places this MAC elsewhere (tunnel port, static pin).
            None => {
                if let Some(vni) = self.topo.vni_of(e) {
                    self.withdraw(vni, e.mac);
                }
            }
        }
    }

    /// `RTM_DELNEIGH` for an AF_BRIDGE entry (ageing, flush, port removal).
    pub fn on_del(&mut self, e: &BridgeFdbEntry) {
        if e.origin == EntryOrigin::Device {
            return;
        }
        let Some(vni) = self.topo.vni_of(e) else {
            return;
        };
        // Only the entry we track: a delete on another port is a stale echo of a move.
        if self
            .learned
            .get(&(vni, e.mac))
            .is_some_and(|s| s.port == e.port)
        {
            self.withdraw(vni, e.mac);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::link_alias;
    use crate::observed::VxlanParams;

    fn link(index: u32, name: &str, kind: LinkKind, master: Option<u32>) -> ObservedLink {
        ObservedLink {
            index,
            name: name.into(),
            alias: None,
            kind,
            master,
            parent: None,
            up: true,
            neigh_suppress: None,
        }
    }

    /// bhbr5000 (10) with eth1 (2) and bhvx5000 (11); bhbr5001 (20) with vm1 (21);
    /// a foreign bridge brf (30) with eth2 (3).
    fn links() -> Vec<ObservedLink> {
        let mut br = link(10, "bhbr5000", LinkKind::Bridge, None);
        br.alias = Some(link_alias("bridge", 5000));
        let vx = VxlanParams {
            vni: 5000,
            local: None,
            port: 4789,
            learning: false,
            underlay: None,
        };
        vec![
            br,
            link(2, "eth1", LinkKind::Other(Some("veth".into())), Some(10)),
            link(11, "bhvx5000", LinkKind::Vxlan(vx), Some(10)),
            link(20, "bhbr5001", LinkKind::Bridge, None),
            link(21, "vm1", LinkKind::Other(Some("tun".into())), Some(20)),
            link(30, "brf", LinkKind::Bridge, None),
            link(3, "eth2", LinkKind::Other(None), Some(30)),
        ]
    }

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    fn entry(port: u32, master: u32, last: u8, origin: EntryOrigin) -> BridgeFdbEntry {
        BridgeFdbEntry {
            port,
            master: Some(master),
            mac: mac(last),
            origin,
        }
    }

    fn tracker() -> LearnedMacs {
        let mut t = LearnedMacs::new();
        t.set_topology(Topology::from_links(&links()));
        t
    }

    fn drain(t: &mut LearnedMacs) -> Vec<LearnEvent> {
        std::iter::from_fn(|| t.poll_event()).collect()
    }

    fn learned(vni: u32, last: u8, port: &str) -> LearnEvent {
        LearnEvent::Learned {
            vni,
            mac: mac(last),
            port: port.into(),
        }
    }

    fn withdrawn(vni: u32, last: u8) -> LearnEvent {
        LearnEvent::Withdrawn {
            vni,
            mac: mac(last),
        }
    }

    #[test]
    fn learns_on_local_ports_only() {
        let mut t = tracker();
        t.on_new(&entry(2, 10, 1, EntryOrigin::Learned));
        t.on_new(&entry(21, 20, 2, EntryOrigin::Learned));
        // Ignored: behind the tunnel, ours/static, the bridge's own, vxlan self
        // entries, a foreign bridge, multicast.
        t.on_new(&entry(11, 10, 3, EntryOrigin::Learned));
        t.on_new(&entry(2, 10, 4, EntryOrigin::Static));
        t.on_new(&entry(2, 10, 5, EntryOrigin::Permanent));
        t.on_new(&entry(11, 10, 6, EntryOrigin::Device));
        t.on_new(&entry(3, 30, 7, EntryOrigin::Learned));
        let mut m = entry(2, 10, 8, EntryOrigin::Learned);
        m.mac = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
        t.on_new(&m);
        assert_eq!(
            drain(&mut t),
            vec![learned(5000, 1, "eth1"), learned(5001, 2, "vm1")]
        );
        assert_eq!(t.len(), 2);
        // A refresh (same port) says nothing.
        t.on_new(&entry(2, 10, 1, EntryOrigin::Learned));
        assert_eq!(drain(&mut t), vec![]);
    }

    #[test]
    fn ageing_out_withdraws() {
        let mut t = tracker();
        t.on_new(&entry(2, 10, 1, EntryOrigin::Learned));
        drain(&mut t);
        // A delete of the same MAC on another port is not ours.
        t.on_del(&entry(11, 10, 1, EntryOrigin::Learned));
        assert_eq!(drain(&mut t), vec![]);
        t.on_del(&entry(2, 10, 1, EntryOrigin::Learned));
        assert_eq!(drain(&mut t), vec![withdrawn(5000, 1)]);
        t.on_del(&entry(2, 10, 1, EntryOrigin::Learned));
        assert_eq!(drain(&mut t), vec![]);
        assert!(t.is_empty());
    }

    #[test]
    fn moving_behind_the_tunnel_or_being_pinned_withdraws() {
        let mut t = tracker();
        t.on_new(&entry(2, 10, 1, EntryOrigin::Learned));
        t.on_new(&entry(2, 10, 2, EntryOrigin::Learned));
        drain(&mut t);
        t.on_new(&entry(11, 10, 1, EntryOrigin::Learned));
        t.on_new(&entry(11, 10, 2, EntryOrigin::Static));
        assert_eq!(drain(&mut t), vec![withdrawn(5000, 1), withdrawn(5000, 2)]);
    }

    #[test]
    fn move_between_local_ports_is_reported_again() {
        let mut links = links();
        links.push(link(4, "eth3", LinkKind::Other(None), Some(10)));
        let mut t = LearnedMacs::new();
        t.set_topology(Topology::from_links(&links));
        t.on_new(&entry(2, 10, 1, EntryOrigin::Learned));
        t.on_new(&entry(4, 10, 1, EntryOrigin::Learned));
        // The kernel may echo a delete of the old port afterwards.
        t.on_del(&entry(2, 10, 1, EntryOrigin::Learned));
        assert_eq!(
            drain(&mut t),
            vec![learned(5000, 1, "eth1"), learned(5000, 1, "eth3")]
        );
    }

    #[test]
    fn dump_is_the_truth() {
        let mut t = tracker();
        t.on_new(&entry(2, 10, 1, EntryOrigin::Learned));
        t.on_new(&entry(2, 10, 2, EntryOrigin::Learned));
        drain(&mut t);
        // A missed delete (notification overrun) and a missed learn.
        t.on_dump(&[
            entry(2, 10, 2, EntryOrigin::Learned),
            entry(21, 20, 9, EntryOrigin::Learned),
            entry(11, 10, 3, EntryOrigin::Learned),
            entry(2, 10, 5, EntryOrigin::Permanent),
        ]);
        assert_eq!(
            drain(&mut t),
            vec![withdrawn(5000, 1), learned(5001, 9, "vm1")]
        );
        let now: Vec<_> = t.iter().map(|(v, m, p)| (v, m, p.to_string())).collect();
        assert_eq!(
            now,
            vec![(5000, mac(2), "eth1".into()), (5001, mac(9), "vm1".into())]
        );
    }

    #[test]
    fn port_leaving_the_bridge_withdraws_its_macs() {
        let mut t = tracker();
        t.on_new(&entry(2, 10, 1, EntryOrigin::Learned));
        t.on_new(&entry(21, 20, 2, EntryOrigin::Learned));
        drain(&mut t);
        let mut l = links();
        l.retain(|l| l.name != "vm1");
        t.set_topology(Topology::from_links(&l));
        assert_eq!(drain(&mut t), vec![withdrawn(5001, 2)]);
        // The whole switch gone.
        l.retain(|l| l.name != "bhbr5000");
        t.set_topology(Topology::from_links(&l));
        assert_eq!(drain(&mut t), vec![withdrawn(5000, 1)]);
    }

    #[test]
    fn entry_without_master_attribute_uses_the_port_bridge() {
        let mut t = tracker();
        let mut e = entry(2, 10, 1, EntryOrigin::Learned);
        e.master = None;
        t.on_new(&e);
        assert_eq!(drain(&mut t), vec![learned(5000, 1, "eth1")]);
    }
}
