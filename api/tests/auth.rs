//! Bearer-token authentication and roles, against the real binary.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Controller, WatchStream, json_as, request_with, start_controller};

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";
const GW1: &str = "gw1-token-0123456789";
const HV2: &str = "hv2-token-0123456789";

fn write_tokens(path: &Path, extra: &str) {
    let text = format!(
        r#"
[[tokens]]
name = "ops"
role = "admin"
token = "{ADMIN}"

[[tokens]]
name = "dashboard"
role = "reader"
token = "{READER}"

[[tokens]]
name = "gw1-daemon"
role = "node"
node = "gw1"
acts_for = ["tor1"]
token = "{GW1}"

[[tokens]]
name = "hv2-daemon"
role = "node"
node = "hv2"
token = "{HV2}"
{extra}"#
    );
    std::fs::write(path, text).unwrap();
}

fn start() -> (tempfile::TempDir, Controller) {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    write_tokens(&tokens, "");
    let data = dir.path().join("data");
    let c = start_controller(&data, &["--tokens", tokens.to_str().unwrap()]);
    (dir, c)
}

#[test]
fn missing_or_wrong_token_is_401_with_challenge() {
    let (_d, c) = start();
    for headers in [
        vec![],
        vec![("Authorization", "Bearer not-a-known-token-at-all")],
        vec![("Authorization", "Basic YWRtaW46YWRtaW4=")],
        vec![("Authorization", "Bearer")],
    ] {
        for (method, path) in [
            ("GET", "/v1/logical-switches"),
            ("POST", "/v1/logical-switches"),
            ("GET", "/v1/watch"),
            ("GET", "/v1/state"),
            ("GET", "/v1/no-such-thing"),
            ("POST", "/v1/leases"),
        ] {
            let a = request_with(c.addr, method, path, Some("{}"), &headers).unwrap();
            assert_eq!(a.status, 401, "{method} {path} {headers:?}");
            let www = a.header("www-authenticate").expect("challenge");
            assert!(www.starts_with("Bearer"), "{www}");
            let v = a.json();
            assert_eq!(v["error"], "unauthorized");
            assert_eq!(v["field"], "authorization");
        }
    }
    // Probes, the scraper and the API description need no token.
    for path in ["/healthz", "/readyz", "/openapi.json", "/metrics"] {
        assert_eq!(
            request_with(c.addr, "GET", path, None, &[]).unwrap().status,
            200,
            "{path}"
        );
    }
}

