//! The one durable file: raft log, hard state, conf state, snapshot metadata,
//! the state machine, the revision counter and the watch history, all in one
//! redb database.
//!
//! Keeping everything in one file means one write transaction can make a
//! whole Ready durable at once: log entries, the hard state (with its commit
//! index) and the results of applying committed entries either all survive a
//! crash or none do, so the applied index can never run ahead of the
//! persisted commit index and a revision is never recorded without its
//! events. Every commit uses [`redb::Durability::Immediate`] (fsync).
//!
//! [`RaftStorage`] is the read side that raft-rs consumes through
//! [`raft::Storage`]; [`Batch`] is the write side the Ready loop uses.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::model::{Event, EventType, RevisionEvents, Stored};
use crate::state_machine::{Applied, Lease, State, StateImage};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const LEASES: TableDefinition<u64, &[u8]> = TableDefinition::new("leases");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");

const HARD_STATE: &str = "hard_state";
const CONF_STATE: &str = "conf_state";
const SNAPSHOT_META: &str = "snapshot_meta";
const APPLIED: &str = "applied_index";
const REVISION: &str = "revision";
const NEXT_LEASE: &str = "next_lease";
const HISTORY_FLOOR: &str = "history_floor";

/// Raft log entries kept behind the applied index before truncation (for slow followers).
pub const LOG_KEEP: u64 = 10_000;

/// Name of the one redb file inside the data directory.
pub const DB_FILE: &str = "bridgehead.redb";

/// Errors of the durable store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, lock held by another process).
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record did not decode.
    #[error("corrupt record {what}: {detail}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// Decoder message.
        detail: String,
    },
}

fn db_err(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Db(e.into())
}

fn corrupt(what: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: e.to_string(),
    }
}

fn u64_bytes(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

fn bytes_u64(b: &[u8]) -> Result<u64, StoreError> {
    let a: [u8; 8] = b.try_into().map_err(|_| corrupt("u64", "length"))?;
    Ok(u64::from_le_bytes(a))
}

/// One revision as the history table keeps it.
#[derive(Debug, Deserialize)]
struct HistoryRecord {
    /// Local wall clock at apply, for age-based retention.
    time_ms: u64,
    events: Vec<Event>,
}

/// [`HistoryRecord`] as written: borrows the applied events instead of
/// copying every object of the revision just to encode it.
#[derive(Serialize)]
struct HistoryRecordRef<'a> {
    time_ms: u64,
    events: &'a [Event],
}

/// Wall clock in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Raft-log bookkeeping kept in memory so `term`/`first_index` do not hit disk.
#[derive(Debug, Clone, Default)]
struct LogCache {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index/term of the last entry removed from the log (0/0 if none).
    snap_index: u64,
    snap_term: u64,
    last_index: u64,
    /// Entries appended by the open, not yet committed batch. raft-rs reads
    /// the log during `advance` (to commit what it was told is persisted),
    /// which in our loop happens inside the batch, before the one commit.
    staged: BTreeMap<u64, Entry>,
}

/// What [`open`] found on disk.
#[derive(Debug)]
pub struct Loaded {
    /// The state machine as of `applied`.
    pub state: State,
    /// Last applied raft index.
    pub applied: u64,
    /// Revisions at or below this are compacted out of the history.
    pub history_floor: u64,
}

/// The shared handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct RaftStorage {
    db: Arc<Database>,
    cache: Arc<RwLock<LogCache>>,
}

