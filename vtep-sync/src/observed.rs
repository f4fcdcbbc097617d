//! What a switch reports back to the controller, read from the replica of
//! its database: the observed-state objects (api model) that a store writer
//! puts under the daemon's lease, and the diff that lets it send only changes.
//!
//! Sans-IO: [`observe`] is a pure function of the replica, the desired state
//! and the connection state; [`diff`] compares two object sets.
//!
//! # What is reported
//!
//! - `Ucast_Macs_Local` rows → [`LearnedMac`] (MAC, IP when the switch knows
//!   it), so every other VTEP of the logical switch learns where bare-metal
//!   hosts are. The switch's logical switch is named in the store by its VNI
//!   (`tunnel_key`), not by the row's name: VNIs are unique in the store, and
//!   a row the controller did not name (adopted, or renamed by hand) still
//!   maps. MACs on logical switches the controller does not bind on this
//!   switch are skipped (listed in [`Observed::skipped`]).
//! - `Tunnel.bfd_status` → [`TunnelStatus`] per remote locator IP, only for
//!   tunnels where the switch runs BFD (`bfd_status:state` present); without
//!   BFD the switch claims nothing about the tunnel, and neither do we.
//! - `Physical_Switch` and its ports → [`SwitchStatus`]: connection state,
//!   `switch_fault_status` as `faults`, the row's name when it differs from
//!   the transport node's, tunnel IPs (IPv4 only; others are skipped) and
//!   each port with its own `port_fault_status` and bound VLANs.
//!   [`SwitchReport`] keeps the full view (binding targets) for logs and status.
//!
//! # Disconnects
//!
//! While the switch is unreachable the replica keeps its last contents, so
//! learned MACs and tunnel states stay as last seen (the switch most likely
//! still forwards with them) and only `SwitchStatus.connected` turns false.
//! Deleting them on a short disconnect would make every other VTEP drop the
//! bare-metal hosts' MACs: a traffic outage caused by the controller. A
//! vtep-sync instance that dies loses its lease, and the store removes its
//! observed objects then.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use api::model::{
    BfdState, Key, LearnedMac, MacAddr, Object, PortStatus, SwitchStatus, TunnelStatus,
};
use serde::Serialize;

use crate::datum::Uuid;
use crate::desired::DesiredState;
use crate::replica::Replica;
use crate::vtep_tables::{
    LogicalSwitch, PhysicalLocator, PhysicalPort, PhysicalSwitch, RowError, Tunnel, UcastMacsLocal,
    VtepTable,
};

/// Inputs of [`observe`] besides the replica.
#[derive(Clone, Copy, Debug)]
pub struct ObserveContext<'a> {
    /// The switch's transport node name: the `reporter` of every object.
    pub reporter: &'a str,
    /// `Physical_Switch.name` in the database; `None` = the only one.
    pub physical_switch: Option<&'a str>,
    /// The desired state in force: maps VNIs to the store's logical switches.
    pub desired: &'a DesiredState,
    /// OVSDB session up and its initial dump read (until then the replica
    /// holds what the previous session saw).
    pub connected: bool,
    /// Faults known to the controller rather than the switch (a remembered
    /// source-node fallback), reported with the switch's own.
    pub extra_faults: &'a BTreeSet<String>,
}

/// The switch's identity and ports as its database describes them, including
/// which logical switch each VLAN binds (the store's [`SwitchStatus`] keeps only the VLANs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SwitchReport {
    /// `Physical_Switch.name`.
    pub name: String,
    /// `Physical_Switch.tunnel_ips`.
    pub tunnel_ips: BTreeSet<String>,
    /// `Physical_Switch.switch_fault_status`.
    pub faults: BTreeSet<String>,
    /// Ports by name.
    pub ports: BTreeMap<String, PortReport>,
}

/// One `Physical_Port` as reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PortReport {
    /// `Physical_Port.port_fault_status`.
    pub faults: BTreeSet<String>,
    /// VLAN → the switch's logical switch name (its row name).
    pub bindings: BTreeMap<u16, String>,
}

