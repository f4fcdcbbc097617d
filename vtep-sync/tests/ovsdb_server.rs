//! The client against the real ovsdb-server (Open vSwitch 3.1) serving the
//! installed hardware_vtep schema, with vtep-ctl as an independent writer.
#![cfg(feature = "root-tests")]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::OvsdbServer;
use tokio::sync::mpsc::UnboundedReceiver;
use vtep_sync::client::{Client, ClientConfig, ClientError, Event, MonitorConfig};
use vtep_sync::datum::{Atom, Datum, Row};
use vtep_sync::ops::{Condition, Mutation, OpResult, Operation, TransactError, WaitUntil};
use vtep_sync::replica::{MonitorSpec, Replica};
use vtep_sync::target::{Target, TlsFiles};
use vtep_sync::vtep_tables::{
    self, LogicalSwitch, PhysicalPort, UcastMacsRemote, VTEP_DB, VtepTable,
};

const T: Duration = Duration::from_secs(10);

fn start(target: Target) -> (Client, UnboundedReceiver<Event>) {
    Client::start(ClientConfig::new(target)).unwrap()
}

/// Waits for the first event matching `pred`, skipping others.
async fn event(
    rx: &mut UnboundedReceiver<Event>,
    what: &str,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(T, async {
        loop {
            let ev = rx.recv().await.expect("event channel closed");
            if pred(&ev) {
                return ev;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + T;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn connected(c: &Client) {
    eventually("connection", || c.is_connected()).await;
}

fn row(pairs: Vec<(&str, Datum)>) -> Row {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[tokio::test]
async fn list_dbs_and_get_schema() {
    let srv = OvsdbServer::start();
    let (c, _ev) = start(srv.tcp_target());
    connected(&c).await;
    let dbs = c.list_dbs().await.unwrap();
    assert!(dbs.contains(&VTEP_DB.to_owned()), "{dbs:?}");
    let schema = c.get_schema(VTEP_DB).await.unwrap();
    assert_eq!(schema.name, VTEP_DB);
    vtep_tables::check_schema(&schema).unwrap();
    let e = c.get_schema("nope").await.unwrap_err();
    assert!(e.to_string().contains("unknown database"), "{e}");
}

#[tokio::test]
async fn insert_with_named_uuids_then_select() {
    let srv = OvsdbServer::start();
    let (c, _ev) = start(srv.unix_target());
    connected(&c).await;
    let ops = vec![
        Operation::insert_named(
            "Logical_Switch",
            LogicalSwitch {
                uuid: vtep_sync::datum::Uuid(0),
                name: "ls0".into(),
                description: "tenant".into(),
                tunnel_key: Some(5000),
                replication_mode: None,
            }
            .to_row(),
            "ls",
        ),
        Operation::insert_named(
            "Physical_Locator",
            vtep_tables::PhysicalLocator::insert_row("198.18.0.2"),
            "loc",
        ),
        Operation::insert(
            "Ucast_Macs_Remote",
            UcastMacsRemote::insert_row(
                "00:00:5e:00:53:01",
                Atom::NamedUuid("ls".into()),
                Atom::NamedUuid("loc".into()),
                "192.0.2.10",
            ),
        ),
        Operation::select(
            "Ucast_Macs_Remote",
            vec![Condition::eq("MAC", "00:00:5e:00:53:01")],
        ),
    ];
    let res = c.transact(VTEP_DB, &ops).await.unwrap();
    let ls_uuid = res[0].uuid().unwrap();
    let loc_uuid = res[1].uuid().unwrap();
    let OpResult::Rows(rows) = &res[3] else {
        panic!("{res:?}")
    };
    assert_eq!(rows.len(), 1);
    let mac = UcastMacsRemote::from_row(res[2].uuid().unwrap(), &rows[0]).unwrap();
    assert_eq!(mac.logical_switch, ls_uuid);
    assert_eq!(mac.locator, loc_uuid);
    assert_eq!(mac.ipaddr, "192.0.2.10");
    // The independent writer sees the same thing.
    assert!(
        srv.vtep_ctl(&["list-remote-macs", "ls0"])
            .contains("00:00:5e:00:53:01 -> vxlan_over_ipv4/198.18.0.2")
    );
}

#[tokio::test]
async fn mutate_a_set_update_and_delete() {
    let srv = OvsdbServer::start();
    srv.vtep_ctl(&["add-ps", "ps1", "--", "add-ls", "ls0"]);
    let (c, _ev) = start(srv.tcp_target());
    connected(&c).await;
    let by_name = || vec![Condition::eq("name", "ps1")];
    let ips = Datum::set(["198.18.0.1", "198.18.0.2", "198.18.0.3"]);
    let res = c
        .transact(
            VTEP_DB,
            &[
                Operation::mutate(
                    "Physical_Switch",
                    by_name(),
                    vec![Mutation::insert("tunnel_ips", ips)],
                ),
                Operation::mutate(
                    "Physical_Switch",
                    by_name(),
                    vec![Mutation::delete("tunnel_ips", Datum::set(["198.18.0.2"]))],
                ),
                Operation::update(
                    "Physical_Switch",
                    by_name(),
                    row(vec![("description", "rack 1".into())]),
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![OpResult::Count(1), OpResult::Count(1), OpResult::Count(1)]
    );
    let res = c
        .transact(VTEP_DB, &[Operation::select("Physical_Switch", by_name())])
        .await
        .unwrap();
    let OpResult::Rows(rows) = &res[0] else {
        panic!()
    };
    let uuid = rows[0]["_uuid"].as_atom().unwrap().as_uuid().unwrap();
    let ps = vtep_tables::PhysicalSwitch::from_row(uuid, &rows[0]).unwrap();
    assert_eq!(
        ps.tunnel_ips,
        ["198.18.0.1", "198.18.0.3"].map(String::from).into()
    );
    assert_eq!(ps.description, "rack 1");

    let res = c
        .transact(
            VTEP_DB,
            &[Operation::delete(
                "Logical_Switch",
                vec![Condition::eq("name", "ls0")],
            )],
        )
        .await
        .unwrap();
    assert_eq!(res, vec![OpResult::Count(1)]);
    assert_eq!(srv.vtep_ctl(&["list-ls"]).trim(), "");
}

#[tokio::test]
async fn failing_wait_and_commit_errors_are_clear() {
    let srv = OvsdbServer::start();
    srv.vtep_ctl(&["add-ls", "ls0"]);
    let (c, _ev) = start(srv.unix_target());
    connected(&c).await;
    let ops = [
        Operation::Comment("bridgehead test".into()),
        Operation::wait(
            "Logical_Switch",
            Some(0),
            vec![Condition::eq("name", "ls0")],
            vec!["description".into()],
            WaitUntil::Equal,
            vec![row(vec![("description", "not this".into())])],
        ),
        Operation::insert("Logical_Switch", row(vec![("name", "never".into())])),
    ];
    let e = c.transact(VTEP_DB, &ops).await.unwrap_err();
    let ClientError::Transact(TransactError::OpFailed {
        index, ref error, ..
    }) = e
    else {
        panic!("{e}")
    };
    assert_eq!((index, error.as_str()), (1, "timed out"));
    assert!(
        e.to_string()
            .starts_with("operation 1 (wait on Logical_Switch) failed: timed out"),
        "{e}"
    );
    // Index violation is found at commit time: reported as a commit failure.
    let dup = [Operation::insert(
        "Logical_Switch",
        row(vec![("name", "ls0".into())]),
    )];
    let e = c.transact(VTEP_DB, &dup).await.unwrap_err();
    assert!(
        matches!(e, ClientError::Transact(TransactError::CommitFailed { ref error, .. }) if error == "constraint violation"),
        "{e}"
    );
    // A bad operation is named by index.
    let bad = [Operation::insert("No_Such_Table", Row::new())];
    let e = c.transact(VTEP_DB, &bad).await.unwrap_err();
    assert!(e.to_string().contains("No_Such_Table"), "{e}");
    assert_eq!(srv.vtep_ctl(&["list-ls"]).trim(), "ls0");
}

fn vtep_monitor(cond: bool) -> MonitorConfig {
    let mut tables = MonitorSpec::new();
    for t in [
        "Physical_Switch",
        "Physical_Port",
        "Logical_Switch",
        "Ucast_Macs_Remote",
        "Physical_Locator",
    ] {
        tables.insert(t.into(), None);
    }
    MonitorConfig {
        db: VTEP_DB.into(),
        tables,
        prefer_monitor_cond: cond,
    }
}

/// Reads the monitored tables with `select` and builds a replica from them.
async fn server_view(
    c: &Client,
    tables: &[&str],
) -> BTreeMap<String, BTreeMap<vtep_sync::datum::Uuid, Row>> {
    let schema = c.get_schema(VTEP_DB).await.unwrap();
    let mut r = Replica::new(schema);
    let mut out = BTreeMap::new();
    for t in tables {
        let res = c
            .transact(VTEP_DB, &[Operation::select(t, vec![])])
            .await
            .unwrap();
        let OpResult::Rows(rows) = &res[0] else {
            panic!()
        };
        r.load_select(t, rows).unwrap();
        out.insert(t.to_string(), r.table_map(t));
    }
    out
}

fn replica_view(
    c: &Client,
    tables: &[&str],
) -> BTreeMap<String, BTreeMap<vtep_sync::datum::Uuid, Row>> {
    c.with_replica(|r| {
        let r = r.expect("synced");
        tables
            .iter()
            .map(|t| (t.to_string(), r.table_map(t)))
            .collect()
    })
}

const MONITORED: [&str; 5] = [
    "Physical_Switch",
    "Physical_Port",
    "Logical_Switch",
    "Ucast_Macs_Remote",
    "Physical_Locator",
];

async fn monitor_follows_vtep_ctl(cond: bool) {
    let srv = OvsdbServer::start();
    srv.vtep_ctl(&["add-ls", "pre-existing"]);
    let mut cfg = ClientConfig::new(srv.unix_target());
    cfg.monitor = Some(vtep_monitor(cond));
    let (c, mut ev) = Client::start(cfg).unwrap();
    let synced = event(&mut ev, "sync", |e| matches!(e, Event::Synced { .. })).await;
    assert_eq!(synced, Event::Synced { monitor_cond: cond });
    assert_eq!(c.with_replica(|r| r.unwrap().len("Logical_Switch")), 1);

    srv.vtep_ctl(&[
        "add-ps", "ps1", "--", "add-port", "ps1", "p1", "--", "add-ls", "ls0", "--", "bind-ls",
        "ps1", "p1", "0", "ls0",
    ]);
    srv.vtep_ctl(&["set", "Logical_Switch", "ls0", "tunnel_key=5000"]);
    srv.vtep_ctl(&["add-ucast-remote", "ls0", "00:00:5e:00:53:01", "198.18.0.2"]);
    eventually("remote mac in replica", || {
        c.with_replica(|r| r.unwrap().len("Ucast_Macs_Remote") == 1)
    })
    .await;
    let ls0 = c
        .with_replica(|r| LogicalSwitch::all(r.unwrap()).unwrap())
        .into_iter()
        .find(|l| l.name == "ls0")
        .unwrap();
    assert_eq!(ls0.tunnel_key, Some(5000));
    let port = c
        .with_replica(|r| PhysicalPort::all(r.unwrap()).unwrap())
        .pop()
        .unwrap();
    assert_eq!(port.vlan_bindings, BTreeMap::from([(0, ls0.uuid)]));
    assert_eq!(
        replica_view(&c, &MONITORED),
        server_view(&c, &MONITORED).await
    );

    // Modify a map (rebind to another VLAN) and delete rows.
    srv.vtep_ctl(&[
        "bind-ls",
        "ps1",
        "p1",
        "7",
        "ls0",
        "--",
        "unbind-ls",
        "ps1",
        "p1",
        "0",
    ]);
    srv.vtep_ctl(&[
        "del-ucast-remote",
        "ls0",
        "00:00:5e:00:53:01",
        "--",
        "del-ls",
        "pre-existing",
    ]);
    eventually("deletes in replica", || {
        c.with_replica(|r| {
            r.unwrap().len("Ucast_Macs_Remote") == 0 && r.unwrap().len("Logical_Switch") == 1
        })
    })
    .await;
    let port = c
        .with_replica(|r| PhysicalPort::all(r.unwrap()).unwrap())
        .pop()
        .unwrap();
    assert_eq!(port.vlan_bindings, BTreeMap::from([(7, ls0.uuid)]));
    assert_eq!(
        replica_view(&c, &MONITORED),
        server_view(&c, &MONITORED).await
    );
    let mut kinds = Vec::new();
    let mut others = Vec::new();
    while let Ok(e) = ev.try_recv() {
        if let Event::Updated(ch) = e {
            kinds.extend(ch.into_iter().map(|c| (c.table, c.kind)));
        } else {
            others.push(e);
        }
    }
    // Every change arrived as a notification, not through a resync.
    assert!(
        !others
            .iter()
            .any(|e| matches!(e, Event::Disconnected { .. })),
        "{others:?}"
    );
    use vtep_sync::replica::ChangeKind::*;
    for want in [
        ("Ucast_Macs_Remote".to_string(), Insert),
        ("Physical_Port".into(), Modify),
        ("Logical_Switch".into(), Delete),
    ] {
        assert!(
            kinds.contains(&want),
            "{want:?} not in {kinds:?} ({others:?})"
        );
    }
}

#[tokio::test]
async fn monitor_cond_follows_an_independent_writer() {
    monitor_follows_vtep_ctl(true).await;
}

#[tokio::test]
async fn plain_monitor_follows_an_independent_writer() {
    monitor_follows_vtep_ctl(false).await;
}

#[tokio::test]
async fn lock_is_handed_over_on_unlock_and_death_and_can_be_stolen() {
    let srv = OvsdbServer::start();
    let (a, mut ea) = start(srv.unix_target());
    let (b, mut eb) = start(srv.tcp_target());
    let (c, mut ec) = start(srv.unix_target());
    for x in [&a, &b, &c] {
        connected(x).await;
    }
    assert!(a.lock("bridgehead").await.unwrap());
    assert_eq!(
        event(&mut ea, "a locked", |e| matches!(e, Event::Locked(_))).await,
        Event::Locked("bridgehead".into())
    );
    assert!(!b.lock("bridgehead").await.unwrap());
    // b must not get it while a holds it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!std::iter::from_fn(|| eb.try_recv().ok()).any(|e| matches!(e, Event::Locked(_))));
    a.unlock("bridgehead").await.unwrap();
    event(&mut eb, "b locked after unlock", |e| {
        *e == Event::Locked("bridgehead".into())
    })
    .await;

    // c queues; b dies (its connection closes): c gets it.
    assert!(!c.lock("bridgehead").await.unwrap());
    b.shutdown();
    event(&mut ec, "c locked after b died", |e| {
        *e == Event::Locked("bridgehead".into())
    })
    .await;

    // a steals it from c.
    assert!(a.steal("bridgehead").await.unwrap());
    event(&mut ea, "a locked by steal", |e| {
        *e == Event::Locked("bridgehead".into())
    })
    .await;
    event(&mut ec, "c told it was stolen", |e| {
        *e == Event::Stolen("bridgehead".into())
    })
    .await;
    // The assert op confirms who holds it, server side.
    let assert_op = [Operation::Assert {
        lock: "bridgehead".into(),
    }];
    if let Err(e) = a.transact(VTEP_DB, &assert_op).await {
        let rest: Vec<_> = std::iter::from_fn(|| ea.try_recv().ok()).collect();
        panic!("{e}: a events {rest:?}");
    }
    let e = c.transact(VTEP_DB, &assert_op).await.unwrap_err();
    assert!(e.to_string().contains("not owner"), "{e}");
    // The victim stays queued: it gets the lock back when the thief lets go.
    a.unlock("bridgehead").await.unwrap();
    event(&mut ec, "c locked again", |e| {
        *e == Event::Locked("bridgehead".into())
    })
    .await;
    c.transact(VTEP_DB, &assert_op).await.unwrap();
}

#[tokio::test]
async fn reconnects_after_server_restart_and_rebuilds_the_replica() {
    let mut srv = OvsdbServer::start();
    srv.vtep_ctl(&["add-ls", "ls0"]);
    let mut cfg = ClientConfig::new(srv.unix_target());
    cfg.monitor = Some(vtep_monitor(true));
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(400);
    let (c, mut ev) = Client::start(cfg).unwrap();
    event(&mut ev, "first sync", |e| matches!(e, Event::Synced { .. })).await;
    assert!(c.lock("bridgehead").await.unwrap());

    srv.kill();
    let down = event(&mut ev, "disconnect", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    eprintln!("{down:?}");
    // Requests fail fast while down; the old replica stays readable.
    assert!(matches!(c.list_dbs().await, Err(ClientError::NotConnected)));
    assert_eq!(c.with_replica(|r| r.unwrap().len("Logical_Switch")), 1);
    // Change the database while the server is down: the client must pick it up from the fresh dump.
    srv.offline_transact(r#"["hardware_vtep",{"op":"insert","table":"Logical_Switch","row":{"name":"offline"}},{"op":"delete","table":"Logical_Switch","where":[["name","==","ls0"]]}]"#);
    srv.restart();
    // The lock reply usually arrives before the monitor dump: accept either order.
    let (mut synced, mut relocked) = (false, false);
    while !(synced && relocked) {
        match event(&mut ev, "re-sync and re-lock", |e| {
            matches!(e, Event::Synced { .. } | Event::Locked(_))
        })
        .await
        {
            Event::Synced { .. } => synced = true,
            _ => relocked = true,
        }
    }
    let names: Vec<String> = c
        .with_replica(|r| LogicalSwitch::all(r.unwrap()).unwrap())
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, vec!["offline".to_string()]);
    // And it keeps following live changes.
    srv.vtep_ctl(&["add-ls", "after"]);
    eventually("live update after reconnect", || {
        c.with_replica(|r| r.unwrap().len("Logical_Switch") == 2)
    })
    .await;
    assert_eq!(
        replica_view(&c, &MONITORED),
        server_view(&c, &MONITORED).await
    );
    assert!(
        c.stats()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test]
async fn server_echo_is_answered_and_our_probe_is_answered() {
    let srv = OvsdbServer::start();
    // ovsdb-server probes TCP clients after 5 s of silence; with our probe off,
    // only our answers keep the connection alive.
    let mut cfg = ClientConfig::new(srv.tcp_target());
    cfg.inactivity_probe = None;
    let (quiet, mut eq) = Client::start(cfg).unwrap();
    let mut cfg = ClientConfig::new(srv.tcp_target());
    cfg.inactivity_probe = Some(Duration::from_millis(500));
    let (prober, mut ep) = Client::start(cfg).unwrap();
    connected(&quiet).await;
    connected(&prober).await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        quiet.stats().echo_answered.load(Relaxed) >= 1,
        "server never probed us"
    );
    assert!(prober.stats().echo_sent.load(Relaxed) >= 5);
    for (c, e) in [(&quiet, &mut eq), (&prober, &mut ep)] {
        assert!(c.is_connected());
        assert!(
            !std::iter::from_fn(|| e.try_recv().ok())
                .any(|e| matches!(e, Event::Disconnected { .. }))
        );
        assert_eq!(c.echo(json!(["x"])).await.unwrap(), json!(["x"]));
    }
}

#[tokio::test]
async fn silent_server_is_dropped_by_the_inactivity_probe() {
    // A listener that accepts and never answers (not an OVSDB server at all):
    // the probe must notice within two intervals.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut socks = Vec::new();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            socks.push(s);
        }
    });
    let mut cfg = ClientConfig::new(format!("tcp:127.0.0.1:{port}").parse().unwrap());
    cfg.inactivity_probe = Some(Duration::from_millis(200));
    let (c, mut ev) = Client::start(cfg).unwrap();
    connected(&c).await;
    let t0 = std::time::Instant::now();
    let Event::Disconnected { reason } = event(&mut ev, "probe disconnect", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(reason.contains("inactivity probe"), "{reason}");
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(350) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    c.shutdown();
    hold.abort();
}

#[tokio::test]
async fn oversize_reply_is_refused() {
    let srv = OvsdbServer::start();
    let (writer, _e) = start(srv.unix_target());
    connected(&writer).await;
    let big = "x".repeat(20_000);
    writer
        .transact(
            VTEP_DB,
            &[Operation::insert(
                "Logical_Switch",
                row(vec![("name", "big".into()), ("description", big.into())]),
            )],
        )
        .await
        .unwrap();
    let mut cfg = ClientConfig::new(srv.unix_target());
    cfg.max_message_size = 4096;
    let (small, mut ev) = Client::start(cfg).unwrap();
    connected(&small).await;
    // Small replies still work.
    assert!(small.list_dbs().await.is_ok());
    let e = small
        .transact(VTEP_DB, &[Operation::select("Logical_Switch", vec![])])
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Disconnected), "{e}");
    let Event::Disconnected { reason } = event(&mut ev, "oversize disconnect", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(
        reason.contains("exceeds the maximum size of 4096"),
        "{reason}"
    );
}

#[tokio::test]
async fn tls_target_with_ca_certificate_and_key() {
    let pki_dir = tempfile::tempdir().unwrap();
    let [ca, server_cert, server_key, client_cert, client_key] =
        support::make_pki(pki_dir.path(), "good");
    let srv = OvsdbServer::start_with_tls(Some(support::Tls {
        key: server_key,
        cert: server_cert,
        ca: ca.clone(),
    }));
    let target: Target = format!("ssl:127.0.0.1:{}", srv.ssl_port.unwrap())
        .parse()
        .unwrap();
    let mut cfg = ClientConfig::new(target.clone());
    cfg.tls = Some(TlsFiles {
        ca_cert: ca.clone(),
        certificate: client_cert,
        private_key: client_key,
    });
    cfg.monitor = Some(vtep_monitor(true));
    let (c, mut ev) = Client::start(cfg).unwrap();
    event(&mut ev, "TLS sync", |e| matches!(e, Event::Synced { .. })).await;
    assert!(c.list_dbs().await.unwrap().contains(&VTEP_DB.to_owned()));
    srv.vtep_ctl(&["add-ls", "over-tls"]);
    eventually("update over TLS", || {
        c.with_replica(|r| r.unwrap().len("Logical_Switch") == 1)
    })
    .await;

    // A server whose certificate is from another CA is refused.
    let [_, _, _, rogue_cert, rogue_key] = support::make_pki(pki_dir.path(), "rogue");
    let mut cfg = ClientConfig::new(target.clone());
    cfg.tls = Some(TlsFiles {
        ca_cert: pki_dir.path().join("rogue-ca.pem"),
        certificate: rogue_cert,
        private_key: rogue_key,
    });
    let (r, mut rev) = Client::start(cfg).unwrap();
    let Event::Disconnected { reason } = event(&mut rev, "TLS refusal", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await
    else {
        unreachable!()
    };
    assert!(!r.is_connected());
    assert!(
        reason.to_lowercase().contains("certificate") || reason.contains("UnknownIssuer"),
        "{reason}"
    );
    r.shutdown();

    // ssl: without files is a clear start-up error.
    let e = Client::start(ClientConfig::new(target)).unwrap_err();
    assert!(e.to_string().contains("needs TLS files"), "{e}");
}

#[tokio::test]
async fn a_switch_with_an_old_schema_is_refused_clearly() {
    // Make a hardware_vtep schema as an old switch would have it: version
    // 1.2.0, no Tunnel.bfd_params, no Mcast_Macs_Remote table.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(support::VTEP_SCHEMA).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["version"] = "1.2.0".into();
    let tables = v["tables"].as_object_mut().unwrap();
    tables["Tunnel"]["columns"]
        .as_object_mut()
        .unwrap()
        .remove("bfd_params");
    tables.remove("Mcast_Macs_Remote");
    let path = dir.path().join("old.ovsschema");
    std::fs::write(&path, v.to_string()).unwrap();
    let srv = OvsdbServer::start_with_schema(&path);
    let (c, _ev) = start(srv.unix_target());
    connected(&c).await;
    let schema = c.get_schema(VTEP_DB).await.unwrap();
    let e = vtep_tables::check_schema(&schema).unwrap_err().to_string();
    for needle in [
        "switch schema hardware_vtep 1.2.0 is not usable by Bridgehead",
        "schema version 1.2.0 is older than the minimum 1.3.0",
        "missing column Tunnel.bfd_params (map string->string, written)",
        "missing table Mcast_Macs_Remote",
    ] {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
}

/// Bulk write and replica sync of 10,000 remote MACs, with timings printed
/// (run with --nocapture to see them).
#[tokio::test]
async fn ten_thousand_remote_macs_in_one_transaction() {
    const N: usize = 10_000;
    let srv = OvsdbServer::start();
    let mut cfg = ClientConfig::new(srv.unix_target());
    cfg.monitor = Some(vtep_monitor(true));
    let (watcher, mut ev) = Client::start(cfg).unwrap();
    event(&mut ev, "sync", |e| matches!(e, Event::Synced { .. })).await;
    let (c, _e) = start(srv.unix_target());
    connected(&c).await;
    let mut ops = vec![
        Operation::insert_named(
            "Logical_Switch",
            row(vec![("name", "ls0".into()), ("tunnel_key", 5000i64.into())]),
            "ls",
        ),
        Operation::insert_named(
            "Physical_Locator",
            vtep_tables::PhysicalLocator::insert_row("198.18.0.2"),
            "loc",
        ),
    ];
    for i in 0..N {
        let mac = format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256);
        let ls = Atom::NamedUuid("ls".into());
        let loc = Atom::NamedUuid("loc".into());
        ops.push(Operation::insert(
            "Ucast_Macs_Remote",
            UcastMacsRemote::insert_row(&mac, ls, loc, ""),
        ));
    }
    let t0 = std::time::Instant::now();
    let res = c.transact(VTEP_DB, &ops).await.unwrap();
    let committed = t0.elapsed();
    assert_eq!(res.len(), N + 2);
    eventually("10k rows in the watcher's replica", || {
        watcher.with_replica(|r| r.unwrap().len("Ucast_Macs_Remote") == N)
    })
    .await;
    let replicated = t0.elapsed();
    // A fresh client's initial dump of the same rows.
    let mut cfg = ClientConfig::new(srv.unix_target());
    cfg.monitor = Some(vtep_monitor(true));
    let t1 = std::time::Instant::now();
    let (fresh, mut fev) = Client::start(cfg).unwrap();
    event(&mut fev, "sync", |e| matches!(e, Event::Synced { .. })).await;
    let dumped = t1.elapsed();
    assert_eq!(
        fresh.with_replica(|r| r.unwrap().len("Ucast_Macs_Remote")),
        N
    );
    let (ls, loc) = (res[0].uuid().unwrap(), res[1].uuid().unwrap());
    let macs = watcher.with_replica(|r| UcastMacsRemote::all(r.unwrap()).unwrap());
    assert!(
        macs.iter()
            .all(|m| m.logical_switch == ls && m.locator == loc)
    );
    // The monitoring client itself pipelines two more large transactions
    // while the server streams it the large updates they cause: reads must
    // go on while requests are being written, or both sides stall.
    let batch = |ls_name: &str, prefix: u8, dst_ip: &str| {
        let mut ops = vec![
            Operation::insert_named("Logical_Switch", row(vec![("name", ls_name.into())]), "ls"),
            Operation::insert_named(
                "Physical_Locator",
                vtep_tables::PhysicalLocator::insert_row(dst_ip),
                "loc",
            ),
        ];
        for i in 0..N {
            let mac = format!("02:00:00:{prefix:02x}:{:02x}:{:02x}", i / 256, i % 256);
            let (ls, loc) = (Atom::NamedUuid("ls".into()), Atom::NamedUuid("loc".into()));
            ops.push(Operation::insert(
                "Ucast_Macs_Remote",
                UcastMacsRemote::insert_row(&mac, ls, loc, ""),
            ));
        }
        ops
    };
    let (ops_a, ops_b) = (
        batch("ls-a", 1, "198.18.0.3"),
        batch("ls-b", 2, "198.18.0.4"),
    );
    let (ra, rb) = tokio::join!(
        watcher.transact(VTEP_DB, &ops_a),
        watcher.transact(VTEP_DB, &ops_b)
    );
    ra.unwrap();
    rb.unwrap();
    let total = 3 * N;
    eventually("all rows in the watcher's replica", || {
        watcher.with_replica(|r| r.unwrap().len("Ucast_Macs_Remote") == total)
    })
    .await;
    assert!(
        !std::iter::from_fn(|| ev.try_recv().ok()).any(|e| matches!(e, Event::Disconnected { .. }))
    );
    eprintln!(
        "{N} remote MACs: transact committed in {committed:?}, in a monitoring client's replica after \
         {replicated:?}, initial dump to a new client in {dumped:?}"
    );
}
