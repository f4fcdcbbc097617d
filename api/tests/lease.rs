//! Leases on a real node: observed state disappears when its daemon stops renewing.

use std::time::{Duration, Instant};

use api::model::{EventType, Kind, Object, SwitchStatus};
use api::node::{Node, NodeConfig};
use api::state_machine::Command;
use api::watch::WatchMessage;

async fn started(dir: &std::path::Path) -> Node {
    let n = Node::start(NodeConfig::single(dir), None).unwrap();
    for _ in 0..200 {
        if n.is_leader() {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no leader");
}

fn status(switch: &str) -> Object {
    Object::SwitchStatus(SwitchStatus {
        switch: switch.into(),
        connected: true,
        faults: vec![],
        ..Default::default()
    })
}

async fn grant(node: &Node, ttl_ms: u64) -> u64 {
    node.propose(Command::GrantLease {
        ttl_ms,
        now_ms: 0,
        owner: None,
    })
    .await
    .unwrap()
    .lease
    .unwrap()
    .id
}

#[tokio::test]
async fn unrenewed_lease_expires_and_removes_observed_state() {
    let dir = tempfile::tempdir().unwrap();
    let node = started(dir.path()).await;
    let dead = grant(&node, 400).await;
    // Generous TTL for the renewed lease, so a loaded CI machine cannot starve it.
    let alive = grant(&node, 2_000).await;
    for (l, s) in [(dead, "tor1"), (dead, "tor2"), (alive, "tor3")] {
        node.propose(Command::PutObserved {
            object: status(s),
            lease: l,
        })
        .await
        .unwrap();
    }
    let rev = node.list(None).revision;
    let mut w = node.watch(rev, None, Duration::from_secs(60));
    let t0 = Instant::now();
    // Renew only `alive`, every 100 ms, for 1.2 s.
    while t0.elapsed() < Duration::from_millis(1200) {
        node.propose(Command::RenewLease {
            id: alive,
            now_ms: 0,
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The expiry came as one revision deleting both objects of the dead lease.
    match tokio::time::timeout(Duration::from_secs(2), w.next()).await {
        Ok(Some(WatchMessage::Events { revision, events })) => {
            assert_eq!(revision, rev + 1);
            let keys: Vec<_> = events.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(keys, ["switch-status/tor1", "switch-status/tor2"]);
            assert!(events.iter().all(|e| e.event_type == EventType::Delete));
        }
        other => panic!("{other:?}"),
    }
    let left: Vec<_> = node
        .list(Some(&[Kind::SwitchStatus]))
        .items
        .into_iter()
        .map(|s| s.object.key().name)
        .collect();
    assert_eq!(left, ["tor3"]);
    assert!(node.state().lease(dead).is_none());
    // Renewing an expired lease is refused: the daemon must grant a new one and rewrite.
    assert!(
        node.propose(Command::RenewLease {
            id: dead,
            now_ms: 0
        })
        .await
        .is_err()
    );
    // Revoking removes the rest immediately.
    node.propose(Command::RevokeLease { id: alive })
        .await
        .unwrap();
    assert_eq!(node.list(Some(&[Kind::SwitchStatus])).items.len(), 0);
    node.shutdown();
}

#[tokio::test]
async fn leases_survive_a_restart_with_a_fresh_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let node = started(dir.path()).await;
    let l = grant(&node, 2_000).await;
    node.propose(Command::PutObserved {
        object: status("tor1"),
        lease: l,
    })
    .await
    .unwrap();
    node.shutdown();
    drop(node);
    let node = started(dir.path()).await;
    // The new leader refreshed every lease, so the object is still there...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node.list(Some(&[Kind::SwitchStatus])).items.len(), 1);
    // ...and it still expires when nobody renews.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(node.list(Some(&[Kind::SwitchStatus])).items.len(), 0);
    node.shutdown();
}
