//! The OVSDB data model of RFC 7047 §5.1: atoms, sets, maps and UUIDs,
//! with their JSON notation.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};
use thiserror::Error;

/// Why a JSON value is not a valid OVSDB atom or datum.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DatumError {
    /// A UUID string that is not in 8-4-4-4-12 hex form.
    #[error("invalid UUID {0:?}")]
    BadUuid(String),
    /// A JSON value that is not any OVSDB notation.
    #[error("not an OVSDB value: {0}")]
    BadNotation(String),
    /// A datum of the wrong kind for the column it was read from.
    #[error("column {column}: expected {expected}, found {found}")]
    WrongType {
        /// Column name.
        column: String,
        /// What the typed reader wanted.
        expected: &'static str,
        /// The JSON that was there.
        found: String,
    },
}

/// A row UUID; kept as a number so comparisons and hashing are cheap.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(pub u128);

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = format!("{:032x}", self.0);
        write!(
            f,
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = DatumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let dashes_ok = b.len() == 36 && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-');
        let hex: String = s.chars().filter(|&c| c != '-').collect();
        if !dashes_ok || hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(DatumError::BadUuid(s.to_owned()));
        }
        u128::from_str_radix(&hex, 16)
            .map(Uuid)
            .map_err(|_| DatumError::BadUuid(s.to_owned()))
    }
}

/// One OVSDB atom (RFC 7047 §5.1 `<atom>`).
#[derive(Clone, Debug)]
pub enum Atom {
    /// `<integer>`
    Integer(i64),
    /// `<real>`
    Real(f64),
    /// `<boolean>`
    Boolean(bool),
    /// `<string>`
    String(String),
    /// `["uuid", ...]`: a reference to an existing row.
    Uuid(Uuid),
    /// `["named-uuid", ...]`: a reference to a row inserted in the same transaction.
    NamedUuid(String),
}

impl Atom {
    fn rank(&self) -> u8 {
        match self {
            Atom::Integer(_) => 0,
            Atom::Real(_) => 1,
            Atom::Boolean(_) => 2,
            Atom::String(_) => 3,
            Atom::Uuid(_) => 4,
            Atom::NamedUuid(_) => 5,
        }
    }

    /// Parses the JSON notation of an atom.
    pub fn from_json(v: &Value) -> Result<Self, DatumError> {
        match v {
            Value::Bool(b) => Ok(Atom::Boolean(*b)),
            Value::String(s) => Ok(Atom::String(s.clone())),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Ok(Atom::Integer(i))
                } else {
                    n.as_f64()
                        .map(Atom::Real)
                        .ok_or_else(|| DatumError::BadNotation(v.to_string()))
                }
            }
            Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
                (Value::String(tag), Value::String(s)) if tag == "uuid" => {
                    Ok(Atom::Uuid(s.parse()?))
                }
                (Value::String(tag), Value::String(s)) if tag == "named-uuid" => {
                    Ok(Atom::NamedUuid(s.clone()))
                }
                _ => Err(DatumError::BadNotation(v.to_string())),
            },
            _ => Err(DatumError::BadNotation(v.to_string())),
        }
    }

    /// The JSON notation of this atom.
    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => json!(i),
            Atom::Real(r) => json!(r),
            Atom::Boolean(b) => json!(b),
            Atom::String(s) => json!(s),
            Atom::Uuid(u) => json!(["uuid", u.to_string()]),
            Atom::NamedUuid(n) => json!(["named-uuid", n]),
        }
    }

    /// The string, if this is a string atom.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer atom.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The UUID, if this is a UUID atom.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean atom.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }
}

