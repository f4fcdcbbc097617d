//! Watch guarantees on a real node: ordered, no gaps, whole revisions,
//! resume from any revision in history, bookmarks, compaction -> relist.

use std::time::Duration;

use api::model::{
    Attachment, Binding, EventType, Key, Kind, LogicalSwitch, Object, RemoteMac, Replication,
    TransportNode,
};
use api::node::{Node, NodeConfig};
use api::state_machine::Command;
use api::watch::{WatchMessage, Watcher};

fn ls(name: &str, vni: u32) -> Command {
    Command::Create {
        object: Object::LogicalSwitch(LogicalSwitch {
            name: name.into(),
            vni,
            replication: Replication::ServiceNode,
        }),
    }
}

async fn started(cfg: NodeConfig) -> Node {
    let n = Node::start(cfg, None).unwrap();
    for _ in 0..200 {
        if n.is_leader() {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader");
}

/// Collects `Events` messages until revision `upto`; fails on anything else but bookmarks.
async fn collect(w: &mut Watcher, upto: u64) -> Vec<(u64, Vec<String>)> {
    let mut out = Vec::new();
    while w.revision() < upto {
        let m = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watch stalled")
            .expect("watch ended");
        match m {
            WatchMessage::Events { revision, events } => {
                out.push((revision, events.into_iter().map(|e| e.key).collect()))
            }
            WatchMessage::Progress { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

/// Writes `n` switches from 4 concurrent tasks.
async fn write_many(node: &Node, n: u32, offset: u32) {
    let mut tasks = Vec::new();
    for t in 0..4u32 {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            for i in (0..n).filter(|i| i % 4 == t) {
                let id = offset + i + 1;
                node.propose(ls(&format!("s{id}"), id)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_gapless_and_resumable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::single(dir.path());
    // A tiny live buffer forces the lagging path (re-read from disk).
    cfg.broadcast_capacity = 16;
    let node = started(cfg).await;
    let mut live = node.watch(0, None, Duration::from_secs(60));
    let mut slow = node.watch(0, None, Duration::from_secs(60));
    write_many(&node, 300, 0).await;
    let all = collect(&mut live, 300).await;
    let revs: Vec<u64> = all.iter().map(|(r, _)| *r).collect();
    assert_eq!(revs, (1..=300).collect::<Vec<_>>());
    // The watcher that did not read while 300 revisions went by lagged the
    // broadcast, and still sees exactly the same sequence.
    assert_eq!(collect(&mut slow, 300).await, all);
    // Resume from any R gives exactly the events after R.
    for r in [0u64, 1, 57, 299] {
        let mut w = node.watch(r, None, Duration::from_secs(60));
        let got = collect(&mut w, 300).await;
        assert_eq!(got, all[r as usize..].to_vec(), "resume from {r}");
    }
    // Resume from the current revision, then more writes: continues live.
    let mut w = node.watch(300, None, Duration::from_secs(60));
    write_many(&node, 10, 300).await;
    let got = collect(&mut w, 310).await;
    assert_eq!(
        got.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        (301..=310).collect::<Vec<_>>()
    );
    node.shutdown();
}

#[tokio::test]
async fn a_revision_is_never_split() {
    let dir = tempfile::tempdir().unwrap();
    let node = started(NodeConfig::single(dir.path())).await;
    node.propose(ls("web", 10)).await.unwrap();
    node.propose(Command::Create {
        object: Object::TransportNode(TransportNode {
            name: "hv1".into(),
            kind: api::model::NodeKind::Hypervisor,
            tunnel_ip: "198.18.0.1".parse().unwrap(),
            bfd: Default::default(),
            ovsdb_target: None,
        }),
    })
    .await
    .unwrap();
    for i in 1..=5u8 {
        node.propose(Command::Create {
            object: Object::RemoteMac(RemoteMac {
                logical_switch: "web".into(),
                mac: api::model::MacAddr([2, 0, 0, 0, 0, i]),
                ip: None,
                transport_node: "hv1".into(),
            }),
        })
        .await
        .unwrap();
    }
    let start = node.list(None).revision;
    let mut w = node.watch(start, None, Duration::from_secs(60));
    let a = node
        .propose(Command::Delete {
            key: Key::new(Kind::LogicalSwitch, "web"),
        })
        .await
        .unwrap();
    assert_eq!(a.revision, start + 1);
    match w.next().await.unwrap() {
        WatchMessage::Events { revision, events } => {
            assert_eq!(revision, start + 1);
            assert_eq!(events.len(), 6);
            assert!(events.iter().all(|e| e.event_type == EventType::Delete));
        }
        other => panic!("{other:?}"),
    }
    node.shutdown();
}

#[tokio::test]
async fn kind_filter_skips_but_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = started(NodeConfig::single(dir.path())).await;
    let mut w = node.watch(0, Some(vec![Kind::Binding]), Duration::from_secs(60));
    node.propose(ls("web", 10)).await.unwrap();
    node.propose(Command::Create {
        object: Object::TransportNode(TransportNode {
            name: "tor1".into(),
            kind: api::model::NodeKind::HardwareSwitch,
            tunnel_ip: "198.18.0.9".parse().unwrap(),
            bfd: Default::default(),
            ovsdb_target: Some("tcp:198.18.1.9:6640".into()),
        }),
    })
    .await
    .unwrap();
    node.propose(Command::Create {
        object: Object::Binding(Binding {
            name: "b".into(),
            logical_switch: "web".into(),
            attachment: Attachment::HardwareSwitch {
                switch: "tor1".into(),
                port: "p1".into(),
            },
            vlan: 0,
        }),
    })
    .await
    .unwrap();
    let got = collect(&mut w, 3).await;
    assert_eq!(got, vec![(3, vec!["bindings/b".to_string()])]);
    node.shutdown();
}

#[tokio::test]
async fn progress_bookmarks_when_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let node = started(NodeConfig::single(dir.path())).await;
    node.propose(ls("a", 1)).await.unwrap();
    node.propose(ls("b", 2)).await.unwrap();
    let mut w = node.watch(0, None, Duration::from_millis(100));
    collect(&mut w, 2).await;
    let m = tokio::time::timeout(Duration::from_secs(2), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m, WatchMessage::Progress { revision: 2 });
    node.shutdown();
}

#[tokio::test]
async fn compacted_history_answers_relist_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = started(NodeConfig::single(dir.path())).await;
    for i in 1..=30u32 {
        node.propose(ls(&format!("s{i}"), i)).await.unwrap();
    }
    // Keep the last 10 revisions, no age protection.
    let floor = node.compact_history(10, Duration::ZERO).unwrap();
    assert_eq!(floor, 20);
    assert_eq!(node.history_floor(), 20);
    let mut w0 = node.watch(5, None, Duration::from_secs(60));
    assert_eq!(
        w0.next().await,
        Some(WatchMessage::Compacted {
            floor: 20,
            current: 30
        })
    );
    assert_eq!(w0.next().await, None);
    drop(w0);
    // From the floor itself: exactly 21..=30.
    let mut w = node.watch(20, None, Duration::from_secs(60));
    let got = collect(&mut w, 30).await;
    assert_eq!(
        got.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        (21..=30).collect::<Vec<_>>()
    );
    // Age protection: everything is younger than an hour, nothing goes.
    assert_eq!(
        node.compact_history(0, Duration::from_secs(3600)).unwrap(),
        20
    );
    node.shutdown();
    // Watchers share the database handle; all must go before reopening.
    drop(w);
    drop(node);

    // History and floor are durable.
    let node = started(NodeConfig::single(dir.path())).await;
    assert_eq!(node.history_floor(), 20);
    let mut w = node.watch(25, None, Duration::from_secs(60));
    let got = collect(&mut w, 30).await;
    assert_eq!(got.len(), 5);
    let mut w = node.watch(19, None, Duration::from_secs(60));
    assert!(matches!(
        w.next().await,
        Some(WatchMessage::Compacted { floor: 20, .. })
    ));
    node.shutdown();
}

#[tokio::test]
async fn automatic_compaction_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = NodeConfig::single(dir.path());
    cfg.retention = api::node::Retention {
        revisions: 5,
        age: Duration::ZERO,
    };
    cfg.compact_every = Duration::from_millis(50);
    let node = started(cfg).await;
    for i in 1..=12u32 {
        node.propose(ls(&format!("s{i}"), i)).await.unwrap();
    }
    for _ in 0..100 {
        if node.history_floor() == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(node.history_floor(), 7);
    node.shutdown();
}
