//! The level-based loop: dump, diff, apply — at start, on a periodic resync,
//! when the desired state changes, and (debounced) after any kernel
//! notification, so that whatever someone else deletes or changes is put back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use crate::desired::{DesiredError, DesiredNode};
use crate::diff::{Action, Problem, diff};
use crate::kernel::{FdbNotice, Kernel, KernelError, classify};
use crate::learning::{LearnEvent, LearnedMacs, Topology};
use crate::metrics::Metrics;
use crate::observed::Observed;

/// Timing of the loop.
#[derive(Debug, Clone, Copy)]
pub struct ReconcilerConfig {
    /// Full pass even without notifications: covers lost (overrun) notifications.
    pub resync: Duration,
    /// Wait this long after a notification for the burst to end before re-dumping.
    pub debounce: Duration,
    /// Retry delay after a failed dump.
    pub retry: Duration,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        ReconcilerConfig {
            resync: Duration::from_secs(30),
            debounce: Duration::from_millis(50),
            retry: Duration::from_secs(1),
        }
    }
}

/// What one pass did.
#[derive(Debug, Default)]
pub struct PassReport {
    /// Store revision of the desired state this pass applied ([`DesiredNode::revision`]).
    pub revision: u64,
    /// Actions the diff produced.
    pub planned: Vec<Action>,
    /// How many of them the kernel accepted.
    pub applied: usize,
    /// Those it refused, with why.
    pub failed: Vec<(Action, KernelError)>,
    /// Parts of the desired state that cannot be realised here.
    pub problems: Vec<Problem>,
    /// Validation errors: when non-empty nothing was applied.
    pub invalid: Vec<DesiredError>,
}

/// Counters for metrics; cheap to clone and read from another task.
#[derive(Debug, Clone, Default)]
pub struct ReconcilerStats {
    /// Completed passes.
    pub passes: Arc<AtomicU64>,
    /// Actions the kernel accepted.
    pub actions_applied: Arc<AtomicU64>,
    /// Actions the kernel refused.
    pub actions_failed: Arc<AtomicU64>,
    /// Dumps that failed (retried after `ReconcilerConfig::retry`).
    pub dump_failures: Arc<AtomicU64>,
    /// Passes skipped because the desired state was invalid.
    pub invalid_desired: Arc<AtomicU64>,
}

/// The loop failed to reach the kernel at all (not a per-action failure).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Dumping or subscribing failed.
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// One pass: dump the kernel, diff against `desired`, apply the difference.
pub async fn reconcile_once(
    kernel: &mut Kernel,
    desired: &DesiredNode,
) -> Result<PassReport, KernelError> {
    pass(kernel, desired).await.map(|(report, _)| report)
}

/// A pass that also returns the snapshot it started from (for learning and
/// metrics). An invalid desired state still dumps, so learning goes on, but
/// nothing is applied.
async fn pass(
    kernel: &mut Kernel,
    desired: &DesiredNode,
) -> Result<(PassReport, Observed), KernelError> {
    let invalid = desired.validate();
    let observed = kernel.dump().await?;
    if !invalid.is_empty() {
        for e in &invalid {
            tracing::error!(error = %e, "desired state invalid; kernel left as is");
        }
        let report = PassReport {
            revision: desired.revision,
            invalid,
            ..Default::default()
        };
        return Ok((report, observed));
    }
    let plan = diff(desired, &observed);
    for p in &plan.problems {
        if p.is_expected() {
            tracing::debug!(problem = %p, "part of the desired state not realisable yet");
        } else {
            tracing::warn!(problem = %p, "cannot realise part of the desired state");
        }
    }
    let report = kernel.apply_all(&plan.actions).await;
    if !plan.actions.is_empty() {
        tracing::info!(
            planned = plan.actions.len(),
            applied = report.applied,
            failed = report.failed.len(),
            "reconciled"
        );
    }
    let report = PassReport {
        revision: desired.revision,
        planned: plan.actions,
        applied: report.applied,
        failed: report.failed,
        problems: plan.problems,
        invalid: Vec::new(),
    };
    Ok((report, observed))
}

/// Where the loop publishes what it does; every part is optional.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Plain counters.
    pub stats: ReconcilerStats,
    /// Every pass's report (latest wins), for tests and status pages.
    pub reports: Option<watch::Sender<Arc<PassReport>>>,
    /// Learned-MAC events, for the store (or whatever stands in for it).
    pub learned: Option<mpsc::UnboundedSender<LearnEvent>>,
    /// Prometheus metrics.
    pub metrics: Option<Metrics>,
}

