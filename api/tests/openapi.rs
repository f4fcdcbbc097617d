//! `/openapi.json` against the server that serves it.
//!
//! A small JSON-schema checker (the subset the document uses) validates
//! examples, mutated bodies and answers against the document, and the real
//! binary must agree: examples are accepted, every mutation the schema
//! calls invalid is a 400 naming the mutated field, every documented
//! operation answers with a documented status and a body of the documented
//! shape.

mod common;

use std::collections::BTreeMap;

use common::{WatchStream, json_as, request_with, start_controller};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";

struct Doc(Value);

impl Doc {
    fn resolve<'a>(&'a self, s: &'a Value) -> &'a Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").expect("local ref");
                let t = &self.0["components"]["schemas"][name];
                assert!(t.is_object(), "dangling $ref {r}");
                self.resolve(t)
            }
            None => s,
        }
    }

    fn schema(&self, name: &str) -> &Value {
        self.resolve(&self.0["components"]["schemas"][name])
    }

    /// Every way `v` breaks `schema`, each as `path: reason`.
    fn check(&self, schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
        let s = self.resolve(schema);
        let at = |f: &str| {
            if path.is_empty() {
                f.to_string()
            } else {
                format!("{path}.{f}")
            }
        };
        if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
            let ok = alts
                .iter()
                .filter(|a| {
                    let mut e = Vec::new();
                    self.check(a, v, path, &mut e);
                    e.is_empty()
                })
                .count();
            if ok != 1 {
                out.push(format!("{path}: matches {ok} of oneOf"));
            }
            return;
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                out.push(format!("{path}: not in enum"));
            }
        }
        match s.get("type").and_then(Value::as_str) {
            Some("object") => {
                let Some(o) = v.as_object() else {
                    out.push(format!("{path}: not an object"));
                    return;
                };
                for r in s["required"].as_array().into_iter().flatten() {
                    if !o.contains_key(r.as_str().unwrap()) {
                        out.push(format!("{}: required", at(r.as_str().unwrap())));
                    }
                }
                for (k, val) in o {
                    match s["properties"].get(k) {
                        Some(ps) => self.check(ps, val, &at(k), out),
                        None if s["additionalProperties"] == json!(false) => {
                            out.push(format!("{}: unknown", at(k)))
                        }
                        None => {}
                    }
                }
            }
            Some("array") => {
                let Some(a) = v.as_array() else {
                    out.push(format!("{path}: not an array"));
                    return;
                };
                if let Some(n) = s["minItems"].as_u64() {
                    if (a.len() as u64) < n {
                        out.push(format!("{path}: too few items"));
                    }
                }
                if let Some(n) = s["maxItems"].as_u64() {
                    if a.len() as u64 > n {
                        out.push(format!("{path}: too many items"));
                    }
                }
                for (i, item) in a.iter().enumerate() {
                    self.check(&s["items"], item, &format!("{path}[{i}]"), out);
                }
            }
            Some("integer") => match v.as_i64() {
                None => out.push(format!("{path}: not an integer")),
                Some(n) => {
                    if s["minimum"].as_i64().is_some_and(|m| n < m) {
                        out.push(format!("{path}: below minimum"));
                    }
                    if s["maximum"].as_i64().is_some_and(|m| n > m) {
                        out.push(format!("{path}: above maximum"));
                    }
                }
            },
            Some("boolean") if !v.is_boolean() => out.push(format!("{path}: not a boolean")),
            Some("string") => match v.as_str() {
                None => out.push(format!("{path}: not a string")),
                Some(t) => {
                    let n = t.chars().count() as u64;
                    if s["minLength"].as_u64().is_some_and(|m| n < m) {
                        out.push(format!("{path}: too short"));
                    }
                    if s["maxLength"].as_u64().is_some_and(|m| n > m) {
                        out.push(format!("{path}: too long"));
                    }
                    if let Some(p) = s["pattern"].as_str() {
                        if !regex::Regex::new(p).unwrap().is_match(t) {
                            out.push(format!("{path}: pattern"));
                        }
                    }
                    if s["format"] == "ipv4" && t.parse::<std::net::Ipv4Addr>().is_err() {
                        out.push(format!("{path}: not ipv4"));
                    }
                }
            },
            _ => {}
        }
    }

    fn errors(&self, schema: &Value, v: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(schema, v, "", &mut out);
        out
    }
}

