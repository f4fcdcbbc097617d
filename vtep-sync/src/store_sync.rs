//! The store side of a vtep-sync daemon: what the controller's store says
//! each served switch should hold, and what the switch reports written back
//! as observed objects under the daemon's lease.
//!
//! Two tasks, as in the gateway daemon, so that neither a slow call nor a
//! cancelled future can lose anything:
//!
//! - [`run_source`]: a [`Reflector`] over [`WATCHED_KINDS`] (list, then
//!   watch; resume after a break, relist on compaction). After every change
//!   it builds a [`StoreSnapshot`]: per served switch its transport node
//!   (where its OVSDB is), its desired state ([`crate::desired::compute`]),
//!   and the observed objects the store holds that the switch reports (to
//!   diff against). Latest wins on a `watch` channel. Revisions that only
//!   carry observed objects a served switch's state does not depend on
//!   (its own learned MACs, tunnel and switch status) reuse the previous
//!   desired states; a progress bookmark only moves the revision.
//! - [`run_publisher`]: makes the store's observed objects of each served
//!   switch equal to what the switch reports ([`Want`]), level-based against
//!   the latest snapshot rather than its own memory: a put where the store
//!   lacks the object, holds another value, or holds it under another lease
//!   (a dead predecessor's, or a previous holder of the switch's lock); a
//!   delete where the store holds one the switch no longer reports. After
//!   writing it waits for the snapshot to reach the revision of its own
//!   writes before planning again (a bounded wait), so nothing is written
//!   twice. The lease is granted at the first write, renewed every TTL/3;
//!   found gone (renew or put answers 404) it is granted anew, and the next
//!   pass puts everything again, since the store dropped the objects.
//!
//! Who writes a switch's observed state is decided per switch by a
//! [`RoleTracker`] from its reconciler's status: the holder of the switch's
//! OVSDB lock ([`Role::Writer`]), and it stays the writer while the switch
//! is unreachable (reporting `connected: false` and the last-seen MACs);
//! other instances stand by. An instance that cannot reach the switch and
//! never wrote it only says so ([`Role::Unreachable`]) when nobody else
//! reports the switch. The pure parts ([`snapshot`], [`affects_desired`],
//! [`RoleTracker`], [`Want::new`], [`plan_writes`]) are unit tested below;
//! the tasks against a real controller in `tests/daemon.rs`.
//!
//! Headless: while the controller is unreachable the source publishes
//! nothing new, so every reconciler keeps the desired state in force; the
//! publisher retries with backoff. A restarted daemon relists and writes the
//! switch's objects again under its new lease; objects of the previous
//! incarnation that are not rewritten go when its lease expires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api::client::{Backoff, Client, ClientError, LeaseKeeper, Reflector, ReflectorEvent};
use api::model::{
    Binding, Event, GatewayGroup, Key, Kind, LearnedMac, LeaseId, LogicalSwitch, NodeKind, Object,
    RemoteMac, Stored, TransportNode,
};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

use crate::desired::{Computed, StoreView, compute};
use crate::observed::Observed;
use crate::reconciler::ReconcilerStatus;

/// The kinds a served switch's desired state and its reported objects come from.
pub const WATCHED_KINDS: [Kind; 8] = [
    Kind::LogicalSwitch,
    Kind::TransportNode,
    Kind::GatewayGroup,
    Kind::Binding,
    Kind::RemoteMac,
    Kind::LearnedMac,
    Kind::TunnelStatus,
    Kind::SwitchStatus,
];

/// The switch (or node) an observed object is reported by, for the kinds a
/// switch reports; `None` for every other kind.
pub fn reporter_of(o: &Object) -> Option<&str> {
    match o {
        Object::LearnedMac(m) => Some(&m.reporter),
        Object::TunnelStatus(t) => Some(&t.reporter),
        Object::SwitchStatus(s) => Some(&s.switch),
        _ => None,
    }
}

