//! The raft node: one thread owns the `RawNode` and runs the Ready loop.
//!
//! The loop follows the order raft-rs documents (its `src/lib.rs`):
//!
//! 1. send `messages` (leader messages may go before persisting);
//! 2. install a `snapshot` if there is one;
//! 3. apply `committed_entries`;
//! 4. append `entries` to the log;
//! 5. persist the hard state `hs`;
//! 6. send `persisted_messages`, only once 2..5 are durable;
//! 7. `advance`, then handle the `LightReady`: its messages, its committed
//!    entries (with the new commit index), then `advance_apply`.
//!
//! Steps 2..5 and the LightReady's applied entries and commit index form ONE
//! redb write transaction, committed with fsync before step 6's messages,
//! the LightReady's messages or any reply leave the process. `advance` runs
//! before that commit; this is safe because the batch exposes its staged
//! log entries to raft's storage reads, and because nothing is visible
//! outside the process until the commit (readers of the state wait on its
//! lock). A crash before the commit loses only unacknowledged work; the
//! applied index can never run ahead of the durable commit index.
//!
//! A proposal is answered only after the transaction that applied it has
//! committed, so an acknowledged write is on disk. Watch events are
//! broadcast at the same moment, in revision order.
//!
//! Growing the group is a configuration change: [`Node::propose_conf_change`]
//! proposes a `ConfChangeV2`, and applying it updates and persists the
//! `ConfState`. Messages for other voters go to the [`Outbox`] (none exist
//! with a single voter; the transport is a later issue).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message};
use raft::{RawNode, StateRole};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, error, info, warn};

use crate::model::RevisionEvents;
use crate::state_machine::{Applied, ApplyError, Command, State};
use crate::storage::{self, Batch, RaftStorage, StoreError, now_ms};

/// How long history is kept for resuming watchers.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Always keep at least this many latest revisions.
    pub revisions: u64,
    /// Always keep revisions younger than this.
    pub age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            revisions: 100_000,
            age: Duration::from_secs(3600),
        }
    }
}

/// Where messages for other voters go; a no-op with a single voter.
pub type Outbox = Box<dyn FnMut(Vec<Message>) + Send>;

/// Settings of one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Raft id of this node (non-zero).
    pub id: u64,
    /// Directory holding the one redb file.
    pub data_dir: PathBuf,
    /// Voters a fresh store starts with; `[id]` for the embedded single voter.
    pub initial_voters: Vec<u64>,
    /// Raft tick length.
    pub tick: Duration,
    /// Ticks without a leader before an election.
    pub election_tick: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: usize,
    /// Watch history retention.
    pub retention: Retention,
    /// How often history compaction runs.
    pub compact_every: Duration,
    /// Capacity of the live watch broadcast (a slower watcher re-reads from disk).
    pub broadcast_capacity: usize,
}

impl NodeConfig {
    /// The embedded default: a single voter with id 1 storing in `data_dir`.
    pub fn single(data_dir: impl Into<PathBuf>) -> NodeConfig {
        NodeConfig {
            id: 1,
            data_dir: data_dir.into(),
            initial_voters: vec![1],
            tick: Duration::from_millis(100),
            election_tick: 10,
            heartbeat_tick: 3,
            retention: Retention::default(),
            compact_every: Duration::from_secs(10),
            broadcast_capacity: 1024,
        }
    }
}

/// Raft progress of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    /// Current term.
    pub term: u64,
    /// Highest log index known committed.
    pub commit: u64,
    /// Highest log index applied to the state machine (and durable).
    pub applied: u64,
}

/// Why a proposal did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The state machine refused it (validation, conflict, not found).
    #[error(transparent)]
    Rejected(#[from] ApplyError),
    /// This node is not the leader; the client should go to `leader` (0 if unknown).
    #[error("not the leader (leader is {leader})")]
    NotLeader {
        /// Known leader id, 0 if none.
        leader: u64,
    },
    /// Raft refused the proposal (e.g. a conf change already pending).
    #[error("proposal dropped: {0}")]
    Dropped(String),
    /// The node stopped before answering.
    #[error("node stopped")]
    Stopped,
}

/// Errors starting a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// raft-rs refused the configuration or state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// The loop thread could not be spawned.
    #[error("spawn: {0}")]
    Spawn(std::io::Error),
}

type Reply = oneshot::Sender<Result<Applied, ProposeError>>;

enum Request {
    Propose { cmd: Command, reply: Reply },
    ConfChange { cc: ConfChangeV2, reply: Reply },
    Step(Box<Message>),
    Shutdown,
}

