//! The raft node on a real redb file: proposals, restart, conf change.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api::model::{Key, Kind, LogicalSwitch, Object, Replication};
use api::node::{Node, NodeConfig, ProposeError};
use api::state_machine::{ApplyError, Command};
use raft::eraftpb::{ConfChangeType, ConfChangeV2};

fn ls(name: &str, vni: u32) -> Command {
    Command::Create {
        object: Object::LogicalSwitch(LogicalSwitch {
            name: name.into(),
            vni,
            replication: Replication::ServiceNode,
        }),
    }
}

async fn wait_leader(n: &Node) {
    for _ in 0..100 {
        if n.is_leader() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no leadership");
}

#[tokio::test]
async fn proposals_are_durable_and_revisions_continue_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::single(dir.path()), None).unwrap();
    wait_leader(&node).await;
    for i in 1..=20u32 {
        let a = node.propose(ls(&format!("ls{i}"), i)).await.unwrap();
        assert_eq!(a.revision, i as u64);
    }
    // A refused proposal gets the state machine's error and no revision.
    match node.propose(ls("ls1", 99)).await {
        Err(ProposeError::Rejected(ApplyError::Conflict(v))) => assert_eq!(v[0].field, "name"),
        other => panic!("{other:?}"),
    }
    node.shutdown();
    drop(node);

    let node = Node::start(NodeConfig::single(dir.path()), None).unwrap();
    {
        let st = node.state();
        assert_eq!(st.revision(), 20);
        assert_eq!(st.list(Kind::LogicalSwitch).count(), 20);
        assert!(st.get(&Key::new(Kind::LogicalSwitch, "ls7")).is_some());
    }
    wait_leader(&node).await;
    let a = node.propose(ls("after", 1000)).await.unwrap();
    assert_eq!(a.revision, 21);
    node.shutdown();
}

#[tokio::test]
async fn conf_change_adds_a_learner_and_persists_it() {
    let dir = tempfile::tempdir().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let s2 = sent.clone();
    let outbox = Box::new(move |msgs: Vec<raft::eraftpb::Message>| {
        assert!(msgs.iter().all(|m| m.to == 2));
        s2.fetch_add(msgs.len(), Ordering::Relaxed);
    });
    let node = Node::start(NodeConfig::single(dir.path()), Some(outbox)).unwrap();
    wait_leader(&node).await;
    let mut cc = ConfChangeV2::default();
    cc.set_changes(vec![raft_proto_single(2, ConfChangeType::AddLearnerNode)].into());
    node.propose_conf_change(cc).await.unwrap();
    // The leader now replicates to the learner through the outbox.
    node.propose(ls("x", 5)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sent.load(Ordering::Relaxed) > 0);
    node.shutdown();
    drop(node);
    let node = Node::start(NodeConfig::single(dir.path()), None).unwrap();
    assert_eq!(node.voters(), vec![1]);
    wait_leader(&node).await;
    node.shutdown();
}

fn raft_proto_single(id: u64, t: ConfChangeType) -> raft::eraftpb::ConfChangeSingle {
    let mut c = raft::eraftpb::ConfChangeSingle::default();
    c.set_change_type(t);
    c.node_id = id;
    c
}

#[tokio::test]
async fn one_fsynced_transaction_per_ready() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(NodeConfig::single(dir.path()), None).unwrap();
    wait_leader(&node).await;
    // Let the election's empty entry and the lease refresh settle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = node.durable_batches();
    for i in 1..=50u32 {
        node.propose(ls(&format!("s{i}"), i)).await.unwrap();
    }
    let used = node.durable_batches() - before;
    // Sequential proposals: each is appended, committed and applied in the
    // same Ready transaction, so one fsync per write (not one for the log and
    // another for applying).
    assert_eq!(used, 50, "transactions for 50 sequential writes");
    node.shutdown();
}