/// What the store says about one served switch.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchView {
    /// Its transport node, when the store has one of kind `hardware_switch`.
    pub node: Option<TransportNode>,
    /// Its desired state, or why there is none.
    pub desired: Result<Arc<Computed>, String>,
    /// Observed objects in the store that this switch reports, by key.
    pub reported: BTreeMap<Key, Stored>,
}

impl SwitchView {
    /// The OVSDB target the store gives the switch, if any.
    pub fn target(&self) -> Option<&str> {
        self.node.as_ref()?.ovsdb_target.as_deref()
    }
}

/// The store as the daemon needs it, at one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreSnapshot {
    /// Store revision the snapshot reflects.
    pub revision: u64,
    /// Every served switch (present even when the store does not know it).
    pub switches: Arc<BTreeMap<String, SwitchView>>,
}

/// Whether a revision's events may change a served switch's desired state:
/// anything desired does, a learned MAC does unless its reporter is the
/// only switch served (a switch's own MACs are local to it), observed
/// status objects never do.
pub fn affects_desired(events: &[Event], served: &[String]) -> bool {
    events.iter().any(|e| match &e.value.object {
        Object::LearnedMac(m) => served.iter().any(|s| *s != m.reporter),
        Object::TunnelStatus(_) | Object::SwitchStatus(_) | Object::ElectionState(_) => false,
        _ => true,
    })
}

/// Builds the snapshot of `served` from the store's objects at `revision`.
/// With `prev` given, its desired states and nodes are reused (the caller
/// knows they cannot have changed) and only the reported objects are read.
pub fn snapshot<'a>(
    objects: impl Iterator<Item = &'a Stored> + Clone,
    served: &[String],
    revision: u64,
    prev: Option<&StoreSnapshot>,
) -> StoreSnapshot {
    let mut reported: BTreeMap<&str, BTreeMap<Key, Stored>> = BTreeMap::new();
    for s in objects.clone() {
        if let Some(r) = reporter_of(&s.object) {
            if let Some(sw) = served.iter().find(|sw| *sw == r) {
                reported
                    .entry(sw.as_str())
                    .or_default()
                    .insert(s.object.key(), s.clone());
            }
        }
    }
    let recomputed = match prev {
        Some(_) => None,
        None => Some(Desired::from_objects(objects)),
    };
    let switches = served
        .iter()
        .map(|sw| {
            let (node, desired) = match (&recomputed, prev.and_then(|p| p.switches.get(sw))) {
                (Some(d), _) => d.for_switch(sw),
                (None, Some(v)) => (v.node.clone(), v.desired.clone()),
                (None, None) => (None, Err("not in the previous snapshot".to_owned())),
            };
            let view = SwitchView {
                node,
                desired,
                reported: reported.remove(sw.as_str()).unwrap_or_default(),
            };
            (sw.clone(), view)
        })
        .collect();
    StoreSnapshot {
        revision,
        switches: Arc::new(switches),
    }
}

/// The store's desired objects (and learned MACs), by kind.
#[derive(Default)]
struct Desired {
    logical_switches: Vec<LogicalSwitch>,
    transport_nodes: Vec<TransportNode>,
    gateway_groups: Vec<GatewayGroup>,
    bindings: Vec<Binding>,
    remote_macs: Vec<RemoteMac>,
    learned_macs: Vec<LearnedMac>,
}

