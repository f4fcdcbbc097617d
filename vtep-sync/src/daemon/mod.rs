//! The `bridgehead-vtep-sync` daemon, kept in the library so tests can read
//! it; `bin/bridgehead-vtep-sync.rs` only parses flags, sets up logging and
//! starts the runtime.
//!
//! ```text
//!  controller ──list+watch──▶ store_sync::run_source ──StoreSnapshot──▶ Daemon (this loop)
//!                                                                        │  per served switch:
//!                                  TransportNode (hardware_switch) ─────┤  start / restart (target
//!                                                                        │  changed) / stop (node gone)
//!                                  desired::compute ─set_desired_at────▶ Reconciler ──OVSDB──▶ switch
//!                                                                        │      │ status, observed
//!                                                                        │      ▼
//!                                                                        │  forwarder (RoleTracker → Want)
//!                                                                        ▼      │
//!  controller ◀──put/delete under a lease── store_sync::run_publisher ◀─┘ wants
//! ```
//!
//! One instance serves the switches named with `--switch`; their OVSDB
//! targets come from their transport nodes in the store, so a switch that
//! moves is followed without a restart. Several instances may serve the
//! same switch: the switch's OVSDB lock elects the one that writes it, and
//! the same instance writes its observed state; the others stand by and
//! take over when the holder's connection closes.
//!
//! Headless by construction: a reconciler starts only once the store has
//! produced the switch's desired state, and nothing here ever deletes a
//! switch's rows on its own: while the controller is unreachable the state
//! in force stays in force; a switch whose transport node is deleted is
//! left as it is; SIGTERM/SIGINT stop the reconcilers without touching the
//! switches. The lease is not revoked on stop: the observed state stays
//! until it expires, time for a standby to take over without a gap.

pub mod http;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::client::{Client, ClientConfig, ClientError, Reflector};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

use crate::metrics::Metrics;
use crate::observed::Observed;
use crate::reconciler::{Reconciler, ReconcilerConfig, ReconcilerStatus};
use crate::store_sync::{
    PublisherConfig, Role, RoleTracker, StoreMetrics, StoreSnapshot, WATCHED_KINDS, Want,
    run_publisher, run_source,
};
use crate::target::{Target, TlsFiles};

/// What the daemon needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Controller URL, token, CA.
    pub client: ClientConfig,
    /// This instance's name (logs).
    pub instance: String,
    /// Transport-node names of the hardware switches this instance serves.
    pub switches: Vec<String>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// TTL of the lease the observed state hangs off.
    pub lease_ttl: Duration,
    /// TLS files for `ssl:` OVSDB targets.
    pub ovsdb_tls: Option<TlsFiles>,
    /// OVSDB lock that elects the one writer of a switch; `None` writes without one.
    pub lock: Option<String>,
}

/// The daemon could not start.
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
    #[error("metrics: {0}")]
    Metrics(String),
    /// The controller client cannot be built (bad URL, token or CA file).
    #[error("controller client: {0}")]
    Client(#[from] ClientError),
    /// No switch to serve.
    #[error("no switch to serve: give --switch NAME")]
    NoSwitch,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        what: what.to_string(),
        source,
    }
}

/// A switch with a running reconciler.
struct Served {
    /// The OVSDB target it was started with.
    target: String,
    reconciler: Reconciler,
    forwarder: JoinHandle<()>,
}

struct Daemon {
    cfg: DaemonConfig,
    metrics: Metrics,
    served: BTreeMap<String, Served>,
    wants: watch::Sender<BTreeMap<String, Want>>,
    /// The last problem logged per switch, so each is logged once.
    said: BTreeMap<String, String>,
}

impl Daemon {
    /// Logs `line` for `switch` unless it is what was said last.
    fn say(&mut self, switch: &str, line: String) {
        if self.said.get(switch) != Some(&line) {
            warn!(switch, "{line}");
            self.said.insert(switch.to_owned(), line);
        }
    }

    /// Brings the set of reconcilers and their desired states in line with the store.
    async fn on_snapshot(&mut self, snap: &StoreSnapshot) {
        self.metrics.store_head(snap.revision);
        for sw in self.cfg.switches.clone() {
            let Some(view) = snap.switches.get(&sw) else {
                continue;
            };
            let target = match view.target().map(|t| (t, t.parse::<Target>())) {
                None => {
                    self.say(
                        &sw,
                        "no transport node of kind hardware_switch with an OVSDB target in the store; not serving it".into(),
                    );
                    self.stop(&sw, "its transport node is gone").await;
                    continue;
                }
                Some((t, Err(e))) => {
                    self.say(&sw, format!("OVSDB target {t:?} unusable: {e}"));
                    self.stop(&sw, "its OVSDB target is unusable").await;
                    continue;
                }
                Some((t, Ok(target))) => (t.to_owned(), target),
            };
            let computed = match &view.desired {
                Ok(c) => c.clone(),
                Err(e) => {
                    // The state in force (if any) stays in force.
                    self.say(&sw, format!("no desired state: {e}"));
                    continue;
                }
            };
            if !computed.skipped.is_empty() {
                self.say(&sw, format!("not applied: {}", computed.skipped.join("; ")));
            } else {
                self.said.remove(&sw);
            }
            if self.served.get(&sw).is_some_and(|s| s.target != target.0) {
                self.stop(&sw, "its OVSDB target changed").await;
            }
            match self.served.get(&sw) {
                Some(s) => s
                    .reconciler
                    .set_desired_at(computed.state.clone(), snap.revision),
                None => self.start(&sw, target, &computed.state, snap.revision),
            }
        }
    }

