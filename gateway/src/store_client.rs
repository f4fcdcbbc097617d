//! The daemon's two conversations with the controller, each in its own task
//! so that neither a slow call nor a cancelled future can lose anything:
//!
//! - [`run_source`]: a [`Reflector`] (list, then watch from that revision;
//!   resume after a break, relist on compaction) over the kinds
//!   [`crate::store_source::compute`] reads; after every change it computes
//!   this node's desired state and publishes it on a `watch` channel (latest
//!   wins, so a slow consumer skips intermediate states rather than queueing
//!   them). Its own learned-MAC writes change nothing it computes and are
//!   not recomputed for. The newest revision seen (events and progress
//!   bookmarks) goes out on a second channel, for the store-lag metric.
//! - [`run_publisher`]: writes the MACs this node learns as observed
//!   `LearnedMac` objects under a lease it grants (TTL
//!   [`PublisherConfig::ttl`]) and renews every TTL/3, and deletes the ones
//!   it withdraws. Level-based on its own record of what it wrote: if the
//!   lease is found gone (renew or write answers 404: the controller let it
//!   expire, e.g. after a long partition) it grants a new one and writes
//!   everything again. Failures are retried with backoff, forever.
//!
//! Headless: while the controller is unreachable the source publishes
//! nothing new, so the state in force stays in force; the publisher keeps
//! retrying. A restart of the daemon relists (the reflector starts with a
//! list) and writes its learned MACs under a new lease: reconciliation is
//! level-based, so applying the full state again changes only what changed
//! meanwhile. Objects of the previous incarnation that are not written
//! again disappear when its lease expires (one TTL at most).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use api::client::{Backoff, Client, ClientError, LeaseKeeper, Reflector, ReflectorEvent};
use api::model::{Kind, LearnedMac, MacAddr as ApiMac, Object};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::metrics::Metrics;
use crate::store_source::{ComputeError, Computed, LocalConfig, StoreObjects, compute};

/// The kinds a node's desired state depends on.
pub const WATCHED_KINDS: [Kind; 6] = [
    Kind::LogicalSwitch,
    Kind::TransportNode,
    Kind::GatewayGroup,
    Kind::Binding,
    Kind::RemoteMac,
    Kind::LearnedMac,
];

/// One computation of this node's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Store revision it was computed at.
    pub revision: u64,
    /// The state, or why there is none.
    pub computed: Result<Computed, ComputeError>,
}

/// Follows the store and publishes this node's desired state until `out`
/// has no receiver left.
pub async fn run_source(
    mut reflector: Reflector,
    node: String,
    local: LocalConfig,
    out: watch::Sender<Option<Arc<Snapshot>>>,
    head: watch::Sender<u64>,
    metrics: Metrics,
) {
    let mut failing = false;
    while !out.is_closed() {
        let ev = reflector.next().await;
        let recompute = match ev {
            ReflectorEvent::Synced { revision } => {
                tracing::info!(revision, "controller: listed");
                true
            }
            // Our own learned MACs never feed our own state.
            ReflectorEvent::Changed { events, .. } => events
                .iter()
                .any(|e| !matches!(&e.value.object, Object::LearnedMac(m) if m.reporter == node)),
            ReflectorEvent::Progress { .. } => false,
            ReflectorEvent::Error(e) => {
                metrics.store_error("watch");
                metrics.source_up.set(0);
                if failing {
                    tracing::debug!(error = %e, "controller still unreachable");
                } else {
                    tracing::warn!(error = %e,
                        "controller unreachable; the dataplane stays as it is, retrying");
                }
                failing = true;
                continue;
            }
        };
        if failing {
            tracing::info!(
                revision = reflector.revision(),
                "controller reachable again"
            );
            failing = false;
        }
        metrics.source_up.set(1);
        let revision = reflector.revision();
        if recompute {
            let objects =
                StoreObjects::from_objects(reflector.objects().values().map(|s| &s.object));
            let computed = compute(&node, &objects, &local, revision);
            out.send_replace(Some(Arc::new(Snapshot { revision, computed })));
        }
        head.send_replace(revision);
    }
}

