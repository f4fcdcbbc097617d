//! The reconciler against the real ovsdb-server (Open vSwitch 3.1) serving
//! /usr/share/openvswitch/vtep.ovsschema, with vtep-ctl as the independent
//! reader and as the switch's own agent / a concurrent writer.
#![cfg(feature = "root-tests")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api::model::{
    Attachment, BfdParams, Binding, ElectionParams, GatewayGroup, GroupMember, LearnedMac,
    LogicalSwitch, NodeKind, RemoteMac, Replication, TransportNode,
};
use serde_json::Value;
use support::{OvsdbServer, until_watched};
use vtep_sync::client::{Client, ClientConfig, Event, MonitorConfig};
use vtep_sync::datum::{Atom, Datum, Row, Uuid};
use vtep_sync::desired::{DesiredState, RemoteTarget, StoreView, compute};
use vtep_sync::ops::{Condition, Mutation, OpResult, Operation};
use vtep_sync::reconciler::{Reconciler, ReconcilerConfig, ReconcilerStatus, TransactHook};
use vtep_sync::replica::MonitorSpec;
use vtep_sync::vtep_tables::VTEP_DB;

const T: Duration = Duration::from_secs(20);

fn node(name: &str, kind: NodeKind, last: u8) -> TransportNode {
    TransportNode {
        name: name.into(),
        kind,
        tunnel_ip: Ipv4Addr::new(198, 18, 0, last),
        bfd: BfdParams::default(),
        ovsdb_target: (kind == NodeKind::HardwareSwitch).then(|| "unix:/unused".into()),
    }
}

fn hw_binding(name: &str, ls: &str, switch: &str, port: &str, vlan: u16) -> Binding {
    Binding {
        name: name.into(),
        logical_switch: ls.into(),
        attachment: Attachment::HardwareSwitch {
            switch: switch.into(),
            port: port.into(),
        },
        vlan,
    }
}

/// The store: tor1 (ours) and tor2, two hypervisors, a gateway group, a
/// service node; "web" in source_node mode, "db" in service_node mode.
struct Store {
    lss: Vec<LogicalSwitch>,
    nodes: Vec<TransportNode>,
    groups: Vec<GatewayGroup>,
    bindings: Vec<Binding>,
    remote: Vec<RemoteMac>,
    learned: Vec<LearnedMac>,
}

impl Store {
    fn new() -> Self {
        let mac = |s: &str| s.parse().unwrap();
        Store {
            lss: vec![
                LogicalSwitch {
                    name: "web".into(),
                    vni: 5001,
                    replication: Replication::SourceNode,
                },
                LogicalSwitch {
                    name: "db".into(),
                    vni: 5002,
                    replication: Replication::ServiceNode,
                },
            ],
            nodes: vec![
                node("tor1", NodeKind::HardwareSwitch, 1),
                node("tor2", NodeKind::HardwareSwitch, 2),
                node("hv1", NodeKind::Hypervisor, 11),
                node("hv2", NodeKind::Hypervisor, 12),
                node("gw1", NodeKind::Gateway, 21),
                node("sn1", NodeKind::ServiceNode, 31),
            ],
            groups: vec![GatewayGroup {
                name: "g1".into(),
                members: vec![GroupMember {
                    node: "gw1".into(),
                    mep_id: 1,
                    priority: 0,
                }],
                vtep_ip: Ipv4Addr::new(198, 18, 0, 100),
                physical_interface: "eth1".into(),
                election: ElectionParams {
                    interval_ms: 100,
                    md_level: 0,
                    ma_name: "g1".into(),
                },
            }],
            bindings: vec![
                hw_binding("b1", "web", "tor1", "p1", 10),
                hw_binding("b2", "db", "tor1", "p1", 20),
                hw_binding("b3", "web", "tor2", "p9", 0),
                Binding {
                    name: "b4".into(),
                    logical_switch: "web".into(),
                    attachment: Attachment::GatewayGroup { group: "g1".into() },
                    vlan: 7,
                },
            ],
            remote: vec![
                RemoteMac {
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:00:01"),
                    ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
                    transport_node: "hv1".into(),
                },
                RemoteMac {
                    logical_switch: "db".into(),
                    mac: mac("02:00:00:00:00:02"),
                    ip: None,
                    transport_node: "hv2".into(),
                },
            ],
            learned: vec![
                LearnedMac {
                    reporter: "gw1".into(),
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:01:01"),
                    ip: None,
                },
                LearnedMac {
                    reporter: "tor2".into(),
                    logical_switch: "web".into(),
                    mac: mac("02:00:00:00:02:01"),
                    ip: None,
                },
            ],
        }
    }

