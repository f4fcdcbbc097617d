//! The sans-IO planner: (desired state, replica of the switch) -> one
//! transaction that makes the switch match, touching only what differs.
//!
//! # Ownership
//!
//! The controller owns the `Ucast_Macs_Remote` and `Mcast_Macs_Remote`
//! tables (vtep(5): "written by the NVC"): every row there that is not
//! desired is deleted, whoever wrote it. It owns the `Logical_Switch` rows it
//! created, marked with `other_config:bridgehead-owner=vtep-sync` (schema
//! 1.7.0 has `other_config` on `Logical_Switch`; on older schemas the
//! `description` is set to [`DESCRIPTION_MARK`] instead). A row with the
//! name of a desired logical switch but no mark (e.g. made by hand with
//! `vtep-ctl add-ls` before the controller ran) is adopted: names are unique
//! in the table, so it cannot coexist with ours. Other logical switches are
//! never touched. In `Physical_Port.vlan_bindings` the controller owns the
//! VLANs it binds and every binding that points at a logical switch it
//! owns; other bindings are left alone. It owns `Tunnel.bfd_params` of
//! tunnels toward VTEPs the store knows. `Physical_Locator` and
//! `Physical_Locator_Set` rows are never deleted: the server
//! garbage-collects them when the last reference goes.
//!
//! # Guards
//!
//! Every transaction starts with `assert` of the writer's lock (when one is
//! given), so an instance that lost the lock cannot write. Rows we change
//! relative to what we read (`Physical_Port.vlan_bindings`, `Logical_Switch`
//! columns) get a `wait` with timeout 0 on the values the plan was computed
//! from: a concurrent writer makes the transaction fail instead of being
//! overwritten, and the caller re-plans on the newer replica.
//!
//! A plan is empty when the replica already matches: restarting the
//! controller, or reconnecting to a switch, writes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use api::model::Replication;
use thiserror::Error;

use crate::datum::{Atom, Datum, Row, Uuid};
use crate::desired::{DesiredLogicalSwitch, DesiredState};
use crate::ops::{Condition, Mutation, Operation, WaitUntil};
use crate::replica::Replica;
use crate::vtep_tables::{
    McastMacsLocal, McastMacsRemote, PhysicalLocator, PhysicalLocatorSet, PhysicalPort,
    PhysicalSwitch, RowError, Tunnel, UcastMacsLocal, UcastMacsRemote, VtepTable,
    supports_replication_mode,
};

/// `other_config` key marking a `Logical_Switch` row as created by us.
pub const OWNER_KEY: &str = "bridgehead-owner";
/// Value of [`OWNER_KEY`].
pub const OWNER_VALUE: &str = "vtep-sync";
/// `other_config` key recording that the switch cannot do source_node
/// replication, so that the fallback survives a controller restart even
/// after the switch clears its fault (vtep(5) suggests remembering it).
pub const FALLBACK_KEY: &str = "bridgehead-replication-fallback";
/// Ownership mark in `description` on schemas without `Logical_Switch.other_config`.
pub const DESCRIPTION_MARK: &str = "bridgehead vtep-sync";
/// `Physical_Switch.switch_fault_status` value of a switch that cannot do source_node replication.
pub const SOURCE_NODE_FAULT: &str = "unsupported_source_node_replication";
/// The `MAC` of the flooding entry in `Mcast_Macs_Remote`.
pub const UNKNOWN_DST: &str = "unknown-dst";
const ENCAP: &str = "vxlan_over_ipv4";

/// Inputs of a plan besides the desired state and the replica.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    /// Lock asserted at the start of the transaction.
    pub lock: Option<String>,
    /// `Physical_Switch.name`; `None` means the only one in the database.
    pub physical_switch: Option<String>,
    /// Already known that the switch cannot do source_node replication.
    pub source_node_unsupported: bool,
}

/// Why no plan could be made.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    /// A row in the replica does not read as its typed struct.
    #[error(transparent)]
    Row(#[from] RowError),
}

/// How many operations of each kind a plan has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanCounts {
    /// Rows inserted.
    pub inserts: usize,
    /// Rows updated.
    pub updates: usize,
    /// Rows mutated.
    pub mutates: usize,
    /// Rows deleted.
    pub deletes: usize,
}

/// One transaction that brings the switch to the desired state.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The operations, guards first; empty when there is nothing to do.
    pub ops: Vec<Operation>,
    /// Per-kind counts of the changes (guards not counted).
    pub counts: PlanCounts,
    /// Existing rows the plan changes or deletes (to recognise its update).
    pub touched: BTreeSet<Uuid>,
    /// The planned mode for every desired logical switch is service_node
    /// because the switch cannot do source_node.
    pub source_node_fallback: bool,
    /// `Physical_Switch.switch_fault_status` of the switch.
    pub faults: BTreeSet<String>,
    /// What the plan could not do yet (missing port, postponed delete).
    pub notes: Vec<String>,
}

impl Plan {
    /// True when the switch already matches.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// How logical switch rows are marked as ours on this schema.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    OtherConfig,
    Description,
}

struct LsRow {
    uuid: Uuid,
    name: String,
    description: String,
    tunnel_key: Option<i64>,
    replication_mode: Option<String>,
    other_config: BTreeMap<String, String>,
}

impl LsRow {
    fn owned(&self) -> bool {
        self.other_config.get(OWNER_KEY).map(String::as_str) == Some(OWNER_VALUE)
            || self.description == DESCRIPTION_MARK
    }
}

