//! Transaction operations (RFC 7047 §5.2) as typed builders, and parsing of
//! `transact` results into per-operation outcomes or one clear error.

use std::fmt;

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::datum::{Datum, DatumError, Row, Uuid, row_from_json, row_to_json};

/// A comparison in a `where` clause (RFC 7047 §5.1 `<condition>`).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// Column compared.
    pub column: String,
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`, `includes` or `excludes`.
    pub function: &'static str,
    /// Value compared against.
    pub value: Datum,
}

impl Condition {
    /// `column == value`.
    pub fn eq(column: &str, value: impl Into<Datum>) -> Self {
        Self {
            column: column.into(),
            function: "==",
            value: value.into(),
        }
    }
    /// `column != value`.
    pub fn ne(column: &str, value: impl Into<Datum>) -> Self {
        Self {
            column: column.into(),
            function: "!=",
            value: value.into(),
        }
    }
    /// `column includes value` (set/map containment).
    pub fn includes(column: &str, value: impl Into<Datum>) -> Self {
        Self {
            column: column.into(),
            function: "includes",
            value: value.into(),
        }
    }
    /// `_uuid == uuid`: the usual way to address one row.
    pub fn uuid(uuid: Uuid) -> Self {
        Self::eq("_uuid", uuid)
    }
    fn to_json(&self) -> Value {
        json!([self.column, self.function, self.value.to_json()])
    }
}

/// A change to one column in a `mutate` operation (RFC 7047 §5.1 `<mutation>`).
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// Column changed.
    pub column: String,
    /// `+=`, `-=`, `*=`, `/=`, `%=`, `insert` or `delete`.
    pub mutator: &'static str,
    /// Operand.
    pub value: Datum,
}

impl Mutation {
    /// Adds elements to a set or pairs to a map.
    pub fn insert(column: &str, value: Datum) -> Self {
        Self {
            column: column.into(),
            mutator: "insert",
            value,
        }
    }
    /// Removes elements from a set, or keys/pairs from a map.
    pub fn delete(column: &str, value: Datum) -> Self {
        Self {
            column: column.into(),
            mutator: "delete",
            value,
        }
    }
    /// Integer arithmetic on a column.
    pub fn add(column: &str, value: i64) -> Self {
        Self {
            column: column.into(),
            mutator: "+=",
            value: value.into(),
        }
    }
    fn to_json(&self) -> Value {
        json!([self.column, self.mutator, self.value.to_json()])
    }
}

/// The `until` test of a `wait` operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitUntil {
    /// Wait until the selected rows equal the given rows.
    Equal,
    /// Wait until they differ.
    NotEqual,
}

/// One operation of a `transact` request.
#[derive(Clone, Debug, PartialEq)]
pub enum Operation {
    /// §5.2.1: insert a row, optionally naming its UUID for later operations.
    Insert {
        /// Table name.
        table: String,
        /// Initial column values.
        row: Row,
        /// Name usable as `["named-uuid", name]` in the same transaction.
        uuid_name: Option<String>,
    },
    /// §5.2.2: read rows.
    Select {
        /// Table name.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
        /// Which columns (`None` = all).
        columns: Option<Vec<String>>,
    },
    /// §5.2.3: overwrite columns of matching rows.
    Update {
        /// Table name.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
        /// New column values.
        row: Row,
    },
    /// §5.2.4: change columns of matching rows relative to their current value.
    Mutate {
        /// Table name.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
        /// Changes applied in order.
        mutations: Vec<Mutation>,
    },
    /// §5.2.5: delete matching rows.
    Delete {
        /// Table name.
        table: String,
        /// Which rows.
        conditions: Vec<Condition>,
    },
    /// §5.2.6: abort the transaction unless the rows are (or stop being) as given.
    Wait {
        /// Table name.
        table: String,
        /// Milliseconds to wait; `Some(0)` means check once.
        timeout_ms: Option<u64>,
        /// Which rows.
        conditions: Vec<Condition>,
        /// Columns compared.
        columns: Vec<String>,
        /// Equal or not-equal.
        until: WaitUntil,
        /// Expected rows.
        rows: Vec<Row>,
    },
    /// §5.2.7: make the commit durable (or not).
    Commit {
        /// Wait for the write to reach disk.
        durable: bool,
    },
    /// §5.2.8: abort on purpose (useful to test a transaction).
    Abort,
    /// §5.2.9: a comment written to the server's log.
    Comment(String),
    /// §5.2.10: abort unless we hold this lock.
    Assert {
        /// Lock name.
        lock: String,
    },
}

impl Operation {
    /// An insert without a UUID name.
    pub fn insert(table: &str, row: Row) -> Self {
        Operation::Insert {
            table: table.into(),
            row,
            uuid_name: None,
        }
    }
    /// An insert whose UUID later operations refer to as `["named-uuid", name]`.
    pub fn insert_named(table: &str, row: Row, name: &str) -> Self {
        Operation::Insert {
            table: table.into(),
            row,
            uuid_name: Some(name.into()),
        }
    }
    /// A select of all columns.
    pub fn select(table: &str, conditions: Vec<Condition>) -> Self {
        Operation::Select {
            table: table.into(),
            conditions,
            columns: None,
        }
    }
    /// An update.
    pub fn update(table: &str, conditions: Vec<Condition>, row: Row) -> Self {
        Operation::Update {
            table: table.into(),
            conditions,
            row,
        }
    }
    /// A mutate.
    pub fn mutate(table: &str, conditions: Vec<Condition>, mutations: Vec<Mutation>) -> Self {
        Operation::Mutate {
            table: table.into(),
            conditions,
            mutations,
        }
    }
    /// A delete.
    pub fn delete(table: &str, conditions: Vec<Condition>) -> Self {
        Operation::Delete {
            table: table.into(),
            conditions,
        }
    }
    /// A wait with the given timeout.
    pub fn wait(
        table: &str,
        timeout_ms: Option<u64>,
        conditions: Vec<Condition>,
        columns: Vec<String>,
        until: WaitUntil,
        rows: Vec<Row>,
    ) -> Self {
        Operation::Wait {
            table: table.into(),
            timeout_ms,
            conditions,
            columns,
            until,
            rows,
        }
    }

    /// The JSON object of this operation.
    pub fn to_json(&self) -> Value {
        let conds = |c: &[Condition]| Value::Array(c.iter().map(Condition::to_json).collect());
        match self {
            Operation::Insert {
                table,
                row,
                uuid_name,
            } => {
                let mut o = json!({"op": "insert", "table": table, "row": row_to_json(row)});
                if let Some(n) = uuid_name {
                    o["uuid-name"] = json!(n);
                }
                o
            }
            Operation::Select {
                table,
                conditions,
                columns,
            } => {
                let mut o = json!({"op": "select", "table": table, "where": conds(conditions)});
                if let Some(c) = columns {
                    o["columns"] = json!(c);
                }
                o
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => json!({
                "op": "update", "table": table, "where": conds(conditions), "row": row_to_json(row)
            }),
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => json!({
                "op": "mutate", "table": table, "where": conds(conditions),
                "mutations": mutations.iter().map(Mutation::to_json).collect::<Vec<_>>()
            }),
            Operation::Delete { table, conditions } => {
                json!({"op": "delete", "table": table, "where": conds(conditions)})
            }
            Operation::Wait {
                table,
                timeout_ms,
                conditions,
                columns,
                until,
                rows,
            } => {
                let mut o = json!({
                    "op": "wait", "table": table, "where": conds(conditions), "columns": columns,
                    "until": match until { WaitUntil::Equal => "==", WaitUntil::NotEqual => "!=" },
                    "rows": rows.iter().map(row_to_json).collect::<Vec<_>>()
                });
                if let Some(t) = timeout_ms {
                    o["timeout"] = json!(t);
                }
                o
            }
            Operation::Commit { durable } => json!({"op": "commit", "durable": durable}),
            Operation::Abort => json!({"op": "abort"}),
            Operation::Comment(c) => json!({"op": "comment", "comment": c}),
            Operation::Assert { lock } => json!({"op": "assert", "lock": lock}),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::Insert {
                table,
                uuid_name: Some(n),
                ..
            } => write!(f, "insert into {table} as {n}"),
            Operation::Insert { table, .. } => write!(f, "insert into {table}"),
            Operation::Select { table, .. } => write!(f, "select from {table}"),
            Operation::Update { table, .. } => write!(f, "update {table}"),
            Operation::Mutate { table, .. } => write!(f, "mutate {table}"),
            Operation::Delete { table, .. } => write!(f, "delete from {table}"),
            Operation::Wait { table, .. } => write!(f, "wait on {table}"),
            Operation::Commit { .. } => write!(f, "commit"),
            Operation::Abort => write!(f, "abort"),
            Operation::Comment(_) => write!(f, "comment"),
            Operation::Assert { lock } => write!(f, "assert lock {lock}"),
        }
    }
}

/// The `params` of a `transact` request: the database name then the operations.
pub fn transact_params(db: &str, ops: &[Operation]) -> Value {
    let mut p = vec![json!(db)];
    p.extend(ops.iter().map(Operation::to_json));
    Value::Array(p)
}

/// What one successful operation returned.
#[derive(Clone, Debug, PartialEq)]
pub enum OpResult {
    /// An insert: the UUID the server gave the row.
    Inserted(Uuid),
    /// A select: the rows (with `_uuid` and `_version` when selected).
    Rows(Vec<Row>),
    /// An update, mutate or delete: how many rows matched.
    Count(u64),
    /// Operations that return nothing (wait, commit, comment, assert).
    Empty,
}

impl OpResult {
    /// The inserted UUID, for the common "insert then use the UUID" case.
    pub fn uuid(&self) -> Option<Uuid> {
        match self {
            OpResult::Inserted(u) => Some(*u),
            _ => None,
        }
    }
}

/// Why a transaction did not commit.
#[derive(Debug, Error)]
pub enum TransactError {
    /// The server ran the operations but one failed; nothing was committed.
    #[error("operation {index} ({op}) failed: {error}{}", details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OpFailed {
        /// Zero-based index of the failing operation in the request.
        index: usize,
        /// What the operation was, e.g. "insert into Logical_Switch as ls".
        op: String,
        /// The server's `error` string, e.g. "constraint violation".
        error: String,
        /// The server's `details`, when given.
        details: Option<String>,
    },
    /// Every operation succeeded but the commit itself failed (e.g. a
    /// referential-integrity or index violation found at commit time).
    #[error("transaction commit failed: {error}{}", details.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    CommitFailed {
        /// The server's `error` string.
        error: String,
        /// The server's `details`, when given.
        details: Option<String>,
    },
    /// The request as a whole was rejected (bad syntax, unknown database).
    #[error("transact request rejected: {0}")]
    Rejected(String),
    /// The reply does not have the RFC 7047 shape.
    #[error("malformed transact reply: {0}")]
    Malformed(String),
    /// A row in a reply could not be parsed.
    #[error("malformed row in transact reply: {0}")]
    BadRow(#[from] DatumError),
}

fn error_of(v: &Value) -> Option<(String, Option<String>)> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    let error = e
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| e.to_string());
    let details = v.get("details").and_then(Value::as_str).map(str::to_owned);
    Some((error, details))
}

/// Turns a `transact` result array into per-operation results, or the first error.
///
/// RFC 7047 §4.1.3: the result has one element per operation; a failing
/// operation has an `error` member and those after it may be null; a commit
/// failure appends one extra error element after the operations.
pub fn parse_transact_result(
    ops: &[Operation],
    result: &Value,
) -> Result<Vec<OpResult>, TransactError> {
    let items = result
        .as_array()
        .ok_or_else(|| TransactError::Malformed(result.to_string()))?;
    for (index, item) in items.iter().enumerate() {
        if let Some((error, details)) = error_of(item) {
            return Err(match ops.get(index) {
                Some(op) => TransactError::OpFailed {
                    index,
                    op: op.to_string(),
                    error,
                    details,
                },
                None => TransactError::CommitFailed { error, details },
            });
        }
    }
    if items.len() < ops.len() {
        return Err(TransactError::Malformed(format!(
            "{} results for {} operations",
            items.len(),
            ops.len()
        )));
    }
    ops.iter()
        .zip(items)
        .map(|(op, item)| {
            let obj: &Map<String, Value> = item
                .as_object()
                .ok_or_else(|| TransactError::Malformed(item.to_string()))?;
            Ok(match op {
                Operation::Insert { .. } => {
                    let u = obj
                        .get("uuid")
                        .and_then(|u| crate::datum::Atom::from_json(u).ok())
                        .and_then(|a| a.as_uuid())
                        .ok_or_else(|| TransactError::Malformed(item.to_string()))?;
                    OpResult::Inserted(u)
                }
                Operation::Select { .. } => {
                    let rows = obj
                        .get("rows")
                        .and_then(Value::as_array)
                        .ok_or_else(|| TransactError::Malformed(item.to_string()))?;
                    OpResult::Rows(rows.iter().map(row_from_json).collect::<Result<_, _>>()?)
                }
                Operation::Update { .. } | Operation::Mutate { .. } | Operation::Delete { .. } => {
                    OpResult::Count(obj.get("count").and_then(Value::as_u64).unwrap_or(0))
                }
                _ => OpResult::Empty,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datum::Datum;

    fn row(pairs: &[(&str, Datum)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn builds_rfc_shapes() {
        let ops = vec![
            Operation::insert_named("Logical_Switch", row(&[("name", "ls0".into())]), "ls"),
            Operation::mutate(
                "Physical_Port",
                vec![Condition::eq("name", "p1")],
                vec![Mutation::insert(
                    "vlan_bindings",
                    Datum::map([(
                        crate::datum::Atom::Integer(7),
                        crate::datum::Atom::NamedUuid("ls".into()),
                    )]),
                )],
            ),
            Operation::wait(
                "Logical_Switch",
                Some(0),
                vec![],
                vec!["name".into()],
                WaitUntil::Equal,
                vec![],
            ),
        ];
        assert_eq!(
            transact_params("hardware_vtep", &ops),
            json!(["hardware_vtep",
                {"op":"insert","table":"Logical_Switch","row":{"name":"ls0"},"uuid-name":"ls"},
                {"op":"mutate","table":"Physical_Port","where":[["name","==","p1"]],
                 "mutations":[["vlan_bindings","insert",["map",[[7,["named-uuid","ls"]]]]]]},
                {"op":"wait","table":"Logical_Switch","where":[],"columns":["name"],"until":"==","rows":[],"timeout":0}
            ])
        );
    }

    // Captured from ovsdb-server 3.1.0: two inserts of the same indexed name.
    #[test]
    fn commit_failure_is_reported() {
        let ops = vec![
            Operation::insert("Logical_Switch", row(&[("name", "ls".into())])),
            Operation::insert("Logical_Switch", row(&[("name", "ls".into())])),
        ];
        let reply: Value = serde_json::from_str(r#"[{"uuid":["uuid","3d929431-c93b-4c9b-b4f7-e5b1fda3664d"]},{"uuid":["uuid","9213bc43-0582-47b1-bbfd-4f3e781a5142"]},{"details":"Transaction causes multiple rows in \"Logical_Switch\" table to have identical values (ls) for index on column \"name\".","error":"constraint violation"}]"#).unwrap();
        let e = parse_transact_result(&ops, &reply).unwrap_err();
        assert!(
            matches!(e, TransactError::CommitFailed { ref error, .. } if error == "constraint violation"),
            "{e}"
        );
    }

    // Captured from ovsdb-server 3.1.0: a wait with timeout 0 that does not hold.
    #[test]
    fn op_failure_names_the_op() {
        let ops = vec![
            Operation::Comment("x".into()),
            Operation::wait(
                "Logical_Switch",
                Some(0),
                vec![],
                vec!["name".into()],
                WaitUntil::Equal,
                vec![],
            ),
        ];
        let reply = json!([{}, {"details":"\"where\" clause test failed","error":"timed out"}]);
        let e = parse_transact_result(&ops, &reply).unwrap_err();
        assert_eq!(
            e.to_string(),
            "operation 1 (wait on Logical_Switch) failed: timed out: \"where\" clause test failed"
        );
    }

    #[test]
    fn results_are_typed() {
        let ops = vec![
            Operation::insert("Logical_Switch", Row::new()),
            Operation::select("Logical_Switch", vec![]),
            Operation::delete("Logical_Switch", vec![]),
        ];
        let reply = json!([
            {"uuid":["uuid","3d929431-c93b-4c9b-b4f7-e5b1fda3664d"]},
            {"rows":[{"name":"a","tunnel_key":["set",[]]}]},
            {"count":2}
        ]);
        let r = parse_transact_result(&ops, &reply).unwrap();
        assert_eq!(
            r[0].uuid().unwrap().to_string(),
            "3d929431-c93b-4c9b-b4f7-e5b1fda3664d"
        );
        assert!(matches!(&r[1], OpResult::Rows(rows) if rows.len() == 1));
        assert_eq!(r[2], OpResult::Count(2));
        assert!(parse_transact_result(&ops, &json!([{}])).is_err());
        assert!(parse_transact_result(&ops, &json!({})).is_err());
    }
}
