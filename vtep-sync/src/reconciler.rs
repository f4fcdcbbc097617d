//! One reconciler per switch: keeps a switch's hardware_vtep database equal
//! to a [`DesiredState`], writing only the difference, and only while it
//! holds the switch's OVSDB lock.
//!
//! Two layers, as elsewhere in the crate:
//!
//! - [`Pacer`] is the sans-IO core: fed events and `now`, it decides when a
//!   plan may be made and sent (connected, synced, schema accepted, lock
//!   held, debounce elapsed, retry backoff elapsed, and our previous
//!   transaction's update seen in the replica), and keeps the status.
//! - [`Reconciler`] is the tokio edge: it checks the switch's schema, runs a
//!   [`Client`] monitoring the tables the planner reads, asks for the lock,
//!   and on each go from the pacer plans ([`crate::plan::plan`]) and sends
//!   the transaction with a timeout.
//!
//! Waiting for our own update before the next plan is what keeps a plan from
//! being computed on a replica that has not seen the previous commit (which
//! would insert the same rows twice, or refer to a locator the server has
//! since garbage-collected). A failed transaction is retried with backoff,
//! forever; since every plan starts from the replica, a retry after a
//! concurrent change is a fresh diff, not a replay.
//!
//! Stopping a reconciler (drop, [`Reconciler::stop`], or the process dying)
//! deletes nothing: the switch keeps forwarding with what it has, and the
//! next holder of the lock diffs against it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::client::{Client, ClientConfig, ClientError, Event, MonitorConfig};
use crate::datum::Uuid;
use crate::desired::DesiredState;
use crate::liveness::Backoff;
use crate::metrics::{Metrics, StatsTracker, TxnResult};
use crate::observed::{ObserveContext, Observed, observe};
use crate::ops::{OpResult, Operation};
use crate::plan::{Plan, PlanCounts, PlanOptions, SOURCE_NODE_FAULT, plan};
use crate::replica::{Change, MonitorSpec};
use crate::schema::DatabaseSchema;
use crate::target::{Target, TlsFiles};
use crate::vtep_tables::{VTEP_DB, check_schema};

/// Default name of the lock that elects the one writer of a switch.
pub const DEFAULT_LOCK: &str = "bridgehead_vtep_sync";

/// Tables the planner reads, monitored with all their columns.
pub const MONITORED_TABLES: &[&str] = &[
    "Physical_Switch",
    "Physical_Port",
    "Logical_Switch",
    "Physical_Locator",
    "Physical_Locator_Set",
    "Ucast_Macs_Local",
    "Ucast_Macs_Remote",
    "Mcast_Macs_Local",
    "Mcast_Macs_Remote",
    "Tunnel",
    "Logical_Binding_Stats",
];

/// Tables whose changes never change a plan: the switch rewrites its
/// binding statistics every second (ovs-vtep), which must not cost a plan
/// pass over every row each time.
const NO_REPLAN_TABLES: &[&str] = &["Logical_Binding_Stats"];

/// Tables whose changes may change the binding statistics.
const STATS_TABLES: &[&str] = &[
    "Logical_Binding_Stats",
    "Physical_Port",
    "Physical_Switch",
    "Logical_Switch",
];

/// Tables whose changes may change the observed state ([`crate::observed`]).
const OBSERVED_TABLES: &[&str] = &[
    "Physical_Switch",
    "Physical_Port",
    "Logical_Switch",
    "Physical_Locator",
    "Ucast_Macs_Local",
    "Tunnel",
];

/// Also monitored when the switch's schema has it: its `switch_binding`
/// keeps logical switches alive, so deletes must wait for it.
const OPTIONAL_TABLES: &[&str] = &["Logical_Router"];

/// A function called with every transaction just before it is sent; for
/// fault injection in tests and the lab (e.g. a concurrent writer).
#[derive(Clone)]
pub struct TransactHook(pub Arc<HookFn>);

/// The function type of a [`TransactHook`].
pub type HookFn = dyn Fn(&[Operation]) + Send + Sync;

impl fmt::Debug for TransactHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TransactHook")
    }
}

/// How a reconciler reaches and treats its switch.
#[derive(Clone, Debug)]
pub struct ReconcilerConfig {
    /// The switch's transport node name in the store (for logs and status).
    pub switch: String,
    /// Its OVSDB target.
    pub target: Target,
    /// TLS files for `ssl:` targets.
    pub tls: Option<TlsFiles>,
    /// `Physical_Switch.name` in the database; `None` = the only one.
    pub physical_switch: Option<String>,
    /// OVSDB lock that elects the writer; `None` writes without one (tests, single instance).
    pub lock: Option<String>,
    /// Changes arriving within this window are planned together.
    pub debounce: Duration,
    /// Longest wait for a transaction's reply.
    pub request_timeout: Duration,
    /// Longest wait for our own committed update before planning anyway.
    pub catch_up_timeout: Duration,
    /// First retry delay after a failed transaction.
    pub retry_min: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// Our echo probe toward the switch (a silent switch is dropped after twice this).
    pub inactivity_probe: Option<Duration>,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Called before each transaction is sent.
    pub before_transact: Option<TransactHook>,
    /// Where to export metrics (series labelled with [`ReconcilerConfig::switch`]).
    pub metrics: Option<Metrics>,
}

