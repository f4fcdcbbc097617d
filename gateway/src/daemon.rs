//! The gateway daemon's event loop, kept in the library so that tests can
//! drive it; `bin/bridgehead-gateway.rs` only parses flags, sets up logging,
//! enters the namespace and starts the runtime.
//!
//! Headless by construction: nothing here ever removes kernel state on its
//! own. Until a valid desired state is loaded the reconciler does not run at
//! all; when the source becomes unreadable or invalid the last good state
//! stays in force; on SIGTERM/SIGINT the daemon exits and the kernel keeps
//! forwarding. A restart dumps the kernel and applies only the difference,
//! so flows that are still desired are never interrupted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use api::client::{Client, ClientConfig, ClientError, Reflector};
use api::model::MacAddr as ApiMac;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::desired::DesiredNode;
use crate::file_store::{DesiredFile, FileSource, LearnedRecord, Poll, write_learned};
use crate::learning::LearnEvent;
use crate::mac::MacAddr;
use crate::metrics::{self, Metrics, MetricsError};
use crate::reconciler::{
    self, Outputs, PassReport, ReconcileError, ReconcilerConfig, ReconcilerStats,
};
use crate::store_client::{
    LearnedKey, PublisherConfig, Snapshot, WATCHED_KINDS, run_publisher, run_source,
};
use crate::store_source::{ComputeError, LocalConfig};

/// What the daemon needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where the desired state comes from and learned MACs go.
    pub source: Source,
    /// Where `/metrics` is served.
    pub metrics_listen: SocketAddr,
    /// Reconciler timing.
    pub reconciler: ReconcilerConfig,
}

/// The two sources of desired state.
#[derive(Debug, Clone)]
pub enum Source {
    /// The per-node JSON file of [`crate::file_store`] (tests, and boxes
    /// configured by other tooling).
    File(FileConfig),
    /// The controller (see [`crate::store_client`]).
    Store(StoreConfig),
}

/// File mode.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// The desired-state JSON file (see [`crate::file_store`]).
    pub desired: PathBuf,
    /// Where learned MACs are written, if anywhere.
    pub learned: Option<PathBuf>,
    /// How often the desired file's metadata is checked for changes.
    pub poll: Duration,
}

/// Store mode.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Controller URL, token, CA.
    pub client: ClientConfig,
    /// This node's transport-node name.
    pub node: String,
    /// What only this node knows (underlay NIC, VM ports).
    pub local: LocalConfig,
    /// TTL of the lease the learned MACs hang off.
    pub lease_ttl: Duration,
}

/// The daemon could not start or its loop failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Binding the metrics listener or installing signal handlers failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Metric registration failed.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The reconcile loop ended with an error (netlink unusable).
    #[error("reconcile loop: {0}")]
    Reconcile(#[from] ReconcileError),
    /// The reconcile loop panicked or was cancelled.
    #[error("reconcile loop task: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The controller client cannot be built (bad URL, token or CA file).
    #[error("controller client: {0}")]
    Client(#[from] ClientError),
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        what: what.to_string(),
        source,
    }
}

/// What both modes share: metrics, the reconcile loop and the learned set.
struct Core {
    metrics: Metrics,
    reconciler: ReconcilerConfig,
    desired_tx: Option<watch::Sender<DesiredNode>>,
    learn_tx: mpsc::UnboundedSender<LearnEvent>,
    reports_tx: watch::Sender<Arc<PassReport>>,
    task: Option<JoinHandle<Result<(), ReconcileError>>>,
    learned: BTreeSet<(u32, MacAddr)>,
}

impl Core {
    /// Hands a new desired state to the loop, starting it on the first one.
    fn set_desired(&mut self, desired: DesiredNode) {
        match &self.desired_tx {
            Some(tx) => {
                tx.send_replace(desired);
            }
            None => {
                let (tx, rx) = watch::channel(desired);
                let outputs = Outputs {
                    stats: ReconcilerStats::default(),
                    reports: Some(self.reports_tx.clone()),
                    learned: Some(self.learn_tx.clone()),
                    metrics: Some(self.metrics.clone()),
                };
                self.task = Some(tokio::spawn(reconciler::run_with(
                    rx,
                    self.reconciler,
                    outputs,
                )));
                self.desired_tx = Some(tx);
            }
        }
    }

    fn learn(&mut self, ev: LearnEvent) {
        match ev {
            LearnEvent::Learned { vni, mac, .. } => self.learned.insert((vni, mac)),
            LearnEvent::Withdrawn { vni, mac } => self.learned.remove(&(vni, mac)),
        };
    }

    /// Waits for the reconcile loop to end (never, while it runs well).
    async fn loop_ended(&mut self) -> Result<&'static str, DaemonError> {
        let r = match self.task.as_mut() {
            Some(t) => t.await,
            None => std::future::pending().await,
        };
        self.task = None;
        match r {
            Ok(Ok(())) => Ok("reconcile loop ended"),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(e.into()),
        }
    }
}