impl Desired {
    fn from_objects<'a>(objects: impl Iterator<Item = &'a Stored>) -> Self {
        let mut d = Desired::default();
        for s in objects {
            match &s.object {
                Object::LogicalSwitch(o) => d.logical_switches.push(o.clone()),
                Object::TransportNode(o) => d.transport_nodes.push(o.clone()),
                Object::GatewayGroup(o) => d.gateway_groups.push(o.clone()),
                Object::Binding(o) => d.bindings.push(o.clone()),
                Object::RemoteMac(o) => d.remote_macs.push(o.clone()),
                Object::LearnedMac(o) => d.learned_macs.push(o.clone()),
                _ => {}
            }
        }
        d
    }

    fn for_switch(&self, sw: &str) -> (Option<TransportNode>, Result<Arc<Computed>, String>) {
        let node = self
            .transport_nodes
            .iter()
            .find(|n| n.name == sw && n.kind == NodeKind::HardwareSwitch)
            .cloned();
        let view = StoreView {
            logical_switches: &self.logical_switches,
            transport_nodes: &self.transport_nodes,
            gateway_groups: &self.gateway_groups,
            bindings: &self.bindings,
            remote_macs: &self.remote_macs,
            learned_macs: &self.learned_macs,
        };
        let desired = compute(sw, &view).map(Arc::new).map_err(|e| e.to_string());
        (node, desired)
    }
}

/// What this instance does with one switch's observed state in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Holds the switch's lock (or held it when the switch went away):
    /// makes the store equal to what the switch reports.
    Writer,
    /// Another instance holds the lock, or ours is not granted yet: writes nothing.
    Standby,
    /// Cannot reach the switch and never wrote it: reports it disconnected,
    /// only when nobody else reports the switch at all.
    Unreachable,
    /// No longer served (its transport node is gone): withdraws what it
    /// wrote under its own lease.
    Gone,
}

/// Decides a switch's [`Role`] from its reconciler's status over time.
#[derive(Clone, Debug, Default)]
pub struct RoleTracker {
    was_writer: bool,
}

impl RoleTracker {
    /// The role for the reconciler's current status.
    pub fn role(&mut self, st: &ReconcilerStatus) -> Role {
        if st.connected && st.synced && st.lock_held {
            self.was_writer = true;
            return Role::Writer;
        }
        if st.connected {
            // Reconnected without the lock (yet): another instance may have it.
            self.was_writer = false;
            return Role::Standby;
        }
        if self.was_writer {
            // Nobody can write a switch nobody reaches: keep reporting it.
            return Role::Writer;
        }
        // Before the first attempt failed there is nothing to say yet.
        if st.last_error.is_some() {
            Role::Unreachable
        } else {
            Role::Standby
        }
    }
}

/// The observed objects one switch should have in the store, and how to treat them.
#[derive(Clone, Debug, PartialEq)]
pub struct Want {
    /// How this instance treats the switch's objects.
    pub role: Role,
    /// What the store should hold (for [`Role::Writer`]; the disconnected
    /// status for [`Role::Unreachable`]).
    pub objects: BTreeMap<Key, Object>,
}

impl Want {
    /// What to write for `switch` in `role`, given its reconciler's status and observed state.
    pub fn new(role: Role, switch: &str, st: &ReconcilerStatus, observed: &Observed) -> Want {
        let objects = match role {
            Role::Writer => observed.objects(),
            Role::Unreachable => {
                let o = Object::SwitchStatus(st.switch_status(switch));
                BTreeMap::from([(o.key(), o)])
            }
            Role::Standby | Role::Gone => BTreeMap::new(),
        };
        Want { role, objects }
    }

    /// A switch no longer served.
    pub fn gone() -> Want {
        Want {
            role: Role::Gone,
            objects: BTreeMap::new(),
        }
    }
}

/// One write to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Create or replace under our lease.
    Put(Object),
    /// Delete.
    Delete(Key),
}

