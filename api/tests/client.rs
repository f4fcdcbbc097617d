//! The client library and the reflector against the real controller binary:
//! restarts, compaction, a server that is behind, TLS and tokens.

mod common;

use std::time::Duration;

use api::client::{Backoff, Client, ClientConfig, ClientError, Reflector, ReflectorEvent};
use api::model::{Key, Kind, LogicalSwitch, Object, Replication, SwitchStatus};
use common::{Controller, make_certs, spawn_controller, start_controller, start_controller_on};

fn ls(name: &str, vni: u32) -> Object {
    Object::LogicalSwitch(LogicalSwitch {
        name: name.into(),
        vni,
        replication: Replication::ServiceNode,
    })
}

fn client(c: &Controller) -> Client {
    let mut cfg = ClientConfig::new(format!("http://{}", c.addr));
    // Short, so a dead server is noticed quickly in tests.
    cfg.watch_progress = Duration::from_millis(200);
    cfg.watch_idle_timeout = Duration::from_secs(2);
    cfg.connect_timeout = Duration::from_secs(2);
    Client::new(cfg).unwrap()
}

fn reflector(c: Client) -> Reflector {
    Reflector::new(c, None).with_backoff(Backoff::new(
        Duration::from_millis(50),
        Duration::from_millis(400),
    ))
}

/// What a reflector reported, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Synced(u64),
    Changed(u64),
    Error(String),
}

async fn next(r: &mut Reflector) -> Seen {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), r.next())
            .await
            .expect("reflector stalled")
        {
            ReflectorEvent::Synced { revision } => return Seen::Synced(revision),
            ReflectorEvent::Changed { revision, .. } => return Seen::Changed(revision),
            ReflectorEvent::Progress { .. } => continue,
            ReflectorEvent::Error(e) => return Seen::Error(e.to_string()),
        }
    }
}

