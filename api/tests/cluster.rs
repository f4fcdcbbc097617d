//! Growing the embedded single voter to three voters is only a configuration
//! change: three in-process nodes, each on its own redb file, with raft
//! messages routed between them in memory (the network transport is a later
//! issue). Then the leader stops and the survivors elect a new one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::model::{Kind, LogicalSwitch, Object, Replication};
use api::node::{Node, NodeConfig, Outbox, ProposeError};
use api::state_machine::Command;
use raft::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};

type Registry = Arc<Mutex<HashMap<u64, Node>>>;

fn outbox(reg: &Registry) -> Outbox {
    let reg = reg.clone();
    Box::new(move |msgs| {
        let reg = reg.lock().unwrap();
        for m in msgs {
            if let Some(n) = reg.get(&m.to) {
                n.step(m);
            }
        }
    })
}

fn cfg(dir: &std::path::Path, id: u64, voters: Vec<u64>) -> NodeConfig {
    let mut c = NodeConfig::single(dir);
    c.id = id;
    c.initial_voters = voters;
    c.tick = Duration::from_millis(20);
    c
}

fn ls(name: &str, vni: u32) -> Command {
    Command::Create {
        object: Object::LogicalSwitch(LogicalSwitch {
            name: name.into(),
            vni,
            replication: Replication::ServiceNode,
        }),
    }
}

fn add_voter(id: u64) -> ConfChangeV2 {
    let mut s = ConfChangeSingle::default();
    s.set_change_type(ConfChangeType::AddNode);
    s.node_id = id;
    let mut cc = ConfChangeV2::default();
    cc.set_changes(vec![s].into());
    cc
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_voter_grows_to_three_and_survives_leader_loss() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let reg: Registry = Arc::new(Mutex::new(HashMap::new()));

    let n1 = Node::start(cfg(dirs[0].path(), 1, vec![1]), Some(outbox(&reg))).unwrap();
    reg.lock().unwrap().insert(1, n1.clone());
    until("n1 leader", || n1.is_leader()).await;
    for i in 1..=10u32 {
        n1.propose(ls(&format!("s{i}"), i)).await.unwrap();
    }

    // New nodes start empty (no voters) and learn everything from the leader.
    for id in [2u64, 3] {
        let n = Node::start(
            cfg(dirs[id as usize - 1].path(), id, vec![]),
            Some(outbox(&reg)),
        )
        .unwrap();
        reg.lock().unwrap().insert(id, n);
        n1.propose_conf_change(add_voter(id)).await.unwrap();
    }
    assert_eq!(n1.voters(), vec![1, 2, 3]);
    for i in 11..=20u32 {
        n1.propose(ls(&format!("s{i}"), i)).await.unwrap();
    }
    let (n2, n3) = {
        let r = reg.lock().unwrap();
        (r[&2].clone(), r[&3].clone())
    };
    until("followers catch up", || {
        n2.state().revision() == 20 && n3.state().revision() == 20
    })
    .await;
    assert_eq!(n2.list(None), n1.list(None));
    assert_eq!(n3.list(None), n1.list(None));
    assert_eq!(n3.voters(), vec![1, 2, 3]);
    // A follower refuses writes and says who leads.
    match n2.propose(ls("x", 999)).await {
        Err(ProposeError::NotLeader { leader }) => assert_eq!(leader, 1),
        other => panic!("{other:?}"),
    }

    // The leader goes away; the two survivors are a majority of three.
    reg.lock().unwrap().remove(&1);
    n1.shutdown();
    until("a new leader", || n2.is_leader() || n3.is_leader()).await;
    let leader = if n2.is_leader() { &n2 } else { &n3 };
    let a = leader.propose(ls("after", 1000)).await.unwrap();
    assert_eq!(a.revision, 21, "revisions continue on the new leader");
    let other = if n2.is_leader() { &n3 } else { &n2 };
    until("replicated", || other.state().revision() == 21).await;
    assert_eq!(other.list(Some(&[Kind::LogicalSwitch])).items.len(), 21);
    // A joining node starts from a snapshot of the leader's state, so its
    // watch history starts there: below it, relist; from it, replay.
    let floor = other.history_floor();
    assert!((1..21).contains(&floor), "floor {floor}");
    let mut w = other.watch(0, None, Duration::from_secs(60));
    assert!(matches!(
        w.next().await,
        Some(api::watch::WatchMessage::Compacted { .. })
    ));
    let mut w = other.watch(floor, None, Duration::from_secs(60));
    for r in floor + 1..=21u64 {
        match w.next().await {
            Some(api::watch::WatchMessage::Events { revision, .. }) => assert_eq!(revision, r),
            m => panic!("{m:?}"),
        }
    }
    drop(w);
    reg.lock().unwrap().clear();
    n2.shutdown();
    n3.shutdown();
}