/// A body with one thing wrong, and the field the server must name.
struct Mutation {
    body: Value,
    field: String,
    what: String,
}

fn set(body: &mut Value, path: &[PathSeg], v: Option<Value>) {
    let (last, head) = path.split_last().unwrap();
    let mut cur = body;
    for seg in head {
        cur = match seg {
            PathSeg::Key(k) => &mut cur[k.as_str()],
            PathSeg::Index(i) => &mut cur[*i],
        };
    }
    match (last, v) {
        (PathSeg::Key(k), Some(v)) => {
            cur[k.as_str()] = v;
        }
        (PathSeg::Key(k), None) => {
            cur.as_object_mut().unwrap().remove(k);
        }
        (PathSeg::Index(i), Some(v)) => cur[*i] = v,
        (PathSeg::Index(_), None) => unreachable!(),
    }
}

#[derive(Clone)]
enum PathSeg {
    Key(String),
    Index(usize),
}

fn dotted(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) if s.is_empty() => s.push_str(k),
            PathSeg::Key(k) => {
                s.push('.');
                s.push_str(k)
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Bad strings tried against a pattern, first one that breaks it wins.
const BAD_STRINGS: [&str; 5] = ["-x", "a/b", "x\u{1}", "a b", "02:00:00:00:00"];

/// Mutations of the value at `path` (of schema `s`) inside `root`, recursing into objects and arrays.
fn mutations(doc: &Doc, root: &Value, s: &Value, path: &[PathSeg], out: &mut Vec<Mutation>) {
    let s = doc.resolve(s);
    let v = {
        let mut cur = root;
        for seg in path {
            cur = match seg {
                PathSeg::Key(k) => &cur[k.as_str()],
                PathSeg::Index(i) => &cur[*i],
            };
        }
        cur.clone()
    };
    let mut push = |val: Option<Value>, what: &str, field: String| {
        let mut body = root.clone();
        set(&mut body, path, val);
        out.push(Mutation {
            body,
            field,
            what: what.to_string(),
        });
    };
    let here = dotted(path);
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        // Recurse into the branch the value matches.
        let branch = alts
            .iter()
            .find(|a| doc.errors(a, &v).is_empty())
            .expect("value matches a branch");
        mutations(doc, root, branch, path, out);
        return;
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        let bad = if e[0].is_string() {
            json!("bogus")
        } else {
            json!(7)
        };
        push(Some(bad), "not in enum", here.clone());
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            for r in s["required"].as_array().into_iter().flatten() {
                let mut p = path.to_vec();
                p.push(PathSeg::Key(r.as_str().unwrap().to_string()));
                let f = dotted(&p);
                let mut body = root.clone();
                set(&mut body, &p, None);
                out.push(Mutation {
                    body,
                    field: f,
                    what: "required field missing".into(),
                });
            }
            let mut p = path.to_vec();
            p.push(PathSeg::Key("zzz".into()));
            let mut body = root.clone();
            set(&mut body, &p, Some(json!(1)));
            out.push(Mutation {
                body,
                field: dotted(&p),
                what: "unknown field".into(),
            });
            for (k, ps) in s["properties"].as_object().unwrap() {
                if v.get(k).is_some() {
                    let mut p = path.to_vec();
                    p.push(PathSeg::Key(k.clone()));
                    mutations(doc, root, ps, &p, out);
                }
            }
        }
        Some("array") => {
            if let Some(n) = s["minItems"].as_u64() {
                if n > 0 {
                    push(Some(json!([])), "too few items", here.clone());
                }
            }
            if let Some(n) = s["maxItems"].as_u64() {
                let item = v
                    .as_array()
                    .and_then(|a| a.first().cloned())
                    .unwrap_or(json!("x"));
                push(
                    Some(json!(vec![item; n as usize + 1])),
                    "too many items",
                    here.clone(),
                );
            }
            if v.as_array().is_some_and(|a| !a.is_empty()) {
                let mut p = path.to_vec();
                p.push(PathSeg::Index(0));
                mutations(doc, root, &s["items"], &p, out);
            }
        }
        Some("integer") => {
            push(Some(json!("12")), "string for an integer", here.clone());
            if let Some(m) = s["maximum"].as_i64() {
                push(Some(json!(m + 1)), "above maximum", here.clone());
            }
            if let Some(m) = s["minimum"].as_i64() {
                push(Some(json!(m - 1)), "below minimum", here.clone());
            }
        }
        Some("boolean") => push(Some(json!(1)), "number for a boolean", here.clone()),
        Some("string") => {
            push(Some(json!(12)), "number for a string", here.clone());
            if let Some(m) = s["maxLength"].as_u64() {
                push(
                    Some(json!("a".repeat(m as usize + 1))),
                    "too long",
                    here.clone(),
                );
            }
            if s["minLength"].as_u64().is_some_and(|m| m > 0) {
                push(Some(json!("")), "empty", here.clone());
            }
            if let Some(p) = s["pattern"].as_str() {
                let re = regex::Regex::new(p).unwrap();
                let bad = BAD_STRINGS
                    .iter()
                    .find(|b| !re.is_match(b))
                    .expect("a string breaking the pattern");
                push(Some(json!(bad)), "breaks the pattern", here.clone());
            }
            if s["format"] == "ipv4" {
                push(Some(json!("198.18.0.300")), "not ipv4", here.clone());
            }
        }
        _ => {}
    }
}