/// The writes that make the store's objects of one switch (`reported`)
/// what `want` says, for the holder of `lease` (`None`: none granted yet).
pub fn plan_writes(
    want: &Want,
    reported: &BTreeMap<Key, Stored>,
    lease: Option<LeaseId>,
) -> Vec<Write> {
    let mut out = Vec::new();
    match want.role {
        Role::Writer => {
            for (k, o) in &want.objects {
                let current = reported
                    .get(k)
                    .is_some_and(|s| s.object == *o && lease.is_some() && s.lease == lease);
                if !current {
                    out.push(Write::Put(o.clone()));
                }
            }
            for k in reported.keys() {
                if !want.objects.contains_key(k) {
                    out.push(Write::Delete(k.clone()));
                }
            }
        }
        Role::Unreachable => {
            if !reported.keys().any(|k| k.kind == Kind::SwitchStatus) {
                out.extend(want.objects.values().cloned().map(Write::Put));
            }
        }
        Role::Gone => {
            for (k, s) in reported {
                if lease.is_some() && s.lease == lease {
                    out.push(Write::Delete(k.clone()));
                }
            }
        }
        Role::Standby => {}
    }
    out
}

/// The store side's own metrics, registered beside [`crate::metrics::Metrics`].
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    /// 1 while the controller answers the reflector.
    pub store_up: IntGauge,
    /// Failed store calls by operation.
    pub errors: IntCounterVec,
    /// Observed objects written, by operation (put, delete).
    pub writes: IntCounterVec,
    /// Leases granted (more than one: the lease was lost and re-granted).
    pub lease_grants: IntCounter,
}

impl StoreMetrics {
    /// Creates and registers them.
    pub fn new(registry: &Registry) -> Result<StoreMetrics, prometheus::Error> {
        let p = |n: &str| format!("bridgehead_vtep_sync_{n}");
        let m = StoreMetrics {
            store_up: IntGauge::new(
                p("store_up"),
                "1 while the controller's store answers (list and watch)",
            )?,
            errors: IntCounterVec::new(
                Opts::new(p("store_errors_total"), "Failed store calls by operation"),
                &["op"],
            )?,
            writes: IntCounterVec::new(
                Opts::new(
                    p("store_writes_total"),
                    "Observed objects written to the store, by operation",
                ),
                &["op"],
            )?,
            lease_grants: IntCounter::new(
                p("lease_grants_total"),
                "Leases granted for the observed state (more than one: a lease was lost)",
            )?,
        };
        registry.register(Box::new(m.store_up.clone()))?;
        registry.register(Box::new(m.errors.clone()))?;
        registry.register(Box::new(m.writes.clone()))?;
        registry.register(Box::new(m.lease_grants.clone()))?;
        for op in ["watch", "grant", "renew", "put", "delete"] {
            m.errors.with_label_values(&[op]);
        }
        for op in ["put", "delete"] {
            m.writes.with_label_values(&[op]);
        }
        Ok(m)
    }
}

/// Follows the store and publishes a [`StoreSnapshot`] of the served
/// switches after every change, until `out` has no receiver left.
pub async fn run_source(
    mut reflector: Reflector,
    served: Vec<String>,
    out: watch::Sender<Option<Arc<StoreSnapshot>>>,
    metrics: StoreMetrics,
) {
    let mut failing = false;
    let mut prev: Option<Arc<StoreSnapshot>> = None;
    while !out.is_closed() {
        let ev = reflector.next().await;
        // (reuse the desired states?, only the revision moved?)
        let (reuse, progress_only) = match &ev {
            ReflectorEvent::Synced { revision } => {
                info!(revision, "controller: listed");
                (false, false)
            }
            ReflectorEvent::Changed { events, .. } => (!affects_desired(events, &served), false),
            ReflectorEvent::Progress { .. } => (true, true),
            ReflectorEvent::Error(e) => {
                metrics.errors.with_label_values(&["watch"]).inc();
                metrics.store_up.set(0);
                if failing {
                    debug!(error = %e, "controller still unreachable");
                } else {
                    warn!(error = %e,
                        "controller unreachable; switches keep the state in force, retrying");
                }
                failing = true;
                continue;
            }
        };
        if failing {
            info!(
                revision = reflector.revision(),
                "controller reachable again"
            );
            failing = false;
        }
        metrics.store_up.set(1);
        let revision = reflector.revision();
        let snap = match (&prev, progress_only) {
            (Some(p), true) => StoreSnapshot {
                revision,
                switches: p.switches.clone(),
            },
            _ => snapshot(
                reflector.objects().values(),
                &served,
                revision,
                prev.as_deref().filter(|_| reuse),
            ),
        };
        let snap = Arc::new(snap);
        prev = Some(snap.clone());
        out.send_replace(Some(snap));
    }
}