fn string_map(d: Option<&Datum>) -> BTreeMap<String, String> {
    d.and_then(Datum::as_map)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

fn str_map_datum(m: &BTreeMap<String, String>) -> Datum {
    Datum::map(m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fn ls_rows(replica: &Replica) -> Result<Vec<LsRow>, PlanError> {
    let mut out = Vec::new();
    for (u, row) in replica.table("Logical_Switch") {
        let ls = crate::vtep_tables::LogicalSwitch::from_row(*u, row)?;
        out.push(LsRow {
            uuid: *u,
            name: ls.name,
            description: ls.description,
            tunnel_key: ls.tunnel_key,
            replication_mode: ls.replication_mode,
            other_config: string_map(row.get("other_config")),
        });
    }
    Ok(out)
}

fn mode_str(m: Replication) -> &'static str {
    match m {
        Replication::ServiceNode => "service_node",
        Replication::SourceNode => "source_node",
    }
}

fn normal_mac(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn ip_of(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// Builds the operations; kept in groups so that inserts come before the
/// operations that refer to their named UUIDs.
#[derive(Default)]
struct Builder {
    guards: Vec<Operation>,
    inserts: Vec<Operation>,
    changes: Vec<Operation>,
    deletes: Vec<Operation>,
    counts: PlanCounts,
    touched: BTreeSet<Uuid>,
    next_name: usize,
    locators: BTreeMap<Ipv4Addr, Atom>,
    sets: BTreeMap<BTreeSet<Ipv4Addr>, Atom>,
}

impl Builder {
    fn name(&mut self, prefix: &str) -> String {
        self.next_name += 1;
        format!("{prefix}{}", self.next_name)
    }

    fn locator(&mut self, ip: Ipv4Addr) -> Atom {
        if let Some(a) = self.locators.get(&ip) {
            return a.clone();
        }
        let n = self.name("loc");
        self.inserts.push(Operation::insert_named(
            PhysicalLocator::TABLE,
            PhysicalLocator::insert_row(&ip.to_string()),
            &n,
        ));
        self.counts.inserts += 1;
        let a = Atom::NamedUuid(n);
        self.locators.insert(ip, a.clone());
        a
    }

    fn locator_set(&mut self, ips: &BTreeSet<Ipv4Addr>) -> Atom {
        if let Some(a) = self.sets.get(ips) {
            return a.clone();
        }
        let locs: Vec<Atom> = ips.iter().map(|ip| self.locator(*ip)).collect();
        let n = self.name("set");
        // After the locators it names, so their named UUIDs are defined first.
        self.inserts.push(Operation::insert_named(
            PhysicalLocatorSet::TABLE,
            PhysicalLocatorSet::insert_row(locs),
            &n,
        ));
        self.counts.inserts += 1;
        let a = Atom::NamedUuid(n);
        self.sets.insert(ips.clone(), a.clone());
        a
    }

    fn update(&mut self, table: &str, uuid: Uuid, row: Row) {
        self.changes
            .push(Operation::update(table, vec![Condition::uuid(uuid)], row));
        self.counts.updates += 1;
        self.touched.insert(uuid);
    }

    fn mutate(&mut self, table: &str, uuid: Uuid, mutations: Vec<Mutation>) {
        self.changes.push(Operation::mutate(
            table,
            vec![Condition::uuid(uuid)],
            mutations,
        ));
        self.counts.mutates += 1;
        self.touched.insert(uuid);
    }

    fn delete(&mut self, table: &str, uuid: Uuid) {
        self.deletes
            .push(Operation::delete(table, vec![Condition::uuid(uuid)]));
        self.counts.deletes += 1;
        self.touched.insert(uuid);
    }

    /// Of the rows holding one desired entry, keeps one (the first that
    /// `matches`, else the first, to be corrected in place) and deletes the
    /// others; `None` when there is none.
    fn keep_one<'r, T>(
        &mut self,
        table: &str,
        rows: &'r [T],
        uuid: impl Fn(&T) -> Uuid,
        matches: impl Fn(&T) -> bool,
    ) -> Option<&'r T> {
        let keep = rows.iter().position(matches).unwrap_or(0);
        for (i, dup) in rows.iter().enumerate() {
            if i != keep {
                self.delete(table, uuid(dup));
            }
        }
        rows.get(keep)
    }

    /// Fails the transaction unless `columns` of the row still hold `row`.
    fn guard(&mut self, table: &str, uuid: Uuid, row: Row) {
        self.guards.push(Operation::wait(
            table,
            Some(0),
            vec![Condition::uuid(uuid)],
            row.keys().cloned().collect(),
            WaitUntil::Equal,
            vec![row],
        ));
    }
}

/// Computes the transaction that makes the switch in `replica` match `desired`.
pub fn plan(
    desired: &DesiredState,
    replica: &Replica,
    opts: &PlanOptions,
) -> Result<Plan, PlanError> {
    let schema = replica.schema();
    let mark = if schema.column("Logical_Switch", "other_config").is_some() {
        Mark::OtherConfig
    } else {
        Mark::Description
    };
    let mut notes = Vec::new();

    // The switch itself: its ports, tunnels and faults.
    let switches = PhysicalSwitch::all(replica)?;
    let me = match &opts.physical_switch {
        Some(n) => switches.iter().find(|s| &s.name == n),
        None if switches.len() == 1 => switches.first(),
        None => None,
    };
    if me.is_none() {
        notes.push(match &opts.physical_switch {
            Some(n) => format!("no Physical_Switch named {n:?}: bindings and BFD not programmed"),
            None => format!(
                "{} Physical_Switch rows and none configured: bindings and BFD not programmed",
                switches.len()
            ),
        });
    }
    let faults = me
        .map(|s| s.switch_fault_status.clone())
        .unwrap_or_default();

    let lss = ls_rows(replica)?;
    let can_source_node = supports_replication_mode(schema);
    let fallback = opts.source_node_unsupported
        || faults.contains(SOURCE_NODE_FAULT)
        || lss
            .iter()
            .any(|l| l.owned() && l.other_config.contains_key(FALLBACK_KEY))
        || !can_source_node;
    let effective = |d: &DesiredLogicalSwitch| {
        if fallback {
            Replication::ServiceNode
        } else {
            d.replication
        }
    };

    let mut b = Builder::default();

    // Locators we can reuse: VXLAN ones without a per-locator tunnel key.
    let mut loc_ip: BTreeMap<Uuid, Ipv4Addr> = BTreeMap::new();
    for (u, row) in replica.table(PhysicalLocator::TABLE) {
        let l = PhysicalLocator::from_row(*u, row)?;
        if l.encapsulation_type != ENCAP || row.contains_key("tunnel_key") {
            continue;
        }
        if let Some(ip) = ip_of(&l.dst_ip) {
            loc_ip.insert(*u, ip);
            b.locators.insert(ip, Atom::Uuid(*u));
        }
    }
    let mut set_ips: BTreeMap<Uuid, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for s in PhysicalLocatorSet::all(replica)? {
        let ips: Option<BTreeSet<Ipv4Addr>> =
            s.locators.iter().map(|l| loc_ip.get(l).copied()).collect();
        if let Some(ips) = ips {
            b.sets.entry(ips.clone()).or_insert(Atom::Uuid(s.uuid));
            set_ips.insert(s.uuid, ips);
        }
    }

    // Logical switches: insert missing ones, correct and adopt existing ones.
    let by_name: BTreeMap<&str, &LsRow> = lss.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut ls_ref: BTreeMap<&str, Atom> = BTreeMap::new();
    for (name, d) in &desired.logical_switches {
        let mode = effective(d);
        let mut want_cfg = BTreeMap::from([(OWNER_KEY.to_owned(), OWNER_VALUE.to_owned())]);
        if fallback {
            want_cfg.insert(FALLBACK_KEY.to_owned(), SOURCE_NODE_FAULT.to_owned());
        }
        match by_name.get(name.as_str()) {
            None => {
                let mut row = Row::new();
                row.insert("name".into(), name.clone().into());
                row.insert("tunnel_key".into(), i64::from(d.vni).into());
                if can_source_node {
                    row.insert("replication_mode".into(), mode_str(mode).into());
                }
                match mark {
                    Mark::OtherConfig => {
                        row.insert("other_config".into(), str_map_datum(&want_cfg));
                    }
                    Mark::Description => {
                        row.insert("description".into(), DESCRIPTION_MARK.into());
                    }
                }
                let n = b.name("ls");
                b.inserts
                    .push(Operation::insert_named("Logical_Switch", row, &n));
                b.counts.inserts += 1;
                ls_ref.insert(name, Atom::NamedUuid(n));
            }
            Some(cur) => {
                ls_ref.insert(name, Atom::Uuid(cur.uuid));
                let mut set = Row::new();
                if cur.tunnel_key != Some(i64::from(d.vni)) {
                    set.insert("tunnel_key".into(), i64::from(d.vni).into());
                }
                // An absent replication_mode means service_node (vtep(5)).
                let cur_mode = cur.replication_mode.as_deref().unwrap_or("service_node");
                if can_source_node && cur_mode != mode_str(mode) {
                    set.insert("replication_mode".into(), mode_str(mode).into());
                }
                if mark == Mark::Description && cur.description != DESCRIPTION_MARK {
                    set.insert("description".into(), DESCRIPTION_MARK.into());
                }
                let mut guard = Row::from([
                    ("name".to_owned(), Datum::from(cur.name.clone())),
                    ("tunnel_key".to_owned(), Datum::optional(cur.tunnel_key)),
                ]);
                if can_source_node {
                    guard.insert(
                        "replication_mode".into(),
                        Datum::optional(cur.replication_mode.clone()),
                    );
                }
                let mut mutations = Vec::new();
                if mark == Mark::OtherConfig {
                    let stale: Vec<&str> = [OWNER_KEY, FALLBACK_KEY]
                        .into_iter()
                        .filter(|k| cur.other_config.get(*k) != want_cfg.get(*k))
                        .collect();
                    if !stale.is_empty() {
                        mutations.push(Mutation::delete(
                            "other_config",
                            Datum::set(stale.iter().copied()),
                        ));
                        let add: BTreeMap<String, String> = want_cfg
                            .iter()
                            .filter(|(k, _)| stale.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        if !add.is_empty() {
                            mutations.push(Mutation::insert("other_config", str_map_datum(&add)));
                        }
                    }
                }
                if !cur.owned() {
                    tracing::warn!(logical_switch = %name, "adopting an existing Logical_Switch row with a desired name");
                }
                if !set.is_empty() || !mutations.is_empty() {
                    b.guard("Logical_Switch", cur.uuid, guard);
                }
                if !set.is_empty() {
                    b.update("Logical_Switch", cur.uuid, set);
                }
                if !mutations.is_empty() {
                    b.mutate("Logical_Switch", cur.uuid, mutations);
                }
            }
        }
    }
    let ours: BTreeSet<Uuid> = lss
        .iter()
        .filter(|l| l.owned() || desired.logical_switches.contains_key(&l.name))
        .map(|l| l.uuid)
        .collect();
    let doomed: BTreeSet<Uuid> = lss
        .iter()
        .filter(|l| l.owned() && !desired.logical_switches.contains_key(&l.name))
        .map(|l| l.uuid)
        .collect();

    // Bindings: mutate only the VLANs that differ.
    let my_ports: BTreeSet<Uuid> = me.map(|s| s.ports.clone()).unwrap_or_default();
    let mut seen_ports = BTreeSet::new();
    for p in PhysicalPort::all(replica)? {
        let mine = my_ports.contains(&p.uuid);
        let want = if mine {
            seen_ports.insert(p.name.clone());
            desired.bindings.get(&p.name)
        } else {
            None
        };
        let mut del: BTreeSet<i64> = BTreeSet::new();
        let mut add: BTreeMap<i64, Atom> = BTreeMap::new();
        for (vlan, cur) in &p.vlan_bindings {
            match want.and_then(|w| w.get(vlan)) {
                Some(ls) => {
                    let Some(r) = ls_ref.get(ls.as_str()) else {
                        continue;
                    };
                    if *r != Atom::Uuid(*cur) {
                        del.insert(i64::from(*vlan));
                        add.insert(i64::from(*vlan), r.clone());
                    }
                }
                // Stale bindings of ours go; on other switches' ports only
                // those that would keep a doomed logical switch alive.
                None if (mine && ours.contains(cur)) || doomed.contains(cur) => {
                    del.insert(i64::from(*vlan));
                }
                None => {}
            }
        }
        for (vlan, ls) in want.into_iter().flatten() {
            if !p.vlan_bindings.contains_key(vlan) {
                if let Some(r) = ls_ref.get(ls.as_str()) {
                    add.insert(i64::from(*vlan), r.clone());
                }
            }
        }
        if del.is_empty() && add.is_empty() {
            continue;
        }
        let cur_map = Datum::map(
            p.vlan_bindings
                .iter()
                .map(|(v, u)| (Atom::Integer(i64::from(*v)), Atom::Uuid(*u))),
        );
        b.guard(
            PhysicalPort::TABLE,
            p.uuid,
            Row::from([("vlan_bindings".to_owned(), cur_map)]),
        );
        let mut muts = Vec::new();
        if !del.is_empty() {
            muts.push(Mutation::delete("vlan_bindings", Datum::set(del)));
        }
        if !add.is_empty() {
            muts.push(Mutation::insert(
                "vlan_bindings",
                Datum::Map(
                    add.into_iter()
                        .map(|(k, v)| (Atom::Integer(k), v))
                        .collect(),
                ),
            ));
        }
        b.mutate(PhysicalPort::TABLE, p.uuid, muts);
    }
    if me.is_some() {
        for port in desired.bindings.keys() {
            if !seen_ports.contains(port) {
                notes.push(format!(
                    "port {port:?} not found on the switch: binding waits"
                ));
            }
        }
    }

    // Unicast remote MACs: keep matching rows, move the rest in place.
    let mut ucast: BTreeMap<(Uuid, String), Vec<UcastMacsRemote>> = BTreeMap::new();
    for m in UcastMacsRemote::all(replica)? {
        ucast
            .entry((m.logical_switch, normal_mac(&m.mac)))
            .or_default()
            .push(m);
    }
    for (name, d) in &desired.logical_switches {
        let r = &ls_ref[name.as_str()];
        for (mac, t) in &d.remote_macs {
            let ipaddr = t.ip.map(|i| i.to_string()).unwrap_or_default();
            let existing = match r {
                Atom::Uuid(u) => ucast.remove(&(*u, mac.to_string())).unwrap_or_default(),
                _ => Vec::new(),
            };
            let matches = |m: &UcastMacsRemote| {
                loc_ip.get(&m.locator) == Some(&t.locator) && m.ipaddr == ipaddr
            };
            match b.keep_one(UcastMacsRemote::TABLE, &existing, |m| m.uuid, matches) {
                None => {
                    let loc = b.locator(t.locator);
                    b.changes.push(Operation::insert(
                        UcastMacsRemote::TABLE,
                        UcastMacsRemote::insert_row(&mac.to_string(), r.clone(), loc, &ipaddr),
                    ));
                    b.counts.inserts += 1;
                }
                Some(row) if !matches(row) => {
                    // A MAC move: one update of the same row, no gap.
                    let loc = b.locator(t.locator);
                    b.update(
                        UcastMacsRemote::TABLE,
                        row.uuid,
                        Row::from([
                            ("locator".to_owned(), Datum::Atom(loc)),
                            ("ipaddr".to_owned(), ipaddr.clone().into()),
                        ]),
                    );
                }
                Some(_) => {}
            }
        }
    }
    for rows in ucast.into_values() {
        for m in rows {
            b.delete(UcastMacsRemote::TABLE, m.uuid);
        }
    }

    // Flooding: one unknown-dst entry per logical switch.
    let mut mcast: BTreeMap<(Uuid, String), Vec<McastMacsRemote>> = BTreeMap::new();
    for m in McastMacsRemote::all(replica)? {
        mcast
            .entry((m.logical_switch, normal_mac(&m.mac)))
            .or_default()
            .push(m);
    }
    for (name, d) in &desired.logical_switches {
        let r = &ls_ref[name.as_str()];
        let mut want: BTreeSet<Ipv4Addr> = d.flood_set(effective(d)).clone();
        for ip in &desired.local_tunnel_ips {
            want.remove(ip);
        }
        let existing = match r {
            Atom::Uuid(u) => mcast
                .remove(&(*u, UNKNOWN_DST.to_owned()))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if want.is_empty() {
            for m in existing {
                b.delete(McastMacsRemote::TABLE, m.uuid);
            }
            continue;
        }
        let matches = |m: &McastMacsRemote| set_ips.get(&m.locator_set) == Some(&want);
        match b.keep_one(McastMacsRemote::TABLE, &existing, |m| m.uuid, matches) {
            None => {
                let set = b.locator_set(&want);
                b.changes.push(Operation::insert(
                    McastMacsRemote::TABLE,
                    McastMacsRemote::insert_row(UNKNOWN_DST, r.clone(), set, ""),
                ));
                b.counts.inserts += 1;
            }
            Some(row) if !matches(row) => {
                let set = b.locator_set(&want);
                b.update(
                    McastMacsRemote::TABLE,
                    row.uuid,
                    Row::from([("locator_set".to_owned(), Datum::Atom(set))]),
                );
            }
            Some(_) => {}
        }
    }
    for rows in mcast.into_values() {
        for m in rows {
            b.delete(McastMacsRemote::TABLE, m.uuid);
        }
    }

    // BFD on the tunnels the switch created toward VTEPs the store knows.
    if let Some(me) = me {
        for t in Tunnel::all(replica)? {
            if !me.tunnels.contains(&t.uuid) {
                continue;
            }
            let Some(want) = loc_ip
                .get(&t.remote)
                .and_then(|ip| desired.tunnel_bfd.get(ip))
            else {
                continue;
            };
            if t.bfd_params != *want {
                b.update(
                    Tunnel::TABLE,
                    t.uuid,
                    Row::from([("bfd_params".to_owned(), str_map_datum(want))]),
                );
            }
        }
    }

    // Logical switches we own and no longer want: deleted once nothing the
    // switch wrote refers to them (it drops its local MACs after unbinding).
    if !doomed.is_empty() {
        let mut held: BTreeMap<Uuid, &str> = BTreeMap::new();
        for m in UcastMacsLocal::all(replica)? {
            held.insert(m.logical_switch, "Ucast_Macs_Local");
        }
        for m in McastMacsLocal::all(replica)? {
            held.insert(m.logical_switch, "Mcast_Macs_Local");
        }
        for (_, row) in replica.table("Logical_Router") {
            if let Some(m) = row.get("switch_binding").and_then(Datum::as_map) {
                for v in m.values().filter_map(Atom::as_uuid) {
                    held.insert(v, "Logical_Router");
                }
            }
        }
        for l in lss.iter().filter(|l| doomed.contains(&l.uuid)) {
            match held.get(&l.uuid) {
                Some(by) => notes.push(format!(
                    "logical switch {:?} is unbound; deleted once {by} rows stop referring to it",
                    l.name
                )),
                None => b.delete("Logical_Switch", l.uuid),
            }
        }
    }

    let mut ops = Vec::new();
    let has_changes = !(b.inserts.is_empty() && b.changes.is_empty() && b.deletes.is_empty());
    if has_changes {
        if let Some(lock) = &opts.lock {
            ops.push(Operation::Assert { lock: lock.clone() });
        }
        ops.append(&mut b.guards);
        ops.append(&mut b.inserts);
        ops.append(&mut b.changes);
        ops.append(&mut b.deletes);
    }
    Ok(Plan {
        ops,
        counts: b.counts,
        touched: b.touched,
        source_node_fallback: fallback,
        faults,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::RemoteTarget;
    use crate::schema::tests::vtep_schema;
    use crate::testsim::apply;
    use crate::vtep_tables::LogicalSwitch as LsTable;
    use api::model::MacAddr;

    fn ip(d: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, d)
    }
    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }
    fn row(pairs: Vec<(&str, Datum)>) -> Row {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
    fn named(n: &str) -> Atom {
        Atom::NamedUuid(n.into())
    }

    /// An empty switch as its own agent would create it: tor1 with ports p1, p2.
    fn switch() -> Replica {
        let ops = vec![
            Operation::insert("Global", row(vec![("switches", Datum::Atom(named("ps")))])),
            Operation::insert_named(
                "Physical_Switch",
                row(vec![
                    ("name", "tor1".into()),
                    ("tunnel_ips", "198.18.0.1".into()),
                    ("ports", Datum::set([named("p1"), named("p2")])),
                ]),
                "ps",
            ),
            Operation::insert_named("Physical_Port", row(vec![("name", "p1".into())]), "p1"),
            Operation::insert_named("Physical_Port", row(vec![("name", "p2".into())]), "p2"),
        ];
        apply(&Replica::new(vtep_schema()), &ops).unwrap()
    }

    fn desired() -> DesiredState {
        let web = DesiredLogicalSwitch {
            vni: 5001,
            replication: Replication::SourceNode,
            remote_macs: BTreeMap::from([
                (
                    mac("02:00:00:00:00:01"),
                    RemoteTarget {
                        locator: ip(11),
                        ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
                    },
                ),
                (
                    mac("02:00:00:00:00:02"),
                    RemoteTarget {
                        locator: ip(12),
                        ip: None,
                    },
                ),
            ]),
            service_nodes: BTreeSet::from([ip(31)]),
            peers: BTreeSet::from([ip(11), ip(12)]),
        };
        let db = DesiredLogicalSwitch {
            vni: 5002,
            replication: Replication::ServiceNode,
            remote_macs: BTreeMap::from([(
                mac("02:00:00:00:00:03"),
                RemoteTarget {
                    locator: ip(11),
                    ip: None,
                },
            )]),
            service_nodes: BTreeSet::from([ip(31)]),
            peers: BTreeSet::from([ip(11)]),
        };
        DesiredState {
            local_tunnel_ips: BTreeSet::from([ip(1)]),
            logical_switches: BTreeMap::from([("web".into(), web), ("db".into(), db)]),
            bindings: BTreeMap::from([(
                "p1".into(),
                BTreeMap::from([(10, "web".to_owned()), (20, "db".to_owned())]),
            )]),
            tunnel_bfd: BTreeMap::from([(
                ip(11),
                BTreeMap::from([("enable".to_owned(), "true".to_owned())]),
            )]),
        }
    }

    fn opts() -> PlanOptions {
        PlanOptions {
            lock: Some("bridgehead_vtep_sync".into()),
            ..PlanOptions::default()
        }
    }

    /// Plans, applies, and checks that a second plan is empty.
    fn converge(d: &DesiredState, r: &Replica) -> (Plan, Replica) {
        let p = plan(d, r, &opts()).unwrap();
        let r2 = apply(r, &p.ops).unwrap_or_else(|e| panic!("{e}: {:#?}", p.ops));
        let again = plan(d, &r2, &opts()).unwrap();
        assert!(again.is_empty(), "not converged: {:#?}", again.ops);
        (p, r2)
    }

    fn ls_uuid(r: &Replica, name: &str) -> Uuid {
        LsTable::all(r)
            .unwrap()
            .into_iter()
            .find(|l| l.name == name)
            .unwrap()
            .uuid
    }

    fn remote_macs(r: &Replica) -> BTreeMap<(String, String), (String, String)> {
        let lss: BTreeMap<Uuid, String> = LsTable::all(r)
            .unwrap()
            .into_iter()
            .map(|l| (l.uuid, l.name))
            .collect();
        UcastMacsRemote::all(r)
            .unwrap()
            .into_iter()
            .map(|m| {
                let loc = PhysicalLocator::from_row(
                    m.locator,
                    r.row(PhysicalLocator::TABLE, m.locator).unwrap(),
                )
                .unwrap();
                (
                    (lss[&m.logical_switch].clone(), m.mac),
                    (loc.dst_ip, m.ipaddr),
                )
            })
            .collect()
    }

    fn flood(r: &Replica, ls: &str) -> BTreeSet<String> {
        let u = ls_uuid(r, ls);
        let m = McastMacsRemote::all(r)
            .unwrap()
            .into_iter()
            .find(|m| m.logical_switch == u && m.mac == UNKNOWN_DST)
            .unwrap();
        let set = PhysicalLocatorSet::from_row(
            m.locator_set,
            r.row(PhysicalLocatorSet::TABLE, m.locator_set).unwrap(),
        )
        .unwrap();
        set.locators
            .iter()
            .map(|l| {
                PhysicalLocator::from_row(*l, r.row(PhysicalLocator::TABLE, *l).unwrap())
                    .unwrap()
                    .dst_ip
            })
            .collect()
    }

    fn port(r: &Replica, name: &str) -> PhysicalPort {
        PhysicalPort::all(r)
            .unwrap()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
    }

    #[test]
    fn empty_switch_is_programmed_in_one_transaction_then_nothing() {
        let r = switch();
        let (p, r) = converge(&desired(), &r);
        assert_eq!(
            p.ops[0],
            Operation::Assert {
                lock: "bridgehead_vtep_sync".into()
            }
        );
        // 2 LS, 3 locators (11, 12, 31), 1 set {11,12}, 1 set {31}, 3 MACs, 2 mcast.
        assert_eq!(p.counts.inserts, 2 + 3 + 2 + 3 + 2, "{:#?}", p.ops);
        assert_eq!(p.counts.mutates, 1);
        let web = LsTable::all(&r)
            .unwrap()
            .into_iter()
            .find(|l| l.name == "web")
            .unwrap();
        assert_eq!(web.tunnel_key, Some(5001));
        assert_eq!(web.replication_mode.as_deref(), Some("source_node"));
        assert_eq!(
            r.get("Logical_Switch", web.uuid, "other_config"),
            Some(Datum::map([(OWNER_KEY, OWNER_VALUE)]))
        );
        assert_eq!(
            port(&r, "p1").vlan_bindings,
            BTreeMap::from([(10, web.uuid), (20, ls_uuid(&r, "db"))])
        );
        let macs = remote_macs(&r);
        assert_eq!(macs.len(), 3);
        assert_eq!(
            macs[&("web".into(), "02:00:00:00:00:01".into())],
            ("198.18.0.11".into(), "192.0.2.1".into())
        );
        assert_eq!(
            flood(&r, "web"),
            BTreeSet::from(["198.18.0.11".into(), "198.18.0.12".into()])
        );
        assert_eq!(flood(&r, "db"), BTreeSet::from(["198.18.0.31".into()]));
        assert!(!p.source_node_fallback);
    }

    #[test]
    fn foreign_rows_survive_and_stale_remote_rows_go() {
        let r = switch();
        let p1 = port(&r, "p1").uuid;
        // An operator's logical switch bound on p1 vlan 99 with a local MAC,
        // a stale remote MAC on it, and a stale + duplicated MAC on "web".
        let pre = vec![
            Operation::insert_named(
                "Logical_Switch",
                row(vec![
                    ("name", "foreign".into()),
                    ("tunnel_key", 7i64.into()),
                ]),
                "f",
            ),
            Operation::insert_named(
                "Logical_Switch",
                row(vec![("name", "web".into()), ("tunnel_key", 1i64.into())]),
                "w",
            ),
            Operation::mutate(
                "Physical_Port",
                vec![Condition::uuid(p1)],
                vec![Mutation::insert(
                    "vlan_bindings",
                    Datum::map([
                        (Atom::Integer(99), named("f")),
                        (Atom::Integer(11), named("w")),
                    ]),
                )],
            ),
            Operation::insert_named(
                "Physical_Locator",
                PhysicalLocator::insert_row("198.18.0.99"),
                "l",
            ),
            Operation::insert(
                "Ucast_Macs_Local",
                UcastMacsLocal::insert_row("02:00:00:00:99:01", named("f"), named("l"), ""),
            ),
            Operation::insert(
                "Ucast_Macs_Remote",
                UcastMacsRemote::insert_row("02:00:00:00:99:02", named("f"), named("l"), ""),
            ),
            Operation::insert(
                "Ucast_Macs_Remote",
                UcastMacsRemote::insert_row("02:00:00:00:99:03", named("w"), named("l"), ""),
            ),
            Operation::insert(
                "Ucast_Macs_Remote",
                UcastMacsRemote::insert_row("02:00:00:00:00:01", named("w"), named("l"), ""),
            ),
            Operation::insert(
                "Ucast_Macs_Remote",
                UcastMacsRemote::insert_row("02:00:00:00:00:01", named("w"), named("l"), ""),
            ),
        ];
        let r = apply(&r, &pre).unwrap();
        let foreign = ls_uuid(&r, "foreign");
        let web = ls_uuid(&r, "web");
        let (p, r) = converge(&desired(), &r);
        // The foreign switch, its binding and the local MAC are untouched.
        assert!(!p.touched.contains(&foreign));
        assert_eq!(ls_uuid(&r, "foreign"), foreign);
        assert_eq!(port(&r, "p1").vlan_bindings[&99], foreign);
        assert_eq!(r.len("Ucast_Macs_Local"), 1);
        // "web" was adopted (same row), its stale VLAN 11 binding removed.
        assert_eq!(ls_uuid(&r, "web"), web);
        assert!(!port(&r, "p1").vlan_bindings.contains_key(&11));
        assert_eq!(
            LsTable::from_row(web, r.row("Logical_Switch", web).unwrap())
                .unwrap()
                .tunnel_key,
            Some(5001)
        );
        // Remote rows: exactly the desired ones.
        let macs = remote_macs(&r);
        assert_eq!(
            macs.keys().cloned().collect::<BTreeSet<_>>(),
            BTreeSet::from([
                ("db".into(), "02:00:00:00:00:03".into()),
                ("web".into(), "02:00:00:00:00:01".into()),
                ("web".into(), "02:00:00:00:00:02".into()),
            ])
        );
        assert_eq!(r.len("Ucast_Macs_Remote"), 3);
    }

    #[test]
    fn mac_move_is_one_update_of_the_same_row() {
        let (_, r) = converge(&desired(), &switch());
        let before: BTreeMap<String, Uuid> = UcastMacsRemote::all(&r)
            .unwrap()
            .into_iter()
            .map(|m| (m.mac, m.uuid))
            .collect();
        let mut d = desired();
        d.logical_switches
            .get_mut("web")
            .unwrap()
            .remote_macs
            .get_mut(&mac("02:00:00:00:00:01"))
            .unwrap()
            .locator = ip(12);
        let (p, r) = converge(&d, &r);
        assert_eq!(
            p.counts,
            PlanCounts {
                updates: 1,
                ..PlanCounts::default()
            },
            "{:#?}",
            p.ops
        );
        let after: BTreeMap<String, Uuid> = UcastMacsRemote::all(&r)
            .unwrap()
            .into_iter()
            .map(|m| (m.mac, m.uuid))
            .collect();
        assert_eq!(before, after);
        assert_eq!(
            remote_macs(&r)[&("web".into(), "02:00:00:00:00:01".into())].0,
            "198.18.0.12"
        );
    }

    #[test]
    fn locator_garbage_collection_then_reuse_of_the_same_vtep() {
        let mut d = desired();
        d.logical_switches.remove("db");
        d.bindings.get_mut("p1").unwrap().remove(&20);
        let web = d.logical_switches.get_mut("web").unwrap();
        web.peers = BTreeSet::from([ip(11)]);
        web.remote_macs.remove(&mac("02:00:00:00:00:02"));
        let (_, r1) = converge(&d, &switch());
        assert!(
            PhysicalLocator::all(&r1)
                .unwrap()
                .iter()
                .all(|l| l.dst_ip != "198.18.0.12")
        );
        // Add a MAC behind .12 again: a fresh locator is inserted.
        let (p, r2) = converge(&desired(), &r1);
        assert!(p.ops.iter().any(|o| matches!(o,
            Operation::Insert { table, row, .. } if table == PhysicalLocator::TABLE
                && row["dst_ip"] == Datum::from("198.18.0.12"))));
        // Now drop the last MAC behind .12 and, from a replica that has not
        // yet seen the locator vanish, reference it again: the server refuses
        // (this is why the reconciler waits for its own update before planning).
        let mut d3 = desired();
        let web = d3.logical_switches.get_mut("web").unwrap();
        web.remote_macs.remove(&mac("02:00:00:00:00:02"));
        web.peers.remove(&ip(12));
        let (_, r3) = converge(&d3, &r2);
        let mut d4 = d3.clone();
        d4.logical_switches
            .get_mut("web")
            .unwrap()
            .remote_macs
            .insert(
                mac("02:00:00:00:00:09"),
                RemoteTarget {
                    locator: ip(12),
                    ip: None,
                },
            );
        // r2 still has the .12 locator, so the stale plan reuses its UUID...
        let stale_plan = plan(&d4, &r2, &opts()).unwrap();
        let e = apply(&r3, &stale_plan.ops).unwrap_err();
        assert!(e.contains("referential integrity"), "{e}");
        // ...while a plan on the caught-up replica converges.
        converge(&d4, &r3);
    }

    #[test]
    fn vlan_bindings_are_mutated_with_a_guard() {
        let r = switch();
        let p1 = port(&r, "p1").uuid;
        // A foreign binding on VLAN 99 must survive and guard the mutate.
        let r = apply(
            &r,
            &[
                Operation::insert_named(
                    "Logical_Switch",
                    row(vec![("name", "foreign".into())]),
                    "f",
                ),
                Operation::mutate(
                    "Physical_Port",
                    vec![Condition::uuid(p1)],
                    vec![Mutation::insert(
                        "vlan_bindings",
                        Datum::map([(Atom::Integer(99), named("f"))]),
                    )],
                ),
            ],
        )
        .unwrap();
        let p = plan(&desired(), &r, &opts()).unwrap();
        let mutate = p
            .ops
            .iter()
            .find(|o| matches!(o, Operation::Mutate { table, .. } if table == "Physical_Port"))
            .unwrap();
        let Operation::Mutate { mutations, .. } = mutate else {
            unreachable!()
        };
        assert_eq!(mutations.len(), 1, "only inserts: {mutations:?}");
        assert_eq!(mutations[0].mutator, "insert");
        assert!(p.ops.iter().any(|o| matches!(o,
            Operation::Wait { table, columns, .. } if table == "Physical_Port" && columns == &["vlan_bindings"])));
        // A concurrent writer changes the bindings: the guarded plan fails...
        let foreign = ls_uuid(&r, "foreign");
        let changed = apply(
            &r,
            &[Operation::mutate(
                "Physical_Port",
                vec![Condition::uuid(p1)],
                vec![Mutation::insert(
                    "vlan_bindings",
                    Datum::map([(Atom::Integer(98), Atom::Uuid(foreign))]),
                )],
            )],
        )
        .unwrap();
        assert!(apply(&changed, &p.ops).unwrap_err().contains("wait"));
        // ...and a re-plan keeps both foreign bindings.
        let (_, done) = converge(&desired(), &changed);
        let b = port(&done, "p1").vlan_bindings;
        assert_eq!((b[&98], b[&99]), (foreign, foreign));
        assert_eq!(b.len(), 4);
        // Changing one VLAN's logical switch deletes then inserts that key only.
        let mut d = desired();
        d.bindings.get_mut("p1").unwrap().insert(20, "web".into());
        let p = plan(&d, &done, &opts()).unwrap();
        let Some(Operation::Mutate { mutations, .. }) = p
            .ops
            .iter()
            .find(|o| matches!(o, Operation::Mutate { table, .. } if table == "Physical_Port"))
        else {
            panic!()
        };
        assert_eq!(mutations[0].mutator, "delete");
        assert_eq!(mutations[0].value, Datum::set([20i64]));
        assert_eq!(mutations[1].mutator, "insert");
        converge(&d, &done);
    }

    #[test]
    fn source_node_fault_falls_back_to_service_node_and_remembers() {
        let (_, r) = converge(&desired(), &switch());
        assert_eq!(flood(&r, "web").len(), 2);
        let ps = PhysicalSwitch::all(&r).unwrap()[0].uuid;
        let faulted = apply(
            &r,
            &[Operation::update(
                "Physical_Switch",
                vec![Condition::uuid(ps)],
                row(vec![(
                    "switch_fault_status",
                    Datum::set([SOURCE_NODE_FAULT]),
                )]),
            )],
        )
        .unwrap();
        let (p, r) = converge(&desired(), &faulted);
        assert!(p.source_node_fallback);
        assert!(p.faults.contains(SOURCE_NODE_FAULT));
        let web = ls_uuid(&r, "web");
        let ls = LsTable::from_row(web, r.row("Logical_Switch", web).unwrap()).unwrap();
        assert_eq!(ls.replication_mode.as_deref(), Some("service_node"));
        assert_eq!(flood(&r, "web"), BTreeSet::from(["198.18.0.31".into()]));
        // The switch clears the fault: the fallback stays (recorded on our rows).
        let cleared = apply(
            &r,
            &[Operation::update(
                "Physical_Switch",
                vec![Condition::uuid(ps)],
                row(vec![("switch_fault_status", Datum::empty_set())]),
            )],
        )
        .unwrap();
        let p = plan(&desired(), &cleared, &opts()).unwrap();
        assert!(p.is_empty(), "{:#?}", p.ops);
        assert!(p.source_node_fallback);
    }

    #[test]
    fn unbound_logical_switch_is_deleted_after_the_switch_drops_local_macs() {
        let (_, r) = converge(&desired(), &switch());
        let db = ls_uuid(&r, "db");
        let r = apply(
            &r,
            &[
                Operation::insert_named(
                    "Physical_Locator",
                    PhysicalLocator::insert_row("198.18.0.1"),
                    "me",
                ),
                Operation::insert(
                    "Ucast_Macs_Local",
                    UcastMacsLocal::insert_row(
                        "02:00:00:00:aa:01",
                        Atom::Uuid(db),
                        named("me"),
                        "",
                    ),
                ),
            ],
        )
        .unwrap();
        let mut d = desired();
        d.logical_switches.remove("db");
        d.bindings.get_mut("p1").unwrap().remove(&20);
        let (p, r) = converge(&d, &r);
        assert!(
            p.notes.iter().any(|n| n.contains("Ucast_Macs_Local")),
            "{:?}",
            p.notes
        );
        assert!(r.row("Logical_Switch", db).is_some());
        assert!(!port(&r, "p1").vlan_bindings.contains_key(&20));
        assert!(remote_macs(&r).keys().all(|(ls, _)| ls != "db"));
        // The switch forgets its local MAC; now the row goes.
        let local: Vec<Uuid> = r.table("Ucast_Macs_Local").map(|(u, _)| *u).collect();
        let r = apply(
            &r,
            &[Operation::delete(
                "Ucast_Macs_Local",
                vec![Condition::uuid(local[0])],
            )],
        )
        .unwrap();
        let (p, r) = converge(&d, &r);
        assert_eq!(p.counts.deletes, 1);
        assert!(r.row("Logical_Switch", db).is_none());
    }

    #[test]
    fn bfd_params_follow_the_store_on_switch_made_tunnels() {
        let (_, r) = converge(&desired(), &switch());
        let locs: BTreeMap<String, Uuid> = PhysicalLocator::all(&r)
            .unwrap()
            .into_iter()
            .map(|l| (l.dst_ip, l.uuid))
            .collect();
        let ps = PhysicalSwitch::all(&r).unwrap()[0].uuid;
        // The switch creates tunnels toward .11 (BFD wanted) and .12 (not in tunnel_bfd).
        let r = apply(
            &r,
            &[
                Operation::insert_named(
                    "Physical_Locator",
                    PhysicalLocator::insert_row("198.18.0.1"),
                    "me",
                ),
                Operation::insert_named(
                    "Tunnel",
                    row(vec![
                        ("local", Datum::Atom(named("me"))),
                        ("remote", Datum::Atom(Atom::Uuid(locs["198.18.0.11"]))),
                    ]),
                    "t1",
                ),
                Operation::insert_named(
                    "Tunnel",
                    row(vec![
                        ("local", Datum::Atom(named("me"))),
                        ("remote", Datum::Atom(Atom::Uuid(locs["198.18.0.12"]))),
                    ]),
                    "t2",
                ),
                Operation::mutate(
                    "Physical_Switch",
                    vec![Condition::uuid(ps)],
                    vec![Mutation::insert(
                        "tunnels",
                        Datum::set([named("t1"), named("t2")]),
                    )],
                ),
            ],
        )
        .unwrap();
        let (p, r) = converge(&desired(), &r);
        assert_eq!(p.counts.updates, 1);
        let bfd: Vec<BTreeMap<String, String>> = Tunnel::all(&r)
            .unwrap()
            .into_iter()
            .map(|t| t.bfd_params)
            .collect();
        assert!(bfd.contains(&BTreeMap::from([("enable".into(), "true".into())])));
        assert!(bfd.contains(&BTreeMap::new()));
    }

    #[test]
    fn no_physical_switch_still_programs_the_database_wide_tables() {
        let r = Replica::new(vtep_schema());
        let (p, r) = converge(&desired(), &r);
        assert!(p.notes.iter().any(|n| n.contains("Physical_Switch")));
        assert_eq!(r.len("Ucast_Macs_Remote"), 3);
    }

    #[test]
    fn schema_without_other_config_marks_ownership_in_the_description() {
        let mut v: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/vtep.ovsschema")).unwrap();
        v["tables"]["Logical_Switch"]["columns"]
            .as_object_mut()
            .unwrap()
            .remove("other_config");
        let schema = crate::schema::DatabaseSchema::from_json(&v).unwrap();
        let (_, r) = converge(&desired(), &Replica::new(schema));
        let web = ls_uuid(&r, "web");
        let ls = LsTable::from_row(web, r.row("Logical_Switch", web).unwrap()).unwrap();
        assert_eq!(ls.description, DESCRIPTION_MARK);
        // Dropped from the desired state: recognised as ours and deleted.
        let mut d = desired();
        d.logical_switches.remove("web");
        d.bindings.get_mut("p1").unwrap().remove(&10);
        let (p, r) = converge(&d, &r);
        assert!(p.touched.contains(&web));
        assert!(r.row("Logical_Switch", web).is_none());
    }

    #[test]
    fn random_desired_states_converge_from_each_other() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut r = switch();
        for round in 0..60 {
            let mut d = DesiredState {
                local_tunnel_ips: BTreeSet::from([ip(1)]),
                ..DesiredState::default()
            };
            for ls in 0..rng.random_range(0..4u8) {
                let name = format!("ls{ls}");
                let mut macs = BTreeMap::new();
                for _ in 0..rng.random_range(0..6) {
                    let m = MacAddr([2, 0, 0, 0, ls, rng.random_range(0..8)]);
                    macs.insert(
                        m,
                        RemoteTarget {
                            locator: ip(rng.random_range(10..14)),
                            ip: rng
                                .random_bool(0.5)
                                .then(|| Ipv4Addr::new(192, 0, 2, rng.random())),
                        },
                    );
                }
                let peers = (0..rng.random_range(0..3))
                    .map(|_| ip(rng.random_range(10..14)))
                    .collect();
                d.logical_switches.insert(
                    name.clone(),
                    DesiredLogicalSwitch {
                        vni: 5000 + u32::from(ls) * rng.random_range(1..3),
                        replication: if rng.random_bool(0.5) {
                            Replication::SourceNode
                        } else {
                            Replication::ServiceNode
                        },
                        remote_macs: macs,
                        service_nodes: BTreeSet::from([ip(31)]),
                        peers,
                    },
                );
                let port = if rng.random_bool(0.5) { "p1" } else { "p2" };
                d.bindings
                    .entry(port.into())
                    .or_default()
                    .insert(rng.random_range(0..4), name);
            }
            let p = plan(&d, &r, &opts()).unwrap();
            r = apply(&r, &p.ops).unwrap_or_else(|e| panic!("round {round}: {e}: {:#?}", p.ops));
            let again = plan(&d, &r, &opts()).unwrap();
            assert!(again.is_empty(), "round {round}: {:#?}", again.ops);
            assert_eq!(
                r.len("Logical_Switch"),
                d.logical_switches.len(),
                "round {round}"
            );
        }
    }
}