/// Restarts on the same port (the old socket may linger a moment).
fn restart(dir: &std::path::Path, addr: std::net::SocketAddr) -> Controller {
    let listen = addr.to_string();
    let bin = env!("CARGO_BIN_EXE_bridgehead-controller");
    for _ in 0..50 {
        // Probe that the port is free before handing over to the helper, which panics otherwise.
        if std::net::TcpListener::bind(addr).is_ok() {
            return start_controller_on(dir, &listen, &[]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {addr} never freed ({bin})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_resumes_after_a_restart_without_losing_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let addr = c.addr;
    let cl = client(&c);
    let mut r = reflector(cl.clone());
    assert_eq!(next(&mut r).await, Seen::Synced(0));
    let task = tokio::spawn(async move {
        let mut log = Vec::new();
        while r.revision() < 10 {
            log.push(next(&mut r).await);
        }
        (r, log)
    });
    for i in 1..=5 {
        let w = cl.create(&ls(&format!("a{i}"), i)).await.unwrap();
        assert_eq!(w.revision, i as u64);
    }
    // Give the stream a moment to carry revision 5 or not: either is fine.
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.kill9();
    let c = tokio::task::spawn_blocking({
        let d = dir.path().to_owned();
        move || restart(&d, addr)
    })
    .await
    .unwrap();
    for i in 6..=10 {
        let w = cl.create(&ls(&format!("a{i}"), i)).await.unwrap();
        assert_eq!(w.revision, i as u64);
    }
    let (r, log) = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("reflector caught up")
        .unwrap();
    let changed: Vec<u64> = log
        .iter()
        .filter_map(|s| match s {
            Seen::Changed(r) => Some(*r),
            _ => None,
        })
        .collect();
    assert_eq!(changed, (1..=10).collect::<Vec<_>>(), "{log:?}");
    assert!(log.iter().any(|s| matches!(s, Seen::Error(_))), "{log:?}");
    assert!(
        !log.iter().any(|s| matches!(s, Seen::Synced(_))),
        "resumed, not relisted: {log:?}"
    );
    let server = cl.list(None).await.unwrap();
    assert_eq!(server.revision, 10);
    let mine: Vec<&api::model::Stored> = r.objects().values().collect();
    let theirs: Vec<&api::model::Stored> = server.items.iter().collect();
    assert_eq!(mine, theirs);
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_relists_when_history_was_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let retention = [
        "--history-revisions",
        "5",
        "--history-age-secs",
        "0",
        "--compact-every-ms",
        "50",
    ];
    let c = start_controller(dir.path(), &retention);
    let addr = c.addr;
    let cl = client(&c);
    let mut r = reflector(cl.clone());
    assert_eq!(next(&mut r).await, Seen::Synced(0));
    cl.create(&ls("first", 1)).await.unwrap();
    assert_eq!(next(&mut r).await, Seen::Changed(1));
    // The reflector is away while 20 revisions come and history is cut to 5.
    c.kill9();
    let d = dir.path().to_owned();
    let c = tokio::task::spawn_blocking(move || {
        let listen = addr.to_string();
        for _ in 0..50 {
            if std::net::TcpListener::bind(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        start_controller_on(&d, &listen, &retention)
    })
    .await
    .unwrap();
    for i in 2..=21 {
        cl.create(&ls(&format!("s{i}"), i)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The old stream is broken; resuming from 1 finds it compacted; relist.
    let mut log = Vec::new();
    loop {
        let s = next(&mut r).await;
        let done = matches!(s, Seen::Synced(_));
        log.push(s);
        if done {
            break;
        }
    }
    assert_eq!(log.last(), Some(&Seen::Synced(21)), "{log:?}");
    assert!(
        log[..log.len() - 1]
            .iter()
            .all(|s| matches!(s, Seen::Error(_))),
        "{log:?}"
    );
    assert_eq!(r.objects().len(), 21);
    assert_eq!(r.revision(), 21);
    // And it keeps watching from there.
    cl.create(&ls("after", 99)).await.unwrap();
    assert_eq!(next(&mut r).await, Seen::Changed(22));
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_behind_what_was_seen_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(&dir.path().join("a"), &[]);
    let addr = c.addr;
    let cl = client(&c);
    for i in 1..=3 {
        cl.create(&ls(&format!("a{i}"), i)).await.unwrap();
    }
    let mut r = reflector(cl.clone());
    assert_eq!(next(&mut r).await, Seen::Synced(3));
    let before = r.objects().clone();
    // Same address, fresh store: a restored-from-nothing or different cluster.
    c.kill9();
    let fresh = dir.path().join("b");
    let b = tokio::task::spawn_blocking(move || {
        for _ in 0..50 {
            if std::net::TcpListener::bind(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        start_controller_on(&fresh, &addr.to_string(), &[])
    })
    .await
    .unwrap();
    // It even has some objects of its own.
    cl.create(&ls("intruder", 77)).await.unwrap();
    let mut refusals = 0;
    for _ in 0..20 {
        match next(&mut r).await {
            Seen::Error(e) if e.contains("behind") => refusals += 1,
            Seen::Error(_) => {}
            other => panic!("accepted a server behind: {other:?}"),
        }
        if refusals >= 3 {
            break;
        }
    }
    assert_eq!(refusals, 3);
    assert_eq!(r.objects(), &before, "the copy is untouched");
    assert_eq!(r.revision(), 3);
    // The plain watch call refuses it too.
    match cl.watch(3, None).await {
        Err(ClientError::ServerBehind { server: 1, seen: 3 }) => {}
        other => panic!("{other:?}"),
    }
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_and_leases_over_tls_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        "[[tokens]]\nname = \"ops\"\nrole = \"admin\"\ntoken = \"admin-token-0123456789\"\n\
         [[tokens]]\nname = \"dash\"\nrole = \"reader\"\ntoken = \"reader-token-0123456789\"\n\
         [[tokens]]\nname = \"tor1-sync\"\nrole = \"node\"\nnode = \"tor1\"\ntoken = \"node-token-0123456789\"\n",
    )
    .unwrap();
    let c = spawn_controller(
        &dir.path().join("data"),
        &[
            "--tokens",
            tokens.to_str().unwrap(),
            "--tls-cert",
            certs.cert.to_str().unwrap(),
            "--tls-key",
            certs.key.to_str().unwrap(),
        ],
    );
    let url = format!("https://localhost:{}", c.addr.port());
    let admin = Client::new(
        ClientConfig::new(&url)
            .token("admin-token-0123456789")
            .ca_file(&certs.ca),
    )
    .unwrap();
    // Wait for leadership.
    let mut ok = false;
    for _ in 0..200 {
        if admin.list(None).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "never answered over TLS");
    let w = admin.create(&ls("web", 5001)).await.unwrap();
    assert_eq!(w.revision, 1);
    let key = Key::new(Kind::LogicalSwitch, "web");
    let got = admin.get(&key).await.unwrap().unwrap();
    assert_eq!(got.object, ls("web", 5001));
    assert!(
        admin
            .get(&Key::new(Kind::LogicalSwitch, "nope"))
            .await
            .unwrap()
            .is_none()
    );
    match admin.create(&ls("db", 5001)).await {
        Err(ClientError::Api {
            status: 409, field, ..
        }) => assert_eq!(field, "vni"),
        other => panic!("{other:?}"),
    }
    match admin.create(&ls("-bad", 0)).await {
        Err(ClientError::Api {
            status: 400,
            errors,
            ..
        }) => {
            let f: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(f, ["name", "vni"]);
        }
        other => panic!("{other:?}"),
    }
    let w = admin.put(&ls("web", 5002)).await.unwrap();
    assert_eq!(w.value.unwrap().mod_revision, 2);
    let l = admin.list(Some(Kind::LogicalSwitch)).await.unwrap();
    assert_eq!((l.revision, l.items.len()), (2, 1));

    // A node writes its own observed state under its own lease.
    let node = Client::new(
        ClientConfig::new(&url)
            .token("node-token-0123456789")
            .ca_file(&certs.ca),
    )
    .unwrap();
    let lease = node.grant_lease(Duration::from_secs(30)).await.unwrap();
    assert_eq!(lease.owner.as_deref(), Some("tor1"));
    let st = Object::SwitchStatus(SwitchStatus {
        switch: "tor1".into(),
        connected: true,
        faults: vec![],
        ..Default::default()
    });
    node.put_observed(&st, lease.id).await.unwrap();
    assert_eq!(node.renew_lease(lease.id).await.unwrap().id, lease.id);
    assert_eq!(admin.leases().await.unwrap().len(), 1);
    match node.create(&ls("x", 9)).await {
        Err(ClientError::Api { status: 403, .. }) => {}
        other => panic!("{other:?}"),
    }
    node.revoke_lease(lease.id).await.unwrap();
    assert!(admin.get(&st.key()).await.unwrap().is_none());

    // A watch over TLS.
    let mut w = admin.watch(0, Some(&[Kind::LogicalSwitch])).await.unwrap();
    assert!(w.server_revision() >= 2);
    match w.next().await {
        Some(Ok(api::watch::WatchMessage::Events { revision: 1, .. })) => {}
        other => panic!("{other:?}"),
    }
    admin.delete(&key).await.unwrap();

    // Refusals: reader, no token, untrusted CA, plain http to https.
    let reader = Client::new(
        ClientConfig::new(&url)
            .token("reader-token-0123456789")
            .ca_file(&certs.ca),
    )
    .unwrap();
    assert_eq!(
        reader.create(&ls("y", 10)).await.unwrap_err().status(),
        Some(403)
    );
    let anon = Client::new(ClientConfig::new(&url).ca_file(&certs.ca)).unwrap();
    assert_eq!(anon.list(None).await.unwrap_err().status(), Some(401));
    let other = tempfile::tempdir().unwrap();
    let other = make_certs(other.path());
    let stranger = Client::new(
        ClientConfig::new(&url)
            .token("admin-token-0123456789")
            .ca_file(&other.ca),
    )
    .unwrap();
    assert!(matches!(
        stranger.list(None).await,
        Err(ClientError::Connect(_))
    ));
    assert!(matches!(
        Client::new(ClientConfig::new(&url)),
        Err(ClientError::BadUrl(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_next_mid_watch_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let cl = client(&c);
    let mut r = reflector(cl.clone());
    assert_eq!(next(&mut r).await, Seen::Synced(0));
    for round in 1..=3u64 {
        // Cancel a call that is waiting on the stream.
        let _ = tokio::time::timeout(Duration::from_millis(100), async {
            loop {
                if let ReflectorEvent::Changed { .. } = r.next().await {
                    panic!("nothing was written yet");
                }
            }
        })
        .await;
        cl.create(&ls(&format!("c{round}"), round as u32))
            .await
            .unwrap();
        assert_eq!(next(&mut r).await, Seen::Changed(round));
    }
    assert_eq!(r.objects().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_keeper_grants_once_renews_when_due_and_regrants_a_lost_lease() {
    use api::client::LeaseKeeper;
    let dir = tempfile::tempdir().unwrap();
    let c = start_controller(dir.path(), &[]);
    let cl = client(&c);
    let ttl = Duration::from_millis(1500);
    let mut keeper = LeaseKeeper::new(ttl);
    assert_eq!(keeper.id(), None);
    assert_eq!(keeper.next_renew(), None);
    // Nothing held: nothing to renew.
    assert!(keeper.renew_if_due(&cl).await.unwrap());

    let first = keeper.ensure(&cl).await.unwrap();
    assert!(first.new);
    assert_eq!(keeper.ensure(&cl).await.unwrap().id, first.id);
    assert!(!keeper.ensure(&cl).await.unwrap().new);
    assert_eq!(cl.leases().await.unwrap().len(), 1);

    // Renewed every TTL/3: it outlives several TTLs.
    for _ in 0..8 {
        tokio::time::sleep_until(keeper.next_renew().unwrap()).await;
        assert!(keeper.renew_if_due(&cl).await.unwrap());
    }
    assert_eq!(cl.leases().await.unwrap().len(), 1);
    assert_eq!(keeper.id(), Some(first.id));

    // Gone at the controller: the renewal says so, and the next ensure grants anew.
    cl.revoke_lease(first.id).await.unwrap();
    tokio::time::sleep_until(keeper.next_renew().unwrap()).await;
    assert!(!keeper.renew_if_due(&cl).await.unwrap());
    assert_eq!(keeper.id(), None);
    let second = keeper.ensure(&cl).await.unwrap();
    assert!(second.new);
    assert_ne!(second.id, first.id);

    // A write refused with 404 is reported with `lost`.
    keeper.lost();
    assert_eq!(keeper.id(), None);
    assert!(keeper.ensure(&cl).await.unwrap().new);
}