/// File mode's own state.
struct FileMode {
    config: FileConfig,
    current: Option<DesiredFile>,
}

impl FileMode {
    /// Polls the source; applies a new valid state, keeps the old one otherwise.
    fn reload(&mut self, core: &mut Core, source: &mut FileSource, force: bool) {
        let file = match source.poll(force) {
            Poll::Unchanged => return,
            Poll::Failed(e) => {
                core.metrics.source_up.set(0);
                match &self.current {
                    Some(f) => tracing::error!(error = %e, revision = f.revision,
                        "desired state unusable; keeping the state in force"),
                    None => tracing::error!(error = %e,
                        "no usable desired state yet; the kernel is left as it is"),
                }
                return;
            }
            Poll::Loaded(f) => *f,
        };
        core.metrics.source_up.set(1);
        if let Some(cur) = &self.current {
            if file.revision < cur.revision {
                tracing::warn!(
                    file = file.revision,
                    in_force = cur.revision,
                    "desired file is older than the state in force; ignored"
                );
                return;
            }
            if *cur == file {
                return;
            }
        }
        tracing::info!(
            revision = file.revision,
            switches = file.switches.len(),
            path = %source.path().display(),
            "desired state loaded"
        );
        core.metrics.desired_revision.set(file.revision as i64);
        let desired = file.to_desired();
        self.current = Some(file);
        core.set_desired(desired);
        self.write_learned(core);
    }

    /// The whole learned set, named like the store names it.
    fn write_learned(&self, core: &Core) {
        let Some(path) = &self.config.learned else {
            return;
        };
        let Some(file) = &self.current else {
            return;
        };
        let records: Vec<LearnedRecord> = core
            .learned
            .iter()
            .map(|(vni, mac)| LearnedRecord {
                reporter: file.node.clone(),
                logical_switch: file
                    .switch_name(*vni)
                    .map_or_else(|| format!("vni-{vni}"), str::to_string),
                mac: *mac,
            })
            .collect();
        if let Err(e) = write_learned(path, &records) {
            tracing::warn!(error = %e, path = %path.display(), "cannot write learned MACs");
        }
    }
}

/// Store mode's own state.
struct StoreMode {
    node: String,
    /// Revision at which the state in force was first computed.
    in_force_since: u64,
    /// VNI -> logical switch name, from the latest computation.
    names: BTreeMap<u32, String>,
    /// Skipped-object lines last logged, so each change is logged once.
    skipped: Vec<String>,
    /// The last computation failed (unknown node...): logged once.
    last_error: Option<ComputeError>,
    want_tx: watch::Sender<BTreeSet<LearnedKey>>,
}

impl StoreMode {
    fn on_snapshot(&mut self, core: &mut Core, snap: &Snapshot) {
        let c = match &snap.computed {
            Ok(c) => c,
            Err(e) => {
                if self.last_error.as_ref() != Some(e) {
                    tracing::warn!(error = %e, revision = snap.revision,
                        "no desired state for this node; the kernel is left as it is");
                    self.last_error = Some(e.clone());
                }
                return;
            }
        };
        self.last_error = None;
        if c.skipped != self.skipped {
            for line in c.skipped.iter().filter(|l| !self.skipped.contains(l)) {
                tracing::warn!(node = %self.node, "not applied: {line}");
            }
            self.skipped = c.skipped.clone();
        }
        self.names = c.switch_names.clone();
        let unchanged = core
            .desired_tx
            .as_ref()
            .is_some_and(|tx| tx.borrow().same_state(&c.desired));
        if !unchanged {
            tracing::info!(
                revision = snap.revision,
                switches = c.desired.switches.len(),
                "desired state computed"
            );
            self.in_force_since = snap.revision;
            core.metrics.desired_revision.set(snap.revision as i64);
            core.set_desired(c.desired.clone());
        }
        self.publish_learned(core);
    }

    /// Tells the publisher which learned MACs the store should hold.
    fn publish_learned(&self, core: &Core) {
        let want: BTreeSet<LearnedKey> = core
            .learned
            .iter()
            .filter_map(|(vni, mac)| Some((self.names.get(vni)?.clone(), ApiMac(mac.0))))
            .collect();
        self.want_tx.send_if_modified(|w| {
            let changed = *w != want;
            *w = want;
            changed
        });
    }

    fn update_lag(&self, core: &Core, head: u64) {
        core.metrics.store_head.set(head as i64);
        let applied = core.metrics.applied_revision.get().max(0) as u64;
        let lag = metrics::store_lag(head, self.in_force_since, applied);
        core.metrics.store_lag.set(lag as i64);
    }
}