/// Opens (or creates) the store under `dir`. A fresh store is bootstrapped
/// with `initial_voters` as its configuration (empty for a node that will
/// join an existing group and receive a snapshot).
pub fn open(dir: &Path, initial_voters: &[u64]) -> Result<(RaftStorage, Loaded), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| db_err(redb::Error::Io(e)))?;
    let db = Database::create(dir.join(DB_FILE)).map_err(db_err)?;
    let txn = db.begin_write().map_err(db_err)?;
    {
        // Create every table so readers never see "table does not exist".
        txn.open_table(LOG).map_err(db_err)?;
        txn.open_table(OBJECTS).map_err(db_err)?;
        txn.open_table(LEASES).map_err(db_err)?;
        txn.open_table(HISTORY).map_err(db_err)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        if meta.get(CONF_STATE).map_err(db_err)?.is_none() {
            let cs = ConfState::from((initial_voters.to_vec(), Vec::<u64>::new()));
            let b = cs.write_to_bytes().map_err(|e| corrupt("conf_state", e))?;
            meta.insert(CONF_STATE, b.as_slice()).map_err(db_err)?;
            if !initial_voters.is_empty() {
                // Bootstrap as if from a snapshot at index 1, term 1 holding
                // the initial configuration. A node that joins later (with no
                // voters) then has nothing at index 1 and must receive a
                // snapshot first, so it starts from this configuration too,
                // not from an empty one (raft-rs's bootstrapping rule).
                let mut m = SnapshotMetadata {
                    index: 1,
                    term: 1,
                    ..Default::default()
                };
                m.set_conf_state(cs);
                let mb = m.write_to_bytes().map_err(|e| corrupt("snap", e))?;
                meta.insert(SNAPSHOT_META, mb.as_slice()).map_err(db_err)?;
                let hs = HardState {
                    term: 1,
                    commit: 1,
                    ..Default::default()
                };
                let hb = hs.write_to_bytes().map_err(|e| corrupt("hs", e))?;
                meta.insert(HARD_STATE, hb.as_slice()).map_err(db_err)?;
                meta.insert(APPLIED, u64_bytes(1).as_slice())
                    .map_err(db_err)?;
            }
        }
    }
    txn.commit().map_err(db_err)?;

    let rtx = db.begin_read().map_err(db_err)?;
    let meta = rtx.open_table(META).map_err(db_err)?;
    let get_u64 = |k: &str| -> Result<u64, StoreError> {
        match meta.get(k).map_err(db_err)? {
            Some(v) => bytes_u64(v.value()),
            None => Ok(0),
        }
    };
    let mut cache = LogCache::default();
    if let Some(v) = meta.get(HARD_STATE).map_err(db_err)? {
        cache.hard_state = HardState::parse_from_bytes(v.value()).map_err(|e| corrupt("hs", e))?;
    }
    if let Some(v) = meta.get(CONF_STATE).map_err(db_err)? {
        cache.conf_state = ConfState::parse_from_bytes(v.value()).map_err(|e| corrupt("cs", e))?;
    }
    if let Some(v) = meta.get(SNAPSHOT_META).map_err(db_err)? {
        let m = SnapshotMetadata::parse_from_bytes(v.value()).map_err(|e| corrupt("snap", e))?;
        cache.snap_index = m.index;
        cache.snap_term = m.term;
    }
    let log = rtx.open_table(LOG).map_err(db_err)?;
    cache.last_index = match log.last().map_err(db_err)? {
        Some((k, _)) => k.value(),
        None => cache.snap_index,
    };
    let applied = get_u64(APPLIED)?;
    let history_floor = get_u64(HISTORY_FLOOR)?;
    let image = StateImage {
        revision: get_u64(REVISION)?,
        next_lease: get_u64(NEXT_LEASE)?,
        objects: read_objects(&rtx)?,
        leases: read_leases(&rtx)?,
    };
    drop(meta);
    drop(log);
    drop(rtx);
    let storage = RaftStorage {
        db: Arc::new(db),
        cache: Arc::new(RwLock::new(cache)),
    };
    Ok((
        storage,
        Loaded {
            state: State::from_image(image),
            applied,
            history_floor,
        },
    ))
}

fn read_objects(rtx: &redb::ReadTransaction) -> Result<Vec<Stored>, StoreError> {
    let t = rtx.open_table(OBJECTS).map_err(db_err)?;
    let mut out = Vec::new();
    for r in t.iter().map_err(db_err)? {
        let (_, v) = r.map_err(db_err)?;
        out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt("object", e))?);
    }
    Ok(out)
}

fn read_leases(rtx: &redb::ReadTransaction) -> Result<Vec<Lease>, StoreError> {
    let t = rtx.open_table(LEASES).map_err(db_err)?;
    let mut out = Vec::new();
    for r in t.iter().map_err(db_err)? {
        let (_, v) = r.map_err(db_err)?;
        out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt("lease", e))?);
    }
    Ok(out)
}