/// What readers share with the loop.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: RwLock<State>,
    pub(crate) events: broadcast::Sender<Arc<RevisionEvents>>,
    pub(crate) storage: RaftStorage,
    pub(crate) history_floor: AtomicU64,
    /// Fsynced Ready transactions so far (observability, and tests prove one per Ready).
    batches: AtomicU64,
    /// Raft term, commit and applied index after the last Ready (for metrics).
    term: AtomicU64,
    commit: AtomicU64,
    applied: AtomicU64,
    leader: AtomicBool,
    stopped: AtomicBool,
    /// Flips to true when the loop ends, so open watch streams finish
    /// (otherwise an HTTP server's graceful shutdown would wait forever).
    pub(crate) closed: tokio::sync::watch::Sender<bool>,
}

/// Handle on a running node; cheap to clone. The loop stops on [`Node::shutdown`].
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) shared: Arc<Shared>,
    data_dir: PathBuf,
    requests: mpsc::Sender<Request>,
    thread: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Propose { cmd, .. } => write!(f, "Propose({cmd:?})"),
            Request::ConfChange { .. } => write!(f, "ConfChange"),
            Request::Step(_) => write!(f, "Step"),
            Request::Shutdown => write!(f, "Shutdown"),
        }
    }
}

impl Node {
    /// Opens the store and starts the loop thread. Messages to peers go to `outbox`.
    pub fn start(cfg: NodeConfig, outbox: Option<Outbox>) -> Result<Node, NodeError> {
        let (storage, loaded) = storage::open(&cfg.data_dir, &cfg.initial_voters)?;
        info!(
            applied = loaded.applied,
            revision = loaded.state.revision(),
            "store opened"
        );
        let raft_cfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_tick,
            heartbeat_tick: cfg.heartbeat_tick,
            applied: loaded.applied,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        raft_cfg.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut raw = RawNode::new(&raft_cfg, storage.clone(), &logger)?;
        // A lone voter needs no election timeout: take leadership at once.
        let cs = storage.conf_state();
        if cs.voters == [cfg.id] {
            raw.campaign()?;
        }
        let (events, _) = broadcast::channel(cfg.broadcast_capacity.max(16));
        let shared = Arc::new(Shared {
            state: RwLock::new(loaded.state),
            events,
            storage: storage.clone(),
            history_floor: AtomicU64::new(loaded.history_floor),
            batches: AtomicU64::new(0),
            term: AtomicU64::new(raw.raft.term),
            commit: AtomicU64::new(raw.raft.raft_log.committed),
            applied: AtomicU64::new(raw.raft.raft_log.applied),
            leader: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            closed: tokio::sync::watch::Sender::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let data_dir = cfg.data_dir.clone();
        let mut lp = Loop {
            cfg,
            raw,
            storage,
            shared: shared.clone(),
            rx,
            pending: HashMap::new(),
            // Counters of an earlier run of this node may still sit in
            // committed-but-unapplied entries: start past anything it can
            // have used (it would need a million proposals per ms of uptime).
            next_proposal: now_ms() << 20,
            outbox: outbox.unwrap_or_else(|| Box::new(|_| {})),
            expire_proposed: None,
            last_compact: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("raft".into())
            .spawn(move || lp.run())
            .map_err(NodeError::Spawn)?;
        Ok(Node {
            shared,
            data_dir,
            requests: tx,
            thread: Arc::new(std::sync::Mutex::new(Some(thread))),
        })
    }

    /// Proposes a command; returns once it is applied and durable, with its revision.
    pub async fn propose(&self, cmd: Command) -> Result<Applied, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::Propose { cmd, reply })
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Proposes a membership change (add/remove voters or learners).
    pub async fn propose_conf_change(&self, cc: ConfChangeV2) -> Result<Applied, ProposeError> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .send(Request::ConfChange { cc, reply })
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Feeds a raft message received from a peer.
    pub fn step(&self, msg: Message) {
        let _ = self.requests.send(Request::Step(Box::new(msg)));
    }

    /// Reads the current state (consistent: one revision).
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// True while this node is the raft leader (ready to take writes).
    pub fn is_leader(&self) -> bool {
        self.shared.leader.load(Ordering::Relaxed)
    }

    /// True once the loop has stopped (shutdown or fatal storage error).
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::Relaxed)
    }

    /// How many Ready transactions were committed (with fsync) since start.
    pub fn durable_batches(&self) -> u64 {
        self.shared.batches.load(Ordering::Relaxed)
    }

