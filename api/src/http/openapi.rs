//! A hand-built OpenAPI 3.0 document: every path, operation, status code,
//! object schema (types, enums, ranges, patterns, defaults), the error
//! schema and the bearer security scheme.
//!
//! Each object schema carries an `example` that the server accepts;
//! `tests/openapi.rs` checks the document against the running server
//! (every path answers with a documented status; a missing required field,
//! an out-of-range number, an unknown enum value or an unknown field is a
//! 400 naming that field). Rules that span fields or objects (unicast
//! addresses, uniqueness, references, the delete policy) are in the
//! `description`s.

use serde_json::{Value, json};

use crate::model::Kind;
use crate::state_machine::{MAX_LEASE_TTL_MS, MIN_LEASE_TTL_MS};
use crate::validate::{MAX_NAME_LEN, MAX_VLAN, MAX_VNI};

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn name_ref() -> Value {
    r("Name")
}

fn ipv4(desc: &str) -> Value {
    json!({"type": "string", "format": "ipv4", "description": desc})
}

fn int(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn object(required: &[&str], props: Value, example: Value, desc: &str) -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": props,
        "example": example,
        "description": desc,
    })
}

/// Schema name of a kind's spec (its Rust type name).
fn schema_name(kind: Kind) -> String {
    format!("{kind:?}")
}