/// Runs until the desired-state sender is dropped. Every pass's report is
/// published on `reports` (latest wins) for tests and status pages.
pub async fn run(
    desired: watch::Receiver<DesiredNode>,
    config: ReconcilerConfig,
    stats: ReconcilerStats,
    reports: Option<watch::Sender<Arc<PassReport>>>,
) -> Result<(), ReconcileError> {
    let outputs = Outputs {
        stats,
        reports,
        ..Outputs::default()
    };
    run_with(desired, config, outputs).await
}

/// [`run`] with every output: learned MACs and metrics too.
pub async fn run_with(
    mut desired: watch::Receiver<DesiredNode>,
    config: ReconcilerConfig,
    out: Outputs,
) -> Result<(), ReconcileError> {
    // Subscribe before the first dump so no change between the two is missed.
    let mut notifications = Kernel::subscribe()?;
    let mut kernel = Kernel::connect()?;
    let mut learning = LearnedMacs::new();
    let mut next_resync = Instant::now();
    let mut pending: Option<Instant> = None;
    loop {
        let due = pending.map_or(next_resync, |p| p.min(next_resync));
        tokio::select! {
            changed = desired.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                pending = Some(Instant::now());
                continue;
            }
            n = notifications.next() => {
                let Some((msg, _)) = n else {
                    // Notification socket gone: fall back to resync only, but say so.
                    tracing::error!("netlink notification stream ended; resubscribing");
                    notifications = Kernel::subscribe()?;
                    pending.get_or_insert_with(|| Instant::now() + config.debounce);
                    continue;
                };
                let notice = classify(&msg);
                match notice.fdb {
                    Some(FdbNotice::New(e)) => learning.on_new(&e),
                    Some(FdbNotice::Del(e)) => learning.on_del(&e),
                    None => {}
                }
                publish_learning(&mut learning, &out);
                if notice.needs_pass {
                    pending.get_or_insert_with(|| Instant::now() + config.debounce);
                }
                continue;
            }
            _ = sleep_until(due) => {}
        }
        pending = None;
        next_resync = Instant::now() + config.resync;
        let want = desired.borrow_and_update().clone();
        let started = Instant::now();
        let (report, observed) = match pass(&mut kernel, &want).await {
            Ok(r) => r,
            Err(e) => {
                // A torn or failed dump is transient: never end the loop, retry soon.
                tracing::warn!(error = %e, "kernel dump failed; retrying");
                out.stats.dump_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &out.metrics {
                    m.netlink_error("dump");
                }
                pending = Some(Instant::now() + config.retry);
                continue;
            }
        };
        learning.set_topology(Topology::from_links(&observed.links));
        learning.on_dump(&observed.learned);
        publish_learning(&mut learning, &out);
        let passes = out.stats.passes.fetch_add(1, Ordering::Relaxed) + 1;
        out.stats
            .actions_applied
            .fetch_add(report.applied as u64, Ordering::Relaxed);
        out.stats
            .actions_failed
            .fetch_add(report.failed.len() as u64, Ordering::Relaxed);
        if !report.invalid.is_empty() {
            out.stats.invalid_desired.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(m) = &out.metrics {
            m.observe_pass(started.elapsed(), &observed, &report);
        }
        if passes == 1 {
            // Operators (and the restart test) wait for this line.
            tracing::info!(
                planned = report.planned.len(),
                applied = report.applied,
                failed = report.failed.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "first reconcile pass done"
            );
        }
        tracing::debug!(
            pass = passes,
            planned = report.planned.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "reconcile pass done"
        );
        if let Some(tx) = &out.reports {
            tx.send_replace(Arc::new(report));
        }
    }
}

/// Hands the tracker's new events to the sink and the gauge.
fn publish_learning(learning: &mut LearnedMacs, out: &Outputs) {
    while let Some(ev) = learning.poll_event() {
        match &ev {
            LearnEvent::Learned { vni, mac, port } => {
                tracing::info!(vni, %mac, port, "MAC learned")
            }
            LearnEvent::Withdrawn { vni, mac } => tracing::info!(vni, %mac, "MAC withdrawn"),
        }
        if let Some(tx) = &out.learned {
            // A receiver that went away only stops the reports, not the loop.
            let _ = tx.send(ev);
        }
    }
    if let Some(m) = &out.metrics {
        m.learned_macs.set(learning.len() as i64);
    }
}