    /// Raft progress as of the last Ready, for metrics and status pages.
    pub fn raft_status(&self) -> RaftStatus {
        RaftStatus {
            term: self.shared.term.load(Ordering::Relaxed),
            commit: self.shared.commit.load(Ordering::Relaxed),
            applied: self.shared.applied.load(Ordering::Relaxed),
        }
    }

    /// Path of the one redb file (its size is a metric).
    pub fn store_file(&self) -> PathBuf {
        self.data_dir.join(storage::DB_FILE)
    }

    /// The voters of the current configuration.
    pub fn voters(&self) -> Vec<u64> {
        self.shared.storage.conf_state().voters
    }

    /// Stops the loop and waits for it.
    pub fn shutdown(&self) {
        let _ = self.requests.send(Request::Shutdown);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

struct Loop {
    cfg: NodeConfig,
    raw: RawNode<RaftStorage>,
    storage: RaftStorage,
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    pending: HashMap<u64, Reply>,
    next_proposal: u64,
    outbox: Outbox,
    expire_proposed: Option<Instant>,
    last_compact: Instant,
}

/// Results to publish once the transaction holding them is durable.
#[derive(Default)]
struct Outputs {
    replies: Vec<(Reply, Result<Applied, ProposeError>)>,
    events: Vec<Arc<RevisionEvents>>,
}

impl Loop {
    fn run(&mut self) {
        let mut next_tick = Instant::now() + self.cfg.tick;
        loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(timeout) {
                Ok(Request::Shutdown) => break,
                Ok(req) => {
                    self.handle(req);
                    // Drain what else is queued so one Ready (one fsync) covers many proposals.
                    let mut stop = false;
                    while let Ok(req) = self.rx.try_recv() {
                        if matches!(req, Request::Shutdown) {
                            stop = true;
                            break;
                        }
                        self.handle(req);
                    }
                    if stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_tick {
                next_tick += self.cfg.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.cfg.tick;
                }
                self.raw.tick();
                self.housekeeping();
            }
            if let Err(e) = self.on_ready() {
                // The disk is the source of truth; continuing after a failed
                // commit could acknowledge writes that are not durable.
                error!(error = %e, "storage failure, stopping the raft loop");
                break;
            }
        }
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.leader.store(false, Ordering::Relaxed);
        self.shared.closed.send_replace(true);
        for (_, r) in self.pending.drain() {
            let _ = r.send(Err(ProposeError::Stopped));
        }
    }

    fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Propose { cmd, reply } => self.propose(cmd, Some(reply)),
            Request::ConfChange { cc, reply } => {
                if !self.is_leader() {
                    let _ = reply.send(Err(ProposeError::NotLeader {
                        leader: self.raw.raft.leader_id,
                    }));
                    return;
                }
                let id = self.next_id();
                match self.raw.propose_conf_change(self.context(id), cc) {
                    Ok(()) => {
                        self.pending.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ProposeError::Dropped(e.to_string())));
                    }
                }
            }
            Request::Step(m) => {
                if let Err(e) = self.raw.step(*m) {
                    debug!(error = %e, "dropped raft message");
                }
            }
            Request::Shutdown => {}
        }
    }

    /// Entry context naming the proposer, so only the node that proposed an
    /// entry answers for it (another node's counter may hold the same value).
    fn context(&self, id: u64) -> Vec<u8> {
        let mut c = self.cfg.id.to_le_bytes().to_vec();
        c.extend_from_slice(&id.to_le_bytes());
        c
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_proposal;
        self.next_proposal += 1;
        id
    }

    fn propose(&mut self, cmd: Command, reply: Option<Reply>) {
        if !self.is_leader() {
            if let Some(r) = reply {
                let _ = r.send(Err(ProposeError::NotLeader {
                    leader: self.raw.raft.leader_id,
                }));
            }
            return;
        }
        // Time-dependent commands carry the leader's clock so apply stays deterministic.
        let now = now_ms();
        let cmd = match cmd {
            Command::GrantLease { ttl_ms, owner, .. } => Command::GrantLease {
                ttl_ms,
                now_ms: now,
                owner,
            },
            Command::RenewLease { id, .. } => Command::RenewLease { id, now_ms: now },
            Command::ExpireLeases { .. } => Command::ExpireLeases { now_ms: now },
            Command::RefreshLeases { .. } => Command::RefreshLeases { now_ms: now },
            other => other,
        };
        let data = match serde_json::to_vec(&cmd) {
            Ok(d) => d,
            Err(e) => {
                if let Some(r) = reply {
                    let _ = r.send(Err(ProposeError::Dropped(e.to_string())));
                }
                return;
            }
        };
        let id = self.next_id();
        match self.raw.propose(self.context(id), data) {
            Ok(()) => {
                if let Some(r) = reply {
                    self.pending.insert(id, r);
                }
            }
            Err(e) => {
                if let Some(r) = reply {
                    let _ = r.send(Err(ProposeError::Dropped(e.to_string())));
                }
            }
        }
    }

    /// Per-tick work: lease expiry (leader only) and history compaction.
    fn housekeeping(&mut self) {
        if self.is_leader() {
            let due = {
                let st = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
                st.next_expiry().is_some_and(|t| t <= now_ms())
            };
            let in_flight = self
                .expire_proposed
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
            if due && !in_flight {
                self.expire_proposed = Some(Instant::now());
                self.propose(Command::ExpireLeases { now_ms: 0 }, None);
            }
        }
        if self.last_compact.elapsed() >= self.cfg.compact_every {
            self.last_compact = Instant::now();
            self.compact_history();
        }
    }

    fn compact_history(&mut self) {
        let rev = self
            .shared
            .state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .revision();
        let r = self.cfg.retention;
        match self
            .storage
            .compact_history(rev, r.revisions, r.age.as_millis() as u64, now_ms())
        {
            Ok(floor) => {
                let old = self.shared.history_floor.swap(floor, Ordering::Relaxed);
                if floor != old {
                    debug!(floor, "watch history compacted");
                }
            }
            Err(e) => warn!(error = %e, "history compaction failed"),
        }
    }

    fn send(&mut self, msgs: Vec<Message>) {
        if !msgs.is_empty() {
            (self.outbox)(msgs);
        }
    }

    fn on_ready(&mut self) -> Result<(), StoreError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        let became_leader = rd.ss().is_some_and(|ss| ss.raft_state == StateRole::Leader);
        let lost_leadership = rd.ss().is_some_and(|ss| ss.raft_state != StateRole::Leader);
        if let Some(ss) = rd.ss() {
            self.shared
                .leader
                .store(ss.raft_state == StateRole::Leader, Ordering::Relaxed);
            info!(role = ?ss.raft_state, leader = ss.leader_id, "raft role");
        }
        // 1. Leader messages may be sent before persisting.
        self.send(rd.take_messages());

        let mut out = Outputs::default();
        let persisted_messages;
        let light_messages;
        {
            // Readers wait while a batch is applied and made durable, so they
            // never see state that a crash could still take away.
            let mut state = self.shared.state.write().unwrap_or_else(|e| e.into_inner());
            let mut batch = self.storage.begin()?;
            // 2. Snapshot.
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                *state = batch.apply_snapshot(&snap)?;
                self.shared
                    .history_floor
                    .store(state.revision(), Ordering::Relaxed);
            }
            // 3. Committed entries.
            let committed = rd.take_committed_entries();
            apply_entries(
                &mut self.raw,
                &mut self.pending,
                &mut batch,
                &mut state,
                committed,
                &mut out,
            )?;
            // 4. Entries.
            batch.append(rd.entries())?;
            // 5. Hard state.
            if let Some(hs) = rd.hs() {
                batch.set_hard_state(hs)?;
            }
            // 6. is deferred until the commit below: persisted messages may
            // only leave once the batch is on disk.
            persisted_messages = rd.take_persisted_messages();
            // 7. Advance inside the batch: raft now treats the staged entries
            // as persisted (the batch shows them to its storage reads), and
            // the LightReady's newly committed entries are applied into the
            // same transaction together with the new commit index. Nothing
            // leaves the process before the commit, so a crash before it
            // loses only unacknowledged work, and the one fsync covers log,
            // hard state, applied state and history.
            let mut light = self.raw.advance(rd);
            if light.commit_index().is_some() {
                let hs = self.raw.raft.hard_state();
                batch.set_hard_state(&hs)?;
            }
            light_messages = light.take_messages();
            let committed = light.take_committed_entries();
            apply_entries(
                &mut self.raw,
                &mut self.pending,
                &mut batch,
                &mut state,
                committed,
                &mut out,
            )?;
            batch.commit()?;
            self.shared.batches.fetch_add(1, Ordering::Relaxed);
        }
        self.publish(out);
        self.send(persisted_messages);
        self.send(light_messages);
        self.raw.advance_apply();
        self.shared
            .term
            .store(self.raw.raft.term, Ordering::Relaxed);
        self.shared
            .commit
            .store(self.raw.raft.raft_log.committed, Ordering::Relaxed);
        self.shared
            .applied
            .store(self.raw.raft.raft_log.applied, Ordering::Relaxed);
        if lost_leadership {
            // Proposals still pending (not applied above) may be overwritten
            // by the new leader, or may still commit: the outcome is unknown,
            // and waiting could be forever. Tell the clients to re-read.
            for (_, r) in self.pending.drain() {
                let _ = r.send(Err(ProposeError::Dropped(
                    "leadership changed before commit; the write may or may not have been applied"
                        .into(),
                )));
            }
        }
        if became_leader {
            // Time without a leader must not count against daemons' leases.
            self.propose(Command::RefreshLeases { now_ms: 0 }, None);
        }
        Ok(())
    }

    fn publish(&mut self, out: Outputs) {
        for ev in out.events {
            // No receivers is fine: nobody is watching.
            let _ = self.shared.events.send(ev);
        }
        for (reply, res) in out.replies {
            let _ = reply.send(res);
        }
        if self.expire_proposed.is_some() {
            let st = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
            if st.next_expiry().is_none_or(|t| t > now_ms()) {
                self.expire_proposed = None;
            }
        }
    }
}