impl RaftStorage {
    /// Starts the write transaction for one Ready.
    pub fn begin(&self) -> Result<Batch<'_>, StoreError> {
        let mut txn = self.db.begin_write().map_err(db_err)?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(db_err)?;
        let cache = self.read_cache().clone();
        Ok(Batch {
            storage: self,
            txn: Some(txn),
            saved: cache.clone(),
            cache,
        })
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, LogCache> {
        // A poisoned lock means a writer panicked mid-update; the data it
        // guards is plain values, still usable.
        self.cache.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The current voter set (for deciding whether to campaign alone).
    pub fn conf_state(&self) -> ConfState {
        self.read_cache().conf_state.clone()
    }

    /// The persisted hard state.
    pub fn hard_state(&self) -> HardState {
        self.read_cache().hard_state.clone()
    }

    /// Reads the history for revisions in `(after, ..]`, up to `limit` revisions.
    ///
    /// Returns `Err(floor)` if revisions right after `after` were compacted.
    pub fn history_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Result<Vec<RevisionEvents>, u64>, StoreError> {
        let rtx = self.db.begin_read().map_err(db_err)?;
        let meta = rtx.open_table(META).map_err(db_err)?;
        let floor = match meta.get(HISTORY_FLOOR).map_err(db_err)? {
            Some(v) => bytes_u64(v.value())?,
            None => 0,
        };
        if after < floor {
            return Ok(Err(floor));
        }
        let t = rtx.open_table(HISTORY).map_err(db_err)?;
        let mut out = Vec::new();
        for r in t.range(after + 1..).map_err(db_err)?.take(limit) {
            let (k, v) = r.map_err(db_err)?;
            let rec: HistoryRecord =
                serde_json::from_slice(v.value()).map_err(|e| corrupt("history", e))?;
            out.push(RevisionEvents {
                revision: k.value(),
                events: rec.events,
            });
        }
        Ok(Ok(out))
    }

    /// Deletes history older than the retention; returns the new floor.
    ///
    /// Keeps at least `keep_revisions` revisions and everything younger than
    /// `keep_ms`: a revision goes only when it is beyond both limits (so a
    /// quiet store keeps its recent history and a busy one stays bounded by
    /// age). The floor is the highest compacted revision: a watch from `R`
    /// works for any `R >= floor`.
    pub fn compact_history(
        &self,
        current_revision: u64,
        keep_revisions: u64,
        keep_ms: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        let floor;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let old_floor = match meta.get(HISTORY_FLOOR).map_err(db_err)? {
                Some(v) => bytes_u64(v.value())?,
                None => 0,
            };
            let by_count = current_revision.saturating_sub(keep_revisions);
            if by_count <= old_floor {
                // Nothing beyond the count limit that is not already gone.
                drop(meta);
                txn.abort().map_err(db_err)?;
                return Ok(old_floor);
            }
            let mut new_floor = old_floor;
            let mut hist = txn.open_table(HISTORY).map_err(db_err)?;
            let cutoff = now_ms.saturating_sub(keep_ms);
            // Walk forward from the floor while a revision is beyond both limits.
            let mut to_remove = Vec::new();
            for r in hist.range(old_floor + 1..=by_count).map_err(db_err)? {
                let (k, v) = r.map_err(db_err)?;
                let rec: HistoryRecord =
                    serde_json::from_slice(v.value()).map_err(|e| corrupt("history", e))?;
                if rec.time_ms > cutoff {
                    break;
                }
                to_remove.push(k.value());
            }
            if let Some(&last) = to_remove.last() {
                new_floor = last;
            }
            for k in &to_remove {
                hist.remove(k).map_err(db_err)?;
            }
            if new_floor != old_floor {
                meta.insert(HISTORY_FLOOR, u64_bytes(new_floor).as_slice())
                    .map_err(db_err)?;
            }
            floor = new_floor;
        }
        txn.commit().map_err(db_err)?;
        Ok(floor)
    }

    fn entry_at(&self, idx: u64) -> Result<Option<Entry>, StoreError> {
        let rtx = self.db.begin_read().map_err(db_err)?;
        let t = rtx.open_table(LOG).map_err(db_err)?;
        match t.get(idx).map_err(db_err)? {
            Some(v) => Ok(Some(
                Entry::parse_from_bytes(v.value()).map_err(|e| corrupt("entry", e))?,
            )),
            None => Ok(None),
        }
    }
}