/// Runs until SIGTERM or SIGINT (or until the reconcile loop fails).
pub async fn run(config: DaemonConfig) -> Result<(), DaemonError> {
    let metrics = Metrics::new()?;
    let listener = metrics::bind(config.metrics_listen)
        .await
        .map_err(io("metrics listener"))?;
    tracing::info!(listen = %config.metrics_listen, "serving /metrics");
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(metrics::serve(listener, metrics.clone(), async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let signals = Signals {
        term: signal(SignalKind::terminate()).map_err(io("SIGTERM handler"))?,
        int: signal(SignalKind::interrupt()).map_err(io("SIGINT handler"))?,
        hup: signal(SignalKind::hangup()).map_err(io("SIGHUP handler"))?,
    };
    let (learn_tx, learn_rx) = mpsc::unbounded_channel();
    let (reports_tx, _) = watch::channel(Arc::new(PassReport::default()));
    let mut core = Core {
        metrics,
        reconciler: config.reconciler,
        desired_tx: None,
        learn_tx,
        reports_tx,
        task: None,
        learned: BTreeSet::new(),
    };
    let result = match config.source {
        Source::File(f) => run_file(&mut core, f, signals, learn_rx).await,
        Source::Store(s) => run_store(&mut core, s, signals, learn_rx).await,
    };
    // Stop without touching the kernel: a pass cut short is completed by the
    // next start, which applies only what is still missing.
    if let Some(t) = core.task.take() {
        t.abort();
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    match result {
        Ok(why) => {
            tracing::info!(reason = why, "stopped; the dataplane is left as it is");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The signals the daemon reacts to.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

async fn run_file(
    core: &mut Core,
    config: FileConfig,
    mut sig: Signals,
    mut learn_rx: mpsc::UnboundedReceiver<LearnEvent>,
) -> Result<&'static str, DaemonError> {
    let mut source = FileSource::new(config.desired.clone());
    let mut tick = tokio::time::interval(config.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mode = FileMode {
        config,
        current: None,
    };
    loop {
        tokio::select! {
            _ = sig.term.recv() => return Ok("SIGTERM"),
            _ = sig.int.recv() => return Ok("SIGINT"),
            _ = sig.hup.recv() => {
                tracing::info!("SIGHUP: reloading the desired state");
                mode.reload(core, &mut source, true);
            }
            _ = tick.tick() => mode.reload(core, &mut source, false),
            Some(ev) = learn_rx.recv() => {
                core.learn(ev);
                // Write once per burst, not once per MAC.
                while let Ok(ev) = learn_rx.try_recv() {
                    core.learn(ev);
                }
                mode.write_learned(core);
            }
            r = core.loop_ended() => return r,
        }
    }
}

async fn run_store(
    core: &mut Core,
    config: StoreConfig,
    mut sig: Signals,
    mut learn_rx: mpsc::UnboundedReceiver<LearnEvent>,
) -> Result<&'static str, DaemonError> {
    let client = Client::new(config.client.clone())?;
    tracing::info!(server = %config.client.server, node = %config.node,
        "desired state from the controller");
    let (snap_tx, mut snap_rx) = watch::channel(None);
    let (head_tx, mut head_rx) = watch::channel(0u64);
    let (want_tx, want_rx) = watch::channel(BTreeSet::new());
    let mut reports = core.reports_tx.subscribe();
    let reflector = Reflector::new(client.clone(), Some(WATCHED_KINDS.to_vec()));
    let source = tokio::spawn(run_source(
        reflector,
        config.node.clone(),
        config.local.clone(),
        snap_tx,
        head_tx,
        core.metrics.clone(),
    ));
    let publisher = tokio::spawn(run_publisher(
        client,
        PublisherConfig {
            node: config.node.clone(),
            ttl: config.lease_ttl,
        },
        want_rx,
        core.metrics.clone(),
    ));
    let mut mode = StoreMode {
        node: config.node,
        in_force_since: 0,
        names: BTreeMap::new(),
        skipped: Vec::new(),
        last_error: None,
        want_tx,
    };
    let why = loop {
        tokio::select! {
            _ = sig.term.recv() => break Ok("SIGTERM"),
            _ = sig.int.recv() => break Ok("SIGINT"),
            _ = sig.hup.recv() => {
                tracing::info!("SIGHUP: nothing to reload; the store is followed continuously");
            }
            changed = snap_rx.changed() => {
                if changed.is_err() {
                    break Ok("store source ended");
                }
                let snap = snap_rx.borrow_and_update().clone();
                if let Some(snap) = snap {
                    mode.on_snapshot(core, &snap);
                    mode.update_lag(core, *head_rx.borrow());
                }
            }
            _ = head_rx.changed() => {
                let head = *head_rx.borrow_and_update();
                mode.update_lag(core, head);
            }
            _ = reports.changed() => {
                reports.borrow_and_update();
                mode.update_lag(core, *head_rx.borrow());
            }
            Some(ev) = learn_rx.recv() => {
                core.learn(ev);
                while let Ok(ev) = learn_rx.try_recv() {
                    core.learn(ev);
                }
                mode.publish_learned(core);
            }
            r = core.loop_ended() => break r,
        }
    };
    source.abort();
    publisher.abort();
    why
}