/// What the publisher needs besides the client.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// This node's name: the `reporter` of what it writes.
    pub node: String,
    /// Lease TTL; renewed every TTL/3.
    pub ttl: Duration,
}

/// A learned MAC as the publisher keys it: (logical switch name, MAC).
pub type LearnedKey = (String, ApiMac);

/// The publisher's own record, kept across calls.
struct Publisher {
    client: Client,
    cfg: PublisherConfig,
    metrics: Metrics,
    lease: LeaseKeeper,
    written: BTreeSet<LearnedKey>,
}

/// Why a step stopped early; the loop retries after a backoff.
#[derive(Debug)]
struct StepError {
    op: &'static str,
    error: ClientError,
}

impl Publisher {
    fn object(&self, (ls, mac): &LearnedKey) -> Object {
        Object::LearnedMac(LearnedMac {
            reporter: self.cfg.node.clone(),
            logical_switch: ls.clone(),
            mac: *mac,
            ip: None,
        })
    }

    /// Brings the store in line with `want`: lease first, then puts, then deletes.
    async fn step(&mut self, want: &BTreeSet<LearnedKey>) -> Result<(), StepError> {
        let err = |op| move |error| StepError { op, error };
        if !self
            .lease
            .renew_if_due(&self.client)
            .await
            .map_err(err("renew"))?
        {
            // Whatever we wrote went with the lease, or soon will.
            self.written.clear();
        }
        let lease = self
            .lease
            .ensure(&self.client)
            .await
            .map_err(err("grant"))?
            .id;
        for k in want.difference(&self.written.clone()) {
            match self.client.put_observed(&self.object(k), lease).await {
                Ok(_) => {
                    self.written.insert(k.clone());
                }
                Err(e) if e.status() == Some(404) => {
                    self.lease.lost();
                    self.written.clear();
                    return Err(err("put")(e));
                }
                Err(e) => return Err(err("put")(e)),
            }
        }
        for k in self.written.clone().difference(want) {
            let key = self.object(k).key();
            match self.client.delete(&key).await {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(err("delete")(e)),
            }
            self.written.remove(k);
        }
        self.metrics
            .learned_published
            .set(self.written.len() as i64);
        Ok(())
    }
}

/// Keeps the store's learned MACs of this node equal to `want` until its
/// sender is dropped.
pub async fn run_publisher(
    client: Client,
    cfg: PublisherConfig,
    mut want: watch::Receiver<BTreeSet<LearnedKey>>,
    metrics: Metrics,
) {
    let mut p = Publisher {
        lease: LeaseKeeper::new(cfg.ttl),
        client,
        cfg,
        metrics,
        written: BTreeSet::new(),
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut retry_at: Option<Instant> = Some(Instant::now());
    let mut failing = false;
    loop {
        // After a failure the backoff decides, also for an overdue renewal.
        let wake = retry_at.or(p.lease.next_renew());
        tokio::select! {
            changed = want.changed() => {
                if changed.is_err() {
                    return;
                }
                // A failing controller is retried on the backoff, not on every new MAC.
                if retry_at.is_some_and(|t| t > Instant::now()) {
                    continue;
                }
            }
            _ = async { sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {}
        }
        let target = want.borrow_and_update().clone();
        match p.step(&target).await {
            Ok(()) => {
                if failing {
                    tracing::info!(learned = p.written.len(), "learned MACs written again");
                }
                failing = false;
                backoff.reset();
                retry_at = None;
            }
            Err(StepError { op, error }) => {
                p.metrics.store_error(op);
                if failing {
                    tracing::debug!(op, error = %error, "writing learned MACs still fails");
                } else {
                    tracing::warn!(op, error = %error, "cannot write learned MACs; retrying");
                }
                failing = true;
                retry_at = Some(Instant::now() + backoff.next_delay(rand::random::<f64>()));
            }
        }
    }
}