fn kind_schema(kind: Kind) -> Value {
    let unicast = "unicast host address (not 0/8, loopback, multicast, 240/4 or broadcast)";
    match kind {
        Kind::LogicalSwitch => object(
            &["name", "vni"],
            json!({
                "name": name_ref(),
                "vni": {"type": "integer", "minimum": 1, "maximum": MAX_VNI, "description": "unique among logical switches"},
                "replication": {"type": "string", "enum": ["service_node", "source_node"], "default": "service_node"},
            }),
            json!({"name": "web", "vni": 5001, "replication": "service_node"}),
            "One L2 overlay segment.",
        ),
        Kind::TransportNode => object(
            &["name", "kind", "tunnel_ip"],
            json!({
                "name": name_ref(),
                "kind": {"type": "string", "enum": ["hypervisor", "gateway", "service_node", "hardware_switch"]},
                "tunnel_ip": ipv4(&format!("{unicast}; unique among tunnel IPs and group VTEP IPs")),
                "bfd": r("BfdParams"),
                "ovsdb_target": {"type": "string", "pattern": "^((tcp|ssl):[0-9.]+:[0-9]+|unix:/.*)$", "description": "required for, and only for, kind hardware_switch; port 1..=65535"},
            }),
            json!({"name": "gw1", "kind": "gateway", "tunnel_ip": "198.18.0.1", "bfd": {"enabled": true, "min_tx_ms": 300, "min_rx_ms": 300, "detect_mult": 3}}),
            "A VTEP endpoint. A node referenced by a gateway group, binding or remote MAC cannot be deleted or change kind.",
        ),
        Kind::GatewayGroup => object(
            &[
                "name",
                "members",
                "vtep_ip",
                "physical_interface",
                "election",
            ],
            json!({
                "name": name_ref(),
                "members": {"type": "array", "minItems": 1, "items": r("GroupMember"), "description": "node names unique, MEP ids unique; each a transport node of kind gateway"},
                "vtep_ip": ipv4(&format!("{unicast}; unique among tunnel IPs and group VTEP IPs")),
                "physical_interface": {"type": "string", "minLength": 1, "maxLength": 15, "pattern": "^[^/:\\s]+$", "description": "Linux interface name; not '.' or '..'"},
                "election": r("ElectionParams"),
            }),
            json!({"name": "g1", "members": [{"node": "gw1", "mep_id": 1, "priority": 10}], "vtep_ip": "198.18.0.100", "physical_interface": "eth1", "election": {"interval_ms": 100, "md_level": 0, "ma_name": "bridgehead-g1"}}),
            "Gateways bridging one physical L2 network; the elected leader holds vtep_ip.",
        ),
        Kind::Binding => object(
            &["name", "logical_switch", "attachment", "vlan"],
            json!({
                "name": name_ref(),
                "logical_switch": name_ref(),
                "attachment": r("Attachment"),
                "vlan": {"type": "integer", "minimum": 0, "maximum": MAX_VLAN, "description": "0 = untagged; (attachment, vlan) unique"},
            }),
            json!({"name": "b1", "logical_switch": "web", "attachment": {"type": "gateway_group", "group": "g1"}, "vlan": 10}),
            "Extends a logical switch to a switch port or a gateway group's interface, on a VLAN. References must exist.",
        ),
        Kind::RemoteMac => object(
            &["logical_switch", "mac", "transport_node"],
            json!({
                "logical_switch": name_ref(),
                "mac": r("UnicastMac"),
                "ip": ipv4(unicast),
                "transport_node": name_ref(),
            }),
            json!({"logical_switch": "web", "mac": "02:00:00:00:00:01", "ip": "192.0.2.10", "transport_node": "gw1"}),
            "Where a VM MAC lives. Key: logical_switch/mac. References must exist.",
        ),
        Kind::LearnedMac => object(
            &["reporter", "logical_switch", "mac"],
            json!({
                "reporter": name_ref(),
                "logical_switch": name_ref(),
                "mac": r("UnicastMac"),
                "ip": ipv4(unicast),
            }),
            json!({"reporter": "gw1", "logical_switch": "web", "mac": "02:00:00:00:00:02"}),
            "A MAC learned by a switch or gateway bridge. Key: reporter/logical_switch/mac.",
        ),
        Kind::TunnelStatus => object(
            &["reporter", "remote_ip", "state"],
            json!({
                "reporter": name_ref(),
                "remote_ip": ipv4(unicast),
                "state": {"type": "string", "enum": ["admin_down", "down", "init", "up"]},
                "diag": {"type": "string", "maxLength": 255},
            }),
            json!({"reporter": "gw1", "remote_ip": "198.18.0.2", "state": "up"}),
            "Health of one tunnel as its local end sees it. Key: reporter/remote_ip.",
        ),
        Kind::ElectionState => object(
            &["group", "member", "role"],
            json!({
                "group": name_ref(),
                "member": name_ref(),
                "role": {"type": "string", "enum": ["leader", "standby", "fault"]},
                "leader": name_ref(),
            }),
            json!({"group": "g1", "member": "gw1", "role": "leader", "leader": "gw1"}),
            "One member's view of its group's election. Key: group/member.",
        ),
        Kind::SwitchStatus => object(
            &["switch", "connected"],
            json!({
                "switch": name_ref(),
                "connected": {"type": "boolean"},
                "faults": {"type": "array", "maxItems": 64, "items": {"type": "string", "maxLength": 255}, "default": [], "description": "Physical_Switch.switch_fault_status"},
                "reported_name": {"type": "string", "minLength": 1, "maxLength": 255, "description": "Physical_Switch.name as the switch reports it, when it differs from `switch`"},
                "tunnel_ips": {"type": "array", "maxItems": 16, "items": ipv4("Physical_Switch.tunnel_ips entry"), "default": []},
                "ports": {"type": "array", "maxItems": 1024, "default": [], "description": "Physical_Port rows; names unique", "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 255},
                        "faults": {"type": "array", "maxItems": 64, "items": {"type": "string", "maxLength": 255}, "default": [], "description": "Physical_Port.port_fault_status"},
                        "vlan_bindings": {"type": "array", "maxItems": 4095, "items": int(0, 4094), "default": [], "description": "VLANs bound on the port (0 = untagged)"},
                    },
                }},
            }),
            json!({"switch": "tor1", "connected": true, "faults": [], "tunnel_ips": ["198.18.0.30"], "ports": [{"name": "p0", "faults": ["link_down"], "vlan_bindings": [0]}]}),
            "Connection and fault status of a hardware switch. Key: switch.",
        ),
    }
}

/// The path segments after the collection that make up a kind's key.
fn key_params(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::RemoteMac => &["logical_switch", "mac"],
        Kind::LearnedMac => &["reporter", "logical_switch", "mac"],
        Kind::TunnelStatus => &["reporter", "remote_ip"],
        Kind::ElectionState => &["group", "member"],
        Kind::SwitchStatus => &["switch"],
        _ => &["name"],
    }
}

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": r("Error")}}})
}

/// Responses every authenticated operation may give.
fn common_errors() -> Vec<(&'static str, Value)> {
    vec![
        (
            "401",
            err("missing or unknown bearer token (with WWW-Authenticate: Bearer)"),
        ),
        ("403", err("the token's role may not do this")),
    ]
}

