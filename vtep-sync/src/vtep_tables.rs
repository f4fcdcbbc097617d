//! Typed rows of the hardware_vtep tables we use (vtep(5)), and the check
//! that a switch's schema has every table and column we read or write.
//!
//! Readers accept both a full `select` row and a canonical replica row
//! (where columns at their default value are absent): an absent column
//! reads as its type's default.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use thiserror::Error;

use crate::datum::{Atom, Datum, Row, Uuid};
use crate::replica::Replica;
use crate::schema::{AtomicType, ColumnType, DatabaseSchema, Max, Version};

/// The database name of the hardware VTEP schema.
pub const VTEP_DB: &str = "hardware_vtep";

/// Oldest hardware_vtep schema we accept: 1.3.0 moved BFD to the `Tunnel`
/// table (`bfd_params`, `bfd_status`), which the controller relies on.
pub const MIN_SCHEMA_VERSION: Version = Version(1, 3, 0);

/// Why a row could not be read as its typed struct.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{table} row {uuid}: column {column}: {problem}")]
pub struct RowError {
    /// Table name.
    pub table: &'static str,
    /// Row UUID.
    pub uuid: Uuid,
    /// Column name.
    pub column: &'static str,
    /// What was wrong.
    pub problem: String,
}

/// The switch's schema lacks what we need; lists every problem at once.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("switch schema {db} {version} is not usable by Bridgehead: {}", problems.join("; "))]
pub struct SchemaMismatch {
    /// Database name reported by the switch.
    pub db: String,
    /// Version reported by the switch.
    pub version: Version,
    /// One line per missing table/column, wrong type, or too-old version.
    pub problems: Vec<String>,
}

/// The shape of a column as we use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exactly one value.
    Scalar(AtomicType),
    /// Zero or one value.
    Optional(AtomicType),
    /// A set of values.
    Set(AtomicType),
    /// A map.
    Map(AtomicType, AtomicType),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Scalar(t) => write!(f, "{t}"),
            Kind::Optional(t) => write!(f, "optional {t}"),
            Kind::Set(t) => write!(f, "set of {t}"),
            Kind::Map(k, v) => write!(f, "map {k}->{v}"),
        }
    }
}

impl Kind {
    fn accepts(&self, ty: &ColumnType) -> bool {
        let value = ty.value.as_ref().map(|v| v.atomic);
        match *self {
            Kind::Scalar(t) => {
                ty.key.atomic == t && value.is_none() && ty.min == 1 && ty.max == Max::Limited(1)
            }
            Kind::Optional(t) => {
                ty.key.atomic == t && value.is_none() && ty.min == 0 && ty.max >= Max::Limited(1)
            }
            Kind::Set(t) => ty.key.atomic == t && value.is_none() && ty.max > Max::Limited(1),
            Kind::Map(k, v) => ty.key.atomic == k && value == Some(v),
        }
    }
}

fn describe(ty: &ColumnType) -> String {
    let max = match ty.max {
        Max::Unlimited => "unlimited".to_string(),
        Max::Limited(n) => n.to_string(),
    };
    match &ty.value {
        Some(v) => format!("map {}->{} [{}..{}]", ty.key.atomic, v.atomic, ty.min, max),
        None => format!("{} [{}..{}]", ty.key.atomic, ty.min, max),
    }
}

/// How the controller uses a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Read only; the schema must have it.
    Read,
    /// Written (and read); the schema must have it.
    Written,
    /// Used when the schema has it (a newer schema's column); not checked
    /// by [`check_schema`].
    IfPresent,
}

/// A column we read or write.
#[derive(Clone, Copy, Debug)]
pub struct ColumnSpec {
    /// Column name.
    pub name: &'static str,
    /// Expected shape.
    pub kind: Kind,
    /// What the controller does with it.
    pub role: Use,
}

const fn col(name: &'static str, kind: Kind, role: Use) -> ColumnSpec {
    ColumnSpec { name, kind, role }
}

use AtomicType::{Boolean as B, Integer as I, String as S, Uuid as U};

/// A hardware_vtep table with a typed row.
pub trait VtepTable: Sized {
    /// Table name in the schema.
    const TABLE: &'static str;
    /// Columns we use.
    const COLUMNS: &'static [ColumnSpec];
    /// Reads a row.
    fn from_row(uuid: Uuid, row: &Row) -> Result<Self, RowError>;