/// Everything observed on one switch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Connection state and faults, as the store receives them.
    pub switch_status: Option<SwitchStatus>,
    /// The switch row, when the database has it.
    pub switch: Option<SwitchReport>,
    /// MACs the switch learned on its ports, by store key.
    #[serde(serialize_with = "keyed_by_path")]
    pub learned_macs: BTreeMap<Key, LearnedMac>,
    /// BFD state of tunnels toward each remote VTEP, by store key.
    #[serde(serialize_with = "keyed_by_path")]
    pub tunnels: BTreeMap<Key, TunnelStatus>,
    /// Rows that could not be reported, one line each (for a log line).
    pub skipped: Vec<String>,
}

/// JSON object keys must be strings: a map keyed by [`Key`] is written
/// with the key's path form (`learned-macs/tor1/web/02:00:...`).
fn keyed_by_path<S: serde::Serializer, V: Serialize>(
    m: &BTreeMap<Key, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(m.iter().map(|(k, v)| (k.to_string(), v)))
}

impl Observed {
    /// The objects a store writer puts, by key.
    pub fn objects(&self) -> BTreeMap<Key, Object> {
        let mut out: BTreeMap<Key, Object> = BTreeMap::new();
        if let Some(s) = &self.switch_status {
            let o = Object::SwitchStatus(s.clone());
            out.insert(o.key(), o);
        }
        for (k, m) in &self.learned_macs {
            out.insert(k.clone(), Object::LearnedMac(m.clone()));
        }
        for (k, t) in &self.tunnels {
            out.insert(k.clone(), Object::TunnelStatus(t.clone()));
        }
        out
    }
}

/// The changes that turn one observed object set into another.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedDiff {
    /// New or changed objects.
    pub puts: Vec<Object>,
    /// Keys no longer observed.
    pub deletes: Vec<Key>,
}