impl ReconcilerConfig {
    /// Defaults: the shared lock, 50 ms debounce, 30 s request timeout,
    /// retries from 100 ms to 5 s, reconnects from 100 ms to 2 s.
    pub fn new(switch: impl Into<String>, target: Target) -> Self {
        Self {
            switch: switch.into(),
            target,
            tls: None,
            physical_switch: None,
            lock: Some(DEFAULT_LOCK.to_owned()),
            debounce: Duration::from_millis(50),
            request_timeout: Duration::from_secs(30),
            catch_up_timeout: Duration::from_secs(2),
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            inactivity_probe: Some(Duration::from_secs(5)),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
            before_transact: None,
            metrics: None,
        }
    }
}

/// What a reconciler reports about its switch (for logs, the store and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReconcilerStatus {
    /// OVSDB session up.
    pub connected: bool,
    /// Replica rebuilt since the last connect.
    pub synced: bool,
    /// We hold the writer lock (always true without a lock).
    pub lock_held: bool,
    /// The last plan was empty: the switch matches the desired state.
    pub in_sync: bool,
    /// Logical switches use service_node because the switch cannot do source_node.
    pub source_node_fallback: bool,
    /// `Physical_Switch.switch_fault_status`.
    pub faults: BTreeSet<String>,
    /// Why the schema was refused, if it was.
    pub schema_error: Option<String>,
    /// The last failure (plan, transaction or connection), cleared by a commit.
    pub last_error: Option<String>,
    /// What the last plan could not do yet.
    pub notes: Vec<String>,
    /// Transactions committed.
    pub transactions: u64,
    /// Transactions that failed (and were retried).
    pub failed_transactions: u64,
    /// Rows per monitored table.
    pub rows: BTreeMap<String, usize>,
    /// Size of the last non-empty plan.
    pub last_plan: PlanCountsView,
    /// Store revision of the desired state the switch was last found in
    /// sync with (when the desired state came with one).
    pub applied_revision: Option<u64>,
}

/// [`PlanCounts`] in serializable form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PlanCountsView {
    /// Rows inserted.
    pub inserts: usize,
    /// Rows updated.
    pub updates: usize,
    /// Rows mutated.
    pub mutates: usize,
    /// Rows deleted.
    pub deletes: usize,
}

impl From<PlanCounts> for PlanCountsView {
    fn from(c: PlanCounts) -> Self {
        Self {
            inserts: c.inserts,
            updates: c.updates,
            mutates: c.mutates,
            deletes: c.deletes,
        }
    }
}

impl ReconcilerStatus {
    /// The observed-state object the daemon writes to the store; a
    /// remembered source-node fallback is reported as its fault even after
    /// the switch has cleared it, so operators see why replication differs.
    pub fn switch_status(&self, switch: &str) -> api::model::SwitchStatus {
        let mut faults = self.faults.clone();
        if self.source_node_fallback {
            faults.insert(SOURCE_NODE_FAULT.to_owned());
        }
        api::model::SwitchStatus {
            switch: switch.to_owned(),
            connected: self.connected,
            faults: faults.into_iter().collect(),
            ..Default::default()
        }
    }
}

/// What the pacer wants the edge to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Go {
    /// Nothing yet.
    Wait,
    /// Plan against the replica and send the transaction if it is not empty.
    Plan,
}

/// The sans-IO core: when to plan, what the switch's state is.
#[derive(Debug)]
pub struct Pacer {
    debounce: Duration,
    catch_up_timeout: Duration,
    backoff: Backoff,
    needs_lock: bool,
    dirty: bool,
    plan_at: Option<std::time::Instant>,
    retry_at: Option<std::time::Instant>,
    awaiting: Option<(BTreeSet<Uuid>, std::time::Instant)>,
    schema_ok: bool,
    /// Remembered across reconnects: the switch said it cannot do source_node.
    pub source_node_unsupported: bool,
    /// What is reported.
    pub status: ReconcilerStatus,
}