/// The proposal counter in an entry's context, if `node` proposed it.
fn proposal_id(e: &Entry, node: u64) -> Option<u64> {
    let c = e.get_context();
    let who: [u8; 8] = c.get(..8)?.try_into().ok()?;
    let id: [u8; 8] = c.get(8..16)?.try_into().ok()?;
    (u64::from_le_bytes(who) == node).then(|| u64::from_le_bytes(id))
}

fn apply_entries(
    raw: &mut RawNode<RaftStorage>,
    pending: &mut HashMap<u64, Reply>,
    batch: &mut Batch<'_>,
    state: &mut State,
    entries: Vec<Entry>,
    out: &mut Outputs,
) -> Result<(), StoreError> {
    let mut last = None;
    for e in entries {
        last = Some(e.index);
        let reply = proposal_id(&e, raw.raft.id).and_then(|id| pending.remove(&id));
        match e.get_entry_type() {
            EntryType::EntryNormal => {
                if e.data.is_empty() {
                    // The empty entry a new leader appends.
                    batch.record_applied(e.index, None, state)?;
                    continue;
                }
                let res = match serde_json::from_slice::<Command>(&e.data) {
                    Ok(cmd) => state.apply(&cmd).map_err(ProposeError::Rejected),
                    Err(err) => {
                        // Every replica skips the same undecodable entry the same way.
                        error!(index = e.index, error = %err, "undecodable log entry skipped");
                        Err(ProposeError::Dropped(err.to_string()))
                    }
                };
                batch.record_applied(e.index, res.as_ref().ok(), state)?;
                if let Ok(a) = &res
                    && let Some(re) = a.revision_events()
                {
                    out.events.push(Arc::new(re));
                }
                if let Some(r) = reply {
                    out.replies.push((r, res));
                }
            }
            EntryType::EntryConfChangeV2 | EntryType::EntryConfChange => {
                let cs = if e.get_entry_type() == EntryType::EntryConfChangeV2 {
                    match ConfChangeV2::parse_from_bytes(&e.data) {
                        Ok(cc) => raw.apply_conf_change(&cc),
                        Err(err) => Err(raft::Error::CodecError(err)),
                    }
                } else {
                    match ConfChange::parse_from_bytes(&e.data) {
                        Ok(cc) => raw.apply_conf_change(&cc),
                        Err(err) => Err(raft::Error::CodecError(err)),
                    }
                };
                let res = match cs {
                    Ok(cs) => {
                        info!(voters = ?cs.voters, learners = ?cs.learners, "configuration changed");
                        batch.set_conf_state(&cs)?;
                        Ok(Applied {
                            revision: state.revision(),
                            ..Default::default()
                        })
                    }
                    Err(err) => {
                        warn!(error = %err, "conf change refused");
                        Err(ProposeError::Dropped(err.to_string()))
                    }
                };
                batch.record_applied(e.index, None, state)?;
                if let Some(r) = reply {
                    out.replies.push((r, res));
                }
            }
        }
    }
    if let Some(idx) = last {
        batch.truncate_log(idx)?;
    }
    Ok(())
}