impl ObservedDiff {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// What to send to the store to go from `prev` (what it holds from us) to
/// `cur`: puts for new and changed objects, deletes for vanished keys.
pub fn diff(prev: &BTreeMap<Key, Object>, cur: &BTreeMap<Key, Object>) -> ObservedDiff {
    ObservedDiff {
        puts: cur
            .iter()
            .filter(|(k, o)| prev.get(*k) != Some(*o))
            .map(|(_, o)| o.clone())
            .collect(),
        deletes: prev
            .keys()
            .filter(|k| !cur.contains_key(*k))
            .cloned()
            .collect(),
    }
}

/// The switch row [`observe`] reports on: the named one, or the only one.
pub fn find_switch(
    replica: &Replica,
    name: Option<&str>,
) -> Result<Option<PhysicalSwitch>, RowError> {
    let all = PhysicalSwitch::all(replica)?;
    Ok(match name {
        Some(n) => all.into_iter().find(|s| s.name == n),
        None if all.len() == 1 => all.into_iter().next(),
        None => None,
    })
}

/// Reads the observed state of a switch from its replica (`None` before
/// the first sync: only the connection state is known then).
pub fn observe(replica: Option<&Replica>, ctx: &ObserveContext<'_>) -> Result<Observed, RowError> {
    let mut out = Observed::default();
    let mut faults: BTreeSet<String> = ctx.extra_faults.clone();
    if let Some(r) = replica {
        let ls_names: BTreeMap<Uuid, (String, Option<i64>)> = LogicalSwitch::all(r)?
            .into_iter()
            .map(|l| (l.uuid, (l.name, l.tunnel_key)))
            .collect();
        let ps = find_switch(r, ctx.physical_switch)?;
        match &ps {
            Some(ps) => {
                let report = switch_report(r, ps, &ls_names)?;
                // Port faults stay with their port (SwitchStatus.ports).
                faults.extend(report.faults.iter().cloned());
                out.switch = Some(report);
            }
            None => out.skipped.push(match ctx.physical_switch {
                Some(n) => format!("no Physical_Switch named {n:?}"),
                None => format!(
                    "{} Physical_Switch rows and none named in the config",
                    r.len(PhysicalSwitch::TABLE)
                ),
            }),
        }
        learned_macs(r, ctx, &ls_names, &mut out)?;
        tunnels(r, ctx, ps.as_ref(), &mut out)?;
    }
    let mut status = SwitchStatus {
        switch: ctx.reporter.to_owned(),
        connected: ctx.connected,
        faults: faults.into_iter().collect(),
        ..SwitchStatus::default()
    };
    if let Some(sw) = &out.switch {
        status_from_report(&mut status, sw, &mut out.skipped);
    }
    out.switch_status = Some(status);
    Ok(out)
}

/// Copies the switch row's name, tunnel IPs and ports into the status the store receives.
fn status_from_report(status: &mut SwitchStatus, sw: &SwitchReport, skipped: &mut Vec<String>) {
    if sw.name != status.switch {
        status.reported_name = Some(sw.name.clone());
    }
    for ip in &sw.tunnel_ips {
        match ip.parse::<Ipv4Addr>() {
            Ok(a) => status.tunnel_ips.push(a),
            // An IPv6 or malformed tunnel IP has no place in the IPv4 store field.
            Err(_) => skipped.push(format!("tunnel IP {ip:?} of {} is not IPv4", sw.name)),
        }
    }
    status.ports = sw
        .ports
        .iter()
        .map(|(name, p)| PortStatus {
            name: name.clone(),
            faults: p.faults.iter().cloned().collect(),
            vlan_bindings: p.bindings.keys().copied().collect(),
        })
        .collect();
}

fn switch_report(
    r: &Replica,
    ps: &PhysicalSwitch,
    ls_names: &BTreeMap<Uuid, (String, Option<i64>)>,
) -> Result<SwitchReport, RowError> {
    let mut ports = BTreeMap::new();
    for p in PhysicalPort::all(r)? {
        if !ps.ports.contains(&p.uuid) {
            continue;
        }
        let bindings = p
            .vlan_bindings
            .iter()
            .map(|(vlan, ls)| {
                let name = ls_names
                    .get(ls)
                    .map_or_else(|| ls.to_string(), |(n, _)| n.clone());
                (*vlan, name)
            })
            .collect();
        ports.insert(
            p.name,
            PortReport {
                faults: p.port_fault_status,
                bindings,
            },
        );
    }
    Ok(SwitchReport {
        name: ps.name.clone(),
        tunnel_ips: ps.tunnel_ips.clone(),
        faults: ps.switch_fault_status.clone(),
        ports,
    })
}

fn learned_macs(
    r: &Replica,
    ctx: &ObserveContext<'_>,
    ls_names: &BTreeMap<Uuid, (String, Option<i64>)>,
    out: &mut Observed,
) -> Result<(), RowError> {
    let by_vni: BTreeMap<i64, &str> = ctx
        .desired
        .logical_switches
        .iter()
        .map(|(name, ls)| (i64::from(ls.vni), name.as_str()))
        .collect();
    for m in UcastMacsLocal::all(r)? {
        let Some((row_name, vni)) = ls_names.get(&m.logical_switch) else {
            out.skipped
                .push(format!("local MAC {} on a missing logical switch", m.mac));
            continue;
        };
        let Some(store_ls) = vni.and_then(|v| by_vni.get(&v)) else {
            out.skipped.push(format!(
                "local MAC {} on logical switch {row_name:?} (VNI {}) not bound here by the controller",
                m.mac,
                vni.map_or_else(|| "unset".to_owned(), |v| v.to_string())
            ));
            continue;
        };
        let mac: MacAddr = match m.mac.parse() {
            Ok(mac) => mac,
            Err(_) => {
                out.skipped
                    .push(format!("local MAC {:?} is not a MAC address", m.mac));
                continue;
            }
        };
        if mac.is_multicast() || mac.is_zero() {
            out.skipped
                .push(format!("local MAC {mac} is not a unicast host address"));
            continue;
        }
        let ip = if m.ipaddr.is_empty() {
            None
        } else {
            match m.ipaddr.parse::<Ipv4Addr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    out.skipped.push(format!(
                        "local MAC {mac}: ipaddr {:?} is not IPv4; reported without it",
                        m.ipaddr
                    ));
                    None
                }
            }
        };
        let learned = LearnedMac {
            reporter: ctx.reporter.to_owned(),
            logical_switch: (*store_ls).to_owned(),
            mac,
            ip,
        };
        let key = Object::LearnedMac(learned.clone()).key();
        // The table has no unique index: the same MAC may sit in two rows
        // (two locators). Report it once, with an IP if any row has one.
        match out.learned_macs.get(&key) {
            Some(prev) if prev.ip.is_some() && prev.ip >= learned.ip => {}
            _ => {
                out.learned_macs.insert(key, learned);
            }
        }
    }
    Ok(())
}