/// Integer fields at their documented bounds (the server must accept these).
fn bounds(doc: &Doc, root: &Value, s: &Value, path: &[PathSeg], out: &mut Vec<(Value, String)>) {
    let s = doc.resolve(s);
    let v = {
        let mut cur = root;
        for seg in path {
            cur = match seg {
                PathSeg::Key(k) => &cur[k.as_str()],
                PathSeg::Index(i) => &cur[*i],
            };
        }
        cur.clone()
    };
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let branch = alts.iter().find(|a| doc.errors(a, &v).is_empty()).unwrap();
        return bounds(doc, root, branch, path, out);
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            for (k, ps) in s["properties"].as_object().unwrap() {
                if v.get(k).is_some() {
                    let mut p = path.to_vec();
                    p.push(PathSeg::Key(k.clone()));
                    bounds(doc, root, ps, &p, out);
                }
            }
        }
        Some("array") if v.as_array().is_some_and(|a| !a.is_empty()) => {
            let mut p = path.to_vec();
            p.push(PathSeg::Index(0));
            bounds(doc, root, &s["items"], &p, out);
        }
        Some("integer") => {
            let values: Vec<Value> = match s.get("enum").and_then(Value::as_array) {
                Some(e) => e.clone(),
                None => [&s["minimum"], &s["maximum"]]
                    .into_iter()
                    .filter(|m| m.is_number())
                    .cloned()
                    .collect(),
            };
            for val in values {
                let mut body = root.clone();
                set(&mut body, path, Some(val.clone()));
                out.push((body, format!("{} = {val}", dotted(path))));
            }
        }
        _ => {}
    }
}

