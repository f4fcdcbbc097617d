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

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::desired::DesiredNode;
use crate::file_store::{DesiredFile, FileSource, LearnedRecord, Poll, write_learned};
use crate::learning::LearnEvent;
use crate::mac::MacAddr;
use crate::metrics::{self, Metrics, MetricsError};
use crate::reconciler::{self, Outputs, ReconcileError, ReconcilerConfig, ReconcilerStats};

/// What the daemon needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The desired-state JSON file (see [`crate::file_store`]).
    pub desired: PathBuf,
    /// Where `/metrics` is served.
    pub metrics_listen: SocketAddr,
    /// Where learned MACs are written, if anywhere.
    pub learned: Option<PathBuf>,
    /// How often the desired file's metadata is checked for changes.
    pub poll: Duration,
    /// Reconciler timing.
    pub reconciler: ReconcilerConfig,
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
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Io {
        what: what.to_string(),
        source,
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 30s, 2m, 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// The running state the event loop keeps.
struct State {
    config: DaemonConfig,
    metrics: Metrics,
    current: Option<DesiredFile>,
    desired_tx: Option<watch::Sender<DesiredNode>>,
    learn_tx: mpsc::UnboundedSender<LearnEvent>,
    task: Option<JoinHandle<Result<(), ReconcileError>>>,
    learned: BTreeSet<(u32, MacAddr)>,
}

impl State {
    /// Polls the source; applies a new valid state, keeps the old one otherwise.
    fn reload(&mut self, source: &mut FileSource, force: bool) {
        let file = match source.poll(force) {
            Poll::Unchanged => return,
            Poll::Failed(e) => {
                self.metrics.source_up.set(0);
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
        self.metrics.source_up.set(1);
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
        self.metrics.desired_revision.set(file.revision as i64);
        let desired = file.to_desired();
        self.current = Some(file);
        match &self.desired_tx {
            Some(tx) => {
                tx.send_replace(desired);
            }
            None => self.start_loop(desired),
        }
        self.write_learned();
    }

    fn start_loop(&mut self, desired: DesiredNode) {
        let (tx, rx) = watch::channel(desired);
        let outputs = Outputs {
            stats: ReconcilerStats::default(),
            reports: None,
            learned: Some(self.learn_tx.clone()),
            metrics: Some(self.metrics.clone()),
        };
        self.task = Some(tokio::spawn(reconciler::run_with(
            rx,
            self.config.reconciler,
            outputs,
        )));
        self.desired_tx = Some(tx);
    }

    fn learn(&mut self, ev: LearnEvent) {
        match ev {
            LearnEvent::Learned { vni, mac, .. } => self.learned.insert((vni, mac)),
            LearnEvent::Withdrawn { vni, mac } => self.learned.remove(&(vni, mac)),
        };
    }

    /// The store stand-in: the whole learned set, named like the store will.
    fn write_learned(&self) {
        let Some(path) = &self.config.learned else {
            return;
        };
        let Some(file) = &self.current else {
            return;
        };
        let records: Vec<LearnedRecord> = self
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
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io("SIGINT handler"))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(io("SIGHUP handler"))?;

    let (learn_tx, mut learn_rx) = mpsc::unbounded_channel();
    let mut source = FileSource::new(config.desired.clone());
    let mut tick = tokio::time::interval(config.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut st = State {
        config,
        metrics,
        current: None,
        desired_tx: None,
        learn_tx,
        task: None,
        learned: BTreeSet::new(),
    };
    let result = loop {
        tokio::select! {
            _ = sigterm.recv() => break Ok("SIGTERM"),
            _ = sigint.recv() => break Ok("SIGINT"),
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: reloading the desired state");
                st.reload(&mut source, true);
            }
            _ = tick.tick() => st.reload(&mut source, false),
            Some(ev) = learn_rx.recv() => {
                st.learn(ev);
                // Write once per burst, not once per MAC.
                while let Ok(ev) = learn_rx.try_recv() {
                    st.learn(ev);
                }
                st.write_learned();
            }
            r = async { st.task.as_mut().expect("guarded").await }, if st.task.is_some() => {
                st.task = None;
                break match r {
                    Ok(Ok(())) => Ok("reconcile loop ended"),
                    Ok(Err(e)) => Err(e.into()),
                    Err(e) => Err(e.into()),
                };
            }
        }
    };
    // Stop without touching the kernel: a pass cut short is completed by the
    // next start, which applies only what is still missing.
    if let Some(t) = st.task.take() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("fast").is_err());
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