impl Pacer {
    /// A pacer for the given config.
    pub fn new(cfg: &ReconcilerConfig) -> Self {
        Self {
            debounce: cfg.debounce,
            catch_up_timeout: cfg.catch_up_timeout,
            backoff: Backoff::new(cfg.retry_min, cfg.retry_max),
            needs_lock: cfg.lock.is_some(),
            // The first Synced event makes it dirty.
            dirty: false,
            plan_at: None,
            retry_at: None,
            awaiting: None,
            schema_ok: false,
            source_node_unsupported: false,
            status: ReconcilerStatus {
                lock_held: cfg.lock.is_none(),
                ..ReconcilerStatus::default()
            },
        }
    }

    fn can_write(&self) -> bool {
        self.status.synced && self.schema_ok && self.status.lock_held
    }

    /// Something that may change the plan happened.
    pub fn mark_dirty(&mut self, now: std::time::Instant) {
        self.dirty = true;
        self.status.in_sync = false;
        // A window from the first change, not the last: a switch that keeps
        // updating (local MACs, BFD status) must not starve planning.
        self.plan_at.get_or_insert(now + self.debounce);
    }

    /// The schema check result for the current connection.
    pub fn on_schema(&mut self, result: Result<(), String>) {
        self.schema_ok = result.is_ok();
        self.status.schema_error = result.err();
    }

    /// Feeds a client event.
    pub fn on_event(&mut self, now: std::time::Instant, ev: &Event) {
        match ev {
            Event::Connected => self.status.connected = true,
            Event::Synced { .. } => {
                self.status.synced = true;
                self.awaiting = None;
                self.mark_dirty(now);
            }
            Event::Updated(changes) => {
                self.on_changes(changes);
                if changes
                    .iter()
                    .any(|c| !NO_REPLAN_TABLES.contains(&c.table.as_str()))
                {
                    self.mark_dirty(now);
                }
            }
            Event::Locked(_) => {
                self.status.lock_held = true;
                self.mark_dirty(now);
            }
            Event::Stolen(_) => {
                if self.needs_lock {
                    self.status.lock_held = false;
                }
            }
            Event::Disconnected { reason } => {
                self.status.connected = false;
                self.status.synced = false;
                self.status.in_sync = false;
                if self.needs_lock {
                    self.status.lock_held = false;
                }
                self.awaiting = None;
                self.status.last_error = Some(format!("disconnected: {reason}"));
            }
        }
    }

    fn on_changes(&mut self, changes: &[Change]) {
        if let Some((touched, _)) = &self.awaiting {
            if changes.iter().any(|c| touched.contains(&c.uuid)) {
                self.awaiting = None;
            }
        }
    }