/// How the publisher treats the store.
#[derive(Clone, Debug)]
pub struct PublisherConfig {
    /// Lease TTL; renewed every TTL/3.
    pub ttl: Duration,
    /// Longest wait for the snapshot to show our own writes before planning anyway.
    pub catch_up: Duration,
}

impl PublisherConfig {
    /// A lease of `ttl`, a catch-up wait of 5 s.
    pub fn new(ttl: Duration) -> Self {
        PublisherConfig {
            ttl,
            catch_up: Duration::from_secs(5),
        }
    }
}

/// Why a pass stopped early; the loop retries after a backoff.
#[derive(Debug)]
struct StepError {
    op: &'static str,
    error: ClientError,
}

struct Publisher {
    client: Client,
    cfg: PublisherConfig,
    metrics: StoreMetrics,
    lease: LeaseKeeper,
    /// Highest store revision our writes produced.
    written_rev: u64,
    /// Until when to wait for the snapshot to reach `written_rev`.
    catch_up_until: Option<Instant>,
}

fn is_404(e: &ClientError) -> bool {
    e.status() == Some(404)
}

impl Publisher {
    fn plan(
        snap: &StoreSnapshot,
        want: &BTreeMap<String, Want>,
        lease: Option<LeaseId>,
    ) -> Vec<Write> {
        let empty = BTreeMap::new();
        want.iter()
            .flat_map(|(sw, w)| {
                let reported = snap.switches.get(sw).map_or(&empty, |v| &v.reported);
                plan_writes(w, reported, lease)
            })
            .collect()
    }

    async fn step(
        &mut self,
        snap: Option<Arc<StoreSnapshot>>,
        want: &BTreeMap<String, Want>,
    ) -> Result<(), StepError> {
        let err = |op| move |error| StepError { op, error };
        // A lease found gone needs nothing more here: the plan below
        // compares with the store, under the lease we will hold.
        self.lease
            .renew_if_due(&self.client)
            .await
            .map_err(err("renew"))?;
        let Some(snap) = snap else {
            return Ok(());
        };
        if snap.revision < self.written_rev
            && self.catch_up_until.is_some_and(|t| Instant::now() < t)
        {
            return Ok(());
        }
        self.catch_up_until = None;
        let mut writes = Self::plan(&snap, want, self.lease.id());
        if writes.is_empty() {
            return Ok(());
        }
        let held = self
            .lease
            .ensure(&self.client)
            .await
            .map_err(err("grant"))?;
        if held.new {
            self.metrics.lease_grants.inc();
            writes = Self::plan(&snap, want, Some(held.id));
        }
        let lease = held.id;
        let (mut puts, mut deletes) = (0usize, 0usize);
        let mut result = Ok(());
        for w in writes {
            let r = match &w {
                Write::Put(o) => self.client.put_observed(o, lease).await,
                Write::Delete(k) => match self.client.delete(k).await {
                    // Gone already (expired with an old lease, or another instance).
                    Err(e) if is_404(&e) => continue,
                    r => r,
                },
            };
            let op = match &w {
                Write::Put(_) => "put",
                Write::Delete(_) => "delete",
            };
            match r {
                Ok(written) => {
                    self.written_rev = self.written_rev.max(written.revision);
                    self.metrics.writes.with_label_values(&[op]).inc();
                    match w {
                        Write::Put(_) => puts += 1,
                        Write::Delete(_) => deletes += 1,
                    }
                }
                Err(e) if op == "put" && is_404(&e) => {
                    self.lease.lost();
                    result = Err(err("put")(e));
                    break;
                }
                Err(e @ ClientError::Api { .. })
                    if e.status().is_some_and(|s| (400..500).contains(&s)) =>
                {
                    // Refused for this object (e.g. its logical switch was
                    // just deleted): the others still go; the next store
                    // change plans it again.
                    self.metrics.errors.with_label_values(&[op]).inc();
                    warn!(error = %e, write = ?w, "store refused an observed object");
                }
                Err(e) => {
                    result = Err(err(op)(e));
                    break;
                }
            }
        }
        if puts + deletes > 0 {
            debug!(
                puts,
                deletes,
                revision = self.written_rev,
                "observed state written"
            );
            self.catch_up_until = Some(Instant::now() + self.cfg.catch_up);
        }
        result
    }
}