fn write_errors() -> Vec<(&'static str, Value)> {
    let mut v = common_errors();
    v.extend([
        ("400", err("invalid request; `errors` names every bad field")),
        ("404", err("unknown object or lease")),
        ("409", err("conflicts with current state: duplicate key/VNI/IP, unknown reference, still referenced")),
        ("413", err("body over 2 MiB")),
        ("503", err("not the leader, stopped, or leadership changed before commit (re-read to learn the outcome)")),
    ]);
    v
}

fn json_body(schema: Value) -> Value {
    json!({"description": "ok", "content": {"application/json": {"schema": schema}}})
}

fn op(summary: &str, ok: (&str, Value), errors: Vec<(&'static str, Value)>) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok.0.to_string(), ok.1);
    for (code, v) in errors {
        responses.insert(code.to_string(), v);
    }
    json!({"summary": summary, "responses": responses})
}

fn with_body(mut op: Value, schema: Value) -> Value {
    op["requestBody"] =
        json!({"required": true, "content": {"application/json": {"schema": schema}}});
    op
}

fn public(mut op: Value) -> Value {
    op["security"] = json!([]);
    op
}

fn text(desc: &str) -> Value {
    json!({"description": desc, "content": {"text/plain": {"schema": {"type": "string"}}}})
}

fn shared_schemas(schemas: &mut serde_json::Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        schemas.insert(k.to_string(), v);
    };
    put(
        "Name",
        json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_LEN, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$",
               "description": "letters, digits, '.', '_', '-'; starts with a letter or digit"}),
    );
    put(
        "UnicastMac",
        json!({"type": "string", "pattern": "^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
               "description": "six hex pairs; unicast (group bit clear), not all zeros; stored lower-case"}),
    );
    put(
        "BfdParams",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "enabled": {"type": "boolean", "default": true},
            "min_tx_ms": {"type": "integer", "minimum": 10, "maximum": 60000, "default": 1000},
            "min_rx_ms": {"type": "integer", "minimum": 10, "maximum": 60000, "default": 1000},
            "detect_mult": {"type": "integer", "minimum": 1, "maximum": 255, "default": 3},
        }}),
    );
    put(
        "GroupMember",
        json!({"type": "object", "additionalProperties": false, "required": ["node", "mep_id"], "properties": {
            "node": name_ref(),
            "mep_id": {"type": "integer", "minimum": 1, "maximum": 8191},
            "priority": {"type": "integer", "minimum": 0, "maximum": 255, "default": 0, "description": "higher wins; ties broken by MEP id"},
        }}),
    );
    put(
        "ElectionParams",
        json!({"type": "object", "additionalProperties": false, "required": ["ma_name"], "properties": {
            "interval_ms": {"type": "integer", "enum": [10, 100, 1000, 10000, 60000, 600000], "default": 100},
            "md_level": {"type": "integer", "minimum": 0, "maximum": 7, "default": 0},
            "ma_name": {"type": "string", "minLength": 1, "maxLength": 44, "pattern": "^[ -~]+$"},
        }}),
    );
    put(
        "Attachment",
        json!({"oneOf": [r("HardwareSwitchAttachment"), r("GatewayGroupAttachment")],
               "discriminator": {"propertyName": "type"}}),
    );
    put(
        "HardwareSwitchAttachment",
        json!({"type": "object", "additionalProperties": false, "required": ["type", "switch", "port"], "properties": {
            "type": {"type": "string", "enum": ["hardware_switch"]},
            "switch": name_ref(),
            "port": {"type": "string", "minLength": 1, "maxLength": 255, "description": "no control characters"},
        }}),
    );
    put(
        "GatewayGroupAttachment",
        json!({"type": "object", "additionalProperties": false, "required": ["type", "group"], "properties": {
            "type": {"type": "string", "enum": ["gateway_group"]},
            "group": name_ref(),
        }}),
    );
    let kinds: Vec<&str> = Kind::ALL
        .iter()
        .map(|k| match k {
            Kind::LogicalSwitch => "logical_switch",
            Kind::TransportNode => "transport_node",
            Kind::GatewayGroup => "gateway_group",
            Kind::Binding => "binding",
            Kind::RemoteMac => "remote_mac",
            Kind::LearnedMac => "learned_mac",
            Kind::TunnelStatus => "tunnel_status",
            Kind::ElectionState => "election_state",
            Kind::SwitchStatus => "switch_status",
        })
        .collect();
    put(
        "Object",
        json!({"type": "object", "required": ["kind", "spec"], "properties": {
            "kind": {"type": "string", "enum": kinds},
            "spec": {"description": "the schema named after the kind", "oneOf": Kind::ALL.iter().map(|k| r(&schema_name(*k))).collect::<Vec<_>>()},
        }}),
    );
    put(
        "Stored",
        json!({"type": "object", "required": ["object", "create_revision", "mod_revision"], "properties": {
            "object": r("Object"),
            "create_revision": {"type": "integer", "minimum": 1},
            "mod_revision": {"type": "integer", "minimum": 1},
            "lease": {"type": "integer", "description": "observed state only"},
        }}),
    );
    put(
        "List",
        json!({"type": "object", "required": ["revision", "items"], "properties": {
            "revision": {"type": "integer", "minimum": 0, "description": "watch from this revision"},
            "items": {"type": "array", "items": r("Stored")},
        }}),
    );
    put(
        "Written",
        json!({"type": "object", "required": ["revision"], "properties": {
            "revision": {"type": "integer"},
            "value": r("Stored"),
        }}),
    );
    put(
        "Lease",
        json!({"type": "object", "required": ["id", "ttl_ms", "expires_at_ms"], "properties": {
            "id": {"type": "integer"},
            "ttl_ms": int(MIN_LEASE_TTL_MS, MAX_LEASE_TTL_MS),
            "expires_at_ms": {"type": "integer", "description": "ms since the Unix epoch, leader's clock"},
            "owner": {"type": "string", "description": "node that may use it (granted with a node token)"},
        }}),
    );
    put(
        "LeaseGrant",
        json!({"type": "object", "additionalProperties": false, "required": ["ttl_ms"], "properties": {
            "ttl_ms": int(MIN_LEASE_TTL_MS, MAX_LEASE_TTL_MS),
        }, "example": {"ttl_ms": 10000}}),
    );
    put(
        "WatchMessage",
        json!({"oneOf": [
            {"type": "object", "required": ["type", "revision", "events"], "properties": {
                "type": {"type": "string", "enum": ["events"]},
                "revision": {"type": "integer"},
                "events": {"type": "array", "items": {"type": "object", "required": ["type", "key", "value"], "properties": {
                    "type": {"type": "string", "enum": ["put", "delete"]},
                    "key": {"type": "string"},
                    "value": r("Stored"),
                }}},
            }},
            {"type": "object", "required": ["type", "revision"], "properties": {
                "type": {"type": "string", "enum": ["progress"]},
                "revision": {"type": "integer"},
            }},
            {"type": "object", "required": ["type", "floor", "current"], "properties": {
                "type": {"type": "string", "enum": ["compacted"]},
                "floor": {"type": "integer"},
                "current": {"type": "integer"},
            }, "description": "the start revision is gone: list again; the stream ends"},
        ], "discriminator": {"propertyName": "type"}}),
    );
    put(
        "Error",
        json!({
            "type": "object",
            "required": ["error", "field", "reason", "errors"],
            "properties": {
                "error": {"type": "string", "enum": ["invalid", "conflict", "not_found", "not_leader", "unavailable", "unauthorized", "forbidden"]},
                "field": {"type": "string", "description": "first entry of errors: dotted path of the offending field"},
                "reason": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "required": ["field", "reason"], "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}}
            }
        }),
    );
}

