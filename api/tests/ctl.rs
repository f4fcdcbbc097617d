//! `bridgehead-ctl` as a process against the real controller over TLS with tokens.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Controller, make_certs, spawn_controller};
use serde_json::Value;

const ADMIN: &str = "admin-token-0123456789";
const READER: &str = "reader-token-0123456789";

struct Ctl {
    server: String,
    ca: std::path::PathBuf,
}

impl Ctl {
    fn cmd(&self, token: Option<&str>, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bridgehead-ctl"));
        c.args(["--server", &self.server, "--ca"])
            .arg(&self.ca)
            .args(args)
            .env_remove("BRIDGEHEAD_TOKEN");
        if let Some(t) = token {
            // The token travels in the environment, as operators would keep it.
            c.env("BRIDGEHEAD_TOKEN", t);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(Some(ADMIN), args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn fails(&self, token: Option<&str>, args: &[&str]) -> String {
        let o = self.cmd(token, args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?} should fail: {o:?}");
        String::from_utf8(o.stderr).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-o", "json"];
        a.extend(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
}

/// Kills the watch process on drop (also on panic).
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn setup(dir: &Path) -> (Controller, Ctl) {
    let certs = make_certs(dir);
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = \"{ADMIN}\"\n\
             [[tokens]]\nname = \"dash\"\nrole = \"reader\"\ntoken = \"{READER}\"\n"
        ),
    )
    .unwrap();
    let c = spawn_controller(
        &dir.join("data"),
        &[
            "--tokens",
            tokens.to_str().unwrap(),
            "--tls-cert",
            certs.cert.to_str().unwrap(),
            "--tls-key",
            certs.key.to_str().unwrap(),
        ],
    );
    let ctl = Ctl {
        server: format!("https://127.0.0.1:{}", c.addr.port()),
        ca: certs.ca,
    };
    for _ in 0..200 {
        if ctl.run(&["list"]).status.success() {
            return (c, ctl);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("controller never answered ctl");
}

#[test]
fn every_resource_through_ctl() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, ctl) = setup(dir.path());

    // A watch running while everything happens.
    let mut watch = Reaper(
        ctl.cmd(Some(READER), &["-o", "json", "watch", "--from", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Create from flags, every desired kind.
    let out = ctl.ok(&["create", "logical-switch", "--name", "web", "--vni", "5001"]);
    assert_eq!(out.trim(), "created logical-switches/web at revision 1");
    ctl.ok(&[
        "create",
        "transport-node",
        "--name",
        "gw1",
        "--node-kind",
        "gateway",
        "--tunnel-ip",
        "198.18.0.1",
        "--bfd-min-tx-ms",
        "300",
    ]);
    ctl.ok(&[
        "create",
        "tn",
        "--name",
        "tor1",
        "--node-kind",
        "hardware_switch",
        "--tunnel-ip",
        "198.18.0.9",
        "--ovsdb-target",
        "tcp:198.18.1.9:6640",
    ]);
    ctl.ok(&[
        "create",
        "gateway-group",
        "--name",
        "g1",
        "--member",
        "gw1:1:10",
        "--vtep-ip",
        "198.18.0.100",
        "--physical-interface",
        "eth1",
        "--ma-name",
        "bh-g1",
    ]);
    ctl.ok(&[
        "create",
        "binding",
        "--name",
        "b1",
        "--logical-switch",
        "web",
        "--vlan",
        "10",
        "--group",
        "g1",
    ]);
    ctl.ok(&[
        "create",
        "bindings",
        "--name",
        "b2",
        "--logical-switch",
        "web",
        "--vlan",
        "0",
        "--switch",
        "tor1",
        "--port",
        "Ethernet1/1",
    ]);
    ctl.ok(&[
        "create",
        "remote-mac",
        "--logical-switch",
        "web",
        "--mac",
        "02:00:00:00:00:AA",
        "--transport-node",
        "gw1",
        "--ip",
        "192.0.2.5",
    ]);
    // From a file and from stdin.
    let f = dir.path().join("ls.json");
    std::fs::write(&f, r#"{"name":"app","vni":77,"replication":"source_node"}"#).unwrap();
    ctl.ok(&["create", "logical-switches", "-f", f.to_str().unwrap()]);
    let mut child = ctl
        .cmd(Some(ADMIN), &["create", "ls", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"name":"db","vni":78}"#)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "created logical-switches/db at revision 9"
    );

    // Replace.
    std::fs::write(&f, r#"{"name":"app","vni":79}"#).unwrap();
    assert!(
        ctl.ok(&["replace", "ls", "-f", f.to_str().unwrap()])
            .starts_with("replaced logical-switches/app")
    );

    // Observed state under a lease.
    let lease = ctl.json(&["lease", "grant", "--ttl-ms", "60000"]);
    let id = lease["id"].as_u64().unwrap().to_string();
    let obs = dir.path().join("st.json");
    std::fs::write(
        &obs,
        r#"{"switch":"tor1","connected":true,"faults":["fan"]}"#,
    )
    .unwrap();
    ctl.ok(&[
        "create",
        "switch-status",
        "-f",
        obs.to_str().unwrap(),
        "--lease",
        &id,
    ]);
    let table = ctl.ok(&["list", "switch-status"]);
    assert!(
        table.lines().next().unwrap().starts_with("SWITCH"),
        "{table}"
    );
    assert!(table.contains("tor1") && table.contains("fan"), "{table}");
    assert!(ctl.ok(&["lease", "list"]).contains("60000"));

    // Tables and JSON.
    let t = ctl.ok(&["list", "logical-switches"]);
    let lines: Vec<&str> = t.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "VNI", "REPLICATION", "MOD_REV"]);
    assert_eq!(lines.len(), 1 + 3 + 1, "{t}");
    assert!(
        lines.iter().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["app", "79", "service_node", "10"]
        ),
        "{t}"
    );
    let gg = ctl.ok(&["get", "gg", "g1"]);
    assert!(
        gg.contains("gw1:1:10") && gg.contains("198.18.0.100"),
        "{gg}"
    );
    let b = ctl.ok(&["list", "bindings"]);
    assert!(b.contains("tor1:Ethernet1/1") && b.contains("g1"), "{b}");
    let v = ctl.json(&["get", "remote-mac", "web/02:00:00:00:00:AA"]);
    assert_eq!(v["object"]["spec"]["ip"], "192.0.2.5");
    let all = ctl.json(&["list"]);
    assert_eq!(all["items"].as_array().unwrap().len(), 10);
    let all = ctl.ok(&["list", "all"]);
    assert!(all.contains("remote-macs/web/02:00:00:00:00:aa"), "{all}");
    for kind in [
        "logical-switches",
        "transport-nodes",
        "gateway-groups",
        "bindings",
        "remote-macs",
        "learned-macs",
        "tunnel-status",
        "election-state",
        "switch-status",
    ] {
        let v = ctl.json(&["list", kind]);
        assert!(v["revision"].as_u64().unwrap() >= 11, "{kind}");
    }

    // Errors carry the server's field and reason.
    let e = ctl.fails(Some(ADMIN), &["create", "ls", "--name", "x", "--vni", "0"]);
    assert!(
        e.contains("400 invalid") && e.contains("vni: must be in 1..=16777215"),
        "{e}"
    );
    let e = ctl.fails(Some(ADMIN), &["create", "ls", "--name", "x"]);
    assert!(e.contains("vni: missing field"), "{e}");
    let e = ctl.fails(
        Some(ADMIN),
        &["create", "ls", "--name", "y", "--vni", "5001"],
    );
    assert!(e.contains("409 conflict") && e.contains("vni:"), "{e}");
    let e = ctl.fails(Some(ADMIN), &["get", "ls", "nope"]);
    assert!(e.contains("404 not_found"), "{e}");
    let e = ctl.fails(Some(ADMIN), &["delete", "ls", "web"]);
    assert!(e.contains("409 conflict") && e.contains("bindings"), "{e}");
    let e = ctl.fails(
        Some(ADMIN),
        &["create", "ls", "--name", "z", "--vni", "3", "--vlan", "4"],
    );
    assert!(
        e.contains("--vlan does not apply to logical-switches"),
        "{e}"
    );
    let e = ctl.fails(Some(ADMIN), &["create", "nonsense", "--name", "z"]);
    assert!(e.contains("unknown kind"), "{e}");
    let e = ctl.fails(Some(READER), &["create", "ls", "--name", "r", "--vni", "9"]);
    assert!(e.contains("403 forbidden") && e.contains("role"), "{e}");
    let e = ctl.fails(None, &["list"]);
    assert!(e.contains("401 unauthorized"), "{e}");

    // Deletes, in dependency order.
    for (k, n) in [
        ("binding", "b1"),
        ("binding", "b2"),
        ("remote-mac", "web/02:00:00:00:00:aa"),
        ("gateway-group", "g1"),
        ("logical-switch", "web"),
        ("switch-status", "tor1"),
    ] {
        let out = ctl.ok(&["delete", k, n]);
        assert!(out.starts_with("deleted "), "{out}");
    }
    ctl.ok(&["lease", "revoke", &id]);

    // The watch saw every revision, in order.
    let last = ctl.json(&["list"])["revision"].as_u64().unwrap();
    let mut lines = BufReader::new(watch.0.stdout.take().unwrap()).lines();
    let mut revs = Vec::new();
    while revs.last() != Some(&last) {
        let l = lines.next().expect("watch output").unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        if v["type"] == "events" {
            revs.push(v["revision"].as_u64().unwrap());
        }
    }
    assert_eq!(revs, (1..=last).collect::<Vec<_>>());
}

#[test]
fn watch_table_and_bad_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (_c, ctl) = setup(dir.path());
    let mut watch = Reaper(
        ctl.cmd(Some(READER), &["watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(watch.0.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("REV"));
    ctl.ok(&["create", "ls", "--name", "web", "--vni", "1"]);
    let l = lines.next().unwrap().unwrap();
    assert_eq!(
        l.split_whitespace().collect::<Vec<_>>(),
        ["1", "put", "logical-switches/web"]
    );
    // A CA that did not sign the server's certificate.
    let other = tempfile::tempdir().unwrap();
    let other = make_certs(other.path());
    let o = Command::new(env!("CARGO_BIN_EXE_bridgehead-ctl"))
        .args(["--server", &ctl.server, "--token", ADMIN, "--ca"])
        .arg(&other.ca)
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("connect"),
        "{o:?}"
    );
}
