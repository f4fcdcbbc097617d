//! The REST API of the real controller binary over a real socket.

mod common;

use common::{WatchStream, json, request, start_controller};
use serde_json::Value;

fn fields(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn crud_validation_and_references() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let a = c.addr;

    let (s, v) = json(
        a,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"web","vni":5001}"#),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["revision"], 1);
    assert_eq!(v["value"]["object"]["spec"]["replication"], "service_node");
    let (s, v) = json(a, "GET", "/v1/logical-switches/web", None);
    assert_eq!((s, v["mod_revision"].as_u64()), (200, Some(1)));

    // Duplicate name and VNI: 409 naming the field.
    let (s, v) = json(
        a,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"web","vni":7}"#),
    );
    assert_eq!(
        (s, v["error"].as_str(), v["field"].as_str()),
        (409, Some("conflict"), Some("name"))
    );
    let (s, v) = json(
        a,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"db","vni":5001}"#),
    );
    assert_eq!((s, v["field"].as_str()), (409, Some("vni")));

    // Every invalid field at once: 400.
    let (s, v) = json(
        a,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"-x","vni":16777216}"#),
    );
    assert_eq!(s, 400);
    assert_eq!(fields(&v), ["name", "vni"]);
    assert!(v["reason"].as_str().unwrap().contains("start"));

    // Syntax errors name their field.
    for (path, body, field) in [
        (
            "/v1/logical-switches",
            r#"{"name":"x","vni":1,"vnii":2}"#,
            "vnii",
        ),
        ("/v1/logical-switches", r#"{"name":"x","vni":-1}"#, "vni"),
        (
            "/v1/logical-switches",
            r#"{"name":"x","vni":1,"replication":"flood"}"#,
            "replication",
        ),
        ("/v1/logical-switches", r#"{"name":"x""#, "body"),
        (
            "/v1/transport-nodes",
            r#"{"name":"hv1","kind":"hypervisor","tunnel_ip":"198.18.0.300"}"#,
            "tunnel_ip",
        ),
        (
            "/v1/transport-nodes",
            r#"{"name":"hv1","kind":"router","tunnel_ip":"198.18.0.3"}"#,
            "kind",
        ),
        (
            "/v1/transport-nodes",
            r#"{"name":"hv1","kind":"hypervisor","tunnel_ip":"198.18.0.3","bfd":{"detect_mult":300}}"#,
            "bfd.detect_mult",
        ),
        (
            "/v1/remote-macs",
            r#"{"logical_switch":"web","mac":"02:00:00:00:00","transport_node":"hv1"}"#,
            "mac",
        ),
        (
            "/v1/bindings",
            r#"{"name":"b","logical_switch":"web","vlan":1,"attachment":{"type":"port"}}"#,
            "attachment.type",
        ),
    ] {
        let (s, v) = json(a, "POST", path, Some(body));
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["field"].as_str(), Some(field), "{body}: {v}");
        assert!(!v["reason"].as_str().unwrap().is_empty());
    }
    // Semantic: multicast tunnel IP, missing OVSDB target.
    let (s, v) = json(
        a,
        "POST",
        "/v1/transport-nodes",
        Some(r#"{"name":"tor1","kind":"hardware_switch","tunnel_ip":"224.0.0.1"}"#),
    );
    assert_eq!(s, 400);
    assert_eq!(fields(&v), ["tunnel_ip", "ovsdb_target"]);

    // References: a binding to an unknown switch is refused.
    let bind = r#"{"name":"b1","logical_switch":"web","vlan":10,"attachment":{"type":"hardware_switch","switch":"tor1","port":"Ethernet1/1"}}"#;
    let (s, v) = json(a, "POST", "/v1/bindings", Some(bind));
    assert_eq!(
        (s, v["field"].as_str()),
        (409, Some("attachment.switch")),
        "{v}"
    );
    let (s, _) = json(
        a,
        "POST",
        "/v1/transport-nodes",
        Some(
            r#"{"name":"tor1","kind":"hardware_switch","tunnel_ip":"198.18.0.9","ovsdb_target":"tcp:198.18.1.9:6640"}"#,
        ),
    );
    assert_eq!(s, 201);
    let (s, _) = json(a, "POST", "/v1/bindings", Some(bind));
    assert_eq!(s, 201);
    let (s, _) = json(
        a,
        "POST",
        "/v1/transport-nodes",
        Some(r#"{"name":"hv1","kind":"hypervisor","tunnel_ip":"198.18.0.1"}"#),
    );
    assert_eq!(s, 201);
    let (s, v) = json(
        a,
        "POST",
        "/v1/remote-macs",
        Some(
            r#"{"logical_switch":"web","mac":"02:00:00:00:00:01","ip":"192.0.2.10","transport_node":"hv1"}"#,
        ),
    );
    assert_eq!(s, 201, "{v}");
    let (s, _) = json(a, "GET", "/v1/remote-macs/web/02:00:00:00:00:01", None);
    assert_eq!(s, 200);
    // MACs in paths are case-insensitive, like in bodies.
    let (s, v) = json(
        a,
        "POST",
        "/v1/remote-macs",
        Some(r#"{"logical_switch":"web","mac":"02:AA:00:00:00:0B","transport_node":"hv1"}"#),
    );
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["value"]["object"]["spec"]["mac"], "02:aa:00:00:00:0b");
    for path in [
        "/v1/remote-macs/web/02:aa:00:00:00:0b",
        "/v1/remote-macs/web/02:AA:00:00:00:0B",
    ] {
        assert_eq!(json(a, "GET", path, None).0, 200, "{path}");
    }

    // Delete policy over HTTP.
    let (s, v) = json(a, "DELETE", "/v1/logical-switches/web", None);
    assert_eq!((s, v["field"].as_str()), (409, Some("bindings")));
    let (s, v) = json(a, "DELETE", "/v1/transport-nodes/hv1", None);
    assert_eq!((s, v["field"].as_str()), (409, Some("remote_macs")));
    let (s, v) = json(a, "DELETE", "/v1/logical-switches/nope", None);
    assert_eq!((s, v["error"].as_str()), (404, Some("not_found")));
    let (s, _) = json(a, "DELETE", "/v1/bindings/b1", None);
    assert_eq!(s, 200);
    let (s, _) = json(a, "DELETE", "/v1/logical-switches/web", None);
    assert_eq!(s, 200);
    let (s, _) = json(a, "GET", "/v1/remote-macs/web/02:00:00:00:00:01", None);
    assert_eq!(s, 404, "remote MAC cascaded with its switch");

    // PUT: path and body must agree; PUT replaces.
    let (s, v) = json(
        a,
        "PUT",
        "/v1/logical-switches/a",
        Some(r#"{"name":"b","vni":9}"#),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("name")));
    let (s, _) = json(
        a,
        "PUT",
        "/v1/logical-switches/a",
        Some(r#"{"name":"a","vni":9}"#),
    );
    assert_eq!(s, 200);
    let (s, v) = json(
        a,
        "PUT",
        "/v1/logical-switches/a",
        Some(r#"{"name":"a","vni":10,"replication":"source_node"}"#),
    );
    assert_eq!(s, 200);
    assert_eq!(
        v["value"]["create_revision"].as_u64().unwrap() + 1,
        v["value"]["mod_revision"].as_u64().unwrap()
    );

    let (s, v) = json(a, "GET", "/v1/logical-switches", None);
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert!(v["revision"].as_u64().unwrap() > 0);

    // Service endpoints.
    assert_eq!(request(a, "GET", "/healthz", None).unwrap().0, 200);
    assert_eq!(request(a, "GET", "/readyz", None).unwrap().0, 200);
    let (s, v) = json(a, "GET", "/openapi.json", None);
    assert_eq!(s, 200);
    assert!(v["paths"]["/v1/watch"].is_object());
    assert!(v["paths"]["/v1/logical-switches/{name}"]["delete"].is_object());
    let (s, v) = json(a, "GET", "/v1/nothing", None);
    assert_eq!((s, v["field"].as_str()), (404, Some("path")));
}

#[test]
fn observed_state_under_leases() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let a = c.addr;
    let (s, v) = json(a, "POST", "/v1/leases", Some(r#"{"ttl_ms":5}"#));
    assert_eq!((s, v["field"].as_str()), (400, Some("ttl_ms")));
    let (s, lease) = json(a, "POST", "/v1/leases", Some(r#"{"ttl_ms":60000}"#));
    assert_eq!(s, 201);
    let id = lease["id"].as_u64().unwrap();
    let body = r#"{"switch":"tor1","connected":true}"#;
    let (s, v) = json(a, "PUT", "/v1/observed/switch-status/tor1", Some(body));
    assert_eq!((s, v["field"].as_str()), (400, Some("lease")));
    let (s, v) = json(
        a,
        "PUT",
        &format!("/v1/observed/switch-status/tor1?lease={}", id + 100),
        Some(body),
    );
    assert_eq!((s, v["field"].as_str()), (404, Some("lease")));
    let (s, v) = json(
        a,
        "PUT",
        &format!("/v1/observed/switch-status/tor1?lease={id}"),
        Some(body),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"]["lease"].as_u64(), Some(id));
    let (s, v) = json(a, "POST", &format!("/v1/leases/{id}/renew"), None);
    assert_eq!(s, 200);
    assert!(v["expires_at_ms"].as_u64().unwrap() >= lease["expires_at_ms"].as_u64().unwrap());
    let (s, v) = json(a, "GET", "/v1/observed/switch-status", None);
    assert_eq!((s, v["items"].as_array().unwrap().len()), (200, 1));
    // Desired state cannot take a lease.
    let (s, v) = json(
        a,
        "PUT",
        &format!("/v1/logical-switches/x?lease={id}"),
        Some(r#"{"name":"x","vni":1}"#),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("lease")));
    let (s, _) = json(a, "DELETE", &format!("/v1/leases/{id}"), None);
    assert_eq!(s, 200);
    let (s, _) = json(a, "GET", "/v1/observed/switch-status/tor1", None);
    assert_eq!(s, 404);
    let (s, _) = json(a, "POST", &format!("/v1/leases/{id}/renew"), None);
    assert_eq!(s, 404);
}

#[test]
fn watch_stream_is_ndjson_one_line_per_revision() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(
        dir.path(),
        &[
            "--history-revisions",
            "5",
            "--history-age-secs",
            "0",
            "--compact-every-ms",
            "50",
        ],
    );
    let a = c.addr;
    let mut w = WatchStream::open(a, "revision=0&progress_ms=200");
    for i in 1..=3 {
        let (s, _) = json(
            a,
            "POST",
            "/v1/logical-switches",
            Some(&format!(r#"{{"name":"s{i}","vni":{i}}}"#)),
        );
        assert_eq!(s, 201);
    }
    for i in 1..=3u64 {
        let l = w.next_line().unwrap();
        assert_eq!(l["type"], "events");
        assert_eq!(l["revision"].as_u64(), Some(i));
        assert_eq!(l["events"][0]["key"], format!("logical-switches/s{i}"));
    }
    // Quiet: a bookmark at the current revision.
    let l = w.next_line().unwrap();
    assert_eq!(
        (l["type"].as_str(), l["revision"].as_u64()),
        (Some("progress"), Some(3))
    );
    // Push history past retention; an old start revision must relist.
    for i in 4..=20 {
        json(
            a,
            "POST",
            "/v1/logical-switches",
            Some(&format!(r#"{{"name":"s{i}","vni":{i}}}"#)),
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut old = WatchStream::open(a, "revision=2");
    let l = old.next_line().unwrap();
    assert_eq!(l["type"], "compacted", "{l}");
    assert_eq!(l["floor"].as_u64(), Some(15));
    assert!(old.next_line().is_none(), "stream ends after compacted");
    let mut resumed = WatchStream::open(a, "revision=15&kinds=logical-switches");
    for r in 16..=20u64 {
        assert_eq!(resumed.next_line().unwrap()["revision"].as_u64(), Some(r));
    }
    let (s, v) = json(a, "GET", "/v1/watch?kinds=nope", None);
    assert_eq!((s, v["field"].as_str()), (400, Some("kinds")));
}

#[test]
fn framework_rejections_are_json_too() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let (s, v) = json(c.addr, "PATCH", "/v1/logical-switches/x", Some("{}"));
    assert_eq!((s, v["field"].as_str()), (405, Some("method")), "{v}");
    let (s, v) = json(
        c.addr,
        "PUT",
        "/v1/observed/switch-status/tor1?lease=abc",
        Some(r#"{"switch":"tor1","connected":true}"#),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("query")), "{v}");
    let (s, v) = json(c.addr, "GET", "/v1/watch?revision=-1", None);
    assert_eq!((s, v["field"].as_str()), (400, Some("query")), "{v}");
    let (s, v) = json(c.addr, "POST", "/v1/leases/x/renew", None);
    assert_eq!((s, v["field"].as_str()), (400, Some("id")), "{v}");
    // Over axum's 2 MiB default body limit.
    let big = format!(r#"{{"name":"x","vni":1,"pad":"{}"}}"#, "a".repeat(3 << 20));
    let (s, v) = json(c.addr, "POST", "/v1/logical-switches", Some(&big));
    assert_eq!((s, v["field"].as_str()), (413, Some("body")), "{v}");
}

#[test]
fn every_observed_kind_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let (_, lease) = json(c.addr, "POST", "/v1/leases", Some(r#"{"ttl_ms":60000}"#));
    let id = lease["id"].as_u64().unwrap();
    for (path, body) in [
        (
            "learned-macs/tor1/web/02:00:00:00:00:07",
            r#"{"reporter":"tor1","logical_switch":"web","mac":"02:00:00:00:00:07","ip":"192.0.2.7"}"#,
        ),
        (
            "tunnel-status/hv1/198.18.0.2",
            r#"{"reporter":"hv1","remote_ip":"198.18.0.2","state":"up"}"#,
        ),
        (
            "election-state/g1/gw1",
            r#"{"group":"g1","member":"gw1","role":"leader","leader":"gw1"}"#,
        ),
        (
            "switch-status/tor1",
            r#"{"switch":"tor1","connected":false,"faults":["power_supply_failure"]}"#,
        ),
    ] {
        let url = format!("/v1/observed/{path}?lease={id}");
        let (s, v) = json(c.addr, "PUT", &url, Some(body));
        assert_eq!(s, 200, "{path}: {v}");
        let (s, v) = json(c.addr, "GET", &format!("/v1/observed/{path}"), None);
        assert_eq!(s, 200, "{path}: {v}");
        assert_eq!(v["lease"].as_u64(), Some(id));
        let sent: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["object"]["spec"], sent, "{path}");
    }
    // A body whose key disagrees with the path is refused.
    let (s, v) = json(
        c.addr,
        "PUT",
        &format!("/v1/observed/tunnel-status/hv1/198.18.0.3?lease={id}"),
        Some(r#"{"reporter":"hv1","remote_ip":"198.18.0.2","state":"down"}"#),
    );
    assert_eq!((s, v["field"].as_str()), (400, Some("name")));
    let (s, v) = json(c.addr, "GET", "/v1/state", None);
    assert_eq!(s, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 4);
    let (s, _) = json(c.addr, "DELETE", "/v1/observed/switch-status/tor1", None);
    assert_eq!(s, 200);
    let (s, _) = json(c.addr, "DELETE", "/v1/observed/switch-status/tor1", None);
    assert_eq!(s, 404);
}

#[test]
fn sigterm_ends_open_watches_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start_controller(dir.path(), &[]);
    let mut w = WatchStream::open(c.addr, "revision=0&progress_ms=60000");
    let (s, _) = json(
        c.addr,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"a","vni":1}"#),
    );
    assert_eq!(s, 201);
    assert_eq!(w.next_line().unwrap()["revision"], 1);
    let pid = c.child.id().to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(w.next_line().is_none(), "the watch stream ends");
    let t0 = std::time::Instant::now();
    loop {
        if let Some(status) = c.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // And the data is there on the next start.
    drop(c);
    let c = start_controller(dir.path(), &[]);
    assert_eq!(json(c.addr, "GET", "/v1/logical-switches/a", None).0, 200);
}
