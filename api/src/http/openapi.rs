//! A hand-built OpenAPI 3.0 document: paths, operations and status codes.
//!
//! Object schemas are described by their field names and required fields;
//! ranges and reference rules are in the operation descriptions.

use serde_json::{Value, json};

use crate::model::Kind;

fn schema(kind: Kind) -> Value {
    let (required, optional): (&[&str], &[&str]) = match kind {
        Kind::LogicalSwitch => (&["name", "vni"], &["replication"]),
        Kind::TransportNode => (&["name", "kind", "tunnel_ip"], &["bfd", "ovsdb_target"]),
        Kind::GatewayGroup => (
            &[
                "name",
                "members",
                "vtep_ip",
                "physical_interface",
                "election",
            ],
            &[],
        ),
        Kind::Binding => (&["name", "logical_switch", "attachment", "vlan"], &[]),
        Kind::RemoteMac => (&["logical_switch", "mac", "transport_node"], &["ip"]),
        Kind::LearnedMac => (&["reporter", "logical_switch", "mac"], &["ip"]),
        Kind::TunnelStatus => (&["reporter", "remote_ip", "state"], &["diag"]),
        Kind::ElectionState => (&["group", "member", "role"], &["leader"]),
        Kind::SwitchStatus => (&["switch", "connected"], &["faults"]),
    };
    let mut props = serde_json::Map::new();
    for f in required.iter().chain(optional) {
        props.insert((*f).to_string(), json!({}));
    }
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": props})
}

fn errors() -> Value {
    json!({
        "400": {"description": "invalid request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "404": {"description": "not found", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "409": {"description": "conflicts with current state", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "503": {"description": "store unavailable or not the leader"}
    })
}

/// The document served at `/openapi.json`.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for kind in Kind::ALL {
        let name = format!("{kind:?}");
        schemas.insert(name.clone(), schema(kind));
        let r = json!({"$ref": format!("#/components/schemas/{name}")});
        let body = json!({"required": true, "content": {"application/json": {"schema": r}}});
        let base = if kind.is_observed() {
            format!("/v1/observed/{}", kind.segment())
        } else {
            format!("/v1/{}", kind.segment())
        };
        let mut coll = json!({"get": {"summary": format!("list {} at one revision", kind.segment()), "responses": {"200": {"description": "{revision, items}"}}}});
        if !kind.is_observed() {
            coll["post"] = json!({"summary": "create", "requestBody": body, "responses": {"201": {"description": "{revision, value}"}}});
            coll["post"]["responses"]
                .as_object_mut()
                .into_iter()
                .for_each(|m| m.extend(errors().as_object().cloned().unwrap_or_default()));
        }
        paths.insert(base.clone(), coll);
        let mut params = vec![
            json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
        ];
        if kind.is_observed() {
            params.push(json!({"name": "lease", "in": "query", "required": true, "schema": {"type": "integer"}}));
        }
        let mut item = json!({
            "parameters": params,
            "get": {"summary": "read one", "responses": {"200": {"description": "stored object"}, "404": {"description": "not found"}}},
            "put": {"summary": "create or replace", "requestBody": body, "responses": {"200": {"description": "{revision, value}"}}},
            "delete": {"summary": "delete (see the delete policy)", "responses": {"200": {"description": "{revision}"}}}
        });
        for op in ["put", "delete"] {
            if let Some(m) = item[op]["responses"].as_object_mut() {
                m.extend(errors().as_object().cloned().unwrap_or_default());
            }
        }
        paths.insert(format!("{base}/{{name}}"), item);
    }
    paths.insert("/v1/leases".into(), json!({
        "get": {"summary": "list leases", "responses": {"200": {"description": "leases"}}},
        "post": {"summary": "grant a lease", "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["ttl_ms"], "properties": {"ttl_ms": {"type": "integer", "minimum": 100, "maximum": 86400000}}}}}}, "responses": {"201": {"description": "lease"}, "400": {"description": "invalid"}}}
    }));
    paths.insert("/v1/leases/{id}".into(), json!({
        "get": {"summary": "read a lease", "responses": {"200": {"description": "lease"}, "404": {"description": "not found"}}},
        "delete": {"summary": "revoke a lease and delete its observed state", "responses": {"200": {"description": "{revision}"}, "404": {"description": "not found"}}}
    }));
    paths.insert("/v1/leases/{id}/renew".into(), json!({
        "post": {"summary": "renew a lease", "responses": {"200": {"description": "lease"}, "404": {"description": "expired or unknown: grant a new one"}}}
    }));
    paths.insert("/v1/state".into(), json!({"get": {"summary": "every object at one revision", "responses": {"200": {"description": "{revision, items}"}}}}));
    paths.insert("/v1/watch".into(), json!({"get": {
        "summary": "watch every revision after `revision`, as newline-delimited JSON; one line per revision",
        "parameters": [
            {"name": "revision", "in": "query", "schema": {"type": "integer"}},
            {"name": "kinds", "in": "query", "schema": {"type": "string"}, "description": "comma-separated kind segments"},
            {"name": "progress_ms", "in": "query", "schema": {"type": "integer"}}
        ],
        "responses": {"200": {"description": "lines: {type: events, revision, events} | {type: progress, revision} | {type: compacted, floor, current} (relist)", "content": {"application/x-ndjson": {}}}}
    }}));
    paths.insert("/healthz".into(), json!({"get": {"summary": "liveness", "responses": {"200": {"description": "ok"}, "503": {"description": "store stopped"}}}}));
    paths.insert("/readyz".into(), json!({"get": {"summary": "readiness: can take writes", "responses": {"200": {"description": "ready"}, "503": {"description": "not the leader"}}}}));
    schemas.insert("Error".into(), json!({
        "type": "object",
        "required": ["error", "field", "reason", "errors"],
        "properties": {
            "error": {"type": "string", "enum": ["invalid", "conflict", "not_found", "not_leader", "unavailable"]},
            "field": {"type": "string"},
            "reason": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}}
        }
    }));
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Bridgehead controller", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": schemas}
    })
}
