//! The level-based loop: dump, diff, apply — at start, on a periodic resync,
//! when the desired state changes, and (debounced) after any kernel
//! notification, so that whatever someone else deletes or changes is put back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::desired::{DesiredError, DesiredNode};
use crate::diff::{Action, Problem, diff};
use crate::kernel::{Kernel, KernelError};

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
    let invalid = desired.validate();
    if !invalid.is_empty() {
        for e in &invalid {
            tracing::error!(error = %e, "desired state invalid; kernel left as is");
        }
        return Ok(PassReport {
            invalid,
            ..Default::default()
        });
    }
    let observed = kernel.dump().await?;
    let plan = diff(desired, &observed);
    for p in &plan.problems {
        tracing::warn!(problem = %p, "cannot realise part of the desired state");
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
    Ok(PassReport {
        planned: plan.actions,
        applied: report.applied,
        failed: report.failed,
        problems: plan.problems,
        invalid: Vec::new(),
    })
}

/// Runs until the desired-state sender is dropped. Every pass's report is
/// published on `reports` (latest wins) for tests and status pages.
pub async fn run(
    mut desired: watch::Receiver<DesiredNode>,
    config: ReconcilerConfig,
    stats: ReconcilerStats,
    reports: Option<watch::Sender<Arc<PassReport>>>,
) -> Result<(), ReconcileError> {
    // Subscribe before the first dump so no change between the two is missed.
    let mut notifications = Kernel::subscribe()?;
    let mut kernel = Kernel::connect()?;
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
                if n.is_none() {
                    // Notification socket gone: fall back to resync only, but say so.
                    tracing::error!("netlink notification stream ended; relying on periodic resync");
                    notifications = Kernel::subscribe()?;
                }
                pending.get_or_insert_with(|| Instant::now() + config.debounce);
                continue;
            }
            _ = sleep_until(due) => {}
        }
        pending = None;
        next_resync = Instant::now() + config.resync;
        let want = desired.borrow_and_update().clone();
        let report = match reconcile_once(&mut kernel, &want).await {
            Ok(r) => r,
            Err(e) => {
                // A torn or failed dump is transient: never end the loop, retry soon.
                tracing::warn!(error = %e, "kernel dump failed; retrying");
                stats.dump_failures.fetch_add(1, Ordering::Relaxed);
                pending = Some(Instant::now() + config.retry);
                continue;
            }
        };
        stats.passes.fetch_add(1, Ordering::Relaxed);
        stats
            .actions_applied
            .fetch_add(report.applied as u64, Ordering::Relaxed);
        stats
            .actions_failed
            .fetch_add(report.failed.len() as u64, Ordering::Relaxed);
        if !report.invalid.is_empty() {
            stats.invalid_desired.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(tx) = &reports {
            tx.send_replace(Arc::new(report));
        }
    }
}