    fn start(
        &mut self,
        sw: &str,
        (text, target): (String, Target),
        state: &crate::desired::DesiredState,
        revision: u64,
    ) {
        info!(switch = sw, target = %text, revision, "serving switch");
        let mut rc = ReconcilerConfig::new(sw, target);
        rc.tls = self.cfg.ovsdb_tls.clone();
        rc.lock = self.cfg.lock.clone();
        rc.metrics = Some(self.metrics.clone());
        let reconciler = Reconciler::start(rc, state.clone());
        reconciler.set_desired_at(state.clone(), revision);
        let forwarder = tokio::spawn(
            forward(
                sw.to_owned(),
                reconciler.watch_status(),
                reconciler.watch_observed(),
                self.wants.clone(),
            )
            .instrument(info_span!("observed", switch = %sw)),
        );
        self.served.insert(
            sw.to_owned(),
            Served {
                target: text,
                reconciler,
                forwarder,
            },
        );
    }

    /// Stops a switch's reconciler (leaving the switch as it is) and
    /// withdraws what this instance reported for it.
    async fn stop(&mut self, sw: &str, why: &str) {
        let Some(s) = self.served.remove(sw) else {
            return;
        };
        info!(
            switch = sw,
            reason = why,
            "no longer serving switch; its rows stay as they are"
        );
        s.forwarder.abort();
        s.reconciler.stop().await;
        self.wants.send_modify(|w| {
            w.insert(sw.to_owned(), Want::gone());
        });
    }

    async fn stop_all(&mut self) {
        for (sw, s) in std::mem::take(&mut self.served) {
            s.forwarder.abort();
            s.reconciler.stop().await;
            info!(switch = %sw, "reconciler stopped; switch left as it is");
        }
    }
}

/// Turns a reconciler's status and observed state into what the publisher writes.
async fn forward(
    switch: String,
    mut status: watch::Receiver<ReconcilerStatus>,
    mut observed: watch::Receiver<Arc<Observed>>,
    wants: watch::Sender<BTreeMap<String, Want>>,
) {
    let mut roles = RoleTracker::default();
    let mut last_role: Option<Role> = None;
    loop {
        let st = status.borrow_and_update().clone();
        let obs = observed.borrow_and_update().clone();
        let role = roles.role(&st);
        if last_role != Some(role) {
            match role {
                Role::Writer => info!("writing the switch's observed state to the store"),
                Role::Standby => {
                    info!("standing by: another instance (or none yet) holds the switch's lock")
                }
                Role::Unreachable => warn!(
                    "switch unreachable; reporting it disconnected unless someone else reports it"
                ),
                Role::Gone => {}
            }
            last_role = Some(role);
        }
        let want = Want::new(role, &switch, &st, &obs);
        wants.send_if_modified(|w| {
            if w.get(&switch) == Some(&want) {
                return false;
            }
            w.insert(switch.clone(), want);
            true
        });
        tokio::select! {
            r = status.changed() => if r.is_err() { return },
            r = observed.changed() => if r.is_err() { return },
        }
    }
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(cfg: DaemonConfig) -> Result<(), DaemonError> {
    let span = info_span!("vtep_sync", instance = %cfg.instance);
    run_inner(cfg).instrument(span).await
}

async fn run_inner(cfg: DaemonConfig) -> Result<(), DaemonError> {
    if cfg.switches.is_empty() {
        return Err(DaemonError::NoSwitch);
    }
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).map_err(|e| DaemonError::Metrics(e.to_string()))?;
    let store_metrics =
        StoreMetrics::new(&registry).map_err(|e| DaemonError::Metrics(e.to_string()))?;
    let server = match cfg.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(io("metrics listener"))?;
            info!(listen = %addr, "serving /metrics");
            Some(tokio::spawn(http::serve(l, registry.clone())))
        }
        None => None,
    };
    let mut term = signal(SignalKind::terminate()).map_err(io("SIGTERM handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("SIGINT handler"))?;
    let client = Client::new(cfg.client.clone())?;
    info!(server = %cfg.client.server, switches = ?cfg.switches,
        "desired state from the controller");
    let (snap_tx, mut snap_rx) = watch::channel::<Option<Arc<StoreSnapshot>>>(None);
    let (wants_tx, wants_rx) = watch::channel(BTreeMap::new());
    let reflector = Reflector::new(client.clone(), Some(WATCHED_KINDS.to_vec()));
    let source = tokio::spawn(
        run_source(
            reflector,
            cfg.switches.clone(),
            snap_tx,
            store_metrics.clone(),
        )
        .in_current_span(),
    );
    let publisher = tokio::spawn(
        run_publisher(
            client,
            PublisherConfig::new(cfg.lease_ttl),
            wants_rx,
            snap_rx.clone(),
            store_metrics,
        )
        .in_current_span(),
    );
    let mut d = Daemon {
        cfg,
        metrics,
        served: BTreeMap::new(),
        wants: wants_tx,
        said: BTreeMap::new(),
    };
    let why = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            changed = snap_rx.changed() => {
                if changed.is_err() {
                    error!("store source ended");
                    break "store source ended";
                }
                let snap = snap_rx.borrow_and_update().clone();
                if let Some(snap) = snap {
                    d.on_snapshot(&snap).await;
                }
            }
        }
    };
    source.abort();
    publisher.abort();
    d.stop_all().await;
    if let Some(s) = server {
        s.abort();
    }
    info!(reason = why, "stopped; switches left as they are");
    Ok(())
}
