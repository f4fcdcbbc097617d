//! Database schemas as `get_schema` reports them (RFC 7047 §3.2), so that we
//! can check what a switch really supports before writing to it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;
use thiserror::Error;

/// Why a schema document could not be understood.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SchemaError {
    /// A member is missing or has the wrong JSON type.
    #[error("schema: {0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> SchemaError {
    SchemaError::Invalid(s.into())
}

/// A schema version `x.y.z` (RFC 7047 §3.1), ordered numerically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl FromStr for Version {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<u32> = s
            .split('.')
            .map(|p| p.parse().map_err(|_| invalid(format!("bad version {s:?}"))))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [a, b, c] => Ok(Version(a, b, c)),
            _ => Err(invalid(format!("bad version {s:?}"))),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The atomic types of RFC 7047 §3.2 `<atomic-type>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtomicType {
    /// 64-bit signed integer.
    Integer,
    /// Double.
    Real,
    /// Boolean.
    Boolean,
    /// UTF-8 string.
    String,
    /// Row reference.
    Uuid,
}

impl FromStr for AtomicType {
    type Err = SchemaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "integer" => AtomicType::Integer,
            "real" => AtomicType::Real,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return Err(invalid(format!("unknown atomic type {s:?}"))),
        })
    }
}

impl fmt::Display for AtomicType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AtomicType::Integer => "integer",
            AtomicType::Real => "real",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        })
    }
}

/// A key or value type with its constraints (`<base-type>`).
#[derive(Clone, Debug, PartialEq)]
pub struct BaseType {
    /// The atomic type.
    pub atomic: AtomicType,
    /// For UUIDs: the table referred to.
    pub ref_table: Option<String>,
    /// Allowed values, when restricted to an enumeration (kept as JSON atoms).
    pub enum_values: Option<Vec<Value>>,
}

impl BaseType {
    fn from_json(v: &Value) -> Result<Self, SchemaError> {
        match v {
            Value::String(s) => Ok(BaseType {
                atomic: s.parse()?,
                ref_table: None,
                enum_values: None,
            }),
            Value::Object(o) => {
                let atomic = o
                    .get("type")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("base type without type: {v}")))?
                    .parse()?;
                let ref_table = o.get("refTable").and_then(Value::as_str).map(str::to_owned);
                let enum_values = o.get("enum").map(|e| match e {
                    Value::Array(a) if a.len() == 2 && a[0] == "set" => {
                        a[1].as_array().cloned().unwrap_or_default()
                    }
                    other => vec![other.clone()],
                });
                Ok(BaseType {
                    atomic,
                    ref_table,
                    enum_values,
                })
            }
            _ => Err(invalid(format!("bad base type {v}"))),
        }
    }
}

/// Upper bound on the number of elements in a column's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Max {
    /// At most this many.
    Limited(u64),
    /// No limit.
    Unlimited,
}

/// A column type (`<type>`): key, optional value (a map), and cardinality.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnType {
    /// Key type (or the element type of a set / scalar).
    pub key: BaseType,
    /// Value type when the column is a map.
    pub value: Option<BaseType>,
    /// Minimum number of elements (0 or 1).
    pub min: u64,
    /// Maximum number of elements.
    pub max: Max,
}

impl ColumnType {
    fn from_json(v: &Value) -> Result<Self, SchemaError> {
        if let Value::String(_) = v {
            return Ok(ColumnType {
                key: BaseType::from_json(v)?,
                value: None,
                min: 1,
                max: Max::Limited(1),
            });
        }
        let o = v
            .as_object()
            .ok_or_else(|| invalid(format!("bad column type {v}")))?;
        let key = BaseType::from_json(
            o.get("key")
                .ok_or_else(|| invalid(format!("type without key: {v}")))?,
        )?;
        let value = o.get("value").map(BaseType::from_json).transpose()?;
        let min = match o.get("min") {
            None => 1,
            Some(m) => m
                .as_u64()
                .ok_or_else(|| invalid(format!("bad min in {v}")))?,
        };
        let max = match o.get("max") {
            None => Max::Limited(1),
            Some(Value::String(s)) if s == "unlimited" => Max::Unlimited,
            Some(m) => Max::Limited(
                m.as_u64()
                    .ok_or_else(|| invalid(format!("bad max in {v}")))?,
            ),
        };
        Ok(ColumnType {
            key,
            value,
            min,
            max,
        })
    }

    /// True for a column holding exactly one atom.
    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == Max::Limited(1)
    }

    /// True for a map column.
    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSchema {
    /// Its type.
    pub ty: ColumnType,
    /// Not persisted (status columns written by the switch itself).
    pub ephemeral: bool,
    /// False when the column can only be set at insert time.
    pub mutable: bool,
}

/// One table of a database.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    /// Columns by name (without the implicit `_uuid` and `_version`).
    pub columns: BTreeMap<String, ColumnSchema>,
    /// Rows not referenced from a root table are garbage collected unless this is set.
    pub is_root: bool,
    /// Column sets that must be unique.
    pub indexes: Vec<Vec<String>>,
}

/// A database schema as reported by `get_schema`.
#[derive(Clone, Debug, PartialEq)]
pub struct DatabaseSchema {
    /// Database name, e.g. `hardware_vtep`.
    pub name: String,
    /// Schema version.
    pub version: Version,
    /// Tables by name.
    pub tables: BTreeMap<String, TableSchema>,
}

impl DatabaseSchema {
    /// Parses the JSON `<database-schema>`.
    pub fn from_json(v: &Value) -> Result<Self, SchemaError> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no name"))?
            .to_owned();
        let version = v
            .get("version")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no version"))?
            .parse()?;
        let tables_json = v
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("no tables"))?;
        let mut tables = BTreeMap::new();
        for (tname, t) in tables_json {
            let cols_json = t
                .get("columns")
                .and_then(Value::as_object)
                .ok_or_else(|| invalid(format!("table {tname} has no columns")))?;
            let mut columns = BTreeMap::new();
            for (cname, c) in cols_json {
                let ty = ColumnType::from_json(
                    c.get("type")
                        .ok_or_else(|| invalid(format!("{tname}.{cname} has no type")))?,
                )
                .map_err(|e| invalid(format!("{tname}.{cname}: {e}")))?;
                let ephemeral = c.get("ephemeral").and_then(Value::as_bool).unwrap_or(false);
                let mutable = c.get("mutable").and_then(Value::as_bool).unwrap_or(true);
                columns.insert(
                    cname.clone(),
                    ColumnSchema {
                        ty,
                        ephemeral,
                        mutable,
                    },
                );
            }
            let is_root = t.get("isRoot").and_then(Value::as_bool).unwrap_or(false);
            let indexes = t
                .get("indexes")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_array)
                        .map(|cols| {
                            cols.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_owned)
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            tables.insert(
                tname.clone(),
                TableSchema {
                    columns,
                    is_root,
                    indexes,
                },
            );
        }
        Ok(DatabaseSchema {
            name,
            version,
            tables,
        })
    }

    /// The type of `table.column`, if both exist.
    pub fn column(&self, table: &str, column: &str) -> Option<&ColumnSchema> {
        self.tables.get(table)?.columns.get(column)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The schema shipped by openvswitch-vtep 3.1.0 on Debian 12, as a test fixture.
    pub(crate) fn vtep_schema() -> DatabaseSchema {
        let text = include_str!("../tests/data/vtep.ovsschema");
        DatabaseSchema::from_json(&serde_json::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn parses_the_vtep_schema() {
        let s = vtep_schema();
        assert_eq!(s.name, "hardware_vtep");
        assert_eq!(s.version, Version(1, 7, 0));
        let vb = &s.column("Physical_Port", "vlan_bindings").unwrap().ty;
        assert!(vb.is_map());
        assert_eq!(vb.key.atomic, AtomicType::Integer);
        assert_eq!(
            vb.value.as_ref().unwrap().ref_table.as_deref(),
            Some("Logical_Switch")
        );
        let tk = &s.column("Logical_Switch", "tunnel_key").unwrap().ty;
        assert_eq!((tk.min, tk.max), (0, Max::Limited(1)));
        assert!(s.column("Physical_Switch", "name").unwrap().ty.is_scalar());
        assert!(!s.column("Physical_Locator", "dst_ip").unwrap().mutable);
        assert!(s.column("Tunnel", "bfd_status").unwrap().ephemeral);
        assert!(s.tables["Logical_Switch"].is_root);
        assert_eq!(
            s.tables["Physical_Switch"].indexes,
            vec![vec!["name".to_string()]]
        );
        let rm = &s
            .column("Logical_Switch", "replication_mode")
            .unwrap()
            .ty
            .key;
        assert_eq!(rm.enum_values.as_ref().unwrap().len(), 2);
    }

    #[test]
    fn versions_order_numerically() {
        assert!("1.10.0".parse::<Version>().unwrap() > "1.9.9".parse().unwrap());
        assert!("1.2".parse::<Version>().is_err());
        assert!("a.b.c".parse::<Version>().is_err());
    }

    #[test]
    fn bad_schema_is_an_error() {
        for text in [
            r#"{"version":"1.0.0","tables":{}}"#,
            r#"{"name":"x","version":"1.0.0","tables":{"T":{"columns":{"c":{"type":"blob"}}}}}"#,
            r#"{"name":"x","version":"1.0.0","tables":{"T":{"columns":{"c":{"type":{"key":"string","max":-1}}}}}}"#,
        ] {
            assert!(
                DatabaseSchema::from_json(&serde_json::from_str(text).unwrap()).is_err(),
                "{text}"
            );
        }
    }
}