fn other(e: StoreError) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl raft::Storage for RaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let c = self.read_cache();
        Ok(RaftState::new(c.hard_state.clone(), c.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into();
        let (snap_index, last) = {
            let c = self.read_cache();
            (c.snap_index, c.last_index)
        };
        if low <= snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > last + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let staged: Vec<Entry> = {
            let c = self.read_cache();
            c.staged.range(low..high).map(|(_, e)| e.clone()).collect()
        };
        // Staged entries are always a suffix of the log: disk holds the rest.
        let disk_high = staged.first().map_or(high, |e| e.index);
        let mut out = Vec::new();
        let mut size = 0u64;
        // Always return at least one entry, as the trait requires.
        let full =
            |size: u64, out: &Vec<Entry>| max_size.is_some_and(|m| !out.is_empty() && size > m);
        if low < disk_high {
            let rtx = self.db.begin_read().map_err(|e| other(db_err(e)))?;
            let t = rtx.open_table(LOG).map_err(|e| other(db_err(e)))?;
            for r in t.range(low..disk_high).map_err(|e| other(db_err(e)))? {
                let (_, v) = r.map_err(|e| other(db_err(e)))?;
                size += v.value().len() as u64;
                if full(size, &out) {
                    return Ok(out);
                }
                out.push(
                    Entry::parse_from_bytes(v.value()).map_err(|e| other(corrupt("entry", e)))?,
                );
            }
        }
        for e in staged {
            size += u64::from(e.compute_size());
            if full(size, &out) {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let (snap_index, snap_term, last) = {
            let c = self.read_cache();
            if let Some(e) = c.staged.get(&idx) {
                return Ok(e.term);
            }
            (c.snap_index, c.snap_term, c.last_index)
        };
        if idx == snap_index {
            return Ok(snap_term);
        }
        if idx < snap_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > last {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        match self.entry_at(idx).map_err(other)? {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.read_cache().snap_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.read_cache().last_index)
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        // A snapshot is the state machine as of the applied index, read in one
        // read transaction so it is consistent.
        let rtx = self.db.begin_read().map_err(|e| other(db_err(e)))?;
        let build = || -> Result<Snapshot, StoreError> {
            let meta = rtx.open_table(META).map_err(db_err)?;
            let get = |k: &str| -> Result<u64, StoreError> {
                match meta.get(k).map_err(db_err)? {
                    Some(v) => bytes_u64(v.value()),
                    None => Ok(0),
                }
            };
            let applied = get(APPLIED)?;
            let image = StateImage {
                revision: get(REVISION)?,
                next_lease: get(NEXT_LEASE)?,
                objects: read_objects(&rtx)?,
                leases: read_leases(&rtx)?,
            };
            let cs = match meta.get(CONF_STATE).map_err(db_err)? {
                Some(v) => ConfState::parse_from_bytes(v.value()).map_err(|e| corrupt("cs", e))?,
                None => ConfState::default(),
            };
            let term = {
                let c = self.read_cache();
                if applied == c.snap_index {
                    c.snap_term
                } else {
                    drop(c);
                    self.entry_at(applied)?.map(|e| e.term).unwrap_or(0)
                }
            };
            let mut snap = Snapshot::default();
            snap.set_data(
                serde_json::to_vec(&image)
                    .map_err(|e| corrupt("image", e))?
                    .into(),
            );
            let m = snap.mut_metadata();
            m.index = applied;
            m.term = term;
            m.set_conf_state(cs);
            Ok(snap)
        };
        let snap = build().map_err(other)?;
        if snap.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(snap)
    }
}

/// The write transaction of one Ready: everything in it becomes durable at
/// [`Batch::commit`], or nothing does.
pub struct Batch<'a> {
    storage: &'a RaftStorage,
    /// Always `Some` until commit.
    txn: Option<redb::WriteTransaction>,
    /// The bookkeeping as this batch changes it; published at once so raft
    /// sees its own staged writes.
    cache: LogCache,
    /// The bookkeeping before the batch, restored if it is dropped uncommitted.
    saved: LogCache,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.txn.is_some() {
            // Aborted: forget the staged view.
            *self
                .storage
                .cache
                .write()
                .unwrap_or_else(|e| e.into_inner()) = self.saved.clone();
        }
    }
}

impl Batch<'_> {
    fn txn(&self) -> Result<&redb::WriteTransaction, StoreError> {
        self.txn
            .as_ref()
            .ok_or_else(|| corrupt("batch", "already committed"))
    }

    /// Makes this batch's view of the log visible to raft's storage reads.
    fn publish(&self) {
        *self
            .storage
            .cache
            .write()
            .unwrap_or_else(|e| e.into_inner()) = self.cache.clone();
    }

    fn put_meta(&mut self, k: &str, v: &[u8]) -> Result<(), StoreError> {
        let mut meta = self.txn()?.open_table(META).map_err(db_err)?;
        meta.insert(k, v).map_err(db_err)?;
        Ok(())
    }

    /// Appends entries, first removing any conflicting suffix they replace.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let mut log = self.txn()?.open_table(LOG).map_err(db_err)?;
        // A new leader may overwrite an uncommitted tail: drop everything from `first.index` on.
        if first.index <= self.cache.last_index {
            log.retain_in(first.index.., |_, _| false).map_err(db_err)?;
        }
        for e in entries {
            let b = e.write_to_bytes().map_err(|e| corrupt("entry", e))?;
            log.insert(e.index, b.as_slice()).map_err(db_err)?;
        }
        drop(log);
        self.cache.staged.retain(|i, _| *i < first.index);
        for e in entries {
            self.cache.staged.insert(e.index, e.clone());
        }
        self.cache.last_index = entries.last().map(|e| e.index).unwrap_or(first.index);
        self.publish();
        Ok(())
    }

    /// Persists the hard state (term, vote, commit).
    pub fn set_hard_state(&mut self, hs: &HardState) -> Result<(), StoreError> {
        let b = hs.write_to_bytes().map_err(|e| corrupt("hs", e))?;
        self.put_meta(HARD_STATE, &b)?;
        self.cache.hard_state = hs.clone();
        self.publish();
        Ok(())
    }

    /// Persists the configuration after a conf change was applied.
    pub fn set_conf_state(&mut self, cs: &ConfState) -> Result<(), StoreError> {
        let b = cs.write_to_bytes().map_err(|e| corrupt("cs", e))?;
        self.put_meta(CONF_STATE, &b)?;
        self.cache.conf_state = cs.clone();
        self.publish();
        Ok(())
    }

    /// Records that entry `index` was applied, with the changes it made.
    pub fn record_applied(
        &mut self,
        index: u64,
        applied: Option<&Applied>,
        state: &State,
    ) -> Result<(), StoreError> {
        self.put_meta(APPLIED, &u64_bytes(index))?;
        let Some(a) = applied else { return Ok(()) };
        if !a.events.is_empty() {
            let mut objects = self.txn()?.open_table(OBJECTS).map_err(db_err)?;
            for e in &a.events {
                match e.event_type {
                    EventType::Put => {
                        let b = serde_json::to_vec(&e.value).map_err(|e| corrupt("object", e))?;
                        objects
                            .insert(e.key.as_str(), b.as_slice())
                            .map_err(db_err)?;
                    }
                    EventType::Delete => {
                        objects.remove(e.key.as_str()).map_err(db_err)?;
                    }
                }
            }
            drop(objects);
            let rec = HistoryRecordRef {
                time_ms: now_ms(),
                events: &a.events,
            };
            let b = serde_json::to_vec(&rec).map_err(|e| corrupt("history", e))?;
            let mut hist = self.txn()?.open_table(HISTORY).map_err(db_err)?;
            hist.insert(a.revision, b.as_slice()).map_err(db_err)?;
            drop(hist);
            self.put_meta(REVISION, &u64_bytes(a.revision))?;
        }
        if !a.touched_leases.is_empty() {
            let mut leases = self.txn()?.open_table(LEASES).map_err(db_err)?;
            for id in &a.touched_leases {
                match state.lease(*id) {
                    Some(l) => {
                        let b = serde_json::to_vec(l).map_err(|e| corrupt("lease", e))?;
                        leases.insert(*id, b.as_slice()).map_err(db_err)?;
                    }
                    None => {
                        leases.remove(*id).map_err(db_err)?;
                    }
                }
            }
            drop(leases);
            self.put_meta(NEXT_LEASE, &u64_bytes(state.next_lease()))?;
        }
        Ok(())
    }

    /// Replaces the whole state machine with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<State, StoreError> {
        let m = snap.get_metadata();
        let image: StateImage =
            serde_json::from_slice(snap.get_data()).map_err(|e| corrupt("snapshot", e))?;
        let state = State::from_image(image);
        for def in [OBJECTS, META] {
            let mut t = self.txn()?.open_table(def).map_err(db_err)?;
            t.retain(|_, _| false).map_err(db_err)?;
        }
        for def in [LOG, LEASES, HISTORY] {
            let mut t = self.txn()?.open_table(def).map_err(db_err)?;
            t.retain(|_, _| false).map_err(db_err)?;
        }
        {
            let mut objects = self.txn()?.open_table(OBJECTS).map_err(db_err)?;
            for s in state.objects() {
                let b = serde_json::to_vec(s).map_err(|e| corrupt("object", e))?;
                objects
                    .insert(s.object.key().to_string().as_str(), b.as_slice())
                    .map_err(db_err)?;
            }
            let mut leases = self.txn()?.open_table(LEASES).map_err(db_err)?;
            for l in state.leases() {
                let b = serde_json::to_vec(l).map_err(|e| corrupt("lease", e))?;
                leases.insert(l.id, b.as_slice()).map_err(db_err)?;
            }
        }
        let mb = m.write_to_bytes().map_err(|e| corrupt("snap", e))?;
        self.put_meta(SNAPSHOT_META, &mb)?;
        self.put_meta(APPLIED, &u64_bytes(m.index))?;
        self.put_meta(REVISION, &u64_bytes(state.revision()))?;
        self.put_meta(NEXT_LEASE, &u64_bytes(state.next_lease()))?;
        // History before the snapshot is not available here: relist needed below it.
        self.put_meta(HISTORY_FLOOR, &u64_bytes(state.revision()))?;
        let hs = self.cache.hard_state.clone();
        let mut hs2 = hs.clone();
        hs2.commit = hs.commit.max(m.index);
        hs2.term = hs.term.max(m.term);
        self.set_hard_state(&hs2)?;
        self.set_conf_state(m.get_conf_state())?;
        self.cache.snap_index = m.index;
        self.cache.snap_term = m.term;
        self.cache.last_index = m.index;
        self.cache.staged.clear();
        self.publish();
        Ok(state)
    }

    /// Drops log entries up to `applied - LOG_KEEP`, remembering the last one's term.
    pub fn truncate_log(&mut self, applied: u64) -> Result<(), StoreError> {
        if applied < self.cache.snap_index + 2 * LOG_KEEP {
            return Ok(());
        }
        let upto = applied - LOG_KEEP;
        let term = if let Some(e) = self.cache.staged.get(&upto) {
            e.term
        } else {
            let log = self.txn()?.open_table(LOG).map_err(db_err)?;
            let v = log.get(upto).map_err(db_err)?;
            match v {
                Some(v) => {
                    Entry::parse_from_bytes(v.value())
                        .map_err(|e| corrupt("entry", e))?
                        .term
                }
                None => return Ok(()),
            }
        };
        {
            let mut log = self.txn()?.open_table(LOG).map_err(db_err)?;
            log.retain_in(..=upto, |_, _| false).map_err(db_err)?;
        }
        let mut m = SnapshotMetadata {
            index: upto,
            term,
            ..Default::default()
        };
        m.set_conf_state(self.cache.conf_state.clone());
        let mb = m.write_to_bytes().map_err(|e| corrupt("snap", e))?;
        self.put_meta(SNAPSHOT_META, &mb)?;
        self.cache.snap_index = upto;
        self.cache.snap_term = term;
        self.cache.staged.retain(|i, _| *i > upto);
        self.publish();
        Ok(())
    }

    /// Makes the batch durable (fsync) and publishes the new log bookkeeping.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let txn = self
            .txn
            .take()
            .ok_or_else(|| corrupt("batch", "already committed"))?;
        if let Err(e) = txn.commit() {
            *self
                .storage
                .cache
                .write()
                .unwrap_or_else(|e| e.into_inner()) = self.saved.clone();
            return Err(db_err(e));
        }
        self.cache.staged.clear();
        self.publish();
        Ok(())
    }
}