    /// Reads every row of this table from a replica, sorted by UUID.
    fn all(replica: &Replica) -> Result<Vec<Self>, RowError> {
        replica
            .table(Self::TABLE)
            .map(|(u, r)| Self::from_row(*u, r))
            .collect()
    }
}

struct Reader<'a> {
    table: &'static str,
    uuid: Uuid,
    row: &'a Row,
}

impl Reader<'_> {
    fn err(&self, column: &'static str, problem: &str) -> RowError {
        RowError {
            table: self.table,
            uuid: self.uuid,
            column,
            problem: problem.to_owned(),
        }
    }
    fn atom(&self, c: &'static str) -> Result<Option<&Atom>, RowError> {
        match self.row.get(c) {
            None => Ok(None),
            Some(d) => match d {
                Datum::Set(s) if s.is_empty() => Ok(None),
                _ => d
                    .as_atom()
                    .map(Some)
                    .ok_or_else(|| self.err(c, "expected one value")),
            },
        }
    }
    fn string(&self, c: &'static str) -> Result<String, RowError> {
        match self.atom(c)? {
            None => Ok(String::new()),
            Some(a) => a
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.err(c, "expected a string")),
        }
    }
    fn opt_string(&self, c: &'static str) -> Result<Option<String>, RowError> {
        self.atom(c)?
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.err(c, "expected a string"))
            })
            .transpose()
    }
    fn int(&self, c: &'static str) -> Result<i64, RowError> {
        Ok(self.opt_int(c)?.unwrap_or(0))
    }
    fn opt_int(&self, c: &'static str) -> Result<Option<i64>, RowError> {
        self.atom(c)?
            .map(|a| a.as_i64().ok_or_else(|| self.err(c, "expected an integer")))
            .transpose()
    }
    fn bool(&self, c: &'static str) -> Result<bool, RowError> {
        Ok(match self.atom(c)? {
            None => false,
            Some(a) => a
                .as_bool()
                .ok_or_else(|| self.err(c, "expected a boolean"))?,
        })
    }
    fn uuid(&self, c: &'static str) -> Result<Uuid, RowError> {
        self.atom(c)?
            .and_then(Atom::as_uuid)
            .ok_or_else(|| self.err(c, "expected a row reference"))
    }
    fn set(&self, c: &'static str) -> Result<BTreeSet<Atom>, RowError> {
        match self.row.get(c) {
            None => Ok(BTreeSet::new()),
            Some(d) => d.to_set().ok_or_else(|| self.err(c, "expected a set")),
        }
    }
    fn strings(&self, c: &'static str) -> Result<BTreeSet<String>, RowError> {
        self.set(c)?
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.err(c, "expected strings"))
            })
            .collect()
    }
    fn uuids(&self, c: &'static str) -> Result<BTreeSet<Uuid>, RowError> {
        self.set(c)?
            .iter()
            .map(|a| {
                a.as_uuid()
                    .ok_or_else(|| self.err(c, "expected row references"))
            })
            .collect()
    }
    fn map(&self, c: &'static str) -> Result<BTreeMap<Atom, Atom>, RowError> {
        match self.row.get(c) {
            None => Ok(BTreeMap::new()),
            Some(d) => d.as_map().ok_or_else(|| self.err(c, "expected a map")),
        }
    }
    fn string_map(&self, c: &'static str) -> Result<BTreeMap<String, String>, RowError> {
        self.map(c)?
            .iter()
            .map(|(k, v)| match (k.as_str(), v.as_str()) {
                (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
                _ => Err(self.err(c, "expected string->string")),
            })
            .collect()
    }
    fn vlan_map(&self, c: &'static str) -> Result<BTreeMap<u16, Uuid>, RowError> {
        self.map(c)?
            .iter()
            .map(
                |(k, v)| match (k.as_i64().and_then(|k| u16::try_from(k).ok()), v.as_uuid()) {
                    (Some(k), Some(v)) if k <= 4095 => Ok((k, v)),
                    _ => Err(self.err(c, "expected vlan(0..4095)->row reference")),
                },
            )
            .collect()
    }
}