    /// When [`Pacer::poll`] should next be called (None: only after an event).
    pub fn poll_timeout(&self) -> Option<std::time::Instant> {
        if !self.dirty || !self.can_write() {
            return None;
        }
        [
            self.plan_at,
            self.retry_at,
            self.awaiting.as_ref().map(|a| a.1),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    /// Whether to plan now.
    pub fn poll(&mut self, now: std::time::Instant) -> Go {
        if !self.dirty || !self.can_write() {
            return Go::Wait;
        }
        if let Some((_, deadline)) = &self.awaiting {
            if now < *deadline {
                return Go::Wait;
            }
            debug!("our committed update did not show up in time; planning anyway");
            self.awaiting = None;
        }
        if self.plan_at.is_some_and(|t| now < t) || self.retry_at.is_some_and(|t| now < t) {
            return Go::Wait;
        }
        self.dirty = false;
        self.plan_at = None;
        Go::Plan
    }

    /// Records what a plan found out about the switch.
    pub fn on_plan(&mut self, p: &Plan) {
        if p.source_node_fallback && !self.status.source_node_fallback {
            warn!(
                fault = SOURCE_NODE_FAULT,
                "switch cannot do source_node replication: its logical switches use service_node"
            );
        }
        self.source_node_unsupported |= p.source_node_fallback;
        self.status.source_node_fallback = p.source_node_fallback;
        self.status.faults = p.faults.clone();
        if p.notes != self.status.notes {
            for n in &p.notes {
                info!(note = %n, "plan postponed part of the desired state");
            }
            self.status.notes = p.notes.clone();
        }
        if p.is_empty() {
            self.status.in_sync = true;
            // In sync again: an earlier disconnect or failure is history.
            self.status.last_error = None;
            self.backoff.reset();
            self.retry_at = None;
        } else {
            self.status.last_plan = p.counts.into();
        }
    }

    /// A plan could not be made (a row the typed readers refuse).
    pub fn on_plan_error(&mut self, now: std::time::Instant, e: String) {
        self.status.last_error = Some(e);
        self.retry(now);
    }

    /// The transaction committed; `inserted` are the new rows' UUIDs.
    pub fn on_commit(&mut self, now: std::time::Instant, touched: BTreeSet<Uuid>) {
        self.status.transactions += 1;
        self.status.last_error = None;
        self.backoff.reset();
        self.retry_at = None;
        if !touched.is_empty() {
            self.awaiting = Some((touched, now + self.catch_up_timeout));
        }
        // Plan once more after the update: normally empty, confirming sync.
        self.mark_dirty(now);
    }

    /// The transaction failed; `lock_lost` when the server says we do not own the lock.
    pub fn on_failure(&mut self, now: std::time::Instant, e: String, lock_lost: bool) {
        self.status.failed_transactions += 1;
        self.status.last_error = Some(e);
        if lock_lost && self.needs_lock {
            self.status.lock_held = false;
        }
        self.retry(now);
    }

    /// A transaction whose outcome is unknown (no reply in time): if it
    /// committed late, its update will show the touched rows.
    pub fn on_timeout(&mut self, now: std::time::Instant, touched: BTreeSet<Uuid>, wait: Duration) {
        self.status.failed_transactions += 1;
        self.status.last_error = Some("transaction reply timed out".into());
        if !touched.is_empty() {
            self.awaiting = Some((touched, now + wait));
        }
        self.retry(now);
    }

    fn retry(&mut self, now: std::time::Instant) {
        self.retry_at = Some(now + self.backoff.next_delay(rand::random::<f64>()));
        self.mark_dirty(now);
    }
}

/// Handle to a running reconciler; dropping it stops the reconciler
/// (without touching the switch).
#[derive(Debug)]
pub struct Reconciler {
    desired: watch::Sender<Arc<Desired>>,
    status: watch::Receiver<ReconcilerStatus>,
    observed: watch::Receiver<Arc<Observed>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reconciler {
    /// Starts reconciling `desired` onto the switch on the current tokio runtime.
    pub fn start(config: ReconcilerConfig, desired: DesiredState) -> Self {
        let (desired_tx, desired_rx) = watch::channel(Arc::new(Desired {
            state: desired,
            revision: None,
        }));
        if let Some(m) = &config.metrics {
            m.init_switch(&config.switch);
        }
        let (status_tx, status_rx) = watch::channel(ReconcilerStatus::default());
        let (observed_tx, observed_rx) = watch::channel(Arc::new(Observed::default()));
        let span = info_span!("vtep_sync", switch = %config.switch);
        let task = tokio::spawn(
            Edge {
                pacer: Pacer::new(&config),
                config,
                desired: desired_rx,
                status: status_tx,
                observed: observed_tx,
                observed_dirty: true,
                stats: StatsTracker::default(),
                published_observed: None,
                in_sync_with: None,
            }
            .run()
            .instrument(span),
        );
        Self {
            desired: desired_tx,
            status: status_rx,
            observed: observed_rx,
            task,
        }
    }

    /// Replaces the desired state; the switch follows after the debounce.
    pub fn set_desired(&self, desired: DesiredState) {
        self.desired.send_replace(Arc::new(Desired {
            state: desired,
            revision: None,
        }));
    }

    /// Replaces the desired state, computed from the store at `revision`;
    /// once the switch is in sync with it, the revision shows up in
    /// [`ReconcilerStatus::applied_revision`] and the store lag metric.
    pub fn set_desired_at(&self, desired: DesiredState, revision: u64) {
        self.desired.send_replace(Arc::new(Desired {
            state: desired,
            revision: Some(revision),
        }));
    }

    /// The current status.
    pub fn status(&self) -> ReconcilerStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<ReconcilerStatus> {
        self.status.clone()
    }

    /// What the switch reports (learned MACs, tunnel and switch status), as
    /// of the latest replica change; see [`crate::observed`].
    pub fn observed(&self) -> Arc<Observed> {
        self.observed.borrow().clone()
    }

    /// A receiver that sees every change of the observed state: what a
    /// store writer follows to put and delete observed objects.
    pub fn watch_observed(&self) -> watch::Receiver<Arc<Observed>> {
        self.observed.clone()
    }

    /// Stops the reconciler and waits for its connection to close (which
    /// releases the lock at once for a standby).
    pub async fn stop(self) {
        let Reconciler { desired, task, .. } = self;
        drop(desired);
        let _ = task.await;
    }
}

/// A desired state and the store revision it was computed at.
#[derive(Debug)]
struct Desired {
    state: DesiredState,
    revision: Option<u64>,
}

struct Edge {
    config: ReconcilerConfig,
    pacer: Pacer,
    desired: watch::Receiver<Arc<Desired>>,
    status: watch::Sender<ReconcilerStatus>,
    observed: watch::Sender<Arc<Observed>>,
    /// Something the observed state depends on changed since it was computed.
    observed_dirty: bool,
    /// Binding statistics seen so far, for counter increments.
    stats: StatsTracker,
    /// The observed state last mirrored into the metrics.
    published_observed: Option<Arc<Observed>>,
    /// The desired state the last (empty) plan found the switch in sync with.
    in_sync_with: Option<Arc<Desired>>,
}

/// Resolves when the [`Reconciler`] handle is gone (its desired-state sender dropped).
async fn stopped(desired: &mut watch::Receiver<Arc<Desired>>) {
    while desired.changed().await.is_ok() {}
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Edge {
    fn publish(&mut self, client: Option<&Client>) {
        if self.observed_dirty {
            self.observed_dirty = false;
            self.refresh_observed(client);
        }
        if let Some(m) = &self.config.metrics {
            m.status(&self.config.switch, &self.pacer.status);
            let o = self.observed.borrow().clone();
            if self
                .published_observed
                .as_ref()
                .is_none_or(|p| !Arc::ptr_eq(p, &o))
            {
                m.observed(&self.config.switch, &o);
                self.published_observed = Some(o);
            }
        }
        self.status.send_if_modified(|s| {
            if *s == self.pacer.status {
                false
            } else {
                *s = self.pacer.status.clone();
                true
            }
        });
    }

    fn client_config(&self, monitor: Option<MonitorConfig>) -> ClientConfig {
        let mut c = ClientConfig::new(self.config.target.clone());
        c.tls = self.config.tls.clone();
        c.inactivity_probe = self.config.inactivity_probe;
        c.backoff_min = self.config.reconnect_min;
        c.backoff_max = self.config.reconnect_max;
        c.monitor = monitor;
        c
    }

    /// Reads the switch's schema on a short-lived connection, until it is
    /// read and accepted; returns None when the reconciler is stopped.
    async fn accepted_schema(&mut self) -> Option<DatabaseSchema> {
        let mut backoff = Backoff::new(self.config.retry_min, self.config.retry_max);
        loop {
            let outcome = match Client::start(self.client_config(None)) {
                Err(e) => Err(e.to_string()),
                Ok((probe, mut events)) => {
                    let ask = tokio::time::timeout(self.config.request_timeout, async {
                        // Wait for the transport, then ask.
                        while let Some(ev) = events.recv().await {
                            if ev == Event::Connected {
                                return probe.get_schema(VTEP_DB).await;
                            }
                        }
                        Err(ClientError::Stopped)
                    });
                    let r = tokio::select! {
                        r = ask => r,
                        () = stopped(&mut self.desired) => {
                            probe.shutdown();
                            return None;
                        }
                    };
                    probe.shutdown();
                    match r {
                        Ok(Ok(s)) => Ok(s),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("schema request timed out".into()),
                    }
                }
            };
            match outcome {
                Ok(schema) => match check_schema(&schema) {
                    Ok(()) => {
                        self.pacer.on_schema(Ok(()));
                        self.publish(None);
                        return Some(schema);
                    }
                    Err(e) => {
                        error!(error = %e, "switch schema refused");
                        self.pacer.on_schema(Err(e.to_string()));
                        // A switch is upgraded rarely: look again slowly.
                        backoff = Backoff::new(self.config.retry_max, self.config.retry_max);
                    }
                },
                Err(e) => {
                    debug!(error = %e, "schema probe failed");
                    self.pacer.status.last_error = Some(e);
                }
            }
            self.publish(None);
            let delay = backoff.next_delay(rand::random::<f64>());
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                r = self.desired.changed() => if r.is_err() { return None },
            }
        }
    }

    async fn run(mut self) {
        let Some(schema) = self.accepted_schema().await else {
            return;
        };
        let mut tables = MonitorSpec::new();
        for t in MONITORED_TABLES.iter().chain(
            OPTIONAL_TABLES
                .iter()
                .filter(|t| schema.tables.contains_key(**t)),
        ) {
            tables.insert((*t).to_owned(), None);
        }
        let monitor = MonitorConfig {
            db: VTEP_DB.into(),
            tables,
            prefer_monitor_cond: true,
        };
        let (client, mut events) = match Client::start(self.client_config(Some(monitor))) {
            Ok(x) => x,
            Err(e) => {
                error!(error = %e, "cannot start the OVSDB client");
                self.pacer.status.last_error = Some(e.to_string());
                self.publish(None);
                return;
            }
        };
        if let Some(lock) = &self.config.lock {
            // Granted now or later (an Event::Locked either way); re-asked after reconnects.
            if let Err(e) = client.lock(lock).await {
                warn!(error = %e, "lock request failed");
            }
        }
        loop {
            let sleep_until = self.pacer.poll_timeout().map(Instant::from_std);
            let sleep = async move {
                match sleep_until {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ev = events.recv() => match ev {
                    None => break,
                    Some(ev) => {
                        self.on_event(&client, &ev);
                        // Drain what is queued so a burst is one plan.
                        while let Ok(ev) = events.try_recv() {
                            self.on_event(&client, &ev);
                        }
                    }
                },
                r = self.desired.changed() => match r {
                    Err(_) => break,
                    Ok(()) => self.on_desired(),
                },
                _ = sleep => {}
            }
            if self.pacer.poll(now()) == Go::Plan {
                self.reconcile(&client, &mut events).await;
                // The plan may have found the source-node fallback fault.
                self.observed_dirty = true;
            }
            self.publish(Some(&client));
        }
        client.shutdown();
        if let Some(m) = &self.config.metrics {
            // Series stay (with their last values) but say we are gone.
            m.status(
                &self.config.switch,
                &ReconcilerStatus {
                    rows: self.pacer.status.rows.clone(),
                    ..ReconcilerStatus::default()
                },
            );
        }
        info!("reconciler stopped; switch left as it is");
    }

    fn on_event(&mut self, client: &Client, ev: &Event) {
        match ev {
            Event::Synced { .. } => {
                // The client re-reads the schema on every connect; a switch
                // upgraded (or downgraded) under us is checked again.
                let r = client.with_replica(|r| r.map(|r| check_schema(r.schema())));
                if let Some(r) = r {
                    if let Err(e) = &r {
                        error!(error = %e, "switch schema refused");
                    }
                    self.pacer.on_schema(r.map_err(|e| e.to_string()));
                }
                info!("switch database synced");
            }
            Event::Locked(_) => info!("holding the switch's writer lock"),
            Event::Stolen(_) => warn!("writer lock stolen; not writing"),
            Event::Disconnected { reason } => warn!(%reason, "switch connection down; not writing"),
            _ => {}
        }
        self.pacer.on_event(now(), ev);
        if let Event::Updated(_) | Event::Synced { .. } = ev {
            self.count_rows(client);
        }
        let stats_changed = match ev {
            Event::Updated(changes) => changes
                .iter()
                .any(|c| STATS_TABLES.contains(&c.table.as_str())),
            Event::Synced { .. } => true,
            _ => false,
        };
        if stats_changed {
            self.update_stats(client);
        }
        self.observed_dirty |= match ev {
            Event::Updated(changes) => changes
                .iter()
                .any(|c| OBSERVED_TABLES.contains(&c.table.as_str())),
            Event::Locked(_) | Event::Stolen(_) => false,
            Event::Connected | Event::Synced { .. } | Event::Disconnected { .. } => true,
        };
    }

    /// Adds the binding statistics' increase to the counters.
    fn update_stats(&mut self, client: &Client) {
        let Some(m) = &self.config.metrics else {
            return;
        };
        let ps = self.config.physical_switch.as_deref();
        let stats = &mut self.stats;
        match client.with_replica(|r| r.map(|r| stats.update(r, ps))) {
            Some(Ok(d)) => m.binding_stats(&self.config.switch, &d),
            Some(Err(e)) => debug!(error = %e, "cannot read binding statistics"),
            None => {}
        }
    }

    /// Recomputes what the switch reports and publishes it when it changed.
    fn refresh_observed(&mut self, client: Option<&Client>) {
        let desired = self.desired.borrow().clone();
        let desired = &desired.state;
        let mut extra = BTreeSet::new();
        if self.pacer.status.source_node_fallback {
            extra.insert(SOURCE_NODE_FAULT.to_owned());
        }
        let ctx = ObserveContext {
            reporter: &self.config.switch,
            physical_switch: self.config.physical_switch.as_deref(),
            desired,
            // Connected and read: until the fresh dump is in, the replica
            // still holds what the previous session saw.
            connected: self.pacer.status.connected && self.pacer.status.synced,
            extra_faults: &extra,
        };
        let result = match client {
            Some(c) => c.with_replica(|r| observe(r, &ctx)),
            None => observe(None, &ctx),
        };
        match result {
            Ok(o) => {
                self.observed.send_if_modified(|cur| {
                    if **cur == o {
                        return false;
                    }
                    if cur.skipped != o.skipped {
                        for s in &o.skipped {
                            debug!(row = %s, "not reported to the store");
                        }
                    }
                    *cur = Arc::new(o);
                    true
                });
            }
            Err(e) => warn!(error = %e, "cannot read the observed state"),
        }
    }

    fn count_rows(&mut self, client: &Client) {
        let rows = client.with_replica(|r| {
            r.map(|r| {
                MONITORED_TABLES
                    .iter()
                    .map(|t| ((*t).to_owned(), r.len(t)))
                    .collect()
            })
        });
        if let Some(rows) = rows {
            self.pacer.status.rows = rows;
        }
    }

    /// A new desired state: plan, unless only its store revision moved
    /// while the switch is in sync with an equal state. A daemon hands every
    /// store revision to every reconciler (most change nothing for a given
    /// switch): those advance the applied revision without a plan pass.
    fn on_desired(&mut self) {
        let d = self.desired.borrow_and_update().clone();
        if self.pacer.status.in_sync
            && self
                .in_sync_with
                .as_ref()
                .is_some_and(|prev| prev.state == d.state)
        {
            if let Some(rev) = d.revision {
                self.applied(rev);
            }
            self.in_sync_with = Some(d);
            return;
        }
        self.pacer.mark_dirty(now());
        // The VNI -> store name map may have changed.
        self.observed_dirty = true;
    }

    /// The switch is in sync with the desired state of store revision `rev`.
    fn applied(&mut self, rev: u64) {
        self.pacer.status.applied_revision = Some(rev);
        if let Some(m) = &self.config.metrics {
            m.applied_revision(&self.config.switch, rev);
        }
    }

    async fn reconcile(&mut self, client: &Client, events: &mut mpsc::UnboundedReceiver<Event>) {
        let desired_arc = self.desired.borrow().clone();
        let revision = desired_arc.revision;
        let desired = &desired_arc.state;
        let opts = PlanOptions {
            lock: self.config.lock.clone(),
            physical_switch: self.config.physical_switch.clone(),
            source_node_unsupported: self.pacer.source_node_unsupported,
        };
        let started = now();
        let Some(result) = client.with_replica(|r| r.map(|r| plan(desired, r, &opts))) else {
            return;
        };
        if let Some(m) = &self.config.metrics {
            m.plan(
                &self.config.switch,
                now().saturating_duration_since(started),
            );
        }
        let p = match result {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "cannot plan");
                self.pacer.on_plan_error(now(), e.to_string());
                return;
            }
        };
        self.pacer.on_plan(&p);
        if p.is_empty() {
            debug!("switch matches the desired state");
            if let Some(rev) = revision {
                self.applied(rev);
            }
            self.in_sync_with = Some(desired_arc);
            return;
        }
        info!(
            inserts = p.counts.inserts,
            updates = p.counts.updates,
            mutates = p.counts.mutates,
            deletes = p.counts.deletes,
            "writing the difference"
        );
        if let Some(h) = &self.config.before_transact {
            (h.0)(&p.ops);
        }
        let sent = now();
        let reply = tokio::time::timeout(
            self.config.request_timeout,
            client.transact(VTEP_DB, &p.ops),
        )
        .await;
        let t = now();
        if let Some(m) = &self.config.metrics {
            let result = match &reply {
                Ok(Ok(_)) => TxnResult::Committed,
                Ok(Err(_)) => TxnResult::Failed,
                Err(_) => TxnResult::Timeout,
            };
            m.transaction(
                &self.config.switch,
                result,
                t.saturating_duration_since(sent),
                Some(p.counts),
            );
        }
        match reply {
            Ok(Ok(results)) => {
                let mut touched = p.touched.clone();
                touched.extend(results.iter().filter_map(OpResult::uuid));
                self.pacer.on_commit(t, touched);
            }
            Ok(Err(e)) => {
                let lock_lost = matches!(&e, ClientError::Transact(crate::ops::TransactError::OpFailed { error, .. }) if error == "not owner");
                warn!(error = %e, "transaction failed; will re-plan and retry");
                self.pacer.on_failure(t, e.to_string(), lock_lost);
            }
            Err(_) => {
                warn!(timeout = ?self.config.request_timeout, "transaction reply timed out");
                self.pacer
                    .on_timeout(t, p.touched.clone(), self.config.request_timeout);
            }
        }
        // Events that arrived while we waited (often our own update) are next.
        while let Ok(ev) = events.try_recv() {
            self.on_event(client, &ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ReconcilerConfig {
        ReconcilerConfig::new("tor1", "unix:/nonexistent".parse().unwrap())
    }

    fn ready(p: &mut Pacer, t: std::time::Instant) {
        p.on_event(t, &Event::Connected);
        p.on_schema(Ok(()));
        p.on_event(t, &Event::Synced { monitor_cond: true });
    }

    #[test]
    fn writes_only_when_synced_schema_ok_and_locked() {
        let t0 = std::time::Instant::now();
        let mut p = Pacer::new(&cfg());
        assert_eq!(p.poll(t0), Go::Wait);
        ready(&mut p, t0);
        assert_eq!(p.poll(t0 + Duration::from_secs(1)), Go::Wait, "no lock yet");
        p.on_event(t0, &Event::Locked(DEFAULT_LOCK.into()));
        assert_eq!(p.poll(t0), Go::Wait, "debounce");
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(50)));
        assert_eq!(p.poll(t0 + Duration::from_millis(50)), Go::Plan);
        assert_eq!(
            p.poll(t0 + Duration::from_millis(60)),
            Go::Wait,
            "not dirty"
        );
        p.on_event(t0, &Event::Stolen(DEFAULT_LOCK.into()));
        p.mark_dirty(t0);
        assert_eq!(p.poll(t0 + Duration::from_secs(9)), Go::Wait);
        assert!(!p.status.lock_held);
        // Without a lock configured, synced is enough.
        let mut c = cfg();
        c.lock = None;
        let mut p = Pacer::new(&c);
        ready(&mut p, t0);
        assert_eq!(p.poll(t0 + Duration::from_millis(50)), Go::Plan);
        // A refused schema blocks writing.
        p.on_schema(Err("old".into()));
        p.mark_dirty(t0);
        assert_eq!(p.poll(t0 + Duration::from_secs(1)), Go::Wait);
        assert_eq!(p.status.schema_error.as_deref(), Some("old"));
    }

    #[test]
    fn waits_for_its_own_update_before_planning_again() {
        let t0 = std::time::Instant::now();
        let mut c = cfg();
        c.lock = None;
        let mut p = Pacer::new(&c);
        ready(&mut p, t0);
        assert_eq!(p.poll(t0 + Duration::from_millis(50)), Go::Plan);
        let t1 = t0 + Duration::from_millis(60);
        p.on_commit(t1, BTreeSet::from([Uuid(7)]));
        assert_eq!(p.status.transactions, 1);
        // Someone else's update does not release the wait...
        p.on_event(
            t1,
            &Event::Updated(vec![Change {
                table: "Tunnel".into(),
                uuid: Uuid(99),
                kind: crate::replica::ChangeKind::Modify,
            }]),
        );
        assert_eq!(p.poll(t1 + Duration::from_millis(100)), Go::Wait);
        // ...ours does.
        p.on_event(
            t1,
            &Event::Updated(vec![Change {
                table: "Ucast_Macs_Remote".into(),
                uuid: Uuid(7),
                kind: crate::replica::ChangeKind::Insert,
            }]),
        );
        assert_eq!(p.poll(t1 + Duration::from_millis(100)), Go::Plan);
        // If it never comes, plan after the catch-up timeout.
        p.on_commit(t1, BTreeSet::from([Uuid(8)]));
        assert_eq!(p.poll(t1 + Duration::from_secs(1)), Go::Wait);
        assert_eq!(p.poll(t1 + Duration::from_secs(2)), Go::Plan);
    }

    #[test]
    fn failures_back_off_and_retry_forever() {
        let t0 = std::time::Instant::now();
        let mut c = cfg();
        c.lock = None;
        let mut p = Pacer::new(&c);
        ready(&mut p, t0);
        let mut t = t0 + Duration::from_millis(50);
        assert_eq!(p.poll(t), Go::Plan);
        let mut last_gap = Duration::ZERO;
        for i in 0..20 {
            p.on_failure(t, format!("wait failed {i}"), false);
            let at = p.poll_timeout().expect("a retry is scheduled");
            assert!(at > t);
            last_gap = at - t;
            assert_eq!(p.poll(at - Duration::from_millis(1)), Go::Wait);
            t = at;
            assert_eq!(p.poll(t), Go::Plan, "retry {i}");
        }
        assert!(last_gap <= Duration::from_secs(5) + Duration::from_millis(1));
        assert_eq!(p.status.failed_transactions, 20);
        // "not owner" drops the lock until the server grants it again.
        let mut p = Pacer::new(&cfg());
        ready(&mut p, t0);
        p.on_event(t0, &Event::Locked(DEFAULT_LOCK.into()));
        p.on_failure(t0, "not owner".into(), true);
        assert!(!p.status.lock_held);
    }

    #[test]
    fn binding_statistics_alone_do_not_cause_a_plan() {
        let t0 = std::time::Instant::now();
        let mut c = cfg();
        c.lock = None;
        let mut p = Pacer::new(&c);
        ready(&mut p, t0);
        assert_eq!(p.poll(t0 + Duration::from_millis(50)), Go::Plan);
        p.on_plan(&Plan::default());
        let change = |table: &str| Change {
            table: table.into(),
            uuid: Uuid(1),
            kind: crate::replica::ChangeKind::Modify,
        };
        let t1 = t0 + Duration::from_secs(1);
        p.on_event(t1, &Event::Updated(vec![change("Logical_Binding_Stats")]));
        assert_eq!(p.poll(t1 + Duration::from_secs(1)), Go::Wait);
        assert!(p.status.in_sync);
        p.on_event(
            t1,
            &Event::Updated(vec![change("Logical_Binding_Stats"), change("Tunnel")]),
        );
        assert_eq!(p.poll(t1 + Duration::from_secs(1)), Go::Plan);
    }

    #[test]
    fn status_reports_the_fallback_to_the_store() {
        let s = ReconcilerStatus {
            connected: true,
            source_node_fallback: true,
            ..ReconcilerStatus::default()
        };
        let st = s.switch_status("tor1");
        assert_eq!(st.faults, vec![SOURCE_NODE_FAULT.to_owned()]);
        assert!(st.connected);
    }
}
