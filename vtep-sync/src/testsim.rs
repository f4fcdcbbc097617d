//! Test-only: executes a transaction against a replica the way ovsdb-server
//! would (RFC 7047 §5.2 operations, strong references, unique indexes,
//! garbage collection of unreferenced rows in non-root tables), so planner
//! unit tests can check that a plan converges. The real server is exercised
//! by `tests/reconciler.rs`; this only makes the logic tests fast.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::datum::{Atom, Datum, Row, Uuid, row_to_json};
use crate::ops::{Condition, Mutation, Operation, WaitUntil};
use crate::replica::Replica;

/// The value as a set or a map, so notations that mean the same compare equal.
fn norm(d: &Datum) -> Datum {
    match d.as_map() {
        Some(m) if !matches!(d, Datum::Set(s) if !s.is_empty()) => Datum::Map(m),
        _ => Datum::Set(d.to_set().unwrap_or_default()),
    }
}

fn resolve(d: &Datum, named: &BTreeMap<String, Uuid>) -> Result<Datum, String> {
    let a = |a: &Atom| match a {
        Atom::NamedUuid(n) => named
            .get(n)
            .map(|u| Atom::Uuid(*u))
            .ok_or_else(|| format!("unknown named-uuid {n}")),
        other => Ok(other.clone()),
    };
    Ok(match d {
        Datum::Atom(x) => Datum::Atom(a(x)?),
        Datum::Set(s) => Datum::Set(s.iter().map(a).collect::<Result<_, _>>()?),
        Datum::Map(m) => Datum::Map(
            m.iter()
                .map(|(k, v)| Ok((a(k)?, a(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn matching(r: &Replica, table: &str, conds: &[Condition]) -> Vec<Uuid> {
    r.table(table)
        .map(|(u, _)| *u)
        .filter(|u| {
            conds.iter().all(|c| {
                let v = if c.column == "_uuid" {
                    Datum::Atom(Atom::Uuid(*u))
                } else {
                    r.get(table, *u, &c.column).unwrap_or_else(Datum::empty_set)
                };
                let eq = norm(&v) == norm(&c.value);
                match c.function {
                    "==" => eq,
                    "!=" => !eq,
                    f => panic!("sim: condition {f} not supported"),
                }
            })
        })
        .collect()
}

fn put(r: &mut Replica, table: &str, uuid: Uuid, row: Option<&Row>) {
    let body = match row {
        Some(row) => json!({"new": row_to_json(row)}),
        None => json!({}),
    };
    let mut upd = serde_json::Map::new();
    upd.insert(table.to_owned(), json!({uuid.to_string(): body}));
    r.apply_update(&Value::Object(upd))
        .expect("sim: row fits schema");
}

fn full_row(r: &Replica, table: &str, uuid: Uuid) -> Row {
    let cols: Vec<String> = r.schema().tables[table].columns.keys().cloned().collect();
    cols.into_iter()
        .map(|c| {
            let v = r.get(table, uuid, &c).unwrap();
            (c, v)
        })
        .collect()
}

fn mutate(old: Datum, m: &Mutation) -> Datum {
    match (norm(&old), m.mutator, norm(&m.value)) {
        (Datum::Map(mut cur), "insert", Datum::Map(add)) => {
            for (k, v) in add {
                cur.entry(k).or_insert(v);
            }
            Datum::Map(cur)
        }
        (Datum::Map(mut cur), "delete", Datum::Set(keys)) => {
            for k in keys {
                cur.remove(&k);
            }
            Datum::Map(cur)
        }
        (Datum::Map(mut cur), "delete", Datum::Map(pairs)) => {
            for (k, v) in pairs {
                if cur.get(&k) == Some(&v) {
                    cur.remove(&k);
                }
            }
            Datum::Map(cur)
        }
        // An empty column normalises to an empty map whatever its type.
        (Datum::Map(cur), "insert", Datum::Set(add)) if cur.is_empty() => Datum::Set(add),
        (Datum::Map(cur), "delete", _) if cur.is_empty() => Datum::Map(cur),
        (Datum::Set(mut cur), "insert", Datum::Set(add)) => {
            cur.extend(add);
            Datum::Set(cur)
        }
        (Datum::Set(mut cur), "delete", Datum::Set(del)) => {
            for a in del {
                cur.remove(&a);
            }
            Datum::Set(cur)
        }
        (o, m, v) => panic!("sim: mutation {m} of {o:?} by {v:?} not supported"),
    }
}

fn refs_of(r: &Replica) -> Vec<(String, Uuid, String, Uuid)> {
    let mut out = Vec::new();
    for (tname, t) in &r.schema().tables {
        for (cname, c) in &t.columns {
            let key_ref = c.ty.key.ref_table.clone();
            let val_ref = c.ty.value.as_ref().and_then(|v| v.ref_table.clone());
            if key_ref.is_none() && val_ref.is_none() {
                continue;
            }
            for (u, row) in r.table(tname) {
                let Some(d) = row.get(cname) else { continue };
                let mut push = |target: &Option<String>, a: &Atom| {
                    if let (Some(t), Some(x)) = (target, a.as_uuid()) {
                        out.push((tname.clone(), *u, t.clone(), x));
                    }
                };
                match d {
                    Datum::Atom(a) => push(&key_ref, a),
                    Datum::Set(s) => s.iter().for_each(|a| push(&key_ref, a)),
                    Datum::Map(m) => m.iter().for_each(|(k, v)| {
                        push(&key_ref, k);
                        push(&val_ref, v);
                    }),
                }
            }
        }
    }
    out
}

/// Runs `ops` on a copy of `r`; an error names what the server would refuse.
pub(crate) fn apply(r: &Replica, ops: &[Operation]) -> Result<Replica, String> {
    let mut db = r.clone();
    let mut named = BTreeMap::new();
    let mut next = db
        .schema()
        .tables
        .keys()
        .flat_map(|t| db.table(t).map(|(u, _)| u.0).collect::<Vec<_>>())
        .max()
        .unwrap_or(0)
        + 1;
    // ovsdb-server lets an operation name a row inserted later in the same
    // transaction, so names are assigned up front.
    for op in ops {
        if let Operation::Insert {
            uuid_name: Some(n), ..
        } = op
        {
            named.insert(n.clone(), Uuid(next));
            next += 1;
        }
    }
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operation::Assert { .. } | Operation::Comment(_) => {}
            Operation::Insert {
                table,
                row,
                uuid_name,
            } => {
                let u = match uuid_name {
                    Some(n) => named[n],
                    None => {
                        next += 1;
                        Uuid(next - 1)
                    }
                };
                let row: Row = row
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), resolve(v, &named)?)))
                    .collect::<Result<_, String>>()?;
                put(&mut db, table, u, Some(&row));
            }
            Operation::Update {
                table,
                conditions,
                row,
            } => {
                for u in matching(&db, table, conditions) {
                    let mut cur = full_row(&db, table, u);
                    for (k, v) in row {
                        cur.insert(k.clone(), resolve(v, &named)?);
                    }
                    put(&mut db, table, u, Some(&cur));
                }
            }
            Operation::Mutate {
                table,
                conditions,
                mutations,
            } => {
                for u in matching(&db, table, conditions) {
                    let mut cur = full_row(&db, table, u);
                    for m in mutations {
                        let m = Mutation {
                            value: resolve(&m.value, &named)?,
                            ..m.clone()
                        };
                        let old = cur.remove(&m.column).unwrap();
                        cur.insert(m.column.clone(), mutate(old, &m));
                    }
                    put(&mut db, table, u, Some(&cur));
                }
            }
            Operation::Delete { table, conditions } => {
                for u in matching(&db, table, conditions) {
                    put(&mut db, table, u, None);
                }
            }
            Operation::Wait {
                table,
                conditions,
                columns,
                until,
                rows,
                ..
            } => {
                let got: Vec<Vec<Datum>> = matching(&db, table, conditions)
                    .into_iter()
                    .map(|u| {
                        columns
                            .iter()
                            .map(|c| norm(&db.get(table, u, c).unwrap()))
                            .collect()
                    })
                    .collect();
                let want: Vec<Vec<Datum>> = rows
                    .iter()
                    .map(|r| columns.iter().map(|c| norm(&r[c])).collect())
                    .collect();
                if (got == want) != (*until == WaitUntil::Equal) {
                    return Err(format!("operation {i}: wait on {table} timed out"));
                }
            }
            other => panic!("sim: {other} not supported"),
        }
    }
    // Garbage collection: rows of non-root tables nothing refers to.
    loop {
        let referenced: BTreeSet<Uuid> = refs_of(&db).into_iter().map(|x| x.3).collect();
        let garbage: Vec<(String, Uuid)> = db
            .schema()
            .tables
            .iter()
            .filter(|(_, t)| !t.is_root)
            .flat_map(|(n, _)| {
                db.table(n)
                    .filter(|(u, _)| !referenced.contains(u))
                    .map(|(u, _)| (n.clone(), *u))
                    .collect::<Vec<_>>()
            })
            .collect();
        if garbage.is_empty() {
            break;
        }
        for (t, u) in garbage {
            put(&mut db, &t, u, None);
        }
    }
    for (from, u, to, target) in refs_of(&db) {
        if db.row(&to, target).is_none() {
            return Err(format!(
                "referential integrity violation: {from} row {u} refers to missing {to} row {target}"
            ));
        }
    }
    for (tname, t) in &db.schema().tables {
        for idx in &t.indexes {
            let mut seen = BTreeSet::new();
            for (u, _) in db.table(tname) {
                let key: Vec<String> = idx
                    .iter()
                    .map(|c| norm(&db.get(tname, *u, c).unwrap()).to_json().to_string())
                    .collect();
                if !seen.insert(key) {
                    return Err(format!("constraint violation: index on {tname} {idx:?}"));
                }
            }
        }
    }
    Ok(db)
}