/// Every BFD state: the series the tunnels metric keeps per switch.
pub const BFD_STATES: [BfdState; 4] = [
    BfdState::AdminDown,
    BfdState::Down,
    BfdState::Init,
    BfdState::Up,
];

/// The OVS `bfd_status:state` word of a state (also the tunnels metric's `state` label).
pub fn bfd_word(s: BfdState) -> &'static str {
    match s {
        BfdState::AdminDown => "admin_down",
        BfdState::Down => "down",
        BfdState::Init => "init",
        BfdState::Up => "up",
    }
}

/// Parses an OVS `bfd_status:state` value.
pub fn bfd_state(s: &str) -> Option<BfdState> {
    BFD_STATES.into_iter().find(|st| bfd_word(*st) == s)
}

fn rank(s: BfdState) -> u8 {
    match s {
        BfdState::AdminDown => 0,
        BfdState::Down => 1,
        BfdState::Init => 2,
        BfdState::Up => 3,
    }
}

fn tunnels(
    r: &Replica,
    ctx: &ObserveContext<'_>,
    ps: Option<&PhysicalSwitch>,
    out: &mut Observed,
) -> Result<(), RowError> {
    let locators: BTreeMap<Uuid, String> = PhysicalLocator::all(r)?
        .into_iter()
        .map(|l| (l.uuid, l.dst_ip))
        .collect();
    for t in Tunnel::all(r)? {
        // Tunnels of another Physical_Switch in the same database are its own.
        if ps.is_some_and(|ps| !ps.tunnels.contains(&t.uuid)) {
            continue;
        }
        let Some(state) = t.bfd_status.get("state") else {
            continue;
        };
        let Some(state) = bfd_state(state) else {
            out.skipped
                .push(format!("tunnel {}: unknown BFD state {state:?}", t.uuid));
            continue;
        };
        let Some(remote_ip) = locators
            .get(&t.remote)
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            out.skipped.push(format!(
                "tunnel {}: remote locator without an IPv4 address",
                t.uuid
            ));
            continue;
        };
        let status = TunnelStatus {
            reporter: ctx.reporter.to_owned(),
            remote_ip,
            state,
            diag: t
                .bfd_status
                .get("diagnostic")
                .filter(|d| !d.is_empty())
                .cloned(),
        };
        let key = Object::TunnelStatus(status.clone()).key();
        // Several local tunnel IPs may reach one remote: the remote is
        // reachable when any of them is up.
        match out.tunnels.get(&key) {
            Some(prev) if rank(prev.state) >= rank(status.state) => {}
            _ => {
                out.tunnels.insert(key, status);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Fixtures are update2 notifications in the shape ovsdb-server 3.1 sends
    //! them, with the rows ovs-vtep writes: `add-ucast-local LS MAC
    //! TUNNEL_IP` (no ipaddr), `bfd_status` keys from its `update_tunnel`
    //! (`enabled`, `state`, `forwarding`, `diagnostic`, `remote_state`).
    use super::*;
    use crate::desired::DesiredLogicalSwitch;
    use crate::schema::tests::vtep_schema;
    use api::model::{Kind, Replication};
    use serde_json::json;

    const PS: &str = "0d796ea5-7adf-4312-8550-4b91c32d1603";
    const P0: &str = "83a6de69-0821-48cd-9d4e-8116bacf6256";
    const P1: &str = "83a6de69-0821-48cd-9d4e-8116bacf6257";
    const LS0: &str = "6b32a7aa-7854-4da3-a746-cfd068ceb71b";
    const FOREIGN: &str = "6b32a7aa-7854-4da3-a746-cfd068ceb71c";
    const LOC_LOCAL: &str = "fd58d1be-0fc3-49fb-8267-95a3b2ae6910";
    const LOC_HV1: &str = "fd58d1be-0fc3-49fb-8267-95a3b2ae6911";
    const LOC_HV2: &str = "fd58d1be-0fc3-49fb-8267-95a3b2ae6912";
    const T1: &str = "e20d7919-59d4-4b7d-8b83-8c2880495301";
    const T2: &str = "e20d7919-59d4-4b7d-8b83-8c2880495302";

    fn uuid(u: &str) -> serde_json::Value {
        json!(["uuid", u])
    }

    fn replica() -> Replica {
        let mut r = Replica::new(vtep_schema());
        r.apply_update2(&json!({
            "Physical_Switch": {PS: {"initial": {
                "name": "sw1",
                "tunnel_ips": "198.18.0.30",
                "ports": ["set", [uuid(P0), uuid(P1)]],
                "tunnels": ["set", [uuid(T1), uuid(T2)]],
                "switch_fault_status": "power_supply_failure"
            }}},
            "Physical_Port": {
                P0: {"initial": {"name": "p0", "vlan_bindings": ["map", [[0, uuid(LS0)]]]}},
                P1: {"initial": {"name": "p1", "port_fault_status": "invalid_vlan_map",
                                  "vlan_bindings": ["map", [[7, uuid(FOREIGN)]]]}}
            },
            "Logical_Switch": {
                LS0: {"initial": {"name": "ls0", "tunnel_key": 5000}},
                FOREIGN: {"initial": {"name": "other", "tunnel_key": 7777}}
            },
            "Physical_Locator": {
                LOC_LOCAL: {"initial": {"dst_ip": "198.18.0.30", "encapsulation_type": "vxlan_over_ipv4"}},
                LOC_HV1: {"initial": {"dst_ip": "198.18.0.10", "encapsulation_type": "vxlan_over_ipv4"}},
                LOC_HV2: {"initial": {"dst_ip": "198.18.0.11", "encapsulation_type": "vxlan_over_ipv4"}}
            },
            "Ucast_Macs_Local": {
                "a0000000-0000-0000-0000-000000000001": {"initial": {"MAC": "02:00:00:00:00:21",
                    "logical_switch": uuid(LS0), "locator": uuid(LOC_LOCAL)}},
                "a0000000-0000-0000-0000-000000000002": {"initial": {"MAC": "02:00:00:00:00:22",
                    "ipaddr": "192.0.2.22", "logical_switch": uuid(LS0), "locator": uuid(LOC_LOCAL)}},
                "a0000000-0000-0000-0000-000000000003": {"initial": {"MAC": "02:00:00:00:00:23",
                    "logical_switch": uuid(FOREIGN), "locator": uuid(LOC_LOCAL)}},
                "a0000000-0000-0000-0000-000000000004": {"initial": {"MAC": "01:00:5e:00:00:01",
                    "logical_switch": uuid(LS0), "locator": uuid(LOC_LOCAL)}}
            },
            "Tunnel": {
                T1: {"initial": {"local": uuid(LOC_LOCAL), "remote": uuid(LOC_HV1),
                    "bfd_status": ["map", [["enabled", "true"], ["state", "up"], ["forwarding", "true"],
                        ["diagnostic", "No Diagnostic"], ["remote_state", "up"]]]}},
                T2: {"initial": {"local": uuid(LOC_LOCAL), "remote": uuid(LOC_HV2),
                    "bfd_status": ["map", [["enabled", "false"]]]}}
            }
        }))
        .unwrap();
        r
    }

    fn desired() -> DesiredState {
        let mut d = DesiredState::default();
        d.logical_switches.insert(
            "web".into(),
            DesiredLogicalSwitch {
                vni: 5000,
                replication: Replication::SourceNode,
                remote_macs: BTreeMap::new(),
                service_nodes: BTreeSet::new(),
                peers: BTreeSet::new(),
            },
        );
        d
    }

    fn ctx<'a>(d: &'a DesiredState, extra: &'a BTreeSet<String>) -> ObserveContext<'a> {
        ObserveContext {
            reporter: "tor1",
            physical_switch: None,
            desired: d,
            connected: true,
            extra_faults: extra,
        }
    }

    #[test]
    fn learned_macs_are_named_by_the_store_logical_switch_of_their_vni() {
        let (d, extra) = (desired(), BTreeSet::new());
        let o = observe(Some(&replica()), &ctx(&d, &extra)).unwrap();
        let macs: Vec<_> = o.learned_macs.values().cloned().collect();
        assert_eq!(
            macs,
            vec![
                LearnedMac {
                    reporter: "tor1".into(),
                    // The row is "ls0"; the store calls VNI 5000 "web".
                    logical_switch: "web".into(),
                    mac: "02:00:00:00:00:21".parse().unwrap(),
                    ip: None,
                },
                LearnedMac {
                    reporter: "tor1".into(),
                    logical_switch: "web".into(),
                    mac: "02:00:00:00:00:22".parse().unwrap(),
                    ip: Some(Ipv4Addr::new(192, 0, 2, 22)),
                },
            ]
        );
        let k = o.learned_macs.keys().next().unwrap();
        assert_eq!(k.to_string(), "learned-macs/tor1/web/02:00:00:00:00:21");
        // The foreign logical switch's MAC and the multicast MAC are skipped, and said so.
        assert_eq!(o.skipped.len(), 2, "{:?}", o.skipped);
        assert!(o.skipped[0].contains("02:00:00:00:00:23") && o.skipped[0].contains("7777"));
        assert!(o.skipped[1].contains("01:00:5e:00:00:01"));
    }

    #[test]
    fn switch_status_and_report() {
        let d = desired();
        let extra = BTreeSet::from(["unsupported_source_node_replication".to_owned()]);
        let o = observe(Some(&replica()), &ctx(&d, &extra)).unwrap();
        assert_eq!(
            o.switch_status,
            Some(SwitchStatus {
                switch: "tor1".into(),
                connected: true,
                faults: vec![
                    "power_supply_failure".into(),
                    "unsupported_source_node_replication".into(),
                ],
                reported_name: Some("sw1".into()),
                tunnel_ips: vec![Ipv4Addr::new(198, 18, 0, 30)],
                ports: vec![
                    PortStatus {
                        name: "p0".into(),
                        faults: vec![],
                        vlan_bindings: vec![0],
                    },
                    PortStatus {
                        name: "p1".into(),
                        faults: vec!["invalid_vlan_map".into()],
                        vlan_bindings: vec![7],
                    },
                ],
            })
        );
        let sw = o.switch.unwrap();
        assert_eq!(sw.name, "sw1");
        assert_eq!(sw.tunnel_ips, BTreeSet::from(["198.18.0.30".to_owned()]));
        assert_eq!(
            sw.ports["p0"].bindings,
            BTreeMap::from([(0, "ls0".to_owned())])
        );
        assert_eq!(
            sw.ports["p1"].faults,
            BTreeSet::from(["invalid_vlan_map".to_owned()])
        );
    }

    #[test]
    fn tunnel_status_only_where_bfd_runs() {
        let (d, extra) = (desired(), BTreeSet::new());
        let o = observe(Some(&replica()), &ctx(&d, &extra)).unwrap();
        assert_eq!(
            o.tunnels.values().cloned().collect::<Vec<_>>(),
            vec![TunnelStatus {
                reporter: "tor1".into(),
                remote_ip: Ipv4Addr::new(198, 18, 0, 10),
                state: BfdState::Up,
                diag: Some("No Diagnostic".into()),
            }]
        );
        assert_eq!(
            o.tunnels.keys().next().unwrap().to_string(),
            "tunnel-status/tor1/198.18.0.10"
        );
        // A second tunnel to the same remote that is down does not hide the up one.
        let mut r = replica();
        r.apply_update2(&json!({"Tunnel": {"e20d7919-59d4-4b7d-8b83-8c2880495303": {"insert": {
            "local": uuid(LOC_LOCAL), "remote": uuid(LOC_HV1),
            "bfd_status": ["map", [["state", "down"], ["diagnostic", "Control Detection Time Expired"]]]}}}}))
            .unwrap();
        let o = observe(Some(&r), &ctx(&d, &extra)).unwrap();
        // Not in Physical_Switch.tunnels: another switch's tunnel, not reported.
        assert_eq!(o.tunnels.len(), 1);
        assert_eq!(o.tunnels.values().next().unwrap().state, BfdState::Up);
    }

    #[test]
    fn before_sync_and_while_disconnected() {
        let (d, extra) = (desired(), BTreeSet::new());
        let mut c = ctx(&d, &extra);
        c.connected = false;
        let o = observe(None, &c).unwrap();
        assert!(o.learned_macs.is_empty() && o.tunnels.is_empty() && o.switch.is_none());
        assert!(!o.switch_status.as_ref().unwrap().connected);
        // Disconnected with a replica: last-known MACs stay, connected is false.
        let o = observe(Some(&replica()), &c).unwrap();
        assert_eq!(o.learned_macs.len(), 2);
        assert!(!o.switch_status.unwrap().connected);
    }

    #[test]
    fn physical_switch_selection() {
        let (d, extra) = (desired(), BTreeSet::new());
        let mut c = ctx(&d, &extra);
        c.physical_switch = Some("nope");
        let o = observe(Some(&replica()), &c).unwrap();
        assert!(o.switch.is_none());
        assert!(
            o.skipped
                .iter()
                .any(|s| s.contains("no Physical_Switch named"))
        );
        // Without a switch row, port faults are unknown but MACs are still reported.
        assert_eq!(o.learned_macs.len(), 2);
        c.physical_switch = Some("sw1");
        assert_eq!(
            observe(Some(&replica()), &c).unwrap().switch.unwrap().name,
            "sw1"
        );
    }

    #[test]
    fn diff_sends_only_changes() {
        let (d, extra) = (desired(), BTreeSet::new());
        let before = observe(Some(&replica()), &ctx(&d, &extra))
            .unwrap()
            .objects();
        assert_eq!(before.len(), 4, "status, two MACs, one tunnel");
        assert!(diff(&before, &before).is_empty());
        // First write: everything is a put.
        let first = diff(&BTreeMap::new(), &before);
        assert_eq!(first.puts.len(), 4);
        assert!(first.deletes.is_empty());

        let mut r = replica();
        r.apply_update2(&json!({
            // bm 21 aged out, 22 got an IP change, 24 is new.
            "Ucast_Macs_Local": {
                "a0000000-0000-0000-0000-000000000001": {"delete": null},
                "a0000000-0000-0000-0000-000000000002": {"modify": {"ipaddr": "192.0.2.99"}},
                "a0000000-0000-0000-0000-000000000005": {"insert": {"MAC": "02:00:00:00:00:24",
                    "logical_switch": uuid(LS0), "locator": uuid(LOC_LOCAL)}}
            },
            "Tunnel": {T1: {"modify": {"bfd_status": ["map", [["state", "down"]]]}}}
        }))
        .unwrap();
        let after = observe(Some(&r), &ctx(&d, &extra)).unwrap().objects();
        let dd = diff(&before, &after);
        let put_keys: Vec<String> = dd.puts.iter().map(|o| o.key().to_string()).collect();
        assert_eq!(
            put_keys,
            vec![
                "learned-macs/tor1/web/02:00:00:00:00:22",
                "learned-macs/tor1/web/02:00:00:00:00:24",
                "tunnel-status/tor1/198.18.0.10",
            ]
        );
        assert_eq!(
            dd.deletes,
            vec![Key::new(
                Kind::LearnedMac,
                "tor1/web/02:00:00:00:00:21".to_owned()
            )]
        );
        match &dd.puts[2] {
            Object::TunnelStatus(t) => assert_eq!(t.state, BfdState::Down),
            o => panic!("unexpected {o:?}"),
        }
    }

    #[test]
    fn serializes_to_json_with_path_keys() {
        let (d, extra) = (desired(), BTreeSet::new());
        let o = observe(Some(&replica()), &ctx(&d, &extra)).unwrap();
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(
            v["learned_macs"]["learned-macs/tor1/web/02:00:00:00:00:22"]["ip"],
            "192.0.2.22"
        );
        assert_eq!(
            v["tunnels"]["tunnel-status/tor1/198.18.0.10"]["state"],
            "up"
        );
    }

    #[test]
    fn bfd_states_parse() {
        for (s, st) in [
            ("admin_down", BfdState::AdminDown),
            ("down", BfdState::Down),
            ("init", BfdState::Init),
            ("up", BfdState::Up),
        ] {
            assert_eq!(bfd_state(s), Some(st));
            assert_eq!(bfd_word(st), s);
        }
        assert_eq!(bfd_state("sideways"), None);
    }
}