    fn desired(&self) -> DesiredState {
        let c = compute(
            "tor1",
            &StoreView {
                logical_switches: &self.lss,
                transport_nodes: &self.nodes,
                gateway_groups: &self.groups,
                bindings: &self.bindings,
                remote_macs: &self.remote,
                learned_macs: &self.learned,
            },
        )
        .unwrap();
        assert!(c.skipped.is_empty(), "{:?}", c.skipped);
        c.state
    }
}

/// What the switch's own agent does first: its row, tunnel IP and ports.
fn switch_agent(srv: &OvsdbServer) {
    srv.add_tor1(&["p1", "p2"]);
}

fn config(srv: &OvsdbServer) -> ReconcilerConfig {
    let mut c = ReconcilerConfig::new("tor1", srv.unix_target());
    c.reconnect_max = Duration::from_millis(500);
    c
}

async fn until(
    r: &Reconciler,
    what: &str,
    pred: impl Fn(&ReconcilerStatus) -> bool,
) -> ReconcilerStatus {
    until_watched(r.watch_status(), T, what, pred, || r.status()).await
}

/// In sync with at least `n` committed transactions.
async fn synced_after(r: &Reconciler, n: u64) -> ReconcilerStatus {
    until(r, "in sync", |s| s.in_sync && s.transactions >= n).await
}