/// The document served at `/openapi.json`.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    shared_schemas(&mut schemas);
    let lease_q = json!({"name": "lease", "in": "query", "required": true, "schema": {"type": "integer", "minimum": 0}, "description": "the lease the object hangs off (a node may use only its own)"});
    for kind in Kind::ALL {
        let name = schema_name(kind);
        schemas.insert(name.clone(), kind_schema(kind));
        let base = kind.collection_path();
        let mut coll = json!({"get": op(&format!("list {} at one revision", kind.segment()), ("200", json_body(r("List"))), common_errors())});
        if !kind.is_observed() {
            coll["post"] = with_body(
                op(
                    "create (admin)",
                    ("201", json_body(r("Written"))),
                    write_errors(),
                ),
                r(&name),
            );
        }
        paths.insert(base.clone(), coll);
        let key = key_params(kind);
        let params: Vec<Value> = key
            .iter()
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let item_path = format!(
            "{base}/{}",
            key.iter()
                .map(|p| format!("{{{p}}}"))
                .collect::<Vec<_>>()
                .join("/")
        );
        let mut get_errs = common_errors();
        get_errs.push(("404", err("no such object")));
        let (put_summary, del_summary) = if kind.is_observed() {
            (
                "create or replace under a lease (admin, or the node it reports)",
                "delete (admin, or the node it reports)",
            )
        } else {
            (
                "create or replace (admin); the body's key must match the path",
                "delete (admin); refused while referenced, cascades remote MACs with their switch",
            )
        };
        let mut put = with_body(
            op(
                put_summary,
                ("200", json_body(r("Written"))),
                write_errors(),
            ),
            r(&name),
        );
        if kind.is_observed() {
            put["parameters"] = json!([lease_q]);
        }
        let item = json!({
            "parameters": params,
            "get": op("read one", ("200", json_body(r("Stored"))), get_errs),
            "put": put,
            "delete": op(del_summary, ("200", json_body(r("Written"))), write_errors()),
        });
        paths.insert(item_path, item);
    }
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}]);
    paths.insert(
        "/v1/leases".into(),
        json!({
            "get": op("list leases", ("200", json_body(json!({"type": "array", "items": r("Lease")}))), common_errors()),
            "post": with_body(op("grant a lease (admin or node; a node's lease is owned by it)", ("201", json_body(r("Lease"))), write_errors()), r("LeaseGrant")),
        }),
    );
    let mut lease_get_errs = common_errors();
    lease_get_errs.push(("400", err("id is not an integer")));
    lease_get_errs.push(("404", err("no such lease")));
    paths.insert(
        "/v1/leases/{id}".into(),
        json!({
            "parameters": id.clone(),
            "get": op("read a lease", ("200", json_body(r("Lease"))), lease_get_errs),
            "delete": op("revoke a lease and delete its observed state (admin, or its owner)", ("200", json_body(r("Written"))), write_errors()),
        }),
    );
    paths.insert(
        "/v1/leases/{id}/renew".into(),
        json!({
            "parameters": id,
            "post": op("renew a lease (admin, or its owner); 404: expired, grant a new one", ("200", json_body(r("Lease"))), write_errors()),
        }),
    );
    paths.insert(
        "/v1/state".into(),
        json!({"get": op("every object at one revision", ("200", json_body(r("List"))), common_errors())}),
    );
    let mut watch_errs = common_errors();
    watch_errs.push((
        "400",
        err("bad query: unknown kind, progress_ms out of range"),
    ));
    let mut watch = op(
        "watch every revision after `revision`: newline-delimited JSON, one WatchMessage per line, one line per revision (never split), in order, no gaps",
        (
            "200",
            json!({"description": "stream of WatchMessage lines", "headers": {"X-Bridgehead-Revision": {"schema": {"type": "integer"}, "description": "the server's revision when the stream started"}}, "content": {"application/x-ndjson": {"schema": r("WatchMessage")}}}),
        ),
        watch_errs,
    );
    watch["parameters"] = json!([
        {"name": "revision", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "start after this revision (default: current)"},
        {"name": "kinds", "in": "query", "schema": {"type": "string"}, "description": "comma-separated kind path segments (e.g. logical-switches,bindings)"},
        {"name": "progress_ms", "in": "query", "schema": {"type": "integer", "minimum": 100, "maximum": 3600000}, "description": "bookmark interval"}
    ]);
    paths.insert("/v1/watch".into(), json!({ "get": watch }));
    paths.insert(
        "/healthz".into(),
        json!({"get": public(op("liveness", ("200", text("ok")), vec![("503", text("store stopped"))]))}),
    );
    paths.insert(
        "/readyz".into(),
        json!({"get": public(op("readiness: can take writes", ("200", text("ready")), vec![("503", text("not the leader"))]))}),
    );
    paths.insert(
        "/metrics".into(),
        json!({"get": public(op("Prometheus metrics (text format 0.0.4)", ("200", text("metrics")), vec![]))}),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({"get": public(op("this document", ("200", json_body(json!({"type": "object"}))), vec![]))}),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Bridgehead controller",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Desired state (admin) and observed state (daemons, under leases), list at a revision then watch from it. Writes answer once applied and durable."
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "token from the controller's --tokens file; roles admin, node, reader"}}
        }
    })
}