#[test]
fn reader_reads_only() {
    let (_d, c) = start();
    let a = c.addr;
    let (s, _) = json_as(
        a,
        ADMIN,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"web","vni":5}"#),
    );
    assert_eq!(s, 201);
    for path in [
        "/v1/logical-switches",
        "/v1/logical-switches/web",
        "/v1/observed/learned-macs",
        "/v1/leases",
        "/v1/state",
    ] {
        assert_eq!(json_as(a, READER, "GET", path, None).0, 200, "{path}");
    }
    let mut w = WatchStream::open_with(
        a,
        "revision=0",
        &[("Authorization", &format!("Bearer {READER}"))],
    );
    assert_eq!(w.next_line().unwrap()["revision"], 1);
    for (method, path, body) in [
        ("POST", "/v1/logical-switches", r#"{"name":"db","vni":6}"#),
        (
            "PUT",
            "/v1/logical-switches/web",
            r#"{"name":"web","vni":7}"#,
        ),
        ("DELETE", "/v1/logical-switches/web", ""),
        ("POST", "/v1/leases", r#"{"ttl_ms":1000}"#),
        ("POST", "/v1/leases/1/renew", ""),
        ("DELETE", "/v1/leases/1", ""),
        (
            "PUT",
            "/v1/observed/switch-status/tor1?lease=1",
            r#"{"switch":"tor1","connected":true}"#,
        ),
        ("DELETE", "/v1/observed/switch-status/tor1", ""),
    ] {
        let (s, v) = json_as(a, READER, method, path, Some(body));
        assert_eq!(
            (s, v["error"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {v}"
        );
        assert_eq!(v["field"], "role");
    }
}

#[test]
fn node_writes_only_its_own_observed_state_and_leases() {
    let (_d, c) = start();
    let a = c.addr;
    let (s, _) = json_as(
        a,
        ADMIN,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"web","vni":5}"#),
    );
    assert_eq!(s, 201);
    // Reads desired state; may not change it.
    assert_eq!(
        json_as(a, GW1, "GET", "/v1/logical-switches/web", None).0,
        200
    );
    assert_eq!(json_as(a, GW1, "GET", "/v1/state", None).0, 200);
    for (method, path, body) in [
        ("POST", "/v1/logical-switches", r#"{"name":"db","vni":6}"#),
        (
            "PUT",
            "/v1/logical-switches/web",
            r#"{"name":"web","vni":7}"#,
        ),
        ("DELETE", "/v1/logical-switches/web", ""),
        (
            "POST",
            "/v1/transport-nodes",
            r#"{"name":"gw1","kind":"gateway","tunnel_ip":"198.18.0.1"}"#,
        ),
    ] {
        let (s, v) = json_as(a, GW1, method, path, Some(body));
        assert_eq!(
            (s, v["field"].as_str()),
            (403, Some("role")),
            "{method} {path}: {v}"
        );
    }

    // Leases: granted to the node, usable only by it.
    let (s, l1) = json_as(a, GW1, "POST", "/v1/leases", Some(r#"{"ttl_ms":60000}"#));
    assert_eq!(s, 201, "{l1}");
    assert_eq!(l1["owner"], "gw1");
    let gw_lease = l1["id"].as_u64().unwrap();
    let (_, l2) = json_as(a, HV2, "POST", "/v1/leases", Some(r#"{"ttl_ms":60000}"#));
    let hv_lease = l2["id"].as_u64().unwrap();
    let (_, l3) = json_as(a, ADMIN, "POST", "/v1/leases", Some(r#"{"ttl_ms":60000}"#));
    let admin_lease = l3["id"].as_u64().unwrap();
    assert!(l3.get("owner").is_none(), "{l3}");

    // Its own observed state, including for a switch it acts for.
    for (path, body) in [
        (
            "learned-macs/gw1/web/02:00:00:00:00:01",
            r#"{"reporter":"gw1","logical_switch":"web","mac":"02:00:00:00:00:01"}"#,
        ),
        (
            "tunnel-status/gw1/198.18.0.2",
            r#"{"reporter":"gw1","remote_ip":"198.18.0.2","state":"up"}"#,
        ),
        (
            "election-state/g1/gw1",
            r#"{"group":"g1","member":"gw1","role":"leader","leader":"gw1"}"#,
        ),
        (
            "switch-status/tor1",
            r#"{"switch":"tor1","connected":true}"#,
        ),
    ] {
        let url = format!("/v1/observed/{path}?lease={gw_lease}");
        let (s, v) = json_as(a, GW1, "PUT", &url, Some(body));
        assert_eq!(s, 200, "{path}: {v}");
        // Not under someone else's lease, nor an admin's.
        for other in [hv_lease, admin_lease] {
            let url = format!("/v1/observed/{path}?lease={other}");
            let (s, v) = json_as(a, GW1, "PUT", &url, Some(body));
            assert_eq!(
                (s, v["field"].as_str()),
                (403, Some("lease")),
                "{path}: {v}"
            );
        }
        // And another node may not overwrite or delete it.
        let url = format!("/v1/observed/{path}?lease={hv_lease}");
        let (s, v) = json_as(a, HV2, "PUT", &url, Some(body));
        assert_eq!(s, 403, "{path}: {v}");
        let (s, _) = json_as(a, HV2, "DELETE", &format!("/v1/observed/{path}"), None);
        assert_eq!(s, 403, "{path}");
    }
    // Not as another node: the reporting field names the problem.
    for (path, body, field) in [
        (
            "learned-macs/hv2/web/02:00:00:00:00:02",
            r#"{"reporter":"hv2","logical_switch":"web","mac":"02:00:00:00:00:02"}"#,
            "reporter",
        ),
        (
            "tunnel-status/hv2/198.18.0.2",
            r#"{"reporter":"hv2","remote_ip":"198.18.0.2","state":"up"}"#,
            "reporter",
        ),
        (
            "election-state/g1/gw2",
            r#"{"group":"g1","member":"gw2","role":"standby"}"#,
            "member",
        ),
        (
            "switch-status/tor2",
            r#"{"switch":"tor2","connected":true}"#,
            "switch",
        ),
    ] {
        let url = format!("/v1/observed/{path}?lease={gw_lease}");
        let (s, v) = json_as(a, GW1, "PUT", &url, Some(body));
        assert_eq!((s, v["field"].as_str()), (403, Some(field)), "{path}: {v}");
    }
    // Renew and revoke: only its own.
    let renew =
        |tok: &str, id: u64| json_as(a, tok, "POST", &format!("/v1/leases/{id}/renew"), None).0;
    assert_eq!(renew(GW1, gw_lease), 200);
    assert_eq!(renew(GW1, hv_lease), 403);
    assert_eq!(renew(GW1, admin_lease), 403);
    assert_eq!(renew(ADMIN, hv_lease), 200);
    assert_eq!(
        json_as(a, GW1, "DELETE", &format!("/v1/leases/{hv_lease}"), None).0,
        403
    );
    // Deleting its own observed object; a missing one is a plain 404.
    let (s, _) = json_as(a, GW1, "DELETE", "/v1/observed/switch-status/tor1", None);
    assert_eq!(s, 200);
    let (s, _) = json_as(a, GW1, "DELETE", "/v1/observed/switch-status/tor1", None);
    assert_eq!(s, 404);
    // Revoking its own lease removes what hangs off it.
    assert_eq!(
        json_as(a, GW1, "DELETE", &format!("/v1/leases/{gw_lease}"), None).0,
        200
    );
    let (s, v) = json_as(a, READER, "GET", "/v1/observed/learned-macs", None);
    assert_eq!((s, v["items"].as_array().unwrap().len()), (200, 0));
}

#[test]
fn admin_does_everything() {
    let (_d, c) = start();
    let a = c.addr;
    let (s, _) = json_as(
        a,
        ADMIN,
        "POST",
        "/v1/logical-switches",
        Some(r#"{"name":"web","vni":5}"#),
    );
    assert_eq!(s, 201);
    let (_, l) = json_as(a, GW1, "POST", "/v1/leases", Some(r#"{"ttl_ms":60000}"#));
    let id = l["id"].as_u64().unwrap();
    // Under a node's lease, as any reporter.
    let (s, v) = json_as(
        a,
        ADMIN,
        "PUT",
        &format!("/v1/observed/switch-status/tor9?lease={id}"),
        Some(r#"{"switch":"tor9","connected":false}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        json_as(a, ADMIN, "DELETE", "/v1/observed/switch-status/tor9", None).0,
        200
    );
    assert_eq!(
        json_as(a, ADMIN, "POST", &format!("/v1/leases/{id}/renew"), None).0,
        200
    );
    assert_eq!(
        json_as(a, ADMIN, "DELETE", &format!("/v1/leases/{id}"), None).0,
        200
    );
    assert_eq!(
        json_as(a, ADMIN, "DELETE", "/v1/logical-switches/web", None).0,
        200
    );
}

#[test]
fn sighup_reloads_tokens_and_a_bad_file_keeps_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    write_tokens(&tokens, "");
    let c = start_controller(
        &dir.path().join("data"),
        &["--tokens", tokens.to_str().unwrap()],
    );
    let newcomer = "newcomer-token-0123456789";
    assert_eq!(json_as(c.addr, newcomer, "GET", "/v1/state", None).0, 401);
    let hup = |c: &Controller| {
        let st = Command::new("kill")
            .args(["-HUP", &c.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    write_tokens(
        &tokens,
        &format!("[[tokens]]\nname = \"new\"\nrole = \"reader\"\ntoken = \"{newcomer}\"\n"),
    );
    hup(&c);
    let wait_for = |tok: &str, want: u16| {
        for _ in 0..100 {
            if json_as(c.addr, tok, "GET", "/v1/state", None).0 == want {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("{tok} never got {want}");
    };
    wait_for(newcomer, 200);
    // A broken file: the tokens in force stay.
    std::fs::write(&tokens, "[[tokens]]\nname = 1\n").unwrap();
    hup(&c);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(json_as(c.addr, newcomer, "GET", "/v1/state", None).0, 200);
    assert_eq!(json_as(c.addr, ADMIN, "GET", "/v1/state", None).0, 200);
    // Removing a token revokes it.
    write_tokens(&tokens, "");
    hup(&c);
    wait_for(newcomer, 401);
    assert_eq!(json_as(c.addr, ADMIN, "GET", "/v1/state", None).0, 200);
}

#[test]
fn refuses_to_start_without_tokens_or_with_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bridgehead-controller"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&[]);
    assert!(e.contains("--insecure-no-auth"), "{e}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[tokens]]\nname = \"n\"\nrole = \"node\"\ntoken = \"0123456789abcdef\"\n",
    )
    .unwrap();
    let e = run(&["--tokens", bad.to_str().unwrap()]);
    assert!(e.contains("tokens[0].node"), "{e}");
    let e = run(&["--tokens", bad.to_str().unwrap(), "--insecure-no-auth"]);
    assert!(e.contains("cannot be used with"), "{e}");
}