/// Every row of every table with its `_version`, read with `select`.
async fn snapshot(srv: &OvsdbServer) -> BTreeMap<String, BTreeMap<Uuid, String>> {
    let (c, _ev) = Client::start(ClientConfig::new(srv.unix_target())).unwrap();
    let deadline = Instant::now() + T;
    while !c.is_connected() {
        assert!(Instant::now() < deadline, "snapshot connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let schema = c.get_schema(VTEP_DB).await.unwrap();
    let mut out = BTreeMap::new();
    for t in schema.tables.keys() {
        let res = c
            .transact(VTEP_DB, &[Operation::select(t, vec![])])
            .await
            .unwrap();
        let OpResult::Rows(rows) = &res[0] else {
            panic!("{res:?}")
        };
        let rows = rows
            .iter()
            .map(|r| {
                let u = r["_uuid"].as_atom().unwrap().as_uuid().unwrap();
                (u, r["_version"].to_json().to_string())
            })
            .collect();
        out.insert(t.clone(), rows);
    }
    c.shutdown();
    out
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Checks the whole desired state of `Store::new()` with vtep-ctl.
fn assert_programmed(srv: &OvsdbServer) {
    assert!(lines(&srv.vtep_ctl(&["list-ls"])).is_superset(&lines("db\nweb")));
    assert_eq!(
        srv.vtep_ctl(&["get", "Logical_Switch", "web", "tunnel_key"])
            .trim(),
        "5001"
    );
    assert_eq!(
        srv.vtep_ctl(&["get", "Logical_Switch", "web", "replication_mode"])
            .trim(),
        "source_node"
    );
    assert_eq!(
        srv.vtep_ctl(&["get", "Logical_Switch", "db", "replication_mode"])
            .trim(),
        "service_node"
    );
    assert_eq!(
        lines(&srv.vtep_ctl(&["list-bindings", "tor1", "p1"])),
        lines("0010 web\n0020 db")
    );
    let web = lines(&srv.vtep_ctl(&["list-remote-macs", "web"]));
    for l in [
        "02:00:00:00:00:01 -> vxlan_over_ipv4/198.18.0.11",
        "02:00:00:00:01:01 -> vxlan_over_ipv4/198.18.0.100",
        "02:00:00:00:02:01 -> vxlan_over_ipv4/198.18.0.2",
        "unknown-dst -> vxlan_over_ipv4/198.18.0.100",
        "unknown-dst -> vxlan_over_ipv4/198.18.0.11",
        "unknown-dst -> vxlan_over_ipv4/198.18.0.2",
    ] {
        assert!(web.contains(l), "{l:?} not in {web:?}");
    }
    assert_eq!(web.len(), 2 + 3 + 3, "{web:?}");
    let db = lines(&srv.vtep_ctl(&["list-remote-macs", "db"]));
    assert!(db.contains("02:00:00:00:00:02 -> vxlan_over_ipv4/198.18.0.12"));
    assert!(db.contains("unknown-dst -> vxlan_over_ipv4/198.18.0.31"));
    assert_eq!(db.len(), 2 + 1 + 1, "{db:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_a_switch_and_vtep_ctl_agrees() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let r = Reconciler::start(config(&srv), Store::new().desired());
    let st = synced_after(&r, 1).await;
    assert_eq!(st.transactions, 1, "one transaction for an empty switch");
    assert_eq!(st.failed_transactions, 0);
    assert!(st.lock_held && st.connected);
    assert_eq!(st.rows["Ucast_Macs_Remote"], 4);
    assert_programmed(&srv);
    assert_eq!(lines(&srv.vtep_ctl(&["list-ls"])), lines("db\nweb"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_writes_nothing_and_keeps_every_row() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let r = Reconciler::start(config(&srv), Store::new().desired());
    synced_after(&r, 1).await;
    let before = snapshot(&srv).await;
    r.stop().await;
    // Stopping deleted nothing.
    assert_eq!(snapshot(&srv).await, before);
    let r = Reconciler::start(config(&srv), Store::new().desired());
    let st = synced_after(&r, 0).await;
    assert!(st.lock_held);
    assert_eq!(st.transactions, 0, "{st:#?}");
    assert_eq!(
        snapshot(&srv).await,
        before,
        "row UUIDs or versions changed"
    );
    assert_programmed(&srv);
}

/// A `vtep-sync-test-driver` child, killed by PID when dropped.
struct Driver {
    child: Child,
    statuses: std::sync::mpsc::Receiver<Value>,
}

impl Driver {
    fn start(srv: &OvsdbServer, desired: &DesiredState, lock: &str) -> Driver {
        Self::start_target(srv, &format!("unix:{}", srv.sock.display()), desired, lock)
    }

    fn start_target(srv: &OvsdbServer, target: &str, desired: &DesiredState, lock: &str) -> Driver {
        let path = srv
            .dir
            .path()
            .join(format!("desired-{}.json", rand::random::<u32>()));
        std::fs::write(&path, serde_json::to_vec(desired).unwrap()).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_vtep-sync-test-driver"))
            .arg(target)
            .arg(&path)
            .arg(lock)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Driver {
            child,
            statuses: rx,
        }
    }

    /// Waits (blocking) for a status line matching `pred`.
    fn until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + T;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.statuses.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("driver: timed out waiting for {what}"),
            }
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn in_sync(v: &Value) -> bool {
    v["in_sync"] == Value::Bool(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_with_sigkill_and_restarted_changes_no_desired_row() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let desired = Store::new().desired();
    let mut d = Driver::start(&srv, &desired, "bridgehead_vtep_sync");
    let v = d.until("first sync", |v| in_sync(v) && v["transactions"] == 1);
    assert_eq!(v["failed_transactions"], 0);
    let before = snapshot(&srv).await;
    d.kill9(); // SIGKILL: no chance to clean up anything
    assert_eq!(
        snapshot(&srv).await,
        before,
        "the dead process changed rows"
    );
    let d2 = Driver::start(&srv, &desired, "bridgehead_vtep_sync");
    let v = d2.until("resync", |v| in_sync(v) && v["lock_held"] == true);
    assert_eq!(v["transactions"], 0, "{v}");
    assert_eq!(snapshot(&srv).await, before, "the restart changed rows");
    assert_programmed(&srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_restarted_with_an_empty_database_is_repopulated() {
    let mut srv = OvsdbServer::start();
    switch_agent(&srv);
    let r = Reconciler::start(config(&srv), Store::new().desired());
    synced_after(&r, 1).await;
    srv.restart_empty();
    until(&r, "disconnect noticed", |s| !s.in_sync).await;
    // The switch's agent recreates its own rows; we repopulate the rest.
    switch_agent(&srv);
    let st = until(&r, "repopulated", |s| {
        s.in_sync && s.transactions >= 2 && s.notes.is_empty()
    })
    .await;
    assert!(st.connected && st.lock_held);
    assert_programmed(&srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_stale_rows_are_corrected() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    // An operator's logical switch with a binding, a stale remote MAC on it;
    // a hand-made "web" with a wrong VNI, stale MACs and a stale flood entry.
    srv.vtep_ctl(&["add-ls", "foreign"]);
    srv.vtep_ctl(&["set", "Logical_Switch", "foreign", "tunnel_key=77"]);
    srv.vtep_ctl(&["bind-ls", "tor1", "p2", "99", "foreign"]);
    srv.vtep_ctl(&[
        "add-ucast-remote",
        "foreign",
        "02:00:00:00:99:01",
        "198.18.0.99",
    ]);
    srv.vtep_ctl(&["add-ls", "web"]);
    srv.vtep_ctl(&["set", "Logical_Switch", "web", "tunnel_key=1"]);
    srv.vtep_ctl(&["bind-ls", "tor1", "p1", "30", "web"]);
    srv.vtep_ctl(&[
        "add-ucast-remote",
        "web",
        "02:00:00:00:99:02",
        "198.18.0.99",
    ]);
    srv.vtep_ctl(&[
        "add-ucast-remote",
        "web",
        "02:00:00:00:00:01",
        "198.18.0.98",
    ]);
    srv.vtep_ctl(&["add-mcast-remote", "web", "unknown-dst", "198.18.0.97"]);
    let foreign_uuid = srv.vtep_ctl(&["get", "Logical_Switch", "foreign", "_uuid"]);
    let web_uuid = srv.vtep_ctl(&["get", "Logical_Switch", "web", "_uuid"]);

    let r = Reconciler::start(config(&srv), Store::new().desired());
    synced_after(&r, 1).await;
    assert_programmed(&srv);
    // Foreign: untouched, except that the Remote tables are the controller's.
    assert_eq!(
        srv.vtep_ctl(&["get", "Logical_Switch", "foreign", "_uuid"]),
        foreign_uuid
    );
    assert_eq!(
        srv.vtep_ctl(&["get", "Logical_Switch", "foreign", "tunnel_key"])
            .trim(),
        "77"
    );
    assert_eq!(
        srv.vtep_ctl(&["list-bindings", "tor1", "p2"]).trim(),
        "0099 foreign"
    );
    assert!(
        srv.vtep_ctl(&["list-remote-macs", "foreign"])
            .lines()
            .all(|l| !l.contains("02:00"))
    );
    // The hand-made "web" was adopted in place and corrected.
    assert_eq!(
        srv.vtep_ctl(&["get", "Logical_Switch", "web", "_uuid"]),
        web_uuid
    );
    assert_eq!(
        srv.vtep_ctl(&[
            "get",
            "Logical_Switch",
            "web",
            "other_config:bridgehead-owner"
        ])
        .trim()
        .trim_matches('"'),
        "vtep-sync"
    );
}

/// An independent monitoring client, to count the notifications a change causes.
async fn watcher(srv: &OvsdbServer) -> (Client, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let mut cfg = ClientConfig::new(srv.tcp_target());
    let mut tables = MonitorSpec::new();
    tables.insert("Ucast_Macs_Remote".into(), None);
    tables.insert("Physical_Locator".into(), None);
    cfg.monitor = Some(MonitorConfig {
        db: VTEP_DB.into(),
        tables,
        prefer_monitor_cond: true,
    });
    let (c, mut ev) = Client::start(cfg).unwrap();
    tokio::time::timeout(T, async {
        while let Some(e) = ev.recv().await {
            if matches!(e, Event::Synced { .. }) {
                return;
            }
        }
    })
    .await
    .unwrap();
    (c, ev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mac_move_is_one_transaction_on_the_same_row() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let store = Store::new();
    let r = Reconciler::start(config(&srv), store.desired());
    synced_after(&r, 1).await;
    let (w, mut ev) = watcher(&srv).await;
    let row_of = |c: &Client| {
        c.with_replica(|r| {
            r.unwrap()
                .table("Ucast_Macs_Remote")
                .find(|(_, row)| row["MAC"] == Datum::from("02:00:00:00:00:01"))
                .map(|(u, _)| *u)
                .unwrap()
        })
    };
    let before = row_of(&w);
    // VM 02:..:01 moves from hv1 to hv2 (whose locator exists: db has a MAC there).
    let mut d = store.desired();
    d.logical_switches
        .get_mut("web")
        .unwrap()
        .remote_macs
        .get_mut(&"02:00:00:00:00:01".parse().unwrap())
        .unwrap()
        .locator = Ipv4Addr::new(198, 18, 0, 12);
    r.set_desired(d);
    let st = synced_after(&r, 2).await;
    assert_eq!(st.transactions, 2);
    assert_eq!(st.last_plan.updates, 1, "{st:#?}");
    assert_eq!(st.last_plan.deletes, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let updates: Vec<Event> = std::iter::from_fn(|| ev.try_recv().ok()).collect();
    assert_eq!(
        updates.len(),
        1,
        "one notification for the move: {updates:?}"
    );
    assert_eq!(row_of(&w), before, "the row was replaced instead of moved");
    let web = lines(&srv.vtep_ctl(&["list-remote-macs", "web"]));
    assert!(
        web.contains("02:00:00:00:00:01 -> vxlan_over_ipv4/198.18.0.12"),
        "{web:?}"
    );
    w.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locator_garbage_collection_then_a_new_mac_to_the_same_vtep() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let hv = Ipv4Addr::new(198, 18, 0, 44);
    let target = |mac: &str| {
        (
            mac.parse().unwrap(),
            RemoteTarget {
                locator: hv,
                ip: None,
            },
        )
    };
    let mut d = Store::new().desired();
    let web = d.logical_switches.get_mut("web").unwrap();
    web.remote_macs.extend([target("02:00:00:00:44:01")]);
    let r = Reconciler::start(config(&srv), d.clone());
    synced_after(&r, 1).await;
    let locators = || srv.vtep_ctl(&["--columns=dst_ip", "list", "Physical_Locator"]);
    assert!(locators().contains("198.18.0.44"));
    // Last MAC behind .44 goes: the server garbage-collects the locator...
    let mut gone = d.clone();
    gone.logical_switches
        .get_mut("web")
        .unwrap()
        .remote_macs
        .remove(&"02:00:00:00:44:01".parse().unwrap());
    r.set_desired(gone);
    synced_after(&r, 2).await;
    assert!(!locators().contains("198.18.0.44"));
    // ...and the very next plan adds a MAC behind .44 again, several times in a row.
    for (i, mac) in [
        "02:00:00:00:44:02",
        "02:00:00:00:44:03",
        "02:00:00:00:44:04",
    ]
    .iter()
    .enumerate()
    {
        let mut back = d.clone();
        let web = back.logical_switches.get_mut("web").unwrap();
        web.remote_macs
            .remove(&"02:00:00:00:44:01".parse().unwrap());
        web.remote_macs.extend([target(mac)]);
        r.set_desired(back.clone());
        synced_after(&r, 3 + 2 * i as u64).await;
        let mut empty = back;
        empty
            .logical_switches
            .get_mut("web")
            .unwrap()
            .remote_macs
            .remove(&mac.parse().unwrap());
        r.set_desired(empty);
        synced_after(&r, 4 + 2 * i as u64).await;
    }
    let st = r.status();
    assert_eq!(st.failed_transactions, 0, "{st:#?}");
    assert!(!locators().contains("198.18.0.44"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_lock_holder_writes_and_a_standby_takes_over() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let store = Store::new();
    let a = Reconciler::start(config(&srv), store.desired());
    until(&a, "a holds the lock", |s| s.lock_held && s.in_sync).await;
    let b = Reconciler::start(config(&srv), store.desired());
    until(&b, "b synced", |s| s.synced).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.status().lock_held);
    assert_eq!(b.status().transactions, 0);
    // b wants something else but must not write it while a holds the lock.
    let mut d = store.desired();
    d.logical_switches.remove("db");
    d.bindings.get_mut("p1").unwrap().remove(&20);
    b.set_desired(d);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.status().transactions, 0);
    assert_programmed(&srv);
    // a dies: b gets the lock and applies its desired state.
    let t0 = Instant::now();
    drop(a);
    let st = until(&b, "b takes over", |s| s.lock_held).await;
    let takeover = t0.elapsed();
    println!("lock takeover after the holder stopped: {takeover:?}");
    assert!(takeover < Duration::from_secs(10));
    assert!(st.connected);
    synced_after(&b, 1).await;
    assert_eq!(
        lines(&srv.vtep_ctl(&["list-bindings", "tor1", "p1"])),
        lines("0010 web")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_lock_holder_process_is_replaced_within_ten_seconds() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let desired = Store::new().desired();
    let mut a = Driver::start(&srv, &desired, "bridgehead_vtep_sync");
    a.until("a writes", |v| in_sync(v) && v["lock_held"] == true);
    let b = Driver::start(&srv, &desired, "bridgehead_vtep_sync");
    let v = b.until("b synced", |v| v["synced"] == true);
    assert_eq!(v["lock_held"], false);
    let before = snapshot(&srv).await;
    let t0 = Instant::now();
    a.kill9();
    let v = b.until("b takes over", |v| v["lock_held"] == true && in_sync(v));
    let takeover = t0.elapsed();
    println!("lock takeover after kill -9 of the holder: {takeover:?}");
    assert!(takeover < Duration::from_secs(10));
    assert_eq!(v["transactions"], 0, "{v}");
    assert_eq!(snapshot(&srv).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_binding_change_fails_the_wait_and_the_retry_converges() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    srv.vtep_ctl(&["add-ls", "foreign"]);
    let store = Store::new();
    let mut cfg = config(&srv);
    // Right before our first transaction, an operator binds VLAN 98 on p1.
    let sock = srv.sock.clone();
    let fired = Arc::new(AtomicBool::new(false));
    let f = fired.clone();
    cfg.before_transact = Some(TransactHook(Arc::new(move |_ops: &[Operation]| {
        if !f.swap(true, Ordering::SeqCst) {
            let out = Command::new("vtep-ctl")
                .arg(format!("--db=unix:{}", sock.display()))
                .args(["bind-ls", "tor1", "p1", "98", "foreign"])
                .output()
                .unwrap();
            assert!(out.status.success());
        }
    })));
    let r = Reconciler::start(cfg, store.desired());
    let st = synced_after(&r, 1).await;
    assert!(fired.load(Ordering::SeqCst));
    assert_eq!(st.failed_transactions, 1, "{st:#?}");
    assert_eq!(st.transactions, 1);
    assert_eq!(
        lines(&srv.vtep_ctl(&["list-bindings", "tor1", "p1"])),
        lines("0010 web\n0020 db\n0098 foreign")
    );
    assert_programmed_except_bindings(&srv);
}

fn assert_programmed_except_bindings(srv: &OvsdbServer) {
    assert_eq!(
        lines(&srv.vtep_ctl(&["list-ls"])),
        lines("db\nforeign\nweb")
    );
    assert_eq!(lines(&srv.vtep_ctl(&["list-remote-macs", "web"])).len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_node_fault_falls_back_to_service_node_and_says_so() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let r = Reconciler::start(config(&srv), Store::new().desired());
    synced_after(&r, 1).await;
    assert!(!r.status().source_node_fallback);
    srv.vtep_ctl(&[
        "set",
        "Physical_Switch",
        "tor1",
        "switch_fault_status=unsupported_source_node_replication",
    ]);
    let st = until(&r, "fallback", |s| s.source_node_fallback && s.in_sync).await;
    assert!(st.faults.contains("unsupported_source_node_replication"));
    assert_eq!(
        st.switch_status("tor1").faults,
        vec!["unsupported_source_node_replication".to_owned()]
    );
    assert_eq!(
        srv.vtep_ctl(&["get", "Logical_Switch", "web", "replication_mode"])
            .trim(),
        "service_node"
    );
    let web = lines(&srv.vtep_ctl(&["list-remote-macs", "web"]));
    assert!(
        web.contains("unknown-dst -> vxlan_over_ipv4/198.18.0.31"),
        "{web:?}"
    );
    assert_eq!(
        web.iter().filter(|l| l.starts_with("unknown-dst")).count(),
        1
    );
    // The switch clears its fault; the fallback holds, also after a restart.
    srv.vtep_ctl(&["clear", "Physical_Switch", "tor1", "switch_fault_status"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.stop().await;
    let r = Reconciler::start(config(&srv), Store::new().desired());
    let st = synced_after(&r, 0).await;
    assert!(st.source_node_fallback);
    assert_eq!(st.transactions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_params_are_set_on_tunnels_the_switch_creates() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let mut store = Store::new();
    store.nodes[2].bfd = BfdParams {
        enabled: true,
        min_tx_ms: 300,
        min_rx_ms: 400,
        detect_mult: 3,
    };
    let r = Reconciler::start(config(&srv), store.desired());
    synced_after(&r, 1).await;
    // The switch's agent creates a tunnel toward hv1 (198.18.0.11), as ovs-vtep does.
    let (c, _ev) = Client::start(ClientConfig::new(srv.unix_target())).unwrap();
    while !c.is_connected() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sel = c
        .transact(
            VTEP_DB,
            &[Operation::select(
                "Physical_Locator",
                vec![Condition::eq("dst_ip", "198.18.0.11")],
            )],
        )
        .await
        .unwrap();
    let OpResult::Rows(rows) = &sel[0] else {
        panic!()
    };
    let remote = rows[0]["_uuid"].as_atom().unwrap().clone();
    let mut local = Row::new();
    local.insert("encapsulation_type".into(), "vxlan_over_ipv4".into());
    local.insert("dst_ip".into(), "198.18.0.1".into());
    let mut tunnel = Row::new();
    tunnel.insert("local".into(), Datum::Atom(Atom::NamedUuid("me".into())));
    tunnel.insert("remote".into(), Datum::Atom(remote));
    let res = c
        .transact(
            VTEP_DB,
            &[
                Operation::insert_named("Physical_Locator", local, "me"),
                Operation::insert_named("Tunnel", tunnel, "t"),
                Operation::mutate(
                    "Physical_Switch",
                    vec![Condition::eq("name", "tor1")],
                    vec![Mutation::insert(
                        "tunnels",
                        Datum::set([Atom::NamedUuid("t".into())]),
                    )],
                ),
            ],
        )
        .await
        .unwrap();
    let t = res[1].uuid().unwrap().to_string();
    synced_after(&r, 2).await;
    let params = srv.vtep_ctl(&["get", "Tunnel", &t, "bfd_params"]);
    assert_eq!(
        params.trim(),
        r#"{enable="true", min_rx="400", min_tx="300"}"#
    );
    // The switch recreates the tunnel with empty bfd_params: set again.
    srv.vtep_ctl(&["clear", "Tunnel", &t, "bfd_params"]);
    synced_after(&r, 3).await;
    assert_eq!(
        srv.vtep_ctl(&["get", "Tunnel", &t, "bfd_params"]).trim(),
        r#"{enable="true", min_rx="400", min_tx="300"}"#
    );
    c.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_reconnect_writes_nothing() {
    let mut srv = OvsdbServer::start();
    switch_agent(&srv);
    let r = Reconciler::start(config(&srv), Store::new().desired());
    synced_after(&r, 1).await;
    let before = snapshot(&srv).await;
    // The switch's database server restarts with its data: a reconnect.
    srv.restart();
    until(&r, "disconnect noticed", |s| !s.connected).await;
    let st = until(&r, "reconnected and in sync", |s| {
        s.connected && s.lock_held && s.in_sync
    })
    .await;
    assert_eq!(st.transactions, 1, "{st:#?}");
    // ovsdb-server makes new _version values when it loads the file, so
    // compare row UUIDs; the transaction count shows nothing was written.
    assert_eq!(uuids(snapshot(&srv).await), uuids(before));
}

fn uuids(s: BTreeMap<String, BTreeMap<Uuid, String>>) -> BTreeMap<String, BTreeSet<Uuid>> {
    s.into_iter()
        .map(|(t, rows)| (t, rows.into_keys().collect()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_logical_switch_is_removed_with_its_rows() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let mut store = Store::new();
    let r = Reconciler::start(config(&srv), store.desired());
    synced_after(&r, 1).await;
    store.bindings.retain(|b| b.logical_switch != "db");
    r.set_desired(store.desired());
    let st = synced_after(&r, 2).await;
    assert_eq!(st.transactions, 2, "one transaction unbinds and deletes");
    assert_eq!(lines(&srv.vtep_ctl(&["list-ls"])), lines("web"));
    assert_eq!(
        lines(&srv.vtep_ctl(&["list-bindings", "tor1", "p1"])),
        lines("0010 web")
    );
    assert_eq!(st.rows["Ucast_Macs_Remote"], 3);
    assert_eq!(st.rows["Mcast_Macs_Remote"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_remote_macs_then_a_restart_is_a_no_op() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let mut d = Store::new().desired();
    let web = d.logical_switches.get_mut("web").unwrap();
    for i in 0..10_000u32 {
        let b = i.to_be_bytes();
        web.remote_macs.insert(
            api::model::MacAddr([2, 1, b[0], b[1], b[2], b[3]]),
            RemoteTarget {
                locator: Ipv4Addr::new(198, 18, 0, 11 + (i % 4) as u8),
                ip: None,
            },
        );
    }
    let t0 = Instant::now();
    let r = Reconciler::start(config(&srv), d.clone());
    let st = synced_after(&r, 1).await;
    let programmed = t0.elapsed();
    assert_eq!(st.rows["Ucast_Macs_Remote"], 10_004);
    assert_eq!(st.transactions, 1);
    r.stop().await;
    let t1 = Instant::now();
    let r = Reconciler::start(config(&srv), d);
    let st = synced_after(&r, 0).await;
    let resynced = t1.elapsed();
    assert_eq!(st.transactions, 0);
    println!(
        "10,004 remote MACs: programmed from empty in {programmed:?} (one transaction); \
         restart to in-sync with no writes in {resynced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_lock_holder_is_replaced_after_the_switch_probe() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    // The switch's manager remote with a 2 s inactivity probe: the server
    // drops a silent client after about twice that.
    let port = support::free_port();
    let remote = format!("ptcp:{port}:127.0.0.1");
    srv.vtep_ctl(&["set-manager", &remote]);
    srv.vtep_ctl(&["set", "Manager", &remote, "inactivity_probe=2000"]);
    let deadline = Instant::now() + T;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "manager remote not listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    let desired = Store::new().desired();
    let target = format!("tcp:127.0.0.1:{port}");
    let a = Driver::start_target(&srv, &target, &desired, "bridgehead_vtep_sync");
    a.until("a writes", |v| in_sync(v) && v["lock_held"] == true);
    let b = Driver::start_target(&srv, &target, &desired, "bridgehead_vtep_sync");
    b.until("b synced", |v| v["synced"] == true);
    // a hangs (SIGSTOP): its socket stays open, only the probe can tell.
    let pid = a.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let t0 = Instant::now();
    b.until("b takes over", |v| v["lock_held"] == true && in_sync(v));
    let takeover = t0.elapsed();
    println!("lock takeover from a hung holder with a 2 s switch probe: {takeover:?}");
    assert!(takeover < Duration::from_secs(10));
    drop(a); // SIGKILL works on a stopped process
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_by_another_writer_is_corrected_while_running() {
    let srv = OvsdbServer::start();
    switch_agent(&srv);
    let r = Reconciler::start(config(&srv), Store::new().desired());
    synced_after(&r, 1).await;
    // Someone edits the switch behind the controller's back.
    srv.vtep_ctl(&[
        "del-ucast-remote",
        "web",
        "02:00:00:00:00:01",
        "--",
        "add-ucast-remote",
        "web",
        "02:00:00:00:77:77",
        "198.18.0.77",
        "--",
        "set",
        "Logical_Switch",
        "web",
        "tunnel_key=9",
        "--",
        "unbind-ls",
        "tor1",
        "p1",
        "20",
    ]);
    let st = synced_after(&r, 2).await;
    assert_eq!(st.transactions, 2, "one corrective transaction: {st:#?}");
    assert_programmed(&srv);
}