/// One table's typed row from one list of its columns: the struct (its
/// fields in list order, after the row UUID), the columns [`check_schema`]
/// checks, and the reader. Each column reads as
/// `field: Type = reader("column", kind, use)`, `reader` a [`Reader`] method.
macro_rules! vtep_table {
    (
        $(#[$doc:meta])*
        $name:ident = $table:literal {
            $(
                $(#[$fdoc:meta])*
                $field:ident: $ty:ty = $read:ident($column:expr, $kind:expr, $role:ident)
            ),* $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            /// Row UUID.
            pub uuid: Uuid,
            $( $(#[$fdoc])* pub $field: $ty, )*
        }

        impl VtepTable for $name {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [ColumnSpec] = &[$(col($column, $kind, Use::$role)),*];
            fn from_row(uuid: Uuid, row: &Row) -> Result<Self, RowError> {
                let r = Reader {
                    table: Self::TABLE,
                    uuid,
                    row,
                };
                Ok(Self {
                    uuid,
                    $( $field: r.$read($column)?, )*
                })
            }
        }
    };
}

vtep_table! {
    /// `Global`: the root row listing switches and managers.
    Global = "Global" {
        /// `Manager` rows: the OVSDB remotes the switch connects to or listens on.
        managers: BTreeSet<Uuid> = uuids("managers", Kind::Set(U), Read),
        /// `Physical_Switch` rows served by this database.
        switches: BTreeSet<Uuid> = uuids("switches", Kind::Set(U), Read),
    }
}

vtep_table! {
    /// `Physical_Switch`: one hardware switch and its tunnel endpoints.
    PhysicalSwitch = "Physical_Switch" {
        /// Switch name (unique).
        name: String = string("name", Kind::Scalar(S), Read),
        /// Free text.
        description: String = string("description", Kind::Scalar(S), Read),
        /// Management addresses.
        management_ips: BTreeSet<String> = strings("management_ips", Kind::Set(S), Read),
        /// VTEP source addresses; remote MACs point tunnels at these.
        tunnel_ips: BTreeSet<String> = strings("tunnel_ips", Kind::Set(S), Read),
        /// `Physical_Port` rows.
        ports: BTreeSet<Uuid> = uuids("ports", Kind::Set(U), Read),
        /// `Tunnel` rows (for BFD).
        tunnels: BTreeSet<Uuid> = uuids("tunnels", Kind::Set(U), Read),
        /// Faults the switch reports.
        switch_fault_status: BTreeSet<String> = strings("switch_fault_status", Kind::Set(S), Read),
    }
}

vtep_table! {
    /// `Physical_Port`: a switch port and its VLAN → logical switch bindings.
    PhysicalPort = "Physical_Port" {
        /// Port name.
        name: String = string("name", Kind::Scalar(S), Read),
        /// Free text.
        description: String = string("description", Kind::Scalar(S), Read),
        /// VLAN (0 = untagged) → `Logical_Switch`; written by the controller.
        vlan_bindings: BTreeMap<u16, Uuid> = vlan_map("vlan_bindings", Kind::Map(I, U), Written),
        /// VLAN → `Logical_Binding_Stats`.
        vlan_stats: BTreeMap<u16, Uuid> = vlan_map("vlan_stats", Kind::Map(I, U), Read),
        /// Faults the switch reports.
        port_fault_status: BTreeSet<String> = strings("port_fault_status", Kind::Set(S), Read),
    }
}

vtep_table! {
    /// `Logical_Switch`: one L2 segment (VNI) on the switch.
    LogicalSwitch = "Logical_Switch" {
        /// Name (unique).
        name: String = string("name", Kind::Scalar(S), Written),
        /// Free text.
        description: String = string("description", Kind::Scalar(S), Written),
        /// The VXLAN VNI.
        tunnel_key: Option<i64> = opt_int("tunnel_key", Kind::Optional(I), Written),
        /// `service_node` or `source_node` (schema 1.6.0+; absent = service_node):
        /// see [`supports_replication_mode`].
        replication_mode: Option<String> = opt_string("replication_mode", Kind::Optional(S), IfPresent),
    }
}

impl LogicalSwitch {
    /// Column values for inserting or updating this logical switch.
    pub fn to_row(&self) -> Row {
        let mut row = Row::new();
        row.insert("name".into(), self.name.clone().into());
        row.insert("description".into(), self.description.clone().into());
        row.insert("tunnel_key".into(), Datum::optional(self.tunnel_key));
        if let Some(m) = &self.replication_mode {
            row.insert("replication_mode".into(), m.clone().into());
        }
        row
    }
}

vtep_table! {
    /// `Physical_Locator`: a tunnel destination (VXLAN over IPv4 to `dst_ip`).
    PhysicalLocator = "Physical_Locator" {
        /// Always `vxlan_over_ipv4` in practice.
        encapsulation_type: String = string("encapsulation_type", Kind::Scalar(S), Written),
        /// Remote VTEP address.
        dst_ip: String = string("dst_ip", Kind::Scalar(S), Written),
    }
}

impl PhysicalLocator {
    /// Column values for inserting a VXLAN locator (its columns are immutable).
    pub fn insert_row(dst_ip: &str) -> Row {
        let mut row = Row::new();
        row.insert("encapsulation_type".into(), "vxlan_over_ipv4".into());
        row.insert("dst_ip".into(), dst_ip.into());
        row
    }
}

vtep_table! {
    /// `Physical_Locator_Set`: where BUM traffic of a multicast MAC goes.
    PhysicalLocatorSet = "Physical_Locator_Set" {
        /// `Physical_Locator` rows.
        locators: BTreeSet<Uuid> = uuids("locators", Kind::Set(U), Written),
    }
}

impl PhysicalLocatorSet {
    /// Column values for inserting a locator set (immutable once inserted).
    pub fn insert_row(locators: impl IntoIterator<Item = Atom>) -> Row {
        Row::from([(
            "locators".to_owned(),
            Datum::Set(locators.into_iter().collect()),
        )])
    }
}

macro_rules! mac_table {
    ($(#[$doc:meta])* $name:ident, $table:literal, $target:ident, $role:ident, $target_doc:literal) => {
        vtep_table! {
            $(#[$doc])*
            $name = $table {
                /// The MAC (`unknown-dst` for the flooding entry of multicast tables).
                mac: String = string("MAC", Kind::Scalar(S), $role),
                /// `Logical_Switch` row.
                logical_switch: Uuid = uuid("logical_switch", Kind::Scalar(U), $role),
                #[doc = $target_doc]
                $target: Uuid = uuid(stringify!($target), Kind::Scalar(U), $role),
                /// Optional IPv4 address for ARP suppression.
                ipaddr: String = string("ipaddr", Kind::Scalar(S), $role),
            }
        }

        impl $name {
            /// Column values for inserting this entry; references may be named UUIDs.
            pub fn insert_row(mac: &str, logical_switch: Atom, target: Atom, ipaddr: &str) -> Row {
                Row::from([
                    ("MAC".to_owned(), mac.into()),
                    ("logical_switch".to_owned(), logical_switch.into()),
                    (stringify!($target).to_owned(), target.into()),
                    ("ipaddr".to_owned(), ipaddr.into()),
                ])
            }
        }
    };
}

mac_table!(
    /// `Ucast_Macs_Local`: a MAC the switch learned on a physical port.
    UcastMacsLocal, "Ucast_Macs_Local", locator, Read, "`Physical_Locator` row."
);
mac_table!(
    /// `Ucast_Macs_Remote`: a MAC behind a remote VTEP, written by the controller.
    UcastMacsRemote, "Ucast_Macs_Remote", locator, Written, "`Physical_Locator` row."
);
mac_table!(
    /// `Mcast_Macs_Local`: where the switch wants BUM traffic sent to it.
    McastMacsLocal, "Mcast_Macs_Local", locator_set, Read, "`Physical_Locator_Set` row."
);
mac_table!(
    /// `Mcast_Macs_Remote`: where the switch sends BUM traffic (service nodes), written by the controller.
    McastMacsRemote, "Mcast_Macs_Remote", locator_set, Written, "`Physical_Locator_Set` row."
);

vtep_table! {
    /// `Tunnel`: a tunnel between a local and a remote locator, with its BFD state.
    Tunnel = "Tunnel" {
        /// Local `Physical_Locator`.
        local: Uuid = uuid("local", Kind::Scalar(U), Read),
        /// Remote `Physical_Locator`.
        remote: Uuid = uuid("remote", Kind::Scalar(U), Read),
        /// BFD settings of the local end (`bfd_dst_mac`, `bfd_dst_ip`).
        bfd_config_local: BTreeMap<String, String> = string_map("bfd_config_local", Kind::Map(S, S), Written),
        /// BFD settings of the remote end.
        bfd_config_remote: BTreeMap<String, String> = string_map("bfd_config_remote", Kind::Map(S, S), Written),
        /// BFD parameters (`enable`, `min_rx`, ...); written by the controller.
        bfd_params: BTreeMap<String, String> = string_map("bfd_params", Kind::Map(S, S), Written),
        /// BFD state reported by the switch.
        bfd_status: BTreeMap<String, String> = string_map("bfd_status", Kind::Map(S, S), Read),
    }
}

vtep_table! {
    /// `Logical_Binding_Stats`: traffic counters of one VLAN binding.
    LogicalBindingStats = "Logical_Binding_Stats" {
        /// Bytes received on the port.
        bytes_from_local: i64 = int("bytes_from_local", Kind::Scalar(I), Read),
        /// Packets received on the port.
        packets_from_local: i64 = int("packets_from_local", Kind::Scalar(I), Read),
        /// Bytes sent out of the port.
        bytes_to_local: i64 = int("bytes_to_local", Kind::Scalar(I), Read),
        /// Packets sent out of the port.
        packets_to_local: i64 = int("packets_to_local", Kind::Scalar(I), Read),
    }
}

vtep_table! {
    /// `Manager`: an OVSDB remote of the switch (how we reach it).
    Manager = "Manager" {
        /// Target, e.g. `ptcp:6640`.
        target: String = string("target", Kind::Scalar(S), Read),
        /// Inactivity probe in ms (0 disables).
        inactivity_probe: Option<i64> = opt_int("inactivity_probe", Kind::Optional(I), Read),
        /// Whether a client is connected.
        is_connected: bool = bool("is_connected", Kind::Scalar(B), Read),
        /// Connection status details.
        status: BTreeMap<String, String> = string_map("status", Kind::Map(S, S), Read),
    }
}

/// Every table we use with the columns we use in it.
pub const TABLES: &[(&str, &[ColumnSpec])] = &[
    (Global::TABLE, Global::COLUMNS),
    (PhysicalSwitch::TABLE, PhysicalSwitch::COLUMNS),
    (PhysicalPort::TABLE, PhysicalPort::COLUMNS),
    (LogicalSwitch::TABLE, LogicalSwitch::COLUMNS),
    (PhysicalLocator::TABLE, PhysicalLocator::COLUMNS),
    (PhysicalLocatorSet::TABLE, PhysicalLocatorSet::COLUMNS),
    (UcastMacsLocal::TABLE, UcastMacsLocal::COLUMNS),
    (UcastMacsRemote::TABLE, UcastMacsRemote::COLUMNS),
    (McastMacsLocal::TABLE, McastMacsLocal::COLUMNS),
    (McastMacsRemote::TABLE, McastMacsRemote::COLUMNS),
    (Tunnel::TABLE, Tunnel::COLUMNS),
    (LogicalBindingStats::TABLE, LogicalBindingStats::COLUMNS),
    (Manager::TABLE, Manager::COLUMNS),
];

/// Checks the switch's schema against everything we read and write; the
/// error lists every problem so an operator sees the whole gap at once.
pub fn check_schema(schema: &DatabaseSchema) -> Result<(), SchemaMismatch> {
    let mut problems = Vec::new();
    if schema.name != VTEP_DB {
        problems.push(format!("database is {:?}, not {VTEP_DB:?}", schema.name));
    }
    if schema.version < MIN_SCHEMA_VERSION {
        problems.push(format!(
            "schema version {} is older than the minimum {MIN_SCHEMA_VERSION}",
            schema.version
        ));
    }
    for (table, columns) in TABLES {
        let Some(t) = schema.tables.get(*table) else {
            problems.push(format!("missing table {table}"));
            continue;
        };
        for c in *columns {
            let role = match c.role {
                Use::Read => "read",
                Use::Written => "written",
                Use::IfPresent => continue,
            };
            match t.columns.get(c.name) {
                None => problems.push(format!(
                    "missing column {table}.{} ({}, {role})",
                    c.name, c.kind
                )),
                Some(cs) if !c.kind.accepts(&cs.ty) => problems.push(format!(
                    "column {table}.{} is {}, expected {} ({role})",
                    c.name,
                    describe(&cs.ty),
                    c.kind
                )),
                Some(_) => {}
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SchemaMismatch {
            db: schema.name.clone(),
            version: schema.version,
            problems,
        })
    }
}

/// Whether the switch can do source-node replication (`Logical_Switch:replication_mode`, schema 1.6.0+).
pub fn supports_replication_mode(schema: &DatabaseSchema) -> bool {
    schema
        .column(LogicalSwitch::TABLE, "replication_mode")
        .is_some_and(|c| Kind::Optional(S).accepts(&c.ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::vtep_schema;
    use serde_json::Value;

    #[test]
    fn installed_schema_is_accepted() {
        let s = vtep_schema();
        check_schema(&s).unwrap();
        assert!(supports_replication_mode(&s));
    }

    #[test]
    fn old_schema_is_refused_with_every_problem() {
        let mut v: Value =
            serde_json::from_str(include_str!("../tests/data/vtep.ovsschema")).unwrap();
        v["version"] = "1.2.0".into();
        let tables = v["tables"].as_object_mut().unwrap();
        tables["Tunnel"]["columns"]
            .as_object_mut()
            .unwrap()
            .remove("bfd_params");
        tables.remove("Mcast_Macs_Remote");
        tables["Logical_Switch"]["columns"]["tunnel_key"]["type"] = "string".into();
        tables["Logical_Switch"]["columns"]
            .as_object_mut()
            .unwrap()
            .remove("replication_mode");
        let s = DatabaseSchema::from_json(&v).unwrap();
        let e = check_schema(&s).unwrap_err();
        assert_eq!(e.problems.len(), 4, "{e}");
        let text = e.to_string();
        for needle in [
            "schema version 1.2.0 is older than the minimum 1.3.0",
            "missing column Tunnel.bfd_params (map string->string, written)",
            "missing table Mcast_Macs_Remote",
            "column Logical_Switch.tunnel_key is string [1..1], expected optional integer (written)",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text}");
        }
        assert!(!supports_replication_mode(&s));
    }

    #[test]
    fn typed_rows_from_replica_and_select() {
        let mut r = Replica::new(vtep_schema());
        let ls = "6b32a7aa-7854-4da3-a746-cfd068ceb71b";
        let port = "fd58d1be-0fc3-49fb-8267-95a3b2ae691e";
        r.apply_update2(&serde_json::json!({
            "Logical_Switch": {ls: {"initial": {"name": "ls0", "tunnel_key": 5000}}},
            "Physical_Port": {port: {"initial": {"name": "p1", "vlan_bindings": ["map", [[0, ["uuid", ls]]]]}}}
        }))
        .unwrap();
        let switches = LogicalSwitch::all(&r).unwrap();
        assert_eq!(switches[0].name, "ls0");
        assert_eq!(switches[0].tunnel_key, Some(5000));
        assert_eq!(switches[0].description, "");
        assert_eq!(switches[0].replication_mode, None);
        let ports = PhysicalPort::all(&r).unwrap();
        assert_eq!(
            ports[0].vlan_bindings,
            BTreeMap::from([(0, ls.parse().unwrap())])
        );
        // A row with a wrong value type is an error naming the column.
        let bad = Row::from([("tunnel_key".to_owned(), Datum::from("x"))]);
        let e = LogicalSwitch::from_row(Uuid(1), &bad).unwrap_err();
        assert_eq!(e.column, "tunnel_key");
        let bad = Row::from([(
            "vlan_bindings".to_owned(),
            Datum::map([(Atom::Integer(5000), Atom::Uuid(Uuid(1)))]),
        )]);
        assert!(PhysicalPort::from_row(Uuid(1), &bad).is_err());
    }

    #[test]
    fn round_trip_logical_switch_row() {
        let ls = LogicalSwitch {
            uuid: Uuid(7),
            name: "ls".into(),
            description: "d".into(),
            tunnel_key: Some(10),
            replication_mode: Some("source_node".into()),
        };
        assert_eq!(LogicalSwitch::from_row(Uuid(7), &ls.to_row()).unwrap(), ls);
    }
}