/// Percent-encodes a path segment.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// (path template, kind schema, is observed, key fields) from the document itself.
fn object_paths(doc: &Doc) -> Vec<(String, String, bool, Vec<String>)> {
    let mut out = Vec::new();
    for (p, item) in doc.0["paths"].as_object().unwrap() {
        let Some(put) = item.get("put") else { continue };
        let r = put["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let name = r.rsplit('/').next().unwrap().to_string();
        let keys: Vec<String> = item["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        out.push((p.clone(), name, p.starts_with("/v1/observed/"), keys));
    }
    out
}

fn fill(template: &str, body: &Value, keys: &[String]) -> String {
    let mut p = template.to_string();
    for k in keys {
        let v = match &body[k.as_str()] {
            Value::String(s) => enc(s),
            other => enc(&other.to_string()),
        };
        p = p.replace(&format!("{{{k}}}"), &v);
    }
    p
}

#[test]
fn document_matches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!("[[tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n"),
    )
    .unwrap();
    let c = start_controller(
        &dir.path().join("data"),
        &["--tokens", tokens.to_str().unwrap()],
    );
    let a = c.addr;
    let ans = request_with(a, "GET", "/openapi.json", None, &[]).unwrap();
    assert_eq!(ans.status, 200);
    let doc = Doc(ans.json());

    // Examples are valid per the document and accepted, in dependency order.
    let objs = object_paths(&doc);
    let order = [
        "LogicalSwitch",
        "TransportNode",
        "GatewayGroup",
        "Binding",
        "RemoteMac",
    ];
    let (_, lease) = json_as(
        a,
        ADMIN,
        "POST",
        "/v1/leases",
        Some(&doc.schema("LeaseGrant")["example"].to_string()),
    );
    let lease = lease["id"].as_u64().unwrap();
    let mut sorted = objs.clone();
    sorted.sort_by_key(|(_, n, obs, _)| (*obs, order.iter().position(|o| o == n).unwrap_or(9)));
    for (tmpl, name, observed, keys) in &sorted {
        let s = doc.schema(name);
        let ex = &s["example"];
        assert_eq!(doc.errors(s, ex), Vec::<String>::new(), "{name} example");
        let path = fill(tmpl, ex, keys);
        let url = if *observed {
            format!("{path}?lease={lease}")
        } else {
            path
        };
        let (st, v) = json_as(a, ADMIN, "PUT", &url, Some(&ex.to_string()));
        assert_eq!(st, 200, "{name} example: {v}");
    }

    // Mutations the schema calls invalid are 400s naming the field.
    let mut n = 0;
    for (tmpl, name, observed, keys) in &objs {
        let s = doc.schema(name);
        let ex = &s["example"];
        let mut ms = Vec::new();
        mutations(&doc, ex, s, &[], &mut ms);
        for m in ms {
            assert!(
                !doc.errors(s, &m.body).is_empty(),
                "{name}: {} at {} is valid per the document",
                m.what,
                m.field
            );
            let (method, url) = if *observed {
                // Observed objects are PUT at their key: build it from the mutated body.
                let mut b = m.body.clone();
                for k in keys {
                    // No path can hold a non-string or empty key segment:
                    // put the object at the example's key instead.
                    if b[k.as_str()].as_str().is_none_or(str::is_empty) {
                        b[k.as_str()] = ex[k.as_str()].clone();
                    }
                }
                ("PUT", format!("{}?lease={lease}", fill(tmpl, &b, keys)))
            } else {
                ("POST", tmpl.split_once("/{").unwrap().0.to_string())
            };
            let body = m.body.to_string();
            let (st, v) = json_as(a, ADMIN, method, &url, Some(&body));
            let fields: Vec<&str> = v["errors"]
                .as_array()
                .map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect())
                .unwrap_or_default();
            assert!(
                st == 400 && fields.contains(&m.field.as_str()),
                "{name}: {} at {}: got {st} {v} for {body}",
                m.what,
                m.field
            );
            n += 1;
        }
        // Integer bounds (and integer enums) are accepted.
        let mut bs = Vec::new();
        bounds(&doc, ex, s, &[], &mut bs);
        for (body, what) in bs {
            assert!(doc.errors(s, &body).is_empty(), "{name}: {what}");
            let path = fill(tmpl, ex, keys);
            let url = if *observed {
                format!("{path}?lease={lease}")
            } else {
                path
            };
            let (st, v) = json_as(a, ADMIN, "PUT", &url, Some(&body.to_string()));
            assert_eq!(st, 200, "{name}: {what}: {v}");
            n += 1;
        }
        // Put the example back.
        let path = fill(tmpl, ex, keys);
        let url = if *observed {
            format!("{path}?lease={lease}")
        } else {
            path
        };
        assert_eq!(json_as(a, ADMIN, "PUT", &url, Some(&ex.to_string())).0, 200);
    }
    assert!(n > 150, "only {n} cases");

    // Every documented operation answers with a documented status and shape;
    // without a token, every non-public one is 401.
    let mut ops: Vec<(String, String, Value)> = Vec::new();
    for (p, item) in doc.0["paths"].as_object().unwrap() {
        for m in ["get", "put", "post", "delete"] {
            if let Some(op) = item.get(m) {
                ops.push((p.clone(), m.to_string(), op.clone()));
            }
        }
    }
    // Reads and writes before deletes, so deletes meet existing objects.
    ops.sort_by_key(|(p, m, _)| (m == "delete", p.clone()));
    let examples: BTreeMap<String, (Value, Vec<String>, bool)> = objs
        .iter()
        .map(|(t, n, o, k)| (t.clone(), (doc.schema(n)["example"].clone(), k.clone(), *o)))
        .collect();
    for (p, m, op) in &ops {
        let method = m.to_uppercase();
        let mut body = None;
        let mut url = p.replace("{id}", &lease.to_string());
        if let Some((ex, keys, observed)) = examples.get(p) {
            url = fill(p, ex, keys);
            if *observed && m == "put" {
                url = format!("{url}?lease={lease}");
            }
            if m == "put" {
                body = Some(ex.to_string());
            }
        }
        if let Some(r) = op["requestBody"]["content"]["application/json"]["schema"].get("$ref") {
            let name = r.as_str().unwrap().rsplit('/').next().unwrap();
            body = Some(doc.schema(name)["example"].to_string());
        }
        let public = op.get("security") == Some(&json!([]));
        if !public {
            let ans = request_with(a, &method, &url, body.as_deref(), &[]).unwrap();
            assert_eq!(ans.status, 401, "{method} {url} without a token");
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {p}: 401 undocumented"
            );
        }
        let auth = format!("Bearer {ADMIN}");
        if p == "/v1/watch" {
            let mut w = WatchStream::open_with(a, "revision=0", &[("Authorization", &auth)]);
            let line = w.next_line().unwrap();
            let s = &op["responses"]["200"]["content"]["application/x-ndjson"]["schema"];
            assert_eq!(doc.errors(s, &line), Vec::<String>::new(), "{line}");
            continue;
        }
        let ans = request_with(
            a,
            &method,
            &url,
            body.as_deref(),
            &[("Authorization", &auth)],
        )
        .unwrap();
        let documented = &op["responses"][ans.status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {url}: status {} not documented ({})",
            ans.status,
            ans.body
        );
        if let Some(s) = documented["content"]["application/json"].get("schema") {
            let errs = doc.errors(s, &ans.json());
            assert!(
                errs.is_empty(),
                "{method} {url} {}: {errs:?} in {}",
                ans.status,
                ans.body
            );
        }
    }
    // The watch answer names the server's revision.
    let ans = request_with(
        a,
        "GET",
        "/v1/nothing",
        None,
        &[("Authorization", &format!("Bearer {ADMIN}"))],
    )
    .unwrap();
    assert_eq!(ans.status, 404);
    let err = doc.errors(doc.schema("Error"), &ans.json());
    assert!(err.is_empty(), "{err:?}");
}
