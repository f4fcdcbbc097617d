//! The redb store through raft-rs's `Storage` trait: append/overwrite,
//! log truncation, snapshot build and install.

use api::model::{LogicalSwitch, Object, Replication};
use api::state_machine::{Command, State};
use api::storage::{self, LOG_KEEP};
use raft::Storage;
use raft::eraftpb::{Entry, HardState};

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: vec![1, 2, 3].into(),
        ..Default::default()
    }
}

#[test]
fn append_overwrites_conflicting_tail_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A joining node's store: empty, nothing bootstrapped.
        let (s, _) = storage::open(dir.path(), &[]).unwrap();
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
        let mut b = s.begin().unwrap();
        b.append(&(1..=10).map(|i| entry(i, 1)).collect::<Vec<_>>())
            .unwrap();
        b.set_hard_state(&HardState {
            term: 2,
            vote: 1,
            commit: 5,
            ..Default::default()
        })
        .unwrap();
        b.commit().unwrap();
        // A new leader replaces 6..=10 with 6..=7 of term 2.
        let mut b = s.begin().unwrap();
        b.append(&[entry(6, 2), entry(7, 2)]).unwrap();
        b.commit().unwrap();
        assert_eq!(s.last_index().unwrap(), 7);
        assert_eq!(s.term(7).unwrap(), 2);
        assert_eq!(s.term(5).unwrap(), 1);
        assert!(s.term(8).is_err());
    }
    let (s, _) = storage::open(dir.path(), &[]).unwrap();
    assert_eq!(s.last_index().unwrap(), 7);
    let st = s.initial_state().unwrap();
    assert_eq!((st.hard_state.term, st.hard_state.commit), (2, 5));
    assert!(st.conf_state.voters.is_empty());
    let es = s
        .entries(3, 8, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(
        es.iter().map(|e| (e.index, e.term)).collect::<Vec<_>>(),
        [(3, 1), (4, 1), (5, 1), (6, 2), (7, 2)]
    );
    // max_size still returns at least one entry.
    let es = s
        .entries(3, 8, Some(1), raft::GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(es.len(), 1);
}

#[test]
fn log_is_truncated_behind_applied_and_reports_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = storage::open(dir.path(), &[]).unwrap();
    let n = 2 * LOG_KEEP + 5;
    let mut b = s.begin().unwrap();
    b.append(&(1..=n).map(|i| entry(i, 3)).collect::<Vec<_>>())
        .unwrap();
    b.truncate_log(n).unwrap();
    b.commit().unwrap();
    let first = s.first_index().unwrap();
    assert_eq!(first, n - LOG_KEEP + 1);
    // The term just before the first entry is still known (raft needs it for matching).
    assert_eq!(s.term(first - 1).unwrap(), 3);
    assert!(s.term(first - 2).is_err());
    assert!(
        s.entries(
            first - 1,
            first + 1,
            None,
            raft::GetEntriesContext::empty(false)
        )
        .is_err()
    );
    drop(s);
    let (s, _) = storage::open(dir.path(), &[1]).unwrap();
    assert_eq!(s.first_index().unwrap(), first);
    assert_eq!(s.last_index().unwrap(), n);
}

#[test]
fn snapshot_carries_the_state_machine_to_another_store() {
    let a_dir = tempfile::tempdir().unwrap();
    let b_dir = tempfile::tempdir().unwrap();
    let (a, loaded) = storage::open(a_dir.path(), &[1]).unwrap();
    // The bootstrapped single voter starts at a snapshot of index 1.
    assert_eq!((a.first_index().unwrap(), a.last_index().unwrap()), (2, 1));
    assert_eq!(loaded.applied, 1);
    let mut state = State::new();
    let mut b = a.begin().unwrap();
    b.append(&(2..=3).map(|i| entry(i, 1)).collect::<Vec<_>>())
        .unwrap();
    for i in 2..=3u64 {
        let applied = state
            .apply(&Command::Create {
                object: Object::LogicalSwitch(LogicalSwitch {
                    name: format!("s{i}"),
                    vni: i as u32,
                    replication: Replication::SourceNode,
                }),
            })
            .unwrap();
        b.record_applied(i, Some(&applied), &state).unwrap();
    }
    b.commit().unwrap();
    let snap = a.snapshot(3, 2).unwrap();
    assert_eq!(snap.get_metadata().index, 3);
    assert_eq!(snap.get_metadata().term, 1);
    assert_eq!(snap.get_metadata().get_conf_state().voters, vec![1]);

    // A joining node (no initial voters) installs it.
    let (bs, _) = storage::open(b_dir.path(), &[]).unwrap();
    let mut batch = bs.begin().unwrap();
    let installed = batch.apply_snapshot(&snap).unwrap();
    batch.commit().unwrap();
    assert_eq!(installed, state);
    assert_eq!(state.revision(), 2);
    assert_eq!(bs.first_index().unwrap(), 4);
    assert_eq!(bs.term(3).unwrap(), 1);
    drop(bs);
    let (_, loaded) = storage::open(b_dir.path(), &[]).unwrap();
    assert_eq!(loaded.state, state);
    assert_eq!(loaded.applied, 3);
    // History before a snapshot is not on this node: watchers must relist below it.
    assert_eq!(loaded.history_floor, 2);
}

#[test]
fn history_compaction_never_moves_the_floor_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = storage::open(dir.path(), &[1]).unwrap();
    let mut state = State::new();
    let mut b = s.begin().unwrap();
    for i in 1..=10u32 {
        let a = state
            .apply(&Command::Create {
                object: Object::LogicalSwitch(LogicalSwitch {
                    name: format!("s{i}"),
                    vni: i,
                    replication: Replication::ServiceNode,
                }),
            })
            .unwrap();
        b.record_applied(u64::from(i) + 1, Some(&a), &state)
            .unwrap();
    }
    b.commit().unwrap();
    // (current revision, keep revisions, keep ms, now)
    assert_eq!(s.compact_history(10, 10, 0, u64::MAX).unwrap(), 0);
    assert_eq!(s.compact_history(10, 4, 0, u64::MAX).unwrap(), 6);
    // A larger retention later keeps the floor where it is.
    assert_eq!(s.compact_history(10, 8, 0, u64::MAX).unwrap(), 6);
    // Age protection: everything is younger than a day, nothing goes.
    assert_eq!(
        s.compact_history(10, 0, 86_400_000, storage::now_ms())
            .unwrap(),
        6
    );
    assert_eq!(s.history_after(5, 100).unwrap(), Err(6));
    let rest = s.history_after(6, 100).unwrap().unwrap();
    assert_eq!(
        rest.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [7, 8, 9, 10]
    );
}
