//! `bridgehead-vtep-sync` against a real `bridgehead-controller` (with
//! tokens: the daemons run with a node token that acts for the switch) and
//! a real ovsdb-server serving the hardware_vtep schema, vtep-ctl playing
//! the switch's own agent:
//!
//! - objects created through the API become rows in the switch, and the
//!   store-lag metric settles at 0;
//! - a `Ucast_Macs_Local` row inserted with vtep-ctl becomes a LearnedMac in
//!   the store (with its IP) under the daemon's lease, and is withdrawn
//!   when the row goes; a Tunnel's `bfd_status` becomes a TunnelStatus; the
//!   switch's SwitchStatus says connected, carries the switch's tunnel IP
//!   and port p1, and a `port_fault_status` set with vtep-ctl shows under
//!   p1 (not in the switch-level faults), and disconnected while its
//!   ovsdb-server is down (the learned MAC stays);
//! - a daemon killed with SIGKILL and started again writes no row (0
//!   committed transactions, every controller-owned row keeps its
//!   `_version`) and takes the learned MACs over under its own lease, which
//!   outlive the dead daemon's lease;
//! - two instances: only the OVSDB lock holder writes (the other commits
//!   nothing and writes nothing to the store); when the holder is killed
//!   the other takes over, writes the switch and owns the observed state;
//!   its lease revoked, it grants another and writes everything again;
//! - headless: with the controller stopped the switch keeps its rows and
//!   drift is still corrected from the state in force; once the controller
//!   is back, later changes reach the switch;
//! - SIGTERM stops the daemon and leaves every row as it is.
//!
//! The controller binary is another package's: `api::testing` asks the
//! cargo that runs the test (`$CARGO`) to build it into this test's own
//! target directory (a no-op when fresh).
//!
//! Run: `cargo test -p vtep-sync --features root-tests --test daemon`.
#![cfg(feature = "root-tests")]

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::client::{Client, ClientConfig};
use api::model::{
    Attachment, BfdParams, BfdState, Binding, Key, Kind, LeaseId, LogicalSwitch, NodeKind, Object,
    RemoteMac, Replication, Stored, TransportNode,
};
use api::testing::{Controller, ControllerCmd, build_controller};
use serde_json::{Value, json};
use support::{OvsdbServer, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_bridgehead-vtep-sync");
const ADMIN_TOKEN: &str = "admin-token-0123456789";
const NODE_TOKEN: &str = "nvc1-node-token-0123456789";
const LIMIT: Duration = Duration::from_secs(15);
const TTL: Duration = Duration::from_secs(3);
const LOCAL_MAC: &str = "02:00:00:00:aa:01";
const KEPT_MAC: &str = "02:00:00:00:aa:02";

/// A child process killed by PID on drop (also on panic).
struct Proc(Option<Child>);

impl Proc {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then the exit status (killed after 10 s).
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.0.take().expect("running");
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the controller on `addr` with the tokens file (log appended to
/// `controller.log`).
fn start_controller(bin: &Path, dir: &Path, addr: &str) -> Controller {
    ControllerCmd::new(bin, dir.join("store"))
        .listen(addr)
        .tokens(dir.join("tokens.toml"))
        .args(["--progress-ms", "200"])
        .log(dir.join("controller.log"))
        .spawn()
}

fn write_tokens(dir: &Path) {
    std::fs::write(
        dir.join("tokens.toml"),
        format!(
            "[[tokens]]\nname = \"test\"\nrole = \"admin\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
             [[tokens]]\nname = \"nvc1-vtep-sync\"\nrole = \"node\"\nnode = \"nvc1\"\n\
             acts_for = [\"tor1\"]\ntoken = \"{NODE_TOKEN}\"\n"
        ),
    )
    .unwrap();
}

/// The controller built and started on a free loopback port with the tokens
/// file, its files in a fresh directory named `prefix`…, and an admin
/// client to it. Returns (controller binary, directory, address,
/// controller, admin client).
fn controller_env(prefix: &str) -> (PathBuf, tempfile::TempDir, String, Controller, Client) {
    let ctrl_bin = build_controller();
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    write_tokens(dir.path());
    let addr = format!("127.0.0.1:{}", free_port());
    let controller = start_controller(&ctrl_bin, dir.path(), &addr);
    let admin =
        Client::new(ClientConfig::new(format!("http://{addr}")).token(ADMIN_TOKEN)).unwrap();
    (ctrl_bin, dir, addr, controller, admin)
}

/// One daemon instance, its metrics address and log.
struct Daemon {
    proc: Proc,
    metrics: String,
    log: PathBuf,
}

fn start_daemon(dir: &Path, controller: &str, name: &str) -> Daemon {
    start_daemon_with(dir, controller, name, &[])
}

fn start_daemon_with(dir: &Path, controller: &str, name: &str, extra: &[&str]) -> Daemon {
    let metrics = format!("127.0.0.1:{}", free_port());
    let log = dir.join(format!("vtep-sync-{name}.log"));
    let child = Command::new(BIN)
        .args(["--controller", &format!("http://{controller}")])
        .args(["--token", NODE_TOKEN, "--switch", "tor1", "--name", name])
        .args(["--metrics-listen", &metrics, "--lease-ttl", "3s"])
        .args(extra)
        .env("RUST_LOG", "info,vtep_sync=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Daemon {
        proc: Proc(Some(child)),
        metrics,
        log,
    }
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of one series (`name{labels}`), if the daemon answers.
    async fn metric(&self, series: &str) -> Option<f64> {
        let mut s = tokio::net::TcpStream::connect(&self.metrics).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    async fn until_metric(&self, series: &str, pred: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + LIMIT;
        loop {
            let v = self.metric(series).await;
            if let Some(v) = v.filter(|v| pred(*v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{series} = {v:?} after {LIMIT:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn sw(series: &str) -> String {
    format!("bridgehead_vtep_sync_{series}{{switch=\"tor1\"}}")
}

fn committed() -> String {
    "bridgehead_vtep_sync_transactions_total{result=\"committed\",switch=\"tor1\"}".to_owned()
}

async fn until<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn remote_mac(mac: &str) -> Object {
    Object::RemoteMac(RemoteMac {
        logical_switch: "web".into(),
        mac: mac.parse().unwrap(),
        ip: None,
        transport_node: "hv1".into(),
    })
}

fn desired_objects(sock: &Path) -> Vec<Object> {
    vec![
        Object::LogicalSwitch(LogicalSwitch {
            name: "web".into(),
            vni: 5001,
            replication: Replication::SourceNode,
        }),
        Object::TransportNode(TransportNode {
            name: "hv1".into(),
            kind: NodeKind::Hypervisor,
            tunnel_ip: "198.18.0.11".parse().unwrap(),
            bfd: BfdParams::default(),
            ovsdb_target: None,
        }),
        tor1_node(format!("unix:{}", sock.display())),
        Object::Binding(Binding {
            name: "web-tor1-p1".into(),
            logical_switch: "web".into(),
            attachment: Attachment::HardwareSwitch {
                switch: "tor1".into(),
                port: "p1".into(),
            },
            vlan: 10,
        }),
        remote_mac("02:00:00:00:00:01"),
    ]
}

fn tor1_node(target: String) -> Object {
    Object::TransportNode(TransportNode {
        name: "tor1".into(),
        kind: NodeKind::HardwareSwitch,
        tunnel_ip: "198.18.0.1".parse().unwrap(),
        bfd: BfdParams::default(),
        ovsdb_target: Some(target),
    })
}

/// The switch's remote MACs, as vtep-ctl lists them.
fn remote_macs(srv: &OvsdbServer) -> String {
    srv.vtep_ctl(&["list-remote-macs", "web"])
}

fn has_remote(srv: &OvsdbServer, mac: &str) -> bool {
    // Before the logical switch exists vtep-ctl fails; that is "not yet".
    let out = Command::new("vtep-ctl")
        .arg(format!("--db=unix:{}", srv.sock.display()))
        .args(["--timeout=5", "list-remote-macs", "web"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(&format!("{mac} -> vxlan_over_ipv4/198.18.0.11"))
}

/// `_uuid` → `_version` of every row of the tables the controller writes.
fn versions(srv: &OvsdbServer) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for table in [
        "Logical_Switch",
        "Physical_Port",
        "Ucast_Macs_Remote",
        "Mcast_Macs_Remote",
        "Physical_Locator_Set",
        "Physical_Locator",
    ] {
        let q = json!(["hardware_vtep",
            {"op": "select", "table": table, "where": [], "columns": ["_uuid", "_version"]}]);
        let o = Command::new("ovsdb-client")
            .arg("transact")
            .arg(format!("unix:{}", srv.sock.display()))
            .arg(q.to_string())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let rows = v[0]["rows"].as_array().unwrap();
        let m = rows
            .iter()
            .map(|r| (r["_uuid"][1].to_string(), r["_version"][1].to_string()))
            .collect();
        out.insert(table.to_owned(), m);
    }
    out
}

async fn get(c: &Client, key: &Key) -> Option<Stored> {
    c.get(key).await.ok().flatten()
}

fn learned_key(mac: &str) -> Key {
    Key::new(Kind::LearnedMac, format!("tor1/web/{mac}"))
}

/// Waits until tor1's switch status in the store says `connected`.
async fn until_switch_status(admin: &Client, connected: bool) {
    let key = Key::new(Kind::SwitchStatus, "tor1");
    let what = if connected {
        "tor1 connected in the store"
    } else {
        "tor1 disconnected in the store"
    };
    until(what, async || match get(admin, &key).await?.object {
        Object::SwitchStatus(s) if s.connected == connected => Some(()),
        _ => None,
    })
    .await
}

/// The lease a stored object hangs off, once it exists.
async fn lease_of(c: &Client, key: &Key) -> LeaseId {
    until(&format!("{key} in the store"), async || {
        get(c, key).await.and_then(|s| s.lease)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_against_a_real_controller_and_switch() {
    let (ctrl_bin, dir, addr, controller, admin) = controller_env("vtep-sync-daemon");

    let srv = OvsdbServer::start();
    srv.add_tor1(&["p1"]);

    // --- the daemon starts before the store describes its switch
    let mut a = start_daemon(dir.path(), &addr, "a");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        srv.vtep_ctl(&["list-ls"]).trim().is_empty(),
        "wrote before the store described the switch"
    );
    let t = Instant::now();
    for o in desired_objects(&srv.sock) {
        admin.put(&o).await.unwrap_or_else(|e| panic!("{o:?}: {e}"));
    }
    until("the store's objects in the switch", async || {
        has_remote(&srv, "02:00:00:00:00:01").then_some(())
    })
    .await;
    eprintln!("API writes -> rows in the switch: {:?}", t.elapsed());
    let ls = srv.vtep_ctl(&[
        "--columns=tunnel_key",
        "--bare",
        "list",
        "Logical_Switch",
        "web",
    ]);
    assert_eq!(ls.trim(), "5001");
    assert!(
        srv.vtep_ctl(&["list-bindings", "tor1", "p1"])
            .contains("0010 web"),
        "binding"
    );
    assert!(remote_macs(&srv).contains("unknown-dst -> vxlan_over_ipv4/198.18.0.11"));
    a.until_metric(&sw("in_sync"), |v| v == 1.0).await;
    a.until_metric(&sw("store_lag_revisions"), |v| v == 0.0)
        .await;
    let head = a
        .metric("bridgehead_vtep_sync_store_head_revision")
        .await
        .unwrap();
    assert!(head >= 5.0, "store head {head}");
    // Revisions that change nothing for the switch advance its applied
    // revision without a plan pass.
    let plans = "bridgehead_vtep_sync_plan_duration_seconds_count{switch=\"tor1\"}";
    let p0 = a.metric(plans).await.unwrap();
    for (i, name) in ["elsewhere1", "elsewhere2", "elsewhere3"]
        .iter()
        .enumerate()
    {
        let ls = Object::LogicalSwitch(LogicalSwitch {
            name: (*name).into(),
            vni: 7000 + i as u32,
            replication: Replication::SourceNode,
        });
        admin.put(&ls).await.unwrap();
    }
    a.until_metric("bridgehead_vtep_sync_store_head_revision", |v| {
        v >= head + 3.0
    })
    .await;
    a.until_metric(&sw("store_applied_revision"), |v| v >= head + 3.0)
        .await;
    assert_eq!(a.metric(&sw("store_lag_revisions")).await, Some(0.0));
    assert_eq!(
        a.metric(plans).await,
        Some(p0),
        "plan passes for unrelated revisions"
    );

    // --- a change in the store reaches the switch
    let t = Instant::now();
    admin.put(&remote_mac("02:00:00:00:00:02")).await.unwrap();
    until("a new remote MAC in the switch", async || {
        has_remote(&srv, "02:00:00:00:00:02").then_some(())
    })
    .await;
    eprintln!(
        "API write of a remote MAC -> row in the switch: {:?}",
        t.elapsed()
    );

    // --- switch status, learned MACs and tunnel status in the store
    let status_key = Key::new(Kind::SwitchStatus, "tor1");
    until_switch_status(&admin, true).await;
    // The switch row's tunnel IP and port reach the store; a port fault shows under its port.
    until(
        "tor1's tunnel IP and port p1 in the store",
        async || match get(&admin, &status_key).await?.object {
            Object::SwitchStatus(s)
                if s.tunnel_ips == [Ipv4Addr::new(198, 18, 0, 1)]
                    && s.ports
                        .iter()
                        .any(|p| p.name == "p1" && p.faults.is_empty())
                    && s.reported_name.is_none() =>
            {
                Some(())
            }
            _ => None,
        },
    )
    .await;
    let port = srv.vtep_ctl(&[
        "--columns=_uuid",
        "--bare",
        "find",
        "Physical_Port",
        "name=p1",
    ]);
    srv.vtep_ctl(&[
        "set",
        "Physical_Port",
        port.trim(),
        "port_fault_status=[\"invalid_vlan_map\"]",
    ]);
    until(
        "p1's port fault in the store under p1",
        async || match get(&admin, &status_key).await?.object {
            Object::SwitchStatus(s)
                if s.ports
                    .iter()
                    .any(|p| p.name == "p1" && p.faults == ["invalid_vlan_map"])
                    && s.faults.is_empty() =>
            {
                Some(())
            }
            _ => None,
        },
    )
    .await;
    srv.vtep_ctl(&["clear", "Physical_Port", port.trim(), "port_fault_status"]);
    for mac in [LOCAL_MAC, KEPT_MAC] {
        srv.vtep_ctl(&["add-ucast-local", "web", mac, "198.18.0.1"]);
    }
    srv.set_local_mac_ip(LOCAL_MAC, "192.0.2.50");
    let t = Instant::now();
    let lease_a = until("the learned MAC with its IP in the store", async || {
        let s = get(&admin, &learned_key(LOCAL_MAC)).await?;
        match &s.object {
            Object::LearnedMac(m) if m.ip == Some(Ipv4Addr::new(192, 0, 2, 50)) => s.lease,
            _ => None,
        }
    })
    .await;
    eprintln!(
        "Ucast_Macs_Local row -> LearnedMac in the store: {:?}",
        t.elapsed()
    );
    assert_eq!(lease_of(&admin, &learned_key(KEPT_MAC)).await, lease_a);
    srv.add_tunnel("198.18.0.1", "198.18.0.11", &["enabled=true", "state=up"]);
    let tunnel_key = Key::new(Kind::TunnelStatus, "tor1/198.18.0.11");
    until("the tunnel's BFD state in the store", async || {
        match get(&admin, &tunnel_key).await?.object {
            Object::TunnelStatus(t) if t.state == BfdState::Up => Some(()),
            _ => None,
        }
    })
    .await;
    // The MAC leaves the switch: withdrawn from the store.
    srv.vtep_ctl(&["del-ucast-local", "web", LOCAL_MAC]);
    until("the aged-out MAC withdrawn from the store", async || {
        get(&admin, &learned_key(LOCAL_MAC))
            .await
            .is_none()
            .then_some(())
    })
    .await;

    // --- the switch goes away: the store says so, the learned MAC stays
    // (the switch most likely still forwards with it); back, it is written
    // again (its BFD status is an ephemeral column: gone until the switch's
    // agent writes it again).
    let mut srv = srv;
    srv.kill();
    until_switch_status(&admin, false).await;
    assert!(get(&admin, &learned_key(KEPT_MAC)).await.is_some());
    srv.restart();
    until("tor1 connected again, its tunnel status gone", async || {
        let connected = matches!(get(&admin, &status_key).await?.object,
            Object::SwitchStatus(s) if s.connected);
        (connected && get(&admin, &tunnel_key).await.is_none()).then_some(())
    })
    .await;
    let t = srv.vtep_ctl(&["--columns=_uuid", "--bare", "list", "Tunnel"]);
    srv.vtep_ctl(&["set", "Tunnel", t.trim(), "bfd_status:state=up"]);
    until("the tunnel's BFD state back in the store", async || {
        get(&admin, &tunnel_key).await.map(|_| ())
    })
    .await;
    assert_eq!(lease_of(&admin, &learned_key(KEPT_MAC)).await, lease_a);
    a.until_metric(&sw("in_sync"), |v| v == 1.0).await;
    a.until_metric(&sw("store_lag_revisions"), |v| v == 0.0)
        .await;

    // --- kill -9 and restart: nothing written to the switch
    let before = versions(&srv);
    a.proc.kill();
    let killed_at = Instant::now();
    let mut b = start_daemon(dir.path(), &addr, "b");
    b.until_metric(&sw("in_sync"), |v| v == 1.0).await;
    b.until_metric(&sw("store_lag_revisions"), |v| v == 0.0)
        .await;
    assert_eq!(b.metric(&committed()).await, Some(0.0), "{}", b.log());
    assert_eq!(versions(&srv), before, "rows rewritten after a restart");
    // The learned MAC moves to b's lease and outlives a's.
    let lease_b = until("the learned MAC under b's lease", async || {
        let l = get(&admin, &learned_key(KEPT_MAC)).await?.lease?;
        (l != lease_a).then_some(l)
    })
    .await;
    let expired = killed_at + TTL + Duration::from_secs(2);
    tokio::time::sleep_until(expired.into()).await;
    assert_eq!(lease_of(&admin, &learned_key(KEPT_MAC)).await, lease_b);
    assert!(get(&admin, &status_key).await.is_some());
    assert!(get(&admin, &tunnel_key).await.is_some());
    assert_eq!(b.metric(&committed()).await, Some(0.0));

    // --- a second instance: only the lock holder writes
    let mut c = start_daemon(dir.path(), &addr, "c");
    c.until_metric(&sw("connected"), |v| v == 1.0).await;
    assert_eq!(c.metric(&sw("lock_held")).await, Some(0.0));
    admin.put(&remote_mac("02:00:00:00:00:03")).await.unwrap();
    until("a remote MAC written by the holder", async || {
        has_remote(&srv, "02:00:00:00:00:03").then_some(())
    })
    .await;
    b.until_metric(&committed(), |v| v >= 1.0).await;
    b.until_metric(&sw("in_sync"), |v| v == 1.0).await;
    assert_eq!(c.metric(&committed()).await, Some(0.0), "{}", c.log());
    assert_eq!(lease_of(&admin, &learned_key(KEPT_MAC)).await, lease_b);
    assert!(
        c.metric("bridgehead_vtep_sync_store_writes_total{op=\"put\"}")
            .await
            == Some(0.0),
        "the standby wrote to the store"
    );
    // The holder dies: the standby takes the lock, writes the switch and the store.
    b.proc.kill();
    let t = Instant::now();
    c.until_metric(&sw("lock_held"), |v| v == 1.0).await;
    eprintln!("holder killed -> standby holds the lock: {:?}", t.elapsed());
    admin.put(&remote_mac("02:00:00:00:00:04")).await.unwrap();
    until("a remote MAC written by the new holder", async || {
        has_remote(&srv, "02:00:00:00:00:04").then_some(())
    })
    .await;
    c.until_metric(&committed(), |v| v >= 1.0).await;
    let lease_c = until("the learned MAC under c's lease", async || {
        let l = get(&admin, &learned_key(KEPT_MAC)).await?.lease?;
        (l != lease_b).then_some(l)
    })
    .await;
    assert_ne!(lease_c, lease_a);
    // The lease is lost (revoked: the store drops what hangs off it): a new
    // one is granted and everything is written again.
    admin.revoke_lease(lease_c).await.unwrap();
    let t = Instant::now();
    let lease_c2 = until("the learned MAC rewritten under a new lease", async || {
        let l = get(&admin, &learned_key(KEPT_MAC)).await?.lease?;
        (l != lease_c).then_some(l)
    })
    .await;
    eprintln!(
        "lease revoked -> observed state rewritten: {:?}",
        t.elapsed()
    );
    assert_eq!(lease_of(&admin, &status_key).await, lease_c2);
    assert_eq!(lease_of(&admin, &tunnel_key).await, lease_c2);
    assert!(
        c.metric("bridgehead_vtep_sync_lease_grants_total").await >= Some(2.0),
        "{}",
        c.log()
    );

    // --- headless: the controller goes away, the switch keeps its rows and
    // drift is still corrected from the state in force.
    controller.kill9();
    c.until_metric("bridgehead_vtep_sync_store_up", |v| v == 0.0)
        .await;
    srv.vtep_ctl(&["del-ucast-remote", "web", "02:00:00:00:00:04"]);
    until("drift corrected while headless", async || {
        has_remote(&srv, "02:00:00:00:00:04").then_some(())
    })
    .await;
    for m in ["01", "02", "03"] {
        assert!(has_remote(&srv, &format!("02:00:00:00:00:{m}")));
    }
    let controller = start_controller(&ctrl_bin, dir.path(), &addr);
    c.until_metric("bridgehead_vtep_sync_store_up", |v| v == 1.0)
        .await;
    admin.put(&remote_mac("02:00:00:00:00:05")).await.unwrap();
    until("a change made after the controller came back", async || {
        has_remote(&srv, "02:00:00:00:00:05").then_some(())
    })
    .await;
    c.until_metric(&sw("in_sync"), |v| v == 1.0).await;
    c.until_metric(&sw("store_lag_revisions"), |v| v == 0.0)
        .await;
    until("the learned MAC still in the store", async || {
        get(&admin, &learned_key(KEPT_MAC)).await.map(|_| ())
    })
    .await;

    // --- SIGTERM: the daemon exits and leaves the switch as it is
    let before = versions(&srv);
    let st = c.proc.terminate();
    assert!(st.success(), "exit status {st}; log:\n{}", c.log());
    assert_eq!(versions(&srv), before);
    assert!(has_remote(&srv, "02:00:00:00:00:05"));
    controller.kill9();
}

/// The switch moves (its transport node's OVSDB target changes, to an
/// `ssl:` one, which the daemon reaches with `--ovsdb-ca/--ovsdb-cert/
/// --ovsdb-key`): the daemon follows it without a restart and leaves the
/// old database as it was. The transport node deleted: the daemon stops
/// serving the switch, writes nothing more to it, and withdraws what it
/// reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_moves_to_a_tls_target_and_is_removed() {
    let (_, dir, addr, controller, admin) = controller_env("vtep-sync-daemon-tls");
    let [ca, server_cert, server_key, client_cert, client_key] =
        support::make_pki(dir.path(), "pki");
    let plain = OvsdbServer::start();
    let tls = OvsdbServer::start_with_tls(Some(support::Tls {
        key: server_key,
        cert: server_cert,
        ca: ca.clone(),
    }));
    plain.add_tor1(&["p1"]);
    tls.add_tor1(&["p1"]);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let mut d = start_daemon_with(
        dir.path(),
        &addr,
        "tls",
        &[
            "--ovsdb-ca",
            &s(&ca),
            "--ovsdb-cert",
            &s(&client_cert),
            "--ovsdb-key",
            &s(&client_key),
        ],
    );
    for o in desired_objects(&plain.sock) {
        admin.put(&o).await.unwrap_or_else(|e| panic!("{o:?}: {e}"));
    }
    until("rows in the first switch database", async || {
        has_remote(&plain, "02:00:00:00:00:01").then_some(())
    })
    .await;
    let before = versions(&plain);

    // The switch moves to a TLS target.
    let target = format!("ssl:127.0.0.1:{}", tls.ssl_port.unwrap());
    admin.put(&tor1_node(target)).await.unwrap();
    until("rows in the switch's new database, over TLS", async || {
        has_remote(&tls, "02:00:00:00:00:01").then_some(())
    })
    .await;
    d.until_metric(&sw("in_sync"), |v| v == 1.0).await;
    assert_eq!(versions(&plain), before, "the old database was written");
    tls.vtep_ctl(&["add-ucast-local", "web", KEPT_MAC, "198.18.0.1"]);
    lease_of(&admin, &learned_key(KEPT_MAC)).await;
    let status_key = Key::new(Kind::SwitchStatus, "tor1");
    until_switch_status(&admin, true).await;

    // The switch leaves the store: first its binding (the daemon unbinds
    // the port), then its transport node (the daemon stops serving it).
    admin
        .delete(&Key::new(Kind::Binding, "web-tor1-p1"))
        .await
        .unwrap();
    until("the port unbound", async || {
        tls.vtep_ctl(&["list-bindings", "tor1", "p1"])
            .trim()
            .is_empty()
            .then_some(())
    })
    .await;
    d.until_metric(&sw("in_sync"), |v| v == 1.0).await;
    let before = versions(&tls);
    let r = admin.delete(&Key::new(Kind::TransportNode, "tor1")).await;
    assert!(r.is_ok(), "delete tor1: {r:?}");
    until("tor1's observed state withdrawn", async || {
        (get(&admin, &status_key).await.is_none()
            && get(&admin, &learned_key(KEPT_MAC)).await.is_none())
        .then_some(())
    })
    .await;
    d.until_metric(&sw("connected"), |v| v == 0.0).await;
    // Nothing is written to the switch any more, even when it drifts.
    tls.vtep_ctl(&["bind-ls", "tor1", "p1", "10", "web"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        tls.vtep_ctl(&["list-bindings", "tor1", "p1"])
            .contains("0010 web")
    );
    let mut after = versions(&tls);
    after.remove("Physical_Port");
    let mut before = before;
    before.remove("Physical_Port");
    assert_eq!(after, before);
    let st = d.proc.terminate();
    assert!(st.success(), "exit status {st}; log:\n{}", d.log());
    controller.kill9();
}