/// Keeps the store's observed objects of every switch in `want` equal to
/// it (see the module doc), until either channel's sender is dropped.
pub async fn run_publisher(
    client: Client,
    cfg: PublisherConfig,
    mut want: watch::Receiver<BTreeMap<String, Want>>,
    mut store: watch::Receiver<Option<Arc<StoreSnapshot>>>,
    metrics: StoreMetrics,
) {
    let mut p = Publisher {
        lease: LeaseKeeper::new(cfg.ttl),
        client,
        cfg,
        metrics,
        written_rev: 0,
        catch_up_until: None,
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut retry_at: Option<Instant> = None;
    let mut failing = false;
    loop {
        // After a failure the backoff decides, also for an overdue renewal.
        let wake = match retry_at {
            Some(t) => Some(t),
            None => [p.lease.next_renew(), p.catch_up_until]
                .into_iter()
                .flatten()
                .min(),
        };
        tokio::select! {
            r = want.changed() => if r.is_err() { return },
            r = store.changed() => if r.is_err() { return },
            () = async { sleep_until(wake.unwrap_or_else(Instant::now)).await }, if wake.is_some() => {}
        }
        // A failing controller is retried on the backoff, not on every change.
        if retry_at.is_some_and(|t| t > Instant::now()) {
            continue;
        }
        let snap = store.borrow_and_update().clone();
        let target = want.borrow_and_update().clone();
        match p.step(snap, &target).await {
            Ok(()) => {
                if failing {
                    info!("observed state written again");
                }
                failing = false;
                backoff.reset();
                retry_at = None;
            }
            Err(StepError { op, error }) => {
                p.metrics.errors.with_label_values(&[op]).inc();
                if failing {
                    debug!(op, error = %error, "writing the observed state still fails");
                } else {
                    warn!(op, error = %error, "cannot write the observed state; retrying");
                }
                failing = true;
                retry_at = Some(Instant::now() + backoff.next_delay(rand::random::<f64>()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::model::{
        Attachment, BfdParams, BfdState, EventType, Replication, SwitchStatus, TunnelStatus,
    };

    fn stored(o: Object, lease: Option<LeaseId>) -> Stored {
        Stored {
            object: o,
            create_revision: 1,
            mod_revision: 1,
            lease,
        }
    }

    fn node(name: &str, kind: NodeKind, ip: &str) -> Object {
        Object::TransportNode(TransportNode {
            name: name.into(),
            kind,
            tunnel_ip: ip.parse().unwrap(),
            bfd: BfdParams::default(),
            ovsdb_target: (kind == NodeKind::HardwareSwitch).then(|| "tcp:127.0.0.1:6640".into()),
        })
    }

    fn learned(reporter: &str, mac: &str) -> Object {
        Object::LearnedMac(LearnedMac {
            reporter: reporter.into(),
            logical_switch: "web".into(),
            mac: mac.parse().unwrap(),
            ip: None,
        })
    }

    fn status(switch: &str, connected: bool) -> Object {
        Object::SwitchStatus(SwitchStatus {
            switch: switch.into(),
            connected,
            faults: vec![],
            ..Default::default()
        })
    }

    fn store() -> Vec<Stored> {
        vec![
            stored(
                Object::LogicalSwitch(LogicalSwitch {
                    name: "web".into(),
                    vni: 5000,
                    replication: Replication::SourceNode,
                }),
                None,
            ),
            stored(node("tor1", NodeKind::HardwareSwitch, "198.18.0.1"), None),
            stored(node("hv1", NodeKind::Hypervisor, "198.18.0.11"), None),
            stored(
                Object::Binding(Binding {
                    name: "b1".into(),
                    logical_switch: "web".into(),
                    attachment: Attachment::HardwareSwitch {
                        switch: "tor1".into(),
                        port: "p1".into(),
                    },
                    vlan: 0,
                }),
                None,
            ),
            stored(learned("tor1", "02:00:00:00:00:01"), Some(7)),
            stored(learned("hv1", "02:00:00:00:00:02"), Some(8)),
            stored(status("tor1", true), Some(7)),
            stored(
                Object::TunnelStatus(TunnelStatus {
                    reporter: "hv1".into(),
                    remote_ip: "198.18.0.1".parse().unwrap(),
                    state: BfdState::Up,
                    diag: None,
                }),
                Some(8),
            ),
        ]
    }

    #[test]
    fn snapshot_per_served_switch() {
        let objs = store();
        let served = vec!["tor1".to_owned(), "tor9".to_owned()];
        let s = snapshot(objs.iter(), &served, 42, None);
        assert_eq!(s.revision, 42);
        let tor1 = &s.switches["tor1"];
        assert_eq!(tor1.target(), Some("tcp:127.0.0.1:6640"));
        let d = tor1.desired.as_ref().unwrap();
        // hv1's learned MAC is remote on tor1; tor1's own is not.
        let web = &d.state.logical_switches["web"];
        assert_eq!(web.remote_macs.len(), 1);
        assert_eq!(
            tor1.reported
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "learned-macs/tor1/web/02:00:00:00:00:01",
                "switch-status/tor1"
            ]
        );
        // A served switch the store does not know: no node, no state, nothing reported.
        let tor9 = &s.switches["tor9"];
        assert!(tor9.node.is_none() && tor9.desired.is_err() && tor9.reported.is_empty());
        // Reusing the previous desired states: only reported objects are re-read.
        let mut objs2 = objs.clone();
        objs2.retain(|s| !matches!(s.object, Object::SwitchStatus(_)));
        let s2 = snapshot(objs2.iter(), &served, 43, Some(&s));
        assert_eq!(s2.switches["tor1"].desired, tor1.desired);
        assert_eq!(s2.switches["tor1"].reported.len(), 1);
    }

    #[test]
    fn which_events_change_desired_states() {
        let ev = |o: Object| Event {
            event_type: EventType::Put,
            key: o.key().to_string(),
            value: stored(o, Some(1)),
        };
        let one = vec!["tor1".to_owned()];
        let two = vec!["tor1".to_owned(), "tor2".to_owned()];
        assert!(!affects_desired(
            &[ev(learned("tor1", "02:00:00:00:00:01"))],
            &one
        ));
        // tor1's MAC is remote on tor2.
        assert!(affects_desired(
            &[ev(learned("tor1", "02:00:00:00:00:01"))],
            &two
        ));
        assert!(affects_desired(
            &[ev(learned("hv1", "02:00:00:00:00:01"))],
            &one
        ));
        assert!(!affects_desired(&[ev(status("tor1", true))], &one));
        assert!(affects_desired(
            &[ev(node("hv2", NodeKind::Hypervisor, "198.18.0.12"))],
            &one
        ));
    }

    fn st(connected: bool, synced: bool, lock_held: bool, err: bool) -> ReconcilerStatus {
        ReconcilerStatus {
            connected,
            synced,
            lock_held,
            last_error: err.then(|| "x".to_owned()),
            ..ReconcilerStatus::default()
        }
    }

    #[test]
    fn roles_follow_the_lock_and_survive_a_disconnect() {
        let mut r = RoleTracker::default();
        assert_eq!(r.role(&st(false, false, false, false)), Role::Standby);
        assert_eq!(r.role(&st(false, false, false, true)), Role::Unreachable);
        assert_eq!(r.role(&st(true, true, false, false)), Role::Standby);
        assert_eq!(r.role(&st(true, false, true, false)), Role::Standby);
        assert_eq!(r.role(&st(true, true, true, false)), Role::Writer);
        // The switch goes away: still the writer (reports it disconnected).
        assert_eq!(r.role(&st(false, false, false, true)), Role::Writer);
        // Back, but another instance got the lock first.
        assert_eq!(r.role(&st(true, true, false, false)), Role::Standby);
        assert_eq!(r.role(&st(false, false, false, true)), Role::Unreachable);
    }

    fn want_writer(objs: &[Object]) -> Want {
        Want {
            role: Role::Writer,
            objects: objs.iter().map(|o| (o.key(), o.clone())).collect(),
        }
    }

    fn reported(objs: &[(Object, LeaseId)]) -> BTreeMap<Key, Stored> {
        objs.iter()
            .map(|(o, l)| (o.key(), stored(o.clone(), Some(*l))))
            .collect()
    }

    #[test]
    fn writer_puts_what_differs_or_is_under_another_lease_and_deletes_the_rest() {
        let a = learned("tor1", "02:00:00:00:00:01");
        let b = learned("tor1", "02:00:00:00:00:02");
        let gone = learned("tor1", "02:00:00:00:00:09");
        let want = want_writer(&[a.clone(), b.clone(), status("tor1", true)]);
        let rep = reported(&[(a.clone(), 7), (b.clone(), 3), (gone.clone(), 3)]);
        let w = plan_writes(&want, &rep, Some(7));
        assert_eq!(
            w,
            vec![
                // b is ours in value but under a predecessor's lease.
                Write::Put(b.clone()),
                Write::Put(status("tor1", true)),
                Write::Delete(gone.key()),
            ]
        );
        // In sync: nothing.
        let rep = reported(&[(a.clone(), 7), (b.clone(), 7), (status("tor1", true), 7)]);
        assert!(plan_writes(&want, &rep, Some(7)).is_empty());
        // Without a lease yet, everything wanted is a put.
        assert_eq!(plan_writes(&want, &rep, None).len(), 3);
        // A changed value is a put.
        let want2 = want_writer(&[a, b, status("tor1", false)]);
        assert_eq!(
            plan_writes(&want2, &rep, Some(7)),
            vec![Write::Put(status("tor1", false))]
        );
    }

    #[test]
    fn standby_unreachable_and_gone() {
        let a = learned("tor1", "02:00:00:00:00:01");
        let rep = reported(&[(a.clone(), 3), (status("tor1", true), 3)]);
        let standby = Want::new(
            Role::Standby,
            "tor1",
            &st(true, true, false, false),
            &Observed::default(),
        );
        assert!(plan_writes(&standby, &rep, Some(7)).is_empty());
        // Unreachable: says so only when nobody reports the switch.
        let unreachable = Want::new(
            Role::Unreachable,
            "tor1",
            &st(false, false, false, true),
            &Observed::default(),
        );
        assert!(plan_writes(&unreachable, &rep, None).is_empty());
        assert_eq!(
            plan_writes(&unreachable, &BTreeMap::new(), None),
            vec![Write::Put(status("tor1", false))]
        );
        // Gone: withdraws only what is under our own lease.
        let rep = reported(&[(a.clone(), 7), (status("tor1", true), 3)]);
        assert_eq!(
            plan_writes(&Want::gone(), &rep, Some(7)),
            vec![Write::Delete(a.key())]
        );
        assert!(plan_writes(&Want::gone(), &rep, None).is_empty());
    }
}