// Total order so atoms can live in sets and be map keys; reals use total_cmp
// so NaN cannot break the ordering.
impl Ord for Atom {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Atom::Integer(a), Atom::Integer(b)) => a.cmp(b),
            (Atom::Real(a), Atom::Real(b)) => a.total_cmp(b),
            (Atom::Boolean(a), Atom::Boolean(b)) => a.cmp(b),
            (Atom::String(a), Atom::String(b)) => a.cmp(b),
            (Atom::Uuid(a), Atom::Uuid(b)) => a.cmp(b),
            (Atom::NamedUuid(a), Atom::NamedUuid(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}
impl PartialOrd for Atom {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Atom {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Atom {}

impl From<&str> for Atom {
    fn from(s: &str) -> Self {
        Atom::String(s.to_owned())
    }
}
impl From<String> for Atom {
    fn from(s: String) -> Self {
        Atom::String(s)
    }
}
impl From<i64> for Atom {
    fn from(i: i64) -> Self {
        Atom::Integer(i)
    }
}
impl From<bool> for Atom {
    fn from(b: bool) -> Self {
        Atom::Boolean(b)
    }
}
impl From<Uuid> for Atom {
    fn from(u: Uuid) -> Self {
        Atom::Uuid(u)
    }
}

/// A column value (RFC 7047 §5.1 `<value>`): a single atom, a set or a map.
///
/// A single atom and a one-element set mean the same thing on the wire; use
/// [`Datum::to_set`] when comparing values whose notation may differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datum {
    /// A bare atom.
    Atom(Atom),
    /// `["set", [...]]`
    Set(BTreeSet<Atom>),
    /// `["map", [[k, v], ...]]`
    Map(BTreeMap<Atom, Atom>),
}

impl Datum {
    /// The empty set, the value of an absent optional column.
    pub fn empty_set() -> Self {
        Datum::Set(BTreeSet::new())
    }

    /// The empty map.
    pub fn empty_map() -> Self {
        Datum::Map(BTreeMap::new())
    }

    /// A set of the given atoms.
    pub fn set<I: IntoIterator<Item = A>, A: Into<Atom>>(items: I) -> Self {
        Datum::Set(items.into_iter().map(Into::into).collect())
    }

    /// A map of the given pairs.
    pub fn map<I: IntoIterator<Item = (K, V)>, K: Into<Atom>, V: Into<Atom>>(items: I) -> Self {
        Datum::Map(
            items
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// An optional value: an empty set for `None`, the atom for `Some`.
    pub fn optional<A: Into<Atom>>(v: Option<A>) -> Self {
        match v {
            Some(a) => Datum::Atom(a.into()),
            None => Datum::empty_set(),
        }
    }

    /// Parses the JSON notation of a datum.
    pub fn from_json(v: &Value) -> Result<Self, DatumError> {
        if let Value::Array(a) = v {
            if a.len() == 2 {
                if let (Value::String(tag), Value::Array(items)) = (&a[0], &a[1]) {
                    match tag.as_str() {
                        "set" => {
                            return items
                                .iter()
                                .map(Atom::from_json)
                                .collect::<Result<_, _>>()
                                .map(Datum::Set);
                        }
                        "map" => {
                            let mut m = BTreeMap::new();
                            for pair in items {
                                match pair {
                                    Value::Array(kv) if kv.len() == 2 => {
                                        m.insert(
                                            Atom::from_json(&kv[0])?,
                                            Atom::from_json(&kv[1])?,
                                        );
                                    }
                                    _ => return Err(DatumError::BadNotation(pair.to_string())),
                                }
                            }
                            return Ok(Datum::Map(m));
                        }
                        _ => {}
                    }
                }
            }
        }
        Atom::from_json(v).map(Datum::Atom)
    }

    /// The JSON notation of this datum.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Atom(a) => a.to_json(),
            Datum::Set(s) => json!(["set", s.iter().map(Atom::to_json).collect::<Vec<_>>()]),
            Datum::Map(m) => json!([
                "map",
                m.iter()
                    .map(|(k, v)| json!([k.to_json(), v.to_json()]))
                    .collect::<Vec<_>>()
            ]),
        }
    }

    /// The value seen as a set (a bare atom is a one-element set); `None` for maps.
    pub fn to_set(&self) -> Option<BTreeSet<Atom>> {
        match self {
            Datum::Atom(a) => Some(BTreeSet::from([a.clone()])),
            Datum::Set(s) => Some(s.clone()),
            Datum::Map(_) => None,
        }
    }

    /// The single atom of a scalar, or of a one-element set.
    pub fn as_atom(&self) -> Option<&Atom> {
        match self {
            Datum::Atom(a) => Some(a),
            Datum::Set(s) if s.len() == 1 => s.iter().next(),
            _ => None,
        }
    }

    /// The map, if this is a map (an empty set is also an empty map on the wire).
    pub fn as_map(&self) -> Option<BTreeMap<Atom, Atom>> {
        match self {
            Datum::Map(m) => Some(m.clone()),
            Datum::Set(s) if s.is_empty() => Some(BTreeMap::new()),
            _ => None,
        }
    }
}

impl From<Atom> for Datum {
    fn from(a: Atom) -> Self {
        Datum::Atom(a)
    }
}
impl From<&str> for Datum {
    fn from(s: &str) -> Self {
        Datum::Atom(s.into())
    }
}
impl From<String> for Datum {
    fn from(s: String) -> Self {
        Datum::Atom(s.into())
    }
}
impl From<i64> for Datum {
    fn from(i: i64) -> Self {
        Datum::Atom(i.into())
    }
}
impl From<bool> for Datum {
    fn from(b: bool) -> Self {
        Datum::Atom(b.into())
    }
}
impl From<Uuid> for Datum {
    fn from(u: Uuid) -> Self {
        Datum::Atom(u.into())
    }
}

/// Column values of one row, keyed by column name.
pub type Row = BTreeMap<String, Datum>;

/// Parses a JSON object of column values (`<row>`).
pub fn row_from_json(v: &Value) -> Result<Row, DatumError> {
    let obj = v
        .as_object()
        .ok_or_else(|| DatumError::BadNotation(v.to_string()))?;
    obj.iter()
        .map(|(k, v)| Ok((k.clone(), Datum::from_json(v)?)))
        .collect()
}

/// The JSON object notation of a row.
pub fn row_to_json(row: &Row) -> Value {
    Value::Object(row.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trip_and_errors() {
        let s = "0d796ea5-7adf-4312-8550-4b91c32d1603";
        let u: Uuid = s.parse().unwrap();
        assert_eq!(u.to_string(), s);
        assert!(
            "0d796ea5-7adf-4312-8550-4b91c32d160"
                .parse::<Uuid>()
                .is_err()
        );
        assert!(
            "0d796ea5x7adf-4312-8550-4b91c32d1603"
                .parse::<Uuid>()
                .is_err()
        );
        assert!(
            "0d796ea5-7adf-4312-8550-4b91c32d160g"
                .parse::<Uuid>()
                .is_err()
        );
        assert!(
            "+d796ea5-7adf-4312-8550-4b91c32d1603"
                .parse::<Uuid>()
                .is_err()
        );
    }

    #[test]
    fn datum_notations_round_trip() {
        for text in [
            r#"["set",[]]"#,
            r#"["map",[[0,["uuid","6b32a7aa-7854-4da3-a746-cfd068ceb71b"]]]]"#,
            r#"["uuid","83a6de69-0821-48cd-9d4e-8116bacf6256"]"#,
            r#"["named-uuid","row1"]"#,
            r#""198.18.0.1""#,
            "5000",
            "true",
            "1.5",
            r#"["set",["a","b"]]"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let d = Datum::from_json(&v).unwrap();
            assert_eq!(d.to_json(), v, "{text}");
        }
    }

    #[test]
    fn bad_notation_is_an_error() {
        for text in [
            r#"["uuid","nope"]"#,
            r#"["map",[[1]]]"#,
            "null",
            r#"{"a":1}"#,
            r#"["set",[null]]"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert!(Datum::from_json(&v).is_err(), "{text}");
        }
    }

    #[test]
    fn atom_and_single_set_agree() {
        let a = Datum::from("x");
        let s = Datum::set(["x"]);
        assert_eq!(a.to_set(), s.to_set());
        assert_eq!(s.as_atom(), Some(&Atom::from("x")));
    }
}
